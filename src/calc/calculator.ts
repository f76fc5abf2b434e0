// The egress calculation (SPEC §2): from resources + gateway health to each node's desired egress state.
//
// Pure and incremental. Inputs arrive one at a time (`upsert`, `remove`, `setGatewayHealth`); each marks only the
// clients it can affect as dirty, and `nodeState(node)` recomputes just those. The indexes that make this cheap:
//   - clients by node, by namespace, and by the policy names their annotations mention;
//   - candidate entries: one per distinct (selector, namespaceSelector | own namespace) pair, holding the gateway
//     pods that match it and the clients that use it; a gateway pod change re-tests the pod against each entry
//     (never every client against every selector);
//   - per node, a plan per (configuration, client namespace): the eligible gateways of every rule, already filtered
//     by health, drain and PreferNodeLocal, and the whole route set when it does not depend on the client;
//   - shared tables keyed by their canonical route text, reference-counted by clients, with stable IDs.
// Output objects are built once and frozen; `nodeState` returns the cached object when nothing changed.

import { namespaceOf, type ObjectKey, type Resource } from '../api/meta.js';
import { TABLE_ID_BASE, TABLE_ID_RANGE, VXLAN_DEVICE, VXLAN_OVERHEAD } from '../api/dataplane.js';
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
import { parseSelector, type Selector } from '../selector/index.js';
import { isPodFinished, isPodReady, podIPv4, readyCondition } from '../api/pod.js';
import { parseMaxNextHops } from '../api/parse.js';
import {
  aggregatePrefixes,
  cidrContains,
  comparePrefix,
  formatCidr,
  formatIPv4,
  gatewayMac,
  LINK_LOCAL,
  parseIPv4,
  parsePrefix,
  prefixContains,
  type Cidr,
} from '../api/ipv4.js';
import { BRIDGE, IP } from '../dataplane/commands.js';
import { hashString, rendezvousTopK } from './hash.js';
import { TableIdAllocator, type TableIdMove } from './tableids.js';
import type {
  EgressGatewayEntry,
  EgressRoute,
  EgressRule,
  EgressTable,
  ExplainedCandidate,
  ExplainedRule,
  Explanation,
  GatewayHealth,
  NodeEgressState,
} from './types.js';

/** A Pod with this annotation (value: its EgressGateway's name) and an IP is an egress gateway pod. */
export const GATEWAY_POD_ANNOTATION = ANNOTATION.gatewayOf;
/** Transitional: src/gateway/dataplane.ts still imports it from here; its home is src/api/dataplane.ts. */
export { VXLAN_OVERHEAD };

export interface CalcOptions {
  /** MTU of the underlay (node) network; the VXLAN device gets this − 50. Default 1500. */
  underlayMtu?: number;
  /** First routing-table ID egw may use. Default TABLE_ID_BASE (src/api/dataplane.ts). */
  tableIdBase?: number;
  /** Number of table IDs egw may use, from tableIdBase. Default TABLE_ID_RANGE. */
  tableIdRange?: number;
  /** Name of the client node's VXLAN device, used in explain's kernel texts. Default VXLAN_DEVICE. */
  vxlanDevice?: string;
}

type Labels = Record<string, string>;

interface EgressAnnotations {
  readonly selector?: string;
  readonly namespaceSelector?: string;
  readonly maxNextHops?: string;
  readonly policy?: string;
}
const NO_ANNOTATIONS: EgressAnnotations = Object.freeze({});

interface PodRec {
  readonly key: string;
  readonly ns: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string | null;
  readonly ipNum: number;
  readonly labels: Labels;
  readonly ann: EgressAnnotations;
  /** Value of GATEWAY_POD_ANNOTATION, if present. */
  readonly gatewayOf: string | undefined;
  readonly finished: boolean;
  readonly deleting: boolean;
  /** isPodReady (src/api/pod.ts): phase Running and Ready=True. */
  readonly ready: boolean;
  /** Why the Pod object says not ready (for explain); null when ready. */
  readonly notReady: string | null;
}

