// A lab on etcd, and supervision (root, network namespaces, Debian's etcd; bin/egw.js → dist: build first):
//   1. `datastore: etcd`: the lab runs etcd in egw-<lab>-etcd on the underlay; pods get addresses, a client's traffic
//      leaves through a gateway, and the CLI on the host reads the lab's objects through the datastore lab up printed.
//   2. kill -9 of each long-running lab process in turn (the gateway container the stream goes through, agents, the
//      controller, kubelets, etcd, the forwarder, the supervisor, its watchdog): each comes back, and a long TCP
//      connection through a gateway keeps exchanging lines and new connections keep succeeding the whole time.
// Skipped (with the reason) without root or etcd; EGW_E2E=1 makes that a failure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Pod } from '../../src/api/types.js';
import { labDown, labStatus } from '../../src/lab/index.js';
import { isRunning, readRecords, type ProcRecord } from '../../src/lab/procs.js';
import { etcdMissing } from '../datastore/etcd-server.js';
import { ipJson, LabHarness, run } from '../helpers/e2e.js';
import { E2E, missingPrerequisite } from '../helpers/env.js';
import { demoManifests, ECHO } from '../helpers/scenarios.js';
import { ConnStream } from '../helpers/stream.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';

const missing = missingPrerequisite(['ip', 'nft', 'curl']) ?? etcdMissing();
const lab = new LabHarness();

/** The long connection and the new ones, from a process inside the client pod (fixtures/conn-stream.mjs). */

/** The host namespace's links, addresses and routes. */
async function hostSnapshot(): Promise<string> {
  const links = (await ipJson(undefined, ['link'])).map((l) => [l.ifindex, l.ifname, l.mtu, l.link_type, l.address, l.master]);
  const addrs = (await ipJson(undefined, ['addr'])).map((a) => [a.ifname, (a.addr_info as { local: string; prefixlen: number }[]).map((i) => `${i.local}/${i.prefixlen}`)]);
  const routes = await ipJson(undefined, ['route', 'show', 'table', 'all']);
  return JSON.stringify({ links, addrs, routes });
}

