// The flow recorder alone in a process of its own, for `make bench BENCH=flows` (bench/flows.ts): run inside the
// namespace it records, so its CPU (and its conntrack child's) is its own and can be read from /proc.
//
//   ip netns exec NS node --import tsx bench/flows-recorder.ts --root DIR
//
// Records as a gateway does (startRecorder, reporter `gateway`, docs/audit.md), with a fixed enrichment (the bench
// measures recording, not the informer). Prints one JSON line per 250 ms on stdout: {"ready",…RecorderStats}; on
// SIGTERM it stops the recorder (flush, conntrack stopped), prints a last line with "final": true and exits 0.
// With --metrics-socket PATH it also serves the gateway's /metrics there, made as a gateway makes them
// (gatewayMetrics over the recorder's port use, the namespace's conntrack count): bench/scrape.ts scrapes it.
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { localRunner } from '../src/dataplane/exec.js';
import { startRecorder } from '../src/audit/recorder.js';
import { createLogger } from '../src/log.js';
import { readConntrackCount } from '../src/audit/ctsource.js';
import { gatewayMetrics, processRegistry } from '../src/metrics/metrics.js';
import { serveMetrics } from '../src/metrics/server.js';

const USAGE = 'usage: flows-recorder.ts --root DIR [--check-ms N] [--metrics-socket PATH]';

function parse(args: string[]): { root: string; checkMs: number; metricsSocket?: string } | Error {
  let root: string | undefined;
  let checkMs = 1000;
  let metricsSocket: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    if (a === '--root' && v) (root = v), i++;
    else if (a === '--metrics-socket' && v) (metricsSocket = v), i++;
    else if (a === '--check-ms' && v && Number.isInteger(Number(v)) && Number(v) >= 100) (checkMs = Number(v)), i++;
    else return new Error(`bad or incomplete argument ${a}${v === undefined ? '' : ' ' + v}`);
  }
  return root ? { root, checkMs, ...(metricsSocket ? { metricsSocket } : {}) } : new Error('--root DIR is required');
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
const metrics = o.metricsSocket
  ? await (() => {
      const { registry } = processRegistry();
      gatewayMetrics(registry, {
        clients: () => 1,
        conntrackEntries: readConntrackCount,
        ports: () => rec.portUse(),
        records: () => rec.stats().records,
        gaps: () => rec.stats().gaps,
      });
      return serveMetrics(registry, { host: '127.0.0.1', port: 0, socket: o.metricsSocket }, log);
    })()
  : undefined;
// What stalls this process (a scrape waits for it): the longest garbage collection and the longest event-loop delay
// since the previous stats line, for bench/scrape.ts.
let gcMaxMs = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) gcMaxMs = Math.max(gcMaxMs, e.duration);
}).observe({ entryTypes: ['gc'] });
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
let ready = false;
void rec.ready.then(() => (ready = true));
const emit = (extra: Record<string, unknown> = {}) => {
  const stall = { gcMaxMs: Math.round(gcMaxMs), loopDelayMaxMs: Math.round(loop.max / 1e6) };
  gcMaxMs = 0;
  loop.reset();
  process.stdout.write(JSON.stringify({ ready, at: Date.now(), ...rec.stats(), ...stall, ...extra }) + '\n');
};
const timer = setInterval(emit, 250);
process.on('SIGTERM', () => ac.abort());
process.on('SIGINT', () => ac.abort());
await rec.done;
await metrics?.close();
clearInterval(timer);
emit({ final: true });
process.exit(0);
