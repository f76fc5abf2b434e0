// `egw lab up / down / status / exec`: a multi-node cluster built from network namespaces on one machine.
//
//   egw-<lab>-net      br0: the underlay bridge; every node's and the router's eth0 peer is a port
//   egw-<lab>-router   eth0 on the underlay (.1), ext0 to the external host; /32 routes to every pod via its node
//   egw-<lab>-ext      eth0: echo (.10), restricted (.20), .10 of every extra network; default via the router;
//                      nft table ip egw-lab: only restricted.allow may reach the restricted address; every
//                      connection admitted or refused is logged (src/lab/firewall.ts)
//   egw-<lab>-etcd     (datastore: etcd) eth0 on the underlay (.2), default via .1; the lab's etcd server
//   egw-<lab>-api      (datastore: kubernetes) the same, for the stand-in Kubernetes API server (src/lab/apiserver.ts)
//   egw-<lab>-n-<node> eth0 on the underlay (.11, .12, …), default via .1, forwarding on; the node's agent and kubelet
//   egw-<lab>-p-<hash> a pod (made by the lab kubelet)
//
// Nothing is created in the caller's own network namespace: links are made inside a lab namespace with `ip -n` and
// their peer is placed straight into another lab namespace.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { resolve } from 'node:path';
import type { IPPool, Node as K8sNode, Pod } from '../api/types.js';
import { poolAllows, poolSelectsNode } from '../ipam/pools.js';
import { openStore } from '../datastore/open.js';
import { parseNamespacedName } from '../api/meta.js';
import { updateWithRetry } from '../datastore/retry.js';
import { StoreError, type Store } from '../datastore/types.js';
import { createLogger, type Logger } from '../log.js';
import { netnsRunner } from '../dataplane/exec.js';
import { Kernel } from './kernel.js';
import { FIREWALL_TABLE, firewallRules } from './firewall.js';
import { loadLabFile, type LabConfig } from './labfile.js';
import { chooseLabDatastores, hostDatastoreOf, normalizeDatastore, waitDatastore } from './labstore.js';
import { egwCommand, labServer, labChildEnv, labStateDir, labStateRoot, ns, stateFiles, underlayPort } from './names.js';
import {
  isRunning,
  readRecord,
  readRecords,
  stopProcess,
  stopProcessesInNetns,
  withStartLock,
  type ProcRecord,
} from './procs.js';
import { sleep } from '../util.js';
import { labProcesses, supervisorSpec, startProcess, isHeld, holdableProcesses, type LabRole, type ProcSpec, ALL_ROLES } from './roles.js';

export { FIREWALL_TABLE, firewallRules } from './firewall.js';
export { ETCD_BIN, labProcesses, supervisorSpec, startProcess, isHeld, holdableProcesses, type LabRole, type ProcSpec } from './roles.js';

export const NETNS_ANNOTATION = 'egw.dev/netns';
export const ROUTER_PORT = 'rtr0';

export interface LabInfo {
  name: string;
  /** True when the lab was already there (labUp then only fills in what is missing). */
  existed: boolean;
  stateDir: string;
  /** The datastore the lab's processes use (for etcd: the lab etcd's underlay address). */
  datastore: string;
  /** The datastore as the host reaches it: what a user exports as EGW_DATASTORE. */
  hostDatastore: string;
  namespaces: { net: string; router: string; ext: string; etcd?: string; apiserver?: string; nodes: Record<string, string> };
  nodes: { name: string; ip: string; netns: string }[];
  router: { underlay: string; external: string };
  external: {
    cidr: string;
    echo: string;
    restricted: { ip: string; allow: string[] };
    networks: { cidr: string; echo: string }[];
  };
  underlay: { cidr: string; mtu: number };
  podPool: { name: string; cidr: string; blockSize: number; created: boolean };
  processes: { role: string; pid: number; started: boolean }[];
}

export interface LabUpOptions {
  file: string;
  /**
   * sqlite:PATH for a lab on SQLite (default $EGW_DATASTORE, else the default file). A lab file with `datastore: etcd`
   * runs its own etcd: then this must be unset or that lab's own host-side spec.
   */
  datastore?: string;
  /** Where `datastore` came from: a stale $EGW_DATASTORE only earns a warning from a lab on etcd, a flag an error. */
  datastoreFrom?: 'flag' | 'env';
  log?: Logger;
  /**
   * Start the lab processes (kubelets, agents, controllers, echo, the firewall logger, and a supervisor that restarts
   * them), or only those
   * of the roles listed (with a supervisor); default true. A lab on etcd always starts its etcd and forwarder.
   */
  start?: boolean | LabRole[];
  /** The command that runs egw (default: this Node + bin/egw.js). */
  egw?: string[];
  /** Default $EGW_LAB_DIR or /run/egw/labs. */
  stateRoot?: string;
}