describe('a lab on etcd, supervised', { skip: missing && !E2E ? missing : false }, () => {
  let hostBefore = '';
  let gateways: Pod[] = [];
  before(async () => {
    if (missing) assert.fail(`EGW_E2E=1 but this test cannot run: ${missing}`);
    hostBefore = await hostSnapshot();
    await lab.up(lab.labFile('datastore: etcd\n'));
    await lab.apply(demoManifests());
    for (const [ns, name] of [['tenant-a', 'client-a'], ['plain', 'client-plain'], ['tenant-b', 'client-b']]) await lab.podReady(ns, name, 30_000);
    gateways = await until('two ready gateway pods', async () => {
      const gws = await lab.gatewayPods('red');
      const ready = gws.filter((p) => p.status?.podIP && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return ready.length === 2 ? ready : undefined;
    }, 40_000, LAB_POLL);
  });
  after(async () => {
    await lab.down();
  });

  test('etcd runs in its own namespace on the underlay; every lab process uses it there; the host through the printed export', async () => {
    assert.match(lab.info.hostDatastore, /^etcd:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(lab.info.datastore, 'etcd://172.31.0.2:2379');
    const etcdNs = `egw-${lab.name}-etcd`;
    assert.ok(existsSync(`/run/netns/${etcdNs}`));
    const etcd = lab.record('etcd');
    assert.ok(etcd && isRunning(etcd));
    assert.ok((await run(['ip', 'netns', 'pids', etcdNs])).stdout.split(/\s+/).includes(String(etcd.pid)), 'etcd runs in the etcd namespace');
    const addr = (await ipJson(etcdNs, ['addr', 'show', 'dev', 'eth0']))[0].addr_info as { family: string; local: string }[];
    assert.deepEqual(addr.filter((a) => a.family === 'inet').map((a) => a.local), ['172.31.0.2']);
    for (const role of ['kubelet-node-1', 'agent-node-2', 'controller-1']) {
      const argv = lab.record(role)!.argv;
      assert.equal(argv[argv.indexOf('--datastore') + 1], 'etcd://172.31.0.2:2379', role);
    }
    // The CLI, as a user would after `export EGW_DATASTORE=…` (lab status prints it).
    assert.match(await labStatus({ name: lab.name }), new RegExp(`export EGW_DATASTORE=${lab.info.hostDatastore.replace(/\./g, '\\.')}`));
    const r = await lab.egw(['get', 'pods', '-A', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const names = (JSON.parse(r.stdout).items as Pod[]).map((p) => `${p.metadata.namespace}/${p.metadata.name}`);
    for (const p of ['tenant-a/client-a', 'plain/client-plain', 'tenant-b/client-b', ...gateways.map((g) => `default/${g.metadata.name}`)]) assert.ok(names.includes(p), `${p} in ${names}`);
    // Pods got addresses; traffic leaves through a gateway (annotated namespace) or the node (plain).
    const a = await until('client-a through a gateway', async () => {
      const x = await lab.curl('tenant-a', 'client-a', `http://${ECHO}/`);
      return x && gateways.some((g) => g.status?.podIP === x.sourceIp) ? x : undefined;
    }, 20_000, LAB_POLL);
    assert.match(a.sourceIp, /^10\.10\.10\.[0-3]$/);
    assert.equal((await lab.curl('plain', 'client-plain', `http://${ECHO}/`))?.sourceIp, '172.31.0.11');
    assert.equal(await hostSnapshot(), hostBefore, 'nothing attached to the host namespace (the forwarder listens on loopback only)');
  });

  test('kill -9 of each long-running process: each comes back, the stream through a gateway never stops', { timeout: 400_000 }, async () => {
    const client = await lab.podReady('tenant-a', 'client-a');
    const s = await ConnStream.open(client.netns);
    try {
      const first = await until('the stream to answer', async () => {
        const r = await s.report();
        return r.stream.replies > 0 && r.fresh.ok > 0 ? r : undefined;
      }, 10_000, LAB_POLL);
      const streamGw = first.stream.seen.split(':')[0];
      const victim = gateways.find((g) => g.status?.podIP === streamGw);
      assert.ok(victim, `the stream leaves through a gateway (${first.stream.seen})`);
      // Kill the gateway the stream uses first (while its kubelet is still its parent: exit status known): its kernel
      // keeps forwarding and the agents hold it UP while it restarts (docs/behaviour.md §3.4).
      const gwRole = readRecords(`${lab.info.stateDir}/pids`).find((r) => r.rec.meta?.pod === `default/${victim.metadata.name}`)!.rec.role;
      const roles = [gwRole, 'agent-node-1', 'agent-node-2', 'controller-1', 'controller-2', 'kubelet-node-1', 'kubelet-node-2', 'etcd', 'forwarder', 'echo'];
      const back = new Map<string, ProcRecord>();
      for (const role of roles) {
        const before = await s.report();
        const old = lab.kill9(role);
        back.set(role, await lab.cameBack(role, old));
        await sleep(1500);
        const now = await s.report();
        // echo is the far end of the stream: the connection goes with it (a new one is opened below), and the new
        // connections of the moment it was away fail.
        if (role === 'echo') break;
        assert.ok(now.stream.ok, `the long connection broke after kill -9 of ${role}`);
        assert.ok(now.stream.replies > before.stream.replies, `the long connection stopped exchanging after kill -9 of ${role}`);
        assert.equal(now.fresh.fail, 0, `new connections failed after kill -9 of ${role}: ${JSON.stringify(now.fresh)}`);
      }
      assert.ok((await s.report()).fresh.ok > 0);
      for (const [role, rec] of back) assert.ok((rec.restarts ?? 0) >= 1, `${role}: restarts counted (${JSON.stringify(rec)})`);
      // The gateway pod counts its container's restart, as kubelet does.
      const cs = await until('restartCount of the killed gateway', async () => {
        const p = await lab.pod('default', victim.metadata.name);
        const c = (p?.status?.containerStatuses as { restartCount: number; lastState: { terminated?: { exitCode?: number; signal?: number } } }[] | undefined)?.[0];
        return c && c.restartCount >= 1 ? c : undefined;
      }, 15_000, LAB_POLL);
      assert.deepEqual([cs.lastState.terminated?.exitCode, cs.lastState.terminated?.signal], [137, 9]);
      const status = await labStatus({ name: lab.name });
      assert.match(status, /agent-node-1 +pid \d+ +running +restarts 1/);
      assert.match(status, new RegExp(`${gwRole} +pid \\d+ +running +restarts 1 \\(last: signal SIGKILL`));
    } finally {
      s.close();
    }
    // The rest of the sequence, on a new stream (the echo server was the far end of the old one).
    const s2 = await ConnStream.open(client.netns);
    try {
      await until('the new stream to answer', async () => (await s2.report()).stream.replies > 0, 10_000, LAB_POLL);
      for (const role of ['supervisor', 'watchdog']) {
        const before = await s2.report();
        const old = lab.kill9(role);
        await lab.cameBack(role, old);
        await sleep(1000);
        const now = await s2.report();
        assert.ok(now.stream.ok && now.stream.replies > before.stream.replies, `the stream after kill -9 of ${role}`);
      }
      assert.equal((await s2.report()).fresh.fail, 0);
    } finally {
      s2.close();
    }
  });

  test('lab down stops everything, the supervisors first (nothing comes back)', async () => {
    const recs = readRecords(`${lab.info.stateDir}/pids`).map((r) => r.rec);
    assert.ok(recs.some((r) => r.role === 'supervisor') && recs.some((r) => r.role === 'watchdog') && recs.some((r) => r.role === 'etcd'));
    const res = await labDown({ name: lab.name, log: lab.logs });
    assert.equal(res.stopped.findIndex((x) => x.role === 'supervisor' || x.role === 'watchdog') >= 0, true);
    await sleep(2000); // longer than the first restart delay: a supervisor left running would have started something
    assert.deepEqual(recs.filter(isRunning).map((r) => r.role), []);
    assert.deepEqual((await run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(`egw-${lab.name}-`)), []);
    assert.equal(await hostSnapshot(), hostBefore);
  });
});
