// The dashboard's live state (docs/dashboard.md): the one informer (src/datastore/informer.ts) over every kind feeding
// a calculator, the scrapes of the processes' /metrics, and the flow graph from the flow index; from them the view
// (model.ts, pure), rebuilt when one of them changed and pushed to every subscriber (the page's server-sent events).
// While a page is open, the metrics are scraped every SCRAPE_FAST_MS so an agent declaring a gateway down shows
// within 2 s (detection ≈0.5–0.7 s, docs/behaviour.md §3.4, + one scrape + the push); with no page open, slowly.
import { existsSync } from 'node:fs';
import { KINDS } from '../api/index.js';
import { queryFlows, trace } from '../audit/query.js';
import { EgressCalculator } from '../calc/index.js';
import { formatExplanation } from '../cli/explain.js';
import { formatTrace, noMatchText, traceJson } from '../cli/flows.js';
import { startInformer, type Informer } from '../datastore/informer.js';
import type { Store } from '../datastore/types.js';
import type { Logger } from '../log.js';
import { errText } from '../util.js';
import { flowGraph, type FlowGraph } from './graph.js';
import type { ExplainQuery, ScrapeTarget, TraceQueryInput } from './input.js';
import { buildView, type DashboardView, type ScrapeResult } from './model.js';
import { labSocketTargets, scrapeAll } from './scrape.js';

/** Scrape period while a page is open, and without one. */
export const SCRAPE_FAST_MS = 500;
export const SCRAPE_SLOW_MS = 5000;
/** Flow-index query period while a page is open, and without one. */
export const FLOWS_FAST_MS = 2000;
export const FLOWS_SLOW_MS = 10_000;
/** Changes arriving together make one rebuild. */
const REBUILD_DEBOUNCE_MS = 30;

export type ApiAnswer = { status: number; body: unknown };

/** What the HTTP part serves (src/dashboard/server.ts); the bench and the unit tests supply their own. */
export interface DashboardSource {
  /** The current view as JSON. */
  viewJson(): string;
  /** Called with each new view's JSON; returns the unsubscribe. */
  subscribe(fn: (json: string) => void): () => void;
  explain(q: ExplainQuery): ApiAnswer;
  trace(q: TraceQueryInput): ApiAnswer;
}

export interface LiveOptions {
  store: Store;
  signal: AbortSignal;
  /** --scrape targets. */
  targets: readonly ScrapeTarget[];
  /** A lab's metrics directory, listed at every scrape. */
  metricsDir?: string;
  /** The flow-record root; none: no graph, and trace answers that there are no records. */
  flowRoot?: string;
  windowMs: number;
  log?: Logger;
  /** How the targets are scraped (default scrapeAll; the bench gives synthetic results). */
  scrape?: (targets: readonly ScrapeTarget[]) => Promise<ScrapeResult[]>;
}

export class LiveDashboard implements DashboardSource {
  private readonly informer: Informer;
  private calc = new EgressCalculator();
  private scrapes: ScrapeResult[] = [];
  private scrapeKey = '';
  private graph: FlowGraph;
  private graphKey = '';
  private json = '';
  private viewKey = '';
  private readonly subscribers = new Set<(json: string) => void>();
  private rebuildTimer: NodeJS.Timeout | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private wakeScrape: (() => void) | undefined;
  private flowWarning = '';

  constructor(private readonly opts: LiveOptions) {
    this.graph = flowGraph([], Date.now(), opts.windowMs);
    this.informer = startInformer({
      store: opts.store,
      kinds: KINDS.map((k) => k.kind),
      signal: opts.signal,
      log: opts.log,
      onReplace: (objects) => {
        this.calc = new EgressCalculator().load(objects);
        this.changed();
      },
      onEvents: (events) => {
        for (const e of events) {
          if (e.type === 'DELETED') this.calc.remove(e.object);
          else this.calc.upsert(e.object);
        }
        this.changed();
      },
    });
    void this.scrapeLoop();
    void this.flowLoop();
    opts.signal.addEventListener('abort', () => {
      clearTimeout(this.rebuildTimer);
      for (const t of this.timers) clearTimeout(t);
      this.wakeScrape?.();
    });
  }

  /** Resolves once the datastore's objects are in the view. */
  async ready(): Promise<void> {
    await this.informer.whenSynced();
    this.rebuild();
  }

  get done(): Promise<void> {
    return this.informer.done;
  }

  viewJson(): string {
    if (!this.json) this.rebuild();
    return this.json;
  }

  subscribe(fn: (json: string) => void): () => void {
    this.subscribers.add(fn);
    // A page opened: scrape at the fast pace from now, not after the slow wait.
    this.wakeScrape?.();
    return () => this.subscribers.delete(fn);
  }

