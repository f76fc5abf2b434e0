// The lab end to end (root, network namespaces): topology, pods, routing, the restricted service, kubelet restart,
// pod deletion, lab down after a crash. Skipped (with the reason) without root; EGW_E2E=1 makes that a failure.
import { updateWithRetry } from '../../src/datastore/retry.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ANNOTATION, type Container, type Pod } from '../../src/api/types.js';
import { openStore } from '../../src/datastore/open.js';
import type { Store } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { labDown, labExec, labStatus, labUp, LabFileError, podNames } from '../../src/lab/index.js';
import { NETNS_ANNOTATION } from '../../src/lab/topology.js';
import { isRunning, readRecord, readRecords, stopProcess, type ProcRecord } from '../../src/lab/procs.js';
import { memoryLogger } from '../../src/log.js';
import { inNs, ipJson, run } from '../helpers/e2e.js';
import { gate } from '../helpers/env.js';
import { ippool, pod } from '../helpers/resources.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';

const SHIM = fileURLToPath(new URL('./egw-shim.ts', import.meta.url));
const EGW = [process.execPath, '--import', import.meta.resolve('tsx'), SHIM];

const curl = (netns: string, url: string, extra: string[] = []) => inNs(netns, ['curl', '-sS', '--noproxy', '*', '--max-time', '4', ...extra, url]);

/** The host namespace's links, addresses and routes, without counters that move on their own. */
async function hostSnapshot(): Promise<string> {
  const links = (await ipJson(undefined, ['link'])).map((l) => [l.ifindex, l.ifname, l.mtu, l.link_type, l.address, l.master]);
  const addrs = (await ipJson(undefined, ['addr'])).map((a) => [a.ifname, (a.addr_info as { local: string; prefixlen: number }[]).map((i) => `${i.local}/${i.prefixlen}`)]);
  const routes = await ipJson(undefined, ['route', 'show', 'table', 'all']);
  const rules = await ipJson(undefined, ['rule']);
  return JSON.stringify({ links, addrs, routes, rules }, null, 1);
}


/** The one container of a lab pod (the lab kubelet runs its command in the pod's namespace). */
function main(command?: string[]): Container[] {
  return [{ name: 'main', image: 'lab', ...(command ? { command } : {}) }];
}

async function running(store: Store, namespace: string, name: string): Promise<Pod> {
  return until(`pod ${namespace}/${name} Running`, async () => {
    const p = (await store.get({ kind: 'Pod', namespace, name })) as Pod | undefined;
    return p?.status?.phase === 'Running' && p.status.podIP && p.metadata.annotations?.[NETNS_ANNOTATION] ? p : undefined;
  }, 15_000, LAB_POLL);
}

async function counter(netns: string, name: string): Promise<number> {
  const r = await inNs(netns, ['nft', '-j', 'list', 'counter', 'ip', 'egw-lab', name]);
  assert.equal(r.code, 0, r.stderr);
  const obj = (JSON.parse(r.stdout).nftables as Record<string, { packets: number }>[]).find((o) => o.counter);
  return obj!.counter.packets;
}

async function routeTo(netns: string, ip: string): Promise<string | undefined> {
  const routes = await ipJson(netns, ['route', 'show', `${ip}/32`]);
  return routes.length ? String(routes[0].gateway ?? routes[0].dev) : undefined;
}

function labNamespaces(lab: string): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`egw-${lab}-`)).sort() : [];
}

const LAB_FILE = (name: string) => `name: ${name}
underlay: {cidr: 172.31.0.0/24, mtu: 1500}
nodes:
  - {name: node-1, labels: {kubernetes.io/os: linux}}
  - {name: node-2, labels: {kubernetes.io/os: linux, zone: b}}
external:
  cidr: 198.51.100.0/24
  echo: 198.51.100.10
  restricted: {ip: 198.51.100.20, allow: [10.10.10.0/30]}
  networks: [203.0.113.0/24]
podPool: {name: default-ipv4-ippool, cidr: 10.244.0.0/16, blockSize: 26}
`;

