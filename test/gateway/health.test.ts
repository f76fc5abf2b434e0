// Gateway health without root: the probes' rules (any target of a kind suffices, every configured kind must pass,
// counting from process start), the HTTP probe's "any response counts" (in-process and through curl, on loopback),
// the Pod Ready condition writer, and runGateway end to end with a fake kernel: readiness, /readiness reasons, the
// Pod's Ready condition and the UDP heartbeat replies all follow the probes.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/api/types.js';
import { MemoryStore } from '../../src/datastore/index.js';
import { localRunner, RecordingRunner, type RunResult } from '../../src/dataplane/exec.js';
import { StoreError, type Store } from '../../src/datastore/types.js';
import {
  decodeReply,
  encodeRequest,
  inProcessHttpGet,
  Probes,
  runGateway,
  runnerHttpGet,
  runnerPing,
  writeReadyCondition,
  type ProbeFn,
} from '../../src/gateway/index.js';
import { NETNS_ANNOTATION } from '../../src/lab/topology.js';
import { memoryLogger } from '../../src/log.js';
import { egressGateway, gatewayPod, oneGatewayCluster } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { httpGet, POLL } from './helpers.js';

describe('gateway probes', () => {
  let server: http.Server;
  let port = 0;
  let refused = 0;
  before(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(500);
      res.end('broken but answering');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    // a port nobody listens on: bind and close
    const tmp = http.createServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
    refused = (tmp.address() as AddressInfo).port;
    await new Promise((r) => tmp.close(r));
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('HTTP: any status (500) is a success, connection refused is not — in process and through curl', async () => {
    for (const get of [inProcessHttpGet(), runnerHttpGet(localRunner())]) {
      assert.equal(await get(`http://127.0.0.1:${port}/health`, 2000), null);
      const err = await get(`http://127.0.0.1:${refused}/`, 2000);
      assert.ok(err && /refused|connect/i.test(err), String(err));
    }
  });

  it('ICMP through the runner: ping -c 1 -W <interval> <ip>', async () => {
    const r = new RecordingRunner((argv) => ({ code: argv.at(-1) === '198.51.100.10' ? 0 : 1, stdout: '', stderr: '' }));
    const ping = runnerPing(r);
    assert.equal(await ping('198.51.100.10', 1000), null);
    assert.equal(await ping('198.51.100.11', 2000), 'no reply');
    assert.deepEqual(r.calls.map((c) => c.argv), [
      ['ping', '-c', '1', '-n', '-q', '-W', '1', '198.51.100.10'],
      ['ping', '-c', '1', '-n', '-q', '-W', '2', '198.51.100.11'],
    ]);
  });

  it('a kind fails only when ALL its targets had no success for timeoutSeconds, counted from start; both kinds must pass', async () => {
    const up = new Set<string>(['a', 'u1']);
    const fn: ProbeFn = async (t) => (up.has(t) ? null : 'no reply');
    const start = Date.now();
    const p = new Probes({ runner: localRunner(), ping: fn, httpGet: fn, startedAt: start });
    try {
      p.configure({ icmpProbe: { ips: ['a', 'b'], intervalSeconds: 1, timeoutSeconds: 1 }, httpProbe: { urls: ['u1', 'u2'], intervalSeconds: 1, timeoutSeconds: 1 } });
      await sleep(50);
      assert.deepEqual([p.icmpReasons(), p.httpReasons()], [[], []], 'one target of each answers');
      up.clear(); // every target fails from now on
      const p2 = new Probes({ runner: localRunner(), ping: fn, httpGet: fn, startedAt: Date.now() });
      p2.configure({ icmpProbe: { ips: ['a'], intervalSeconds: 1, timeoutSeconds: 2 } });
      await sleep(300);
      assert.deepEqual(p2.icmpReasons(), [], 'not failing before the first timeout has elapsed since start');
      assert.deepEqual(p2.httpReasons(), [], 'a kind that is not configured passes');
      await until('icmp failing', () => p2.icmpReasons().length > 0, 3000, { ...POLL, everyMs: 20 });
      assert.deepEqual(p2.icmpReasons(), ['no reply from a for 2s']);
      p2.stop();
      // the first Probes: last successes ~now, then 1 s of failures
      await until('both kinds failing', () => p.icmpReasons().length > 0 && p.httpReasons().length > 0, 3000, { ...POLL, everyMs: 20 });
      assert.deepEqual(p.icmpReasons(), ['no reply from a, b for 1s']);
      assert.deepEqual(p.httpReasons(), ['no HTTP response from u1, u2 for 1s']);
      up.add('b'); // one ICMP target is back: ICMP passes, HTTP still fails
      await until('icmp passing', () => p.icmpReasons().length === 0, 2500, { ...POLL, everyMs: 20 });
      assert.equal(p.httpReasons().length, 1);
      up.add('u2');
      await until('http passing', () => p.httpReasons().length === 0, 2500, { ...POLL, everyMs: 20 });
    } finally {
      p.stop();
    }
  });
});

describe('the Pod Ready condition', () => {
  it('touches only Ready, keeps lastTransitionTime while the status holds, retries on conflict', async () => {
    const mem = new MemoryStore();
    const p = gatewayPod('egw', 'red-1', 'red', { node: 'n2', ip: '10.10.10.0' });
    p.status!.conditions = [
      { type: 'PodScheduled', status: 'True' },
      { type: 'Ready', status: 'False', reason: 'GatewayStarting', lastTransitionTime: '2020-01-01T00:00:00.000Z' },
    ];
    p.metadata.annotations = { ...p.metadata.annotations, [NETNS_ANNOTATION]: 'x' };
    const created = (await mem.create(p)) as Pod;
    // a store that lets someone else write between our read and our write, once
    let raced = false;
    const racy: Store = Object.create(mem, {
      update: {
        value: async (obj: Pod) => {
          if (!raced) {
            raced = true;
            const cur = (await mem.get({ kind: 'Pod', namespace: 'egw', name: 'red-1' })) as Pod;
            await mem.update({ ...cur, metadata: { ...cur.metadata, labels: { ...cur.metadata.labels, touched: 'yes' } } });
          }
          return mem.update(obj);
        },
      },
    });
    const t1 = new Date('2024-05-01T10:00:00.000Z');
    assert.equal(await writeReadyCondition(racy, 'egw', 'red-1', created.metadata.uid, { status: 'True', reason: 'GatewayReady', message: 'ok' }, () => t1), 'written');
    let now = (await mem.get({ kind: 'Pod', namespace: 'egw', name: 'red-1' })) as Pod;
    assert.equal(now.metadata.labels?.touched, 'yes', 'the concurrent write survived');
    assert.equal(now.metadata.annotations?.[NETNS_ANNOTATION], 'x');
    assert.equal(now.status?.podIP, '10.10.10.0');
    assert.deepEqual(now.status?.conditions, [
      { type: 'PodScheduled', status: 'True' },
      { type: 'Ready', status: 'True', reason: 'GatewayReady', message: 'ok', lastTransitionTime: t1.toISOString() },
    ]);
    assert.equal(await writeReadyCondition(mem, 'egw', 'red-1', created.metadata.uid, { status: 'True', reason: 'GatewayReady', message: 'ok' }), 'unchanged');
    const t2 = new Date('2024-05-01T10:00:05.000Z');
    await writeReadyCondition(mem, 'egw', 'red-1', created.metadata.uid, { status: 'True', reason: 'GatewayReady', message: 'still ok' }, () => t2);
    now = (await mem.get({ kind: 'Pod', namespace: 'egw', name: 'red-1' })) as Pod;
    assert.equal(now.status?.conditions?.[1].lastTransitionTime, t1.toISOString(), 'same status: transition time kept');
    assert.equal(await writeReadyCondition(mem, 'egw', 'red-1', 'another-uid', { status: 'False', reason: 'X', message: '' }), 'gone');
    assert.equal(await writeReadyCondition(mem, 'egw', 'nope', undefined, { status: 'False', reason: 'X', message: '' }), 'gone');
    // a datastore failure surfaces (the gateway retries with backoff)
    const down: Store = Object.create(mem, { get: { value: async () => Promise.reject(new StoreError('Unavailable', 'down')) } });
    await assert.rejects(writeReadyCondition(down, 'egw', 'red-1', undefined, { status: 'False', reason: 'X', message: '' }), /down/);
  });
});

describe('runGateway health with a fake kernel', () => {
  const stops: AbortController[] = [];
  after(() => stops.forEach((s) => s.abort()));

  it('readiness, /readiness reasons, the Pod Ready condition and the UDP heartbeat follow the probes', async () => {
    const mem = new MemoryStore();
    const gw = egressGateway('egw', 'red', {
      egressGatewayFailureDetection: {
        healthTimeoutDataStoreSeconds: 90,
        icmpProbe: { ips: ['198.51.100.10'], intervalSeconds: 1, timeoutSeconds: 1 },
        httpProbe: { urls: ['http://198.51.100.10/'], intervalSeconds: 1, timeoutSeconds: 1 },
      },
    });
    for (const r of oneGatewayCluster({ egressGateway: gw, gatewayIp: '10.10.10.0' })) await mem.create(r);
    // the pod as the lab kubelet leaves it: not ready until the gateway says so
    const p0 = (await mem.get({ kind: 'Pod', namespace: 'egw', name: 'red-1' })) as Pod;
    p0.status!.conditions = [{ type: 'Ready', status: 'False', reason: 'GatewayStarting' }];
    await mem.update(p0);

    const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
    // a fake netns (as in plan.test.ts): an empty pod, every write accepted
    const kernel = new RecordingRunner((argv) => {
      const a = argv.join(' ');
      if (a === 'ip -d -json link show') return ok(JSON.stringify([{ ifindex: 2, ifname: 'eth0', mtu: 1500, address: '0e:00:00:00:00:01', flags: ['UP'] }]));
      if (argv[0] === 'cat') return ok('0\n1\n1\n');
      if (a.startsWith('nft -j list table')) return { code: 1, stdout: '', stderr: 'Error: No such file or directory\n' };
      return ok();
    });
    const icmpUp = { v: true };
    /** When the fake ping last succeeded: the probe's timeout runs from there. */
    let lastIcmpOk = 0;
    const httpUp = { v: true };
    const log = memoryLogger();
    const ac = new AbortController();
    stops.push(ac);
    let port = 0;
    const done = runGateway({
      store: mem,
      namespace: 'egw',
      name: 'red-1',
      runner: kernel,
      healthPort: 0,
      healthHost: '127.0.0.1',
      log,
      signal: ac.signal,
      onHealthListening: (p) => (port = p),
      probes: { ping: async () => (icmpUp.v ? ((lastIcmpOk = Date.now()), null) : 'no reply'), httpGet: async () => (httpUp.v ? null : 'connect ECONNREFUSED') },
    });
    await until('health server', () => port || undefined, 10_000, POLL);
    const ready = () => httpGet(`http://127.0.0.1:${port}/readiness`);
    const cond = async () => ((await mem.get({ kind: 'Pod', namespace: 'egw', name: 'red-1' })) as Pod).status?.conditions?.find((c) => c.type === 'Ready');

    // the heartbeat, on the same port number over UDP
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    // sent again every 100 ms until answered, as agents do: the responder's thread opens the port at the first
    // readiness, a moment after the process is ready (src/gateway/heartbeat.ts)
    const beat = (seq: number) =>
      new Promise<ReturnType<typeof decodeReply>>((resolve, reject) => {
        const send = () => sock.send(encodeRequest(seq, 5), port, '127.0.0.1');
        const again = setInterval(send, 100);
        const t = setTimeout(() => {
          clearInterval(again);
          reject(new Error('no heartbeat reply'));
        }, 2000);
        sock.on('message', function reply(m) {
          const r = decodeReply(m);
          if (r?.seq !== seq) return; // a late answer to an earlier request
          clearTimeout(t);
          clearInterval(again);
          sock.off('message', reply);
          resolve(r);
        });
        send();
      });
    try {
      await until('ready', async () => (await ready()).status === 200, 5000, POLL);
      await until('Pod Ready=True', async () => (await cond())?.status === 'True', 3000, POLL);
      assert.equal((await cond())?.reason, 'GatewayReady');
      assert.deepEqual(await beat(1), { seq: 1, token: 5, ready: true, draining: false, known: true });

      // the ICMP target stops answering: not ready once timeoutSeconds (1 s) has passed without a reply
      icmpUp.v = false;
      await until('503', async () => (await ready()).status === 503, 4000, { ...POLL, everyMs: 20 });
      // never before timeoutSeconds since the last reply (readiness is re-evaluated every 100 ms)
      const since = Date.now() - lastIcmpOk;
      assert.ok(since >= 990, `not ready ${since} ms after the last reply (timeout 1 s)`);
      assert.equal((await ready()).body, 'icmp probe: no reply from 198.51.100.10 for 1s\n');
      assert.deepEqual(await beat(2), { seq: 2, token: 5, ready: false, draining: false, known: true });
      await until('Pod Ready=False', async () => (await cond())?.status === 'False', 3000, POLL);
      assert.deepEqual(await cond().then((c) => [c?.reason, c?.message]), ['ICMPProbeFailing', 'icmp probe: no reply from 198.51.100.10 for 1s']);

      // HTTP fails too: both reasons; ICMP back: only HTTP — both kinds are required
      httpUp.v = false;
      await until('both failing', async () => (await ready()).body.split('\n').length === 3, 4000, { ...POLL, everyMs: 20 });
      assert.equal((await ready()).body, 'icmp probe: no reply from 198.51.100.10 for 1s\nhttp probe: no HTTP response from http://198.51.100.10/ for 1s (connect ECONNREFUSED)\n');
      icmpUp.v = true;
      await until('icmp back', async () => !(await ready()).body.includes('icmp'), 3000, { ...POLL, everyMs: 20 });
      assert.equal((await ready()).status, 503);
      await until('condition says HTTP', async () => (await cond())?.reason === 'HTTPProbeFailing', 3000, POLL);
      httpUp.v = true;
      await until('ready again', async () => (await ready()).status === 200, 3000, { ...POLL, everyMs: 20 });
      await until('Pod Ready=True again', async () => (await cond())?.status === 'True', 3000, POLL);
      assert.equal((await beat(3))?.ready, true);

      // a deletionTimestamp: the heartbeat says draining (readiness unchanged)
      const p = (await mem.get({ kind: 'Pod', namespace: 'egw', name: 'red-1' })) as Pod;
      await mem.update({ ...p, metadata: { ...p.metadata, deletionTimestamp: new Date(Date.now() + 10_000).toISOString() } });
      await until('draining', async () => (await beat(4))?.draining === true, 3000, POLL);
      assert.equal((await beat(5))?.ready, true);
      assert.ok(log.lines.some((l) => l.includes('not ready') && l.includes('icmp probe')), log.lines.join('\n'));
    } finally {
      sock.close();
      ac.abort();
      await done;
    }
  });
});
