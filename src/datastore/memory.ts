// An in-process Store: for tests, and the reference the SQLite backend must match. Objects are held as JSON text,
// so nothing a caller holds aliases what is stored.
import type { ObjectKey, Resource } from '../api/meta.js';
import {
  checkKey,
  checkListArgs,
  checkRevision,
  closedError,
  compareKeys,
  decode,
  checkWatchArgs,
  mapKey,
  planTxn,
  type Entry,
  type StoredEvent,
  type TxnPlan,
} from './common.js';
import { StoreError, type ListOptions, type ListResult, type Store, type TxnOp, type Watch, type WatchHandler, type WatchOptions } from './types.js';
import { RevisionNotifier, WatchLoop } from './watch.js';

export class MemoryStore implements Store {
  readonly description = 'memory:';
  private rev = 0;
  private compacted = 0;
  private readonly objects = new Map<string, Entry>();
  /** Every change after `compacted`, in revision order. */
  private history: StoredEvent[] = [];
  private readonly notifier = new RevisionNotifier(0);
  private readonly watches = new Set<WatchLoop>();
  private closed = false;

  private check(): void {
    if (this.closed) throw closedError(this.description);
  }

  async get(key: ObjectKey): Promise<Resource | undefined> {
    this.check();
    const e = this.objects.get(mapKey(checkKey(key)));
    return e ? decode(e.value) : undefined;
  }

  async list(kind: string, opts?: ListOptions): Promise<ListResult> {
    this.check();
    const { namespace, match } = checkListArgs(kind, opts);
    const found: Entry[] = [];
    for (const e of this.objects.values()) {
      if (e.key.kind === kind && (namespace === undefined || e.key.namespace === namespace)) found.push(e);
    }
    found.sort((a, b) => compareKeys(a.key, b.key));
    const items: Resource[] = [];
    for (const e of found) {
      const obj = decode(e.value);
      if (match(obj.metadata.labels)) items.push(obj);
    }
    return { items, revision: this.rev };
  }

  async create(obj: Resource): Promise<Resource> {
    return this.apply([{ op: 'create', object: obj }], true)[0];
  }

  async update(obj: Resource): Promise<Resource> {
    return this.apply([{ op: 'update', object: obj }], true)[0];
  }

  async delete(key: ObjectKey, opts?: { resourceVersion?: string }): Promise<Resource> {
    return this.apply([{ op: 'delete', key, resourceVersion: opts?.resourceVersion }], true)[0];
  }

  async txn(ops: TxnOp[]): Promise<Resource[]> {
    return this.apply(ops, false);
  }

  private apply(ops: readonly TxnOp[], single: boolean): Resource[] {
    this.check();
    // Plan first (throws without touching anything), then commit in one synchronous step.
    const plan: TxnPlan = planTxn(ops, this.rev, (key) => this.objects.get(mapKey(key)), single);
    for (const [k, w] of plan.writes) {
      if (w.entry) this.objects.set(k, w.entry);
      else this.objects.delete(k);
    }
    for (const e of plan.events) this.history.push(e);
    this.rev = plan.revision;
    this.notifier.advance(this.rev);
    return plan.results;
  }

  async revision(): Promise<number> {
    this.check();
    return this.rev;
  }

  async watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    const { from, kind, namespace } = checkWatchArgs(opts, handler);
    if (from < this.compacted) throw this.compactedError(from);
    const read = (after: number, limit: number): { events: StoredEvent[]; upTo: number } => {
      if (after < this.compacted) throw this.compactedError(after);
      const events: StoredEvent[] = [];
      for (let i = this.firstAfter(after); i < this.history.length && events.length < limit; i++) {
        const e = this.history[i];
        if ((kind === undefined || e.kind === kind) && (namespace === undefined || e.namespace === namespace)) events.push(e);
      }
      return { events, upTo: this.rev };
    };
    const w = new WatchLoop(read, this.notifier, handler, opts.onError, from, (x) => this.watches.delete(x));
    this.watches.add(w);
    return w;
  }

  /** Index of the first history event with revision > rev. */
  private firstAfter(rev: number): number {
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.history[mid].revision <= rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private compactedError(from: number): StoreError {
    return new StoreError(
      'Compacted',
      `${this.description}: history up to revision ${this.compacted} has been compacted; cannot watch from revision ${from} (list again and watch from the list's revision)`,
    );
  }

  async compact(revision: number): Promise<void> {
    this.check();
    checkRevision('compact: revision', revision);
    if (revision > this.rev) throw new StoreError('Invalid', `compact: revision ${revision} is after the current revision ${this.rev}`);
    if (revision <= this.compacted) return;
    this.history = this.history.slice(this.firstAfter(revision));
    this.compacted = revision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
  }
}
