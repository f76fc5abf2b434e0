// runController against a MemoryStore: gateway pods follow their EgressGateway, reacting to changes through the watch
// (resync is set far out, so only the watch can drive these), and IPAM garbage collection.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ANNOTATION, LABEL, type EgressGateway, type Pod } from '../../src/api/types.js';
import { runController } from '../../src/controller/index.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import { Ipam } from '../../src/ipam/index.js';
import { memoryLogger } from '../../src/log.js';
import { egressGateway, ippool, node, pod } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';

const KEY = { kind: 'EgressGateway', namespace: 'prod', name: 'red' };
/** Every change is expected to be followed within ~1 s. */
const SOON = 1000;

let store: MemoryStore;
let abort: AbortController;
let done: Promise<void>;
let log: ReturnType<typeof memoryLogger>;

/** The gateway's pods that are not terminating (the ones that count as replicas). */
async function gatewayPods(name = 'red'): Promise<Pod[]> {
  return (await allGatewayPods(name)).filter((p) => !p.metadata.deletionTimestamp);
}

/** Every pod of the gateway, draining ones too (no kubelet runs here, so they stay until deleted by hand). */
async function allGatewayPods(name = 'red'): Promise<Pod[]> {
  const pods = (await store.list('Pod', { namespace: 'prod' })).items as Pod[];
  return pods.filter((p) => p.metadata.annotations?.[ANNOTATION.gatewayOf] === name);
}

async function getGateway(): Promise<EgressGateway> {
  return (await store.get(KEY)) as EgressGateway;
}

async function setReplicas(n: number): Promise<void> {
  const g = await getGateway();
  g.spec.replicas = n;
  await store.update(g);
}

async function podCount(n: number): Promise<void> {
  await until(`${n} gateway pods`, async () => (await gatewayPods()).length === n, SOON);
}

function start(gcGraceMs = 10_000): void {
  abort = new AbortController();
  done = runController({ store, log, signal: abort.signal, resyncMs: 60_000, gcGraceMs });
}

