// Process helpers the benchmarks share (bench/flows.ts, bench/scrape.ts): tools on PATH, CPU of a process, commands
// with a time limit, children stopped by the PID we started, children whose stdout comes line by line.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function onPath(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** CPU seconds from /proc/<pid>/stat: own (utime+stime) and reaped children (cutime+cstime); null when gone. */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
export function cpuOf(pid: number | null | undefined): { own: number; children: number } | null {
  if (!pid) return null;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    const n = (i: number) => Number(f[i - 3]);
    return { own: (n(14) + n(15)) / CLK_TCK, children: (n(16) + n(17)) / CLK_TCK };
  } catch {
    return null;
  }
}

/** A command with a time limit (iperf3 must not hang the bench); never throws for its exit code. */
export function runTimed(argv: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(argv[0], argv.slice(1), { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0, stdout, stderr });
    });
  });
}

export async function stopChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise<void>((r) => c.once('close', () => r()));
  c.kill(signal);
  await Promise.race([gone, sleep(graceMs)]);
  if (c.exitCode === null && c.signalCode === null) {
    c.kill('SIGKILL');
    await Promise.race([gone, sleep(2000)]);
  }
}

/** A child of the bench (tracked in `children` until it closes) whose stdout is handed on line by line. */
export function spawnLines(argv: string[], opts: { cwd?: string }, children: Set<ChildProcess>, onLine: (line: string) => void): ChildProcess {
  const child = spawn(argv[0]!, argv.slice(1), { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('close', () => children.delete(child));
  child.on('error', () => {});
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (buf + d).split('\n');
    buf = lines.pop()!;
    for (const l of lines) onLine(l);
  });
  return child;
}

/** Resident memory of a process in MiB (VmRSS), or null when it is gone. */
export function rssMiB(pid: number | null | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round((Number(m[1]) / 1024) * 100) / 100 : null;
  } catch {
    return null;
  }
}
