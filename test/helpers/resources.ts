// The one set of resource factories of the tests: typed objects as a user, the controller or a kubelet would write
// them, with the annotation and label keys of src/api/types.ts (their values are pinned in test/api/annotations.test.ts).
//
// Pods: one given an ip (or a phase, or ready) gets a status; Running unless told, and then Ready=True unless told
// (isPodReady in src/api/pod.ts: a pod takes connections when Running and Ready=True). One given none of those has no
// status at all: no kubelet has seen it yet.
import type { ObjectMeta, Resource } from '../../src/api/meta.js';
import {
  ANNOTATION,
  LABEL,
  NAMESPACE_NAME_LABEL,
  type Condition,
  type Container,
  type EgressGateway,
  type EgressGatewayPolicy,
  type EgressGatewayRule,
  type EgressGatewaySpec,
  type FelixConfiguration,
  type FelixConfigurationSpec,
  type IPPool,
  type IPPoolSpec,
  type Labels,
  type Namespace,
  type Node,
  type NodeAddress,
  type NodeSpec,
  type Pod,
  type PodSpec,
  type PodStatus,
} from '../../src/api/types.js';

export type Annotations = Record<string, string>;

// ---- the annotations a client (pod or namespace) carries ------------------------------------------------------

export interface EgressChoice {
  selector?: string;
  namespaceSelector?: string;
  maxNextHops?: number | string;
  /** Name of an EgressGatewayPolicy. */
  policy?: string;
}

/** The egress.projectcalico.org annotations of a client pod or namespace, for those given. */
export function egressAnnotations(c: EgressChoice): Annotations {
  const a: Annotations = {};
  if (c.selector !== undefined) a[ANNOTATION.selector] = c.selector;
  if (c.namespaceSelector !== undefined) a[ANNOTATION.namespaceSelector] = c.namespaceSelector;
  if (c.maxNextHops !== undefined) a[ANNOTATION.maxNextHops] = String(c.maxNextHops);
  if (c.policy !== undefined) a[ANNOTATION.egressGatewayPolicy] = c.policy;
  return a;
}

/** A namespaceSelector that picks the namespace `name` (by the label every namespace carries). */
export function namespaceNamed(name: string): string {
  return `${NAMESPACE_NAME_LABEL} == '${name}'`;
}

/** The three gatewayMaintenance* annotations the controller puts on the clients of a draining gateway. */
export function maintenanceAnnotations(gatewayIP: string, started: string, finished: string): Annotations {
  return { [ANNOTATION.maintenanceGatewayIP]: gatewayIP, [ANNOTATION.maintenanceStarted]: started, [ANNOTATION.maintenanceFinished]: finished };
}

// ---- Pods ------------------------------------------------------------------------------------------------------

export type PodPhase = NonNullable<PodStatus['phase']>;

export interface PodOptions {
  /** spec.nodeName */
  node?: string;
  /** status.podIP and status.podIPs */
  ip?: string;
  hostIP?: string;
  labels?: Labels;
  annotations?: Annotations;
  /** Default Running (when the pod has a status). */
  phase?: PodPhase;
  /**
   * The Ready condition: true → Ready=True, false → Ready=False, 'Unknown' → Ready=Unknown (the node stopped
   * reporting), null → none. Default: true when Running, else none.
   */
  ready?: boolean | 'Unknown' | null;
  /** The whole status as given, instead of ip / hostIP / phase / ready. */
  status?: PodStatus;
  /** Terminating since this time (true: 2024-01-01T00:00:00Z), with a 30 s grace period. */
  deleting?: boolean | string;
  /** Default one container `c`. */
  containers?: Container[];
  /** More spec fields (terminationGracePeriodSeconds, nodeSelector …). */
  spec?: Partial<PodSpec>;
  /** More metadata fields (uid, creationTimestamp, ownerReferences …); they win over the ones built here. */
  metadata?: Partial<ObjectMeta>;
}

/** The status pod() gives for these options (also what a test playing the kubelet writes). */
export function podStatus(o: PodOptions): PodStatus | undefined {
  if (o.status) return o.status;
  if (o.ip === undefined && o.hostIP === undefined && o.phase === undefined && o.ready === undefined) return undefined;
  const phase = o.phase ?? 'Running';
  const ready = o.ready === undefined ? (phase === 'Running' ? true : null) : o.ready;
  const conditions: Condition[] | undefined = ready === null ? undefined : [{ type: 'Ready', status: ready === 'Unknown' ? 'Unknown' : ready ? 'True' : 'False' }];
  return {
    phase,
    ...(o.ip !== undefined ? { podIP: o.ip, podIPs: [{ ip: o.ip }] } : {}),
    ...(o.hostIP !== undefined ? { hostIP: o.hostIP } : {}),
    ...(conditions ? { conditions } : {}),
  };
}

