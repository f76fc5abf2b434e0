// `make demo`: a real two-node cluster of network namespaces with egress gateways, and traffic through them.
//
//   node --import tsx scripts/demo.ts        (as root; KEEP=1 leaves the lab up to explore)
//   DATASTORE=etcd …                         the same lab with `datastore: etcd`: an etcd server inside the lab
//   DATASTORE=kubernetes …                   `datastore: kubernetes`: every process on --datastore kubernetes,
//                                            against the lab's stand-in API server (src/lab/apiserver.ts)
//
// Builds the lab of examples/lab/demo.yaml, applies the scenario of examples/demo/ (egress pool 10.10.10.0/30, the
// two "red" gateways, namespaces tenant-a (selector annotation), plain (none) and tenant-b (policy egw-policy1), one
// client pod in each), waits until the gateways run and every client's traffic behaves as expected, and prints what
// the external servers saw from each client, then `egw explain` for one flow. Every step runs the `egw` command
// (bin/egw.js) and prints it, so the output doubles as a tutorial. Datastore: $EGW_DATASTORE, else a fresh
// sqlite:${EGW_LAB_DIR:-/run/egw/labs}/demo.db; with DATASTORE=etcd (or kubernetes) the lab's own server, reached from
// here at the EGW_DATASTORE that `egw lab up` prints. Exits non-zero if any client did not behave as expected.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Pod } from '../src/api/types.js';
import { loadLabFile, labStateRoot, readClusterSummary, readLabState, type ClusterSummary } from '../src/lab/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LAB_FILE = 'examples/lab/demo.yaml';
const SCENARIO = 'examples/demo/';
const GATEWAY = 'red';
const TIMEOUT_MS = 30_000;
const KEEP = process.env.KEEP === '1';
/** DATASTORE=etcd|kubernetes: the demo lab with its own datastore server (docs/dataplane.md, "The lab on etcd", "The lab on Kubernetes"); default sqlite. */
const DATASTORE = process.env.DATASTORE || 'sqlite';

type Want = 'gateway' | 'node' | 'admitted' | 'refused';
interface Client {
  pod: string;
  egress: string;
  /** What must be seen at the echo server, the restricted service and on-prem (undefined: not checked). */
  want: { echo?: Want; restricted?: Want; onprem?: Want };
}
const CLIENTS: Client[] = [
  { pod: 'tenant-a/client-a', egress: 'ns annotation', want: { echo: 'gateway', restricted: 'admitted' } },
  { pod: 'plain/client-plain', egress: 'none', want: { echo: 'node', restricted: 'refused' } },
  { pod: 'tenant-b/client-b', egress: 'policy', want: { echo: 'gateway', onprem: 'node' } },
];

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = '') => process.stdout.write(s + '\n');
const indent = (s: string, n = 2) =>
  s
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');

