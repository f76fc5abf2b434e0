// Gateway failure detection by the agent (src/agent/health.ts), without root: a fake clock and a fake transport
// whose peers answer as each test says, so every count is exact; then the agent wiring (transitions → calc → an
// immediate reconcile). Real UDP on loopback against the gateway's own responder: health-udp.test.ts.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, test } from 'node:test';
import { startAgent } from '../../src/agent/agent.js';
import { parseGoDuration } from '../../src/api/parse.js';
import { GatewayHealthMonitor, REFUSAL_FRESH_MS, type Clock, type HealthMonitorOptions, type HeartbeatTransport } from '../../src/agent/health.js';
import type { Resource } from '../../src/api/meta.js';
import { NAMESPACE_NAME_LABEL } from '../../src/api/types.js';
import type { GatewayHealth, NodeEgressState } from '../../src/calc/types.js';
import { READ } from '../../src/dataplane/commands.js';
import { RecordingRunner } from '../../src/dataplane/exec.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import { decodeReply, encodeReply, encodeRequest, startHeartbeatResponder, type HeartbeatReply } from '../../src/gateway/heartbeat.js';
import { memoryLogger } from '../../src/log.js';
import { cannedAnswer } from '../dataplane/helpers.js';
import { ADDRS } from '../dataplane/samples.js';
import { gatewayPod, twoNodeCluster } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';

