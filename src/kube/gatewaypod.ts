// The gateway pod's container on a Kubernetes cluster (docs/kubernetes.md, "Gateway pods"): what the lab's pod
// lacks because the lab runs egw's processes itself — the image, the `health` port (8080) that Calico's gateway pods
// carry and the kubelet probes, metrics on 9092, the flow-record hostPath, and only the capabilities it needs.
// Pure: the controller's pod builder (src/controller/plan.ts) merges this into the pods it plans.
import { DEFAULT_FLOW_DIR } from '../audit/paths.js';
import { GATEWAY_HEALTH_PORT, GATEWAY_HEALTH_PORT_NAME } from '../api/dataplane.js';
import type { Container } from '../api/types.js';
import { METRICS_PORT } from '../metrics/metrics.js';
import { DEFAULT_IMAGE, KUBE_DATASTORE_SPEC, SERVICE_ACCOUNTS } from './names.js';

export interface KubeGatewayPodOptions {
  /** Container image (default DEFAULT_IMAGE, the one `egw manifests` uses). */
  image?: string;
  /** ServiceAccount of the gateway pods (default egw-gateway). */
  serviceAccountName?: string;
}

/** The container and pod-level fields of a gateway pod on Kubernetes. */
export function kubeGatewayPodParts(o: KubeGatewayPodOptions = {}): { container: Container; pod: Record<string, unknown> } {
  const container: Container = {
    name: 'gateway',
    image: o.image ?? DEFAULT_IMAGE,
    command: ['egw', '--datastore', KUBE_DATASTORE_SPEC, 'gateway', '--pod', '$(POD_NAMESPACE)/$(POD_NAME)', '--health-port', String(GATEWAY_HEALTH_PORT)],
    env: [
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    ],
    ports: [
      { name: GATEWAY_HEALTH_PORT_NAME, containerPort: GATEWAY_HEALTH_PORT, protocol: 'TCP' },
      // The node agents' heartbeats (src/agent/health.ts) arrive on the same number over UDP.
      { name: 'heartbeat', containerPort: GATEWAY_HEALTH_PORT, protocol: 'UDP' },
      { name: 'metrics', containerPort: METRICS_PORT.gateway, protocol: 'TCP' },
    ],
    readinessProbe: { httpGet: { path: '/readiness', port: GATEWAY_HEALTH_PORT_NAME }, periodSeconds: 1 },
    livenessProbe: { httpGet: { path: '/liveness', port: GATEWAY_HEALTH_PORT_NAME }, periodSeconds: 10 },
    // NET_ADMIN: the VXLAN device, routes and the gateway's nft table in the pod's own netns; NET_RAW: the ICMP
    // probes (egressGatewayFailureDetection.icmpProbe) send echo requests.
    securityContext: { capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] }, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsUser: 0 },
    volumeMounts: [{ name: 'flows', mountPath: DEFAULT_FLOW_DIR }],
  };
  return {
    container,
    pod: {
      serviceAccountName: o.serviceAccountName ?? SERVICE_ACCOUNTS.gateway,
      volumes: [{ name: 'flows', hostPath: { path: DEFAULT_FLOW_DIR, type: 'DirectoryOrCreate' } }],
    },
  };
}