const ac = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\n${sig}: stopping${KEEP ? '' : ' and tearing the lab down'}\n`);
    ac.abort();
  });
}
function sleep(ms: number): Promise<void> {
  return new Promise((res, rej) => {
    if (ac.signal.aborted) return rej(new Error('interrupted'));
    const t = setTimeout(res, ms);
    ac.signal.addEventListener('abort', () => (clearTimeout(t), rej(new Error('interrupted'))), { once: true });
  });
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `egw ARGS` (this checkout's bin/egw.js) with the demo's datastore; never throws on a non-zero exit. */
function egw(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Result> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'egw.js'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

/** Prints `$ egw ARGS`, runs it, prints its output indented; throws with its stderr if it fails. */
async function step(args: string[], env: NodeJS.ProcessEnv, show = true): Promise<Result> {
  say(bold(`$ egw ${args.join(' ')}`));
  const r = await egw(args, env);
  if (r.code !== 0) throw new Error(`egw ${args.join(' ')} failed (exit ${r.code}):\n${indent((r.stderr || r.stdout).trim())}`);
  if (show && r.stdout.trim()) say(indent(r.stdout));
  return r;
}

type Probe = { kind: 'source'; ip: string } | { kind: 'refused' } | { kind: 'no answer' } | { kind: 'error'; text: string };

/** `egw lab exec POD -- curl http://DST/`: what the echo server at DST saw as our source, or why there was none. */
async function probe(pod: string, dst: string, env: NodeJS.ProcessEnv): Promise<Probe> {
  // 30 s: nine of these run at once, and on kubernetes each egw process first loads client-node (about 1 s of CPU).
  const r = await egw(['lab', 'exec', pod, '--', 'curl', '-sS', '--noproxy', '*', '--max-time', '2', `http://${dst}/`], env, 30_000);
  if (r.code === 0) {
    try {
      return { kind: 'source', ip: String((JSON.parse(r.stdout) as { sourceIp: string }).sourceIp) };
    } catch {
      return { kind: 'error', text: r.stdout.trim().slice(0, 60) };
    }
  }
  if (r.code === 7) return { kind: 'refused' };
  if (r.code === 28) return { kind: 'no answer' };
  return { kind: 'error', text: (r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`).replace(/^egw: /, '') };
}

/**
 * The audit use case (docs/audit.md): a request from tenant-b/client-b, the line the lab firewall logged for it
 * (what the outside saw: the gateway's IP and port), and `egw trace` of that line naming the pod.
 */
async function auditDemo(env: NodeJS.ProcessEnv, lab: string, echo: string): Promise<boolean> {
  const pod = 'tenant-b/client-b';
  say(`# audit: ${pod} makes a request; the lab firewall logs it (the source it saw); egw trace finds the pod from that line`);
  const r = await egw(['lab', 'exec', pod, '--', 'curl', '-sS', '--noproxy', '*', '--max-time', '2', `http://${echo}/`], env, 10_000);
  const seen = r.code === 0 ? (JSON.parse(r.stdout) as { sourceIp: string; sourcePort: number }) : undefined;
  if (!seen) return fail(`the request from ${pod} failed (exit ${r.code}): ${r.stderr.trim()}`);
  type Line = { time: string; verdict: string; source: { ip: string; port: number }; destination: { ip: string; port: number } };
  let line: Line | undefined;
  for (let i = 0; i < 20 && !line; i++) {
    const fw = await egw(['lab', 'firewall', '--lab', lab, '-o', 'json'], env);
    line = fw.stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Line)
      .find((l) => l.source.ip === seen.sourceIp && l.source.port === seen.sourcePort && l.destination.ip === echo);
    if (!line) await sleep(250);
  }
  if (!line) return fail(`the firewall logged no line from ${seen.sourceIp}:${seen.sourcePort}`);
  await step(['lab', 'firewall', '--lab', lab, '--tail', '3'], env);
  say(`# the firewall's line: ${line.time} ${line.verdict} ${line.source.ip}:${line.source.port} → ${line.destination.ip}:${line.destination.port}`);
  const args = ['trace', '--ip', line.source.ip, '--port', String(line.source.port), '--dst', `${line.destination.ip}:${line.destination.port}`, '--at', line.time];
  // the gateway records the connection as it opens; give it a moment to be written (records flush every 200 ms)
  let t: Result | undefined;
  for (let i = 0; i < 20; i++) {
    t = await egw(args, env);
    if (t.code === 0) break;
    await sleep(250);
  }
  await step(args, env);
  const j = JSON.parse((await egw([...args, '-o', 'json'], env)).stdout) as { pod: { namespace: string; name: string } };
  if (`${j.pod.namespace}/${j.pod.name}` !== pod) return fail(`egw trace named ${j.pod.namespace}/${j.pod.name}, not ${pod}`);
  say(indent(`egw trace named ${pod} from the firewall's line alone`));
  say();
  return true;
}

function fail(msg: string): false {
  say(`FAILED: ${msg}`);
  return false;
}

type Cluster = ClusterSummary;
const readCluster = (datastore: string): Promise<Cluster> => readClusterSummary(datastore, GATEWAY);

const running = (p: Pod | undefined): boolean => !!p && p.status?.phase === 'Running' && !!p.status.podIP && !!p.metadata.annotations?.['egw.dev/netns'];

interface Row {
  client: Client;
  node: string;
  echo: Probe;
  restricted: Probe;
  onprem: Probe;
}

/** A probe's cell: the source the server saw (`source`) or whether it let us in (`access`), and whether that is wanted. */
function cell(p: Probe, kind: 'source' | 'access', want: Want | undefined, c: Cluster, node: string): { text: string; ok: boolean } {
  if (p.kind !== 'source') return { text: p.kind === 'error' ? `error: ${p.text}` : p.kind, ok: want === undefined || (want === 'refused' && p.kind === 'refused') };
  if (kind === 'access') return { text: 'admitted', ok: want === undefined || want === 'admitted' };
  const gw = c.gateways.some((g) => g.status?.podIP === p.ip);
  const nodeName = [...c.nodeIPs].find(([, ip]) => ip === p.ip)?.[0];
  const client = [...c.pods.values()].some((q) => q.status?.podIP === p.ip);
  const what = gw ? 'gateway' : nodeName ? `${nodeName} IP` : client ? 'pod IP, no NAT' : 'unknown';
  return { text: `${p.ip} (${what})`, ok: want === undefined || (want === 'gateway' && gw) || (want === 'node' && p.ip === c.nodeIPs.get(node)) };
}

function cells(r: Row, c: Cluster): { text: string; ok: boolean }[] {
  const w = r.client.want;
  return [cell(r.echo, 'source', w.echo, c, r.node), cell(r.restricted, 'access', w.restricted, c, r.node), cell(r.onprem, 'source', w.onprem, c, r.node)];
}
const verdict = (r: Row, c: Cluster): boolean => cells(r, c).every((x) => x.ok);

function table(rows: Row[], c: Cluster, lab: { echo: string; restricted: string; onprem: string }): string {
  const head = ['NAMESPACE', 'POD', 'NODE', 'EGRESS', `ECHO ${lab.echo} SAW`, `RESTRICTED ${lab.restricted}`, `ON-PREM ${lab.onprem} SAW`, ''];
  const body = rows.map((r) => {
    const [ns, name] = r.client.pod.split('/');
    const cs = cells(r, c);
    return [ns, name, r.node, r.client.egress, ...cs.map((x) => x.text), cs.every((x) => x.ok) ? 'ok' : 'UNEXPECTED'];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [head, ...body].map((cols) => cols.map((s, i) => s.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

async function main(): Promise<number> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    process.stderr.write('make demo needs root: it builds a cluster out of Linux network namespaces. Run it as root (sudo make demo).\n');
    return 1;
  }
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    process.stderr.write('dist/ is missing: run `make setup` (or `make build`) first.\n');
    return 1;
  }
  if (DATASTORE !== 'sqlite' && DATASTORE !== 'etcd' && DATASTORE !== 'kubernetes') {
    process.stderr.write(`DATASTORE=${DATASTORE}: expected sqlite (the default), etcd or kubernetes\n`);
    return 1;
  }
  /** The lab runs its own datastore server (etcd, or the stand-in API server). */
  const ownServer = DATASTORE !== 'sqlite';
  const server = DATASTORE === 'etcd' ? 'etcd server (egw-<name>-etcd)' : 'stand-in Kubernetes API server (egw-<name>-api)';
  const stateRoot = labStateRoot();
  mkdirSync(stateRoot, { recursive: true });
  // On etcd or kubernetes: the demo lab file plus `datastore: …` (the lab then runs its own server).
  let labFile = LAB_FILE;
  if (ownServer) {
    labFile = join(stateRoot, `demo-${DATASTORE}.yaml`);
    writeFileSync(labFile, readFileSync(join(ROOT, LAB_FILE), 'utf8') + `\ndatastore: ${DATASTORE}           # the lab runs a ${server}\n`);
  }
  const labCfg = loadLabFile(resolve(ROOT, labFile));
  const LAB = labCfg.name;
  const addrs = { echo: labCfg.external.echo, restricted: labCfg.external.restricted.ip, onprem: labCfg.external.networks[0]?.echo ?? '203.0.113.10' };
  let datastore = ownServer ? undefined : process.env.EGW_DATASTORE;
  if (!datastore && !ownServer) datastore = `sqlite:${join(stateRoot, `${LAB}.db`)}`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.EGW_DATASTORE; // on etcd the lab chooses it; set below once known
  if (datastore) env.EGW_DATASTORE = datastore;

  say(bold(`egw demo: egress gateways in a two-node cluster of network namespaces (lab "${LAB}", datastore ${DATASTORE})`));
  if (datastore) {
    say(`egw is \`node bin/egw.js\` (or \`npx egw\`); every command below uses this datastore:`);
    say(bold(`$ export EGW_DATASTORE=${datastore}`));
  } else {
    say(`egw is \`node bin/egw.js\` (or \`npx egw\`); the lab runs its own ${server}, and \`egw lab up\` prints the EGW_DATASTORE to use`);
  }
  say();

  // A demo lab from an earlier run (KEEP=1, or interrupted): take it down first, then start from a fresh datastore.
  const stale = readLabState(LAB, stateRoot) !== undefined || existsSync(`/run/netns/egw-${LAB}-net`) || existsSync(`/run/netns/egw-${LAB}-ext`);
  if (stale) {
    say(`# a "${LAB}" lab from an earlier run is still there: remove it first`);
    await step(['lab', 'down', LAB], env);
  }
  if (!process.env.EGW_DATASTORE && datastore) {
    const db = datastore.slice('sqlite:'.length);
    for (const f of [db, `${db}-wal`, `${db}-shm`, `${db}-journal`]) rmSync(f, { force: true });
  }

  let labStarted = false;
  try {
    say('# a cluster: 2 nodes on an underlay, a router, and an external host (echo server, restricted service, on-prem)');
    labStarted = true;
    const up = await step(['lab', 'up', '-f', labFile], env);
    if (ownServer) {
      datastore = /^export EGW_DATASTORE=(\S+)$/m.exec(up.stdout)?.[1];
      if (!datastore) throw new Error(`egw lab up printed no EGW_DATASTORE:\n${indent(up.stdout)}`);
      env.EGW_DATASTORE = datastore;
      say(`# every command below uses the lab's ${DATASTORE === 'etcd' ? 'etcd' : 'API server'} (inside the lab; this is a loopback relay to it):`);
      say(bold(`$ export EGW_DATASTORE=${datastore}`));
    }
    const ds = datastore!;
    say('# the scenario: egress pool 10.10.10.0/30, EgressGateway "red" (2 replicas), 3 namespaces, a client in each');
    await step(['apply', '-f', SCENARIO], env);
    say();

    // Wait (bounded) for the gateway pods, then for every client's traffic to behave as expected.
    const t0 = Date.now();
    const deadline = t0 + TIMEOUT_MS;
    say(`waiting for the ${GATEWAY} gateway pods and for the clients' traffic (up to ${TIMEOUT_MS / 1000} s) …`);
    let c = await readCluster(ds);
    while (!(c.gateways.length >= 2 && c.gateways.every(running) && CLIENTS.every((cl) => running(c.pods.get(cl.pod))))) {
      if (Date.now() > deadline) {
        const gws = c.gateways.map((g) => `${g.metadata.name}: ${g.status?.phase ?? 'Pending'}${g.status?.podIP ? ` ${g.status.podIP}` : ''}`).join(', ') || 'none created';
        const notRunning = CLIENTS.filter((cl) => !running(c.pods.get(cl.pod))).map((cl) => cl.pod);
        throw new Error(
          `timed out after ${TIMEOUT_MS / 1000} s waiting for the pods: gateway pods (${gws})` +
            (notRunning.length ? `; clients not running: ${notRunning.join(', ')}` : '') +
            `\nlogs: ${join(stateRoot, LAB, 'logs')}/ (controller-1.log, kubelet-*.log, etcd.log)`,
        );
      }
      await sleep(250);
      c = await readCluster(ds);
    }
    say(indent(`gateway pods running after ${((Date.now() - t0) / 1000).toFixed(1)} s: ` + c.gateways.map((g) => `${g.metadata.name} ${g.status?.podIP} on ${g.spec.nodeName}`).join(', ')));

    let rows: Row[] = [];
    for (;;) {
      rows = await Promise.all(
        CLIENTS.map(async (cl) => {
          const [echo, restricted, onprem] = await Promise.all([probe(cl.pod, addrs.echo, env), probe(cl.pod, addrs.restricted, env), probe(cl.pod, addrs.onprem, env)]);
          return { client: cl, node: c.pods.get(cl.pod)?.spec.nodeName ?? '?', echo, restricted, onprem };
        }),
      );
      if (rows.every((r) => verdict(r, c)) || Date.now() > deadline) break;
      await sleep(500);
      c = await readCluster(ds);
    }
    const ok = rows.every((r) => verdict(r, c));
    say(indent(ok ? `every client behaves as expected after ${((Date.now() - t0) / 1000).toFixed(1)} s` : `timed out after ${TIMEOUT_MS / 1000} s: not every client behaves as expected`));
    say();

    say(bold(`$ egw lab exec NS/POD -- curl -s http://DST/`) + `   for each client and DST (the echo server answers with the source it saw)`);
    say(indent(table(rows, c, addrs)));
    say(
      indent(
        `gateway = a ${GATEWAY} gateway pod's address (${c.gateways.map((g) => g.status?.podIP).join(', ')}, from the egress pool); node IP = the client's node (natOutgoing);\n` +
          `the restricted service's firewall admits only ${labCfg.external.restricted.allow.join(', ')}`,
      ),
    );
    say();

    say('# why tenant-b/client-b reaches the echo server through a gateway:');
    await step(['explain', '--pod', 'tenant-b/client-b', '--dst', addrs.echo], env);
    say();
    const traced = ok ? await auditDemo(env, LAB, addrs.echo) : true;
    if (!ok) {
      const bad = rows.filter((r) => !verdict(r, c)).map((r) => r.client.pod);
      say(`FAILED: unexpected traffic from ${bad.join(', ')}; lab logs in ${join(stateRoot, LAB, 'logs')}/${KEEP ? '' : ' (KEEP=1 keeps the lab to look)'}`);
      return 1;
    }
    return traced ? 0 : 1;
  } catch (e) {
    say();
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    if (!KEEP) process.stderr.write(`(KEEP=1 make demo keeps the lab up for a look)\n`);
    return 1;
  } finally {
    if (labStarted) {
      if (KEEP) {
        say(`the lab stays up (KEEP=1). Explore it with (export EGW_DATASTORE=${datastore}):`);
        say(`  egw lab status ${LAB}`);
        say(`  egw get pods -A -o wide`);
        say(`  egw lab exec tenant-a/client-a -- curl -s http://${addrs.echo}/`);
        say(`  egw explain --pod plain/client-plain --dst ${addrs.echo}`);
        say(`  egw flows -o wide; egw lab firewall --lab ${LAB}`);
        say(`  egw lab down ${LAB}`);
      } else {
        const r = await egw(['lab', 'down', LAB], env).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
        say(bold(`$ egw lab down ${LAB}`));
        if (r.code === 0) say(indent(r.stdout));
        else process.stderr.write(`lab down failed (exit ${r.code}): ${r.stderr.trim()}\n`);
        if (r.code !== 0) teardownFailed = true;
      }
    }
  }
}

let teardownFailed = false;
const code = await main();
process.exitCode = code || (teardownFailed ? 1 : 0);
