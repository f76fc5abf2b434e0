// Gateway failure detection by the node agent: a UDP heartbeat to every gateway a local client could use.
//
// Which gateways: `EgressCalculator.candidateGateways(node)` — the gateway pods matching the selectors of the
// node's clients, before health/drain/maxNextHops filtering (a failed gateway stays in the set, so its recovery is
// seen; gateways no local client could use cost nothing). Every `egressGatewayPollInterval` (FelixConfiguration,
// Go duration, egw default 200ms) the agent sends one 16-byte request to `<gateway pod IP>:8080/udp` from the node's
// network namespace; the gateway answers at once with its readiness and whether it drains (wire format:
// src/gateway/heartbeat.ts). A request without a reply within half the interval is missed.
//
//   DOWN  after `egressGatewayPollFailureCount` (default 3) consecutive missed replies, or at once on a reply that
//         says "not ready" (a failing probe, datastore lost, data plane not programmed);
//   UP    only after failureCount consecutive good replies (hysteresis: a flapping gateway never comes back).
// A verdict is handed to the calculator (`setGatewayHealth(pod, {ready, draining, reasons})`) only when it changes,
// and the agent reconciles at once. Before its first verdict a gateway's health is its Pod's Ready condition (what
// the gateway itself writes), so a restarting agent changes nothing in the kernel, and a gateway never heard from
// whose Pod is not Ready stays out.
//
// Detection time at the defaults (200 ms, 3): the first missed request leaves at most one interval after the
// failure, the third is declared missed 2 intervals + 100 ms after it → 500–700 ms, plus one reconcile (~10–50 ms)
// → well under 1 s. A gateway that reports not ready is dropped within one interval (+ reconcile).
//
// Cost per gateway, 1,000-node cluster, defaults (worst case: every node has a client of every gateway):
//   each node: 5 requests/s to that gateway, 5 replies/s back; a datagram is 16 B payload + 8 UDP + 20 IPv4 = 44 B
//   (+ 14 B Ethernet = 58 B on the wire)
//   → at the gateway: 5,000 requests/s in + 5,000 replies/s out = 10,000 packets/s,
//     5,000 × 44 B = 220 kB/s (1.76 Mbit/s) each way (290 kB/s, 2.3 Mbit/s each way with Ethernet headers);
//   → per node: 10 packets/s and 440 B/s (3.5 kbit/s) per gateway it tracks.
// Answering is a buffer rewrite and one sendto() per request (no parsing, no allocation beyond Node's receive
// buffer); 5,000 requests/s is a few per cent of one core in Node. Only nodes with clients of the gateway send.
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import type { GatewayHealth } from '../calc/types.js';
import { decodeReply, encodeRequest } from '../gateway/heartbeat.js';
import type { Logger } from '../log.js';
import { errText } from '../util.js';

export const DEFAULT_HEARTBEAT_PORT = 8080;
export const DEFAULT_POLL_INTERVAL_MS = 200;
export const DEFAULT_POLL_FAILURE_COUNT = 3;
export const MIN_POLL_INTERVAL_MS = 10;

/** How requests leave and replies arrive (injectable: tests use loopback peers or a fake). */
export interface HeartbeatTransport {
  send(ip: string, port: number, data: Buffer): void;
  /** Sets the one reply handler. */
  onReply(handler: (data: Buffer, fromIp: string) => void): void;
  close(): Promise<void>;
}

