// The gateway's nft table (`table ip egw-gw`), described in nft's own JSON form, and the smallest transaction that
// turns what the kernel has into it.
//
// Rules are written in exactly the JSON form `nft -j list` prints them back (verified on nftables 1.0.6), so the
// comparison with the kernel is a plain deep equality of the expressions (counter values ignored), and a rule that
// was tampered with is noticed. Set elements are added and deleted in place: the table, its chains and their rules
// (and so conntrack and traffic) are never touched when only the nodes or the allowed clients change.
//
// The types are named Gateway…: the node's table (src/dataplane/nft.ts) has its own NftTableSpec / NftChainSpec /
// NftRuleSpec of another shape (no sets, a map, canonical comparison), and src/dataplane/kernel.ts's ActualRule is
// an `ip rule`; one name must not mean two things.

import { PRIO } from '../dataplane/nft.js';

export const GW_TABLE = 'egw-gw';
export const GW_FAMILY = 'ip';
export const NODES_SET = 'nodes';
export const CLIENTS_SET = 'clients';

/** Comments on the rules, so people (and tests) can find them: `nft list table ip egw-gw`. */
export const RULE_COMMENT = {
  vxlanFromNonNode: 'egw-gw: VXLAN from a non-node source',
  spoofedClient: 'egw-gw: inner source is not an allowed client',
  mssClamp: 'egw-gw: clamp TCP MSS to the tunnel MTU',
  allowedClient: 'egw-gw: from an allowed client',
  masquerade: 'egw-gw: SNAT to the pod IP',
  tunnelNotrack: "egw-gw: the tunnel's outer packets skip conntrack",
} as const;

export interface GatewayNftParams {
  /** The VXLAN device (`egw.vxlan`). */
  device: string;
  /** The pod's uplink (`eth0`). */
  uplink: string;
  /** VXLAN UDP port. */
  port: number;
  /** MSS to clamp SYN / SYN-ACK to: tunnel MTU − 40. */
  mss: number;
  /** Node IPs (the only allowed VXLAN senders), sorted. */
  nodes: readonly string[];
  /** Allowed client IPs, sorted. */
  clients: readonly string[];
}

export type NftExpr = Record<string, unknown>;

export interface GatewayNftRule {
  expr: NftExpr[];
  comment: string;
}

export interface GatewayNftChain {
  name: string;
  type: 'filter' | 'nat';
  hook: 'prerouting' | 'input' | 'forward' | 'postrouting';
  prio: number;
  policy: 'accept';
  rules: GatewayNftRule[];
}

export interface GatewayNftTable {
  sets: { name: string; elems: readonly string[] }[];
  chains: GatewayNftChain[];
}

const meta = (key: string): NftExpr => ({ meta: { key } });
const payload = (protocol: string, field: string): NftExpr => ({ payload: { protocol, field } });
const match = (left: unknown, op: string, right: unknown): NftExpr => ({ match: { op, left, right } });
const counter = (): NftExpr => ({ counter: { packets: 0, bytes: 0 } });
const maxseg = { 'tcp option': { name: 'maxseg', field: 'size' } };

