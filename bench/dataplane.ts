// Node data-plane benchmark (root): programming a node with 5,000 egress clients.
//
//   node --import tsx bench/dataplane.ts      prints the JSON result
//
// Scenario: 5,000 clients (10.244.0.0/16), one `ip rule` each, spread over 50 shared tables; each table holds an
// ECMP default route over 2–4 of 100 gateways, a throw for the pod network and the node network, an unreachable
// and a single-hop on-prem route; neighbours and FDB entries for the 100 gateways; NAT and MSS clamp in nft.
// Measured, each in a fresh network namespace (`egw-td<hex>-…`, deleted afterwards):
//   - reconcile: NodeDataplane.reconcile from empty (reads, diff, ip batch, bridge batch, nft, sysctls);
//   - raw: the same link/neighbour/route/rule lines in one `ip -batch -` plus the FDB in one `bridge -batch -`,
//     built by the same builder, with nothing read or diffed (the floor for any implementation);
//   the ratio reconcile / raw (target ≤ 1.5), medians of a few runs; then, on the 5,000-client node, a no-change
//   reconcile and a one-client change (a client moving table). Both kernels are compared after programming.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { EgressGatewayEntry, EgressTable, NodeEgressState } from '../src/calc/types.js';
import { gatewayMac } from '../src/api/ipv4.js';
import { BRIDGE, IP, WRITE, batchText } from '../src/dataplane/commands.js';
import { localRunner, netnsRunner, type Runner } from '../src/dataplane/exec.js';
import { NodeDataplane } from '../src/dataplane/node.js';
import type { NodeNatConfig } from '../src/dataplane/types.js';

export interface DataplaneBenchOptions {
  clients?: number;
  tables?: number;
  gateways?: number;
  runs?: number;
}

const DEV = 'egw.vxlan';

