// The CustomResourceDefinitions egw installs on a Kubernetes cluster (docs/kubernetes.md, SPEC §7), generated from
// src/api's own enums, ranges and defaults (src/api/limits.ts, FELIX_DEFAULTS) so the API server's structural
// validation and `egw apply` agree. Pure: returns plain objects. Rules that need more than one field or a parser
// (selectors, CIDRs, duplicate destinations) stay with `egw apply` and the controller, which reports them in status.
// Never a CRD in crd.projectcalico.org: Calico picks its storage mode from which of its groups exist.
import {
  DEFAULT_GATEWAY_PREFERENCE, DEFAULT_LOG_SEVERITY, EGRESS_IP_SUPPORT, EGW_REPLICAS, FELIX_DEFAULTS, FELIX_RANGES,
  GATEWAY_PREFERENCES, GRACE_SECONDS_MIN, HEALTH_TIMEOUT_DATASTORE, LOG_SEVERITIES, MAX_NEXT_HOPS_MIN, PROBE_DEFAULTS,
  PROBE_SECONDS_MIN, kindInfo,
} from '../api/index.js';


/** egw's own API group (already that of IPAMBlock, src/ipam/types.ts) and its version. */
export const EGW_API_GROUP = 'egw.dev';
export const EGW_API_VERSION = 'v1';
/** The group egw must never create a CRD in (SPEC §7). */
export const FORBIDDEN_CRD_GROUP = 'crd.projectcalico.org';
/** egw's cluster-scoped home for FelixConfiguration's egress fields on Calico OSS (which lacks them). */
export const EGRESS_CONFIGURATION_KIND = 'EgressConfiguration';

/** apiserver: calico-apiserver serves projectcalico.org/v3, so the policy lives in egw.dev; native-v3: plain CRDs. */
export type CalicoMode = 'apiserver' | 'native-v3';
export const CALICO_MODES: readonly CalicoMode[] = ['apiserver', 'native-v3'];

export type Schema = {
  type?: 'object' | 'array' | 'string' | 'integer' | 'boolean' | 'number';
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: Schema;
  enum?: readonly string[];
  minimum?: number;
  maximum?: number;
  minItems?: number;
  minLength?: number;
  default?: unknown;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-validations'?: { rule: string; message: string }[];
};

