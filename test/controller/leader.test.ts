// Leader election (src/controller/leader.ts, docs/behaviour.md §4.1), in-process: the lock record on a MemoryStore
// with fast timings, and the real etcd lease on a throwaway etcd server (test/datastore/etcd-server.ts). The
// kill -9 takeover of real `egw controller` processes is in test/controller/ha.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import type { ObjectKey, Resource } from '../../src/api/meta.js';
import {
  electorFor,
  etcdLeaderKey,
  fencedStore,
  LEADER_LEASE_KEY,
  NotLeaderError,
  readLeader,
  type ElectionTiming,
  type Elector,
  type Term,
} from '../../src/controller/leader.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import { SqliteStore } from '../../src/datastore/sqlite.js';
import { StoreError, type Store, type TxnOp } from '../../src/datastore/types.js';
import { memoryLogger } from '../../src/log.js';
import { runCli } from '../helpers/cli.js';
import { E2E } from '../helpers/env.js';
import { egressGateway } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { etcdForSuite, etcdMissing } from '../datastore/etcd-server.js';

const FAST: ElectionTiming = { leaseMs: 400, renewEveryMs: 100, renewDeadlineMs: 250, retryMs: 25 };

/** A store whose writes can be made to fail (a leader cut off from the datastore) or to hang. */
class FlakyStore implements Store {
  failWrites = false;
  constructor(private readonly inner: Store) {}
  get description() {
    return this.inner.description;
  }
  private gate(): void {
    if (this.failWrites) throw new StoreError('Unavailable', 'flaky: cut off');
  }
  get(key: ObjectKey) {
    if (this.failWrites) return Promise.reject(new StoreError('Unavailable', 'flaky: cut off'));
    return this.inner.get(key);
  }
  list(kind: string) {
    return this.inner.list(kind);
  }
  async create(o: Resource) {
    this.gate();
    return this.inner.create(o);
  }
  async update(o: Resource) {
    this.gate();
    return this.inner.update(o);
  }
  async delete(k: ObjectKey, opts?: { resourceVersion?: string }) {
    this.gate();
    return this.inner.delete(k, opts);
  }
  async txn(ops: TxnOp[]) {
    this.gate();
    return this.inner.txn(ops);
  }
  revision() {
    return this.inner.revision();
  }
  watch(...args: Parameters<Store['watch']>) {
    return this.inner.watch(...args);
  }
  async close() {}
}

/** One elector running: its terms as they begin and end (monotonic ms), and the current term. */
interface Running {
  elector: Elector;
  ac: AbortController;
  done: Promise<void>;
  terms: { from: number; to?: number; why?: string }[];
  term?: Term;
  deposed: string[];
}

function runElector(store: Store, id: string, timing: Partial<ElectionTiming> = FAST, log = memoryLogger()): Running {
  const elector = electorFor(store, { id, timing, log });
  const ac = new AbortController();
  const r: Running = { elector, ac, done: Promise.resolve(), terms: [], deposed: [] };
  r.done = elector.run(ac.signal, {
    onElected: async (term) => {
      const rec: Running['terms'][number] = { from: performance.now() };
      r.terms.push(rec);
      r.term = term;
      await new Promise<void>((res) => term.signal.addEventListener('abort', () => res(), { once: true }));
      rec.to = performance.now();
      r.term = undefined;
    },
    onDeposed: (why) => r.deposed.push(why),
  });
  return r;
}

const leading = (rs: Running[]) => rs.filter((r) => r.term?.holds());

async function stopAll(rs: Running[]): Promise<void> {
  for (const r of rs) r.ac.abort();
  await Promise.all(rs.map((r) => r.done));
}

