// A reporter's record store (the FlowStore of types.ts; docs/audit.md, "Files" and "Index"): JSONL files rotated by
// size and age and deleted by retention, plus the SQLite index beside them. Writes are buffered; flush() writes the
// lines (fsync) and then commits the index, so a crash between the two leaves lines the next open indexes from the
// file, and never index rows without their line.
import { existsSync, mkdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseGoDuration } from '../api/parse.js';
import { createLogger, type Logger } from '../log.js';
import {
  FlowFileWriter,
  fileEndMs,
  listFlowFiles,
  parseRecordLine,
  readLinesFrom,
  readRetention,
  writeRetention,
  type WrittenFile,
} from './files.js';
import { connectionKey, FlowIndex, INDEX_FILE, isCorruption, type IndexOp } from './indexdb.js';
import type { AggregateRecord, FlowRecord, FlowStore, GapRecord } from './types.js';

/** The limits of a store (docs/audit.md, "Files"). */
export interface FlowStoreLimits {
  /** Start a new file when the current one would pass this size. */
  maxFileBytes: number;
  /** Start a new file when the current one is this old. */
  maxFileAgeMs: number;
  /** Delete files whose newest record is older than this. */
  retainAgeMs: number;
  /** Delete the oldest files while all of them together are larger than this. */
  retainBytes: number;
}

export const FLOW_STORE_DEFAULTS: Readonly<FlowStoreLimits> = Object.freeze({
  maxFileBytes: 64 * 1024 * 1024,
  maxFileAgeMs: 60 * 60 * 1000,
  retainAgeMs: 7 * 24 * 60 * 60 * 1000,
  retainBytes: 1024 * 1024 * 1024,
});

/** Where each limit is set: the flag of the recording processes and its environment variable. */
export const FLOW_STORE_SETTINGS: Readonly<Record<keyof FlowStoreLimits, { flag: string; env: string; kind: 'size' | 'duration' }>> = Object.freeze({
  maxFileBytes: { flag: '--flow-max-file-size', env: 'EGW_FLOW_MAX_FILE_SIZE', kind: 'size' },
  maxFileAgeMs: { flag: '--flow-max-file-age', env: 'EGW_FLOW_MAX_FILE_AGE', kind: 'duration' },
  retainAgeMs: { flag: '--flow-retain-age', env: 'EGW_FLOW_RETAIN_AGE', kind: 'duration' },
  retainBytes: { flag: '--flow-retain-size', env: 'EGW_FLOW_RETAIN_SIZE', kind: 'size' },
});

export interface FlowStoreOptions extends Partial<FlowStoreLimits> {
  /** Clock (tests). */
  now?: () => number;
  /** Where corruption, recovery and retention are reported (default: a logger on stderr). */
  log?: Logger;
  /** fsync the files at flush (default true). */
  fsync?: boolean;
  /** How often flush() also applies retention (default 60 s; it always runs at open and after a rotation). */
  retentionCheckMs?: number;
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** `64Mi`, `1Gi`, `500M`, `4096`: bytes (Kubernetes quantity suffixes); undefined if not one. */
export function parseSize(text: string): number | undefined {
  const m = /^([0-9]+)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]) * SIZE_UNITS[m[2] ?? ''];
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The limits given as strings (flag values, keyed by limit), else from the environment; only those given are
 * returned. Throws an Error naming the flag or variable for a malformed or non-positive value.
 */
export function parseFlowStoreLimits(flags: Partial<Record<keyof FlowStoreLimits, string | undefined>>, env: NodeJS.ProcessEnv = process.env): Partial<FlowStoreLimits> {
  const out: Partial<FlowStoreLimits> = {};
  for (const [key, s] of Object.entries(FLOW_STORE_SETTINGS) as [keyof FlowStoreLimits, (typeof FLOW_STORE_SETTINGS)[keyof FlowStoreLimits]][]) {
    const fromFlag = flags[key];
    const text = fromFlag ?? env[s.env];
    if (text === undefined || text === '') continue;
    const where = fromFlag !== undefined ? s.flag : s.env;
    const n = s.kind === 'size' ? parseSize(text) : parseGoDuration(text);
    if (n === undefined || !(n > 0)) {
      throw new Error(
        s.kind === 'size'
          ? `${where}: "${text}" is not a size in bytes > 0 such as 64Mi, 1Gi or 500000`
          : `${where}: "${text}" is not a duration > 0 such as 1h, 30m or 168h`,
      );
    }
    out[key] = n;
  }
  return out;
}

export function openFlowStore(dir: string, opts: FlowStoreOptions = {}): FlowStore {
  return new JsonlFlowStore(dir, opts);
}

