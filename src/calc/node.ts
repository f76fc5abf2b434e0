// One node's share of the calculation: its clients, the ones to recompute, a plan per configuration, its shared
// tables, and its output NodeEgressState — built once and frozen, and returned as is while nothing affecting the
// node changed (docs/architecture.md, "calc: the calculation graph").

import type { Cidr } from '../api/ipv4.js';
import type { EgressIPSupport } from '../api/types.js';
import type { CandEntry } from './candidates.js';
import type { Config } from './configs.js';
import { buildPlan, clientSegs, routeKey, viaOf, type ConfigPlan } from './plans.js';
import { byIp, EMPTY, type ClientRec, type GatewayRec } from './records.js';
import { NodeTables, type NodeFlags } from './tables.js';
import type { EgressGatewayEntry, NodeEgressState } from './types.js';

/** What a node's computation reads from the rest of the calculation. */
export interface NodeInputs {
  /** The client's configuration, recomputed first if its resolution inputs changed. */
  configOf(c: ClientRec): Config | null;
  /** The cluster-internal CIDRs (aggregated), and the one containing a destination. */
  internal(): readonly Cidr[];
  internalContaining(p: Cidr): Cidr | undefined;
  gatewayAt(ip: string): GatewayRec | undefined;
  /** What every node's output shares, and this node's tunnel address (read only when the output is rebuilt). */
  outputBase(): NodeOutputBase;
  local(node: string): string | null;
}

/** The node-independent parts of NodeEgressState. */
export interface NodeOutputBase {
  readonly support: EgressIPSupport;
  readonly vni: number;
  readonly port: number;
  readonly priority: number;
  readonly device: string;
  readonly mtu: number;
  readonly internalText: readonly string[];
}

export class NodeCalc implements NodeFlags {
  readonly clients = new Map<string, ClientRec>();
  readonly dirty = new Set<ClientRec>();
  readonly plans = new Map<Config, ConfigPlan>();
  readonly tables: NodeTables;
  /**
   * Candidate entries of the node's clients → number of clients using each. Every ready member of these stays in
   * the node's gateway list even when no route uses it now (a lower maxNextHops, a preference, a new gateway pushing
   * it out of a client's top k): connections already pinned to it (conntrack marks) must keep their tunnel path
   * (docs/dataplane.md, "Connections keep their gateway").
   */
  readonly entryRefs = new Map<CandEntry, number>();
  outDirty = true;
  gwDirty = true;
  private gatewaysOut: EgressGatewayEntry[] = [];
  private cache: NodeEgressState | null = null;

  constructor(
    readonly name: string,
    tableIdBase: number,
    tableIdRange: number,
    private readonly inputs: NodeInputs,
  ) {
    this.tables = new NodeTables(this, tableIdBase, tableIdRange);
  }

  /** Recomputes the clients marked dirty. */
  flush(): void {
    if (this.dirty.size === 0) return;
    for (const c of this.dirty) this.compute(c);
    this.dirty.clear();
  }

  /** The node's plan for a configuration (cached until the calculator drops every plan). */
  plan(config: Config): ConfigPlan {
    let p = this.plans.get(config);
    if (!p) {
      p = buildPlan(config, this.name, (x) => this.inputs.internalContaining(x));
      this.plans.set(config, p);
    }
    return p;
  }

  add(c: ClientRec): void {
    this.clients.set(c.key, c);
    this.dirty.add(c);
  }

  remove(c: ClientRec): void {
    this.clients.delete(c.key);
    this.dirty.delete(c);
    this.setEntryDeps(c, EMPTY);
    this.tables.assign(c, null, EMPTY);
  }

  /** Forgets every table and recomputes every client (after an internal-CIDR change). */
  reset(): void {
    this.tables.reset(this.clients.values());
    for (const c of this.clients.values()) this.dirty.add(c);
  }

