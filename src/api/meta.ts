// The Kubernetes-style envelope every egw resource shares, and the table of kinds egw knows.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Set by the datastore: the store revision of the last write (a decimal string, as Kubernetes does). */
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
  generation?: number;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Resource<Spec = unknown, Status = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Spec;
  status?: Status;
}

export type KindName =
  | 'IPPool'
  | 'EgressGateway'
  | 'EgressGatewayPolicy'
  | 'FelixConfiguration'
  | 'Node'
  | 'Namespace'
  | 'Pod'
  | 'Deployment'
  | 'ReplicaSet'
  | 'IPAMBlock'
  | 'Lease';

export interface KindInfo {
  kind: KindName;
  apiVersion: string;
  namespaced: boolean;
  plural: string;
  /** Lower-case names kubectl users type: singular, plural and short forms. */
  aliases: string[];
  /** Written only by egw itself (IPAM state): readable with get, never applied from a manifest. */
  managed?: boolean;
  /**
   * metadata.generation counts changes of the spec (as the Kubernetes API server keeps it for apps/v1): apply and
   * scale bump it, and the lab's kube-controller-manager stand-in reports it as status.observedGeneration.
   */
  generation?: boolean;
}

export const KINDS: readonly KindInfo[] = [
  { kind: 'IPPool', apiVersion: 'projectcalico.org/v3', namespaced: false, plural: 'ippools', aliases: ['ippool', 'ippools', 'ipp', 'pool', 'pools'] },
  { kind: 'EgressGateway', apiVersion: 'operator.tigera.io/v1', namespaced: true, plural: 'egressgateways', aliases: ['egressgateway', 'egressgateways', 'egw', 'egws'] },
  { kind: 'EgressGatewayPolicy', apiVersion: 'projectcalico.org/v3', namespaced: false, plural: 'egressgatewaypolicies', aliases: ['egressgatewaypolicy', 'egressgatewaypolicies', 'egwp', 'egresspolicy', 'egresspolicies'] },
  { kind: 'FelixConfiguration', apiVersion: 'projectcalico.org/v3', namespaced: false, plural: 'felixconfigurations', aliases: ['felixconfiguration', 'felixconfigurations', 'felixconfig', 'felixconfigs', 'fc'] },
  { kind: 'Node', apiVersion: 'v1', namespaced: false, plural: 'nodes', aliases: ['node', 'nodes', 'no'] },
  { kind: 'Namespace', apiVersion: 'v1', namespaced: false, plural: 'namespaces', aliases: ['namespace', 'namespaces', 'ns'] },
  { kind: 'Pod', apiVersion: 'v1', namespaced: true, plural: 'pods', aliases: ['pod', 'pods', 'po'] },
  { kind: 'Deployment', apiVersion: 'apps/v1', namespaced: true, plural: 'deployments', aliases: ['deployment', 'deployments', 'deploy'], generation: true },
  { kind: 'ReplicaSet', apiVersion: 'apps/v1', namespaced: true, plural: 'replicasets', aliases: ['replicaset', 'replicasets', 'rs'], generation: true },
  { kind: 'IPAMBlock', apiVersion: 'egw.dev/v1', namespaced: false, plural: 'ipamblocks', aliases: ['ipamblock', 'ipamblocks'], managed: true },
  // the controllers' leader lock (src/controller/leader.ts): Kubernetes' own Lease, so the kubernetes: datastore stores it
  { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1', namespaced: true, plural: 'leases', aliases: ['lease', 'leases'], managed: true },
];

const byKind = new Map<string, KindInfo>(KINDS.map((k) => [k.kind, k]));
const byAlias = new Map<string, KindInfo>();
for (const k of KINDS) {
  byAlias.set(k.kind.toLowerCase(), k);
  for (const a of k.aliases) byAlias.set(a, k);
  // kubectl also accepts `kind.group`, e.g. ippools.projectcalico.org
  const group = k.apiVersion.includes('/') ? k.apiVersion.split('/')[0] : '';
  if (group) {
    byAlias.set(`${k.plural}.${group}`, k);
    byAlias.set(`${k.kind.toLowerCase()}.${group}`, k);
  }
}

export function kindInfo(kind: string): KindInfo | undefined {
  return byKind.get(kind);
}

/** Resolves what a user typed (`egw`, `EgressGateways`, `ippools.projectcalico.org`) to a kind. */
export function resolveKind(typed: string): KindInfo | undefined {
  return byAlias.get(typed.toLowerCase()) ?? byKind.get(typed);
}

/** The identity of an object within the store. Cluster-scoped objects have namespace ''. */
export interface ObjectKey {
  kind: string;
  namespace: string;
  name: string;
}

/** Where a namespaced object without metadata.namespace lives, as in Kubernetes. */
export const DEFAULT_NAMESPACE = 'default';

/**
 * The namespace an object is in: its own, else `default` for a namespaced kind (Kubernetes' rule), '' for a
 * cluster-scoped one. An unknown kind is treated as namespaced only if it names a namespace. The one home of this
 * rule: calc, the gateway, the controller and the CLI all use it.
 */
export function namespaceOf(r: { kind: string; metadata: { name?: string; namespace?: string } }): string {
  const ns = r.metadata.namespace;
  if (ns) return ns;
  return kindInfo(r.kind)?.namespaced ? DEFAULT_NAMESPACE : '';
}

/** `ns/name`, or a bare `name` in `default`: how kubectl users name a namespaced object on the command line. */
export function parseNamespacedName(text: string): { namespace: string; name: string } {
  const i = text.indexOf('/');
  return i < 0 ? { namespace: DEFAULT_NAMESPACE, name: text } : { namespace: text.slice(0, i), name: text.slice(i + 1) };
}

export function keyOf(r: Resource): ObjectKey {
  return { kind: r.kind, namespace: namespaceOf(r), name: r.metadata.name };
}

export function keyString(k: ObjectKey): string {
  return k.namespace ? `${k.kind}/${k.namespace}/${k.name}` : `${k.kind}/${k.name}`;
}
