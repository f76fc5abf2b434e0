// The watch loop every backend uses: read the next events after a cursor, hand them to the handler, await it, and
// sleep until the store's revision moves past the cursor. Backends supply the read and wake the notifier.
import { eventOf, reportWatchStop, type StoredEvent } from './common.js';
import type { Watch, WatchHandler } from './types.js';

/** Largest batch handed to a handler at once (a long replay arrives as several batches). */
export const WATCH_BATCH = 1000;

/**
 * Reads the events a watch wants with revision > `after`, in order, at most `limit`; `upTo` is the revision through
 * which history has been examined (the store revision read in the same snapshot, or the last event's revision when
 * the batch is full). Throws StoreError('Compacted') if `after` is before the kept history.
 */
export type EventReader = (after: number, limit: number) => { events: StoredEvent[]; upTo: number };

/** Tracks the highest revision a store knows about and wakes watches waiting for a later one. */
export class RevisionNotifier {
  private known: number;
  private readonly waiters = new Set<{ after: number; resolve: () => void }>();

  constructor(initial: number) {
    this.known = initial;
  }

  get revision(): number {
    return this.known;
  }

  advance(rev: number): void {
    if (rev <= this.known) return;
    this.known = rev;
    for (const w of this.waiters) {
      if (w.after < rev) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** Resolves once the revision exceeds `after`, or when the returned cancel function is called. */
  wait(after: number): { promise: Promise<void>; cancel: () => void } {
    let waiter!: { after: number; resolve: () => void };
    const promise = new Promise<void>((resolve) => {
      waiter = { after, resolve };
    });
    if (this.known > after) waiter.resolve();
    else this.waiters.add(waiter);
    return {
      promise,
      cancel: () => {
        this.waiters.delete(waiter);
        waiter.resolve();
      },
    };
  }
}

export class WatchLoop implements Watch {
  private closed = false;
  private cancelWait: (() => void) | undefined;
  /** Resolves when the loop has exited. */
  readonly done: Promise<void>;

  constructor(
    private readonly read: EventReader,
    private readonly notifier: RevisionNotifier,
    private readonly handler: WatchHandler,
    private readonly onError: ((err: unknown) => void) | undefined,
    private cursor: number,
    private readonly onClosed: (w: WatchLoop) => void,
  ) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    // Start on a later turn of the event loop, so the caller holds the Watch before the first delivery.
    await new Promise<void>((r) => setImmediate(r));
    while (!this.closed) {
      let batch: { events: StoredEvent[]; upTo: number };
      try {
        batch = this.read(this.cursor, WATCH_BATCH);
      } catch (e) {
        this.fail(e);
        return;
      }
      if (this.closed) return;
      if (batch.events.length > 0) {
        try {
          await this.handler(batch.events.map(eventOf));
        } catch (e) {
          this.fail(e);
          return;
        }
      }
      const full = batch.events.length >= WATCH_BATCH;
      const upTo = full ? batch.events[batch.events.length - 1].revision : batch.upTo;
      if (upTo > this.cursor) this.cursor = upTo;
      if (!full && !this.closed) {
        const w = this.notifier.wait(this.cursor);
        this.cancelWait = w.cancel;
        await w.promise;
        this.cancelWait = undefined;
      }
    }
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    this.stop();
    reportWatchStop(this.onError, err);
  }

  private stop(): void {
    this.closed = true;
    this.cancelWait?.();
    this.onClosed(this);
  }

  /**
   * Stops delivery: the handler is not called again. Does not wait for a handler call already running (so a handler
   * may close its own watch).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.stop();
  }
}
