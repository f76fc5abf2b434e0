// The one poll of the tests: until(what, fn) runs fn until it returns something truthy, and fails naming what it
// waited for. Pure tests keep the defaults (5 s, every 10 ms); lab tests, whose polls run commands, poll every 100 ms.

export type Awaitable<T> = T | Promise<T>;

export interface PollOptions {
  /** Pause between two calls of fn (default 10 ms). */
  everyMs?: number;
  /**
   * Keep polling when fn throws (a store that is down for a while): the last error is named in the timeout
   * message. Without it an error from fn fails the wait at once, as an assertion would.
   */
  retryErrors?: boolean;
}

/** For polls that run commands in a lab (ip, curl, nft …): a call every 100 ms. */
export const LAB_POLL: PollOptions = { everyMs: 100 };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Calls fn until it returns a truthy value and resolves with that value (true for a plain predicate). After
 * timeoutMs it rejects with `timed out after <timeoutMs> ms waiting for <what>`; a function `what` is called then,
 * so the message can tell what was seen instead.
 */
export async function until<T>(what: string | (() => string), fn: () => Awaitable<T | undefined | null | false>, timeoutMs = 5000, opts: PollOptions = {}): Promise<T> {
  const everyMs = opts.everyMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      if (!opts.retryErrors) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}${why}`);
    }
    await sleep(everyMs);
  }
}
