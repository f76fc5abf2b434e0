// IPv4 addresses and CIDRs as unsigned 32-bit integers. Pure helpers shared by validation, IPAM, calc, the data
// plane and the lab: the one CIDR type of egw and the one home of each rule about it.

export interface Cidr {
  /**
   * Address as an unsigned 32-bit integer. parseCidr keeps host bits (so validation can report them); parsePrefix,
   * networkOf and aggregatePrefixes clear them, and the prefix helpers below (prefixContains, comparePrefix,
   * aggregatePrefixes) expect that.
   */
  readonly addr: number;
  /** Prefix length, 0–32. */
  readonly prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** Parses dotted-quad IPv4; undefined if it is not one (leading zeros are rejected as ambiguous). */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return undefined;
    n = n * 256 + Number(p);
  }
  return n >>> 0;
}

export function formatIPv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses `a.b.c.d/p`; a bare address is not accepted here (callers that allow it add `/32`). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseIPv4(text.slice(0, slash));
  const ptext = text.slice(slash + 1);
  if (addr === undefined || !/^(3[0-2]|[12]?[0-9])$/.test(ptext)) return undefined;
  return { addr, prefix: Number(ptext) };
}

export function hasHostBits(c: Cidr): boolean {
  return (c.addr & ~maskOf(c.prefix)) >>> 0 !== 0;
}

export function networkOf(c: Cidr): Cidr {
  return { addr: (c.addr & maskOf(c.prefix)) >>> 0, prefix: c.prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.addr)}/${c.prefix}`;
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === ((c.addr & maskOf(c.prefix)) >>> 0);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const m = maskOf(p);
  return ((a.addr & m) >>> 0) === ((b.addr & m) >>> 0);
}

/** 169.254.0.0/16: link-local. Never an IP pool, never egress traffic. */
export const LINK_LOCAL: Cidr = Object.freeze({ addr: 0xa9fe0000, prefix: 16 });

export function isLinkLocal(c: Cidr): boolean {
  return cidrsOverlap(c, LINK_LOCAL);
}

// ---- network prefixes (host bits cleared) -------------------------------------------------------------------------

/** Parses `a.b.c.d/len` leniently (surrounding blanks, a bare address = /32) into its network (host bits cleared). */
export function parsePrefix(text: string): Cidr | undefined {
  const t = text.trim();
  const slash = t.indexOf('/');
  const addr = parseIPv4(slash < 0 ? t : t.slice(0, slash));
  if (addr === undefined) return undefined;
  let prefix = 32;
  if (slash >= 0) {
    const lt = t.slice(slash + 1);
    if (!/^(3[0-2]|[12]?[0-9])$/.test(lt)) return undefined;
    prefix = Number(lt);
  }
  return { addr: (addr & maskOf(prefix)) >>> 0, prefix };
}

/** Does network `outer` contain network `inner` (equal counts)? */
export function prefixContains(outer: Cidr, inner: Cidr): boolean {
  return outer.prefix <= inner.prefix && ((inner.addr & maskOf(outer.prefix)) >>> 0) === outer.addr;
}

/** Canonical route order: by network address, then shorter prefix first. */
export function comparePrefix(a: Cidr, b: Cidr): number {
  return a.addr - b.addr || a.prefix - b.prefix;
}

/**
 * The minimal list of networks covering exactly the union of `prefixes` (overlaps removed, adjacent blocks merged),
 * sorted by address.
 */
export function aggregatePrefixes(prefixes: readonly Cidr[]): Cidr[] {
  if (prefixes.length === 0) return [];
  const ranges = prefixes
    .map((p) => [p.addr, p.addr + 2 ** (32 - p.prefix) - 1] as [number, number])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1) {
      if (r[1] > last[1]) last[1] = r[1];
    } else merged.push([r[0], r[1]]);
  }
  const out: Cidr[] = [];
  for (const [lo, hi] of merged) {
    let start = lo;
    while (start <= hi) {
      // largest aligned block starting at `start` that fits in [start, hi]
      let prefix = 32;
      while (prefix > 0) {
        const size = 2 ** (32 - (prefix - 1));
        if (start % size !== 0 || start + size - 1 > hi) break;
        prefix--;
      }
      out.push({ addr: start, prefix });
      start += 2 ** (32 - prefix);
    }
  }
  return out;
}

// ---- addresses egw derives ---------------------------------------------------------------------------------------

/**
 * MAC egw gives a gateway's VXLAN device: `a2:2a:` + the four octets of its IP in hex. Client nodes (neighbour and
 * FDB entries) and the gateway (its own device) must agree on it.
 */
export function gatewayMac(ip: number): string {
  const h = (n: number): string => n.toString(16).padStart(2, '0');
  return `a2:2a:${h((ip >>> 24) & 255)}:${h((ip >>> 16) & 255)}:${h((ip >>> 8) & 255)}:${h(ip & 255)}`;
}
