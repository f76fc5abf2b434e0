// The node's nft table (`table ip egw`): desired content, the one-transaction rebuild, and a comparison that is
// independent of how nft prints things back.
//
//   table ip egw {
//     chain postrouting {                      # only when NAT is enabled (Calico's natOutgoing)
//       type nat hook postrouting priority srcnat; policy accept;
//       ip saddr <egress pools, but host-IP ones> return                   # docs/behaviour.md §3.3: never SNAT egress IPs
//       oifname "<underlay>" ip saddr <natOutgoing pools> ip daddr != <all pools> masquerade
//       oifname "<underlay>" ip saddr <host-IP pools> ip daddr != <all pools, node IPs> masquerade   # host-IP mode
//     }
//     chain forward {                          # MSS clamp for SYNs entering the tunnel
//       type filter hook forward priority mangle; policy accept;
//       oifname "egw.vxlan" tcp flags syn / syn,rst tcp option maxseg size > MSS tcp option maxseg size set MSS
//     }
//     map gw_marks { type ipv4_addr : mark; elements = { <gwIP> : <mark>, … } }      # stickiness (sticky.ts)
//     chain prerouting {                       # established client connections: the mark back from conntrack
//       type filter hook prerouting priority mangle; policy accept;
//       ip saddr <client pools> ct mark & MASK != 0 meta mark set ct mark & MASK
//     }
//     chain postrouting_mark {                 # a new connection remembers the next hop ECMP chose
//       type filter hook postrouting priority mangle; policy accept;
//       oifname "egw.vxlan" ct state new ct mark set rt ip nexthop map @gw_marks
//     }
//     chain tunnel_prerouting {                # the tunnel's outer packets skip conntrack (and tunnel_output,
//       type filter hook prerouting priority raw; policy accept;        #  the same at hook output)
//       ip daddr <egress pools> udp dport <tunnel port> notrack
//     }
//   }
//
// Writes are JSON (`nft -j -f -`), built in the same shape nft lists (so they read back unchanged), as one atomic
// transaction `add table; delete table; add table; add chain…; add rule…`: packets never see a half-built table,
// and whatever else was in the table (hand-added chains, sets) is gone. The table is rebuilt only when the
// canonical form of what the kernel holds differs from the desired one. Canonical form: chains with
// type/hook/prio/policy, rules in order with their expressions; any address value (a bare address, a prefix, a
// range, an anonymous set of them) is replaced by its merged list of intervals, because nft merges adjacent set
// elements and prints one-element sets without braces.
//
// Stickiness (docs/kernel.md §4): `stickinessChains()` and the map `gw_marks`. The map's declaration
// is part of the table's shape (compared like chains); its elements are not: they change with the gateways and are
// added and deleted in place (`nftMarkElementsDocument`), so a gateway change never rebuilds the table. A rebuild
// (for another reason) writes the elements the node wants in the same transaction. The prerouting rule matches only
// client-pool sources (pitfall 2: a reply carrying the mark would be routed back into the tunnel).

import { aggregatePrefixes, formatCidr, formatIPv4, parseIPv4, parsePrefix, type Cidr } from '../api/ipv4.js';
import { STICKY_MARKS_MAP, type NodeNatConfig } from './types.js';

export interface NftRuleSpec {
  expr: unknown[];
  comment?: string;
}

export interface NftChainSpec {
  name: string;
  type: 'filter' | 'nat' | 'route';
  hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  prio: number;
  policy: 'accept' | 'drop';
  rules: NftRuleSpec[];
}

/** An element of the map `gw_marks`: gateway IP → its mark. */
export interface NftMarkElem {
  ip: string;
  mark: number;
}

export interface NftTableSpec {
  family: 'ip';
  name: string;
  chains: NftChainSpec[];
  /** The map `gw_marks` and its elements; absent: no map (stickiness off). */
  marks?: NftMarkElem[];
}

/** What the kernel holds, as read with `nft -j list table`. */
export interface ActualNftTable {
  chains: NftChainSpec[];
  /** The elements of the map `gw_marks` when it exists with egw's shape (`ipv4_addr : mark`, no flags). */
  marks?: NftMarkElem[];
  /** Objects other than chains, rules and that map (sets, other maps, counters, flowtables, …) and table flags: never ours. */
  foreign: unknown[];
}

