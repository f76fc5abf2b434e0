// Names every Kubernetes artefact of egw agrees on (docs/kubernetes.md): one home, read by the manifests generator
// and by the controller's gateway pod builder.

/** The datastore spec every in-cluster process is started with (src/datastore/open.ts). */
export const KUBE_DATASTORE_SPEC = 'kubernetes:';
/** ServiceAccount names, one per role. */
export const SERVICE_ACCOUNTS = { agent: 'egw-agent', controller: 'egw-controller', gateway: 'egw-gateway' } as const;
export const DEFAULT_IMAGE = 'ghcr.io/egw/egw:0.1.0';
