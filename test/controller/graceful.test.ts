// Graceful deletion and drain against a MemoryStore: deletePodGracefully (Kubernetes semantics), the controller
// draining scale-down surplus and replacing a pod a user deletes at once, the gatewayMaintenance* annotations on
// exactly the clients of a draining gateway, and EgressGateway status as the pods change. No kubelet runs here: the
// tests play its part (addresses, Ready conditions, removing a pod when its window ends).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ANNOTATION, type EgressGateway, type Pod } from '../../src/api/types.js';
import { deletePodGracefully, runController } from '../../src/controller/index.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import type { WatchEvent } from '../../src/datastore/types.js';
import { memoryLogger } from '../../src/log.js';
import { clientNamespace, clientPod, egressGateway, felixConfiguration, ippool, maintenanceAnnotations, namespace, namespaceNamed, node, pod, podStatus, type EgressChoice } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';

const T0 = new Date('2030-01-01T00:00:00.000Z');
const fixedNow = () => T0;
/** Every change is expected to be followed within ~1 s. */
const SOON = 1000;

describe('deletePodGracefully', () => {
  let store: MemoryStore;
  beforeEach(() => {
    store = new MemoryStore();
  });
  afterEach(() => store.close());

  const key = { namespace: 'default', name: 'web' };
  const get = async () => (await store.get({ kind: 'Pod', ...key })) as Pod | undefined;

  it('a scheduled pod becomes terminating: deletionTimestamp = now + its terminationGracePeriodSeconds', async () => {
    await store.create(pod('default', 'web', { node: 'n1', spec: { terminationGracePeriodSeconds: 45 } }));
    const r = await deletePodGracefully(store, key, { now: fixedNow });
    assert.equal(r.outcome, 'terminating');
    const p = (await get())!;
    assert.equal(p.metadata.deletionTimestamp, '2030-01-01T00:00:45.000Z');
    assert.equal(p.metadata.deletionGracePeriodSeconds, 45);
  });

  it('default grace 30; an explicit grace wins; a second delete never extends the window, a shorter one shortens it', async () => {
    await store.create(pod('default', 'web', { node: 'n1' }));
    assert.equal((await deletePodGracefully(store, key, { now: fixedNow })).outcome, 'terminating');
    assert.equal((await get())!.metadata.deletionTimestamp, '2030-01-01T00:00:30.000Z');
    assert.equal((await get())!.metadata.deletionGracePeriodSeconds, 30);
    const rv = (await get())!.metadata.resourceVersion;
    const later = () => new Date(T0.getTime() + 5000);
    assert.equal((await deletePodGracefully(store, key, { now: later })).outcome, 'unchanged');
    assert.equal((await deletePodGracefully(store, key, { now: later, gracePeriodSeconds: 600 })).outcome, 'unchanged');
    assert.equal((await get())!.metadata.resourceVersion, rv, 'nothing written');
    assert.equal((await deletePodGracefully(store, key, { now: later, gracePeriodSeconds: 10 })).outcome, 'terminating');
    assert.equal((await get())!.metadata.deletionTimestamp, '2030-01-01T00:00:15.000Z');
    assert.equal((await get())!.metadata.deletionGracePeriodSeconds, 10);
  });

  it('grace 0 removes at once, also a terminating pod', async () => {
    await store.create(pod('default', 'web', { node: 'n1' }));
    await deletePodGracefully(store, key, { gracePeriodSeconds: 10, now: fixedNow });
    const r = await deletePodGracefully(store, key, { gracePeriodSeconds: 0 });
    assert.equal(r.outcome, 'deleted');
    assert.equal(await get(), undefined);
    assert.equal((await deletePodGracefully(store, key)).outcome, 'not-found');
  });

  it('a pod with no node, or a finished one, is removed at once; a uid that does not match is not touched', async () => {
    await store.create(pod('default', 'web'));
    assert.equal((await deletePodGracefully(store, key, { gracePeriodSeconds: 30 })).outcome, 'deleted');
    await store.create(pod('default', 'web', { node: 'n1', phase: 'Succeeded' }));
    assert.equal((await deletePodGracefully(store, key)).outcome, 'deleted');
    await store.create(pod('default', 'web', { node: 'n1' }));
    assert.equal((await deletePodGracefully(store, key, { uid: 'someone-else' })).outcome, 'not-found');
    assert.equal((await get())!.metadata.deletionTimestamp, undefined);
    await assert.rejects(deletePodGracefully(store, key, { gracePeriodSeconds: -1 }), RangeError);
  });
});

