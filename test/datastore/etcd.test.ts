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
import type { Resource } from '../../src/api/meta.js';
import { startInformer } from '../../src/datastore/informer.js';
import { updateWithRetry } from '../../src/datastore/retry.js';
import { StoreError, type Store, type TxnOp, type WatchEvent } from '../../src/datastore/types.js';
import { E2E } from '../helpers/env.js';
import { ippool } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { CIDR, collect, gw, STORE_POLL, isStoreError } from './helpers.js';
import { conformance } from './conformance.js';
import { startProxy } from './tcp-proxy.js';
import { etcdMissing, makeTestPki, opensslMissing, startEtcd, type EtcdServer, type TestPki } from './etcd-server.js';

const missing = etcdMissing();
const RED = { kind: 'EgressGateway', namespace: 'default', name: 'red' };

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

  it('two writers racing: concurrent updateWithRetry increments all land; a stale resourceVersion loses with Conflict', async (t) => {
    const a = fresh('/race');
    const b = fresh('/race');
    const key = { kind: 'EgressGateway', namespace: 'default', name: 'counter' };
    const c = await a.create(gw('default', 'counter', undefined, { count: 0 }));
    // Four workers per client, five increments each: 40 read-modify-writes on one object.
    let conflicts = 0;
    const counting = (s: Store): Store =>
      new Proxy(s, {
        get(target, prop, recv) {
          const v = Reflect.get(target, prop, recv);
          if (prop !== 'update') return typeof v === 'function' ? v.bind(target) : v;
          return (o: Resource) =>
            target.update(o).catch((e: unknown) => {
              if (e instanceof StoreError && e.code === 'Conflict') conflicts++;
              throw e;
            });
        },
      });
    const inc = (s: Store) =>
      updateWithRetry<Resource>(s, key, (cur) => ({ ...cur!, spec: { count: (cur!.spec as { count: number }).count + 1 } }), { attempts: 1000 });
    const worker = async (s: Store) => {
      for (let i = 0; i < 5; i++) await inc(s);
    };
    await Promise.all([a, a, a, a, b, b, b, b].map((s) => worker(counting(s))));
    const final = await b.get(key);
    assert.deepEqual(final?.spec, { count: 40 });
    assert.equal(final?.metadata.uid, c.metadata.uid);
    t.diagnostic(`40 increments by 8 workers on 2 clients: ${conflicts} lost races retried`);
    // Same resourceVersion from both clients: exactly one update wins, the other gets Conflict, five times over.
    for (let round = 0; round < 5; round++) {
      const cur = (await a.get(key))!;
      const results = await Promise.allSettled([a.update({ ...cur, spec: { count: 100 + round } }), b.update({ ...cur, spec: { count: 200 + round } })]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1, `round ${round}: ${results.map((r) => r.status).join(',')}`);
      assert.ok(lost[0].reason instanceof StoreError && lost[0].reason.code === 'Conflict', String(lost[0].reason));
      assert.match(lost[0].reason.message, /EgressGateway default\/counter/);
    }
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

  it('compaction past a watch that fell behind (its connection cut): Compacted; an informer over the store lists again and converges', async () => {
    // The watching client reaches etcd through a proxy; cutting it leaves its watch behind while another client
    // writes and compacts past it; on reconnect the watch resumes after its last event, which is gone.
    const proxy = await startProxy(srv.endpoint);
    try {
      const direct = fresh('/behind');
      const behind = new EtcdStore({ endpoints: [proxy.endpoint], prefix: '/behind' });
      stores.push(behind);
      const base = await direct.revision();
      for (let i = 0; i < 3; i++) await direct.create(gw('default', `g${i}`));
      const w = await collect(behind, { fromRevision: base });
      const errors: unknown[] = [];
      const ac = new AbortController();
      const view = new Map<string, Resource>();
      let replaced = 0;
      const inf = startInformer({
        store: behind,
        kinds: ['EgressGateway'],
        signal: ac.signal,
        backoff: { minMs: 50, maxMs: 500 },
        onReplace: (objs) => {
          replaced++;
          view.clear();
          for (const o of objs) view.set(o.metadata.name, o);
        },
        onEvents: (evs) => {
          for (const e of evs) {
            if (e.type === 'DELETED') view.delete(e.object.metadata.name);
            else view.set(e.object.metadata.name, e.object);
          }
        },
        onError: (e) => errors.push(e),
      });
      try {
        await w.waitFor(3);
        await until('informer listed and watching', () => inf.synced && view.size === 3, 10000, STORE_POLL);
        proxy.cut();
        await direct.update(gw('default', 'g0', undefined, { replicas: 5 }));
        await direct.delete({ kind: 'EgressGateway', namespace: 'default', name: 'g1' });
        for (let i = 3; i < 6; i++) await direct.create(gw('default', `g${i}`));
        await direct.compact(await direct.revision());
        proxy.restore();
        await until('the watch fails', () => w.errors.length > 0, 20000, STORE_POLL);
        assert.equal(w.errors.length, 1);
        assert.ok(w.errors[0] instanceof StoreError && w.errors[0].code === 'Compacted', String(w.errors[0]));
        assert.deepEqual(w.events.map((e) => e.object.metadata.name), ['g0', 'g1', 'g2'], 'nothing after the cut was delivered');
        // The informer saw the same Compacted, listed again, and holds exactly what the store holds.
        const want = (await direct.list('EgressGateway')).items;
        await until(
          () => `informer converged (view ${[...view.keys()].join(',')}, ${replaced} lists)`,
          () => view.size === want.length && want.every((o) => view.get(o.metadata.name)?.metadata.resourceVersion === o.metadata.resourceVersion),
          20000,
          STORE_POLL,
        );
        assert.ok(errors.some((e) => e instanceof StoreError && e.code === 'Compacted'), `informer errors: ${errors.map(String).join('; ')}`);
        assert.ok(replaced >= 2, 'listed again');
        assert.deepEqual([...view.keys()].sort(), ['g0', 'g2', 'g3', 'g4', 'g5']);
        assert.deepEqual(view.get('g0')?.spec, { replicas: 5 });
      } finally {
        ac.abort();
        await inf.done;
      }
    } finally {
      await proxy.close();
    }
  });

  it('an etcd restart during a watch while a writer keeps writing: the watch sees the writer\'s log exactly once, in order', async () => {
    // etcd is stopped by PID and started again on the same data directory and ports. The writer (its own client)
    // retries a write until it is known to be stored; its log is every (name, revision) that etcd stored. A second
    // watch with a slow handler is still catching up on the history when etcd goes away, so its resume point is
    // the last event it took, not the last response header.
    const writer = fresh('/restart');
    const watcher = fresh('/restart');
    const base = await writer.revision();
    const fast = await collect(watcher, { fromRevision: base });
    const slowSeen: WatchEvent[] = [];
    const slowErrors: unknown[] = [];
    const slow = await watcher.watch({ fromRevision: base, onError: (e) => slowErrors.push(e) }, async (evs) => {
      slowSeen.push(...evs);
      await sleep(30);
    });
    const log: { name: string; rv: string }[] = [];
    const TOTAL = 40;
    let restarted = false;
    const write = async (name: string): Promise<void> => {
      for (const deadline = Date.now() + 30000; ; ) {
        if (Date.now() > deadline) throw new Error(`writer: ${name} not stored within 30 s`);
        try {
          const o = await writer.create(gw('default', name));
          log.push({ name, rv: o.metadata.resourceVersion! });
          return;
        } catch (e) {
          if (e instanceof StoreError && e.code === 'AlreadyExists') {
            // An earlier try was stored though its answer was lost.
            const o = await writer.get({ kind: 'EgressGateway', namespace: 'default', name });
            log.push({ name, rv: o!.metadata.resourceVersion! });
            return;
          }
          if (!(e instanceof StoreError && e.code === 'Unavailable')) throw e;
          await sleep(50);
        }
      }
    };
    const writing = (async () => {
      for (let i = 0; i < TOTAL; i++) {
        await write(`w${String(i).padStart(2, '0')}`);
        await sleep(10);
      }
    })();
    await until('some writes before the restart', () => log.length >= 10, 10000, STORE_POLL);
    const oldPid = srv.pid;
    await srv.restart();
    restarted = true;
    assert.notEqual(srv.pid, oldPid, 'a new etcd process');
    await writing;
    assert.ok(restarted);
    assert.equal(log.length, TOTAL);
    const expected = log.map((l) => `${l.name}@${l.rv}`);
    await fast.waitFor(TOTAL, 20000);
    await until(() => `slow watch: ${slowSeen.length} of ${TOTAL}`, () => slowSeen.length >= TOTAL || slowErrors.length > 0, 20000, STORE_POLL);
    await sleep(200);
    assert.deepEqual(fast.errors, []);
    assert.deepEqual(slowErrors, []);
    assert.deepEqual(fast.events.map((e) => `${e.object.metadata.name}@${e.revision}`), expected);
    assert.deepEqual(slowSeen.map((e) => `${e.object.metadata.name}@${e.revision}`), expected);
    await fast.watch.close();
    await slow.close();
  });

  it('an informer over etcd sees every object of a multi-object txn (the events share one revision)', async () => {
    const s = fresh();
    const ac = new AbortController();
    const names: string[] = [];
    const inf = startInformer({
      store: s,
      kinds: ['EgressGateway'],
      signal: ac.signal,
      onReplace: () => {},
      onEvents: (evs) => void names.push(...evs.map((e) => e.object.metadata.name)),
    });
    try {
      await until('informer watching', () => inf.synced, 10000, STORE_POLL);
      await s.txn([0, 1, 2].map((i): TxnOp => ({ op: 'create', object: gw('default', `t${i}`) })));
      await s.create(gw('default', 'after'));
      await until('the write after the txn arrived', () => names.includes('after'), 10000, STORE_POLL);
      assert.deepEqual(names, ['t0', 't1', 't2', 'after']);
    } finally {
      ac.abort();
      await inf.done;
    }
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

describe('EtcdStore over TLS (real etcd with a CA, a server certificate for 127.0.0.1 and client-cert-auth)', { skip: skip || (opensslMissing() && !E2E ? opensslMissing() : false) }, () => {
  let pki: TestPki;
  let tls: EtcdServer;
  before(async () => {
    const why = opensslMissing();
    if (why) assert.fail(`EGW_E2E=1 but the TLS tests cannot run: ${why}`);
    pki = makeTestPki();
    tls = await startEtcd({ tls: pki });
  });
  after(async () => {
    await tls?.stop();
    pki?.remove();
  });

  it('openStore with --etcd-ca/--etcd-cert/--etcd-key files speaks https: writes, lists and watches', async () => {
    const s = await openStore(`etcd://${tls.endpoint}/tls`, { etcdTls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    stores.push(s);
    const base = await s.revision();
    const w = await collect(s, { fromRevision: base });
    await s.create(gw('default', 'red'));
    await s.txn([{ op: 'create', object: ippool('p', CIDR) }]);
    await w.waitFor(2);
    assert.deepEqual(w.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED red', 'ADDED p']);
    assert.deepEqual((await s.list('EgressGateway')).items.map((o) => o.metadata.name), ['red']);
    await w.watch.close();
  });

  it('the files can come from EGW_ETCD_CA/EGW_ETCD_CERT/EGW_ETCD_KEY; a flag wins over its variable', async () => {
    const saved = { ca: process.env.EGW_ETCD_CA, cert: process.env.EGW_ETCD_CERT, key: process.env.EGW_ETCD_KEY };
    Object.assign(process.env, { EGW_ETCD_CA: pki.otherCa, EGW_ETCD_CERT: pki.clientCert, EGW_ETCD_KEY: pki.clientKey });
    try {
      // The variable's CA did not sign the server's certificate; the flag's did.
      const wrong = await openStore(`etcd://${tls.endpoint}/tls`);
      stores.push(wrong);
      await assert.rejects(wrong.list('EgressGateway'), isStoreError('Unavailable', '--etcd-ca'));
      const right = await openStore(`etcd://${tls.endpoint}/tls`, { etcdTls: { ca: pki.ca } });
      stores.push(right);
      assert.equal((await right.list('EgressGateway')).items.length, 1);
    } finally {
      for (const [k, v] of Object.entries({ EGW_ETCD_CA: saved.ca, EGW_ETCD_CERT: saved.cert, EGW_ETCD_KEY: saved.key })) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
