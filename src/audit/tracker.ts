// The recorder's pure core (docs/audit.md, "Nothing lost"): conntrack flows in, records out through a FlowStore.
//
// - A translated connection is opened at its NEW (or when a dump shows it) and completed at its DESTROY; a DESTROY
//   whose NEW was lost still makes a full record (it carries both tuples, counters, start and stop).
// - After a loss (event socket overflow, a restart), a dump re-opens what egw did not know, and what egw knew as open
//   but the dump no longer shows ended unseen: it is closed with `complete: false`.
// - The ledger: at every check, the kernel's count of connections it translated (the masquerade rule's counter)
//   must equal the connections egw saw since the previous check. A shortfall after a loss, or one that outlasts a
//   whole interval, is a gap record with that many connections; so every translated connection is a record or is
//   counted in a gap (an upper bound: a connection can be both, never neither).
import type { CtFlow, FlowRecord, FlowStore, GapRecord } from './types.js';
import { PortUseCounter } from './ports.js';
import { completeRecord, flowKey, gapRecord, isTranslated, openRecord, recordKey, vanishedRecord, type Enrichment, type RecordContext } from './record.js';

export interface TrackerOptions extends RecordContext {
  store: FlowStore;
  /** What egw knows of the entry's client now (src/audit/enrich.ts). */
  enrich(f: CtFlow): Enrichment;
  /** Entries that are egw's own (the barrier entries): never records. */
  ignore?(f: CtFlow): boolean;
  now?(): number;
}

export interface Loss {
  reason: GapRecord['egw']['gap']['reason'];
  /** When egw last knew it was seeing everything. */
  start: number;
  eventsDropped: number | null;
}

interface Ledger {
  /** The kernel's count at the last check, and when it was read. */
  kernel: number;
  at: number;
  /**
   * The surplus so far (≤ 0): connections egw saw before the last check's barrier that the count, read just before
   * the barrier was inserted, did not include yet; the next interval's count includes them.
   */
  carry: number;
}

const LEDGER = 'ledger';
const OBSERVED = 'observed';
/** How long a completed connection's key is remembered, so a late DESTROY or dump entry is not a second record. */
const RECENT_MS = 5 * 60_000;

/**
 * A completed connection's key: when it was completed (for expiry) and the end its record says. The key is not
 * enough to tell connections apart: a SYN that reopens the tuple of an entry in CLOSE or TIME_WAIT kills that entry
 * and gets a new one with the same tuple and, often, the same conntrack id (the id is derived from the entry's
 * memory, which the kernel hands out again at once; seen on this kernel: NEW, DESTROY, NEW with one id, a client
 * port reused with RST close). A NEW is always a new connection; a DESTROY or dump entry that started at or after
 * the recorded end is one too; one that started before it is the completed connection seen again.
 */
interface Recent {
  at: number;
  end: number;
}

export class FlowTracker {
  private readonly open = new Map<string, { rec: FlowRecord; firstSeen: number }>();
  /** SNAT ports the open connections hold, per egress IP and destination (metrics, port pressure). */
  readonly ports = new PortUseCounter();
  private readonly recent = new Map<string, Recent>();
  private ledger: Ledger | undefined;
  /** Connections first seen since the last check (persisted with every flush: see persist()). */
  private observed = 0;
  /** Connections counted by cut() and not yet consumed by check(). */
  private cutObserved = 0;
  /** seenAt of the last flow taken. */
  lastEventAt = 0;
  readonly stats = { records: 0, opened: 0, vanished: 0, gaps: 0, gapConnections: 0 };
  private readonly now: () => number;
  /** When this run began: a connection that began before it may have been completed by the previous run. */
  private readonly startedAt: number;

  constructor(private readonly o: TrackerOptions) {
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    for (const rec of o.store.openFlows()) {
      this.open.set(recordKey(rec), { rec, firstSeen: Date.parse(rec.event.start) });
      this.ports.add(rec);
    }
    const l = o.store.getState(LEDGER) as Ledger | undefined;
    if (l && Number.isFinite(l.kernel) && Number.isFinite(l.at)) this.ledger = { kernel: l.kernel, at: l.at, carry: Math.min(0, Number(l.carry) || 0) };
    this.observed = Number(o.store.getState(OBSERVED)) || 0;
  }

  /** True when a previous run of this reporter left a ledger (a restart, not a first start). */
  get restarted(): boolean {
    return this.ledger !== undefined;
  }

  /** When the last check was (the start of a restart's gap). */
  get lastCheckAt(): number | undefined {
    return this.ledger?.at;
  }

