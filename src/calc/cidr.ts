// IPv4 helpers for calc: addresses as unsigned 32-bit numbers, prefixes, containment, and the minimal CIDR cover
// of a set of prefixes (used for the cluster-internal destinations every table throws).

import { formatIPv4, maskOf, parseIPv4 } from '../api/ipv4.js';

export interface Prefix {
  /** Network address (host bits cleared), unsigned. */
  readonly addr: number;
  readonly len: number;
}

export { parseIPv4, formatIPv4, maskOf };

/** Parses `a.b.c.d/len` (a bare address = /32); host bits are cleared. */
export function parsePrefix(text: string): Prefix | undefined {
  const t = text.trim();
  const slash = t.indexOf('/');
  const addr = parseIPv4(slash < 0 ? t : t.slice(0, slash));
  if (addr === undefined) return undefined;
  let len = 32;
  if (slash >= 0) {
    const lt = t.slice(slash + 1);
    if (!/^(3[0-2]|[12]?[0-9])$/.test(lt)) return undefined;
    len = Number(lt);
  }
  return { addr: (addr & maskOf(len)) >>> 0, len };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIPv4(p.addr)}/${p.len}`;
}

/** Does `outer` contain `inner` (equal counts)? */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return outer.len <= inner.len && ((inner.addr & maskOf(outer.len)) >>> 0) === outer.addr;
}

export function prefixContainsIP(p: Prefix, ip: number): boolean {
  return ((ip & maskOf(p.len)) >>> 0) === p.addr;
}

/** Canonical route order: by network address, then shorter prefix first. */
export function comparePrefix(a: Prefix, b: Prefix): number {
  return a.addr - b.addr || a.len - b.len;
}

/** MAC egw gives a gateway's VXLAN device: `a2:2a:` + the four octets of its IP in hex. */
export function gatewayMac(ip: number): string {
  const h = (n: number): string => n.toString(16).padStart(2, '0');
  return `a2:2a:${h((ip >>> 24) & 255)}:${h((ip >>> 16) & 255)}:${h((ip >>> 8) & 255)}:${h(ip & 255)}`;
}

/**
 * The minimal list of prefixes covering exactly the union of `prefixes` (overlaps removed, adjacent blocks merged),
 * sorted by address.
 */
export function aggregatePrefixes(prefixes: readonly Prefix[]): Prefix[] {
  if (prefixes.length === 0) return [];
  const ranges = prefixes
    .map((p) => [p.addr, p.addr + 2 ** (32 - p.len) - 1] as [number, number])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1) {
      if (r[1] > last[1]) last[1] = r[1];
    } else merged.push([r[0], r[1]]);
  }
  const out: Prefix[] = [];
  for (const [lo, hi] of merged) {
    let start = lo;
    while (start <= hi) {
      // largest aligned block starting at `start` that fits in [start, hi]
      let len = 32;
      while (len > 0) {
        const size = 2 ** (32 - (len - 1));
        if (start % size !== 0 || start + size - 1 > hi) break;
        len--;
      }
      out.push({ addr: start, len });
      start += 2 ** (32 - len);
    }
  }
  return out;
}
