// kill -9 of a gateway's `egw gateway` process disturbs no traffic (docs/behaviour.md §3.4, §3.5), in a lab (root,
// network namespaces, the real egw processes from dist/ — `npx tsc -p tsconfig.json` first):
//   long-lived TCP connections from tenant-b/client-b spread over the demo's 2 red gateways; a new connection every
//   50 ms; kill -9 of the process of the gateway that carries the most connections; the lab kubelet restarts it.
//   Then: 0 connections broken (each still answers, with the same source IP), no new connection failed and some went
//   through the restarting gateway, its IP never left the client node's route, the agents never said DOWN (they
//   held it UP on the refusals of its kernel and saw it answer again), and the restarted process changed nothing in
//   the kernel ("data plane already right", never "data plane programmed") nor in its Pod's Ready condition.
//   And a real failure during such a hold still fails over: kill -9, then the gateway's link cut while the agents
//   hold it — its kernel's refusals stop, the agents declare it DOWN (long before the 30 s grace ends) and it leaves
//   the route; link back → the restarted process answers → UP and in the route again.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readyCondition } from '../../src/api/pod.js';
import { stateFiles } from '../../src/lab/names.js';
import { readRecords } from '../../src/lab/procs.js';
import { inNs, LabHarness, logSince } from '../helpers/e2e.js';
import { suiteGate } from '../helpers/env.js';
import { ConnectionHolder, cutGatewayLink, demoManifests, ECHO, FIXTURES, kernelHops, liveGateways, restoreGatewayLink } from '../helpers/scenarios.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';

/** A lab named `tc<hex>` (this suite's prefix). */
class Lab extends LabHarness {
  override readonly name = `tc${randomBytes(3).toString('hex')}`;
}

const root = suiteGate(['ip', 'nft', 'curl']);
const lab = new Lab();
const CONNECTIONS = 20;
/** The gateway the first test killed (the second kills another: see "Limit" in src/agent/health.ts). */
let killedFirst = '';