  /**
   * A gateway pod changed (or, with no IPs, a namespace label moved gateways in or out of entries): the node's
   * gateway list is rebuilt when it could hold that gateway — it lists every ready member of the node's entries and
   * every IP its tables route to.
   */
  gatewaysChanged(oldIp?: string, newIp?: string): void {
    if (this.entryRefs.size > 0 || (oldIp !== undefined && this.tables.ipRefs.has(oldIp)) || (newIp !== undefined && this.tables.ipRefs.has(newIp))) this.gwDirty = true;
  }

  /** Cached plans hold gateway lists: dropped whenever gateways or configurations change. */
  invalidatePlans(): void {
    this.plans.clear();
  }

  state(): NodeEgressState {
    // the loop is here, not in flush(): a full computation runs it hot, so this function is optimized before the
    // first incremental change
    if (this.dirty.size > 0) {
      for (const c of this.dirty) this.compute(c);
      this.dirty.clear();
    }
    if (this.cache && !this.outDirty && !this.gwDirty) return this.cache;
    if (this.gwDirty) {
      const byIpMap = new Map<string, GatewayRec>();
      for (const ip of this.tables.ipRefs.keys()) {
        const g = this.inputs.gatewayAt(ip);
        if (g) byIpMap.set(ip, g);
      }
      for (const e of this.entryRefs.keys()) {
        for (const m of e.members) if (m.ready && !byIpMap.has(m.ip) && this.inputs.gatewayAt(m.ip) === m) byIpMap.set(m.ip, m);
      }
      this.gatewaysOut = [...byIpMap.values()].sort(byIp).map((g) => g.out);
      this.gwDirty = false;
    }
    const base = this.inputs.outputBase();
    const local = this.inputs.local(this.name);
    this.cache = Object.freeze({
      node: this.name,
      enabled: base.support !== 'Disabled',
      egressIPSupport: base.support,
      vxlan: Object.freeze({ device: base.device, vni: base.vni, port: base.port, mtu: base.mtu, local }),
      rulePriority: base.priority,
      rules: this.tables.rules.slice(),
      tables: this.tables.list.map((t) => t.out),
      gateways: this.gatewaysOut.slice(),
      internalCidrs: base.internalText,
    });
    this.outDirty = false;
    return this.cache;
  }

  /** Members of the candidate entries the node's clients use, before any health or hop filtering; by IP. */
  candidateGateways(): GatewayRec[] {
    this.flush();
    const entries = new Set<CandEntry>();
    for (const c of this.clients.values()) for (const e of c.entries) entries.add(e);
    const gws = new Map<string, GatewayRec>();
    for (const e of entries) for (const g of e.members) gws.set(g.key, g);
    return [...gws.values()].sort(byIp);
  }

  private compute(c: ClientRec): void {
    const config = this.inputs.configOf(c);
    const plan = config ? this.plan(config) : null;
    this.setEntryDeps(c, plan ? plan.entries : EMPTY);
    if (!plan) {
      this.tables.assign(c, null, EMPTY);
      return;
    }
    const internal = this.inputs.internal();
    if (plan.fixed) {
      const t = plan.fixed.key === '' ? null : this.tables.table(plan.fixed.key, plan.rules, plan.fixed.segs, internal);
      this.tables.assign(c, t, EMPTY);
      return;
    }
    const kept = new Set<GatewayRec>();
    const segs = clientSegs(plan, c.hash, kept);
    const key = routeKey(segs);
    const t = key === '' ? null : this.tables.table(key, plan.rules, segs, internal);
    this.tables.assign(c, t, kept.size === 0 ? EMPTY : viaOf([...kept].sort(byIp)));
  }

  private setEntryDeps(c: ClientRec, entries: readonly CandEntry[]): void {
    const old = c.entries;
    if (old === entries) return;
    for (const e of old) {
      const v = (this.entryRefs.get(e) ?? 0) - 1;
      if (v <= 0) {
        this.entryRefs.delete(e);
        this.gwDirty = true;
      } else this.entryRefs.set(e, v);
    }
    for (const e of entries) {
      const v = (this.entryRefs.get(e) ?? 0) + 1;
      this.entryRefs.set(e, v);
      if (v === 1) this.gwDirty = true;
    }
    c.entries = entries;
  }
}
