// Per-connection gateway stickiness (docs/dataplane.md, "Connections keep their gateway"; docs/kernel.md §4).
//
// Every gateway the node still needs for established connections (in `desired.gateways` and ready or draining) gets
// a mark: an index 1…capacity stored in the bits of `mask` (default 0x00003fc0 → 255 gateways). The mark decides
// three objects:
//   - the element `<gwIP> : <mark>` of the nft map `gw_marks` (a new connection's first packet leaving by the tunnel
//     gets `ct mark` = the mark of the next hop the ECMP route chose);
//   - a routing table `tableBase + index` holding `default via <gwIP> dev <vxlan> onlink`;
//   - for each client pool, `ip rule from <pool> fwmark <mark>/<mask> lookup <table> priority rulePriority − 1`
//     (the packets of an established connection get the mark back from conntrack in prerouting).
//
// Conntrack entries keep their marks while the agent restarts, so the assignment must survive too: it lives in the
// kernel (the map, and the per-gateway tables as a second record) and is adopted from there. New gateways get the
// lowest free index (or, within one process, the index they had before if it is still free: a gateway that was
// briefly not ready finds its old connections again). An index is freed only when its gateway leaves the set, and
// is not handed out again in the same reconcile (see assignMarks).
// Everything here is pure.

import { aggregatePrefixes, cidrContains, formatCidr, formatIPv4, parseIPv4, parsePrefix, type Cidr } from '../api/ipv4.js';
import type { EgressTable, NodeEgressState } from '../calc/types.js';
import type { ActualRoute } from './kernel.js';
import { DEFAULT_STICKY_MARK_MASK, FELIX_DEFAULT_MARK_MASK, KUBE_PROXY_MARKS, STICKY_TABLE_BASE, STICKY_TABLE_RANGE, type NodeNatConfig } from './types.js';

export interface StickyOptions {
  /** Off: no marks, rules, tables or nft objects (and any that exist are removed). Default on. */
  enabled?: boolean;
  /** Contiguous bits of the conntrack/packet mark egw owns. Default DEFAULT_STICKY_MARK_MASK (types.ts). */
  mask?: number;
  /** Per-gateway tables: [tableBase, tableBase + tableRange). Default [2,000,000, 2,000,000 + 2^20). */
  tableBase?: number;
  tableRange?: number;
}

export interface StickyConfig {
  enabled: boolean;
  mask: number;
  /** Position of the mask's lowest bit. */
  shift: number;
  /** Number of usable marks (indexes 1…capacity). */
  capacity: number;
  tableBase: number;
  tableRange: number;
}

/** Validates and completes StickyOptions. Throws on a mask that is zero or not contiguous. */
export function stickyConfig(o: StickyOptions = {}): StickyConfig {
  const mask = (o.mask ?? DEFAULT_STICKY_MARK_MASK) >>> 0;
  if (!Number.isInteger(o.mask ?? 0) || mask === 0) throw new Error(`sticky mark mask must be a non-zero 32-bit value, got ${String(o.mask)}`);
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const bits = mask >>> shift;
  if ((bits & (bits + 1)) !== 0) throw new Error(`sticky mark mask 0x${mask.toString(16)} is not contiguous`);
  const tableBase = o.tableBase ?? STICKY_TABLE_BASE;
  const tableRange = o.tableRange ?? STICKY_TABLE_RANGE;
  if (!Number.isInteger(tableBase) || !Number.isInteger(tableRange) || tableBase < 1 || tableRange < 2 || tableBase + tableRange > 2 ** 32 - 1) {
    throw new Error(`bad sticky table range ${tableBase} + ${tableRange}`);
  }
  return { enabled: o.enabled ?? true, mask, shift, capacity: Math.min(bits, tableRange - 1), tableBase, tableRange };
}

/** The mark of index i: i in the mask's bits. */
export function markOf(index: number, cfg: Pick<StickyConfig, 'shift'>): number {
  return (index * 2 ** cfg.shift) >>> 0;
}

/** The index a mark value stands for, or null when it has bits outside the mask or is out of range. */
export function indexOfMark(mark: number, cfg: Pick<StickyConfig, 'mask' | 'shift' | 'capacity'>): number | null {
  const m = mark >>> 0;
  if (mark !== m || (m & ~cfg.mask) !== 0) return null;
  const i = m / 2 ** cfg.shift;
  return i >= 1 && i <= cfg.capacity ? i : null;
}

export function tableOf(index: number, cfg: Pick<StickyConfig, 'tableBase'>): number {
  return cfg.tableBase + index;
}

export function inStickyRange(table: number | undefined, cfg: Pick<StickyConfig, 'tableBase' | 'tableRange'>): boolean {
  return table !== undefined && table >= cfg.tableBase && table < cfg.tableBase + cfg.tableRange;
}

