// Small collection helpers: sorted arrays (calc keeps its outputs sorted as it goes, so nodeState never sorts) and
// maps of sets (its indexes).

/** Index of `x` in sorted `arr`, or -(insertion point) - 1. */
export function bsearch<T>(arr: readonly T[], x: T, cmp: (a: T, b: T) => number): number {
  let lo = 0;
  let hi = arr.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = cmp(arr[mid], x);
    if (c < 0) lo = mid + 1;
    else if (c > 0) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

/** Inserts `x` (not present) into sorted `arr`; returns its index. */
export function insertSorted<T>(arr: T[], x: T, cmp: (a: T, b: T) => number): number {
  const i = -bsearch(arr, x, cmp) - 1;
  arr.splice(i, 0, x);
  return i;
}

/** Removes `x` from sorted `arr` if present; returns its former index or -1. */
export function removeSorted<T>(arr: T[], x: T, cmp: (a: T, b: T) => number): number {
  const i = bsearch(arr, x, cmp);
  if (i >= 0) arr.splice(i, 1);
  return i < 0 ? -1 : i;
}

export function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

export function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}
