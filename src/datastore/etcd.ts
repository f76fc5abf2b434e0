// A Store over etcd v3 (the `etcd3` npm client). Objects live under `[PREFIX]/egw/v1/<kind>/[<namespace>/]<name>`;
// an object's resourceVersion is its key's mod_revision and the store's revision is etcd's. Writes are planned with
// common.ts's planTxn on a snapshot of the keys they touch, then committed as one etcd transaction conditioned on
// every touched key's mod_revision (or absence); a lost race re-reads and re-plans, so a stale resourceVersion still
// ends in Conflict. Watches are etcd watches without prev_kv; a DELETED event's object (as last stored) is read at the revision before the delete.
//
// Differences from memory/SQLite that callers can see: a txn is ONE etcd revision, so every op of a batch shares one
// resourceVersion (memory/SQLite give op i revision base+i+1); revisions are etcd's (a fresh etcd starts at 1, and
// writes outside the prefix move the revision too); a batch is limited by etcd's transaction limits.
import { Etcd3, type IKeyValue, type IRequestOp, type ICompare, type Watcher } from 'etcd3';
import { keyOf, type ObjectKey, type Resource } from '../api/meta.js';
import {
  checkKey,
  checkListArgs,
  checkRevision,
  closedError,
  cloneIn,
  compareKeys,
  decode,
  checkWatchArgs,
  reportWatchStop,
  mapKey,
  planTxn,
  type Entry,
} from './common.js';
import {
  StoreError,
  type ListOptions,
  type ListResult,
  type Store,
  type TxnOp,
  type Watch,
  type WatchEvent,
  type WatchHandler,
  type WatchOptions,
} from './types.js';

/** etcd's default --max-txn-ops. */
export const ETCD_MAX_TXN_OPS = 128;
/** etcd's default --max-request-bytes (1.5 MiB); we keep a margin for the request's framing. */
export const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
const REQUEST_MARGIN = 16 * 1024;
/** How often a write re-plans after losing a race on its compare before giving up with Conflict. */
const MAX_ATTEMPTS = 20;

export interface EtcdStoreOptions {
  /** host:port endpoints (plain http; TLS is not supported yet). */
  endpoints: string[];
  /** Prepended to `/egw/v1/`: '' (default) or e.g. `/tenant-a`. */
  prefix?: string;
}

function bump(b: Buffer): Buffer {
  // The range end of a prefix: the prefix with its last byte incremented (no trailing 0xff in our ASCII keys).
  const c = Buffer.from(b);
  c[c.length - 1]++;
  return c;
}

function unavailable(description: string, e: unknown): StoreError {
  if (e instanceof StoreError) return e;
  return new StoreError('Unavailable', `${description}: ${(e as Error)?.message ?? String(e)}`);
}

function isCompactedMessage(e: unknown): boolean {
  return /compacted/i.test((e as Error)?.message ?? String(e));
}

export class EtcdStore implements Store {
  readonly description: string;
  private readonly client: Etcd3;
  /** `[prefix]/egw/v1/` */
  private readonly root: string;
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;

  constructor(opts: EtcdStoreOptions) {
    if (!opts.endpoints.length) throw new StoreError('Invalid', 'etcd: at least one HOST:PORT endpoint is needed');
    const prefix = (opts.prefix ?? '').replace(/\/+$/, '');
    this.description = `etcd://${opts.endpoints.join(',')}${prefix}`;
    this.root = `${prefix}/egw/v1/`;
    this.client = new Etcd3({ hosts: opts.endpoints.map((e) => `http://${e}`), dialTimeout: 5000 });
  }

  private check(): void {
    if (this.closed) throw closedError(this.description);
  }

  /** The etcd key of an object. */
  keyPath(key: ObjectKey): string {
    return key.namespace ? `${this.root}${key.kind}/${key.namespace}/${key.name}` : `${this.root}${key.kind}/${key.name}`;
  }

