// Resource shapes egw speaks: Calico's (IPPool, EgressGatewayPolicy, FelixConfiguration), the Tigera operator's
// EgressGateway, and the Kubernetes core kinds egw needs outside Kubernetes (Node, Namespace, Pod).
import type { Resource } from './meta.js';

export type Labels = Record<string, string>;

// ---- projectcalico.org/v3 IPPool -------------------------------------------------------------------------------
export type EncapMode = 'Never' | 'Always' | 'CrossSubnet';
export type IPPoolAllowedUse = 'Workload' | 'Tunnel' | 'LoadBalancer';

export interface IPPoolSpec {
  cidr: string;
  blockSize?: number;
  nodeSelector?: string;
  natOutgoing?: boolean;
  disabled?: boolean;
  allowedUses?: IPPoolAllowedUse[];
  /** Accepted as Calico does; egw does not act on these. */
  ipipMode?: EncapMode;
  vxlanMode?: EncapMode;
  disableBGPExport?: boolean;
  assignmentMode?: 'Automatic' | 'Manual';
  namespaceSelector?: string;
  awsSubnetID?: string;
}
export type IPPool = Resource<IPPoolSpec> & { kind: 'IPPool'; spec: IPPoolSpec };

// ---- operator.tigera.io/v1 EgressGateway -----------------------------------------------------------------------
export type LogSeverity = 'Fatal' | 'Error' | 'Warn' | 'Info' | 'Debug' | 'Trace';

export interface EgressGatewayIPPool {
  name?: string;
  cidr?: string;
}

export interface ICMPProbe {
  ips: string[];
  intervalSeconds: number;
  timeoutSeconds: number;
}

export interface HTTPProbe {
  urls: string[];
  intervalSeconds: number;
  timeoutSeconds: number;
}