export function pod(namespace: string, name: string, o: PodOptions = {}): Pod {
  const deletionTimestamp = o.deleting === true ? '2024-01-01T00:00:00Z' : o.deleting || undefined;
  const status = podStatus(o);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      ...(o.labels ? { labels: o.labels } : {}),
      ...(o.annotations ? { annotations: o.annotations } : {}),
      ...(deletionTimestamp ? { deletionTimestamp, deletionGracePeriodSeconds: 30 } : {}),
      ...o.metadata,
    },
    spec: { ...(o.node !== undefined ? { nodeName: o.node } : {}), containers: o.containers ?? [{ name: 'c' }], ...o.spec },
    ...(status ? { status } : {}),
  };
}

/** A client pod: the egress annotations it chooses its gateways with (before any other annotations given). */
export function clientPod(namespace: string, name: string, egress: EgressChoice, o: PodOptions = {}): Pod {
  return pod(namespace, name, { ...o, annotations: { ...egressAnnotations(egress), ...o.annotations } });
}

/**
 * A gateway pod of the EgressGateway `egw` (same namespace): its annotation, and by default the label
 * `egress-code: <egw>` that egressGateway() gives its template. Meant to be ready: give it an ip.
 */
export function gatewayPod(namespace: string, name: string, egw: string, o: PodOptions = {}): Pod {
  return pod(namespace, name, { ...o, labels: o.labels ?? { 'egress-code': egw }, annotations: { ...o.annotations, [ANNOTATION.gatewayOf]: egw } });
}

/** The container the controller gives every gateway pod. */
export const GATEWAY_CONTAINER: Container = { name: 'gateway', image: 'egw', command: ['egw', 'gateway'] };

export interface ControllerPodOptions extends PodOptions {
  /** The pools annotation (default ["egress"]). */
  pools?: string[];
  /** The uid of the EgressGateway (default uid-<egw>). */
  ownerUid?: string;
  creationTimestamp?: string;
}

/**
 * A gateway pod as the controller makes it and a store gives it back: owner reference, pools annotation, the
 * LABEL.gatewayOf label, the gateway container, a uid and a resourceVersion. No status unless given (no kubelet yet).
 */
export function controllerGatewayPod(namespace: string, name: string, egw: string, o: ControllerPodOptions = {}): Pod {
  const { pools, ownerUid, creationTimestamp, ...rest } = o;
  return gatewayPod(namespace, name, egw, {
    containers: [{ ...GATEWAY_CONTAINER }],
    ...rest,
    labels: { ...(rest.labels ?? { 'egress-code': egw }), [LABEL.gatewayOf]: egw },
    annotations: { [ANNOTATION.gatewayOf]: egw, [ANNOTATION.ipv4Pools]: JSON.stringify(pools ?? ['egress']), ...rest.annotations },
    metadata: {
      ownerReferences: [{ apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', name: egw, uid: ownerUid ?? `uid-${egw}`, controller: true }],
      ...(creationTimestamp !== undefined ? { creationTimestamp } : {}),
      resourceVersion: '7',
      uid: `uid-${name}`,
      ...rest.metadata,
    },
  });
}

// ---- Namespaces, Nodes -----------------------------------------------------------------------------------------

/** A namespace; with the projectcalico.org/name label Calico gives every namespace, unless nameLabel is false. */
export function namespace(name: string, o: { labels?: Labels; annotations?: Annotations; nameLabel?: boolean } = {}): Namespace {
  const labels = o.nameLabel === false ? o.labels : { [NAMESPACE_NAME_LABEL]: name, ...o.labels };
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, ...(labels ? { labels } : {}), ...(o.annotations ? { annotations: o.annotations } : {}) },
  };
}

/** A client namespace: the egress annotations its pods choose their gateways with. */
export function clientNamespace(name: string, egress: EgressChoice, o: { labels?: Labels; annotations?: Annotations } = {}): Namespace {
  return namespace(name, { ...o, annotations: { ...egressAnnotations(egress), ...o.annotations } });
}

export interface NodeOptions {
  /** InternalIP address(es). */
  ip?: string | string[];
  /** Added to kubernetes.io/hostname=<name>. */
  labels?: Labels;
  /** Also a Hostname address (as a kubelet reports it). */
  hostnameAddress?: boolean;
  spec?: NodeSpec;
}

export function node(name: string, o: NodeOptions = {}): Node {
  const addresses: NodeAddress[] = (o.ip === undefined ? [] : [o.ip].flat()).map((address) => ({ type: 'InternalIP', address }));
  if (o.hostnameAddress) addresses.push({ type: 'Hostname', address: name });
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...o.labels } },
    spec: { ...o.spec },
    status: addresses.length ? { addresses } : {},
  };
}

