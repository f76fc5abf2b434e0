// Connection scale through one gateway (issue 14; docs/benchmarks.md, "Connection scale"): `make bench
// BENCH=connscale`, or `node --import tsx bench/connscale.ts` (root; `make build`). About 15 min.
//
// The lab of bench/paths.ts (one gateway `default/paths` on node-2, one egress IP). A process here may hold at most
// 20,000 open files (the hard limit, which root cannot raise in this sandbox), so both ends are split: `sinks` sink
// processes in the external namespace (bench/sink.ts, one port each: 198.51.100.10:7001…) and one connflood --hold
// per sink, from the three clients of the gateway in turn (via/client-other and via/client-extra on node-1,
// via/client-same on node-2), paced (`concurrency` connects at a time each: the first run, 64 each beside other
// load, had a third time out), so the gateway holds `total` connections (default 100,000) at once; each client's
// port range is widened to 1024–65535. Measured while they are held:
// the gateway process's and both agents' RSS and CPU, conntrack entries in the gateway's namespace, its metrics (SNAT
// ports in use per destination) and the EgressGateway's conditions.
// Then exhaustion: toward one destination the external host drops (198.51.100.10:7999), the three clients send
// `exhaust` SYNs in all (each attempt given up after 5 s): each leaves a SYN_SENT entry at the gateway that holds one
// of the egress IP's 64,512 source ports toward that destination, so past 64,512 the gateway cannot translate. The
// gateway namespace's SYN_SENT timeout is raised from 120 s to 600 s for this step only (the bench's SYN source is
// slower than 64,512 per 120 s on this machine); what happens at the limit does not depend on it. Measured: attempts, what the kernel counts (conntrack -S), and what egw shows (the Degraded condition
// SNATPortsExhausting, `egw_gateway_snat_ports_available`, the gateway's log).
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { conntrackCount } from '../src/audit/ctsource.js';
import { openStore } from '../src/datastore/open.js';
import { labNetns } from '../src/lab/index.js';
import { parseMetrics, scrape } from '../src/metrics/scrape.js';
import { readRecs } from '../test/audit/natlab.js';
import { canRun, podNetns, r2, readCluster, run, sleep, type Cluster } from './lablib.js';
import { pathsLab, type PathsLab } from './paths.js';
import { cpuOf, rssMiB, stopChild } from './proc.js';

export interface ConnScaleOptions {
  /** Connections held at once through the gateway (default 100,000). */
  total?: number;
  /** Sink processes (ports) they spread over (default 6: under 17,000 each). */
  sinks?: number;
  /** SYNs toward the dropped destination, in all (default 130,000: at ~850/s, past the 64,512 ports in ~80 s). */
  exhaust?: number;
  /** Connects at a time per flood while opening (default 24). */
  concurrency?: number;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FLOOD = join(ROOT, 'test', 'helpers', 'connflood.ts');
const CLIENTS = ['via/client-other', 'via/client-extra', 'via/client-same'] as const;
const SINK = join(ROOT, 'bench', 'sink.ts');
const DROPPED_PORT = 7999;

/** The processes of the lab: pid by what its command line says. */
function findPid(pred: (argv: string[]) => boolean): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (pred(argv)) return Number(d);
    } catch {
      // gone
    }
  }
  return undefined;
}

interface Flood {
  child: ChildProcess;
  rec: string;
  done: Promise<void>;
}

/** connflood in a client namespace (--hold: keeps what it made); records per connection in `rec`. */
function hold(netns: string, to: string, count: number, rec: string, durationS: number, extra: string[], concurrency: number): Flood {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '--import', 'tsx', FLOOD, '--to', to, '--mode', 'line', '--count', String(count), '--concurrency', String(concurrency), '--duration', String(durationS), ...extra, '--record', rec], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
  const done = new Promise<void>((res) => child.on('close', () => res()));
  void done.then(() => {
    if (child.exitCode && child.exitCode !== 0) process.stderr.write(`bench connscale: connflood ${to} from ${netns} exited ${child.exitCode}: ${err.trim()}\n`);
  });
  return { child, rec, done };
}

const tally = (rec: string) => {
  const rs = readRecs(rec);
  const errors: Record<string, number> = {};
  for (const r of rs) if (!r.ok) errors[(r as { error?: string }).error ?? '?'] = (errors[(r as { error?: string }).error ?? '?'] ?? 0) + 1;
  return { ok: rs.filter((r) => r.ok).length, failed: rs.filter((r) => !r.ok).length, errors };
};

/** The namespace's conntrack entries, by the one reader of them (src/audit/ctsource.ts). */
const ctEntries = (netns: string): Promise<number> => conntrackCount({ wrap: ['ip', 'netns', 'exec', netns] });

