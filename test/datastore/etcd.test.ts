// EtcdStore against a real etcd (the Debian etcd-server binary) on loopback. Skipped where etcd is missing, except
// under EGW_E2E=1, where that is a failure.
//
// The shared conformance cases (conformance.ts) are not run here yet: they assert absolute revisions (a new store at 0,
// the first create at '1') and one revision per op of a txn, while on etcd the revision is the server's (shared by
// every prefix) and a txn is one revision. These tests check the same behaviour relative to the revision a test starts at.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { EtcdStore, ETCD_MAX_TXN_OPS } from '../../src/datastore/etcd.js';
import { openStore } from '../../src/datastore/open.js';
import { StoreError, type Store, type TxnOp, type WatchEvent } from '../../src/datastore/types.js';
import { E2E } from '../helpers/env.js';
import { ippool } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { CIDR, collect, gw, STORE_POLL, summary } from './helpers.js';
import { etcdMissing, startEtcd, type EtcdServer } from './etcd-server.js';

const missing = etcdMissing();
const RED = { kind: 'EgressGateway', namespace: 'default', name: 'red' };

function isStoreError(code: StoreError['code'], ...mentions: string[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof StoreError, `expected a StoreError, got ${String(e)}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `message ${JSON.stringify(e.message)} should mention ${JSON.stringify(m)}`);
    return true;
  };
}

describe('EtcdStore (real etcd)', { skip: missing && !E2E ? missing : false }, () => {
  let srv: EtcdServer;
  let n = 0;
  const stores: Store[] = [];
  /** A store on its own prefix, so tests do not see each other's objects. */
  const fresh = (prefix = `/t${++n}`): EtcdStore => {
    const s = new EtcdStore({ endpoints: [srv.endpoint], prefix });
    stores.push(s);
    return s;
  };

  before(async () => {
    if (missing) assert.fail(`EGW_E2E=1 but the etcd tests cannot run: ${missing}`);
    srv = await startEtcd();
  });
  after(async () => {
    for (const s of stores) await s.close();
    await srv?.stop();
  });

  it('stores objects under PREFIX/egw/v1/<kind>/[<namespace>/]<name> with resourceVersion = mod_revision', async () => {
    const s = fresh('/keys');
    const base = await s.revision();
    assert.ok(base >= 1);
    assert.deepEqual(await s.list('EgressGateway'), { items: [], revision: base });
    const c = await s.create(gw('default', 'red', { app: 'x' }));
    assert.equal(c.metadata.resourceVersion, String(base + 1));
    assert.match(c.metadata.uid ?? '', /^[0-9a-f-]{36}$/);
    assert.deepEqual(await s.get(RED), c);
    const p = await s.create(ippool('p1', CIDR));
    const raw = new Etcd3({ hosts: `http://${srv.endpoint}` });
    try {
      const keys = await raw.getAll().prefix('/keys/').keys();
      assert.deepEqual(keys.sort(), ['/keys/egw/v1/EgressGateway/default/red', '/keys/egw/v1/IPPool/p1']);
      const kv = (await raw.get('/keys/egw/v1/IPPool/p1').exec()).kvs[0];
      assert.equal(String(kv.mod_revision), p.metadata.resourceVersion);
    } finally {
      raw.close();
    }
    assert.equal(s.description, `etcd://${srv.endpoint}/keys`);
  });

  it('create, update and delete with the same errors as the other backends', async () => {
    const s = fresh();
    const c = await s.create(gw('default', 'red'));
    await assert.rejects(s.create(gw('default', 'red')), isStoreError('AlreadyExists', 'EgressGateway default/red'));
    const u = await s.update({ ...c, spec: { replicas: 2 } });
    assert.equal(Number(u.metadata.resourceVersion), Number(c.metadata.resourceVersion) + 1);
    assert.equal(u.metadata.uid, c.metadata.uid);
    assert.equal(u.metadata.creationTimestamp, c.metadata.creationTimestamp);
    await assert.rejects(s.update({ ...c, spec: { replicas: 3 } }), isStoreError('Conflict', 'EgressGateway default/red', 'resourceVersion'));
    await assert.rejects(s.update(gw('default', 'ghost')), isStoreError('NotFound', 'EgressGateway default/ghost'));
    await assert.rejects(s.delete(RED, { resourceVersion: c.metadata.resourceVersion }), isStoreError('Conflict'));
    const before = await s.revision();
    await assert.rejects(s.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'a/b' } }), isStoreError('Invalid', "'/'"));
    assert.equal(await s.revision(), before, 'a refused write uses no revision');
    const d = await s.delete(RED, { resourceVersion: u.metadata.resourceVersion });
    assert.equal(d.metadata.resourceVersion, String(before + 1));
    assert.deepEqual(d.spec, { replicas: 2 });
    assert.equal(await s.get(RED), undefined);
    await assert.rejects(s.delete(RED), isStoreError('NotFound'));
    const again = await s.create(gw('default', 'red'));
    assert.notEqual(again.metadata.uid, c.metadata.uid);
  });

  it('list: sorted by namespace then name, namespace and label filters, the revision read at', async () => {
    const s = fresh();
    await s.txn([
      { op: 'create', object: gw('zeta', 'a', { tier: 'gold' }) },
      { op: 'create', object: gw('alpha', 'b', { tier: 'silver' }) },
      { op: 'create', object: gw('alpha', 'a', { tier: 'gold' }) },
      { op: 'create', object: ippool('pool-b', '10.0.1.0/24') },
      { op: 'create', object: ippool('pool-a', '10.0.0.0/24') },
    ]);
    const r = await s.list('EgressGateway');
    assert.equal(r.revision, await s.revision());
    assert.deepEqual(r.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['alpha/a', 'alpha/b', 'zeta/a']);
    assert.deepEqual((await s.list('EgressGateway', { namespace: 'alpha', labelSelector: 'tier=gold' })).items.map((o) => o.metadata.name), ['a']);
    assert.deepEqual((await s.list('IPPool', { namespace: 'alpha' })).items.map((o) => o.metadata.name), ['pool-a', 'pool-b']);
    // 'Egress' is not a prefix match of 'EgressGateway'.
    assert.deepEqual((await s.list('Egress')).items, []);
  });

  it('a txn is one etcd revision, all-or-nothing, and its failing op is named', async () => {
    const s = fresh();
    const existing = await s.create(gw('default', 'old'));
    const base = await s.revision();
    const res = await s.txn([
      { op: 'create', object: gw('default', 'red') },
      { op: 'update', object: gw('default', 'red', undefined, { replicas: 7 }) },
      { op: 'put', object: ippool('p1', CIDR) },
      { op: 'delete', key: { kind: 'EgressGateway', namespace: 'default', name: 'old' } },
    ]);
    assert.deepEqual(res.map((r) => r.metadata.resourceVersion), Array(4).fill(String(base + 1)));
    assert.equal(res[0].metadata.uid, res[1].metadata.uid);
    assert.equal(await s.revision(), base + 1);
    assert.deepEqual((await s.get(RED))?.spec, { replicas: 7 });
    await assert.rejects(
      s.txn([
        { op: 'create', object: gw('default', 'a') },
        { op: 'update', object: gw('default', 'ghost') },
      ]),
      isStoreError('NotFound', 'txn op 2 of 2', 'EgressGateway default/ghost'),
    );
    await assert.rejects(
      s.txn([
        { op: 'create', object: gw('default', 'b') },
        { op: 'update', object: { ...existing, metadata: { ...existing.metadata, namespace: 'default', name: 'red', resourceVersion: '1' } } },
      ]),
      isStoreError('Conflict', 'txn op 2 of 2'),
    );
    assert.equal(await s.revision(), base + 1);
    assert.deepEqual((await s.list('EgressGateway')).items.map((o) => o.metadata.name), ['red']);
    assert.deepEqual(await s.txn([]), []);
  });

  it('a batch beyond etcd transaction limits is refused before anything is written', async () => {
    const s = fresh();
    const base = await s.revision();
    const many: TxnOp[] = Array.from({ length: ETCD_MAX_TXN_OPS + 1 }, (_, i) => ({ op: 'create', object: gw('default', `g${i}`) }));
    await assert.rejects(s.txn(many), isStoreError('Invalid', `${ETCD_MAX_TXN_OPS + 1} objects`, `at most ${ETCD_MAX_TXN_OPS}`));
    // Within the op limit, but over the request size (etcd's default 1.5 MiB).
    const big = 'x'.repeat(200 * 1024);
    const heavy: TxnOp[] = Array.from({ length: 9 }, (_, i) => ({ op: 'create', object: gw('default', `h${i}`, undefined, { big }) }));
    await assert.rejects(s.txn(heavy), isStoreError('Invalid', 'bytes'));
    assert.equal(await s.revision(), base);
    assert.deepEqual((await s.list('EgressGateway')).items, []);
    // Exactly at the op limit works.
    const ok = await s.txn(many.slice(0, ETCD_MAX_TXN_OPS));
    assert.equal(ok.length, ETCD_MAX_TXN_OPS);
  });

  it('two writers racing on one key with the same resourceVersion: exactly one wins, the other gets Conflict', async () => {
    const a = fresh('/race');
    const b = fresh('/race');
    const c = await a.create(gw('default', 'red'));
    for (let round = 0; round < 5; round++) {
      const cur = (await a.get(RED))!;
      const results = await Promise.allSettled([
        a.update({ ...cur, spec: { replicas: 10 + round } }),
        b.update({ ...cur, spec: { replicas: 20 + round } }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1, `round ${round}: ${results.map((r) => r.status).join(',')}`);
      assert.ok(lost[0].reason instanceof StoreError && lost[0].reason.code === 'Conflict', String(lost[0].reason));
    }
    // Unconditional writers all succeed (a lost compare is re-planned), each at its own revision.
    const revs = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).update(gw('default', 'red', undefined, { replicas: i }))));
    assert.equal(new Set(revs.map((r) => r.metadata.resourceVersion)).size, 8);
    assert.equal((await a.get(RED))?.metadata.uid, c.metadata.uid);
  });

  it('watch: replays from a revision in order, streams new events, DELETED carries the last stored object', async () => {
    const s = fresh();
    const base = await s.revision();
    await s.create(gw('default', 'red', { a: '1' }));
    await s.update(gw('default', 'red', { a: '2' }));
    await s.create(ippool('p', CIDR));
    const w = await collect(s, { fromRevision: base });
    await w.waitFor(3);
    await s.delete(RED);
    await s.create(gw('other', 'blue'));
    await w.waitFor(5);
    const r = (i: number) => base + i;
    assert.deepEqual(w.events.map(summary), [
      `${r(1)} ADDED EgressGateway default/red rv=${r(1)}`,
      `${r(2)} MODIFIED EgressGateway default/red rv=${r(2)}`,
      `${r(3)} ADDED IPPool p rv=${r(3)}`,
      `${r(4)} DELETED EgressGateway default/red rv=${r(4)}`,
      `${r(5)} ADDED EgressGateway other/blue rv=${r(5)}`,
    ]);
    assert.deepEqual(w.events[3].object.metadata.labels, { a: '2' });
    await w.watch.close();
    // From the middle: exactly the later events.
    const mid = await collect(s, { fromRevision: r(3) });
    await mid.waitFor(2);
    await sleep(30);
    assert.deepEqual(mid.events.map((e) => e.revision), [r(4), r(5)]);
    await mid.watch.close();
  });

  it('watch: kind and namespace filters; a namespace without a kind filters every kind', async () => {
    const s = fresh();
    const base = await s.revision();
    const byKindNs = await collect(s, { kind: 'EgressGateway', namespace: 'blue', fromRevision: base });
    const byNs = await collect(s, { namespace: 'blue', fromRevision: base });
    const pools = await collect(s, { kind: 'IPPool', namespace: 'blue', fromRevision: base });
    for (let i = 0; i < 9; i++) {
      const ns = ['red', 'blue', 'green'][i % 3];
      await s.create(gw(ns, `g${i}`));
      if (i % 3 === 0) await s.create(ippool(`p${i}`, CIDR));
      if (i % 3 === 1) await s.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `pod${i}`, namespace: ns } });
    }
    await byKindNs.waitFor(3);
    await byNs.waitFor(6);
    await pools.waitFor(3);
    await sleep(40);
    assert.deepEqual(byKindNs.events.map((e) => e.object.metadata.name), ['g1', 'g4', 'g7']);
    assert.deepEqual(byNs.events.map((e) => e.object.metadata.name), ['g1', 'pod1', 'g4', 'pod4', 'g7', 'pod7']);
    assert.equal(pools.events.length, 3, 'IPPool is cluster-scoped: the namespace is ignored');
    for (const c of [byKindNs, byNs, pools]) {
      for (let i = 1; i < c.events.length; i++) assert.ok(c.events[i].revision > c.events[i - 1].revision);
      await c.watch.close();
    }
  });

  it('watch: awaits the handler, stops on close from inside it, and reports a throwing handler once', async () => {
    const s = fresh();
    const base = await s.revision();
    let running = 0;
    let maxRunning = 0;
    const got: number[] = [];
    const w = await s.watch({ fromRevision: base }, async (events) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(10);
      got.push(...events.map((e) => e.revision));
      running--;
    });
    for (let i = 0; i < 6; i++) await s.create(gw('default', `g${i}`));
    await until('6 events', () => got.length >= 6, 5000, STORE_POLL);
    assert.equal(maxRunning, 1);
    assert.deepEqual(got, Array.from({ length: 6 }, (_, i) => base + i + 1));
    await w.close();

    const seen: WatchEvent[] = [];
    const self = await s.watch({ fromRevision: base + 6 }, async (events) => {
      seen.push(...events);
      await self.close();
    });
    await s.create(gw('default', 'x'));
    await until('first', () => seen.length > 0, 5000, STORE_POLL);
    await s.create(gw('default', 'y'));
    await sleep(50);
    assert.equal(seen.length, 1);

    const errors: unknown[] = [];
    let calls = 0;
    await s.watch({ fromRevision: await s.revision(), onError: (e) => errors.push(e) }, () => {
      calls++;
      throw new Error('boom');
    });
    await s.create(gw('default', 'z1'));
    await until('onError', () => errors.length > 0, 5000, STORE_POLL);
    await s.create(gw('default', 'z2'));
    await sleep(50);
    assert.equal(calls, 1);
    assert.equal(errors.length, 1);
  });

  it('compaction: a watch from a compacted revision fails with Compacted; objects and later watches are fine', async () => {
    const s = fresh();
    const base = await s.revision();
    for (let i = 0; i < 4; i++) await s.create(gw('default', `g${i}`));
    await s.compact(base + 2);
    await s.compact(base + 1); // already compacted: a no-op
    await assert.rejects(s.watch({ fromRevision: base + 1 }, () => {}), isStoreError('Compacted'));
    await assert.rejects(s.watch({ fromRevision: 0 }, () => {}), isStoreError('Compacted'));
    await assert.rejects(s.compact(base + 99), isStoreError('Invalid'));
    const ok = await collect(s, { fromRevision: base + 2 });
    await ok.waitFor(2);
    assert.deepEqual(ok.events.map((e) => e.revision), [base + 3, base + 4]);
    await ok.watch.close();
    assert.equal((await s.list('EgressGateway')).items.length, 4);
  });

  it('compaction during a watch that still needs the history: the watch stops with Compacted, once', async () => {
    // etcd catches a watcher that starts in the past up on its next sync pass (every 100 ms): compacting right after
    // the watch is created usually leaves it needing history that is gone. When the pass won the race the watch got
    // everything instead; then try again (each attempt on its own history).
    const s = fresh();
    let compacted = 0;
    for (let attempt = 0; attempt < 8 && compacted === 0; attempt++) {
      const base = await s.revision();
      for (let i = 0; i < 20; i++) await s.txn([{ op: 'put', object: gw('default', `g${i}`) }]);
      const errors: unknown[] = [];
      const seen: number[] = [];
      const w = await s.watch({ fromRevision: base, onError: (e) => errors.push(e) }, (evs) => void seen.push(...evs.map((e) => e.revision)));
      await s.compact(base + 20);
      await until('Compacted or all 20 events', () => errors.length > 0 || seen.length >= 20, 5000, STORE_POLL);
      await sleep(50);
      if (errors.length) {
        assert.equal(errors.length, 1);
        assert.ok(errors[0] instanceof StoreError && errors[0].code === 'Compacted', String(errors[0]));
        assert.deepEqual(seen, []);
        compacted++;
      } else {
        assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => base + i + 1));
        await w.close();
      }
    }
    assert.equal(compacted, 1, 'in 8 attempts, compaction never beat etcd catching the watch up');
  });

  it('a watch survives an etcd restart: it resumes after the last event it took, with no gap and no repeat', async () => {
    const s = fresh();
    const base = await s.revision();
    const w = await collect(s, { fromRevision: base });
    for (let i = 0; i < 3; i++) await s.create(gw('default', `a${i}`));
    await w.waitFor(3);
    await srv.restart();
    // The client reconnects on its own; the first calls may still see the old connection fail.
    // (AlreadyExists: an earlier try was applied though its answer was lost.)
    const wrote = (): Promise<boolean> =>
      s.create(gw('default', 'b0')).then(
        () => true,
        (e: unknown) => e instanceof StoreError && e.code === 'AlreadyExists',
      );
    await until('a write after the restart', wrote, 15000, { everyMs: 200 });
    for (let i = 1; i < 3; i++) await s.create(gw('default', `b${i}`));
    await w.waitFor(6, 15000);
    await sleep(100);
    assert.deepEqual(w.events.map((e) => e.object.metadata.name), ['a0', 'a1', 'a2', 'b0', 'b1', 'b2']);
    for (let i = 1; i < w.events.length; i++) assert.ok(w.events[i].revision > w.events[i - 1].revision);
    assert.deepEqual(w.errors, []);
    await w.watch.close();
  });

  it('openStore("etcd://HOST:PORT/PREFIX") opens an EtcdStore on that prefix', async () => {
    const s = await openStore(`etcd://${srv.endpoint}/opened`);
    stores.push(s);
    assert.ok(s instanceof EtcdStore);
    await s.create(ippool('p', CIDR));
    assert.equal((await fresh('/opened').list('IPPool')).items.length, 1);
    assert.equal((await fresh('/elsewhere').list('IPPool')).items.length, 0);
  });

  it('after close, calls fail with Unavailable', async () => {
    const s = fresh();
    await s.close();
    await assert.rejects(s.get(RED), isStoreError('Unavailable', 'closed'));
    await assert.rejects(s.watch({ fromRevision: 0 }, () => {}), isStoreError('Unavailable'));
    await s.close();
  });
});
