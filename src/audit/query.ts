// Queries over a flow root (docs/audit.md, "Queries"): every reporter directory under it, through its index where
// there is one, plus the lines its files hold beyond the index (a writer's last flush, or a crash before indexing);
// without a readable index, the JSONL files alone. Damaged files, lines and indexes become warnings, never a crash.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parsePrefix, maskOf, type Cidr } from '../api/ipv4.js';
import { hostDatastoreOf, normalizeDatastore } from '../lab/labstore.js';
import { readLabState } from '../lab/topology.js';
import { labStateRoot, stateFiles, labStateDir } from '../lab/names.js';
import { DEFAULT_FLOW_DIR } from './paths.js';
import { listFlowFiles, listReporterDirs, parseRecordLine, readLinesFrom, readRetention, type ReporterDirEntry } from './files.js';
import { connectionKey, FlowIndex, gatewayName, INDEX_FILE, isCorruption, msOf, type FlowRow } from './indexdb.js';
import { podIPAt, readPodIPHistory } from './history.js';
import type { FlowPod, FlowRecord, GapRecord, PodIPEntry } from './types.js';

/** How close (ms) a time must be to a connection's life for trace to call it live: clocks and timestamps differ a little. */
export const TRACE_SLACK_MS = 1000;

/**
 * The newest file, written this recently, may end in a line whose write is under way (a writer's flush is one write
 * call, so a reader sees a torn end only for an instant): not reported as truncated.
 */
const WRITING_MS = 2000;

export interface FlowFilter {
  namespace?: string;
  /** The client pod's name. */
  pod?: string;
  /** The gateway: its pod's name, `ns/name`, or its EgressGateway's name; `node:<n>` or a node's name for node SNAT. */
  gateway?: string;
  /** Destinations: a CIDR (parsed, or text such as `203.0.113.0/24`; a bare address is its /32), and a port. */
  dst?: { cidr: Cidr | string; port?: number };
  /** Only connections live during the last `since` ms (still open, or ended since). */
  since?: number;
  now: number;
}

interface DirScan {
  flows: FlowRecord[];
  gaps: GapRecord[];
  warnings: string[];
}

/** What to take from one directory: rows from its index, and a test for lines read from its files. */
interface Selection {
  index(ix: FlowIndex): FlowRow[];
  line(rec: FlowRecord): boolean;
}

function scanDir(d: ReporterDirEntry, sel: Selection): DirScan {
  try {
    return scanDirOrThrow(d, sel);
  } catch (e) {
    return { flows: [], gaps: [], warnings: [`${d.path}: cannot be read (${(e as Error).message}); skipped`] };
  }
}

