// Throughput through an egress gateway vs straight out of the node (root): TCP goodput with iperf3 in the lab.
//
//   node --import tsx bench/throughput.ts      prints the JSON result (needs `make build`: the lab runs bin/egw.js)
//
// Brings up a lab of its own (`tt<hex>`, examples/lab/demo.yaml under another name, a temporary datastore and state
// directory), applies the demo scenario (examples/demo/), starts two iperf3 servers in the lab's external namespace
// (one per path, tracked by PID) and runs `iperf3 -c 198.51.100.10 -t 5 -J` (1 stream) from
//   - tenant-a/client-a:   via a red gateway (VXLAN from the node to the gateway pod, SNAT there), and
//   - plain/client-plain:  direct (the node masquerades to its own IP),
// alternately, each path `runs` times; reports the median Gbit/s of each, the ratio gateway / direct (target ≥ 0.8;
// a wrong tunnel MTU fragments or black-holes and gives ~0.1) and retransmits, plus the tunnel MTU on the nodes'
// and gateways' `egw.vxlan` and the TCP MSS the client got. The lab is always torn down.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ANNOTATION } from '../src/api/types.js';
import { labDown, labNetns, labUp, loadLabFile } from '../src/lab/index.js';
import { createLogger } from '../src/log.js';
import { canRun, iperf, listening, median, podNetns, r2, readCluster, run, sleep, sourceSeen, startServer, stopServer, tunnelMtu, type IperfResult, type IperfServer } from './lablib.js';

