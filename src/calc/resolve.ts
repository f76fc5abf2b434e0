// Resolution: which egress configuration a client pod has, in the documented order (docs/architecture.md, "calc:
// resolution order"). Pure: the pod, egressIPSupport, its namespace's annotations and which policies exist decide.
// With `why`, every step is recorded for explain.

import { ANNOTATION, type EgressIPSupport } from '../api/types.js';
import { parseMaxNextHops } from '../api/parse.js';
import { parseSelector } from '../selector/index.js';
import { EMPTY, NO_ANNOTATIONS, type EgressAnnotations, type PodRec } from './records.js';
import { errText } from '../util.js';

export type Source = 'pod' | 'namespace';

export type Resolved =
  | { readonly kind: 'disabled' }
  | { readonly kind: 'none' }
  | { readonly kind: 'policy'; readonly source: Source; readonly annotation: string; readonly policy: string; readonly deps: readonly string[] }
  | {
      readonly kind: 'fail-closed';
      readonly source: Source;
      readonly annotation: string;
      readonly value: string;
      readonly reason: string;
      readonly deps: readonly string[];
    }
  | {
      readonly kind: 'selector';
      readonly source: Source;
      readonly annotation: string;
      readonly selector: string;
      readonly namespaceSelector?: string;
      readonly maxNextHops: number;
    };

/**
 * 1. the pod's policy annotation, if that policy exists; 2. the namespace's, if it exists; 3. a policy annotation
 * naming no existing policy fails closed; 4. the pod's selector annotations; 5. the namespace's; 6. nothing.
 * Pod annotations count only with egressIPSupport EnabledPerNamespaceOrPerPod; Disabled turns everything off.
 */
export function resolve(
  pod: PodRec,
  support: EgressIPSupport,
  nsAnn: EgressAnnotations,
  policies: { has(name: string): boolean },
  why?: string[],
): Resolved {
  if (support === 'Disabled') {
    why?.push('FelixConfiguration egressIPSupport is Disabled: no egress routing at all');
    return { kind: 'disabled' };
  }
  let podAnn = pod.ann;
  if (support !== 'EnabledPerNamespaceOrPerPod') {
    if (podAnn !== NO_ANNOTATIONS) why?.push(`pod annotations ignored: egressIPSupport is ${support} (needs EnabledPerNamespaceOrPerPod)`);
    podAnn = NO_ANNOTATIONS;
  }
  const A = ANNOTATION.egressGatewayPolicy;
  const deps: string[] = [];
  if (podAnn.policy !== undefined) {
    deps.push(podAnn.policy);
    if (policies.has(podAnn.policy)) {
      why?.push(`pod annotation ${A}=${podAnn.policy} names an existing EgressGatewayPolicy`);
      return { kind: 'policy', source: 'pod', annotation: A, policy: podAnn.policy, deps };
    }
    why?.push(`pod annotation ${A}=${podAnn.policy}: no such EgressGatewayPolicy`);
  }
  if (nsAnn.policy !== undefined) {
    deps.push(nsAnn.policy);
    if (policies.has(nsAnn.policy)) {
      why?.push(`namespace ${pod.ns} annotation ${A}=${nsAnn.policy} names an existing EgressGatewayPolicy`);
      return { kind: 'policy', source: 'namespace', annotation: A, policy: nsAnn.policy, deps };
    }
    why?.push(`namespace ${pod.ns} annotation ${A}=${nsAnn.policy}: no such EgressGatewayPolicy`);
  }
  if (deps.length > 0) {
    const source: Source = podAnn.policy !== undefined ? 'pod' : 'namespace';
    const value = (source === 'pod' ? podAnn.policy : nsAnn.policy)!;
    const reason = `policy annotation names EgressGatewayPolicy "${value}", which does not exist: failing closed, egress-routed traffic is dropped`;
    why?.push(reason);
    return { kind: 'fail-closed', source, annotation: A, value, reason, deps };
  }
  if (podAnn.selector !== undefined) return selectorConfig(podAnn, 'pod', pod.ns, why);
  if (podAnn.namespaceSelector !== undefined) why?.push(`pod has ${ANNOTATION.namespaceSelector} but no ${ANNOTATION.selector}: ignored`);
  if (nsAnn.selector !== undefined) return selectorConfig(nsAnn, 'namespace', pod.ns, why);
  if (nsAnn.namespaceSelector !== undefined) why?.push(`namespace has ${ANNOTATION.namespaceSelector} but no ${ANNOTATION.selector}: ignored`);
  why?.push('no egress annotation applies: ordinary routing');
  return { kind: 'none' };
}

/** Selector annotations: invalid selectors or an invalid maxNextHops fail closed. */
function selectorConfig(a: EgressAnnotations, source: Source, ns: string, why?: string[]): Resolved {
  const where = source === 'pod' ? 'pod' : `namespace ${ns}`;
  const failed = (annotation: string, value: string, reason: string): Resolved => {
    why?.push(reason);
    return { kind: 'fail-closed', source, annotation, value, reason, deps: EMPTY };
  };
  for (const [name, v] of [
    [ANNOTATION.selector, a.selector],
    [ANNOTATION.namespaceSelector, a.namespaceSelector],
  ] as const) {
    if (v === undefined) continue;
    try {
      parseSelector(v);
    } catch (err) {
      return failed(name, v, `${where} annotation ${name} is not a valid selector (${errText(err)}): failing closed`);
    }
  }
  let k = 0;
  if (a.maxNextHops !== undefined) {
    // the rule validation applies (src/api/parse.ts): what `egw apply` rejects, calc fails closed on
    const n = parseMaxNextHops(a.maxNextHops);
    if (n === undefined) {
      return failed(ANNOTATION.maxNextHops, a.maxNextHops, `${where} annotation ${ANNOTATION.maxNextHops}="${a.maxNextHops}" is not a decimal of 1 to 9 digits: failing closed`);
    }
    k = n;
  }
  why?.push(
    `${where} annotation ${ANNOTATION.selector}="${a.selector}"` +
      (a.namespaceSelector !== undefined ? `, ${ANNOTATION.namespaceSelector}="${a.namespaceSelector}"` : ` (no namespaceSelector: gateways in namespace ${ns} only)`) +
      (k > 0 ? `, maxNextHops ${k}` : ''),
  );
  return { kind: 'selector', source, annotation: ANNOTATION.selector, selector: a.selector!, namespaceSelector: a.namespaceSelector, maxNextHops: k };
}
