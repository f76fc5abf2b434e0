// A flow recorder (docs/audit.md): in a gateway pod's network namespace (reporter `gateway`) or a node's (reporter
// `node`), one `conntrack -E` stream → the tracker (tracker.ts, pure) → the reporter's store (store.ts). The same
// informer → pure core → apply shape as every process: the host process's informer feeds `pods` (enrich.ts).
//
//   start       accounting sysctls on; the count table (kernel.ts); the event stream; then a resync
//   resync      dump (conntrack -L) → tracker.applyDump; barrier; what vanished is closed; the ledger is checked,
//               with the loss that caused it (restart, overflow, reader) — so a gap record says what was missed
//   every 200 ms  flush: records and the ledger to disk together (tracker.persist + store.flush)
//   every 10 s  check: the kernel's count, then a barrier, then the ledger (an unexplained shortfall is a gap too)
//   stop        flush, stop conntrack, close the store. The kernel is left as it is.
// A conntrack reader that dies is started again (backoff 1 s → 30 s) and followed by a resync.
import type { PortUse } from './ports.js';
import type { Runner } from '../dataplane/exec.js';
import type { Logger } from '../log.js';
import { Backoff, errText, sleep } from '../util.js';
import { dumpConntrack, enableConntrackAccounting, startConntrackEvents, type CtEvents } from './ctsource.js';
import { podIPHistory, type ObservedPod, type PodIPHistoryWriter } from './history.js';
import { ensureCountTable, insertBarrier, isBarrier, readTranslatedCount } from './kernel.js';
import { reporterDir } from './paths.js';
import type { Enrichment } from './record.js';
import { openFlowStore, type FlowStoreOptions } from './store.js';
import { AggregatingStore } from './aggregate.js';
import { FlowTracker, type Loss } from './tracker.js';
import type { CtFlow, FlowStore, Reporter } from './types.js';

/** What a gateway or agent is told about recording (the CLI's --flow-dir, --no-flows and limits). */
/** Events held while the pods are not known yet, at most. */
const BACKLOG_MAX = 50_000;

export interface FlowRecordingOptions {
  root: string;
  store?: FlowStoreOptions;
  checkMs?: number;
  /** Also write aggregates per client, gateway, destination and this interval (aggregate.ts); absent = none. */
  aggregateMs?: number;
}

export interface RecorderOptions {
  reporter: Reporter;
  /** `ns/pod` of the gateway, or the node's name. */
  reporterName: string;
  /** The flow root (paths.ts flowRoot). */
  root: string;
  store?: FlowStoreOptions;
  aggregateMs?: number;
  /** Where kernel commands run: the recorder's network namespace. */
  runner: Runner;
  enrich(f: CtFlow): Enrichment;
  /**
   * Resolves when the host process has listed the datastore (its pods are known). The recorder starts at once, so a
   * restart costs as little recording as possible; the events read before then wait for it (enrichment needs pods).
   */
  podsKnown?: Promise<void>;
  /** The node agent: the pods of its node, for the pod-IP history (history.ts). */
  historyPods?(): ObservedPod[];
  log?: Logger;
  signal: AbortSignal;
  flushMs?: number;
  checkMs?: number;
  /** How long barriers may take to come back before the reader is taken for stuck. Default 6 s. */
  barrierTimeoutMs?: number;
  /** The conntrack event socket's buffer (ctsource.ts CT_EVENT_BUFFER_BYTES by default); null: the kernel's default. */
  eventBufferBytes?: number | null;
}

export interface RecorderStats {
  records: number;
  open: number;
  gaps: number;
  gapConnections: number;
  vanished: number;
  overflows: number;
  readerRestarts: number;
  lastCheck: string | null;
  /** The conntrack reader's pid (tests stop it to make the event socket overflow). */
  readerPid: number | null;
}

export interface RecorderHandle {
  readonly done: Promise<void>;
  stats(): RecorderStats;
  /** SNAT ports in use per egress IP and destination, from the open connections (src/audit/ports.ts). */
  portUse(): PortUse[];
  /** Resolves once the first resync is done (records flow from then on). */
  readonly ready: Promise<void>;
}

