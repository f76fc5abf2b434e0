// Gateway failure detection by the agent (src/agent/health.ts) over real UDP on loopback, against the gateway's own
// responder (src/gateway/heartbeat.ts), without root. The fake-clock cases are in health.test.ts.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, test } from 'node:test';
import { GatewayHealthMonitor, udpHeartbeatTransport, type HeartbeatTransport } from '../../src/agent/health.js';
import { decodeReply, startHeartbeatResponder } from '../../src/gateway/heartbeat.js';
import { memoryLogger } from '../../src/log.js';
import { sleep, until } from '../helpers/wait.js';

describe('agent gateway health over real UDP on loopback', () => {
  test('against the gateway responder: UP, DOWN when it stops answering, DOWN at once when not ready', async () => {
    // two "gateways" on 127.0.0.2 and 127.0.0.3, same port (the monitor uses one port for all)
    const r1 = await startHeartbeatResponder({ port: 0, host: '127.0.0.2' });
    const r2 = await startHeartbeatResponder({ port: r1.port, host: '127.0.0.3' });
    const udp = await udpHeartbeatTransport({ bindHost: '127.0.0.1' });
    // the real transport, counting per gateway the requests sent and the replies that said not ready
    const sent = new Map<string, number>();
    const notReady = new Map<string, number>();
    const bump = (m: Map<string, number>, ip: string) => m.set(ip, (m.get(ip) ?? 0) + 1);
    const transport: HeartbeatTransport = {
      send: (ip, port, data) => {
        bump(sent, ip);
        udp.send(ip, port, data);
      },
      onReply: (h) =>
        udp.onReply((data, from) => {
          if (decodeReply(data)?.ready === false) bump(notReady, from);
          h(data, from);
        }),
      close: () => udp.close(),
    };
    /** Each transition, with the counts as they were when it was made. */
    const events: { pod: string; ready: boolean; reasons: string[]; sent: Map<string, number>; notReady: Map<string, number> }[] = [];
    const holes: dgram.Socket[] = [];
    const m = new GatewayHealthMonitor({
      transport,
      port: r1.port,
      intervalMs: 50,
      failureCount: 3,
      onTransition: (pod, h) => events.push({ pod, ready: h.ready, reasons: h.reasons ?? [], sent: new Map(sent), notReady: new Map(notReady) }),
    });
    try {
      r1.setState({ ready: true, draining: false, known: true });
      r2.setState({ ready: true, draining: false, known: true });
      m.setTargets([
        { pod: 'default/g1', ip: '127.0.0.2' },
        { pod: 'default/g2', ip: '127.0.0.3' },
      ]);
      m.start();
      const transitions = (n: number) => () => `${n} transitions; events ${JSON.stringify(events)}`;
      await until(transitions(2), () => events.length === 2, 2000);
      assert.deepEqual(events.map((e) => [e.pod, e.ready]).sort(), [
        ['default/g1', true],
        ['default/g2', true],
      ]);
      const st = m.status();
      assert.ok(st.every((g) => g.rttMs !== null && g.rttMs < 50 && g.lastReply !== null), JSON.stringify(st));
      // g2 stops answering (its port open, nothing answers: what a cut link looks like; a closed port is refused, below)
      await r2.close();
      const hole = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => hole.bind(r1.port, '127.0.0.3', () => resolve()));
      holes.push(hole);
      const cut = sent.get('127.0.0.3')!;
      await until(transitions(3), () => events.length === 3, 2000);
      assert.deepEqual([events[2].pod, events[2].ready, events[2].reasons], ['default/g2', false, ['3 heartbeats missed (150 ms)']]);
      // DOWN at the third miss: not before two requests sent after the cut went unanswered (the first miss may be the
      // one on its way when it came), nor after a fourth
      const unanswered = events[2].sent.get('127.0.0.3')! - cut;
      assert.ok(unanswered >= 2 && unanswered <= 3, `g2 DOWN after ${unanswered} requests since it stopped answering (count 3)`);
      // g1 reports not ready: DOWN at the first reply that says so
      r1.setState({ ready: false, draining: false, known: true });
      await until(transitions(4), () => events.length === 4, 2000);
      assert.deepEqual([events[3].pod, events[3].ready, events[3].reasons], ['default/g1', false, ['gateway reports not ready']]);
      assert.equal(events[3].notReady.get('127.0.0.2'), 1, 'DOWN on the first not-ready reply');
      assert.ok(r1.answered > 3);
    } finally {
      m.stop();
      await transport.close();
      await r1.close();
      for (const h of holes) h.close();
    }
  });

  test('a closed port (the gateway process gone): the connected socket hears ECONNREFUSED, the verdict stays UP; the restarted responder answers', async () => {
    const r = await startHeartbeatResponder({ port: 0, host: '127.0.0.5' });
    const udp = await udpHeartbeatTransport({ bindHost: '127.0.0.1' });
    let refusals = 0;
    const transport: HeartbeatTransport = {
      send: (ip, port, data) => udp.send(ip, port, data),
      onReply: (h) => udp.onReply(h),
      onRefused: (h) =>
        udp.onRefused!((ip) => {
          refusals++;
          h(ip);
        }),
      setPeers: (ips) => udp.setPeers!(ips),
      close: () => udp.close(),
    };
    const events: [string, boolean][] = [];
    const log = memoryLogger();
    const m = new GatewayHealthMonitor({ transport, port: r.port, intervalMs: 50, failureCount: 3, log, onTransition: (pod, h) => events.push([pod, h.ready]) });
    let again: Awaited<ReturnType<typeof startHeartbeatResponder>> | undefined;
    try {
      r.setState({ ready: true, draining: false, known: true });
      m.setTargets([{ pod: 'default/g5', ip: '127.0.0.5' }]);
      m.start();
      await until('UP', () => events.length === 1, 2000);
      await r.close(); // the process is gone: nothing listens on the port
      await sleep(1000); // 20 intervals, far beyond 3 misses (loopback is not rate-limited)
      assert.ok(refusals >= 15, `${refusals} refusals`);
      assert.deepEqual(events, [['default/g5', true]], 'still UP: refused, not missed');
      assert.ok(m.status()[0].missed >= 15 && m.status()[0].refusingSince !== null, JSON.stringify(m.status()));
      // restarted: silent (port still closed) until it knows its state, then it answers
      again = await startHeartbeatResponder({ port: r.port, host: '127.0.0.5' });
      await sleep(200);
      assert.deepEqual(events.length, 1);
      again.setState({ ready: true, draining: false, known: true });
      await until('a reply again', () => m.status()[0].missed === 0, 2000);
      assert.deepEqual(events, [['default/g5', true]]);
      assert.equal(m.status()[0].refusingSince, null);
      assert.ok(log.lines.some((l) => l.includes('answers again after')), log.lines.join('\n'));
      // dropped from the targets: its socket is closed (no further requests, nothing more counted)
      m.setTargets([]);
      const n = refusals;
      await again.close();
      await sleep(200);
      assert.equal(refusals, n);
    } finally {
      m.stop();
      await transport.close();
      await again?.close();
    }
  });
});
