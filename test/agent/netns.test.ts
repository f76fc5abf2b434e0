// The agent against a real kernel (root): a node namespace (eth0 172.31.99.11/24, MTU 9000, veth to a peer
// namespace), a MemoryStore cluster; convergence, a pod annotation change applied within ~1 s, and a restart that
// neither deletes nor recreates anything.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle } from '../../src/agent/agent.js';
import { ANNOTATION } from '../../src/api/types.js';
import type { NodeEgressState } from '../../src/calc/types.js';
import type { Runner } from '../../src/dataplane/exec.js';
import type { ReconcileReport } from '../../src/dataplane/types.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import { memoryLogger } from '../../src/log.js';
import { CountingRunner, cleanupAll, dumpKernel, json, makeNodeNs, runTag, type J, type NodeNs } from '../dataplane/netns.js';
import { writesOf } from '../dataplane/helpers.js';
import { NETNS_TOOLS, SHOW_NFT, suiteGate } from '../helpers/env.js';
import { twoNodeCluster } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';

const root = suiteGate(NETNS_TOOLS);

describe('agent in a network namespace', { skip: root.skip }, () => {
  const tag = runTag();
  let ns: NodeNs;
  const store = new MemoryStore();
  const agents: { ac: AbortController; agent: AgentHandle }[] = [];

  const start = (runner: Runner, onReconcile?: (r: ReconcileReport, s: NodeEgressState) => void) => {
    const ac = new AbortController();
    const agent = startAgent({ store, node: 'n1', runner, signal: ac.signal, log: memoryLogger(), resyncMs: 60_000, onReconcile });
    agents.push({ ac, agent });
    return { ac, agent };
  };

  before(async () => {
    root.check();
    ns = await makeNodeNs(tag, 'an1', { mtu: 9000 });
    for (const r of twoNodeCluster()) await store.create(r);
  });
  after(async () => {
    for (const a of agents) a.ac.abort();
    await Promise.all(agents.map((a) => a.agent.done));
    await store.close();
    await cleanupAll();
  });

  const clientRule = async () => (await json(ns.runner, ['ip', '-json', 'rule', 'list'])).find((r) => r.priority === 100 && r.src === '10.244.0.5');
  const clientRoute = async () => {
    const rule = await clientRule();
    if (!rule) return undefined;
    return (await json(ns.runner, ['ip', '-json', 'route', 'show', 'table', String(rule.table), '0.0.0.0/0']))[0];
  };

  test('converges: rule, ECMP route via both gateways, neighbours, FDB, tunnel MTU from the 9000 underlay, NAT', async () => {
    const { agent } = start(ns.runner);
    const route = await until('the client\'s route', clientRoute, 3000);
    assert.deepEqual(
      (route.nexthops as J[]).map((h) => [h.gateway, h.dev, h.flags]),
      [
        ['10.10.10.1', 'egw.vxlan', ['onlink']],
        ['10.10.10.2', 'egw.vxlan', ['onlink']],
      ],
    );
    const link = (await json(ns.runner, ['ip', '-d', '-json', 'link', 'show', 'dev', 'egw.vxlan']))[0];
    assert.equal(link.mtu, 8950);
    assert.equal(((link.linkinfo as J).info_data as J).local, '172.31.99.11');
    const neigh = await json(ns.runner, ['ip', '-4', '-json', 'neigh', 'show', 'dev', 'egw.vxlan']);
    assert.deepEqual(neigh.map((n) => n.dst).sort(), ['10.10.10.1', '10.10.10.2']);
    const fdb = await json(ns.runner, ['bridge', '-json', 'fdb', 'show', 'dev', 'egw.vxlan']);
    assert.deepEqual(fdb.map((e) => [e.mac, e.dst]).sort(), [
      ['a2:2a:0a:0a:0a:01', '10.10.10.1'],
      ['a2:2a:0a:0a:0a:02', '10.10.10.2'],
    ]);
    const nft = (await ns.runner.run(['nft', 'list', 'table', 'ip', 'egw'])).stdout;
    assert.match(nft, /ip saddr 10\.10\.10\.0\/29 return/);
    assert.match(nft, /oifname "eth0" ip saddr 10\.244\.0\.0\/16 ip daddr != \{ 10\.10\.10\.0\/29, 10\.244\.0\.0\/16 \} masquerade/);
    assert.match(nft, /maxseg size set 8910/);
    if (SHOW_NFT) process.stderr.write(nft);
    await until('the first reconcile', () => agent.status().reconciles >= 1, 3000);
    assert.deepEqual(agent.status().underlay, { ip: '172.31.99.11', device: 'eth0', mtu: 9000 });
  });

  test('a pod annotation change reaches the kernel within ~1 s', async () => {
    const p = (await store.get({ kind: 'Pod', namespace: 'app', name: 'client' }))!;
    const t0 = performance.now();
    await store.update({ ...p, metadata: { ...p.metadata, annotations: { ...p.metadata.annotations, [ANNOTATION.maxNextHops]: '1' } } });
    // The bound is the point: a change is applied by the reconcile its own event starts (after a 20 ms debounce),
    // not by the next resync (60 s here). ~1 s is the project's word for "at once" (the failure threshold it always
    // had); here it takes 100–300 ms, the poll's own ip commands included.
    const route = await until('a route via one gateway, within ~1 s of the change', async () => {
      const r = await clientRoute();
      return r && !r.nexthops ? r : undefined;
    }, 1000, { everyMs: 5 });
    const ms = performance.now() - t0;
    assert.ok(['10.10.10.1', '10.10.10.2'].includes(route.gateway as string));
    assert.equal(route.dev, 'egw.vxlan');
    process.stderr.write(`# annotation → kernel: ${ms.toFixed(0)} ms\n`);
  });

  test('restart: the new agent deletes and recreates nothing (same dumps, same ifindex) and writes nothing', async () => {
    // let the first agent settle, then stop it
    await sleep(100);
    const first = agents[0];
    first.ac.abort();
    await first.agent.done;
    const before = await dumpKernel(ns.runner);
    const ifindex = ((before.link as J[])[0] as J).ifindex;

    const counting = new CountingRunner(ns.runner);
    const reports: ReconcileReport[] = [];
    const { agent, ac } = start(counting, (r) => reports.push(r));
    await until('the first reconcile report', () => reports.length >= 1, 3000);
    assert.deepEqual(reports[0].commands, []);
    assert.deepEqual(writesOf(counting), []);
    const afterDump = await dumpKernel(ns.runner);
    assert.equal(((afterDump.link as J[])[0] as J).ifindex, ifindex);
    assert.deepEqual(afterDump, before);
    ac.abort();
    await agent.done;
    // and after the second agent stopped, everything is still there
    assert.deepEqual(await dumpKernel(ns.runner), before);
  });
});
