// A small masquerading topology for the audit tests against the real kernel (docs/kernel.md §8): a client namespace,
// a router namespace that masquerades toward a server namespace running the lab echo server (src/lab/echo.ts), all
// `egw-<tag>-…` (the tag is random per suite) and removed by down(). Connections come from test/helpers/connflood.ts
// run in the client namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localRunner, netnsRunner, type Runner } from '../../src/dataplane/exec.js';
import { KEEP } from '../helpers/env.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FLOOD = join(ROOT, 'test/helpers/connflood.ts');

export interface FloodRec {
  port: number;
  start: number;
  end: number;
  ok: boolean;
}
export interface FloodOut {
  made: number;
  failed: number;
  rate: number;
}

export class NatLab {
  readonly tag: string;
  readonly client: string;
  readonly router: string;
  readonly server: string;
  readonly clientIp = '10.9.1.2';
  readonly serverIp = '10.9.2.2';
  /** The router's address toward the server: what masquerade gives the server. */
  readonly natIp = '10.9.2.1';
  readonly host = localRunner();
  readonly routerRunner: Runner;
  readonly tmp = mkdtempSync(join(tmpdir(), 'egw-natlab-'));
  private echo: ChildProcess | undefined;

  constructor(prefix: string) {
    this.tag = `egw-${prefix}${randomBytes(3).toString('hex')}`;
    this.client = `${this.tag}-c`;
    this.router = `${this.tag}-r`;
    this.server = `${this.tag}-s`;
    this.routerRunner = netnsRunner(this.router);
  }

  async sh(argv: string[], input?: string): Promise<string> {
    return (await this.host.run(argv, input === undefined ? {} : { input })).stdout;
  }

  async up(): Promise<this> {
    const { client: C, router: R, server: S } = this;
    for (const n of [C, R, S]) {
      await this.sh(['ip', 'netns', 'add', n]);
      await this.sh(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
    }
    await this.sh(['ip', '-n', C, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'c0', 'netns', R]);
    await this.sh(['ip', '-n', S, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 's0', 'netns', R]);
    for (const [ns, dev, cidr] of [
      [C, 'eth0', `${this.clientIp}/24`],
      [S, 'eth0', `${this.serverIp}/24`],
      [R, 'c0', '10.9.1.1/24'],
      [R, 's0', `${this.natIp}/24`],
    ]) {
      await this.sh(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', dev]);
      await this.sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
    await this.sh(['ip', '-n', C, 'route', 'add', 'default', 'via', '10.9.1.1']);
    await this.sh(['ip', 'netns', 'exec', R, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await this.sh(['ip', 'netns', 'exec', R, 'nft', '-f', '-'], 'table ip egwtest {\n  chain post {\n    type nat hook postrouting priority srcnat;\n    oifname "s0" masquerade\n  }\n}\n');
    this.echo = spawn(
      'ip',
      ['netns', 'exec', S, process.execPath, '--import', 'tsx', '--input-type=module', '-e', `import { runEcho } from ${JSON.stringify(join(ROOT, 'src/lab/echo.ts'))}; import { memoryLogger } from ${JSON.stringify(join(ROOT, 'src/log.ts'))}; await runEcho({ log: memoryLogger() });`],
      { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    await until('the echo server listening on TCP 7 in the server namespace', async () => (await this.sh(['ip', 'netns', 'exec', S, 'ss', '-Htln', 'sport = :7'])).includes(':7'), 30_000, LAB_POLL);
    return this;
  }

  async down(): Promise<void> {
    const echo = this.echo;
    if (echo?.pid !== undefined && echo.exitCode === null) {
      const gone = new Promise((r) => echo.once('exit', r));
      echo.kill('SIGTERM');
      await Promise.race([gone, sleep(3000)]);
      if (echo.exitCode === null && echo.signalCode === null) echo.kill('SIGKILL');
    }
    if (!KEEP) for (const n of [this.client, this.router, this.server]) await this.host.run(['ip', 'netns', 'del', n], { allowFailure: true });
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** connflood in the client namespace (to the echo server's line port unless `--to` is given). */
  flood(args: string[], name: string): Promise<{ out: FloodOut; recs: FloodRec[] }> {
    return this.startFlood(args, name).done;
  }

  /** The same, with the file of its per-connection records (readRecs) to look at while it runs. */
  startFlood(args: string[], name: string): { done: Promise<{ out: FloodOut; recs: FloodRec[] }>; recFile: string } {
    const recFile = join(this.tmp, `${name}.jsonl`);
    const to = args.includes('--to') ? [] : ['--to', `${this.serverIp}:7`];
    const child = spawn('ip', ['netns', 'exec', this.client, process.execPath, '--import', 'tsx', FLOOD, ...to, ...args, '--record', recFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const done = new Promise<{ out: FloodOut; recs: FloodRec[] }>((resolve, reject) => {
      child.on('close', (code) => {
        if (code !== 0) return reject(new Error(`connflood ${args.join(' ')} exited ${code}: ${stderr}`));
        resolve({ out: JSON.parse(stdout) as FloodOut, recs: readRecs(recFile) });
      });
    });
    return { done, recFile };
  }

  /** Deletes the router's conntrack entries of the client (their DESTROY events come at once). */
  async forget(): Promise<void> {
    await this.host.run(['ip', 'netns', 'exec', this.router, 'conntrack', '-D', '-s', this.clientIp], { allowFailure: true });
  }
}

export function readRecs(file: string): FloodRec[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.endsWith('}'))
    .map((l) => JSON.parse(l) as FloodRec);
}
