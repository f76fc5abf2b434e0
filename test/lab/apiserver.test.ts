// The lab's stand-in API server keeps its objects across a restart (its journal: src/lab/apiserver.ts), and writers of
// several objects on a store without multi-object txns account for every object (src/datastore/batch.ts): the
// pieces the lab in Kubernetes mode rests on (docs/dataplane.md, "The lab on Kubernetes").
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PartialWriteError, writeOps } from '../../src/datastore/batch.js';
import { KubernetesStore } from '../../src/datastore/kubernetes.js';
import { STATUS_SUBRESOURCE, kubeResource } from '../../src/datastore/kubernetes-kinds.js';
import { StoreError } from '../../src/datastore/types.js';
import { KubeApiStandIn } from '../../src/lab/apiserver.js';
import { runCli } from '../helpers/cli.js';
import { pod } from '../helpers/resources.js';

const dir = mkdtempSync(join(tmpdir(), 'egw-apiserver-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const statusPlurals = [...STATUS_SUBRESOURCE].map((k) => kubeResource(k).info.plural);
let n = 0;

async function serve(journal?: string): Promise<{ srv: KubeApiStandIn; store: KubernetesStore; kubeconfig: string; close(): Promise<void> }> {
  const srv = new KubeApiStandIn({ statusSubresource: statusPlurals, journal });
  await srv.start();
  const kubeconfig = join(dir, `kubeconfig-${++n}`);
  writeFileSync(kubeconfig, srv.kubeconfig());
  const store = new KubernetesStore({ kubeconfig });
  return { srv, store, kubeconfig, close: async () => (await store.close(), await srv.stop()) };
}

const ns = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });

describe('the stand-in API server\'s journal', () => {
  it('a restarted server has every object with its uid and resourceVersion; a watch from before the restart gets Compacted', async () => {
    const journal = join(dir, 'j1.jsonl');
    const a = await serve(journal);
    await a.store.create(ns('tenant-a'));
    const p = await a.store.create(pod('tenant-a', 'client', { node: 'node-1' }));
    const gone = await a.store.create(pod('tenant-a', 'gone', { node: 'node-1' }));
    await a.store.delete({ kind: 'Pod', namespace: 'tenant-a', name: 'gone' });
    const moved = await a.store.update({ ...p, metadata: { ...p.metadata, labels: { app: 'x' } } });
    const rev = await a.store.revision();
    await a.close();

    const b = await serve(journal);
    try {
      const pods = (await b.store.list('Pod')).items;
      assert.deepEqual(pods.map((x) => [x.metadata.name, x.metadata.uid, x.metadata.resourceVersion, x.metadata.labels]), [['client', p.metadata.uid, moved.metadata.resourceVersion, { app: 'x' }]]);
      assert.equal(gone.metadata.name, 'gone');
      assert.ok((await b.store.get({ kind: 'Namespace', namespace: '', name: 'tenant-a' })) !== undefined);
      assert.equal(await b.store.revision(), rev, 'the revision continues where it was');
      await assert.rejects(
        b.store.watch({ kind: 'Pod', fromRevision: rev - 2 }, () => {}),
        (e: unknown) => e instanceof StoreError && e.code === 'Compacted',
      );
      // New writes continue the counter, and a watch from now sees them.
      const c = await b.store.create(pod('tenant-a', 'after', { node: 'node-2' }));
      assert.ok(Number(c.metadata.resourceVersion) > rev);
      // The journal was rewritten at start as the counter and one line per object, then appended to.
      const lines = readFileSync(journal, 'utf8').trim().split('\n');
      assert.equal(lines.length, 4, lines.join('\n'));
      assert.deepEqual(JSON.parse(lines[0]), { type: 'REVISION', rv: rev });
    } finally {
      await b.close();
    }
  });

  it('the revision never goes back across restarts, even when the last change was a deletion', async () => {
    const journal = join(dir, 'j3.jsonl');
    const a = await serve(journal);
    await a.store.create(ns('short-lived'));
    await a.store.delete({ kind: 'Namespace', namespace: '', name: 'short-lived' });
    const rev = await a.store.revision();
    await a.close();
    for (let i = 0; i < 2; i++) {
      const b = await serve(journal);
      try {
        assert.equal(b.srv.revision, rev, `restart ${i + 1}`);
        assert.deepEqual((await b.store.list('Namespace')).items, []);
      } finally {
        await b.close();
      }
    }
  });

  it('a torn last line (killed while writing) is dropped and counted; a bad line before others is an error naming it', async () => {
    const journal = join(dir, 'j2.jsonl');
    const a = await serve(journal);
    await a.store.create(ns('kept'));
    await a.close();
    appendFileSync(journal, '{"rv":1200,"type":"ADDED","resource":"/v1/namespaces","obj":{"metadata":{"na');
    const b = await serve(journal);
    try {
      assert.equal(b.srv.journalDropped, 1);
      assert.deepEqual((await b.store.list('Namespace')).items.map((x) => x.metadata.name), ['kept']);
    } finally {
      await b.close();
    }
    writeFileSync(journal, 'not json\n' + readFileSync(journal, 'utf8'));
    assert.throws(() => new KubeApiStandIn({ journal }), new RegExp(`${journal.replace(/[.]/g, '\\.')}:1: not a journal line`));
  });
});