const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const int = (extra: Schema = {}): Schema => ({ type: 'integer', ...extra });
const obj = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: 'object', properties, ...extra });
const arr = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const stringMap = (): Schema => ({ type: 'object', additionalProperties: { type: 'string' } });
const opaque = (): Schema => ({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
const enumOf = (values: readonly string[], dflt?: string): Schema => ({ type: 'string', enum: [...values], ...(dflt !== undefined ? { default: dflt } : {}) });

function probe(listKey: 'ips' | 'urls', d: { intervalSeconds: number; timeoutSeconds: number }): Schema {
  return obj({
    [listKey]: arr(str({ minLength: 1 }), { minItems: 1 }),
    intervalSeconds: int({ minimum: PROBE_SECONDS_MIN, default: d.intervalSeconds }),
    timeoutSeconds: int({ minimum: PROBE_SECONDS_MIN, default: d.timeoutSeconds }),
  }, {
    required: [listKey],
    'x-kubernetes-validations': [{ rule: 'self.timeoutSeconds >= self.intervalSeconds', message: 'timeoutSeconds must be at least intervalSeconds' }],
  });
}

const conditions = (): Schema => arr(obj({
  type: str(), status: enumOf(['True', 'False', 'Unknown']), reason: str(), message: str(), lastTransitionTime: str(), observedGeneration: int(),
}, { required: ['type', 'status'] }));

export function egressGatewaySchema(): Schema {
  const spec = obj({
    replicas: int({ minimum: EGW_REPLICAS.min, default: EGW_REPLICAS.default }),
    ipPools: arr(obj({ name: str({ minLength: 1 }), cidr: str() }, {
      'x-kubernetes-validations': [{ rule: 'has(self.name) || has(self.cidr)', message: 'each ipPools entry needs a name or a cidr' }],
    }), { minItems: 1 }),
    logSeverity: enumOf(LOG_SEVERITIES, DEFAULT_LOG_SEVERITY),
    externalNetworks: arr(str()),
    egressGatewayFailureDetection: obj({
      healthTimeoutDataStoreSeconds: int({ minimum: HEALTH_TIMEOUT_DATASTORE.min, default: HEALTH_TIMEOUT_DATASTORE.default }),
      icmpProbe: probe('ips', PROBE_DEFAULTS.icmpProbe),
      httpProbe: probe('urls', PROBE_DEFAULTS.httpProbe),
    }, { 'x-kubernetes-validations': [{ rule: 'has(self.icmpProbe) || has(self.httpProbe)', message: 'configure icmpProbe, httpProbe or both' }] }),
    template: obj({
      metadata: obj({ labels: stringMap(), annotations: stringMap() }),
      spec: obj({
        nodeSelector: stringMap(),
        affinity: opaque(),
        tolerations: arr(obj({
          key: str(), operator: enumOf(['Exists', 'Equal']), value: str(),
          effect: enumOf(['NoSchedule', 'PreferNoSchedule', 'NoExecute']), tolerationSeconds: int(),
        })),
        topologySpreadConstraints: arr(opaque()),
        terminationGracePeriodSeconds: int({ minimum: GRACE_SECONDS_MIN }),
        priorityClassName: str(),
      }),
    }),
    aws: obj({ nativeIP: enumOf(['Enabled', 'Disabled']), elasticIPs: arr(str()) }),
  }, { required: ['ipPools'] });
  const status = obj({
    conditions: conditions(),
    replicas: arr(obj({
      pod: str(), node: str(), ip: str(), health: enumOf(['Ready', 'NotReady', 'Draining', 'Unknown']), reasons: arr(str()), clients: int(),
    })),
    readyReplicas: int(),
    observedGeneration: int(),
  });
  return obj({ apiVersion: str(), kind: str(), metadata: { type: 'object' }, spec, status }, { required: ['spec'] });
}

export function egressGatewayPolicySchema(): Schema {
  const rule = obj({
    description: str(),
    destination: obj({ cidr: str({ minLength: 1 }) }, { required: ['cidr'] }),
    gateway: obj({
      selector: str({ minLength: 1 }),
      namespaceSelector: str({ minLength: 1 }),
      maxNextHops: int({ minimum: MAX_NEXT_HOPS_MIN }),
    }, { required: ['selector', 'namespaceSelector'] }),
    gatewayPreference: enumOf(GATEWAY_PREFERENCES, DEFAULT_GATEWAY_PREFERENCE),
  });
  const spec = obj({ rules: arr(rule, { minItems: 1 }) }, {
    required: ['rules'],
    'x-kubernetes-validations': [{ rule: 'self.rules.exists(r, has(r.destination) || has(r.gateway))', message: 'no rule sets a destination or a gateway, so the policy would do nothing' }],
  });
  return obj({ apiVersion: str(), kind: str(), metadata: { type: 'object' }, spec, status: obj({ conditions: conditions(), observedGeneration: int() }) }, { required: ['spec'] });
}

export function egressConfigurationSchema(): Schema {
  const spec = obj({
    egressIPSupport: enumOf(EGRESS_IP_SUPPORT, FELIX_DEFAULTS.egressIPSupport),
    egressIPVXLANPort: int({ ...minmax(FELIX_RANGES.egressIPVXLANPort), default: FELIX_DEFAULTS.egressIPVXLANPort }),
    egressIPVXLANVNI: int({ ...minmax(FELIX_RANGES.egressIPVXLANVNI), default: FELIX_DEFAULTS.egressIPVXLANVNI }),
    egressIPRoutingRulePriority: int({ ...minmax(FELIX_RANGES.egressIPRoutingRulePriority), default: FELIX_DEFAULTS.egressIPRoutingRulePriority }),
    egressGatewayPollInterval: str({ default: FELIX_DEFAULTS.egressGatewayPollInterval }),
    egressGatewayPollFailureCount: int({ ...minmax(FELIX_RANGES.egressGatewayPollFailureCount), default: FELIX_DEFAULTS.egressGatewayPollFailureCount }),
  });
  return obj({ apiVersion: str(), kind: str(), metadata: { type: 'object' }, spec }, {
    'x-kubernetes-validations': [{ rule: "self.metadata.name == 'default'", message: 'the egress configuration must be named "default"' }],
  });
}

function minmax(r: { min?: number; max?: number }): Schema {
  const out: Schema = {};
  if (r.min !== undefined) out.minimum = r.min;
  if (r.max !== undefined) out.maximum = r.max;
  return out;
}

export interface CRD {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; plural: string; singular: string; listKind: string; shortNames?: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: { name: string; served: true; storage: true; schema: { openAPIV3Schema: Schema }; subresources?: { status: Record<string, never> } }[];
  };
}

function crd(group: string, version: string, kind: string, plural: string, namespaced: boolean, schema: Schema, shortNames: string[], status: boolean): CRD {
  if (group === FORBIDDEN_CRD_GROUP) throw new Error(`refusing to generate a CRD in ${FORBIDDEN_CRD_GROUP} (docs/kubernetes.md)`);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}`, labels: { 'app.kubernetes.io/part-of': 'egw' } },
    spec: {
      group,
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List`, ...(shortNames.length ? { shortNames } : {}) },
      scope: namespaced ? 'Namespaced' : 'Cluster',
      versions: [{ name: version, served: true, storage: true, schema: { openAPIV3Schema: schema }, ...(status ? { subresources: { status: {} } } : {}) }],
    },
  };
}

function groupVersion(kind: 'EgressGateway' | 'EgressGatewayPolicy'): { group: string; version: string; info: NonNullable<ReturnType<typeof kindInfo>> } {
  const info = kindInfo(kind)!;
  const [group, version] = info.apiVersion.split('/');
  return { group, version, info };
}

/** Where EgressGatewayPolicy is served in `mode` (SPEC §7). */
export function policyApiVersion(mode: CalicoMode): string {
  return mode === 'native-v3' ? kindInfo('EgressGatewayPolicy')!.apiVersion : `${EGW_API_GROUP}/${EGW_API_VERSION}`;
}

/** Every CRD egw installs for a cluster whose Calico runs in `mode`. */
export function generateCRDs(mode: CalicoMode): CRD[] {
  const egw = groupVersion('EgressGateway');
  const pol = groupVersion('EgressGatewayPolicy');
  const [polGroup, polVersion] = policyApiVersion(mode).split('/');
  return [
    crd(egw.group, egw.version, 'EgressGateway', egw.info.plural, true, egressGatewaySchema(), [], true),
    crd(polGroup, polVersion, 'EgressGatewayPolicy', pol.info.plural, false, egressGatewayPolicySchema(), [], true),
    crd(EGW_API_GROUP, EGW_API_VERSION, EGRESS_CONFIGURATION_KIND, 'egressconfigurations', false, egressConfigurationSchema(), [], false),
  ];
}