export interface EgressGatewayFailureDetection {
  healthTimeoutDataStoreSeconds: number;
  icmpProbe?: ICMPProbe;
  httpProbe?: HTTPProbe;
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

export interface EgressGatewayPodSpec {
  nodeSelector?: Labels;
  affinity?: Record<string, unknown>;
  tolerations?: Toleration[];
  topologySpreadConstraints?: Record<string, unknown>[];
  terminationGracePeriodSeconds?: number;
  priorityClassName?: string;
}

export interface EgressGatewaySpec {
  replicas: number;
  ipPools: EgressGatewayIPPool[];
  logSeverity: LogSeverity;
  externalNetworks?: string[];
  egressGatewayFailureDetection?: EgressGatewayFailureDetection;
  template: {
    metadata: { labels: Labels; annotations?: Record<string, string> };
    spec?: EgressGatewayPodSpec;
  };
  aws?: { nativeIP?: 'Enabled' | 'Disabled'; elasticIPs?: string[] };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface EgressGatewayReplicaStatus {
  pod: string;
  node?: string;
  ip?: string;
  health: 'Ready' | 'NotReady' | 'Draining' | 'Unknown';
  reasons?: string[];
  clients?: number;
}

export interface EgressGatewayStatus {
  conditions?: Condition[];
  replicas?: EgressGatewayReplicaStatus[];
  readyReplicas?: number;
  observedGeneration?: number;
}
export type EgressGateway = Resource<EgressGatewaySpec, EgressGatewayStatus> & {
  kind: 'EgressGateway';
  spec: EgressGatewaySpec;
};

// ---- projectcalico.org/v3 EgressGatewayPolicy ------------------------------------------------------------------
export type GatewayPreference = 'None' | 'PreferNodeLocal';

export interface EgressGatewayRuleGateway {
  selector: string;
  namespaceSelector?: string;
  maxNextHops?: number;
}

export interface EgressGatewayRule {
  description?: string;
  destination?: { cidr: string };
  gateway?: EgressGatewayRuleGateway;
  gatewayPreference?: GatewayPreference;
}

export interface EgressGatewayPolicySpec {
  rules: EgressGatewayRule[];
}
export type EgressGatewayPolicy = Resource<EgressGatewayPolicySpec> & {
  kind: 'EgressGatewayPolicy';
  spec: EgressGatewayPolicySpec;
};

// ---- projectcalico.org/v3 FelixConfiguration (the egress fields) -----------------------------------------------
export type EgressIPSupport = 'Disabled' | 'EnabledPerNamespace' | 'EnabledPerNamespaceOrPerPod';

export interface FelixConfigurationSpec {
  egressIPSupport?: EgressIPSupport;
  egressIPVXLANPort?: number;
  egressIPVXLANVNI?: number;
  egressIPRoutingRulePriority?: number;
  /** A Go duration string such as "10s" or "250ms", as Calico writes it. */
  egressGatewayPollInterval?: string;
  egressGatewayPollFailureCount?: number;
  /** Every other Felix field is kept as written and reported as not acted on. */
  [other: string]: unknown;
}
export type FelixConfiguration = Resource<FelixConfigurationSpec> & {
  kind: 'FelixConfiguration';
  spec: FelixConfigurationSpec;
};

// ---- v1 Node / Namespace / Pod ---------------------------------------------------------------------------------
export interface NodeAddress {
  type: 'InternalIP' | 'ExternalIP' | 'Hostname' | 'InternalDNS' | 'ExternalDNS';
  address: string;
}
export interface NodeSpec {
  podCIDR?: string;
  podCIDRs?: string[];
  unschedulable?: boolean;
  taints?: { key: string; value?: string; effect: string }[];
  providerID?: string;
}
export interface NodeStatus {
  addresses?: NodeAddress[];
  [other: string]: unknown;
}
export type Node = Resource<NodeSpec, NodeStatus> & { kind: 'Node' };

export type Namespace = Resource<Record<string, unknown>, Record<string, unknown>> & { kind: 'Namespace' };

export interface ContainerPort {
  containerPort: number;
  name?: string;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  hostPort?: number;
  hostIP?: string;
}
export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  ports?: ContainerPort[];
  [other: string]: unknown;
}
export interface PodSpec {
  nodeName?: string;
  containers: Container[];
  terminationGracePeriodSeconds?: number;
  nodeSelector?: Labels;
  [other: string]: unknown;
}
export interface PodStatus {
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  podIP?: string;
  podIPs?: { ip: string }[];
  hostIP?: string;
  conditions?: Condition[];
  [other: string]: unknown;
}
export type Pod = Resource<PodSpec, PodStatus> & { kind: 'Pod'; spec: PodSpec };

// ---- apps/v1 Deployment / ReplicaSet (the fields egw acts on; docs/behaviour.md §6) --------------------------------
export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}
export interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: LabelSelectorRequirement[];
}
export interface PodTemplateSpec {
  metadata: { labels: Labels; annotations?: Record<string, string> };
  spec: PodSpec;
}
/** An absolute number of pods or a percentage of spec.replicas ("25%"), as Kubernetes' IntOrString. */
export type IntOrPercent = number | string;
export interface DeploymentStrategy {
  type: 'RollingUpdate' | 'Recreate';
  rollingUpdate?: { maxSurge: IntOrPercent; maxUnavailable: IntOrPercent };
}
export interface DeploymentSpec {
  replicas: number;
  selector: LabelSelector;
  template: PodTemplateSpec;
  strategy: DeploymentStrategy;
  minReadySeconds: number;
  revisionHistoryLimit: number;
  paused?: boolean;
  progressDeadlineSeconds?: number;
}
export interface DeploymentCondition extends Condition {
  lastUpdateTime?: string;
}
export interface DeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  unavailableReplicas?: number;
  conditions?: DeploymentCondition[];
}
export type Deployment = Resource<DeploymentSpec, DeploymentStatus> & { kind: 'Deployment'; spec: DeploymentSpec };