export function startRecorder(o: RecorderOptions): RecorderHandle {
  return new Recorder(o);
}

class Recorder implements RecorderHandle {
  readonly done: Promise<void>;
  readonly ready: Promise<void>;
  private readyResolve!: () => void;
  private store!: FlowStore;
  private aggregates: AggregatingStore | null = null;
  private tracker!: FlowTracker;
  private history: PodIPHistoryWriter | null = null;
  private events: CtEvents | null = null;
  private readonly wrap: string[] | undefined;
  private readonly waiting = new Map<number, () => void>();
  private barrierSeq = 0;
  private readonly barrierBase = Math.floor(Math.random() * 40000);
  private overflow: Loss | null = null;
  /** Events read before the host process knew its pods (RecorderOptions.podsKnown); null once it does. */
  private backlog: CtFlow[][] | null = null;
  private backlogSize = 0;
  /** A resync is owed, for this loss (none: the first start). */
  private needResync: { loss: Loss | undefined } | null = null;
  private readerDied = false;
  private readonly st = { overflows: 0, readerRestarts: 0, lastCheck: null as string | null };

  constructor(private readonly o: RecorderOptions) {
    this.wrap = o.runner.netns ? ['ip', 'netns', 'exec', o.runner.netns] : undefined;
    this.ready = new Promise((res) => (this.readyResolve = res));
    this.done = this.run().catch((e) => {
      o.log?.error('flow recorder stopped', { error: errText(e) });
      this.readyResolve();
    });
  }

  portUse(): PortUse[] {
    return this.tracker?.ports.snapshot() ?? [];
  }

  stats(): RecorderStats {
    const t = this.tracker?.stats;
    return {
      records: t?.records ?? 0,
      open: this.tracker?.openCount ?? 0,
      gaps: t?.gaps ?? 0,
      gapConnections: t?.gapConnections ?? 0,
      vanished: t?.vanished ?? 0,
      ...this.st,
      readerPid: this.events?.pid ?? null,
    };
  }

  private async run(): Promise<void> {
    const { o } = this;
    await enableConntrackAccounting(this.wrap);
    const countFrom = Date.now();
    const recreated = await ensureCountTable(o.runner);
    const dir = reporterDir(o.root, o.reporter, o.reporterName);
    const store = openFlowStore(dir, { ...o.store, log: o.store?.log ?? o.log });
    if (o.aggregateMs) this.aggregates = new AggregatingStore(store, o.aggregateMs);
    this.store = this.aggregates ?? store;
    this.tracker = new FlowTracker({ reporter: o.reporter, reporterName: o.reporterName, store: this.store, enrich: o.enrich, ignore: isBarrier });
    if (o.historyPods) this.history = podIPHistory(dir);
    // (asked before rebase, which gives a first start a ledger too)
    const previousRun = this.tracker.restarted;
    // a count table made just now counts from here; a previous run's ledger cannot be continued across it
    if (recreated) this.tracker.rebase(0, countFrom);
    const restartLoss: Loss | undefined = this.tracker.restarted ? { reason: 'restart', start: this.tracker.lastCheckAt!, eventsDropped: null } : undefined;
    o.log?.info('flow recorder starting', { dir, restarted: previousRun, open: this.tracker.openCount, countTable: recreated ? 'created' : 'kept' });
    this.startReader();
    this.needResync = { loss: restartLoss };
    if (o.podsKnown) {
      this.backlog = [];
      void o.podsKnown.then(() => {
        const held = this.backlog ?? [];
        this.backlog = null;
        for (const flows of held) this.onFlows(flows);
      });
    }
    try {
      await this.loop();
    } finally {
      this.readyResolve();
      this.aggregates?.tick(Date.now(), true);
      this.flush();
      await this.events?.stop();
      this.history?.close();
      this.store.close();
      o.log?.info('flow recorder stopped', this.stats() as unknown as Record<string, unknown>);
    }
  }

