// One EtcdStore watch (src/datastore/etcd.ts): an etcd3 watcher without prev_kv feeding a queue that a single pump
// hands to the handler, batch by batch; it resumes after the last event it took on every reconnect, and after etcd
// cancels it (a shutdown) watches again from there or fails with Compacted (docs/architecture.md, "Datastore").
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { reportWatchStop } from './common.js';
import type { EtcdStore } from './etcd.js';
import { StoreError, type Watch, type WatchEvent, type WatchHandler } from './types.js';
import { WATCH_BATCH } from './watch.js';

/** A watch event as it comes from etcd: a delete still lacks the object it removed. */
export type PendingEvent = WatchEvent | { type: 'DELETED'; revision: number; path: Buffer };

/**
 * A catch-up response can hold thousands of events: hand them on in batches of at most WATCH_BATCH, as the other
 * backends do, cutting only between revisions (the events of one etcd transaction share a revision and stay together).
 */
function splitBatches(events: PendingEvent[]): PendingEvent[][] {
  const out: PendingEvent[][] = [];
  let cur: PendingEvent[] = [];
  for (const ev of events) {
    if (cur.length >= WATCH_BATCH && ev.revision !== cur[cur.length - 1].revision) {
      out.push(cur);
      cur = [];
    }
    cur.push(ev);
  }
  if (cur.length) out.push(cur);
  return out;
}

/** One store watch: an etcd watcher feeding a queue that a single pump hands to the handler, batch by batch. */
export class EtcdWatch implements Watch {
  private watcher: Watcher | undefined;
  private client: Etcd3 | undefined;
  private closed = false;
  /** The revision of the last event taken from etcd: a reconnect resumes after it, never after a later header. */
  private cursor: number;
  /** Batches to hand on, in order; an error ends the watch once the batches before it are handed on. */
  private readonly queue: (PendingEvent[] | { error: unknown })[] = [];
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
    this.client = client;
    try {
      await this.open(timeoutMs);
    } catch (e) {
      this.closed = true;
      this.onClosed(this);
      throw e;
    }
  }

  /**
   * Creates an etcd3 watcher from just after the cursor and resolves once etcd has created it. Rejects if etcd
   * cancels it first or does not answer within `timeoutMs`.
   */
  private async open(timeoutMs: number): Promise<void> {
    const client = this.client as Etcd3;
    // watcher() (not create()) so that every listener is on before the first response can arrive.
    const watcher = client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(this.cursor + 1))
      .watcher();
    this.watcher = watcher;
    const current = (): boolean => !this.closed && this.watcher === watcher;
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
      if (!current()) return;
      const fresh = res.events.filter((e) => Number(e.kv.mod_revision) > this.cursor);
      if (fresh.length) this.cursor = Number(fresh[fresh.length - 1].kv.mod_revision);
      resumeAfterCursor();
      let events: PendingEvent[];
      try {
        events = this.store.eventsOf(fresh, this.namespace);
      } catch (e) {
        // A key egw cannot read (see EtcdStore.foreign): the watch stops with that error, after what it delivered.
        this.queue.push({ error: e });
        void this.pump();
        return;
      }
      if (events.length) {
        this.queue.push(...splitBatches(events));
        void this.pump();
      }
    });
    // etcd cancels a watcher whose next revision was compacted (compact_revision set, and in 3.4 an empty
    // cancel_reason, which is all etcd3 passes on: "Watcher canceled: <reason>"), but also every watcher when it shuts
    // down. etcd3 has dropped the watcher either way: recover() finds out which, and watches on or fails.
    watcher.on('error', (err: unknown) => {
      if (!current()) return;
      // etcd3 has detached it: cancelling it again would send etcd a cancel for a watch id etcd3 no longer knows,
      // and etcd3 throws (uncaught) on the answer.
      this.watcher = undefined;
      if (!created) settle?.(err);
      else void this.recover(err);
    });
    const timer = setTimeout(() => settle?.(new Error(`etcd did not create the watch within ${timeoutMs} ms`)), timeoutMs);
    try {
      await ready;
    } catch (e) {
      if (this.watcher === watcher) {
        this.watcher = undefined;
        void watcher.cancel().catch(() => {});
      }
      if (e instanceof Error && /Watcher canceled/.test(e.message) && !(await this.store.historyKeptAfter(this.cursor).catch(() => true))) {
        throw this.store.compactedFor(this.cursor, e.message);
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
    if (this.closed && this.watcher === watcher) {
      this.watcher = undefined;
      void watcher.cancel().catch(() => {});
    }
    // The Watch reaches the caller on the microtask after start() returns: one more turn for anything already queued.
    setImmediate(() => (this.handedOut = true));
  }

  /**
   * etcd cancelled the running watcher. Ask whether the history after the cursor is still kept (while etcd is away,
   * ask again with backoff, for as long as the watch is open): if not, the watch fails with Compacted; if it is (etcd
   * restarted), watch again from just after the cursor, so nothing is missed and nothing repeated.
   */
  private async recover(cause: unknown): Promise<void> {
    let delay = 100;
    while (!this.closed) {
      let kept: boolean | undefined;
      try {
        kept = await this.store.historyKeptAfter(this.cursor);
      } catch {
        kept = undefined; // etcd unreachable for now
      }
      if (this.closed) return;
      if (kept === false) {
        this.fail(this.store.compactedFor(this.cursor, (cause as Error)?.message ?? String(cause)));
        return;
      }
      if (kept) {
        try {
          await this.open(10000);
          return;
        } catch (e) {
          if (e instanceof StoreError && e.code === 'Compacted') {
            this.fail(e);
            return;
          }
        }
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // Until the caller holds the Watch, deliver on a later turn; after that at once (a turn per response for
      // each of many watchers shows in delivery latency: see docs/benchmarks.md, "Watch fan-out").
      if (!this.handedOut) await new Promise<void>((r) => setImmediate(r));
      while (!this.closed && this.queue.length) {
        const batch = this.queue.shift() as PendingEvent[] | { error: unknown };
        if (!Array.isArray(batch)) {
          this.fail(batch.error);
          return;
        }
        try {
          const events = await this.store.withDeletedObjects(batch);
          if (this.closed) return;
          await this.handler(events);
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