/** The table the gateway wants. */
export function desiredTable(p: GatewayNftParams): GatewayNftTable {
  return {
    sets: [
      { name: NODES_SET, elems: p.nodes },
      { name: CLIENTS_SET, elems: p.clients },
    ],
    chains: [
      {
        // The tunnel is one-way (replies leave by the uplink, de-NATed, not through it) and each inner connection is
        // an outer flow of its own: an entry per connection that nothing uses. The same on the nodes
        // (src/dataplane/nft.ts tunnelNotrackChains, which says why). The input rule below still drops non-nodes.
        name: 'raw_prerouting',
        type: 'filter',
        hook: 'prerouting',
        prio: PRIO.raw,
        policy: 'accept',
        rules: [
          {
            expr: [match(payload('udp', 'dport'), '==', p.port), match(payload('ip', 'saddr'), '==', `@${NODES_SET}`), { notrack: null }],
            comment: RULE_COMMENT.tunnelNotrack,
          },
        ],
      },
      {
        name: 'input',
        type: 'filter',
        hook: 'input',
        prio: PRIO.filter,
        policy: 'accept',
        rules: [
          {
            expr: [match(payload('udp', 'dport'), '==', p.port), match(payload('ip', 'saddr'), '!=', `@${NODES_SET}`), counter(), { drop: null }],
            comment: RULE_COMMENT.vxlanFromNonNode,
          },
        ],
      },
      {
        name: 'forward',
        type: 'filter',
        hook: 'forward',
        prio: PRIO.filter,
        policy: 'accept',
        rules: [
          {
            expr: [match(meta('iifname'), '==', p.device), match(payload('ip', 'saddr'), '!=', `@${CLIENTS_SET}`), counter(), { drop: null }],
            comment: RULE_COMMENT.spoofedClient,
          },
          {
            // SYNs from clients and the SYN-ACKs going back to them (directly, not through the tunnel): the only
            // TCP this pod forwards.
            expr: [
              match({ '&': [payload('tcp', 'flags'), ['syn', 'rst']] }, '==', 'syn'),
              match(maxseg, '>', p.mss),
              { mangle: { key: maxseg, value: p.mss } },
            ],
            comment: RULE_COMMENT.mssClamp,
          },
          { expr: [match(meta('iifname'), '==', p.device), { accept: null }], comment: RULE_COMMENT.allowedClient },
        ],
      },
      {
        name: 'postrouting',
        type: 'nat',
        hook: 'postrouting',
        prio: PRIO.srcnat,
        policy: 'accept',
        rules: [
          {
            expr: [match(meta('iifname'), '==', p.device), match(meta('oifname'), '==', p.uplink), { masquerade: null }],
            comment: RULE_COMMENT.masquerade,
          },
        ],
      },
    ],
  };
}

// ---- what the kernel has ------------------------------------------------------------------------------------------

export interface ActualGatewaySet {
  name: string;
  type: unknown;
  flags?: unknown;
  handle?: number;
  elems: string[] | null;
}
export interface ActualGatewayChain {
  name: string;
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
  handle?: number;
}
export interface ActualGatewayRule {
  chain: string;
  handle: number;
  comment?: string;
  expr: NftExpr[];
}
export interface ActualGatewayTable {
  handle: number;
  sets: ActualGatewaySet[];
  chains: ActualGatewayChain[];
  rules: ActualGatewayRule[];
}

/** Parses `nft -j list table ip egw-gw` output. Set elements that are not plain addresses make `elems` null. */
export function parseTable(json: string): ActualGatewayTable | null {
  const doc = JSON.parse(json) as { nftables?: Record<string, Record<string, unknown>>[] };
  let table: ActualGatewayTable | null = null;
  const sets: ActualGatewaySet[] = [];
  const chains: ActualGatewayChain[] = [];
  const rules: ActualGatewayRule[] = [];
  for (const o of doc.nftables ?? []) {
    if (o.table) table = { handle: Number(o.table.handle), sets, chains, rules };
    else if (o.set) {
      const s = o.set;
      const raw = s.elem;
      let elems: string[] | null = [];
      if (Array.isArray(raw)) {
        for (const e of raw) {
          if (typeof e === 'string') elems.push(e);
          else {
            elems = null;
            break;
          }
        }
      } else if (raw !== undefined) elems = null;
      sets.push({ name: String(s.name), type: s.type, flags: s.flags, handle: Number(s.handle), elems });
    } else if (o.chain) {
      const c = o.chain;
      chains.push({
        name: String(c.name),
        type: c.type as string | undefined,
        hook: c.hook as string | undefined,
        prio: c.prio as number | undefined,
        policy: c.policy as string | undefined,
        handle: Number(c.handle),
      });
    } else if (o.rule) {
      const r = o.rule;
      rules.push({ chain: String(r.chain), handle: Number(r.handle), comment: r.comment as string | undefined, expr: (r.expr as NftExpr[]) ?? [] });
    }
  }
  return table;
}

// ---- the difference -----------------------------------------------------------------------------------------------

/** Counter values change all the time; they are not part of a rule's identity. */
function normExpr(expr: readonly NftExpr[]): string {
  return JSON.stringify(expr.map((e) => ('counter' in e ? { counter: true } : e)));
}

function sameRules(actual: readonly ActualGatewayRule[], want: readonly GatewayNftRule[]): boolean {
  if (actual.length !== want.length) return false;
  return actual.every((r, i) => r.comment === want[i].comment && normExpr(r.expr) === normExpr(want[i].expr));
}

