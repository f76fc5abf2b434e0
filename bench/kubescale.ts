// One agent on a 1,000-node cluster (issue 11, "Scale"; SPEC §7 "agents must watch only what they need"): the stand-in
// API server (src/lab/apiserver.ts, in this process) holds 1,000 Nodes and 50,000 Pods (50 per node, plus a few
// gateway pods); then rounds of churn create, delete and modify pods across every node. The agent side runs in a
// child process (bench/kubescale-agent.ts: the informer with AGENT_KINDS over a KubernetesStore), so its heap and RSS
// are its own. Two variants in the same run, one after the other on the same cluster and the same seeded churn:
// - `views`: the agent's views (agentKubeViews: its node's pods by field selector, the gateway pods by label);
// - `baseline`: the same informer without views (every pod of the cluster), what an agent without them would hold.
// Reported: Pod events the agent received against the Pod changes made and the events the stand-in sent it, the
// exact count expected (its node's pods + gateway pods), heap/RSS at start, after the initial sync and after each
// round (flat = no growth trend), and the baseline/views ratios.
// Sizes: EGW_BENCH_KUBESCALE_NODES (1000), _PODS_PER_NODE (50), _ROUNDS (5), _CHURN (ops of each kind per round, 2000).
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Resource } from '../src/api/meta.js';
import { ANNOTATION, LABEL } from '../src/api/types.js';
import { KubernetesStore } from '../src/datastore/kubernetes.js';
import { STATUS_SUBRESOURCE, kubeResource } from '../src/datastore/kubernetes-kinds.js';
import { KubeApiStandIn } from '../src/lab/apiserver.js';
import type { AgentRequest, AgentStats } from './kubescale-agent.js';
import { prng } from './util.js';

const env = (name: string, dflt: number) => {
  const v = process.env[`EGW_BENCH_KUBESCALE_${name}`];
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`EGW_BENCH_KUBESCALE_${name}=${v}: expected a whole number ≥ 1`);
  return n;
};

const NAMESPACES = 20;
const GATEWAYS = 10;
const CONCURRENCY = 64;

const nodeName = (i: number) => `node-${String(i).padStart(4, '0')}`;

function nodeObj(i: number): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: nodeName(i), labels: { 'kubernetes.io/hostname': nodeName(i) } },
    status: { addresses: [{ type: 'InternalIP', address: `172.16.${i >> 8}.${i & 255}` }] },
  } as Resource;
}

interface PodModel {
  ns: string;
  name: string;
  node: number;
  gen: number;
  gateway: boolean;
  ip: string;
}

function podObj(p: PodModel): Resource {
  const labels: Record<string, string> = { app: `app-${p.name.length % 7}`, 'pod-template-hash': '5d8f7c9b6d', gen: String(p.gen) };
  const annotations: Record<string, string> = {};
  if (p.gateway) {
    labels['egress-code'] = 'red';
    labels[LABEL.gatewayOf] = 'red';
    annotations[ANNOTATION.gatewayOf] = 'red';
    annotations[ANNOTATION.ipv4Pools] = '["egress"]';
  }
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: p.ns, name: p.name, labels, annotations },
    spec: { nodeName: nodeName(p.node), containers: [{ name: 'app', image: 'registry.example/app:1.2.3', ports: [{ containerPort: 8080, name: 'http' }] }] },
    status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  } as Resource;
}

/** Runs `jobs` with at most CONCURRENCY in flight. */
async function pool(jobs: (() => Promise<unknown>)[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, jobs.length) }, async () => {
      while (next < jobs.length) await jobs[next++]();
    }),
  );
}

/** The agent child: start it, ask it, stop it. */
class AgentChild {
  private readonly child: ChildProcess;
  private waiting: ((m: unknown) => void)[] = [];
  readonly ready: Promise<AgentStats>;

  constructor() {
    this.child = fork(new URL('./kubescale-agent.ts', import.meta.url).pathname, [], { execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m) => this.waiting.shift()?.(m));
    this.ready = this.reply<AgentStats>();
  }

  private reply<T>(): Promise<T> {
    return new Promise((resolve) => this.waiting.push(resolve as (m: unknown) => void));
  }

  async ask<T>(req: AgentRequest): Promise<T> {
    const r = this.reply<T>();
    this.child.send(req);
    return r;
  }

  stats(): Promise<AgentStats> {
    return this.ask<AgentStats>({ cmd: 'stats' });
  }

