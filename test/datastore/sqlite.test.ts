import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION, SqliteStore } from '../../src/datastore/sqlite.js';
import { StoreError } from '../../src/datastore/types.js';
import { conformance } from './conformance.js';
import { egressGateway, ippool } from '../helpers/resources.js';
import { CIDR, collect, gw } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'egw-sqlite-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(root, `db${++n}.db`);

conformance('sqlite', async () => new SqliteStore(freshPath()), {
  description: /^sqlite:/,
  startsAtZero: true,
  txnRevisions: 'per-op',
  maxTxnObjects: Infinity,
  compaction: 'store',
});

describe('SqliteStore', () => {
  it('keeps data and revision across close and reopen', async () => {
    const path = freshPath();
    const a = new SqliteStore(path);
    assert.equal(a.description, `sqlite:${path}`);
    const red = await a.create(gw('default', 'red', { tier: 'gold' }));
    await a.create(ippool('p1', CIDR));
    await a.update(gw('default', 'red', { tier: 'silver' }, { replicas: 4 }));
    await a.create(gw('default', 'blue'));
    await a.delete({ kind: 'EgressGateway', namespace: 'default', name: 'blue' });
    await a.close();

    const b = new SqliteStore(path);
    assert.equal(await b.revision(), 5);
    const got = await b.get({ kind: 'EgressGateway', namespace: 'default', name: 'red' });
    assert.equal(got?.metadata.uid, red.metadata.uid);
    assert.equal(got?.metadata.resourceVersion, '3');
    assert.deepEqual(got?.spec, { replicas: 4 });
    assert.deepEqual((await b.list('EgressGateway', { labelSelector: 'tier=silver' })).items.map((o) => o.metadata.name), ['red']);
    assert.equal((await b.list('IPPool')).revision, 5);
    // The full history is still there for watches.
    const w = await collect(b, { fromRevision: 0 });
    await w.waitFor(5);
    assert.deepEqual(w.events.map((e) => `${e.revision} ${e.type} ${e.object.metadata.name}`), [
      '1 ADDED red',
      '2 ADDED p1',
      '3 MODIFIED red',
      '4 ADDED blue',
      '5 DELETED blue',
    ]);
    await w.watch.close();
    // Revisions continue where they left off.
    assert.equal((await b.create(ippool('p2', CIDR))).metadata.resourceVersion, '6');
    assert.equal(b.schemaVersion(), SCHEMA_VERSION);
    await b.close();
  });

  it('keeps compaction across reopen', async () => {
    const path = freshPath();
    const a = new SqliteStore(path);
    for (let i = 0; i < 5; i++) await a.create(ippool(`p${i}`, CIDR));
    await a.compact(3);
    await a.close();
    const b = new SqliteStore(path);
    await assert.rejects(b.watch({ fromRevision: 2 }, () => {}), (e: unknown) => e instanceof StoreError && e.code === 'Compacted');
    const w = await collect(b, { fromRevision: 3 });
    await w.waitFor(2);
    assert.deepEqual(w.events.map((e) => e.revision), [4, 5]);
    await b.close();
  });

  it('uses WAL mode and records its schema version', async () => {
    const path = freshPath();
    const s = new SqliteStore(path);
    await s.create(ippool('p', CIDR));
    const raw = new Database(path, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.deepEqual(raw.prepare('SELECT version FROM schema_version').pluck().all(), [1, 2]);
    const tables = raw.prepare(`SELECT name FROM sqlite_master WHERE type='table' ORDER BY name`).pluck().all();
    assert.deepEqual(tables, ['events', 'meta', 'objects', 'schema_version']);
    const ev = raw.prepare('SELECT revision, type, kind, namespace, name FROM events').all();
    assert.deepEqual(ev, [{ revision: 1, type: 'ADDED', kind: 'IPPool', namespace: '', name: 'p' }]);
    const at = raw.prepare('SELECT written_at FROM events').pluck().get() as number;
    assert.ok(Math.abs(at - Date.now()) < 60_000, `written_at ${at} is the commit time`);
    raw.close();
    await s.close();
  });

  it('refuses a database from a newer egw, and a file that is not an egw datastore', async () => {
    const newer = freshPath();
    await new SqliteStore(newer).close();
    const raw = new Database(newer);
    raw.prepare('INSERT INTO schema_version VALUES (?, ?)').run(SCHEMA_VERSION + 1, 'future');
    raw.close();
    assert.throws(() => new SqliteStore(newer), (e: unknown) => e instanceof StoreError && e.code === 'Invalid' && /newer than this egw/.test(e.message));

    const foreign = freshPath();
    const f = new Database(foreign);
    f.exec('CREATE TABLE stuff (x)');
    f.close();
    assert.throws(() => new SqliteStore(foreign), (e: unknown) => e instanceof StoreError && /not an egw datastore/.test(e.message));

    const garbage = freshPath();
    writeFileSync(garbage, 'this is not a database, just some text that is long enough to look like a header...........');
    assert.throws(() => new SqliteStore(garbage), (e: unknown) => e instanceof StoreError && e.code === 'Unavailable');
  });

  it('fails clearly when the directory does not exist', () => {
    const path = join(root, 'no-such-dir', 'x.db');
    assert.throws(() => new SqliteStore(path), (e: unknown) => e instanceof StoreError && e.code === 'Unavailable' && e.message.includes(path));
    assert.equal(existsSync(join(root, 'no-such-dir')), false);
  });

  it('two stores on one file in one process see each other, watches included', async () => {
    const path = freshPath();
    const a = new SqliteStore(path);
    const b = new SqliteStore(path, { fsWatch: false });
    const w = await collect(b, { fromRevision: 0 });
    await a.create(egressGateway('default', 'x'));
    await b.create(egressGateway('default', 'y'));
    await a.update(egressGateway('default', 'x', { replicas: 3 }));
    await w.waitFor(3);
    assert.deepEqual(w.events.map((e) => `${e.revision} ${e.type} ${e.object.metadata.name}`), ['1 ADDED x', '2 ADDED y', '3 MODIFIED x']);
    await assert.rejects(a.create(egressGateway('default', 'y')), (e: unknown) => e instanceof StoreError && e.code === 'AlreadyExists');
    assert.equal(await a.revision(), 3);
    await a.close();
    await b.close();
  });
});
