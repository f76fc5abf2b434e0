// Egress pools and host-IP mode (docs/behaviour.md §3.3): the one home of "which pools are egress pools" and "is this
// pool in host-IP mode", read by the node NAT (src/agent/nat.ts), explain (src/calc/explain.ts) and the audit
// (src/audit/enrich.ts). Pure.
//
// An egress pool is a pool some EgressGateway's spec.ipPools names (by name or by CIDR). With `natOutgoing: false`
// the outside sees the gateway's own address (the egress IP); with `natOutgoing: true` (Calico Enterprise 3.23's
// host-IP mode) the node the gateway pod runs on masquerades the gateway's traffic again, so the outside sees that
// node's IP.
import type { Resource } from './meta.js';
import { cidrContains, formatCidr, parseIPv4, parsePrefix } from './ipv4.js';
import type { EgressGateway, IPPool } from './types.js';

/** Host-IP mode: an egress pool whose natOutgoing is true (its gateways' traffic leaves with their node's IP). */
export function isHostIPPool(pool: Pick<IPPool, 'spec'> | undefined): boolean {
  return pool?.spec?.natOutgoing === true;
}

function normCidr(cidr: string | undefined): string | null {
  const p = cidr ? parsePrefix(cidr) : undefined;
  return p ? formatCidr(p) : null;
}

/** The normalised CIDRs of the IPv4 pools any EgressGateway names (by name or by CIDR). */
export function egressPoolCidrs(pools: Iterable<Resource>, gateways: Iterable<Resource>): Set<string> {
  const byName = new Map<string, string>();
  for (const r of pools) {
    const cidr = normCidr((r as IPPool).spec?.cidr);
    if (cidr) byName.set(r.metadata.name, cidr);
  }
  const all = new Set(byName.values());
  const egress = new Set<string>();
  for (const r of gateways) {
    for (const ref of (r as EgressGateway).spec?.ipPools ?? []) {
      const byN = ref.name !== undefined ? byName.get(ref.name) : undefined;
      if (byN) egress.add(byN);
      const c = normCidr(ref.cidr);
      if (c && all.has(c)) egress.add(c);
    }
  }
  return egress;
}

/** The IPv4 pool holding `ip` (pools do not overlap: src/api/load.ts), or undefined. */
export function poolHolding<P extends Pick<IPPool, 'spec'>>(ip: string, pools: Iterable<P>): P | undefined {
  const n = parseIPv4(ip);
  if (n === undefined) return undefined;
  for (const p of pools) {
    const c = parsePrefix(p.spec?.cidr ?? '');
    if (c && cidrContains(c, n)) return p;
  }
  return undefined;
}