  private parsePath(path: string): ObjectKey | undefined {
    if (!path.startsWith(this.root)) return undefined;
    const parts = path.slice(this.root.length).split('/');
    if (parts.length === 2) return { kind: parts[0], namespace: '', name: parts[1] };
    if (parts.length === 3) return { kind: parts[0], namespace: parts[1], name: parts[2] };
    return undefined;
  }

  /** The object a kv holds, with resourceVersion = its mod_revision. */
  private objectOf(kv: IKeyValue): Resource {
    const obj = decode(kv.value.toString('utf8'));
    obj.metadata.resourceVersion = String(kv.mod_revision);
    return obj;
  }

  private entryOf(key: ObjectKey, kv: IKeyValue): Entry {
    return { key, value: kv.value.toString('utf8'), createRevision: Number(kv.create_revision), modRevision: Number(kv.mod_revision) };
  }

  async get(key: ObjectKey): Promise<Resource | undefined> {
    this.check();
    const k = checkKey(key);
    let res;
    try {
      res = await this.client.kv.range({ key: Buffer.from(this.keyPath(k)) });
    } catch (e) {
      throw unavailable(this.description, e);
    }
    return res.kvs.length ? this.objectOf(res.kvs[0]) : undefined;
  }

  async list(kind: string, opts?: ListOptions): Promise<ListResult> {
    this.check();
    const { namespace, match } = checkListArgs(kind, opts);
    const p = Buffer.from(`${this.root}${kind}/`);
    let res;
    try {
      res = await this.client.kv.range({ key: p, range_end: bump(p) });
    } catch (e) {
      throw unavailable(this.description, e);
    }
    const found: { key: ObjectKey; obj: Resource }[] = [];
    for (const kv of res.kvs) {
      const key = this.parsePath(kv.key.toString('utf8'));
      if (!key || key.kind !== kind) continue;
      if (namespace !== undefined && key.namespace !== namespace) continue;
      found.push({ key, obj: this.objectOf(kv) });
    }
    found.sort((a, b) => compareKeys(a.key, b.key));
    const items = found.filter((f) => match(f.obj.metadata.labels)).map((f) => f.obj);
    return { items, revision: Number(res.header.revision) };
  }

  async create(obj: Resource): Promise<Resource> {
    return (await this.apply([{ op: 'create', object: obj }], true))[0];
  }

  async update(obj: Resource): Promise<Resource> {
    return (await this.apply([{ op: 'update', object: obj }], true))[0];
  }

  async delete(key: ObjectKey, opts?: { resourceVersion?: string }): Promise<Resource> {
    return (await this.apply([{ op: 'delete', key, resourceVersion: opts?.resourceVersion }], true))[0];
  }

  async txn(ops: TxnOp[]): Promise<Resource[]> {
    return this.apply(ops, false);
  }

  /** The keys a batch touches; ops too broken to name a key are left to planTxn to reject. */
  private touchedKeys(ops: readonly TxnOp[]): ObjectKey[] {
    const keys = new Map<string, ObjectKey>();
    for (const op of ops) {
      try {
        const k = op.op === 'delete' ? checkKey(op.key) : keyOf(cloneIn(op.object));
        keys.set(mapKey(k), k);
      } catch {
        // planTxn reports it.
      }
    }
    return [...keys.values()];
  }

