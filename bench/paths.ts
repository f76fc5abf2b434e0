// The path's cost, side by side (issue 14): `make bench BENCH=paths`, or `node --import tsx bench/paths.ts` (root;
// ip, nft, iperf3, curl; `make build`: the lab runs bin/egw.js).
//
// A lab of its own (`tp<hex>`: examples/lab/demo.yaml under another name, node-2 labelled as the gateway's node), one
// EgressGateway `paths` with one replica on node-2, and three clients of the same image:
//   direct       plain/client-direct on node-1: no egress config, its node masquerades (node SNAT);
//   gw-same      via/client-same on node-2: through the gateway on its own node (no tunnel on the underlay);
//   gw-other     via/client-other on node-1: through the gateway on the other node (VXLAN over the underlay).
// Per round, each path in turn (the order rotates each round, so none always runs on a warmer machine):
//   goodput1     iperf3 -t S, one stream, to the external host;
//   goodput4     iperf3 -P 4;
//   connRate     new TCP connections per second, one short HTTP request each, no keep-alive
//                (test/helpers/connflood.ts, 8 at a time), with the p50/p99 of request latency (connect to answer);
//   rtt          request/response round trips on one connection to the line echo (bench/rtt.ts): p50/p99.
// 5 rounds; medians per path, and every figure's ratio to direct. Targets (issue 14): goodput1 ≥ 0.85 of direct,
// connections/s ≥ 0.8, p99 request latency ≤ 1.5×. The lab is always torn down.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { labDown, labNetns, labUp, loadLabFile, type LabConfig } from '../src/lab/index.js';
import { labStateDir, stateFiles } from '../src/lab/names.js';
import { rpsMask } from '../src/gateway/plan.js';
import { createLogger } from '../src/log.js';
import { canRun, iperf, listening, median, podNetns, r2, readCluster, run, sleep, sourceSeen, startEcho, startServer, stopServer, type Cluster, type IperfServer } from './lablib.js';

export interface PathsBenchOptions {
  rounds?: number;
  /** Seconds of each iperf3 run and each connection-rate run (default 3). */
  seconds?: number;
  /** Round trips measured per rtt run (default 2000). */
  rttCount?: number;
  /**
   * An experiment (docs/benchmarks.md, "Gateway path experiments"): each round measures every path without it and
   * with it (its nft table added to every node and gateway namespace, removed again), so the two compare in one run.
   * `EGW_BENCH_PATHS_EXPERIMENT=NAME` chooses one from the command line.
   */
  experiment?: string;
}

/** A command run in every node and gateway namespace, with its input. */
interface ExpStep {
  argv: string[];
  input?: string;
  /** Exits non-zero when there is nothing to undo: fine. */
  mayFail?: boolean;
  /** Only in the nodes' or only in the gateways' namespaces (default: both). */
  where?: 'nodes' | 'gateways';
}
/** Candidate per-packet changes, tried here before they go into the data plane (src/dataplane, src/gateway). */
const EXPERIMENTS: Record<string, { on: ExpStep[]; off: ExpStep[] }> = {
  // `notrack` (the tunnel's outer UDP packets skip conntrack at raw priority; measured 2026-12-03 and -04, and by hand
  // on 2026-12-04 with the recorders' kernel filter) is kept: the agent and the gateway write it themselves now
  // (src/dataplane/nft.ts tunnelNotrackChains, src/gateway/nft.ts).
  // GRO and UDP GRO forwarding on every veth end in the namespace (eth0 and the pods' host ends)
  gro: {
    on: [{ argv: ['sh', '-c', 'for d in $(ls /sys/class/net); do case $d in lo|egw.vxlan) ;; *) ethtool -K $d gro on rx-udp-gro-forwarding on 2>/dev/null ;; esac; done; true'] }],
    off: [{ argv: ['sh', '-c', 'for d in $(ls /sys/class/net); do case $d in lo|egw.vxlan) ;; *) ethtool -K $d gro off rx-udp-gro-forwarding off 2>/dev/null ;; esac; done; true'] }],
  },
  // Receive packet steering on the gateway's devices (`rps-gw`, measured on 2026-12-03, docs/benchmarks.md) is kept:
  // the gateway sets it itself now (src/gateway/plan.ts). A veth hands a packet to the backlog of the CPU that sent
  // it, so when the sender moves between CPUs one flow's packets wait in two backlogs and arrive out of order (the
  // receiver's OFO queue, the sender's DSACKed fast retransmits); RPS puts each flow on one CPU by its hash.
  // `rps`: the same on every device of the nodes' namespaces too (the lab's veths, which egw does not own).
  rps: { on: [rps(true)], off: [rps(false)] },
  // `rps-one` (measured on 2026-12-04) is kept too: each of the gateway's queues on one CPU, not every CPU it may run
  // on — with several, the flow's hash may pick the sender's CPU, and the forwarding then waits behind the sender.
};

