// Parsers for what the kernel reports (`ip -json`, `bridge -json`, /proc/sys), into the small shapes the diff needs.
// Samples of every format, taken from this machine inside a network namespace, are in test/dataplane/samples.ts.

import { formatCidr, parseIPv4, parsePrefix } from '../api/ipv4.js';
import type { EgressRoute } from '../calc/types.js';
import { sysctlPath, type RuleSelectors } from './commands.js';

type Json = Record<string, unknown>;

function parseArray(json: string, what: string): Json[] {
  const t = json.trim();
  if (t === '') return [];
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error(`${what}: expected a JSON array`);
  return v as Json[];
}

/** `default` → 0.0.0.0/0, a bare address → /32, a prefix → normalised; null if not IPv4. */
export function normalizeDst(dst: unknown, len?: unknown): string | null {
  if (typeof dst !== 'string') return null;
  if (dst === 'default' || dst === 'all') return '0.0.0.0/0';
  const p = parsePrefix(typeof len === 'number' && !dst.includes('/') ? `${dst}/${len}` : dst);
  return p ? formatCidr(p) : null;
}

// ---- rules ------------------------------------------------------------------------------------------------------

const RULE_ACTIONS: Record<string, string> = { '6': 'blackhole', '7': 'unreachable', '8': 'prohibit', blackhole: 'blackhole', unreachable: 'unreachable', prohibit: 'prohibit', nop: 'nop' };
const PLAIN_RULE_KEYS = new Set(['priority', 'src', 'srclen', 'table']);
const MARK_RULE_KEYS = new Set(['priority', 'src', 'srclen', 'table', 'fwmark', 'fwmask']);

export interface ActualRule extends RuleSelectors {
  /** Exactly `from SRC lookup TABLE` (a numeric table) with no other selector or action. */
  plain: boolean;
  /** Exactly `from SRC fwmark M[/MASK] lookup TABLE` (a stickiness rule's shape) with no other selector. */
  markPlain: boolean;
}

/** `ip -N -4 -json rule list`. */
export function parseRules(json: string): ActualRule[] {
  const out: ActualRule[] = [];
  for (const r of parseArray(json, 'ip rule')) {
    const priority = typeof r.priority === 'number' ? r.priority : 0;
    const src = r.src === 'all' || r.src === undefined ? 'all' : `${String(r.src)}/${typeof r.srclen === 'number' ? r.srclen : 32}`;
    const tableNum = typeof r.table === 'string' && /^\d+$/.test(r.table) ? Number(r.table) : typeof r.table === 'number' ? r.table : undefined;
    const rule: ActualRule = { priority, src, plain: false, markPlain: false };
    if (r.dst !== undefined && r.dst !== 'all') rule.dst = `${String(r.dst)}/${typeof r.dstlen === 'number' ? r.dstlen : 32}`;
    if (r.not !== undefined) rule.not = true;
    if (r.tos !== undefined) rule.tos = String(r.tos);
    if (r.fwmark !== undefined) rule.fwmark = String(r.fwmark);
    if (r.fwmask !== undefined) rule.fwmask = String(r.fwmask);
    if (r.iif !== undefined) rule.iif = String(r.iif);
    if (r.oif !== undefined) rule.oif = String(r.oif);
    if (r.ipproto !== undefined) rule.ipproto = String(r.ipproto).replace(/^ipproto-/, '');
    if (r.sport !== undefined) rule.sport = String(r.sport);
    if (r.dport !== undefined) rule.dport = String(r.dport);
    if (tableNum !== undefined) rule.table = tableNum;
    else if (r.goto !== undefined) rule.action = `goto ${String(r.goto)}`;
    else if (r.action !== undefined) rule.action = RULE_ACTIONS[String(r.action)];
    rule.plain = tableNum !== undefined && src !== 'all' && Object.keys(r).every((k) => PLAIN_RULE_KEYS.has(k));
    rule.markPlain = tableNum !== undefined && src !== 'all' && r.fwmark !== undefined && Object.keys(r).every((k) => MARK_RULE_KEYS.has(k));
    out.push(rule);
  }
  return out;
}

// ---- routes -----------------------------------------------------------------------------------------------------

const ROUTE_TYPES: Record<string, string> = {
  '1': 'unicast',
  '2': 'local',
  '3': 'broadcast',
  '4': 'anycast',
  '5': 'multicast',
  '6': 'blackhole',
  '7': 'unreachable',
  '8': 'prohibit',
  '9': 'throw',
  '10': 'nat',
};
/** Attributes the routes egw writes may carry; anything else makes a route differ from the desired one. */
const ROUTE_KEYS = new Set(['type', 'dst', 'table', 'flags', 'gateway', 'dev', 'nexthops', 'metric', 'tos']);
const NEXTHOP_KEYS = new Set(['gateway', 'dev', 'weight', 'flags']);

