// The leader trims the datastore's history (docs/behaviour.md §4.1, item 7): HistoryRetention's choice of revision,
// and a controller on a real SQLite file compacting what is older than its retention.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HistoryRetention, runController } from '../../src/controller/index.js';
import { SqliteStore } from '../../src/datastore/sqlite.js';
import { StoreError } from '../../src/datastore/types.js';
import { memoryLogger } from '../../src/log.js';
import { ippool } from '../helpers/resources.js';
import { until } from '../helpers/wait.js';

describe('HistoryRetention', () => {
  it('answers with the newest sampled revision at least the retention old, once', () => {
    const h = new HistoryRetention(300, 100);
    assert.equal(h.note(0, 10), undefined);
    assert.equal(h.wantsSample(50), false);
    assert.equal(h.note(100, 20), undefined);
    assert.equal(h.note(200, 30), undefined);
    assert.equal(h.note(299, 31), undefined, 'nothing is 300 old yet');
    assert.equal(h.note(300, 40), 10);
    assert.equal(h.note(350, 41), undefined, 'no new sample is due, nothing new has aged');
    assert.equal(h.note(450, 50), 20);
    // A long pause: every sample that aged meanwhile is passed over for the newest of them.
    assert.equal(h.note(2000, 60), 50);
    assert.equal(h.note(2100, 60), undefined);
  });

  it('never answers with a revision at or below one it already gave', () => {
    const h = new HistoryRetention(10, 10);
    assert.equal(h.note(0, 5), undefined);
    assert.equal(h.note(10, 5), 5);
    assert.equal(h.note(20, 5), undefined);
  });
});

describe('the controller compacts SQLite history older than its retention', () => {
  it('a watch from before the retention is Compacted; objects stay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-history-'));
    const store = new SqliteStore(join(dir, 'egw.db'));
    const ac = new AbortController();
    const log = memoryLogger();
    try {
      await store.create(ippool('p1', '10.10.0.0/24'));
      const early = await store.revision();
      const done = runController({ store, log, signal: ac.signal, resyncMs: 50, historyRetentionMs: 200 });
      // Writes keep the revision moving while the controller samples it.
      let i = 0;
      await until(
        'history before the first write compacted',
        async () => {
          await store.create(ippool(`q${++i}`, `10.11.${i}.0/24`));
          try {
            const w = await store.watch({ fromRevision: early - 1 }, () => {});
            await w.close();
            return false;
          } catch (e) {
            return e instanceof StoreError && e.code === 'Compacted';
          }
        },
        15_000,
        { everyMs: 100 },
      );
      assert.ok(await store.get({ kind: 'IPPool', namespace: '', name: 'p1' }), 'objects survive compaction');
      ac.abort();
      await done;
    } finally {
      ac.abort();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
