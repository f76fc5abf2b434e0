// The flow recorder alone in a process of its own, for `make bench BENCH=flows` (bench/flows.ts): run inside the
// namespace it records, so its CPU (and its conntrack child's) is its own and can be read from /proc.
//
//   ip netns exec NS node --import tsx bench/flows-recorder.ts --root DIR
//
// Records as a gateway does (startRecorder, reporter `gateway`, docs/audit.md), with a fixed enrichment (the bench
// measures recording, not the informer). Prints one JSON line per 250 ms on stdout: {"ready",…RecorderStats}; on
// SIGTERM it stops the recorder (flush, conntrack stopped), prints a last line with "final": true and exits 0.
import { localRunner } from '../src/dataplane/exec.js';
import { startRecorder } from '../src/audit/recorder.js';
import { createLogger } from '../src/log.js';

const USAGE = 'usage: flows-recorder.ts --root DIR [--check-ms N]';

function parse(args: string[]): { root: string; checkMs: number } | Error {
  let root: string | undefined;
  let checkMs = 1000;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    if (a === '--root' && v) (root = v), i++;
    else if (a === '--check-ms' && v && Number.isInteger(Number(v)) && Number(v) >= 100) (checkMs = Number(v)), i++;
    else return new Error(`bad or incomplete argument ${a}${v === undefined ? '' : ' ' + v}`);
  }
  return root ? { root, checkMs } : new Error('--root DIR is required');
}

const o = parse(process.argv.slice(2));
if (o instanceof Error) {
  process.stderr.write(`flows-recorder: ${o.message}\n${USAGE}\n`);
  process.exit(2);
}

const ac = new AbortController();
const log = createLogger('bench flows-recorder', { level: 'warn', write: (l) => process.stderr.write(l + '\n') });
const rec = startRecorder({
  reporter: 'gateway',
  reporterName: 'egw/gw-bench',
  root: o.root,
  runner: localRunner(),
  enrich: () => ({
    pod: { namespace: 'bench', name: 'client', uid: 'uid-bench', node: 'node-1', labels: { app: 'flood' } },
    route: { kind: 'annotation', on: 'namespace', selector: 'all()' },
    gateway: { namespace: 'egw', name: 'gw-bench', node: 'node-2', ip: '10.9.2.1' },
  }),
  log,
  signal: ac.signal,
  checkMs: o.checkMs,
});
let ready = false;
void rec.ready.then(() => (ready = true));
const emit = (extra: Record<string, unknown> = {}) => process.stdout.write(JSON.stringify({ ready, at: Date.now(), ...rec.stats(), ...extra }) + '\n');
const timer = setInterval(emit, 250);
process.on('SIGTERM', () => ac.abort());
process.on('SIGINT', () => ac.abort());
await rec.done;
clearInterval(timer);
emit({ final: true });
process.exit(0);