function scanDirOrThrow(d: ReporterDirEntry, sel: Selection): DirScan {
  const out: DirScan = { flows: [], gaps: [], warnings: [] };
  const indexPath = join(d.path, INDEX_FILE);
  const files = listFlowFiles(d.path);
  // Open rows by connection; complete records as they are: two complete records may share a connection key (a
  // reopened tuple keeps conntrack's id: src/audit/tracker.ts, Recent), and each is a connection of its own.
  const openRows = new Map<string, FlowRecord>();
  const complete: FlowRecord[] = [];
  const add = (rec: FlowRecord, fromTail: boolean) => {
    if (rec.event.end === null) {
      openRows.set(connectionKey(rec), rec);
      return;
    }
    // A complete line not yet indexed replaces the open row of its connection (the index, committed after the line
    // was written, holds no open row for a connection it completed).
    if (fromTail) openRows.delete(connectionKey(rec));
    complete.push(rec);
  };
  let marks = new Map<string, { indexed: number; lines: number }>();
  if (existsSync(indexPath)) {
    let ix: FlowIndex | undefined;
    try {
      ix = FlowIndex.openReadonly(indexPath);
      const rows = sel.index(ix);
      const gaps = ix.gaps();
      const skipped = ix.skipped();
      marks = ix.fileMarks();
      for (const r of rows) add(JSON.parse(r.record) as FlowRecord, false);
      for (const g of gaps) out.gaps.push(JSON.parse(g.record) as GapRecord);
      for (const s of skipped) out.warnings.push(`${join(d.path, s.file)}:${s.line}: ${s.reason}; skipped`);
    } catch (e) {
      // Damage (isCorruption), a bad JSON column, or any other failure to read it (locked, permissions): the files
      // hold every complete record, so they are read instead.
      // Whatever was read before the damage showed is dropped: the files are read whole instead.
      openRows.clear();
      complete.length = 0;
      out.gaps = [];
      out.warnings.length = 0;
      out.warnings.push(
        `${indexPath}: unreadable flow index (${isCorruption(e) ? '' : 'cannot read: '}${(e as Error).message}); read the JSONL files instead (connections still open are only in the index: not shown)`,
      );
      marks = new Map();
    } finally {
      ix?.close();
    }
  } else if (files.length) {
    out.warnings.push(`${indexPath}: no flow index; read the JSONL files instead (connections still open are only in the index: not shown)`);
  }
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    const mark = marks.get(f.name) ?? { indexed: 0, lines: 0 };
    if (mark.indexed > f.size) {
      out.warnings.push(`${f.path}: shorter (${f.size} bytes) than its index says (${mark.indexed}); its indexed records are shown, the file is not read`);
      continue;
    }
    if (mark.indexed === f.size) continue;
    let tail;
    try {
      tail = readLinesFrom(f.path, mark.indexed, mark.lines + 1);
    } catch (e) {
      out.warnings.push(`${f.path}: cannot be read (${(e as Error).message}); skipped`);
      continue;
    }
    for (const l of tail.lines) {
      const p = parseRecordLine(l.text);
      if (p.kind === 'flow') {
        if (sel.line(p.rec)) add(p.rec, true);
      } else if (p.kind === 'gap') out.gaps.push(p.rec);
      else if (p.kind === 'bad') out.warnings.push(`${f.path}:${l.line}: ${p.reason}; skipped`);
    }
    // The file system's clock, not the query's `now` (which tests and replays set).
    const beingWritten = i === files.length - 1 && Date.now() - f.mtimeMs < WRITING_MS;
    if (tail.partial && !beingWritten) {
      out.warnings.push(`${f.path}:${tail.partial.line}: truncated line (${tail.partial.bytes} bytes without a final newline, a crash mid-write?); skipped`);
    }
  }
  out.flows = [...complete, ...openRows.values()];
  return out;
}

function startMs(r: FlowRecord): number {
  return msOf(r.event.start) ?? 0;
}

function gatewayMatches(r: FlowRecord, want: string): boolean {
  const g = r.egw.gateway;
  const byNode = r.egw.reporter === 'node' && (want === `node:${r.egw.reporter_name}` || want === r.egw.reporter_name);
  // A node's host-IP record (docs/audit.md, "Host-IP mode") answers to its node and to the gateway it SNATed.
  if (!g || byNode) return byNode;
  return want === g.name || want === gatewayName(r) || want === g.egressGateway || want === `${g.namespace}/${g.egressGateway}`;
}

function cidrRange(c: Cidr): [number, number] {
  const lo = (c.addr & maskOf(c.prefix)) >>> 0;
  return [lo, (lo + 2 ** (32 - c.prefix) - 1) >>> 0];
}

/** Connections (open and complete) of every reporter under `root` that pass the filter, newest first. */
export function queryFlows(root: string, f: FlowFilter): { records: FlowRecord[]; warnings: string[] } {
  let cidr = f.dst?.cidr;
  if (typeof cidr === 'string') {
    const parsed = parsePrefix(cidr);
    if (!parsed) throw new Error(`dst: "${cidr}" is not a CIDR`);
    cidr = parsed;
  }
  const range = cidr ? cidrRange(cidr) : undefined;
  const sinceMs = f.since !== undefined ? f.now - f.since : undefined;
  const pass = (r: FlowRecord): boolean => {
    if (f.namespace !== undefined && r.orchestrator.namespace !== f.namespace) return false;
    if (f.pod !== undefined && r.orchestrator.resource.name !== f.pod) return false;
    if (f.gateway !== undefined && !gatewayMatches(r, f.gateway)) return false;
    if (range) {
      const n = parsePrefix(r.destination.ip);
      if (!n || n.addr < range[0] || n.addr > range[1]) return false;
    }
    if (f.dst?.port !== undefined && r.destination.port !== f.dst.port) return false;
    if (sinceMs !== undefined && r.event.end !== null && (msOf(r.event.end) ?? 0) < sinceMs) return false;
    return true;
  };
  const records: FlowRecord[] = [];
  const warnings: string[] = [];
  for (const d of listReporterDirs(root)) {
    const s = scanDir(
      d,
      {
        index: (ix) => ix.flows({ namespace: f.namespace, pod: f.pod, dstRange: range, dstPort: f.dst?.port, sinceMs }),
        line: pass,
      },
    );
    // The index applied the cheap filters; the gateway (several names) and the rest are checked here for all.
    records.push(...s.flows.filter(pass));
    warnings.push(...s.warnings);
  }
  records.sort((a, b) => startMs(b) - startMs(a));
  return { records, warnings };
}