/** A clock whose time moves only when the test says. */
class FakeClock implements Clock {
  t = 1_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  /** Runs every timer due within `ms`, in time order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

/** `refused`: the gateway process is gone and its kernel answers port unreachable, rate-limited as Linux does. */
type Behaviour = 'ready' | 'not-ready' | 'draining' | 'silent' | 'refused';

/** Peers by IP; each answers 1 ms after a request, as its current behaviour says. */
class FakeTransport implements HeartbeatTransport {
  readonly behaviour = new Map<string, Behaviour>();
  readonly sent: { ip: string; port: number; at: number }[] = [];
  readonly refusedAt: number[] = [];
  /** The peer's ICMP token bucket (net.ipv4.icmp_ratelimit 1000 ms, burst 6: measured, src/agent/health.ts). */
  private tokens = 6;
  private refilled = 0;
  private handler: (data: Buffer, from: string) => void = () => {};
  private refusedHandler: (ip: string) => void = () => {};
  constructor(private readonly clock: FakeClock) {}
  send(ip: string, port: number, data: Buffer): void {
    this.sent.push({ ip, port, at: this.clock.now() });
    const b = this.behaviour.get(ip) ?? 'silent';
    if (b === 'silent') return;
    if (b === 'refused') {
      const now = this.clock.now();
      this.tokens = Math.min(6, this.tokens + Math.floor((now - this.refilled) / 1000));
      if (now - this.refilled >= 1000) this.refilled = now;
      if (this.tokens === 0) return;
      this.tokens--;
      this.refusedAt.push(now);
      this.clock.setTimeout(() => this.refusedHandler(ip), 1);
      return;
    }
    const seq = data.readUInt32BE(8);
    const token = data.readUInt32BE(12);
    const reply: HeartbeatReply = { seq, token, ready: b !== 'not-ready', draining: b === 'draining', known: true };
    this.clock.setTimeout(() => this.handler(encodeReply(reply), ip), 1);
  }
  onReply(h: (data: Buffer, from: string) => void): void {
    this.handler = h;
  }
  onRefused(h: (ip: string) => void): void {
    this.refusedHandler = h;
  }
  async close(): Promise<void> {}
}

function setup(opts: { interval?: number; count?: number; initial?: Behaviour; grace?: number; observe?: HealthMonitorOptions['observe'] } = {}) {
  const clock = new FakeClock();
  const transport = new FakeTransport(clock);
  transport.behaviour.set('10.10.10.0', opts.initial ?? 'silent');
  const calls: { pod: string; health: GatewayHealth; at: number }[] = [];
  const forgotten: string[] = [];
  const log = memoryLogger();
  const m = new GatewayHealthMonitor({
    transport,
    clock,
    intervalMs: opts.interval ?? 200,
    failureCount: opts.count ?? 3,
    onTransition: (pod, health) => calls.push({ pod, health, at: clock.now() }),
    onForget: (pod) => forgotten.push(pod),
    observe: opts.observe,
    log,
    ...(opts.grace !== undefined ? { restartGraceMs: opts.grace } : {}),
  });
  m.setTargets([{ pod: 'default/red-a', ip: '10.10.10.0' }]);
  m.start();
  const t0 = clock.now();
  return { clock, transport, calls, forgotten, log, m, t0, verdict: () => m.status()[0]?.verdict };
}

describe('agent gateway health (fake clock)', () => {
  test('Go durations', () => {
    assert.equal(parseGoDuration('200ms'), 200);
    assert.equal(parseGoDuration('1.5s'), 1500);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('500us'), 0.5);
    assert.equal(parseGoDuration('10'), undefined);
    assert.equal(parseGoDuration('abc'), undefined);
  });

  test('metrics hooks: every reply\'s round trip, and each DOWN once with the time since the last good reply', () => {
    const rtts: number[] = [];
    const downs: [string, number | null][] = [];
    const s = setup({ initial: 'ready', observe: { rtt: (ms) => rtts.push(ms), down: (pod, ms) => downs.push([pod, ms]) } });
    s.clock.advance(1000);
    assert.deepEqual(rtts, [1, 1, 1, 1, 1], 'five replies so far (0 … 800), 1 ms each on the fake transport');
    const lastReply = s.clock.now() + 1; // the request at 1000 has left; its reply comes at 1001
    s.transport.behaviour.set('10.10.10.0', 'silent');
    s.clock.advance(2000);
    assert.equal(downs.length, 1, 'one DOWN, however long it stays down');
    assert.equal(downs[0][0], 'default/red-a');
    assert.equal(downs[0][1], s.calls.find((c) => !c.health.ready)!.at - lastReply);
    assert.ok(downs[0][1]! >= 600 && downs[0][1]! <= 800, `detection ${downs[0][1]} ms`);
    // never answered at all: a DOWN with no last reply
    const d2: [string, number | null][] = [];
    const s2 = setup({ observe: { rtt: () => {}, down: (pod, ms) => d2.push([pod, ms]) } });
    s2.clock.advance(1000);
    assert.deepEqual(d2, [['default/red-a', null]]);
  });

  test('one request per gateway per interval to port 8080; no verdict before replies', () => {
    const s = setup();
    s.clock.advance(999);
    assert.deepEqual(s.transport.sent.map((x) => [x.ip, x.port, x.at - s.t0]), [0, 200, 400, 600, 800].map((t) => ['10.10.10.0', 8080, t]));
    // silent peer: 3 misses → DOWN; but before that no verdict at all
    const s2 = setup();
    s2.clock.advance(150);
    assert.equal(s2.verdict(), 'unknown');
    assert.deepEqual(s2.calls, []);
  });

  test('UP only after failureCount good replies; DOWN after exactly failureCount misses', () => {
    const s = setup({ initial: 'ready' });
    s.clock.advance(201); // replies to the requests at 0 and 200
    assert.equal(s.verdict(), 'unknown', 'two good replies are not enough');
    s.clock.advance(200); // the third (request at 400, reply at 401)
    assert.equal(s.verdict(), 'up');
    assert.deepEqual(s.calls.map((c) => [c.health.ready, c.at - s.t0]), [[true, 401]]);
    s.clock.advance(1000);
    assert.equal(s.calls.length, 1, 'steady good replies: no more calls');
    // the gateway goes silent after answering the request at 1400
    s.clock.advance(1401 - (s.clock.now() - s.t0) + 10);
    s.transport.behaviour.set('10.10.10.0', 'silent');
    const cut = s.clock.now();
    s.clock.advance(1000);
    const downs = s.calls.filter((c) => !c.health.ready);
    assert.equal(downs.length, 1);
    // requests at 1600, 1800, 2000 are missed; each is judged 100 ms (half an interval) after it left
    assert.equal(downs[0].at - s.t0, 2100, `DOWN at ${downs[0].at - s.t0}`);
    assert.ok(downs[0].at - cut <= 3 * 200 + 100, `detection ${downs[0].at - cut} ms`);
    assert.deepEqual(downs[0].health.reasons, ['3 heartbeats missed (600 ms)']);
    assert.ok(s.log.lines.some((l) => l.includes('gateway default/red-a DOWN: 3 heartbeats missed (600 ms)')), s.log.lines.join('\n'));
    // two misses only: nothing (checked on a fresh monitor)
    const t = setup({ initial: 'ready' });
    t.clock.advance(500);
    assert.equal(t.verdict(), 'up');
    t.transport.behaviour.set('10.10.10.0', 'silent');
    t.clock.advance(400); // requests at 600 and 800 missed
    assert.equal(t.verdict(), 'up');
    assert.equal(t.m.status()[0].missed, 2);
    t.transport.behaviour.set('10.10.10.0', 'ready');
    t.clock.advance(2000);
    assert.equal(t.calls.length, 1, 'two misses then good replies: never DOWN');
  });

  test('a reply that says not ready → DOWN at once; back only after failureCount good replies', () => {
    const s = setup({ initial: 'ready' });
    s.clock.advance(500);
    assert.equal(s.verdict(), 'up');
    s.clock.advance(99); // t = 599
    s.transport.behaviour.set('10.10.10.0', 'not-ready');
    s.clock.advance(3); // request at 600, reply at 601
    assert.equal(s.verdict(), 'down');
    assert.deepEqual(s.calls.map((c) => [c.health.ready, c.at - s.t0, c.health.reasons]), [
      [true, 401, []],
      [false, 601, ['gateway reports not ready']],
    ]);
    s.clock.advance(1000);
    assert.equal(s.calls.length, 2, 'still not ready: no repeated calls');
    s.transport.behaviour.set('10.10.10.0', 'ready');
    const back = s.clock.now();
    s.clock.advance(399);
    assert.equal(s.verdict(), 'down', 'two good replies do not bring it back');
    s.clock.advance(200);
    assert.equal(s.verdict(), 'up');
    assert.equal(s.calls.length, 3);
    assert.ok(s.calls[2].at - back <= 3 * 200 + 1);
  });

  test('a flapping gateway (answers every other request) never comes back UP', () => {
    const s = setup({ initial: 'not-ready' });
    s.clock.advance(10);
    assert.equal(s.verdict(), 'down');
    for (let i = 0; i < 50; i++) {
      s.transport.behaviour.set('10.10.10.0', i % 2 ? 'ready' : 'silent');
      s.clock.advance(200);
    }
    assert.equal(s.verdict(), 'down');
    assert.equal(s.calls.length, 1, 'only the first DOWN was reported');
    // and an UP gateway that flaps is not taken DOWN either (never 3 misses in a row)
    const u = setup({ initial: 'ready' });
    u.clock.advance(500);
    for (let i = 0; i < 50; i++) {
      u.transport.behaviour.set('10.10.10.0', i % 2 ? 'ready' : 'silent');
      u.clock.advance(200);
    }
    assert.equal(u.verdict(), 'up');
    assert.equal(u.calls.length, 1);
  });

  test('draining is reported while UP; failureCount and interval follow configure()', () => {
    const s = setup({ initial: 'ready' });
    s.clock.advance(500);
    s.transport.behaviour.set('10.10.10.0', 'draining');
    s.clock.advance(200);
    assert.deepEqual(s.calls.map((c) => c.health), [
      { ready: true, draining: undefined, reasons: [] },
      { ready: true, draining: true, reasons: ['gateway reports draining'] },
    ]);
    s.m.configure(1000, 5);
    assert.deepEqual(s.m.settings, { intervalMs: 1000, failureCount: 5, replyTimeoutMs: 500, restartGraceMs: 30_000 });
    s.transport.behaviour.set('10.10.10.0', 'silent');
    const n = s.transport.sent.length;
    const cut = s.clock.now();
    // (configure() sent a request at once, answered before the peer went silent)
    s.clock.advance(4600);
    assert.equal(s.transport.sent.length - n, 4, 'one request per second');
    assert.equal(s.verdict(), 'up', 'four misses of five');
    s.clock.advance(1000);
    assert.equal(s.verdict(), 'down');
    assert.equal(s.calls.at(-1)!.at - cut, 5500);
  });

  test('targets: new ones start unknown, dropped ones lose their verdict (onForget), several gateways', () => {
    const s = setup();
    s.m.setTargets([
      { pod: 'default/red-a', ip: '10.10.10.0' },
      { pod: 'default/red-b', ip: '10.10.10.1' },
    ]);
    s.transport.behaviour.set('10.10.10.0', 'ready');
    s.transport.behaviour.set('10.10.10.1', 'silent');
    s.clock.advance(1000);
    assert.deepEqual(s.m.status().map((g) => [g.pod, g.verdict]), [
      ['default/red-a', 'up'],
      ['default/red-b', 'down'],
    ]);
    assert.deepEqual(s.m.verdicts().map(([p, h]) => [p, h.ready]), [
      ['default/red-a', true],
      ['default/red-b', false],
    ]);
    s.m.setTargets([{ pod: 'default/red-a', ip: '10.10.10.0' }]);
    assert.deepEqual(s.forgotten, ['default/red-b']);
    // a pod whose IP changed is a new gateway
    s.m.setTargets([{ pod: 'default/red-a', ip: '10.10.10.3' }]);
    assert.deepEqual(s.forgotten, ['default/red-b', 'default/red-a']);
    assert.equal(s.verdict(), 'unknown');
  });

  test('stray replies (wrong token, unknown sender, late, malformed) count for nothing', () => {
    const s = setup();
    let handler: (d: Buffer, f: string) => void = () => {};
    // reach the monitor's handler through a second transport that only captures it
    const capture: HeartbeatTransport = { send: () => {}, onReply: (h) => (handler = h), close: async () => {} };
    const seen: boolean[] = [];
    const m = new GatewayHealthMonitor({ transport: capture, clock: s.clock, token: 7, onTransition: (_p, h) => seen.push(h.ready) });
    m.setTargets([{ pod: 'x/y', ip: '10.0.0.1' }]);
    m.start();
    const seq = () => (m as unknown as { seq: number }).seq;
    for (let i = 0; i < 5; i++) {
      handler(encodeReply({ seq: seq(), token: 8, ready: true, draining: false, known: true }), '10.0.0.1'); // wrong token
      handler(encodeReply({ seq: seq(), token: 7, ready: true, draining: false, known: true }), '10.0.0.2'); // wrong sender
      handler(encodeReply({ seq: seq() - 1, token: 7, ready: true, draining: false, known: true }), '10.0.0.1'); // late
      handler(Buffer.from('{"ready":true}'), '10.0.0.1');
      s.clock.advance(200);
      if (i < 2) assert.equal(m.status()[0].verdict, 'unknown');
    }
    assert.deepEqual(seen, [false], 'none counted as an answer: three misses made it DOWN, nothing made it UP');
    m.stop();
  });
});

