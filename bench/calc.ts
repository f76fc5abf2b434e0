// Egress calculation benchmark: one node with 5,000 local clients, 200 gateway pods, 100 policies of 10 rules.
//
//   node --import tsx bench/calc.ts      prints the JSON result
//
// The scenario is generated from a fixed seed and shaped like a multi-tenant cluster:
//   - 20 EgressGateways of 10 replicas (200 gateway pods) in 10 gateway namespaces, spread over 20 nodes;
//   - 100 EgressGatewayPolicies of 10 rules: a default route via one gateway group, on-prem /8s and /16s via
//     others (some with maxNextHops 2 or PreferNodeLocal), gateway-less "direct" /16s and /24s;
//   - 50 tenant namespaces of 100 pods, all on node n1: 30 carry a namespace policy annotation (a fifth of their
//     pods override it with a pod policy annotation), 10 a selector annotation (half with maxNextHops 2), 10 none
//     (a third of their pods carry pod selector annotations).
// Reported (targets are reported, never asserted):
//   - full computation (load every resource into a fresh calculator + nodeState), median of several runs;
//   - one incremental pod add + nodeState, and one pod remove + nodeState, medians over many operations, and the
//     ratio to the full computation (the baseline a non-incremental calculator would pay for every change);
//   - one gateway failing (setGatewayHealth not-ready) + nodeState: the failover recomputation;
//   - distinct tables vs clients (Calico's baseline: one table per client), heap used by the loaded calculator.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pathToFileURL } from 'node:url';
import type { Resource } from '../src/api/meta.js';
import type { EgressGatewayRule } from '../src/api/types.js';
import { ANNOTATION } from '../src/api/types.js';
import { EgressCalculator } from '../src/calc/index.js';
import { prng } from './util.js';

export interface CalcBenchOptions {
  clients?: number;
  gateways?: number;
  policies?: number;
  rulesPerPolicy?: number;
  fullRuns?: number;
  incrementalOps?: number;
  seed?: number;
}


const SEL = 'egress.projectcalico.org/selector';
const NSSEL = 'egress.projectcalico.org/namespaceSelector';
const MAXHOPS = 'egress.projectcalico.org/maxNextHops';
const POLICY = 'egress.projectcalico.org/egressGatewayPolicy';

