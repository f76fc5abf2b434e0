// `egw lab supervise --lab L [--watchdog]`: keeps a lab's long-running processes running (docs/dataplane.md,
// "Supervision"), as a DaemonSet, a Deployment or kubelet would.
//
//   supervisor  restarts every lab process of lab.json's roles (etcd, forwarder, kubelets, agents, controllers,
//               echo, firewall) and the watchdog
//   watchdog    restarts the supervisor
//   kubelets    restart their pods' containers (src/lab/kubelet.ts)
//
// so a kill -9 of any one of them ends with it back. Each restart waits as RESTART says (1 s doubling to 30 s, reset
// after 10 s of running) and is recorded in the process's record (restarts, lastExit), which `egw lab status` shows.
// At most one supervisor and one watchdog run per lab: each records itself with claimRecord and exits when its
// record names another live process. Both stop when the lab goes: `lab down` writes the `stopping` marker first, and
// a lab whose state or underlay namespace is gone is not supervised. A role held by `egw lab stop` is left stopped
// until `egw lab start` (docs/dataplane.md, "Stopping one process for a while").
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from '../log.js';
import { errText, sleep, type Backoff } from '../util.js';
import { Kernel } from './kernel.js';
import { labChildEnv, labStateDir, labStateRoot, ns, stateFiles } from './names.js';
import { RESTART, claimRecord, exitText, isRunning, readRecord, restartBackoff, type ProcRecord } from './procs.js';
import { isHeld, labProcesses, readLabState, startProcess, supervisorSpec, type ProcSpec } from './topology.js';

export interface SuperviseOptions {
  lab: string;
  watchdog?: boolean;
  log: Logger;
  signal?: AbortSignal;
  stateRoot?: string;
  /** How often records are checked (ms); default 250. */
  pollMs?: number;
}

interface Watched {
  backoff: Backoff;
  /** When it may be started again (ms since epoch); undefined while it runs. */
  nextStart?: number;
  /** How it ended, if we were its parent. */
  exit?: string;
  /** Set right after we started a self-recording process, until its record appears. */
  awaitingClaim?: number;
  /** Held by `egw lab stop` when last looked at. */
  held?: boolean;
}

/** Why this lab must not be supervised (any more), or undefined. */
function notSupervised(dir: string, lab: string, k: Kernel): string | undefined {
  if (existsSync(stateFiles.stopping(dir))) return 'the lab is being taken down';
  if (!existsSync(stateFiles.config(dir))) return 'the lab state is gone';
  if (!k.netnsExists(ns.net(lab))) return 'the lab namespaces are gone';
  return undefined;
}

export async function runSupervisor(o: SuperviseOptions): Promise<void> {
  const root = o.stateRoot ? resolve(o.stateRoot) : labStateRoot();
  const dir = labStateDir(o.lab, root);
  const me = o.watchdog ? 'watchdog' : 'supervisor';
  const k = new Kernel();
  const why = notSupervised(dir, o.lab, k);
  if (why) {
    o.log.info(`not started: ${why}`);
    return;
  }
  const myFile = stateFiles.pidFile(dir, me);
  const mine = claimRecord(myFile, me);
  if (!mine) {
    o.log.info(`another ${me} runs; exiting`, { pid: readRecord(myFile)?.pid });
    return;
  }
  o.log.info('started', { lab: o.lab, restarts: mine.restarts ?? 0 });
  const env = labChildEnv(root, o.lab);
  const watched = new Map<string, Watched>();

  const check = (spec: ProcSpec, selfRecording: boolean): void => {
    const w = watched.get(spec.role) ?? { backoff: restartBackoff() };
    watched.set(spec.role, w);
    const rec = readRecord(stateFiles.pidFile(dir, spec.role));
    const now = Date.now();
    if (isHeld(dir, spec.role)) {
      // `egw lab stop ROLE`: stopped on purpose; nothing to restart until `egw lab start ROLE` (startProcess checks
      // again under the start lock).
      if (!w.held) o.log.info('held (egw lab stop); not restarting', { role: spec.role });
      w.held = true;
      w.nextStart = undefined;
      w.exit = undefined;
      w.awaitingClaim = undefined;
      w.backoff.reset();
      return;
    }
    if (w.held) o.log.info('released (egw lab start)', { role: spec.role });
    w.held = false;
    if (rec && isRunning(rec)) {
      w.awaitingClaim = undefined;
      w.nextStart = undefined;
      if (w.backoff.failures && now - Date.parse(rec.startedAt) >= RESTART.resetAfterMs) w.backoff.reset();
      return;
    }
    if (w.awaitingClaim !== undefined && now - w.awaitingClaim < 5000) return; // it is starting and will record itself
    if (w.nextStart === undefined) {
      // Not running: the first look after it stopped (or a role with no record yet: start at once).
      const delay = rec ? w.backoff.next() : 0;
      w.nextStart = now + delay;
      if (rec) o.log.warn('exited; restarting', { role: spec.role, pid: rec.pid, inMs: delay, how: w.exit ?? 'not our child' });
    }
    if (now < w.nextStart) return;
    if (notSupervised(dir, o.lab, k)) return;
    try {
      const r = startProcess(dir, spec, env, {
        lastExit: w.exit,
        selfRecording,
        onExit: (e) => {
          w.exit = exitText(e);
        },
      });
      w.exit = undefined;
      w.nextStart = undefined;
      if (r.started) {
        o.log.info('started again', { role: spec.role, pid: r.rec?.pid, restarts: r.rec?.restarts });
        if (selfRecording) w.awaitingClaim = now;
      }
    } catch (e) {
      w.nextStart = now + w.backoff.next();
      o.log.error('could not start', { role: spec.role, error: errText(e) });
    }
  };

  const poll = o.pollMs ?? 250;
  while (!o.signal?.aborted) {
    const stop = notSupervised(dir, o.lab, k);
    if (stop) {
      o.log.info(`stopping: ${stop}`);
      return;
    }
    // Still the one? (Two may have started at once; the record decides.)
    const cur = readRecord(myFile);
    if (!cur || cur.pid !== process.pid) {
      if (cur && isRunning(cur)) {
        o.log.info(`another ${me} holds the lab; exiting`, { pid: cur.pid });
        return;
      }
      if (!claimRecord(myFile, me)) return;
    }
    const state = readLabState(o.lab, root);
    if (state) {
      if (o.watchdog) {
        check(supervisorSpec(state, 'supervisor'), true);
      } else {
        for (const spec of labProcesses(state, dir)) check(spec, false);
        check(supervisorSpec(state, 'watchdog'), true);
      }
    }
    await sleep(poll, o.signal);
  }
  // Asked to stop (SIGTERM): leave every process running; a new supervisor adopts them.
  const rec: ProcRecord | undefined = readRecord(myFile);
  o.log.info('stopped (the lab processes keep running)', { pid: rec?.pid });
}
