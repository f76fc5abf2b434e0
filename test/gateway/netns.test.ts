// The gateway in real network namespaces (root): a client node with client pods, a gateway node with the gateway
// pod, an underlay veth between the nodes, and an external host behind the gateway node. The client node is
// programmed by hand (docs/kernel.md), so this test does not depend on the agent. runGateway runs in this
// process against a MemoryStore, with netnsRunner(gateway pod netns).
//
// The health server is bound by the test process itself to 127.0.0.1 on a free port (healthPort 0): the process
// runs in the host's network namespace, and only loopback is used there. Nothing is attached to the host netns.
//
//   c1 10.244.0.5 ─┐                                        ┌─ gp 10.10.10.0 (runGateway, egw.vxlan)
//   c2 10.244.0.6 ─┼─ cn 172.31.98.11 ══ ul0 ══ 172.31.98.12 gn ─┤
//   at 10.244.0.7 ─┘   (egw.vxlan, rules)                    └─ ext0 198.51.100.1 ── ex 198.51.100.10 (server)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { MemoryStore } from '../../src/datastore/index.js';
import { netnsRunner } from '../../src/dataplane/exec.js';
import { intersectMasks, parseCpuList, parseCpusAllowed, parseTable, readGatewayTable, ruleCounter, RULE_COMMENT, runGateway, type ActualGatewayTable } from '../../src/gateway/index.js';
import { memoryLogger } from '../../src/log.js';
import { KEEP, suiteGate, VERBOSE } from '../helpers/env.js';
import { clientNamespace, clientPod, egressGateway, felixConfiguration, gatewayPod, namespace, namespaceNamed, node, pod } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { failureDetection, FlakyStore, httpGet, POLL, TapRunner } from './helpers.js';

const run = promisify(execFile);
const root = suiteGate(['ip', 'nft', 'curl']);

const ID = randomBytes(2).toString('hex');
const NS = {
  cn: `egw-tg${ID}-cn`,
  c1: `egw-tg${ID}-c1`,
  c2: `egw-tg${ID}-c2`,
  at: `egw-tg${ID}-at`,
  gn: `egw-tg${ID}-gn`,
  gp: `egw-tg${ID}-gp`,
  ex: `egw-tg${ID}-ex`,
};
const IP = { cn: '172.31.98.11', gn: '172.31.98.12', c1: '10.244.0.5', c2: '10.244.0.6', at: '10.244.0.7', gp: '10.10.10.0', ex: '198.51.100.10' };
const GW_MAC = 'a2:2a:0a:0a:0a:00';

async function sh(ns: string, script: string): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', ns, 'sh', '-ec', script]);
  return stdout;
}

// The external host: HTTP (reports the source it sees), TCP line echo on 7, UDP sink on 9999; one JSON line per
// request / connection / datagram on stdout.
const SERVER = `
const http = require('node:http'), net = require('node:net'), dgram = require('node:dgram');
const log = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
http.createServer((req, res) => { const o = { proto: 'http', sourceIp: req.socket.remoteAddress, sourcePort: req.socket.remotePort }; log(o); res.end(JSON.stringify(o)); })
  .listen(8080, '${IP.ex}');
net.createServer((s) => { log({ proto: 'tcp', sourceIp: s.remoteAddress }); s.pipe(s); s.on('error', () => {}); }).listen(7, '${IP.ex}');
const u = dgram.createSocket('udp4'); u.on('message', (m, r) => log({ proto: 'udp', sourceIp: r.address, data: m.toString() })); u.bind(9999, '${IP.ex}');
setTimeout(() => log({ ready: true }), 100);
`;

