// The egress calculation: from resources and gateway health to each node's desired egress state. This file is the
// wiring; each stage is one file (docs/architecture.md, "calc: the calculation graph"):
//
//   resources ─► records ─┬─► resolve ─► configs (one per typed key) ──┬─► gatewayClients
//                         └─► candidates (gateway pods per selector) ──┘
//   configs × node ─► plans (eligible gateways, hops, route segments) ─► tables (shared, stable IDs)
//                  ─► node (NodeEgressState, cached);        internal: the CIDRs every table throws
//   explain reads them all.
//
// Pure and incremental. Inputs arrive one at a time (`upsert`, `remove`, `setGatewayHealth`); each marks only the
// clients it can affect: their configuration when a resolution input changed (annotations, a policy,
// egressIPSupport), their routes when gateways did. `nodeState(node)` recomputes just those of that node, and
// returns the cached object when nothing changed.

import { TABLE_ID_BASE, TABLE_ID_RANGE, VXLAN_DEVICE, VXLAN_OVERHEAD } from '../api/dataplane.js';
import { formatIPv4, type Cidr } from '../api/ipv4.js';
import { namespaceOf, type ObjectKey, type Resource } from '../api/meta.js';
import { poolHolding } from '../api/egresspools.js';
import { FELIX_CONFIGURATION_DEFAULT, type EgressGatewayPolicy, type FelixConfiguration, type IPPool, type Node, type Pod } from '../api/types.js';
import { CandidateIndex, type CandEntry } from './candidates.js';
import { addTo, removeFrom } from './collections.js';
import { Configs, type Config } from './configs.js';
import { explain } from './explain.js';
import { hashString } from './hash.js';
import { InternalCidrs } from './internal.js';
import { NodeCalc, type NodeOutputBase } from './node.js';
import {
  EMPTY,
  felixOf,
  gatewayRecOf,
  isClientPod,
  isGatewayPod,
  namespaceLabels,
  namespaceRecOf,
  NO_ANNOTATIONS,
  nodeRecOf,
  podKeyOf,
  podRecOf,
  policyRecOf,
  poolCidrOf,
  sameAnnotations,
  sameLabels,
  type ClientRec,
  type EgressAnnotations,
  type FelixRec,
  type GatewayRec,
  type Labels,
  type NamespaceRec,
  type NodeRec,
  type PodRec,
  type PolicyRec,
} from './records.js';
import { resolve, type Resolved } from './resolve.js';
import { routeOf } from './route.js';
import type { FlowRoute } from '../audit/types.js';
import { TableIdAllocator } from './tableids.js';
import type { Explanation, GatewayHealth, NodeEgressState } from './types.js';


export interface CalcOptions {
  /** MTU of the underlay (node) network; the VXLAN device gets this − VXLAN_OVERHEAD. Default 1500. */
  underlayMtu?: number;
  /** First routing-table ID egw may use. Default TABLE_ID_BASE (src/api/dataplane.ts). */
  tableIdBase?: number;
  /** Number of table IDs egw may use, from tableIdBase. Default TABLE_ID_RANGE. */
  tableIdRange?: number;
  /** Name of the client node's VXLAN device, used in explain's kernel texts. Default VXLAN_DEVICE. */
  vxlanDevice?: string;
}

export class EgressCalculator {
  readonly underlayMtu: number;
  readonly tableIdBase: number;
  readonly tableIdRange: number;
  readonly vxlanDevice: string;