/** What lab.json in the state directory holds. */
export interface LabState {
  config: LabConfig;
  /** What the lab's processes use. */
  datastore: string;
  /** What the host uses (the same for SQLite; the loopback forwarder for etcd). */
  hostDatastore: string;
  /** Port of the forwarder on 127.0.0.1 (etcd only), kept across `lab up` runs so the export stays valid. */
  forwardPort?: number;
  /** The kinds of process this lab runs (and its supervisor keeps running). */
  roles: LabRole[];
  file: string;
  egw: string[];
  firewall: string;
  createdAt: string;
}

export function readLabState(name: string, stateRoot = labStateRoot()): LabState | undefined {
  try {
    return JSON.parse(readFileSync(stateFiles.config(labStateDir(name, stateRoot)), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

async function ensureVeth(k: Kernel, ownerNs: string, name: string, peerNs: string, peerName: string, mtu: number): Promise<boolean> {
  const have = await k.link(ownerNs, name);
  const peer = await k.link(peerNs, peerName);
  if (have && peer) return false;
  if (have) await k.ip(ownerNs, ['link', 'del', name], { allowFailure: true });
  if (peer) await k.ip(peerNs, ['link', 'del', peerName], { allowFailure: true });
  await k.ip(ownerNs, ['link', 'add', name, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', peerName, 'mtu', String(mtu), 'netns', peerNs]);
  return true;
}

/** Builds (or completes) the namespaces and links of a lab. Idempotent. */
export async function buildTopology(cfg: LabConfig, k: Kernel, log: Logger): Promise<void> {
  const L = cfg.name;
  const mtu = cfg.underlay.mtu;
  const mtuS = String(mtu);
  const net = ns.net(L);
  const router = ns.router(L);
  const ext = ns.ext(L);
  const server = labServer(cfg);
  for (const n of [net, router, ext, ...(server ? [server.netns] : []), ...cfg.nodes.map((n) => ns.node(L, n.name))]) {
    if (await k.addNetns(n)) log.debug('netns created', { netns: n });
  }
  // The underlay bridge.
  if (!(await k.link(net, 'br0'))) await k.ip(net, ['link', 'add', 'br0', 'type', 'bridge']);
  const netLines = [`link set br0 mtu ${mtuS} up`];

  // Router on the underlay and toward the external host.
  await ensureVeth(k, net, ROUTER_PORT, router, 'eth0', mtu);
  netLines.push(`link set ${ROUTER_PORT} master br0 mtu ${mtuS} up`);
  await ensureVeth(k, router, 'ext0', ext, 'eth0', mtu);
  await k.sysctls(router, { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0 });
  await k.ipBatch(router, [
    `link set eth0 mtu ${mtuS} up`,
    `addr replace ${cfg.underlay.router}/${cfg.underlay.prefix} dev eth0`,
    `link set ext0 mtu ${mtuS} up`,
    `addr replace ${cfg.external.router}/${cfg.external.prefix} dev ext0`,
    ...cfg.external.networks.map((n) => `route replace ${n.cidr} via ${cfg.external.echo} dev ext0`),
  ]);

  // The external host.
  await k.ipBatch(ext, [
    `link set eth0 mtu ${mtuS} up`,
    `addr replace ${cfg.external.echo}/${cfg.external.prefix} dev eth0`,
    `addr replace ${cfg.external.restricted.ip}/${cfg.external.prefix} dev eth0`,
    ...cfg.external.networks.map((n) => `addr replace ${n.echo}/${n.cidr.split('/')[1]} dev eth0`),
    `route replace default via ${cfg.external.router} dev eth0`,
  ]);

  // The datastore server's namespace (etcd, or the stand-in API server): on the underlay, default via the router
  // (which routes to pods).
  if (server) {
    await ensureVeth(k, net, server.port, server.netns, 'eth0', mtu);
    netLines.push(`link set ${server.port} master br0 mtu ${mtuS} up`);
    await k.ipBatch(server.netns, [`link set eth0 mtu ${mtuS} up`, `addr replace ${server.ip}/${cfg.underlay.prefix} dev eth0`, `route replace default via ${cfg.underlay.router} dev eth0`]);
  }

  // Nodes.
  for (const n of cfg.nodes) {
    const nodeNs = ns.node(L, n.name);
    const port = underlayPort(n.name);
    await ensureVeth(k, net, port, nodeNs, 'eth0', mtu);
    netLines.push(`link set ${port} master br0 mtu ${mtuS} up`);
    await k.sysctls(nodeNs, { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0 });
    await k.ipBatch(nodeNs, [`link set eth0 mtu ${mtuS} up`, `addr replace ${n.ip}/${cfg.underlay.prefix} dev eth0`, `route replace default via ${cfg.underlay.router} dev eth0`]);
  }
  await k.ipBatch(net, netLines);
}

/**
 * The external host's firewall (src/lab/firewall.ts: the restricted service and the connection log); rewritten only
 * when missing or different (keeps its counters otherwise).
 */
async function ensureFirewall(cfg: LabConfig, k: Kernel, previous: string | undefined): Promise<string> {
  const rules = firewallRules(cfg);
  const ext = ns.ext(cfg.name);
  const present = (await k.nftJson(ext, ['list', 'table', 'ip', FIREWALL_TABLE])) !== undefined;
  if (present && previous === rules) return rules;
  await k.nft(ext, `table ip ${FIREWALL_TABLE}\ndelete table ip ${FIREWALL_TABLE}\n${rules}`);
  return rules;
}

function nodeObject(n: LabConfig['nodes'][number]): K8sNode {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels: { ...n.labels } },
    spec: {},
    status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
  };
}

/** Writes the lab's Node objects (labels from the file, InternalIP = underlay address) and the pod pool if needed. */
export async function writeClusterObjects(cfg: LabConfig, store: Store, log: Logger): Promise<{ poolCreated: boolean }> {
  for (const n of cfg.nodes) {
    const want = nodeObject(n);
    const r = await updateWithRetry<K8sNode>(store, { kind: 'Node', namespace: '', name: n.name }, (cur) => {
      if (!cur) return want;
      const labels = { ...(cur.metadata.labels ?? {}), ...want.metadata.labels };
      const others = (cur.status?.addresses ?? []).filter((a) => a.type !== 'InternalIP' && a.type !== 'Hostname');
      const status = { ...(cur.status ?? {}), addresses: [...want.status!.addresses!, ...others] };
      if (JSON.stringify(labels) === JSON.stringify(cur.metadata.labels ?? {}) && JSON.stringify(status) === JSON.stringify(cur.status ?? {})) return undefined;
      return { ...cur, metadata: { ...cur.metadata, labels }, status };
    });
    if (r.outcome === 'created') log.info('node created', { node: n.name, ip: n.ip });
    else if (r.outcome === 'updated') log.info('node updated', { node: n.name, ip: n.ip });
  }
  // The pod pool: only if some lab node is served by no (enabled, workload) pool yet.
  const pools = (await store.list('IPPool')).items as IPPool[];
  // Calico's rules, as IPAM applies them (src/ipam/pools.ts): an empty allowedUses means Workload and Tunnel.
  const serves = (pool: IPPool, labels: Record<string, string>): boolean => !pool.spec.disabled && poolAllows(pool, 'Workload') && poolSelectsNode(pool, labels);
  const unserved = cfg.nodes.filter((n) => !pools.some((p) => serves(p, n.labels)));
  if (unserved.length === 0 || pools.some((p) => p.metadata.name === cfg.podPool.name)) return { poolCreated: false };
  try {
    await store.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: cfg.podPool.name },
      spec: {
        cidr: cfg.podPool.cidr,
        blockSize: cfg.podPool.blockSize,
        nodeSelector: 'all()',
        natOutgoing: true,
        disabled: false,
        allowedUses: ['Workload', 'Tunnel'],
        ipipMode: 'Never',
        vxlanMode: 'Never',
        assignmentMode: 'Automatic',
      },
    });
  } catch (e) {
    if (e instanceof StoreError && e.code === 'AlreadyExists') return { poolCreated: false };
    throw e;
  }
  log.info('pod pool created', { pool: cfg.podPool.name, cidr: cfg.podPool.cidr });
  return { poolCreated: true };
}

function holdTarget(opts: { name: string; role: string; stateRoot?: string }, verb: 'stop' | 'start'): { root: string; dir: string; spec: ProcSpec } {
  if (!/^[a-z0-9]{1,8}$/.test(opts.name)) throw new Error(`lab name ${JSON.stringify(opts.name)}: 1-8 characters [a-z0-9]`);
  const root = opts.stateRoot ? resolve(opts.stateRoot) : labStateRoot();
  const dir = labStateDir(opts.name, root);
  const state = readLabState(opts.name, root);
  if (!state) throw new Error(`lab ${verb}: lab ${opts.name} is not up (no ${stateFiles.config(dir)})`);
  const specs = holdableProcesses(state, dir);
  const spec = specs.find((p) => p.role === opts.role);
  if (!spec) throw new Error(`lab ${verb}: lab ${opts.name} has no process ${JSON.stringify(opts.role)}; its processes are: ${specs.map((p) => p.role).join(', ')}`);
  return { root, dir, spec };
}

export interface LabHoldResult {
  role: string;
  /** The process stopped (or started), if there was one. */
  pid?: number;
  how: 'stopped' | 'killed' | 'gone' | 'started' | 'running';
}

/**
 * `egw lab stop ROLE`: holds one lab process stopped (as scaling it to 0): the held marker first, under the role's
 * start lock (so neither the supervisor, its watchdog nor lab up starts it again from then on), then the recorded
 * process is stopped by PID (SIGTERM, SIGKILL after 3 s; only while /proc shows it is ours). `lab down` still stops
 * everything; `lab up` and `egw lab start ROLE` release it (docs/dataplane.md, "Stopping one process for a while").
 */
export async function labStop(opts: { name: string; role: string; stateRoot?: string; log?: Logger }): Promise<LabHoldResult> {
  const { dir, spec } = holdTarget(opts, 'stop');
  const pidFile = stateFiles.pidFile(dir, spec.role);
  let rec: ProcRecord | undefined;
  let marked = false;
  for (const deadline = Date.now() + 5000; !marked && Date.now() < deadline; ) {
    marked =
      withStartLock(pidFile, () => {
        mkdirSync(stateFiles.held(dir), { recursive: true });
        writeFileSync(stateFiles.heldFile(dir, spec.role), new Date().toISOString() + '\n');
        rec = readRecord(pidFile);
        return true;
      }) ?? false;
    if (!marked) await sleep(20); // someone is starting it right now: once it is recorded, we stop that one
  }
  if (!marked) throw new Error(`lab stop: ${spec.role}: its start lock (${pidFile}.lock) stayed taken for 5 s`);
  const how = rec ? await stopProcess(rec, 3000) : 'gone';
  opts.log?.info('held stopped', { role: spec.role, pid: rec?.pid, how });
  return { role: spec.role, ...(rec ? { pid: rec.pid } : {}), how };
}

/** `egw lab start ROLE`: releases a role held by `egw lab stop` and starts it at once (no restart counted). */
export async function labStart(opts: { name: string; role: string; stateRoot?: string; log?: Logger }): Promise<LabHoldResult> {
  const { root, dir, spec } = holdTarget(opts, 'start');
  const marker = stateFiles.heldFile(dir, spec.role);
  let since = '';
  try {
    since = readFileSync(marker, 'utf8').trim();
  } catch {
    /* not held: start it if it does not run */
  }
  rmSync(marker, { force: true });
  const selfRecording = spec.kind === 'supervisor' || spec.kind === 'watchdog';
  const r = startProcess(dir, spec, labChildEnv(root, opts.name), { selfRecording, notARestart: true, lastExit: since ? `held by egw lab stop at ${since}` : undefined });
  const rec = r.rec ?? readRecord(stateFiles.pidFile(dir, spec.role));
  opts.log?.info(r.started ? 'released and started' : 'released', { role: spec.role, pid: rec?.pid });
  return { role: spec.role, ...(rec ? { pid: rec.pid } : {}), how: r.started ? 'started' : 'running' };
}

/** Polls `probe` every 100 ms until it returns a value or `timeoutMs` passes. */
async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await sleep(100);
  }
}