/** IPs of the gateways that keep (or get) a mark: in `desired.gateways` and ready or draining; sorted, unique. */
export function stickyGateways(desired: NodeEgressState): string[] {
  const nums = new Set<number>();
  if (!desired.enabled) return [];
  for (const g of desired.gateways) {
    if (!(g.ready || g.draining)) continue;
    const n = parseIPv4(g.ip);
    if (n !== undefined) nums.add(n);
  }
  return [...nums].sort((a, b) => a - b).map(formatIPv4);
}

/** Client pools: every pool minus the egress pools (gateways are never clients), aggregated. */
export function clientPools(nat: NodeNatConfig): Cidr[] {
  const egress = new Set(nat.egressPools.map((c) => parsePrefix(c)).filter((p): p is Cidr => p !== undefined).map(formatCidr));
  const all = nat.allPools.map((c) => parsePrefix(c)).filter((p): p is Cidr => p !== undefined);
  return aggregatePrefixes(all.filter((p) => !egress.has(formatCidr(p))));
}

/**
 * Assigns an index to every wanted IP. `sources` are (ip, index) records in decreasing authority (the nft map, then
 * the per-gateway tables, then this process's memory of released indexes): the first valid, unclaimed record of an
 * IP wins, unless the kernel (`held`: every (ip, index) record found there) has the index for another IP too (an
 * inconsistent record is dropped; the IP then gets a new index). The rest get the lowest free index, where an
 * index still held in the kernel (being freed by this very reconcile) counts as free only when no other is left: a
 * mark is not handed to a new gateway in the same reconcile that takes it from the old one (the rule, table and map
 * element change in separate writes, and a new connection could meet the new element with the old table). IPs
 * beyond the capacity get none (`unassigned`).
 */
export function assignMarks(
  wanted: readonly string[],
  sources: readonly (Iterable<readonly [string, number]>)[],
  capacity: number,
  held: Iterable<readonly [string, number]> = [],
): { assigned: Map<string, number>; unassigned: string[] } {
  const want = new Set(wanted);
  const byIp = new Map<string, number>();
  const used = new Set<number>();
  const holders = new Map<number, Set<string>>();
  for (const [ip, index] of held) {
    if (!holders.has(index)) holders.set(index, new Set());
    holders.get(index)!.add(ip);
  }
  const heldByOther = (ip: string, index: number): boolean => [...(holders.get(index) ?? [])].some((x) => x !== ip);
  for (const src of sources) {
    const recs = [...src].sort((a, b) => (parseIPv4(a[0]) ?? 0) - (parseIPv4(b[0]) ?? 0) || a[1] - b[1]);
    for (const [ip, index] of recs) {
      if (!want.has(ip) || byIp.has(ip) || used.has(index) || !Number.isInteger(index) || index < 1 || index > capacity) continue;
      if (heldByOther(ip, index)) continue;
      byIp.set(ip, index);
      used.add(index);
    }
  }
  const unassigned: string[] = [];
  let next = 1;
  let nextBusy = 1;
  for (const ip of wanted) {
    if (byIp.has(ip)) continue;
    while (next <= capacity && (used.has(next) || holders.has(next))) next++;
    let index = next;
    if (index > capacity) {
      while (nextBusy <= capacity && used.has(nextBusy)) nextBusy++;
      index = nextBusy;
    }
    if (index > capacity) {
      unassigned.push(ip);
      continue;
    }
    byIp.set(ip, index);
    used.add(index);
  }
  // in IP order, for stable output
  const assigned = new Map([...byIp].sort((a, b) => (parseIPv4(a[0]) ?? 0) - (parseIPv4(b[0]) ?? 0)));
  return { assigned, unassigned };
}

/** (ip, index) records from the per-gateway tables: table base+i holding exactly `default via <ip> dev <dev> onlink`. */
export function indexesFromTables(routes: readonly ActualRoute[], cfg: StickyConfig, dev: string): [string, number][] {
  const out: [string, number][] = [];
  for (const r of routes) {
    if (!inStickyRange(r.table, cfg) || r.dst !== '0.0.0.0/0' || r.type !== 'unicast' || r.metric !== 0) continue;
    const m = /^via (\d+\.\d+\.\d+\.\d+) dev (\S+) onlink$/.exec(r.sig);
    if (!m || m[2] !== dev) continue;
    out.push([m[1], r.table - cfg.tableBase]);
  }
  return out;
}

/** (ip, index) records from the nft map's elements. */
export function indexesFromMap(elems: readonly { ip: string; mark: number }[], cfg: StickyConfig): [string, number][] {
  const out: [string, number][] = [];
  for (const e of elems) {
    const i = indexOfMark(e.mark, cfg);
    if (i !== null) out.push([e.ip, i]);
  }
  return out;
}

export interface StickyRule {
  src: string;
  mark: number;
  table: number;
}

