// The informer on a real etcd, where every op of one txn shares one revision: each event of a txn reaches the
// consumer once (a regression: the informer used to skip all but the first event of a revision, so a batch applied
// in one txn — `egw apply` of several pods — showed the kubelets only the first pod). Skipped where etcd is missing,
// except under EGW_E2E=1, where that is a failure.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EtcdStore } from '../../src/datastore/etcd.js';
import { startInformer } from '../../src/datastore/informer.js';
import { E2E } from '../helpers/env.js';
import { pod } from '../helpers/resources.js';
import { until } from '../helpers/wait.js';
import { etcdMissing, startEtcd, type EtcdServer } from './etcd-server.js';

const missing = etcdMissing();

describe('informer on etcd', { skip: missing && !E2E ? missing : false }, () => {
  let srv: EtcdServer;
  before(async () => {
    if (missing) assert.fail(`EGW_E2E=1 but this test cannot run: ${missing}`);
    srv = await startEtcd();
  });
  after(async () => {
    await srv?.stop();
  });

  it('delivers every event of a multi-object txn once, and the view holds them all', async () => {
    const store = new EtcdStore({ endpoints: [srv.endpoint], prefix: '/inf' });
    const ac = new AbortController();
    const seen: string[] = [];
    const inf = startInformer({
      store,
      kinds: ['Pod'],
      signal: ac.signal,
      onReplace: () => {},
      onEvents: (evs) => void seen.push(...evs.map((e) => `${e.type} ${e.object.metadata.name}@${e.revision}`)),
    });
    try {
      await inf.whenSynced();
      await store.txn(['a', 'b', 'c'].map((n) => ({ op: 'create' as const, object: pod('default', n) })));
      await until('three events', () => seen.length >= 3, 10_000);
      const revs = new Set(seen.map((s) => s.split('@')[1]));
      assert.equal(revs.size, 1, `one txn, one revision: ${seen}`);
      assert.deepEqual(seen.map((s) => s.split('@')[0]).sort(), ['ADDED a', 'ADDED b', 'ADDED c']);
      // A later single write still arrives, and nothing came twice.
      await store.delete({ kind: 'Pod', namespace: 'default', name: 'b' });
      await until('the delete', () => seen.some((s) => s.startsWith('DELETED b')), 10_000);
      assert.equal(seen.length, 4, seen.join(', '));
    } finally {
      ac.abort();
      await inf.done;
      await store.close();
    }
  });
});
