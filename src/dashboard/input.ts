// What the dashboard accepts from outside (docs/dashboard.md): its --listen and --scrape flags, and the query
// parameters of its API. Pure. A bad value is an InputError naming the field (the API answers 400 with it, the page
// shows it beside the form); the IP, port, time and duration rules are the CLI's own (src/cli/flows.ts), so
// `egw trace` and the dashboard's trace form accept exactly the same input.
import { InvalidArgumentError } from 'commander';
import { parseIPv4 } from '../api/ipv4.js';
import { nameProblem } from '../api/validate-common.js';
import { parseDstOption, parseDurationOption, parseIpOption, parsePortOption, parseTimeOption } from '../cli/flows.js';

/** A refused input: `field` is the flag or query parameter, `message` says what was expected. */
export class InputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export const DEFAULT_LISTEN = '127.0.0.1:8088';

export interface Listen {
  host: string;
  port: number;
}

/** `HOST:PORT` with HOST an IPv4 address (`localhost` is 127.0.0.1); PORT 0 takes any free port. */
export function parseListen(text: string): Listen {
  const m = /^(.+):(\d{1,5})$/.exec(text.trim());
  const host = m?.[1] === 'localhost' ? '127.0.0.1' : m?.[1];
  const port = m ? Number(m[2]) : NaN;
  if (!m || host === undefined || parseIPv4(host) === undefined || !(port >= 0 && port <= 65535)) {
    throw new InputError('--listen', `expected HOST:PORT with an IPv4 address such as 127.0.0.1:8088, got ${JSON.stringify(text)}`);
  }
  return { host, port };
}

/** 127.0.0.0/8: the only addresses the dashboard serves on without a token. */
export function isLoopback(host: string): boolean {
  const n = parseIPv4(host);
  return n !== undefined && n >>> 24 === 127;
}

/** A token read from --token-file: one line, at least 16 characters, no spaces. */
export function parseToken(text: string, file: string): string {
  const t = text.trim();
  if (t.length < 16 || /\s/.test(t)) throw new InputError('--token-file', `${file}: the token must be one line of at least 16 characters without spaces`);
  return t;
}

/** A /metrics endpoint: what src/metrics/scrape.ts's scrape() takes, and the name the page shows. */
export interface ScrapeTarget {
  /** `http://HOST:PORT` or `unix:/PATH`. */
  target: string;
  name: string;
}

/** `--scrape http://HOST:PORT|unix:/PATH`: a process's metrics endpoint (its /metrics is read). */
export function parseScrapeTarget(text: string): ScrapeTarget {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (!path.startsWith('/')) throw new InputError('--scrape', `unix:PATH needs an absolute path, got ${JSON.stringify(text)}`);
    return { target: text, name: path };
  }
  let u: URL | undefined;
  try {
    u = new URL(text);
  } catch {
    u = undefined;
  }
  if (!u || u.protocol !== 'http:' || (u.pathname !== '/' && u.pathname !== '/metrics') || u.search || u.username) {
    throw new InputError('--scrape', `expected http://HOST:PORT (its /metrics is read) or unix:/PATH, got ${JSON.stringify(text)}`);
  }
  return { target: `http://${u.host}`, name: u.host };
}

/** Runs one of the CLI's option parsers, turning its error into an InputError for `field`. */
function viaCli<T>(field: string, text: string, parse: (t: string) => T): T {
  try {
    return parse(text);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw new InputError(field, `${JSON.stringify(text)}: ${e.message}`);
    throw e;
  }
}

function required(q: URLSearchParams, field: string): string {
  const v = q.get(field);
  if (v === null || v.trim() === '') throw new InputError(field, 'is required');
  return v.trim();
}

export interface ExplainQuery {
  namespace: string;
  name: string;
  dst: string;
}

/** `pod=NAMESPACE/NAME&dst=IP`. */
export function parseExplainQuery(q: URLSearchParams): ExplainQuery {
  const pod = required(q, 'pod');
  const slash = pod.indexOf('/');
  if (slash < 0) throw new InputError('pod', `expected NAMESPACE/NAME such as tenant-a/client-a, got ${JSON.stringify(pod)}`);
  const namespace = pod.slice(0, slash);
  const name = pod.slice(slash + 1);
  const nsWhy = nameProblem(namespace, 'label');
  if (nsWhy) throw new InputError('pod', `namespace ${nsWhy}`);
  const nameWhy = nameProblem(name, 'subdomain');
  if (nameWhy) throw new InputError('pod', `name ${nameWhy}`);
  const dst = viaCli('dst', required(q, 'dst'), parseIpOption);
  return { namespace, name, dst };
}

export interface TraceQueryInput {
  ip: string;
  port: number;
  /** ms since the epoch. */
  at: number;
  dst?: { ip: string; port?: number };
}

/** `ip=IP&port=PORT[&at=RFC3339][&dst=IP[:PORT]]` (at defaults to `now`). */
export function parseTraceQuery(q: URLSearchParams, now: number): TraceQueryInput {
  const ip = viaCli('ip', required(q, 'ip'), parseIpOption);
  const port = viaCli('port', required(q, 'port'), parsePortOption);
  const atText = q.get('at')?.trim();
  const at = atText ? viaCli('at', atText, parseTimeOption) : now;
  const dstText = q.get('dst')?.trim();
  const dst = dstText ? viaCli('dst', dstText, parseDstOption) : undefined;
  return dst ? { ip, port, at, dst } : { ip, port, at };
}

/** `--window` of the flow graph: a duration from 10 s to 1 h. */
export function parseWindow(text: string): number {
  const ms = viaCli('--window', text, parseDurationOption);
  if (ms < 10_000 || ms > 3_600_000) throw new InputError('--window', `${JSON.stringify(text)}: expected a duration from 10s to 1h`);
  return ms;
}