  private startReader(): void {
    this.events = startConntrackEvents({
      wrap: this.wrap,
      ...(this.o.eventBufferBytes !== undefined ? { eventBufferBytes: this.o.eventBufferBytes } : {}),
      onFlows: (flows) => this.onFlows(flows),
      onOverflow: (ov) => {
        this.st.overflows++;
        // the loss began after the last event taken (or the last check, if none since)
        this.overflow ??= { reason: 'overflow', start: Math.max(this.tracker.lastEventAt, this.tracker.lastCheckAt ?? 0) || Date.now(), eventsDropped: null };
        // each Drops poll reports what was dropped since the previous one: the loss's total is their sum
        if (ov.dropsDelta !== null) this.overflow.eventsDropped = (this.overflow.eventsDropped ?? 0) + ov.dropsDelta;
        this.o.log?.warn('conntrack events lost (the event socket overflowed); a dump will recover', { source: ov.source, dropped: ov.dropsDelta });
      },
      onError: (msg) => this.o.log?.warn('conntrack', { message: msg }),
      onNote: (msg) => this.o.log?.info(msg),
      onExit: (code, signal, stderr) => {
        if (this.o.signal.aborted) return;
        this.readerDied = true;
        this.o.log?.warn('conntrack event reader exited; starting it again', { code, signal, stderr });
      },
    });
  }

  /** Flows in stream order; a barrier's NEW cuts the ledger where it sits. */
  private onFlows(flows: CtFlow[]): void {
    if (this.backlog) {
      // the pods are not known yet: keep the events (in order) until they are, so they are enriched, not lost; a
      // datastore that does not answer must not fill the memory: past BACKLOG_MAX the older ones are dropped (the
      // first resync's dump and ledger then account for them, in the restart's gap)
      this.backlogSize += flows.length;
      if (this.backlogSize > BACKLOG_MAX) {
        this.o.log?.warn('the pods are still not known; conntrack events held so far are dropped (the first resync accounts for them)', { dropped: this.backlogSize - flows.length });
        this.backlog = [];
        this.backlogSize = flows.length;
      }
      this.backlog.push(flows);
      return;
    }
    let from = 0;
    for (let i = 0; i < flows.length; i++) {
      const f = flows[i]!;
      if (f.type !== 'new' || !isBarrier(f)) continue;
      this.tracker.onFlows(flows.slice(from, i));
      from = i + 1;
      const w = this.waiting.get(f.orig.sport ?? -1);
      if (w) w();
    }
    this.tracker.onFlows(from === 0 ? flows : flows.slice(from));
  }

  /**
   * Inserts a barrier and waits for its event; resolves with the ledger cut there, or null when none came back. A
   * barrier's event can itself be lost while the event socket still overflows, so up to three are tried, each given
   * a third of barrierTimeoutMs; an overflow seen meanwhile makes the loop resync again.
   */
  private async barrier(): Promise<number | null> {
    const per = (this.o.barrierTimeoutMs ?? 6000) / 3;
    for (let i = 0; i < 3 && !this.o.signal.aborted; i++) {
      // ports differ between runs too: an earlier run's barrier may still be in the table for 2 s
      const sport = 20000 + ((this.barrierBase + this.barrierSeq++) % 40000);
      let cut: number | null = null;
      const seen = new Promise<void>((res) => this.waiting.set(sport, () => ((cut = this.tracker.cut()), res())));
      try {
        if (!(await insertBarrier(this.o.runner, sport))) continue;
        await Promise.race([seen, sleep(per, this.o.signal)]);
        if (cut !== null) return cut;
      } finally {
        this.waiting.delete(sport);
      }
    }
    return null;
  }