// A VXLAN packet made by hand: outer UDP to the gateway's VXLAN port, inner Ethernet to the gateway's MAC, inner
// IPv4/UDP from a spoofed source to the external UDP sink.
const CRAFT = `
const dgram = require('node:dgram');
const [gw, port, vni, mac, src, dst, payload, count] = process.argv.slice(1);
const ip = (s) => Buffer.from(s.split('.').map(Number));
const data = Buffer.from(payload);
const udp = Buffer.alloc(8); udp.writeUInt16BE(40000, 0); udp.writeUInt16BE(9999, 2); udp.writeUInt16BE(8 + data.length, 4); // checksum 0: none
const iph = Buffer.alloc(20); iph[0] = 0x45; iph.writeUInt16BE(20 + 8 + data.length, 2); iph[8] = 64; iph[9] = 17; ip(src).copy(iph, 12); ip(dst).copy(iph, 16);
let sum = 0; for (let i = 0; i < 20; i += 2) sum += iph.readUInt16BE(i); while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16); iph.writeUInt16BE(~sum & 0xffff, 10);
const eth = Buffer.concat([Buffer.from(mac.split(':').map((h) => parseInt(h, 16))), Buffer.from([0x02, 0, 0, 0, 0, 0x99]), Buffer.from([0x08, 0x00])]);
const vx = Buffer.alloc(8); vx[0] = 0x08; vx.writeUIntBE(Number(vni), 4, 3);
const pkt = Buffer.concat([vx, eth, iph, udp, data]);
const s = dgram.createSocket('udp4');
let n = Number(count);
const next = () => { if (n-- === 0) return s.close(); s.send(pkt, Number(port), gw, () => setTimeout(next, 20)); };
next();
`;

