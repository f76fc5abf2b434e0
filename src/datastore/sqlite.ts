// The embedded default Store: one SQLite file (WAL mode), safe to share between several processes.
//
// Every write runs in a BEGIN IMMEDIATE transaction that reads the revision counter, plans the batch against the
// stored objects, writes objects + events and bumps the counter, so two processes can never allocate the same
// revision and a failed batch leaves nothing behind. Watches read the events table; they learn about commits made
// by other processes by polling `PRAGMA data_version` (cheap: it reads the shared WAL index) every pollIntervalMs,
// woken early by fs.watch on the -wal file, and about this connection's own commits directly.
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import Database from 'better-sqlite3';
import type { ObjectKey, Resource } from '../api/meta.js';
import {
  checkKey,
  checkListArgs,
  checkRevision,
  closedError,
  decode,
  checkWatchArgs,
  planTxn,
  type Entry,
  type StoredEvent,
} from './common.js';
import { StoreError, type ListOptions, type ListResult, type Store, type TxnOp, type Watch, type WatchHandler, type WatchOptions } from './types.js';
import { RevisionNotifier, WatchLoop } from './watch.js';

export interface SqliteStoreOptions {
  /** How long a write waits for another process's write lock before failing with 'Unavailable'. Default 10 s. */
  busyTimeoutMs?: number;
  /** How often watches check for commits by other processes. Default 25 ms. */
  pollIntervalMs?: number;
  /** Also wake watches on fs.watch events of the -wal file. Default true. */
  fsWatch?: boolean;
}

/** The schema version this code writes; MIGRATIONS[i] takes a database from version i to i + 1. */
export const SCHEMA_VERSION = 2;