describe('agent gateway health: a refusing kernel holds the verdict (fake clock)', () => {
  test('the gateway process dies (port refused, rate-limited as Linux does): UP the whole time; a reply ends the hold', () => {
    const s = setup({ initial: 'ready' });
    s.clock.advance(500);
    assert.equal(s.verdict(), 'up');
    s.transport.behaviour.set('10.10.10.0', 'refused');
    const killed = s.clock.now();
    s.clock.advance(10_000);
    assert.equal(s.verdict(), 'up');
    assert.equal(s.calls.length, 1, 'no transition while refused');
    const st = s.m.status()[0];
    assert.ok(st.missed >= 49, `misses are still counted (${st.missed})`);
    assert.ok(st.refusingSince !== null && Date.parse(st.refusingSince) - killed <= 201, JSON.stringify(st));
    // the fake kernel's rate limit: a burst, then one a second — never a gap the hold does not cover
    const gaps = s.transport.refusedAt.slice(1).map((t, i) => t - s.transport.refusedAt[i]);
    assert.ok(gaps.some((g) => g >= 1000) && Math.max(...gaps) < 2000, `refusal gaps ${gaps}`);
    assert.ok(s.log.lines.some((l) => l.includes('gateway default/red-a: its process does not answer, its kernel refuses the heartbeats; keeping it UP for up to 30 s')), s.log.lines.join('\n'));
    // the restarted process answers
    s.transport.behaviour.set('10.10.10.0', 'ready');
    s.clock.advance(201);
    const back = s.m.status()[0];
    assert.deepEqual([back.verdict, back.missed, back.refusingSince, back.lastRefusal], ['up', 0, null, null]);
    assert.equal(s.calls.length, 1);
    assert.ok(s.log.lines.some((l) => /gateway default\/red-a answers again after 10\.\d s of refused heartbeats/.test(l)), s.log.lines.join('\n'));
    // and a later silence is a failure as before: DOWN after 3 misses
    s.transport.behaviour.set('10.10.10.0', 'silent');
    s.clock.advance(700);
    assert.equal(s.verdict(), 'down');
    assert.deepEqual(s.calls.at(-1)!.health.reasons, ['3 heartbeats missed (600 ms)']);
  });

  test('a reply ends the hold at once: a link cut just after a restart (a refusal moments before) fails over as fast as ever', () => {
    const s = setup({ initial: 'ready' });
    s.clock.advance(500);
    s.transport.behaviour.set('10.10.10.0', 'refused');
    s.clock.advance(3000);
    for (let n = s.transport.refusedAt.length; s.transport.refusedAt.length === n; ) s.clock.advance(10); // a refusal just now
    s.transport.behaviour.set('10.10.10.0', 'ready');
    s.clock.advance(202); // the restarted process answers once (the request 200 ms on, its reply 1 ms later)
    assert.equal(s.m.status()[0].lastRefusal, null);
    s.transport.behaviour.set('10.10.10.0', 'silent'); // and its link is cut
    const cut = s.clock.now();
    s.clock.advance(1000);
    assert.equal(s.calls.length, 2);
    assert.deepEqual(s.calls[1].health.reasons, ['3 heartbeats missed (600 ms)']);
    assert.ok(s.calls[1].at - cut <= 3 * 200 + 100, `DOWN ${s.calls[1].at - cut} ms after the cut`);
  });

  test('the grace ends: DOWN once refusals have lasted restartGraceMs (default 30 s)', () => {
    const s = setup({ initial: 'ready', grace: 5000 });
    s.clock.advance(500);
    assert.equal(s.m.settings.restartGraceMs, 5000);
    s.transport.behaviour.set('10.10.10.0', 'refused');
    s.clock.advance(20_000);
    assert.equal(s.calls.length, 2);
    const down = s.calls[1];
    const first = s.transport.refusedAt[0];
    assert.equal(down.health.ready, false);
    assert.ok(down.at - first >= 5000 && down.at - first <= 5000 + 200 + 100, `DOWN ${down.at - first} ms after the first refusal (grace 5 s)`);
    assert.match(down.health.reasons![0], /^gateway process not answering for 5\.\d s \(its kernel refuses the heartbeats; restart grace 5 s\)$/);
    // the default
    const d = setup({ initial: 'ready' });
    d.clock.advance(500);
    assert.equal(d.m.settings.restartGraceMs, 30_000);
    d.transport.behaviour.set('10.10.10.0', 'refused');
    d.clock.advance(29_500);
    assert.equal(d.verdict(), 'up');
    d.clock.advance(1000);
    assert.equal(d.verdict(), 'down');
  });

  test('a link cut during the hold: refusals stop, DOWN within REFUSAL_FRESH_MS of the last one', () => {
    const s = setup({ initial: 'ready' });
    s.clock.advance(500);
    s.transport.behaviour.set('10.10.10.0', 'refused');
    s.clock.advance(3000);
    s.transport.behaviour.set('10.10.10.0', 'silent');
    s.clock.advance(5000);
    assert.equal(s.calls.length, 2);
    const last = s.transport.refusedAt.at(-1)!;
    const down = s.calls[1];
    assert.ok(down.at - last > REFUSAL_FRESH_MS && down.at - last <= REFUSAL_FRESH_MS + 200 + 100, `DOWN ${down.at - last} ms after the last refusal`);
    assert.match(down.health.reasons![0], /^\d+ heartbeats missed \(\d+ ms\); no refusal from its kernel for \d+ ms$/);
  });

  test('refusals bring no DOWN gateway back and give none a verdict; a not-ready reply still counts at once; grace 0 ignores them', () => {
    const s = setup({ initial: 'silent' });
    s.clock.advance(1000);
    assert.equal(s.verdict(), 'down');
    s.transport.behaviour.set('10.10.10.0', 'refused');
    s.clock.advance(5000);
    assert.equal(s.verdict(), 'down');
    assert.equal(s.calls.length, 1);
    // never heard from, refused from the start: no verdict (its Pod's Ready condition decides) until the grace ends
    const u = setup({ initial: 'refused' });
    u.clock.advance(10_000);
    assert.equal(u.verdict(), 'unknown');
    assert.deepEqual(u.calls, []);
    u.clock.advance(20_500);
    assert.equal(u.verdict(), 'down');
    // the process comes back not ready: DOWN at its first reply
    const n = setup({ initial: 'ready' });
    n.clock.advance(500);
    n.transport.behaviour.set('10.10.10.0', 'refused');
    n.clock.advance(2000);
    n.transport.behaviour.set('10.10.10.0', 'not-ready');
    n.clock.advance(200);
    assert.deepEqual(n.calls.map((c) => c.health.reasons), [[], ['gateway reports not ready']]);
    // restartGraceMs 0: a refused request is a miss like any other
    const z = setup({ initial: 'ready', grace: 0 });
    z.clock.advance(500);
    z.transport.behaviour.set('10.10.10.0', 'refused');
    z.clock.advance(700);
    assert.equal(z.verdict(), 'down');
    assert.deepEqual(z.calls.at(-1)!.health.reasons, ['3 heartbeats missed (600 ms)']);
  });
});

