// Every long-running process of a lab, as data (labProcesses, supervisorSpec: one home, used by lab up, the
// supervisor and lab stop/start), and starting one under its start lock unless it is held (docs/dataplane.md, "The lab").
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LabConfig } from './labfile.js';
import { APISERVER_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, ETCD_SOCKET, ns, stateFiles } from './names.js';
import { isRunning, readRecord, spawnDetached, withStartLock, type ExitInfo, type ProcRecord } from './procs.js';
import type { LabState } from './topology.js';
import { METRICS_PORT } from '../metrics/metrics.js';

export type LabRole = 'etcd' | 'apiserver' | 'forwarder' | 'kubelet' | 'agent' | 'controller' | 'kcm' | 'echo' | 'firewall';
/** Every role a lab may run, in start order. */
export const ALL_ROLES: readonly LabRole[] = ['etcd', 'apiserver', 'forwarder', 'kubelet', 'agent', 'controller', 'kcm', 'echo', 'firewall'];

export interface ProcSpec {
  kind: LabRole | 'supervisor' | 'watchdog';
  role: string;
  argv: string[];
  netns?: string;
  netnsMode?: 'exec' | 'enter';
  cwd?: string;
  /** Left by a run that was killed and in the way of the next (etcd does not remove its stale unix socket). */
  staleFiles?: string[];
}

export const ETCD_BIN = process.env.EGW_ETCD_BIN || '/usr/bin/etcd';

/** The etcd server of a lab on etcd: one member, clients on the underlay and on a unix socket in the state dir. */
function etcdArgv(cfg: LabConfig, dir: string): string[] {
  const ip = cfg.etcd!.ip;
  const peer = `http://127.0.0.1:${ETCD_PEER_PORT}`; // inside the etcd namespace: one member needs no peers
  return [
    ETCD_BIN,
    '--name', `egw-${cfg.name}`,
    '--data-dir', stateFiles.etcdData(dir),
    '--listen-client-urls', `http://${ip}:${ETCD_CLIENT_PORT},unix://${ETCD_SOCKET}`,
    '--advertise-client-urls', `http://${ip}:${ETCD_CLIENT_PORT}`,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `egw-${cfg.name}=${peer}`,
    '--initial-cluster-state', 'new',
    // egw leaves etcd's history to etcd (docs/behaviour.md §4.1, item 7): keep 5 minutes, as kube-apiserver does.
    '--auto-compaction-mode', 'periodic',
    '--auto-compaction-retention', '5m',
    '--logger', 'zap',
    '--log-level', 'warn',
  ];
}

/** Every long-running process of a lab, from its state (one home: lab up and the supervisor both start from this). */
export function labProcesses(state: LabState, dir: string): ProcSpec[] {
  const { config: cfg, egw, datastore } = state;
  const roles = new Set(state.roles);
  const out: ProcSpec[] = [];
  if (cfg.etcd) {
    out.push({ kind: 'etcd', role: 'etcd', argv: etcdArgv(cfg, dir), netns: ns.etcd(cfg.name), cwd: dir, staleFiles: [join(dir, ETCD_SOCKET)] });
    out.push({ kind: 'forwarder', role: 'forwarder', argv: [...egw, 'lab', 'forward', '--lab', cfg.name, '--listen', `127.0.0.1:${state.forwardPort}`, '--to', join(dir, ETCD_SOCKET)] });
  }
  if (cfg.apiserver) {
    // The stand-in Kubernetes API server (src/lab/apiserver.ts): the underlay address for the lab, a unix socket for
    // the host's forwarder, its objects in a journal in the state directory (docs/dataplane.md, "The lab on Kubernetes").
    const listen = `${cfg.apiserver.ip}:${APISERVER_PORT}`;
    const socket = stateFiles.apiserverSocket(dir);
    out.push({ kind: 'apiserver', role: 'apiserver', argv: [...egw, 'lab', 'apiserver', '--listen', listen, '--socket', socket, '--journal', stateFiles.apiserverJournal(dir)], netns: ns.apiserver(cfg.name), cwd: dir });
    out.push({ kind: 'forwarder', role: 'forwarder', argv: [...egw, 'lab', 'forward', '--lab', cfg.name, '--listen', `127.0.0.1:${state.forwardPort}`, '--to', socket] });
  }
  // Kubelets run in their node's network namespace (so they reach an etcd on the underlay) but keep the host's
  // mounts: the pod namespaces they create with `ip netns add` must be visible to everyone (netnsMode 'enter').
  for (const n of cfg.nodes) {
    out.push({ kind: 'kubelet', role: `kubelet-${n.name}`, argv: [...egw, '--datastore', datastore, 'lab', 'kubelet', '--lab', cfg.name, '--node', n.name], netns: ns.node(cfg.name, n.name), netnsMode: 'enter' });
  }
  for (const n of cfg.nodes) {
    out.push({ kind: 'agent', role: `agent-${n.name}`, argv: [...egw, '--datastore', datastore, 'agent', '--node', n.name], netns: ns.node(cfg.name, n.name) });
  }
  // Controllers need only the datastore; they run in the router namespace so that even a lab whose state directory
  // was lost can find and stop them (`ip netns pids`).
  for (let i = 1; i <= (cfg.controllers ?? 1); i++) {
    // (they share the namespace: each its own metrics port, 9093, 9094, …)
    const metrics = `:${METRICS_PORT.controller + i - 1}`;
    out.push({ kind: 'controller', role: `controller-${i}`, argv: [...egw, '--datastore', datastore, 'controller', '--id', `controller-${i}`, '--metrics-listen', metrics], netns: ns.router(cfg.name) });
  }
  // The kube-controller-manager stand-in (Deployments, ReplicaSets: src/lab/kcm.ts) needs only the datastore too.
  out.push({ kind: 'kcm', role: 'kcm', argv: [...egw, '--datastore', datastore, 'lab', 'kcm'], netns: ns.router(cfg.name) });
  out.push({ kind: 'echo', role: 'echo', argv: [...egw, 'lab', 'echo'], netns: ns.ext(cfg.name) });
  // The firewall's connection log: its tcpdumps read the ext namespace's NFLOG groups (src/lab/firewall.ts).
  out.push({ kind: 'firewall', role: 'firewall', argv: [...egw, 'lab', 'firewall-logger', '--lab', cfg.name], netns: ns.ext(cfg.name) });
  return out.filter((p) => roles.has(p.kind as LabRole));
}