function rps(on: boolean): ExpStep {
  const mask = on ? rpsMask(availableParallelism()) : '0';
  // nodes only: a gateway sets its own devices (and would put them back)
  return { argv: ['sh', '-c', `r=0; for f in /sys/class/net/*/queues/rx-*/rps_cpus; do echo ${mask} > $f || r=1; done; exit $r`], where: 'nodes' };
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LAB_FILE = join(ROOT, 'examples', 'lab', 'demo.yaml');
const FLOOD = join(ROOT, 'test', 'helpers', 'connflood.ts');
const RTT = join(ROOT, 'bench', 'rtt.ts');
const GW_NODE_LABEL = 'egw.dev/bench-gateway-node';

// Each path has servers of its own in the external namespace: iperf3 on `port`, an echo (HTTP on `http`, the line
// echo on `line`). Not only for iperf3: the server keeps a closed connection's tuple in TIME_WAIT for 60 s, and the
// two gateway paths leave from one egress IP. Toward one server port, the second path's new connections met the
// first one's tuples (the kernel's NAT reuses a source port its conntrack has freed early) with another TCP
// timestamp clock, and the server refused 0.4–4% of them at once (PAWS: an ACK of the old connection, the client's
// RST, its SYN again after 1 s: docs/kernel.md, "Sharing an egress IP toward one server"). That is what sharing one
// egress IP costs, measured there, not what a path costs: the direct path's node IP has one client here.
const PATHS = [
  { name: 'direct', pod: 'plain/client-direct', node: 'node-1', port: 5201, http: 8081, line: 7081 },
  { name: 'gw-same', pod: 'via/client-same', node: 'node-2', port: 5202, http: 8082, line: 7082 },
  { name: 'gw-other', pod: 'via/client-other', node: 'node-1', port: 5203, http: 8083, line: 7083 },
] as const;
type PathName = (typeof PATHS)[number]['name'];

function scenario(): string {
  const pod = (ns: string, name: string, node: string) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  nodeName: ${node}\n  containers: [{name: client, image: busybox}]\n`;
  return [
    'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {egressIPSupport: EnabledPerNamespaceOrPerPod}\n',
    "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: egress-paths}\nspec: {cidr: 10.10.10.0/30, blockSize: 31, nodeSelector: '!all()', natOutgoing: false}\n",
    `apiVersion: operator.tigera.io/v1\nkind: EgressGateway\nmetadata: {name: paths, namespace: default}\nspec:\n  replicas: 1\n  ipPools: [{name: egress-paths}]\n  template:\n    metadata: {labels: {egress-code: paths}}\n    spec:\n      nodeSelector: {${GW_NODE_LABEL}: 'true'}\n`,
    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: via\n  annotations:\n    egress.projectcalico.org/selector: \"egress-code == 'paths'\"\n    egress.projectcalico.org/namespaceSelector: \"projectcalico.org/name == 'default'\"\n",
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n',
    ...PATHS.map((p) => pod(p.pod.split('/')[0]!, p.pod.split('/')[1]!, p.node)),
    // a second client beside gw-other, for the connection-scale bench (bench/connscale.ts)
    pod('via', 'client-extra', 'node-1'),
  ].join('---\n');
}

interface RateResult {
  perS: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
}
interface RttResult {
  p50Us: number;
  p99Us: number;
}

async function connRate(netns: string, echo: string, port: number, seconds: number, tmp: string): Promise<RateResult> {
  const rec = join(tmp, `flood-${netns}-${Date.now()}.jsonl`);
  const r = await run(['ip', 'netns', 'exec', netns, process.execPath, '--import', 'tsx', FLOOD, '--to', `${echo}:${port}`, '--duration', String(seconds), '--concurrency', '8', '--record', rec], { timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connflood from ${netns}: exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  const out = JSON.parse(r.stdout) as { made: number; failed: number; rate: number };
  const lat = readFileSync(rec, 'utf8')
    .split('\n')
    .filter((l) => l.endsWith('}'))
    .map((l) => JSON.parse(l) as { start: number; end: number; ok: boolean })
    .filter((x) => x.ok)
    .map((x) => x.end - x.start)
    .sort((a, b) => a - b);
  rmSync(rec, { force: true });
  const q = (p: number) => r2(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN);
  return { perS: Math.round(out.rate), p50Ms: q(0.5), p99Ms: q(0.99), failed: out.failed };
}

async function rtt(netns: string, echo: string, port: number, count: number): Promise<RttResult> {
  const r = await run(['ip', 'netns', 'exec', netns, process.execPath, '--import', 'tsx', RTT, '--to', `${echo}:${port}`, '--count', String(count)], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`rtt from ${netns}: exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  return JSON.parse(r.stdout) as RttResult;
}

interface Round {
  goodput1Gbps: number;
  goodput4Gbps: number;
  retransmits1: number;
  connRate: RateResult;
  rtt: RttResult;
}

/** Waits until each client's traffic leaves as its path says: the gateway's IP for the two gateway paths, its node's IP for direct. */
async function ready(datastore: string, echo: string, lab: string): Promise<Cluster> {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const c = await readCluster(datastore);
    const gw = c.gateways.find((p) => p.status?.phase === 'Running' && p.status.podIP);
    const ns = PATHS.map((p) => podNetns(c, p.pod));
    if (gw && gw.spec.nodeName === 'node-2' && ns.every(Boolean)) {
      const seen = await Promise.all(ns.map((n) => sourceSeen(n!, echo)));
      const want = [c.nodeIPs.get('node-1'), gw.status!.podIP, gw.status!.podIP];
      if (seen.every((s, i) => s !== undefined && s === want[i])) return c;
    }
    if (Date.now() > deadline) throw new Error(`lab ${lab}: the gateway on node-2 or the clients' paths not ready after 45 s`);
    await sleep(300);
  }
}

