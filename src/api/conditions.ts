// Conditions as Kubernetes keeps them (Pod Ready, EgressGateway Ready/Degraded): the one place they are set, so the
// gateway, the lab kubelet and the controller stamp lastTransitionTime the same way — it moves only when the
// condition's status flips, never for a new reason or message (Kubernetes API conventions, "typical status
// properties").
import type { Condition } from './types.js';

/**
 * The gateway's SNAT port pressure (docs/observability.md, "Port exhaustion"), as a Pod condition the controller turns
 * into the EgressGateway's Degraded condition: True while one destination uses more than PORT_PRESSURE.raise of the
 * port range, until it falls below PORT_PRESSURE.clear (hysteresis: src/gateway/podstatus.ts). Domain-prefixed, as
 * Kubernetes asks of condition types other components add to a Pod.
 */
export const PORT_PRESSURE_CONDITION = 'egw.dev/SNATPortPressure';
export const PORT_PRESSURE_REASON = { high: 'SNATPortsExhausting', ok: 'SNATPortsAvailable' } as const;

/** A condition to set: everything but lastTransitionTime, which setCondition decides. */
export type WantedCondition = Omit<Condition, 'lastTransitionTime'>;

/** True if `c` already says `want` (status, reason and message; a missing reason or message counts as ''). */
export function conditionSays(c: Condition | undefined, want: WantedCondition): boolean {
  return !!c && c.status === want.status && (c.reason ?? '') === (want.reason ?? '') && (c.message ?? '') === (want.message ?? '');
}

/**
 * `conds` with the condition of `want.type` set to `want` (same order; appended if absent), and whether anything
 * changed. lastTransitionTime is kept while the status stays the same, else it becomes `now`. Fields of `want` that
 * are undefined are left out.
 */
export function setCondition(conds: readonly Condition[] | undefined, want: WantedCondition, now: Date = new Date()): { conditions: Condition[]; changed: boolean } {
  const list = [...(conds ?? [])];
  const i = list.findIndex((c) => c.type === want.type);
  const cur = i >= 0 ? list[i] : undefined;
  if (cur && conditionSays(cur, want)) return { conditions: list, changed: false };
  const next: Condition = { ...want, lastTransitionTime: cur && cur.status === want.status && cur.lastTransitionTime ? cur.lastTransitionTime : now.toISOString() };
  for (const k of Object.keys(next) as (keyof Condition)[]) if (next[k] === undefined) delete next[k];
  if (i >= 0) list[i] = next;
  else list.push(next);
  return { conditions: list, changed: true };
}
