// From manifest files to validated resources: parse every document, validate each object, then check what only a
// whole batch can show (duplicates, references between objects, pool overlaps and capacity). Nothing is applied
// here; the caller applies the batch only if there are no errors, so a bad batch leaves nothing half-applied.
import { Checker } from './check.js';
import { formatProblem, parseManifest, type ManifestProblem, type RawObject } from './manifest.js';
import { keyString, keyOf, type Resource } from './meta.js';
import { cidrsOverlap, parseCidr } from './ipv4.js';
import { cidrsOverlap6, parseCidr6 } from './ipv6.js';
import type { EgressGatewaySpec, IPPoolSpec } from './types.js';
import { IPV6_EGRESS, poolCapacity, validateObject } from './validate.js';

export interface ManifestFile {
  file: string;
  text: string;
}

export interface ValidResource {
  resource: Resource;
  raw: RawObject;
  subject: string;
}

/** What is already stored, for the checks that look across objects. */
export interface ExistingObjects {
  list(kind: string): Resource[];
}

export interface BatchResult {
  resources: ValidResource[];
  errors: ManifestProblem[];
  warnings: ManifestProblem[];
}

/** Namespaces that exist in every cluster without being created. */
export const BUILTIN_NAMESPACES = ['default', 'kube-system'];

export interface ValidateOptions {
  defaultNamespace?: string;
  /** Check references between objects and against the store (off when only identities matter, as for delete). */
  crossChecks?: boolean;
}

export function validateManifests(files: ManifestFile[], existing: ExistingObjects, opts: ValidateOptions = {}): BatchResult {
  const errors: ManifestProblem[] = [];
  const warnings: ManifestProblem[] = [];
  const resources: ValidResource[] = [];
  for (const f of files) {
    const parsed = parseManifest(f.text, f.file);
    errors.push(...parsed.problems);
    for (const raw of parsed.objects) {
      const r = validateObject(raw, opts);
      errors.push(...r.checker.toProblems(raw, r.subject, 'errors'));
      warnings.push(...r.checker.toProblems(raw, r.subject, 'warnings'));
      if (r.resource) resources.push({ resource: r.resource, raw, subject: r.subject });
    }
  }
  if (errors.length === 0 && opts.crossChecks !== false) errors.push(...checkBatch(resources, existing));
  if (errors.length === 0 && resources.length === 0) {
    errors.push({ file: files.map((f) => f.file).join(', ') || '-', line: 1, column: 1, message: 'no objects found (the input has no YAML or JSON documents)' });
  }
  return { resources: errors.length ? [] : resources, errors, warnings };
}

export function formatProblems(problems: ManifestProblem[]): string {
  return problems.map(formatProblem).join('\n');
}

