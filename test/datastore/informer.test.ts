// The one informer (src/datastore/informer.ts) against a store that fails lists and watches and compacts its history
// at random, while a writer keeps changing objects of three kinds: every consumer's view converges to the store's
// contents, and no event is applied twice or skipped (checked against the writer's own log of every write).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyOf, keyString, type ObjectKey, type Resource } from '../../src/api/meta.js';
import { startInformer, type Informer, type InformerEvent } from '../../src/datastore/informer.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import { prng } from '../../bench/util.js';
import { StoreError, type ListOptions, type ListResult, type Store, type TxnOp, type Watch, type WatchHandler, type WatchOptions } from '../../src/datastore/types.js';
import { sleep, until } from '../helpers/wait.js';
import { STORE_POLL } from './helpers.js';

/** A Store over MemoryStore whose lists and watches fail at random while `flaky` is set. */
class FlakyStore implements Store {
  readonly description = 'flaky:';
  flaky = true;
  injected = { lists: 0, watchStarts: 0, watchBreaks: 0 };
  constructor(
    readonly inner: MemoryStore,
    private readonly rnd: () => number,
  ) {}
  get(key: ObjectKey) {
    return this.inner.get(key);
  }
  async list(kind: string, opts?: ListOptions): Promise<ListResult> {
    if (this.flaky && this.rnd() < 0.15) {
      this.injected.lists++;
      throw new StoreError('Unavailable', 'injected list failure');
    }
    // lists of different kinds land at different revisions, with writes in between
    await sleep(Math.floor(this.rnd() * 3));
    return this.inner.list(kind, opts);
  }
  create(o: Resource) {
    return this.inner.create(o);
  }
  update(o: Resource) {
    return this.inner.update(o);
  }
  delete(key: ObjectKey, opts?: { resourceVersion?: string }) {
    return this.inner.delete(key, opts);
  }
  txn(ops: TxnOp[]) {
    return this.inner.txn(ops);
  }
  revision() {
    return this.inner.revision();
  }
  compact(rev: number) {
    return this.inner.compact(rev);
  }
  async watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    if (this.flaky && this.rnd() < 0.1) {
      this.injected.watchStarts++;
      throw new StoreError('Unavailable', 'injected watch start failure');
    }
    let broken = false;
    const fail = (err: unknown): void => {
      if (broken) return;
      broken = true;
      opts.onError?.(err);
    };
    const w: Watch = await this.inner.watch({ ...opts, onError: fail }, async (events) => {
      if (broken) return;
      if (this.flaky && this.rnd() < 0.08) {
        // deliver part of the batch, then break (as a dropped connection would)
        const k = Math.floor(this.rnd() * events.length);
        if (k > 0) await handler(events.slice(0, k));
        this.injected.watchBreaks++;
        await w.close();
        fail(new StoreError('Unavailable', 'injected watch failure'));
        return;
      }
      await handler(events);
    });
    return w;
  }
  close() {
    return this.inner.close();
  }
}

/** Every write the writer made, per key, in revision order: the truth the consumers are checked against. */
class Truth {
  private readonly byKey = new Map<string, { rev: number; rv: string | null }[]>();
  record(key: string, rev: number, rv: string | null): void {
    let h = this.byKey.get(key);
    if (!h) this.byKey.set(key, (h = []));
    h.push({ rev, rv });
  }
  /** The key's resourceVersion just before revision `rev` (null: absent). */
  before(key: string, rev: number): string | null {
    let v: string | null = null;
    for (const e of this.byKey.get(key) ?? []) if (e.rev < rev) v = e.rv;
    return v;
  }
  wroteAt(key: string, rev: number): boolean {
    return (this.byKey.get(key) ?? []).some((e) => e.rev === rev);
  }
}

const KIND_DEFS: Record<string, { apiVersion: string; namespaced: boolean }> = {
  Pod: { apiVersion: 'v1', namespaced: true },
  Namespace: { apiVersion: 'v1', namespaced: false },
  Node: { apiVersion: 'v1', namespaced: false },
};

function object(kind: string, ns: string, name: string, n: number): Resource {
  const d = KIND_DEFS[kind];
  return { apiVersion: d.apiVersion, kind, metadata: { name, ...(d.namespaced ? { namespace: ns } : {}), labels: { n: String(n) } }, spec: {} };
}

/**
 * A consumer: its own view from onReplace/onEvents. Each applied event is noted with what the view held for its key
 * just before, and checked against the truth at the end (the writer records a write only after the store has
 * answered, which may be after a watch delivered it).
 */
