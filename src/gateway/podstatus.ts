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
import { conditionSays, PORT_PRESSURE_CONDITION, PORT_PRESSURE_REASON, setCondition } from '../api/conditions.js';
import { readyCondition } from '../api/pod.js';
import type { Pod } from '../api/types.js';
import { updateWithRetry } from '../datastore/retry.js';
import { PORT_PRESSURE, SNAT_PORTS, type PortUse } from '../audit/ports.js';
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
 * The port pressure condition for the busiest destination, given whether it was True; null while it has never been
 * raised (no condition is written for a gateway that never came near the limit).
 */
export function portPressureCondition(busiest: PortUse | undefined, wasTrue: boolean | null): ReadyCondition | null {
  const share = busiest ? busiest.inUse / (busiest.inUse + busiest.available) : 0;
  const high = wasTrue ? share >= PORT_PRESSURE.clear : share > PORT_PRESSURE.raise;
  if (!high && wasTrue === null) return null;
  if (!high) return { status: 'False', reason: PORT_PRESSURE_REASON.ok, message: `every destination below ${PORT_PRESSURE.clear * 100}% of the ${SNAT_PORTS} source ports` };
  const b = busiest!;
  return {
    status: 'True',
    reason: PORT_PRESSURE_REASON.high,
    message: `${b.destination}/${b.protocol} from ${b.egressIp}: ${b.inUse} of ${b.inUse + b.available} source ports in use (${Math.round(share * 100)}%)`,
  };
}

export { PORT_PRESSURE_CONDITION, PORT_PRESSURE_REASON };

export interface PodCondition extends ReadyCondition {
  type: string;
}

/** True if the pod's conditions already say every one of `wants` (status, reason and message). */
export function hasConditions(pod: Pod | undefined, wants: readonly PodCondition[]): boolean {
  return wants.every((w) => conditionSays(pod?.status?.conditions?.find((c) => c.type === w.type), w));
}

/**
 * Writes conditions of pod `namespace/name` (only that pod uid, if given), all in one update. Resolves with
 * 'written', 'unchanged' (already so) or 'gone' (no such pod / another uid). Throws on other datastore errors, or when
 * the pod stays contended (updateWithRetry).
 */
export async function writePodConditions(store: Store, namespace: string, name: string, uid: string | undefined, wants: readonly PodCondition[], now = () => new Date()): Promise<'written' | 'unchanged' | 'gone'> {
  let gone = false;
  const r = await updateWithRetry<Pod>(store, { kind: 'Pod', namespace, name }, (cur) => {
    gone = !cur || (uid !== undefined && cur.metadata.uid !== undefined && cur.metadata.uid !== uid);
    if (gone || !cur) return undefined;
    let conditions = cur.status?.conditions;
    let changed = false;
    for (const w of wants) {
      const c = setCondition(conditions, w, now());
      conditions = c.conditions;
      changed = changed || c.changed;
    }
    if (!changed) return undefined;
    cur.status = { ...(cur.status ?? {}), conditions };
    return cur;
  });
  return gone ? 'gone' : r.outcome === 'unchanged' ? 'unchanged' : 'written';
}

/** writePodConditions of the Ready condition alone. */
export function writeReadyCondition(store: Store, namespace: string, name: string, uid: string | undefined, want: ReadyCondition, now = () => new Date()): Promise<'written' | 'unchanged' | 'gone'> {
  return writePodConditions(store, namespace, name, uid, [{ type: 'Ready', ...want }], now);
}
