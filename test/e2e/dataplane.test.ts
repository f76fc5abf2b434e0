// End to end in a lab of network namespaces (root): real kernel, real egw agent/gateway/controller/kubelet
// processes, the demo scenario. Each property the demo claims is its own test against one lab.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRunning } from '../../src/lab/procs.js';
import { inNs, LabHarness, run } from '../helpers/e2e.js';
import { gate, suiteGate } from '../helpers/env.js';
import { clientPod, felixConfiguration, namespaceNamed, pod } from '../helpers/resources.js';
import { demoManifests, ECHO, FIXTURES, kernelHops } from '../helpers/scenarios.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';

const RESTRICTED = '198.51.100.20';
const ONPREM = '203.0.113.10';
const NODE_IP: Record<string, string> = { 'node-1': '172.31.0.11', 'node-2': '172.31.0.12' };

const root = suiteGate(['ip', 'nft', 'curl', 'iperf3', 'conntrack']);
const lab = new LabHarness();
let gatewayIps: string[] = [];

describe('data plane end to end', { skip: root.skip }, () => {
  before(async () => {
    root.check();
    await lab.up();
    await lab.apply(demoManifests());
    for (const [ns, name] of [['tenant-a', 'client-a'], ['plain', 'client-plain'], ['tenant-b', 'client-b']]) await lab.podReady(ns, name);
    gatewayIps = await until('two gateway pods with IPs', async () => {
      const ips = (await lab.gatewayPods('red')).map((p) => p.status?.podIPs?.[0]?.ip).filter((x): x is string => !!x);
      return ips.length === 2 ? ips.sort() : undefined;
    }, 30_000, LAB_POLL);
    // Gateways join the routes once they report ready (heartbeats); wait until client-a's node routes over both.
    const clientA = await lab.podReady('tenant-a', 'client-a');
    await until('both gateways in client-a\'s route', async () => (await kernelHops(lab.nodeNetns(clientA.node), clientA.ip)).join() === gatewayIps.join(), 20_000, LAB_POLL);
    await until('client-b\'s route too', async () => {
      const b = await lab.podReady('tenant-b', 'client-b');
      return (await kernelHops(lab.nodeNetns(b.node), b.ip)).join() === gatewayIps.join();
    }, 20_000, LAB_POLL);
  });
  after(async () => {
    await lab.down();
  });

  test('an annotated namespace leaves with a gateway IP, a plain one with its node IP; the firewall admits only the first', async (t) => {
    if (!gate(t)) return;
    const a = await lab.curl('tenant-a', 'client-a', `http://${ECHO}/`);
    assert.ok(a && gatewayIps.includes(a.sourceIp), `client-a seen as ${a?.sourceIp}, gateways ${gatewayIps}`);
    assert.match(a.sourceIp, /^10\.10\.10\.[0-3]$/);
    const plain = await lab.curl('plain', 'client-plain', `http://${ECHO}/`);
    assert.equal(plain?.sourceIp, NODE_IP['node-1']);
    assert.ok(await lab.curl('tenant-a', 'client-a', `http://${RESTRICTED}/`), 'the restricted service must admit the gateway IP');
    const refused = await lab.inPod('plain', 'client-plain', ['curl', '-sS', '--max-time', '3', `http://${RESTRICTED}/`]);
    assert.notEqual(refused.code, 0, 'the restricted service must refuse the node IP');
    assert.equal(refused.code, 7, `curl: ${refused.stderr}`); // couldn't connect: actively refused (a drop would time out, 28)
  });

  test('two replicas: 200 connections from one client spread over both (each 30–70%)', async (t) => {
    if (!gate(t)) return;
    const { netns } = await lab.podReady('tenant-a', 'client-a');
    const r = await inNs(netns, [process.execPath, join(FIXTURES, 'http-many.mjs'), `http://${ECHO}/`, '200'], 60_000);
    assert.equal(r.code, 0, r.stderr);
    const { counts, errors } = JSON.parse(r.stdout) as { counts: Record<string, number>; errors: number };
    assert.equal(errors, 0);
    assert.deepEqual(Object.keys(counts).sort(), gatewayIps);
    for (const ip of gatewayIps) {
      assert.ok(counts[ip] >= 60 && counts[ip] <= 140, `gateway ${ip} served ${counts[ip]} of 200`);
    }
    // 200 connections, 200 outer UDP flows (the source port is the inner flow's hash): none of them made a conntrack
    // entry on the nodes (raw-priority notrack, src/dataplane/nft.ts tunnelNotrackChains)
    for (const node of Object.keys(NODE_IP)) {
      const ct = await inNs(lab.nodeNetns(node), ['conntrack', '-L', '-p', 'udp', '--dport', '4790'], 10_000);
      assert.equal(ct.code, 0, ct.stderr);
      assert.equal(ct.stdout.trim(), '', `${node}: ${ct.stdout}`);
    }
  });

  test('policy: a /24 rule without gateway is routed normally, the default rule via a gateway', async (t) => {
    if (!gate(t)) return;
    const onprem = await lab.curl('tenant-b', 'client-b', `http://${ONPREM}/`);
    assert.equal(onprem?.sourceIp, NODE_IP['node-2']);
    const internet = await lab.curl('tenant-b', 'client-b', `http://${ECHO}/`);
    assert.ok(internet && gatewayIps.includes(internet.sourceIp), `client-b → ${ECHO} seen as ${internet?.sourceIp}`);
  });

  test('a policy annotation naming a missing policy blocks egress at the client node', async (t) => {
    if (!gate(t)) return;
    await lab.applyResources(clientPod('plain', 'client-missing', { policy: 'no-such-policy' }, { node: 'node-1' }));
    const pod = await lab.podReady('plain', 'client-missing');
    const node = lab.nodeNetns(pod.node);
    // The client's node decides: an unreachable route, answered with ICMP host-unreachable (rate-limited by the
    // kernel, so later attempts may just time out). Nothing reaches the external host.
    await until('egress blocked at the node', async () => (await routeVerdict(node, pod.ip, ECHO)) === 'unreachable', 10_000, LAB_POLL);
    const first = await inNs(pod.netns, [process.execPath, join(FIXTURES, 'tcp-connect.mjs'), ECHO, '80']);
    assert.equal(first.stdout.trim(), 'EHOSTUNREACH');
    assert.equal(await routeVerdict(node, pod.ip, NODE_IP['node-2']), 'main', 'cluster-internal destinations stay reachable');
  });

  test('a pod annotation overrides its namespace only under EnabledPerNamespaceOrPerPod', async (t) => {
    if (!gate(t)) return;
    // The namespace says "red"; the pod asks for "blue", which has no gateways: unreachable when the pod counts.
    await lab.applyResources(clientPod('tenant-a', 'client-blue', { selector: "egress-code == 'blue'", namespaceSelector: namespaceNamed('default') }, { node: 'node-2' }));
    const pod = await lab.podReady('tenant-a', 'client-blue');
    const node = lab.nodeNetns(pod.node);
    const verdict = () => routeVerdict(node, pod.ip, ECHO);
    await until('pod annotation honoured (no blue gateway: unreachable)', async () => (await verdict()) === 'unreachable', 10_000, LAB_POLL);
    await lab.applyResources(felixConfiguration({ egressIPSupport: 'EnabledPerNamespace' }));
    const seen = await until('pod annotation ignored under EnabledPerNamespace', async () => {
      const r = await lab.curl('tenant-a', 'client-blue', `http://${ECHO}/`);
      return r && gatewayIps.includes(r.sourceIp) ? r.sourceIp : undefined;
    }, 10_000, LAB_POLL);
    assert.ok(gatewayIps.includes(seen));
    await lab.applyResources(felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }));
    await until('back to per-pod', async () => (await verdict()) === 'unreachable', 10_000, LAB_POLL);
    const r = await inNs(pod.netns, [process.execPath, join(FIXTURES, 'tcp-connect.mjs'), ECHO, '80']);
    assert.notEqual(r.stdout.trim(), 'connected');
  });

  test('cluster-internal traffic (pod to pod across nodes) never goes through a gateway', async (t) => {
    if (!gate(t)) return;
    await lab.applyResources(pod('plain', 'server', { node: 'node-2', containers: [{ name: 'echo', command: ['egw', 'lab', 'echo', '--http-port', '8080', '--tcp-port', '7070'] }] }));
    const server = await lab.podReady('plain', 'server');
    const client = await lab.podReady('tenant-a', 'client-a');
    const seen = await until('the in-cluster echo server answers', () => lab.curl('tenant-a', 'client-a', `http://${server.ip}:8080/`), 15_000, LAB_POLL);
    assert.equal(seen.sourceIp, client.ip, 'pod-to-pod keeps the client pod IP: no gateway, no NAT');
  });

  test('spoofing: hand-made VXLAN packets from a pod that is not an allowed client get nothing out with a gateway IP', async (t) => {
    if (!gate(t)) return;
    const ext = lab.info.namespaces.ext;
    // Count what arrives at the external host on UDP 9999, by source.
    const table = `table ip egwtest {
  chain input {
    type filter hook input priority filter; policy accept;
    ip saddr 10.10.10.0/30 udp dport 9999 counter
  }
}
`;
    const tableFile = join(lab.dir, 'egwtest.nft');
    writeFileSync(tableFile, table);
    const nft = await inNs(ext, ['nft', '-f', tableFile]);
    assert.equal(nft.code, 0, nft.stderr);
    const counter = async () => {
      const r = await inNs(ext, ['nft', '-j', 'list', 'table', 'ip', 'egwtest']);
      const rules = (JSON.parse(r.stdout).nftables as Record<string, any>[]).filter((o) => o.rule);
      return rules[0].rule.expr.find((e: any) => e.counter).counter.packets as number;
    };
    const client = await lab.podReady('tenant-a', 'client-a');
    const attacker = await lab.podReady('plain', 'client-plain');
    for (const gw of gatewayIps) {
      // Inner source spoofing an allowed client, and the attacker's own address.
      for (const innerSrc of [client.ip, attacker.ip]) {
        const r = await inNs(attacker.netns, [process.execPath, join(FIXTURES, 'vxlan-send.mjs'), gw, '4097', '4790', innerSrc, ECHO, '9999', '5']);
        assert.equal(r.code, 0, r.stderr);
      }
    }
    await sleep(500);
    assert.equal(await counter(), 0, 'a spoofed packet left through a gateway');
    // Positive control: the allowed client's ordinary UDP does leave, with a gateway IP.
    const ok = await inNs(client.netns, [process.execPath, join(FIXTURES, 'udp-send.mjs'), ECHO, '9999', '5']);
    assert.equal(ok.code, 0, ok.stderr);
    await until('the control packets arrive from a gateway IP', async () => (await counter()) >= 5, 5000, LAB_POLL);
  });

  test('restarting the agent during a long TCP transfer: it completes and no kernel object is recreated', async (t) => {
    if (!gate(t)) return;
    const client = await lab.podReady('tenant-a', 'client-a');
    const node = lab.nodeNetns('node-1');
    const before = await kernelDump(node);
    const bytes = 24_000_000;
    // ~8 s at 3 MB/s: the agent is stopped and started again in the middle.
    const transfer = inNs(client.netns, ['curl', '-sS', '-o', '/dev/null', '-w', '%{size_download} %{remote_ip}', '--limit-rate', '3M', `http://${ECHO}/bytes?n=${bytes}`], 60_000);
    await sleep(1500);
    const log = join(lab.info.stateDir, 'logs', 'agent-node-1.log');
    const starts = readFileSync(log, 'utf8').split('agent starting').length - 1;
    const oldPid = await lab.stop('agent-node-1');
    // The lab's supervisor starts it again, as a DaemonSet would (docs/dataplane.md, supervision).
    await until('a new agent process', () => {
      const rec = lab.record('agent-node-1');
      return rec !== undefined && rec.pid !== oldPid && isRunning(rec);
    }, 15_000, LAB_POLL);
    // The new agent has listed, computed and compared the kernel with its desired state once it logs its first
    // reconcile; it must have found everything right.
    // what the new agent wrote: after the next 'agent starting' (empty until it has started)
    const sinceRestart = () => readFileSync(log, 'utf8').split('agent starting')[starts + 1] ?? '';
    await until('the restarted agent reconciled', async () => /kernel (already right: adopted|updated)/.test(sinceRestart()), 10_000, LAB_POLL);
    assert.doesNotMatch(sinceRestart(), /kernel updated/, 'the restarted agent changed the kernel');
    const r = await transfer;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], String(bytes), 'the whole transfer arrived');
    assert.deepEqual(await kernelDump(node), before, 'kernel objects changed across the agent restart');
  });
});