  get openCount(): number {
    return this.open.size;
  }

  onFlows(flows: readonly CtFlow[]): void {
    for (const f of flows) {
      if (f.type !== 'new' && f.type !== 'destroy') continue;
      if (!this.recordable(f)) continue;
      this.lastEventAt = f.seenAt;
      const key = flowKey(f);
      if (f.type === 'new') {
        const o = this.open.get(key);
        if (o && o.rec.egw.seen === 'dump') continue; // the dump saw it first: the same connection
        if (o) {
          // a second NEW on an open key: the kernel made a new entry of that tuple, so the one egw had open ended and
          // its DESTROY was lost (conntrack sends NEW, DESTROY, NEW for a reopened tuple)
          this.vanish(key, o.rec, f.seenAt);
        }
        // (a completed connection of the same key before it: a reopened tuple, see Recent)
        this.recent.delete(key);
        this.opened(key, openRecord(this.o, f, this.o.enrich(f), 'event'), f.seenAt, true);
        continue;
      }
      let o = this.open.get(key);
      if (o && f.start !== undefined && Math.floor(f.start) > Date.parse(o.rec.event.start)) {
        // a DESTROY of a connection that began after the open one was first seen (an open record's start is the
        // kernel's, or the NEW's arrival, never before the kernel's start): a later connection of the tuple, whose
        // NEW was lost with the open one's DESTROY; the open one ended unseen before it began
        this.vanish(key, o.rec, Math.floor(f.start));
        o = undefined;
      }
      if (o) {
        this.dropOpen(key, o.rec);
        this.completed(key, completeRecord(o.rec, f));
      } else {
        let rec: FlowRecord | undefined;
        const record = (): FlowRecord => (rec ??= openRecord(this.o, f, this.o.enrich(f), 'destroy'));
        if (this.seenBefore(key, f, record)) continue;
        // its NEW was lost: the DESTROY alone makes the record; it counts toward the ledger if it began since the last check
        this.completed(key, completeRecord(record(), f));
        if (this.countable(f.start)) this.observed++;
      }
    }
  }

  /**
   * Takes a dump made from `dumpStart`: opens what egw did not know, and returns the open connections egw knew before
   * the dump began that the dump does not show — ended unseen, unless their DESTROY is still on its way: close them
   * with closeVanished() once a barrier shows every earlier event was taken.
   */
  applyDump(dump: readonly CtFlow[], dumpStart: number): Set<string> {
    const shown = new Set<string>();
    for (const f of dump) {
      if (!this.recordable(f)) continue;
      const key = flowKey(f);
      shown.add(key);
      if (this.open.has(key)) continue;
      let rec: FlowRecord | undefined;
      const record = (): FlowRecord => (rec ??= openRecord(this.o, f, this.o.enrich(f), 'dump'));
      if (this.seenBefore(key, f, record)) continue;
      this.opened(key, record(), dumpStart, this.countable(f.start));
    }
    const missing = new Set<string>();
    for (const [key, o] of this.open) if (o.firstSeen < dumpStart && !shown.has(key)) missing.add(key);
    return missing;
  }

  closeVanished(keys: Iterable<string>, end: number): number {
    let n = 0;
    for (const key of keys) {
      const o = this.open.get(key);
      if (!o) continue;
      this.vanish(key, o.rec, end);
      n++;
    }
    return n;
  }

  /**
   * Balances the ledger with the kernel's count (null: no count available), read at `at` just before a barrier was
   * inserted, and `observed`, the connections egw saw up to that barrier. Every connection the count includes was
   * confirmed before the barrier, so its NEW came before the barrier's: a shortfall is loss, never events in flight.
   * Connections made between the read and the barrier are a surplus the next interval's count makes up for (carry).
   * A loss smaller than a surplus still carried shows one interval later, when the surplus has been made up. Returns
   * the gap record written, if any.
   */
  check(kernel: number | null, at: number, loss?: Loss, observed = this.cut()): GapRecord | null {
    this.cutObserved -= observed;
    const prev = this.ledger;
    let gap: { start: number; reason: Loss['reason']; connections: number | null } | null = null;
    let carry = 0;
    if (kernel === null || !prev) {
      if (loss) gap = { start: loss.start, reason: loss.reason, connections: null };
    } else if (kernel < prev.kernel) {
      gap = { start: loss?.start ?? prev.at, reason: loss?.reason ?? 'counter-reset', connections: null };
    } else {
      const deficit = kernel - prev.kernel - observed;
      const total = prev.carry + deficit;
      if (total > 0) gap = { start: loss?.start ?? prev.at, reason: loss?.reason ?? 'unaccounted', connections: total };
      else {
        if (loss) gap = { start: loss.start, reason: loss.reason, connections: 0 };
        // what this interval saw beyond its count: the last interval's surplus made up, plus this one's own
        carry = total;
      }
    }
    // no count (the table was just made, or is unreadable): the next check starts a new base
    this.ledger = kernel === null ? undefined : { kernel, at, carry };
    this.persist();
    for (const [k, r] of this.recent) if (r.at < at - RECENT_MS) this.recent.delete(k);
    // a loss that cost no connection needs no record (the ledger balanced across it; the recorder logs it)
    if (!gap || gap.connections === 0) return null;
    const rec = gapRecord(this.o, { start: gap.start, end: at, reason: gap.reason, eventsDropped: loss?.eventsDropped ?? null, connections: gap.connections });
    this.o.store.gap(rec);
    this.stats.gaps++;
    this.stats.gapConnections += gap.connections ?? 0;
    return rec;
  }