describe('agent wiring', () => {
  const ADDRS_9000 = ADDRS.replace('"mtu":1500', '"mtu":9000');
  const runner = () => {
    const canned = cannedAnswer({ link: null, nft: null });
    return new RecordingRunner((argv) => (argv.join(' ') === READ.addresses().join(' ') ? { code: 0, stdout: ADDRS_9000, stderr: '' } : canned(argv)));
  };

  /** Real-time transport: peers answer after 1 ms as told. */
  class Peers implements HeartbeatTransport {
    readonly behaviour = new Map<string, Behaviour>();
    readonly sent = new Map<string, number>();
    private h: (d: Buffer, f: string) => void = () => {};
    send(ip: string, _port: number, data: Buffer): void {
      this.sent.set(ip, (this.sent.get(ip) ?? 0) + 1);
      const b = this.behaviour.get(ip) ?? 'ready';
      if (b === 'silent') return;
      const reply = encodeReply({ seq: data.readUInt32BE(8), token: data.readUInt32BE(12), ready: b !== 'not-ready', draining: b === 'draining', known: true });
      setTimeout(() => this.h(reply, ip), 1);
    }
    onReply(h: (d: Buffer, f: string) => void): void {
      this.h = h;
    }
    async close(): Promise<void> {}
  }

  const vias = (s: NodeEgressState | undefined) => (s ? s.tables.flatMap((t) => t.routes.flatMap((r) => (r.type === 'ecmp' ? r.via : []))) : []);

  test('heartbeats the candidate gateways at the FelixConfiguration interval; a dead one leaves the routes at once; status shows it', async () => {
    const resources: Resource[] = twoNodeCluster().map((r) =>
      r.kind === 'FelixConfiguration' ? { ...r, spec: { ...(r.spec as object), egressGatewayPollInterval: '50ms', egressGatewayPollFailureCount: 3 } } : r,
    );
    // a third gateway pod that no client's selector matches: not heartbeated
    resources.push(gatewayPod('egw', 'other-zzzzz', 'other', { node: 'n2', ip: '10.10.10.5', labels: { app: 'other' } }));
    const store = new MemoryStore();
    for (const r of resources) await store.create(r);
    const peers = new Peers();
    /** Each reconcile's routes, with the heartbeats sent to each gateway by then. */
    const states: { vias: string[]; sent: Map<string, number> }[] = [];
    const ac = new AbortController();
    const agent = startAgent({
      store,
      node: 'n1',
      runner: runner(),
      signal: ac.signal,
      log: memoryLogger(),
      heartbeat: { transport: peers },
      onReconcile: (_r, s) => states.push({ vias: vias(s), sent: new Map(peers.sent) }),
    });
    try {
      await until('the first reconcile', () => states.length > 0, 3000);
      assert.deepEqual(states[0].vias, ['10.10.10.1', '10.10.10.2'], 'before any verdict the Pods’ Ready conditions decide');
      await until('both gateways up', () => agent.status().health.gateways.every((g) => g.verdict === 'up') && agent.status().health.gateways.length === 2, 3000);
      const st = agent.status().health;
      assert.equal(st.enabled, true);
      assert.equal(st.intervalMs, 50);
      assert.equal(st.failureCount, 3);
      assert.deepEqual(st.gateways.map((g) => [g.pod, g.ip, g.verdict]), [
        ['egw/gw-aaaaa', '10.10.10.1', 'up'],
        ['egw/gw-bbbbb', '10.10.10.2', 'up'],
      ]);
      assert.equal(peers.sent.get('10.10.10.5'), undefined, 'a gateway no local client could use is not heartbeated');
      assert.equal(states.length, 1, 'UP verdicts that agree with the Pods change nothing in the kernel');
      // gw-aaaaa dies: every request from here on goes unanswered
      const cut = peers.sent.get('10.10.10.1')!;
      peers.behaviour.set('10.10.10.1', 'silent');
      await until('routes via 10.10.10.2 only', () => states.at(-1)!.vias.join() === '10.10.10.2', 3000);
      // out of the routes not before three heartbeats went unanswered, and at once after the third (the reconcile
      // its DOWN verdict starts, not debounced and long before a resync): before a fifth went out
      const silent = states.at(-1)!.sent.get('10.10.10.1')! - cut;
      assert.ok(silent >= 3 && silent <= 4, `out of the routes after ${silent} unanswered heartbeats (count 3)`);
      assert.equal(agent.status().health.gateways[0].verdict, 'down');
      assert.deepEqual(agent.status().health.gateways[0].reasons, ['3 heartbeats missed (150 ms)']);
      // back: after three good replies
      peers.behaviour.set('10.10.10.1', 'ready');
      await until('routes via both again', () => states.at(-1)!.vias.join() === '10.10.10.1,10.10.10.2', 3000);
      // not ready → out at the first reply that says so (+ the reconcile it starts at once): before a third request
      const change = peers.sent.get('10.10.10.2')!;
      peers.behaviour.set('10.10.10.2', 'not-ready');
      await until('routes via 10.10.10.1 only', () => states.at(-1)!.vias.join() === '10.10.10.1', 3000);
      const asked = states.at(-1)!.sent.get('10.10.10.2')! - change;
      assert.ok(asked >= 1 && asked <= 2, `not-ready gateway out after ${asked} heartbeats since it said so`);
      // a datastore change rebuilds nothing of the verdicts: an unrelated update keeps gw-bbbbb out
      await store.update({ ...(await store.get({ kind: 'Namespace', namespace: '', name: 'app' }))!, metadata: { ...(await store.get({ kind: 'Namespace', namespace: '', name: 'app' }))!.metadata, labels: { [NAMESPACE_NAME_LABEL]: 'app', x: 'y' } } });
      await sleep(100);
      assert.equal(states.at(-1)!.vias.join(), '10.10.10.1');
    } finally {
      ac.abort();
      await agent.done;
    }
  });

  test('restart: a gateway that does not answer stays in until its verdict; one whose Pod is not Ready and never answered stays out', async () => {
    const resources = twoNodeCluster().map((r) =>
      r.kind === 'Pod' && r.metadata.name === 'gw-bbbbb' ? { ...r, status: { ...(r.status as object), conditions: [{ type: 'Ready', status: 'False' }] } } : r,
    );
    const store = new MemoryStore();
    for (const r of resources) await store.create(r);
    const peers = new Peers();
    peers.behaviour.set('10.10.10.1', 'silent');
    peers.behaviour.set('10.10.10.2', 'silent');
    const states: string[][] = [];
    const ac = new AbortController();
    const agent = startAgent({ store, node: 'n1', runner: runner(), signal: ac.signal, heartbeat: { transport: peers, intervalMs: 40 }, onReconcile: (_r, s) => states.push(vias(s)) });
    try {
      await until('the first reconcile', () => states.length > 0, 3000);
      assert.deepEqual(states[0], ['10.10.10.1']);
      await until('no route via a gateway', () => states.at(-1)!.length === 0, 3000);
      assert.deepEqual(agent.status().health.gateways.map((g) => g.verdict), ['down', 'down']);
    } finally {
      ac.abort();
      await agent.done;
    }
  });

  test('with a runner and no transport, heartbeats are off (this process is not in that namespace)', async () => {
    const store = new MemoryStore();
    for (const r of twoNodeCluster()) await store.create(r);
    const ac = new AbortController();
    const agent = startAgent({ store, node: 'n1', runner: runner(), signal: ac.signal });
    try {
      await until('the first reconcile', () => agent.status().reconciles >= 1, 3000);
      assert.equal(agent.status().health.enabled, false);
    } finally {
      ac.abort();
      await agent.done;
    }
  });
});

