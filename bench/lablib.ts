// What the lab benchmarks share (bench/throughput.ts, bench/paths.ts): commands with a time limit, the lab's
// cluster as the datastore says, the source a pod's traffic is seen from, iperf3 and echo servers tracked by PID and runs.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readClusterSummary, type ClusterSummary } from '../src/lab/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const EGW_BIN = join(ROOT, 'bin', 'egw.js');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(argv: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise((res) => {
    const child = execFile(argv[0], argv.slice(1), { timeout: opts.timeoutMs ?? 15_000, encoding: 'utf8', env: opts.env ?? process.env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      res({ code, stdout, stderr });
    });
    child.stdin?.on('error', () => {}); // a command that exits before reading its input
    child.stdin?.end(opts.input);
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const r2 = (x: number): number => Math.round(x * 100) / 100;

export async function canRun(): Promise<string | null> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root';
  for (const tool of ['ip', 'nft', 'iperf3', 'curl']) {
    if ((await run(['sh', '-c', `command -v ${tool}`])).code !== 0) return `needs ${tool}`;
  }
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) return 'needs make build (the lab runs bin/egw.js)';
  return null;
}

export interface Cluster extends ClusterSummary {
  /** Running gateway pods' IPs. */
  gatewayIPs: string[];
}

export async function readCluster(datastore: string): Promise<Cluster> {
  const c = await readClusterSummary(datastore);
  return { ...c, gatewayIPs: c.gateways.filter((p) => p.status?.phase === 'Running' && p.status.podIP).map((p) => p.status!.podIP!) };
}

export const podNetns = (c: Cluster, pod: string): string | undefined => {
  const p = c.pods.get(pod);
  return p?.status?.phase === 'Running' && p.status.podIP ? p.metadata.annotations?.['egw.dev/netns'] : undefined;
};

/** The source address the echo server saw from this pod, or undefined. */
export async function sourceSeen(netns: string, echo: string): Promise<string | undefined> {
  const r = await run(['ip', 'netns', 'exec', netns, 'curl', '-sS', '--noproxy', '*', '--max-time', '2', `http://${echo}/`], { timeoutMs: 5000 });
  try {
    return r.code === 0 ? (JSON.parse(r.stdout) as { sourceIp: string }).sourceIp : undefined;
  } catch {
    return undefined;
  }
}

/** True once a TCP listener on `port` exists in the namespace. */
export async function listening(netns: string, port: number): Promise<boolean> {
  const r = await run(['ip', 'netns', 'exec', netns, 'cat', '/proc/net/tcp', '/proc/net/tcp6']);
  return r.stdout.split('\n').some((l) => {
    const f = l.trim().split(/\s+/);
    return f[3] === '0A' && parseInt(f[1]?.split(':')[1] ?? '', 16) === port;
  });
}

export async function tunnelMtu(netns: string): Promise<number | null> {
  const r = await run(['ip', '-n', netns, '-json', 'link', 'show', 'egw.vxlan']);
  if (r.code !== 0) return null;
  return (JSON.parse(r.stdout) as { mtu: number }[])[0]?.mtu ?? null;
}

export interface IperfServer {
  child: ChildProcess;
  output: () => string;
}

/** `iperf3 -s` in the external namespace, tracked by its PID (ip netns exec execs iperf3 in place). */
export function startServer(netns: string, port: number): IperfServer {
  return startBackground(['ip', 'netns', 'exec', netns, 'iperf3', '-s', '-p', String(port), '--forceflush']);
}

/**
 * The lab's echo server (`egw lab echo`: HTTP and the line echo) on ports of its own in the external namespace,
 * tracked by its PID like iperf3 (stopServer stops both).
 */
export function startEcho(netns: string, httpPort: number, tcpPort: number): IperfServer {
  return startBackground(['ip', 'netns', 'exec', netns, process.execPath, EGW_BIN, 'lab', 'echo', '--http-port', String(httpPort), '--tcp-port', String(tcpPort)]);
}

/** A server process with its stdout and stderr kept. */
function startBackground(argv: string[]): IperfServer {
  let out = '';
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.on('error', () => {});
  return { child, output: () => out };
}

export async function stopServer(s: IperfServer): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null || s.child.pid === undefined) return;
  const gone = new Promise<void>((r) => s.child.once('close', () => r()));
  s.child.kill('SIGTERM');
  await Promise.race([gone, sleep(2000)]);
  if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
}

export interface IperfResult {
  gbps: number;
  retransmits: number;
  mss: number | null;
  /** The source address the server saw on the data connection (a gateway IP, or the node IP). */
  seenFrom: string | null;
}

export async function iperf(netns: string, server: IperfServer, dst: string, port: number, seconds: number, streams = 1): Promise<IperfResult> {
  const before = server.output().length;
  const r = await run(['ip', 'netns', 'exec', netns, 'iperf3', '-c', dst, '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'], { timeoutMs: (seconds + 20) * 1000 });
  let j: {
    error?: string;
    start?: { tcp_mss_default?: number };
    end?: { sum_sent?: { retransmits?: number }; sum_received?: { bits_per_second?: number } };
  };
  try {
    j = JSON.parse(r.stdout);
  } catch {
    throw new Error(`iperf3 -P ${streams} from ${netns}: exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300) || 'no output'}; server: ${server.output().slice(before).trim().slice(-300)}`);
  }
  if (j.error || !j.end?.sum_received?.bits_per_second) throw new Error(`iperf3 from ${netns}: ${j.error ?? 'no result'}`);
  await sleep(200); // the server's log line for the data connection
  // "[  5] local 198.51.100.10 port 5201 connected to 10.10.10.2 port 41574": the data stream (the first line is control)
  const peers = [...server.output().slice(before).matchAll(/\]\s+local \S+ port \d+ connected to (\S+) port \d+/g)].map((m) => m[1]);
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    retransmits: j.end.sum_sent?.retransmits ?? 0,
    mss: j.start?.tcp_mss_default ?? null,
    seenFrom: peers[peers.length - 1] ?? null,
  };
}