/** nft's named chain priorities (ip family) as numbers, the form `nft -j list` prints; the gateway's table uses them too. */
export const PRIO = { raw: -300, mangle: -150, filter: 0, srcnat: 100 } as const;

export interface NodeNftInput {
  table: string;
  nat: NodeNatConfig;
  /** The VXLAN device SYNs are clamped on. */
  device: string;
  /** MSS to clamp to: tunnel MTU − 40 (IPv4 + TCP headers). */
  mss: number;
  /** The tunnel's UDP port: its outer packets to gateways (egress-pool addresses) skip conntrack. */
  tunnelPort: number;
  /** Stickiness objects; absent: none. */
  sticky?: NodeStickyNft;
}

export interface NodeStickyNft {
  /** The mark bits egw owns. */
  mask: number;
  /** Sources whose packets get their connection's mark back (client pools, aggregated CIDRs). */
  clientPools: readonly string[];
  /** The map's elements. */
  marks: readonly NftMarkElem[];
}

// ---- expression builders (in the shape nft 1.0.6 lists) ---------------------------------------------------------

function metaMatch(key: string, op: '==' | '!=', value: string): unknown {
  return { match: { op, left: { meta: { key } }, right: value } };
}

function addrValue(prefixes: readonly Cidr[]): unknown {
  const el = (p: Cidr): unknown => (p.prefix === 32 ? formatIPv4(p.addr) : { prefix: { addr: formatIPv4(p.addr), len: p.prefix } });
  return prefixes.length === 1 ? el(prefixes[0]) : { set: prefixes.map(el) };
}

function addrMatch(field: 'saddr' | 'daddr', op: '==' | '!=', prefixes: readonly Cidr[]): unknown {
  return { match: { op, left: { payload: { protocol: 'ip', field } }, right: addrValue(prefixes) } };
}

const TCP_MSS = { 'tcp option': { name: 'maxseg', field: 'size' } };

/** Aggregated (overlaps removed, adjacent merged) prefixes of valid CIDRs; invalid ones are dropped. */
export function prefixesOf(cidrs: readonly string[]): Cidr[] {
  return aggregatePrefixes(cidrs.map((c) => parsePrefix(c)).filter((p): p is Cidr => p !== undefined));
}

export function natChain(nat: NodeNatConfig): NftChainSpec | null {
  if (!nat.enabled) return null;
  const rules: NftRuleSpec[] = [];
  const hostIP = prefixesOf(nat.hostIPPools);
  // Egress pools in host-IP mode are masqueraded below instead (docs/behaviour.md §3.3).
  const norm = (c: string) => { const p = parsePrefix(c); return p ? formatCidr(p) : c; };
  const hostIPText = new Set(nat.hostIPPools.map(norm));
  const egress = prefixesOf(nat.egressPools.filter((c) => !hostIPText.has(norm(c))));
  if (egress.length) rules.push({ expr: [addrMatch('saddr', '==', egress), { return: null }], comment: 'egress-pool sources are never SNATed' });
  const all = prefixesOf(nat.allPools);
  const masq = prefixesOf(nat.masqueradePools);
  if (masq.length && nat.underlayDevice) {
    const expr: unknown[] = [metaMatch('oifname', '==', nat.underlayDevice), addrMatch('saddr', '==', masq)];
    if (all.length) expr.push(addrMatch('daddr', '!=', all));
    expr.push({ masquerade: null });
    rules.push({ expr, comment: 'natOutgoing' });
  }
  if (hostIP.length && nat.underlayDevice) {
    // Host-IP mode: the gateway's traffic leaves with the node IP. Not toward pools or node addresses: what a gateway
    // sends to a node (its VXLAN packets back to the client's node) is cluster-internal, as calc's internal CIDRs say.
    const inside = prefixesOf([...nat.allPools, ...nat.nodeAddresses.map((a) => `${a}/32`)]);
    const expr: unknown[] = [metaMatch('oifname', '==', nat.underlayDevice), addrMatch('saddr', '==', hostIP)];
    if (inside.length) expr.push(addrMatch('daddr', '!=', inside));
    expr.push({ masquerade: null });
    rules.push({ expr, comment: 'host-IP mode: egress pools with natOutgoing' });
  }
  return { name: 'postrouting', type: 'nat', hook: 'postrouting', prio: PRIO.srcnat, policy: 'accept', rules };
}