/**
 * How the node routes a packet from a local pod to dst: 'unreachable', 'vxlan' (through a gateway), 'main' (ordinary
 * routing), asked of the kernel with `ip route get … iif <the pod's veth>`.
 */
async function routeVerdict(nodeNetns: string, podIp: string, dst: string): Promise<string> {
  const toPod = await run(['ip', '-n', nodeNetns, '-json', 'route', 'get', podIp]);
  const veth = JSON.parse(toPod.stdout)[0].dev as string;
  const r = await run(['ip', '-n', nodeNetns, '-json', 'route', 'get', dst, 'from', podIp, 'iif', veth]);
  if (r.code !== 0) return /No route to host|unreachable/i.test(r.stderr) ? 'unreachable' : `error: ${r.stderr.trim()}`;
  const route = JSON.parse(r.stdout)[0];
  return route.dev === 'egw.vxlan' ? 'vxlan' : 'main';
}

/** The node's egw-owned kernel objects, including link ifindex and nft handles (recreation would change them). */
async function kernelDump(netns: string): Promise<unknown> {
  const j = async (argv: string[]) => {
    const r = await inNs(netns, argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    return r.stdout.trim() ? JSON.parse(r.stdout) : [];
  };
  const link = (await j(['ip', '-d', '-json', 'link', 'show', 'dev', 'egw.vxlan'])).map((l: any) => ({ ...l, stats64: undefined }));
  const rules = await j(['ip', '-json', 'rule', 'list']);
  const routes = (await j(['ip', '-N', '-json', 'route', 'show', 'table', 'all'])).filter((r: any) => Number(r.table) >= 1000);
  const neigh = (await j(['ip', '-json', 'neigh', 'show', 'dev', 'egw.vxlan'])).map((n: any) => ({ dst: n.dst, lladdr: n.lladdr, state: n.state }));
  const fdb = await j(['bridge', '-json', 'fdb', 'show', 'dev', 'egw.vxlan']);
  const nft = (await j(['nft', '-j', 'list', 'table', 'ip', 'egw'])).nftables.map((o: any) => stripCounters(o));
  return { link, rules, routes, neigh, fdb, nft };
}

function stripCounters(o: any): any {
  if (Array.isArray(o)) return o.map(stripCounters);
  if (o && typeof o === 'object') {
    const out: any = {};
    for (const [k, v] of Object.entries(o)) out[k] = k === 'counter' ? null : stripCounters(v);
    return out;
  }
  return o;
}
