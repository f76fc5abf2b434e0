// EtcdStore against a real etcd (the Debian etcd-server binary) on loopback. Skipped where etcd is missing, except
// under EGW_E2E=1, where that is a failure.
//
// The shared conformance cases (conformance.ts) run here with etcd's capabilities (the revision is the server's, a txn
// is one revision, at most 128 objects a txn, compaction is server-wide); the cases below are etcd's own: the key
// layout, the transaction limits, compaction during a watch, an etcd restart during a watch, and racing writers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { EtcdStore, ETCD_MAX_TXN_OPS } from '../../src/datastore/etcd.js';
import { openStore } from '../../src/datastore/open.js';
import { StoreError, type Store, type TxnOp } from '../../src/datastore/types.js';
import { E2E } from '../helpers/env.js';
import { ippool } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { CIDR, collect, gw, STORE_POLL } from './helpers.js';
import { conformance } from './conformance.js';
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

const skip = missing && !E2E ? missing : false;
/** One etcd server for the whole file; every test works under its own prefix. */
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
  if (skip) return;
  if (missing) assert.fail(`EGW_E2E=1 but the etcd tests cannot run: ${missing}`);
  srv = await startEtcd();
});
after(async () => {
  for (const s of stores) await s.close();
  await srv?.stop();
});

conformance('etcd', async () => new EtcdStore({ endpoints: [srv.endpoint], prefix: `/c${++n}` }), {
  description: /^etcd:\/\//,
  startsAtZero: false,
  txnRevisions: 'per-txn',
  maxTxnObjects: ETCD_MAX_TXN_OPS,
  compaction: 'server',
}, { skip });

describe('EtcdStore (real etcd)', { skip }, () => {

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

  it('compaction is the server\'s: compacting again at an earlier revision is a no-op, and a watch from 0 is refused', async () => {
    // (conformance.ts covers compaction as every backend sees it.)
    const s = fresh();
    const base = await s.revision();
    for (let i = 0; i < 4; i++) await s.create(gw('default', `g${i}`));
    await s.compact(base + 2);
    await s.compact(base + 1);
    // Revision 0 means "from the beginning of history", which on a compacted server is gone, whatever the prefix.
    await assert.rejects(fresh().watch({ fromRevision: 0 }, () => {}), isStoreError('Compacted', 'revision 0'));
    const ok = await collect(s, { fromRevision: base + 2 });
    await ok.waitFor(2);
    assert.deepEqual(ok.events.map((e) => e.revision), [base + 3, base + 4]);
    await ok.watch.close();
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
});
