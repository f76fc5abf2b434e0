// The gateway's probes against a real kernel (root): a gateway pod namespace and an "external" namespace that it
// reaches over a veth; real `ping` and `curl` run through netnsRunner(gateway pod). The ICMP target is an address of
// the external namespace that the test deletes and adds back; the HTTP targets are a server answering 500 and a port
// nobody listens on. runGateway runs in this process against a MemoryStore; its health server and heartbeat
// responder listen on 127.0.0.1 (loopback of the test process; nothing is attached to the host namespace).
//
//   gp: eth0 10.10.10.0/24 (runGateway) ══ ex: eth0 10.10.10.1/24, 198.51.100.11/32 (probe target), :8081 → 500
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { EgressGateway, EgressGatewayFailureDetection, Pod } from '../../src/api/types.js';
import { MemoryStore } from '../../src/datastore/index.js';
import { netnsRunner } from '../../src/dataplane/exec.js';
import { decodeReply, encodeRequest, runGateway } from '../../src/gateway/index.js';
import { memoryLogger } from '../../src/log.js';
import { suiteGate, VERBOSE } from '../helpers/env.js';
import { egressGateway, oneGatewayCluster } from '../helpers/resources.js';
import { until } from '../helpers/wait.js';
import { httpGet, POLL, TapRunner } from './helpers.js';

const run = promisify(execFile);
const root = suiteGate(['ip', 'nft', 'curl', 'ping']);

const ID = randomBytes(3).toString('hex');
const NS = { gp: `egw-th${ID}-gp`, ex: `egw-th${ID}-ex` };
const TARGET = '198.51.100.11';

async function sh(ns: string, script: string): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', ns, 'sh', '-ec', script]);
  return stdout;
}

const SERVER500 = `require('node:http').createServer((q, s) => { s.writeHead(500); s.end('down for maintenance'); }).listen(8081, '0.0.0.0', () => console.log('listening'));`;

type ProbeSettings = Omit<EgressGatewayFailureDetection, 'healthTimeoutDataStoreSeconds'>;

/** The EgressGateway egw/red with these probes (and a datastore timeout of 90 s). */
function withProbes(probes: ProbeSettings): EgressGateway {
  return egressGateway('egw', 'red', { egressGatewayFailureDetection: { healthTimeoutDataStoreSeconds: 90, ...probes } });
}

