// EtcdStore's watch reads a deleted object at the revision before the delete (it does not ask etcd for prev_kv):
// the object it delivers, and what happens when that version is compacted away before the watch reads it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StoreError, type WatchEvent } from '../../src/datastore/types.js';
import { E2E } from '../helpers/env.js';
import { until } from '../helpers/wait.js';
import { gw, STORE_POLL } from './helpers.js';
import { etcdForSuite, etcdMissing } from './etcd-server.js';

const missing = etcdMissing();

describe('EtcdStore watch: deleted objects', { skip: missing && !E2E ? missing : false }, () => {
  const { fresh } = etcdForSuite(missing, { before, after });

  it('a DELETED event carries the object as last stored, with resourceVersion = the deleting revision', async () => {
    const s = fresh('/del1');
    const from = await s.revision();
    await s.create(gw('default', 'red', { app: 'x' }, { replicas: 1 }));
    const updated = await s.update({ ...gw('default', 'red', { app: 'y' }, { replicas: 3 }) });
    const gone = await s.delete({ kind: 'EgressGateway', namespace: 'default', name: 'red' });
    const events: WatchEvent[] = [];
    const w = await s.watch({ kind: 'EgressGateway', fromRevision: from }, (evs) => void events.push(...evs));
    await until('three events', () => events.length === 3, 5000, STORE_POLL);
    await w.close();
    assert.deepEqual(
      events.map((e) => e.type),
      ['ADDED', 'MODIFIED', 'DELETED'],
    );
    const del = events[2];
    assert.equal(del.revision, Number(gone.metadata.resourceVersion));
    assert.equal(del.object.metadata.resourceVersion, gone.metadata.resourceVersion);
    assert.deepEqual(del.object.spec, updated.spec);
    assert.deepEqual(del.object.metadata.labels, { app: 'y' });
    assert.equal(del.object.metadata.uid, updated.metadata.uid);
  });

  it('a delete whose last version is compacted before the watch reads it stops the watch with Compacted', async () => {
    const s = fresh('/del2');
    await s.create(gw('default', 'blue'));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const seen: WatchEvent[] = [];
    const errors: unknown[] = [];
    const w = await s.watch({ kind: 'EgressGateway', fromRevision: await s.revision(), onError: (e) => errors.push(e) }, async (evs) => {
      seen.push(...evs);
      await held; // the handler holds the first batch, so the delete waits in the queue
    });
    await s.create(gw('default', 'green'));
    await until('the first batch in the handler', () => seen.length === 1, 5000, STORE_POLL);
    const gone = await s.delete({ kind: 'EgressGateway', namespace: 'default', name: 'blue' });
    // Let etcd's watch response for the delete arrive and be queued, then drop the history it needs.
    await new Promise((r) => setTimeout(r, 200));
    await s.compact(Number(gone.metadata.resourceVersion));
    release();
    await until('the watch to stop', () => errors.length === 1, 5000, STORE_POLL);
    const e = errors[0];
    assert.ok(e instanceof StoreError && e.code === 'Compacted', `expected Compacted, got ${String(e)}`);
    assert.match((e as Error).message, /compacted/);
    assert.equal(seen.length, 1, 'nothing after the lost delete was delivered');
    await w.close();
  });
});