  private felix: FelixRec = felixOf(undefined);
  private readonly pods = new Map<string, PodRec>();
  private readonly health = new Map<string, GatewayHealth>();
  private readonly namespaces = new Map<string, NamespaceRec>();
  private readonly policies = new Map<string, PolicyRec>();
  private readonly internal = new InternalCidrs();
  /** The IP pools as given (explain reads a gateway's pool: its host-IP mode). */
  private readonly pools = new Map<string, IPPool>();
  private readonly candidates = new CandidateIndex((ns) => this.nsLabels(ns));
  private readonly configs = new Configs(this.candidates, {
    support: () => this.felix.support,
    nsAnnotations: (ns) => this.nsAnnotations(ns),
    policies: this.policies,
  });
  private readonly clients = new Map<string, ClientRec>();
  private readonly clientsByNs = new Map<string, Set<ClientRec>>();
  private readonly nodes = new Map<string, NodeCalc>();
  /** What every node's output shares (dropped when FelixConfiguration or the internal CIDRs change). */
  private outBase: NodeOutputBase | null = null;
  private readonly nodeInputs = {
    configOf: (c: ClientRec): Config | null => this.configs.of(c),
    internal: (): readonly Cidr[] => this.internal.list,
    internalContaining: (p: Cidr): Cidr | undefined => this.internal.containing(p),
    gatewayAt: (ip: string): GatewayRec | undefined => this.candidates.gatewayAt(ip),
    outputBase: (): NodeOutputBase => {
      const f = this.felix;
      return (this.outBase ??= { support: f.support, vni: f.vni, port: f.port, priority: f.priority, device: this.vxlanDevice, mtu: this.underlayMtu - VXLAN_OVERHEAD, internalText: this.internal.text });
    },
    local: (node: string): string | null => this.internal.local(node),
  };

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
        return this.upsertPod(r as Pod);
      case 'Namespace':
        return this.upsertNamespace(r.metadata.name, r.metadata.labels, r.metadata.annotations);
      case 'EgressGatewayPolicy':
        this.policies.set(r.metadata.name, policyRecOf(r as EgressGatewayPolicy));
        return this.policyChanged(r.metadata.name);
      case 'FelixConfiguration':
        if (r.metadata.name === FELIX_CONFIGURATION_DEFAULT) this.setFelix(felixOf(r as FelixConfiguration));
        return;
      case 'IPPool':
        this.pools.set(r.metadata.name, r as IPPool);
        if (this.internal.setPool(r.metadata.name, poolCidrOf(r as IPPool))) this.internalChanged();
        return;
      case 'Node':
        return this.setNode(r.metadata.name, nodeRecOf(r as Node));
    }
  }

  /** Removes a resource (by key or by the object itself). Unknown keys are ignored. */
  remove(key: ObjectKey | Resource): void {
    const k: ObjectKey = 'metadata' in key ? { kind: key.kind, namespace: namespaceOf(key), name: key.metadata.name } : key;
    switch (k.kind) {
      case 'Pod':
        return this.removePod(podKeyOf(namespaceOf({ kind: k.kind, metadata: { namespace: k.namespace } }), k.name));
      case 'Namespace':
        this.upsertNamespace(k.name, undefined, undefined);
        this.namespaces.delete(k.name);
        return;
      case 'EgressGatewayPolicy':
        if (this.policies.delete(k.name)) this.policyChanged(k.name);
        return;
      case 'FelixConfiguration':
        if (k.name === FELIX_CONFIGURATION_DEFAULT) this.setFelix(felixOf(undefined));
        return;
      case 'IPPool':
        this.pools.delete(k.name);
        if (this.internal.setPool(k.name, undefined)) this.internalChanged();
        return;
      case 'Node':
        return this.setNode(k.name, undefined);
    }
  }

  /**
   * Sets a gateway pod's health (`namespace/name`), overriding what its Pod object says (phase and Ready condition;
   * draining = deletionTimestamp set). `null` drops the override. Removing the pod drops it too.
   */
  setGatewayHealth(gatewayPodKey: string, health: GatewayHealth | null): void {
    if (health === null) this.health.delete(gatewayPodKey);
    else this.health.set(gatewayPodKey, { ready: health.ready, draining: health.draining, reasons: health.reasons ? [...health.reasons] : undefined });
    const pod = this.pods.get(gatewayPodKey);
    if (pod && isGatewayPod(pod)) this.setGateway(pod.key, gatewayRecOf(pod, this.health.get(pod.key)));
  }

  /** The desired egress state of one node. Cheap when nothing affecting the node changed. */
  nodeState(nodeName: string): NodeEgressState {
    return this.nodeCalc(nodeName).state();
  }

  /**
   * The clients allowed to send through gateway pod `namespace/name` (the gateway's anti-spoofing set): the IPv4s,
   * distinct and sorted numerically, of every client pod whose effective configuration (the resolution order,
   * honouring egressIPSupport) has a rule whose gateway selector ∧ namespaceSelector matches this gateway pod (without
   * a namespaceSelector: the gateway lies in the client's namespace). A policy counts if *any* of its gateway rules
   * matches; a selector configuration is its one 0.0.0.0/0 rule. Health, drain, maxNextHops and PreferNodeLocal are
   * ignored on purpose: every client that could ever be routed here is allowed, so failover needs no gateway-side
   * change. Empty when egress is Disabled or the pod is not a (running) gateway pod; fail-closed clients, clients
   * without configuration and gateway pods are never included.
   *
   * Read off the candidate index: the entries that select this pod, the configurations using them, their clients.
   * Costs the clients whose configuration is pending (once), then O(entries + matching clients); no node is computed.
   */
  gatewayClients(gatewayPodKey: string): string[] {
    const gp = this.pods.get(gatewayPodKey);
    if (!gp || gp.gatewayOf === undefined || gp.finished) return [];
    if (this.felix.support === 'Disabled') return [];
    this.configs.flush();
    const ips = new Set<number>();
    for (const cfg of this.candidates.usersSelecting(gp)) for (const c of cfg.clients) ips.add(c.pod.ipNum);
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
    return n.candidateGateways().map((g) => ({ pod: g.key, ip: g.ip, node: g.node }));
  }

  /** Counters for tests and benchmarks. */
  stats(): { pods: number; clients: number; gateways: number; candidateEntries: number; policies: number; nodes: Record<string, { clients: number; tables: number; dirty: number }> } {
    const nodes: Record<string, { clients: number; tables: number; dirty: number }> = {};
    for (const n of this.nodes.values()) nodes[n.name] = { clients: n.clients.size, tables: n.tables.byKey.size, dirty: n.dirty.size };
    return {
      pods: this.pods.size,
      clients: this.clients.size,
      gateways: this.candidates.gateways.size,
      candidateEntries: this.candidates.entries.size,
      policies: this.policies.size,
      nodes,
    };
  }

  /**
   * The configuration that routes pod `ns/name`'s connections to `dst` (an IPv4 number), for flow records (route.ts);
   * null when the pod is not known.
   */
  routeOf(podNamespace: string, podName: string, dst: number): FlowRoute | null {
    const pod = this.pods.get(podKeyOf(podNamespace, podName));
    if (!pod) return null;
    return routeOf(resolve(pod, this.felix.support, this.nsAnnotations(pod.ns), this.policies), this.policies, dst);
  }

  /**
   * Pod `ns/name`'s effective egress configuration (its own annotations, its namespace's or a policy), by the one
   * resolution (resolve.ts), for `egw get pods -o wide`; null when the pod is not known.
   */
  egressOf(podNamespace: string, podName: string): Resolved | null {
    const pod = this.pods.get(podKeyOf(podNamespace, podName));
    return pod ? resolve(pod, this.felix.support, this.nsAnnotations(pod.ns), this.policies) : null;
  }

  /** Which gateway would pod `ns/name` use for `dst`, and why; with the kernel objects that implement it (explain.ts). */
  explain(podNamespace: string, podName: string, dstIp: string): Explanation {
    return explain(
      {
        vxlanDevice: this.vxlanDevice,
        support: this.felix.support,
        internal: this.internal.list,
        pod: (key) => this.pods.get(key),
        client: (key) => this.clients.get(key),
        node: (name) => ({ state: this.nodeState(name), calc: this.nodeCalc(name) }),
        resolve: (pod, why) => resolve(pod, this.felix.support, this.nsAnnotations(pod.ns), this.policies, why),
        poolHolding: (ip) => poolHolding(ip, this.pools.values()),
        nodeIP: (node) => this.internal.local(node),
      },
      podNamespace,
      podName,
      dstIp,
    );
  }

  // ---- pods ----------------------------------------------------------------------------------------------------

  private upsertPod(p: Pod): void {
    const rec = podRecOf(p);
    this.pods.set(rec.key, rec);
    // gateway side
    if (isGatewayPod(rec)) this.setGateway(rec.key, gatewayRecOf(rec, this.health.get(rec.key)));
    else if (this.candidates.gateways.has(rec.key)) this.setGateway(rec.key, undefined);
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
    if (this.candidates.gateways.has(key)) this.setGateway(key, undefined);
    const c = this.clients.get(key);
    if (c) this.removeClient(c);
  }

  private addClient(pod: PodRec): void {
    const c: ClientRec = { pod, key: pod.key, hash: hashString(pod.key), node: pod.node, policyDeps: EMPTY, config: null, entries: EMPTY, table: null, kept: EMPTY, rule: null };
    this.clients.set(c.key, c);
    addTo(this.clientsByNs, pod.ns, c);
    this.configs.markDirty(c);
    this.nodeCalc(c.node).add(c);
  }

  private removeClient(c: ClientRec): void {
    this.clients.delete(c.key);
    removeFrom(this.clientsByNs, c.pod.ns, c);
    this.configs.remove(c);
    this.nodeCalc(c.node).remove(c);
  }

  /** A resolution input of the client changed: its configuration and its routes are recomputed. */
  private markDirty(c: ClientRec): void {
    this.configs.markDirty(c);
    this.nodeCalc(c.node).dirty.add(c);
  }

  // ---- gateways and candidate entries --------------------------------------------------------------------------

  private setGateway(key: string, neu: GatewayRec | undefined): void {
    const r = this.candidates.setGateway(key, neu);
    if (!r) return;
    this.entriesChanged(r.touched);
    for (const n of this.nodes.values()) n.gatewaysChanged(r.old?.ip, neu?.ip);
    this.invalidatePlans();
  }

  /** Entries whose members changed: the routes of their clients are recomputed (their configurations stand). */
  private entriesChanged(touched: readonly CandEntry[]): void {
    for (const e of touched) for (const cfg of e.users) for (const c of cfg.clients) this.nodeCalc(c.node).dirty.add(c);
  }

  /** Drops cached plans (they hold gateway lists), then configurations and entries no client uses any more. */
  private invalidatePlans(): void {
    for (const n of this.nodes.values()) n.invalidatePlans();
    this.configs.gc();
    this.candidates.gc();
  }

  // ---- namespaces, policies, felix, pools, nodes -------------------------------------------------------------------

  private nsLabels(ns: string): Labels {
    return this.namespaces.get(ns)?.labels ?? namespaceLabels(ns);
  }

  private nsAnnotations(ns: string): EgressAnnotations {
    return this.namespaces.get(ns)?.ann ?? NO_ANNOTATIONS;
  }

  private upsertNamespace(name: string, labels: Labels | undefined, annotations: Record<string, string> | undefined): void {
    const old = this.namespaces.get(name);
    const oldLabels = old?.labels ?? namespaceLabels(name);
    const rec = namespaceRecOf(name, labels, annotations);
    this.namespaces.set(name, rec);
    if (!sameLabels(oldLabels, rec.labels)) {
      const touched = this.candidates.namespaceLabelsChanged(name, oldLabels, rec.labels);
      if (touched.length > 0) {
        this.entriesChanged(touched);
        for (const n of this.nodes.values()) n.gatewaysChanged();
        this.invalidatePlans();
      }
    }
    if (!sameAnnotations(old?.ann ?? NO_ANNOTATIONS, rec.ann)) {
      for (const c of this.clientsByNs.get(name) ?? []) this.markDirty(c);
    }
  }

  private policyChanged(name: string): void {
    for (const c of this.configs.clientsOfPolicy(name)) this.markDirty(c);
    this.configs.evictPolicy(name);
    this.invalidatePlans();
  }

  private setFelix(f: FelixRec): void {
    const o = this.felix;
    this.felix = f;
    this.outBase = null;
    if (o.support !== f.support) for (const c of this.clients.values()) this.markDirty(c);
    if (o.vni !== f.vni || o.port !== f.port || o.priority !== f.priority || o.support !== f.support) for (const n of this.nodes.values()) n.outDirty = true;
  }

  private setNode(name: string, rec: NodeRec | undefined): void {
    const changed = this.internal.setNode(name, rec);
    if (!changed) return;
    const nc = this.nodes.get(name);
    if (nc && changed.local) nc.outDirty = true;
    if (changed.internal) this.internalChanged();
  }

  /**
   * Every table carries the internal throws and rules inside internal CIDRs vanish: rebuild each node's tables.
   * (IDs do not change: they depend only on the policy-derived routes.)
   */
  private internalChanged(): void {
    this.outBase = null;
    this.invalidatePlans();
    for (const n of this.nodes.values()) n.reset();
  }

  private nodeCalc(name: string): NodeCalc {
    let n = this.nodes.get(name);
    if (!n) this.nodes.set(name, (n = new NodeCalc(name, this.tableIdBase, this.tableIdRange, this.nodeInputs)));
    return n;
  }
}

