// Real `egw controller` processes (bin/egw.js → dist: build first) for the HA and IPAM crash tests: started with an
// id, killed with SIGKILL by their own PID, their stderr kept for a failure message.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readLeader } from '../../src/controller/leader.js';
import type { Store } from '../../src/datastore/types.js';

export const EGW_BIN = fileURLToPath(new URL('../../bin/egw.js', import.meta.url));
const DIST_MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Why bin/egw.js cannot run (dist not built), or undefined. */
export function distMissing(): string | undefined {
  return existsSync(DIST_MAIN) ? undefined : 'needs dist/ (npx tsc -p tsconfig.json, or make build)';
}

export interface ControllerProc {
  id: string;
  child: ChildProcess;
  log(): string;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** kill -9 of exactly this process. */
  kill9(): Promise<void>;
  /** SIGTERM (a clean stop: leadership is given up), waiting for the exit. */
  stop(): Promise<void>;
}

export function startController(datastore: string, id: string, extra: string[] = []): ControllerProc {
  const child = spawn(process.execPath, [EGW_BIN, '--datastore', datastore, 'controller', '--id', id, '--metrics-listen', '127.0.0.1:0', ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, EGW_LOG_LEVEL: process.env.EGW_LOG_LEVEL ?? 'info' },
  });
  let out = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const signal = async (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, sig);
    await exited;
  };
  return { id, child, log: () => out, exited, kill9: () => signal('SIGKILL'), stop: () => signal('SIGTERM') };
}

/** The id of the controller that leads according to the store (a stale lock counts as none). */
export async function leaderId(store: Store): Promise<string | undefined> {
  const l = await readLeader(store);
  return l && !l.stale ? l.holder : undefined;
}