  /**
   * The kernel's count starts again from `kernel` at `at` (the count table was just made): the ledger's base. When a
   * previous run left a ledger, the time from its last check to `at` cannot be checked: a gap of unknown size.
   */
  rebase(kernel: number, at: number): GapRecord | null {
    const prev = this.ledger;
    this.ledger = { kernel, at, carry: 0 };
    this.observed = 0;
    this.cutObserved = 0;
    this.persist();
    if (!prev) return null;
    const rec = gapRecord(this.o, { start: prev.at, end: at, reason: 'counter-reset', eventsDropped: null, connections: null });
    this.o.store.gap(rec);
    this.stats.gaps++;
    return rec;
  }

  /**
   * The connections seen since the last cut, as of now: call it where the barrier's event sits in the stream, and
   * pass the result to check() with the count read after the barrier was inserted.
   */
  cut(): number {
    const n = this.observed;
    this.observed = 0;
    this.cutObserved += n;
    return n;
  }

  /** Writes the ledger state with the records (call before every store.flush(), so they commit together). */
  persist(): void {
    this.o.store.setState(LEDGER, this.ledger ?? null);
    this.o.store.setState(OBSERVED, this.observed + this.cutObserved);
  }

  /** Translated IPv4 connections that are not egw's own (egress is IPv4 only: docs/audit.md). */
  private recordable(f: CtFlow): boolean {
    return !f.orig.src.includes(':') && isTranslated(f) && !this.o.ignore?.(f);
  }

  private countable(start: number | undefined): boolean {
    return !this.ledger || start === undefined || start >= this.ledger.at;
  }

  private opened(key: string, rec: FlowRecord, firstSeen: number, count: boolean): void {
    this.open.set(key, { rec, firstSeen });
    this.ports.add(rec);
    this.o.store.open(rec);
    this.stats.opened++;
    if (count) this.observed++;
  }

  private dropOpen(key: string, rec: FlowRecord): void {
    this.open.delete(key);
    this.ports.remove(rec);
  }

  /** An open connection that ended while egw could not see its end: completed at `end`, counters unknown. */
  private vanish(key: string, rec: FlowRecord, end: number): void {
    this.dropOpen(key, rec);
    this.completed(key, vanishedRecord(rec, end));
    this.stats.vanished++;
  }

  private completed(key: string, rec: FlowRecord): void {
    this.o.store.complete(rec);
    this.recent.set(key, { at: this.now(), end: Date.parse(rec.event.end!) });
    this.stats.records++;
  }

  /**
   * Is this DESTROY or dump entry the connection already completed under its key (see Recent)? Without a kernel start
   * it is taken to be. A connection that began before this run is looked up in the store too: the previous run may
   * have completed it (closed as ended unseen, say) just before it was killed, and `recent` did not outlive it.
   * `rec`: the record this entry would make (built only if needed: the lookup goes by its translated source).
   */
  private seenBefore(key: string, f: CtFlow, rec: () => FlowRecord): boolean {
    const r = this.recent.get(key);
    if (r) {
      if (f.start !== undefined && f.start >= r.end) {
        this.recent.delete(key);
        return false;
      }
      return true;
    }
    if (f.start !== undefined && f.start >= this.startedAt) return false;
    const end = this.o.store.completedEnd(rec());
    if (end === undefined || (f.start !== undefined && f.start >= end)) return false;
    this.recent.set(key, { at: this.now(), end });
    return true;
  }
}
