// The dashboard's HTTP part (docs/dashboard.md, "API" and "Security"): node:http, thin over a DashboardSource.
//   GET /                  the page (inline script and style, allowed by their hashes in the Content-Security-Policy)
//   GET /api/view          the view (JSON)
//   GET /api/events        server-sent events: `view` with the whole view at once and at every change
//   GET /api/explain       ?pod=NS/NAME&dst=IP
//   GET /api/trace         ?ip=IP&port=PORT[&at=RFC3339][&dst=IP[:PORT]]
// With a token (required off loopback) every request must carry it, as `Authorization: Bearer T` or `?token=T` (the
// page passes its own on to the API); a wrong or missing one gets 401. Requests whose Host header is not an address
// of this server are refused (403) when there is no token, so a web page elsewhere cannot reach a loopback dashboard through DNS rebinding.
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.js';
import { errText } from '../util.js';
import { InputError, parseExplainQuery, parseTraceQuery, type Listen } from './input.js';
import type { ApiAnswer, DashboardSource } from './live.js';
import { PAGE_SCRIPT, PAGE_STYLE, pageHtml } from './page.js';

/** A comment line on every event stream this often keeps proxies and the browser from timing it out. */
const SSE_KEEPALIVE_MS = 15_000;

export interface DashboardServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('base64');

export const CSP = [
  "default-src 'none'",
  `script-src 'sha256-${sha256(PAGE_SCRIPT)}'`,
  `style-src 'sha256-${sha256(PAGE_STYLE)}'`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function tokenOk(want: string | undefined, req: http.IncomingMessage, url: URL): boolean {
  if (want === undefined) return true;
  const auth = req.headers.authorization;
  const given = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : (url.searchParams.get('token') ?? '');
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

function answer(res: http.ServerResponse, fn: () => ApiAnswer): void {
  try {
    const a = fn();
    send(res, a.status, a.body);
  } catch (e) {
    if (e instanceof InputError) send(res, 400, { error: e.message, field: e.field });
    else send(res, 500, { error: errText(e) });
  }
}

export async function serveDashboard(source: DashboardSource, opts: { listen: Listen; token?: string; log?: Logger }): Promise<DashboardServer> {
  const streams = new Set<http.ServerResponse>();
  let allowedHosts = new Set<string>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    // Without a token the Host check is what keeps other web pages out; with one, the token does.
    if (opts.token === undefined && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      send(res, 403, { error: `Host ${JSON.stringify(req.headers.host ?? '')} is not this dashboard's address` });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, { error: 'only GET' });
      return;
    }
    if (!tokenOk(opts.token, req, url)) {
      res.setHeader('www-authenticate', 'Bearer realm="egw dashboard"');
      send(res, 401, { error: 'a valid token is required: Authorization: Bearer TOKEN, or ?token=TOKEN for the page' });
      return;
    }
    switch (url.pathname) {
      case '/':
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': CSP,
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
        });
        res.end(pageHtml());
        return;
      case '/api/view':
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
        res.end(source.viewJson());
        return;
      case '/api/events': {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        const push = (json: string) => res.write(`event: view\ndata: ${json}\n\n`);
        push(source.viewJson());
        const unsubscribe = source.subscribe(push);
        const keepalive = setInterval(() => res.write(': keepalive\n\n'), SSE_KEEPALIVE_MS);
        streams.add(res);
        res.on('close', () => {
          clearInterval(keepalive);
          unsubscribe();
          streams.delete(res);
        });
        return;
      }
      case '/api/explain':
        answer(res, () => source.explain(parseExplainQuery(url.searchParams)));
        return;
      case '/api/trace':
        answer(res, () => source.trace(parseTraceQuery(url.searchParams, Date.now())));
        return;
      default:
        send(res, 404, { error: `not found: ${url.pathname}` });
    }
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listen.port, opts.listen.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.listen.port;
  const host = opts.listen.host;
  allowedHosts = new Set([`${host}:${port}`, ...(host.startsWith('127.') ? [`localhost:${port}`] : [])]);
  const url = `http://${host}:${port}/`;
  opts.log?.info('dashboard served', { url, token: opts.token !== undefined });
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.end();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
