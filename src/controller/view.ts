// What the leading controller's metrics show (docs/observability.md): gateway pods per EgressGateway and state (the
// health names of the EgressGateway status, replicaHealth), and addresses per IP pool. Pure: computed from what one
// reconcile read.
import { ANNOTATION, type EgressGateway, type IPPool, type Pod } from '../api/types.js';
import { cidrContains, cidrSize, parseCidr, parseIPv4 } from '../api/ipv4.js';
import { replicaHealth } from './status.js';

export interface ControllerView {
  gateways: { egressgateway: string; state: string; count: number }[];
  addresses: { pool: string; state: string; count: number }[];
}

/** Ready → ready, NotReady → not-ready, … (Prometheus label values in one spelling). */
function stateLabel(health: string): string {
  return health.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
}

export function controllerView(egws: readonly EgressGateway[], pods: readonly Pod[], pools: readonly IPPool[], allocatedIPs: readonly string[]): ControllerView {
  const names = new Set(egws.map((g) => `${g.metadata.namespace}/${g.metadata.name}`));
  const counts = new Map<string, Map<string, number>>();
  for (const n of names) counts.set(n, new Map(['ready', 'not-ready', 'draining', 'unknown'].map((s) => [s, 0])));
  for (const p of pods) {
    const of = p.metadata.annotations?.[ANNOTATION.gatewayOf];
    const m = of === undefined ? undefined : counts.get(`${p.metadata.namespace}/${of}`);
    if (!m) continue;
    const s = stateLabel(replicaHealth(p).health);
    m.set(s, (m.get(s) ?? 0) + 1);
  }
  const gateways = [...counts].flatMap(([egressgateway, m]) => [...m].map(([state, count]) => ({ egressgateway, state, count })));
  const ips = allocatedIPs.map((ip) => parseIPv4(ip)).filter((n): n is number => n !== undefined);
  const addresses = pools.flatMap((pool) => {
    const c = parseCidr(pool.spec?.cidr ?? '');
    if (!c) return []; // IPv6 pools: egw's IPAM does not allocate from them (docs/behaviour.md)
    const allocated = ips.filter((ip) => cidrContains(c, ip)).length;
    return [
      { pool: pool.metadata.name, state: 'allocated', count: allocated },
      { pool: pool.metadata.name, state: 'free', count: Math.max(0, cidrSize(c) - allocated) },
    ];
  });
  return { gateways, addresses };
}