class Consumer {
  readonly view = new Map<string, Resource>();
  replaces = 0;
  applied = 0;
  readonly problems: string[] = [];
  private readonly notes: { key: string; rev: number; had: string | null }[] = [];
  informer!: Informer;
  constructor(
    readonly name: string,
    private readonly rnd: () => number,
  ) {}
  replace(objects: readonly Resource[]): void {
    this.replaces++;
    this.view.clear();
    for (const o of objects) this.view.set(keyString(keyOf(o)), o);
  }
  events(events: readonly InformerEvent[]): void {
    // a consumer that fails now and then (before applying anything): the informer must list again
    if (this.rnd() < 0.02) throw new Error(`${this.name}: injected handler failure`);
    let last = 0;
    for (const e of events) {
      const key = keyString(keyOf(e.object));
      if (e.revision <= last) this.problems.push(`${this.name}: revision ${e.revision} after ${last} in one batch`);
      last = e.revision;
      this.notes.push({ key, rev: e.revision, had: this.view.get(key)?.metadata.resourceVersion ?? null });
      if (e.type === 'DELETED') this.view.delete(key);
      else this.view.set(key, e.object);
      this.applied++;
    }
  }
  /** Every applied event wrote its key at its revision, and found the view holding the version just before it. */
  check(truth: Truth): string[] {
    const out = [...this.problems];
    for (const n of this.notes) {
      if (!truth.wroteAt(n.key, n.rev)) out.push(`${this.name}: event for ${n.key} at ${n.rev}, which did not write it`);
      const want = truth.before(n.key, n.rev);
      if (n.had !== want) out.push(`${this.name}: ${n.key} at ${n.rev}: view had ${n.had}, the store had ${want} (${n.had !== null && Number(n.had) >= n.rev ? 'applied twice' : 'an event was skipped'})`);
    }
    return out;
  }
}

async function scenario(seed: number): Promise<void> {
  const rnd = prng(seed);
  const inner = new MemoryStore();
  const store = new FlakyStore(inner, prng(seed ^ 0x5eed));
  const truth = new Truth();
  const stop = new AbortController();
  const kindSets = [['Pod'], ['Pod', 'Namespace', 'Node'], ['Namespace', 'Node']];
  const consumers = kindSets.map((kinds, i) => {
    const c = new Consumer(`consumer ${i} (${kinds.join(',')})`, prng(seed + i + 1));
    c.informer = startInformer({
      store,
      kinds,
      signal: stop.signal,
      backoff: { minMs: 1, maxMs: 20 },
      onReplace: (objects) => c.replace(objects),
      onEvents: (events) => c.events(events),
      onError: () => {},
    });
    return c;
  });
  try {
    // the writer: creates, updates and deletes, with compactions now and then
    const names = ['a', 'b', 'c', 'd'];
    for (let i = 0; i < 800; i++) {
      const kind = ['Pod', 'Namespace', 'Node'][Math.floor(rnd() * 3)];
      const ns = rnd() < 0.5 ? 'x' : 'y';
      const name = names[Math.floor(rnd() * names.length)];
      const key = keyString(keyOf(object(kind, ns, name, 0)));
      const k = keyOf(object(kind, ns, name, 0));
      const cur = await inner.get(k);
      if (!cur) {
        const o = await inner.create(object(kind, ns, name, i));
        truth.record(key, Number(o.metadata.resourceVersion), o.metadata.resourceVersion!);
      } else if (rnd() < 0.3) {
        await inner.delete(k);
        truth.record(key, await inner.revision(), null);
      } else {
        const o = await inner.update({ ...cur, metadata: { ...cur.metadata, labels: { n: String(i) } } });
        truth.record(key, Number(o.metadata.resourceVersion), o.metadata.resourceVersion!);
      }
      if (rnd() < 0.02) {
        const rev = await inner.revision();
        await inner.compact(Math.max(1, rev - Math.floor(rnd() * 5)));
      }
      if (rnd() < 0.3) await new Promise((r) => setImmediate(r));
      if (rnd() < 0.05) await sleep(1);
    }
    // healthy again: every view must converge to the store's contents (all of them within 10 s)
    store.flaky = false;
    // Each consumer must also have applied events, not only relisted. On a loaded machine the random phase can end
    // before one of them had a watch that lived long enough, so go on writing (new objects of every kind) until each
    // has, for at most 5 s; the assertion below still fails if one never does.
    for (let j = 0; consumers.some((c) => c.applied === 0) && j < 500; j++) {
      for (const kind of ['Pod', 'Namespace', 'Node']) {
        const o = await inner.create(object(kind, 'x', `late-${j}`, 800 + j));
        truth.record(keyString(keyOf(o)), Number(o.metadata.resourceVersion), o.metadata.resourceVersion!);
      }
      await sleep(10);
    }
    const deadline = Date.now() + 10_000;
    for (const [i, c] of consumers.entries()) {
      const want = async (): Promise<string> => {
        const items: Resource[] = [];
        for (const k of kindSets[i]) items.push(...(await inner.list(k)).items);
        return JSON.stringify(items.map((o) => `${keyString(keyOf(o))}@${o.metadata.resourceVersion}`).sort());
      };
      const have = (): string => JSON.stringify([...c.view.values()].map((o) => `${keyString(keyOf(o))}@${o.metadata.resourceVersion}`).sort());
      await until(`${c.name}'s view to converge to the store (seed ${seed})`, async () => have() === (await want()), Math.max(0, deadline - Date.now()), { everyMs: 5 });
      assert.equal(have(), await want(), `${c.name}: the view converged to the store (seed ${seed})`);
      // the informer's own view agrees with what it handed on
      assert.deepEqual(c.informer.list().map((o) => keyString(keyOf(o))).sort(), [...c.view.keys()].sort());
    }
    for (const c of consumers) assert.deepEqual(c.check(truth), [], `seed ${seed}`);
    // the test exercised what it claims to
    assert.ok(store.injected.lists + store.injected.watchStarts > 0, 'some lists or watch starts failed');
    assert.ok(store.injected.watchBreaks > 0, 'some watches broke');
    for (const c of consumers) {
      assert.ok(c.replaces > 1, `${c.name} listed again after failures (${c.replaces} lists)`);
      assert.ok(c.applied > 0, `${c.name} applied events`);
    }
  } finally {
    stop.abort();
    await Promise.all(consumers.map((c) => c.informer.done));
  }
}