describe('gateway probes in network namespaces', { skip: root.skip }, () => {
  const mem = new MemoryStore();
  const log = memoryLogger();
  const children: ChildProcess[] = [];
  let stop: AbortController | null = null;
  let running: Promise<void> | null = null;
  let port = 0;
  /** The gateway pod's runner: its pings, and when they got a reply (what the ICMP probe's timeout runs from). */
  const tap = new TapRunner(netnsRunner(NS.gp));
  const pings = (from = 0) => tap.returned.slice(from).filter((c) => c.argv[0] === 'ping');
  const lastReply = () => Math.max(0, ...pings().filter((p) => p.code === 0).map((p) => p.at));

  const readiness = () => httpGet(`http://127.0.0.1:${port}/readiness`);
  const cond = async () => ((await mem.get({ kind: 'Pod', namespace: 'egw', name: 'red-1' })) as Pod).status?.conditions?.find((c) => c.type === 'Ready');
  const setProbes = async (probes: ProbeSettings) => {
    const cur = await mem.get({ kind: 'EgressGateway', namespace: 'egw', name: 'red' });
    const next = withProbes(probes);
    await mem.update({ ...next, metadata: { ...next.metadata, resourceVersion: cur!.metadata.resourceVersion } });
  };

  before(async () => {
    root.check();
    for (const ns of Object.values(NS)) await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', NS.gp, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.ex]);
    await sh(NS.gp, 'ip link set lo up; ip addr add 10.10.10.0/24 dev eth0; ip link set eth0 up; ip route add default via 10.10.10.1');
    await sh(NS.ex, `ip link set lo up; ip addr add 10.10.10.1/24 dev eth0; ip addr add ${TARGET}/32 dev eth0; ip link set eth0 up`);
    const srv = spawn('ip', ['netns', 'exec', NS.ex, process.execPath, '-e', SERVER500], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(srv);
    await new Promise<void>((resolve) => srv.stdout!.once('data', () => resolve()));
    for (const r of oneGatewayCluster({ egressGateway: withProbes({ icmpProbe: { ips: [TARGET], intervalSeconds: 1, timeoutSeconds: 2 } }), gatewayIp: '10.10.10.0' })) await mem.create(r);
    stop = new AbortController();
    running = runGateway({
      store: mem,
      namespace: 'egw',
      name: 'red-1',
      runner: tap,
      healthPort: 0,
      healthHost: '127.0.0.1',
      log,
      signal: stop.signal,
      onHealthListening: (p) => (port = p),
    });
    await until('health server', () => port || undefined, 10_000, POLL);
  });

  after(async () => {
    stop?.abort();
    await running?.catch(() => {});
    for (const c of children) if (c.pid && c.exitCode === null) c.kill('SIGTERM');
    for (const ns of Object.values(NS)) await run('ip', ['netns', 'del', ns]).catch(() => {});
    if (VERBOSE) console.log(log.lines.join('\n'));
  });

  it('ICMP: ready while the target answers; not ready timeoutSeconds after it stops (reason in /readiness, Pod Ready=False); back → ready', async () => {
    await until('ready', async () => (await readiness()).status === 200, 10_000, POLL);
    await until('Pod Ready=True', async () => (await cond())?.status === 'True', 5000, POLL);
    await until('a reply from the target', () => lastReply() > 0, 5000, POLL);
    await run('ip', ['-n', NS.ex, 'addr', 'del', `${TARGET}/32`, 'dev', 'eth0']);
    await until('503', async () => (await readiness()).status === 503, 6000, POLL);
    // never before timeoutSeconds (2 s) since the last reply; and then at the first failed attempt (one every 1 s
    // interval, each waiting 1 s for its reply), not attempts later
    const last = lastReply();
    const since = Date.now() - last;
    const failed = pings().filter((p) => p.code !== 0 && p.at > last).length;
    assert.ok(since >= 2000, `not ready ${since} ms after the last reply (timeout 2 s)`);
    assert.ok(failed <= 2, `not ready only after ${failed} failed pings since the last reply (interval 1 s, timeout 2 s)`);
    assert.equal((await readiness()).body, `icmp probe: no reply from ${TARGET} for 2s\n`);
    await until('Pod Ready=False', async () => (await cond())?.status === 'False', 3000, POLL);
    assert.deepEqual(await cond().then((c) => [c?.reason, c?.message]), ['ICMPProbeFailing', `icmp probe: no reply from ${TARGET} for 2s`]);
    const back = tap.returned.length;
    await run('ip', ['-n', NS.ex, 'addr', 'add', `${TARGET}/32`, 'dev', 'eth0']);
    await until('ready again', async () => (await readiness()).status === 200, 5000, POLL);
    // ready again on the first reply from the restored target (one is enough), not replies later
    const replies = pings(back).filter((p) => p.code === 0).length;
    assert.ok(replies >= 1 && replies <= 2, `ready again after ${replies} replies since the target came back`);
    await until('Pod Ready=True again', async () => (await cond())?.status === 'True', 3000, POLL);
    assert.ok(log.lines.some((l) => l.includes(`icmp probe: ${TARGET} failed`)));
  });

  it('HTTP: a 500 is a success, a refused connection is not; with both kinds, one target of each must pass', async () => {
    await setProbes({ icmpProbe: { ips: [TARGET], intervalSeconds: 1, timeoutSeconds: 2 }, httpProbe: { urls: [`http://${TARGET}:9/`], intervalSeconds: 1, timeoutSeconds: 1 } });
    await until('503 (refused)', async () => (await readiness()).status === 503, 5000, POLL);
    assert.match((await readiness()).body, new RegExp(`^http probe: no HTTP response from http://${TARGET.replace(/\./g, '\\.')}:9/ for 1s \\(.*(refused|connect).*\\)\\n$`, 'i'));
    await until('Pod Ready=False (HTTP)', async () => (await cond())?.reason === 'HTTPProbeFailing', 3000, POLL);
    // a second URL that answers 500: one answering target of the kind is enough
    await setProbes({ icmpProbe: { ips: [TARGET], intervalSeconds: 1, timeoutSeconds: 2 }, httpProbe: { urls: [`http://${TARGET}:9/`, `http://${TARGET}:8081/`], intervalSeconds: 1, timeoutSeconds: 1 } });
    await until('ready (500 counts)', async () => (await readiness()).status === 200, 5000, POLL);
    // HTTP passes but ICMP fails: not ready
    await sh(NS.ex, 'nft add table ip th_probe; nft add chain ip th_probe in "{ type filter hook input priority 0; }"; nft add rule ip th_probe in icmp type echo-request drop');
    try {
      await until('503 (icmp only)', async () => (await readiness()).status === 503, 6000, POLL);
      assert.equal((await readiness()).body, `icmp probe: no reply from ${TARGET} for 2s\n`);
    } finally {
      await sh(NS.ex, 'nft delete table ip th_probe');
    }
    await until('ready again', async () => (await readiness()).status === 200, 5000, POLL);
    await until('Pod Ready=True', async () => (await cond())?.status === 'True', 3000, POLL);
  });

  it('the heartbeat on <health port>/udp answers with the readiness', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    try {
      const reply = await new Promise<ReturnType<typeof decodeReply>>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no reply')), 1000);
        sock.once('message', (m) => {
          clearTimeout(t);
          resolve(decodeReply(m));
        });
        sock.send(encodeRequest(77, 1), port, '127.0.0.1');
      });
      assert.deepEqual(reply, { seq: 77, token: 1, ready: true, draining: false, known: true });
    } finally {
      sock.close();
    }
  });
});
