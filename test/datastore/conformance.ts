// The behaviour every Store backend must share. memory.test.ts, sqlite.test.ts and etcd.test.ts run it against their
// backend, each with its capabilities: where the backends legitimately differ (where revisions start, whether a txn
// is one revision or one per op, how big a txn may be, what compaction reaches) the cases assert each one's exact
// behaviour, counting revisions from the one a test starts at.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Resource } from '../../src/api/meta.js';
import { StoreError, type Store, type TxnOp, type WatchEvent } from '../../src/datastore/types.js';
import { ippool } from '../helpers/resources.js';
import { sleep } from '../helpers/wait.js';
import { CIDR, collect, gw, summary, isStoreError } from './helpers.js';
import { watchCases } from './conformance-watch.js';

export type StoreFactory = () => Promise<Store>;

/** Where a backend's visible behaviour differs from the others' (docs/architecture.md, "Datastore"). */
export interface StoreCapabilities {
  /** How `description` starts, e.g. /^memory:/. */
  description: RegExp;
  /**
   * true: a new store starts at revision 0 and only its own writes move it (memory, SQLite). false: the revision is a
   * server's, shared with other stores (etcd: every prefix and client), so a new store starts wherever the server is.
   */
  startsAtZero: boolean;
  /** 'per-op': op i of a txn gets base + i + 1 (memory, SQLite); 'per-txn': a txn is one revision for all its ops (etcd). */
  txnRevisions: 'per-op' | 'per-txn';
  /**
   * The most objects one txn may touch (etcd: 128); Infinity if unlimited. 1: no multi-object transactions, a txn of
   * two or more ops fails with Invalid and writes nothing (kubernetes:).
   */
  maxTxnObjects: number;
  /**
   * 'store': compaction is the store's own and a running watch needs the history for every event it has not yet
   * handed to its handler (memory, SQLite). 'server': compaction is the server's, for every prefix, and a running
   * watch is behind only while the server is still catching it up: events already streamed to the client are
   * delivered after a compaction too (etcd).
   */
  compaction: 'store' | 'server' | 'none';
  /**
   * 'global' (default): a watch of every kind delivers in revision order across kinds. 'per-kind': each kind's events
   * in order, kinds interleaved as their streams deliver (kubernetes: one watch per kind).
   */
  watchOrder?: 'global' | 'per-kind';
  /** false: only the kinds of src/api/meta.ts can be stored (kubernetes: a kind needs its API resource). Default true. */
  unknownKinds?: boolean;
}

async function withStore(factory: StoreFactory, caps: StoreCapabilities, fn: (s: Store, base: number) => Promise<void>): Promise<void> {
  const s = await factory();
  try {
    const base = await s.revision();
    if (caps.startsAtZero) assert.equal(base, 0, 'a new store is at revision 0');
    await fn(s, base);
  } finally {
    await s.close();
  }
}

export const RED = { kind: 'EgressGateway', namespace: 'default', name: 'red' };

