// Small pure readers of Pod objects shared by calc, the gateway and the tools.
import { formatIPv4, parseIPv4 } from './ipv4.js';
import type { Condition, Pod } from './types.js';

/** The pod's first IPv4 address (status.podIPs, then status.podIP), normalised; null if it has none yet. */
export function podIPv4(pod: Pod): string | null {
  const st = pod.status;
  if (!st) return null;
  const cands: string[] = [];
  if (Array.isArray(st.podIPs)) for (const p of st.podIPs) if (p && typeof p.ip === 'string') cands.push(p.ip);
  if (typeof st.podIP === 'string') cands.push(st.podIP);
  for (const c of cands) {
    const n = parseIPv4(c);
    if (n !== undefined) return formatIPv4(n);
  }
  return null;
}

/** The pod's Ready condition, if it has one. */
export function readyCondition(pod: Pod): Condition | undefined {
  return pod.status?.conditions?.find((c) => c.type === 'Ready');
}

/**
 * A pod that may take new connections: phase Running and condition Ready=True, as Kubernetes Endpoints count a pod
 * ready. The one home of gateway readiness: calc's eligibility, the controller's replica count and scale-down order,
 * and status all use it (docs/dataplane.md, "Gateway readiness").
 */
export function isPodReady(pod: Pod): boolean {
  return pod.status?.phase === 'Running' && readyCondition(pod)?.status === 'True';
}

/** Succeeded or Failed: the pod will not run again. */
export function isPodFinished(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}
