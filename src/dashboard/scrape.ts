// Scraping the processes' /metrics for the dashboard (docs/dashboard.md, "Metrics"). In a lab the host reaches its
// processes only through the unix sockets they serve /metrics on, `<lab state dir>/metrics/<role>.sock`
// (docs/dataplane.md, "The lab"): the dashboard lists that directory at every round, so processes that come and go
// are picked up; elsewhere the --scrape targets. Each target is fetched with a short timeout; a failure is a result
// (shown on the page), never a crash.
import http from 'node:http';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { errText } from '../util.js';
import type { ScrapeTarget } from './input.js';
import type { ScrapeResult } from './model.js';
import { parsePromText } from './promtext.js';

/** A scrape that has not answered in this long has failed (agents are scraped every SCRAPE_FAST_MS). */
export const SCRAPE_TIMEOUT_MS = 1000;
/** Bodies beyond this are cut off (a gateway's port series are bounded: docs/observability.md). */
const MAX_BODY = 16 * 1024 * 1024;

/** The sockets of a lab's metrics directory, named by role (`agent-node-1.sock` → `agent-node-1`). */
export function labSocketTargets(metricsDir: string): ScrapeTarget[] {
  let names: string[];
  try {
    names = readdirSync(metricsDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.sock'))
    .sort()
    .map((n) => ({ kind: 'unix' as const, path: join(metricsDir, n), name: n.slice(0, -'.sock'.length) }));
}

/** GET /metrics of one target: its text, or an error. */
export function fetchMetrics(t: ScrapeTarget, timeoutMs = SCRAPE_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const opts: http.RequestOptions =
      t.kind === 'unix' ? { socketPath: t.path, path: '/metrics', method: 'GET' } : { method: 'GET' };
    const req = t.kind === 'unix' ? http.request(opts) : http.request(t.url, opts);
    const timer = setTimeout(() => req.destroy(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) req.destroy(new Error(`more than ${MAX_BODY} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
        else resolve(Buffer.concat(chunks).toString('utf8'));
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

export async function scrapeOne(t: ScrapeTarget, now: () => number = Date.now): Promise<ScrapeResult> {
  try {
    const text = await fetchMetrics(t);
    const parsed = parsePromText(text);
    if (parsed.samples.length === 0 && parsed.badLines > 0) {
      return { source: t.name, ok: false, error: `not Prometheus text (${parsed.badLines} unreadable lines)`, at: now(), samples: [] };
    }
    return { source: t.name, ok: true, at: now(), samples: parsed.samples };
  } catch (e) {
    return { source: t.name, ok: false, error: errText(e), at: now(), samples: [] };
  }
}

/** Every target at once. */
export function scrapeAll(targets: readonly ScrapeTarget[]): Promise<ScrapeResult[]> {
  return Promise.all(targets.map((t) => scrapeOne(t)));
}
