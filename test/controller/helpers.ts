// Builders for the controller tests.
import type { EgressGateway, EgressGatewaySpec, Pod } from '../../src/api/types.js';

export function egressGateway(namespace: string, name: string, spec: Partial<EgressGatewaySpec> = {}): EgressGateway {
  return {
    apiVersion: 'operator.tigera.io/v1',
    kind: 'EgressGateway',
    metadata: { name, namespace },
    spec: {
      replicas: 1,
      ipPools: [{ name: 'egress' }],
      logSeverity: 'Info',
      template: { metadata: { labels: { 'egress-code': 'red' } } },
      ...spec,
    },
  };
}

/** A pseudo-random source that always yields the same sequence. */
export function seeded(seed = 42): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32;
  };
}

export async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 1000): Promise<number> {
  const start = Date.now();
  while (!(await pred())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - start;
}

/** A gateway pod of EgressGateway prod/red as the store would hold it (controller-made shape). */
export function existingGatewayPod(name: string, nodeName: string, created: string, extra: Partial<Pod['metadata']> = {}, status?: Pod['status']): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'prod',
      labels: { 'egress-code': 'red' },
      annotations: { 'egw.dev/egress-gateway': 'red', 'cni.projectcalico.org/ipv4pools': '["egress"]' },
      ownerReferences: [{ apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', name: 'red', uid: 'uid-red', controller: true }],
      creationTimestamp: created,
      resourceVersion: '7',
      uid: `uid-${name}`,
      ...extra,
    },
    spec: { nodeName, containers: [{ name: 'gateway', image: 'egw', command: ['egw', 'gateway'] }] },
    ...(status ? { status } : {}),
  };
}