  explain(q: ExplainQuery): ApiAnswer {
    if (!this.informer.get({ kind: 'Pod', namespace: q.namespace, name: q.name })) {
      return { status: 404, body: { error: `pod ${q.namespace}/${q.name} not found`, field: 'pod' } };
    }
    const e = this.calc.explain(q.namespace, q.name, q.dst);
    return { status: 200, body: { explanation: e, text: formatExplanation(e) } };
  }

  trace(q: TraceQueryInput): ApiAnswer {
    const root = this.opts.flowRoot;
    const now = Date.now();
    if (!root) return { status: 404, body: { error: 'no flow-record root: give --flow-dir or --lab' } };
    const t = trace(root, { ip: q.ip, port: q.port, dst: q.dst, at: q.at, now });
    if (!t.match) {
      const what = `from ${q.ip}:${q.port}${q.dst ? ` to ${q.dst.ip}${q.dst.port === undefined ? '' : `:${q.dst.port}`}` : ''} live at ${new Date(q.at).toISOString()}`;
      const text = noMatchText(t, what, { root, from: 'flag' }, existsSync(root)).replace(/^error: /, '');
      return { status: 404, body: { error: text.trimEnd(), warnings: t.warnings } };
    }
    return { status: 200, body: { trace: traceJson(t), text: formatTrace(t), warnings: t.warnings } };
  }

  /** The view now (built from what the informer, the scrapes and the flow index hold). */
  view(): DashboardView {
    const list = (kind: string) => this.informer.list(kind);
    return buildView({
      now: Date.now(),
      revision: this.informer.revision,
      egressGateways: list('EgressGateway'),
      pods: list('Pod'),
      namespaces: list('Namespace'),
      policies: list('EgressGatewayPolicy'),
      egressOf: (ns, name) => this.calc.egressOf(ns, name),
      scrapes: this.scrapes,
      graph: this.graph,
    });
  }

  private changed(): void {
    if (this.rebuildTimer || this.opts.signal.aborted) return;
    this.rebuildTimer = setTimeout(() => {
      this.rebuildTimer = undefined;
      this.rebuild();
    }, REBUILD_DEBOUNCE_MS);
  }

  private rebuild(): void {
    let v: DashboardView;
    try {
      v = this.view();
    } catch (e) {
      this.opts.log?.error('dashboard: building the view failed', { error: errText(e) });
      return;
    }
    this.json = JSON.stringify(v);
    // Pushed only when something other than the clocks changed.
    const key = JSON.stringify({ ...v, generatedAt: '', sources: v.sources.map((s) => ({ ...s, at: '' })) });
    if (key === this.viewKey) return;
    this.viewKey = key;
    for (const fn of this.subscribers) fn(this.json);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.opts.signal.aborted) return resolve();
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.wakeScrape = undefined;
        resolve();
      }, ms);
      this.timers.add(t);
      this.wakeScrape = () => {
        clearTimeout(t);
        this.timers.delete(t);
        this.wakeScrape = undefined;
        resolve();
      };
    });
  }

  private targets(): ScrapeTarget[] {
    return [...this.opts.targets, ...(this.opts.metricsDir ? labSocketTargets(this.opts.metricsDir) : [])];
  }

  private async scrapeLoop(): Promise<void> {
    while (!this.opts.signal.aborted) {
      const targets = this.targets();
      if (targets.length) {
        const results = await (this.opts.scrape ?? scrapeAll)(targets);
        this.scrapes = results;
        const key = JSON.stringify(results.map((r) => [r.source, r.ok, r.error ?? '', r.samples.filter((s) => s.name.startsWith('egw_agent_gateway_up') || s.name.startsWith('egw_gateway_'))]));
        if (key !== this.scrapeKey) {
          this.scrapeKey = key;
          this.changed();
        }
      }
      await this.sleep(this.subscribers.size ? SCRAPE_FAST_MS : SCRAPE_SLOW_MS);
    }
  }

  private async flowLoop(): Promise<void> {
    const root = this.opts.flowRoot;
    if (!root) return;
    while (!this.opts.signal.aborted) {
      try {
        const now = Date.now();
        const { records, warnings } = queryFlows(root, { since: this.opts.windowMs, now });
        const w = warnings.join('\n');
        if (w && w !== this.flowWarning) this.opts.log?.warn('dashboard: flow index', { warnings: warnings.slice(0, 5) });
        this.flowWarning = w;
        this.graph = flowGraph(records, now, this.opts.windowMs);
        const key = JSON.stringify(this.graph);
        if (key !== this.graphKey) {
          this.graphKey = key;
          this.changed();
        }
      } catch (e) {
        this.opts.log?.warn('dashboard: reading the flow index failed', { error: errText(e) });
      }
      await new Promise<void>((resolve) => {
        if (this.opts.signal.aborted) return resolve();
        const t = setTimeout(() => {
          this.timers.delete(t);
          resolve();
        }, this.subscribers.size ? FLOWS_FAST_MS : FLOWS_SLOW_MS);
        this.timers.add(t);
      });
    }
  }
}

