// calc's records: what the calculation keeps of each resource, parsed once when the resource arrives. Pure functions
// and plain data; every later stage reads these records, never the resource objects (docs/architecture.md, "calc: the
// calculation graph").

import { namespaceOf } from '../api/meta.js';
import { comparePrefix, formatCidr, formatIPv4, gatewayMac, parseIPv4, parsePrefix, type Cidr } from '../api/ipv4.js';
import { isPodFinished, isPodReady, podIPv4, readyCondition } from '../api/pod.js';
import {
  ANNOTATION,
  FELIX_DEFAULTS,
  NAMESPACE_NAME_LABEL,
  type EgressGatewayPolicy,
  type EgressIPSupport,
  type FelixConfiguration,
  type GatewayPreference,
  type IPPool,
  type Node,
  type Pod,
} from '../api/types.js';
import type { CandEntry } from './candidates.js';
import type { Config } from './configs.js';
import { hashString } from './hash.js';
import type { TableRec } from './tables.js';
import type { EgressGatewayEntry, EgressRule, GatewayHealth } from './types.js';

/** A Pod with this annotation (value: its EgressGateway's name) and an IP is an egress gateway pod. */

export type Labels = Record<string, string>;
export const EMPTY: readonly never[] = Object.freeze([]);
/** 0.0.0.0/0: the destination of a rule that names none, and of a selector annotation's implicit rule. */
export const ALL_DESTINATIONS: Cidr = Object.freeze({ addr: 0, prefix: 0 });

export interface EgressAnnotations {
  readonly selector?: string;
  readonly namespaceSelector?: string;
  readonly maxNextHops?: string;
  readonly policy?: string;
}
export const NO_ANNOTATIONS: EgressAnnotations = Object.freeze({});

export interface PodRec {
  readonly key: string;
  readonly ns: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string | null;
  readonly ipNum: number;
  readonly labels: Labels;
  readonly ann: EgressAnnotations;
  /** Value of ANNOTATION.gatewayOf, if present. */
  readonly gatewayOf: string | undefined;
  readonly finished: boolean;
  readonly deleting: boolean;
  /** isPodReady (src/api/pod.ts): phase Running and Ready=True. */
  readonly ready: boolean;
  /** Why the Pod object says not ready (for explain); null when ready. */
  readonly notReady: string | null;
}

export interface GatewayRec {
  readonly key: string;
  readonly hash: number;
  readonly ns: string;
  readonly node: string;
  readonly ip: string;
  readonly ipNum: number;
  readonly labels: Labels;
  readonly ready: boolean;
  readonly draining: boolean;
  readonly reasons: readonly string[];
  readonly out: EgressGatewayEntry;
}

export interface NamespaceRec {
  readonly labels: Labels;
  readonly ann: EgressAnnotations;
}

export interface RuleRec {
  /** Position in the policy's rules; -1 for a selector annotation's implicit rule. */
  readonly index: number;
  readonly dst: Cidr;
  readonly dstText: string;
  readonly description?: string;
  readonly gateway?: { readonly selector: string; readonly namespaceSelector?: string; readonly maxNextHops: number };
  readonly preference: GatewayPreference;
}

export interface PolicyRec {
  readonly name: string;
  /** Some gateway rule has no namespaceSelector: its gateways come from the client's namespace. */
  readonly scoped: boolean;
  /** By destination (address, then prefix length): the canonical route order. */
  readonly rules: readonly RuleRec[];
}

export interface FelixRec {
  readonly support: EgressIPSupport;
  readonly vni: number;
  readonly port: number;
  readonly priority: number;
}

export interface NodeRec {
  readonly addresses: readonly number[];
  /** The tunnel's local address: the first InternalIP, else the first ExternalIP. */
  readonly local: string | null;
}

/**
 * A client pod and what the calculation derived for it. The configuration fields belong to configs.ts (set when its
 * resolution is recomputed), the routing fields to node.ts and tables.ts (set when its node recomputes it).
 */
