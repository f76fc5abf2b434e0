// Read-modify-write with retry: the one loop every writer of a shared object uses (Pod status and annotations, node
// objects, graceful deletion), and the one definition of "lost a race" (docs/architecture.md, "One informer, one
// retry policy"). Each attempt reads the object, lets the caller decide from what it read, and writes conditioned on
// the resourceVersion it read, so a concurrent change is never overwritten: it makes the write fail, and the next
// attempt decides again from the new state.
import type { ObjectKey, Resource } from '../api/meta.js';
import { describeKey } from './common.js';
import { StoreError, type Store } from './types.js';
import { errText } from '../util.js';

/**
 * The store errors that mean another writer got there first: the object changed (Conflict), appeared
 * (AlreadyExists) or went away (NotFound) between the read and the write. Read again and decide again.
 */
export function isRaceError(err: unknown): boolean {
  return err instanceof StoreError && (err.code === 'Conflict' || err.code === 'AlreadyExists' || err.code === 'NotFound');
}

/** Returned by a mutation to delete the object it was given. */
export const DELETE: unique symbol = Symbol('delete');

/**
 * Given the stored object (a private copy it may change) or undefined when there is none: the object to write (it
 * is created when there was none), DELETE, or undefined to write nothing.
 */
export type Mutation<T extends Resource> = (current: T | undefined) => T | typeof DELETE | undefined | Promise<T | typeof DELETE | undefined>;

export interface WriteResult<T extends Resource> {
  outcome: 'created' | 'updated' | 'deleted' | 'unchanged';
  /** The object as stored after the write (for deleted: as it was last stored; for unchanged: as read, if any). */
  object: T | undefined;
}

/** Default number of attempts before giving up on a contended object. */
const RETRY_ATTEMPTS = 20;

/**
 * Reads `key`, applies `mutate`, writes the result conditioned on the resourceVersion read; on a race (isRaceError)
 * reads again, up to `attempts` times. Other errors are thrown at once.
 */
export async function updateWithRetry<T extends Resource>(store: Store, key: ObjectKey, mutate: Mutation<T>, opts: { attempts?: number } = {}): Promise<WriteResult<T>> {
  const attempts = opts.attempts ?? RETRY_ATTEMPTS;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    const cur = (await store.get(key)) as T | undefined;
    const next = await mutate(cur === undefined ? undefined : structuredClone(cur));
    if (next === undefined) return { outcome: 'unchanged', object: cur };
    try {
      if (next === DELETE) {
        if (!cur) return { outcome: 'unchanged', object: undefined };
        return { outcome: 'deleted', object: (await store.delete(key, { resourceVersion: cur.metadata.resourceVersion })) as T };
      }
      if (!cur) return { outcome: 'created', object: (await store.create(next)) as T };
      const write = { ...next, metadata: { ...next.metadata, resourceVersion: cur.metadata.resourceVersion } };
      return { outcome: 'updated', object: (await store.update(write)) as T };
    } catch (err) {
      if (!isRaceError(err)) throw err;
      last = err;
    }
  }
  // still a race error, so callers that treat a lost race as "try again later" keep doing so
  throw new StoreError('Conflict', `${describeKey(key)}: still contended after ${attempts} attempts (${errText(last)})`);
}