describe('gateway heartbeat responder before its first programming attempt', () => {
  test('keeps its port closed (refused: a restarted gateway is neither "not ready" nor silent), then answers', async () => {
    const r = await startHeartbeatResponder({ port: 0, host: '127.0.0.4' });
    const sock = dgram.createSocket('udp4');
    try {
      const errors: string[] = [];
      sock.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
      await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
      await new Promise<void>((resolve) => sock.connect(r.port, '127.0.0.4', () => resolve()));
      const replies: Buffer[] = [];
      sock.on('message', (m) => replies.push(m));
      sock.send(encodeRequest(1, 9));
      await until('the refusal', () => errors.length > 0, 1000);
      assert.deepEqual(errors, ['ECONNREFUSED'], 'refused before the first setState');
      assert.equal(replies.length, 0);
      assert.equal(r.answered, 0);
      r.setState({ ready: true, draining: false, known: true });
      await until('the port open', async () => {
        sock.send(encodeRequest(2, 9));
        await sleep(20);
        return replies.length > 0;
      }, 1000);
      assert.deepEqual(decodeReply(replies[0]), { seq: 2, token: 9, ready: true, draining: false, known: true });
      assert.equal(r.answered, replies.length);
    } finally {
      sock.close();
      await r.close();
    }
  });
});
