// The node NAT configuration (Calico's natOutgoing; egress pools never SNATed, unless in host-IP mode: docs/behaviour.md
// §3.3) derived from the IP pools, the EgressGateways that name them, and the Nodes. Which pools are egress pools and
// which of them are in host-IP mode is src/api/egresspools.ts's rule.
import type { Resource } from '../api/meta.js';
import type { IPPool, Node } from '../api/types.js';
import { egressPoolCidrs, isHostIPPool } from '../api/egresspools.js';
import { comparePrefix, formatCidr, formatIPv4, parseIPv4, parsePrefix } from '../api/ipv4.js';
import type { NodeNatConfig } from '../dataplane/types.js';

function norm(cidr: string | undefined): string | null {
  const p = cidr ? parsePrefix(cidr) : undefined;
  return p ? formatCidr(p) : null;
}

/**
 * - allPools: every pool's CIDR (cluster-internal destinations are never masqueraded);
 * - egressPools: pools any EgressGateway's `spec.ipPools` names, by name or by CIDR;
 * - masqueradePools: pools with natOutgoing that are not egress pools;
 * - hostIPPools: egress pools with natOutgoing (host-IP mode);
 * - nodeAddresses: every Node's InternalIP and ExternalIP (IPv4).
 * Lists are sorted and de-duplicated, so equal inputs give equal (JSON-comparable) configs.
 */
export function natConfigFromResources(
  pools: Iterable<Resource>,
  gateways: Iterable<Resource>,
  opts: { enabled: boolean; underlayDevice: string; nodes?: Iterable<Resource> },
): NodeNatConfig {
  const poolList = [...pools];
  const egress = egressPoolCidrs(poolList, gateways);
  const all = new Set<string>();
  const natOutgoing = new Set<string>();
  const hostIP = new Set<string>();
  for (const r of poolList) {
    const p = r as IPPool;
    const cidr = norm(p.spec?.cidr);
    if (!cidr) continue;
    all.add(cidr);
    if (egress.has(cidr)) {
      if (isHostIPPool(p)) hostIP.add(cidr);
    } else if (p.spec?.natOutgoing) natOutgoing.add(cidr);
  }
  const addresses = new Set<number>();
  for (const n of opts.nodes ?? []) {
    for (const a of (n as Node).status?.addresses ?? []) {
      if (a.type !== 'InternalIP' && a.type !== 'ExternalIP') continue;
      const ip = parseIPv4(a.address);
      if (ip !== undefined) addresses.add(ip);
    }
  }
  const sorted = (s: Iterable<string>) => [...s].sort((a, b) => comparePrefix(parsePrefix(a)!, parsePrefix(b)!));
  return {
    enabled: opts.enabled,
    underlayDevice: opts.underlayDevice,
    masqueradePools: sorted(natOutgoing),
    egressPools: sorted(egress),
    hostIPPools: sorted(hostIP),
    allPools: sorted(all),
    nodeAddresses: [...addresses].sort((a, b) => a - b).map(formatIPv4),
  };
}
