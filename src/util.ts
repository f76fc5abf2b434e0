// Small helpers every long-running part shares: waiting, error text, and the one retry backoff policy
// (docs/architecture.md, "One informer, one retry policy").

/** The message of an error (or the value as text): what logs and status fields show. */
export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Resolves after `ms`, or early (without rejecting) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Resolves when `signal` aborts (at once if it has). */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export interface BackoffOptions {
  /** First delay, ms. Default 100. */
  minMs?: number;
  /** Largest delay, ms. Default 5000. */
  maxMs?: number;
}

/**
 * Exponential backoff: minMs, 2·minMs, 4·minMs … capped at maxMs; `reset()` after a success. The one policy for
 * retrying datastore reads and writes, reconciles and restarts, so every process backs off the same way.
 */
export class Backoff {
  readonly minMs: number;
  readonly maxMs: number;
  private n = 0;

  constructor(opts: BackoffOptions = {}) {
    this.minMs = opts.minMs ?? 100;
    this.maxMs = Math.max(this.minMs, opts.maxMs ?? 5000);
  }

  /** Consecutive failures since the last reset. */
  get failures(): number {
    return this.n;
  }

  /** Records a failure and returns how long to wait before the next attempt. */
  next(): number {
    this.n++;
    return Math.min(this.maxMs, this.minMs * 2 ** Math.min(30, this.n - 1));
  }

  reset(): void {
    this.n = 0;
  }
}
