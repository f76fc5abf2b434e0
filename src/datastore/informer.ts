// The one way every process reads the datastore (docs/architecture.md, "One informer, one retry policy"): list the
// kinds it needs, watch from the list's revision, skip the events the list already covered, and on any failure — a
// list or watch error, history compacted (`Compacted`), a handler that threw — list again after the one backoff
// policy (src/util.ts). Agent, gateway, controller and the lab kubelet all run one; nothing outside src/datastore/
// calls `store.watch` itself.
//
// The informer keeps the view (every object of its kinds, by key) and hands it on in two calls: `onReplace` with the
// whole view after each (re)list, `onEvents` with each later batch of changes (each with the object it replaced).
// Both are awaited, in order, before the next delivery, so a consumer never sees two calls at once.
//
// Why the per-kind skip: each kind is listed on its own (so the lists land at different store revisions) and then
// all are watched together from the oldest of those revisions; an event at or below its own kind's list revision is
// already in the list.
//
// The backoff is reset only once a watch has proved itself (a batch went through onEvents, or it stayed up for the
// backoff's longest wait): a watch that fails at once — history compacted again, a handler that always throws, a
// backend failing every read — keeps backing off instead of relisting ten times a second.
import { keyOf, keyString, type ObjectKey, type Resource } from '../api/meta.js';
import type { Logger } from '../log.js';
import { aborted, Backoff, errText, sleep, type BackoffOptions } from '../util.js';
import type { Store, Watch, WatchEvent } from './types.js';

/** Deleted keys whose deletion revision the informer keeps, against a late replay bringing one back. */
const TOMBSTONES = 100_000;

export interface InformerEvent extends WatchEvent {
  /** The object as the view held it before this change (absent for ADDED, or a change to an unseen object). */
  previous?: Resource;
}

export interface InformerOptions {
  store: Store;
  /** The kinds to list and watch (at least one). */
  kinds: readonly string[];
  /** Stops the informer: `done` resolves once the watch is closed. A hanging datastore call does not hold it up. */
  signal: AbortSignal;
  /** The whole view after a (re)list; replaces everything the consumer knew. */
  onReplace(objects: readonly Resource[], revision: number): void | Promise<void>;
  /** Changes after the list, in revision order, none the list covered and none twice. */
  onEvents(events: readonly InformerEvent[]): void | Promise<void>;
  /** A failure, and how long the informer waits before it lists again. Default: a warning in `log`. */
  onError?(err: unknown, retryMs: number): void;
  /**
   * The watch lag of each delivered change whose commit time the backend keeps (WatchEvent.writtenAt): seconds from
   * its commit until onEvents took it (egw_datastore_watch_lag_seconds, docs/observability.md).
   */
  onLag?(seconds: number): void;
  log?: Logger;
  backoff?: BackoffOptions;
}

export interface Informer {
  /** Resolves when the informer has stopped (after the signal aborted). Never rejects. */
  readonly done: Promise<void>;
  /** Listed and watching; false before the first list and after a failure until the next list succeeds. */
  readonly synced: boolean;
  /** Revision of the newest change the view reflects (0 before the first list). */
  readonly revision: number;
  /** Successful (re)lists so far. */
  readonly syncs: number;
  /** The view's object for a key. */
  get(key: ObjectKey): Resource | undefined;
  /** The view's objects of one kind (every kind when omitted), in no particular order. */
  list(kind?: string): Resource[];
  /** Resolves after the first successful list has been delivered, or when the informer stops. */
  whenSynced(): Promise<void>;
}

/** Starts an informer; see InformerOptions. */
export function startInformer(opts: InformerOptions): Informer {
  return new InformerImpl(opts);
}

class InformerImpl implements Informer {
  readonly done: Promise<void>;
  synced = false;
  revision = 0;
  syncs = 0;
  private view = new Map<string, Resource>();
  private readonly kinds: ReadonlySet<string>;
  private firstSync!: () => void;
  private readonly firstSynced = new Promise<void>((r) => (this.firstSync = r));

  constructor(private readonly o: InformerOptions) {
    if (o.kinds.length === 0) throw new Error('informer: no kinds to watch');
    this.kinds = new Set(o.kinds);
    this.done = this.run().finally(() => this.firstSync());
  }

  get(key: ObjectKey): Resource | undefined {
    return this.view.get(keyString(key));
  }

  list(kind?: string): Resource[] {
    const out: Resource[] = [];
    for (const r of this.view.values()) if (kind === undefined || r.kind === kind) out.push(r);
    return out;
  }

  whenSynced(): Promise<void> {
    return this.firstSynced;
  }

