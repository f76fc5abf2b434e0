// Which IP pools a pod's address may come from. Pure.
import { formatCidr, networkOf, parseCidr } from '../api/ipv4.js';
import { namespaceOf } from '../api/meta.js';
import { ANNOTATION, DEFAULT_ALLOWED_USES, type IPPool, type IPPoolAllowedUse, type Node, type Pod } from '../api/types.js';
import { parseSelector } from '../selector/index.js';
import { IpamError } from './types.js';


/** egw's IPAM is IPv4: an IPv6 pool (a valid resource, docs/behaviour.md §1) never gives a pod its address. */
export function isIPv4Pool(pool: IPPool): boolean {
  return typeof pool.spec?.cidr === 'string' && parseCidr(pool.spec.cidr) !== undefined;
}

export function poolAllows(pool: IPPool, use: IPPoolAllowedUse): boolean {
  const uses = pool.spec.allowedUses && pool.spec.allowedUses.length > 0 ? pool.spec.allowedUses : DEFAULT_ALLOWED_USES;
  return uses.includes(use);
}

/** True if the pool's nodeSelector (Calico selector; absent or empty = all()) matches the labels. Unparsable = no. */
export function poolSelectsNode(pool: IPPool, labels: Record<string, string>): boolean {
  const src = pool.spec.nodeSelector ?? '';
  try {
    return parseSelector(src).matches(labels);
  } catch {
    return false;
  }
}

function normalCidr(text: string): string | undefined {
  const c = parseCidr(text.trim());
  return c ? formatCidr(networkOf(c)) : undefined;
}

/** The pool a reference names: a pool name first, else a CIDR equal to a pool's CIDR. */
export function findPool(ref: { name?: string; cidr?: string } | string, pools: readonly IPPool[]): IPPool | undefined {
  const r = typeof ref === 'string' ? { name: ref, cidr: ref } : ref;
  if (r.name) {
    const byName = pools.find((p) => p.metadata.name === r.name);
    if (byName) return byName;
  }
  if (r.cidr) {
    const want = normalCidr(r.cidr);
    if (want !== undefined) return pools.find((p) => normalCidr(p.spec.cidr) === want);
  }
  return undefined;
}

/**
 * Which pools a pod's address may come from, in order: the pod annotation `cni.projectcalico.org/ipv4pools` (a JSON
 * list of pool names or CIDRs; an unknown or disabled pool is an IpamError naming it; a named pool is used whatever
 * its nodeSelector, so `!all()` pools serve only pods that name them), else every enabled pool whose nodeSelector
 * matches the node's labels and whose allowedUses includes Workload (in the order given). Pure.
 */
export function poolsForPod(pod: Pod, node: Node, pools: IPPool[]): IPPool[] {
  const who = `pod ${namespaceOf(pod)}/${pod.metadata.name}`;
  const ann = pod.metadata.annotations?.[ANNOTATION.ipv4Pools];
  if (ann !== undefined) {
    let refs: unknown;
    try {
      refs = JSON.parse(ann);
    } catch {
      throw new IpamError('Invalid', `${who}: annotation ${ANNOTATION.ipv4Pools} is not JSON: ${JSON.stringify(ann)} (expected a list such as ["my-pool"])`);
    }
    if (!Array.isArray(refs) || refs.some((r) => typeof r !== 'string')) {
      throw new IpamError('Invalid', `${who}: annotation ${ANNOTATION.ipv4Pools} must be a JSON list of pool names or CIDRs, got ${ann}`);
    }
    const out: IPPool[] = [];
    for (const ref of refs as string[]) {
      const p = findPool(ref, pools);
      if (!p) throw new IpamError('NoPool', `${who}: IP pool ${JSON.stringify(ref)} (annotation ${ANNOTATION.ipv4Pools}) does not exist`);
      if (p.spec.disabled) throw new IpamError('NoPool', `${who}: IP pool ${JSON.stringify(p.metadata.name)} (annotation ${ANNOTATION.ipv4Pools}) is disabled`);
      if (!isIPv4Pool(p)) throw new IpamError('NoPool', `${who}: IP pool ${JSON.stringify(p.metadata.name)} (annotation ${ANNOTATION.ipv4Pools}) is not an IPv4 pool`);
      if (!poolAllows(p, 'Workload')) {
        throw new IpamError('NoPool', `${who}: IP pool ${JSON.stringify(p.metadata.name)} (annotation ${ANNOTATION.ipv4Pools}) does not allow Workload addresses (allowedUses)`);
      }
      if (!out.includes(p)) out.push(p);
    }
    if (out.length === 0) throw new IpamError('NoPool', `${who}: annotation ${ANNOTATION.ipv4Pools} names no pool`);
    return out;
  }
  const labels = node.metadata.labels ?? {};
  return pools.filter((p) => !p.spec.disabled && isIPv4Pool(p) && poolAllows(p, 'Workload') && poolSelectsNode(p, labels));
}