describe('informer', () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    it(`converges under random watch failures, list failures, handler failures and compaction (seed ${seed})`, async () => {
      await scenario(seed);
    });
  }

  it('skips what the list covered, per kind, and reports synced', async () => {
    const store = new MemoryStore();
    await store.create(object('Node', '', 'n1', 1));
    await store.create(object('Namespace', '', 'x', 1));
    const stop = new AbortController();
    const replaced: string[][] = [];
    const seen: string[] = [];
    const inf = startInformer({
      store,
      kinds: ['Node', 'Namespace'],
      signal: stop.signal,
      onReplace: (objects) => void replaced.push(objects.map((o) => o.metadata.name).sort()),
      onEvents: (events) => void seen.push(...events.map((e) => `${e.type} ${e.object.kind}/${e.object.metadata.name}${e.previous ? ` (was n=${e.previous.metadata.labels?.n})` : ''}`)),
    });
    assert.equal(inf.synced, false);
    await inf.whenSynced();
    assert.equal(inf.synced, true);
    assert.deepEqual(replaced, [['n1', 'x']]);
    const n1 = (await store.get({ kind: 'Node', namespace: '', name: 'n1' }))!;
    await store.update({ ...n1, metadata: { ...n1.metadata, labels: { n: '2' } } });
    await store.create(object('Pod', 'x', 'ignored', 1)); // not a watched kind
    await store.delete({ kind: 'Namespace', namespace: '', name: 'x' });
    await until(() => `2 events (seen ${JSON.stringify(seen)})`, () => seen.length >= 2, 2000, STORE_POLL);
    assert.deepEqual(seen, ['MODIFIED Node/n1 (was n=1)', 'DELETED Namespace/x (was n=1)']);
    assert.equal(inf.revision, await store.revision());
    assert.deepEqual(inf.list().map((o) => o.metadata.name), ['n1']);
    stop.abort();
    await inf.done;
    assert.equal(inf.synced, false);
  });

  it('a watch that fails at once keeps backing off (the backoff is reset only by a watch that proved itself)', async () => {
    const store = new MemoryStore();
    const stop = new AbortController();
    const waits: number[] = [];
    const inf = startInformer({
      store,
      kinds: ['Node'],
      signal: stop.signal,
      backoff: { minMs: 5, maxMs: 40 },
      onReplace: () => {},
      onEvents: () => {
        throw new Error('this consumer always fails');
      },
      onError: (_err, retryMs) => void waits.push(retryMs),
    });
    for (let i = 0; waits.length < 6 && i < 400; i++) {
      await store.create(object('Node', '', `n${i}`, i));
      await new Promise((r) => setTimeout(r, 2));
    }
    stop.abort();
    await inf.done;
    assert.deepEqual(waits.slice(0, 5), [5, 10, 20, 40, 40], `waits ${waits.join(', ')}`);
  });

  it('stops promptly on abort even while the datastore hangs', async () => {
    const hanging = Object.create(new MemoryStore(), { list: { value: () => new Promise(() => {}) } }) as Store;
    const stop = new AbortController();
    const inf = startInformer({ store: hanging, kinds: ['Pod'], signal: stop.signal, onReplace: () => {}, onEvents: () => {} });
    await sleep(20);
    stop.abort();
    await inf.done;
    await inf.whenSynced(); // resolves once stopped, never hangs
    assert.equal(inf.syncs, 0);
  });
});
