// Cluster-internal destinations: every IP pool, every node address and link-local, aggregated. Every table throws
// them (so traffic inside the cluster never goes via a gateway), and a rule inside one of them routes nothing. The
// node records also give each node its tunnel's local address (docs/architecture.md, "calc: the calculation graph").

import { aggregatePrefixes, formatCidr, LINK_LOCAL, prefixContains, type Cidr } from '../api/ipv4.js';
import { sameNode, type NodeRec } from './records.js';

export class InternalCidrs {
  private readonly pools = new Map<string, Cidr>();
  private readonly nodes = new Map<string, NodeRec>();
  /**
   * Aggregated, by address. Link-local is never egress traffic; throwing it also keeps proxy ARP working: a pod's
   * ARP for its gateway 169.254.1.1 is answered only if the route lookup from the pod's address succeeds, which a
   * fail-closed table (unreachable 0.0.0.0/0) would otherwise prevent.
   */
  list: readonly Cidr[] = [LINK_LOCAL];
  text: readonly string[] = Object.freeze([formatCidr(LINK_LOCAL)]);

  /** The node's tunnel address (first InternalIP, else ExternalIP); null if unknown. */
  local(node: string): string | null {
    return this.nodes.get(node)?.local ?? null;
  }

  containing(p: Cidr): Cidr | undefined {
    for (const i of this.list) if (prefixContains(i, p)) return i;
    return undefined;
  }

  /** Sets (or, undefined, removes) a pool's CIDR. Returns whether the internal list changed. */
  setPool(name: string, cidr: Cidr | undefined): boolean {
    if (cidr) this.pools.set(name, cidr);
    else if (!this.pools.delete(name)) return false;
    return this.update();
  }

  /**
   * Sets (or removes) a node's record. Returns null when nothing changed, else whether its local address may have
   * changed and whether the internal list changed.
   */
  setNode(name: string, rec: NodeRec | undefined): { local: boolean; internal: boolean } | null {
    const old = this.nodes.get(name);
    if (rec) {
      this.nodes.set(name, rec);
      if (old && sameNode(old, rec)) return null;
    } else if (!this.nodes.delete(name)) return null;
    return { local: !old || !rec || old.local !== rec.local, internal: this.update() };
  }

  private update(): boolean {
    const all: Cidr[] = [LINK_LOCAL, ...this.pools.values()];
    for (const n of this.nodes.values()) for (const a of n.addresses) all.push({ addr: a, prefix: 32 });
    const agg = aggregatePrefixes(all);
    const text = agg.map(formatCidr);
    if (text.join() === this.text.join()) return false;
    this.list = agg;
    this.text = Object.freeze(text);
    return true;
  }
}