class JsonlFlowStore implements FlowStore {
  private readonly limits: FlowStoreLimits;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly indexPath: string;
  private index: FlowIndex;
  private readonly writer: FlowFileWriter;
  private ops: IndexOp[] = [];
  private readonly pendingState = new Map<string, unknown>();
  private retentionDue = true;
  private lastRetention = 0;
  private readonly retentionCheckMs: number;
  private closed = false;

  constructor(
    readonly dir: string,
    opts: FlowStoreOptions,
  ) {
    this.limits = {
      maxFileBytes: opts.maxFileBytes ?? FLOW_STORE_DEFAULTS.maxFileBytes,
      maxFileAgeMs: opts.maxFileAgeMs ?? FLOW_STORE_DEFAULTS.maxFileAgeMs,
      retainAgeMs: opts.retainAgeMs ?? FLOW_STORE_DEFAULTS.retainAgeMs,
      retainBytes: opts.retainBytes ?? FLOW_STORE_DEFAULTS.retainBytes,
    };
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? createLogger('audit/store');
    this.retentionCheckMs = opts.retentionCheckMs ?? 60_000;
    mkdirSync(dir, { recursive: true });
    this.indexPath = join(dir, INDEX_FILE);
    this.index = this.openIndex();
    this.catchUp();
    const marks = this.index.fileMarks();
    this.writer = new FlowFileWriter(
      dir,
      { maxFileBytes: this.limits.maxFileBytes, maxFileAgeMs: this.limits.maxFileAgeMs, now: this.now, fsync: opts.fsync ?? true },
      (name, size) => (marks.get(name)?.indexed === size ? marks.get(name)!.lines : undefined),
    );
    this.writer.onRotate = () => void (this.retentionDue = true);
    this.applyRetention();
  }

  open(rec: FlowRecord): void {
    this.check();
    this.ops.push({ t: 'open', rec });
  }

  complete(rec: FlowRecord): void {
    this.check();
    const text = JSON.stringify(rec);
    const { file } = this.writer.append(text);
    this.ops.push({ t: 'complete', rec, file, text });
  }

  gap(rec: GapRecord): void {
    this.check();
    const { file } = this.writer.append(JSON.stringify(rec));
    this.ops.push({ t: 'gap', rec, file });
  }

  aggregate(rec: AggregateRecord): void {
    this.check();
    this.writer.append(JSON.stringify(rec));
  }

  openFlows(): FlowRecord[] {
    this.check();
    this.flush();
    return this.index.openRecords();
  }

  completedEnd(rec: FlowRecord): number | undefined {
    this.check();
    return this.index.completedEnd(rec);
  }

  getState(key: string): unknown {
    this.check();
    return this.pendingState.has(key) ? this.pendingState.get(key) : this.index.getState(key);
  }

  setState(key: string, value: unknown): void {
    this.check();
    this.pendingState.set(key, value);
    this.ops.push({ t: 'state', key, value });
  }

  flush(): void {
    this.check();
    const written = this.writer.flush();
    this.commit(this.ops, written);
    this.ops = [];
    this.pendingState.clear();
    if (this.retentionDue || this.now() - this.lastRetention >= this.retentionCheckMs) this.applyRetention();
  }

  close(): void {
    if (this.closed) return;
    const written = this.writer.close();
    this.commit(this.ops, written);
    this.ops = [];
    this.closed = true;
    this.index.close();
  }

  private check(): void {
    if (this.closed) throw new Error(`flow store ${this.dir} is closed`);
  }

  private commit(all: IndexOp[], written: WrittenFile[]): void {
    const ops = withoutShortLived(all);
    if (ops.length === 0 && written.length === 0) return;
    try {
      this.index.apply(ops, written);
    } catch (e) {
      if (!isCorruption(e)) throw e;
      // The lines are in the files already: a rebuild indexes them; what lives only in the index is re-applied,
      // except open rows of connections this very batch completed.
      this.rebuild((e as Error).message);
      const completed = new Set(ops.flatMap((o) => (o.t === 'complete' ? [connectionKey(o.rec)] : [])));
      this.index.apply(ops.filter((o) => (o.t === 'open' && !completed.has(connectionKey(o.rec))) || o.t === 'state'), []);
    }
  }

  private openIndex(): FlowIndex {
    try {
      return FlowIndex.openWritable(this.indexPath);
    } catch (e) {
      if (!isCorruption(e)) throw e;
      return this.moveAsideAndCreate((e as Error).message);
    }
  }