interface GatewayRec {
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

interface NamespaceRec {
  readonly labels: Labels;
  readonly ann: EgressAnnotations;
}

interface RuleRec {
  readonly index: number;
  readonly dst: Cidr;
  readonly dstText: string;
  readonly description?: string;
  readonly gateway?: { readonly selector: string; readonly namespaceSelector?: string; readonly maxNextHops: number };
  readonly preference: GatewayPreference;
}

interface PolicyRec {
  readonly name: string;
  /** Some gateway rule has no namespaceSelector: its gateways come from the client's namespace. */
  readonly scoped: boolean;
  /** By destination (address, then prefix length): the canonical route order. */
  readonly rules: readonly RuleRec[];
}

/** Gateway pods matching one (selector, namespaceSelector | own namespace) pair, and the clients using it. */
interface CandEntry {
  readonly key: string;
  readonly sel: Selector | null;
  /** null: scoped to `scopeNs`. */
  readonly nsSel: Selector | null;
  readonly scopeNs: string | null;
  readonly error: string | null;
  /** Sorted by key. */
  members: GatewayRec[];
  readonly memberKeys: Set<string>;
  readonly users: Set<ClientRec>;
}

type Source = 'pod' | 'namespace';
type Resolved =
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

/** One rule of a configuration, prepared for one node and one client namespace. */
interface RulePlan {
  readonly dst: Cidr;
  readonly dstText: string;
  /** internal: the destination lies inside a cluster-internal CIDR, whose throw route covers it. */
  readonly kind: 'gateway' | 'throw' | 'unreachable' | 'internal';
  readonly rule: RuleRec;
  readonly entry: CandEntry | null;
  readonly k: number;
  /** Ready, not draining, after PreferNodeLocal. Sorted by key. */
  readonly eligible: readonly GatewayRec[];
  /** What eligible would be if draining gateways were not draining. */
  readonly prior: readonly GatewayRec[];
  readonly hasDraining: boolean;
  /** Hops when they do not depend on the client (k = 0 or k >= eligible), sorted by IP; else null. */
  readonly fixedHops: readonly GatewayRec[] | null;
  readonly fixedSeg: string | null;
}

interface ConfigPlan {
  /** Only rules that produce a route (internal ones dropped), in canonical order. */
  readonly rules: readonly RulePlan[];
  readonly all: readonly RulePlan[];
  readonly entries: readonly CandEntry[];
  /** Route key shared by every client, when nothing depends on the client. */
  readonly fixedKey: string | null;
}

interface TableRec {
  readonly key: string;
  id: number;
  out: EgressTable;
  readonly clients: Set<ClientRec>;
  /** Gateway IPs its ECMP routes use. */
  readonly vias: readonly string[];
}

interface ClientRec {
  pod: PodRec;
  readonly key: string;
  readonly hash: number;
  readonly node: string;
  policyDeps: readonly string[];
  entries: readonly CandEntry[];
  table: TableRec | null;
  /** IPs of draining gateways the client keeps for its existing connections (sorted). */
  kept: readonly string[];
  rule: EgressRule | null;
}

interface NodeCalc {
  readonly name: string;
  readonly clients: Map<string, ClientRec>;
  readonly dirty: Set<ClientRec>;
  readonly plans: Map<string, ConfigPlan>;
  readonly tables: Map<string, TableRec>;
  alloc: TableIdAllocator;
  /** Gateway IP → number of local tables routing to it + local clients keeping it while it drains. */
  readonly ipRefs: Map<string, number>;
  /**
   * Candidate entries of the node's clients → number of clients using each. Every ready member of these stays in
   * the node's gateway list even when no route uses it now (a lower maxNextHops, a preference, a new gateway pushing
   * it out of a client's top k): connections already pinned to it (conntrack marks) must keep their tunnel path.
   */
  readonly entryRefs: Map<CandEntry, number>;
  /** Clients with a rule, sorted by (IP, key), parallel to `rules`. */
  ruleClients: ClientRec[];
  rules: EgressRule[];
  /** Sorted by id. */
  tableList: TableRec[];
  gatewaysOut: EgressGatewayEntry[];
  outDirty: boolean;
  gwDirty: boolean;
  cache: NodeEgressState | null;
}

interface NodeRec {
  readonly addresses: readonly number[];
  readonly local: string | null;
}

const EMPTY: readonly never[] = Object.freeze([]);
const ALL_PREFIX: Cidr = Object.freeze({ addr: 0, prefix: 0 });

function podKeyOf(ns: string, name: string): string {
  return `${ns}/${name}`;
}

function cleanAnnotation(a: Record<string, string>, name: string): string | undefined {
  const v = a[name];
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function egressAnnotations(a: Record<string, string> | undefined): EgressAnnotations {
  if (!a) return NO_ANNOTATIONS;
  const selector = cleanAnnotation(a, ANNOTATION.selector);
  const namespaceSelector = cleanAnnotation(a, ANNOTATION.namespaceSelector);
  const maxNextHops = cleanAnnotation(a, ANNOTATION.maxNextHops);
  const policy = cleanAnnotation(a, ANNOTATION.egressGatewayPolicy);
  if (selector === undefined && namespaceSelector === undefined && maxNextHops === undefined && policy === undefined) return NO_ANNOTATIONS;
  return Object.freeze({ selector, namespaceSelector, maxNextHops, policy });
}

function sameAnnotations(a: EgressAnnotations, b: EgressAnnotations): boolean {
  return a.selector === b.selector && a.namespaceSelector === b.namespaceSelector && a.maxNextHops === b.maxNextHops && a.policy === b.policy;
}

function sameLabels(a: Labels, b: Labels): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

function firstIPv4(pod: Pod): { ip: string; num: number } | null {
  const ip = podIPv4(pod);
  return ip === null ? null : { ip, num: parseIPv4(ip)! };
}

function podRecOf(p: Pod): PodRec {
  const md = p.metadata;
  const ns = namespaceOf(p);
  const ann = md.annotations ?? {};
  const ip = firstIPv4(p);
  const phase = p.status?.phase;
  const ready = isPodReady(p);
  const cond = readyCondition(p);
  return {
    key: podKeyOf(ns, md.name),
    ns,
    name: md.name,
    node: p.spec?.nodeName ?? '',
    ip: ip ? ip.ip : null,
    ipNum: ip ? ip.num : 0,
    labels: md.labels ?? {},
    ann: egressAnnotations(md.annotations),
    gatewayOf: Object.prototype.hasOwnProperty.call(ann, GATEWAY_POD_ANNOTATION) ? ann[GATEWAY_POD_ANNOTATION] : undefined,
    finished: isPodFinished(p),
    deleting: !!md.deletionTimestamp,
    ready,
    notReady: ready ? null : phase !== 'Running' ? `pod phase is ${phase ?? 'not set'}, not Running` : cond ? `pod Ready condition is ${cond.status}` : 'pod has no Ready condition',
  };
}

function isGatewayPod(r: PodRec): boolean {
  return r.gatewayOf !== undefined && r.ip !== null && !r.finished;
}

function isClientPod(r: PodRec): boolean {
  return r.gatewayOf === undefined && r.ip !== null && r.node !== '' && !r.finished;
}

function byKey<T extends { key: string }>(a: T, b: T): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function byIp(a: GatewayRec, b: GatewayRec): number {
  return a.ipNum - b.ipNum || byKey(a, b);
}

function byId(a: { id: number }, b: { id: number }): number {
  return a.id - b.id;
}

function clientOrder(a: ClientRec, b: ClientRec): number {
  return a.pod.ipNum - b.pod.ipNum || byKey(a, b);
}

/** Index of `x` in sorted `arr`, or -(insertion point) - 1. */
function bsearch<T>(arr: readonly T[], x: T, cmp: (a: T, b: T) => number): number {
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

/** Distinct IPs of `hops`, sorted numerically. `hops` is sorted by IP. */
function viaOf(hops: readonly GatewayRec[]): string[] {
  const out: string[] = [];
  let last = -1;
  for (const g of hops) {
    if (g.ipNum !== last) out.push(g.ip);
    last = g.ipNum;
  }
  return out;
}

function segmentOf(dstText: string, hops: readonly GatewayRec[]): string {
  if (hops.length === 0) return `${dstText} unreachable`;
  return `${dstText} via ${viaOf(hops).join(',')}`;
}

// ---- the calculator ----------------------------------------------------------------------------------------------

interface FelixRec {
  support: EgressIPSupport;
  vni: number;
  port: number;
  priority: number;
}

function felixOf(fc: FelixConfiguration | undefined): FelixRec {
  const s = fc?.spec ?? {};
  return {
    support: s.egressIPSupport ?? FELIX_DEFAULTS.egressIPSupport,
    vni: s.egressIPVXLANVNI ?? FELIX_DEFAULTS.egressIPVXLANVNI,
    port: s.egressIPVXLANPort ?? FELIX_DEFAULTS.egressIPVXLANPort,
    priority: s.egressIPRoutingRulePriority ?? FELIX_DEFAULTS.egressIPRoutingRulePriority,
  };
}

export class EgressCalculator {
  readonly underlayMtu: number;
  readonly tableIdBase: number;
  readonly tableIdRange: number;
  readonly vxlanDevice: string;

  private felix: FelixRec = felixOf(undefined);
  private readonly pods = new Map<string, PodRec>();
  private readonly gateways = new Map<string, GatewayRec>();
  private readonly gatewaysByNs = new Map<string, Set<string>>();
  /** Normally one pod per IP; a stale pod can briefly share its IP with a new one. */
  private readonly gatewaysByIp = new Map<string, Set<string>>();
  private readonly health = new Map<string, GatewayHealth>();
  private readonly namespaces = new Map<string, NamespaceRec>();
  private readonly policies = new Map<string, PolicyRec>();
  private readonly pools = new Map<string, Cidr>();
  private readonly nodeRecs = new Map<string, NodeRec>();
  /**
   * Link-local destinations are never egress traffic. Every table throws them too, which also keeps proxy ARP working:
   * a pod's ARP for its gateway 169.254.1.1 is answered only if the route lookup from the pod's address succeeds,
   * and a fail-closed table (unreachable 0.0.0.0/0) would otherwise make it fail.
   */
  private internal: Cidr[] = [LINK_LOCAL];
  private internalText: readonly string[] = Object.freeze([formatCidr(LINK_LOCAL)]);
  private readonly entries = new Map<string, CandEntry>();
  private readonly clients = new Map<string, ClientRec>();
  private readonly clientsByNs = new Map<string, Set<ClientRec>>();
  private readonly clientsByPolicy = new Map<string, Set<ClientRec>>();
  private readonly nodes = new Map<string, NodeCalc>();

  constructor(opts: CalcOptions = {}) {
    this.underlayMtu = opts.underlayMtu ?? 1500;
    if (!Number.isInteger(this.underlayMtu) || this.underlayMtu < 68 + VXLAN_OVERHEAD) throw new RangeError(`underlayMtu ${this.underlayMtu} too small`);
    this.tableIdBase = opts.tableIdBase ?? TABLE_ID_BASE;
    this.tableIdRange = opts.tableIdRange ?? TABLE_ID_RANGE;
    new TableIdAllocator(this.tableIdBase, this.tableIdRange); // validates the range
    this.vxlanDevice = opts.vxlanDevice ?? VXLAN_DEVICE;
  }

  /** Upserts every resource in order. */
  load(resources: Iterable<Resource>): this {
    for (const r of resources) this.upsert(r);
    return this;
  }

  /** Adds or replaces a resource. Kinds calc does not use (EgressGateway, …) are accepted and ignored. */
  upsert(r: Resource): void {
    switch (r.kind) {
      case 'Pod':
        this.upsertPod(r as Pod);
        return;
      case 'Namespace':
        this.upsertNamespace(r.metadata.name, r.metadata.labels, r.metadata.annotations);
        return;
      case 'EgressGatewayPolicy':
        this.upsertPolicy(r as EgressGatewayPolicy);
        return;
      case 'FelixConfiguration':
        if (r.metadata.name === 'default') this.setFelix(felixOf(r as FelixConfiguration));
        return;
      case 'IPPool': {
        const p = parsePrefix((r as IPPool).spec?.cidr ?? '');
        if (p) this.pools.set(r.metadata.name, p);
        else this.pools.delete(r.metadata.name);
        this.updateInternal();
        return;
      }
      case 'Node':
        this.upsertNode(r as Node);
        return;
      default:
        return;
    }
  }

  /** Removes a resource (by key or by the object itself). Unknown keys are ignored. */
  remove(key: ObjectKey | Resource): void {
    const k: ObjectKey = 'metadata' in key ? { kind: key.kind, namespace: namespaceOf(key), name: key.metadata.name } : key;
    switch (k.kind) {
      case 'Pod':
        this.removePod(podKeyOf(namespaceOf({ kind: k.kind, metadata: { namespace: k.namespace } }), k.name));
        return;
      case 'Namespace':
        this.upsertNamespace(k.name, undefined, undefined);
        this.namespaces.delete(k.name);
        return;
      case 'EgressGatewayPolicy':
        if (this.policies.delete(k.name)) this.policyChanged(k.name);
        return;
      case 'FelixConfiguration':
        if (k.name === 'default') this.setFelix(felixOf(undefined));
        return;
      case 'IPPool':
        if (this.pools.delete(k.name)) this.updateInternal();
        return;
      case 'Node':
        if (this.nodeRecs.delete(k.name)) {
          const n = this.nodes.get(k.name);
          if (n) n.outDirty = true;
          this.updateInternal();
        }
        return;
      default:
        return;
    }
  }

  /**
   * Sets a gateway pod's health (`namespace/name`), overriding what its Pod object says (Ready condition;
   * draining = deletionTimestamp set). `null` drops the override. Removing the pod drops it too.
   */
  setGatewayHealth(gatewayPodKey: string, health: GatewayHealth | null): void {
    if (health === null) this.health.delete(gatewayPodKey);
    else this.health.set(gatewayPodKey, { ready: health.ready, draining: health.draining, reasons: health.reasons ? [...health.reasons] : undefined });
    const pod = this.pods.get(gatewayPodKey);
    if (pod && isGatewayPod(pod)) this.setGateway(pod.key, this.gatewayRecOf(pod));
  }

  /** The desired egress state of one node. Cheap when nothing affecting the node changed. */
  nodeState(nodeName: string): NodeEgressState {
    const n = this.nodeCalc(nodeName);
    if (n.dirty.size > 0) {
      for (const c of n.dirty) this.computeClient(n, c);
      n.dirty.clear();
    }
    if (n.cache && !n.outDirty && !n.gwDirty) return n.cache;
    if (n.gwDirty) {
      const byIpMap = new Map<string, GatewayRec>();
      for (const ip of n.ipRefs.keys()) {
        const g = this.gatewayAt(ip);
        if (g) byIpMap.set(ip, g);
      }
      for (const e of n.entryRefs.keys()) {
        for (const m of e.members) if (m.ready && !byIpMap.has(m.ip) && this.gatewayAt(m.ip) === m) byIpMap.set(m.ip, m);
      }
      const gws = [...byIpMap.values()].sort(byIp);
      n.gatewaysOut = gws.map((g) => g.out);
      n.gwDirty = false;
    }
    const f = this.felix;
    const enabled = f.support !== 'Disabled';
    const local = this.nodeRecs.get(nodeName)?.local ?? null;
    n.cache = Object.freeze({
      node: nodeName,
      enabled,
      egressIPSupport: f.support,
      vxlan: Object.freeze({ device: this.vxlanDevice, vni: f.vni, port: f.port, mtu: this.underlayMtu - VXLAN_OVERHEAD, local }),
      rulePriority: f.priority,
      rules: n.rules.slice(),
      tables: n.tableList.map((t) => t.out),
      gateways: n.gatewaysOut.slice(),
      internalCidrs: this.internalText,
    });
    n.outDirty = false;
    return n.cache;
  }

  /**
   * The clients allowed to send through gateway pod `namespace/name` (the gateway's anti-spoofing set): the IPv4s,
   * distinct and sorted numerically, of every client pod whose effective configuration (SPEC §2 resolution order,
   * honouring egressIPSupport) has a rule whose gateway selector ∧ namespaceSelector matches this gateway pod (without
   * a namespaceSelector: the gateway lies in the client's namespace). A policy counts if *any* of its gateway rules
   * matches; a selector configuration is its one 0.0.0.0/0 rule. Health, drain, maxNextHops and PreferNodeLocal are
   * ignored on purpose: every client that could ever be routed here is allowed, so failover needs no gateway-side
   * change. Empty when egress is Disabled or the pod is not a (running) gateway pod; fail-closed clients, clients
   * without configuration and gateway pods are never included.
   */
  gatewayClients(gatewayPodKey: string): string[] {
    const gp = this.pods.get(gatewayPodKey);
    if (!gp || gp.gatewayOf === undefined || gp.finished) return [];
    if (this.felix.support === 'Disabled') return [];
    const gwNsLabels = this.nsLabels(gp.ns);
    const parsed = new Map<string, Selector | null>();
    const sel = (text: string): Selector | null => {
      let s = parsed.get(text);
      if (s === undefined) {
        try {
          s = parseSelector(text);
        } catch {
          s = null;
        }
        parsed.set(text, s);
      }
      return s;
    };
    const matches = (selector: string, namespaceSelector: string | undefined, clientNs: string): boolean => {
      if (namespaceSelector === undefined) {
        if (gp.ns !== clientNs) return false;
      } else if (!sel(namespaceSelector)?.matches(gwNsLabels)) return false;
      return sel(selector)?.matches(gp.labels) ?? false;
    };
    // Clients sharing a configuration share the answer.
    const decided = new Map<string, boolean>();
    const ips = new Set<number>();
    for (const c of this.clients.values()) {
      const r = this.resolve(c.pod);
      let key: string;
      let decide: () => boolean;
      if (r.kind === 'policy') {
        const p = this.policies.get(r.policy)!;
        key = p.scoped ? `P\u0000${r.policy}\u0000${c.pod.ns}` : `P\u0000${r.policy}`;
        decide = () => p.rules.some((rule) => rule.gateway !== undefined && matches(rule.gateway.selector, rule.gateway.namespaceSelector, c.pod.ns));
      } else if (r.kind === 'selector') {
        key = `S\u0000${r.selector}\u0000${r.namespaceSelector ?? `\u0001${c.pod.ns}`}`;
        decide = () => matches(r.selector, r.namespaceSelector, c.pod.ns);
      } else continue; // disabled, none, fail-closed
      let ok = decided.get(key);
      if (ok === undefined) decided.set(key, (ok = decide()));
      if (ok) ips.add(c.pod.ipNum);
    }
    return [...ips].sort((a, b) => a - b).map(formatIPv4);
  }

  /**
   * Every gateway pod that could carry traffic of at least one client on `nodeName`: the members of the candidate
   * entries (selector ∧ namespaceSelector) the node's clients use, computed *before* health, drain, PreferNodeLocal
   * and maxNextHops filtering — so a gateway that failed stays in this set and its recovery can be observed. Sorted
   * by IP, then pod key. This is what a node agent heartbeats (agent/health.ts). Cost: O(clients on the node) plus
   * the matching gateways; clients sharing a configuration share one entry.
   */
  candidateGateways(nodeName: string): { pod: string; ip: string; node: string }[] {
    const n = this.nodes.get(nodeName);
    if (!n) return [];
    if (n.dirty.size > 0) {
      for (const c of n.dirty) this.computeClient(n, c);
      n.dirty.clear();
    }
    const entries = new Set<CandEntry>();
    for (const c of n.clients.values()) for (const e of c.entries) entries.add(e);
    const gws = new Map<string, GatewayRec>();
    for (const e of entries) for (const g of e.members) gws.set(g.key, g);
    return [...gws.values()].sort(byIp).map((g) => ({ pod: g.key, ip: g.ip, node: g.node }));
  }

  /** Counters for tests and benchmarks. */
  stats(): { pods: number; clients: number; gateways: number; candidateEntries: number; policies: number; nodes: Record<string, { clients: number; tables: number; dirty: number }> } {
    const nodes: Record<string, { clients: number; tables: number; dirty: number }> = {};
    for (const n of this.nodes.values()) nodes[n.name] = { clients: n.clients.size, tables: n.tables.size, dirty: n.dirty.size };
    return {
      pods: this.pods.size,
      clients: this.clients.size,
      gateways: this.gateways.size,
      candidateEntries: this.entries.size,
      policies: this.policies.size,
      nodes,
    };
  }

  // ---- pods ----------------------------------------------------------------------------------------------------

  private upsertPod(p: Pod): void {
    const rec = podRecOf(p);
    this.pods.set(rec.key, rec);
    // gateway side
    if (isGatewayPod(rec)) this.setGateway(rec.key, this.gatewayRecOf(rec));
    else if (this.gateways.has(rec.key)) this.setGateway(rec.key, undefined);
    // client side
    const old = this.clients.get(rec.key);
    if (old) {
      if (isClientPod(rec) && old.node === rec.node && old.pod.ipNum === rec.ipNum) {
        const annChanged = !sameAnnotations(old.pod.ann, rec.ann);
        old.pod = rec;
        if (annChanged) this.markDirty(old);
        return;
      }
      this.removeClient(old);
    }
    if (isClientPod(rec)) this.addClient(rec);
  }

  private removePod(key: string): void {
    if (!this.pods.delete(key)) return;
    this.health.delete(key);
    if (this.gateways.has(key)) this.setGateway(key, undefined);
    const c = this.clients.get(key);
    if (c) this.removeClient(c);
  }

  private addClient(pod: PodRec): void {
    const c: ClientRec = {
      pod,
      key: pod.key,
      hash: hashString(pod.key),
      node: pod.node,
      policyDeps: EMPTY,
      entries: EMPTY,
      table: null,
      kept: EMPTY,
      rule: null,
    };
    this.clients.set(c.key, c);
    let s = this.clientsByNs.get(pod.ns);
    if (!s) this.clientsByNs.set(pod.ns, (s = new Set()));
    s.add(c);
    const n = this.nodeCalc(c.node);
    n.clients.set(c.key, c);
    n.dirty.add(c);
  }

  private removeClient(c: ClientRec): void {
    this.clients.delete(c.key);
    const s = this.clientsByNs.get(c.pod.ns);
    if (s) {
      s.delete(c);
      if (s.size === 0) this.clientsByNs.delete(c.pod.ns);
    }
    this.setPolicyDeps(c, EMPTY);
    this.setEntryDeps(c, EMPTY);
    const n = this.nodeCalc(c.node);
    n.clients.delete(c.key);
    n.dirty.delete(c);
    this.assign(n, c, null, EMPTY);
  }

  private markDirty(c: ClientRec): void {
    this.nodeCalc(c.node).dirty.add(c);
  }

  private markAllDirty(): void {
    for (const n of this.nodes.values()) {
      for (const c of n.clients.values()) n.dirty.add(c);
      n.outDirty = true;
    }
  }

  // ---- gateways ------------------------------------------------------------------------------------------------

  private gatewayRecOf(pod: PodRec): GatewayRec {
    const o = this.health.get(pod.key);
    let ready: boolean;
    let draining: boolean;
    let reasons: string[];
    if (o) {
      ready = o.ready;
      draining = o.draining ?? pod.deleting;
      reasons = o.reasons ? [...o.reasons] : [];
      if (o.draining === undefined && pod.deleting) reasons.push('pod is terminating (drain window)');
    } else {
      // Kubernetes Endpoints' rule (isPodReady); a health report (setGatewayHealth) overrides it
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

  private setGateway(key: string, neu: GatewayRec | undefined): void {
    const old = this.gateways.get(key);
    if (
      old &&
      neu &&
      old.ipNum === neu.ipNum &&
      old.node === neu.node &&
      old.ready === neu.ready &&
      old.draining === neu.draining &&
      old.reasons.join('\n') === neu.reasons.join('\n') &&
      sameLabels(old.labels, neu.labels)
    ) {
      return;
    }
    if (neu) this.gateways.set(key, neu);
    else this.gateways.delete(key);
    if (old) {
      const s = this.gatewaysByIp.get(old.ip)!;
      s.delete(key);
      if (s.size === 0) this.gatewaysByIp.delete(old.ip);
    }
    if (neu) {
      let s = this.gatewaysByIp.get(neu.ip);
      if (!s) this.gatewaysByIp.set(neu.ip, (s = new Set()));
      s.add(key);
    }
    const ns = (old ?? neu)!.ns;
    let set = this.gatewaysByNs.get(ns);
    if (neu) {
      if (!set) this.gatewaysByNs.set(ns, (set = new Set()));
      set.add(key);
    } else if (set) {
      set.delete(key);
      if (set.size === 0) this.gatewaysByNs.delete(ns);
    }
    for (const e of this.entries.values()) {
      const was = e.memberKeys.has(key);
      const now = neu !== undefined && this.entryMatches(e, neu);
      if (!was && !now) continue;
      if (was) e.members = e.members.filter((g) => g.key !== key);
      if (now) {
        const i = bsearch(e.members, neu, byKey);
        e.members.splice(i < 0 ? -i - 1 : i, i < 0 ? 0 : 1, neu);
        e.memberKeys.add(key);
      } else e.memberKeys.delete(key);
      for (const c of e.users) this.markDirty(c);
    }
    for (const n of this.nodes.values()) if (n.entryRefs.size > 0 || (old && n.ipRefs.has(old.ip)) || (neu && n.ipRefs.has(neu.ip))) n.gwDirty = true;
    this.invalidatePlans();
  }

  /** The gateway pod reported for an IP: usable ones first, then ready ones, then by key. */
  private gatewayAt(ip: string): GatewayRec | undefined {
    let best: GatewayRec | undefined;
    const rank = (g: GatewayRec): number => (g.ready ? (g.draining ? 1 : 0) : 2);
    for (const k of this.gatewaysByIp.get(ip) ?? []) {
      const g = this.gateways.get(k)!;
      if (!best || rank(g) < rank(best) || (rank(g) === rank(best) && g.key < best.key)) best = g;
    }
    return best;
  }

  // ---- namespaces, policies, felix, pools, nodes -------------------------------------------------------------------

  private nsLabels(ns: string): Labels {
    return this.namespaces.get(ns)?.labels ?? { [NAMESPACE_NAME_LABEL]: ns };
  }

  private upsertNamespace(name: string, labels: Labels | undefined, annotations: Record<string, string> | undefined): void {
    const old = this.namespaces.get(name);
    const oldLabels = old?.labels ?? { [NAMESPACE_NAME_LABEL]: name };
    const rec: NamespaceRec = {
      labels: { ...(labels ?? {}), [NAMESPACE_NAME_LABEL]: name },
      ann: egressAnnotations(annotations),
    };
    this.namespaces.set(name, rec);
    if (!sameLabels(oldLabels, rec.labels)) {
      const gws = this.gatewaysByNs.get(name);
      let changed = false;
      if (gws && gws.size > 0) {
        for (const e of this.entries.values()) {
          if (!e.nsSel || !e.sel) continue;
          const was = e.nsSel.matches(oldLabels);
          const now = e.nsSel.matches(rec.labels);
          if (was === now) continue;
          let touched = false;
          for (const gk of gws) {
            const g = this.gateways.get(gk)!;
            if (!e.sel.matches(g.labels)) continue;
            touched = true;
            if (now) e.memberKeys.add(gk);
            else e.memberKeys.delete(gk);
          }
          if (!touched) continue;
          e.members = [...e.memberKeys].map((k) => this.gateways.get(k)!).sort(byKey);
          for (const c of e.users) this.markDirty(c);
          changed = true;
        }
      }
      if (changed) {
        // the gateway list holds every ready member of the node's entries, used by a route or not
        for (const n of this.nodes.values()) if (n.entryRefs.size > 0) n.gwDirty = true;
        this.invalidatePlans();
      }
    }
    if (!sameAnnotations(old?.ann ?? NO_ANNOTATIONS, rec.ann)) {
      const cs = this.clientsByNs.get(name);
      if (cs) for (const c of cs) this.markDirty(c);
    }
  }

  private upsertPolicy(p: EgressGatewayPolicy): void {
    const name = p.metadata.name;
    const rules: RuleRec[] = [];
    const seen = new Set<string>();
    (p.spec?.rules ?? []).forEach((r, index) => {
      const dst = r.destination?.cidr ? parsePrefix(r.destination.cidr) : ALL_PREFIX;
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
    this.policies.set(name, { name, rules, scoped: rules.some((r) => r.gateway && r.gateway.namespaceSelector === undefined) });
    this.policyChanged(name);
  }

  private policyChanged(name: string): void {
    const cs = this.clientsByPolicy.get(name);
    if (cs) for (const c of cs) this.markDirty(c);
    this.invalidatePlans();
  }

  private setFelix(f: FelixRec): void {
    const o = this.felix;
    this.felix = f;
    if (o.support !== f.support) this.markAllDirty();
    if (o.vni !== f.vni || o.port !== f.port || o.priority !== f.priority || o.support !== f.support) for (const n of this.nodes.values()) n.outDirty = true;
  }

  private upsertNode(node: Node): void {
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
    const rec: NodeRec = { addresses: addrs, local: internalIP ?? externalIP };
    const old = this.nodeRecs.get(node.metadata.name);
    this.nodeRecs.set(node.metadata.name, rec);
    if (old && old.local === rec.local && old.addresses.join() === rec.addresses.join()) return;
    const nc = this.nodes.get(node.metadata.name);
    if (nc && (!old || old.local !== rec.local)) nc.outDirty = true;
    this.updateInternal();
  }

  private updateInternal(): void {
    const all: Cidr[] = [LINK_LOCAL, ...this.pools.values()];
    for (const n of this.nodeRecs.values()) for (const a of n.addresses) all.push({ addr: a, prefix: 32 });
    const agg = aggregatePrefixes(all);
    const text = agg.map(formatCidr);
    if (text.join() === this.internalText.join()) return;
    this.internal = agg;
    this.internalText = Object.freeze(text);
    // Every table carries the internal throws and rules inside internal CIDRs vanish: rebuild each node's tables.
    // (IDs do not change: they depend only on the policy-derived routes.)
    this.invalidatePlans();
    for (const n of this.nodes.values()) this.resetNode(n);
  }

  private internalContaining(p: Cidr): Cidr | undefined {
    for (const i of this.internal) if (prefixContains(i, p)) return i;
    return undefined;
  }

  // ---- candidate entries -----------------------------------------------------------------------------------------

  private entryMatches(e: CandEntry, g: GatewayRec): boolean {
    if (!e.sel) return false;
    if (e.scopeNs !== null) {
      if (g.ns !== e.scopeNs) return false;
    } else if (!e.nsSel!.matches(this.nsLabels(g.ns))) return false;
    return e.sel.matches(g.labels);
  }

  /** The entry for (selector, namespaceSelector) — or (selector, own namespace `scopeNs`) when no namespaceSelector. */
  private entryFor(selector: string, namespaceSelector: string | undefined, scopeNs: string): CandEntry {
    let sel: Selector | null = null;
    let nsSel: Selector | null = null;
    let error: string | null = null;
    try {
      sel = parseSelector(selector);
      if (namespaceSelector !== undefined) nsSel = parseSelector(namespaceSelector);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      sel = null;
    }
    const scope = namespaceSelector === undefined ? scopeNs : null;
    const key = error !== null ? `!${selector}\u0000${namespaceSelector ?? ''}` : `${sel!.canonical}\u0000${nsSel ? nsSel.canonical : `@${scope}`}`;
    let e = this.entries.get(key);
    if (e) return e;
    e = { key, sel, nsSel, scopeNs: scope, error, members: [], memberKeys: new Set(), users: new Set() };
    if (sel) {
      if (scope !== null) {
        for (const gk of this.gatewaysByNs.get(scope) ?? []) {
          const g = this.gateways.get(gk)!;
          if (sel.matches(g.labels)) e.members.push(g);
        }
      } else {
        for (const [ns, gks] of this.gatewaysByNs) {
          if (!nsSel!.matches(this.nsLabels(ns))) continue;
          for (const gk of gks) {
            const g = this.gateways.get(gk)!;
            if (sel.matches(g.labels)) e.members.push(g);
          }
        }
      }
      e.members.sort(byKey);
      for (const g of e.members) e.memberKeys.add(g.key);
    }
    this.entries.set(key, e);
    return e;
  }

  /** Drops cached plans (they hold gateway lists) and entries no client uses any more. */
  private invalidatePlans(): void {
    for (const n of this.nodes.values()) n.plans.clear();
    for (const [k, e] of this.entries) if (e.users.size === 0) this.entries.delete(k);
  }

  // ---- resolution (SPEC §2) --------------------------------------------------------------------------------------

  private resolve(pod: PodRec, why?: string[]): Resolved {
    const support = this.felix.support;
    if (support === 'Disabled') {
      why?.push('FelixConfiguration egressIPSupport is Disabled: no egress routing at all');
      return { kind: 'disabled' };
    }
    const nsAnn = this.namespaces.get(pod.ns)?.ann ?? NO_ANNOTATIONS;
    let podAnn = pod.ann;
    if (support !== 'EnabledPerNamespaceOrPerPod') {
      if (podAnn !== NO_ANNOTATIONS) why?.push(`pod annotations ignored: egressIPSupport is ${support} (needs EnabledPerNamespaceOrPerPod)`);
      podAnn = NO_ANNOTATIONS;
    }
    const A = ANNOTATION.egressGatewayPolicy;
    const deps: string[] = [];
    if (podAnn.policy !== undefined) {
      deps.push(podAnn.policy);
      if (this.policies.has(podAnn.policy)) {
        why?.push(`pod annotation ${A}=${podAnn.policy} names an existing EgressGatewayPolicy`);
        return { kind: 'policy', source: 'pod', annotation: A, policy: podAnn.policy, deps };
      }
      why?.push(`pod annotation ${A}=${podAnn.policy}: no such EgressGatewayPolicy`);
    }
    if (nsAnn.policy !== undefined) {
      deps.push(nsAnn.policy);
      if (this.policies.has(nsAnn.policy)) {
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
    if (podAnn.selector !== undefined) return this.selectorConfig(podAnn, 'pod', pod.ns, why);
    if (podAnn.namespaceSelector !== undefined) why?.push(`pod has ${ANNOTATION.namespaceSelector} but no ${ANNOTATION.selector}: ignored`);
    if (nsAnn.selector !== undefined) return this.selectorConfig(nsAnn, 'namespace', pod.ns, why);
    if (nsAnn.namespaceSelector !== undefined) why?.push(`namespace has ${ANNOTATION.namespaceSelector} but no ${ANNOTATION.selector}: ignored`);
    why?.push('no egress annotation applies: ordinary routing');
    return { kind: 'none' };
  }

  private selectorConfig(a: EgressAnnotations, source: Source, ns: string, why?: string[]): Resolved {
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
        return failed(name, v, `${where} annotation ${name} is not a valid selector (${err instanceof Error ? err.message : String(err)}): failing closed`);
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

  // ---- plans -------------------------------------------------------------------------------------------------------

  private planFor(n: NodeCalc, r: Resolved, ns: string): ConfigPlan | null {
    let key: string;
    switch (r.kind) {
      // the client's namespace matters only where a gateway has no namespaceSelector
      case 'policy':
        key = this.policies.get(r.policy)!.scoped ? `P\u0000${r.policy}\u0000${ns}` : `P\u0000${r.policy}`;
        break;
      case 'selector':
        key = `S\u0000${r.selector}\u0000${r.namespaceSelector ?? `\u0001${ns}`}\u0000${r.maxNextHops}`;
        break;
      case 'fail-closed':
        key = 'F';
        break;
      default:
        return null;
    }
    let plan = n.plans.get(key);
    if (!plan) {
      plan = this.buildPlan(n, r, ns);
      n.plans.set(key, plan);
    }
    return plan;
  }

  private buildPlan(n: NodeCalc, r: Resolved, ns: string): ConfigPlan {
    let rules: readonly RuleRec[];
    if (r.kind === 'policy') rules = this.policies.get(r.policy)!.rules;
    else if (r.kind === 'selector') {
      rules = [
        {
          index: -1,
          dst: ALL_PREFIX,
          dstText: '0.0.0.0/0',
          gateway: { selector: r.selector, namespaceSelector: r.namespaceSelector, maxNextHops: r.maxNextHops },
          preference: 'None',
        },
      ];
    } else rules = [{ index: -1, dst: ALL_PREFIX, dstText: '0.0.0.0/0', preference: 'None' }];
    const all: RulePlan[] = [];
    const entries: CandEntry[] = [];
    let fixed = true;
    const segs: string[] = [];
    for (const rule of rules) {
      const rp = this.planRule(n, rule, ns, r.kind === 'fail-closed');
      all.push(rp);
      if (rp.entry && !entries.includes(rp.entry)) entries.push(rp.entry);
      if (rp.kind === 'internal') continue;
      if (rp.kind === 'throw') segs.push(`${rp.dstText} throw`);
      else if (rp.kind === 'unreachable') segs.push(`${rp.dstText} unreachable`);
      else if (rp.fixedSeg !== null && !rp.hasDraining) segs.push(rp.fixedSeg);
      else fixed = false;
    }
    const routed = all.filter((p) => p.kind !== 'internal');
    return { rules: routed, all, entries, fixedKey: fixed ? routeKey(segs) : null };
  }

  private planRule(n: NodeCalc, rule: RuleRec, ns: string, failClosed: boolean): RulePlan {
    const base = { dst: rule.dst, dstText: rule.dstText, rule, entry: null, k: 0, eligible: EMPTY, prior: EMPTY, hasDraining: false, fixedHops: null, fixedSeg: null };
    if (this.internalContaining(rule.dst)) return { ...base, kind: 'internal' };
    if (failClosed) return { ...base, kind: 'unreachable' };
    const g = rule.gateway;
    if (!g) return { ...base, kind: 'throw' };
    const entry = this.entryFor(g.selector, g.namespaceSelector, ns);
    const ready = entry.members.filter((m) => m.ready);
    let eligible = ready.filter((m) => !m.draining);
    let prior = ready;
    if (rule.preference === 'PreferNodeLocal') {
      if (eligible.some((m) => m.node === n.name)) eligible = eligible.filter((m) => m.node === n.name);
      if (prior.some((m) => m.node === n.name)) prior = prior.filter((m) => m.node === n.name);
    }
    const hasDraining = prior.some((m) => m.draining);
    const k = g.maxNextHops;
    let fixedHops: GatewayRec[] | null = null;
    let fixedSeg: string | null = null;
    if (k === 0 || k >= eligible.length) {
      fixedHops = [...eligible].sort(byIp);
      fixedSeg = segmentOf(rule.dstText, fixedHops);
    }
    return { ...base, kind: 'gateway', entry, k, eligible, prior, hasDraining, fixedHops, fixedSeg };
  }

  // ---- per-client computation ----------------------------------------------------------------------------------

  private setPolicyDeps(c: ClientRec, deps: readonly string[]): void {
    const old = c.policyDeps;
    if (old.length === deps.length && old.every((d, i) => d === deps[i])) return;
    for (const d of old) {
      const s = this.clientsByPolicy.get(d);
      if (s) {
        s.delete(c);
        if (s.size === 0) this.clientsByPolicy.delete(d);
      }
    }
    for (const d of deps) {
      let s = this.clientsByPolicy.get(d);
      if (!s) this.clientsByPolicy.set(d, (s = new Set()));
      s.add(c);
    }
    c.policyDeps = deps;
  }

  private setEntryDeps(c: ClientRec, entries: readonly CandEntry[]): void {
    const old = c.entries;
    if (old === entries) return;
    const n = this.nodeCalc(c.node);
    for (const e of old) {
      const v = (n.entryRefs.get(e) ?? 0) - 1;
      if (v <= 0) {
        n.entryRefs.delete(e);
        n.gwDirty = true;
      } else n.entryRefs.set(e, v);
    }
    for (const e of entries) {
      const v = (n.entryRefs.get(e) ?? 0) + 1;
      n.entryRefs.set(e, v);
      if (v === 1) n.gwDirty = true;
    }
    for (const e of old) e.users.delete(c);
    // (entries come from plans, and invalidatePlans() drops plans before it drops unused entries, so these are live)
    for (const e of entries) e.users.add(c);
    c.entries = entries;
  }

  /** The client's hops for one gateway rule (sorted by IP), and the draining gateways it keeps. */
  private hopsFor(rp: RulePlan, c: ClientRec, kept: Set<GatewayRec> | null): readonly GatewayRec[] {
    if (rp.hasDraining && kept) {
      const before = rp.k === 0 || rp.k >= rp.prior.length ? rp.prior : rendezvousTopK(rp.prior, rp.k, c.hash);
      for (const g of before) if (g.draining) kept.add(g);
    }
    if (rp.fixedHops) return rp.fixedHops;
    return rendezvousTopK(rp.eligible, rp.k, c.hash).sort(byIp);
  }

  private computeClient(n: NodeCalc, c: ClientRec): void {
    const r = this.resolve(c.pod);
    this.setPolicyDeps(c, r.kind === 'policy' || r.kind === 'fail-closed' ? r.deps : EMPTY);
    const plan = this.planFor(n, r, c.pod.ns);
    this.setEntryDeps(c, plan ? plan.entries : EMPTY);
    if (!plan) {
      this.assign(n, c, null, EMPTY);
      return;
    }
    if (plan.fixedKey !== null) {
      const t = plan.fixedKey === '' ? null : n.tables.get(plan.fixedKey) ?? this.createTable(n, plan.fixedKey, plan, null);
      this.assign(n, c, t, EMPTY);
      return;
    }
    const kept = new Set<GatewayRec>();
    const hops: (readonly GatewayRec[] | null)[] = [];
    const segs: string[] = [];
    for (const rp of plan.rules) {
      if (rp.kind === 'throw') {
        hops.push(null);
        segs.push(`${rp.dstText} throw`);
      } else if (rp.kind === 'unreachable') {
        hops.push(null);
        segs.push(`${rp.dstText} unreachable`);
      } else {
        const h = this.hopsFor(rp, c, kept);
        hops.push(h);
        segs.push(rp.fixedSeg ?? segmentOf(rp.dstText, h));
      }
    }
    const key = routeKey(segs);
    const t = key === '' ? null : n.tables.get(key) ?? this.createTable(n, key, plan, hops);
    this.assign(n, c, t, kept.size === 0 ? EMPTY : viaOf([...kept].sort(byIp)));
  }

  private createTable(n: NodeCalc, key: string, plan: ConfigPlan, hops: readonly (readonly GatewayRec[] | null)[] | null): TableRec {
    const routes: { p: Cidr; r: EgressRoute }[] = [];
    const vias = new Set<string>();
    plan.rules.forEach((rp, i) => {
      if (rp.kind === 'throw') routes.push({ p: rp.dst, r: Object.freeze({ dst: rp.dstText, type: 'throw' }) });
      else if (rp.kind === 'unreachable') routes.push({ p: rp.dst, r: Object.freeze({ dst: rp.dstText, type: 'unreachable' }) });
      else if (rp.kind === 'gateway') {
        const h = hops ? hops[i]! : rp.fixedHops!;
        if (h.length === 0) routes.push({ p: rp.dst, r: Object.freeze({ dst: rp.dstText, type: 'unreachable' }) });
        else {
          const via = viaOf(h);
          for (const ip of via) vias.add(ip);
          routes.push({ p: rp.dst, r: Object.freeze({ dst: rp.dstText, type: 'ecmp', via: Object.freeze(via) }) });
        }
      }
    });
    for (const p of this.internal) routes.push({ p, r: Object.freeze({ dst: formatCidr(p), type: 'throw' }) });
    routes.sort((a, b) => comparePrefix(a.p, b.p));
    const { id, moves } = n.alloc.allocate(key);
    const t: TableRec = {
      key,
      id,
      out: Object.freeze({ id, routes: Object.freeze(routes.map((x) => x.r)) }),
      clients: new Set(),
      vias: [...vias],
    };
    n.tables.set(key, t);
    this.applyMoves(n, moves);
    n.tableList.splice(-bsearch(n.tableList, t, byId) - 1, 0, t);
    for (const g of t.vias) this.ref(n, g, 1);
    n.outDirty = true;
    return t;
  }

  private dropTable(n: NodeCalc, t: TableRec): void {
    n.tables.delete(t.key);
    const i = bsearch(n.tableList, t, byId);
    if (i >= 0) n.tableList.splice(i, 1);
    this.applyMoves(n, n.alloc.release(t.key));
    for (const g of t.vias) this.ref(n, g, -1);
    n.outDirty = true;
  }

  /** Tables whose IDs moved (a collision run was re-laid out): re-sort them and rewrite their clients' rules. */
  private applyMoves(n: NodeCalc, moves: readonly TableIdMove[]): void {
    if (moves.length === 0) return;
    const moved: TableRec[] = [];
    for (const m of moves) {
      const t = n.tables.get(m.key);
      if (!t || t.id === m.to) continue;
      const i = bsearch(n.tableList, t, byId);
      if (i >= 0) n.tableList.splice(i, 1);
      moved.push(t);
    }
    for (const t of moved) {
      t.id = n.alloc.idOf(t.key)!;
      t.out = Object.freeze({ id: t.id, routes: t.out.routes });
      n.tableList.splice(-bsearch(n.tableList, t, byId) - 1, 0, t);
      for (const c of t.clients) this.setRule(n, c, t);
    }
    n.outDirty = true;
  }

  private ref(n: NodeCalc, ip: string, d: number): void {
    const v = (n.ipRefs.get(ip) ?? 0) + d;
    if (v <= 0) {
      n.ipRefs.delete(ip);
      n.gwDirty = true;
    } else {
      if (v === d) n.gwDirty = true;
      n.ipRefs.set(ip, v);
    }
  }

  /** Points the client at table `t` (null: no rule) and sets the draining gateways it keeps. */
  private assign(n: NodeCalc, c: ClientRec, t: TableRec | null, kept: readonly string[]): void {
    if (c.kept !== kept && !(c.kept.length === kept.length && c.kept.every((k, i) => k === kept[i]))) {
      for (const g of c.kept) this.ref(n, g, -1);
      for (const g of kept) this.ref(n, g, 1);
      c.kept = kept;
    }
    const old = c.table;
    if (old === t) return;
    c.table = t;
    if (t) t.clients.add(c);
    this.setRule(n, c, t);
    if (old) {
      old.clients.delete(c);
      if (old.clients.size === 0) this.dropTable(n, old);
    }
  }

  private setRule(n: NodeCalc, c: ClientRec, t: TableRec | null): void {
    if (c.rule && t && c.rule.table === t.id) return;
    if (!c.rule && !t) return;
    const i = c.rule ? bsearch(n.ruleClients, c, clientOrder) : -1;
    if (!t) {
      if (i >= 0) {
        n.ruleClients.splice(i, 1);
        n.rules.splice(i, 1);
      }
      c.rule = null;
    } else {
      const rule: EgressRule = Object.freeze({ src: `${c.pod.ip}/32`, table: t.id, pod: c.key });
      c.rule = rule;
      if (i >= 0) n.rules[i] = rule;
      else {
        const j = -bsearch(n.ruleClients, c, clientOrder) - 1;
        n.ruleClients.splice(j, 0, c);
        n.rules.splice(j, 0, rule);
      }
    }
    n.outDirty = true;
  }

  // ---- nodes ---------------------------------------------------------------------------------------------------

  private nodeCalc(name: string): NodeCalc {
    let n = this.nodes.get(name);
    if (!n) {
      n = {
        name,
        clients: new Map(),
        dirty: new Set(),
        plans: new Map(),
        tables: new Map(),
        alloc: new TableIdAllocator(this.tableIdBase, this.tableIdRange),
        ipRefs: new Map(),
        entryRefs: new Map(),
        ruleClients: [],
        rules: [],
        tableList: [],
        gatewaysOut: [],
        outDirty: true,
        gwDirty: true,
        cache: null,
      };
      this.nodes.set(name, n);
    }
    return n;
  }

  /** Forgets every table of the node and marks all its clients dirty (after an internal-CIDR change). */
  private resetNode(n: NodeCalc): void {
    n.tables.clear();
    n.alloc = new TableIdAllocator(this.tableIdBase, this.tableIdRange);
    n.ipRefs.clear();
    n.ruleClients = [];
    n.rules = [];
    n.tableList = [];
    for (const c of n.clients.values()) {
      c.table = null;
      c.kept = EMPTY;
      c.rule = null;
      n.dirty.add(c);
    }
    n.outDirty = true;
    n.gwDirty = true;
  }

  // ---- explain -------------------------------------------------------------------------------------------------

  /** Which gateway would pod `ns/name` use for `dst`, and why; with the kernel objects that implement it. */
  explain(podNamespace: string, podName: string, dstIp: string): Explanation {
    const dstNum = parseIPv4(dstIp.trim());
    if (dstNum === undefined) throw new Error(`explain: "${dstIp}" is not an IPv4 address`);
    const key = podKeyOf(podNamespace, podName);
    const pod = this.pods.get(key);
    const e: Explanation = {
      pod: key,
      podIP: pod?.ip ?? null,
      node: pod?.node || null,
      dst: formatIPv4(dstNum),
      egressIPSupport: this.felix.support,
      kind: 'not-client',
      configKind: 'not-client',
      candidates: [],
      hops: [],
      verdict: 'normal-routing',
      why: [],
      kernel: { rule: null, table: null, route: null, neighbours: [], fdb: [] },
    };
    if (!pod) return { ...e, why: [`pod ${key} is not known`] };
    if (pod.gatewayOf !== undefined) return { ...e, why: [`pod ${key} is an egress gateway pod (of EgressGateway ${pod.gatewayOf}); gateways are never clients`] };
    if (pod.finished) return { ...e, why: [`pod ${key} has finished`] };
    if (pod.ip === null) return { ...e, why: [`pod ${key} has no IPv4 address yet`] };
    if (pod.node === '') return { ...e, why: [`pod ${key} is not scheduled to a node`] };

    const state = this.nodeState(pod.node);
    const n = this.nodeCalc(pod.node);
    const c = this.clients.get(key)!;
    const why = e.why;
    const r = this.resolve(pod, why);
    e.kind = e.configKind = r.kind;
    if (r.kind === 'policy' || r.kind === 'fail-closed' || r.kind === 'selector') {
      e.source = r.source;
      const value = r.kind === 'policy' ? r.policy : r.kind === 'fail-closed' ? r.value : r.selector;
      e.annotation = { name: r.annotation, value };
      if (r.kind === 'policy') e.policy = r.policy;
    }
    // kernel objects for this client
    const table = c.table;
    if (table && c.rule) {
      e.kernel.rule = `ip ${IP.ruleAdd(c.rule.src, c.rule.table, state.rulePriority)}`;
      e.kernel.table = table.id;
      let best: EgressRoute | null = null;
      let bestLen = -1;
      for (const rt of table.out.routes) {
        const p = parsePrefix(rt.dst)!;
        if (p.prefix > bestLen && cidrContains(p, dstNum)) {
          best = rt;
          bestLen = p.prefix;
        }
      }
      e.kernel.route = best ? `ip ${IP.routeReplace(this.vxlanDevice, table.id, best)}` : null;
    }

    const internal = this.internal.find((p) => cidrContains(p, dstNum));
    const plan = this.planFor(n, r, pod.ns);
    if (!plan) return this.finishExplain(e, state);
    // longest-prefix rule covering dst
    let rp: RulePlan | undefined;
    for (const x of plan.all) if (cidrContains(x.dst, dstNum) && (!rp || x.dst.prefix > rp.dst.prefix)) rp = x;
    if (rp) e.rule = explainedRule(rp.rule);
    if (internal) {
      e.kind = 'internal';
      e.internalCidr = formatCidr(internal);
      why.push(`${e.dst} is inside cluster-internal ${e.internalCidr} (IP pool or node network): never routed via a gateway (throw)`);
      return this.finishExplain(e, state);
    }
    if (!rp) {
      why.push(`no rule of policy ${r.kind === 'policy' ? r.policy : ''} covers ${e.dst}: ordinary routing`);
      return this.finishExplain(e, state);
    }
    const ruleName = rp.rule.index >= 0 ? `rule ${rp.rule.index} (${rp.dstText}${rp.rule.description ? `, "${rp.rule.description}"` : ''})` : `the implicit rule for ${rp.dstText}`;
    if (rp.kind === 'unreachable') {
      e.verdict = 'dropped';
      why.push(`${ruleName}: unreachable (fail closed)`);
      return this.finishExplain(e, state);
    }
    if (rp.kind === 'throw') {
      why.push(`${ruleName} has no gateway: throw, ordinary routing`);
      return this.finishExplain(e, state);
    }
    // gateway rule: candidates
    const kept = new Set<GatewayRec>();
    const hops = this.hopsFor(rp, c, kept);
    const chosen = new Set(hops.map((g) => g.key));
    const ranks = new Map<string, number>();
    if (rp.k > 0 && rp.k < rp.eligible.length) rendezvousTopK(rp.eligible, 0, c.hash).forEach((g, i) => ranks.set(g.key, i + 1));
    const eligible = new Set(rp.eligible.map((g) => g.key));
    const preferLocal = rp.rule.preference === 'PreferNodeLocal';
    const anyLocal = rp.eligible.some((g) => g.node === n.name);
    for (const g of [...rp.entry!.members].sort(byIp)) {
      const reasons = [...g.reasons];
      if (!g.ready) reasons.unshift('not ready');
      else if (g.draining) reasons.unshift(kept.has(g) ? 'draining: no new connections, kept for existing ones' : 'draining: no new connections');
      else if (!eligible.has(g.key) && preferLocal && anyLocal) reasons.unshift('PreferNodeLocal: a gateway on the client node is available');
      else if (!chosen.has(g.key)) reasons.unshift(`not among the ${rp.k} highest rendezvous scores for this client`);
      const cand: ExplainedCandidate = {
        pod: g.key,
        ip: g.ip,
        node: g.node,
        ready: g.ready,
        draining: g.draining,
        local: g.node === n.name,
        eligible: eligible.has(g.key),
        chosen: chosen.has(g.key),
        keptForExisting: kept.has(g),
        reasons,
      };
      const rank = ranks.get(g.key);
      if (rank !== undefined) cand.rank = rank;
      e.candidates.push(cand);
    }
    e.hops = hops.length ? viaOf(hops) : [];
    const gw = rp.rule.gateway!;
    why.push(
      `${ruleName}: gateway pods matching selector "${gw.selector}"` +
        (gw.namespaceSelector ? ` in namespaces matching "${gw.namespaceSelector}"` : ` in namespace ${pod.ns}`) +
        `: ${rp.entry!.members.length} found, ${rp.eligible.length} eligible` +
        (preferLocal ? (anyLocal ? ' (PreferNodeLocal: local ones only)' : ' (PreferNodeLocal: none local, using all)') : '') +
        (rp.k > 0 ? `; maxNextHops ${rp.k}` : ''),
    );
    if (rp.entry!.error) why.push(`invalid selector: ${rp.entry!.error}`);
    if (hops.length === 0) {
      e.verdict = 'dropped';
      why.push('no eligible gateway: unreachable (dropped with an ICMP error, never sent with the wrong source IP)');
    } else {
      e.verdict = 'via-gateway';
      why.push(`next hops: ${e.hops.join(', ')}`);
    }
    return this.finishExplain(e, state);
  }

  private finishExplain(e: Explanation, state: NodeEgressState): Explanation {
    for (const ip of e.hops) {
      const g = state.gateways.find((x) => x.ip === ip);
      if (!g) continue;
      e.kernel.neighbours.push(`ip ${IP.neighReplace(this.vxlanDevice, g.ip, g.mac)}`);
      e.kernel.fdb.push(`bridge ${BRIDGE.fdbAppend(this.vxlanDevice, g.mac, g.ip)}`);
    }
    return e;
  }
}

function routeKey(segs: readonly string[]): string {
  // A table is needed only if some route does more than `throw` (a table of throws = no rule at all).
  let needed = false;
  for (const s of segs) {
    if (!s.endsWith(' throw')) {
      needed = true;
      break;
    }
  }
  return needed ? segs.join(';') : '';
}

function explainedRule(r: RuleRec): ExplainedRule {
  const out: ExplainedRule = { destination: r.dstText, gatewayPreference: r.preference };
  if (r.index >= 0) out.index = r.index;
  if (r.description !== undefined) out.description = r.description;
  if (r.gateway) {
    out.gateway = { selector: r.gateway.selector, maxNextHops: r.gateway.maxNextHops };
    if (r.gateway.namespaceSelector !== undefined) out.gateway.namespaceSelector = r.gateway.namespaceSelector;
  }
  return out;
}
