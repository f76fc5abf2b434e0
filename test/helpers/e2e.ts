// Shared by the tests that need root and network namespaces: command running, and a harness that brings a whole
// lab up with the real egw executable. Whether they may run is test/helpers/env.ts (gate, suiteGate); polls are
// test/helpers/wait.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Resource } from '../../src/api/meta.js';
import { openStore } from '../../src/datastore/open.js';
import type { Store } from '../../src/datastore/types.js';
import { labDown, labUp, type LabInfo } from '../../src/lab/index.js';
import { stateFiles } from '../../src/lab/names.js';
import { isRunning, readRecord, stopProcess, type ProcRecord } from '../../src/lab/procs.js';
import { NETNS_ANNOTATION } from '../../src/lab/topology.js';
import { ANNOTATION, type Pod } from '../../src/api/types.js';
import { memoryLogger } from '../../src/log.js';
import { runCli, type CliResult } from './cli.js';
import { LAB_POLL, until } from './wait.js';

// What bench/failover.ts takes from here (it predates env.ts and wait.ts).
export { missingPrerequisite } from './env.js';
export { sleep, until } from './wait.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(argv: string[], timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export const inNs = (netns: string, argv: string[], timeoutMs?: number) => run(['ip', 'netns', 'exec', netns, ...argv], timeoutMs);

export async function ipJson(netns: string | undefined, args: string[]): Promise<Record<string, unknown>[]> {
  const r = await run(['ip', ...(netns ? ['-n', netns] : []), '-json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim() ? JSON.parse(r.stdout) : [];
}

/** A lab brought up with the real `egw` executable (bin/egw.js: `make build` first), torn down by `down()`. */
export class LabHarness {
  readonly name: string;
  /** `name`: the lab's name (namespaces egw-<name>-…); a random one by default. */
  constructor(name?: string) {
    this.name = name ?? `e${randomBytes(3).toString('hex')}`;
  }
  readonly dir = mkdtempSync(join(tmpdir(), 'egw-e2e-'));
  /** The lab's datastore as this process reaches it: an SQLite file, or (a lab on etcd) what lab up printed. */
  datastore = `sqlite:${join(this.dir, 'egw.db')}`;
  readonly logs = memoryLogger();
  info!: LabInfo;
  store!: Store;

  /** Brings the lab up from examples/lab/demo.yaml with this harness's name. */
  async up(labYaml?: string): Promise<this> {
    const file = join(this.dir, 'lab.yaml');
    writeFileSync(
      file,
      labYaml ?? this.labFile(),
    );
    const ownServer = /^datastore: (etcd|kubernetes)$/m.test(readFileSync(file, 'utf8'));
    this.info = await labUp({ file, datastore: ownServer ? undefined : this.datastore, log: this.logs });
    this.datastore = this.info.hostDatastore;
    this.store = await openStore(this.datastore);
    return this;
  }

  /** The default two-node lab file of up(), with extra top-level fields (e.g. `datastore: etcd`). */
  labFile(extra = ''): string {
    return (
      `name: ${this.name}\nnodes:\n  - {name: node-1, labels: {kubernetes.io/os: linux}}\n  - {name: node-2, labels: {kubernetes.io/os: linux}}\n` +
      `external:\n  restricted: {ip: 198.51.100.20, allow: [10.10.10.0/30]}\n  networks: [203.0.113.0/24]\n${extra}`
    );
  }

  async down(): Promise<void> {
    await this.store?.close().catch(() => {});
    await labDown({ name: this.name, log: this.logs }).catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** `egw ARGS` against this lab's datastore, in-process. */
  egw(args: string[], stdin?: string): Promise<CliResult> {
    return runCli(['--datastore', this.datastore, ...args], { stdin });
  }

  async apply(yaml: string): Promise<void> {
    const r = await this.egw(['apply', '-f', '-'], yaml);
    assert.equal(r.code, 0, r.stderr);
  }

  /** `egw apply` of objects made with test/helpers/resources.ts, as YAML. */
  async applyResources(...objects: Resource[]): Promise<void> {
    await this.apply(objects.map((o) => stringify(o)).join('---\n'));
  }

  async pod(ns: string, name: string): Promise<Pod | undefined> {
    return (await this.store.get({ kind: 'Pod', namespace: ns, name })) as Pod | undefined;
  }

  /** Waits until the pod runs with an IP and returns its netns and IP. */
  async podReady(ns: string, name: string, timeoutMs = 20_000): Promise<{ netns: string; ip: string; node: string }> {
    return until(`pod ${ns}/${name} running`, async () => {
      const p = await this.pod(ns, name);
      const ip = p?.status?.podIPs?.[0]?.ip;
      const netns = p?.metadata.annotations?.[NETNS_ANNOTATION];
      return ip && netns && p.status?.phase === 'Running' ? { netns, ip, node: p.spec.nodeName ?? '' } : undefined;
    }, timeoutMs, LAB_POLL);
  }

  async gatewayPods(egw: string, ns = 'default'): Promise<Pod[]> {
    const pods = (await this.store.list('Pod', { namespace: ns })).items as Pod[];
    return pods.filter((p) => p.metadata.annotations?.[ANNOTATION.gatewayOf] === egw);
  }

  /** Runs argv inside a pod's network namespace. */
  async inPod(ns: string, name: string, argv: string[], timeoutMs?: number): Promise<RunResult> {
    const { netns } = await this.podReady(ns, name);
    return inNs(netns, argv, timeoutMs);
  }

  /** GET url from inside the pod; the echo server's JSON, or undefined if the request failed. */
  async curl(ns: string, name: string, url: string): Promise<{ sourceIp: string; sourcePort: number } | undefined> {
    const r = await this.inPod(ns, name, ['curl', '-sS', '--noproxy', '*', '--max-time', '3', url]);
    if (r.code !== 0) return undefined;
    try {
      return JSON.parse(r.stdout);
    } catch {
      return undefined;
    }
  }

  nodeNetns(node: string): string {
    return this.info.namespaces.nodes[node];
  }

  /** Stops one of the lab's processes (e.g. `agent-node-1`) by its recorded PID. */
  async stop(role: string): Promise<number> {
    const rec = readRecord(stateFiles.pidFile(this.info.stateDir, role));
    assert.ok(rec, `no process record for ${role}`);
    await stopProcess(rec);
    return rec.pid;
  }

  /** The record of one lab process (e.g. `agent-node-1`, `supervisor`), or undefined. */
  record(role: string): ProcRecord | undefined {
    return readRecord(stateFiles.pidFile(this.info.stateDir, role));
  }

  /** kill -9 of one lab process by its recorded PID (only while /proc shows it is that process); returns the record. */
  kill9(role: string): ProcRecord {
    const rec = this.record(role);
    assert.ok(rec && isRunning(rec), `${role} is not running`);
    process.kill(rec.pid, 'SIGKILL');
    return rec;
  }

  /** Waits until `role` runs again as another process than `old` (its supervisor restarted it); returns the record. */
  async cameBack(role: string, old: ProcRecord, timeoutMs = 40_000): Promise<ProcRecord> {
    return until(`${role} to be restarted`, async () => {
      const r = this.record(role);
      return r && r.pid !== old.pid && isRunning(r) ? r : undefined;
    }, timeoutMs, LAB_POLL);
  }
}

/** The lines of a lab log at or after `since` (each line starts with its ISO time). */
export function logSince(file: string, since: number): string[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => {
    const t = Date.parse(l.slice(0, 24));
    return Number.isFinite(t) && t >= since;
  });
}
