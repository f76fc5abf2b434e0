// Runs the egw CLI in-process (fast, for tables of cases) or as the real executable (bin/egw.js, needs `make build`).
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const EGW_BIN = fileURLToPath(new URL('../../bin/egw.js', import.meta.url));

/** In-process: `egw ARGS` with the given cwd and stdin. Calls must not overlap (cwd is process-wide). */
export async function runCli(args: string[], opts: { cwd?: string; stdin?: string } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const prev = process.cwd();
  if (opts.cwd) process.chdir(opts.cwd);
  try {
    const code = await main(['node', 'egw', ...args], {
      out: (s) => void (stdout += s),
      err: (s) => void (stderr += s),
      stdin: Readable.from([opts.stdin ?? '']),
    });
    return { code, stdout, stderr };
  } finally {
    process.chdir(prev);
  }
}

/** The real executable, as a user runs it. */
export function spawnEgw(args: string[], opts: { cwd?: string; stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [EGW_BIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}
