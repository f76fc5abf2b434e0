// Running kernel tools (ip, bridge, nft, sysctl via /proc) in the current network namespace or in a named one.
// Every kernel command egw sends goes through a Runner, so tests can record the exact text and labs can aim a
// component at a namespace without re-launching it there. The command texts themselves are built in commands.ts.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Text written to the command's stdin (for `ip -batch -`, `nft -f -`). */
  input?: string;
  /** Resolve with a non-zero code instead of throwing. */
  allowFailure?: boolean;
}

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: RunResult,
  ) {
    super(`${argv.join(' ')} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'CommandError';
  }
}

export interface Runner {
  /** The network namespace commands run in (undefined = the caller's own). */
  readonly netns?: string;
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
}

let stdinSeq = 0;

/**
 * Input goes to the child as a regular (already unlinked) file, not a pipe: Node's pipes are socket pairs, and
 * tools that open `/dev/stdin` by path (`nft -f -`) cannot open a socket ("No such device or address").
 */
function inputFd(input: string): number {
  const path = join(tmpdir(), `egw-stdin-${process.pid}-${++stdinSeq}-${Math.random().toString(16).slice(2, 10)}`);
  writeFileSync(path, input, { flag: 'wx', mode: 0o600 });
  try {
    return openSync(path, 'r');
  } finally {
    unlinkSync(path);
  }
}

function spawnCommand(argv: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const fd = opts.input !== undefined ? inputFd(opts.input) : undefined;
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(argv[0], argv.slice(1), { stdio: [fd ?? 'pipe', 'pipe', 'pipe'] }) as ChildProcessWithoutNullStreams;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => reject(new Error(`${argv[0]}: ${e.message}`)));
    child.on('close', (code) => {
      const result = { code: code ?? -1, stdout, stderr };
      if (result.code !== 0 && !opts.allowFailure) reject(new CommandError(argv, result));
      else resolve(result);
    });
    // With an input file there is no stdin pipe (child.stdin is null despite the type).
    const stdin = child.stdin as ChildProcessWithoutNullStreams['stdin'] | null;
    if (stdin) {
      stdin.on('error', () => {}); // a command that exits early closes its stdin; the exit code tells
      stdin.end();
    }
  });
}

/** Commands in the caller's own network namespace. */
export function localRunner(): Runner {
  return { run: (argv, opts = {}) => spawnCommand(argv, opts) };
}

/** Commands in the named network namespace (`ip netns exec NS …`). */
export function netnsRunner(netns: string): Runner {
  return { netns, run: (argv, opts = {}) => spawnCommand(['ip', 'netns', 'exec', netns, ...argv], opts) };
}

/** Records commands instead of running them, answering from a table; for unit tests of command text. */
export class RecordingRunner implements Runner {
  readonly calls: { argv: string[]; input?: string }[] = [];
  constructor(private readonly answer: (argv: string[], input?: string) => RunResult = () => ({ code: 0, stdout: '', stderr: '' })) {}
  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv, input: opts.input });
    const r = this.answer(argv, opts.input);
    if (r.code !== 0 && !opts.allowFailure) throw new CommandError(argv, r);
    return r;
  }
}
