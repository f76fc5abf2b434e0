// The gateway's own Pod `Ready` condition.
//
// In Kubernetes the kubelet sets a pod's Ready condition from its readiness probe (`GET :8080/readiness`). egw's lab
// kubelet does not probe: it marks a gateway pod `Ready=False, reason GatewayStarting` and leaves the condition to
// the gateway, which writes what its readiness says (this file) whenever that changes. Either way the datastore ends
// up with the same condition, which the controller (EgressGateway status) and the agents (a gateway's health until
// their own heartbeats give a verdict) read.
//
// A write reads the Pod, changes only `status.conditions[type=Ready]` (lastTransitionTime moves only when the status
// flips), and updates with the read resourceVersion, retrying on a race (src/datastore/retry.ts): concurrent writers (the kubelet's status,
// the controller's annotations) are never overwritten.
import { conditionSays, setCondition } from '../api/conditions.js';
import { readyCondition } from '../api/pod.js';
import type { Pod } from '../api/types.js';
import { updateWithRetry } from '../datastore/retry.js';
import type { Store } from '../datastore/types.js';

export interface ReadyCondition {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

/** Condition reasons the gateway writes (the first failing check decides a False one). */
export const READY_REASON = {
  ready: 'GatewayReady',
  dataplane: 'DataplaneNotProgrammed',
  datastore: 'DatastoreNotSeen',
  'icmp probe': 'ICMPProbeFailing',
  'http probe': 'HTTPProbeFailing',
  other: 'GatewayNotReady',
} as const;

export function readyConditionOf(r: { ready: boolean; reasons: string[]; failing: string[] }): ReadyCondition {
  if (r.ready) return { status: 'True', reason: READY_REASON.ready, message: 'data plane programmed, datastore seen, probes passing' };
  const first = r.failing[0] as keyof typeof READY_REASON | undefined;
  const reason = first && first in READY_REASON ? READY_REASON[first] : READY_REASON.other;
  return { status: 'False', reason, message: r.reasons.join('; ') };
}

/** True if the pod's Ready condition already says `want` (status, reason and message). */
export function hasReadyCondition(pod: Pod | undefined, want: ReadyCondition): boolean {
  return conditionSays(pod ? readyCondition(pod) : undefined, { type: 'Ready', ...want });
}

/**
 * Writes the Ready condition of pod `namespace/name` (only that pod uid, if given). Resolves with 'written',
 * 'unchanged' (already so) or 'gone' (no such pod / another uid). Throws on other datastore errors, or when the
 * pod stays contended (updateWithRetry).
 */
export async function writeReadyCondition(store: Store, namespace: string, name: string, uid: string | undefined, want: ReadyCondition, now = () => new Date()): Promise<'written' | 'unchanged' | 'gone'> {
  let gone = false;
  const r = await updateWithRetry<Pod>(store, { kind: 'Pod', namespace, name }, (cur) => {
    gone = !cur || (uid !== undefined && cur.metadata.uid !== undefined && cur.metadata.uid !== uid);
    if (gone || !cur) return undefined;
    const c = setCondition(cur.status?.conditions, { type: 'Ready', ...want }, now());
    if (!c.changed) return undefined;
    cur.status = { ...(cur.status ?? {}), conditions: c.conditions };
    return cur;
  });
  return gone ? 'gone' : r.outcome === 'unchanged' ? 'unchanged' : 'written';
}