/** True once TCP listeners on every port exist in the namespace (read from its /proc/net/tcp). */
async function waitListening(k: Kernel, netns: string, ports: number[], timeoutMs: number, alive: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && alive()) {
    const r = await netnsRunner(netns).run(['cat', '/proc/net/tcp'], { allowFailure: true });
    const listening = new Set<number>();
    for (const line of r.stdout.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A') listening.add(parseInt(f[1].split(':')[1], 16));
    }
    if (ports.every((p) => listening.has(p))) return true;
    await sleep(100);
  }
  return false;
}

/** Builds a lab from its file (or completes an existing one) and starts its processes. */
export async function labUp(opts: LabUpOptions): Promise<LabInfo> {
  const log = opts.log ?? createLogger('lab');
  const cfg = loadLabFile(opts.file);
  const root = opts.stateRoot ? resolve(opts.stateRoot) : labStateRoot();
  const dir = labStateDir(cfg.name, root);
  const prev = readLabState(cfg.name, root);
  const start = opts.start ?? true;
  const roles = new Set<LabRole>(start === true ? ALL_ROLES : start === false ? [] : start);
  const supervise = roles.size > 0;
  const { datastore, hostDatastore, forwardPort } = await chooseLabDatastores(cfg, dir, { ...opts, supervise }, prev, log);
  if (cfg.etcd) roles.add('etcd').add('forwarder');
  if (cfg.apiserver) roles.add('apiserver').add('forwarder');
  if (!cfg.etcd) roles.delete('etcd');
  if (!cfg.apiserver) roles.delete('apiserver');
  if (!cfg.etcd && !cfg.apiserver) roles.delete('forwarder');
  const k = new Kernel();
  const existed = prev !== undefined || (await k.listNetns()).some((n) => n.startsWith(ns.prefix(cfg.name)));
  if (prev && prev.datastore !== datastore) {
    throw new Error(`lab ${cfg.name} already runs with datastore ${prev.datastore}; run egw lab down ${cfg.name} first or use that datastore`);
  }
  if (existed) log.info('lab exists; completing what is missing', { lab: cfg.name });
  // The flow-record root too: every lab process gets it as EGW_FLOW_DIR (labChildEnv); lab down removes it with the rest.
  for (const d of [dir, stateFiles.pids(dir), stateFiles.logs(dir), stateFiles.pods(dir), stateFiles.flows(dir)]) mkdirSync(d, { recursive: true });
  rmSync(stateFiles.stopping(dir), { force: true }); // an interrupted `lab down` must not keep the supervisor away
  rmSync(stateFiles.held(dir), { recursive: true, force: true }); // lab up starts every process, held ones too
  const egw = opts.egw ?? prev?.egw ?? egwCommand();

  await buildTopology(cfg, k, log);
  const firewall = await ensureFirewall(cfg, k, prev?.firewall);
  const state: LabState = {
    config: cfg,
    datastore,
    hostDatastore,
    ...(forwardPort ? { forwardPort } : {}),
    roles: ALL_ROLES.filter((r) => roles.has(r) || prev?.roles?.includes(r)),
    file: resolve(opts.file),
    egw,
    firewall,
    createdAt: prev?.createdAt ?? new Date().toISOString(),
  };
  writeFileSync(stateFiles.config(dir), JSON.stringify(state, null, 2) + '\n');

  const env = labChildEnv(root, cfg.name);
  const processes: LabInfo['processes'] = [];
  const specs = labProcesses({ ...state, roles: [...roles] }, dir);
  const started: ProcRecord[] = [];
  const startAll = (which: ProcSpec[]) => {
    for (const p of which) {
      const r = startProcess(dir, p, env);
      if (!r.rec) continue;
      processes.push({ role: p.role, pid: r.rec.pid, started: r.started });
      if (r.started) {
        started.push(r.rec);
        log.info('started', { role: p.role, pid: r.rec.pid });
      }
    }
  };
  // The datastore first: a lab on etcd needs its server (and the host its forwarder) before anything is written.
  const serves = (p: ProcSpec) => p.kind === 'etcd' || p.kind === 'apiserver' || p.kind === 'forwarder';
  startAll(specs.filter(serves));
  if (cfg.etcd) await waitDatastore(hostDatastore, 20_000, `the lab's etcd (log: ${stateFiles.logFile(dir, 'etcd')})`);
  if (cfg.apiserver) await waitDatastore(hostDatastore, 20_000, `the lab's stand-in API server (log: ${stateFiles.logFile(dir, 'apiserver')})`);

  const store = await openStore(hostDatastore);
  let poolCreated = false;
  try {
    poolCreated = (await writeClusterObjects(cfg, store, log)).poolCreated;
  } finally {
    await store.close();
  }

  startAll(specs.filter((p) => !serves(p)));
  if (supervise) {
    const r = startProcess(dir, supervisorSpec(state, 'supervisor'), env, { selfRecording: true });
    if (r.started) log.info('started', { role: 'supervisor', pid: r.rec!.pid });
    // It records itself once it holds the lab (claimRecord); wait for that so `lab down` right after finds it.
    const rec = await waitFor(async () => {
      const cur = readRecord(stateFiles.pidFile(dir, 'supervisor'));
      return cur && isRunning(cur) ? cur : undefined;
    }, 10_000);
    if (rec) processes.push({ role: 'supervisor', pid: rec.pid, started: r.started });
    else log.warn('the supervisor did not start; see its log', { log: stateFiles.logFile(dir, 'supervisor') });
    // It starts its watchdog on its first round: wait for that record too, so lab up returns with every record made.
    if (rec) {
      const dog = await waitFor(async () => {
        const cur = readRecord(stateFiles.pidFile(dir, 'watchdog'));
        return cur && isRunning(cur) ? cur : undefined;
      }, 10_000);
      if (!dog) log.warn('the watchdog did not start; see its log', { log: stateFiles.logFile(dir, 'watchdog') });
    }
  }
  if (started.length) {
    await sleep(300);
    for (const rec of started) {
      if (!isRunning(rec)) log.warn('exited right after start; see its log', { role: rec.role, log: stateFiles.logFile(dir, rec.role) });
    }
  }
  // So that `lab up` followed at once by a request works: wait until the echo server listens.
  const echo = started.find((r) => r.role === 'echo');
  if (echo && !(await waitListening(k, ns.ext(cfg.name), [80, 7], 10_000, () => isRunning(echo)))) {
    log.warn('the echo server does not listen yet; see its log', { log: stateFiles.logFile(dir, 'echo') });
  }
  log.info(existed ? 'lab ready (existed)' : 'lab ready', { lab: cfg.name, nodes: cfg.nodes.length });
  return {
    name: cfg.name,
    existed,
    stateDir: dir,
    datastore,
    hostDatastore,
    namespaces: { net: ns.net(cfg.name), router: ns.router(cfg.name), ext: ns.ext(cfg.name), ...(cfg.etcd ? { etcd: ns.etcd(cfg.name) } : {}), ...(cfg.apiserver ? { apiserver: ns.apiserver(cfg.name) } : {}), nodes: Object.fromEntries(cfg.nodes.map((n) => [n.name, ns.node(cfg.name, n.name)])) },
    nodes: cfg.nodes.map((n) => ({ name: n.name, ip: n.ip, netns: ns.node(cfg.name, n.name) })),
    router: { underlay: cfg.underlay.router, external: cfg.external.router },
    external: { cidr: cfg.external.cidr, echo: cfg.external.echo, restricted: { ...cfg.external.restricted }, networks: cfg.external.networks.map((n) => ({ ...n })) },
    underlay: { cidr: cfg.underlay.cidr, mtu: cfg.underlay.mtu },
    podPool: { ...cfg.podPool, created: poolCreated },
    processes,
  };
}