  private async apply(ops: readonly TxnOp[], single: boolean): Promise<Resource[]> {
    this.check();
    if (!Array.isArray(ops)) return planTxn(ops, 0, () => undefined, single).results; // throws Invalid
    const keys = this.touchedKeys(ops);
    if (keys.length > ETCD_MAX_TXN_OPS) {
      throw new StoreError(
        'Invalid',
        `txn: ${ops.length} ops touch ${keys.length} objects; an etcd transaction takes at most ${ETCD_MAX_TXN_OPS} (split the batch)`,
      );
    }
    for (let attempt = 1; ; attempt++) {
      // A consistent snapshot of every touched key.
      let snap;
      try {
        snap = await this.client.kv.txn({
          success: keys.map((k): IRequestOp => ({ request_range: { key: Buffer.from(this.keyPath(k)) } })),
        });
      } catch (e) {
        throw unavailable(this.description, e);
      }
      const read = new Map<string, Entry>();
      keys.forEach((k, i) => {
        const kv = snap.responses[i]?.response_range?.kvs?.[0];
        if (kv) read.set(mapKey(k), this.entryOf(k, kv));
      });
      const plan = planTxn(ops, Number(snap.header.revision), (k) => read.get(mapKey(k)), single);
      if (plan.results.length === 0) return [];
      const compare: ICompare[] = keys.map((k) => {
        const e = read.get(mapKey(k));
        return e
          ? { key: Buffer.from(this.keyPath(k)), target: 'Mod', result: 'Equal', mod_revision: e.modRevision }
          : { key: Buffer.from(this.keyPath(k)), target: 'Create', result: 'Equal', create_revision: 0 };
      });
      const success: IRequestOp[] = [];
      let bytes = 0;
      for (const w of plan.writes.values()) {
        const key = Buffer.from(this.keyPath(w.key));
        bytes += key.length * 2;
        if (w.entry) {
          const value = Buffer.from(w.entry.value, 'utf8');
          bytes += value.length;
          success.push({ request_put: { key, value } });
        } else if (read.has(mapKey(w.key))) {
          success.push({ request_delete_range: { key } });
        }
        // else: created and deleted within the batch; nothing to write.
      }
      if (bytes > ETCD_MAX_REQUEST_BYTES - REQUEST_MARGIN) {
        throw new StoreError(
          'Invalid',
          `txn: the batch is ${bytes} bytes; an etcd request takes at most ${ETCD_MAX_REQUEST_BYTES} bytes by default (split the batch or shrink the objects)`,
        );
      }
      let res;
      try {
        res = await this.client.kv.txn({ compare, success });
      } catch (e) {
        throw unavailable(this.description, e);
      }
      if (res.succeeded) {
        const rev = String(res.header.revision);
        for (const r of plan.results) r.metadata.resourceVersion = rev;
        return plan.results;
      }
      if (attempt >= MAX_ATTEMPTS) {
        throw new StoreError('Conflict', `${this.description}: txn: gave up after ${attempt} attempts; the objects kept changing underneath`);
      }
    }
  }

  async revision(): Promise<number> {
    this.check();
    try {
      // Any range answers with the current revision in its header.
      const res = await this.client.kv.range({ key: Buffer.from(this.root), limit: 1, keys_only: true });
      return Number(res.header.revision);
    } catch (e) {
      throw unavailable(this.description, e);
    }
  }

  private compactedError(from: number, detail?: string): StoreError {
    return new StoreError(
      'Compacted',
      `${this.description}: history has been compacted; cannot watch from revision ${from}${detail ? ` (${detail})` : ''} (list again and watch from the list's revision)`,
    );
  }

