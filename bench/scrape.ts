// A gateway's /metrics with 100,000 tracked connections (issue 12; docs/observability.md, "Cost of a scrape"):
// `make bench BENCH=observability` (the scrape part), or `node --import tsx bench/scrape.ts` (root; ip, nft, conntrack).
//
// The masquerading topology of the audit tests (test/audit/natlab.ts: client → router that masquerades → server),
// namespaces `egw-sb<hex>-{c,r,s}`, removed at the end (also on failure). In the router namespace the flow recorder
// runs as a gateway runs it (bench/flows-recorder.ts) and serves the gateway's metrics (gatewayMetrics: SNAT port use
// from the recorder's open connections, the namespace's conntrack count) on a unix socket. The client sends one UDP
// datagram per flow (bench/udpflows.ts) to 20 ports of the server, which drops them (no ICMP back); the router's UDP
// timeout is raised so that all 100,000 stay tracked, each an open connection of the recorder.
//
//   1. scrape    GET /metrics over the socket, as Prometheus does, sequentially: p50/p99 with the recorder empty and
//                with 100,000 open connections, alternating rounds with the baseline;
//   2. baseline  `conntrack -C` in the router namespace (the kernel's own count, one process per call) in the same
//                rounds: p50/p99, and the ratio scrape/baseline;
//   3. context   one `conntrack -L` of the table (what a scrape that dumped would cost), the recorder's RSS and CPU per
//                scrape, and the values the scrape reported (entries, ports in use, series) against what was sent.
import { type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CONNTRACK, CT_DUMP_ARGS, conntrackCount } from '../src/audit/ctsource.js';
import { parseMetrics, scrape } from '../src/metrics/scrape.js';
import { NatLab } from '../test/audit/natlab.js';
import { RecorderProc, type Stats } from './flows.js';
import { cpuOf, onPath, rssMiB, runTimed, stopChild } from './proc.js';

export interface ScrapeBenchOptions {
  /** Tracked connections (default 100,000). */
  flows?: number;
  /** Destination ports they spread over (default 20: 5,000 connections per destination, far from exhaustion). */
  ports?: number;
  /** Flows per second the client sends (default 2,500; faster, the event socket overflows and dumps recover them). */
  rate?: number;
  rounds?: number;
  /** Scrapes and `conntrack -C` calls per round. */
  perRound?: number;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const UDPFLOWS = join(ROOT, 'bench/udpflows.ts');
const BASE_PORT = 20000;

const r2 = (x: number): number => Math.round(x * 100) / 100;
function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}
const summary = (xs: number[]) => ({ n: xs.length, p50Ms: r2(pct(xs, 0.5)), p99Ms: r2(pct(xs, 0.99)), maxMs: r2(Math.max(...xs)) });

function canRun(): string | null {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root';
  for (const tool of ['ip', 'nft', CONNTRACK]) if (!onPath(tool)) return `needs ${tool}`;
  return null;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** `conntrack -C` in the router namespace (src/audit/ctsource.ts; nsenter execs conntrack: one process per count). */
const conntrackC = (lab: NatLab): Promise<number> => conntrackCount({ wrap: ['nsenter', `--net=/run/netns/${lab.router}`] });

/** Alternating rounds: perRound scrapes, then perRound `conntrack -C`. */
async function measure(lab: NatLab, rec: RecorderProc, target: string, rounds: number, perRound: number): Promise<{ scrape: number[]; baseline: number[]; body: string; stalls: Stalls }> {
  const scrapes: number[] = [];
  const baseline: number[] = [];
  let body = '';
  const stalls = { gcMaxMs: 0, loopDelayMaxMs: 0 };
  const seen = new Set<number>();
  const look = () => {
    const l = rec.last as (Stats & Partial<Stalls>) | null;
    if (!l || seen.has(l.at)) return;
    seen.add(l.at);
    stalls.gcMaxMs = Math.max(stalls.gcMaxMs, l.gcMaxMs ?? 0);
    stalls.loopDelayMaxMs = Math.max(stalls.loopDelayMaxMs, l.loopDelayMaxMs ?? 0);
  };
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < perRound; i++) scrapes.push(await timed(async () => (body = await scrape(target, 10_000)))), look();
    for (let i = 0; i < perRound; i++) baseline.push(await timed(() => conntrackC(lab))), look();
  }
  return { scrape: scrapes, baseline, body, stalls };
}

/** The recorder's longest GC pause and event-loop delay seen while measuring (bench/flows-recorder.ts). */
interface Stalls {
  gcMaxMs: number;
  loopDelayMaxMs: number;
}

function reported(body: string): { conntrackEntries: number | null; portsInUse: number; destinations: number; seriesInUse: number; bytes: number } {
  const samples = parseMetrics(body);
  const inUse = samples.filter((s) => s.name === 'egw_gateway_snat_ports_in_use');
  const entries = samples.find((s) => s.name === 'egw_gateway_conntrack_entries')?.value;
  return {
    conntrackEntries: entries ?? null,
    portsInUse: inUse.reduce((a, s) => a + s.value, 0),
    destinations: new Set(inUse.map((s) => s.labels.destination)).size,
    seriesInUse: inUse.length,
    bytes: Buffer.byteLength(body),
  };
}