/** Checks across the batch and the stored objects. Objects in the batch replace stored ones of the same name. */
function checkBatch(batch: ValidResource[], existing: ExistingObjects): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const report = (v: ValidResource, path: (string | number)[], message: string) => {
    const c = new Checker();
    c.error(path, message);
    problems.push(...c.toProblems(v.raw, v.subject));
  };

  const seen = new Map<string, ValidResource>();
  for (const v of batch) {
    const k = keyString(keyOf(v.resource));
    const first = seen.get(k);
    if (first) report(v, ['metadata', 'name'], `defined twice in this input (first at ${first.raw.file}:${first.raw.locate([]).line})`);
    else seen.set(k, v);
  }

  // The view after the batch would be applied.
  const merged = (kind: string): Resource[] => {
    const out = new Map<string, Resource>();
    for (const r of existing.list(kind)) out.set(keyString(keyOf(r)), r);
    for (const v of batch) if (v.resource.kind === kind) out.set(keyString(keyOf(v.resource)), v.resource);
    return [...out.values()];
  };

  const namespaces = new Set([...BUILTIN_NAMESPACES, ...merged('Namespace').map((n) => n.metadata.name)]);
  for (const v of batch) {
    const ns = v.resource.metadata.namespace;
    if (ns !== undefined && !namespaces.has(ns)) {
      report(v, ['metadata', 'namespace'], `namespace ${JSON.stringify(ns)} does not exist; create it first (or in the same input)`);
    }
  }

  const pools = merged('IPPool');
  const inBatch = new Set(batch.map((v) => keyString(keyOf(v.resource))));
  for (const v of batch) {
    if (v.resource.kind !== 'IPPool') continue;
    // Pools of one family overlap or not; an IPv4 and an IPv6 pool never do.
    const overlaps = (a: string, b: string): boolean => {
      const [a4, b4] = [parseCidr(a), parseCidr(b)];
      if (a4 && b4) return cidrsOverlap(a4, b4);
      const [a6, b6] = [parseCidr6(a), parseCidr6(b)];
      return !!a6 && !!b6 && cidrsOverlap6(a6, b6);
    };
    const mine = (v.resource.spec as IPPoolSpec).cidr;
    for (const other of pools) {
      if (other.metadata.name === v.resource.metadata.name) continue;
      if (overlaps(mine, (other.spec as IPPoolSpec).cidr)) {
        // Report an overlap inside the batch once, on the later object.
        const otherKey = keyString(keyOf(other));
        if (inBatch.has(otherKey) && other.metadata.name > v.resource.metadata.name) continue;
        report(v, ['spec', 'cidr'], `${(v.resource.spec as IPPoolSpec).cidr} overlaps IPPool ${other.metadata.name} (${(other.spec as IPPoolSpec).cidr})`);
      }
    }
  }

  const gateways = merged('EgressGateway');
  const resolvePools = (spec: EgressGatewaySpec) =>
    spec.ipPools.map((ref) => ({
      ref,
      pool: pools.find((p) => (ref.name === undefined || p.metadata.name === ref.name) && (ref.cidr === undefined || (p.spec as IPPoolSpec).cidr === ref.cidr)),
      byName: ref.name === undefined ? undefined : pools.find((p) => p.metadata.name === ref.name),
    }));
  for (const v of batch) {
    if (v.resource.kind === 'EgressGateway') {
      const spec = v.resource.spec as EgressGatewaySpec;
      const resolved = resolvePools(spec);
      resolved.forEach(({ ref, pool, byName }, i) => {
        const path = ['spec', 'ipPools', i];
        if (!pool && byName && ref.cidr !== undefined) {
          report(v, [...path, 'cidr'], `IPPool ${ref.name} has cidr ${(byName.spec as IPPoolSpec).cidr}, not ${ref.cidr}`);
        } else if (!pool) {
          report(v, path, `no IPPool ${ref.name !== undefined ? `named ${ref.name}` : `with cidr ${ref.cidr}`} exists; create the pool first (or in the same input)`);
        } else if (!parseCidr((pool.spec as IPPoolSpec).cidr)) {
          report(v, path, `IPPool ${pool.metadata.name} (${(pool.spec as IPPoolSpec).cidr}) is an IPv6 pool: ${IPV6_EGRESS}`);
        } else if ((pool.spec as IPPoolSpec).disabled) {
          report(v, path, `IPPool ${pool.metadata.name} is disabled; no gateway address can come from it`);
        }
      });
      const usable = [...new Set(resolved.map((r) => r.pool).filter((p): p is Resource => !!p && !!parseCidr((p.spec as IPPoolSpec).cidr)))];
      if (usable.length === resolved.length) {
        const names = new Set(usable.map((p) => p.metadata.name));
        const capacity = usable.reduce((n, p) => n + poolCapacity((p.spec as IPPoolSpec).cidr), 0);
        // Other gateways drawing from the same pools take their replicas' addresses first.
        const taken = gateways
          .filter((g) => keyString(keyOf(g)) !== keyString(keyOf(v.resource)))
          .filter((g) => resolvePools(g.spec as EgressGatewaySpec).some((r) => r.pool && names.has(r.pool.metadata.name)))
          .reduce((n, g) => n + (g.spec as EgressGatewaySpec).replicas, 0);
        const free = Math.max(0, capacity - taken);
        if (spec.replicas > free) {
          report(v, ['spec', 'replicas'], `${spec.replicas} gateways do not fit the ${free} free address${free === 1 ? '' : 'es'} of ${[...names].join(', ')}${taken ? ` (${taken} taken by other gateways)` : ''}`);
        }
      }
    }
    if (v.resource.kind === 'IPPool' && !parseCidr((v.resource.spec as IPPoolSpec).cidr)) {
      // A gateway in the same batch reports it itself (above); this is for a stored gateway.
      const user = gateways.find((g) => !inBatch.has(keyString(keyOf(g))) && resolvePools(g.spec as EgressGatewaySpec).some((r) => r.pool?.metadata.name === v.resource.metadata.name));
      if (user) {
        report(v, ['spec', 'cidr'], `EgressGateway ${user.metadata.namespace}/${user.metadata.name} takes its addresses from this pool: ${IPV6_EGRESS}`);
      }
    }
  }
  return problems;
}