export interface ClientRec {
  pod: PodRec;
  readonly key: string;
  readonly hash: number;
  readonly node: string;
  /** Policy names its resolution looked up (existing or not): a change to one of them recomputes it. */
  policyDeps: readonly string[];
  config: Config | null;
  /** Candidate entries of the rules that route on its node (not internal ones). */
  entries: readonly CandEntry[];
  table: TableRec | null;
  /** IPs of draining gateways the client keeps for its existing connections (sorted). */
  kept: readonly string[];
  rule: EgressRule | null;
}

export function podKeyOf(ns: string, name: string): string {
  return `${ns}/${name}`;
}

function cleanAnnotation(a: Record<string, string>, name: string): string | undefined {
  const v = a[name];
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

export function egressAnnotations(a: Record<string, string> | undefined): EgressAnnotations {
  if (!a) return NO_ANNOTATIONS;
  const selector = cleanAnnotation(a, ANNOTATION.selector);
  const namespaceSelector = cleanAnnotation(a, ANNOTATION.namespaceSelector);
  const maxNextHops = cleanAnnotation(a, ANNOTATION.maxNextHops);
  const policy = cleanAnnotation(a, ANNOTATION.egressGatewayPolicy);
  if (selector === undefined && namespaceSelector === undefined && maxNextHops === undefined && policy === undefined) return NO_ANNOTATIONS;
  return Object.freeze({ selector, namespaceSelector, maxNextHops, policy });
}

export function sameAnnotations(a: EgressAnnotations, b: EgressAnnotations): boolean {
  return a.selector === b.selector && a.namespaceSelector === b.namespaceSelector && a.maxNextHops === b.maxNextHops && a.policy === b.policy;
}

export function sameLabels(a: Labels, b: Labels): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

export function podRecOf(p: Pod): PodRec {
  const md = p.metadata;
  const ns = namespaceOf(p);
  const ann = md.annotations ?? {};
  const ip = podIPv4(p);
  const phase = p.status?.phase;
  const ready = isPodReady(p);
  const cond = readyCondition(p);
  return {
    key: podKeyOf(ns, md.name),
    ns,
    name: md.name,
    node: p.spec?.nodeName ?? '',
    ip,
    ipNum: ip === null ? 0 : parseIPv4(ip)!,
    labels: md.labels ?? {},
    ann: egressAnnotations(md.annotations),
    gatewayOf: Object.prototype.hasOwnProperty.call(ann, ANNOTATION.gatewayOf) ? ann[ANNOTATION.gatewayOf] : undefined,
    finished: isPodFinished(p),
    deleting: !!md.deletionTimestamp,
    ready,
    notReady: ready ? null : phase !== 'Running' ? `pod phase is ${phase ?? 'not set'}, not Running` : cond ? `pod Ready condition is ${cond.status}` : 'pod has no Ready condition',
  };
}

export function isGatewayPod(r: PodRec): boolean {
  return r.gatewayOf !== undefined && r.ip !== null && !r.finished;
}

export function isClientPod(r: PodRec): boolean {
  return r.gatewayOf === undefined && r.ip !== null && r.node !== '' && !r.finished;
}

/**
 * A gateway pod as routing sees it. Health: the report from setGatewayHealth when there is one (an agent's
 * heartbeat verdict, docs/dataplane.md "Gateway health and failover"), else the Pod object — ready as Kubernetes
 * Endpoints count it (isPodReady), draining while it has a deletionTimestamp.
 */
export function gatewayRecOf(pod: PodRec, health: GatewayHealth | undefined): GatewayRec {
  let ready: boolean;
  let draining: boolean;
  let reasons: string[];
  if (health) {
    ready = health.ready;
    draining = health.draining ?? pod.deleting;
    reasons = health.reasons ? [...health.reasons] : [];
    if (health.draining === undefined && pod.deleting) reasons.push('pod is terminating (drain window)');
  } else {
    ready = pod.ready;
    draining = pod.deleting;
    reasons = [];
    if (pod.notReady !== null) reasons.push(pod.notReady);
    if (draining) reasons.push('pod is terminating (drain window)');
  }
  const ip = pod.ip!;
  const out: EgressGatewayEntry = Object.freeze({ ip, mac: gatewayMac(pod.ipNum), pod: pod.key, node: pod.node, ready, draining });
  return Object.freeze({
    key: pod.key,
    hash: hashString(pod.key),
    ns: pod.ns,
    node: pod.node,
    ip,
    ipNum: pod.ipNum,
    labels: pod.labels,
    ready,
    draining,
    reasons: Object.freeze(reasons),
    out,
  });
}

/** Equal for every stage that reads gateways (so an unchanged re-upsert recomputes nothing). */
export function sameGateway(a: GatewayRec, b: GatewayRec): boolean {
  return (
    a.ipNum === b.ipNum &&
    a.node === b.node &&
    a.ready === b.ready &&
    a.draining === b.draining &&
    a.reasons.join('\n') === b.reasons.join('\n') &&
    sameLabels(a.labels, b.labels)
  );
}

/** A namespace's labels as selectors see them: its own plus `projectcalico.org/name`, even if it was never seen. */
export function namespaceLabels(name: string, labels?: Labels): Labels {
  return { ...(labels ?? {}), [NAMESPACE_NAME_LABEL]: name };
}

export function namespaceRecOf(name: string, labels: Labels | undefined, annotations: Record<string, string> | undefined): NamespaceRec {
  return { labels: namespaceLabels(name, labels), ann: egressAnnotations(annotations) };
}

/** The policy's rules in canonical route order; a second rule for the same destination is dropped (validation rejects it). */
export function policyRecOf(p: EgressGatewayPolicy): PolicyRec {
  const rules: RuleRec[] = [];
  const seen = new Set<string>();
  (p.spec?.rules ?? []).forEach((r, index) => {
    const dst = r.destination?.cidr ? parsePrefix(r.destination.cidr) : ALL_DESTINATIONS;
    if (!dst) return; // the api layer rejects these; be defensive
    const dstText = formatCidr(dst);
    if (seen.has(dstText)) return;
    seen.add(dstText);
    const g = r.gateway;
    rules.push({
      index,
      dst,
      dstText,
      description: r.description,
      gateway: g
        ? {
            selector: g.selector ?? '',
            namespaceSelector: g.namespaceSelector === undefined || g.namespaceSelector.trim() === '' ? undefined : g.namespaceSelector,
            maxNextHops: g.maxNextHops !== undefined && Number.isInteger(g.maxNextHops) && g.maxNextHops > 0 ? g.maxNextHops : 0,
          }
        : undefined,
      preference: r.gatewayPreference ?? 'None',
    });
  });
  rules.sort((a, b) => comparePrefix(a.dst, b.dst));
  return { name: p.metadata.name, rules, scoped: rules.some((r) => r.gateway && r.gateway.namespaceSelector === undefined) };
}

export function felixOf(fc: FelixConfiguration | undefined): FelixRec {
  const s = fc?.spec ?? {};
  return {
    support: s.egressIPSupport ?? FELIX_DEFAULTS.egressIPSupport,
    vni: s.egressIPVXLANVNI ?? FELIX_DEFAULTS.egressIPVXLANVNI,
    port: s.egressIPVXLANPort ?? FELIX_DEFAULTS.egressIPVXLANPort,
    priority: s.egressIPRoutingRulePriority ?? FELIX_DEFAULTS.egressIPRoutingRulePriority,
  };
}

export function nodeRecOf(node: Node): NodeRec {
  const addrs: number[] = [];
  let internalIP: string | null = null;
  let externalIP: string | null = null;
  for (const a of node.status?.addresses ?? []) {
    if (a.type !== 'InternalIP' && a.type !== 'ExternalIP') continue;
    const n = parseIPv4(a.address);
    if (n === undefined) continue;
    addrs.push(n);
    if (a.type === 'InternalIP') internalIP ??= formatIPv4(n);
    else externalIP ??= formatIPv4(n);
  }
  addrs.sort((a, b) => a - b);
  return { addresses: addrs, local: internalIP ?? externalIP };
}

export function sameNode(a: NodeRec, b: NodeRec): boolean {
  return a.local === b.local && a.addresses.join() === b.addresses.join();
}

/** The pool's CIDR as a network; undefined if it has none or it does not parse. */
export function poolCidrOf(pool: IPPool): Cidr | undefined {
  return parsePrefix(pool.spec?.cidr ?? '');
}

export function byKey<T extends { key: string }>(a: T, b: T): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export function byIp(a: GatewayRec, b: GatewayRec): number {
  return a.ipNum - b.ipNum || byKey(a, b);
}