export async function benchPaths(opts: PathsBenchOptions = {}): Promise<Record<string, unknown>> {
  const why = await canRun();
  if (why) return { skipped: why };
  const rounds = opts.rounds ?? 5;
  const seconds = opts.seconds ?? 3;
  const rttCount = opts.rttCount ?? 2000;
  const servers = new Map<PathName, IperfServer>();
  const echoes: IperfServer[] = [];
  let pl: PathsLab | undefined;
  try {
    pl = await pathsLab('tp');
    const { lab, cfg, c, tmp } = pl;
    const ext = labNetns.ext(lab);
    for (const p of PATHS) servers.set(p.name, startServer(ext, p.port));
    for (const p of PATHS) echoes.push(startEcho(ext, p.http, p.line));
    const listenDeadline = Date.now() + 15_000;
    for (const p of PATHS) {
      for (const [port, what] of [[p.port, `iperf3 -s -p ${p.port}`], [p.http, `egw lab echo --http-port ${p.http}`], [p.line, `egw lab echo --tcp-port ${p.line}`]] as const) {
        while (!(await listening(ext, port))) {
          if (Date.now() > listenDeadline) throw new Error(`${what} does not listen in ${ext}`);
          await sleep(100);
        }
      }
    }
    const results = new Map<PathName, Round[]>(PATHS.map((p) => [p.name, []]));
    const withExp = new Map<PathName, Round[]>(PATHS.map((p) => [p.name, []]));
    const experiment = opts.experiment ?? process.env.EGW_BENCH_PATHS_EXPERIMENT;
    if (experiment !== undefined && !(experiment in EXPERIMENTS)) throw new Error(`EGW_BENCH_PATHS_EXPERIMENT=${experiment}: expected one of ${Object.keys(EXPERIMENTS).join(', ')}`);
    const gwNs = c.gateways.map((g) => g.metadata.annotations!['egw.dev/netns']!);
    const expNs = [...cfg.nodes.map((n) => labNetns.node(lab, n.name)), ...gwNs];
    const setExperiment = async (on: boolean) => {
      for (const ns of expNs) {
        for (const st of EXPERIMENTS[experiment!]![on ? 'on' : 'off']) {
          if (st.where !== undefined && (st.where === 'gateways') !== gwNs.includes(ns)) continue;
          const r = await run(['ip', 'netns', 'exec', ns, ...st.argv], st.input === undefined ? {} : { input: st.input });
          if (r.code !== 0 && !st.mayFail) throw new Error(`experiment ${experiment} ${on ? 'on' : 'off'} in ${ns}: ${st.argv.join(' ')}: ${r.stderr.trim()}`);
        }
      }
    };
    for (let i = 0; i < rounds * (experiment ? 2 : 1); i++) {
      const on = experiment !== undefined && i % 2 === 1;
      if (experiment) await setExperiment(on);
      const order = PATHS.map((_, k) => PATHS[(k + Math.floor(i / (experiment ? 2 : 1))) % PATHS.length]!);
      for (const p of order) {
        const netns = podNetns(c, p.pod)!;
        const server = servers.get(p.name)!;
        const where = `${p.name}, round ${i + 1}${experiment ? ` (${experiment} ${on ? 'on' : 'off'})` : ''}`;
        const g1 = await iperf(netns, server, cfg.external.echo, p.port, seconds, 1).catch((e: Error) => Promise.reject(new Error(`${where}: ${e.message}`)));
        const g4 = await iperf(netns, server, cfg.external.echo, p.port, seconds, 4).catch((e: Error) => Promise.reject(new Error(`${where}: ${e.message}`)));
        const rate = await connRate(netns, cfg.external.echo, p.http, seconds, tmp);
        const rt = await rtt(netns, cfg.external.echo, p.line, rttCount);
        (on ? withExp : results).get(p.name)!.push({ goodput1Gbps: r2(g1.gbps), goodput4Gbps: r2(g4.gbps), retransmits1: g1.retransmits, connRate: rate, rtt: { p50Us: rt.p50Us, p99Us: rt.p99Us } });
      }
    }
    const med = (rs: Round[]) => ({
      goodput1Gbps: r2(median(rs.map((r) => r.goodput1Gbps))),
      goodput4Gbps: r2(median(rs.map((r) => r.goodput4Gbps))),
      retransmits1: median(rs.map((r) => r.retransmits1)),
      connPerS: Math.round(median(rs.map((r) => r.connRate.perS))),
      reqP50Ms: r2(median(rs.map((r) => r.connRate.p50Ms))),
      reqP99Ms: r2(median(rs.map((r) => r.connRate.p99Ms))),
      rttP50Us: Math.round(median(rs.map((r) => r.rtt.p50Us))),
      rttP99Us: Math.round(median(rs.map((r) => r.rtt.p99Us))),
      failedConnections: rs.reduce((a, r) => a + r.connRate.failed, 0),
    });
    const medians = Object.fromEntries(PATHS.map((p) => [p.name, med(results.get(p.name)!)])) as Record<PathName, ReturnType<typeof med>>;
    const d = medians.direct;
    const ratio = (m: ReturnType<typeof med>) => ({
      goodput1: r2(m.goodput1Gbps / d.goodput1Gbps),
      goodput4: r2(m.goodput4Gbps / d.goodput4Gbps),
      connPerS: r2(m.connPerS / d.connPerS),
      reqP50: r2(m.reqP50Ms / d.reqP50Ms),
      reqP99: r2(m.reqP99Ms / d.reqP99Ms),
      rttP50: r2(m.rttP50Us / d.rttP50Us),
      rttP99: r2(m.rttP99Us / d.rttP99Us),
    });
    const ratios = { 'gw-same': ratio(medians['gw-same']), 'gw-other': ratio(medians['gw-other']) };
    const meets = (r: ReturnType<typeof ratio>) => ({ goodput1: r.goodput1 >= 0.85, connPerS: r.connPerS >= 0.8, reqP99: r.reqP99 <= 1.5 });
    return {
      scenario: { lab, rounds, seconds, rttCount, server: `${cfg.external.echo} in ${ext}`, serverPorts: Object.fromEntries(PATHS.map((p) => [p.name, { iperf3: p.port, http: p.http, line: p.line }])), kernel: release(), clients: Object.fromEntries(PATHS.map((p) => [p.name, `${p.pod} on ${p.node}`])), gateway: 'default/paths, 1 replica on node-2' },
      medians,
      ratiosToDirect: ratios,
      targets: { goodput1: '>= 0.85', connPerS: '>= 0.8', reqP99: '<= 1.5', met: { 'gw-same': meets(ratios['gw-same']), 'gw-other': meets(ratios['gw-other']) } },
      rounds: Object.fromEntries(PATHS.map((p) => [p.name, results.get(p.name)])),
      ...(experiment
        ? {
            experiment: {
              name: experiment,
              steps: EXPERIMENTS[experiment],
              medians: Object.fromEntries(PATHS.map((p) => [p.name, med(withExp.get(p.name)!)])),
              ratioWithToWithout: Object.fromEntries(
                PATHS.map((p) => {
                  const a = med(withExp.get(p.name)!);
                  const b = medians[p.name];
                  return [p.name, { goodput1: r2(a.goodput1Gbps / b.goodput1Gbps), goodput4: r2(a.goodput4Gbps / b.goodput4Gbps), connPerS: r2(a.connPerS / b.connPerS), reqP99: r2(a.reqP99Ms / b.reqP99Ms), rttP50: r2(a.rttP50Us / b.rttP50Us) }];
                }),
              ),
            },
          }
        : {}),
    };
  } catch (e) {
    process.stderr.write(`bench paths: ${(e as Error).message}\n`);
    if (pl) process.stderr.write(healthLines(labStateDir(pl.lab, pl.stateRoot)));
    return { error: (e as Error).message };
  } finally {
    for (const s of [...servers.values(), ...echoes]) await stopServer(s);
    await pl?.down();
  }
}

