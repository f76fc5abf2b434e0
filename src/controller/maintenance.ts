// Maintenance annotations on client pods (docs/behaviour.md §3.6, Calico's names): while a gateway pod drains (it has a
// deletionTimestamp), every client pod that may use it (calc's gatewayClients: its selectors match the gateway,
// whatever health, maxNextHops or PreferNodeLocal say) carries
//   egress.projectcalico.org/gatewayMaintenanceGatewayIP         the draining gateway's IP
//   egress.projectcalico.org/gatewayMaintenanceStartedTimestamp  when its deletion started (RFC 3339)
//   egress.projectcalico.org/gatewayMaintenanceFinishedTimestamp its deletionTimestamp: when it stops (RFC 3339)
// A client that may use several draining gateways gets the one whose window ends last (then the lowest IP): it is
// affected until then. The annotations are left in place after the gateway is gone: they describe the last
// maintenance (as Calico does), and a client compares FinishedTimestamp with the time to know whether it is over.
// Pure; the controller writes what differs.
import { ANNOTATION, type Pod } from '../api/types.js';
import { parseIPv4 } from '../api/ipv4.js';
import { deletionStarted } from './delete.js';

export interface Maintenance {
  gatewayIP: string;
  /** RFC 3339. */
  started: string;
  /** RFC 3339. */
  finished: string;
}

function podIP(p: Pod): string | undefined {
  return p.status?.podIPs?.[0]?.ip ?? p.status?.podIP;
}

/** The maintenance a terminating gateway pod announces, or undefined if it is not a draining gateway with an IP. */
export function maintenanceOf(gateway: Pod): Maintenance | undefined {
  if (gateway.metadata.annotations?.[ANNOTATION.gatewayOf] === undefined) return undefined;
  const ip = podIP(gateway);
  const end = gateway.metadata.deletionTimestamp ? Date.parse(gateway.metadata.deletionTimestamp) : NaN;
  const start = deletionStarted(gateway);
  if (!ip || !Number.isFinite(end) || start === undefined) return undefined;
  return { gatewayIP: ip, started: new Date(start).toISOString(), finished: new Date(end).toISOString() };
}

/** The three annotations for `m`. */
export function maintenanceAnnotations(m: Maintenance): Record<string, string> {
  return {
    [ANNOTATION.maintenanceGatewayIP]: m.gatewayIP,
    [ANNOTATION.maintenanceStarted]: m.started,
    [ANNOTATION.maintenanceFinished]: m.finished,
  };
}

/** True if the pod carries exactly these maintenance annotations. */
export function hasMaintenance(pod: Pod, m: Maintenance): boolean {
  const a = pod.metadata.annotations ?? {};
  return Object.entries(maintenanceAnnotations(m)).every(([k, v]) => a[k] === v);
}

/**
 * Which client pod (`namespace/name`) should announce which maintenance, given every pod and, per gateway pod key,
 * the IPs of the clients that may use it. Only clients of a draining gateway appear.
 */
export function planMaintenance(pods: readonly Pod[], clientIPsOf: (gatewayPodKey: string) => readonly string[]): Map<string, Maintenance> {
  const out = new Map<string, Maintenance>();
  if (!pods.some((p) => p.metadata.deletionTimestamp && p.metadata.annotations?.[ANNOTATION.gatewayOf] !== undefined)) return out;
  const clientsByIP = new Map<string, Pod[]>();
  for (const p of pods) {
    if (p.metadata.annotations?.[ANNOTATION.gatewayOf] !== undefined) continue;
    const ip = podIP(p);
    if (!ip) continue;
    const list = clientsByIP.get(ip);
    if (list) list.push(p);
    else clientsByIP.set(ip, [p]);
  }
  for (const g of pods) {
    const m = maintenanceOf(g);
    if (!m) continue;
    for (const ip of clientIPsOf(`${g.metadata.namespace}/${g.metadata.name}`)) {
      for (const c of clientsByIP.get(ip) ?? []) {
        const key = `${c.metadata.namespace}/${c.metadata.name}`;
        const cur = out.get(key);
        if (!cur || later(m, cur)) out.set(key, m);
      }
    }
  }
  return out;
}

function later(a: Maintenance, b: Maintenance): boolean {
  const ta = Date.parse(a.finished);
  const tb = Date.parse(b.finished);
  if (ta !== tb) return ta > tb;
  return (parseIPv4(a.gatewayIP) ?? 0) < (parseIPv4(b.gatewayIP) ?? 0);
}
