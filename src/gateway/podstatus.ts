// The gateway's own Pod `Ready` condition.
//
// In Kubernetes the kubelet sets a pod's Ready condition from its readiness probe (`GET :8080/readiness`). egw's lab
// kubelet does not probe: it marks a gateway pod `Ready=False, reason GatewayStarting` and leaves the condition to
// the gateway, which writes what its readiness says (this file) whenever that changes. Either way the datastore ends
// up with the same condition, which the controller (EgressGateway status) and the agents (a gateway's health until
// their own heartbeats give a verdict) read.
//
// A write reads the Pod, changes only `status.conditions[type=Ready]` (lastTransitionTime moves only when the status
// flips), and updates with the read resourceVersion, retrying on Conflict: concurrent writers (the kubelet's status,
// the controller's annotations) are never overwritten.
import type { Condition, Pod } from '../api/types.js';
import { StoreError, type Store } from '../datastore/types.js';

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
  const c = pod?.status?.conditions?.find((x) => x.type === 'Ready');
  return !!c && c.status === want.status && (c.reason ?? '') === want.reason && (c.message ?? '') === want.message;
}

/** `conditions` with Ready set to `want` (same order; appended if absent). */
export function withReadyCondition(conds: Condition[] | undefined, want: ReadyCondition, now: Date): Condition[] {
  const list = [...(conds ?? [])];
  const i = list.findIndex((c) => c.type === 'Ready');
  const cur = i >= 0 ? list[i] : undefined;
  const next: Condition = {
    type: 'Ready',
    status: want.status,
    reason: want.reason,
    message: want.message,
    lastTransitionTime: cur && cur.status === want.status && cur.lastTransitionTime ? cur.lastTransitionTime : now.toISOString(),
  };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/**
 * Writes the Ready condition of pod `namespace/name` (only that pod uid, if given). Resolves with 'written',
 * 'unchanged' (already so) or 'gone' (no such pod / another uid). Throws on datastore errors other than Conflict,
 * or when conflicts persist.
 */
export async function writeReadyCondition(store: Store, namespace: string, name: string, uid: string | undefined, want: ReadyCondition, now = () => new Date()): Promise<'written' | 'unchanged' | 'gone'> {
  const key = { kind: 'Pod', namespace, name };
  for (let i = 0; i < 20; i++) {
    const cur = (await store.get(key)) as Pod | undefined;
    if (!cur || (uid !== undefined && cur.metadata.uid !== undefined && cur.metadata.uid !== uid)) return 'gone';
    if (hasReadyCondition(cur, want)) return 'unchanged';
    const next = structuredClone(cur);
    next.status = { ...(next.status ?? {}), conditions: withReadyCondition(next.status?.conditions, want, now()) };
    try {
      await store.update(next); // carries cur's resourceVersion: a concurrent write makes this a Conflict
      return 'written';
    } catch (err) {
      if (err instanceof StoreError && err.code === 'Conflict') continue;
      if (err instanceof StoreError && err.code === 'NotFound') return 'gone';
      throw err;
    }
  }
  throw new Error(`pod ${namespace}/${name}: Ready condition update kept conflicting`);
}