  private async run(): Promise<void> {
    const { store, signal } = this.o;
    const stopped = aborted(signal);
    const backoff = new Backoff(this.o.backoff);
    while (!signal.aborted) {
      let watch: Watch | undefined;
      /** Cleared when this round ends, so a late delivery of its watch is dropped. */
      let live = true;
      /** When the round's watch started, and whether a batch went through: the watch proved itself. */
      let watchingSince = Infinity;
      let delivered = false;
      try {
        const lists = await Promise.race([Promise.all(this.o.kinds.map((k) => store.list(k))), stopped.then(() => null)]);
        if (!lists || signal.aborted) break;
        const listRevs = new Map<string, number>();
        const view = new Map<string, Resource>();
        this.o.kinds.forEach((k, i) => listRevs.set(k, lists[i].revision));
        for (const l of lists) for (const r of l.items) view.set(keyString(keyOf(r)), r);
        this.view = view;
        this.revision = Math.max(...listRevs.values());
        // A replayed event is never applied twice, judged per key: the revision the view's copy was written at (its
        // resourceVersion), or for a deleted key the deletion's (tombstones, the newest TOMBSTONES kept). Not one
        // revision for the whole watch: the kubernetes: datastore watches each kind (and each view of a kind) on a
        // stream of its own, so events of different keys may come in any order (docs/kubernetes-datastore.md); each
        // key's own events come in order. On etcd the ops of one txn share a revision, each key once.
        const tombstones = new Map<string, number>();
        const appliedAt = (key: string): number => {
          const cur = view.get(key);
          const rv = cur ? Number(cur.metadata.resourceVersion) : NaN;
          return Number.isFinite(rv) ? rv : (tombstones.get(key) ?? 0);
        };
        await this.o.onReplace([...view.values()], this.revision);
        if (signal.aborted) break;
        let fail!: (err: unknown) => void;
        const failed = new Promise<unknown>((r) => (fail = r));
        const opening = store.watch(
          {
            kind: this.o.kinds.length === 1 ? this.o.kinds[0] : undefined,
            fromRevision: Math.min(...listRevs.values()),
            onError: (err) => fail(err),
          },
          async (events) => {
            if (!live) return;
            const out: InformerEvent[] = [];
            for (const ev of events) {
              const kind = ev.object.kind;
              if (!this.kinds.has(kind) || ev.revision <= (listRevs.get(kind) ?? 0)) continue;
              const key = keyString(keyOf(ev.object));
              if (ev.revision <= appliedAt(key)) continue;
              const previous = view.get(key);
              if (ev.type === 'DELETED') {
                view.delete(key);
                tombstones.delete(key);
                tombstones.set(key, ev.revision);
                if (tombstones.size > TOMBSTONES) tombstones.delete(tombstones.keys().next().value!);
              } else {
                tombstones.delete(key);
                view.set(key, ev.object);
              }
              out.push(previous ? { ...ev, previous } : ev);
            }
            if (events.length > 0) this.revision = Math.max(this.revision, events[events.length - 1].revision);
            if (out.length > 0) {
              await this.o.onEvents(out);
              if (this.o.onLag) {
                const now = Date.now();
                for (const ev of out) if (ev.writtenAt !== undefined) this.o.onLag(Math.max(0, now - ev.writtenAt) / 1000);
              }
            }
            delivered = true;
          },
        );
        // (a datastore that hangs opening the watch must not hold up stopping; a watch opened too late is closed)
        const opened = await Promise.race([opening, stopped.then(() => null)]);
        if (!opened) {
          void opening.then((w) => w.close()).catch(() => undefined);
          break;
        }
        watch = opened;
        watchingSince = Date.now();
        this.synced = true;
        this.syncs++;
        this.firstSync();
        const err = await Promise.race([failed, stopped.then(() => undefined)]);
        if (signal.aborted) break;
        throw err ?? new Error('watch ended');
      } catch (err) {
        if (signal.aborted) break;
        live = false;
        this.synced = false;
        if (delivered || Date.now() - watchingSince >= backoff.maxMs) backoff.reset();
        const ms = backoff.next();
        try {
          if (this.o.onError) this.o.onError(err, ms);
          else this.o.log?.warn('datastore list/watch failed; listing again', { kinds: this.o.kinds.join(','), error: errText(err), retryMs: ms });
        } catch {
          // a failing error handler must not stop the informer
        }
        await closeQuietly(watch);
        watch = undefined;
        await sleep(ms, signal);
      } finally {
        live = false;
        await closeQuietly(watch);
      }
    }
    this.synced = false;
  }
}

/** Closes a watch, waiting at most a second for a backend that hangs. */
async function closeQuietly(watch: Watch | undefined): Promise<void> {
  if (!watch) return;
  await Promise.race([watch.close().catch(() => undefined), sleep(CLOSE_WAIT_MS)]);
}

const CLOSE_WAIT_MS = 1000;
