// KubernetesStore through the real @kubernetes/client-node (its KubeConfig, HTTP and Watch) against the stand-in API
// server (src/lab/apiserver.ts) over loopback HTTP. The shared conformance cases run with the kubernetes: capabilities
// (docs/kubernetes-datastore.md); the cases below are Kubernetes' own: 410 → Compacted → relist, a stream the server
// cuts, 409, bookmarks, field and label selectors, the status subresource, kubeconfig errors, and the informer.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Resource } from '../../src/api/meta.js';
import { startInformer } from '../../src/datastore/informer.js';
import { KubernetesStore, loadKubeConfig } from '../../src/datastore/kubernetes.js';
import { STATUS_SUBRESOURCE, kubeResource } from '../../src/datastore/kubernetes-kinds.js';
import type { KubeViews } from '../../src/datastore/kubernetes-views.js';
import { openStore } from '../../src/datastore/open.js';
import { StoreError, type Store } from '../../src/datastore/types.js';
import { pod } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { collect, gw, isStoreError, STORE_POLL } from './helpers.js';
import { conformance } from './conformance.js';
import { KubeApiStandIn } from '../../src/lab/apiserver.js';

const dir = mkdtempSync(join(tmpdir(), 'egw-kstore-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const statusPlurals = [...STATUS_SUBRESOURCE].map((k) => kubeResource(k).info.plural);

/** A stand-in server and a store on it; closing the store stops the server. */
async function fresh(opts: { views?: KubeViews; bookmarkMs?: number; notServed?: string[] } = {}): Promise<{ srv: KubeApiStandIn; store: KubernetesStore; file: string }> {
  const srv = new KubeApiStandIn({ statusSubresource: statusPlurals, bookmarkMs: opts.bookmarkMs, notServed: opts.notServed });
  await srv.start();
  const file = join(dir, `kubeconfig-${++n}`);
  writeFileSync(file, srv.kubeconfig());
  const store = new KubernetesStore({ kubeconfig: file, views: opts.views });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    await srv.stop();
  };
  return { srv, store, file };
}

conformance('kubernetes (stand-in API server)', async () => (await fresh()).store, {
  description: /^kubernetes:/,
  startsAtZero: false,
  txnRevisions: 'per-op',
  maxTxnObjects: 1,
  compaction: 'none',
  watchOrder: 'per-kind',
  unknownKinds: false,
});

const RED = { kind: 'EgressGateway', namespace: 'default', name: 'red' };

describe('kubernetes: datastore', () => {
  const open: Store[] = [];
  const use = async (opts?: Parameters<typeof fresh>[0]) => {
    const f = await fresh(opts);
    open.push(f.store);
    return f;
  };
  after(async () => {
    for (const s of open) await s.close();
  });

  it('a watch from a compacted resourceVersion fails with Compacted; the informer lists again and misses nothing', async () => {
    const { srv, store } = await use();
    const b = await store.revision();
    await store.create(gw('default', 'a'));
    await store.create(gw('default', 'b'));
    srv.compact(b + 2);
    await assert.rejects(store.watch({ kind: 'EgressGateway', fromRevision: b }, () => {}), isStoreError('Compacted', '410'));
    // The informer: started, then its watch is cut and the history compacted past it while it is away.
    const ac = new AbortController();
    const names = () => inf.list('EgressGateway').map((o) => o.metadata.name).sort();
    const inf = startInformer({ store, kinds: ['EgressGateway'], signal: ac.signal, onReplace: () => {}, onEvents: () => {}, onError: () => {}, backoff: { minMs: 5, maxMs: 20 } });
    try {
      await inf.whenSynced();
      assert.deepEqual(names(), ['a', 'b']);
      const syncs = inf.syncs;
      await store.create(gw('default', 'c'));
      await until('c seen', () => names().includes('c'), 5000, STORE_POLL);
      srv.compact(srv.revision);
      await store.create(gw('default', 'd'));
      srv.compact(srv.revision);
      srv.cutWatches();
      await store.delete({ kind: 'EgressGateway', namespace: 'default', name: 'a' });
      await until('view has b c d', () => names().join() === 'b,c,d', 5000, STORE_POLL);
      assert.ok(inf.syncs >= syncs, 'the informer is synced');
    } finally {
      ac.abort();
      await inf.done;
    }
  });

  it('a watch stream the server cuts is restarted from the last resourceVersion: nothing lost, nothing twice', async () => {
    const { srv, store } = await use();
    const b = await store.revision();
    const w = await collect(store, { kind: 'EgressGateway', fromRevision: b });
    for (let i = 0; i < 5; i++) {
      await store.create(gw('default', `g${i}`));
      if (i % 2 === 0) srv.cutWatches();
    }
    await w.waitFor(5);
    await sleep(100);
    assert.deepEqual(w.events.map((e) => e.revision), [1, 2, 3, 4, 5].map((x) => b + x));
    assert.deepEqual(w.events.map((e) => e.object.metadata.name), ['g0', 'g1', 'g2', 'g3', 'g4']);
    assert.ok(srv.watchRequests.length >= 4, `the store reconnected (${srv.watchRequests.length} watch requests)`);
    assert.deepEqual(w.errors, []);
    await w.watch.close();
  });

  it('409 on a stale resourceVersion is Conflict; 409 AlreadyExists is AlreadyExists', async () => {
    const { store } = await use();
    const c = await store.create(gw('default', 'red'));
    await store.update({ ...c, spec: { replicas: 2 } });
    await assert.rejects(store.update({ ...c, spec: { replicas: 3 } }), isStoreError('Conflict', 'EgressGateway default/red'));
    await assert.rejects(store.delete(RED, { resourceVersion: c.metadata.resourceVersion }), isStoreError('Conflict'));
    await assert.rejects(store.create(gw('default', 'red')), isStoreError('AlreadyExists', 'EgressGateway default/red'));
    assert.deepEqual((await store.get(RED))?.spec, { replicas: 2 });
  });

  it('asks for bookmarks, and a bookmark moves the restart point past changes it did not need', async () => {
    const { srv, store } = await use({ bookmarkMs: 20 });
    const b = await store.revision();
    const w = await collect(store, { kind: 'EgressGateway', fromRevision: b });
    // Writes of another kind move the global resourceVersion; the EgressGateway watch sees them only as bookmarks.
    await store.create(pod('default', 'p1'));
    await store.create(pod('default', 'p2'));
    const after2 = srv.revision;
    await until('a bookmark past the pods', () => srv.watchRequests.length > 0 && srv.revision === after2, 5000, STORE_POLL);
    await sleep(100);
    srv.cutWatches();
    await until('reconnected', () => srv.watchRequests.length >= 2, 5000, STORE_POLL);
    const q = srv.watchRequests.at(-1)!;
    assert.equal(q.get('allowWatchBookmarks'), 'true');
    assert.equal(q.get('resourceVersion'), String(after2), 'restarted from the bookmark, not from the list');
    await store.create(gw('default', 'x'));
    await w.waitFor(1);
    assert.deepEqual(w.events.map((e) => e.object.metadata.name), ['x']);
    await w.watch.close();
  });

  it('field selectors scope a kind (the agent sees only its node’s pods); label selectors go to the server', async () => {
    const { srv, store: admin } = await use();
    const mine = pod('default', 'mine', { node: 'node-1' });
    const other = pod('default', 'other', { node: 'node-2' });
    const file = join(dir, `kubeconfig-agent-${n}`);
    writeFileSync(file, srv.kubeconfig());
    const agent = new KubernetesStore({ kubeconfig: file, views: { Pod: [{ fieldSelector: 'spec.nodeName=node-1' }] } });
    try {
      const b = await admin.revision();
      const w = await collect(agent, { kind: 'Pod', fromRevision: b });
      await admin.create(other);
      await admin.create(mine);
      await admin.create({ ...other, metadata: { ...other.metadata, name: 'other2' } });
      await w.waitFor(1);
      await sleep(100);
      assert.deepEqual(w.events.map((e) => e.object.metadata.name), ['mine']);
      assert.deepEqual((await agent.list('Pod')).items.map((p) => p.metadata.name), ['mine']);
      assert.equal(srv.watchRequests.at(-1)!.get('fieldSelector'), 'spec.nodeName=node-1');
      await w.watch.close();
      await admin.create(gw('default', 'l1', { app: 'a' }));
      await admin.create(gw('default', 'l2', { app: 'b' }));
      assert.deepEqual((await admin.list('EgressGateway', { labelSelector: 'app=b' })).items.map((o) => o.metadata.name), ['l2']);
      assert.deepEqual((await admin.list('EgressGateway', { labelSelector: (l) => l.app === 'a' })).items.map((o) => o.metadata.name), ['l1']);
    } finally {
      await agent.close();
    }
  });

  it('status goes through the /status subresource: a spec update keeps it, a status write changes only it', async () => {
    const { store } = await use();
    const c = await store.create({ ...gw('default', 'red'), status: { readyReplicas: 1 } } as Resource);
    assert.deepEqual(c.status, { readyReplicas: 1 });
    const u = await store.update({ ...c, spec: { replicas: 3 } });
    assert.deepEqual(u.status, { readyReplicas: 1 }, 'a PUT without a status change leaves the stored status');
    const s = await store.update({ ...u, status: { readyReplicas: 3 } });
    assert.deepEqual(s.status, { readyReplicas: 3 });
    assert.deepEqual(s.spec, { replicas: 3 });
  });

  it('a txn of more than one op fails with Invalid naming the limitation, and writes nothing', async () => {
    const { store } = await use();
    const b = await store.revision();
    await assert.rejects(
      store.txn([
        { op: 'create', object: gw('default', 'a') },
        { op: 'create', object: gw('default', 'b') },
      ]),
      isStoreError('Invalid', 'no multi-object transactions'),
    );
    assert.equal(await store.revision(), b);
    const [p] = await store.txn([{ op: 'put', object: gw('default', 'a') }]);
    assert.equal(p.metadata.resourceVersion, String(b + 1));
  });

  it('kubeconfig errors name the file', async () => {
    const missing = join(dir, 'nope.yaml');
    assert.throws(() => loadKubeConfig(missing), (e: unknown) => e instanceof StoreError && e.code === 'Invalid' && e.message.includes(missing) && /no such file/.test(e.message));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'this: [is not: a kubeconfig');
    assert.throws(() => loadKubeConfig(bad), (e: unknown) => e instanceof StoreError && e.message.includes(bad));
    const noCluster = join(dir, 'nocluster.yaml');
    writeFileSync(noCluster, 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n');
    assert.throws(() => loadKubeConfig(noCluster), (e: unknown) => e instanceof StoreError && e.message.includes(noCluster) && /current cluster/.test(e.message));
    await assert.rejects(openStore(`kubernetes:${missing}`), (e: unknown) => e instanceof StoreError && e.message.includes(missing));
    await assert.rejects(openStore('kubernetes:', { kubeconfig: missing }), (e: unknown) => e instanceof StoreError && e.message.includes(missing));
    await assert.rejects(openStore(`kubernetes:${bad}`, { kubeconfig: bad }), isStoreError('Invalid', 'both name a kubeconfig'));
  });

  it('openStore(kubernetes:PATH) reaches the server and round-trips an object', async () => {
    const { file } = await use();
    const s = await openStore(`kubernetes:${file}`);
    try {
      assert.match(s.description, /^kubernetes:/);
      await s.create(gw('default', 'red'));
      assert.equal((await s.get(RED))?.kind, 'EgressGateway');
    } finally {
      await s.close();
    }
  });

  it('the informer over kubernetes: lists several kinds, then follows each kind’s watch', async () => {
    const { store } = await use();
    await store.create(gw('default', 'g0'));
    const ac = new AbortController();
    const seen: string[] = [];
    const inf = startInformer({
      store,
      kinds: ['EgressGateway', 'Pod'],
      signal: ac.signal,
      onReplace: () => {},
      onEvents: (evs) => void seen.push(...evs.map((e) => `${e.type} ${e.object.kind} ${e.object.metadata.name}`)),
    });
    try {
      await inf.whenSynced();
      assert.deepEqual(inf.list().map((o) => o.metadata.name), ['g0']);
      await store.create(pod('default', 'p1'));
      await store.create(gw('default', 'g1'));
      await store.delete({ kind: 'EgressGateway', namespace: 'default', name: 'g0' });
      await until('three events', () => seen.length >= 3, 5000, STORE_POLL);
      await sleep(50);
      assert.deepEqual([...seen].sort(), ['ADDED EgressGateway g1', 'ADDED Pod p1', 'DELETED EgressGateway g0']);
      assert.deepEqual(inf.list().map((o) => o.metadata.name).sort(), ['g1', 'p1']);
    } finally {
      ac.abort();
      await inf.done;
    }
  });
});

describe('kubernetes: controller leader election on a coordination.k8s.io/v1 Lease', () => {
  it('two electors on the stand-in: exactly one leads, on the Lease object; when it stops, the other takes over', async () => {
    const { store, file } = await fresh();
    const other = new KubernetesStore({ kubeconfig: file });
    const { electorFor, LEADER_LEASE_KEY } = await import('../../src/controller/leader.js');
    const { memoryLogger } = await import('../../src/log.js');
    const timing = { leaseMs: 600, renewEveryMs: 150, renewDeadlineMs: 400, retryMs: 50 };
    const leading = new Set<string>();
    const run = (id: string, s: Store, ac: AbortController) =>
      electorFor(s, { id, timing, log: memoryLogger() }).run(ac.signal, {
        onElected: async (term) => {
          leading.add(id);
          await new Promise<void>((r) => (term.signal.aborted ? r() : term.signal.addEventListener('abort', () => r(), { once: true })));
          leading.delete(id);
        },
      });
    const a = new AbortController();
    const b = new AbortController();
    const ra = run('a', store, a);
    const rb = run('b', other, b);
    try {
      await until('one leader', async () => leading.size === 1, 10_000, STORE_POLL);
      await sleep(800); // more than a lease: still one, renewing
      assert.equal(leading.size, 1);
      const first = [...leading][0]!;
      // the lock is a real Lease at its Kubernetes path
      const lease = await store.get(LEADER_LEASE_KEY);
      assert.equal(lease?.apiVersion, 'coordination.k8s.io/v1');
      assert.match(JSON.stringify(lease?.spec), new RegExp(`"holderIdentity":"${first}`));
      (first === 'a' ? a : b).abort();
      await until('the other leads', async () => leading.size === 1 && !leading.has(first), 10_000, STORE_POLL);
    } finally {
      a.abort();
      b.abort();
      await Promise.allSettled([ra, rb]);
      await other.close();
      await store.close();
    }
  });
});

describe('kubernetes: a CRD that is not installed', () => {
  it('a list of its kind is a clear Unavailable error naming the CRD; other kinds are unaffected', async () => {
    const { store } = await fresh({ notServed: ['egressgateways.operator.tigera.io'] });
    try {
      await assert.rejects(store.list('EgressGateway'), isStoreError('Unavailable', 'does not serve egressgateways.operator.tigera.io v1: is the CRD egressgateways.operator.tigera.io installed?'));
      assert.deepEqual((await store.list('Pod')).items, []);
    } finally {
      await store.close();
    }
  });
});