export interface ActualRoute {
  table: number;
  /** Normalised prefix. */
  dst: string;
  /** `unicast`, `throw`, `unreachable`, … */
  type: string;
  metric: number;
  tos?: string;
  /** Comparable with `routeSignature` of a desired route. */
  sig: string;
  /** Some next hop leaves by `dev`: the route disappears with the device. */
  usesDevice: boolean;
}

/** The identity of a route in the kernel: table, destination, metric, tos. */
export function routeKey(r: { table: number; dst: string; metric?: number; tos?: string }): string {
  return `${r.table}|${r.dst}|${r.metric ?? 0}|${r.tos ?? ''}`;
}

/** What a desired route looks like in `routeSignature` form. */
export function routeSignature(r: EgressRoute, dev: string): string {
  switch (r.type) {
    case 'throw':
      return 'throw';
    case 'unreachable':
      return 'unreachable';
    case 'ecmp':
      if (r.via.length === 1) return `via ${r.via[0]} dev ${dev} onlink`;
      return `nexthops ${r.via.map((v) => `${v} dev ${dev} onlink`).join(', ')}`;
  }
}

/**
 * `ip -N -4 -json route show table all`, keeping routes in tables [base, base + range). `dev` is the VXLAN device
 * (to know which routes vanish with it).
 */
export function parseRoutes(json: string, base: number, range: number, dev: string): ActualRoute[] {
  return parseRoutesIn(json, [[base, range]], dev);
}

/** parseRoutes for several table ranges `[base, range]` in one pass (the client tables and the per-gateway tables). */
export function parseRoutesIn(json: string, ranges: readonly (readonly [number, number])[], dev: string): ActualRoute[] {
  const out: ActualRoute[] = [];
  for (const r of parseArray(json, 'ip route')) {
    const table = typeof r.table === 'string' && /^\d+$/.test(r.table) ? Number(r.table) : typeof r.table === 'number' ? r.table : 254;
    if (!ranges.some(([base, range]) => table >= base && table < base + range)) continue;
    const dst = normalizeDst(r.dst);
    if (dst === null) continue;
    const type = r.type === undefined ? 'unicast' : (ROUTE_TYPES[String(r.type)] ?? String(r.type));
    const extra = Object.keys(r)
      .filter((k) => !ROUTE_KEYS.has(k))
      .sort()
      .map((k) => `${k}=${JSON.stringify(r[k])}`);
    const flags = Array.isArray(r.flags) ? (r.flags as string[]) : [];
    let sig: string;
    let usesDevice = r.dev === dev;
    if (type === 'unicast' && Array.isArray(r.nexthops)) {
      const hops = (r.nexthops as Json[]).map((h) => {
        if (h.dev === dev) usesDevice = true;
        const hf = Array.isArray(h.flags) ? (h.flags as string[]) : [];
        const bad = Object.keys(h).some((k) => !NEXTHOP_KEYS.has(k)) || (h.weight !== undefined && h.weight !== 1);
        return `${String(h.gateway)} dev ${String(h.dev)}${hf.includes('onlink') ? ' onlink' : ''}${bad ? ` ?${JSON.stringify(h)}` : ''}`;
      });
      sig = `nexthops ${hops.join(', ')}`;
      if (r.gateway !== undefined || r.dev !== undefined) extra.push('gateway+nexthops');
    } else if (type === 'unicast') {
      sig = `via ${String(r.gateway)} dev ${String(r.dev)}${flags.includes('onlink') ? ' onlink' : ''}`;
    } else {
      sig = type;
      if (r.gateway !== undefined || r.dev !== undefined || r.nexthops !== undefined) extra.push(`dev=${String(r.dev)} gw=${String(r.gateway)}`);
    }
    if (extra.length) sig += ` ?${extra.join(' ')}`;
    const route: ActualRoute = { table, dst, type, metric: typeof r.metric === 'number' ? r.metric : 0, sig, usesDevice };
    if (r.tos !== undefined) route.tos = String(r.tos);
    out.push(route);
  }
  return out;
}

// ---- link -------------------------------------------------------------------------------------------------------

export interface ActualLink {
  ifindex: number;
  name: string;
  kind: string | null;
  vni: number | null;
  port: number | null;
  local: string | null;
  learning: boolean;
  /** A remote, group or underlay device is set (egw's device has none). */
  hasPeer: boolean;
  mtu: number;
  up: boolean;
  /** IPv4 addresses `a.b.c.d/len` (egw's device has none). */
  addresses: string[];
}

