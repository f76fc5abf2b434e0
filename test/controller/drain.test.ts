// Drain end to end in a lab of network namespaces (root; `npx tsc -p tsconfig.json` first: the lab runs bin/egw.js).
// The demo scenario (two red gateways); client-a holds one TCP connection to the echo's line echo through gateway G,
// then `egw delete pod G --grace-period 10`:
//   - the held connection keeps working through G for the whole window (a line a second, every answer G's ip:port);
//   - new connections avoid G at once (none started 1 s after the delete reaches it);
//   - the clients of G carry the three gatewayMaintenance* annotations with G's IP and window; `egw status` shows G
//     Draining, and a replacement is created at once;
//   - after the window G's pod is gone, its network namespace removed and its address released.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EgressGateway } from '../../src/api/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { podNames } from '../../src/lab/names.js';
import { LabHarness } from '../helpers/e2e.js';
import { gate } from '../helpers/env.js';
import { maintenanceAnnotations } from '../helpers/resources.js';
import { demoManifests, ECHO } from '../helpers/scenarios.js';
import { LAB_POLL, until } from '../helpers/wait.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const GRACE = 10;

/** This suite's labs are named td + hex (≤ 8 characters), apart from other suites'. */
class DrainLab extends LabHarness {
  override readonly name = `td${randomBytes(3).toString('hex')}`;
}