  /** Dump, barrier, close what vanished, check the ledger. False when the barrier did not come back. */
  private async resync(loss: Loss | undefined): Promise<boolean> {
    await this.events!.ready();
    const dumpStart = Date.now();
    const dump = await dumpConntrack({ wrap: this.wrap });
    const missing = this.tracker.applyDump(dump, dumpStart);
    // the count first, then the barrier: whatever the count includes had its NEW queued before the barrier's
    const at = Date.now();
    const kernel = await readTranslatedCount(this.o.runner);
    const cut = await this.barrier();
    if (cut === null) {
      // the reader did not bring the barrier back: do not close anything on its word
      this.o.log?.warn('conntrack events stalled (the barrier did not come back); restarting the reader');
      this.readerDied = true;
      return false;
    }
    const vanished = this.tracker.closeVanished(missing, Date.now());
    const gap = this.tracker.check(kernel, at, loss, cut);
    if (gap) this.o.log?.warn('flow records gap', { reason: gap.egw.gap.reason, from: gap.event.start, to: gap.event.end, connections: gap.egw.gap.connections, eventsDropped: gap.egw.gap.events_dropped });
    if (vanished) this.o.log?.info('connections that ended unseen were closed', { count: vanished });
    this.st.lastCheck = new Date(at).toISOString();
    this.flush();
    return true;
  }

  private async check(): Promise<void> {
    const at = Date.now();
    const kernel = await readTranslatedCount(this.o.runner);
    const cut = await this.barrier();
    if (cut === null) {
      this.readerDied = true;
      return;
    }
    const gap = this.tracker.check(kernel, at, undefined, cut);
    if (gap) this.o.log?.warn('flow records gap', { reason: gap.egw.gap.reason, from: gap.event.start, to: gap.event.end, connections: gap.egw.gap.connections });
    if (kernel === null) await ensureCountTable(this.o.runner).catch(() => {});
    this.st.lastCheck = new Date(at).toISOString();
  }

  private flush(): void {
    if (!this.store) return;
    try {
      // (not before the pods are known: an empty list would end every IP the history holds)
      if (this.history && this.o.historyPods && !this.backlog) this.history.observe(this.o.historyPods(), Date.now());
      this.aggregates?.tick(Date.now());
      this.tracker.persist();
      this.store.flush();
    } catch (e) {
      this.o.log?.error('writing flow records failed', { error: errText(e) });
    }
  }

  /**
   * One loop does everything after start, so nothing overlaps: flushes; after a loss (the first start or a restart,
   * an overflow, a dead or stalled reader) a resync, retried with backoff until it succeeds, keeping the loss it
   * owes a gap record for; else the periodic check.
   */
  private async loop(): Promise<void> {
    const { o } = this;
    const flushMs = o.flushMs ?? 200;
    const checkMs = o.checkMs ?? 10_000;
    const backoff = new Backoff({ minMs: 1000, maxMs: 30_000 });
    let nextCheck = Date.now() + checkMs;
    let retryAt = 0;
    while (!o.signal.aborted) {
      if (this.needResync === null || Date.now() < retryAt || this.backlog) await sleep(flushMs, o.signal);
      if (o.signal.aborted) break;
      this.flush();
      if (Date.now() < retryAt || this.backlog) continue;
      try {
        if (this.readerDied) {
          await this.events?.stop();
          this.readerDied = false;
          this.overflow = null;
          this.st.readerRestarts++;
          const start = Math.max(this.tracker.lastEventAt, this.tracker.lastCheckAt ?? 0) || Date.now();
          this.needResync = { loss: this.needResync?.loss ?? { reason: 'reader', start, eventsDropped: null } };
          this.startReader();
        }
        if (this.overflow) {
          const ov = this.overflow;
          this.overflow = null;
          this.needResync = { loss: this.needResync?.loss ?? ov };
        }
        if (this.needResync) {
          if (await this.resync(this.needResync.loss)) {
            this.needResync = null;
            this.readyResolve();
            backoff.reset();
            nextCheck = Date.now() + checkMs;
          } else retryAt = Date.now() + backoff.next();
        } else if (Date.now() >= nextCheck) {
          await this.check();
          nextCheck = Date.now() + checkMs;
        }
      } catch (e) {
        o.log?.warn('flow recorder: resync or check failed; trying again', { error: errText(e) });
        this.needResync ??= { loss: { reason: 'reader', start: this.tracker.lastCheckAt ?? Date.now(), eventsDropped: null } };
        retryAt = Date.now() + backoff.next();
      }
    }
  }
}
