// The watch cases of the shared Store conformance suite (conformance.ts), apart so that each file stays readable: the
// same helpers, handed in by conformance().
import assert from 'node:assert/strict';
import type { Resource } from '../../src/api/meta.js';
import { StoreError, type Store, type TxnOp, type WatchEvent } from '../../src/datastore/types.js';
import { ippool } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { CIDR, collect, gw, STORE_POLL, summary, isStoreError } from './helpers.js';
import { RED, type StoreCapabilities } from './conformance.js';

export interface ConformanceContext {
  test: (title: string, fn: (s: Store, b: number) => Promise<void>, skip?: string | false) => void;
  caps: StoreCapabilities;
  writeAll: (s: Store, ops: TxnOp[]) => Promise<void>;
  inOrder: (events: WatchEvent[]) => WatchEvent[];
  needsMultiOp: string | false;
  perOp: boolean;
  txnRevs: (n: number) => number;
  opRev: (r: number, i: number) => number;
}

export function watchCases({ test, caps, writeAll, inOrder, needsMultiOp, perOp, txnRevs, opRev }: ConformanceContext): void {
    test('replays history from a revision, then streams new events, with the exact revisions', async (s, b) => {
      await s.create(gw('default', 'red'));
      await s.update(gw('default', 'red', undefined, { replicas: 2 }));
      await s.create(ippool('p', CIDR));
      const w = await collect(s, { fromRevision: b });
      await w.waitFor(3);
      await s.delete(RED);
      await writeAll(s, [
        { op: 'create', object: gw('default', 'blue') },
        { op: 'put', object: ippool('p', '10.9.0.0/16') },
      ]);
      await w.waitFor(6);
      await sleep(30);
      const [r5, r6] = [opRev(b + 4, 0), opRev(b + 4, 1)];
      const evs = inOrder(w.events);
      assert.deepEqual(evs.map(summary), [
        `${b + 1} ADDED EgressGateway default/red rv=${b + 1}`,
        `${b + 2} MODIFIED EgressGateway default/red rv=${b + 2}`,
        `${b + 3} ADDED IPPool p rv=${b + 3}`,
        `${b + 4} DELETED EgressGateway default/red rv=${b + 4}`,
        // The two ops of the txn: consecutive revisions, or (etcd) one shared revision, in op order.
        `${r5} ADDED EgressGateway default/blue rv=${r5}`,
        `${r6} MODIFIED IPPool p rv=${r6}`,
      ]);
      // DELETED carries the last stored object.
      assert.deepEqual(evs[3].object.spec, { replicas: 2 });
      assert.deepEqual(evs[5].object.spec, { cidr: '10.9.0.0/16' });
      assert.equal(evs[3].object.metadata.uid, evs[0].object.metadata.uid);
      await w.watch.close();
    });

    test('a watch from N sees exactly the events after N; from the list revision, only later changes', async (s, b) => {
      for (let i = 0; i < 10; i++) await s.create(gw('default', `g${i}`));
      const all = await collect(s, { fromRevision: b });
      const from6 = await collect(s, { fromRevision: b + 6 });
      const list = await s.list('EgressGateway');
      const fromList = await collect(s, { fromRevision: list.revision });
      await s.delete({ kind: 'EgressGateway', namespace: 'default', name: 'g0' });
      await all.waitFor(11);
      await from6.waitFor(5);
      await fromList.waitFor(1);
      await sleep(30);
      assert.deepEqual(from6.events.map((e) => e.revision), [7, 8, 9, 10, 11].map((n) => b + n));
      assert.deepEqual(from6.events.map(summary), all.events.slice(6).map(summary));
      assert.deepEqual(fromList.events.map(summary), [`${b + 11} DELETED EgressGateway default/g0 rv=${b + 11}`]);
      for (const c of [all, from6, fromList]) await c.watch.close();
    });

    test('a watch from a future revision waits for it', async (s, b) => {
      await s.create(gw('default', 'a'));
      const w = await collect(s, { fromRevision: b + 3 });
      await s.create(gw('default', 'b'));
      await s.create(gw('default', 'c'));
      await sleep(40);
      assert.equal(w.events.length, 0);
      await s.create(gw('default', 'd'));
      await w.waitFor(1);
      assert.deepEqual(w.events.map((e) => e.revision), [b + 4]);
      await w.watch.close();
    });

    test('filters by kind and namespace, without gaps for the filter', async (s, b) => {
      const byKind = await collect(s, { kind: 'EgressGateway', fromRevision: b });
      const byNs = await collect(s, { kind: 'EgressGateway', namespace: 'blue', fromRevision: b });
      const anyKindNs = await collect(s, { namespace: 'blue', fromRevision: b });
      const pools = await collect(s, { kind: 'IPPool', namespace: 'blue', fromRevision: b });
      const writes: TxnOp[] = [];
      for (let i = 0; i < 30; i++) {
        const ns = ['red', 'blue', 'green'][i % 3];
        writes.push({ op: 'create', object: gw(ns, `g${i}`) });
        if (i % 4 === 0) writes.push({ op: 'create', object: ippool(`p${i}`, CIDR) });
        if (i % 5 === 0) writes.push({ op: 'create', object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: `pod${i}`, namespace: ns } } });
      }
      for (const op of writes) await s.txn([op]);
      const expectKind = writes.filter((o) => o.op === 'create' && o.object.kind === 'EgressGateway').length;
      await byKind.waitFor(expectKind);
      await byNs.waitFor(10);
      await anyKindNs.waitFor(10 + 2);
      await pools.waitFor(8);
      await sleep(40);
      assert.equal(byKind.events.length, 30);
      assert.ok(byKind.events.every((e) => e.object.kind === 'EgressGateway'));
      assert.deepEqual(byNs.events.map((e) => e.object.metadata.name), ['g1', 'g4', 'g7', 'g10', 'g13', 'g16', 'g19', 'g22', 'g25', 'g28']);
      assert.ok(anyKindNs.events.every((e) => e.object.metadata.namespace === 'blue'));
      assert.deepEqual(anyKindNs.events.filter((e) => e.object.kind === 'Pod').map((e) => e.object.metadata.name), ['pod10', 'pod25']);
      // IPPool is cluster-scoped: the namespace is ignored, as in Kubernetes.
      assert.equal(pools.events.length, 8);
      for (const c of [byKind, byNs, anyKindNs, pools]) {
        const evs = inOrder(c.events);
        for (let i = 1; i < evs.length; i++) assert.ok(evs[i].revision > evs[i - 1].revision, 'strictly increasing');
        assert.equal(evs.map((e) => e.revision).join(), evs.map((e) => e.object.metadata.resourceVersion).join());
        await c.watch.close();
      }
    });

    test('awaits the handler before delivering the next batch', async (s, b) => {
      let running = 0;
      let maxRunning = 0;
      const got: number[] = [];
      const w = await s.watch({ fromRevision: b }, async (events) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(15);
        got.push(...events.map((e) => e.revision));
        running--;
      });
      for (let i = 0; i < 8; i++) {
        await s.create(gw('default', `g${i}`));
        await sleep(3);
      }
      await until('8 events', () => got.length >= 8, 5000, STORE_POLL);
      assert.equal(maxRunning, 1);
      assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8].map((n) => b + n));
      await w.close();
    });

    test('a long history is replayed in order, in several batches', async (s, b) => {
      // 2500 puts over 700 objects, in as few txns as the backend takes (one where unlimited; etcd: 128 objects
      // each, and any 128 consecutive puts here name distinct objects).
      const ops: TxnOp[] = [];
      for (let i = 0; i < 2500; i++) ops.push({ op: 'put', object: gw('default', `g${i % 700}`) });
      const chunk = Math.min(ops.length, caps.maxTxnObjects);
      for (let i = 0; i < ops.length; i += chunk) await s.txn(ops.slice(i, i + chunk));
      const w = await collect(s, { fromRevision: b });
      await w.waitFor(2500, 20000);
      assert.ok(w.batches >= 3, `batches: ${w.batches}`);
      assert.deepEqual(
        w.events.map((e) => e.revision),
        Array.from({ length: 2500 }, (_, i) => opRev(b + txnRevs(chunk) * Math.floor(i / chunk), i % chunk)),
      );
      assert.deepEqual(w.events.map((e) => e.object.metadata.name), ops.map((o) => (o as { object: Resource }).object.metadata.name));
      assert.equal(w.events.filter((e) => e.type === 'ADDED').length, 700);
      await w.watch.close();
    });

    test('close stops delivery, even from inside the handler', async (s, b) => {
      const got: WatchEvent[] = [];
      const w = await s.watch({ fromRevision: b }, async (events) => {
        got.push(...events);
        await w.close();
      });
      await s.create(gw('default', 'a'));
      await until('first event', () => got.length > 0, 5000, STORE_POLL);
      await s.create(gw('default', 'b'));
      await sleep(50);
      assert.deepEqual(got.map((e) => e.revision), [b + 1]);
      await w.close(); // idempotent
    });

    test('a throwing handler stops the watch and reports to onError', async (s, b) => {
      const errors: unknown[] = [];
      let calls = 0;
      await s.watch({ fromRevision: b, onError: (e) => errors.push(e) }, () => {
        calls++;
        throw new Error('boom');
      });
      await s.create(gw('default', 'a'));
      await until('onError', () => errors.length > 0, 5000, STORE_POLL);
      await s.create(gw('default', 'b'));
      await sleep(50);
      assert.equal(calls, 1);
      assert.equal(errors.length, 1);
      assert.equal((errors[0] as Error).message, 'boom');
    });

    test('store.close() closes its watches; later calls fail with Unavailable', async (s, b) => {
      const got: WatchEvent[] = [];
      await s.watch({ fromRevision: b }, (events) => void got.push(...events));
      await s.create(gw('default', 'a'));
      await until('event', () => got.length === 1, 5000, STORE_POLL);
      await s.close();
      await assert.rejects(s.get(RED), isStoreError('Unavailable', 'closed'));
      await assert.rejects(s.create(gw('default', 'b')), isStoreError('Unavailable'));
      await assert.rejects(s.watch({ fromRevision: b }, () => {}), isStoreError('Unavailable'));
      await s.close(); // idempotent
    });

    test('rejects bad options', async (s) => {
      await assert.rejects(s.watch({ fromRevision: -1 }, () => {}), isStoreError('Invalid', 'fromRevision'));
      await assert.rejects(s.watch({ fromRevision: 1.5 }, () => {}), isStoreError('Invalid', 'fromRevision'));
      await assert.rejects(s.watch({} as { fromRevision: number }, () => {}), isStoreError('Invalid', 'fromRevision'));
    });

    test('compaction: watches from before it fail with Compacted; lagging watches get onError', async (s, b) => {
      assert.ok(s.compact, 'backend implements compact');
      for (let i = 0; i < 6; i++) await s.create(gw('default', `g${i}`));
      // A watch stuck in its handler on revision b+1 still needs revisions b+2.. when compaction happens.
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const laggingErrors: unknown[] = [];
      const seen: number[] = [];
      await s.watch({ fromRevision: b, kind: 'EgressGateway', namespace: 'default', onError: (e) => laggingErrors.push(e) }, async (evs) => {
        seen.push(...evs.map((e) => e.revision));
        await gate;
      });
      await until('lagging watch started', () => seen.length > 0, 5000, STORE_POLL);
      await s.compact!(b + 4);
      await assert.rejects(s.watch({ fromRevision: b + 3 }, () => {}), isStoreError('Compacted', `revision ${b + 3}`));
      await assert.rejects(s.compact!(b + 99), isStoreError('Invalid'));
      const ok = await collect(s, { fromRevision: b + 4 });
      await ok.waitFor(2);
      assert.deepEqual(ok.events.map((e) => e.revision), [b + 5, b + 6]);
      await ok.watch.close();
      // Objects survive compaction.
      assert.equal((await s.list('EgressGateway')).items.length, 6);
      // The lagging watch had everything in one batch already, so it needs nothing compacted: it keeps going.
      release();
      await s.create(gw('default', 'g6'));
      await until('lagging watch catches up', () => seen.includes(b + 7), 5000, STORE_POLL);
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7].map((n) => b + n));
      assert.deepEqual(laggingErrors, []);
      // A watch whose handler is busy while a write and a compaction past that write happen.
      let release2!: () => void;
      const gate2 = new Promise<void>((r) => (release2 = r));
      const errs2: unknown[] = [];
      const seen2: number[] = [];
      await s.watch({ fromRevision: b + 6, onError: (e) => errs2.push(e) }, async (evs) => {
        seen2.push(...evs.map((e) => e.revision));
        await gate2;
      });
      await until('second watch started', () => seen2.length > 0, 5000, STORE_POLL);
      await s.create(gw('default', 'g7')); // revision b+8, which the blocked watch has not handed on yet
      await s.compact!(b + 8);
      release2();
      if (caps.compaction === 'store') {
        // Its cursor is behind the compaction point when it next reads: Compacted.
        await until('Compacted reported', () => errs2.length > 0, 5000, STORE_POLL);
        assert.ok(errs2[0] instanceof StoreError && errs2[0].code === 'Compacted');
        assert.deepEqual(seen2, [b + 7]);
      } else {
        // The server had already streamed revision b+8 to the client: it is delivered, compaction or not.
        await until('b+8 delivered', () => seen2.length >= 2 || errs2.length > 0, 5000, STORE_POLL);
        assert.deepEqual(errs2, []);
        assert.deepEqual(seen2, [b + 7, b + 8]);
      }
    }, caps.compaction === 'none' ? 'compaction is the server\'s alone here (no compact()); its own tests check 410 → Compacted' : false);
}