export interface LabDownResult {
  name: string;
  stopped: { role: string; pid: number; how: string }[];
  /** Processes found in the lab's namespaces without a record (e.g. after the state was lost). */
  strays: number;
  namespaces: string[];
}

/** Order in which namespaces go: pods, nodes, then router, external host, underlay. */
function nsOrder(lab: string, name: string): number {
  if (name.startsWith(ns.podPrefix(lab))) return 0;
  if (name.startsWith(ns.nodePrefix(lab))) return 1;
  if (name === ns.router(lab)) return 2;
  if (name === ns.ext(lab)) return 3;
  if (name === ns.etcd(lab) || name === ns.apiserver(lab)) return 4;
  return 5;
}

/** Stops the lab's processes and deletes every `egw-<lab>-…` namespace and the state directory. */
export async function labDown(opts: { name: string; log?: Logger; stateRoot?: string }): Promise<LabDownResult> {
  const log = opts.log ?? createLogger('lab');
  if (!/^[a-z0-9]{1,8}$/.test(opts.name)) throw new Error(`lab name ${JSON.stringify(opts.name)}: 1-8 characters [a-z0-9]`);
  const root = opts.stateRoot ? resolve(opts.stateRoot) : labStateRoot();
  const dir = labStateDir(opts.name, root);
  const k = new Kernel();
  const result: LabDownResult = { name: opts.name, stopped: [], strays: 0, namespaces: [] };
  // No restart races: first the marker (the supervisor, its watchdog and the kubelets restart nothing once it
  // exists), then the supervisor and its watchdog (each restarts the other, so until both are seen gone twice in a
  // row), then the kubelets (they restart containers), then everything else, and the lab's etcd last.
  if (existsSync(dir)) writeFileSync(stateFiles.stopping(dir), new Date().toISOString() + '\n');
  const stopRec = async (rec: ProcRecord) => {
    const how = await stopProcess(rec, 3000);
    if (how !== 'gone') log.info('stopped', { role: rec.role, pid: rec.pid, how });
    result.stopped.push({ role: rec.role, pid: rec.pid, how });
  };
  for (let quiet = 0, round = 0; quiet < 2 && round < 50; round++) {
    const sup = ['supervisor', 'watchdog'].map((r) => readRecord(stateFiles.pidFile(dir, r))).filter((r): r is ProcRecord => !!r && isRunning(r));
    if (sup.length === 0) {
      quiet++;
      await sleep(150);
      continue;
    }
    quiet = 0;
    await Promise.all(sup.map(stopRec));
  }
  const recs = readRecords(stateFiles.pids(dir)).filter((r) => r.rec.role !== 'supervisor' && r.rec.role !== 'watchdog');
  const kubelets = recs.filter((r) => r.rec.role.startsWith('kubelet-'));
  const datastore = recs.filter((r) => r.rec.role === 'etcd' || r.rec.role === 'forwarder'); // last: the others use it
  const rest = recs.filter((r) => !kubelets.includes(r) && !datastore.includes(r));
  for (const group of [kubelets, rest, datastore]) await Promise.all(group.map(({ rec }) => stopRec(rec)));
  const prefix = ns.prefix(opts.name);
  const names = (await k.listNetns()).filter((n) => n.startsWith(prefix)).sort((a, b) => nsOrder(opts.name, a) - nsOrder(opts.name, b) || a.localeCompare(b));
  // Whatever still runs inside the lab's namespaces belongs to the lab (records lost, or started by hand).
  await Promise.all(
    names.map(async (n) => {
      const pids = await k.netnsPids(n);
      if (pids.length) {
        const count = await stopProcessesInNetns(n, pids);
        if (count) log.info('stopped processes left in namespace', { netns: n, count });
        result.strays += count;
      }
    }),
  );
  for (const n of names) {
    await k.delNetns(n);
    result.namespaces.push(n);
  }
  rmSync(dir, { recursive: true, force: true });
  log.info('lab removed', { lab: opts.name, namespaces: names.length });
  return result;
}

