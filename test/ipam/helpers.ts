// Shared builders for the IPAM and controller tests.
import type { IPPool, IPPoolSpec, Node, Pod } from '../../src/api/types.js';

export function ippool(name: string, cidr: string, spec: Partial<IPPoolSpec> = {}): IPPool {
  return { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec: { cidr, ...spec } };
}

export function node(name: string, labels: Record<string, string> = {}, ip?: string): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
    spec: {},
    status: ip ? { addresses: [{ type: 'InternalIP', address: ip }] } : {},
  };
}

export function pod(namespace: string, name: string, annotations?: Record<string, string>, nodeName?: string): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, ...(annotations ? { annotations } : {}) },
    spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'c', image: 'egw' }] },
  };
}