export function mssClampChain(device: string, mss: number): NftChainSpec {
  return {
    name: 'forward',
    type: 'filter',
    hook: 'forward',
    prio: PRIO.mangle,
    policy: 'accept',
    rules: [
      {
        expr: [
          metaMatch('oifname', '==', device),
          { match: { op: '==', left: { '&': [{ payload: { protocol: 'tcp', field: 'flags' } }, ['syn', 'rst']] }, right: 'syn' } },
          { match: { op: '>', left: TCP_MSS, right: mss } },
          { mangle: { key: TCP_MSS, value: mss } },
        ],
        comment: 'clamp TCP MSS to the tunnel MTU',
      },
    ],
  };
}

/**
 * The tunnel's outer packets skip conntrack: `notrack` at raw priority for UDP to the tunnel port of a gateway (an
 * egress-pool address), where the node sends them (output) and where it forwards them to a local gateway pod
 * (prerouting). Each inner connection is an outer flow of its own (its source port is the inner flow's hash), so
 * each one made a conntrack entry, with its events, in every namespace on the way; the tunnel is one-way (replies
 * go back directly), so the entries were never used (docs/benchmarks.md, "Gateway path
 * experiments", `notrack`, the third run). Nothing of egw matches the outer packets' conntrack state: the
 * stickiness marks belong to the inner connection, and no node NAT rule matches a node-sourced packet to a pool.
 */
export function tunnelNotrackChains(port: number, egressPools: readonly string[]): NftChainSpec[] {
  const gws = prefixesOf(egressPools);
  if (!gws.length) return [];
  const rule = (): NftRuleSpec => ({
    expr: [addrMatch('daddr', '==', gws), { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: port } }, { notrack: null }],
    comment: "the tunnel's outer packets skip conntrack",
  });
  return [
    { name: 'tunnel_prerouting', type: 'filter', hook: 'prerouting', prio: PRIO.raw, policy: 'accept', rules: [rule()] },
    { name: 'tunnel_output', type: 'filter', hook: 'output', prio: PRIO.raw, policy: 'accept', rules: [rule()] },
  ];
}

const CT_MARK = { ct: { key: 'mark' } };

/**
 * Stickiness (conntrack marks): `prerouting` restores the packet mark of established connections from client pools
 * (only when there are client pools), `postrouting_mark` records the next hop of every new connection leaving by the
 * tunnel. Both at priority mangle: after conntrack (-200), before the routing decision (prerouting) and before NAT.
 */
export function stickinessChains(input: NodeNftInput): NftChainSpec[] {
  const st = input.sticky;
  if (!st) return [];
  const chains: NftChainSpec[] = [];
  const pools = prefixesOf(st.clientPools);
  const masked = { '&': [CT_MARK, st.mask >>> 0] };
  if (pools.length) {
    chains.push({
      name: 'prerouting',
      type: 'filter',
      hook: 'prerouting',
      prio: PRIO.mangle,
      policy: 'accept',
      rules: [
        {
          expr: [addrMatch('saddr', '==', pools), { match: { op: '!=', left: masked, right: 0 } }, { mangle: { key: { meta: { key: 'mark' } }, value: masked } }],
          comment: 'established client connections keep their gateway',
        },
      ],
    });
  }
  chains.push({
    name: 'postrouting_mark',
    type: 'filter',
    hook: 'postrouting',
    prio: PRIO.mangle,
    policy: 'accept',
    rules: [
      {
        expr: [
          metaMatch('oifname', '==', input.device),
          { match: { op: 'in', left: { ct: { key: 'state' } }, right: 'new' } },
          { mangle: { key: CT_MARK, value: { map: { key: { rt: { key: 'nexthop', family: 'ip' } }, data: `@${STICKY_MARKS_MAP}` } } } },
        ],
        comment: 'a new connection remembers its gateway',
      },
    ],
  });
  return chains;
}

