// A small cluster for the agent tests: node n1 (client side) and n2 (gateways), a natOutgoing pod pool, an egress
// pool with an EgressGateway naming it, two gateway pods on n2 and one client pod on n1.
import type { Resource } from '../../src/api/meta.js';

export const NODE_IP = '172.31.99.11';

export function cluster(opts: { nodeIp?: string; clientAnnotations?: Record<string, string> } = {}): Resource[] {
  const node = (name: string, ip: string): Resource => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec: {},
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  });
  const pod = (ns: string, name: string, nodeName: string, ip: string, labels: Record<string, string>, annotations: Record<string, string>): Resource => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels, annotations },
    spec: { nodeName, containers: [{ name: 'c' }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  });
  return [
    { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { egressIPSupport: 'EnabledPerNamespaceOrPerPod' } },
    node('n1', opts.nodeIp ?? NODE_IP),
    node('n2', '172.31.99.12'),
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '10.244.0.0/16', natOutgoing: true } },
    { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'egress' }, spec: { cidr: '10.10.10.0/29', natOutgoing: false, nodeSelector: '!all()' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'egw', labels: { 'projectcalico.org/name': 'egw' } } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app', labels: { 'projectcalico.org/name': 'app' } } },
    {
      apiVersion: 'operator.tigera.io/v1',
      kind: 'EgressGateway',
      metadata: { name: 'gw', namespace: 'egw' },
      spec: { replicas: 2, ipPools: [{ name: 'egress' }], logSeverity: 'Info', template: { metadata: { labels: { app: 'gw' } } } },
    },
    pod('egw', 'gw-aaaaa', 'n2', '10.10.10.1', { app: 'gw' }, { 'egw.dev/egress-gateway': 'gw' }),
    pod('egw', 'gw-bbbbb', 'n2', '10.10.10.2', { app: 'gw' }, { 'egw.dev/egress-gateway': 'gw' }),
    pod('app', 'client', 'n1', '10.244.0.5', { app: 'client' }, {
      'egress.projectcalico.org/selector': "app == 'gw'",
      'egress.projectcalico.org/namespaceSelector': "projectcalico.org/name == 'egw'",
      ...(opts.clientAnnotations ?? {}),
    }),
  ];
}
