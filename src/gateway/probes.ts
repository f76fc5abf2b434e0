// The gateway's reachability probes (docs/behaviour.md §1 EgressGateway `egressGatewayFailureDetection`, §3.4):
//
//   icmpProbe {ips, intervalSeconds 5, timeoutSeconds 15}   every interval, one echo request to each IP
//   httpProbe {urls, intervalSeconds 10, timeoutSeconds 30} every interval, one GET to each URL; ANY HTTP response
//                                                           (also 404 or 500) is a success
//
// A kind is failing when none of its targets succeeded for `timeoutSeconds` (and each one's latest attempt failed, so
// that timeoutSeconds = intervalSeconds does not flap on the success that is due now); with both kinds configured, each must
// pass (one ICMP and one HTTP target). Counting starts when the process starts (a target added later: when it was
// added), so nothing fails before the first timeout has elapsed. The probes are two readiness checks of the gateway
// (`icmp probe`, `http probe`), e.g. `icmp probe: no reply from 198.51.100.10 for 15s`.
//
// Probes leave from the gateway pod's network namespace: ICMP runs `ping -c 1 -W <s> <ip>` through the gateway's
// Runner (the pod netns); HTTP is a request made in this process when the process itself runs in the pod netns
// (Runner without `netns`), and `curl` through the Runner when the Runner points at another namespace.
import http from 'node:http';
import https from 'node:https';
import type { HTTPProbe, ICMPProbe } from '../api/types.js';
import type { Runner } from '../dataplane/exec.js';
import type { Logger } from '../log.js';
import { errText } from '../util.js';

/** One probe attempt: resolves with null on success, else a short error text. Never rejects. */
export type ProbeFn = (target: string, timeoutMs: number) => Promise<string | null>;


/** `ping -c 1 -n -q -W <s> <ip>` through the runner: success = exit 0. */
export function runnerPing(runner: Runner): ProbeFn {
  return async (ip, timeoutMs) => {
    const w = String(Math.max(1, Math.round(timeoutMs / 1000)));
    try {
      const r = await runner.run(['ping', '-c', '1', '-n', '-q', '-W', w, ip], { allowFailure: true });
      if (r.code === 0) return null;
      return r.code === 1 ? 'no reply' : (r.stderr.trim().split('\n').pop() || `ping exit ${r.code}`);
    } catch (err) {
      return errText(err);
    }
  };
}

/** `curl` through the runner: success = an HTTP status line was received (any code). */
export function runnerHttpGet(runner: Runner): ProbeFn {
  return async (url, timeoutMs) => {
    const secs = (Math.max(200, timeoutMs) / 1000).toFixed(1);
    try {
      const r = await runner.run(['curl', '-sS', '-o', '/dev/null', '--noproxy', '*', '--max-time', secs, '-w', '%{http_code}', '--url', url], { allowFailure: true });
      const code = r.stdout.trim();
      if (/^[1-9][0-9][0-9]$/.test(code)) return null;
      return r.stderr.trim().replace(/^curl: \(\d+\)\s*/, '') || `curl exit ${r.code}`;
    } catch (err) {
      return errText(err);
    }
  };
}

/** A GET from this process (a fresh connection each time): success = response headers received (any status). */
export function inProcessHttpGet(): ProbeFn {
  return (url, timeoutMs) =>
    new Promise((resolve) => {
      let settled = false;
      const done = (v: string | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(v);
      };
      let req: http.ClientRequest;
      try {
        const mod = url.startsWith('https:') ? https : http;
        req = mod.get(url, { agent: false, headers: { connection: 'close', 'user-agent': 'egw-gateway-probe' } }, (res) => {
          done(null);
          res.resume();
          req.destroy();
        });
      } catch (err) {
        done(errText(err));
        return;
      }
      const timer = setTimeout(() => {
        done(`no response within ${timeoutMs} ms`);
        req.destroy();
      }, timeoutMs);
      req.on('error', (err) => done(errText(err)));
    });
}

interface TargetState {
  /** Last success (ms since epoch), or when counting started. */
  lastSuccess: number;
  inFlight: boolean;
  lastError: string | null;
}

type Kind = 'icmp' | 'http';

class KindProbe {
  readonly targets = new Map<string, TargetState>();
  private timer: NodeJS.Timeout | null = null;
  key = '';

  constructor(
    readonly kind: Kind,
    private readonly fn: ProbeFn,
    private readonly now: () => number,
    private readonly onResult: () => void,
    private readonly log?: Logger,
  ) {}

  intervalMs = 0;
  timeoutMs = 0;

  /** (Re)configures; targets that stay keep their history, new ones count from `since`. */
  configure(targets: string[], intervalSeconds: number, timeoutSeconds: number, since: number): void {
    const key = JSON.stringify([targets, intervalSeconds, timeoutSeconds]);
    if (key === this.key) return;
    this.key = key;
    for (const t of [...this.targets.keys()]) if (!targets.includes(t)) this.targets.delete(t);
    for (const t of targets) if (!this.targets.has(t)) this.targets.set(t, { lastSuccess: since, inFlight: false, lastError: null });
    this.intervalMs = Math.max(1, intervalSeconds) * 1000;
    this.timeoutMs = Math.max(intervalSeconds, timeoutSeconds) * 1000;
    this.stopTimer();
    if (targets.length === 0) return;
    this.round();
    this.timer = setInterval(() => this.round(), this.intervalMs);
    this.timer.unref?.();
  }