// ---- Calico and operator kinds ---------------------------------------------------------------------------------

export function ippool(name: string, cidr: string, spec: Partial<IPPoolSpec> = {}, labels?: Labels): IPPool {
  return { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name, ...(labels ? { labels } : {}) }, spec: { cidr, ...spec } };
}

/**
 * An EgressGateway: 1 replica from the pool `egress`, pods labelled `egress-code: <name>` (what gatewayPod()
 * gives by default); `spec` replaces any of those.
 */
export function egressGateway(namespace: string, name: string, spec: Partial<EgressGatewaySpec> = {}, metadata: Partial<ObjectMeta> = {}): EgressGateway {
  return {
    apiVersion: 'operator.tigera.io/v1',
    kind: 'EgressGateway',
    metadata: { name, namespace, ...metadata },
    spec: {
      replicas: 1,
      ipPools: [{ name: 'egress' }],
      logSeverity: 'Info',
      template: { metadata: { labels: { 'egress-code': name } } },
      ...spec,
    },
  };
}

export function policy(name: string, rules: EgressGatewayRule[]): EgressGatewayPolicy {
  return { apiVersion: 'projectcalico.org/v3', kind: 'EgressGatewayPolicy', metadata: { name }, spec: { rules } };
}

/** FelixConfiguration `default`, egress IPs enabled per namespace or pod unless spec says otherwise. */
export function felixConfiguration(spec: Partial<FelixConfigurationSpec> = {}): FelixConfiguration {
  return { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { egressIPSupport: 'EnabledPerNamespaceOrPerPod', ...spec } };
}

// ---- scenarios -------------------------------------------------------------------------------------------------

/** The InternalIP of node n1 in twoNodeCluster(). */
export const CLIENT_NODE_IP = '172.31.99.11';

/**
 * A small cluster: node n1 (the client's, 172.31.99.11) and n2 (the gateways'), a natOutgoing pod pool, an egress
 * pool /29 that no node uses and the EgressGateway egw/gw of it, its two ready pods gw-aaaaa (10.10.10.1) and
 * gw-bbbbb (10.10.10.2) on n2, and the client app/client (10.244.0.5) on n1, which selects them by pod annotation.
 */
export function twoNodeCluster(o: { nodeIp?: string; clientAnnotations?: Annotations } = {}): Resource[] {
  const gw = (name: string, ip: string) => gatewayPod('egw', name, 'gw', { node: 'n2', ip, labels: { app: 'gw' } });
  return [
    felixConfiguration(),
    node('n1', { ip: o.nodeIp ?? CLIENT_NODE_IP }),
    node('n2', { ip: '172.31.99.12' }),
    ippool('default-ipv4-ippool', '10.244.0.0/16', { natOutgoing: true }),
    ippool('egress', '10.10.10.0/29', { natOutgoing: false, nodeSelector: '!all()' }),
    namespace('egw'),
    namespace('app'),
    egressGateway('egw', 'gw', { replicas: 2, template: { metadata: { labels: { app: 'gw' } } } }),
    gw('gw-aaaaa', '10.10.10.1'),
    gw('gw-bbbbb', '10.10.10.2'),
    clientPod('app', 'client', { selector: "app == 'gw'", namespaceSelector: namespaceNamed('egw') }, { node: 'n1', ip: '10.244.0.5', labels: { app: 'client' }, annotations: o.clientAnnotations }),
  ];
}

/**
 * One gateway and one client, as the gateway tests see them: nodes n1 (172.31.98.11, the client's) and n2
 * (172.31.98.12), namespaces egw and app, the EgressGateway egw/red (or the one given), its pod egw/red-1 on n2
 * (ready with gatewayIp; Pending without), and app/c1 (10.244.0.5 on n1) choosing red in any namespace.
 */
export function oneGatewayCluster(o: { egressGateway?: EgressGateway; gatewayIp?: string } = {}): Resource[] {
  return [
    felixConfiguration(),
    node('n1', { ip: '172.31.98.11', hostnameAddress: true }),
    node('n2', { ip: '172.31.98.12', hostnameAddress: true }),
    namespace('egw'),
    namespace('app'),
    o.egressGateway ?? egressGateway('egw', 'red'),
    gatewayPod('egw', 'red-1', 'red', o.gatewayIp === undefined ? { node: 'n2', phase: 'Pending' } : { node: 'n2', ip: o.gatewayIp }),
    clientPod('app', 'c1', { selector: "egress-code == 'red'", namespaceSelector: 'all()' }, { node: 'n1', ip: '10.244.0.5' }),
  ];
}

// ---- names -----------------------------------------------------------------------------------------------------

/** A pseudo-random source that always yields the same sequence (for the controller's generated pod names). */
export function seeded(seed = 42): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32;
  };
}
