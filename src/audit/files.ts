// The JSONL files of one reporter (docs/audit.md, "Files"): `flows-<YYYYMMDDTHHMMSS.mmmZ>.jsonl`, one JSON object per
// line, named by the time the file was started, so names sort by time. The writer buffers lines and makes them durable
// in flush(); a file that does not end in "\n" (a crash mid-write) is never appended to.
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, readSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { AggregateRecord, FlowRecord, GapRecord, Reporter } from './types.js';

const FILE_RE = /^flows-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z\.jsonl$/;

/** `flows-20261202T025740.123Z.jsonl` for the given time. */
export function flowFileName(ms: number): string {
  return `flows-${new Date(ms).toISOString().replace(/[-:]/g, '')}.jsonl`;
}

/** The start time in a flow file's name; undefined for any other name. */
export function parseFlowFileName(name: string): number | undefined {
  const m = FILE_RE.exec(name);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
  return Number.isFinite(ms) ? ms : undefined;
}

export interface FlowFile {
  name: string;
  path: string;
  /** From the name. */
  startMs: number;
  size: number;
  mtimeMs: number;
}

/** The flow files of a directory, oldest first (no directory: none). */
export function listFlowFiles(dir: string): FlowFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: FlowFile[] = [];
  for (const name of names) {
    const startMs = parseFlowFileName(name);
    if (startMs === undefined) continue;
    const path = join(dir, name);
    try {
      const st = statSync(path);
      if (st.isFile()) out.push({ name, path, startMs, size: st.size, mtimeMs: st.mtimeMs });
    } catch {
      // Removed between readdir and stat (retention in another process): not a file any more.
    }
  }
  return out.sort((a, b) => a.startMs - b.startMs || a.name.localeCompare(b.name));
}

/** The newest time a file can hold records of: the next file's start, or its last write. */
export function fileEndMs(files: readonly FlowFile[], i: number): number {
  return i + 1 < files.length ? Math.max(files[i + 1].startMs, files[i].startMs) : files[i].mtimeMs;
}

/** Does the file end in "\n" (or is it empty)? */
export function endsWithNewline(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return true;
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size - 1);
    return b[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}

export interface FileLine {
  /** 1-based line number in the file. */
  line: number;
  text: string;
  /** Byte offset just past this line's "\n". */
  end: number;
}

export interface FileTail {
  lines: FileLine[];
  /** Offset past the last complete line (what can be marked as read). */
  end: number;
  /** A last line without "\n" (a crash mid-write, or a writer still writing): its 1-based number and length. */
  partial?: { line: number; bytes: number };
}

/**
 * The complete lines of a file from byte `offset` (which must be a line start) on, numbered from `firstLine`.
 * A file of the default size limit (64 MiB) is read in one go.
 */
export function readLinesFrom(path: string, offset = 0, firstLine = 1): FileTail {
  const fd = openSync(path, 'r');
  let buf: Buffer;
  try {
    const size = fstatSync(fd).size;
    const len = Math.max(0, size - offset);
    buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    buf = buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
  const lines: FileLine[] = [];
  let start = 0;
  let line = firstLine;
  for (;;) {
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) break;
    lines.push({ line, text: buf.toString('utf8', start, nl), end: offset + nl + 1 });
    line++;
    start = nl + 1;
  }
  const tail: FileTail = { lines, end: offset + start };
  if (start < buf.length) tail.partial = { line, bytes: buf.length - start };
  return tail;
}

export interface WriterOptions {
  maxFileBytes: number;
  maxFileAgeMs: number;
  now: () => number;
  /** fsync at flush (default true; the performance test measures both). */
  fsync: boolean;
}

/** A file the writer finished writing to (so far): its name, size and line count after the write. */
export interface WrittenFile {
  name: string;
  size: number;
  lines: number;
}

interface Current {
  name: string;
  fd: number;
  startMs: number;
  /** Bytes and lines on disk. */
  size: number;
  lines: number;
  pending: string[];
  pendingBytes: number;
}

/**
 * Appends lines to the current flow file of `dir`, starting a new one when the current would pass maxFileBytes or is
 * older than maxFileAgeMs. Nothing reaches the file before flush() (or a rotation, which writes the old file out).
 */
export class FlowFileWriter {
  private cur: Current | undefined;
  /** Files written since the last flush() (rotated away, or the current), for the index's bookkeeping. */
  private written = new Map<string, WrittenFile>();
  private lastName = '';
  /** Called after a rotation (the store runs retention then). */
  onRotate: (() => void) | undefined;

