// Graceful pod deletion with Kubernetes semantics, the one place both `egw delete pod` and the controller use.
//
// A scheduled pod (spec.nodeName set) is not removed: it gets metadata.deletionTimestamp = now + grace and
// metadata.deletionGracePeriodSeconds = grace, and its kubelet keeps it running until then (the drain window),
// stops it and deletes the object. Grace = the caller's, else spec.terminationGracePeriodSeconds, else 30.
// Removed at once instead: grace 0 (kubectl's `--grace-period 0 --force`), a pod with no node (nothing runs it),
// and a finished pod (phase Succeeded/Failed: nothing left to stop), as the Kubernetes API server does.
// Deleting a pod that is already terminating never extends its window; a shorter grace shortens it.
//
// The timestamps keep milliseconds (RFC 3339 allows a fraction): the lab kubelet stops the pod at exactly the
// deletionTimestamp, so the window is never shorter than asked.
import { isPodFinished } from '../api/pod.js';
import type { Pod } from '../api/types.js';
import { DELETE, updateWithRetry } from '../datastore/retry.js';
import type { Store } from '../datastore/types.js';

/** Kubernetes' default terminationGracePeriodSeconds. */
export const DEFAULT_GRACE_SECONDS = 30;

export interface DeletePodOptions {
  /** Seconds of drain window; undefined: the pod's spec.terminationGracePeriodSeconds, else 30. 0: remove now. */
  gracePeriodSeconds?: number;
  /** Only if the stored pod still has this uid (else 'not-found'): a controller deletes the pod it planned for. */
  uid?: string;
  /** The current time (tests). */
  now?: () => Date;
}

export type DeletePodOutcome =
  /** The object is gone. */
  | 'deleted'
  /** deletionTimestamp set (or shortened) now. */
  | 'terminating'
  /** Already terminating with a window that ends no later than asked: nothing written. */
  | 'unchanged'
  /** No such pod. */
  | 'not-found';

export interface DeletePodResult {
  outcome: DeletePodOutcome;
  /** The pod after the call (for 'deleted', as it was last stored). */
  pod?: Pod;
}

/** The grace a deletion of `pod` gets when the caller names none. */
export function podGraceSeconds(pod: Pod): number {
  const g = pod.spec?.terminationGracePeriodSeconds;
  return typeof g === 'number' && Number.isFinite(g) && g >= 0 ? g : DEFAULT_GRACE_SECONDS;
}

/**
 * Deletes pod `key` gracefully (see the file comment). Every write carries the resourceVersion read, and is
 * retried after a race with a fresh read (updateWithRetry), so a concurrent change is never overwritten.
 */
export async function deletePodGracefully(
  store: Store,
  key: { namespace: string; name: string },
  opts: DeletePodOptions = {},
): Promise<DeletePodResult> {
  const objKey = { kind: 'Pod', namespace: key.namespace, name: key.name };
  const now = opts.now ?? (() => new Date());
  if (opts.gracePeriodSeconds !== undefined && !(Number.isInteger(opts.gracePeriodSeconds) && opts.gracePeriodSeconds >= 0)) {
    throw new RangeError(`grace period must be a whole number of seconds ≥ 0, got ${opts.gracePeriodSeconds}`);
  }
  let found = false;
  const r = await updateWithRetry<Pod>(store, objKey, (cur) => {
    found = !!cur && (opts.uid === undefined || cur.metadata.uid === opts.uid);
    if (!cur || !found) return undefined;
    const grace = opts.gracePeriodSeconds ?? podGraceSeconds(cur);
    if (grace === 0 || !cur.spec?.nodeName || isPodFinished(cur)) return DELETE;
    const at = now().getTime() + grace * 1000;
    const existing = cur.metadata.deletionTimestamp ? Date.parse(cur.metadata.deletionTimestamp) : NaN;
    if (Number.isFinite(existing) && existing <= at) return undefined;
    cur.metadata = { ...cur.metadata, deletionTimestamp: new Date(at).toISOString(), deletionGracePeriodSeconds: grace };
    return cur;
  });
  if (!found) return { outcome: 'not-found' };
  if (r.outcome === 'deleted') return { outcome: 'deleted', pod: r.object };
  if (r.outcome === 'updated') return { outcome: 'terminating', pod: r.object };
  return { outcome: 'unchanged', pod: r.object };
}

/** When the deletion of a terminating pod started: deletionTimestamp − deletionGracePeriodSeconds (ms), if known. */
export function deletionStarted(pod: Pod): number | undefined {
  const end = pod.metadata.deletionTimestamp ? Date.parse(pod.metadata.deletionTimestamp) : NaN;
  if (!Number.isFinite(end)) return undefined;
  const g = pod.metadata.deletionGracePeriodSeconds;
  return end - (typeof g === 'number' && Number.isFinite(g) && g >= 0 ? g : podGraceSeconds(pod)) * 1000;
}