export interface TraceQuery {
  /** The translated source the outside saw. */
  ip: string;
  port: number;
  dst?: { ip: string; port?: number };
  at: number;
  now?: number;
}

export interface TraceMatch {
  /** The record whose translated source is ip:port (what the outside saw). */
  record: FlowRecord;
  /**
   * The client pod: the record's, or (when the record did not know it) the pod-IP history's at the connection's start;
   * in host-IP mode, the gateway record's client.
   */
  pod: FlowPod;
  podFrom: 'record' | 'history' | 'unknown';
  /** The reporter directory the record came from. */
  reporterDir: string;
  /**
   * Host-IP mode (`record` is a node's `host-ip` record: the node SNATed a gateway's traffic again): the gateway's
   * record of the same connection, whose translated source is `record`'s source, toward the same destination, live
   * when `record` began; null when none was found (the gateway's gaps covering that time are in TraceResult.gaps).
   */
  hostIP?: { record: FlowRecord; reporterDir: string; others: number } | null;
}

export interface TraceResult {
  match?: TraceMatch;
  /** Other connections from ip:port live at `at` (ambiguous: the closest was chosen). */
  others: FlowRecord[];
  /** No match: the connection from ip:port (toward dst) closest in time, if any. */
  nearest?: FlowRecord;
  /** Gaps of any reporter covering `at` (and, host-IP mode, the gateway connection's start): some connections of that time may have no record. */
  gaps: { reporter: string; gap: GapRecord }[];
  /** Reporters whose records before this time were removed by retention (only those at or after `at`). */
  retention: { reporter: string; removedBefore: string }[];
  warnings: string[];
}

/** How far `at` is from a connection's life [start, end ?? now] (0 inside). */
function distance(r: FlowRecord, at: number, now: number): number {
  const s = startMs(r);
  const e = r.event.end === null ? Math.max(now, s) : (msOf(r.event.end) ?? s);
  return at < s ? s - at : at > e ? at - e : 0;
}

interface Found {
  rec: FlowRecord;
  dir: string;
  dist: number;
}

/**
 * Every reporter's connections whose translated source was ip:port (toward dst, of `reporter` when given), ranked by
 * distance from `at` (then the later start); with the gaps covering `at`, retention and warnings added to `into`.
 */
function findByNat(root: string, q: TraceQuery & { reporter?: FlowRecord['egw']['reporter'] }, now: number, into: TraceResult): Found[] {
  const sel = (r: FlowRecord) =>
    r.source.nat.ip === q.ip &&
    r.source.nat.port === q.port &&
    (q.reporter === undefined || r.egw.reporter === q.reporter) &&
    (!q.dst || (r.destination.ip === q.dst.ip && (q.dst.port === undefined || r.destination.port === q.dst.port)));
  const found: { rec: FlowRecord; dir: string }[] = [];
  for (const d of listReporterDirs(root)) {
    const s = scanDir(d, { index: (ix) => ix.byNat(q.ip, q.port), line: sel });
    for (const rec of s.flows) if (sel(rec)) found.push({ rec, dir: d.path });
    into.warnings.push(...s.warnings);
    for (const g of s.gaps) {
      const gs = msOf(g.event.start) ?? 0;
      const ge = msOf(g.event.end) ?? gs;
      const dup = into.gaps.some((x) => x.reporter === d.dirName && x.gap.event.start === g.event.start && x.gap.event.end === g.event.end);
      if (!dup && gs - TRACE_SLACK_MS <= q.at && q.at <= ge + TRACE_SLACK_MS) into.gaps.push({ reporter: d.dirName, gap: g });
    }
    const removed = readRetention(d.path);
    if (removed !== undefined && removed >= q.at && !into.retention.some((x) => x.reporter === d.dirName)) {
      into.retention.push({ reporter: d.dirName, removedBefore: new Date(removed).toISOString() });
    }
  }
  return found
    .map((f) => ({ ...f, dist: distance(f.rec, q.at, now) }))
    .sort((a, b) => a.dist - b.dist || startMs(b.rec) - startMs(a.rec));
}