function ip(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function benchState(clients: number, tables: number, gateways: number): NodeEgressState {
  const gws: EgressGatewayEntry[] = [];
  for (let g = 0; g < gateways; g++) {
    const n = (10 << 24) + (10 << 16) + 256 + g; // 10.10.1.0 + g
    gws.push({ ip: ip(n), mac: gatewayMac(n), pod: `egw/gw-${g}`, node: `n${2 + (g % 10)}`, ready: true, draining: false });
  }
  const tbl: EgressTable[] = [];
  for (let t = 0; t < tables; t++) {
    const hops = 2 + (t % 3);
    const via = Array.from({ length: hops }, (_, k) => gws[(t * 7 + k * 13) % gateways].ip).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    const uniq = [...new Set(via)];
    tbl.push({
      id: 1000 + t * 37,
      routes: [
        { dst: '0.0.0.0/0', type: 'ecmp', via: uniq },
        { dst: '10.244.0.0/16', type: 'throw' },
        { dst: '172.31.0.0/16', type: 'throw' },
        { dst: `192.168.${t}.0/24`, type: 'unreachable' },
        { dst: `203.0.${t}.0/24`, type: 'ecmp', via: [gws[t % gateways].ip] },
      ],
    });
  }
  const rules = Array.from({ length: clients }, (_, i) => ({ src: `${ip((10 << 24) + (244 << 16) + 2 + i)}/32`, table: tbl[i % tables].id, pod: `ns${i % 50}/pod-${i}` }));
  rules.sort((a, b) => a.src.localeCompare(b.src, 'en', { numeric: true }));
  return {
    node: 'n1',
    enabled: true,
    egressIPSupport: 'EnabledPerNamespaceOrPerPod',
    vxlan: { device: DEV, vni: 4097, port: 4790, mtu: 1450, local: '172.31.99.11' },
    rulePriority: 100,
    rules,
    tables: tbl,
    gateways: gws,
    internalCidrs: ['10.244.0.0/16', '172.31.0.0/16'],
  };
}

const NAT: NodeNatConfig = { enabled: true, underlayDevice: 'eth0', masqueradePools: ['10.244.0.0/16'], egressPools: ['10.10.0.0/16'], hostIPPools: [], allPools: ['10.10.0.0/16', '10.244.0.0/16'], nodeAddresses: [] };

/** Exactly the objects of `state`, as raw batch lines (the same builder the reconciler uses). */
function rawBatches(s: NodeEgressState): { ip: string; bridge: string } {
  const v = s.vxlan;
  const lines = [IP.linkAdd(DEV, { vni: v.vni, port: v.port, local: v.local!, mtu: v.mtu }), IP.linkUp(DEV)];
  for (const g of s.gateways) lines.push(IP.neighReplace(DEV, g.ip, g.mac));
  for (const t of s.tables) for (const r of t.routes) lines.push(IP.routeReplace(DEV, t.id, r));
  for (const r of s.rules) lines.push(IP.ruleAdd(r.src, r.table, s.rulePriority));
  return { ip: batchText(lines), bridge: batchText(s.gateways.map((g) => BRIDGE.fdbAppend(DEV, g.mac, g.ip))) };
}

async function makeNs(name: string): Promise<Runner> {
  const host = localRunner();
  await host.run(['ip', 'netns', 'add', name]);
  await host.run(['ip', '-n', name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
  await host.run(['ip', '-n', name, 'addr', 'add', '172.31.99.11/24', 'dev', 'eth0']);
  for (const d of ['eth0', 'peer0', 'lo']) await host.run(['ip', '-n', name, 'link', 'set', d, 'up']);
  return netnsRunner(name);
}

async function delNs(name: string): Promise<void> {
  await localRunner().run(['ip', 'netns', 'del', name], { allowFailure: true });
}

async function canRun(): Promise<string | null> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root';
  for (const argv of [['ip', 'netns', 'list'], ['nft', '--version']]) {
    const r = await localRunner()
      .run(argv, { allowFailure: true })
      .catch(() => ({ code: -1, stderr: 'missing' }));
    if (r.code !== 0) return `needs ${argv[0]}`;
  }
  return null;
}

async function egwDump(r: Runner): Promise<string> {
  const rules = JSON.parse((await r.run(['ip', '-N', '-4', '-json', 'rule', 'list'])).stdout) as { priority: number }[];
  const routes = JSON.parse((await r.run(['ip', '-N', '-4', '-json', 'route', 'show', 'table', 'all'])).stdout) as { table?: string }[];
  const neigh = (await r.run(['ip', '-4', '-json', 'neigh', 'show', 'dev', DEV])).stdout;
  const fdb = (await r.run(['bridge', '-json', 'fdb', 'show', 'dev', DEV])).stdout;
  // neighbour and FDB dumps come in hash order, which differs between namespaces
  const sorted = (j: string) => (JSON.parse(j) as unknown[]).map((x) => JSON.stringify(x)).sort();
  return JSON.stringify([rules.filter((x) => x.priority === 100), routes.filter((x) => Number(x.table) >= 1000 && Number(x.table) < 1000 + 2 ** 20), sorted(neigh), sorted(fdb)]);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;

export async function benchDataplane(opts: DataplaneBenchOptions = {}): Promise<Record<string, unknown>> {
  const why = await canRun();
  if (why) return { skipped: why };
  const clients = opts.clients ?? 5000;
  const tables = opts.tables ?? 50;
  const gateways = opts.gateways ?? 100;
  const runs = opts.runs ?? 3;
  const state = benchState(clients, tables, gateways);
  const raw = rawBatches(state);
  const tag = `egw-td${randomBytes(3).toString('hex')}`;
  const created: string[] = [];
  const reconcileMs: number[] = [];
  const rawMs: number[] = [];
  const rawIpMs: number[] = [];
  let identical = true;
  let kept: { runner: Runner; dp: NodeDataplane } | null = null;
  try {
    for (let run = 0; run < runs; run++) {
      const a = `${tag}-dp${run}`;
      const b = `${tag}-raw${run}`;
      created.push(a, b);
      const ra = await makeNs(a);
      const rb = await makeNs(b);
      // alternate which goes first, so neither always runs on a warmer machine
      const doReconcile = async () => {
        const dp = new NodeDataplane(ra);
        const t0 = performance.now();
        await dp.reconcile(state, NAT);
        reconcileMs.push(performance.now() - t0);
        return dp;
      };
      const doRaw = async () => {
        const t0 = performance.now();
        await rb.run(WRITE.ipBatch(), { input: raw.ip });
        rawIpMs.push(performance.now() - t0);
        await rb.run(WRITE.bridgeBatch(), { input: raw.bridge });
        rawMs.push(performance.now() - t0);
      };
      let dp: NodeDataplane;
      if (run % 2 === 0) {
        dp = await doReconcile();
        await doRaw();
      } else {
        await doRaw();
        dp = await doReconcile();
      }
      if ((await egwDump(ra)) !== (await egwDump(rb))) identical = false;
      if (run === runs - 1) kept = { runner: ra, dp };
      else {
        await delNs(a);
        await delNs(b);
      }
    }

    // on the 5,000-client node: no-change reconcile, and one client moving table
    const { dp } = kept!;
    const noChange: number[] = [];
    let noChangeCommands = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const rep = await dp.reconcile(state, NAT);
      noChange.push(performance.now() - t0);
      noChangeCommands += rep.commands.length;
    }
    const oneChange: number[] = [];
    let oneChangeLines = 0;
    for (let i = 0; i < 5; i++) {
      const moved = { ...state, rules: state.rules.map((r, k) => (k === i * 7 ? { ...r, table: state.tables[(tables + i) % tables === 0 ? 1 : 0].id } : r)) };
      for (const target of [moved, state]) {
        const t0 = performance.now();
        const rep = await dp.reconcile(target, NAT);
        oneChange.push(performance.now() - t0);
        oneChangeLines += rep.commands.reduce((n, c) => n + (c.input ? c.input.split('\n').filter(Boolean).length : 1), 0);
      }
    }
    const rec = median(reconcileMs);
    const rw = median(rawMs);
    return {
      scenario: { clients, tables, gateways, routes: state.tables.reduce((n, t) => n + t.routes.length, 0), runs },
      fromEmpty: {
        reconcileMs: r1(rec),
        rawMs: r1(rw),
        rawIpBatchMs: r1(median(rawIpMs)),
        ratio: Math.round((rec / rw) * 100) / 100,
        target: 1.5,
        runsReconcileMs: reconcileMs.map(r1),
        runsRawMs: rawMs.map(r1),
        kernelsIdentical: identical,
      },
      noChangeReconcileMs: r1(median(noChange)),
      noChangeWrites: noChangeCommands,
      oneClientChangeMs: r1(median(oneChange)),
      oneClientChangeBatchLines: oneChangeLines / oneChange.length,
    };
  } finally {
    for (const n of created) await delNs(n);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchDataplane(), null, 2));
}
