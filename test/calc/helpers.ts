// A tiny kernel-lookup simulator for the calc tests (the resources come from test/helpers/resources.ts).
import type { EgressRoute, NodeEgressState } from '../../src/calc/index.js';

function ipNum(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

function contains(cidr: string, ip: string): { ok: boolean; len: number } {
  const [a, l] = cidr.split('/');
  const len = Number(l);
  const size = 2 ** (32 - len);
  return { ok: Math.floor(ipNum(ip) / size) === Math.floor(ipNum(a) / size), len };
}

/** The client's table routes, or null when the pod has no rule. */
export function tableOf(st: NodeEgressState, podKey: string): readonly EgressRoute[] | null {
  const r = st.rules.find((x) => x.pod === podKey);
  if (!r) return null;
  const t = st.tables.find((x) => x.id === r.table);
  if (!t) throw new Error(`rule of ${podKey} points at missing table ${r.table}`);
  return t.routes;
}

/**
 * What the kernel would do for a packet from the pod to dst: 'main' (no rule, no matching route or a throw), or
 * the matching route.
 */
export function lookup(st: NodeEgressState, podKey: string, dst: string): 'main' | 'unreachable' | string[] {
  const routes = tableOf(st, podKey);
  if (!routes) return 'main';
  let best: EgressRoute | null = null;
  let bestLen = -1;
  for (const r of routes) {
    const c = contains(r.dst, dst);
    if (c.ok && c.len > bestLen) {
      best = r;
      bestLen = c.len;
    }
  }
  if (!best || best.type === 'throw') return 'main';
  if (best.type === 'unreachable') return 'unreachable';
  return [...best.via];
}
