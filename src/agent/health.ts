// Gateway failure detection by the node agent: a UDP heartbeat to every gateway a local client could use
// (docs/behaviour.md §3.4).
//
// Which gateways: `EgressCalculator.candidateGateways(node)` — the gateway pods matching the selectors of the
// node's clients, before health/drain/maxNextHops filtering (a failed gateway stays in the set, so its recovery is
// seen; gateways no local client could use cost nothing). Every `egressGatewayPollInterval` (FelixConfiguration,
// Go duration, egw default 200ms) the agent sends one 16-byte request to `<gateway pod IP>:8080/udp` from the node's
// network namespace, on a UDP socket connected to that gateway (one per gateway); the gateway answers at once with
// its readiness and whether it drains (wire format: src/gateway/heartbeat.ts). A request without a reply within half
// the interval is missed.
//
//   DOWN  after `egressGatewayPollFailureCount` (default 3) consecutive missed replies, or at once on a reply that
//         says "not ready" (a failing probe, datastore lost, data plane not programmed);
//   UP    only after failureCount consecutive good replies (hysteresis: a flapping gateway never comes back).
// A verdict is handed to the calculator (`setGatewayHealth(pod, {ready, draining, reasons})`) only when it changes,
// and the agent reconciles at once. Before its first verdict a gateway's health is its Pod's Ready condition (what
// the gateway itself writes), so a restarting agent changes nothing in the kernel, and a gateway never heard from
// whose Pod is not Ready stays out.
//
// A refusal holds the verdict (docs/behaviour.md §3.4). When the gateway *process* is gone (crashed, kill -9, being
// restarted) its kernel state still forwards, and its kernel answers a request with ICMP port unreachable, because
// nothing is bound to the port (the responder also keeps the port closed until the restarted process knows its
// readiness). A connected UDP socket reports that as ECONNREFUSED — proof that the gateway's namespace, link and
// path are alive and only its control process is not. Misses keep being counted, but while refusals keep coming
// (the last one at most REFUSAL_FRESH_MS ago) they do not make the gateway DOWN, for at most the restart grace
// (`restartGraceMs`, default 30 s, from the first refusal since the last reply); after the grace, or once refusals
// stop (a link cut, the namespace or node gone), the misses count again: DOWN at once if failureCount of them have
// accumulated. Any reply ends the hold, so a link cut just after a restart fails over as fast as any other. Only
// ECONNREFUSED counts: a host or network unreachable (a router or the node itself saying the pod is not there) does
// not.
//   Limit: a process killed again within about a second of answering after a refusal (a restart, or its first
//   start: the port stays closed until it is ready) may find its kernel's ICMP tokens spent, so its first refusal
//   comes after failureCount misses and it is DOWN, as without this rule. Keeping the last refusal fresh across the
//   reply would cover that, but made link cuts in the first 2 s after a restart take ~2 s to fail over.
//   Why REFUSAL_FRESH_MS is 2 s: Linux rate-limits the ICMP errors a namespace sends per destination
//   (net.ipv4.icmp_ratelimit 1000 ms with a burst of about 6, for the types in icmp_ratemask, which include
//   destination unreachable): measured here at 200 ms heartbeats, the first 7 requests are refused and then one per
//   second. 2 s is two refill periods. A link cut while a gateway is held is therefore seen within ~2 s, not 0.7 s.
//   Each namespace also caps its ICMP errors at net.ipv4.icmp_msgs_per_sec (1000/s): beyond ~1000 nodes heartbeating
//   one dead-process gateway, some see refusals less often and fall back to counting misses (DOWN, as before).
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
//   → per node: 10 packets/s and 440 B/s (3.5 kbit/s) per gateway it tracks, and one socket (file descriptor).
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
/** How long the gateway's kernel may refuse heartbeats (its process restarting) before it is DOWN (see the top). */
export const DEFAULT_RESTART_GRACE_MS = 30_000;
/** A refusal holds the verdict while the last one is at most this old (ICMP rate limit: see the top). */
export const REFUSAL_FRESH_MS = 2_000;

/** How requests leave and replies arrive (injectable: tests use loopback peers or a fake). */
export interface HeartbeatTransport {
  send(ip: string, port: number, data: Buffer): void;
  /** Sets the one reply handler. */
  onReply(handler: (data: Buffer, fromIp: string) => void): void;
  /**
   * Sets the one refusal handler: the gateway's kernel answered a request with ICMP port unreachable (nothing
   * listens: its process is down). Optional: a transport without it never reports refusals.
   */
  onRefused?(handler: (ip: string) => void): void;
  /** The gateways in use from now on (a transport may free what it holds for the others). Optional. */
  setPeers?(ips: readonly string[]): void;
  close(): Promise<void>;
}