  constructor(
    readonly dir: string,
    private readonly o: WriterOptions,
    /** Lines already in a file, when the caller knows (the index does): saves reading the file to count them. */
    knownLines?: (name: string, size: number) => number | undefined,
  ) {
    mkdirSync(dir, { recursive: true });
    const files = listFlowFiles(dir);
    const last = files[files.length - 1];
    if (last) this.lastName = last.name;
    // Go on with the newest file only if it is whole and within both limits; otherwise the next line starts a file.
    if (last && last.size < o.maxFileBytes && o.now() - last.startMs < o.maxFileAgeMs && endsWithNewline(last.path)) {
      const fd = openSync(last.path, 'a');
      const lines = last.size === 0 ? 0 : (knownLines?.(last.name, last.size) ?? countNewlines(last.path));
      this.cur = { name: last.name, fd, startMs: last.startMs, size: last.size, lines, pending: [], pendingBytes: 0 };
    }
  }

  /** The name of the file being written (undefined before the first line). */
  get current(): string | undefined {
    return this.cur?.name;
  }

  /** Buffers one line (without "\n"); returns the file it goes to and its 1-based line number there. */
  append(text: string): { file: string; line: number } {
    const bytes = Buffer.byteLength(text) + 1;
    const now = this.o.now();
    let cur = this.cur;
    if (cur) {
      const used = cur.size + cur.pendingBytes;
      if ((used > 0 && used + bytes > this.o.maxFileBytes) || now - cur.startMs >= this.o.maxFileAgeMs) {
        this.finish(cur);
        cur = undefined;
      }
    }
    if (!cur) {
      cur = this.start(now);
      this.onRotate?.();
    }
    cur.pending.push(text);
    cur.pendingBytes += bytes;
    return { file: cur.name, line: cur.lines + cur.pending.length };
  }

  /** Writes everything buffered (and fsyncs); returns the files written since the last flush. */
  flush(): WrittenFile[] {
    if (this.cur) this.writeOut(this.cur);
    const out = [...this.written.values()];
    this.written.clear();
    return out;
  }

  close(): WrittenFile[] {
    const out = this.flush();
    if (this.cur) closeSync(this.cur.fd);
    this.cur = undefined;
    return out;
  }

  private start(now: number): Current {
    let name = flowFileName(now);
    let t = now;
    // Two files started within one millisecond (tiny size limits): the next millisecond keeps names unique and sorted.
    while (name <= this.lastName) name = flowFileName(++t);
    this.lastName = name;
    const fd = openSync(join(this.dir, name), 'wx');
    this.cur = { name, fd, startMs: t, size: 0, lines: 0, pending: [], pendingBytes: 0 };
    return this.cur;
  }

  private finish(cur: Current): void {
    this.writeOut(cur);
    closeSync(cur.fd);
    this.cur = undefined;
  }

  private writeOut(cur: Current): void {
    if (cur.pending.length === 0) return;
    const buf = Buffer.from(cur.pending.join('\n') + '\n');
    let off = 0;
    while (off < buf.length) off += writeSync(cur.fd, buf, off, buf.length - off);
    if (this.o.fsync) fsyncSync(cur.fd);
    cur.size += buf.length;
    cur.lines += cur.pending.length;
    cur.pending = [];
    cur.pendingBytes = 0;
    this.written.set(cur.name, { name: cur.name, size: cur.size, lines: cur.lines });
  }
}

function countNewlines(path: string): number {
  const t = readLinesFrom(path);
  return t.lines.length;
}

// ---- retention mark ---------------------------------------------------------------------------------------------

/**
 * `retention.json`: the newest time whose records retention removed, so a query can say "records before T were
 * removed". A file of its own (not the index) so a rebuilt index does not forget it.
 */
export const RETENTION_FILE = 'retention.json';

export function readRetention(dir: string): number | undefined {
  try {
    const v = JSON.parse(readFileSync(join(dir, RETENTION_FILE), 'utf8')) as { removedBefore?: unknown };
    const ms = typeof v.removedBefore === 'string' ? Date.parse(v.removedBefore) : NaN;
    return Number.isFinite(ms) ? ms : undefined;
  } catch {
    return undefined;
  }
}