describe('controller: drain, maintenance annotations and status', () => {
  let store: MemoryStore;
  let abort: AbortController;
  let done: Promise<void>;
  let log: ReturnType<typeof memoryLogger>;
  let nextIp = 0;

  const KEY = { kind: 'EgressGateway', namespace: 'prod', name: 'red' };
  const getGateway = async () => (await store.get(KEY)) as EgressGateway;
  const allPods = async (name = 'red') =>
    ((await store.list('Pod', { namespace: 'prod' })).items as Pod[]).filter((p) => p.metadata.annotations?.[ANNOTATION.gatewayOf] === name);
  const livePods = async () => (await allPods()).filter((p) => !p.metadata.deletionTimestamp);
  const terminating = async () => (await allPods()).filter((p) => p.metadata.deletionTimestamp);

  /** The kubelet's part: every gateway pod without an address gets one, Running and Ready. */
  async function runPods(): Promise<void> {
    for (const p of await allPods()) {
      if (p.status?.podIP) continue;
      const ip = `10.10.10.${nextIp++}`;
      await store.update({ ...p, status: podStatus({ ip, hostIP: '172.31.0.11' }) });
    }
  }

  async function setReplicas(n: number): Promise<void> {
    const g = await getGateway();
    g.spec.replicas = n;
    await store.update(g);
  }

  /** A running client pod on n3 (no Ready condition: clients need none). */
  function client(ns: string, name: string, ip: string): Pod {
    return pod(ns, name, { node: 'n3', ip, ready: null });
  }

  beforeEach(async () => {
    store = new MemoryStore();
    log = memoryLogger();
    nextIp = 0;
    await store.create(ippool('default', '10.244.0.0/16'));
    await store.create(ippool('egress', '10.10.10.0/29', { blockSize: 31, nodeSelector: '!all()' }));
    await store.create(node('n1', { labels: { egress: 'yes' } }));
    await store.create(node('n2', { labels: { egress: 'yes' } }));
    await store.create(node('n3'));
    await store.create(felixConfiguration());
    await store.create(namespace('prod'));
    // tenant-a uses red; tenant-b uses blue (another gateway); plain uses none; one pod of plain asks for red itself.
    const red: EgressChoice = { selector: "egress-code == 'red'", namespaceSelector: namespaceNamed('prod') };
    await store.create(clientNamespace('tenant-a', red));
    await store.create(clientNamespace('tenant-b', { ...red, selector: "egress-code == 'blue'" }));
    await store.create(namespace('plain'));
    await store.create(client('tenant-a', 'a1', '10.244.1.1'));
    await store.create(client('tenant-a', 'a2', '10.244.1.2'));
    await store.create(client('tenant-b', 'b1', '10.244.2.1'));
    await store.create(client('plain', 'p1', '10.244.3.1'));
    await store.create(clientPod('plain', 'p2', red, { node: 'n3', ip: '10.244.3.2', ready: null }));
    abort = new AbortController();
    done = runController({ store, log, signal: abort.signal, resyncMs: 60_000 });
  });

  afterEach(async () => {
    abort.abort();
    await done;
    await store.close();
  });

  async function threeReadyReplicas(): Promise<Pod[]> {
    await store.create(
      egressGateway('prod', 'red', {
        replicas: 3,
        template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { egress: 'yes' }, terminationGracePeriodSeconds: 20 } },
      }),
    );
    await until('3 pods', async () => (await allPods()).length === 3, SOON);
    await runPods();
    await until('status: 3 ready', async () => (await getGateway()).status?.readyReplicas === 3, SOON);
    return livePods();
  }

  it('status: all ready, with each replica\'s node, IP and number of clients', async () => {
    const pods = await threeReadyReplicas();
    const st = (await getGateway()).status!;
    assert.deepEqual(st.conditions!.map((c) => [c.type, c.status, c.reason, c.message]), [
      ['Ready', 'True', 'AllReplicasReady', '3 of 3 gateway pods ready'],
      ['Degraded', 'False', 'AsExpected', ''],
    ]);
    const byName = new Map(pods.map((p) => [p.metadata.name, p]));
    assert.deepEqual(
      st.replicas,
      [...byName.keys()].sort().map((n) => ({ pod: n, node: byName.get(n)!.spec.nodeName, ip: byName.get(n)!.status!.podIP, health: 'Ready', clients: 3 })),
      'clients: a1, a2 (namespace) and p2 (pod annotation)',
    );
    // get egw -o wide shows READY from status.readyReplicas (checked in the CLI tests); nothing more is written
    // while nothing changes.
    const rv = (await getGateway()).metadata.resourceVersion;
    await sleep(200);
    assert.equal((await getGateway()).metadata.resourceVersion, rv);
  });

  it('status: a pod failing its probes makes the gateway Degraded (ProbesFailing) and that replica NotReady', async () => {
    const [p] = await threeReadyReplicas();
    const message = 'icmp probe: no reply from 198.51.100.1 for 15s';
    await store.update({ ...p, status: { ...p.status, conditions: [{ type: 'Ready', status: 'False', reason: 'ICMPProbeFailing', message }] } });
    await until('ProbesFailing', async () => (await getGateway()).status?.conditions?.[1]?.reason === 'ProbesFailing', SOON);
    const st = (await getGateway()).status!;
    assert.equal(st.readyReplicas, 2);
    assert.deepEqual(st.conditions!.map((c) => [c.type, c.status, c.reason]), [['Ready', 'False', 'ProbesFailing'], ['Degraded', 'True', 'ProbesFailing']]);
    assert.deepEqual(st.replicas!.find((r) => r.pod === p.metadata.name), {
      pod: p.metadata.name,
      node: p.spec.nodeName,
      ip: p.status!.podIP,
      health: 'NotReady',
      reasons: ['ICMPProbeFailing', message],
      clients: 3,
    });
  });

  it('scale 3 → 2: one pod drains for the template\'s grace period and is not replaced', async () => {
    await threeReadyReplicas();
    const t0 = Date.now();
    await setReplicas(2);
    await until('one pod terminating', async () => (await terminating()).length === 1, SOON);
    const [gone] = await terminating();
    assert.equal(gone.metadata.deletionGracePeriodSeconds, 20);
    const at = Date.parse(gone.metadata.deletionTimestamp!);
    assert.ok(at >= t0 + 20_000 && at <= Date.now() + 20_000, gone.metadata.deletionTimestamp);
    await sleep(300);
    assert.equal((await livePods()).length, 2, 'not replaced');
    assert.equal((await allPods()).length, 3, 'the draining pod stays until its kubelet removes it');
    const st = (await getGateway()).status!;
    assert.equal(st.readyReplicas, 2);
    assert.deepEqual(st.conditions!.map((c) => [c.type, c.status, c.reason, c.message]), [
      ['Ready', 'True', 'AllReplicasReady', '2 of 2 gateway pods ready, 1 draining'],
      ['Degraded', 'False', 'AsExpected', ''],
    ]);
    assert.deepEqual(st.replicas!.at(-1), {
      pod: gone.metadata.name,
      node: gone.spec.nodeName,
      ip: gone.status!.podIP,
      health: 'Draining',
      reasons: [`drain window ends ${gone.metadata.deletionTimestamp}`],
      clients: 3,
    });
    // The window ends: the kubelet deletes the pod; the status forgets it.
    await store.delete({ kind: 'Pod', namespace: 'prod', name: gone.metadata.name });
    await until('status without the drained pod', async () => (await getGateway()).status?.replicas?.length === 2, SOON);
    assert.equal((await getGateway()).status!.conditions![0].message, '2 of 2 gateway pods ready');
  });

  it('a user deletes one of 3: a replacement is created at once; the clients of the draining gateway, and only they, are told', async () => {
    const pods = await threeReadyReplicas();
    const victim = pods[0];
    // Count the writes to each client pod from here on, and note the pods created (with their revision).
    const writes = new Map<string, number>();
    const created: { name: string; revision: number }[] = [];
    const w = await store.watch({ kind: 'Pod', fromRevision: await store.revision() }, (events: WatchEvent[]) => {
      for (const e of events) if (e.type === 'MODIFIED') writes.set(`${e.object.metadata.namespace}/${e.object.metadata.name}`, (writes.get(`${e.object.metadata.namespace}/${e.object.metadata.name}`) ?? 0) + 1);
      for (const e of events) if (e.type === 'ADDED') created.push({ name: e.object.metadata.name, revision: e.revision });
    });
    try {
      const r = await deletePodGracefully(store, { namespace: 'prod', name: victim.metadata.name }, { gracePeriodSeconds: 10, now: fixedNow });
      assert.equal(r.outcome, 'terminating');
      // at once: from the deletion's own event, within SOON (the controller's resync is 60 s here) …
      await until('a replacement', async () => (await livePods()).length === 3, SOON);
      assert.equal((await allPods()).length, 4);
      // … and because of it: the one pod created since, created after the victim was marked terminating
      const replacement = (await livePods()).find((p) => !pods.some((q) => q.metadata.name === p.metadata.name));
      await until('the replacement\'s creation event', () => created.length > 0, SOON);
      assert.deepEqual(created.map((c) => c.name), [replacement?.metadata.name]);
      const deletedAt = Number(r.pod!.metadata.resourceVersion);
      assert.ok(created[0].revision > deletedAt, `replacement created at revision ${created[0].revision}, the delete written at ${deletedAt}`);

      const want = maintenanceAnnotations(victim.status!.podIP!, '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:10.000Z');
      const annotations = async (ns: string, name: string) => ((await store.get({ kind: 'Pod', namespace: ns, name })) as Pod).metadata.annotations ?? {};
      const has = (a: Record<string, string>) => Object.entries(want).every(([k, v]) => a[k] === v);
      await until('clients annotated', async () => has(await annotations('tenant-a', 'a1')) && has(await annotations('tenant-a', 'a2')) && has(await annotations('plain', 'p2')), SOON);
      await runPods(); // the replacement runs
      await sleep(300);
      for (const [ns, name] of [['tenant-b', 'b1'], ['plain', 'p1']]) {
        const a = await annotations(ns, name);
        assert.ok(!Object.keys(a).some((k) => k.includes('gatewayMaintenance')), `${ns}/${name} is no client of red: ${JSON.stringify(a)}`);
      }
      for (const g of await livePods()) assert.ok(!Object.keys(g.metadata.annotations ?? {}).some((k) => k.includes('gatewayMaintenance')), 'gateways are no clients');
      assert.equal((await annotations('plain', 'p2'))[ANNOTATION.selector], "egress-code == 'red'", 'other annotations kept');
      assert.deepEqual(
        Object.fromEntries(['tenant-a/a1', 'tenant-a/a2', 'plain/p2', 'tenant-b/b1', 'plain/p1'].map((k) => [k, writes.get(k) ?? 0])),
        { 'tenant-a/a1': 1, 'tenant-a/a2': 1, 'plain/p2': 1, 'tenant-b/b1': 0, 'plain/p1': 0 },
        'one write per client',
      );

      // The gateway is gone: the annotations stay (they describe the last maintenance).
      await store.delete({ kind: 'Pod', namespace: 'prod', name: victim.metadata.name });
      await until('status forgets the drained pod', async () => !(await getGateway()).status?.replicas?.some((r) => r.pod === victim.metadata.name), SOON);
      assert.ok(has(await annotations('tenant-a', 'a1')));
      assert.equal(writes.get('tenant-a/a1'), 1);
    } finally {
      await w.close();
    }
  });

  it('deleting the EgressGateway drains its pods with their grace period; a draining pod on a vanished node is removed', async () => {
    await threeReadyReplicas();
    await store.delete(KEY);
    await until('all terminating', async () => (await terminating()).length === 3, SOON);
    for (const p of await allPods()) assert.equal(p.metadata.deletionGracePeriodSeconds, 20);
    const onN1 = (await allPods()).filter((p) => p.spec.nodeName === 'n1');
    assert.ok(onN1.length > 0);
    await store.delete({ kind: 'Node', namespace: '', name: 'n1' });
    await until('the pods of n1 removed', async () => (await allPods()).every((p) => p.spec.nodeName !== 'n1'), SOON);
    assert.ok(log.lines.some((l) => /deleted gateway pod .*its node n1 no longer exists/.test(l)), log.lines.join('\n'));
  });
});