interface Peer {
  readonly sock: dgram.Socket;
  connected: boolean;
  /** The request to send once connected (connecting takes microseconds; the newest request wins). */
  queued: Buffer | null;
}

/**
 * One UDP socket per gateway (ephemeral port, this process's network namespace), connected to `ip:port`: only a
 * connected socket hears of the ICMP errors its requests cause (ECONNREFUSED, see the top of the file). Created on
 * the first send; a socket that cannot connect (no route) is dropped and made again on a later send.
 */
export async function udpHeartbeatTransport(opts: { bindHost?: string; log?: Logger } = {}): Promise<HeartbeatTransport> {
  let onReply: (data: Buffer, fromIp: string) => void = () => {};
  let onRefused: (ip: string) => void = () => {};
  const peers = new Map<string, Peer>();
  let closed = false;
  const keyOf = (ip: string, port: number) => `${ip}:${port}`;
  const drop = (key: string, p: Peer) => {
    if (peers.get(key) === p) peers.delete(key);
    try {
      p.sock.close();
    } catch {
      /* closed already */
    }
  };
  const refusedOrLogged = (ip: string, err: NodeJS.ErrnoException, what: string) => {
    if (err.code === 'ECONNREFUSED') onRefused(ip);
    // e.g. EHOSTUNREACH for a gateway whose node is gone: the reply is then simply missed
    else opts.log?.debug(what, { ip, err: err.message });
  };
  const transmit = (ip: string, p: Peer, data: Buffer) =>
    p.sock.send(data, (err) => err && refusedOrLogged(ip, err as NodeJS.ErrnoException, 'heartbeat send failed'));
  const open = (ip: string, port: number): Peer => {
    const key = keyOf(ip, port);
    const sock = dgram.createSocket('udp4');
    const p: Peer = { sock, connected: false, queued: null };
    peers.set(key, p);
    sock.on('message', (msg, rinfo) => onReply(msg, rinfo.address));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (!p.connected) {
        opts.log?.debug('heartbeat socket cannot connect; trying again later', { ip, err: err.message });
        drop(key, p);
        return;
      }
      // an ICMP error for an earlier request, reported by the next receive
      refusedOrLogged(ip, err, 'heartbeat socket error');
    });
    const connect = () =>
      sock.connect(port, ip, () => {
        p.connected = true;
        const q = p.queued;
        p.queued = null;
        if (q && !closed) transmit(ip, p, q);
      });
    if (opts.bindHost) sock.bind(0, opts.bindHost, connect);
    else connect();
    return p;
  };
  return {
    send: (ip, port, data) => {
      if (closed) return;
      const key = keyOf(ip, port);
      const p = peers.get(key) ?? open(ip, port);
      if (p.connected) transmit(ip, p, data);
      else p.queued = data;
    },
    onReply: (h) => {
      onReply = h;
    },
    onRefused: (h) => {
      onRefused = h;
    },
    setPeers: (ips) => {
      const keep = new Set(ips);
      for (const [key, p] of peers) if (!keep.has(key.slice(0, key.lastIndexOf(':')))) drop(key, p);
    },
    close: async () => {
      closed = true;
      const all = [...peers.values()];
      peers.clear();
      await Promise.all(
        all.map(
          (p) =>
            new Promise<void>((resolve) => {
              try {
                p.sock.close(() => resolve());
              } catch {
                resolve(); // closed already (it could not connect)
              }
            }),
        ),
      );
    },
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
  /**
   * Since when its kernel refuses the heartbeats without a reply in between (its process is down; null when the
   * last word was a reply), and the last refusal. While that is fresh, misses do not make it DOWN (the top of the file).
   */
  refusingSince: string | null;
  lastRefusal: string | null;
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
  /** How long refusals hold a verdict (the gateway process restarting). Default 30 s; 0 = refusals count for nothing. */
  restartGraceMs?: number;
  /** A verdict changed (also a draining change while up). */
  onTransition: (pod: string, health: GatewayHealth) => void;
  /** A gateway with a verdict is no longer tracked: drop its override. */
  onForget?: (pod: string) => void;
  /** For metrics (docs/observability.md): every reply's round trip, and every DOWN with the time since its last reply. */
  observe?: { rtt(ms: number): void; down(pod: string, sinceLastReplyMs: number | null): void };
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
  refusingSince: number | null;
  lastRefusal: number | null;
  /** A DOWN for missed replies is being held by refusals (logged once per hold). */
  holding: boolean;
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
  private readonly restartGraceMs: number;
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
    this.restartGraceMs = Math.max(0, opts.restartGraceMs ?? DEFAULT_RESTART_GRACE_MS);
    this.clock = opts.clock ?? realClock;
    this.token = (opts.token ?? randomInt(0, 2 ** 32)) >>> 0;
    this.seq = randomInt(0, 2 ** 31);
    this.log = opts.log;
    this.transport.onReply((data, from) => this.onReply(data, from));
    this.transport.onRefused?.((ip) => this.onRefused(ip));
  }

  get settings(): { intervalMs: number; failureCount: number; replyTimeoutMs: number; restartGraceMs: number } {
    return { intervalMs: this.intervalMs, failureCount: this.failureCount, replyTimeoutMs: this.replyTimeoutMs(), restartGraceMs: this.restartGraceMs };
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
      const t: Tracker = {
        pod,
        ip,
        verdict: 'unknown',
        pending: null,
        sentAt: 0,
        missed: 0,
        good: 0,
        ready: null,
        draining: false,
        lastReply: null,
        refusingSince: null,
        lastRefusal: null,
        holding: false,
        since: null,
        rttMs: null,
        reasons: [],
      };
      this.trackers.set(pod, t);
      let s = this.byIp.get(ip);
      if (!s) this.byIp.set(ip, (s = new Set()));
      s.add(t);
    }
    this.transport.setPeers?.([...this.byIp.keys()]);
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
        refusingSince: iso(t.refusingSince),
        lastRefusal: iso(t.lastRefusal),
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
      this.opts.observe?.rtt(now - t.sentAt);
      t.lastReply = now;
      t.ready = r.ready;
      if (t.refusingSince !== null) {
        this.log?.info(`gateway ${t.pod} answers again after ${((now - t.refusingSince) / 1000).toFixed(1)} s of refused heartbeats (its process is back)`, { ip: t.ip, verdict: t.verdict });
      }
      // a reply ends the hold at once: a link cut right after a restart must fail over as fast as any other
      t.refusingSince = t.lastRefusal = null;
      t.holding = false;
      this.answered(t, r.ready, r.draining);
    }
  }

  /** The gateway's kernel refused a request to `ip` (nothing listens: its process is down). */
  private onRefused(ip: string): void {
    const s = this.byIp.get(ip);
    if (!s || this.restartGraceMs === 0) return;
    const now = this.clock.now();
    for (const t of s) {
      t.lastRefusal = now;
      if (t.refusingSince !== null) continue;
      t.refusingSince = now;
      if (t.verdict !== 'down') {
        this.log?.info(`gateway ${t.pod}: its process does not answer, its kernel refuses the heartbeats; keeping it ${t.verdict === 'up' ? 'UP' : 'as its Pod says'} for up to ${this.restartGraceMs / 1000} s while that lasts`, { ip: t.ip });
      }
    }
  }

  /** Whether refusals hold a DOWN for missed replies now: the last one is fresh, and within the restart grace. */
  private held(t: Tracker, now: number): boolean {
    if (t.refusingSince === null || t.lastRefusal === null) return false;
    return now - t.lastRefusal <= REFUSAL_FRESH_MS && now - t.refusingSince < this.restartGraceMs;
  }

  private missed(t: Tracker): void {
    t.good = 0;
    t.missed++;
    if (t.missed < this.failureCount || t.verdict === 'down') return;
    const now = this.clock.now();
    if (this.held(t, now)) {
      t.holding = true;
      return;
    }
    const missed = `${t.missed} heartbeats missed (${t.missed * this.intervalMs} ms)`;
    let reasons = [missed];
    if (t.refusingSince !== null && now - t.refusingSince >= this.restartGraceMs) {
      reasons = [`gateway process not answering for ${((now - t.refusingSince) / 1000).toFixed(1)} s (its kernel refuses the heartbeats; restart grace ${this.restartGraceMs / 1000} s)`];
    } else if (t.holding && t.lastRefusal !== null) {
      reasons = [`${missed}; no refusal from its kernel for ${now - t.lastRefusal} ms`];
    }
    t.holding = false;
    this.transition(t, 'down', reasons);
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
    if (verdict === 'down') {
      this.log?.warn(`gateway ${t.pod} DOWN: ${reasons.join('; ')}`, { ip: t.ip, was: from });
      if (from !== 'down') this.opts.observe?.down(t.pod, t.lastReply === null ? null : t.since - t.lastReply);
    }
    else if (from !== 'up') this.log?.info(`gateway ${t.pod} UP: ${t.good} heartbeats answered`, { ip: t.ip, was: from, draining: t.draining });
    else this.log?.info(`gateway ${t.pod} ${t.draining ? 'draining' : 'no longer draining'}`, { ip: t.ip });
    this.opts.onTransition(t.pod, this.healthOf(t));
  }
}