export function writeRetention(dir: string, removedBeforeMs: number, now: number): void {
  const tmp = join(dir, `${RETENTION_FILE}.tmp`);
  writeFileSync(tmp, JSON.stringify({ removedBefore: new Date(removedBeforeMs).toISOString(), at: new Date(now).toISOString() }) + '\n');
  renameSync(tmp, join(dir, RETENTION_FILE));
}

// ---- lines ------------------------------------------------------------------------------------------------------

export type ParsedLine =
  | { kind: 'flow'; rec: FlowRecord }
  | { kind: 'gap'; rec: GapRecord }
  | { kind: 'aggregate'; rec: AggregateRecord }
  | { kind: 'bad'; reason: string };

const isStr = (v: unknown): v is string => typeof v === 'string';
const isPort = (v: unknown) => v === undefined || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535);

/** One JSONL line, told apart by `event.dataset`; the fields the index and the queries rely on are checked. */
export function parseRecordLine(text: string): ParsedLine {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { kind: 'bad', reason: `not JSON (${(e as Error).message})` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { kind: 'bad', reason: 'not a JSON object' };
  const o = v as Record<string, any>;
  const dataset = o.event?.dataset;
  if (dataset === 'egw.flow') {
    const problem =
      (!isStr(o.event.start) || !Number.isFinite(Date.parse(o.event.start)) ? 'event.start is not a time' : undefined) ??
      (o.event.end !== null && (!isStr(o.event.end) || !Number.isFinite(Date.parse(o.event.end))) ? 'event.end is not a time or null' : undefined) ??
      (!isStr(o.source?.ip) || !isPort(o.source?.port) ? 'source.ip/port missing' : undefined) ??
      (!isStr(o.source?.nat?.ip) || !isPort(o.source?.nat?.port) ? 'source.nat.ip/port missing' : undefined) ??
      (!isStr(o.destination?.ip) || !isPort(o.destination?.port) ? 'destination.ip/port missing' : undefined) ??
      (!isStr(o.network?.transport) ? 'network.transport missing' : undefined) ??
      (typeof o.orchestrator !== 'object' || o.orchestrator === null || typeof o.orchestrator.resource !== 'object' ? 'orchestrator missing' : undefined) ??
      (typeof o.egw !== 'object' || o.egw === null || !Number.isFinite(o.egw.conntrack_id) || !isStr(o.egw.egress_ip) || !isStr(o.egw.reporter) || typeof o.egw.pod !== 'object' || o.egw.pod === null
        ? 'egw.conntrack_id/egress_ip/reporter/pod missing'
        : undefined);
    return problem ? { kind: 'bad', reason: `flow record: ${problem}` } : { kind: 'flow', rec: o as FlowRecord };
  }
  if (dataset === 'egw.gap') {
    const ok = isStr(o.event.start) && isStr(o.event.end) && Number.isFinite(Date.parse(o.event.start)) && Number.isFinite(Date.parse(o.event.end)) && isStr(o.egw?.gap?.reason);
    return ok ? { kind: 'gap', rec: o as GapRecord } : { kind: 'bad', reason: 'gap record: event.start/end or egw.gap.reason missing' };
  }
  if (dataset === 'egw.flow_aggregate') return { kind: 'aggregate', rec: o as AggregateRecord };
  return { kind: 'bad', reason: `unknown event.dataset ${JSON.stringify(dataset ?? null)}` };
}

// ---- reporter directories ---------------------------------------------------------------------------------------

export interface ReporterDirEntry {
  path: string;
  /** The directory's name, `gateway-<ns>.<pod>` or `node-<node>` (src/audit/paths.ts). */
  dirName: string;
  reporter: Reporter;
  /** `ns/pod` or the node's name. */
  name: string;
}

/** The reporter directories under a flow root, sorted by name (no root: none). */
export function listReporterDirs(root: string): ReporterDirEntry[] {
  let entries;
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: ReporterDirEntry[] = [];
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const path = join(root, e.name);
    if (e.name.startsWith('gateway-') && e.name.includes('.')) {
      out.push({ path, dirName: e.name, reporter: 'gateway', name: e.name.slice('gateway-'.length).replace('.', '/') });
    } else if (e.name.startsWith('node-') && e.name.length > 'node-'.length) {
      out.push({ path, dirName: e.name, reporter: 'node', name: e.name.slice('node-'.length) });
    }
  }
  return out.sort((a, b) => a.dirName.localeCompare(b.dirName));
}