export interface ReplicaSetSpec {
  replicas: number;
  selector: LabelSelector;
  template: PodTemplateSpec;
  minReadySeconds: number;
}
export interface ReplicaSetStatus {
  replicas: number;
  fullyLabeledReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  observedGeneration?: number;
}
export type ReplicaSet = Resource<ReplicaSetSpec, ReplicaSetStatus> & { kind: 'ReplicaSet'; spec: ReplicaSetSpec };

/** Kubernetes' names for what Deployments and ReplicaSets write (Kubernetes documentation, "Deployments"). */
export const APPS = {
  /** Label on a Deployment's ReplicaSets and their pods: the hash of the pod template. */
  podTemplateHash: 'pod-template-hash',
  /** On a Deployment and its ReplicaSets: the rollout revision (a decimal). */
  revision: 'deployment.kubernetes.io/revision',
  desiredReplicas: 'deployment.kubernetes.io/desired-replicas',
  maxReplicas: 'deployment.kubernetes.io/max-replicas',
  defaultMaxSurge: '25%',
  defaultMaxUnavailable: '25%',
  defaultRevisionHistoryLimit: 10,
  defaultProgressDeadlineSeconds: 600,
} as const;

// ---- Annotations egw reads ----------------------------------------------------------------------------------
export const ANNOTATION = {
  selector: 'egress.projectcalico.org/selector',
  namespaceSelector: 'egress.projectcalico.org/namespaceSelector',
  maxNextHops: 'egress.projectcalico.org/maxNextHops',
  egressGatewayPolicy: 'egress.projectcalico.org/egressGatewayPolicy',
  maintenanceGatewayIP: 'egress.projectcalico.org/gatewayMaintenanceGatewayIP',
  maintenanceStarted: 'egress.projectcalico.org/gatewayMaintenanceStartedTimestamp',
  maintenanceFinished: 'egress.projectcalico.org/gatewayMaintenanceFinishedTimestamp',
  /** egw's own: on a gateway pod, the name of the EgressGateway (same namespace) it belongs to. */
  gatewayOf: 'egw.dev/egress-gateway',
  /** Calico OSS IPAM: which pools a pod's address comes from (JSON list of names or CIDRs). */
  ipv4Pools: 'cni.projectcalico.org/ipv4pools',
} as const;

// ---- Labels egw sets ---------------------------------------------------------------------------------------
export const LABEL = {
  /**
   * On a gateway pod, as well as the annotation of the same key: labels can be selected by the API server, annotations
   * cannot, so the agent's Kubernetes view of the gateway pods is this label's selector (docs/kubernetes-datastore.md).
   */
  gatewayOf: ANNOTATION.gatewayOf,
} as const;

/** Label every namespace carries (as Calico adds it), so namespaceSelectors can pick namespaces by name. */
export const NAMESPACE_NAME_LABEL = 'projectcalico.org/name';
/** Default gateway pod label when an EgressGateway's template has none. */
export const DEFAULT_GATEWAY_LABEL = 'projectcalico.org/egw';

/** The FelixConfiguration every node reads (a `node.<name>` one overrides it for that node). */
export const FELIX_CONFIGURATION_DEFAULT = 'default';
/** Calico's uses of a pool whose allowedUses is empty or absent. */
export const DEFAULT_ALLOWED_USES: readonly IPPoolAllowedUse[] = ['Workload', 'Tunnel'];

export const FELIX_DEFAULTS = {
  egressIPSupport: 'Disabled' as EgressIPSupport,
  egressIPVXLANPort: 4790,
  egressIPVXLANVNI: 4097,
  egressIPRoutingRulePriority: 100,
  // egw's defaults are much faster than Calico's 10s x 3 (docs/behaviour.md §5: failover within 1 s).
  egressGatewayPollInterval: '200ms',
  egressGatewayPollFailureCount: 3,
};