describe('writing several objects where one txn takes one', () => {
  it('writeOps writes them one by one; a failure part way names what was written and what was not', async () => {
    const s = await serve();
    try {
      assert.equal(s.store.maxTxnOps, 1);
      const out = await writeOps(s.store, [{ op: 'create', object: ns('a') }, { op: 'create', object: ns('b') }]);
      assert.deepEqual(out.map((o) => o.metadata.name), ['a', 'b']);
      const err = await writeOps(s.store, [{ op: 'create', object: ns('c') }, { op: 'create', object: ns('a') }, { op: 'create', object: ns('d') }]).catch((e: unknown) => e);
      assert.ok(err instanceof PartialWriteError, String(err));
      assert.equal(err.code, 'AlreadyExists');
      assert.deepEqual([err.done, err.failedAt, err.total], [1, 1, 3]);
      assert.match(err.message, /1 of 3 written \(Namespace c\); create of Namespace a failed: .*already exists.*; not written: Namespace d$/);
      assert.equal(await s.store.get({ kind: 'Namespace', namespace: '', name: 'd' }), undefined, 'nothing after the failure was written');
      // The first op failing: nothing written, the store's own error.
      const first = await writeOps(s.store, [{ op: 'create', object: ns('a') }, { op: 'create', object: ns('e') }]).catch((e: unknown) => e);
      assert.ok(first instanceof StoreError && !(first instanceof PartialWriteError) && first.code === 'AlreadyExists');
      assert.equal(await s.store.get({ kind: 'Namespace', namespace: '', name: 'e' }), undefined);
    } finally {
      await s.close();
    }
  });

  it('egw apply of several objects on kubernetes: applies each; a failure part way says partly applied and which', async () => {
    const s = await serve();
    try {
      const yaml = ['apiVersion: v1\nkind: Namespace\nmetadata: {name: t1}', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: t2}'].join('\n---\n');
      const r = await runCli(['--datastore', `kubernetes:${s.kubeconfig}`, 'apply', '-f', '-'], { stdin: yaml });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /namespace\/t1 created\nnamespace\/t2 created/);
      // t3 is created, then t1 changed by someone else between apply's read and its write: the server refuses it.
      s.srv.beforeWrite = (method, path) => {
        if (method === 'PUT' && path.endsWith('/namespaces/t1')) {
          s.srv.beforeWrite = undefined;
          return 409;
        }
        return undefined;
      };
      const y2 = ['apiVersion: v1\nkind: Namespace\nmetadata: {name: t3}', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: t1, labels: {x: y}}', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: t4}'].join('\n---\n');
      const r2 = await runCli(['--datastore', `kubernetes:${s.kubeconfig}`, 'apply', '-f', '-'], { stdin: y2 });
      assert.equal(r2.code, 1, r2.stdout);
      assert.match(r2.stderr, /partly applied: .*1 of 3 written \(Namespace t3\); update of Namespace t1 failed: .*; not written: Namespace t4/);
      assert.doesNotMatch(r2.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      await s.close();
    }
  });
});