  private round(): void {
    // One attempt per target in flight at a time; an attempt gets at most one interval.
    const attemptMs = Math.min(this.intervalMs, this.timeoutMs);
    for (const [target, st] of this.targets) {
      if (st.inFlight) continue;
      st.inFlight = true;
      void this.fn(target, attemptMs).then((err) => {
        st.inFlight = false;
        if (this.targets.get(target) !== st) return; // removed meanwhile
        const wasFailing = st.lastError !== null;
        if (err === null) {
          st.lastSuccess = this.now();
          st.lastError = null;
          if (wasFailing) this.log?.info(`${this.kind} probe: ${target} answers again`);
        } else {
          if (!wasFailing) this.log?.info(`${this.kind} probe: ${target} failed`, { err });
          st.lastError = err;
        }
        this.onResult();
      });
    }
  }

  /** Empty when passing (or not configured); else one reason. */
  reasons(): string[] {
    if (this.targets.size === 0) return [];
    const now = this.now();
    const failing: string[] = [];
    for (const [t, st] of this.targets) {
      // Silent: no success for timeoutSeconds, and the last attempt failed (with timeout = interval, a success due
      // right now is not a failure) — or even the attempt after the timeout has not come back.
      const since = now - st.lastSuccess;
      const silent = since >= this.timeoutMs && (st.lastError !== null || since >= this.timeoutMs + this.intervalMs);
      if (!silent) return [];
      failing.push(t);
    }
    const secs = this.timeoutMs / 1000;
    const errs = [...new Set(failing.map((t) => this.targets.get(t)!.lastError).filter((e): e is string => e !== null && e !== 'no reply'))];
    const what = this.kind === 'icmp' ? 'no reply from' : 'no HTTP response from';
    return [`${what} ${failing.join(', ')} for ${secs}s${errs.length ? ` (${errs.join('; ')})` : ''}`];
  }

  stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  stop(): void {
    this.stopTimer();
    this.targets.clear();
    this.key = '';
  }
}

export interface ProbesOptions {
  /** Where pings (and, with a `netns`, curl) run. */
  runner: Runner;
  /** Overrides for tests. */
  ping?: ProbeFn;
  httpGet?: ProbeFn;
  /** When counting starts for the targets of the first configuration (default: now). */
  startedAt?: number;
  now?: () => number;
  /** Called after every probe result (to re-evaluate readiness at once). */
  onResult?: () => void;
  log?: Logger;
}

/** The ICMP and HTTP probes of one gateway. */
export class Probes {
  private readonly icmp: KindProbe;
  private readonly http: KindProbe;
  private readonly now: () => number;
  private startedAt: number;
  private configured = false;

  constructor(opts: ProbesOptions) {
    this.now = opts.now ?? Date.now;
    this.startedAt = opts.startedAt ?? this.now();
    const onResult = opts.onResult ?? (() => {});
    const httpGet = opts.httpGet ?? (opts.runner.netns !== undefined ? runnerHttpGet(opts.runner) : inProcessHttpGet());
    this.icmp = new KindProbe('icmp', opts.ping ?? runnerPing(opts.runner), this.now, onResult, opts.log);
    this.http = new KindProbe('http', httpGet, this.now, onResult, opts.log);
  }

  /** Applies the EgressGateway's probe settings (absent = not configured). Cheap when nothing changed. */
  configure(fd: { icmpProbe?: ICMPProbe; httpProbe?: HTTPProbe }): void {
    // targets of the first configuration count from process start; later additions from when they appear
    const since = this.configured ? this.now() : this.startedAt;
    this.configured = true;
    const i = fd.icmpProbe;
    this.icmp.configure(i?.ips ?? [], i?.intervalSeconds ?? 5, i?.timeoutSeconds ?? 15, since);
    const h = fd.httpProbe;
    this.http.configure(h?.urls ?? [], h?.intervalSeconds ?? 10, h?.timeoutSeconds ?? 30, since);
  }

  icmpReasons(): string[] {
    return this.icmp.reasons();
  }

  httpReasons(): string[] {
    return this.http.reasons();
  }

  /** Per target: last success and last error (for logs and status). */
  snapshot(): { kind: Kind; target: string; lastSuccess: string; lastError: string | null }[] {
    const out: { kind: Kind; target: string; lastSuccess: string; lastError: string | null }[] = [];
    for (const k of [this.icmp, this.http]) {
      for (const [t, s] of k.targets) out.push({ kind: k.kind, target: t, lastSuccess: new Date(s.lastSuccess).toISOString(), lastError: s.lastError });
    }
    return out;
  }

  stop(): void {
    this.icmp.stop();
    this.http.stop();
  }
}