  async until(what: string, ok: (s: AgentStats) => boolean, timeoutMs = 120_000): Promise<AgentStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      if (ok(s)) return s;
      if (Date.now() > deadline) throw new Error(`kubescale: timed out waiting for ${what} (agent: ${JSON.stringify(s)})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.send({ cmd: 'stop' });
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

interface Sample {
  heapUsedMiB: number;
  rssMiB: number;
}

const pick = (s: AgentStats): Sample => ({ heapUsedMiB: s.heapUsedMiB, rssMiB: s.rssMiB });

/** Least-squares slope of heap over the rounds, MiB per round: the growth trend. */
function slope(ys: number[]): number {
  const n = ys.length;
  if (n < 2) return 0;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, x) => {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  });
  return Math.round((num / den) * 100) / 100;
}

export async function benchKubeScale(): Promise<Record<string, unknown>> {
  const nodes = env('NODES', 1000);
  const perNode = env('PODS_PER_NODE', 50);
  const rounds = env('ROUNDS', 5);
  const churn = env('CHURN', 2000);
  const me = Math.min(7, nodes - 1);
  const dir = mkdtempSync(join(tmpdir(), 'egw-kubescale-'));
  const srv = new KubeApiStandIn({ statusSubresource: [...STATUS_SUBRESOURCE].map((k) => kubeResource(k).info.plural), bookmarkMs: 1000 });
  await srv.start();
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, srv.kubeconfig());
  const admin = new KubernetesStore({ kubeconfig });
  try {
    const t0 = performance.now();
    const model = new Map<string, PodModel>();
    let ipSeq = 0;
    const ip = () => `10.${64 + ((ipSeq >> 16) & 63)}.${(ipSeq >> 8) & 255}.${ipSeq++ & 255}`;
    let seq = 0;
    const newPod = (node: number, gateway = false): PodModel => ({ ns: `ns-${seq % NAMESPACES}`, name: `${gateway ? 'red' : 'p'}-${seq++}`, node, gen: 0, gateway, ip: ip() });
    const jobs: (() => Promise<unknown>)[] = [];
    for (let i = 0; i < NAMESPACES; i++) jobs.push(() => admin.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${i}` } } as Resource));
    for (let i = 0; i < nodes; i++) jobs.push(() => admin.create(nodeObj(i)));
    for (let i = 0; i < nodes; i++) {
      for (let j = 0; j < perNode; j++) {
        const p = newPod(i);
        model.set(`${p.ns}/${p.name}`, p);
        jobs.push(() => admin.create(podObj(p)));
      }
    }
    // a few gateway pods, spread; one on the agent's node (it is in both of its views)
    for (let g = 0; g < GATEWAYS; g++) {
      const p = newPod(g === 0 ? me : Math.floor((g * nodes) / GATEWAYS), true);
      model.set(`${p.ns}/${p.name}`, p);
      jobs.push(() => admin.create(podObj(p)));
    }
    await pool(jobs);
    const fillSeconds = Math.round((performance.now() - t0) / 100) / 10;
    const startRevision = srv.revision;
    const seen = (p: PodModel) => p.node === me || p.gateway;

    /** One round of churn from the seed: the Pod changes made, and those the agent's views cover. */
    const churnRound = async (rand: () => number): Promise<{ all: number; mine: number }> => {
      const ops: (() => Promise<unknown>)[] = [];
      let mine = 0;
      const clients = [...model.values()].filter((p) => !p.gateway);
      const take = (): PodModel => {
        const i = Math.floor(rand() * clients.length);
        const p = clients[i];
        clients[i] = clients[clients.length - 1];
        clients.pop();
        return p;
      };
      const onMe = clients.filter((p) => p.node === me);
      // at least one of each change on the agent's node, the rest anywhere
      const del = [onMe[0], ...Array.from({ length: churn - 1 }, take)].filter((p, i, a) => p && a.indexOf(p) === i);
      for (const p of del) {
        model.delete(`${p.ns}/${p.name}`);
        if (seen(p)) mine++;
        ops.push(() => admin.delete({ kind: 'Pod', namespace: p.ns, name: p.name }));
      }
      const mod = [onMe[1], ...Array.from({ length: churn - 1 }, take)].filter((p, i, a) => p && !del.includes(p) && a.indexOf(p) === i);
      mod.push(...[...model.values()].filter((p) => p.gateway));
      // (a label change only: the status stays, so each modification is one write, one event)
      for (const p of mod) {
        p.gen++;
        if (seen(p)) mine++;
        ops.push(() => admin.update(podObj(p)));
      }
      for (let i = 0; i < churn; i++) {
        const p = newPod(i === 0 ? me : Math.floor(rand() * nodes));
        model.set(`${p.ns}/${p.name}`, p);
        if (seen(p)) mine++;
        ops.push(() => admin.create(podObj(p)));
      }
      await pool(ops);
      return { all: ops.length, mine };
    };

    // Each variant replays the same churn from the same seed on the cluster as the previous variant left it: the
    // counts differ in which pods exist, not in how many changes a round makes or how many touch the agent's node.
    const variant = async (views: boolean) => {
      const child = new AgentChild();
      const atStart = await child.ready;
      await child.ask({ cmd: 'start', kubeconfig, node: nodeName(me), views });
      const synced = await child.until('the initial sync', (s) => s.synced && s.syncMs !== undefined);
      const afterSync = pick(synced);
      const podsAfterSync = synced.pods;
      const rand = prng(11);
      const perRound: { podChanges: number; expected: number; received: number; sentByStandIn: number; seconds: number; heapUsedMiB: number; rssMiB: number }[] = [];
      let expectedTotal = 0;
      for (let r = 0; r < rounds; r++) {
        const sent0 = srv.eventsSent;
        const received0 = (await child.stats()).podEvents;
        const t = performance.now();
        const { all, mine } = await churnRound(rand);
        const expected = views ? mine : all;
        expectedTotal += expected;
        await child.until(`round ${r + 1}: ${expected} pod events`, (x) => x.podEvents - received0 >= expected);
        // a moment for anything beyond the expected (there must be none), then the sample
        await new Promise((res) => setTimeout(res, 500));
        const after = await child.stats();
        perRound.push({
          podChanges: all,
          expected,
          received: after.podEvents - received0,
          sentByStandIn: srv.eventsSent - sent0,
          seconds: Math.round((performance.now() - t) / 100) / 10,
          ...pick(after),
        });
      }
      const end = await child.stats();
      await child.stop();
      const heaps = perRound.map((x) => x.heapUsedMiB);
      return {
        views,
        atStart: pick(atStart),
        afterSync,
        syncMs: synced.syncMs,
        podsInView: podsAfterSync,
        podsInViewAtEnd: end.pods,
        rounds: perRound,
        podEventsExpected: expectedTotal,
        podEventsReceived: perRound.reduce((a, x) => a + x.received, 0),
        podChanges: perRound.reduce((a, x) => a + x.podChanges, 0),
        sentByStandIn: perRound.reduce((a, x) => a + x.sentByStandIn, 0),
        heapGrowthAfterSyncMiB: Math.round((heaps[heaps.length - 1] - afterSync.heapUsedMiB) * 10) / 10,
        heapSlopeMiBPerRound: slope(heaps),
        rssSlopeMiBPerRound: slope(perRound.map((x) => x.rssMiB)),
      };
    };

    const withViews = await variant(true);
    const baseline = await variant(false);
    const last = <T>(a: T[]) => a[a.length - 1];
    return {
      cluster: { nodes, podsPerNode: perNode, gatewayPods: GATEWAYS, pods: nodes * perNode + GATEWAYS, fillSeconds, startRevision, rounds, changesPerRound: withViews.rounds[0]?.podChanges },
      agentNode: nodeName(me),
      views: withViews,
      baseline,
      ratios: {
        podEventsBaselineOverViews: Math.round((baseline.podEventsReceived / Math.max(1, withViews.podEventsReceived)) * 10) / 10,
        podsInViewBaselineOverViews: Math.round((baseline.podsInView / Math.max(1, withViews.podsInView)) * 10) / 10,
        heapAfterSyncBaselineOverViews: Math.round((baseline.afterSync.heapUsedMiB / withViews.afterSync.heapUsedMiB) * 10) / 10,
        heapAtEndBaselineOverViews: Math.round((last(baseline.rounds).heapUsedMiB / last(withViews.rounds).heapUsedMiB) * 10) / 10,
        rssAtEndBaselineOverViews: Math.round((last(baseline.rounds).rssMiB / last(withViews.rounds).rssMiB) * 10) / 10,
      },
      exact: withViews.podEventsReceived === withViews.podEventsExpected && baseline.podEventsReceived === baseline.podEventsExpected,
    };
  } finally {
    await admin.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(JSON.stringify(await benchKubeScale(), null, 2));
