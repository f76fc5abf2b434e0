// IPv6 prefixes, for validating IPPool resources only (docs/behaviour.md §1: an IPv6 pool is a valid resource, but
// egw's data plane, IPAM and calculation are IPv4; the one CIDR type for those stays ipv4.ts). Pure.

export interface Cidr6 {
  /** The 128-bit address (host bits kept, as parseCidr in ipv4.ts does, so validation can report them). */
  readonly addr: bigint;
  /** Prefix length, 0–128. */
  readonly prefix: number;
}

const ALL_ONES = (1n << 128n) - 1n;
const HEXTET = /^[0-9A-Fa-f]{1,4}$/;

function mask6(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL_ONES << BigInt(128 - prefix)) & ALL_ONES;
}

/** Parses an IPv6 address (RFC 4291 text: hextets, one `::`, an optional dotted-quad tail); undefined if not one. */
export function parseIPv6(text: string): bigint | undefined {
  if (!text.includes(':')) return undefined;
  let groups: number[];
  let head = text;
  let tail: number[] = [];
  // A trailing dotted quad (::ffff:1.2.3.4) counts as two hextets.
  const lastColon = head.lastIndexOf(':');
  const last = head.slice(lastColon + 1);
  if (last.includes('.')) {
    const parts = last.split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/.test(p))) return undefined;
    const n = parts.map(Number);
    tail = [n[0] * 256 + n[1], n[2] * 256 + n[3]];
    head = head.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const hexs = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const h of s.split(':')) {
      if (!HEXTET.test(h)) return undefined;
      out.push(parseInt(h, 16));
    }
    return out;
  };
  const dbl = head.indexOf('::');
  if (dbl >= 0) {
    if (head.indexOf('::', dbl + 1) >= 0) return undefined;
    const left = hexs(head.slice(0, dbl));
    const right = hexs(head.slice(dbl + 2));
    if (!left || !right) return undefined;
    const missing = 8 - left.length - right.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right, ...tail];
  } else {
    const all = hexs(head);
    if (!all) return undefined;
    groups = [...all, ...tail];
    if (groups.length !== 8) return undefined;
  }
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(g);
  return n;
}

/** Parses `addr/len` with an IPv6 address; a bare address is not accepted (as parseCidr in ipv4.ts). */
export function parseCidr6(text: string): Cidr6 | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseIPv6(text.slice(0, slash));
  const ptext = text.slice(slash + 1);
  if (addr === undefined || !/^(12[0-8]|1[01][0-9]|[1-9]?[0-9])$/.test(ptext)) return undefined;
  return { addr, prefix: Number(ptext) };
}

export function hasHostBits6(c: Cidr6): boolean {
  return (c.addr & ~mask6(c.prefix) & ALL_ONES) !== 0n;
}

export function networkOf6(c: Cidr6): Cidr6 {
  return { addr: c.addr & mask6(c.prefix), prefix: c.prefix };
}

/** RFC 5952 text: lower-case, leading zeros dropped, the longest run (≥ 2) of zero hextets written `::`. */
export function formatIPv6(addr: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

export function formatCidr6(c: Cidr6): string {
  return `${formatIPv6(c.addr)}/${c.prefix}`;
}

export function cidrsOverlap6(a: Cidr6, b: Cidr6): boolean {
  const m = mask6(Math.min(a.prefix, b.prefix));
  return (a.addr & m) === (b.addr & m);
}

/** fe80::/10: IPv6 link-local, never an IP pool (as 169.254.0.0/16 for IPv4). */
export const LINK_LOCAL6: Cidr6 = Object.freeze({ addr: 0xfe80n << 112n, prefix: 10 });

export function isLinkLocal6(c: Cidr6): boolean {
  return cidrsOverlap6(c, LINK_LOCAL6);
}

/** 2^(128 − prefix): the number of addresses (a bigint, since it need not fit a double exactly). */
export function cidrSize6(c: Cidr6): bigint {
  return 1n << BigInt(128 - c.prefix);
}
