// The gateway's health endpoints (docs/behaviour.md §3.4): `GET /liveness` → 200 while the process runs; `GET /readiness` → 200
// `ok` when every registered check passes, else 503 with the failing reasons, one per line.
//
// Readiness is a set of named checks, each a function returning its failing reasons (none = passing). The gateway
// registers `dataplane`, `datastore`, `icmp probe` and `http probe` (probes.ts; passing when not configured).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { errText } from '../util.js';

export type ReadinessCheck = () => string[];

export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();

  /** Adds or replaces a check. */
  register(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  unregister(name: string): void {
    this.checks.delete(name);
  }

  /** Every failing reason, prefixed with its check's name, in registration order; `failing` = the failing checks. */
  evaluate(): { ready: boolean; reasons: string[]; failing: string[] } {
    const reasons: string[] = [];
    const failing: string[] = [];
    for (const [name, check] of this.checks) {
      let r: string[];
      try {
        r = check();
      } catch (err) {
        r = [`check failed: ${errText(err)}`];
      }
      for (const x of r) reasons.push(`${name}: ${x}`);
      if (r.length) failing.push(name);
    }
    return { ready: reasons.length === 0, reasons, failing };
  }
}

export interface HealthServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(opts: { port: number; host: string; readiness: Readiness; log?: Logger }): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: string): void => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    if (path === '/liveness') return send(200, 'ok\n');
    if (path === '/readiness') {
      const r = opts.readiness.evaluate();
      return r.ready ? send(200, 'ok\n') : send(503, r.reasons.join('\n') + '\n');
    }
    send(404, 'not found\n');
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log?.error('health server error', { err: err.message }));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
