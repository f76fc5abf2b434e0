// EgressGateway status (docs/behaviour.md §1): conditions, readyReplicas and one entry per gateway pod, computed from a plan.
// Pure; the controller writes the result only when it differs from what is stored (sameStatus).
import type { EgressGateway, EgressGatewayReplicaStatus, EgressGatewayStatus, Pod } from '../api/types.js';
import { isPodReady, readyCondition } from '../api/pod.js';
import { gatewayConditions, type GatewayPlan } from './plan.js';

export interface StatusOptions {
  /** Number of client pods that may use gateway pod `namespace/name` (calc's gatewayClients). Default: 0. */
  clients?: (podKey: string) => number;
  /** The status stored now: its conditions' lastTransitionTime is kept when their status did not change. */
  previous?: EgressGatewayStatus;
  now?: Date;
}

/**
 * A gateway pod's health as status shows it:
 * - Draining: it has a deletionTimestamp (in its drain window: existing connections only);
 * - Ready: Running with Ready True;
 * - NotReady: its Ready condition is False (reasons: the condition's reason, then its message lines);
 * - Unknown: anything else (created, not running yet; no Ready condition).
 */
export function replicaHealth(pod: Pod): Pick<EgressGatewayReplicaStatus, 'health' | 'reasons'> {
  if (pod.metadata.deletionTimestamp) return { health: 'Draining', reasons: [`drain window ends ${pod.metadata.deletionTimestamp}`] };
  if (isPodReady(pod)) return { health: 'Ready' };
  const c = readyCondition(pod);
  if (c?.status === 'False') {
    const lines = (c.message ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
    const reasons = c.reason && !lines.some((l) => l.includes(c.reason!)) ? [c.reason, ...lines] : lines;
    return { health: 'NotReady', reasons: reasons.length ? reasons : ['Ready condition is False'] };
  }
  const phase = pod.status?.phase;
  return { health: 'Unknown', reasons: [!phase || phase === 'Pending' ? 'not running yet' : `phase ${phase}`] };
}

function podIP(p: Pod): string | undefined {
  return p.status?.podIPs?.[0]?.ip ?? p.status?.podIP;
}

/**
 * The status of `egw` after `plan` is carried out: conditions (gatewayConditions), readyReplicas (counted pods that
 * are Ready; draining ones never count), and replicas: the counted pods by name, then the draining ones by name.
 * observedGeneration is set when the object carries a metadata.generation.
 */
export function gatewayStatus(egw: EgressGateway, plan: GatewayPlan, opts: StatusOptions = {}): EgressGatewayStatus {
  const replicas = Number.isInteger(egw.spec?.replicas) && egw.spec.replicas >= 0 ? egw.spec.replicas : 1;
  const clients = opts.clients ?? (() => 0);
  const byName = (a: Pod, b: Pod) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
  const pods = [...[...plan.result].sort(byName), ...[...plan.terminating].sort(byName)];
  const out: EgressGatewayStatus = {
    conditions: gatewayConditions(plan, replicas, opts.previous?.conditions ?? [], opts.now),
    readyReplicas: plan.result.filter((p) => plan.create.indexOf(p) < 0 && isPodReady(p)).length,
    replicas: pods.map((p) => {
      const r: EgressGatewayReplicaStatus = { pod: p.metadata.name, ...replicaHealth(p), clients: clients(`${p.metadata.namespace}/${p.metadata.name}`) };
      if (!r.reasons?.length) delete r.reasons;
      const ordered: EgressGatewayReplicaStatus = { pod: r.pod, node: p.spec?.nodeName, ip: podIP(p), health: r.health, reasons: r.reasons, clients: r.clients };
      for (const k of Object.keys(ordered) as (keyof EgressGatewayReplicaStatus)[]) if (ordered[k] === undefined) delete ordered[k];
      return ordered;
    }),
  };
  if (typeof egw.metadata.generation === 'number') out.observedGeneration = egw.metadata.generation;
  return out;
}

/** True if two statuses say the same (conditions compared without lastTransitionTime). */
export function sameStatus(a: EgressGatewayStatus | undefined, b: EgressGatewayStatus | undefined): boolean {
  const norm = (s: EgressGatewayStatus | undefined) =>
    JSON.stringify({
      conditions: (s?.conditions ?? []).map((c) => [c.type, c.status, c.reason ?? '', c.message ?? '', c.observedGeneration ?? null]),
      readyReplicas: s?.readyReplicas ?? null,
      replicas: s?.replicas ?? null,
      observedGeneration: s?.observedGeneration ?? null,
    });
  return norm(a) === norm(b);
}
