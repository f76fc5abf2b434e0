// Small pure readers of Pod objects shared by calc, the gateway and the tools.
import { formatIPv4, parseIPv4 } from './ipv4.js';
import type { Pod } from './types.js';

/** The pod's first IPv4 address (status.podIPs, then status.podIP), normalised; null if it has none yet. */
export function podIPv4(pod: Pod): string | null {
  const st = pod.status;
  if (!st) return null;
  const cands: string[] = [];
  if (Array.isArray(st.podIPs)) for (const p of st.podIPs) if (p && typeof p.ip === 'string') cands.push(p.ip);
  if (typeof st.podIP === 'string') cands.push(st.podIP);
  for (const c of cands) {
    const n = parseIPv4(c);
    if (n !== undefined) return formatIPv4(n);
  }
  return null;
}
