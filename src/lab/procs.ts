// The lab's processes: started detached with their output in log files, recorded by PID with a marker of their
// command line and start time, and stopped only after /proc shows the PID is still the process we started (so a
// reused PID is never hit).
import { spawn } from 'node:child_process';
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Backoff, sleep } from '../util.js';

/**
 * How every lab process is restarted when it exits (the supervisor's processes, the kubelet's containers), as
 * kubelet's CrashLoopBackOff: 1 s, doubling up to 30 s, back to 1 s once a run lasted 10 s (docs/dataplane.md,
 * "Supervision").
 */
export const RESTART = { minMs: 1000, maxMs: 30_000, resetAfterMs: 10_000 } as const;
export const restartBackoff = (): Backoff => new Backoff({ minMs: RESTART.minMs, maxMs: RESTART.maxMs });

export interface ProcRecord {
  role: string;
  pid: number;
  /** The argv we spawned (for `ip netns exec NS cmd…`, the whole line; after the exec the process shows `cmd…`). */
  argv: string[];
  /** /proc/<pid>/stat start time (clock ticks since boot): unchanged by exec, different for a reused PID. */
  start?: number;
  startedAt: string;
  /** Anything the owner wants to keep with it (pod, container). */
  meta?: Record<string, string>;
  /** How often it was started again after it exited (kept across restarts of the one who restarts it). */
  restarts?: number;
  /** How the previous run ended, e.g. `signal SIGKILL at 2026-…` or `gone at …` (not our child: no status). */
  lastExit?: string;
}

export function readCmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (raw === '') return [];
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** State letter and start time from /proc/<pid>/stat (the command name may hold spaces and parentheses). */
export function procStat(pid: number): { state: string; start: number } | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19]
    return { state: rest[0], start: Number(rest[19]) };
  } catch {
    return undefined;
  }
}

function sameArgv(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The argv the process shows after `ip netns exec NS` or `nsenter --net=… --` has exec'd the command. */
function innerArgv(argv: string[]): string[] | undefined {
  if (argv[0] === 'ip' && argv[1] === 'netns' && argv[2] === 'exec' && argv.length > 4) return argv.slice(4);
  if (argv[0] === 'nsenter' && argv[1]?.startsWith('--net=') && argv[2] === '--' && argv.length > 3) return argv.slice(3);
  return undefined;
}

/** True while the recorded process is alive (not a zombie) and still the one we started. */
export function isRunning(rec: ProcRecord): boolean {
  if (!Number.isInteger(rec.pid) || rec.pid <= 1) return false;
  const st = procStat(rec.pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  if (rec.start !== undefined && st.start !== rec.start) return false;
  const cmd = readCmdline(rec.pid);
  if (!cmd) return false;
  const inner = innerArgv(rec.argv);
  return sameArgv(cmd, rec.argv) || (inner !== undefined && sameArgv(cmd, inner));
}

export function writeRecord(file: string, rec: ProcRecord): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(rec) + '\n');
  renameSync(tmp, file);
}

export function readRecord(file: string): ProcRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(file, 'utf8')) as ProcRecord;
    return typeof rec.pid === 'number' && Array.isArray(rec.argv) ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** Every record in a pids directory, by file name. */
export function readRecords(dir: string): { file: string; rec: ProcRecord }[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.pid')).sort();
  } catch {
    return [];
  }
  const out: { file: string; rec: ProcRecord }[] = [];
  for (const n of names) {
    const rec = readRecord(`${dir}/${n}`);
    if (rec) out.push({ file: `${dir}/${n}`, rec });
  }
  return out;
}

export interface SpawnSpec {
  role: string;
  argv: string[];
  /** Run inside this network namespace. */
  netns?: string;
  /**
   * How: `exec` (default) is `ip netns exec`, which also gives the process a mount namespace of its own (with /sys of
   * the netns); `enter` is `nsenter --net=/run/netns/NS`, the network namespace only, so namespaces the process
   * creates with `ip netns add` are seen by everyone (the lab kubelet).
   */
  netnsMode?: 'exec' | 'enter';
  /** Working directory (default /). */
  cwd?: string;
  logFile: string;
  pidFile?: string;
  env?: NodeJS.ProcessEnv;
  meta?: Record<string, string>;
  restarts?: number;
  lastExit?: string;
  /** Called when the process exits while we still run (we are its parent): how it ended. */
  onExit?: (how: ExitInfo) => void;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: string;
}

/** How a run ended, for ProcRecord.lastExit. */
export function exitText(e: ExitInfo): string {
  return `${e.signal ? `signal ${e.signal}` : `exit ${e.code ?? '?'}`} at ${e.at}`;
}

/** The argv that runs `argv` in a lab network namespace, as SpawnSpec.netnsMode says. */
export function inNetnsArgv(argv: string[], netns: string | undefined, mode: 'exec' | 'enter' = 'exec'): string[] {
  if (!netns) return argv;
  return mode === 'enter' ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv] : ['ip', 'netns', 'exec', netns, ...argv];
}