/** `skip`: why the suite cannot run here (a missing server), as node:test takes it. */
export function conformance(name: string, factory: StoreFactory, caps: StoreCapabilities, opts: { skip?: string | false } = {}): void {
  /** Each case gets a fresh store and `b`, the revision it started at; `b + n` is the revision after n writes. */
  const test = (title: string, fn: (s: Store, b: number) => Promise<void>, skip: string | false = false) =>
    it(title, { skip }, () => withStore(factory, caps, fn));
  const multiOp = caps.maxTxnObjects > 1;
  /** Setup writes: one txn where the backend has multi-object txns, else one op at a time (same revisions per-op). */
  const writeAll = async (s: Store, ops: TxnOp[]): Promise<void> => {
    if (multiOp) await s.txn(ops);
    else for (const op of ops) await s.txn([op]);
  };
  /**
   * A watch's events in the order the cases compare: as delivered where the order is global; where it is per kind,
   * each kind's events must be in revision order, and they are compared sorted by revision.
   */
  const inOrder = (events: WatchEvent[]): WatchEvent[] => {
    if (caps.watchOrder !== 'per-kind') return events;
    const last = new Map<string, number>();
    for (const e of events) {
      assert.ok(e.revision > (last.get(e.object.kind) ?? -1), `${e.object.kind} events in revision order`);
      last.set(e.object.kind, e.revision);
    }
    return [...events].sort((a, b) => a.revision - b.revision);
  };
  /** Why a case that needs multi-object transactions does not run here. */
  const needsMultiOp = multiOp ? false : 'no multi-object transactions on this backend (its own tests check the Invalid error)';
  const perOp = caps.txnRevisions === 'per-op';
  /** How many revisions a successful txn of n ops uses. */
  const txnRevs = (n: number): number => (perOp ? n : 1);
  /** The revision of op i (0-based) of a txn that starts after revision `r`. */
  const opRev = (r: number, i: number): number => (perOp ? r + i + 1 : r + 1);

  describe(`Store conformance: ${name}`, { skip: opts.skip ?? false }, () => {
    describe('CRUD', () => {
      test('a new store is empty, at its starting revision (0 where nothing else shares it)', async (s, b) => {
        assert.equal(await s.revision(), b);
        assert.deepEqual(await s.list('EgressGateway'), { items: [], revision: b });
        assert.equal(await s.get(RED), undefined);
        assert.match(s.description, caps.description);
      });

      test('create sets resourceVersion, uid and creationTimestamp, and get returns the stored object', async (s, b) => {
        const before = Date.now();
        const created = await s.create(gw('default', 'red', { app: 'x' }, { replicas: 2 }));
        assert.equal(created.metadata.resourceVersion, String(b + 1));
        assert.match(created.metadata.uid ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        const ts = Date.parse(created.metadata.creationTimestamp ?? '');
        assert.ok(ts >= before - 1000 && ts <= Date.now() + 1000, 'creationTimestamp is now, in ISO form');
        // RFC 3339: with milliseconds (ours) or whole seconds (a Kubernetes API server's).
        assert.ok([new Date(ts).toISOString(), new Date(ts).toISOString().replace(/\.\d{3}Z$/, 'Z')].includes(created.metadata.creationTimestamp!));
        assert.deepEqual(created.spec, { replicas: 2 });
        assert.deepEqual(created.metadata.labels, { app: 'x' });
        assert.deepEqual(await s.get(RED), created);
        assert.equal(await s.revision(), b + 1);
        const second = await s.create(gw('default', 'blue'));
        assert.equal(second.metadata.resourceVersion, String(b + 2));
        assert.notEqual(second.metadata.uid, created.metadata.uid);
      });

      test('create ignores a caller-supplied uid, creationTimestamp and resourceVersion', async (s, b) => {
        const o = gw('default', 'red');
        o.metadata.uid = 'mine';
        o.metadata.creationTimestamp = '2000-01-01T00:00:00.000Z';
        o.metadata.resourceVersion = String(b + 77);
        const c = await s.create(o);
        assert.notEqual(c.metadata.uid, 'mine');
        assert.notEqual(c.metadata.creationTimestamp, '2000-01-01T00:00:00.000Z');
        assert.equal(c.metadata.resourceVersion, String(b + 1));
      });

      test('create of an existing object fails with AlreadyExists naming it, and consumes no revision', async (s, b) => {
        await s.create(gw('default', 'red'));
        await assert.rejects(s.create(gw('default', 'red', undefined, { replicas: 9 })), isStoreError('AlreadyExists', 'EgressGateway default/red'));
        assert.equal(await s.revision(), b + 1);
        assert.deepEqual((await s.get(RED))?.spec, { replicas: 1 });
        // Same name in another namespace, or a cluster-scoped kind, is a different object.
        await s.create(gw('other', 'red'));
        await s.create(ippool('red', CIDR));
        await assert.rejects(s.create(ippool('red', CIDR)), isStoreError('AlreadyExists', 'IPPool red'));
        assert.equal(await s.revision(), b + 3);
      });

      test('update bumps resourceVersion and preserves uid and creationTimestamp', async (s, b) => {
        const c = await s.create(gw('default', 'red'));
        const u = await s.update({ ...c, metadata: { ...c.metadata, uid: 'forged', creationTimestamp: '1999-01-01T00:00:00Z' }, spec: { replicas: 5 } });
        assert.equal(u.metadata.resourceVersion, String(b + 2));
        assert.equal(u.metadata.uid, c.metadata.uid);
        assert.equal(u.metadata.creationTimestamp, c.metadata.creationTimestamp);
        assert.deepEqual(u.spec, { replicas: 5 });
        assert.deepEqual(await s.get(RED), u);
      });

      test('update without a resourceVersion replaces unconditionally', async (s, b) => {
        await s.create(gw('default', 'red'));
        await s.update(gw('default', 'red', undefined, { replicas: 2 }));
        const u = await s.update(gw('default', 'red', undefined, { replicas: 3 }));
        assert.equal(u.metadata.resourceVersion, String(b + 3));
        assert.deepEqual((await s.get(RED))?.spec, { replicas: 3 });
      });

      test('update with a stale resourceVersion fails with Conflict naming the object', async (s, b) => {
        const c = await s.create(gw('default', 'red'));
        const u = await s.update({ ...c, spec: { replicas: 2 } });
        await assert.rejects(s.update({ ...c, spec: { replicas: 3 } }), isStoreError('Conflict', 'EgressGateway default/red', 'resourceVersion'));
        assert.equal(await s.revision(), b + 2);
        assert.deepEqual(await s.get(RED), u);
        // With the current version it succeeds.
        const u2 = await s.update({ ...u, spec: { replicas: 4 } });
        assert.equal(u2.metadata.resourceVersion, String(b + 3));
      });

      test('update of a missing object fails with NotFound naming it', async (s, b) => {
        await assert.rejects(s.update(gw('default', 'red')), isStoreError('NotFound', 'EgressGateway default/red'));
        await assert.rejects(s.update(ippool('p', CIDR)), isStoreError('NotFound', 'IPPool p'));
        assert.equal(await s.revision(), b);
      });

      test('delete returns the object at the delete revision and removes it', async (s, b) => {
        const c = await s.create(gw('default', 'red'));
        await s.create(gw('default', 'blue'));
        const d = await s.delete(RED);
        assert.equal(d.metadata.resourceVersion, String(b + 3));
        assert.equal(d.metadata.uid, c.metadata.uid);
        assert.deepEqual(d.spec, c.spec);
        assert.equal(await s.get(RED), undefined);
        assert.equal(await s.revision(), b + 3);
        assert.deepEqual((await s.list('EgressGateway')).items.map((o) => o.metadata.name), ['blue']);
        await assert.rejects(s.delete(RED), isStoreError('NotFound', 'EgressGateway default/red'));
        assert.equal(await s.revision(), b + 3);
      });

      test('delete with a stale resourceVersion fails with Conflict; with the current one it succeeds', async (s, b) => {
        const c = await s.create(gw('default', 'red'));
        const u = await s.update({ ...c, spec: { replicas: 2 } });
        await assert.rejects(s.delete(RED, { resourceVersion: c.metadata.resourceVersion }), isStoreError('Conflict', 'EgressGateway default/red'));
        assert.ok(await s.get(RED));
        const d = await s.delete(RED, { resourceVersion: u.metadata.resourceVersion });
        assert.equal(d.metadata.resourceVersion, String(b + 3));
      });

      test('a re-created object gets a new uid', async (s, b) => {
        const a = await s.create(gw('default', 'red'));
        await s.delete(RED);
        const again = await s.create(gw('default', 'red'));
        assert.notEqual(a.metadata.uid, again.metadata.uid);
        assert.equal(again.metadata.resourceVersion, String(b + 3));
      });

      test('cluster-scoped objects are keyed with namespace ""', async (s) => {
        const p = await s.create(ippool('p1', CIDR));
        assert.equal(p.metadata.namespace, undefined);
        assert.deepEqual(await s.get({ kind: 'IPPool', namespace: '', name: 'p1' }), p);
        // namespace: '' on the object is the same as no namespace.
        const q = ippool('p2', CIDR);
        q.metadata.namespace = '';
        assert.equal((await s.create(q)).metadata.namespace, undefined);
        assert.ok(await s.get({ kind: 'IPPool', namespace: '', name: 'p2' }));
      });

      test('invalid objects are rejected with Invalid and no revision is used', async (s, b) => {
        const noNs = gw('default', 'x');
        delete noNs.metadata.namespace;
        await assert.rejects(s.create(noNs), isStoreError('Invalid', 'EgressGateway x', 'namespace'));
        const nsOnCluster = ippool('p', CIDR);
        nsOnCluster.metadata.namespace = 'default';
        await assert.rejects(s.create(nsOnCluster), isStoreError('Invalid', 'cluster-scoped'));
        await assert.rejects(s.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: '' } }), isStoreError('Invalid', 'name'));
        await assert.rejects(s.create({ apiVersion: 'v1', kind: '', metadata: { name: 'a' } }), isStoreError('Invalid', 'kind'));
        await assert.rejects(s.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'a/b' } }), isStoreError('Invalid', "'/'"));
        await assert.rejects(
          s.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n', labels: { a: 1 as unknown as string } } }),
          isStoreError('Invalid', 'labels'),
        );
        await assert.rejects(s.get({ kind: '', namespace: '', name: 'x' }), isStoreError('Invalid'));
        assert.equal(await s.revision(), b);
      });

      test('unknown kinds are stored as given (or, where only known kinds can be, rejected with Invalid)', async (s) => {
        const o: Resource = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w', namespace: 'ns1' }, spec: { a: [1, 2] } };
        if (caps.unknownKinds === false) {
          await assert.rejects(s.create(o), isStoreError('Invalid', 'Widget'));
          return;
        }
        const c = await s.create(o);
        assert.deepEqual(await s.get({ kind: 'Widget', namespace: 'ns1', name: 'w' }), c);
      });
    });

    describe('txn', () => {
      test('applies every op in order and returns each result, at consecutive revisions or at one (per backend)', async (s, b) => {
        await s.create(gw('default', 'old'));
        const res = await s.txn([
          { op: 'create', object: gw('default', 'red') },
          { op: 'update', object: gw('default', 'red', undefined, { replicas: 7 }) },
          { op: 'put', object: ippool('p1', CIDR) },
          { op: 'delete', key: { kind: 'EgressGateway', namespace: 'default', name: 'old' } },
        ]);
        assert.deepEqual(
          res.map((r) => [r.kind, r.metadata.name, r.metadata.resourceVersion]),
          [
            ['EgressGateway', 'red', String(opRev(b + 1, 0))],
            ['EgressGateway', 'red', String(opRev(b + 1, 1))],
            ['IPPool', 'p1', String(opRev(b + 1, 2))],
            ['EgressGateway', 'old', String(opRev(b + 1, 3))],
          ],
        );
        assert.equal(res[0].metadata.uid, res[1].metadata.uid, 'the update within the txn kept the uid of the create');
        assert.equal(await s.revision(), b + 1 + txnRevs(4));
        assert.deepEqual((await s.get(RED))?.spec, { replicas: 7 });
        assert.equal(await s.get({ kind: 'EgressGateway', namespace: 'default', name: 'old' }), undefined);
      }, needsMultiOp);

      test('an empty txn does nothing', async (s, b) => {
        assert.deepEqual(await s.txn([]), []);
        assert.equal(await s.revision(), b);
      });

      test('is all-or-nothing: op 3 of 5 failing leaves no visible change, no revision used, and the error names the op', async (s, b) => {
        const existing = await s.create(gw('default', 'red'));
        const w = await collect(s, { fromRevision: b });
        const ops: TxnOp[] = [
          { op: 'create', object: gw('default', 'a') },
          { op: 'update', object: gw('default', 'red', undefined, { replicas: 99 }) },
          { op: 'update', object: gw('default', 'ghost') },
          { op: 'put', object: ippool('p', CIDR) },
          { op: 'delete', key: RED },
        ];
        await assert.rejects(s.txn(ops), isStoreError('NotFound', 'txn op 3 of 5', 'EgressGateway default/ghost'));
        // A conflict mid-batch is reported with its own code.
        await assert.rejects(
          s.txn([
            { op: 'create', object: gw('default', 'b') },
            { op: 'update', object: { ...existing, metadata: { ...existing.metadata, resourceVersion: String(b + 12345) } } },
          ]),
          isStoreError('Conflict', 'txn op 2 of 2', 'EgressGateway default/red'),
        );
        await assert.rejects(
          s.txn([
            { op: 'create', object: gw('default', 'c') },
            { op: 'create', object: gw('default', 'c') },
          ]),
          isStoreError('AlreadyExists', 'txn op 2 of 2', 'EgressGateway default/c'),
        );
        await assert.rejects(s.txn([{ op: 'create', object: gw('default', 'd') }, { op: 'frobnicate' } as unknown as TxnOp]), isStoreError('Invalid', 'txn op 2 of 2'));
        assert.equal(await s.revision(), b + 1);
        assert.deepEqual(await s.get(RED), existing);
        const list = await s.list('EgressGateway');
        assert.deepEqual(list.items.map((o) => o.metadata.name), ['red']);
        assert.equal((await s.list('IPPool')).items.length, 0);
        // The next write takes the very next revision: the failed batches left no gap.
        const next = await s.create(gw('default', 'z'));
        assert.equal(next.metadata.resourceVersion, String(b + 2));
        await w.waitFor(2);
        await sleep(30);
        assert.deepEqual(w.events.map(summary), [`${b + 1} ADDED EgressGateway default/red rv=${b + 1}`, `${b + 2} ADDED EgressGateway default/z rv=${b + 2}`]);
        await w.watch.close();
      }, needsMultiOp);

      test('put creates or replaces regardless of resourceVersion, keeping uid', async (s, b) => {
        const [first] = await s.txn([{ op: 'put', object: gw('default', 'red') }]);
        assert.equal(first.metadata.resourceVersion, String(b + 1));
        const stale = gw('default', 'red', undefined, { replicas: 3 });
        stale.metadata.resourceVersion = String(b + 999);
        const [second] = await s.txn([{ op: 'put', object: stale }]);
        assert.equal(second.metadata.resourceVersion, String(b + 2));
        assert.equal(second.metadata.uid, first.metadata.uid);
        assert.equal(second.metadata.creationTimestamp, first.metadata.creationTimestamp);
        assert.deepEqual((await s.get(RED))?.spec, { replicas: 3 });
      });

      test('delete in a txn checks resourceVersion and sees earlier ops of the same txn', async (s, b) => {
        await s.create(gw('default', 'red'));
        await assert.rejects(s.txn([{ op: 'delete', key: RED, resourceVersion: String(b + 7) }]), isStoreError('Conflict', 'txn op 1 of 1'));
        // The delete names the resourceVersion the update of the same batch gives the object.
        const res = await s.txn([
          { op: 'update', object: gw('default', 'red', undefined, { replicas: 2 }) },
          { op: 'delete', key: RED, resourceVersion: String(opRev(b + 1, 0)) },
          { op: 'create', object: gw('default', 'red', undefined, { replicas: 3 }) },
        ]);
        assert.deepEqual(res.map((r) => r.metadata.resourceVersion), [0, 1, 2].map((i) => String(opRev(b + 1, i))));
        assert.notEqual(res[2].metadata.uid, res[0].metadata.uid);
        assert.deepEqual((await s.get(RED))?.spec, { replicas: 3 });
      }, needsMultiOp);
    });

    describe('list', () => {
      async function seed(s: Store): Promise<void> {
        await writeAll(s, [
          { op: 'create', object: gw('zeta', 'a', { tier: 'gold', zone: 'z1' }) },
          { op: 'create', object: gw('alpha', 'b', { tier: 'silver', zone: 'z1' }) },
          { op: 'create', object: gw('alpha', 'a', { tier: 'gold' }) },
          { op: 'create', object: gw('mid', 'c') },
          { op: 'create', object: ippool('pool-b', '10.0.1.0/24', {}, { tier: 'gold' }) },
          { op: 'create', object: ippool('pool-a', '10.0.0.0/24') },
        ]);
      }

      test('returns items sorted by namespace then name, with the revision read at', async (s, b) => {
        await seed(s);
        const r = await s.list('EgressGateway');
        assert.equal(r.revision, b + txnRevs(6));
        assert.deepEqual(r.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['alpha/a', 'alpha/b', 'mid/c', 'zeta/a']);
        assert.deepEqual((await s.list('IPPool')).items.map((o) => o.metadata.name), ['pool-a', 'pool-b']);
        if (caps.unknownKinds !== false) assert.deepEqual(await s.list('Nothing'), { items: [], revision: b + txnRevs(6) });
      });

      test('filters by namespace; "" means all namespaces; ignored for cluster-scoped kinds', async (s) => {
        await seed(s);
        assert.deepEqual((await s.list('EgressGateway', { namespace: 'alpha' })).items.map((o) => o.metadata.name), ['a', 'b']);
        assert.deepEqual((await s.list('EgressGateway', { namespace: 'nope' })).items, []);
        assert.equal((await s.list('EgressGateway', { namespace: '' })).items.length, 4);
        assert.equal((await s.list('IPPool', { namespace: 'alpha' })).items.length, 2);
      });

      test('filters by label selector string', async (s) => {
        await seed(s);
        const names = async (sel: string, ns?: string) =>
          (await s.list('EgressGateway', { labelSelector: sel, namespace: ns })).items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`);
        assert.deepEqual(await names('tier=gold'), ['alpha/a', 'zeta/a']);
        assert.deepEqual(await names('tier==gold,zone=z1'), ['zeta/a']);
        assert.deepEqual(await names('tier!=gold'), ['alpha/b', 'mid/c']);
        assert.deepEqual(await names('zone'), ['alpha/b', 'zeta/a']);
        assert.deepEqual(await names('!zone'), ['alpha/a', 'mid/c']);
        assert.deepEqual(await names('tier in (silver, bronze)'), ['alpha/b']);
        assert.deepEqual(await names('tier notin (gold)'), ['alpha/b', 'mid/c']);
        assert.deepEqual(await names('tier=gold', 'alpha'), ['alpha/a']);
        assert.deepEqual(await names(''), ['alpha/a', 'alpha/b', 'mid/c', 'zeta/a']);
        assert.deepEqual((await s.list('IPPool', { labelSelector: 'tier=gold' })).items.map((o) => o.metadata.name), ['pool-b']);
        await assert.rejects(s.list('EgressGateway', { labelSelector: 'tier in gold' }), isStoreError('Invalid', 'label selector'));
      });

      test('filters by label predicate', async (s) => {
        await seed(s);
        const r = await s.list('EgressGateway', { labelSelector: (l) => l.tier === 'gold' || l.zone === 'z1' });
        assert.deepEqual(r.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['alpha/a', 'alpha/b', 'zeta/a']);
        const seen: Record<string, string>[] = [];
        await s.list('EgressGateway', { namespace: 'mid', labelSelector: (l) => (seen.push(l), true) });
        assert.deepEqual(seen, [{}], 'objects without labels are offered an empty map');
      });

      test('a list is a consistent snapshot that later writes do not change', async (s, b) => {
        await seed(s);
        const r = await s.list('EgressGateway');
        await s.delete({ kind: 'EgressGateway', namespace: 'alpha', name: 'a' });
        await s.update(gw('mid', 'c', undefined, { replicas: 8 }));
        assert.equal(r.items.length, 4);
        assert.deepEqual(r.items[2].spec, { replicas: 1 });
        assert.equal(r.revision, b + txnRevs(6));
      });
    });

    describe('watch', () => watchCases({ test, caps, writeAll, inOrder, needsMultiOp, perOp, txnRevs, opRev }));

    describe('isolation', () => {
      test('objects are deep-copied in and out', async (s, b) => {
        const input = gw('default', 'red', { a: '1' }, { replicas: 1, nested: { list: [1, 2] } });
        const created = await s.create(input);
        (input.spec as { replicas: number }).replicas = 100;
        input.metadata.labels!.a = 'changed';
        (created.spec as { nested: { list: number[] } }).nested.list.push(3);
        created.metadata.labels!.b = 'x';
        const got = await s.get(RED);
        assert.deepEqual(got?.spec, { replicas: 1, nested: { list: [1, 2] } });
        assert.deepEqual(got?.metadata.labels, { a: '1' });
        assert.equal(input.metadata.resourceVersion, undefined, 'create does not write into its argument');
        assert.equal(input.metadata.uid, undefined);
        got!.metadata.name = 'mutated';
        (got!.spec as { replicas: number }).replicas = 55;
        const listed = (await s.list('EgressGateway')).items[0];
        assert.equal(listed.metadata.name, 'red');
        assert.deepEqual(listed.spec, { replicas: 1, nested: { list: [1, 2] } });
        listed.metadata.labels!.a = 'zzz';
        const w1 = await collect(s, { fromRevision: b });
        const w2 = await collect(s, { fromRevision: b });
        await w1.waitFor(1);
        await w2.waitFor(1);
        w1.events[0].object.metadata.labels!.a = 'from-watch';
        assert.equal(w2.events[0].object.metadata.labels!.a, '1');
        assert.deepEqual((await s.get(RED))?.metadata.labels, { a: '1' });
        const upd = gw('default', 'red', { a: '2' });
        await s.update(upd);
        upd.metadata.labels!.a = '3';
        const del = await s.delete(RED);
        assert.deepEqual(del.metadata.labels, { a: '2' });
        await w1.watch.close();
        await w2.watch.close();
      });
    });

    describe('revisions', () => {
      test('model check: random op sequences match a simple model, with revision +1 per successful op (or txn)', async () => {
        const name = fc.constantFrom('a', 'b', 'c');
        const ns = fc.constantFrom('n1', 'n2');
        const rvChoice = fc.constantFrom<'none' | 'current' | 'stale'>('none', 'current', 'stale');
        const opArb = fc.oneof(
          fc.record({ op: fc.constant('create' as const), ns, name, v: fc.nat(9) }),
          fc.record({ op: fc.constant('update' as const), ns, name, v: fc.nat(9), rv: rvChoice }),
          fc.record({ op: fc.constant('put' as const), ns, name, v: fc.nat(9) }),
          fc.record({ op: fc.constant('delete' as const), ns, name, rv: rvChoice }),
        );
        type ModelOp = { op: 'create' | 'update' | 'put' | 'delete'; ns: string; name: string; v?: number; rv?: 'none' | 'current' | 'stale' };
        const batchArb = fc.array(fc.array(opArb, { minLength: 1, maxLength: multiOp ? 3 : 1 }), { minLength: 1, maxLength: 12 });
        await fc.assert(
          fc.asyncProperty(batchArb, async (batches) => {
            const s = await factory();
            try {
              const model = new Map<string, { v: number; rv: number }>();
              const expectedEvents: string[] = [];
              const base = await s.revision();
              let rev = base;
              for (const batch of batches) {
                // Work out the expected outcome of the batch on a copy of the model.
                const m = new Map(model);
                let r = rev;
                let fail: string | undefined;
                const evs: string[] = [];
                /** The keys the batch touches, in first-touch order (per-txn: one event each, for its final state). */
                const touched = new Set<string>();
                const ops: TxnOp[] = (batch as ModelOp[]).map((o) => {
                  const k = `${o.ns}/${o.name}`;
                  const cur = m.get(k);
                  const rvStr = o.rv === 'current' ? String(cur?.rv ?? 1) : o.rv === 'stale' ? String((cur?.rv ?? 0) + 1000) : undefined;
                  if (!fail) {
                    if (o.op === 'create' && cur) fail = 'AlreadyExists';
                    else if ((o.op === 'update' || o.op === 'delete') && !cur) fail = 'NotFound';
                    else if ((o.op === 'update' || o.op === 'delete') && o.rv === 'stale') fail = 'Conflict';
                    else {
                      const opR = perOp ? ++r : rev + 1;
                      touched.add(k);
                      if (o.op === 'delete') {
                        m.delete(k);
                        evs.push(`${opR} DELETED ${k}`);
                      } else {
                        m.set(k, { v: o.v!, rv: opR });
                        evs.push(`${opR} ${cur ? 'MODIFIED' : 'ADDED'} ${k}`);
                      }
                    }
                  }
                  if (o.op === 'delete') return { op: 'delete', key: { kind: 'EgressGateway', namespace: o.ns, name: o.name }, resourceVersion: rvStr };
                  const obj = gw(o.ns, o.name, undefined, { v: o.v });
                  if (rvStr !== undefined) obj.metadata.resourceVersion = rvStr;
                  return { op: o.op, object: obj };
                });
                if (!fail && !perOp) {
                  // One revision for the batch, one event per key that changed; a batch that leaves every key as it
                  // was (created and deleted again) writes nothing and uses no revision.
                  evs.length = 0;
                  for (const k of touched) {
                    const was = model.has(k);
                    const is = m.has(k);
                    if (was || is) evs.push(`${rev + 1} ${!is ? 'DELETED' : was ? 'MODIFIED' : 'ADDED'} ${k}`);
                  }
                  r = evs.length ? rev + 1 : rev;
                }
                if (fail) {
                  await assert.rejects(s.txn(ops), (e: unknown) => e instanceof StoreError && e.code === fail);
                } else {
                  const res = await s.txn(ops);
                  assert.deepEqual(res.map((x) => Number(x.metadata.resourceVersion)), Array.from({ length: ops.length }, (_, i) => (perOp ? rev + i + 1 : r)));
                  model.clear();
                  for (const [k, v] of m) model.set(k, v);
                  rev = r;
                  expectedEvents.push(...evs);
                }
                assert.equal(await s.revision(), rev);
              }
              const listed = await s.list('EgressGateway');
              assert.equal(listed.revision, rev);
              assert.deepEqual(
                listed.items.map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, (o.spec as { v: number }).v, Number(o.metadata.resourceVersion)]),
                [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, v.v, v.rv]),
              );
              const w = await collect(s, { fromRevision: base });
              await w.waitFor(expectedEvents.length);
              await w.watch.close();
              assert.deepEqual(
                w.events.map((e) => `${e.revision} ${e.type} ${e.object.metadata.namespace}/${e.object.metadata.name}`),
                expectedEvents,
              );
            } finally {
              await s.close();
            }
          }),
          { numRuns: 40 },
        );
      });

      test('revisions are strictly increasing and shared across kinds', async (s, b) => {
        const seen: number[] = [];
        for (let i = 0; i < 20; i++) {
          const r = i % 2 ? await s.create(ippool(`p${i}`, CIDR)) : await s.create(gw('default', `g${i}`));
          seen.push(Number(r.metadata.resourceVersion));
        }
        assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => b + i + 1));
        assert.equal(await s.revision(), b + 20);
      });
    });
  });
}