/** Runs a fixture inside a pod's netns, collecting its JSON lines as they come. */
function fixture(netns: string, script: string, args: string[]): { child: ChildProcess; lines: Record<string, any>[]; done: Promise<void> } {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, join(FIXTURES, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, any>[] = [];
  let buf = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (l.trim()) lines.push(JSON.parse(l));
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited ${code}: ${err}`))));
  });
  return { child, lines, done };
}

test('drain: a gateway deleted with a 10 s grace period keeps its connections for 10 s, gets no new ones, and its clients are told', { timeout: 180_000 }, async (t) => {
  if (!gate(t, ['ip', 'nft', 'curl'])) return;
  const lab = new DrainLab();
  const children: ChildProcess[] = [];
  try {
    const tUp = Date.now();
    await lab.up();
    await lab.apply(demoManifests());
    const client = await lab.podReady('tenant-a', 'client-a');
    const gatewayIps = await until('two gateway pods with IPs', async () => {
      const ips = (await lab.gatewayPods('red')).map((p) => p.status?.podIPs?.[0]?.ip).filter((x): x is string => !!x);
      return ips.length === 2 ? ips.sort() : undefined;
    }, 30_000, LAB_POLL);
    await until('client-a routed through a gateway', async () => gatewayIps.includes((await lab.curl('tenant-a', 'client-a', `http://${ECHO}/`))?.sourceIp ?? ''), 30_000, LAB_POLL);
    t.diagnostic(`lab up and routed in ${Date.now() - tUp} ms; gateways ${gatewayIps.join(', ')}`);

    // The long-lived connection, and which gateway it uses.
    const hold = fixture(client.netns, 'hold-line.mjs', [ECHO, '7', String(GRACE + 6), '1000']);
    children.push(hold.child);
    const first = await until('the first answer on the held connection', async () => hold.lines.find((l) => l.answer), 10_000, LAB_POLL);
    const [gIp] = first.answer.split(':');
    assert.ok(gatewayIps.includes(gIp), `held connection seen as ${first.answer}`);
    const g = (await lab.gatewayPods('red')).find((p) => p.status?.podIPs?.[0]?.ip === gIp)!;
    const gName = g.metadata.name;
    const gNetns = podNames(lab.name, 'default', gName).netns;
    await until('two answers', async () => hold.lines.filter((l) => l.answer).length >= 2, 5000, LAB_POLL);

    // New connections throughout, then the delete.
    const fresh = fixture(client.netns, 'new-conns.mjs', [ECHO, '7', String(GRACE - 1), '100']);
    children.push(fresh.child);
    await until('new connections flowing', async () => fresh.lines.length >= 3, 5000, LAB_POLL);
    const tDel = Date.now();
    const del = await lab.egw(['delete', 'pod', gName, '--grace-period', String(GRACE)]);
    assert.deepEqual([del.code, del.stdout], [0, `pod "${gName}" deleted\n`], del.stderr);
    const terminating = (await lab.pod('default', gName))!;
    const deadline = Date.parse(terminating.metadata.deletionTimestamp!);
    assert.equal(terminating.metadata.deletionGracePeriodSeconds, GRACE);
    assert.ok(deadline >= tDel + GRACE * 1000 && deadline <= Date.now() + GRACE * 1000, terminating.metadata.deletionTimestamp);

    // The clients of G are told; egw status shows it draining; a replacement is on its way.
    const want = maintenanceAnnotations(gIp, new Date(deadline - GRACE * 1000).toISOString(), terminating.metadata.deletionTimestamp!);
    const told = async (ns: string, name: string) => {
      const a = (await lab.pod(ns, name))?.metadata.annotations ?? {};
      return Object.entries(want).every(([k, v]) => a[k] === v);
    };
    const toldMs = await until('client-a and client-b annotated', async () => (await told('tenant-a', 'client-a')) && (await told('tenant-b', 'client-b')), 5000, LAB_POLL).then(() => Date.now() - tDel);
    const plain = (await lab.pod('plain', 'client-plain'))!.metadata.annotations ?? {};
    assert.ok(!Object.keys(plain).some((k) => k.includes('gatewayMaintenance')), 'client-plain uses no gateway');
    await until('status: G draining', async () => {
      const st = ((await lab.store.get({ kind: 'EgressGateway', namespace: 'default', name: 'red' })) as EgressGateway).status;
      return st?.replicas?.some((r) => r.pod === gName && r.health === 'Draining' && r.ip === gIp) ? st : undefined;
    }, 5000, LAB_POLL);
    const status = await lab.egw(['status']);
    assert.match(status.stdout, new RegExp(`\\n  ${gName} +node-\\d +${gIp.replace(/\./g, '\\.')} +Draining +2 +drain window ends `));
    t.diagnostic('egw status during the drain:');
    for (const line of status.stdout.trimEnd().split('\n')) t.diagnostic(`  ${line}`);
    await until('a replacement', async () => (await lab.gatewayPods('red')).filter((p) => !p.metadata.deletionTimestamp).length === 2, 5000, LAB_POLL);

    await Promise.all([hold.done, fresh.done]);

    // The held connection: every line sent during the window was answered within a second, through G, on the same
    // source port.
    const sent = hold.lines.filter((l) => l.event === 'sent' && l.t >= tDel && l.t < deadline);
    assert.ok(sent.length >= GRACE - 1, `only ${sent.length} lines sent in the window: ${JSON.stringify(hold.lines)}`);
    for (const s of sent) {
      const a = hold.lines.find((l) => l.answer !== undefined && l.i === s.i);
      assert.ok(a, `line ${s.i}, sent ${s.t - tDel} ms after the delete, got no answer: ${JSON.stringify(hold.lines)}`);
      assert.equal(a.answer, first.answer, `line ${s.i} answered as ${a.answer}`);
      assert.ok(a.got - a.sent < 1000, `line ${s.i} took ${a.got - a.sent} ms`);
    }
    const lastOk = hold.lines.filter((l) => l.answer === first.answer).at(-1)!;
    t.diagnostic(`held connection: all ${sent.length} lines sent during the window answered through ${first.answer}; last answer ${lastOk.got - tDel} ms after the delete (window ${deadline - tDel} ms)`);

    // New connections: none that started 1 s after the delete reached G, and none failed.
    const after1s = fresh.lines.filter((l) => l.t >= tDel + 1000);
    assert.ok(after1s.length >= 30, `only ${after1s.length} new connections`);
    const onG = after1s.filter((l) => l.answer?.startsWith(`${gIp}:`));
    assert.deepEqual(onG, [], 'new connections reached the draining gateway');
    assert.deepEqual(after1s.filter((l) => l.error), [], 'new connections failed');
    const lastOnG = fresh.lines.filter((l) => l.answer?.startsWith(`${gIp}:`) && l.t >= tDel).at(-1);
    t.diagnostic(
      `new connections after the delete: ${fresh.lines.filter((l) => l.t >= tDel).length}, ${lastOnG ? `the last one through G started ${lastOnG.t - tDel} ms after it` : 'none through G'}; clients annotated ${toldMs} ms after it`,
    );

    // After the window: G's pod, namespace and address are gone.
    await until('G removed', async () => !(await lab.pod('default', gName)), (deadline - Date.now()) + 15_000, LAB_POLL);
    const goneMs = Date.now() - deadline;
    assert.ok(Date.now() >= deadline, 'not before its deletionTimestamp');
    await until('G\'s network namespace removed', async () => !existsSync(`/run/netns/${gNetns}`), 10_000, LAB_POLL);
    await until('G\'s address released', async () => !(await new Ipam(lab.store).allocations()).has(`pod:default/${gName}`), 10_000, LAB_POLL);
    t.diagnostic(`G's pod removed ${goneMs} ms after its window ended`);
    // The annotations stay: they describe the last maintenance.
    assert.ok(await told('tenant-a', 'client-a'));
  } finally {
    for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGTERM');
    await lab.down();
  }
});