export interface ThroughputBenchOptions {
  /** Seconds per iperf3 run (default 5). */
  seconds?: number;
  /** Runs per path (default 2); the median is reported. */
  runs?: number;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LAB_FILE = join(ROOT, 'examples', 'lab', 'demo.yaml');
const SCENARIO = join(ROOT, 'examples', 'demo');
const PATHS = [
  { name: 'gateway', pod: 'tenant-a/client-a', port: 5201 },
  { name: 'direct', pod: 'plain/client-plain', port: 5202 },
] as const;

export async function benchThroughput(opts: ThroughputBenchOptions = {}): Promise<Record<string, unknown>> {
  const why = await canRun();
  if (why) return { skipped: why };
  const seconds = opts.seconds ?? 5;
  const runs = opts.runs ?? 2;
  const lab = `tt${randomBytes(3).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), `egw-bench-${lab}-`));
  const stateRoot = join(tmp, 'state');
  const file = join(tmp, 'lab.yaml');
  writeFileSync(file, readFileSync(LAB_FILE, 'utf8').replace(/^name:\s*\S+/m, `name: ${lab}`));
  const cfg = loadLabFile(file);
  const datastore = `sqlite:${join(tmp, 'egw.db')}`;
  const log = createLogger(`bench throughput ${lab}`, { level: 'warn' });
  const ext = labNetns.ext(lab);
  const servers: IperfServer[] = [];
  try {
    await labUp({ file, datastore, stateRoot, log });
    const env = { ...process.env, EGW_DATASTORE: datastore, EGW_LAB_DIR: stateRoot };
    const applied = await run([process.execPath, join(ROOT, 'bin', 'egw.js'), 'apply', '-f', SCENARIO], { env, timeoutMs: 30_000 });
    if (applied.code !== 0) throw new Error(`egw apply -f examples/demo/: ${applied.stderr.trim()}`);

    // Both gateways running, and each client's traffic leaving as it should (a gateway IP / its node's IP).
    const deadline = Date.now() + 30_000;
    let c = await readCluster(datastore);
    for (;;) {
      const [gw, direct] = PATHS.map((p) => podNetns(c, p.pod));
      if (c.gatewayIPs.length >= 2 && gw && direct) {
        const [a, b] = await Promise.all([sourceSeen(gw, cfg.external.echo), sourceSeen(direct, cfg.external.echo)]);
        const plainNode = c.nodeIPs.get(c.pods.get(PATHS[1].pod)?.spec.nodeName ?? '');
        if (a && c.gatewayIPs.includes(a) && b && b === plainNode) break;
      }
      if (Date.now() > deadline) throw new Error(`lab ${lab}: gateways or client traffic not ready after 30 s (logs in ${stateRoot}/${lab}/logs)`);
      await sleep(300);
      c = await readCluster(datastore);
    }

    for (const p of PATHS) servers.push(startServer(ext, p.port));
    const listenDeadline = Date.now() + 10_000;
    for (const p of PATHS) {
      while (!(await listening(ext, p.port))) {
        if (Date.now() > listenDeadline) throw new Error(`iperf3 -s -p ${p.port} does not listen in ${ext}: ${servers.map((s) => s.output()).join(' ').trim().slice(0, 300)}`);
        await sleep(100);
      }
    }

    const results: Record<string, IperfResult[]> = { gateway: [], direct: [] };
    for (let i = 0; i < runs; i++) {
      // alternate which path goes first, so neither always runs on a warmer machine
      const order = i % 2 === 0 ? [0, 1] : [1, 0];
      for (const k of order) {
        const p = PATHS[k];
        results[p.name].push(await iperf(podNetns(c, p.pod)!, servers[k], cfg.external.echo, p.port, seconds));
      }
    }

    const nodeMtu = Object.fromEntries(await Promise.all(cfg.nodes.map(async (n) => [n.name, await tunnelMtu(labNetns.node(lab, n.name))] as const)));
    const gatewayMtu = Object.fromEntries(
      await Promise.all(
        [...c.pods.values()]
          .filter((p) => p.metadata.annotations?.[ANNOTATION.gatewayOf])
          .map(async (p) => [`${p.metadata.namespace}/${p.metadata.name}`, await tunnelMtu(p.metadata.annotations!['egw.dev/netns']!)] as const),
      ),
    );
    // who the server saw: a gateway pod (on which node; the client is on node-1) or a node
    const who = (ip: string | null): string | null => {
      if (!ip) return null;
      const gw = [...c.pods.values()].find((p) => p.metadata.annotations?.[ANNOTATION.gatewayOf] && p.status?.podIP === ip);
      if (gw) return `${ip} (gateway ${gw.metadata.name} on ${gw.spec.nodeName})`;
      const node = [...c.nodeIPs].find(([, a]) => a === ip)?.[0];
      return node ? `${ip} (${node})` : ip;
    };
    const summary = (rs: IperfResult[]) => ({
      gbps: r2(median(rs.map((r) => r.gbps))),
      retransmits: median(rs.map((r) => r.retransmits)),
      runsGbps: rs.map((r) => r2(r.gbps)),
      runsRetransmits: rs.map((r) => r.retransmits),
      mss: rs[0]?.mss ?? null,
      seenFrom: rs.map((r) => who(r.seenFrom)),
    });
    const gw = summary(results.gateway);
    const direct = summary(results.direct);
    return {
      scenario: { lab, streams: 1, seconds, runs, server: `${cfg.external.echo} (iperf3 in ${ext})`, kernel: release() },
      gateway: { client: PATHS[0].pod, ...gw },
      direct: { client: PATHS[1].pod, ...direct },
      ratio: Math.round((median(results.gateway.map((r) => r.gbps)) / median(results.direct.map((r) => r.gbps))) * 100) / 100,
      target: 0.8,
      tunnelMtu: { underlay: cfg.underlay.mtu, nodes: nodeMtu, gateways: gatewayMtu, expected: cfg.underlay.mtu - 50 },
    };
  } catch (e) {
    process.stderr.write(`bench throughput: ${(e as Error).message}\n`);
    return { error: (e as Error).message };
  } finally {
    for (const s of servers) await stopServer(s);
    await labDown({ name: lab, stateRoot, log }).catch((e: Error) => process.stderr.write(`bench throughput: lab down ${lab}: ${e.message}\n`));
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchThroughput(), null, 2));
}
