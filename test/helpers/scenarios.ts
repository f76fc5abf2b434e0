// Lab scenarios shared by the end-to-end tests and the benchmarks: the demo manifests with a given number of
// gateways, long-lived connections held from inside a pod, and the kernel's view of a client's routes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { readyCondition } from '../../src/api/pod.js';
import { NETNS_ANNOTATION } from '../../src/lab/topology.js';
import { ROOT } from './cli.js';
import { inNs, run, type LabHarness } from './e2e.js';
import { egressGateway, namespaceNamed, policy } from './resources.js';
import { LAB_POLL, sleep, until } from './wait.js';

export const FIXTURES = fileURLToPath(new URL('../e2e/fixtures/', import.meta.url));
export const ECHO = '198.51.100.10';

/** The manifests of examples/demo, in file order, as one YAML stream. */
export function demoManifests(): string {
  return readdirSync(join(ROOT, 'examples', 'demo'))
    .sort()
    .map((f) => readFileSync(join(ROOT, 'examples', 'demo', f), 'utf8'))
    .join('\n---\n');
}

/** The demo scenario (examples/demo) with a /29 egress pool, `replicas` red gateways and their grace period. */
export function demoScenario(opts: { replicas: number; graceSeconds?: number }): string {
  return demoManifests()
    .replace('cidr: 10.10.10.0/30', 'cidr: 10.10.10.0/29')
    .replace(/replicas: \d+/, `replicas: ${opts.replicas}`)
    .replace(/terminationGracePeriodSeconds: \d+/, `terminationGracePeriodSeconds: ${opts.graceSeconds ?? 10}`);
}

/** The demo's EgressGateway default/red (YAML) with `replicas` pods on the Linux nodes and their grace period. */
export function gatewayManifest(replicas: number, graceSeconds = 10): string {
  return stringify(
    egressGateway('default', 'red', {
      replicas,
      ipPools: [{ name: 'egress-ippool-1' }],
      template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { 'kubernetes.io/os': 'linux' }, terminationGracePeriodSeconds: graceSeconds } },
    }),
  );
}

/** The demo's EgressGatewayPolicy egw-policy1 (YAML): an on-prem range without gateway, the rest via red. */
export function policyManifest(opts: { maxNextHops?: number; onPremCidr?: string; onPremDescription?: string }): string {
  return stringify(
    policy('egw-policy1', [
      { destination: { cidr: opts.onPremCidr ?? '203.0.113.0/24' }, description: opts.onPremDescription ?? 'On-prem: no gateway' },
      {
        description: 'Internet: via red',
        gateway: { namespaceSelector: namespaceNamed('default'), selector: "egress-code == 'red'", ...(opts.maxNextHops !== undefined ? { maxNextHops: opts.maxNextHops } : {}) },
      },
    ]),
  );
}

/** Gateway pods of "red" that run with an IP, not terminating. */
export async function liveGateways(lab: LabHarness): Promise<{ name: string; ip: string; netns: string; ready: boolean }[]> {
  return (await lab.gatewayPods('red'))
    .filter((p) => !p.metadata.deletionTimestamp && p.status?.podIPs?.[0]?.ip)
    .map((p) => ({
      name: p.metadata.name,
      ip: p.status!.podIPs![0].ip,
      netns: p.metadata.annotations?.[NETNS_ANNOTATION] ?? '',
      ready: readyCondition(p)?.status === 'True',
    }));
}

/** The gateway IPs the node's kernel would use for new connections of this client to `dst` (ECMP hops). */
export async function kernelHops(nodeNetns: string, podIp: string, dst = ECHO): Promise<string[]> {
  const rules = JSON.parse((await run(['ip', '-n', nodeNetns, '-N', '-json', 'rule', 'list'])).stdout) as { src?: string; table?: string; priority: number; fwmark?: string }[];
  const rule = rules.find((r) => r.src === podIp && !r.fwmark);
  if (!rule) return [];
  const routes = JSON.parse((await run(['ip', '-n', nodeNetns, '-N', '-json', 'route', 'show', 'table', String(rule.table)])).stdout) as {
    dst: string;
    gateway?: string;
    nexthops?: { gateway: string }[];
  }[];
  const def = routes.find((r) => r.dst === 'default');
  if (!def) return [];
  return (def.nexthops ? def.nexthops.map((h) => h.gateway) : def.gateway ? [def.gateway] : []).sort();
}

