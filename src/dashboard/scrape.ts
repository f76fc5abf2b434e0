// Scraping the processes' /metrics for the dashboard (docs/dashboard.md, "Metrics"), over the one scrape and parser
// (src/metrics/scrape.ts). In a lab the host reaches its processes only through the unix sockets they serve /metrics
// on, `<lab state dir>/metrics/<role>.sock` (stateFiles.metrics; docs/observability.md): the dashboard lists that
// directory at every round, so processes that come and go are picked up; elsewhere the --scrape targets. A failure
// is a result (shown on the page), never a crash.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseMetrics, scrape } from '../metrics/scrape.js';
import { errText } from '../util.js';
import type { ScrapeTarget } from './input.js';
import type { ScrapeResult } from './model.js';

/** A scrape that has not answered in this long has failed (agents are scraped every SCRAPE_FAST_MS while a page is open). */
export const SCRAPE_TIMEOUT_MS = 1000;

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
    .map((n) => ({ target: `unix:${join(metricsDir, n)}`, name: n.slice(0, -'.sock'.length) }));
}

export async function scrapeOne(t: ScrapeTarget, now: () => number = Date.now): Promise<ScrapeResult> {
  try {
    const samples = parseMetrics(await scrape(t.target, SCRAPE_TIMEOUT_MS));
    return { source: t.name, ok: true, at: now(), samples };
  } catch (e) {
    return { source: t.name, ok: false, error: errText(e), at: now(), samples: [] };
  }
}

/** Every target at once. */
export function scrapeAll(targets: readonly ScrapeTarget[]): Promise<ScrapeResult[]> {
  return Promise.all(targets.map((t) => scrapeOne(t)));
}