/** After a failure: the lab's log lines about gateway health and routes (why a path went unreachable). */
function healthLines(dir: string): string {
  const logs = stateFiles.logs(dir);
  let out = '';
  let names: string[] = [];
  try {
    names = readdirSync(logs).filter((f) => f.endsWith('.log'));
  } catch {
    return '';
  }
  for (const f of names) {
    const hits = readFileSync(join(logs, f), 'utf8')
      .split('\n')
      .filter((l) => /down|not ready|unreach|heartbeat|WARN|ERROR/i.test(l))
      .slice(-8);
    if (hits.length) out += `--- ${f}\n${hits.join('\n')}\n`;
  }
  return out;
}

/** The bench's lab, up with the scenario applied and every client's path checked (see the top of this file). */
export interface PathsLab {
  lab: string;
  tmp: string;
  stateRoot: string;
  datastore: string;
  cfg: LabConfig;
  c: Cluster;
  down(): Promise<void>;
}

/** Brings the lab up (`<prefix><hex>`); on failure it is taken down again before the error is thrown. */
export async function pathsLab(prefix: string): Promise<PathsLab> {
  const lab = `${prefix}${randomBytes(3).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), `egw-bench-${lab}-`));
  const stateRoot = join(tmp, 'state');
  const file = join(tmp, 'lab.yaml');
  writeFileSync(
    file,
    readFileSync(LAB_FILE, 'utf8')
      .replace(/^name:\s*\S+/m, `name: ${lab}`)
      .replace('- {name: node-2, labels: {kubernetes.io/os: linux}}', `- {name: node-2, labels: {kubernetes.io/os: linux, ${GW_NODE_LABEL}: 'true'}}`),
  );
  const cfg = loadLabFile(file);
  if (cfg.nodes.find((n) => n.name === 'node-2')?.labels[GW_NODE_LABEL] !== 'true') throw new Error(`bench: ${LAB_FILE} no longer has the node-2 line this bench labels`);
  const scenarioFile = join(tmp, 'paths.yaml');
  writeFileSync(scenarioFile, scenario());
  const datastore = `sqlite:${join(tmp, 'egw.db')}`;
  const log = createLogger(`bench ${lab}`, { level: 'warn' });
  const down = async () => {
    await labDown({ name: lab, stateRoot, log }).catch((e: Error) => process.stderr.write(`bench: lab down ${lab}: ${e.message}\n`));
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    await labUp({ file, datastore, stateRoot, log });
    const env = { ...process.env, EGW_DATASTORE: datastore, EGW_LAB_DIR: stateRoot };
    const applied = await run([process.execPath, join(ROOT, 'bin', 'egw.js'), 'apply', '-f', scenarioFile], { env, timeoutMs: 30_000 });
    if (applied.code !== 0) throw new Error(`egw apply -f ${scenarioFile}: ${applied.stderr.trim()}`);
    const c = await ready(datastore, cfg.external.echo, lab);
    return { lab, tmp, stateRoot, datastore, cfg, c, down };
  } catch (e) {
    await down();
    throw e;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchPaths(), null, 2));
}