export interface StickyPlan {
  /** ip → index, in IP order. */
  assigned: Map<string, number>;
  /** `<ip> : <mark>` elements of the map, in IP order. */
  marks: { ip: string; mark: number }[];
  tables: EgressTable[];
  rules: StickyRule[];
  /** Priority of the rules: desired.rulePriority − 1. */
  priority: number;
  /** CIDRs (aggregated) whose packets get their mark restored. */
  clientPools: string[];
  warnings: string[];
}

/** The stickiness objects the node wants, given what the kernel holds (for adoption). */
export function planSticky(
  desired: NodeEgressState,
  nat: NodeNatConfig,
  cfg: StickyConfig,
  actual: { mapElems: readonly { ip: string; mark: number }[]; routes: readonly ActualRoute[] },
  hints: Iterable<readonly [string, number]> = [],
): StickyPlan {
  const pools = clientPools(nat);
  const priority = desired.rulePriority - 1;
  const empty: StickyPlan = { assigned: new Map(), marks: [], tables: [], rules: [], priority, clientPools: pools.map(formatCidr), warnings: [] };
  if (!cfg.enabled) return empty;
  const wanted = stickyGateways(desired);
  const dev = desired.vxlan.device;
  const fromMap = indexesFromMap(actual.mapElems, cfg);
  const fromTables = indexesFromTables(actual.routes, cfg, dev);
  const { assigned, unassigned } = assignMarks(wanted, [fromMap, fromTables, hints], cfg.capacity, [...fromMap, ...fromTables]);
  const warnings: string[] = [];
  if (unassigned.length) warnings.push(`stickiness: no free mark under 0x${cfg.mask.toString(16)} for gateways ${unassigned.join(', ')}: their connections are not pinned`);
  const marks = [...assigned].map(([ip, i]) => ({ ip, mark: markOf(i, cfg) }));
  const tables: EgressTable[] = [...assigned]
    .map(([ip, i]) => ({ id: tableOf(i, cfg), routes: [{ dst: '0.0.0.0/0', type: 'ecmp' as const, via: [ip] }] }))
    .sort((a, b) => a.id - b.id);
  const rules: StickyRule[] = [];
  // Pitfall 1 (docs/kernel.md §4): the tunnel's outer packet inherits the mark; the rules keep it out by its source
  // (the node IP). A node IP inside a client pool would send the outer packets back into the tunnel: no rules then.
  const local = desired.vxlan.local !== null ? parseIPv4(desired.vxlan.local) : undefined;
  if (!assigned.size) {
    // nothing to pin
  } else if (priority < 0) warnings.push(`stickiness: rule priority ${desired.rulePriority} leaves no room for the mark rules (priority − 1): connections are not pinned`);
  else if (!pools.length) warnings.push('stickiness: no client pools (IP pools minus egress pools): connections are not pinned');
  else if (local !== undefined && pools.some((p) => cidrContains(p, local))) {
    warnings.push(`stickiness: the node IP ${desired.vxlan.local} is inside a client pool (tunnel packets would match the mark rules): connections are not pinned`);
  } else {
    for (const p of pools) for (const t of tables) rules.push({ src: formatCidr(p), mark: markOf(t.id - cfg.tableBase, cfg), table: t.id });
  }
  return { assigned, marks, tables, rules, priority, clientPools: pools.map(formatCidr), warnings };
}

/** A FelixConfiguration's mark mask field: a number, or a string such as "0xffff0000" (absent: Felix's default). */
function felixMask(v: unknown, field: string, name: string): number {
  if (v === undefined || v === null) return FELIX_DEFAULT_MARK_MASK;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(v.trim()) ? Number(v.trim()) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`FelixConfiguration ${name}: spec.${field} ${JSON.stringify(v)} is not a 32-bit mask`);
  return n >>> 0;
}

const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/**
 * Why egw's mark mask cannot be used beside Felix (docs/kubernetes.md, "Coexisting with Felix"), or undefined: the
 * mask must share no bit with any FelixConfiguration's iptablesMarkMask or nftablesMarkMask (Felix's default
 * 0xffff0000 where a field is absent). With no FelixConfiguration at all (the lab, etcd mode) there is no Felix.
 */
export function markMaskConflict(mask: number, felix: readonly { name: string; spec?: Record<string, unknown> }[]): string | undefined {
  const m = mask >>> 0;
  for (const f of felix) {
    for (const field of ['iptablesMarkMask', 'nftablesMarkMask']) {
      const theirs = felixMask(f.spec?.[field], field, f.name);
      if ((theirs & m) !== 0) {
        return `sticky mark mask ${hex(m)} overlaps FelixConfiguration ${f.name}'s ${field} ${hex(theirs)}${f.spec?.[field] === undefined ? ' (Felix\'s default)' : ''} in bits ${hex(theirs & m)}: ` +
          `choose --sticky-mark-mask outside it and kube-proxy's ${hex(KUBE_PROXY_MARKS)} (the default ${hex(DEFAULT_STICKY_MARK_MASK)} is)`;
      }
    }
  }
  return undefined;
}