describe('gateway in network namespaces', { skip: root.skip }, () => {
  const children: ChildProcess[] = [];
  const serverLog: Record<string, unknown>[] = [];
  const mem = new MemoryStore();
  const store = new FlakyStore(mem);
  const log = memoryLogger();
  let stop: AbortController | null = null;
  let running: Promise<void> | null = null;
  let healthPort = 0;
  let echo: { child: ChildProcess; lines: string[] } | null = null;

  async function startGateway(runner = netnsRunner(NS.gp)): Promise<void> {
    stop = new AbortController();
    healthPort = 0;
    running = runGateway({
      store,
      namespace: 'egw',
      name: 'red-1',
      runner,
      healthPort: 0,
      healthHost: '127.0.0.1',
      log,
      signal: stop.signal,
      onHealthListening: (p) => (healthPort = p),
    });
    running.catch(() => {});
    await until('health server', () => healthPort || undefined, 10_000, POLL);
  }

  async function stopGateway(): Promise<void> {
    stop?.abort();
    await running;
    stop = null;
    running = null;
  }

  const readiness = (): Promise<{ status: number; body: string }> => httpGet(`http://127.0.0.1:${healthPort}/readiness`);
  const table = async (): Promise<ActualGatewayTable> => (await readGatewayTable(netnsRunner(NS.gp)))!;
  const elems = async (set: string): Promise<string[]> => (await table()).sets.find((s) => s.name === set)?.elems ?? [];

  /** curl from a client pod; the server's JSON answer, or null when it did not get through. */
  async function curlFrom(ns: string, timeoutS = 3): Promise<{ sourceIp: string } | null> {
    try {
      const { stdout } = await run('ip', ['netns', 'exec', ns, 'curl', '-s', '-m', String(timeoutS), `http://${IP.ex}:8080/`]);
      return JSON.parse(stdout) as { sourceIp: string };
    } catch {
      return null;
    }
  }

  async function echoLine(text: string): Promise<void> {
    const e = echo!;
    const n = e.lines.length;
    e.child.stdin!.write(text + '\n');
    await until(`echo of ${text}`, () => e.lines.length > n && e.lines.slice(n).includes(text), 3000, POLL);
  }

  before(async () => {
    root.check();
    for (const ns of Object.values(NS)) await run('ip', ['netns', 'add', ns]);
    for (const ns of [NS.cn, NS.gn, NS.ex, NS.c1, NS.c2, NS.at]) {
      await sh(ns, 'echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter; echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter; ip link set lo up');
    }
    // the gateway pod starts with strict reverse-path filtering and no forwarding: the gateway must fix both
    await sh(NS.gp, 'echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter; echo 0 > /proc/sys/net/ipv4/ip_forward; ip link set lo up');
    // underlay
    await run('ip', ['-n', NS.cn, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul0', 'netns', NS.gn]);
    await sh(NS.cn, `ip addr add ${IP.cn}/24 dev ul0; ip link set ul0 up; ip route add default via ${IP.gn}; echo 1 > /proc/sys/net/ipv4/ip_forward`);
    await sh(NS.gn, `ip addr add ${IP.gn}/24 dev ul0; ip link set ul0 up; ip route add 10.244.0.0/24 via ${IP.cn}; echo 1 > /proc/sys/net/ipv4/ip_forward`);
    // external host behind the gateway node
    await run('ip', ['-n', NS.gn, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.ex]);
    await sh(NS.gn, `ip addr add 198.51.100.1/24 dev ext0; ip link set ext0 up; ip route add default via ${IP.ex}`);
    await sh(NS.ex, `ip addr add ${IP.ex}/24 dev eth0; ip link set eth0 up; ip route add default via 198.51.100.1`);
    // pods: eth0 with a /32, default via 169.254.1.1, proxy_arp on the node side (proxy_delay 0, as Calico does:
    // otherwise the first ARP answer may take up to 0.8 s)
    const pods: [string, string, string, string][] = [
      [NS.c1, NS.cn, IP.c1, 'calic1'],
      [NS.c2, NS.cn, IP.c2, 'calic2'],
      [NS.at, NS.cn, IP.at, 'caliat'],
      [NS.gp, NS.gn, IP.gp, 'caligp'],
    ];
    for (const [p, n, ip, host] of pods) {
      await run('ip', ['-n', n, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p]);
      await sh(n, `ip link set ${host} up; echo 1 > /proc/sys/net/ipv4/conf/${host}/proxy_arp; echo 0 > /proc/sys/net/ipv4/neigh/${host}/proxy_delay; ip route add ${ip}/32 dev ${host}`);
      await sh(p, `ip addr add ${ip}/32 dev eth0; ip link set eth0 up; ip route add 169.254.1.1 dev eth0 scope link; ip route add default via 169.254.1.1 dev eth0`);
    }
    // the client node's egress side, by hand (docs/kernel.md §1): both client pods are routed to the gateway
    await sh(
      NS.cn,
      [
        `ip link add egw.vxlan type vxlan id 4097 dstport 4790 local ${IP.cn} nolearning`,
        'ip link set egw.vxlan mtu 1450 up',
        `ip neigh add ${IP.gp} lladdr ${GW_MAC} dev egw.vxlan nud permanent`,
        `bridge fdb append ${GW_MAC} dev egw.vxlan dst ${IP.gp}`,
        'ip route add throw 10.244.0.0/16 table 1001',
        `ip route add default via ${IP.gp} dev egw.vxlan onlink table 1001`,
        `ip rule add from ${IP.c1} lookup 1001 priority 100`,
        `ip rule add from ${IP.c2} lookup 1001 priority 100`,
      ].join('\n'),
    );
    // the external server
    const srv = spawn('ip', ['netns', 'exec', NS.ex, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(srv);
    let buf = '';
    srv.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        serverLog.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    await until('external server', () => serverLog.some((l) => l.ready), 10_000, POLL);
    // the datastore
    for (const r of [
      felixConfiguration(),
      node('client-node', { ip: IP.cn, hostnameAddress: true }),
      node('gateway-node', { ip: IP.gn, hostnameAddress: true }),
      namespace('egw'),
      clientNamespace('tenant-a', { selector: "egress-code == 'red'", namespaceSelector: namespaceNamed('egw') }),
      namespace('tenant-b'),
      egressGateway('egw', 'red', { egressGatewayFailureDetection: failureDetection(1) }),
      gatewayPod('egw', 'red-1', 'red', { node: 'gateway-node', ip: IP.gp }),
      pod('tenant-a', 'c1', { node: 'client-node', ip: IP.c1 }),
      pod('tenant-b', 'c2', { node: 'client-node', ip: IP.c2 }),
      pod('tenant-b', 'attacker', { node: 'client-node', ip: IP.at }),
    ])
      await mem.create(r);
  });

  after(async () => {
    await stopGateway().catch(() => {});
    for (const c of children) if (c.pid && c.exitCode === null) process.kill(c.pid, 'SIGTERM');
    // EGW_TEST_KEEP=1 keeps the namespaces for a look (delete them with `ip netns del egw-tg<id>-…`)
    if (!KEEP) for (const ns of Object.values(NS)) await run('ip', ['netns', 'del', ns]).catch(() => {});
    if (VERBOSE) console.log(log.lines.join('\n'));
  });

  it('programs the pod and gets ready; the external server sees the gateway IP', async () => {
    await startGateway();
    await until('readiness 200', async () => (await readiness()).status === 200, 10_000, POLL);
    assert.equal((await readiness()).body, 'ok\n');
    assert.equal((await httpGet(`http://127.0.0.1:${healthPort}/liveness`)).status, 200);
    const t = await table();
    assert.deepEqual(t.sets.find((s) => s.name === 'nodes')!.elems, [IP.cn, IP.gn]);
    assert.deepEqual(t.sets.find((s) => s.name === 'clients')!.elems, [IP.c1]);
    const link = JSON.parse(await sh(NS.gp, 'ip -d -json link show dev egw.vxlan'))[0];
    assert.equal(link.address, GW_MAC);
    assert.equal(link.mtu, 1450);
    assert.deepEqual([link.linkinfo.info_data.id, link.linkinfo.info_data.port, link.linkinfo.info_data.local, link.linkinfo.info_data.learning], [4097, 4790, IP.gp, false]);
    assert.equal((await sh(NS.gp, 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/rp_filter /proc/sys/net/ipv4/conf/egw.vxlan/rp_filter')).split('\n').join(' ').trim(), '1 0 0');
    // receive packet steering: the uplink's and the tunnel's rx-0 on one CPU, number (pod IP) mod n of the online
    // CPUs this test may run on (docs/dataplane.md, "Why RPS")
    const masks = (await sh(NS.gp, 'cat /sys/class/net/eth0/queues/rx-0/rps_cpus /sys/class/net/egw.vxlan/queues/rx-0/rps_cpus')).trim().split('\n');
    const pool = BigInt(`0x${intersectMasks(parseCpusAllowed(readFileSync('/proc/self/status', 'utf8'))!, parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8'))!)!.replace(/,/g, '')}`);
    const cpus: number[] = [];
    for (let c = 0; pool >> BigInt(c) !== 0n; c++) if ((pool >> BigInt(c)) & 1n) cpus.push(c);
    const one = 1n << BigInt(cpus[0x0a0a0a00 % cpus.length]!);
    assert.deepEqual(masks.map((m) => BigInt(`0x${m.replace(/,/g, '')}`)), [one, one], masks.join(' '));
    if (VERBOSE) console.log(await sh(NS.gp, 'nft list table ip egw-gw'));

    const r = await curlFrom(NS.c1);
    assert.deepEqual(r && r.sourceIp, IP.gp, 'the server sees the gateway pod IP');
    // the path really is the tunnel: the gateway's conntrack has the flow, masqueraded
    const ct = await sh(NS.gp, `conntrack -L -p tcp --orig-src ${IP.c1} --dport 8080 2>/dev/null || true`);
    assert.match(ct, new RegExp(`src=${IP.ex.replace(/\./g, '\\.')} dst=${IP.gp.replace(/\./g, '\\.')}`));
    // ... and the tunnel's outer packets made no conntrack entry there (raw-priority notrack: src/gateway/nft.ts)
    assert.equal((await sh(NS.gp, `conntrack -L -p udp --dport 4790 2>/dev/null || true`)).trim(), '');
  });

  it('anti-spoofing: a client that is not allowed gets nothing out (inner packets dropped and counted)', async () => {
    const before = ruleCounter(await table(), RULE_COMMENT.spoofedClient)!.packets;
    const seen = serverLog.length;
    assert.equal(await curlFrom(NS.c2, 2), null, 'c2 (tenant-b, no annotation) cannot use the gateway');
    const afterCount = ruleCounter(await table(), RULE_COMMENT.spoofedClient)!.packets;
    assert.ok(afterCount > before, `forward drop counter ${before} → ${afterCount}`);
    assert.equal(serverLog.length, seen, 'the server saw nothing');
  });

  it('anti-spoofing: hand-made VXLAN from a pod IP (not a node IP) is dropped at input', async () => {
    const before = ruleCounter(await table(), RULE_COMMENT.vxlanFromNonNode)!.packets;
    const udpSeen = (): Record<string, unknown>[] => serverLog.filter((l) => l.proto === 'udp');
    // the attacker pod pretends to be the allowed client c1
    await run('ip', ['netns', 'exec', NS.at, process.execPath, '-e', CRAFT, IP.gp, '4790', '4097', GW_MAC, IP.c1, IP.ex, 'from-attacker', '3']);
    await sleep(300);
    assert.deepEqual(udpSeen(), [], 'nothing reached the external host');
    const afterCount = ruleCounter(await table(), RULE_COMMENT.vxlanFromNonNode)!.packets;
    assert.equal(afterCount - before, 3, 'the three packets were dropped at input');
    // control: the very same packet from a node IP goes through (so the drop is about the outer source)
    await run('ip', ['netns', 'exec', NS.cn, process.execPath, '-e', CRAFT, IP.gp, '4790', '4097', GW_MAC, IP.c1, IP.ex, 'from-node', '1']);
    await until('datagram from the node', () => udpSeen().length > 0, 3000, POLL);
    assert.deepEqual(udpSeen(), [{ proto: 'udp', sourceIp: IP.gp, data: 'from-node' }]);
  });

  it('allowing another client updates the set in place and keeps established connections', async () => {
    // a long-lived TCP connection from c1 through the gateway
    const child = spawn('ip', ['netns', 'exec', NS.c1, process.execPath, '-e', `const s=require('net').connect(7,'${IP.ex}');process.stdin.pipe(s);s.pipe(process.stdout);s.on('close',()=>process.exit(3))`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    children.push(child);
    echo = { child, lines: [] };
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      echo!.lines.push(...parts);
    });
    await echoLine('one');
    assert.ok(serverLog.some((l) => l.proto === 'tcp' && l.sourceIp === IP.gp));
    // MSS clamp: both ends advertised 1460 (MTU 1500); through the gateway it became 1410 (tunnel MTU − 40), which
    // `ss` shows less the 12 bytes of the timestamp option (unclamped: 1448)
    const mssOf = (text: string): number => Number(/\bmss:(\d+)/.exec(text)?.[1]);
    const clientMss = mssOf(await sh(NS.c1, `ss -tin dst ${IP.ex}:7`));
    const serverMss = mssOf(await sh(NS.ex, 'ss -tin sport = :7'));
    assert.ok(clientMss <= 1410 && clientMss >= 1370, `SYN-ACK clamped on its way to the client: mss ${clientMss}`);
    assert.ok(serverMss <= 1410 && serverMss >= 1370, `SYN clamped on its way out: mss ${serverMss}`);

    const before = await table();
    const handles = (t: ActualGatewayTable): string => JSON.stringify([t.handle, t.sets.map((s) => [s.name, s.handle]), t.chains.map((c) => [c.name, c.handle]), t.rules.map((r) => [r.chain, r.handle])]);
    const counterBefore = ruleCounter(before, RULE_COMMENT.spoofedClient)!.packets;
    await mem.update(clientPod('tenant-b', 'c2', { selector: "egress-code == 'red'", namespaceSelector: 'all()' }, { node: 'client-node', ip: IP.c2 }));
    await until('c2 allowed', async () => (await elems('clients')).includes(IP.c2), 5000, POLL);
    const now = await table();
    assert.deepEqual(now.sets.find((s) => s.name === 'clients')!.elems, [IP.c1, IP.c2]);
    assert.equal(handles(now), handles(before), 'table, sets, chains and rules kept their handles');
    assert.ok(ruleCounter(now, RULE_COMMENT.spoofedClient)!.packets >= counterBefore, 'counters kept (rules not recreated)');
    await echoLine('two');
    const r = await curlFrom(NS.c2);
    assert.deepEqual(r && r.sourceIp, IP.gp, 'c2 gets out now');
    // and back: removing the annotation removes it again
    await mem.update(pod('tenant-b', 'c2', { node: 'client-node', ip: IP.c2 }));
    await until('c2 removed', async () => !(await elems('clients')).includes(IP.c2), 5000, POLL);
    assert.equal(handles(await table()), handles(before));
    await echoLine('three');
  });

  it('restart: nothing is deleted or recreated, no write command, the connection survives', async () => {
    const snapshot = async (): Promise<{ links: unknown; nft: unknown }> => {
      const links = JSON.parse(await sh(NS.gp, 'ip -d -json link show'));
      const nft = JSON.parse(await sh(NS.gp, 'nft -j list table ip egw-gw'));
      for (const o of nft.nftables) for (const e of o.rule?.expr ?? []) if (e.counter) e.counter = 'n';
      return { links, nft };
    };
    const before = await snapshot();
    await stopGateway();
    const tap = new TapRunner(netnsRunner(NS.gp));
    await startGateway(tap);
    await until('ready after restart', async () => (await readiness()).status === 200, 10_000, POLL);
    await until('first reconcile', () => tap.calls.some((c) => c.argv[0] === 'nft'), 10_000, POLL);
    assert.deepEqual(tap.writes(), [], 'only reads after a restart');
    assert.deepEqual(
      tap.kernelCalls().map((c) => c.argv.slice(0, 3).join(' ')),
      ['ip -d -json', 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/rp_filter', 'nft -j list', 'sh -c for f in /sys/class/net/eth0/queues/rx-*/rps_cpus /sys/class/net/egw.vxlan/queues/rx-*/rps_cpus; do [ -e "$f" ] || continue; if [ -w "$f" ]; then w=1; else w=0; fi; echo "$f $w $(cat "$f")"; done'],
    );
    const nowSnap = await snapshot();
    assert.deepEqual(nowSnap, before, 'links (ifindex included) and the nft table (handles included) are unchanged');
    await echoLine('four');
  });

  it('readiness: 503 with a reason when the datastore is unreachable for longer than the timeout', async () => {
    assert.equal((await readiness()).status, 200);
    store.down = true;
    try {
      // last answered at most one heartbeat (timeout / 3) before the outage: still ready half a timeout into it
      await sleep(500);
      assert.equal((await readiness()).status, 200, 'still ready within the timeout');
      await until('503', async () => (await readiness()).status === 503, 3000, POLL);
      // never before the timeout since the datastore last answered
      const since = Date.now() - store.lastAnswered;
      assert.ok(since >= 1000, `503 ${since} ms after the datastore last answered (healthTimeoutDataStoreSeconds 1)`);
      const body = (await readiness()).body;
      assert.match(body, /^datastore: datastore flaky\(memory:\) not answering for [\d.]+s \(healthTimeoutDataStoreSeconds 1\)\n$/);
      // the data plane keeps working meanwhile
      const r = await curlFrom(NS.c1);
      assert.deepEqual(r && r.sourceIp, IP.gp);
    } finally {
      store.down = false;
    }
    await until('200 again', async () => (await readiness()).status === 200, 8000, POLL);
  });

  it('with the masquerade rule gone the server sees the client IP; a gateway start puts it back', async () => {
    await stopGateway();
    const t = await table();
    const nat = t.rules.find((r) => r.comment === RULE_COMMENT.masquerade)!;
    await sh(NS.gp, `nft delete rule ip egw-gw postrouting handle ${nat.handle}`);
    const r = await curlFrom(NS.c1);
    assert.deepEqual(r && r.sourceIp, IP.c1, 'without the rule the server sees the client pod IP');
    await startGateway();
    await until('masquerade back', async () => parseTable(await sh(NS.gp, 'nft -j list table ip egw-gw'))!.rules.some((x) => x.comment === RULE_COMMENT.masquerade), 5000, POLL);
    const r2 = await curlFrom(NS.c1);
    assert.deepEqual(r2 && r2.sourceIp, IP.gp);
    assert.ok(log.lines.some((l) => l.includes('chain postrouting: rules rewritten')));
    await echoLine('five');
    await stopGateway();
  });
});
