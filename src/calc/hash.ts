// Deterministic, non-cryptographic 32-bit hashing for calc: rendezvous (highest-random-weight) scores and table IDs.
//
// Strings are hashed with FNV-1a (32-bit) followed by MurmurHash3's fmix32 finaliser: FNV-1a alone mixes the last
// characters poorly (names like `client-1` / `client-2` would land close together); fmix32 gives full avalanche.
// Two 32-bit values are combined with one MurmurHash3 block step plus fmix32. Everything is plain integer arithmetic
// (Math.imul), identical on every platform and every run: no seeds, no crypto, no process state.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over the UTF-16 code units of `s` (egw names are ASCII, so this is FNV-1a over the bytes). */
export function fnv1a32(s: string, seed: number = FNV_OFFSET): number {
  let h = seed | 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** MurmurHash3's 32-bit finaliser: a bijection with full avalanche. */
export function fmix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The 32-bit hash calc uses for identities and keys: fmix32(FNV-1a(s)). */
export function hashString(s: string): number {
  return fmix32(fnv1a32(s));
}

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/**
 * Rendezvous score of (client, gateway) from their identity hashes (`hashString('ns/name')`). A client uses the
 * gateways with the highest scores; ties (1 in 2^32) are broken by the gateway's identity string.
 */
export function rendezvousScore(clientHash: number, gatewayHash: number): number {
  let k = Math.imul(gatewayHash | 0, 0xcc9e2d51);
  k = rotl32(k, 15);
  k = Math.imul(k, 0x1b873593);
  let h = (clientHash | 0) ^ k;
  h = rotl32(h, 13);
  h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  h ^= 8;
  return fmix32(h);
}

/** Anything rendezvous hashing can rank: a stable identity string and its hash. */
export interface Rankable {
  readonly key: string;
  readonly hash: number;
}

/**
 * The `k` items with the highest rendezvous score for `clientHash`, best first (k <= 0 or k >= items.length: all
 * of them, best first). O(n·k) for the small k egress uses; stable and deterministic.
 */
export function rendezvousTopK<T extends Rankable>(items: readonly T[], k: number, clientHash: number): T[] {
  const n = items.length;
  const want = k <= 0 || k > n ? n : k;
  const best: T[] = [];
  const scores: number[] = [];
  for (let i = 0; i < n; i++) {
    const it = items[i];
    const s = rendezvousScore(clientHash, it.hash);
    if (best.length === want) {
      const ls = scores[want - 1];
      if (s < ls || (s === ls && it.key > best[want - 1].key)) continue;
    }
    // insertion into the (short) sorted list, highest score first, ties by key ascending
    let j = best.length < want ? best.length : want - 1;
    while (j > 0 && (scores[j - 1] < s || (scores[j - 1] === s && best[j - 1].key > it.key))) {
      best[j] = best[j - 1];
      scores[j] = scores[j - 1];
      j--;
    }
    best[j] = it;
    scores[j] = s;
  }
  return best;
}
