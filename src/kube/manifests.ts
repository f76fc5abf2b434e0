// The whole install YAML for a Kubernetes cluster (docs/kubernetes.md): namespace, CRDs (crds.ts), ServiceAccounts,
// least-privilege RBAC, the agent DaemonSet and the controller Deployment. Pure: `egw manifests` prints it and
// deploy/kubernetes/egw.yaml is its checked-in copy (a test keeps the two equal).
import { stringify } from 'yaml';
import { DEFAULT_FLOW_DIR } from '../audit/paths.js';
import { LEADER_LEASE_KEY } from '../controller/leader.js';
import { NODE_SYSCTLS } from '../dataplane/types.js';
import { METRICS_PORT } from '../metrics/metrics.js';
import { generateCRDs, policyApiVersion, EGW_API_GROUP, type CalicoMode } from './crds.js';
import { kindInfo } from '../api/index.js';
import { DEFAULT_IMAGE, KUBE_DATASTORE_SPEC, SERVICE_ACCOUNTS } from './names.js';

export { DEFAULT_IMAGE, KUBE_DATASTORE_SPEC, SERVICE_ACCOUNTS };

export const DEFAULT_INSTALL_NAMESPACE = LEADER_LEASE_KEY.namespace;
const PART_OF = { 'app.kubernetes.io/part-of': 'egw' };

export interface ManifestOptions {
  image: string;
  namespace: string;
  calicoMode: CalicoMode;
}
export const DEFAULT_MANIFEST_OPTIONS: ManifestOptions = { image: DEFAULT_IMAGE, namespace: DEFAULT_INSTALL_NAMESPACE, calicoMode: 'apiserver' };

type Obj = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
const READ = ['get', 'list', 'watch'];

function group(kind: 'EgressGateway' | 'IPPool'): string {
  return kindInfo(kind)!.apiVersion.split('/')[0];
}

/** What every role reads; SPEC §7: agents watch only what they need. */
function readRules(mode: CalicoMode): Rule[] {
  const polGroup = policyApiVersion(mode).split('/')[0];
  return [
    { apiGroups: [''], resources: ['pods', 'namespaces', 'nodes'], verbs: READ },
    { apiGroups: [group('EgressGateway')], resources: ['egressgateways'], verbs: READ },
    { apiGroups: [polGroup], resources: ['egressgatewaypolicies'], verbs: READ },
    { apiGroups: [EGW_API_GROUP], resources: ['egressconfigurations'], verbs: READ },
    // Calico's own pools and Felix's mark masks: projectcalico.org/v3 where an API server or native v3 serves them,
    // crd.projectcalico.org/v1 on clusters with neither (read only: egw never creates anything there).
    { apiGroups: [group('IPPool'), 'crd.projectcalico.org'], resources: ['ippools', 'felixconfigurations'], verbs: READ },
  ];
}

export function rbacRules(mode: CalicoMode): Record<keyof typeof SERVICE_ACCOUNTS, Rule[]> {
  const polGroup = policyApiVersion(mode).split('/')[0];
  const read = readRules(mode);
  return {
    agent: read,
    gateway: [
      { apiGroups: [''], resources: ['pods'], verbs: READ },
      // The gateway reports its SNAT port pressure as a pod condition (src/gateway/podstatus.ts).
      { apiGroups: [''], resources: ['pods/status'], verbs: ['get', 'patch', 'update'] },
      { apiGroups: [group('EgressGateway')], resources: ['egressgateways'], verbs: READ },
      { apiGroups: [EGW_API_GROUP], resources: ['egressconfigurations'], verbs: READ },
    ],
    controller: [
      ...read,
      { apiGroups: [''], resources: ['pods'], verbs: ['create', 'delete', 'patch', 'update'] },
      { apiGroups: [''], resources: ['pods/status'], verbs: ['get', 'patch', 'update'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
      { apiGroups: [group('EgressGateway')], resources: ['egressgateways/status'], verbs: ['get', 'patch', 'update'] },
      { apiGroups: [polGroup], resources: ['egressgatewaypolicies/status'], verbs: ['get', 'patch', 'update'] },
    ],
  };
}

/** The controller's leader election Lease (src/controller/leader.ts): create it, then only that one by name. */
export function leaseRules(): Rule[] {
  return [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'watch', 'update', 'patch'], resourceNames: [LEADER_LEASE_KEY.name] },
  ];
}

function sysctlScript(): string {
  return Object.entries(NODE_SYSCTLS).map(([k, v]) => `sysctl -w ${k}=${v}`).join(' && ');
}

