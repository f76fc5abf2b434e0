// The node NAT configuration (Calico's natOutgoing, minus egress pools; docs/behaviour.md §3.3) derived from the IP pools and
// the EgressGateways that name them.
import type { Resource } from '../api/meta.js';
import type { EgressGateway, IPPool } from '../api/types.js';
import { comparePrefix, formatCidr, parsePrefix } from '../api/ipv4.js';
import type { NodeNatConfig } from '../dataplane/types.js';

function norm(cidr: string | undefined): string | null {
  const p = cidr ? parsePrefix(cidr) : undefined;
  return p ? formatCidr(p) : null;
}

/**
 * - allPools: every pool's CIDR (cluster-internal destinations are never masqueraded);
 * - egressPools: pools any EgressGateway's `spec.ipPools` names, by name or by CIDR;
 * - masqueradePools: pools with natOutgoing that are not egress pools.
 * Lists are sorted and de-duplicated, so equal inputs give equal (JSON-comparable) configs.
 */
export function natConfigFromResources(
  pools: Iterable<Resource>,
  gateways: Iterable<Resource>,
  opts: { enabled: boolean; underlayDevice: string },
): NodeNatConfig {
  const byName = new Map<string, string>();
  const natOutgoing = new Set<string>();
  for (const r of pools) {
    const p = r as IPPool;
    const cidr = norm(p.spec?.cidr);
    if (!cidr) continue;
    byName.set(p.metadata.name, cidr);
    if (p.spec?.natOutgoing) natOutgoing.add(cidr);
  }
  const all = new Set(byName.values());
  const egress = new Set<string>();
  for (const r of gateways) {
    for (const ref of (r as EgressGateway).spec?.ipPools ?? []) {
      const byN = ref.name !== undefined ? byName.get(ref.name) : undefined;
      if (byN) egress.add(byN);
      const c = norm(ref.cidr);
      if (c && all.has(c)) egress.add(c);
    }
  }
  const sorted = (s: Iterable<string>) => [...s].sort((a, b) => comparePrefix(parsePrefix(a)!, parsePrefix(b)!));
  return {
    enabled: opts.enabled,
    underlayDevice: opts.underlayDevice,
    masqueradePools: sorted([...natOutgoing].filter((c) => !egress.has(c))),
    egressPools: sorted(egress),
    allPools: sorted(all),
  };
}
