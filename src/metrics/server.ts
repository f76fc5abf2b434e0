// `/metrics` over HTTP for one process (docs/observability.md): `--metrics-listen [HOST]:PORT` (default all addresses
// of the process's network namespace and the process's port, as Prometheus exporters do), `--no-metrics` to serve
// none. A port that cannot be bound is logged as an error and the process goes on without metrics: the data plane
// matters more than its numbers.
import http from 'node:http';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { errText } from '../util.js';
import { parseIPv4 } from '../api/ipv4.js';

export interface MetricsListen {
  /** Empty: every address. */
  host: string;
  port: number;
  /** Also serve on this unix socket (the lab's: metricsSocketPath). */
  socket?: string;
}

/** `[HOST]:PORT` (HOST an IPv4 address; empty for every address) or a bare PORT (0: any free port). `flag` names the flag in errors. */
export function parseMetricsListen(text: string, flag = '--metrics-listen'): MetricsListen {
  const m = /^(?:(.*):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  const host = m?.[1] ?? '';
  if (!m || !(port >= 0 && port <= 65535) || (host !== '' && parseIPv4(host) === undefined)) {
    throw new Error(`${flag}: expected [HOST]:PORT such as :9091 or 127.0.0.1:9091, got ${JSON.stringify(text)}`);
  }
  return { host, port };
}

export interface MetricsServer {
  /** The bound TCP port (differs from the asked one when that was 0); undefined when only the socket serves. */
  readonly port: number | undefined;
  close(): Promise<void>;
}

/**
 * The lab's way to the metrics (docs/observability.md, "In the lab"): with EGW_METRICS_SOCKET_DIR set (the lab sets it
 * for every process it starts), a process also serves /metrics on the unix socket `<dir>/<name>.sock` — the host
 * reaches lab processes through the file system, never through its own network namespace. Undefined without it.
 */
export function metricsSocketPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = env.EGW_METRICS_SOCKET_DIR;
  return dir ? join(dir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.sock`) : undefined;
}

function handler(registry: Registry): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (e) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${errText(e)}\n`),
    );
  };
}

async function listenOn(server: http.Server, where: { port: number; host?: string } | { path: string }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in where) server.listen(where.path, () => resolve());
    else server.listen(where.port, where.host || undefined, () => resolve());
  });
}

function closer(server: http.Server): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
}

/**
 * Serves `registry` on GET /metrics at `listen`, and on the unix socket `listen.socket` too when given (a stale socket file
 * a killed run left is replaced). Resolves once listening; a TCP port that cannot be bound is logged and yields
 * undefined (a socket that cannot be made is logged too, and TCP goes on).
 */
export async function serveMetrics(registry: Registry, listen: MetricsListen, log?: Logger): Promise<MetricsServer | undefined> {
  const socket = listen.socket;
  const tcp = http.createServer(handler(registry));
  tcp.keepAliveTimeout = 65_000;
  let closeUnix: (() => Promise<void>) | undefined;
  if (socket) {
    const unix = http.createServer(handler(registry));
    try {
      mkdirSync(dirname(socket), { recursive: true });
      rmSync(socket, { force: true });
      await listenOn(unix, { path: socket });
      closeUnix = async () => {
        await closer(unix)();
        rmSync(socket, { force: true });
      };
    } catch (e) {
      log?.error(`metrics: cannot serve on the socket ${socket}: ${errText(e)}`);
    }
  }
  let port: number | undefined;
  try {
    await listenOn(tcp, { port: listen.port, host: listen.host });
    const addr = tcp.address();
    port = typeof addr === 'object' && addr ? addr.port : listen.port;
  } catch (e) {
    log?.error(`metrics: cannot listen on ${listen.host}:${listen.port}: ${errText(e)}; running without /metrics there`);
    if (!closeUnix) return undefined;
  }
  log?.info('metrics served', { listen: port === undefined ? null : `${listen.host}:${port}`, path: '/metrics', ...(closeUnix ? { socket } : {}) });
  const closeTcp = port === undefined ? async () => {} : closer(tcp);
  return {
    port,
    close: async () => {
      await Promise.all([closeTcp(), closeUnix?.()]);
    },
  };
}