  /** Moves a damaged index aside as `index.db.corrupt-<time>` (with its -wal/-shm) and starts an empty one. */
  private moveAsideAndCreate(reason: string): FlowIndex {
    const aside = `${this.indexPath}.corrupt-${new Date(this.now()).toISOString().replace(/[-:]/g, '')}`;
    for (const suffix of ['', '-wal', '-shm']) {
      if (existsSync(this.indexPath + suffix)) renameSync(this.indexPath + suffix, aside + suffix);
    }
    this.log.warn(
      'flow index unreadable: moved aside and rebuilt from the JSONL files; connections that were open then are only in the index ' +
        'and cannot be rebuilt (the next conntrack dump finds those still open)',
      { index: this.indexPath, movedTo: aside, reason },
    );
    return FlowIndex.openWritable(this.indexPath);
  }

  private rebuild(reason: string): void {
    try {
      this.index.close();
    } catch {
      // Closing a damaged database may fail too; it is moved aside either way.
    }
    this.index = this.moveAsideAndCreate(reason);
    this.catchUp();
  }

  /** Indexes what the files hold beyond the index's marks (lines written before a crash, or everything after a rebuild). */
  private catchUp(): void {
    const marks = this.index.fileMarks();
    const files = listFlowFiles(this.dir);
    const onDisk = new Set(files.map((f) => f.name));
    for (const name of marks.keys()) if (!onDisk.has(name)) this.index.dropFile(name);
    let recovered = 0;
    for (const f of files) {
      let mark = marks.get(f.name) ?? { indexed: 0, lines: 0 };
      if (mark.indexed > f.size) {
        this.log.warn('flow file is shorter than the index says (truncated?): indexing it again', { file: f.path, size: f.size, indexed: mark.indexed });
        this.index.dropFile(f.name);
        mark = { indexed: 0, lines: 0 };
      }
      if (mark.indexed === f.size) continue;
      const tail = readLinesFrom(f.path, mark.indexed, mark.lines + 1);
      const ops: IndexOp[] = [];
      for (const l of tail.lines) {
        const p = parseRecordLine(l.text);
        if (p.kind === 'flow') ops.push({ t: 'complete', rec: p.rec, file: f.name, text: l.text });
        else if (p.kind === 'gap') ops.push({ t: 'gap', rec: p.rec, file: f.name });
        else if (p.kind === 'bad') {
          this.log.warn('flow file: line skipped', { file: f.path, line: l.line, reason: p.reason });
          ops.push({ t: 'skip', file: f.name, line: l.line, reason: p.reason });
        }
      }
      if (tail.partial) {
        this.log.warn('flow file ends in a partial line (a crash mid-write): skipped, and the file is not appended to', {
          file: f.path,
          line: tail.partial.line,
          bytes: tail.partial.bytes,
        });
      }
      if (marks.has(f.name) && tail.lines.length) recovered += tail.lines.length;
      this.index.apply(ops, [{ name: f.name, size: tail.end, lines: mark.lines + tail.lines.length }]);
    }
    if (recovered) this.log.info('indexed lines written before the last stop but not indexed then', { dir: this.dir, lines: recovered });
  }

  /** Deletes whole files, oldest first, past the age or total-size limit; never the file being written. */
  private applyRetention(): void {
    this.retentionDue = false;
    const now = this.now();
    this.lastRetention = now;
    const files = listFlowFiles(this.dir);
    let total = files.reduce((n, f) => n + f.size, 0);
    const cutoff = now - this.limits.retainAgeMs;
    let removedBefore = readRetention(this.dir) ?? -Infinity;
    let removed = 0;
    for (let i = 0; i < files.length; i++) {
      const f = files[i];
      if (f.name === this.writer.current || i === files.length - 1) break;
      const end = fileEndMs(files, i);
      if (!(end < cutoff || total > this.limits.retainBytes)) break;
      try {
        unlinkSync(f.path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      this.index.dropFile(f.name);
      total -= f.size;
      removedBefore = Math.max(removedBefore, end);
      removed++;
    }
    if (removed) {
      writeRetention(this.dir, removedBefore, now);
      this.log.info('retention removed flow files', { dir: this.dir, files: removed, removedBefore: new Date(removedBefore).toISOString() });
    }
  }
}

/**
 * A connection opened and completed within one flush needs no open row: its insert and delete are dropped (most
 * short connections; about a third of the index's work). Walking back, each complete takes the latest open of its
 * connection before it; an open after it (the same tuple opened again) stays.
 */
function withoutShortLived(ops: IndexOp[]): IndexOp[] {
  const completed = new Set<string>();
  const drop = new Set<number>();
  for (let i = ops.length - 1; i >= 0; i--) {
    const op = ops[i]!;
    if (op.t === 'complete') completed.add(connectionKey(op.rec));
    else if (op.t === 'open') {
      const k = connectionKey(op.rec);
      if (completed.delete(k)) drop.add(i);
    }
  }
  return drop.size === 0 ? ops : ops.filter((_, i) => !drop.has(i));
}