const dropAll = (add: string[]) => ({ capabilities: { drop: ['ALL'], ...(add.length ? { add } : {}) }, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
const flowsVolume = { name: 'flows', hostPath: { path: DEFAULT_FLOW_DIR, type: 'DirectoryOrCreate' } };

function agentDaemonSet(o: ManifestOptions): Obj {
  const labels = { 'app.kubernetes.io/name': 'egw-agent', ...PART_OF };
  return {
    apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'egw-agent', namespace: o.namespace, labels },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': 'egw-agent' } },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: SERVICE_ACCOUNTS.agent,
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          priorityClassName: 'system-node-critical',
          tolerations: [{ operator: 'Exists' }],
          // The node sysctls the agent needs (NODE_SYSCTLS) are set once here: /proc/sys is read-only in an ordinary
          // container, and the agent writes a sysctl only when it differs (docs/kubernetes.md, "Capabilities").
          initContainers: [{
            name: 'sysctls', image: o.image, command: ['sh', '-c', sysctlScript()],
            securityContext: { privileged: true },
          }],
          containers: [{
            name: 'agent', image: o.image,
            command: ['egw', '--datastore', KUBE_DATASTORE_SPEC, 'agent', '--node', '$(NODE_NAME)', '--no-nat-outgoing'],
            env: [fieldEnv('NODE_NAME', 'spec.nodeName')],
            ports: [{ name: 'metrics', containerPort: METRICS_PORT.agent, protocol: 'TCP' }],
            // NET_ADMIN: routes, ip rules, the VXLAN device, nft tables, conntrack marks. Nothing else: the agent
            // opens no raw sockets (heartbeats are UDP).
            securityContext: { ...dropAll(['NET_ADMIN']), runAsUser: 0 },
            volumeMounts: [{ name: 'flows', mountPath: DEFAULT_FLOW_DIR }],
            resources: { requests: { cpu: '50m', memory: '64Mi' } },
          }],
          volumes: [flowsVolume],
        },
      },
    },
  };
}

function controllerDeployment(o: ManifestOptions): Obj {
  const labels = { 'app.kubernetes.io/name': 'egw-controller', ...PART_OF };
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'egw-controller', namespace: o.namespace, labels },
    spec: {
      // Two replicas: one leads through the Lease, the other takes over within seconds (SPEC §7).
      replicas: 2,
      selector: { matchLabels: { 'app.kubernetes.io/name': 'egw-controller' } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: SERVICE_ACCOUNTS.controller,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 },
          containers: [{
            name: 'controller', image: o.image,
            command: ['egw', '--datastore', KUBE_DATASTORE_SPEC, 'controller', '--id', '$(POD_NAME)', '--gateway-image', o.image],
            env: [fieldEnv('POD_NAME', 'metadata.name')],
            ports: [{ name: 'metrics', containerPort: METRICS_PORT.controller, protocol: 'TCP' }],
            securityContext: dropAll([]),
            resources: { requests: { cpu: '50m', memory: '64Mi' } },
          }],
        },
      },
    },
  };
}

function binding(kind: 'ClusterRoleBinding' | 'RoleBinding', name: string, sa: string, o: ManifestOptions, namespace?: string): Obj {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind, metadata: { name, ...(namespace ? { namespace } : {}), labels: PART_OF },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: kind === 'ClusterRoleBinding' ? 'ClusterRole' : 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name: sa, namespace: o.namespace }],
  };
}

/** Every object of the install, in apply order. */
export function installObjects(opts: Partial<ManifestOptions> = {}): Obj[] {
  const o: ManifestOptions = { ...DEFAULT_MANIFEST_OPTIONS, ...opts };
  const namespaces = [...new Set([o.namespace, LEADER_LEASE_KEY.namespace])];
  const rules = rbacRules(o.calicoMode);
  const out: Obj[] = namespaces.map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n, labels: PART_OF } }));
  out.push(...(generateCRDs(o.calicoMode) as unknown as Obj[]));
  for (const [role, sa] of Object.entries(SERVICE_ACCOUNTS) as [keyof typeof SERVICE_ACCOUNTS, string][]) {
    // Gateway pods run in the EgressGateway's namespace: the controller gives them this account there (or the
    // cluster admin creates it); its ClusterRole is bound here for the install namespace's account.
    out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: o.namespace, labels: PART_OF } });
    out.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: sa, labels: PART_OF }, rules: rules[role] });
    out.push(binding('ClusterRoleBinding', sa, sa, o));
  }
  out.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'egw-controller-lease', namespace: LEADER_LEASE_KEY.namespace, labels: PART_OF }, rules: leaseRules() });
  out.push(binding('RoleBinding', 'egw-controller-lease', SERVICE_ACCOUNTS.controller, o, LEADER_LEASE_KEY.namespace));
  out.push(agentDaemonSet(o), controllerDeployment(o));
  return out;
}

export const MANIFEST_HEADER = '# Generated by `egw manifests` (src/kube/manifests.ts); do not edit. Regenerate: make manifests\n';

/** The install as one multi-document YAML. */
export function installYaml(opts: Partial<ManifestOptions> = {}): string {
  return MANIFEST_HEADER + installObjects(opts).map((x) => '---\n' + stringify(x, { lineWidth: 0 })).join('');
}

/** The files of deploy/kubernetes/ and the options each is made with. */
export const CHECKED_IN: readonly { file: string; opts: Partial<ManifestOptions> }[] = [
  { file: 'deploy/kubernetes/egw.yaml', opts: { calicoMode: 'apiserver' } },
  { file: 'deploy/kubernetes/egw-native-v3.yaml', opts: { calicoMode: 'native-v3' } },
];