function ipOf(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

interface Scenario {
  resources: Resource[];
  clientPod: (i: number) => Resource;
  tenantNamespaces: number;
  firstFreeClient: number;
}

export function scenario(o: Required<CalcBenchOptions>): Scenario {
  const rnd = prng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const res: Resource[] = [];
  res.push({ apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { egressIPSupport: 'EnabledPerNamespaceOrPerPod' } });
  res.push({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'pods' }, spec: { cidr: '10.244.0.0/16' } });
  res.push({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'egress' }, spec: { cidr: '10.10.0.0/22', blockSize: 31 } });
  const NODES = 20;
  for (let i = 0; i < NODES; i++) {
    res.push({ apiVersion: 'v1', kind: 'Node', metadata: { name: `n${i + 1}` }, status: { addresses: [{ type: 'InternalIP', address: `192.168.0.${i + 1}` }] } });
  }
  // gateways: groups of 10 replicas, two groups per gateway namespace
  const GROUP = 10;
  const groups = Math.max(1, Math.ceil(o.gateways / GROUP));
  for (let ns = 0; ns < Math.ceil(groups / 2); ns++) {
    res.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `egw-${ns}`, labels: { purpose: 'egress', zone: ns % 2 ? 'b' : 'a' } } });
  }
  for (let g = 0; g < o.gateways; g++) {
    const group = Math.floor(g / GROUP);
    const name = `egw-${group}`;
    res.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${name}-${(g % GROUP).toString(36)}x${g}`,
        namespace: `egw-${group >> 1}`,
        labels: { 'egress-code': name, tier: group % 3 === 0 ? 'premium' : 'standard', 'projectcalico.org/egw': name },
        annotations: { [ANNOTATION.gatewayOf]: name },
      },
      spec: { nodeName: `n${(g % NODES) + 1}`, containers: [{ name: 'gateway' }] },
      status: { phase: 'Running', podIP: ipOf(0x0a0a0000 + g), podIPs: [{ ip: ipOf(0x0a0a0000 + g) }], conditions: [{ type: 'Ready', status: 'True' }] },
    });
  }
  const groupSel = (grp: number): { selector: string; namespaceSelector: string } => ({
    selector: `egress-code == 'egw-${grp}'`,
    namespaceSelector: `projectcalico.org/name == 'egw-${grp >> 1}'`,
  });
  // policies
  for (let p = 0; p < o.policies; p++) {
    const rules: EgressGatewayRule[] = [{ description: 'internet', gateway: { ...groupSel(p % groups) } }];
    const used = new Set<string>(['0.0.0.0/0']);
    while (rules.length < o.rulesPerPolicy) {
      const kind = rnd();
      let cidr: string;
      if (kind < 0.3) cidr = `${pick([11, 12, 13, 14, 15, 20, 30, 40])}.0.0.0/8`;
      else if (kind < 0.7) cidr = `${pick([11, 12, 13, 172])}.${Math.floor(rnd() * 32)}.0.0/16`;
      else cidr = `${pick([100, 101, 203])}.${Math.floor(rnd() * 8)}.${Math.floor(rnd() * 16)}.0/24`;
      if (used.has(cidr)) continue;
      used.add(cidr);
      const r = rnd();
      if (r < 0.2) rules.push({ destination: { cidr }, description: 'direct' });
      else if (r < 0.4) rules.push({ destination: { cidr }, gateway: { ...groupSel(Math.floor(rnd() * groups)), maxNextHops: 2 } });
      else if (r < 0.5) rules.push({ destination: { cidr }, gateway: { ...groupSel(Math.floor(rnd() * groups)) }, gatewayPreference: 'PreferNodeLocal' });
      else if (r < 0.6) rules.push({ destination: { cidr }, gateway: { selector: `tier == 'premium'`, namespaceSelector: `purpose == 'egress'` } });
      else rules.push({ destination: { cidr }, gateway: { ...groupSel(Math.floor(rnd() * groups)) } });
    }
    res.push({ apiVersion: 'projectcalico.org/v3', kind: 'EgressGatewayPolicy', metadata: { name: `policy-${p}` }, spec: { rules } });
  }
  // tenants
  const TENANTS = 50;
  const nsKind: ('policy' | 'selector' | 'none')[] = [];
  for (let t = 0; t < TENANTS; t++) {
    const kind = t < 30 ? 'policy' : t < 40 ? 'selector' : 'none';
    nsKind.push(kind);
    let annotations: Record<string, string> | undefined;
    if (kind === 'policy') annotations = { [POLICY]: `policy-${t % o.policies}` };
    else if (kind === 'selector') annotations = { [SEL]: `egress-code == 'egw-${t % groups}'`, [NSSEL]: `purpose == 'egress'`, ...(t % 2 ? { [MAXHOPS]: '2' } : {}) };
    res.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `team-${t}`, labels: { team: `t${t}` }, annotations } });
  }
  const podRnd = (i: number) => prng(o.seed ^ Math.imul(i + 1, 0x9e3779b1));
  const clientPod = (i: number): Resource => {
    const r = podRnd(i);
    const t = i % TENANTS;
    let annotations: Record<string, string> | undefined;
    if (nsKind[t] === 'policy' && r() < 0.2) annotations = { [POLICY]: `policy-${30 + Math.floor(r() * Math.max(1, o.policies - 30))}` };
    else if (nsKind[t] === 'none' && r() < 0.33) annotations = { [SEL]: `egress-code == 'egw-${Math.floor(r() * groups)}'`, [NSSEL]: `purpose == 'egress'`, [MAXHOPS]: '2' };
    const app = ['web', 'api', 'worker', 'batch'][i % 4];
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${app}-${i.toString(36)}-${Math.floor(r() * 1e6).toString(36)}`, namespace: `team-${t}`, labels: { app }, annotations },
      spec: { nodeName: 'n1', containers: [{ name: app }] },
      status: { phase: 'Running', podIP: ipOf(0x0af40000 + i), podIPs: [{ ip: ipOf(0x0af40000 + i) }] },
    };
  };
  for (let i = 0; i < o.clients; i++) res.push(clientPod(i));
  // clients on other nodes (the calculator indexes them; nodeState('n1') must not pay for them)
  for (let i = 0; i < 2000; i++) {
    const p = clientPod(100000 + i);
    (p.spec as { nodeName: string }).nodeName = `n${2 + (i % 19)}`;
    res.push(p);
  }
  return { resources: res, clientPod, tenantNamespaces: TENANTS, firstFreeClient: 200000 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

function gcFn(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

export async function benchCalc(opts: CalcBenchOptions = {}): Promise<Record<string, unknown>> {
  const o: Required<CalcBenchOptions> = {
    clients: opts.clients ?? 5000,
    gateways: opts.gateways ?? 200,
    policies: opts.policies ?? 100,
    rulesPerPolicy: opts.rulesPerPolicy ?? 10,
    fullRuns: opts.fullRuns ?? 7,
    incrementalOps: opts.incrementalOps ?? 2000,
    seed: opts.seed ?? 20240611,
  };
  const sc = scenario(o);
  const gc = gcFn();

  // full computation on fresh calculators (first run is warm-up)
  const full: number[] = [];
  const loadOnly: number[] = [];
  let calc: EgressCalculator | undefined;
  for (let run = 0; run <= o.fullRuns; run++) {
    const c = new EgressCalculator();
    const t0 = performance.now();
    c.load(sc.resources);
    const t1 = performance.now();
    c.nodeState('n1');
    const t2 = performance.now();
    if (run > 0) {
      full.push(t2 - t0);
      loadOnly.push(t1 - t0);
    }
    calc = c;
  }
  const c = calc!;
  const st = c.nodeState('n1');

  // memory: a fresh calculator, loaded and computed, with GC before and after
  let heapDelta: number | null = null;
  if (gc) {
    calc = undefined;
    gc();
    const before = process.memoryUsage().heapUsed;
    const m = new EgressCalculator().load(sc.resources);
    m.nodeState('n1');
    gc();
    heapDelta = process.memoryUsage().heapUsed - before;
    if (m.stats().clients < 0) console.log(''); // keep `m` alive until measured
  }

  // incremental pod add / remove, each followed by nodeState()
  const adds: number[] = [];
  const removes: number[] = [];
  for (let i = 0; i < o.incrementalOps; i++) {
    const p = sc.clientPod(sc.firstFreeClient + i);
    const t0 = performance.now();
    c.upsert(p);
    c.nodeState('n1');
    const t1 = performance.now();
    c.remove(p);
    c.nodeState('n1');
    const t2 = performance.now();
    adds.push(t1 - t0);
    removes.push(t2 - t1);
  }

  // a gateway fails and recovers: every client using it is recomputed
  const failover: number[] = [];
  const recover: number[] = [];
  for (let g = 0; g < 20; g++) {
    const key = `egw-${g >> 1}/egw-${g}-${(0).toString(36)}x${g * 10}`;
    const t0 = performance.now();
    c.setGatewayHealth(key, { ready: false, reasons: ['bench'] });
    c.nodeState('n1');
    const t1 = performance.now();
    c.setGatewayHealth(key, null);
    c.nodeState('n1');
    const t2 = performance.now();
    failover.push(t1 - t0);
    recover.push(t2 - t1);
  }
  const unchanged: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const t0 = performance.now();
    c.nodeState('n1');
    unchanged.push(performance.now() - t0);
  }

  const fullMs = median(full);
  const addMs = median(adds);
  const removeMs = median(removes);
  return {
    scenario: {
      localPods: o.clients,
      localClientsWithRule: st.rules.length,
      podsOnOtherNodes: 2000,
      gateways: o.gateways,
      policies: o.policies,
      rulesPerPolicy: o.rulesPerPolicy,
      tenantNamespaces: sc.tenantNamespaces,
      candidateEntries: c.stats().candidateEntries,
    },
    fullComputationMs: { median: r3(fullMs), min: r3(Math.min(...full)), loadMedian: r3(median(loadOnly)), runs: full.length, target: 200, met: fullMs < 200 },
    incrementalPodAddMs: { median: r3(addMs), p99: r3(pct(adds, 0.99)), ops: adds.length, target: 1, met: addMs < 1 },
    incrementalPodRemoveMs: { median: r3(removeMs), p99: r3(pct(removes, 0.99)), ops: removes.length, target: 1, met: removeMs < 1 },
    incrementalVsFullSpeedup: Math.round(fullMs / Math.max(addMs, removeMs, 1e-6)),
    gatewayNotReadyMs: { median: r3(median(failover)), max: r3(Math.max(...failover)), recoverMedian: r3(median(recover)) },
    nodeStateUnchangedUs: r3(median(unchanged) * 1000),
    tables: {
      distinct: st.tables.length,
      clientsWithRule: st.rules.length,
      calicoBaselineOnePerClient: st.rules.length,
      ratio: r3(st.tables.length / Math.max(1, st.rules.length)),
      routes: st.tables.reduce((a, t) => a + t.routes.length, 0),
    },
    gatewaysInState: st.gateways.length,
    memory: { heapUsedDeltaMiB: heapDelta === null ? null : r3(heapDelta / 2 ** 20), note: heapDelta === null ? 'gc unavailable' : 'fresh calculator after load + nodeState, GC before and after' },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchCalc(), null, 2));
}
