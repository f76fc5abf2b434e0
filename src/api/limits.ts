// The enums, ranges and defaults of egw's resources (SPEC §1, docs/architecture.md): one home, read both by the
// validator (validate.ts) and by the CRD generator (src/kube/crds.ts), so a kubectl-applied object and an
// `egw apply`-ed one are held to the same numbers.

export const LOG_SEVERITIES = ['Fatal', 'Error', 'Warn', 'Info', 'Debug', 'Trace'] as const;
export const DEFAULT_LOG_SEVERITY = 'Info';
export const GATEWAY_PREFERENCES = ['None', 'PreferNodeLocal'] as const;
export const DEFAULT_GATEWAY_PREFERENCE = 'None';
export const EGRESS_IP_SUPPORT = ['Disabled', 'EnabledPerNamespace', 'EnabledPerNamespaceOrPerPod'] as const;
export const ENCAP_MODES = ['Never', 'Always', 'CrossSubnet'] as const;
export const ALLOWED_USES = ['Workload', 'Tunnel', 'LoadBalancer'] as const;

/** EgressGateway spec.replicas: ≥ 0, default 1. */
export const EGW_REPLICAS = { min: 0, default: 1 } as const;
/** egressGatewayFailureDetection.healthTimeoutDataStoreSeconds: ≥ 1, default 90. */
export const HEALTH_TIMEOUT_DATASTORE = { min: 1, default: 90 } as const;
/** Probe interval and timeout (seconds, ≥ 1; timeout ≥ interval). */
export const PROBE_DEFAULTS = {
  icmpProbe: { intervalSeconds: 5, timeoutSeconds: 15 },
  httpProbe: { intervalSeconds: 10, timeoutSeconds: 30 },
} as const;
export const PROBE_SECONDS_MIN = 1;
/** Policy rule gateway.maxNextHops: ≥ 0 (0 = all). */
export const MAX_NEXT_HOPS_MIN = 0;
/** terminationGracePeriodSeconds of the gateway template: ≥ 0. */
export const GRACE_SECONDS_MIN = 0;

/** FelixConfiguration's egress fields: ranges (defaults live in FELIX_DEFAULTS, types.ts). */
export const FELIX_RANGES = {
  egressIPVXLANPort: { min: 1, max: 65535 },
  egressIPVXLANVNI: { min: 1, max: 16777215 },
  egressIPRoutingRulePriority: { min: 1, max: 32765 },
  egressGatewayPollFailureCount: { min: 1 },
} as const;
/** IPPool spec.blockSize per family. */
export const BLOCK_SIZE = { 4: { min: 20, max: 32, default: 26 }, 6: { min: 116, max: 128, default: 122 } } as const;