describe('leader election on the lock record (memory store)', () => {
  it('exactly one of three leads; a clean stop hands over at once; readLeader names the holder', async () => {
    const store = new MemoryStore();
    const rs = ['a', 'b', 'c'].map((id) => runElector(store, id));
    try {
      await until('a leader', () => leading(rs).length === 1, 2000);
      await sleep(FAST.leaseMs * 2); // several renewals: still exactly one
      assert.equal(leading(rs).length, 1);
      const first = leading(rs)[0];
      const info = await readLeader(store, FAST);
      assert.equal(info?.holder, first.elector.id);
      assert.equal(info?.stale, false);
      assert.match(info?.mechanism ?? '', /lock Lease egw-system\/egw-controller in memory/);
      assert.ok(Date.parse(info!.since) <= Date.now());
      // A clean stop clears the holder: a follower takes over without waiting out the lease.
      const t0 = performance.now();
      first.ac.abort();
      await first.done;
      await until('another leader', () => leading(rs).length === 1 && leading(rs)[0] !== first, 2000);
      assert.ok(performance.now() - t0 < FAST.leaseMs, `handed over in ${Math.round(performance.now() - t0)} ms, before the lease ran out`);
      assert.equal(first.deposed.length, 0, 'a stop is not a deposition');
      const rec = (await store.get(LEADER_LEASE_KEY))!;
      assert.equal((rec.spec as { leaseTransitions: number }).leaseTransitions, 1);
    } finally {
      await stopAll(rs);
    }
    assert.equal(await readLeader(store, FAST), undefined, 'nobody leads after all stopped');
  });

  it('a leader cut off from the store stops acting at its renew deadline, before anyone takes over, and follows again', async () => {
    const mem = new MemoryStore();
    const flaky = new FlakyStore(mem);
    const a = runElector(flaky, 'a');
    await until('a leads', () => leading([a]).length === 1, 2000);
    const b = runElector(mem, 'b');
    try {
      await sleep(FAST.leaseMs);
      assert.equal(leading([a, b])[0], a, 'b waits while a renews');
      const term = a.term!;
      const writes = fencedStore(mem, term);
      flaky.failWrites = true;
      await until('b leads', () => leading([b]).length === 1, 3000);
      const aEnd = a.terms[0].to!;
      assert.ok(aEnd !== undefined, 'a\'s term ended');
      assert.ok(aEnd < b.terms[0].from, `a stopped (${Math.round(aEnd)}) before b began (${Math.round(b.terms[0].from)})`);
      assert.match(a.deposed[0] ?? '', /renew deadline/);
      assert.equal(term.holds(), false);
      // The old term's store refuses every write, and never reaches the store.
      await assert.rejects(writes.create(egressGateway('default', 'x')), NotLeaderError);
      await assert.rejects(writes.update(egressGateway('default', 'x')), NotLeaderError);
      await assert.rejects(writes.delete({ kind: 'EgressGateway', namespace: 'default', name: 'x' }), NotLeaderError);
      await assert.rejects(writes.txn([]), NotLeaderError);
      assert.deepEqual((await writes.list('EgressGateway')).items, [], 'nothing was written; reads still work');
      // a follows again (it did not exit): once b stops, a leads again.
      flaky.failWrites = false;
      b.ac.abort();
      await b.done;
      await until('a leads again', () => leading([a]).length === 1, 3000);
      assert.equal(a.terms.length, 2);
    } finally {
      await stopAll([a, b]);
    }
  });

  it('never two leaders: three electors, each cut off at random, sampled every few ms', async () => {
    const mem = new MemoryStore();
    const flakies = [0, 1, 2].map(() => new FlakyStore(mem));
    const rs = flakies.map((f, i) => runElector(f, `e${i}`));
    let samples = 0;
    let maxLeading = 0;
    let leaderChanges = 0;
    let last: Running | undefined;
    const end = performance.now() + 5000;
    try {
      let nextFlip = performance.now();
      while (performance.now() < end) {
        if (performance.now() >= nextFlip) {
          // cut off the leader more often than the others, for longer than the renew deadline or not
          const lead = leading(rs)[0];
          flakies.forEach((f, i) => (f.failWrites = Math.random() < (rs[i] === lead ? 0.7 : 0.2)));
          nextFlip = performance.now() + 200 + Math.random() * 700;
        }
        const now = leading(rs);
        maxLeading = Math.max(maxLeading, now.length);
        if (now.length === 1 && now[0] !== last) {
          leaderChanges++;
          last = now[0];
        }
        samples++;
        await sleep(3);
      }
    } finally {
      for (const f of flakies) f.failWrites = false;
      await stopAll(rs);
    }
    assert.equal(maxLeading, 1, 'at most one elector held a term at any sample');
    assert.ok(leaderChanges >= 2, `leadership moved (${leaderChanges} changes over ${samples} samples)`);
    // Terms never overlap in time either.
    const all = rs.flatMap((r) => r.terms.map((t) => ({ ...t, id: r.elector.id }))).sort((x, y) => x.from - y.from);
    for (let i = 1; i < all.length; i++) {
      assert.ok(all[i - 1].to! <= all[i].from, `term of ${all[i - 1].id} ended before ${all[i].id}'s began`);
    }
  });

  it('two processes given the same id still exclude each other', async () => {
    const store = new MemoryStore();
    const rs = [runElector(store, 'same'), runElector(store, 'same')];
    try {
      await until('a leader', () => leading(rs).length === 1, 2000);
      await sleep(FAST.leaseMs * 2);
      assert.equal(leading(rs).length, 1);
    } finally {
      await stopAll(rs);
    }
  });

  it('egw status names the leader of an SQLite lock (and says when its holder stopped renewing); egw controller refuses a bad --id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-leader-status-'));
    const ds = `sqlite:${join(dir, 'egw.db')}`;
    const store = new SqliteStore(join(dir, 'egw.db'));
    const a = runElector(store, 'ctl-a');
    try {
      await until('a leads', () => leading([a]).length === 1, 2000);
      const r = await runCli(['--datastore', ds, 'status']);
      assert.equal(r.code, 0, r.stderr);
      const since = a.term!.since.getTime();
      const m = /^controller: ctl-a leads, since (\S+) \(lock Lease egw-system\/egw-controller in sqlite:\S+egw\.db \(taken over 0\.4 s after its last renewal\)\)\n$/.exec(r.stdout);
      assert.ok(m, r.stdout);
      assert.ok(Math.abs(Date.parse(m[1]) - since) < 1000, `since ${m[1]} is when it was elected`);
      const j = JSON.parse((await runCli(['--datastore', ds, 'status', '-o', 'json'])).stdout);
      assert.equal(j.controller.leader.holder, 'ctl-a');
      assert.deepEqual(j.gateways, []);
    } finally {
      await stopAll([a]);
    }
    // A holder that vanished without a clean stop (its record left as it was, long unrenewed).
    const rec = (await store.get(LEADER_LEASE_KEY))!;
    await store.update({ ...rec, spec: { ...(rec.spec as object), holderIdentity: 'ctl-gone', renewTime: '2020-01-01T00:00:00.000Z' } });
    const stale = await runCli(['--datastore', ds, 'status']);
    assert.match(stale.stdout, /^controller: no leader \(ctl-gone stopped renewing at 2020-01-01T00:00:00.000Z; a running controller takes over: lock Lease/);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    const bad = await runCli(['--datastore', 'memory:', 'controller', '--id', '']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--id <id>.*invalid.*non-empty identity/);
  });

  it('rejects an empty id and timings that break renewEvery < renewDeadline < lease', () => {
    const store = new MemoryStore();
    assert.throws(() => electorFor(store, { id: ' ' }), /--id/);
    assert.throws(() => electorFor(store, { timing: { leaseMs: 1000, renewDeadlineMs: 1000 } }), /renewDeadlineMs < leaseMs/);
  });
});

