// A small structural-schema checker over a generated openAPIV3Schema (types, enums, min/max, minItems, minLength,
// required, unknown fields as kubectl's strict field validation reports them). Not CEL: those rules are listed
// by the tests that need them.
import type { Schema } from '../../src/kube/crds.js';

export function schemaErrors(v: unknown, s: Schema, path = ''): string[] {
  const at = path || '<root>';
  if (s['x-kubernetes-preserve-unknown-fields'] && !s.properties) return [];
  if (s.type === undefined) return [];
  const errs: string[] = [];
  const t = Array.isArray(v) ? 'array' : v === null ? 'null' : Number.isInteger(v) ? 'integer' : typeof v;
  const ok = s.type === t || (s.type === 'number' && t === 'integer');
  if (!ok) return [`${at}: expected ${s.type}, got ${t}`];
  if (s.enum && !s.enum.includes(v as string)) errs.push(`${at}: ${JSON.stringify(v)} is not one of ${s.enum.join(', ')}`);
  if (typeof v === 'number') {
    if (s.minimum !== undefined && v < s.minimum) errs.push(`${at}: ${v} < minimum ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) errs.push(`${at}: ${v} > maximum ${s.maximum}`);
  }
  if (typeof v === 'string' && s.minLength !== undefined && v.length < s.minLength) errs.push(`${at}: shorter than ${s.minLength}`);
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errs.push(`${at}: fewer than ${s.minItems} items`);
    v.forEach((x, i) => errs.push(...schemaErrors(x, s.items!, `${path}[${i}]`)));
  }
  // An object schema with no properties (metadata) is the API server's own to check.
  if (t === 'object' && (s.properties || s.additionalProperties)) {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) errs.push(`${at}: missing required ${r}`);
    for (const [k, x] of Object.entries(o)) {
      const sub = s.properties?.[k] ?? s.additionalProperties;
      if (sub) errs.push(...schemaErrors(x, sub, path ? `${path}.${k}` : k));
      else if (!s['x-kubernetes-preserve-unknown-fields']) errs.push(`${path ? `${path}.` : ''}${k}: unknown field`);
    }
  }
  return errs;
}

/** Walks every schema node (to assert structural rules on all of them). */
export function* nodes(s: Schema, path = ''): Generator<[string, Schema]> {
  yield [path || '<root>', s];
  for (const [k, x] of Object.entries(s.properties ?? {})) yield* nodes(x, `${path}.${k}`);
  if (s.items) yield* nodes(s.items, `${path}[]`);
  if (s.additionalProperties) yield* nodes(s.additionalProperties, `${path}{}`);
}
