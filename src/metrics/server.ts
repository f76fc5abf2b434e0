// `/metrics` over HTTP for one process (docs/observability.md): `--metrics-listen [HOST]:PORT` (default all addresses
// of the process's network namespace and the process's port, as Prometheus exporters do), `--no-metrics` to serve
// none. A port that cannot be bound is logged as an error and the process goes on without metrics: the data plane
// matters more than its numbers.
import http from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { errText } from '../util.js';
import { parseIPv4 } from '../api/ipv4.js';

export interface MetricsListen {
  /** Empty: every address. */
  host: string;
  port: number;
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
  /** The bound port (differs from the asked one when that was 0). */
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `registry` on GET /metrics. Resolves once listening, or undefined when the port could not be bound. */
export async function serveMetrics(registry: Registry, listen: MetricsListen, log?: Logger): Promise<MetricsServer | undefined> {
  const server = http.createServer((req, res) => {
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
  });
  server.keepAliveTimeout = 65_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host || undefined, () => resolve());
    });
  } catch (e) {
    log?.error(`metrics: cannot listen on ${listen.host}:${listen.port}: ${errText(e)}; running without /metrics`);
    return undefined;
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : listen.port;
  log?.info('metrics served', { listen: `${listen.host}:${port}`, path: '/metrics' });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