/** The record's client pod, or (the record did not know it) the pod that held its source IP at its start. */
function clientOf(root: string, rec: FlowRecord, warnings: string[]): { pod: FlowPod; podFrom: TraceMatch['podFrom'] } {
  if (rec.egw.pod.uid !== null) return { pod: rec.egw.pod, podFrom: 'record' };
  const h = readPodIPHistory(root);
  for (const w of h.warnings) warnings.push(`${w.file}:${w.line}: ${w.reason}; skipped`);
  const e: PodIPEntry | undefined = podIPAt(h.entries, rec.source.ip, startMs(rec));
  if (!e) return { pod: rec.egw.pod, podFrom: 'unknown' };
  return { pod: { namespace: e.namespace, name: e.name, uid: e.uid, node: e.node, labels: e.labels }, podFrom: 'history' };
}

/** The connection whose translated source was ip:port toward dst, live at `at` (docs/audit.md, "Queries"). */
export function trace(root: string, q: TraceQuery): TraceResult {
  const now = q.now ?? Date.now();
  const result: TraceResult = { others: [], gaps: [], retention: [], warnings: [] };
  const ranked = findByNat(root, q, now, result);
  const live = ranked.filter((f) => f.dist <= TRACE_SLACK_MS);
  if (!live.length) {
    if (ranked.length) result.nearest = ranked[0].rec;
    return result;
  }
  const best = live[0];
  result.others = live.slice(1).map((f) => f.rec);
  const rec = best.rec;
  if (rec.egw.route.kind !== 'host-ip' || rec.source.port === undefined) {
    result.match = { record: rec, ...clientOf(root, rec, result.warnings), reporterDir: best.dir };
    return result;
  }
  // Host-IP mode: the node's record names the gateway, not the client; the gateway's record of the connection it
  // translated to rec's source (at rec's start, toward the same destination) does (docs/audit.md, "Host-IP mode").
  const at = startMs(rec);
  const inner = findByNat(root, { ip: rec.source.ip, port: rec.source.port, dst: { ip: rec.destination.ip, port: rec.destination.port }, at, reporter: 'gateway' }, now, result)
    .filter((f) => f.dist <= TRACE_SLACK_MS);
  if (!inner.length) {
    result.match = { record: rec, pod: rec.egw.pod, podFrom: 'unknown', reporterDir: best.dir, hostIP: null };
    return result;
  }
  const gw = inner[0];
  result.match = { record: rec, ...clientOf(root, gw.rec, result.warnings), reporterDir: best.dir, hostIP: { record: gw.rec, reporterDir: gw.dir, others: inner.length - 1 } };
  return result;
}

/** Where the flow records are, and why there (docs/audit.md, "CLI"). */
export interface FlowRootChoice {
  root: string;
  from: 'flag' | 'env' | 'lab' | 'default';
  lab?: string;
}

/**
 * --flow-dir, else EGW_FLOW_DIR, else the flow directory of the lab whose host-side datastore is the one given
 * (--datastore or EGW_DATASTORE), else DEFAULT_FLOW_DIR. So on the lab host `egw trace` needs no other flag.
 */
export function resolveFlowRoot(o: { flag?: string; datastore?: string; env?: NodeJS.ProcessEnv } = {}): FlowRootChoice {
  const env = o.env ?? process.env;
  if (o.flag) return { root: o.flag, from: 'flag' };
  if (env.EGW_FLOW_DIR) return { root: env.EGW_FLOW_DIR, from: 'env' };
  const ds = o.datastore ?? env.EGW_DATASTORE;
  if (ds) {
    const want = normalized(ds);
    const root = labStateRoot(env);
    let labs: string[] = [];
    try {
      labs = readdirSync(root).sort();
    } catch {
      // No lab state on this host.
    }
    for (const lab of labs) {
      const state = readLabState(lab, root);
      if (state && want !== undefined && normalized(hostDatastoreOf(state)) === want) {
        return { root: stateFiles.flows(labStateDir(lab, root)), from: 'lab', lab };
      }
    }
  }
  return { root: DEFAULT_FLOW_DIR, from: 'default' };
}

function normalized(spec: string): string | undefined {
  try {
    return normalizeDatastore(spec);
  } catch {
    return undefined;
  }
}