export async function benchConnScale(opts: ConnScaleOptions = {}): Promise<Record<string, unknown>> {
  const why = await canRun();
  if (why) return { skipped: why };
  const total = opts.total ?? 100_000;
  const nSinks = opts.sinks ?? 6;
  const exhaust = opts.exhaust ?? 130_000;
  const concurrency = opts.concurrency ?? 24;
  const floods: Flood[] = [];
  const sinks: ChildProcess[] = [];
  let pl: PathsLab | undefined;
  try {
    pl = await pathsLab('tc');
    const { lab, cfg, tmp, datastore, stateRoot } = pl;
    let c: Cluster = pl.c;
    const netnsOf = (pod: string) => podNetns(c, pod);
    for (const deadline = Date.now() + 30_000; !CLIENTS.every((p) => netnsOf(p)); ) {
      if (Date.now() > deadline) throw new Error('via/client-extra not running after 30 s');
      await sleep(300);
      c = await readCluster(datastore);
    }
    const gw = c.gateways.find((p) => p.status?.phase === 'Running')!;
    const gwNetns = gw.metadata.annotations!['egw.dev/netns']!;
    const gwKey = `${gw.metadata.namespace}/${gw.metadata.name}`;
    // ours only: their command lines name this lab's datastore (a file in our own temporary directory)
    const ours = (a: string[]) => a.includes(datastore);
    const gwPid = findPid((a) => ours(a) && a.includes('gateway') && a.includes(gwKey));
    const agentPids = Object.fromEntries(cfg.nodes.map((n) => [n.name, findPid((a) => ours(a) && a.includes('agent') && a.includes(n.name))]));
    if (!gwPid) throw new Error(`the gateway process of ${gwKey} not found`);
    const ext = labNetns.ext(lab);
    const ports = Array.from({ length: nSinks }, (_, k) => 7001 + k);
    for (const port of ports) sinks.push(spawn('ip', ['netns', 'exec', ext, process.execPath, '--import', 'tsx', SINK, '--port', String(port)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] }));
    await run(['ip', 'netns', 'exec', ext, 'nft', '-f', '-'], { input: `table ip egwbench {\n  chain in {\n    type filter hook input priority 0;\n    tcp dport ${DROPPED_PORT} drop\n  }\n}\n` });
    for (const deadline = Date.now() + 20_000; ; ) {
      const r = await run(['ip', 'netns', 'exec', ext, 'ss', '-Htln']);
      if (ports.every((p) => r.stdout.includes(`:${p} `))) break;
      if (Date.now() > deadline) throw new Error(`the sinks do not listen in ${ext}`);
      await sleep(200);
    }
    // not the clients' own source ports: 64,512 per destination
    for (const p of CLIENTS) await run(['ip', 'netns', 'exec', netnsOf(p)!, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65535']);
    const socket = join(stateRoot, lab, 'metrics', `gateway-${gw.metadata.namespace}.${gw.metadata.name}.sock`);
    const metrics = async () => parseMetrics(await scrape(`unix:${socket}`, 10_000));

    const dests = ports.map((p) => `${cfg.external.echo}:${p}`);
    const cpu0 = { gw: cpuOf(gwPid), agents: Object.fromEntries(Object.entries(agentPids).map(([n, p]) => [n, cpuOf(p)])) };
    const t0 = Date.now();
    const holdS = 1800;
    // one flood per sink (each under 20,000 open files), from the clients in turn
    const per = Math.ceil(total / dests.length);
    dests.forEach((d, i) => floods.push(hold(netnsOf(CLIENTS[i % CLIENTS.length])!, d, per, join(tmp, `hold-${i}.jsonl`), holdS, ['--hold'], concurrency)));
    const target = per * dests.length;
    let held = 0;
    for (const deadline = Date.now() + 900_000; ; ) {
      held = floods.reduce((a, f) => a + readRecs(f.rec).filter((r) => r.ok).length, 0);
      const finished = floods.reduce((a, f) => a + readRecs(f.rec).length, 0);
      if (finished >= target || Date.now() > deadline) break;
      await sleep(2000);
    }
    const openedInS = r2((Date.now() - t0) / 1000);
    await sleep(3000); // the recorder and the metrics catch up
    const m = await metrics();
    const portUse = m.filter((s) => s.name === 'egw_gateway_snat_ports_in_use').map((s) => ({ destination: s.labels.destination, inUse: s.value }));
    const cpu1 = { gw: cpuOf(gwPid), agents: Object.fromEntries(Object.entries(agentPids).map(([n, p]) => [n, cpuOf(p)])) };
    const cpuS = (a: ReturnType<typeof cpuOf>, b: ReturnType<typeof cpuOf>) => (a && b ? r2(b.own + b.children - a.own - a.children) : null);
    const atScale = {
      held,
      wanted: target,
      openedInS,
      failed: floods.map((f) => tally(f.rec)).reduce((a, t) => a + t.failed, 0),
      gatewayConntrack: await ctEntries(gwNetns),
      portsInUse: portUse,
      gateway: { rssMiB: rssMiB(gwPid), cpuS: cpuS(cpu0.gw, cpu1.gw) },
      agents: Object.fromEntries(Object.entries(agentPids).map(([n, p]) => [n, { rssMiB: rssMiB(p), cpuS: cpuS(cpu0.agents[n] ?? null, cpu1.agents[n] ?? null) }])),
      conditions: await egwConditions(datastore),
    };

    // exhaustion: SYNs toward a destination the external host drops, past the 64,512 ports of the egress IP
    const dropped = `${cfg.external.echo}:${DROPPED_PORT}`;
    await run(['ip', 'netns', 'exec', gwNetns, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_tcp_timeout_syn_sent=600']);
    const exFloods = CLIENTS.map((p, k) => hold(netnsOf(p)!, dropped, Math.ceil(exhaust / CLIENTS.length), join(tmp, `exhaust-${k}.jsonl`), 300, [], 2000));
    floods.push(...exFloods);
    const exStart = Date.now();
    // while it runs: when the condition turns Degraded, and the port use then (what an operator sees, and when)
    const timeline: { s: number; inUse: number | null; available: number | null; degraded: string | null }[] = [];
    for (const deadline = Date.now() + 330_000; exFloods.some((f) => f.child.exitCode === null) && Date.now() < deadline; ) {
      await sleep(10_000);
      const mm = await metrics().catch(() => []);
      const pick = (name: string) => mm.find((x) => x.name === name && x.labels.destination === dropped)?.value ?? null;
      const cond = ((await egwConditions(datastore)) as string[]).find((x) => x.startsWith('Degraded=')) ?? null;
      timeline.push({ s: r2((Date.now() - exStart) / 1000), inUse: pick('egw_gateway_snat_ports_in_use'), available: pick('egw_gateway_snat_ports_available'), degraded: cond });
    }
    const exSeconds = r2((Date.now() - exStart) / 1000);
    await sleep(3000);
    const m2 = await metrics();
    const toFirst = (name: string) => m2.find((s) => s.name === name && s.labels.destination === dropped)?.value ?? null;
    const gwLog = join(stateRoot, lab, 'logs');
    const logLines = (() => {
      try {
        return readdirSync(gwLog)
          .filter((f) => f.includes(gw.metadata.name))
          .flatMap((f) => readFileSync(join(gwLog, f), 'utf8').split('\n'))
          .filter((l) => /port/i.test(l))
          .slice(-5);
      } catch {
        return [];
      }
    })();
    const exTally = exFloods.map((f) => tally(f.rec));
    const exhaustion = {
      destination: dropped,
      attempted: exTally.reduce((a, t) => a + t.ok + t.failed, 0),
      seconds: exSeconds,
      errors: exTally.reduce((a, t) => {
        for (const [k, v] of Object.entries(t.errors)) a[k] = (a[k] ?? 0) + v;
        return a;
      }, {} as Record<string, number>),
      toDestination: { inUse: toFirst('egw_gateway_snat_ports_in_use'), available: toFirst('egw_gateway_snat_ports_available') },
      timeline,
      conditions: await egwConditions(datastore),
      gatewayLog: logLines,
      gatewayConntrack: await ctEntries(gwNetns),
      // the kernel's own count of translated entries toward that destination (one line each), against egw's
      kernelToDestination: Number((await run(['ip', 'netns', 'exec', gwNetns, 'sh', '-c', `conntrack -L -p tcp --dport ${DROPPED_PORT} --src-nat 2>/dev/null | wc -l`], { timeoutMs: 60_000 })).stdout.trim()),
      flowGaps: m2.filter((x) => x.name === 'egw_flow_gaps_total').reduce((a, x) => a + x.value, 0),
      kernelStats: (await run(['ip', 'netns', 'exec', gwNetns, 'conntrack', '-S'])).stdout.trim().split('\n'),
    };
    return { scenario: { lab, gateway: gwKey, egressIp: gw.status?.podIP, destinations: dests, perFlood: per, concurrency, clients: CLIENTS }, atScale, exhaustion };
  } catch (e) {
    process.stderr.write(`bench connscale: ${(e as Error).message}\n`);
    return { error: (e as Error).message };
  } finally {
    for (const f of floods) await stopChild(f.child, 'SIGTERM', 5000);
    for (const k of sinks) await stopChild(k, 'SIGTERM', 5000);
    await pl?.down();
  }
}

async function egwConditions(datastore: string): Promise<unknown> {
  const store = await openStore(datastore);
  try {
    const o = await store.get({ kind: 'EgressGateway', namespace: 'default', name: 'paths' });
    return ((o?.status as { conditions?: { type: string; status: string; reason?: string; message?: string }[] } | undefined)?.conditions ?? []).map((x) => `${x.type}=${x.status} ${x.reason ?? ''}: ${x.message ?? ''}`);
  } finally {
    await store.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchConnScale(), null, 2));
}