export function nodeNftTable(input: NodeNftInput): NftTableSpec {
  const chains: NftChainSpec[] = [];
  const nat = natChain(input.nat);
  if (nat) chains.push(nat);
  chains.push(mssClampChain(input.device, input.mss));
  chains.push(...stickinessChains(input));
  chains.push(...tunnelNotrackChains(input.tunnelPort, input.nat.egressPools));
  const t: NftTableSpec = { family: 'ip', name: input.table, chains };
  if (input.sticky) t.marks = input.sticky.marks.map((e) => ({ ip: e.ip, mark: e.mark >>> 0 }));
  return t;
}

// ---- the write ------------------------------------------------------------------------------------------------

/** One atomic transaction that replaces the whole table. */
export function nftRebuildDocument(t: NftTableSpec): { nftables: unknown[] } {
  const table = { family: t.family, name: t.name };
  const out: unknown[] = [{ add: { table } }, { delete: { table } }, { add: { table } }];
  if (t.marks) {
    const map: Record<string, unknown> = { family: t.family, table: t.name, name: STICKY_MARKS_MAP, type: 'ipv4_addr', map: 'mark' };
    if (t.marks.length) map.elem = t.marks.map((e) => [e.ip, e.mark]);
    out.push({ add: { map } });
  }
  for (const c of t.chains) {
    out.push({ add: { chain: { family: t.family, table: t.name, name: c.name, type: c.type, hook: c.hook, prio: c.prio, policy: c.policy } } });
  }
  for (const c of t.chains) {
    for (const r of c.rules) {
      out.push({ add: { rule: { family: t.family, table: t.name, chain: c.name, expr: r.expr, ...(r.comment ? { comment: r.comment } : {}) } } });
    }
  }
  return { nftables: out };
}

/** In-place changes of the map `gw_marks`: deletions (by key) first, then additions; one transaction. */
export function nftMarkElementsDocument(table: string, del: readonly string[], add: readonly NftMarkElem[]): { nftables: unknown[] } {
  const at = { family: 'ip', table, name: STICKY_MARKS_MAP };
  const out: unknown[] = [];
  if (del.length) out.push({ delete: { element: { ...at, elem: [...del] } } });
  if (add.length) out.push({ add: { element: { ...at, elem: add.map((e) => [e.ip, e.mark]) } } });
  return { nftables: out };
}

/** The elements of a listed `gw_marks` map, or null when it is not egw's shape. */
function markElems(v: Record<string, unknown>): NftMarkElem[] | null {
  if (v.type !== 'ipv4_addr' || v.map !== 'mark' || v.flags !== undefined) return null;
  const keys = Object.keys(v).filter((k) => !['family', 'name', 'table', 'type', 'handle', 'map', 'elem'].includes(k));
  if (keys.length) return null;
  const out: NftMarkElem[] = [];
  if (v.elem === undefined) return out;
  if (!Array.isArray(v.elem)) return null;
  for (const e of v.elem as unknown[]) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || parseIPv4(e[0]) === undefined || typeof e[1] !== 'number') return null;
    out.push({ ip: e[0], mark: e[1] >>> 0 });
  }
  return out;
}

// ---- the read ---------------------------------------------------------------------------------------------------