export interface HeldConnection {
  id: number;
  ok: boolean;
  seen: string;
}

/** N long-lived TCP connections to the lab's line echo (port 7), held by a process inside the pod's netns. */
export class ConnectionHolder {
  private child!: ChildProcessWithoutNullStreams;
  private lines!: AsyncIterator<string>;

  static async open(podNetns: string, n: number): Promise<ConnectionHolder> {
    const h = new ConnectionHolder();
    h.child = spawn('ip', ['netns', 'exec', podNetns, process.execPath, join(FIXTURES, 'hold-many.mjs'), ECHO, '7', String(n)]);
    h.lines = createInterface({ input: h.child.stdout })[Symbol.asyncIterator]();
    const first = JSON.parse((await h.lines.next()).value);
    assert.equal(first.opened, n, 'every connection opened');
    return h;
  }

  /** One round trip on every connection. */
  async check(): Promise<HeldConnection[]> {
    this.child.stdin.write('check\n');
    const next = await this.lines.next();
    assert.ok(!next.done, 'the connection holder exited');
    return JSON.parse(next.value);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.stdin.write('quit\n');
    await new Promise((r) => {
      this.child.once('exit', r);
      setTimeout(() => {
        this.child.kill('SIGKILL');
        r(undefined);
      }, 2000);
    });
  }
}

/**
 * Runs new-conn-loop.mjs in the pod (a new connection every intervalMs) while `during` runs; `during` returns the
 * epoch time of the failure it caused. Reports how long after it new connections still failed.
 */
export async function failoverProbe(podNetns: string, opts: { intervalMs: number; durationMs: number; during: () => Promise<number>; url?: string }) {
  const loop = inNs(podNetns, [process.execPath, join(FIXTURES, 'new-conn-loop.mjs'), opts.url ?? `http://${ECHO}/`, String(opts.intervalMs), String(opts.durationMs), '300'], opts.durationMs + 20_000);
  const failedAt = await opts.during();
  const r = await loop;
  assert.equal(r.code, 0, r.stderr);
  const { start, results } = JSON.parse(r.stdout) as { start: number; results: [number, number, string][] };
  const failed = results.filter(([, ok]) => !ok).map(([t]) => start + t);
  const lastFailure = failed.length ? Math.max(...failed) : undefined;
  return {
    requests: results.length,
    failures: failed.length,
    /** From the failure to the start of the last connection that failed (what docs/behaviour.md §5's "within 1 s" bounds). */
    outageMs: lastFailure === undefined ? 0 : Math.max(0, lastFailure - failedAt),
    failuresBeforeIt: failed.filter((t) => t < failedAt).length,
  };
}

export interface StepResult {
  step: string;
  /** Connections alive before the step. */
  connections: number;
  /** Of those, how many broke during the step. */
  broken: number;
  /** Broken although their gateway stayed healthy (must be 0). */
  brokenOnHealthyGateways: number;
  /** Still working but seen with another source IP (must be 0). */
  sourceChanged: number;
  /** Connections on the gateway this step killed (expected to break). */
  onKilledGateway: number;
  /** The kernel's ECMP hops for the client after the step. */
  hops: string[];
}

/**
 * docs/behaviour.md §5 "no collateral damage" in a lab already running `demoScenario({replicas: 3})`: 30 long-lived connections
 * from tenant-b/client-b, then scale 3 → 5, maxNextHops 0 → 2, an unrelated policy edit, one gateway's link cut,
 * scale down to 2 (draining; checked inside the drain window). Returns what happened to the connections per step.
 */