describe('kill -9 of a gateway process', { skip: root.skip }, () => {
  before(async () => {
    root.check();
    await lab.up();
    await lab.apply(demoManifests());
  });
  after(async () => {
    await lab.down();
  });

  test('breaks no connection, fails no new one, keeps the gateway UP and in the routes, and changes nothing in the kernel', { timeout: 120_000 }, async () => {
    const client = await lab.podReady('tenant-b', 'client-b', 30_000);
    const node = lab.nodeNetns(client.node);
    await until('both red gateways ready and in client-b\'s route', async () => {
      const ready = (await liveGateways(lab)).filter((g) => g.ready);
      return ready.length === 2 && (await kernelHops(node, client.ip)).length === 2 ? ready : undefined;
    }, 40_000, LAB_POLL);
    const logs = join(lab.info.stateDir, 'logs');
    const agentLogs = Object.keys(lab.info.namespaces.nodes).map((n) => stateFiles.logFile(lab.info.stateDir, `agent-${n}`));
    // the gateways' kernels get their ICMP tokens back (spent on refusals while their ports were closed at start)
    await sleep(2000);
    const holder = await ConnectionHolder.open(client.netns, CONNECTIONS);
    try {
      const before = await holder.check();
      assert.equal(before.filter((c) => c.ok).length, CONNECTIONS);
      const gws = await liveGateways(lab);
      const on = (ip: string) => before.filter((c) => c.seen === ip).length;
      const victim = [...gws].sort((a, b) => on(b.ip) - on(a.ip))[0];
      killedFirst = victim.name;
      assert.ok(on(victim.ip) > 0, `the victim ${victim.name} carries connections: ${JSON.stringify(before)}`);
      const rec = readRecords(join(lab.info.stateDir, 'pids')).find((r) => r.rec.meta?.pod === `default/${victim.name}`)?.rec;
      assert.ok(rec, `the process record of ${victim.name}`);
      const gwLog = join(logs, `pod-default_${victim.name}-${rec.meta!.container}.log`);
      const condBefore = readyCondition((await lab.pod('default', victim.name))!);
      assert.equal(condBefore?.status, 'True');

      // New connections every 50 ms for 9 s (2 s timeout: a slow machine is not a failure), and the client node's
      // route sampled every 100 ms, while the gateway process is killed 1 s in and restarted by the kubelet.
      const loop = inNs(client.netns, [process.execPath, join(FIXTURES, 'new-conn-loop.mjs'), `http://${ECHO}/`, '50', '9000', '2000'], 40_000);
      const hops: string[][] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          hops.push(await kernelHops(node, client.ip));
          await sleep(100);
        }
      })();
      await sleep(1000);
      const killedAt = Date.now();
      const old = lab.kill9(rec.role);
      let back;
      let r;
      try {
        back = await lab.cameBack(rec.role, old);
        // the restarted process has programmed (adopted) its data plane, so it answers the agents again; then the
        // agents' UP hysteresis (failureCount replies) and a reconcile
        await until('the restarted gateway to be ready to forward', () => logSince(gwLog, killedAt).some((l) => l.includes('ready to forward')), 30_000, LAB_POLL);
        await sleep(1500);
      } finally {
        r = await loop;
        sampling = false;
        await sampler;
      }
      assert.equal(r.code, 0, r.stderr);
      console.log(
        `# kill -9 of ${victim.name} (${on(victim.ip)} of ${CONNECTIONS} connections): restarted after ${Date.parse(back.startedAt) - killedAt} ms; ` +
          `agents: ${agentLogs.flatMap((f) => logSince(f, killedAt)).filter((l) => l.includes(`gateway default/${victim.name}`)).map((l) => l.slice(25, 200)).join(' | ')}`,
      );

      // the long-lived connections: every one still answers, through the same gateway
      const afterCheck = await holder.check();
      const broken = before.filter((b) => !afterCheck.find((a) => a.id === b.id)?.ok);
      const moved = before.filter((b) => afterCheck.find((a) => a.id === b.id)?.seen !== b.seen);
      assert.deepEqual({ broken: broken.length, moved: moved.length }, { broken: 0, moved: 0 }, `after kill -9 of ${victim.name} (${on(victim.ip)} of its connections): ${JSON.stringify(afterCheck)}`);

      // new connections: none failed, and the restarting gateway took its share of them
      const { start, results } = JSON.parse(r.stdout) as { start: number; results: [number, number, string][] };
      const failed = results.filter(([, ok]) => !ok);
      assert.deepEqual(failed, [], `new connections failed (of ${results.length})`);
      const viaVictim = results.filter(([t, , ip]) => start + t > killedAt && ip === victim.ip).length;
      assert.ok(viaVictim > 0, `new connections through ${victim.ip} after the kill: ${viaVictim}`);

      // the gateway never left the client node's route
      assert.ok(hops.length > 20, `${hops.length} route samples`);
      const without = hops.filter((h) => !h.includes(victim.ip));
      assert.deepEqual(without, [], `samples of the route without ${victim.ip}`);

      // the agents: held UP on the refusals, never DOWN
      const agentLines = agentLogs.flatMap((f) => logSince(f, killedAt)).filter((l) => l.includes(`gateway default/${victim.name}`));
      assert.deepEqual(agentLines.filter((l) => / DOWN/.test(l)), [], 'an agent declared the killed gateway DOWN');
      assert.ok(agentLines.some((l) => l.includes('its kernel refuses the heartbeats; keeping it UP')), agentLines.join('\n'));
      assert.ok(agentLines.some((l) => l.includes('answers again after')), agentLines.join('\n'));

      // the restarted process: 0 kernel changes, its Pod's Ready condition untouched
      const gwLines = logSince(gwLog, killedAt);
      assert.ok(Date.parse(back.startedAt) >= killedAt - 1000, `restarted at ${back.startedAt}`);
      assert.ok(gwLines.some((l) => l.includes('data plane already right')), gwLines.join('\n'));
      assert.deepEqual(gwLines.filter((l) => l.includes('data plane programmed')), [], 'the restarted gateway changed the kernel');
      assert.deepEqual(gwLines.filter((l) => l.includes('pod Ready condition written')), [], 'the restarted gateway rewrote its Ready condition');
      const condAfter = readyCondition((await lab.pod('default', victim.name))!);
      assert.deepEqual(condAfter, condBefore);
    } finally {
      await holder.close();
    }
  });

  test('a link cut while the agents hold a killed gateway: the refusals stop, it is DOWN long before the grace ends, and back once it answers', { timeout: 120_000 }, async () => {
    const client = await lab.podReady('tenant-b', 'client-b');
    const node = lab.nodeNetns(client.node);
    const gws = await until('both red gateways ready and in the route', async () => {
      const ready = (await liveGateways(lab)).filter((g) => g.ready);
      return ready.length === 2 && (await kernelHops(node, client.ip)).length === 2 ? ready : undefined;
    }, 40_000, LAB_POLL);
    const victim = gws.find((g) => g.name !== killedFirst)!;
    // A gateway that has just opened its port (it stays closed until the process is ready) or come back from a restart
    // has spent its kernel's ICMP tokens on refusals; they come back at one a second (src/agent/health.ts, "Limit").
    await sleep(2000);
    const agentLogs = Object.keys(lab.info.namespaces.nodes).map((n) => stateFiles.logFile(lab.info.stateDir, `agent-${n}`));
    const lines = (since: number, files = agentLogs) => files.flatMap((f) => logSince(f, since)).filter((l) => l.includes(`gateway default/${victim.name}`));
    const rec = readRecords(join(lab.info.stateDir, 'pids')).find((r) => r.rec.meta?.pod === `default/${victim.name}`)?.rec;
    assert.ok(rec);
    const killedAt = Date.now();
    lab.kill9(rec.role);
    // both agents heartbeat it (clients of red on both nodes): cut only once each holds it (one cut before would see
    // no refusal at all and rightly count plain misses)
    await until('both agents to hold it on refusals', () => agentLogs.every((f) => lines(killedAt, [f]).some((l) => l.includes('its kernel refuses the heartbeats'))), 10_000, { ...LAB_POLL, everyMs: 50 });
    const cutAt = Date.now();
    await cutGatewayLink(victim.netns);
    try {
      // within the refusal freshness (2 s) plus the misses, not at the end of the 30 s grace
      const downs = await until('both agents to declare it DOWN', () => {
        const d = agentLogs.map((f) => lines(cutAt, [f]).find((l) => / DOWN: /.test(l)));
        return d.every((x) => x !== undefined) ? (d as string[]) : undefined;
      }, 15_000, LAB_POLL);
      for (const d of downs) assert.match(d, /heartbeats missed \(\d+ ms\); no refusal from its kernel for \d+ ms/, `the agents on ${victim.name}:\n${lines(0).join('\n')}`);
      const down = downs[0];
      await until('the gateway out of client-b\'s route', async () => !(await kernelHops(node, client.ip)).includes(victim.ip), 5_000, LAB_POLL);
      console.log(`# link cut ${cutAt - killedAt} ms after kill -9 (held): DOWN ${Date.parse(down.slice(0, 24)) - cutAt} ms after the cut: ${down.slice(25, 220)}`);
    } finally {
      await restoreGatewayLink(victim.netns);
    }
    // the restarted process answers over the restored link: UP again, back in the route
    await until('the gateway back in client-b\'s route', async () => (await kernelHops(node, client.ip)).includes(victim.ip), 30_000, LAB_POLL);
    assert.ok(lines(cutAt).some((l) => / UP: /.test(l)));
  });
});