  async watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    const { from, kind, namespace } = checkWatchArgs(opts, handler);
    // etcd accepts a watch starting at the compact revision itself; our contract needs every event after `from`.
    let kept: boolean;
    try {
      kept = await this.historyKeptAfter(from);
    } catch (e) {
      throw unavailable(this.description, e);
    }
    if (!kept) throw this.compactedError(from);
    const prefix = kind === undefined ? this.root : namespace === undefined ? `${this.root}${kind}/` : `${this.root}${kind}/${namespace}/`;
    const w = new EtcdWatch(this, prefix, from, namespace, handler, opts.onError, (x) => this.watches.delete(x));
    this.watches.add(w);
    try {
      await w.start(this.client);
    } catch (e) {
      this.watches.delete(w);
      throw unavailable(this.description, e);
    }
    return w;
  }

  /**
   * @internal For EtcdWatch: the events of one watch response, in order. A delete comes without its object (the
   * watch does not ask for prev_kv: etcd would then read the previous value of every PUT for every watcher, which
   * costs the server a range per event per watcher); `withDeletedObjects` reads those few before delivery.
   */
  eventsOf(events: { type: string; kv: IKeyValue }[], namespace: string | undefined): PendingEvent[] {
    const out: PendingEvent[] = [];
    for (const ev of events) {
      const key = this.parsePath(ev.kv.key.toString('utf8'));
      if (!key) continue;
      if (namespace !== undefined && key.namespace !== namespace) continue;
      const revision = Number(ev.kv.mod_revision);
      if (ev.type === 'Delete' || ev.type === 'DELETE' || (ev.type as unknown) === 1) {
        out.push({ type: 'DELETED', revision, path: ev.kv.key });
      } else {
        out.push({ type: Number(ev.kv.version) === 1 ? 'ADDED' : 'MODIFIED', revision, object: this.objectOf(ev.kv) });
      }
    }
    return out;
  }

  /**
   * @internal Fills in each delete's object: the key's value just before the deleting revision, with
   * resourceVersion = that revision. If that version was compacted away first, the watch cannot say what was
   * deleted: that is `Compacted`, and the watcher lists again.
   */
  async withDeletedObjects(batch: PendingEvent[]): Promise<WatchEvent[]> {
    if (!batch.some((e) => 'path' in e)) return batch as WatchEvent[];
    return Promise.all(
      batch.map(async (e): Promise<WatchEvent> => {
        if (!('path' in e)) return e;
        let res;
        try {
          res = await this.client.kv.range({ key: e.path, revision: String(e.revision - 1) });
        } catch (err) {
          if (isCompactedMessage(err)) throw this.compactedError(e.revision - 1, `the object deleted at revision ${e.revision} was compacted before the watch read it`);
          throw unavailable(this.description, err);
        }
        const kv = res.kvs[0];
        if (!kv) throw new StoreError('Unavailable', `${this.description}: etcd reported a delete of ${e.path.toString('utf8')} at revision ${e.revision}, but the key held nothing just before`);
        const obj = this.objectOf(kv);
        obj.metadata.resourceVersion = String(e.revision);
        return { type: 'DELETED', revision: e.revision, object: obj };
      }),
    );
  }

  /**
   * @internal Whether etcd still has every revision after `rev` (false iff `rev` is before its compact revision): a
   * range at `rev` is refused exactly then. etcd's first revision is 1.
   */
  async historyKeptAfter(rev: number): Promise<boolean> {
    try {
      await this.client.kv.range({ key: Buffer.from(this.root), limit: 1, keys_only: true, revision: Math.max(rev, 1) });
      return true;
    } catch (e) {
      if (isCompactedMessage(e)) return false;
      if (/future revision/i.test((e as Error)?.message ?? '')) return true;
      throw e;
    }
  }

  /** @internal */
  compactedFor(from: number, detail: string): StoreError {
    return this.compactedError(from, detail);
  }

  async compact(revision: number): Promise<void> {
    this.check();
    checkRevision('compact: revision', revision);
    const current = await this.revision();
    if (revision > current) throw new StoreError('Invalid', `compact: revision ${revision} is after the current revision ${current}`);
    try {
      await this.client.kv.compact({ revision, physical: true });
    } catch (e) {
      // Compacting at or before the compact revision again is a no-op, as for the other backends.
      if (isCompactedMessage(e)) return;
      throw unavailable(this.description, e);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    this.client.close();
  }

  /** The raw client and the prefix ('' or `/a/b`), for state that is not an object: the controller's leader lease (src/controller/leader.ts). */
  etcd(): { client: Etcd3; prefix: string } {
    this.check();
    return { client: this.client, prefix: this.root.slice(0, -'/egw/v1/'.length) };
  }
}

/** A watch event as it comes from etcd: a delete still lacks the object it removed. */
type PendingEvent = WatchEvent | { type: 'DELETED'; revision: number; path: Buffer };

/** One store watch: an etcd watcher feeding a queue that a single pump hands to the handler, batch by batch. */
class EtcdWatch implements Watch {
  private watcher: Watcher | undefined;
  private closed = false;
  /** The revision of the last event taken from etcd: a reconnect resumes after it, never after a later header. */
  private cursor: number;
  private readonly queue: PendingEvent[][] = [];
  private pumping = false;
  /** Set once the caller has the Watch (see pump). */
  private handedOut = false;

