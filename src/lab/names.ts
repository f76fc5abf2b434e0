// Names of everything the lab creates, and where its state lives. Every network namespace is `egw-<lab>-…`.
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export function labStateRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.EGW_LAB_DIR ? resolve(env.EGW_LAB_DIR) : '/run/egw/labs';
}

export function labStateDir(lab: string, root = labStateRoot()): string {
  return join(root, lab);
}

export const stateFiles = {
  config: (dir: string) => join(dir, 'lab.json'),
  pids: (dir: string) => join(dir, 'pids'),
  pidFile: (dir: string, role: string) => join(dir, 'pids', `${role}.pid`),
  logs: (dir: string) => join(dir, 'logs'),
  logFile: (dir: string, role: string) => join(dir, 'logs', `${role}.log`),
  pods: (dir: string) => join(dir, 'pods'),
  /** Written by `lab down` before it stops anything: from then on nobody restarts anything (docs/dataplane.md). */
  stopping: (dir: string) => join(dir, 'stopping'),
  etcdData: (dir: string) => join(dir, 'etcd'),
  /** datastore: kubernetes — the stand-in API server's journal (its objects across restarts: src/lab/apiserver.ts). */
  apiserverJournal: (dir: string) => join(dir, 'apiserver.jsonl'),
  /** The stand-in API server's unix socket; the host-side forwarder connects to it. */
  apiserverSocket: (dir: string) => join(dir, 'apiserver.sock'),
  /** The kubeconfig of the lab's processes (the stand-in on the underlay) and the host's (through the forwarder). */
  kubeconfig: (dir: string) => join(dir, 'kubeconfig'),
  hostKubeconfig: (dir: string) => join(dir, 'kubeconfig-host'),
  /**
   * `egw lab stop ROLE` writes held/ROLE: the supervisor, its watchdog and lab up start nothing held until `egw lab
   * start ROLE` removes it (docs/dataplane.md, "Stopping one process for a while").
   */
  held: (dir: string) => join(dir, 'held'),
  heldFile: (dir: string, role: string) => join(dir, 'held', role),
  /** The lab's flow-record root (EGW_FLOW_DIR of every lab process: labChildEnv; docs/audit.md). Made by lab up. */
  flows: (dir: string) => join(dir, 'flows'),
  /** The lab firewall's log: one JSON line per connection it admits or refuses (docs/audit.md). */
  firewallLog: (dir: string) => join(dir, 'firewall.jsonl'),
  /**
   * EGW_METRICS_SOCKET_DIR of every lab process: each serves /metrics on `<name>.sock` here too (agent-<node>,
   * gateway-<ns>.<pod>, controller-<i>: src/metrics/server.ts metricsSocketPath), which the host reads.
   */
  metrics: (dir: string) => join(dir, 'metrics'),
};

/**
 * The lab etcd's unix socket, relative to the state directory (etcd 3.4 takes `unix://HOST:PORT` and creates a
 * socket file named `HOST:PORT` in its working directory); the host-side forwarder connects to it.
 */
export const ETCD_SOCKET = 'etcd.sock:0';
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** The etcd namespace's port on the underlay bridge. */
export const ETCD_UNDERLAY_PORT = 'etcd0';
/** The stand-in API server's port (plain http: docs/dataplane.md, "The lab on Kubernetes") and its underlay port. */
export const APISERVER_PORT = 6443;
export const APISERVER_UNDERLAY_PORT = 'api0';

export const ns = {
  prefix: (lab: string) => `egw-${lab}-`,
  net: (lab: string) => `egw-${lab}-net`,
  router: (lab: string) => `egw-${lab}-router`,
  ext: (lab: string) => `egw-${lab}-ext`,
  etcd: (lab: string) => `egw-${lab}-etcd`,
  apiserver: (lab: string) => `egw-${lab}-api`,
  node: (lab: string, node: string) => `egw-${lab}-n-${node}`,
  nodePrefix: (lab: string) => `egw-${lab}-n-`,
  pod: (lab: string, hash10: string) => `egw-${lab}-p-${hash10}`,
  podPrefix: (lab: string) => `egw-${lab}-p-`,
};

/** sha1 of `namespace/name` in hex: the pod netns takes 10 characters, the host-side veth `egw` + 11. */
export function podHash(namespace: string, name: string): string {
  return createHash('sha1').update(`${namespace}/${name}`).digest('hex');
}

export function podNames(lab: string, namespace: string, name: string): { hash: string; netns: string; veth: string; handle: string } {
  const h = podHash(namespace, name);
  return { hash: h.slice(0, 10), netns: ns.pod(lab, h.slice(0, 10)), veth: `egw${h.slice(0, 11)}`, handle: `pod:${namespace}/${name}` };
}

/** The underlay port for a node in the bridge namespace: `v-<node>` when it fits IFNAMSIZ, else a hash. */
export function underlayPort(node: string): string {
  const name = `v-${node}`;
  return name.length <= 15 ? name : `v-${createHash('sha1').update(node).digest('hex').slice(0, 13)}`;
}

/** The `egw` executable: this Node binary running bin/egw.js of this checkout. */
export function egwCommand(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  // src/lab or dist/lab → the repository root is two levels up
  return [process.execPath, resolve(here, '..', '..', 'bin', 'egw.js')];
}

/**
 * The environment of every process lab `lab` (state under `root`) starts: the caller's, with EGW_LAB_DIR set,
 * EGW_FLOW_DIR = the lab's flow-record root (stateFiles.flows: agents, controllers, the kubelets and the gateways they
 * start write there; docs/dataplane.md, "The lab"), EGW_METRICS_SOCKET_DIR = its metrics sockets, and without the datastore settings meant for the caller's own
 * CLI (EGW_DATASTORE, EGW_ETCD_CA/CERT/KEY): lab processes are told their datastore by --datastore, and the lab's
 * etcd speaks plain http on the lab network (docs/dataplane.md, "The lab on etcd").
 */
export function labChildEnv(root: string, lab: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const state = labStateDir(lab, root);
  const out: NodeJS.ProcessEnv = { ...env, EGW_LAB_DIR: root, EGW_FLOW_DIR: stateFiles.flows(state), EGW_METRICS_SOCKET_DIR: stateFiles.metrics(state) };
  for (const k of ['EGW_DATASTORE', 'EGW_ETCD_CA', 'EGW_ETCD_CERT', 'EGW_ETCD_KEY']) delete out[k];
  return out;
}

/**
 * The namespace that serves a lab's datastore on the underlay, if it has one: the lab's etcd (datastore: etcd) or the
 * stand-in API server (datastore: kubernetes). One member at the underlay's .2; default via the router.
 */
export function labServer(cfg: { name: string; etcd?: { ip: string }; apiserver?: { ip: string } }): { netns: string; port: string; ip: string } | undefined {
  if (cfg.etcd) return { netns: ns.etcd(cfg.name), port: ETCD_UNDERLAY_PORT, ip: cfg.etcd.ip };
  if (cfg.apiserver) return { netns: ns.apiserver(cfg.name), port: APISERVER_UNDERLAY_PORT, ip: cfg.apiserver.ip };
  return undefined;
}
