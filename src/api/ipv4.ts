// IPv4 addresses and CIDRs as unsigned 32-bit integers. Pure helpers shared by validation, IPAM and calc.

export interface Cidr {
  /** Network address as an unsigned 32-bit integer (host bits may be set if the input had them). */
  addr: number;
  prefix: number;
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

/** 169.254.0.0/16: link-local, never an IP pool. */
export function isLinkLocal(c: Cidr): boolean {
  return cidrsOverlap(c, { addr: 0xa9fe0000, prefix: 16 });
}