function labNamesFound(netns: string[], root: string): string[] {
  const names = new Set<string>();
  for (const n of netns) {
    const m = /^egw-([a-z0-9]{1,8})-(net|router|ext|etcd|n-.+|p-[0-9a-f]+)$/.exec(n);
    if (m) names.add(m[1]);
  }
  try {
    for (const d of readdirSync(root)) if (existsSync(stateFiles.config(`${root}/${d}`))) names.add(d);
  } catch {
    /* no state root */
  }
  return [...names].sort();
}

/** Human-readable state of one lab (or every lab found): namespaces, processes, nodes, pods. */
export async function labStatus(opts: { name?: string; stateRoot?: string } = {}): Promise<string> {
  const root = opts.stateRoot ? resolve(opts.stateRoot) : labStateRoot();
  const k = new Kernel();
  const all = await k.listNetns();
  const labs = opts.name ? [opts.name] : labNamesFound(all, root);
  if (labs.length === 0) return 'no labs\n';
  const out: string[] = [];
  for (const L of labs) {
    const dir = labStateDir(L, root);
    const state = readLabState(L, root);
    const nss = all.filter((n) => n.startsWith(ns.prefix(L))).sort((a, b) => nsOrder(L, a) - nsOrder(L, b) || a.localeCompare(b));
    out.push(`lab ${L}${state ? '' : ' (no state: down, or its state directory was lost)'}`);
    if (state) {
      out.push(`  state:      ${dir}`, `  datastore:  ${state.datastore}${state.config.etcd ? ` (the lab's etcd, in ${ns.etcd(L)}; plain http on the lab network)` : ''}`);
      out.push(`  from here:  export EGW_DATASTORE=${hostDatastoreOf(state)}`, `  file:       ${state.file}`);
      out.push(`  flows:      ${stateFiles.flows(dir)}`, `  firewall:   ${stateFiles.firewallLog(dir)} (egw lab firewall --lab ${L})`);
    }
    out.push(`  namespaces: ${nss.length ? nss.length : 'none'}`);
    for (const n of nss) out.push(`    ${n}`);
    const recs = readRecords(stateFiles.pids(dir));
    if (recs.length) {
      out.push('  processes:');
      const w = Math.max(...recs.map((r) => r.rec.role.length));
      for (const { rec } of recs) {
        const restarts = rec.restarts ? `  restarts ${rec.restarts}${rec.lastExit ? ` (last: ${rec.lastExit})` : ''}` : '';
        const running = isRunning(rec);
        const held = isHeld(dir, rec.role);
        const st = held ? (running ? 'running (held: stopping)' : 'held') : running ? 'running' : 'dead';
        out.push(`    ${rec.role.padEnd(w)}  pid ${String(rec.pid).padEnd(7)} ${st.padEnd(7)}${restarts}`.trimEnd());
      }
    }
    if (!state) {
      out.push('');
      continue;
    }
    let store: Store | undefined;
    try {
      store = await openStore(hostDatastoreOf(state));
      const nodeNames = new Set(state.config.nodes.map((n) => n.name));
      out.push('  nodes:');
      for (const n of state.config.nodes) {
        const obj = (await store.get({ kind: 'Node', namespace: '', name: n.name })) as K8sNode | undefined;
        const ip = obj?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
        out.push(`    ${n.name.padEnd(12)} ${(ip ?? '-').padEnd(15)} ${k.netnsExists(ns.node(L, n.name)) ? ns.node(L, n.name) : '(no netns)'}${obj ? '' : ' (no Node object)'}`);
      }
      const pods = ((await store.list('Pod')).items as Pod[]).filter((p) => p.spec?.nodeName && nodeNames.has(p.spec.nodeName));
      out.push(`  pods: ${pods.length ? '' : 'none'}`);
      for (const p of pods) {
        const netns = p.metadata.annotations?.[NETNS_ANNOTATION];
        const cs = (p.status?.containerStatuses ?? []) as { restartCount?: number }[];
        const restarts = cs.reduce((n, c) => n + (c.restartCount ?? 0), 0);
        out.push(
          `    ${`${p.metadata.namespace}/${p.metadata.name}`.padEnd(32)} ${(p.spec.nodeName ?? '-').padEnd(10)} ${(p.status?.podIP ?? '-').padEnd(15)} ${(p.status?.phase ?? 'Pending').padEnd(8)} ${netns ?? ''}${restarts ? `  restarts ${restarts}` : ''}`,
        );
      }
    } catch (e) {
      out.push(`  datastore: cannot read (${(e as Error).message})`);
    } finally {
      await store?.close();
    }
    out.push('');
  }
  return out.join('\n');
}

/** Runs argv inside a pod's network namespace (from its egw.dev/netns annotation), with our stdio; returns its exit code. */
export async function labExec(opts: { datastore: string; pod: string; argv: string[] }): Promise<number> {
  if (opts.argv.length === 0) throw new Error('lab exec: nothing to run');
  const { namespace, name } = parseNamespacedName(opts.pod);
  const store = await openStore(normalizeDatastore(opts.datastore));
  let netns: string | undefined;
  try {
    const pod = await store.get({ kind: 'Pod', namespace, name });
    if (!pod) throw new Error(`pod ${namespace}/${name} not found`);
    netns = pod.metadata.annotations?.[NETNS_ANNOTATION];
    if (!netns) throw new Error(`pod ${namespace}/${name} has no network yet (no ${NETNS_ANNOTATION} annotation; is its node's lab kubelet running?)`);
  } finally {
    await store.close();
  }
  if (!/^egw-[a-z0-9]{1,8}-p-[0-9a-f]+$/.test(netns) || !existsSync(`/run/netns/${netns}`)) throw new Error(`pod ${namespace}/${name}: network namespace ${netns} does not exist`);
  return new Promise((resolvePromise, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns!, ...opts.argv], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise(code ?? (signal ? 128 + (osConstants.signals[signal] ?? 1) : 1)));
  });
}