const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  );
  INSERT INTO meta (key, value) VALUES ('revision', 0), ('compacted', 0);
  CREATE TABLE objects (
    kind            TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    value           TEXT NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision    INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
  ) WITHOUT ROWID;
  CREATE TABLE events (
    revision  INTEGER PRIMARY KEY,
    type      TEXT NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
    kind      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    object    TEXT NOT NULL
  );
  CREATE INDEX events_by_kind ON events (kind, revision);
  `,
  // 2: when each change was committed (ms since the epoch; NULL for events written before): the informers' watch lag.
  `ALTER TABLE events ADD COLUMN written_at REAL;`,
];

/** An events row as a StoredEvent. */
const EVENT_COLUMNS = 'revision, type, kind, namespace, name, object, written_at AS writtenAt';

interface ObjectRow {
  kind: string;
  namespace: string;
  name: string;
  value: string;
  create_revision: number;
  mod_revision: number;
}

function isSqliteError(e: unknown): e is Error & { code: string } {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && typeof code === 'string' && code.startsWith('SQLITE_');
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class SqliteStore implements Store {
  readonly description: string;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly notifier: RevisionNotifier;
  private readonly watches = new Set<WatchLoop>();
  private readonly pollIntervalMs: number;
  private readonly busyTimeoutMs: number;
  private readonly useFsWatch: boolean;
  private poller: NodeJS.Timeout | undefined;
  private fsWatcher: FSWatcher | undefined;
  private followUp: NodeJS.Timeout | undefined;
  private lastDataVersion = -1;
  private closed = false;

  private readonly stmts: {
    revision: Database.Statement<[], number>;
    compacted: Database.Statement<[], number>;
    setMeta: Database.Statement<[number, string]>;
    dataVersion: Database.Statement<[], number>;
    get: Database.Statement<[string, string, string], ObjectRow>;
    listAll: Database.Statement<[string], ObjectRow>;
    listNs: Database.Statement<[string, string], ObjectRow>;
    upsert: Database.Statement<[string, string, string, string, number, number]>;
    remove: Database.Statement<[string, string, string]>;
    insertEvent: Database.Statement<[number, string, string, string, string, string, number | null]>;
    events: Database.Statement<[number, number], StoredEvent>;
    eventsKind: Database.Statement<[number, string, number], StoredEvent>;
    eventsNs: Database.Statement<[number, string, number], StoredEvent>;
    eventsKindNs: Database.Statement<[number, string, string, number], StoredEvent>;
    compact: Database.Statement<[number]>;
  };

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = resolvePath(path);
    this.description = `sqlite:${this.path}`;
    this.busyTimeoutMs = opts.busyTimeoutMs ?? 10_000;
    this.pollIntervalMs = opts.pollIntervalMs ?? 25;
    this.useFsWatch = opts.fsWatch ?? true;
    try {
      this.db = new Database(this.path, { timeout: this.busyTimeoutMs });
    } catch (e) {
      throw new StoreError('Unavailable', `${this.description}: cannot open: ${(e as Error).message}`);
    }
    try {
      this.setUp();
      const db = this.db;
      this.stmts = {
        revision: db.prepare<[], number>(`SELECT value FROM meta WHERE key = 'revision'`).pluck(),
        compacted: db.prepare<[], number>(`SELECT value FROM meta WHERE key = 'compacted'`).pluck(),
        setMeta: db.prepare<[number, string]>(`UPDATE meta SET value = ? WHERE key = ?`),
        dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
        get: db.prepare<[string, string, string], ObjectRow>(`SELECT * FROM objects WHERE kind = ? AND namespace = ? AND name = ?`),
        listAll: db.prepare<[string], ObjectRow>(`SELECT * FROM objects WHERE kind = ? ORDER BY namespace, name`),
        listNs: db.prepare<[string, string], ObjectRow>(`SELECT * FROM objects WHERE kind = ? AND namespace = ? ORDER BY name`),
        upsert: db.prepare(
          `INSERT INTO objects (kind, namespace, name, value, create_revision, mod_revision) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (kind, namespace, name) DO UPDATE SET
             value = excluded.value, create_revision = excluded.create_revision, mod_revision = excluded.mod_revision`,
        ),
        remove: db.prepare(`DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?`),
        insertEvent: db.prepare(`INSERT INTO events (revision, type, kind, namespace, name, object, written_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
        events: db.prepare(`SELECT ${EVENT_COLUMNS} FROM events WHERE revision > ? ORDER BY revision LIMIT ?`),
        eventsKind: db.prepare(`SELECT ${EVENT_COLUMNS} FROM events WHERE revision > ? AND kind = ? ORDER BY revision LIMIT ?`),
        eventsNs: db.prepare(`SELECT ${EVENT_COLUMNS} FROM events WHERE revision > ? AND namespace = ? ORDER BY revision LIMIT ?`),
        eventsKindNs: db.prepare(`SELECT ${EVENT_COLUMNS} FROM events WHERE revision > ? AND kind = ? AND namespace = ? ORDER BY revision LIMIT ?`),
        compact: db.prepare(`DELETE FROM events WHERE revision <= ?`),
      };
      this.notifier = new RevisionNotifier(this.stmts.revision.get() as number);
    } catch (e) {
      this.db.close();
      throw this.wrap(e, 'cannot open');
    }
  }

  /** WAL mode and the schema; safe when several processes open a new file at once. */
  private setUp(): void {
    const db = this.db;
    let mode: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        mode = db.pragma('journal_mode = WAL', { simple: true });
        break;
      } catch (e) {
        // Switching to WAL needs a moment of exclusive access; another process opening the file may hold a lock.
        if (!isSqliteError(e) || !e.code.startsWith('SQLITE_BUSY') || attempt * 20 > this.busyTimeoutMs) throw e;
        sleepSync(20);
      }
    }
    if (String(mode).toLowerCase() !== 'wal') {
      throw new StoreError('Unavailable', `${this.description}: cannot use WAL mode (journal_mode is ${String(mode)}); is it on a network filesystem?`);
    }
    // FULL: a commit is on disk before the write returns, so a revision a watcher has seen is never reused after a crash.
    db.pragma('synchronous = FULL');
    db.transaction(() => {
      const tables = new Set(
        (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]).filter((t) => !t.startsWith('sqlite_')),
      );
      if (!tables.has('schema_version')) {
        if (tables.size > 0) {
          throw new StoreError('Invalid', `${this.description}: not an egw datastore (it has tables ${[...tables].sort().join(', ')} but no schema_version)`);
        }
        db.exec(`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`);
      }
      const version = (db.prepare(`SELECT COALESCE(MAX(version), 0) FROM schema_version`).pluck().get() as number) ?? 0;
      if (version > SCHEMA_VERSION) {
        throw new StoreError(
          'Invalid',
          `${this.description}: schema version ${version} is newer than this egw supports (${SCHEMA_VERSION}); upgrade egw`,
        );
      }
      for (let v = version; v < SCHEMA_VERSION; v++) {
        db.exec(MIGRATIONS[v]);
        db.prepare(`INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`).run(v + 1, new Date().toISOString());
      }
    }).immediate();
  }

  /** The schema version of the open database. */
  schemaVersion(): number {
    this.check();
    return this.db.prepare(`SELECT MAX(version) FROM schema_version`).pluck().get() as number;
  }

  private wrap(e: unknown, doing: string): unknown {
    if (e instanceof StoreError) return e;
    if (isSqliteError(e)) {
      if (e.code.startsWith('SQLITE_BUSY')) {
        return new StoreError(
          'Unavailable',
          `${this.description}: ${doing}: the database stayed locked by another process for over ${this.busyTimeoutMs} ms (${e.code})`,
        );
      }
      return new StoreError('Unavailable', `${this.description}: ${doing}: ${e.message} (${e.code})`);
    }
    return e;
  }

  private check(): void {
    if (this.closed) throw closedError(this.description);
  }

  private run<T>(doing: string, fn: () => T): T {
    this.check();
    try {
      return fn();
    } catch (e) {
      throw this.wrap(e, doing);
    }
  }

  async get(key: ObjectKey): Promise<Resource | undefined> {
    const k = checkKey(key);
    return this.run('get', () => {
      const row = this.stmts.get.get(k.kind, k.namespace, k.name);
      return row ? decode(row.value) : undefined;
    });
  }

  async list(kind: string, opts?: ListOptions): Promise<ListResult> {
    this.check();
    const { namespace, match } = checkListArgs(kind, opts);
    // One read transaction: the rows and the revision come from the same snapshot.
    const { rows, revision } = this.run('list', () =>
      this.db.transaction(() => ({
        rows: namespace === undefined ? this.stmts.listAll.all(kind) : this.stmts.listNs.all(kind, namespace),
        revision: this.stmts.revision.get() as number,
      }))(),
    );
    const items: Resource[] = [];
    for (const row of rows) {
      const obj = decode(row.value);
      if (match(obj.metadata.labels)) items.push(obj);
    }
    return { items, revision };
  }

  async create(obj: Resource): Promise<Resource> {
    return this.apply([{ op: 'create', object: obj }], true)[0];
  }

  async update(obj: Resource): Promise<Resource> {
    return this.apply([{ op: 'update', object: obj }], true)[0];
  }

  async delete(key: ObjectKey, opts?: { resourceVersion?: string }): Promise<Resource> {
    return this.apply([{ op: 'delete', key, resourceVersion: opts?.resourceVersion }], true)[0];
  }

  async txn(ops: TxnOp[]): Promise<Resource[]> {
    return this.apply(ops, false);
  }

  private apply(ops: readonly TxnOp[], single: boolean): Resource[] {
    if (Array.isArray(ops) && ops.length === 0) {
      this.check();
      return [];
    }
    const s = this.stmts;
    const plan = this.run('write', () =>
      this.db
        .transaction(() => {
          const start = s.revision.get() as number;
          const plan = planTxn(ops, start, (key): Entry | undefined => {
            const row = s.get.get(key.kind, key.namespace, key.name);
            return row ? { key, value: row.value, createRevision: row.create_revision, modRevision: row.mod_revision } : undefined;
          }, single);
          for (const { key, entry } of plan.writes.values()) {
            if (entry) s.upsert.run(key.kind, key.namespace, key.name, entry.value, entry.createRevision, entry.modRevision);
            else s.remove.run(key.kind, key.namespace, key.name);
          }
          for (const e of plan.events) s.insertEvent.run(e.revision, e.type, e.kind, e.namespace, e.name, e.object, e.writtenAt ?? null);
          s.setMeta.run(plan.revision, 'revision');
          return plan;
        })
        .immediate(),
    );
    this.notifier.advance(plan.revision);
    return plan.results;
  }

  async revision(): Promise<number> {
    return this.run('revision', () => this.stmts.revision.get() as number);
  }

  async watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    const { from, kind, namespace } = checkWatchArgs(opts, handler);
    const s = this.stmts;
    const readTx = this.db.transaction((after: number, limit: number): { events: StoredEvent[]; upTo: number } => {
      const compacted = s.compacted.get() as number;
      if (after < compacted) throw this.compactedError(after, compacted);
      const events =
        kind === undefined
          ? namespace === undefined
            ? s.events.all(after, limit)
            : s.eventsNs.all(after, namespace, limit)
          : namespace === undefined
            ? s.eventsKind.all(after, kind, limit)
            : s.eventsKindNs.all(after, kind, namespace, limit);
      return { events, upTo: s.revision.get() as number };
    });
    const read = (after: number, limit: number): { events: StoredEvent[]; upTo: number } => {
      const r = this.run('watch', () => readTx.deferred(after, limit));
      // This read may have seen commits the poller has not noticed yet.
      this.notifier.advance(r.upTo);
      return r;
    };
    this.run('watch', () => {
      const compacted = s.compacted.get() as number;
      if (from < compacted) throw this.compactedError(from, compacted);
    });
    const w = new WatchLoop(read, this.notifier, handler, opts.onError, from, (x) => {
      this.watches.delete(x);
      if (this.watches.size === 0) this.stopPolling();
    });
    this.watches.add(w);
    this.startPolling();
    return w;
  }

  private compactedError(from: number, compacted: number): StoreError {
    return new StoreError(
      'Compacted',
      `${this.description}: history up to revision ${compacted} has been compacted; cannot watch from revision ${from} (list again and watch from the list's revision)`,
    );
  }

  async compact(revision: number): Promise<void> {
    checkRevision('compact: revision', revision);
    const s = this.stmts;
    this.run('compact', () =>
      this.db
        .transaction(() => {
          const current = s.revision.get() as number;
          if (revision > current) throw new StoreError('Invalid', `compact: revision ${revision} is after the current revision ${current}`);
          if (revision <= (s.compacted.get() as number)) return;
          s.compact.run(revision);
          s.setMeta.run(revision, 'compacted');
        })
        .immediate(),
    );
  }

  // ---- noticing other processes' commits ----

  private startPolling(): void {
    if (this.poller || this.closed) return;
    this.lastDataVersion = -1;
    this.poller = setInterval(() => this.poll(), this.pollIntervalMs);
    if (this.useFsWatch) {
      try {
        this.fsWatcher = fsWatch(`${this.path}-wal`, { persistent: false }, () => {
          // The write that fired this may not be committed yet: look now and once more shortly after.
          this.poll();
          if (!this.followUp) {
            this.followUp = setTimeout(() => {
              this.followUp = undefined;
              this.poll();
            }, 3);
          }
        });
        this.fsWatcher.on('error', () => this.stopFsWatch());
      } catch {
        // No -wal file or no inotify: polling alone still works.
        this.fsWatcher = undefined;
      }
    }
  }

  private stopFsWatch(): void {
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
  }

  private stopPolling(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
    if (this.followUp) clearTimeout(this.followUp);
    this.followUp = undefined;
    this.stopFsWatch();
  }

  private poll(): void {
    if (this.closed) return;
    try {
      const dv = this.stmts.dataVersion.get() as number;
      if (dv === this.lastDataVersion) return;
      this.lastDataVersion = dv;
      this.notifier.advance(this.stmts.revision.get() as number);
    } catch {
      // Transient (e.g. the file is being recovered): the next tick retries, and watch reads report lasting errors.
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.watches].map((w) => w.close()));
    this.stopPolling();
    this.closed = true;
    this.db.close();
  }
}
