// Pure readers of apps/v1 objects shared by validation (validate-apps.ts) and the lab's kube-controller-manager
// stand-in (src/lab/rollout.ts, src/lab/replicaset.ts): label selectors, maxSurge/maxUnavailable, controller owner
// references and the pod-template-hash (docs/behaviour.md §6).
import type { OwnerReference, Resource } from './meta.js';
import type { Labels, LabelSelector } from './types.js';

/** Kubernetes' LabelSelector semantics: every matchLabels entry and every matchExpressions requirement holds. */
export function matchesLabelSelector(sel: LabelSelector, labels: Labels | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const r of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const vals = r.values ?? [];
    switch (r.operator) {
      case 'In':
        if (!has || !vals.includes(l[r.key])) return false;
        break;
      case 'NotIn':
        if (has && vals.includes(l[r.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** `25%` → 25; a non-percentage → undefined. */
export function parsePercent(v: string): number | undefined {
  const m = /^(\d+)%$/.exec(v);
  return m ? Number(m[1]) : undefined;
}

/**
 * maxSurge / maxUnavailable as a number of pods for `replicas`: an integer as given, a percentage of replicas rounded
 * up (maxSurge) or down (maxUnavailable), as Kubernetes' deployment controller does (Kubernetes documentation,
 * "Deployments": "the absolute number is calculated from percentage by rounding up" / "rounding down").
 */
export function scaledValue(v: number | string, replicas: number, roundUp: boolean): number {
  if (typeof v === 'number') return v;
  const pct = parsePercent(v);
  if (pct === undefined) throw new RangeError(`${JSON.stringify(v)} is neither a whole number nor a percentage`);
  const exact = (pct * replicas) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/**
 * The pods a rolling update may add above `replicas` and lose below it. As Kubernetes does (ResolveFenceposts): if
 * both come out 0, maxUnavailable becomes 1, so a rollout can always progress.
 */
export function surgeAndUnavailable(maxSurge: number | string, maxUnavailable: number | string, replicas: number): { surge: number; unavailable: number } {
  const surge = scaledValue(maxSurge, replicas, true);
  let unavailable = scaledValue(maxUnavailable, replicas, false);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { surge, unavailable };
}

/** The controller owner reference of an object (the one with controller: true), if any. */
export function controllerOf(r: Resource): OwnerReference | undefined {
  return r.metadata.ownerReferences?.find((o) => o.controller === true);
}

/** True if `owner` (by uid) is the controller of `r`. */
export function isControlledBy(r: Resource, owner: Resource): boolean {
  const ref = controllerOf(r);
  return !!ref && !!owner.metadata.uid && ref.uid === owner.metadata.uid && ref.kind === owner.kind;
}

/** The controller owner reference that `owner` puts on what it creates. */
export function ownerRef(owner: Resource): OwnerReference {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/** Kubernetes' alphabet for generated name suffixes and hashes: no vowels (no words), no 0/1/3 (confusable). */
export const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** JSON with object keys sorted: equal values give equal text, whatever the key order they were written in. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * The pod-template-hash of a pod template: FNV-1a (32 bit) of its canonical JSON, written in SAFE_ALPHABET as
 * Kubernetes writes its hash (each character of the decimal number mapped into the alphabet by its code). Equal templates give equal hashes on
 * every run, so a restarted stand-in finds the ReplicaSet it made.
 */
export function podTemplateHash(template: unknown): string {
  let h = 0x811c9dc5;
  const text = canonicalJson(template);
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return String(h)
    .split('')
    .map((d) => SAFE_ALPHABET[d.charCodeAt(0) % SAFE_ALPHABET.length])
    .join('');
}