export async function benchScrape(opts: ScrapeBenchOptions = {}): Promise<Record<string, unknown>> {
  const why = canRun();
  if (why) return { skipped: why };
  const flows = opts.flows ?? 100_000;
  const ports = opts.ports ?? 20;
  const rate = opts.rate ?? 2_500;
  const rounds = opts.rounds ?? 5;
  const perRound = opts.perRound ?? 40;
  const lab = new NatLab('sb');
  const children = new Set<ChildProcess>();
  try {
    await lab.up();
    // every flow stays tracked for the whole bench; the server drops them, so no ICMP error comes back
    await lab.sh(['ip', 'netns', 'exec', lab.router, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_udp_timeout=900', 'net.netfilter.nf_conntrack_udp_timeout_stream=900']);
    await lab.sh(['ip', 'netns', 'exec', lab.server, 'nft', '-f', '-'], `table ip egwbench {\n  chain in {\n    type filter hook input priority 0;\n    udp dport ${BASE_PORT}-${BASE_PORT + ports - 1} drop\n  }\n}\n`);
    const socket = join(lab.tmp, 'gateway-metrics.sock');
    const target = `unix:${socket}`;
    const rec = new RecorderProc(lab, join(lab.tmp, 'flows'), children, ['--metrics-socket', socket, '--check-ms', '10000']); // a gateway's default check period
    await rec.ready();
    for (let i = 0; ; i++) {
      try {
        await scrape(target, 2000);
        break;
      } catch (e) {
        if (i > 100) throw new Error(`the recorder's metrics socket does not answer: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const empty = await measure(lab, rec, target, rounds, perRound);
    const emptyReport = reported(empty.body);

    const sendStart = Date.now();
    const sender = await runTimed(['ip', 'netns', 'exec', lab.client, process.execPath, '--import', 'tsx', UDPFLOWS, '--to', lab.serverIp, '--ports', String(ports), '--flows', String(flows), '--rate', String(rate), '--base-port', String(BASE_PORT)], 300_000);
    if (sender.code !== 0) throw new Error(`udpflows exited ${sender.code}: ${sender.stderr.trim().slice(0, 300)}`);
    const sent = (JSON.parse(sender.stdout) as { sent: number }).sent;
    await rec.until(`${flows} open connections`, (s) => s.open >= flows, 180_000);
    const trackedAfterS = r2((Date.now() - sendStart) / 1000);
    // Measure a steady gateway: no recovery dump still being read (an overflow's resync parses the whole table).
    let settled = await rec.until('a settled recorder', (s) => s.open >= flows, 1000);
    for (const deadline = Date.now() + 60_000; ; ) {
      const before = settled;
      await new Promise((r) => setTimeout(r, 2000));
      settled = rec.last!;
      const quiet = settled.overflows === before.overflows && settled.gaps === before.gaps && ((settled as Stats & Partial<Stalls>).loopDelayMaxMs ?? 0) < 100;
      if (quiet || Date.now() > deadline) break;
    }

    const pid = rec.child.pid;
    const full = await measure(lab, rec, target, rounds, perRound);
    // the recorder's CPU over scrapes alone (no baseline calls in between)
    const cpuBefore = cpuOf(pid);
    for (let i = 0; i < 100; i++) await scrape(target, 10_000);
    const cpuAfter = cpuOf(pid);
    const fullReport = reported(full.body);
    const kernelCount = await conntrackC(lab);
    let dumpBytes = 0;
    const dumpMs = await timed(async () => {
      // the recorder's own dump (CT_DUMP_ARGS), its output counted, not kept
      const r = await runTimed(['nsenter', `--net=/run/netns/${lab.router}`, 'sh', '-c', `${CONNTRACK} ${CT_DUMP_ARGS.join(' ')} 2>/dev/null | wc -c`], 120_000);
      if (r.code !== 0) throw new Error(`conntrack -L: exit ${r.code}: ${r.stderr.trim().slice(0, 200)}`);
      dumpBytes = Number(r.stdout.trim());
    });
    const scrapeStats = summary(full.scrape);
    const baseStats = summary(full.baseline);
    const rss = rssMiB(pid);
    const end = await rec.stop();
    return {
      flows: { sent, open: settled.open, trackedAfterS, overflows: settled.overflows, gaps: settled.gaps, kernelEntries: kernelCount },
      reported: fullReport,
      empty: { scrape: summary(empty.scrape), baseline: summary(empty.baseline), bytes: emptyReport.bytes, recorderStalls: empty.stalls },
      scrape: scrapeStats,
      baseline: { what: 'conntrack -C in the namespace', ...baseStats },
      ratioP50: r2(scrapeStats.p50Ms / baseStats.p50Ms),
      ratioP99: r2(scrapeStats.p99Ms / baseStats.p99Ms),
      /** How much a scrape grows from 0 to `flows` connections (1 = not at all). */
      growthP50: r2(scrapeStats.p50Ms / summary(empty.scrape).p50Ms),
      dumpOnce: { ms: Math.round(dumpMs), bytes: dumpBytes },
      recorder: {
        rssMiB: rss,
        stalls: full.stalls,
        cpuMsPerScrape: cpuBefore && cpuAfter ? r2(((cpuAfter.own - cpuBefore.own) * 1000) / 100) : null,
        records: end?.records ?? null,
      },
    };
  } finally {
    for (const c of children) await stopChild(c, 'SIGKILL', 1000);
    await lab.down();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchScrape(), null, 2));
}