/** `ip -d -json addr show dev D` (one element); null for an empty answer. */
export function parseLink(json: string): ActualLink | null {
  const arr = parseArray(json, 'ip link');
  const l = arr[0];
  if (!l) return null;
  const info = (l.linkinfo ?? {}) as Json;
  const data = (info.info_data ?? {}) as Json;
  const addrs = Array.isArray(l.addr_info) ? (l.addr_info as Json[]) : [];
  return {
    ifindex: Number(l.ifindex),
    name: String(l.ifname),
    kind: typeof info.info_kind === 'string' ? info.info_kind : null,
    vni: typeof data.id === 'number' ? data.id : null,
    port: typeof data.port === 'number' ? data.port : null,
    local: typeof data.local === 'string' ? data.local : null,
    learning: data.learning !== false,
    hasPeer: data.remote !== undefined || data.group !== undefined || data.link !== undefined,
    mtu: Number(l.mtu),
    up: Array.isArray(l.flags) && (l.flags as string[]).includes('UP'),
    addresses: addrs.filter((a) => a.family === 'inet').map((a) => `${String(a.local)}/${String(a.prefixlen)}`),
  };
}

/** Did `ip link/addr show dev D` fail because the device does not exist? */
export function isMissingDevice(stderr: string): boolean {
  return /does not exist|Cannot find device/i.test(stderr);
}

// ---- neighbours and FDB -----------------------------------------------------------------------------------------

export interface ActualNeighbour {
  ip: string;
  mac: string | null;
  permanent: boolean;
}

/** `ip -4 -json neigh show dev D`. */
export function parseNeighbours(json: string): ActualNeighbour[] {
  return parseArray(json, 'ip neigh')
    .filter((n) => typeof n.dst === 'string' && parseIPv4(n.dst) !== undefined)
    .map((n) => ({
      ip: String(n.dst),
      mac: typeof n.lladdr === 'string' ? n.lladdr.toLowerCase() : null,
      permanent: Array.isArray(n.state) && (n.state as string[]).includes('PERMANENT'),
    }));
}

const FDB_KEYS = new Set(['mac', 'dst', 'flags', 'state', 'ifname']);

export interface ActualFdb {
  mac: string;
  dst?: string;
  port?: number;
  vni?: number;
  /** Carries attributes egw never sets (port, vni, via, …) or no destination. */
  odd: boolean;
}

/** `bridge -json fdb show dev D`. */
export function parseFdb(json: string): ActualFdb[] {
  return parseArray(json, 'bridge fdb').map((e) => {
    const f: ActualFdb = { mac: String(e.mac).toLowerCase(), odd: false };
    if (typeof e.dst === 'string') f.dst = e.dst;
    if (typeof e.port === 'number') f.port = e.port;
    if (typeof e.vni === 'number') f.vni = e.vni;
    f.odd = f.dst === undefined || Object.keys(e).some((k) => !FDB_KEYS.has(k));
    return f;
  });
}

/** `cat` of the sysctl files, one value per line, in `keys` order. */
export function parseSysctls(text: string, keys: readonly string[]): Record<string, string> {
  const lines = text.split('\n').map((l) => l.trim());
  const out: Record<string, string> = {};
  keys.forEach((k, i) => (out[k] = lines[i] ?? ''));
  return out;
}

/**
 * `cat` of sysctl files some of which may not exist (a device's, before the device does): cat prints the files it
 * can read, in order, and names each missing one on stderr (`cat: PATH: No such file or directory`). Keys named
 * there are null; the others take the output lines in order (null if there are too few).
 */
export function parseSysctlsRead(stdout: string, stderr: string, keys: readonly string[]): Record<string, string | null> {
  const lines = stdout.split('\n').map((l) => l.trim());
  const out: Record<string, string | null> = {};
  let i = 0;
  for (const k of keys) out[k] = stderr.includes(`${sysctlPath(k)}: No such file or directory`) ? null : (lines[i++] ?? null);
  return out;
}

/** `ip -4 -json addr show`: the device holding `ip`, with its MTU. */
export function findAddressDevice(json: string, ip: string): { device: string; mtu: number; prefixlen: number } | null {
  for (const l of parseArray(json, 'ip addr')) {
    const addrs = Array.isArray(l.addr_info) ? (l.addr_info as Json[]) : [];
    const a = addrs.find((x) => (x.family === undefined || x.family === 'inet') && x.local === ip);
    if (a) return { device: String(l.ifname), mtu: Number(l.mtu), prefixlen: Number(a.prefixlen) };
  }
  return null;
}
