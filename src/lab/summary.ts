// What a lab's datastore says about its pods and nodes, for the demo and the benchmarks.
import { ANNOTATION, type Node as K8sNode, type Pod } from '../api/types.js';
import { openStore } from '../datastore/open.js';

export interface ClusterSummary {
  /** `namespace/name` → Pod. */
  pods: Map<string, Pod>;
  /** Gateway pods (of any EgressGateway, or of `gateway` if given), sorted by IP. */
  gateways: Pod[];
  /** Node name → InternalIP. */
  nodeIPs: Map<string, string>;
}

export async function readClusterSummary(datastore: string, gateway?: string): Promise<ClusterSummary> {
  const store = await openStore(datastore);
  try {
    const pods = (await store.list('Pod')).items as Pod[];
    const nodes = (await store.list('Node')).items as K8sNode[];
    const isGateway = (p: Pod) => {
      const of = p.metadata.annotations?.[ANNOTATION.gatewayOf];
      return of !== undefined && (gateway === undefined || of === gateway);
    };
    return {
      pods: new Map(pods.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p])),
      gateways: pods.filter(isGateway).sort((a, b) => (a.status?.podIP ?? '').localeCompare(b.status?.podIP ?? '', 'en', { numeric: true })),
      nodeIPs: new Map(nodes.map((n) => [n.metadata.name, n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? ''])),
    };
  } finally {
    await store.close();
  }
}