describe('runController', () => {
  beforeEach(async () => {
    store = new MemoryStore();
    log = memoryLogger();
    await store.create(ippool('default', '10.244.0.0/16'));
    await store.create(ippool('egress', '10.10.10.0/29', { blockSize: 31, nodeSelector: '!all()' }));
    await store.create(node('n1', { labels: { egress: 'yes' } }));
    await store.create(node('n2', { labels: { egress: 'yes' } }));
    await store.create(node('n3'));
  });

  afterEach(async () => {
    abort.abort();
    await done;
    await store.close();
  });

  it('keeps replicas, relabels, and deletes with the EgressGateway, each within ~1 s of the change', async () => {
    start();
    await store.create(
      egressGateway('prod', 'red', {
        replicas: 2,
        template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { egress: 'yes' }, terminationGracePeriodSeconds: 30 } },
      }),
    );
    await podCount(2);
    const uid = (await getGateway()).metadata.uid!;
    const first = await gatewayPods();
    assert.deepEqual(first.map((p) => p.spec.nodeName).sort(), ['n1', 'n2']);
    for (const p of first) {
      assert.match(p.metadata.name, /^red-[a-z0-9]{5}$/);
      const { name, namespace, labels, annotations, ownerReferences } = p.metadata;
      assert.deepEqual(
        { name, namespace, labels, annotations, ownerReferences, spec: p.spec },
        {
          name: p.metadata.name,
          namespace: 'prod',
          labels: { 'egress-code': 'red', [LABEL.gatewayOf]: 'red' },
          annotations: { [ANNOTATION.gatewayOf]: 'red', [ANNOTATION.ipv4Pools]: '["egress"]' },
          ownerReferences: [{ apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', name: 'red', uid, controller: true }],
          spec: { nodeName: p.spec.nodeName, containers: [{ name: 'gateway', image: 'egw', command: ['egw', 'gateway'] }], terminationGracePeriodSeconds: 30 },
        },
      );
    }

    // Scale to 3: one more.
    await setReplicas(3);
    await podCount(3);
    const three = await gatewayPods();
    const added = three.filter((p) => !first.some((f) => f.metadata.name === p.metadata.name));
    assert.equal(added.length, 1);
    assert.ok(first.every((f) => three.some((p) => p.metadata.name === f.metadata.name)), 'the first two are kept');

    // Scale to 1: two deleted, the newest first (the oldest stays); they drain for the template's 30 s.
    await setReplicas(1);
    const t0 = Date.now();
    await podCount(1);
    const [left] = await gatewayPods();
    const oldest = [...three].sort((a, b) => (a.metadata.creationTimestamp! < b.metadata.creationTimestamp! ? -1 : 1))[0];
    assert.equal(left.metadata.creationTimestamp, oldest.metadata.creationTimestamp);
    const draining = (await allGatewayPods()).filter((p) => p.metadata.deletionTimestamp);
    assert.equal(draining.length, 2);
    for (const p of draining) {
      assert.equal(p.metadata.deletionGracePeriodSeconds, 30);
      const at = Date.parse(p.metadata.deletionTimestamp!);
      assert.ok(at >= t0 + 30_000 && at <= Date.now() + 30_000, `deletionTimestamp ${p.metadata.deletionTimestamp}`);
    }
    // The kubelet would remove them when their window ends; here that is done by hand.
    for (const p of draining) await store.delete({ kind: 'Pod', namespace: 'prod', name: p.metadata.name });

    // Template labels change: relabelled in place.
    const g = await getGateway();
    g.spec.template.metadata.labels = { 'egress-code': 'blue', team: 'a' };
    await store.update(g);
    await until('relabel', async () => JSON.stringify((await gatewayPods())[0]?.metadata.labels) === JSON.stringify({ 'egress-code': 'blue', team: 'a', [LABEL.gatewayOf]: 'red' }), SOON);
    const [relabelled] = await gatewayPods();
    assert.equal(relabelled.metadata.name, left.metadata.name, 'same pod, not a new one');
    assert.equal(relabelled.spec.nodeName, left.spec.nodeName);

    // Status conditions were recorded.
    const st = (await getGateway()).status;
    assert.deepEqual(st?.conditions?.map((c) => [c.type, c.status, c.reason]), [['Ready', 'False', 'PodsNotReady'], ['Degraded', 'False', 'AsExpected']]);

    // EgressGateway deleted: its pods drain with their own grace period (30 s, from the template).
    await store.delete(KEY);
    await podCount(0);
    const gone = await allGatewayPods();
    assert.equal(gone.length, 1);
    assert.equal(gone[0].metadata.deletionGracePeriodSeconds, 30);
    assert.ok(log.lines.some((l) => /deleted gateway pod .*no longer exists/.test(l)));
  });

  it('reacts to a store change within ~1 s', async () => {
    start();
    await sleep(50); // running and idle
    const t0 = Date.now();
    await store.create(egressGateway('prod', 'red', { replicas: 1 }));
    await podCount(1);
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
  });

  it('a nodeSelector matching no node: no pods, the reason logged and in status', async () => {
    start();
    await store.create(egressGateway('prod', 'red', { replicas: 2, template: { metadata: { labels: { a: 'b' } }, spec: { nodeSelector: { egress: 'nowhere' } } } }));
    await until('NoMatchingNode in status', async () => (await getGateway()).status?.conditions?.some((c) => c.reason === 'NoMatchingNode') === true, SOON);
    assert.equal((await gatewayPods()).length, 0);
    const warn = log.lines.filter((l) => /WARN .*EgressGateway prod\/red: no schedulable node matches/.test(l));
    assert.equal(warn.length, 1, log.lines.join('\n'));
    assert.match(warn[0], /reason=NoMatchingNode/);
    const conds = (await getGateway()).status!.conditions!;
    assert.deepEqual(conds.map((c) => [c.type, c.status, c.reason]), [['Ready', 'False', 'NoMatchingNode'], ['Degraded', 'True', 'NoMatchingNode']]);
    // A matching node appears: the pods follow.
    await store.create(node('n9', { labels: { egress: 'nowhere' } }));
    await podCount(2);
    await until('Degraded cleared', async () => (await getGateway()).status?.conditions?.some((c) => c.type === 'Degraded' && c.status === 'False') === true, SOON);
  });

  it('pools that cannot hold replicas: as many pods as addresses, PoolExhausted logged', async () => {
    await store.create(ippool('tiny', '10.10.20.0/31', { blockSize: 31, nodeSelector: '!all()' }));
    start();
    await store.create(egressGateway('prod', 'red', { replicas: 3, ipPools: [{ name: 'tiny' }] }));
    await podCount(2);
    await until('PoolExhausted in status', async () => (await getGateway()).status?.conditions?.some((c) => c.reason === 'PoolExhausted') === true, SOON);
    assert.ok(log.lines.some((l) => /WARN .*"tiny" can hold 2 gateway pods, 3 wanted.*reason=PoolExhausted/.test(l)));
  });

  it('GC releases the allocation of a deleted pod after the grace, and keeps live pods\' allocations', async () => {
    const ipam = new Ipam(store);
    const pools = [ippool('default', '10.244.0.0/16')];
    await store.create(pod('prod', 'alive'));
    await ipam.allocate({ handle: 'pod:prod/alive', node: 'n1', pools });
    await ipam.allocate({ handle: 'pod:prod/ghost', node: 'n1', pools });
    await ipam.allocate({ handle: 'other:thing', node: 'n1', pools });
    start(300);
    const t0 = Date.now();
    await until('ghost released', async () => !(await ipam.allocations()).has('pod:prod/ghost'), 2000);
    assert.ok(Date.now() - t0 >= 250, 'not before the grace');
    const left = await ipam.allocations();
    assert.deepEqual([...left.keys()].sort(), ['other:thing', 'pod:prod/alive']);
    assert.ok(log.lines.some((l) => /released the address of a pod that no longer exists handle=pod:prod\/ghost/.test(l)));

    // A pod deleted while the controller runs: released after the grace.
    await store.delete({ kind: 'Pod', namespace: 'prod', name: 'alive' });
    await until('alive released', async () => !(await ipam.allocations()).has('pod:prod/alive'), 2000);
  });

  it('a pod that comes back within the grace keeps its address', async () => {
    const ipam = new Ipam(store);
    const pools = [ippool('default', '10.244.0.0/16')];
    const ip = await ipam.allocate({ handle: 'pod:prod/web', node: 'n1', pools });
    start(400);
    await sleep(100);
    await store.create(pod('prod', 'web'));
    await sleep(600);
    assert.equal((await ipam.allocations()).get('pod:prod/web'), ip);
  });

  it('an orphaned address claimed again during the grace gets a new grace (the allocator may be about to create its pod)', async () => {
    const ipam = new Ipam(store);
    const pools = [ippool('default', '10.244.0.0/16')];
    const ip = await ipam.allocate({ handle: 'pod:prod/late', node: 'n1', pools });
    const t0 = Date.now();
    start(1000);
    await sleep(500);
    assert.equal(await ipam.allocate({ handle: 'pod:prod/late', node: 'n1', pools }), ip, 'claimed again, same address');
    const reclaimed = Date.now();
    await sleep(Math.max(0, t0 + 1300 - Date.now()));
    assert.equal((await ipam.allocations()).get('pod:prod/late'), ip, 'kept past the first grace: it was claimed again');
    await until('released a grace after the new claim', async () => !(await ipam.allocations()).has('pod:prod/late'), 3000);
    assert.ok(Date.now() - reclaimed >= 900, 'not before the new grace');
  });

  it('resolves when aborted, and survives datastore errors', async () => {
    start();
    await store.create(egressGateway('prod', 'red', { replicas: 1 }));
    await podCount(1);
    abort.abort();
    await done;
    assert.ok(log.lines.some((l) => /controller stopped/.test(l)));
    // A store that fails every call: the controller logs and keeps going until aborted.
    const broken = new MemoryStore();
    await broken.close();
    const ac = new AbortController();
    const lines = memoryLogger();
    const p = runController({ store: broken, log: lines, signal: ac.signal, resyncMs: 50 });
    // (nothing can be listed: the informer reports it and lists again with backoff)
    await until('error logged', () => lines.lines.some((l) => /ERROR .*datastore list\/watch failed/.test(l)), SOON);
    ac.abort();
    await p;
    abort = new AbortController(); // afterEach aborts this one
    done = Promise.resolve();
  });
});
