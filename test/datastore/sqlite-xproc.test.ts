// Several processes on one SQLite file: watches see other processes' writes, in order, with their exact revisions,
// and concurrent writers never share or skip a revision.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { SqliteStore } from '../../src/datastore/sqlite.js';
import { sleep } from '../helpers/wait.js';
import { collect } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'egw-xproc-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Change {
  rev: number;
  type: string;
  ns: string;
  name: string;
}

interface Child {
  /** Resolves with the child's change log when it exits 0. */
  done: Promise<Change[]>;
  exited: () => boolean;
  kill: () => void;
}

/** Everything a test started, stopped even when an assertion fails (an open watch would keep this process alive). */
const cleanups: (() => unknown)[] = [];
async function cleanUp(): Promise<void> {
  for (const f of cleanups.splice(0).reverse()) {
    try {
      await f();
    } catch {
      // best effort
    }
  }
}

function runWriter(dbPath: string, count: number, prefix = 'w', startAt = 0, pauseMs = 0): Child {
  const args = ['--import', 'tsx', 'test/datastore/xproc-writer.ts', dbPath, String(count), prefix, String(startAt), String(pauseMs)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let exited = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const done = new Promise<Change[]>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      exited = true;
      if (code !== 0) reject(new Error(`writer ${prefix} exited with ${code}: ${err}`));
      else resolve(out.trim() === '' ? [] : out.trim().split('\n').map((l) => JSON.parse(l) as Change));
    });
  });
  const c = { done, exited: () => exited, kill: () => exited || child.kill() };
  cleanups.push(c.kill);
  done.catch(() => {});
  return c;
}

function open(path: string): SqliteStore {
  const s = new SqliteStore(path);
  cleanups.push(() => s.close());
  return s;
}

const line = (c: Change) => `${c.rev} ${c.type} ${c.ns}/${c.name}`;

describe('SQLite datastore across processes', { timeout: 20_000 }, () => {
  afterEach(cleanUp);

  it('a watch in this process sees all 1,000 changes another process makes, in order, with exact revisions; a resumed watch sees exactly the rest', async () => {
    const t0 = Date.now();
    const dbPath = join(root, 'one-writer.db');
    const store = open(dbPath);
    const w = await collect(store, { fromRevision: 0 });
    const child = runWriter(dbPath, 1000);
    let liveBeforeExit = 0;
    const tick = setInterval(() => {
      if (!child.exited()) liveBeforeExit = w.events.length;
    }, 1);
    const log = await child.done;
    clearInterval(tick);
    assert.equal(log.length, 1000);
    await w.waitFor(1000, 10_000);
    await sleep(100);
    assert.equal(w.events.length, 1000, 'no extra events');
    assert.deepEqual(w.events.map((e) => e.revision), Array.from({ length: 1000 }, (_, i) => i + 1));
    assert.deepEqual(
      w.events.map((e) => line({ rev: e.revision, type: e.type, ns: e.object.metadata.namespace!, name: e.object.metadata.name })),
      log.map(line),
    );
    for (const e of w.events) assert.equal(e.object.metadata.resourceVersion, String(e.revision));
    const types = new Set(w.events.map((e) => e.type));
    assert.deepEqual([...types].sort(), ['ADDED', 'DELETED', 'MODIFIED']);
    assert.ok(liveBeforeExit > 0, 'events streamed while the writer was still running');
    assert.ok(w.batches > 1, `delivered live in several batches (got ${w.batches})`);
    await w.watch.close();

    // Resume from 600 (as after a restart): exactly revisions 601..1000, identical to what the first watch saw.
    const resumed = await collect(store, { fromRevision: 600 });
    await resumed.waitFor(400);
    await sleep(60);
    assert.equal(resumed.events.length, 400);
    assert.deepEqual(resumed.events.map((e) => e.revision), Array.from({ length: 400 }, (_, i) => i + 601));
    assert.deepEqual(resumed.events, w.events.slice(600));

    // A fresh process-like view (another connection) agrees on the final state.
    const other = open(dbPath);
    const live = new Map<string, number>();
    for (const c of log) {
      if (c.type === 'DELETED') live.delete(`${c.ns}/${c.name}`);
      else live.set(`${c.ns}/${c.name}`, c.rev);
    }
    const listed = await other.list('EgressGateway');
    assert.equal(listed.revision, 1000);
    assert.deepEqual(
      new Map(listed.items.map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, Number(o.metadata.resourceVersion)])),
      live,
    );
    await other.close();
    await store.close();
    console.log(`# cross-process 1,000 changes: ${Date.now() - t0} ms`);
  });

  it('two writer processes at once, on a new file, never produce duplicate or missing revisions', async () => {
    const t0 = Date.now();
    const dbPath = join(root, 'two-writers.db');
    const startAt = Date.now() + 1500;
    const a = runWriter(dbPath, 500, 'left', startAt, 1);
    const b = runWriter(dbPath, 500, 'right', startAt, 1);
    // This process opens the same new file concurrently and watches from the start.
    const store = open(dbPath);
    const w = await collect(store, { fromRevision: 0 });
    const [logA, logB] = await Promise.all([a.done, b.done]);
    assert.equal(logA.length, 500);
    assert.equal(logB.length, 500);
    const byRev = new Map<number, Change & { writer: string }>();
    for (const [writer, log] of [['left', logA], ['right', logB]] as const) {
      for (const c of log) {
        assert.ok(!byRev.has(c.rev), `revision ${c.rev} claimed twice`);
        byRev.set(c.rev, { ...c, writer });
      }
    }
    const revs = [...byRev.keys()].sort((x, y) => x - y);
    assert.deepEqual(revs, Array.from({ length: 1000 }, (_, i) => i + 1), 'revisions 1..1000, no gaps, no duplicates');
    // Each writer's own revisions increase, and the writers really did interleave.
    for (const log of [logA, logB]) for (let i = 1; i < log.length; i++) assert.ok(log[i].rev > log[i - 1].rev);
    let switches = 0;
    for (let r = 2; r <= 1000; r++) if (byRev.get(r)!.writer !== byRev.get(r - 1)!.writer) switches++;
    assert.ok(switches >= 2, `writers interleaved (${switches} switches)`);

    await w.waitFor(1000, 10_000);
    await sleep(60);
    assert.equal(w.events.length, 1000);
    assert.deepEqual(
      w.events.map((e) => line({ rev: e.revision, type: e.type, ns: e.object.metadata.namespace!, name: e.object.metadata.name })),
      revs.map((r) => line(byRev.get(r)!)),
    );
    assert.equal(await store.revision(), 1000);
    await w.watch.close();
    await store.close();
    console.log(`# two concurrent writers, 1,000 changes: ${Date.now() - t0} ms (${switches} writer switches)`);
  });
});
