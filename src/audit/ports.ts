// SNAT port use per egress IP and destination (docs/observability.md, "Port exhaustion"), kept incrementally from the
// connections the flow tracker holds open: each open translated connection holds one source port of its translated
// address toward its destination IP, port and protocol (the kernel keeps a translated 5-tuple unique, so two
// connections to one destination never share a port; toward different destinations they may). Pure.
import type { FlowRecord } from './types.js';

/**
 * The source ports the kernel picks from when it has to change a source port while masquerading: for an original
 * port of 1024 and above (every client's ephemeral port), 1024–65535 (docs/kernel.md, "SNAT ports"). A destination's
 * connections can use at most this many at once.
 */
export const SNAT_PORT_RANGE = { min: 1024, max: 65535 } as const;
export const SNAT_PORTS = SNAT_PORT_RANGE.max - SNAT_PORT_RANGE.min + 1;

/** Above this share of the range toward one destination a gateway reports port pressure; below `clear`, no longer. */
export const PORT_PRESSURE = { raise: 0.8, clear: 0.7 } as const;

function keyOf(r: FlowRecord): string {
  return `${r.source.nat.ip}|${r.destination.ip}${r.destination.port === undefined ? '' : `:${r.destination.port}`}|${r.network.transport}`;
}

/** One destination's SNAT port use at a gateway . */
export interface PortUse {
  egressIp: string;
  /** `IP:PORT` (`IP` for protocols without ports). */
  destination: string;
  protocol: string;
  inUse: number;
  available: number;
}

export class PortUseCounter {
  private readonly use = new Map<string, number>();

  add(r: FlowRecord): void {
    if (r.source.nat.port === undefined) return; // no port translated (ICMP: its id, not a port range of ours)
    const k = keyOf(r);
    this.use.set(k, (this.use.get(k) ?? 0) + 1);
  }

  remove(r: FlowRecord): void {
    if (r.source.nat.port === undefined) return;
    const k = keyOf(r);
    const n = (this.use.get(k) ?? 0) - 1;
    if (n > 0) this.use.set(k, n);
    else this.use.delete(k);
  }

  /** Every destination with at least one port in use. */
  snapshot(): PortUse[] {
    const out: PortUse[] = [];
    for (const [k, inUse] of this.use) {
      const [egressIp, destination, protocol] = k.split('|') as [string, string, string];
      out.push({ egressIp, destination, protocol, inUse, available: Math.max(0, SNAT_PORTS - inUse) });
    }
    return out;
  }

}

/** The destination using the most ports (undefined: none in use). */
export function busiest(uses: readonly PortUse[]): PortUse | undefined {
  let best: PortUse | undefined;
  for (const p of uses) if (!best || p.inUse > best.inUse) best = p;
  return best;
}