function chainHeaderOk(a: ActualGatewayChain, w: GatewayNftChain): boolean {
  return a.type === w.type && a.hook === w.hook && a.prio === w.prio && a.policy === w.policy;
}

function setOk(a: ActualGatewaySet): boolean {
  return a.type === 'ipv4_addr' && a.flags === undefined && a.elems !== null;
}

export interface GatewayNftPlan {
  /** The `nft -j -f -` document, or null when the kernel already has the table. */
  doc: { nftables: Record<string, unknown>[] } | null;
  /** One line per change, for the log. */
  changes: string[];
}

/**
 * The smallest transaction from `actual` (null: no table) to `want`: element additions/deletions for the sets,
 * `flush chain` + rules for a chain whose rules differ, and the whole table (deleted first if present) only when its
 * shape is wrong (unknown sets or chains, a set of another type, a base chain with another hook or priority).
 */
export function planTable(actual: ActualGatewayTable | null, want: GatewayNftTable): GatewayNftPlan {
  const T = { family: GW_FAMILY, table: GW_TABLE };
  const ops: Record<string, unknown>[] = [];
  const changes: string[] = [];
  const addAll = (): void => {
    ops.push({ add: { table: { family: GW_FAMILY, name: GW_TABLE } } });
    for (const s of want.sets) {
      const set: Record<string, unknown> = { ...T, name: s.name, type: 'ipv4_addr' };
      if (s.elems.length) set.elem = [...s.elems];
      ops.push({ add: { set } });
    }
    for (const c of want.chains) {
      ops.push({ add: { chain: { ...T, name: c.name, type: c.type, hook: c.hook, prio: c.prio, policy: c.policy } } });
      for (const r of c.rules) ops.push({ add: { rule: { ...T, chain: c.name, expr: r.expr, comment: r.comment } } });
    }
  };
  if (!actual) {
    addAll();
    changes.push(`create table ${GW_FAMILY} ${GW_TABLE}`);
    return { doc: { nftables: ops }, changes };
  }
  const wantSets = new Map(want.sets.map((s) => [s.name, s]));
  const wantChains = new Map(want.chains.map((c) => [c.name, c]));
  const shapeOk =
    actual.sets.length === want.sets.length &&
    actual.sets.every((s) => wantSets.has(s.name) && setOk(s)) &&
    actual.chains.length === want.chains.length &&
    actual.chains.every((c) => wantChains.has(c.name) && chainHeaderOk(c, wantChains.get(c.name)!));
  if (!shapeOk) {
    ops.push({ delete: { table: { family: GW_FAMILY, name: GW_TABLE } } });
    addAll();
    changes.push(`recreate table ${GW_FAMILY} ${GW_TABLE} (unexpected sets or chains)`);
    return { doc: { nftables: ops }, changes };
  }
  for (const s of want.sets) {
    const have = new Set(actual.sets.find((x) => x.name === s.name)!.elems!);
    const wantElems = new Set(s.elems);
    const add = s.elems.filter((e) => !have.has(e));
    const del = [...have].filter((e) => !wantElems.has(e)).sort();
    if (del.length) {
      ops.push({ delete: { element: { ...T, name: s.name, elem: del } } });
      changes.push(`set ${s.name}: -${del.join(',')}`);
    }
    if (add.length) {
      ops.push({ add: { element: { ...T, name: s.name, elem: add } } });
      changes.push(`set ${s.name}: +${add.join(',')}`);
    }
  }
  for (const c of want.chains) {
    const rules = actual.rules.filter((r) => r.chain === c.name);
    if (sameRules(rules, c.rules)) continue;
    ops.push({ flush: { chain: { ...T, name: c.name } } });
    for (const r of c.rules) ops.push({ add: { rule: { ...T, chain: c.name, expr: r.expr, comment: r.comment } } });
    changes.push(`chain ${c.name}: rules rewritten`);
  }
  return { doc: ops.length ? { nftables: ops } : null, changes };
}

/** The counter of the rule with this comment (undefined if absent). For tests and status. */
export function ruleCounter(t: ActualGatewayTable, comment: string): { packets: number; bytes: number } | undefined {
  const r = t.rules.find((x) => x.comment === comment);
  const c = r?.expr.find((e) => 'counter' in e) as { counter: { packets: number; bytes: number } } | undefined;
  return c ? { packets: c.counter.packets, bytes: c.counter.bytes } : undefined;
}
