// Shared tables of one node: clients whose routes are identical share one routing table, keyed by the canonical text of
// its routes (plans.ts routeKey), reference-counted by its clients, with an ID derived from the key (tableids.ts), so
// IDs are the same on every node and after every restart (docs/architecture.md, "calc: the calculation graph"). Also
// the node's rules (one per client with a table, sorted) and how many tables and kept clients use each gateway IP.

import { comparePrefix, formatCidr, type Cidr } from '../api/ipv4.js';
import type { RulePlan, RouteSeg } from './plans.js';
import { EMPTY, type ClientRec } from './records.js';
import { bsearch, insertSorted, removeSorted } from './collections.js';
import { TableIdAllocator, type TableIdMove } from './tableids.js';
import type { EgressRoute, EgressRule, EgressTable } from './types.js';

export interface TableRec {
  readonly key: string;
  id: number;
  out: EgressTable;
  readonly clients: Set<ClientRec>;
  /** Gateway IPs its ECMP routes use. */
  readonly vias: readonly string[];
}

/** What changed in a node's output since it was last built. */
export interface NodeFlags {
  /** Rules or tables. */
  outDirty: boolean;
  /** The gateway list (neighbour and FDB entries). */
  gwDirty: boolean;
}

function byId(a: { id: number }, b: { id: number }): number {
  return a.id - b.id;
}

function clientOrder(a: ClientRec, b: ClientRec): number {
  return a.pod.ipNum - b.pod.ipNum || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

export class NodeTables {
  readonly byKey = new Map<string, TableRec>();
  /** Gateway IP → number of local tables routing to it + local clients keeping it while it drains. */
  readonly ipRefs = new Map<string, number>();
  /** Sorted by id. */
  list: TableRec[] = [];
  /** Clients with a rule, sorted by (IP, key), parallel to `rules`. */
  private ruleClients: ClientRec[] = [];
  rules: EgressRule[] = [];
  private alloc: TableIdAllocator;

  constructor(
    private readonly flags: NodeFlags,
    private readonly idBase: number,
    private readonly idRange: number,
  ) {
    this.alloc = new TableIdAllocator(idBase, idRange);
  }

  /** The table for `key`, created from the plan's routed rules, their segments and the internal throws if new. */
  table(key: string, rules: readonly RulePlan[], segs: readonly RouteSeg[], internal: readonly Cidr[]): TableRec {
    return this.byKey.get(key) ?? this.create(key, rules, segs, internal);
  }

  /** Points the client at table `t` (null: no rule) and sets the draining gateways it keeps. */
  assign(c: ClientRec, t: TableRec | null, kept: readonly string[]): void {
    if (c.kept !== kept && !(c.kept.length === kept.length && c.kept.every((k, i) => k === kept[i]))) {
      for (const g of c.kept) this.ref(g, -1);
      for (const g of kept) this.ref(g, 1);
      c.kept = kept;
    }
    const old = c.table;
    if (old === t) return;
    c.table = t;
    if (t) t.clients.add(c);
    this.setRule(c, t);
    if (old) {
      old.clients.delete(c);
      if (old.clients.size === 0) this.drop(old);
    }
  }

  /** Forgets every table, rule and reference (the caller recomputes every client). */
  reset(clients: Iterable<ClientRec>): void {
    this.byKey.clear();
    this.alloc = new TableIdAllocator(this.idBase, this.idRange);
    this.ipRefs.clear();
    this.ruleClients = [];
    this.rules = [];
    this.list = [];
    for (const c of clients) {
      c.table = null;
      c.kept = EMPTY;
      c.rule = null;
    }
    this.flags.outDirty = true;
    this.flags.gwDirty = true;
  }

  private create(key: string, rules: readonly RulePlan[], segs: readonly RouteSeg[], internal: readonly Cidr[]): TableRec {
    const routes: { p: Cidr; r: EgressRoute }[] = [];
    const vias = new Set<string>();
    segs.forEach((s, i) => {
      const p = rules[i].rule.dst;
      if (s.kind === 'via') {
        for (const ip of s.via) vias.add(ip);
        routes.push({ p, r: Object.freeze({ dst: s.dst, type: 'ecmp', via: Object.freeze(s.via) }) });
      } else routes.push({ p, r: Object.freeze({ dst: s.dst, type: s.kind }) });
    });
    for (const p of internal) routes.push({ p, r: Object.freeze({ dst: formatCidr(p), type: 'throw' }) });
    routes.sort((a, b) => comparePrefix(a.p, b.p));
    const { id, moves } = this.alloc.allocate(key);
    const t: TableRec = { key, id, out: Object.freeze({ id, routes: Object.freeze(routes.map((x) => x.r)) }), clients: new Set(), vias: [...vias] };
    this.byKey.set(key, t);
    this.applyMoves(moves);
    insertSorted(this.list, t, byId);
    for (const g of t.vias) this.ref(g, 1);
    this.flags.outDirty = true;
    return t;
  }

  private drop(t: TableRec): void {
    this.byKey.delete(t.key);
    removeSorted(this.list, t, byId);
    this.applyMoves(this.alloc.release(t.key));
    for (const g of t.vias) this.ref(g, -1);
    this.flags.outDirty = true;
  }

  /** Tables whose IDs moved (a collision run was re-laid out): re-sort them and rewrite their clients' rules. */
  private applyMoves(moves: readonly TableIdMove[]): void {
    if (moves.length === 0) return;
    const moved: TableRec[] = [];
    for (const m of moves) {
      const t = this.byKey.get(m.key);
      if (!t || t.id === m.to) continue;
      removeSorted(this.list, t, byId);
      moved.push(t);
    }
    for (const t of moved) {
      t.id = this.alloc.idOf(t.key)!;
      t.out = Object.freeze({ id: t.id, routes: t.out.routes });
      insertSorted(this.list, t, byId);
      for (const c of t.clients) this.setRule(c, t);
    }
    this.flags.outDirty = true;
  }

  private ref(ip: string, d: number): void {
    const v = (this.ipRefs.get(ip) ?? 0) + d;
    if (v <= 0) {
      this.ipRefs.delete(ip);
      this.flags.gwDirty = true;
    } else {
      if (v === d) this.flags.gwDirty = true;
      this.ipRefs.set(ip, v);
    }
  }

  private setRule(c: ClientRec, t: TableRec | null): void {
    if (c.rule && t && c.rule.table === t.id) return;
    if (!c.rule && !t) return;
    const i = c.rule ? bsearch(this.ruleClients, c, clientOrder) : -1;
    if (!t) {
      if (i >= 0) {
        this.ruleClients.splice(i, 1);
        this.rules.splice(i, 1);
      }
      c.rule = null;
    } else {
      const rule: EgressRule = Object.freeze({ src: `${c.pod.ip}/32`, table: t.id, pod: c.key });
      c.rule = rule;
      if (i >= 0) this.rules[i] = rule;
      else this.rules.splice(insertSorted(this.ruleClients, c, clientOrder), 0, rule);
    }
    this.flags.outDirty = true;
  }
}