  constructor(
    private readonly store: EtcdStore,
    private readonly prefix: string,
    from: number,
    private readonly namespace: string | undefined,
    private readonly handler: WatchHandler,
    private readonly onError: ((err: unknown) => void) | undefined,
    private readonly onClosed: (w: EtcdWatch) => void,
  ) {
    this.cursor = from;
  }

  /** Resolves once etcd has created the watch; rejects if it refuses it or does not answer within `timeoutMs`. */
  async start(client: Etcd3, timeoutMs = 10000): Promise<void> {
    // watcher() (not create()) so that every listener is on before the first response can arrive.
    const watcher = client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(this.cursor + 1))
      .watcher();
    this.watcher = watcher;
    let created = false;
    let settle: ((err?: unknown) => void) | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    // Registered after etcd3's own 'data' and 'connected' listeners, which move start_revision to the response
    // header's revision + 1: put it back to just after the last event we took, so a reconnect in the middle of a
    // catch-up replays from there instead of skipping what it had not yet delivered.
    const resumeAfterCursor = (): void => {
      (watcher as unknown as { request: { start_revision: string } }).request.start_revision = String(this.cursor + 1);
    };
    watcher.on('connected', () => {
      resumeAfterCursor();
      if (!created) {
        created = true;
        settle?.();
      }
    });
    watcher.on('data', (res: { events: { type: string; kv: IKeyValue }[] }) => {
      if (this.closed) return;
      const fresh = res.events.filter((e) => Number(e.kv.mod_revision) > this.cursor);
      if (fresh.length) this.cursor = Number(fresh[fresh.length - 1].kv.mod_revision);
      resumeAfterCursor();
      const events = this.store.eventsOf(fresh, this.namespace);
      if (events.length) {
        this.queue.push(events);
        void this.pump();
      }
    });
    // etcd cancels a watcher whose next revision was compacted with compact_revision set and (3.4) an empty
    // cancel_reason, and etcd3 passes on only "Watcher canceled: <reason>". So ask etcd whether the history after our
    // cursor is still there: if not, that is why.
    watcher.on('error', (err: unknown) => {
      if (this.closed) return;
      void this.store.historyKeptAfter(this.cursor).then(
        (kept) => {
          const e = kept ? err : this.store.compactedFor(this.cursor, (err as Error)?.message ?? String(err));
          if (created) this.fail(e);
          else settle?.(e);
        },
        () => (created ? this.fail(err) : settle?.(err)),
      );
    });
    const timer = setTimeout(() => settle?.(new Error(`etcd did not create the watch within ${timeoutMs} ms`)), timeoutMs);
    try {
      await ready;
    } catch (e) {
      this.closed = true;
      this.onClosed(this);
      void watcher.cancel().catch(() => {});
      throw e;
    } finally {
      clearTimeout(timer);
    }
    if (this.closed) void watcher.cancel().catch(() => {});
    // The Watch reaches the caller on the microtask after this returns: one more turn for anything already queued.
    setImmediate(() => (this.handedOut = true));
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // Until the caller holds the Watch, deliver on a later turn; after that at once (a turn per response for
      // each of many watchers shows in delivery latency: see docs/benchmarks.md, "Watch fan-out").
      if (!this.handedOut) await new Promise<void>((r) => setImmediate(r));
      while (!this.closed && this.queue.length) {
        const pending = this.queue.shift() as PendingEvent[];
        try {
          const batch = await this.store.withDeletedObjects(pending);
          if (this.closed) return;
          await this.handler(batch);
        } catch (e) {
          this.fail(e);
          return;
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    void this.close();
    reportWatchStop(this.onError, err);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.onClosed(this);
    try {
      await this.watcher?.cancel();
    } catch {
      // The connection is gone; nothing to release.
    }
  }
}