/** One UDP socket (ephemeral port) in this process's network namespace. */
export async function udpHeartbeatTransport(opts: { bindHost?: string; log?: Logger } = {}): Promise<HeartbeatTransport> {
  const sock = dgram.createSocket('udp4');
  let handler: (data: Buffer, fromIp: string) => void = () => {};
  sock.on('message', (msg, rinfo) => handler(msg, rinfo.address));
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, opts.bindHost ?? '0.0.0.0', () => {
      sock.off('error', reject);
      resolve();
    });
  });
  // e.g. EHOSTUNREACH for a gateway whose node is gone: the reply is then simply missed
  sock.on('error', (err) => opts.log?.debug('heartbeat socket error', { err: err.message }));
  return {
    send: (ip, port, data) => sock.send(data, port, ip, (err) => err && opts.log?.debug('heartbeat send failed', { ip, err: err.message })),
    onReply: (h) => {
      handler = h;
    },
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export type Verdict = 'unknown' | 'up' | 'down';

/** One gateway as the agent sees it (AgentStatus.health.gateways). */
export interface GatewayHealthStatus {
  pod: string;
  ip: string;
  /** unknown = no verdict yet: the Pod's Ready condition decides. */
  verdict: Verdict;
  /** What the last reply said (null: no reply yet). */
  ready: boolean | null;
  draining: boolean;
  /** Consecutive missed replies / consecutive good replies. */
  missed: number;
  good: number;
  lastReply: string | null;
  /** When the verdict last changed. */
  since: string | null;
  rttMs: number | null;
  reasons: string[];
}

export interface GatewayTarget {
  pod: string;
  ip: string;
}

export interface HealthMonitorOptions {
  transport: HeartbeatTransport;
  /** UDP port of the gateways' responders. Default 8080. */
  port?: number;
  intervalMs?: number;
  failureCount?: number;
  /** A request is missed without a reply within this; default half the interval. */
  replyTimeoutMs?: number;
  /** A verdict changed (also a draining change while up). */
  onTransition: (pod: string, health: GatewayHealth) => void;
  /** A gateway with a verdict is no longer tracked: drop its override. */
  onForget?: (pod: string) => void;
  log?: Logger;
  clock?: Clock;
  /** Echoed by the gateways; replies with another token are ignored. Default random. */
  token?: number;
}

interface Tracker {
  readonly pod: string;
  readonly ip: string;
  verdict: Verdict;
  /** Sequence number awaiting a reply, or null. */
  pending: number | null;
  sentAt: number;
  missed: number;
  good: number;
  ready: boolean | null;
  draining: boolean;
  lastReply: number | null;
  since: number | null;
  rttMs: number | null;
  reasons: string[];
}

/** Heartbeats a set of gateways and turns replies and silences into UP/DOWN verdicts (see the top of this file). */
export class GatewayHealthMonitor {
  private readonly transport: HeartbeatTransport;
  private readonly port: number;
  private intervalMs: number;
  private failureCount: number;
  private readonly fixedReplyTimeoutMs: number | undefined;
  private readonly clock: Clock;
  private readonly token: number;
  private readonly log?: Logger;
  private readonly trackers = new Map<string, Tracker>();
  private readonly byIp = new Map<string, Set<Tracker>>();
  private seq: number;
  private roundTimer: unknown = null;
  private evalTimer: unknown = null;
  private running = false;

  constructor(private readonly opts: HealthMonitorOptions) {
    this.transport = opts.transport;
    this.port = opts.port ?? DEFAULT_HEARTBEAT_PORT;
    this.intervalMs = Math.max(MIN_POLL_INTERVAL_MS, opts.intervalMs ?? DEFAULT_POLL_INTERVAL_MS);
    this.failureCount = Math.max(1, Math.floor(opts.failureCount ?? DEFAULT_POLL_FAILURE_COUNT));
    this.fixedReplyTimeoutMs = opts.replyTimeoutMs;
    this.clock = opts.clock ?? realClock;
    this.token = (opts.token ?? randomInt(0, 2 ** 32)) >>> 0;
    this.seq = randomInt(0, 2 ** 31);
    this.log = opts.log;
    this.transport.onReply((data, from) => this.onReply(data, from));
  }

  get settings(): { intervalMs: number; failureCount: number; replyTimeoutMs: number } {
    return { intervalMs: this.intervalMs, failureCount: this.failureCount, replyTimeoutMs: this.replyTimeoutMs() };
  }

  private replyTimeoutMs(): number {
    return Math.min(this.intervalMs, this.fixedReplyTimeoutMs ?? Math.max(1, Math.floor(this.intervalMs / 2)));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.round();
  }

  stop(): void {
    this.running = false;
    this.clearTimers();
  }

  private clearTimers(): void {
    if (this.roundTimer !== null) this.clock.clearTimeout(this.roundTimer);
    if (this.evalTimer !== null) this.clock.clearTimeout(this.evalTimer);
    this.roundTimer = this.evalTimer = null;
  }

  /** New poll settings (FelixConfiguration); the next round uses them. */
  configure(intervalMs: number, failureCount: number): void {
    const iv = Math.max(MIN_POLL_INTERVAL_MS, intervalMs);
    const fc = Math.max(1, Math.floor(failureCount));
    if (iv === this.intervalMs && fc === this.failureCount) return;
    this.log?.info('gateway heartbeat settings', { intervalMs: iv, failureCount: fc });
    this.intervalMs = iv;
    this.failureCount = fc;
    if (!this.running) return;
    // restart the rhythm: what is pending now counts as neither missed nor answered
    this.clearTimers();
    for (const t of this.trackers.values()) t.pending = null;
    this.round();
  }

  /** The gateways to heartbeat. New ones start without a verdict; dropped ones lose theirs (onForget). */
  setTargets(targets: readonly GatewayTarget[]): void {
    const want = new Map<string, string>();
    for (const t of targets) want.set(t.pod, t.ip);
    for (const [pod, t] of this.trackers) {
      if (want.get(pod) === t.ip) continue;
      this.untrack(t);
      if (t.verdict !== 'unknown') this.opts.onForget?.(pod);
    }
    for (const [pod, ip] of want) {
      if (this.trackers.has(pod)) continue;
      const t: Tracker = { pod, ip, verdict: 'unknown', pending: null, sentAt: 0, missed: 0, good: 0, ready: null, draining: false, lastReply: null, since: null, rttMs: null, reasons: [] };
      this.trackers.set(pod, t);
      let s = this.byIp.get(ip);
      if (!s) this.byIp.set(ip, (s = new Set()));
      s.add(t);
    }
  }

  private untrack(t: Tracker): void {
    this.trackers.delete(t.pod);
    const s = this.byIp.get(t.ip);
    if (s) {
      s.delete(t);
      if (s.size === 0) this.byIp.delete(t.ip);
    }
  }

  /** Current verdicts as calc health (to re-apply to a rebuilt calculator). */
  verdicts(): [string, GatewayHealth][] {
    const out: [string, GatewayHealth][] = [];
    for (const t of this.trackers.values()) if (t.verdict !== 'unknown') out.push([t.pod, this.healthOf(t)]);
    return out;
  }

  status(): GatewayHealthStatus[] {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return [...this.trackers.values()]
      .sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0))
      .map((t) => ({
        pod: t.pod,
        ip: t.ip,
        verdict: t.verdict,
        ready: t.ready,
        draining: t.draining,
        missed: t.missed,
        good: t.good,
        lastReply: iso(t.lastReply),
        since: iso(t.since),
        rttMs: t.rttMs,
        reasons: [...t.reasons],
      }));
  }

  // ---- the rhythm: send at t, judge at t + replyTimeout, next round at t + interval

  private round(): void {
    this.roundTimer = null;
    if (!this.running) return;
    const now = this.clock.now();
    this.seq = (this.seq + 1) >>> 0;
    if (this.trackers.size > 0) {
      const req = encodeRequest(this.seq, this.token); // one buffer per round, shared by every send
      for (const t of this.trackers.values()) {
        t.pending = this.seq;
        t.sentAt = now;
        try {
          this.transport.send(t.ip, this.port, req);
        } catch (err) {
          this.log?.debug('heartbeat send failed', { ip: t.ip, err: errText(err) });
        }
      }
      const seq = this.seq;
      this.evalTimer = this.clock.setTimeout(() => this.judge(seq), this.replyTimeoutMs());
    }
    this.roundTimer = this.clock.setTimeout(() => this.round(), this.intervalMs);
  }

  private judge(seq: number): void {
    this.evalTimer = null;
    for (const t of [...this.trackers.values()]) {
      if (t.pending !== seq) continue;
      t.pending = null;
      this.missed(t);
    }
  }

  private onReply(data: Buffer, from: string): void {
    const r = decodeReply(data);
    if (!r || r.token !== this.token) return;
    const s = this.byIp.get(from);
    if (!s) return;
    const now = this.clock.now();
    for (const t of [...s]) {
      if (t.pending === null || t.pending !== r.seq) continue; // late or stray
      t.pending = null;
      t.rttMs = Math.round((now - t.sentAt) * 10) / 10;
      t.lastReply = now;
      t.ready = r.ready;
      this.answered(t, r.ready, r.draining);
    }
  }

  private missed(t: Tracker): void {
    t.good = 0;
    t.missed++;
    if (t.missed >= this.failureCount && t.verdict !== 'down') {
      this.transition(t, 'down', [`${t.missed} heartbeats missed (${t.missed * this.intervalMs} ms)`]);
    }
  }

  private answered(t: Tracker, ready: boolean, draining: boolean): void {
    t.missed = 0;
    if (!ready) {
      t.good = 0;
      t.draining = draining;
      if (t.verdict !== 'down') this.transition(t, 'down', ['gateway reports not ready']);
      return;
    }
    t.good++;
    const drainChanged = t.draining !== draining;
    t.draining = draining;
    if (t.verdict === 'up') {
      if (drainChanged) this.transition(t, 'up', draining ? ['gateway reports draining'] : []);
    } else if (t.good >= this.failureCount) {
      this.transition(t, 'up', draining ? ['gateway reports draining'] : []);
    }
  }

  private healthOf(t: Tracker): GatewayHealth {
    // draining only when the gateway says so; otherwise the Pod's deletionTimestamp decides (calc's default)
    return { ready: t.verdict === 'up', draining: t.verdict === 'up' && t.draining ? true : undefined, reasons: [...t.reasons] };
  }

  private transition(t: Tracker, verdict: Verdict, reasons: string[]): void {
    const from = t.verdict;
    t.verdict = verdict;
    t.since = this.clock.now();
    t.reasons = reasons;
    if (verdict === 'down') this.log?.warn(`gateway ${t.pod} DOWN: ${reasons.join('; ')}`, { ip: t.ip, was: from });
    else if (from !== 'up') this.log?.info(`gateway ${t.pod} UP: ${t.good} heartbeats answered`, { ip: t.ip, was: from, draining: t.draining });
    else this.log?.info(`gateway ${t.pod} ${t.draining ? 'draining' : 'no longer draining'}`, { ip: t.ip });
    this.opts.onTransition(t.pod, this.healthOf(t));
  }
}
