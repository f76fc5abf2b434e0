// Plans and hops: for one configuration on one node, which gateways each rule may use (ready, not draining, after
// PreferNodeLocal), and for one client which of them it uses (rendezvous hashing, at most maxNextHops). The result is a
// list of typed route segments, one per routed rule, whose text is the key of the shared table (docs/architecture.md,
// "calc: the calculation graph"; stickiness and draining: docs/dataplane.md, "Connections keep their gateway").

import type { Cidr } from '../api/ipv4.js';
import type { CandEntry } from './candidates.js';
import type { Config } from './configs.js';
import { rendezvousTopK } from './hash.js';
import { byIp, EMPTY, type GatewayRec, type RuleRec } from './records.js';

/**
 * What one routed rule becomes in a client's table. `text` is its part of the table key, derived from the other
 * fields when the segment is made (endSeg, viaSeg): decisions read `kind`, never the text.
 */
export type RouteSeg =
  | { readonly kind: 'throw' | 'unreachable'; readonly dst: string; readonly text: string }
  /** ECMP via these gateway IPs (distinct, sorted numerically). */
  | { readonly kind: 'via'; readonly dst: string; readonly via: readonly string[]; readonly text: string };

function endSeg(kind: 'throw' | 'unreachable', dst: string): RouteSeg {
  return { kind, dst, text: `${dst} ${kind}` };
}

function viaSeg(dst: string, via: readonly string[]): RouteSeg {
  return { kind: 'via', dst, via, text: `${dst} via ${via.join(',')}` };
}

/**
 * The key of the table implementing `segs` ('' when no table is needed: a table of throws is no rule at all). Table
 * IDs are derived from it (tableids.ts), so its text must never change.
 */
export function routeKey(segs: readonly RouteSeg[]): string {
  if (!segs.some((s) => s.kind !== 'throw')) return '';
  return segs.map((s) => s.text).join(';');
}

/** One rule of a configuration, prepared for one node. */
export interface RulePlan {
  readonly rule: RuleRec;
  /** internal: the destination lies inside a cluster-internal CIDR, whose throw route covers it. */
  readonly kind: 'gateway' | 'throw' | 'unreachable' | 'internal';
  readonly entry: CandEntry | null;
  readonly k: number;
  /** Ready, not draining, after PreferNodeLocal. Sorted by key. */
  readonly eligible: readonly GatewayRec[];
  /** What eligible would be if draining gateways were not draining. */
  readonly prior: readonly GatewayRec[];
  readonly hasDraining: boolean;
  /** Hops when they do not depend on the client (k = 0 or k >= eligible), sorted by IP; else null. */
  readonly fixedHops: readonly GatewayRec[] | null;
  /** The segment when it does not depend on the client (always for throw and unreachable); else null. */
  readonly fixedSeg: RouteSeg | null;
}

export interface ConfigPlan {
  readonly config: Config;
  /** Only rules that produce a route (internal ones dropped), in canonical order. */
  readonly rules: readonly RulePlan[];
  readonly all: readonly RulePlan[];
  /** Candidate entries of the routed gateway rules: what the node's gateway list and heartbeats follow. */
  readonly entries: readonly CandEntry[];
  /** The segments and key every client shares, when nothing depends on the client. */
  readonly fixed: { readonly key: string; readonly segs: readonly RouteSeg[] } | null;
}

export function buildPlan(config: Config, node: string, internalContaining: (p: Cidr) => Cidr | undefined): ConfigPlan {
  const all: RulePlan[] = [];
  const entries: CandEntry[] = [];
  let fixed = true;
  const segs: RouteSeg[] = [];
  config.rules.forEach((rule, i) => {
    const rp = planRule(rule, config.entries[i], node, config.failClosed, internalContaining);
    all.push(rp);
    if (rp.entry && !entries.includes(rp.entry)) entries.push(rp.entry);
    if (rp.kind === 'internal') return;
    if (rp.fixedSeg !== null && !rp.hasDraining) segs.push(rp.fixedSeg);
    else fixed = false;
  });
  const routed = all.filter((p) => p.kind !== 'internal');
  return { config, rules: routed, all, entries, fixed: fixed ? { key: routeKey(segs), segs } : null };
}

function planRule(rule: RuleRec, entry: CandEntry | null, node: string, failClosed: boolean, internalContaining: (p: Cidr) => Cidr | undefined): RulePlan {
  const base = { rule, entry: null, k: 0, eligible: EMPTY, prior: EMPTY, hasDraining: false, fixedHops: null, fixedSeg: null };
  if (internalContaining(rule.dst)) return { ...base, kind: 'internal' };
  if (failClosed) return { ...base, kind: 'unreachable', fixedSeg: endSeg('unreachable', rule.dstText) };
  const g = rule.gateway;
  if (!g || !entry) return { ...base, kind: 'throw', fixedSeg: endSeg('throw', rule.dstText) };
  const ready = entry.members.filter((m) => m.ready);
  let eligible = ready.filter((m) => !m.draining);
  let prior = ready;
  if (rule.preference === 'PreferNodeLocal') {
    if (eligible.some((m) => m.node === node)) eligible = eligible.filter((m) => m.node === node);
    if (prior.some((m) => m.node === node)) prior = prior.filter((m) => m.node === node);
  }
  const hasDraining = prior.some((m) => m.draining);
  const k = g.maxNextHops;
  let fixedHops: GatewayRec[] | null = null;
  let fixedSeg: RouteSeg | null = null;
  if (k === 0 || k >= eligible.length) {
    fixedHops = [...eligible].sort(byIp);
    fixedSeg = segmentOf(rule.dstText, fixedHops);
  }
  return { ...base, kind: 'gateway', entry, k, eligible, prior, hasDraining, fixedHops, fixedSeg };
}

/** Distinct IPs of `hops`, sorted numerically. `hops` is sorted by IP. */
export function viaOf(hops: readonly GatewayRec[]): string[] {
  const out: string[] = [];
  let last = -1;
  for (const g of hops) {
    if (g.ipNum !== last) out.push(g.ip);
    last = g.ipNum;
  }
  return out;
}

function segmentOf(dst: string, hops: readonly GatewayRec[]): RouteSeg {
  return hops.length === 0 ? endSeg('unreachable', dst) : viaSeg(dst, viaOf(hops));
}

/**
 * The client's hops for one gateway rule (sorted by IP). With `kept`, adds the draining gateways the client used
 * before they started draining: it keeps them for its existing connections.
 */
export function hopsFor(rp: RulePlan, clientHash: number, kept: Set<GatewayRec> | null): readonly GatewayRec[] {
  if (rp.hasDraining && kept) {
    const before = rp.k === 0 || rp.k >= rp.prior.length ? rp.prior : rendezvousTopK(rp.prior, rp.k, clientHash);
    for (const g of before) if (g.draining) kept.add(g);
  }
  if (rp.fixedHops) return rp.fixedHops;
  return rendezvousTopK(rp.eligible, rp.k, clientHash).sort(byIp);
}

/** One client's segments for a plan without `fixed` ones, collecting the draining gateways it keeps. */
export function clientSegs(plan: ConfigPlan, clientHash: number, kept: Set<GatewayRec>): RouteSeg[] {
  const segs: RouteSeg[] = [];
  for (const rp of plan.rules) {
    if (rp.kind !== 'gateway') segs.push(rp.fixedSeg!);
    else {
      const hops = hopsFor(rp, clientHash, kept); // also when the segment is fixed: it collects the kept gateways
      segs.push(rp.fixedSeg ?? segmentOf(rp.rule.dstText, hops));
    }
  }
  return segs;
}