const missing = etcdMissing();

describe('leader election on an etcd lease (real etcd)', { skip: missing && !E2E ? missing : false }, () => {
  let n = 0;
  const { fresh, server, stores } = etcdForSuite(missing, { before, after });
  // etcd leases are whole seconds, at least 2 on a default server
  const ETCD: ElectionTiming = { leaseMs: 2000, renewEveryMs: 500, renewDeadlineMs: 1400, retryMs: 100 };

  it('one leads under the key PREFIX/egw/leader/controller (with its lease), outside the objects; a stop revokes it', async () => {
    const prefix = `/ha${++n}`;
    const rs = [0, 1, 2].map((i) => runElector(fresh(prefix), `c${i}`, ETCD));
    const raw = new Etcd3({ hosts: `http://${server().endpoint}` });
    try {
      await until('a leader', () => leading(rs).length === 1, 5000);
      await sleep(ETCD.leaseMs * 1.5); // keep-alives hold it past the TTL
      assert.equal(leading(rs).length, 1);
      const first = leading(rs)[0];
      const key = etcdLeaderKey(prefix);
      assert.equal(key, `${prefix}/egw/leader/controller`);
      const kv = (await raw.get(key).exec()).kvs[0];
      assert.ok(kv, 'the leader key exists');
      assert.notEqual(String(kv.lease), '0', 'with a lease attached');
      assert.equal(JSON.parse(kv.value.toString()).holder, first.elector.id);
      const info = await readLeader(stores[0], ETCD);
      assert.equal(info?.holder, first.elector.id);
      assert.match(info?.mechanism ?? '', new RegExp(`etcd lease \\(TTL 2 s\\) on key ${key}`));
      const st = await runCli(['--datastore', `etcd://${server().endpoint}${prefix}`, 'status']);
      assert.match(st.stdout, new RegExp(`^controller: ${first.elector.id} leads, since \\S+ \\(etcd lease \\(TTL 2 s\\) on key ${key}\\)\\n$`));
      // The objects' key space is untouched.
      assert.deepEqual((await raw.getAll().prefix(`${prefix}/egw/v1/`).keys()), []);
      // A clean stop revokes the lease: the key goes and a follower takes over at once.
      const t0 = performance.now();
      first.ac.abort();
      await first.done;
      await until('another leader', () => leading(rs).length === 1 && leading(rs)[0] !== first, 5000);
      assert.ok(performance.now() - t0 < ETCD.leaseMs, `handed over in ${Math.round(performance.now() - t0)} ms`);
    } finally {
      await stopAll(rs);
      raw.close();
    }
    assert.equal(await readLeader(stores[stores.length - 1], ETCD), undefined);
  });

  it('a leader whose lease is revoked from outside stops acting and follows; another takes over', async () => {
    const prefix = `/ha${++n}`;
    const rs = [0, 1].map((i) => runElector(fresh(prefix), `c${i}`, ETCD));
    const raw = new Etcd3({ hosts: `http://${server().endpoint}` });
    try {
      await until('a leader', () => leading(rs).length === 1, 5000);
      const first = leading(rs)[0];
      const kv = (await raw.get(etcdLeaderKey(prefix)).exec()).kvs[0];
      // Revoke the leader's lease behind its back (etcd deletes the key with it).
      await raw.leaseClient.leaseRevoke({ ID: String(kv.lease) });
      await until('the other leads', () => leading(rs).length === 1 && leading(rs)[0] !== first, 5000);
      await until('the first was deposed', () => first.deposed.length === 1, 5000);
      assert.match(first.deposed[0], /was deleted|lease has expired|gone/);
      assert.equal(first.ac.signal.aborted, false, 'it did not exit');
      // It follows: once the new leader stops, it leads again.
      const second = leading(rs)[0];
      second.ac.abort();
      await second.done;
      await until('the first leads again', () => leading(rs)[0] === first, 5000);
    } finally {
      await stopAll(rs);
      raw.close();
    }
  });
});