/** Starts a process detached from us (own session, output appended to its log file) and records it. */
export function spawnDetached(s: SpawnSpec): ProcRecord {
  const argv = inNetnsArgv(s.argv, s.netns, s.netnsMode);
  mkdirSync(dirname(s.logFile), { recursive: true });
  const fd = openSync(s.logFile, 'a');
  let pid: number | undefined;
  try {
    const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: s.env ?? process.env, cwd: s.cwd ?? '/' });
    child.on('error', () => {}); // reported through the missing pid below
    if (s.onExit) child.once('exit', (code, signal) => s.onExit!({ code, signal, at: new Date().toISOString() }));
    pid = child.pid;
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (!pid) throw new Error(`cannot start ${argv.join(' ')}`);
  const rec: ProcRecord = {
    role: s.role,
    pid,
    argv,
    start: procStat(pid)?.start,
    startedAt: new Date().toISOString(),
    ...(s.meta ? { meta: s.meta } : {}),
    ...(s.restarts ? { restarts: s.restarts } : {}),
    ...(s.lastExit ? { lastExit: s.lastExit } : {}),
  };
  if (s.pidFile) writeRecord(s.pidFile, rec);
  return rec;
}

/** This process as a record (for a process that registers itself: the supervisor and its watchdog). */
export function selfRecord(role: string, extra: Partial<ProcRecord> = {}): ProcRecord {
  return { role, pid: process.pid, argv: readCmdline(process.pid) ?? [], start: procStat(process.pid)?.start, startedAt: new Date().toISOString(), ...extra };
}

/**
 * Makes this process the one recorded in `file` unless a live process is recorded there already: at most one
 * supervisor (or watchdog) per lab, however many start at once. The record is created with link(2), which fails if
 * the file exists; a dead holder's record is first renamed away (rename is atomic: of two that race, one wins).
 * Returns the record written, or undefined (someone else holds it). The previous holder's restart count carries over.
 */
export function claimRecord(file: string, role: string): ProcRecord | undefined {
  mkdirSync(dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 5; attempt++) {
    const prev = readRecord(file);
    if (prev && prev.pid !== process.pid && isRunning(prev)) return undefined;
    const mine = selfRecord(role, prev ? { restarts: (prev.restarts ?? 0) + 1, lastExit: `gone (pid ${prev.pid}) by ${new Date().toISOString()}` } : {});
    const tmp = `${file}.${process.pid}.claim`;
    writeFileSync(tmp, JSON.stringify(mine) + '\n');
    try {
      if (prev) {
        const aside = `${file}.${process.pid}.stale`;
        try {
          renameSync(file, aside);
        } catch {
          continue; // someone else moved it first: look again
        }
        const moved = readRecord(aside);
        if (moved && moved.pid !== prev.pid && isRunning(moved)) {
          // Between our read and the rename a live process claimed it: give it back and step aside.
          try {
            linkSync(aside, file);
          } catch {
            /* a third claimer: it holds the file now */
          }
          rmSync(aside, { force: true });
          return undefined;
        }
        rmSync(aside, { force: true });
      }
      try {
        linkSync(tmp, file);
        return mine;
      } catch {
        continue; // created meanwhile: look again
      }
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  return undefined;
}


/**
 * Stops a recorded process: SIGTERM, then SIGKILL after `graceMs`; each signal only while /proc still shows our
 * process. Resolves 'gone' (was not running), 'stopped' or 'killed'.
 */
export async function stopProcess(rec: ProcRecord, graceMs = 3000): Promise<'gone' | 'stopped' | 'killed'> {
  if (!isRunning(rec)) return 'gone';
  try {
    process.kill(rec.pid, 'SIGTERM');
  } catch {
    return 'gone';
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await sleep(50);
    if (!isRunning(rec)) return 'stopped';
  }
  if (!isRunning(rec)) return 'stopped';
  try {
    process.kill(rec.pid, 'SIGKILL');
  } catch {
    return 'stopped';
  }
  for (let i = 0; i < 40 && isRunning(rec); i++) await sleep(50);
  return 'killed';
}

/** The inode of a network namespace file (/run/netns/NAME or /proc/PID/ns/net). */
export function nsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/**
 * Stops processes that live in a network namespace this lab created (found with `ip netns pids`); used when the
 * records are gone (a crash) and for leftovers before a namespace is deleted. Each PID is signalled only while
 * /proc/<pid>/ns/net is still that namespace.
 */
export async function stopProcessesInNetns(netns: string, pids: number[], graceMs = 2000): Promise<number> {
  const ino = nsInode(`/run/netns/${netns}`);
  if (ino === undefined) return 0;
  const inNs = (pid: number) => {
    const st = procStat(pid);
    return st !== undefined && st.state !== 'Z' && nsInode(`/proc/${pid}/ns/net`) === ino;
  };
  const targets = pids.filter((p) => p > 1 && p !== process.pid && inNs(p));
  for (const p of targets) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && targets.some(inNs)) await sleep(50);
  for (const p of targets.filter(inNs)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return targets.length;
}

/**
 * Runs `fn` holding the start lock of `file` (a record file): of several processes that would start the same lab
 * process at once (lab up, the supervisor), one does; the others get undefined. `fn` is synchronous, so the lock is
 * held only while the process is spawned and recorded.
 */
export function withStartLock<T>(file: string, fn: () => T): T | undefined {
  const lock = `${file}.lock`;
  if (!claimRecord(lock, 'start-lock')) return undefined;
  try {
    return fn();
  } finally {
    if (readRecord(lock)?.pid === process.pid) rmSync(lock, { force: true });
  }
}

export function removeFile(file: string): void {
  rmSync(file, { force: true });
}