test('a two-node lab: topology, pods, routing, firewall, kubelet restart, pod deletion, lab down after a crash', { timeout: 85_000 }, async (t) => {
  if (!gate(t)) return;
  const lab = `tl${randomBytes(3).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), `egw-lab-${lab}-`));
  const stateRoot = join(tmp, 'state');
  const file = join(tmp, 'lab.yaml');
  writeFileSync(file, LAB_FILE(lab));
  const datastore = `sqlite:${join(tmp, 'egw.db')}`;
  const log = memoryLogger();
  let store: Store | undefined;
  t.after(async () => {
    await store?.close().catch(() => {});
    await labDown({ name: lab, stateRoot, log }).catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  });

  const hostBefore = await hostSnapshot();
  const up = () => labUp({ file, datastore, stateRoot, log, start: ['kubelet', 'echo'], egw: EGW });
  const info = await up();
  store = await openStore(datastore);
  const n1 = `egw-${lab}-n-node-1`;
  const n2 = `egw-${lab}-n-node-2`;
  const router = `egw-${lab}-router`;
  const ext = `egw-${lab}-ext`;
  const stateDir = join(stateRoot, lab);

  await t.test('lab up builds the namespaces, links and addresses of docs/dataplane.md', async () => {
    assert.equal(info.existed, false);
    assert.equal(info.datastore, datastore);
    assert.deepEqual(info.nodes, [
      { name: 'node-1', ip: '172.31.0.11', netns: n1 },
      { name: 'node-2', ip: '172.31.0.12', netns: n2 },
    ]);
    assert.deepEqual(labNamespaces(lab), [`egw-${lab}-ext`, `egw-${lab}-n-node-1`, `egw-${lab}-n-node-2`, `egw-${lab}-net`, `egw-${lab}-router`]);
    const addrs = async (netns: string, dev: string) =>
      ((await ipJson(netns, ['addr', 'show', 'dev', dev]))[0].addr_info as { family: string; local: string; prefixlen: number }[])
        .filter((a) => a.family === 'inet')
        .map((a) => `${a.local}/${a.prefixlen}`);
    assert.deepEqual(await addrs(router, 'eth0'), ['172.31.0.1/24']);
    assert.deepEqual(await addrs(router, 'ext0'), ['198.51.100.1/24']);
    assert.deepEqual((await addrs(ext, 'eth0')).sort(), ['198.51.100.10/24', '198.51.100.20/24', '203.0.113.10/24']);
    assert.deepEqual(await addrs(n1, 'eth0'), ['172.31.0.11/24']);
    assert.deepEqual(await addrs(n2, 'eth0'), ['172.31.0.12/24']);
    assert.equal((await ipJson(n1, ['route', 'show', 'default']))[0].gateway, '172.31.0.1');
    assert.equal((await ipJson(ext, ['route', 'show', 'default']))[0].gateway, '198.51.100.1');
    const ports = (await ipJson(`egw-${lab}-net`, ['link', 'show', 'master', 'br0'])).map((l) => l.ifname).sort();
    assert.deepEqual(ports, ['rtr0', 'v-node-1', 'v-node-2']);
    assert.equal((await run(['ip', 'netns', 'exec', n1, 'cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), '1');
    // The datastore: nodes with their labels and InternalIP, and the pod pool.
    const node2 = await store!.get({ kind: 'Node', namespace: '', name: 'node-2' });
    assert.deepEqual(node2?.metadata.labels, { 'kubernetes.io/os': 'linux', zone: 'b', 'kubernetes.io/hostname': 'node-2' });
    assert.deepEqual((node2?.status as { addresses: unknown[] }).addresses[0], { type: 'InternalIP', address: '172.31.0.12' });
    const pool = await store!.get({ kind: 'IPPool', namespace: '', name: 'default-ipv4-ippool' });
    assert.deepEqual([(pool?.spec as { cidr: string }).cidr, (pool?.spec as { natOutgoing: boolean }).natOutgoing], ['10.244.0.0/16', true]);
    // From a node, the external host answers on every address.
    const r = await curl(n1, 'http://203.0.113.10/');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).server, '203.0.113.10:80');
  });

  await t.test('lab up again reports the lab and duplicates nothing', async () => {
    const before = readRecords(join(stateDir, 'pids')).map((r) => r.rec.pid);
    const links = (await ipJson(`egw-${lab}-net`, ['link'])).length;
    const again = await up();
    assert.equal(again.existed, true);
    assert.deepEqual(again.processes.map((p) => [p.role, p.started]), [
      ['kubelet-node-1', false],
      ['kubelet-node-2', false],
      ['echo', false],
      ['supervisor', false],
    ]);
    assert.deepEqual(readRecords(join(stateDir, 'pids')).map((r) => r.rec.pid), before);
    assert.equal((await ipJson(`egw-${lab}-net`, ['link'])).length, links);
    assert.equal(labNamespaces(lab).length, 5);
  });

  await t.test('nothing is added to the host network namespace', async () => {
    assert.equal(await hostSnapshot(), hostBefore);
  });

  let client!: Pod;
  let server!: Pod;
  const clientNs = podNames(lab, 'default', 'client').netns;
  await t.test('a pod gets an address from the pool and reaches the echo server with it (no NAT yet)', async () => {
    await store!.create(pod('default', 'client', { node: 'node-1', containers: main(['sleep', '3600']) }));
    const script = "require('http').createServer((q,s)=>s.end(q.socket.remoteAddress)).listen(8080, '0.0.0.0')";
    await store!.create(pod('default', 'server', { node: 'node-2', containers: main([process.execPath, '-e', script]) }));
    client = await running(store!, 'default', 'client');
    server = await running(store!, 'default', 'server');
    assert.match(client.status!.podIP!, /^10\.244\./);
    assert.equal(client.status!.hostIP, '172.31.0.11');
    assert.deepEqual(client.status!.podIPs, [{ ip: client.status!.podIP }]);
    assert.deepEqual(client.status!.conditions?.map((c) => [c.type, c.status]), [['Ready', 'True']]);
    assert.equal(client.metadata.annotations![NETNS_ANNOTATION], clientNs);
    const r = await curl(clientNs, 'http://198.51.100.10/');
    assert.equal(r.code, 0, r.stderr);
    const seen = JSON.parse(r.stdout);
    assert.equal(seen.sourceIp, client.status!.podIP);
    assert.equal(seen.server, '198.51.100.10:80');
    // The pod's side: IP/32 on eth0, default via 169.254.1.1; MTU of the underlay.
    const eth0 = (await ipJson(clientNs, ['addr', 'show', 'dev', 'eth0']))[0];
    assert.equal(eth0.mtu, 1500);
    assert.deepEqual((eth0.addr_info as { family: string; local: string; prefixlen: number }[]).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), [`${client.status!.podIP}/32`]);
    assert.equal((await ipJson(clientNs, ['route', 'show', 'default']))[0].gateway, '169.254.1.1');
    // The node's side and the "BGP" routes.
    const veth = podNames(lab, 'default', 'client').veth;
    assert.equal(await routeTo(n1, client.status!.podIP!), veth);
    assert.equal(await routeTo(router, client.status!.podIP!), '172.31.0.11');
    assert.equal(await routeTo(n2, client.status!.podIP!), '172.31.0.11');
    assert.equal(await routeTo(n1, server.status!.podIP!), '172.31.0.12');
  });

  await t.test('pod to pod across nodes, with the source address kept', async () => {
    const ping = await inNs(clientNs, ['ping', '-c', '1', '-W', '2', server.status!.podIP!]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const r = await until('the server pod to listen', async () => {
      const x = await curl(clientNs, `http://${server.status!.podIP}:8080/`);
      return x.code === 0 ? x : undefined;
    }, 15_000, LAB_POLL);
    assert.equal(r.stdout, client.status!.podIP);
  });

  await t.test('lab exec runs a command in the pod and returns its exit code', async () => {
    assert.equal(await labExec({ datastore, pod: 'default/client', argv: ['sh', '-c', `ip -4 -o addr show dev eth0 | grep -q ${client.status!.podIP}/32`] }), 0);
    assert.equal(await labExec({ datastore, pod: 'default/client', argv: ['sh', '-c', 'exit 3'] }), 3);
    await assert.rejects(labExec({ datastore, pod: 'default/nope', argv: ['true'] }), /pod default\/nope not found/);
  });

  await t.test('a pod cannot send with another pod\'s source address (rp_filter on the host veth)', async () => {
    const spoofed = server.status!.podIP!; // routable everywhere: only the node's reverse-path check stops it
    const drops = async () => {
      const lines = (await inNs(n1, ['cat', '/proc/net/netstat'])).stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
      const names = lines[0].split(/\s+/);
      return Number(lines[1].split(/\s+/)[names.indexOf('IPReversePathFilter')]);
    };
    const before = await drops();
    assert.equal((await inNs(clientNs, ['ip', 'addr', 'add', `${spoofed}/32`, 'dev', 'eth0'])).code, 0);
    try {
      const r = await curl(clientNs, 'http://198.51.100.10/', ['--interface', spoofed, '--max-time', '1']);
      assert.notEqual(r.code, 0, r.stdout);
    } finally {
      await inNs(clientNs, ['ip', 'addr', 'del', `${spoofed}/32`, 'dev', 'eth0']);
    }
    assert.ok((await drops()) > before, 'the node dropped the spoofed packets (IPReversePathFilter)');
  });

  await t.test('the restricted service refuses the pod and admits a source inside restricted.allow', async () => {
    const rejected0 = await counter(ext, 'restricted_rejected');
    const refused = await curl(clientNs, 'http://198.51.100.20/');
    assert.equal(refused.code, 7, `curl should fail to connect (TCP reset): ${refused.stdout}${refused.stderr}`);
    assert.ok((await counter(ext, 'restricted_rejected')) > rejected0);
    const ping = await inNs(clientNs, ['ping', '-c', '1', '-W', '2', '198.51.100.20']);
    assert.notEqual(ping.code, 0);
    assert.match(ping.stdout, /Prohibited|Unreachable|filtered/i);
    // A pod whose address comes from a pool inside the allowed range is let through.
    await store!.create(ippool('lab-allowed', '10.10.10.0/30', { blockSize: 30, nodeSelector: '!all()', natOutgoing: false }));
    await store!.create(pod('default', 'allowed', { node: 'node-2', containers: main(), annotations: { [ANNOTATION.ipv4Pools]: '["lab-allowed"]' } }));
    const allowed = await running(store!, 'default', 'allowed');
    assert.match(allowed.status!.podIP!, /^10\.10\.10\.[0-3]$/);
    const allowed0 = await counter(ext, 'restricted_allowed');
    const ok = await curl(allowed.metadata.annotations![NETNS_ANNOTATION], 'http://198.51.100.20/');
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual([JSON.parse(ok.stdout).sourceIp, JSON.parse(ok.stdout).server], [allowed.status!.podIP, '198.51.100.20:80']);
    assert.ok((await counter(ext, 'restricted_allowed')) > allowed0);
  });

  await t.test('a kubelet restart adopts running pods without touching them, and cleans up pods deleted meanwhile', async () => {
    await store!.create(pod('default', 'temp', { node: 'node-1', containers: main() }));
    const temp = await running(store!, 'default', 'temp');
    const tempNs = podNames(lab, 'default', 'temp').netns;
    const veth = podNames(lab, 'default', 'client').veth;
    const ifindexes = async () => [(await ipJson(n1, ['link', 'show', 'dev', veth]))[0].ifindex, (await ipJson(clientNs, ['link', 'show', 'dev', 'eth0']))[0].ifindex];
    const before = await ifindexes();
    const containerFile = join(stateDir, 'pids', `pod-${podNames(lab, 'default', 'client').hash}-main.pid`);
    const container = readRecord(containerFile)!;
    assert.ok(container && isRunning(container), 'the client container runs');
    // Traffic keeps flowing while the kubelet is away and comes back.
    const pinging = inNs(clientNs, ['ping', '-c', '40', '-i', '0.1', '-W', '1', server.status!.podIP!], 20_000);
    const kubelet = readRecord(join(stateDir, 'pids', 'kubelet-node-1.pid'))!;
    assert.equal(await stopProcess(kubelet), 'stopped');
    await store!.delete({ kind: 'Pod', namespace: 'default', name: 'temp' });
    // The supervisor starts it again (docs/dataplane.md, "Supervision"): a new process, its restart counted.
    const back = await until('the supervisor to restart the kubelet', async () => {
      const r = readRecord(join(stateDir, 'pids', 'kubelet-node-1.pid'));
      return r && r.pid !== kubelet.pid && isRunning(r) ? r : undefined;
    }, 15_000, LAB_POLL);
    assert.equal(back.restarts, 1);
    await until('the deleted pod\'s namespace to go', async () => !existsSync(`/run/netns/${tempNs}`), 15_000, LAB_POLL);
    const ipam = new Ipam(store!);
    await until('the deleted pod\'s address to be released', async () => !(await ipam.allocations()).has('pod:default/temp'), 15_000, LAB_POLL);
    assert.equal(await routeTo(router, temp.status!.podIP!), undefined);
    assert.deepEqual(await ifindexes(), before, 'the restarted kubelet must not recreate the pod\'s veth');
    assert.ok(isRunning(container), 'the container keeps running across a kubelet restart');
    assert.deepEqual(readRecord(containerFile), container);
    const p = await pinging;
    assert.match(p.stdout, / 0% packet loss/, p.stdout);
    // And the restarted kubelet still serves new pods.
    await store!.create(pod('default', 'late', { node: 'node-1', containers: main() }));
    await running(store!, 'default', 'late');
  });

  await t.test('deleting a pod removes its namespace, veth, routes, address and processes', async () => {
    const ip = client.status!.podIP!;
    const veth = podNames(lab, 'default', 'client').veth;
    const container = readRecord(join(stateDir, 'pids', `pod-${podNames(lab, 'default', 'client').hash}-main.pid`))!;
    await store!.delete({ kind: 'Pod', namespace: 'default', name: 'client' });
    await until('the pod namespace to go', async () => !existsSync(`/run/netns/${clientNs}`), 15_000, LAB_POLL);
    await until('the routes to go', async () => (await routeTo(router, ip)) === undefined && (await routeTo(n2, ip)) === undefined, 15_000, LAB_POLL);
    assert.equal(await routeTo(n1, ip), undefined);
    assert.deepEqual(await ipJson(n1, ['link', 'show', 'dev', veth]).catch(() => []), []);
    await until('the address to be released', async () => !(await new Ipam(store!).allocations()).has('pod:default/client'), 15_000, LAB_POLL);
    assert.equal(isRunning(container), false);
    assert.equal(existsSync(join(stateDir, 'pids', `pod-${podNames(lab, 'default', 'client').hash}-main.pid`)), false);
  });

  await t.test('a pod without a node is bound to a matching node; a pod with a deletionTimestamp runs until it, then goes', async () => {
    await store!.create(pod('default', 'floating', { containers: main(), spec: { nodeSelector: { zone: 'b' } } }));
    const floating = await running(store!, 'default', 'floating');
    assert.equal(floating.spec.nodeName, 'node-2');
    assert.equal(floating.status!.hostIP, '172.31.0.12');

    await store!.create(pod('default', 'draining', { node: 'node-1', containers: main(['sleep', '3600']), spec: { terminationGracePeriodSeconds: 1 } }));
    const draining = await running(store!, 'default', 'draining');
    const netns = podNames(lab, 'default', 'draining').netns;
    const container = await until('the container record', async () => readRecord(join(stateDir, 'pids', `pod-${podNames(lab, 'default', 'draining').hash}-main.pid`)), 15_000, LAB_POLL);
    const stopAt = Date.now() + 1500;
    // read-modify-write with retry: the kubelet may write the pod's status between our read and our write
    await updateWithRetry(store!, { kind: 'Pod', namespace: 'default', name: 'draining' }, (cur) =>
      cur ? { ...cur, metadata: { ...cur.metadata, deletionTimestamp: new Date(stopAt).toISOString(), deletionGracePeriodSeconds: 1 } } : undefined,
    );
    await sleep(700);
    assert.ok(isRunning(container), 'still running inside its grace period');
    assert.ok(existsSync(`/run/netns/${netns}`));
    assert.equal((await curl(netns, 'http://198.51.100.10/')).code, 0);
    await until('the pod object to be deleted', async () => !(await store!.get({ kind: 'Pod', namespace: 'default', name: 'draining' })), 8000, LAB_POLL);
    assert.ok(Date.now() >= stopAt - 100, 'not before its deletionTimestamp');
    await until('its namespace to go', async () => !existsSync(`/run/netns/${netns}`), 15_000, LAB_POLL);
    assert.equal(isRunning(container), false);
    assert.equal(await routeTo(router, draining.status!.podIP!), undefined);
  });

  await t.test('a container that exits is started again', async () => {
    await store!.create(pod('default', 'crashy', { node: 'node-2', containers: main(['sh', '-c', 'sleep 0.3; exit 1']) }));
    await running(store!, 'default', 'crashy');
    const file = join(stateDir, 'pids', `pod-${podNames(lab, 'default', 'crashy').hash}-main.pid`);
    const first = await until('the first start', async () => readRecord(file), 15_000, LAB_POLL);
    const second = await until('a restart', async () => {
      const r = readRecord(file);
      return r && r.pid !== first.pid ? r : undefined;
    }, 8000, LAB_POLL);
    assert.deepEqual(second.argv.slice(-3), ['sh', '-c', 'sleep 0.3; exit 1']);
    // Counted in the pod status as kubelet does: restartCount and how the last run ended.
    const st = await until('restartCount in the pod status', async () => {
      const p = (await store!.get({ kind: 'Pod', namespace: 'default', name: 'crashy' })) as Pod | undefined;
      const cs = (p?.status?.containerStatuses as { name: string; restartCount: number; lastState: { terminated?: { exitCode?: number; reason: string } } }[] | undefined)?.[0];
      return cs && cs.restartCount >= 1 ? cs : undefined;
    }, 8000, LAB_POLL);
    assert.equal(st.name, 'main');
    assert.deepEqual(st.lastState.terminated && [st.lastState.terminated.exitCode, st.lastState.terminated.reason], [1, 'Error']);
    assert.ok((second.restarts ?? 0) >= 1, 'the container record counts restarts');
    await store!.delete({ kind: 'Pod', namespace: 'default', name: 'crashy' });
    await until('its namespace to go', async () => !existsSync(`/run/netns/${podNames(lab, 'default', 'crashy').netns}`), 15_000, LAB_POLL);
  });

  await t.test('lab status shows namespaces, processes, nodes and pods', async () => {
    const s = await labStatus({ name: lab, stateRoot });
    assert.match(s, new RegExp(`lab ${lab}`));
    assert.match(s, /kubelet-node-1 +pid \d+ +running/);
    assert.match(s, /node-2 +172\.31\.0\.12/);
    assert.match(s, new RegExp(`default/server +node-2 +${server.status!.podIP!.replace(/\./g, '\\.')} +Running`));
  });

  await t.test('nothing was added to the host network namespace', async () => {
    assert.equal(await hostSnapshot(), hostBefore);
  });

  await t.test('lab down after a crash that lost the state directory removes every namespace and process', async () => {
    const recs: ProcRecord[] = readRecords(join(stateDir, 'pids')).map((r) => r.rec);
    assert.ok(recs.some((r) => r.role === 'echo') && recs.some((r) => r.role.startsWith('pod-')), recs.map((r) => r.role).join(','));
    assert.ok(recs.every(isRunning), 'all lab processes run before the crash');
    rmSync(stateDir, { recursive: true, force: true });
    const res = await labDown({ name: lab, stateRoot, log });
    assert.ok(res.strays >= 4, `strays: ${res.strays}`); // the echo server, kubelets and pod containers, found in the namespaces
    assert.deepEqual(labNamespaces(lab), []);
    // Kubelets run in their node's namespace (found there); the supervisor and its watchdog, in the host's, stop on
    // their own once the lab state is gone.
    await until('every lab process to stop', async () => recs.every((r) => !isRunning(r)), 8000, LAB_POLL);
    assert.equal(existsSync(stateDir), false);
    assert.equal(await hostSnapshot(), hostBefore);
  });
});

