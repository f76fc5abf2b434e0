// The local index of one reporter's records (docs/audit.md, "Index"): SQLite `index.db` beside the JSONL files, in
// WAL mode so `egw flows` / `egw trace` read while the recorder writes. It holds every complete connection (a copy
// of its JSONL line), the connections still open (only here: they are written to JSONL when they end), the gaps,
// the recorder's small state, and per file how many bytes and lines are indexed (so lines written but not indexed
// before a crash are found again).
import Database from 'better-sqlite3';
import type { FlowRecord, GapRecord } from './types.js';
import { parseIPv4 } from '../api/ipv4.js';

export const INDEX_FILE = 'index.db';
/** `PRAGMA application_id` of a flow index ("egwf"), and the schema version in `PRAGMA user_version`. */
const APPLICATION_ID = 0x65677766;
export const INDEX_SCHEMA_VERSION = 1;

// Open connections have a small table of their own: they come and go at the connection rate, and keeping them out of
// `flows` (and its indexes) makes NEW and DESTROY cost one small insert and delete each.
const COLUMNS = `
    start_ms   REAL NOT NULL,
    end_ms     REAL,
    nat_ip     TEXT NOT NULL,
    nat_port   INTEGER,
    dst_ip     TEXT NOT NULL,
    dst_num    INTEGER,
    dst_port   INTEGER,
    transport  TEXT NOT NULL,
    src_ip     TEXT NOT NULL,
    src_port   INTEGER,
    namespace  TEXT,
    pod        TEXT,
    uid        TEXT,
    gateway    TEXT,
    egress_ip  TEXT NOT NULL,
    reporter   TEXT NOT NULL,
    ct_id      INTEGER NOT NULL,`;
const SCHEMA = `
  CREATE TABLE flows (
    id         INTEGER PRIMARY KEY,${COLUMNS}
    file       TEXT NOT NULL,
    record     TEXT NOT NULL
  );
  CREATE INDEX flows_nat ON flows (nat_ip, nat_port, start_ms);
  CREATE INDEX flows_start ON flows (start_ms);
  CREATE INDEX flows_file ON flows (file);
  CREATE TABLE open_flows (
    conn       TEXT PRIMARY KEY,${COLUMNS}
    record     TEXT NOT NULL
  );
  CREATE TABLE gaps (
    id       INTEGER PRIMARY KEY,
    start_ms REAL NOT NULL,
    end_ms   REAL NOT NULL,
    reason   TEXT NOT NULL,
    file     TEXT NOT NULL,
    record   TEXT NOT NULL
  );
  CREATE INDEX gaps_file ON gaps (file);
  CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE files (name TEXT PRIMARY KEY, indexed INTEGER NOT NULL, lines INTEGER NOT NULL);
  CREATE TABLE skipped (file TEXT NOT NULL, line INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (file, line));
`;
const TABLES = ['files', 'flows', 'gaps', 'open_flows', 'skipped', 'state'];

/** The index file is not a flow index we can read (not SQLite, another schema, damaged pages). */
export class IndexCorruptError extends Error {}

/**
 * One connection: conntrack's id plus the original tuple (conntrack reuses ids, and two reporters' ids are unrelated).
 * complete() replaces the open row with this key.
 */
export function connectionKey(r: FlowRecord): string {
  return `${r.egw.conntrack_id}|${r.network.transport}|${r.source.ip}:${r.source.port ?? ''}>${r.destination.ip}:${r.destination.port ?? ''}`;
}

export function msOf(rfc3339: string | null | undefined): number | null {
  if (rfc3339 === null || rfc3339 === undefined) return null;
  const ms = Date.parse(rfc3339);
  return Number.isFinite(ms) ? ms : null;
}

/** `ns/name` of a record's gateway, or null (node SNAT). */
export function gatewayName(r: FlowRecord): string | null {
  return r.egw.gateway ? `${r.egw.gateway.namespace}/${r.egw.gateway.name}` : null;
}

export type IndexOp =
  | { t: 'open'; rec: FlowRecord }
  | { t: 'complete'; rec: FlowRecord; file: string; /** The JSONL line, when the caller has it (saves a stringify). */ text?: string }
  | { t: 'gap'; rec: GapRecord; file: string }
  | { t: 'state'; key: string; value: unknown }
  | { t: 'skip'; file: string; line: number; reason: string };

export interface FileMark {
  indexed: number;
  lines: number;
}

export interface FlowRow {
  record: string;
  /** 1 for a connection still open. */
  open: number;
}

export interface IndexFlowFilter {
  namespace?: string;
  pod?: string;
  /** Inclusive range of destination addresses (IPv4 as numbers). */
  dstRange?: [number, number];
  dstPort?: number;
  /** Connections live at or after this time (still open, or ended since). */
  sinceMs?: number;
}

function isSqliteError(e: unknown): e is Error & { code: string } {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && typeof code === 'string' && code.startsWith('SQLITE_');
}