export async function collateralScenario(lab: LabHarness, opts: { graceSeconds: number; connections?: number }): Promise<StepResult[]> {
  const client = await lab.podReady('tenant-b', 'client-b');
  const node = lab.nodeNetns(client.node);
  const hops = () => kernelHops(node, client.ip);
  await until('3 gateways in the client\'s route', async () => (await hops()).length === 3, 30_000, LAB_POLL);
  const holder = await ConnectionHolder.open(client.netns, opts.connections ?? 30);
  const results: StepResult[] = [];
  try {
    let alive = (await holder.check()).filter((c) => c.ok);
    const step = async (name: string, healthyIps: string[], killed?: string): Promise<void> => {
      const now = await holder.check();
      const r: StepResult = { step: name, connections: alive.length, broken: 0, brokenOnHealthyGateways: 0, sourceChanged: 0, onKilledGateway: 0, hops: await hops() };
      for (const before of alive) {
        const c = now.find((x) => x.id === before.id)!;
        if (before.seen === killed) r.onKilledGateway++;
        if (!c.ok) {
          r.broken++;
          if (healthyIps.includes(before.seen)) r.brokenOnHealthyGateways++;
        } else if (c.seen !== before.seen) r.sourceChanged++;
      }
      results.push(r);
      alive = now.filter((c) => c.ok);
    };
    const live = async () => (await liveGateways(lab)).map((g) => g.ip);

    await lab.apply(gatewayManifest(5, opts.graceSeconds));
    await until('5 gateways in the route', async () => (await hops()).length === 5, 30_000, LAB_POLL);
    await step('scale 3 → 5', await live());

    await lab.apply(policyManifest({ maxNextHops: 2 }));
    await until('2 hops in the route', async () => (await hops()).length === 2, 15_000, LAB_POLL);
    await step('maxNextHops 0 → 2', await live());

    const tableOf = async () => {
      const rules = JSON.parse((await run(['ip', '-n', node, '-N', '-json', 'rule', 'list'])).stdout) as { src?: string; table?: string; fwmark?: string }[];
      return rules.find((x) => x.src === client.ip && !x.fwmark)?.table;
    };
    await lab.apply(policyManifest({ maxNextHops: 2, onPremCidr: '203.0.113.0/25', onPremDescription: 'On-prem (half): no gateway' }));
    await until('the edited rule in the kernel', async () => (await run(['ip', '-n', node, 'route', 'show', 'table', String(await tableOf())])).stdout.includes('203.0.113.0/25'), 15_000, LAB_POLL);
    await step('unrelated policy rule edited', await live());

    // Kill the gateway that carries the most connections: both sides of the claim show.
    const gws = await liveGateways(lab);
    const count = (ip: string) => alive.filter((c) => c.seen === ip).length;
    const victim = [...gws].sort((a, b) => count(b.ip) - count(a.ip))[0];
    await cutGatewayLink(victim.netns);
    await until('the dead gateway out of the route', async () => !(await hops()).includes(victim.ip), 5_000, LAB_POLL);
    await step('one gateway dies (link cut)', gws.map((g) => g.ip).filter((ip) => ip !== victim.ip), victim.ip);

    const ready = (await liveGateways(lab)).filter((g) => g.ready).map((g) => g.ip);
    await lab.apply(gatewayManifest(2, opts.graceSeconds));
    await until('3 gateways terminating', async () => (await lab.gatewayPods('red')).filter((p) => p.metadata.deletionTimestamp).length === 3, 10_000, LAB_POLL);
    await until('new connections only via the 2 remaining gateways', async () => {
      const remaining = await live();
      const h = await hops();
      return h.length > 0 && h.every((x) => remaining.includes(x));
    }, 5_000, LAB_POLL);
    await sleep(1000);
    await step('scale 5 → 2, inside the drain window', ready);
  } finally {
    await holder.close();
  }
  return results;
}

/** Cuts a gateway pod off the network (its eth0 down; the kernel drops the routes through it). */
export async function cutGatewayLink(podNetns: string): Promise<void> {
  const r = await run(['ip', '-n', podNetns, 'link', 'set', 'eth0', 'down']);
  assert.equal(r.code, 0, r.stderr);
}

/** Brings the link back with the routes the lab kubelet made (a link going down drops them). */
export async function restoreGatewayLink(podNetns: string): Promise<void> {
  for (const argv of [
    ['link', 'set', 'eth0', 'up'],
    ['route', 'replace', '169.254.1.1', 'dev', 'eth0', 'scope', 'link'],
    ['route', 'replace', 'default', 'via', '169.254.1.1', 'dev', 'eth0'],
  ]) {
    const r = await run(['ip', '-n', podNetns, ...argv]);
    assert.equal(r.code, 0, r.stderr);
  }
}