test('lab up without processes, lab down, and a bad lab file', { timeout: 30_000 }, async (t) => {
  if (!gate(t)) return;
  const lab = `tl${randomBytes(3).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), `egw-lab-${lab}-`));
  const stateRoot = join(tmp, 'state');
  const log = memoryLogger();
  t.after(async () => {
    await labDown({ name: lab, stateRoot, log }).catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  });
  const bad = join(tmp, 'bad.yaml');
  writeFileSync(bad, `name: ${lab}\nnodes:\n  - {name: node-1, lables: {}}\n`);
  await assert.rejects(labUp({ file: bad, datastore: `sqlite:${join(tmp, 'egw.db')}`, stateRoot, log }), (e: unknown) => {
    assert.ok(e instanceof LabFileError);
    assert.equal(e.message, `${bad}:3:20: nodes[0].lables: unknown field; did you mean labels?`);
    return true;
  });
  assert.deepEqual(labNamespaces(lab), [], 'a bad file creates nothing');

  const file = join(tmp, 'lab.yaml');
  writeFileSync(file, `name: ${lab}\nnodes: [{name: solo}]\nexternal: {networks: []}\n`);
  await assert.rejects(labUp({ file, datastore: 'memory:', stateRoot, log }), /sqlite/);
  const info = await labUp({ file, datastore: `sqlite:${join(tmp, 'egw.db')}`, stateRoot, log, start: false });
  assert.deepEqual(info.processes, []);
  assert.deepEqual(labNamespaces(lab), [`egw-${lab}-ext`, `egw-${lab}-n-solo`, `egw-${lab}-net`, `egw-${lab}-router`]);
  assert.deepEqual(readRecords(join(stateRoot, lab, 'pids')), []);
  const res = await labDown({ name: lab, stateRoot, log });
  assert.equal(res.namespaces.length, 4);
  assert.deepEqual(labNamespaces(lab), []);
  assert.equal(existsSync(join(stateRoot, lab)), false);
  assert.match(await labStatus({ name: lab, stateRoot }), /no state/);
});