/** Does this error say the database file is damaged or not a database? */
export function isCorruption(e: unknown): boolean {
  return e instanceof IndexCorruptError || (isSqliteError(e) && /^SQLITE_(NOTADB|CORRUPT)/.test(e.code));
}

export class FlowIndex {
  private readonly stmts;
  private completedEndStmt: Database.Statement | undefined;

  private constructor(readonly db: Database.Database, readonly readonly: boolean) {
    this.stmts = readonly ? undefined : this.prepareWrites();
  }

  /**
   * Opens (creating if absent) the index at `path` for writing. Throws IndexCorruptError (or an SQLite corruption
   * error) when the file is not a flow index of this schema: the store then moves it aside and rebuilds.
   */
  static openWritable(path: string): FlowIndex {
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      const app = db.pragma('application_id', { simple: true }) as number;
      const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((r) => r.name);
      if (app === 0 && tables.length === 0) {
        db.exec('BEGIN');
        db.exec(SCHEMA);
        db.pragma(`application_id = ${APPLICATION_ID}`);
        db.pragma(`user_version = ${INDEX_SCHEMA_VERSION}`);
        db.exec('COMMIT');
      } else {
        checkSchema(db, app, tables);
      }
      return new FlowIndex(db, false);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Opens an existing index read-only (queries). Throws IndexCorruptError when it is not one we can read. */
  static openReadonly(path: string): FlowIndex {
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (e) {
      if (isCorruption(e)) throw new IndexCorruptError(`${path}: ${(e as Error).message}`);
      throw e;
    }
    try {
      db.pragma('busy_timeout = 5000');
      const app = db.pragma('application_id', { simple: true }) as number;
      const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((r) => r.name);
      checkSchema(db, app, tables);
      return new FlowIndex(db, true);
    } catch (e) {
      db.close();
      if (isCorruption(e)) throw new IndexCorruptError(`${path}: ${(e as Error).message}`);
      throw e;
    }
  }

  private prepareWrites() {
    const db = this.db;
    const cols = `ct_id, start_ms, end_ms, nat_ip, nat_port, dst_ip, dst_num, dst_port, transport, src_ip, src_port, namespace, pod, uid, gateway, egress_ip, reporter, record`;
    const vals = cols.replace(/(\w+)/g, '@$1');
    return {
      deleteOpen: db.prepare('DELETE FROM open_flows WHERE conn = ?'),
      insertOpen: db.prepare(`INSERT OR REPLACE INTO open_flows (conn, ${cols}) VALUES (@conn, ${vals})`),
      insertFlow: db.prepare(`INSERT INTO flows (file, ${cols}) VALUES (@file, ${vals})`),
      insertGap: db.prepare('INSERT INTO gaps (start_ms, end_ms, reason, file, record) VALUES (?, ?, ?, ?, ?)'),
      setState: db.prepare('INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      skip: db.prepare('INSERT OR REPLACE INTO skipped (file, line, reason) VALUES (?, ?, ?)'),
      mark: db.prepare('INSERT INTO files (name, indexed, lines) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET indexed = excluded.indexed, lines = excluded.lines'),
    };
  }

  /** Applies ops in order and records the files' indexed sizes, in one transaction. */
  apply(ops: readonly IndexOp[], marks: readonly { name: string; size: number; lines: number }[]): void {
    const s = this.stmts!;
    this.db.transaction(() => {
      for (const op of ops) {
        switch (op.t) {
          case 'open':
            s.insertOpen.run(flowRow(op.rec, null));
            break;
          case 'complete': {
            const row = flowRow(op.rec, op.file, op.text);
            s.deleteOpen.run(row.conn);
            s.insertFlow.run(row);
            break;
          }
          case 'gap': {
            const g = op.rec;
            s.insertGap.run(msOf(g.event.start) ?? 0, msOf(g.event.end) ?? 0, g.egw.gap.reason, op.file, JSON.stringify(g));
            break;
          }
          case 'state':
            s.setState.run(op.key, JSON.stringify(op.value ?? null));
            break;
          case 'skip':
            s.skip.run(op.file, op.line, op.reason);
            break;
        }
      }
      for (const m of marks) s.mark.run(m.name, m.size, m.lines);
    })();
  }

  /** Forgets a file (deleted by retention, or gone): its rows, gaps, skipped lines and mark. */
  dropFile(name: string): void {
    this.db.transaction(() => {
      for (const t of ['flows', 'gaps', 'skipped']) this.db.prepare(`DELETE FROM ${t} WHERE file = ?`).run(name);
      this.db.prepare('DELETE FROM files WHERE name = ?').run(name);
    })();
  }

  fileMarks(): Map<string, FileMark> {
    const rows = this.db.prepare('SELECT name, indexed, lines FROM files').all() as { name: string; indexed: number; lines: number }[];
    return new Map(rows.map((r) => [r.name, { indexed: r.indexed, lines: r.lines }]));
  }

  /** See FlowStore.completedEnd: found through the translated source (flows_nat), then the connection's own columns. */
  completedEnd(r: FlowRecord): number | undefined {
    const row = (this.completedEndStmt ??= this.db.prepare(
      'SELECT max(end_ms) AS end FROM flows WHERE nat_ip = ? AND nat_port IS ? AND ct_id = ? AND transport = ? AND src_ip = ? AND src_port IS ? AND dst_ip = ? AND dst_port IS ?',
    )).get(r.source.nat.ip, r.source.nat.port ?? null, r.egw.conntrack_id, r.network.transport, r.source.ip, r.source.port ?? null, r.destination.ip, r.destination.port ?? null) as
      | { end: number | null }
      | undefined;
    return row?.end ?? undefined;
  }

  openRecords(): FlowRecord[] {
    return (this.db.prepare('SELECT record FROM open_flows ORDER BY start_ms').all() as { record: string }[]).map((r) => JSON.parse(r.record) as FlowRecord);
  }

  getState(key: string): unknown {
    const row = this.db.prepare('SELECT value FROM state WHERE key = ?').get(key) as { value: string } | undefined;
    return row ? JSON.parse(row.value) : undefined;
  }

  /** Rows for `egw flows`, open and complete (the gateway filter is applied by the caller: it matches several names). */
  flows(f: IndexFlowFilter): FlowRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.namespace !== undefined) (where.push('namespace = ?'), args.push(f.namespace));
    if (f.pod !== undefined) (where.push('pod = ?'), args.push(f.pod));
    if (f.dstRange) (where.push('dst_num BETWEEN ? AND ?'), args.push(f.dstRange[0], f.dstRange[1]));
    if (f.dstPort !== undefined) (where.push('dst_port = ?'), args.push(f.dstPort));
    const w = where.length ? ' WHERE ' + where.join(' AND ') : '';
    const since = f.sinceMs !== undefined ? `${w ? ' AND' : ' WHERE'} end_ms >= ?` : '';
    const sql = `SELECT record, 1 AS open FROM open_flows${w} UNION ALL SELECT record, 0 AS open FROM flows${w}${since}`;
    return this.db.prepare(sql).all(...args, ...args, ...(f.sinceMs !== undefined ? [f.sinceMs] : [])) as FlowRow[];
  }