/** The supervisor and its watchdog (docs/dataplane.md, "Supervision"): in the caller's namespace, attaching nothing. */
export function supervisorSpec(state: LabState, kind: 'supervisor' | 'watchdog'): ProcSpec {
  return { kind, role: kind, argv: [...state.egw, 'lab', 'supervise', '--lab', state.config.name, ...(kind === 'watchdog' ? ['--watchdog'] : [])] };
}

/**
 * Starts one lab process unless it runs (under its start lock: lab up and the supervisor never both start it) and
 * records it; `restarted` carries the restart count on. Returns the record and whether this call started it.
 */
export function startProcess(
  dir: string,
  spec: ProcSpec,
  env: NodeJS.ProcessEnv,
  opts: { lastExit?: string; onExit?: (e: ExitInfo) => void; selfRecording?: boolean; notARestart?: boolean } = {},
): { rec: ProcRecord | undefined; started: boolean } {
  const pidFile = stateFiles.pidFile(dir, spec.role);
  const r = withStartLock(pidFile, () => {
    const cur = readRecord(pidFile);
    if (cur && isRunning(cur)) return { rec: cur, started: false };
    // Held by `egw lab stop` (checked under the start lock, where labStop writes the marker: no start slips past it).
    if (isHeld(dir, spec.role)) return { rec: cur, started: false };
    for (const f of spec.staleFiles ?? []) rmSync(f, { force: true });
    const rec = spawnDetached({
      role: spec.role,
      argv: spec.argv,
      netns: spec.netns,
      netnsMode: spec.netnsMode,
      cwd: spec.cwd,
      logFile: stateFiles.logFile(dir, spec.role),
      // The supervisor and the watchdog record themselves (claimRecord): at most one of each runs.
      pidFile: opts.selfRecording ? undefined : pidFile,
      env,
      onExit: opts.onExit,
      ...(cur
        ? {
            // `egw lab start` after `egw lab stop` is not a crash: the count stays (as scaling to 0 and back is no restart).
            restarts: (cur.restarts ?? 0) + (opts.notARestart ? 0 : 1),
            lastExit: opts.lastExit ?? `gone (pid ${cur.pid}) by ${new Date().toISOString()}`,
          }
        : {}),
    });
    return { rec, started: true };
  });
  return r ?? { rec: readRecord(pidFile), started: false };
}

/** True while `egw lab stop ROLE` holds the role: nobody starts it until `egw lab start ROLE`. */
export function isHeld(dir: string, role: string): boolean {
  return existsSync(stateFiles.heldFile(dir, role));
}

/** Every process of the lab that `egw lab stop` / `egw lab start` can hold and release, by role. */
export function holdableProcesses(state: LabState, dir: string): ProcSpec[] {
  return [...labProcesses(state, dir), supervisorSpec(state, 'supervisor'), supervisorSpec(state, 'watchdog')];
}