/** Parses `nft -j list table ip NAME`; null if the output holds no such table. */
export function parseNftTable(json: string, name: string): ActualNftTable | null {
  const doc = JSON.parse(json) as { nftables?: Record<string, Record<string, unknown>>[] };
  const items = doc.nftables ?? [];
  let found = false;
  const chains = new Map<string, NftChainSpec>();
  const order: string[] = [];
  const foreign: unknown[] = [];
  let marks: NftMarkElem[] | undefined;
  for (const item of items) {
    const kind = Object.keys(item)[0];
    const v = item[kind];
    if (kind === 'metainfo') continue;
    if (kind === 'table') {
      if (v.name !== name) continue;
      found = true;
      if (v.flags !== undefined && !(Array.isArray(v.flags) && v.flags.length === 0)) foreign.push({ tableFlags: v.flags });
      continue;
    }
    if (v && v.table !== undefined && v.table !== name) continue;
    if (kind === 'chain') {
      const c: NftChainSpec = {
        name: String(v.name),
        type: v.type as NftChainSpec['type'],
        hook: v.hook as NftChainSpec['hook'],
        prio: v.prio as number,
        policy: v.policy as NftChainSpec['policy'],
        rules: [],
      };
      if (v.dev !== undefined) foreign.push({ chainDev: v.dev });
      chains.set(c.name, c);
      order.push(c.name);
    } else if (kind === 'rule') {
      const c = chains.get(String(v.chain));
      const rule: NftRuleSpec = { expr: (v.expr as unknown[]) ?? [] };
      if (typeof v.comment === 'string') rule.comment = v.comment;
      if (c) c.rules.push(rule);
      else foreign.push(item);
    } else if (kind === 'map' && v.name === STICKY_MARKS_MAP && marks === undefined && markElems(v) !== null) {
      marks = markElems(v)!;
    } else {
      foreign.push(item);
    }
  }
  if (!found) return null;
  const t: ActualNftTable = { chains: order.map((n) => chains.get(n)!), foreign };
  if (marks) t.marks = marks;
  return t;
}

// ---- comparison -------------------------------------------------------------------------------------------------

/** The merged [lo, hi] intervals of an address-valued nft expression, or null if it is something else. */
export function addressIntervals(v: unknown): [number, number][] | null {
  const ranges: [number, number][] = [];
  const add = (x: unknown): boolean => {
    if (typeof x === 'string') {
      const n = parseIPv4(x);
      if (n === undefined) return false;
      ranges.push([n, n]);
      return true;
    }
    if (x && typeof x === 'object' && !Array.isArray(x)) {
      const o = x as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length !== 1) return false;
      if (keys[0] === 'prefix') {
        const p = o.prefix as { addr?: unknown; len?: unknown };
        const pre = typeof p.addr === 'string' && typeof p.len === 'number' ? parsePrefix(`${p.addr}/${p.len}`) : undefined;
        if (!pre) return false;
        ranges.push([pre.addr, pre.addr + 2 ** (32 - pre.prefix) - 1]);
        return true;
      }
      if (keys[0] === 'range') {
        const r = o.range as unknown[];
        const a = typeof r?.[0] === 'string' ? parseIPv4(r[0]) : undefined;
        const b = typeof r?.[1] === 'string' ? parseIPv4(r[1]) : undefined;
        if (a === undefined || b === undefined) return false;
        ranges.push([a, b]);
        return true;
      }
      if (keys[0] === 'set') {
        const s = o.set;
        if (!Array.isArray(s) || s.length === 0) return false;
        return s.every(add);
      }
    }
    return false;
  };
  if (!add(v)) return null;
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

function canonValue(v: unknown): string {
  const iv = addressIntervals(v);
  if (iv) return `addr(${iv.map(([a, b]) => (a === b ? formatIPv4(a) : `${formatIPv4(a)}-${formatIPv4(b)}`)).join(',')})`;
  if (Array.isArray(v)) return `[${v.map(canonValue).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonValue(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/**
 * A text that is equal for two tables exactly when they filter and rewrite packets the same way, apart from the
 * elements of the map `gw_marks` (compared and changed separately, in place).
 */
export function canonicalTable(t: { chains: readonly NftChainSpec[]; marks?: readonly NftMarkElem[]; foreign?: readonly unknown[] }): string {
  const lines: string[] = [];
  if (t.marks) lines.push(`map ${STICKY_MARKS_MAP} ipv4_addr : mark`);
  for (const c of t.chains) {
    lines.push(`chain ${c.name} type=${c.type} hook=${c.hook} prio=${c.prio} policy=${c.policy}`);
    for (const r of c.rules) lines.push(`  ${r.expr.map(canonValue).join(' ')}${r.comment ? ` #${JSON.stringify(r.comment)}` : ''}`);
  }
  for (const f of t.foreign ?? []) lines.push(`foreign ${canonValue(f)}`);
  return lines.join('\n');
}