  /** Rows, open and complete, whose translated source is ip:port (port undefined: protocols without ports). */
  byNat(ip: string, port: number | undefined): FlowRow[] {
    const cond = port === undefined ? 'nat_ip = ? AND nat_port IS NULL' : 'nat_ip = ? AND nat_port = ?';
    const args = port === undefined ? [ip] : [ip, port];
    return this.db.prepare(`SELECT record, 1 AS open FROM open_flows WHERE ${cond} UNION ALL SELECT record, 0 AS open FROM flows WHERE ${cond}`).all(...args, ...args) as FlowRow[];
  }

  gaps(): { record: string; file: string }[] {
    return this.db.prepare('SELECT record, file FROM gaps ORDER BY start_ms').all() as { record: string; file: string }[];
  }

  skipped(): { file: string; line: number; reason: string }[] {
    return this.db.prepare('SELECT file, line, reason FROM skipped ORDER BY file, line').all() as { file: string; line: number; reason: string }[];
  }

  close(): void {
    this.db.close();
  }
}

function checkSchema(db: Database.Database, app: number, tables: string[]): void {
  if (app !== APPLICATION_ID) throw new IndexCorruptError(`not a flow index (application_id ${app})`);
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version !== INDEX_SCHEMA_VERSION) throw new IndexCorruptError(`flow index schema version ${version}, this egw reads ${INDEX_SCHEMA_VERSION}`);
  const missing = TABLES.filter((t) => !tables.includes(t));
  if (missing.length) throw new IndexCorruptError(`flow index lacks table${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
}

function flowRow(r: FlowRecord, file: string | null, text?: string) {
  return {
    conn: connectionKey(r),
    ct_id: r.egw.conntrack_id,
    start_ms: msOf(r.event.start) ?? 0,
    end_ms: file === null ? null : msOf(r.event.end),
    nat_ip: r.source.nat.ip,
    nat_port: r.source.nat.port ?? null,
    dst_ip: r.destination.ip,
    dst_num: parseIPv4(r.destination.ip) ?? null,
    dst_port: r.destination.port ?? null,
    transport: r.network.transport,
    src_ip: r.source.ip,
    src_port: r.source.port ?? null,
    namespace: r.orchestrator.namespace,
    pod: r.orchestrator.resource.name,
    uid: r.egw.pod.uid,
    gateway: gatewayName(r),
    egress_ip: r.egw.egress_ip,
    reporter: r.egw.reporter,
    file,
    record: text ?? JSON.stringify(r),
  };
}
