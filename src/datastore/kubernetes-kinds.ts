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

/** What the store asked for, in RBAC's words: the verb and the (qualified, maybe `/status`) resource. */
export type KubeVerb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'delete';

/**
 * The error for a 403 Forbidden: which verb on which resource in which scope was refused, the API server's own message
 * when it sent one (it names the user: `pods is forbidden: User "…" cannot list resource "pods" in API group "" at
 * the cluster scope`), and where the needed rules are (docs/kubernetes.md, "RBAC"). Unavailable: the informer keeps
 * retrying, since RBAC may be fixed while egw runs.
 */
export function forbiddenError(verb: KubeVerb, r: KubeResource, namespace: string | undefined, serverMessage?: string, sub?: 'status'): StoreError {
  const resource = sub ? `${r.info.plural}/${sub}${r.qualified.slice(r.info.plural.length)}` : r.qualified;
  const scope = r.info.namespaced && namespace ? `in namespace "${namespace}"` : 'at the cluster scope';
  const said = serverMessage ? `: the API server says: ${serverMessage}` : '';
  return new StoreError(
    'Unavailable',
    `forbidden: may not ${verb} ${resource} ${scope}${said}; the account needs RBAC verb "${verb}" on resource "${resource}" — apply the RBAC in deploy/kubernetes/ (docs/kubernetes.md, "RBAC")`,
  );
}

/** The error for a 401 Unauthorized: the credentials, not the RBAC (which would be a 403). */
export function unauthorizedError(what: string): StoreError {
  return new StoreError('Unavailable', `${what}: 401 Unauthorized: the API server did not accept the kubeconfig's or the service account's credentials`);
}
