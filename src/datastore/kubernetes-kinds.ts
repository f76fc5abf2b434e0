// Where each egw kind lives on a Kubernetes API server: its REST path, derived from the kind table in src/api/meta.ts
// (apiVersion, plural, namespaced: one home), plus the one Kubernetes-only fact the table lacks, which kinds write
// their status through the /status subresource (docs/kubernetes-datastore.md).
import { kindInfo, type KindInfo, type ObjectKey } from '../api/meta.js';
import { StoreError } from './types.js';

/**
 * Kinds whose status the API server keeps apart from the main resource: a PUT of the object ignores `status`, a PUT
 * of `/status` changes only it. Core and apps kinds have it; egw's EgressGateway CRD declares it (issue 11).
 */
export const STATUS_SUBRESOURCE: ReadonlySet<string> = new Set(['EgressGateway', 'Pod', 'Node', 'Namespace', 'Deployment', 'ReplicaSet']);

export interface KubeResource {
  info: KindInfo;
  /** `/api/v1` or `/apis/GROUP/VERSION`. */
  base: string;
  /** `pods`, or `egressgateways.operator.tigera.io`: how Kubernetes names the resource in its messages. */
  qualified: string;
}

export function kubeResource(kind: string): KubeResource {
  const info = kindInfo(kind);
  if (!info) {
    throw new StoreError('Invalid', `kind ${JSON.stringify(kind)} has no Kubernetes resource known to egw (src/api/meta.ts KINDS); the kubernetes: datastore stores only known kinds`);
  }
  const slash = info.apiVersion.indexOf('/');
  const group = slash < 0 ? '' : info.apiVersion.slice(0, slash);
  return { info, base: group ? `/apis/${info.apiVersion}` : `/api/${info.apiVersion}`, qualified: group ? `${info.plural}.${group}` : info.plural };
}

/** The collection path: every namespace when `namespace` is undefined (or the kind is cluster-scoped). */
export function collectionPath(r: KubeResource, namespace?: string): string {
  const ns = r.info.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${r.base}${ns}/${r.info.plural}`;
}

export function objectPath(r: KubeResource, key: ObjectKey, sub?: 'status'): string {
  return `${collectionPath(r, key.namespace)}/${encodeURIComponent(key.name)}${sub ? `/${sub}` : ''}`;
}
