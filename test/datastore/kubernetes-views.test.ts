// The kubernetes: datastore's views (src/datastore/kubernetes-views.ts, docs/kubernetes-datastore.md "Views"): the
// union rules on their own (pure: duplicate delivery, a late stream, a DELETED while another view holds the object,
// forgetting what no view holds), then the agent's views (agentKubeViews) through the real client-node against the
// stand-in API server holding a small cluster (20 nodes × 10 pods + gateway pods): the agent's informer gets exactly
// its node's pods and the gateway pods, and no event of another node's client pod. Then missing RBAC: a 403 names the
// verb and the resource, for the store, the informer (which keeps retrying), the agent's and the controller's log line and `egw get pods`.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AGENT_KINDS, agentKubeViews, startAgent } from '../../src/agent/agent.js';
import { keyOf, keyString, type Resource } from '../../src/api/meta.js';
import { LABEL, type Pod } from '../../src/api/types.js';
import { runController } from '../../src/controller/controller.js';
import { RecordingRunner } from '../../src/dataplane/exec.js';
import { startInformer, type InformerEvent } from '../../src/datastore/informer.js';
import { KubernetesStore } from '../../src/datastore/kubernetes.js';
import { openStore } from '../../src/datastore/open.js';
import { STATUS_SUBRESOURCE, kubeResource } from '../../src/datastore/kubernetes-kinds.js';
import { checkViews, ViewUnion, type UnionEvent } from '../../src/datastore/kubernetes-views.js';
import { StoreError } from '../../src/datastore/types.js';
import { KubeApiStandIn, type StandInOptions } from '../../src/lab/apiserver.js';
import { memoryLogger } from '../../src/log.js';
import { cannedAnswer } from '../dataplane/helpers.js';
import { runCli } from '../helpers/cli.js';
import { controllerGatewayPod, node, pod } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { isStoreError, STORE_POLL } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'egw-kviews-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const statusPlurals = [...STATUS_SUBRESOURCE].map((k) => kubeResource(k).info.plural);

async function standIn(opts: StandInOptions = {}): Promise<{ srv: KubeApiStandIn; file: string }> {
  const srv = new KubeApiStandIn({ statusSubresource: statusPlurals, bookmarkMs: 50, ...opts });
  await srv.start();
  const file = join(dir, `kubeconfig-${++n}`);
  writeFileSync(file, srv.kubeconfig());
  return { srv, file };
}

/** Feeds one event to the union: true when that very event is to be delivered. */
function take(u: ViewUnion, view: number, type: UnionEvent['type'], key: string, revision: number): boolean {
  const ev = { type, revision };
  return u.accept(view, ev, key) === ev;
}

describe('ViewUnion: the rules of a kind held as the union of several streams', () => {
  it('the same change from two views is delivered once', () => {
    const u = new ViewUnion(2, 100);
    assert.equal(take(u, 0, 'ADDED', 'ns/a', 101), true);
    assert.equal(take(u, 1, 'ADDED', 'ns/a', 101), false, 'the second view’s copy of the change');
    assert.equal(take(u, 1, 'MODIFIED', 'ns/a', 102), true);
    assert.equal(take(u, 0, 'MODIFIED', 'ns/a', 102), false);
  });

  it('a late stream does not roll an object back, nor bring a deleted one back', () => {
    const u = new ViewUnion(2, 100);
    assert.equal(take(u, 0, 'ADDED', 'ns/a', 101), true);
    assert.equal(take(u, 0, 'MODIFIED', 'ns/a', 105), true);
    assert.equal(take(u, 1, 'ADDED', 'ns/a', 101), false, 'older than what was delivered');
    assert.equal(take(u, 1, 'MODIFIED', 'ns/a', 103), false);
    assert.equal(take(u, 0, 'ADDED', 'ns/b', 106), true);
    assert.equal(take(u, 0, 'DELETED', 'ns/b', 107), true, 'no other view holds b (view 1 has not seen it yet)');
    assert.equal(take(u, 1, 'ADDED', 'ns/b', 106), false, 'the late view’s ADDED must not bring b back');
    assert.equal(take(u, 1, 'DELETED', 'ns/b', 107), false);
  });

  it('a DELETED from one view while another holds the object is not delivered; the last holder’s is', () => {
    const u = new ViewUnion(2, 100);
    u.hold(0, 'ns/gw');
    u.hold(1, 'ns/gw');
    // the object leaves view 1 (its label removed) but stays in view 0: view 0 reports the same change as MODIFIED
    assert.equal(take(u, 1, 'DELETED', 'ns/gw', 110), false);
    assert.equal(take(u, 0, 'MODIFIED', 'ns/gw', 110), true);
    // deleted for real: both views report it; only once no view holds it
    take(u, 1, 'ADDED', 'ns/gw', 111);
    assert.equal(take(u, 0, 'DELETED', 'ns/gw', 112), false, 'view 1 still holds it');
    assert.equal(take(u, 1, 'DELETED', 'ns/gw', 112), true);
  });

  it('a stream running ahead brings the real deletion first: the held DELETED is delivered once no view holds it', () => {
    const u = new ViewUnion(2, 100);
    u.hold(0, 'ns/x');
    u.hold(1, 'ns/x');
    // 110: x leaves view 1 (view 0: MODIFIED, view 1: DELETED); 111: x deleted (view 0: DELETED). View 0 runs ahead.
    assert.equal(take(u, 0, 'MODIFIED', 'ns/x', 110), true);
    const deletion = { type: 'DELETED' as const, revision: 111 };
    assert.equal(u.accept(0, deletion, 'ns/x'), undefined, 'view 1 still holds x');
    // view 1's DELETED of 110 comes late: x is in no view now, and the held deletion of 111 is what goes out
    assert.equal(u.accept(1, { type: 'DELETED', revision: 110 }, 'ns/x'), deletion);
    assert.equal(u.accept(1, { type: 'DELETED', revision: 111 }, 'ns/x'), undefined, 'and only once');
  });

  it('forgets a key no view holds once every view has passed it (the state stays the size of the view)', () => {
    const u = new ViewUnion(2, 100);
    for (let i = 0; i < 50; i++) {
      take(u, 0, 'ADDED', `ns/p${i}`, 101 + 2 * i);
      take(u, 0, 'DELETED', `ns/p${i}`, 102 + 2 * i);
    }
    take(u, 0, 'ADDED', 'ns/kept', 300);
    assert.equal(u.size, 51);
    u.advance(1, 150); // view 1 is behind: keys deleted after 150 may still come from it
    assert.ok(u.size > 1 && u.size < 51, `some forgotten (${u.size})`);
    u.advance(1, 400);
    u.advance(0, 400);
    assert.equal(u.size, 1, 'only the held key is left');
    assert.equal(take(u, 1, 'ADDED', 'ns/kept', 300), false, 'a held key is never forgotten');
  });

  it('checkViews names the bad field', () => {
    const bad = (v: unknown, where: string) => assert.throws(() => checkViews(v), (e: unknown) => e instanceof StoreError && e.code === 'Invalid' && e.message.includes(where));
    bad({ Pod: [] }, 'views.Pod');
    bad({ Pod: [{}] }, 'views.Pod[0]');
    bad({ Pod: [{ fieldSelector: 'spec.nodeName=a' }, { labelSelector: 3 }] }, 'views.Pod[1].labelSelector');
    bad({ Pod: [{ fieldselector: 'x' }] }, 'views.Pod[0].fieldselector');
    bad({ Gadget: [{ labelSelector: 'a' }] }, 'views.Gadget');
    assert.deepEqual(checkViews(agentKubeViews('n1')), { Pod: [{ fieldSelector: 'spec.nodeName=n1' }, { labelSelector: LABEL.gatewayOf }] });
  });
});

const NODES = 20;
const PER_NODE = 10;
const ME = 'node-07';
const nodeName = (i: number) => `node-${String(i).padStart(2, '0')}`;

describe('the agent’s views on a 20-node cluster (stand-in API server)', () => {
  it('the agent’s informer holds exactly its node’s pods and the gateway pods; other nodes’ pod events never arrive', async () => {
    const { srv, file } = await standIn();
    const admin = new KubernetesStore({ kubeconfig: file });
    const agent = new KubernetesStore({ kubeconfig: file, views: agentKubeViews(ME) });
    const ac = new AbortController();
    try {
      for (let i = 0; i < NODES; i++) await admin.create(node(nodeName(i)));
      for (let i = 0; i < NODES; i++) for (let j = 0; j < PER_NODE; j++) await admin.create(pod('default', `c-${i}-${j}`, { node: nodeName(i), ip: `10.244.${i}.${j + 2}` }));
      // gateway pods on three nodes, one of them mine: each is in both of my views
      for (const i of [3, 7, 12]) await admin.create(controllerGatewayPod('default', `red-${i}`, 'red', { node: nodeName(i), ip: `10.10.10.${i}` }));

      const events: InformerEvent[] = [];
      const inf = startInformer({ store: agent, kinds: AGENT_KINDS, signal: ac.signal, onReplace: () => {}, onEvents: (evs) => void events.push(...evs), onError: () => {} });
      await inf.whenSynced();
      const names = () => inf.list('Pod').map((p) => p.metadata.name).sort();
      const mine = Array.from({ length: PER_NODE }, (_, j) => `c-7-${j}`);
      assert.deepEqual(names(), [...mine, 'red-12', 'red-3', 'red-7'].sort());
      assert.equal(inf.list('Node').length, NODES, 'other kinds are whole');

      // Churn on every node: each client pod modified, one deleted and one created per node.
      const sentBefore = srv.eventsSent;
      for (let i = 0; i < NODES; i++) {
        for (let j = 0; j < PER_NODE; j++) {
          const p = (await admin.get({ kind: 'Pod', namespace: 'default', name: `c-${i}-${j}` })) as Pod;
          await admin.update({ ...p, metadata: { ...p.metadata, labels: { round: '1' } } });
        }
        await admin.delete({ kind: 'Pod', namespace: 'default', name: `c-${i}-0` });
        await admin.create(pod('default', `new-${i}`, { node: nodeName(i) }));
      }
      // My gateway pod (in both views) modified once: one event, not two.
      const g7 = (await admin.get({ kind: 'Pod', namespace: 'default', name: 'red-7' })) as Pod;
      await admin.update({ ...g7, metadata: { ...g7.metadata, labels: { ...g7.metadata.labels, extra: 'x' } } });
      // Another node's gateway pod modified: arrives (the label view).
      const g12 = (await admin.get({ kind: 'Pod', namespace: 'default', name: 'red-12' })) as Pod;
      await admin.update({ ...g12, metadata: { ...g12.metadata, labels: { ...g12.metadata.labels, extra: 'y' } } });
      const expected = PER_NODE + 1 + 1 + 1 + 1; // my pods modified, one deleted, one created; red-7; red-12
      await until(() => `the agent's ${expected} pod events (has ${events.length})`, () => events.length >= expected, 10_000, STORE_POLL);
      await sleep(300); // anything else would have come by now (bookmarks every 50 ms)
      const podEvents = events.filter((e) => e.object.kind === 'Pod');
      assert.equal(podEvents.length, expected, podEvents.map((e) => `${e.type} ${e.object.metadata.name}`).join(', '));
      for (const e of podEvents) {
        const p = e.object as Pod;
        assert.ok(p.spec.nodeName === ME || p.metadata.labels?.[LABEL.gatewayOf] !== undefined, `event of another node's client pod: ${e.type} ${p.metadata.name} on ${p.spec.nodeName}`);
      }
      assert.deepEqual(
        podEvents.filter((e) => e.object.metadata.name.startsWith('red-')).map((e) => e.object.metadata.name),
        ['red-7', 'red-12'],
        'each gateway change once',
      );
      assert.deepEqual(names(), [...mine.slice(1), 'new-7', 'red-12', 'red-3', 'red-7'].sort());
      const churn = NODES * (PER_NODE + 2) + 2;
      assert.ok(srv.eventsSent - sentBefore < churn / 5, `the server sent this agent's watches ${srv.eventsSent - sentBefore} events of ${churn} pod changes`);

      // A gateway pod of mine loses its label: it left the label view (DELETED there) but is still on my node.
      const before = events.length;
      const g7b = (await admin.get({ kind: 'Pod', namespace: 'default', name: 'red-7' })) as Pod;
      const { [LABEL.gatewayOf]: _drop, ...rest } = g7b.metadata.labels!;
      await admin.update({ ...g7b, metadata: { ...g7b.metadata, labels: rest } });
      // Another node's gateway pod loses it: it left every view, so the agent sees it go.
      const g3 = (await admin.get({ kind: 'Pod', namespace: 'default', name: 'red-3' })) as Pod;
      const { [LABEL.gatewayOf]: _drop3, ...rest3 } = g3.metadata.labels!;
      await admin.update({ ...g3, metadata: { ...g3.metadata, labels: rest3 } });
      await until('two more events', () => events.length >= before + 2, 5000, STORE_POLL);
      await sleep(300);
      assert.deepEqual(events.slice(before).map((e) => `${e.type} ${e.object.metadata.name}`), ['MODIFIED red-7', 'DELETED red-3']);
      assert.ok(names().includes('red-7') && !names().includes('red-3'));
      // My gateway pod deleted for real: in both views (label put back first), one DELETED.
      const g7c = (await admin.get({ kind: 'Pod', namespace: 'default', name: 'red-7' })) as Pod;
      await admin.update({ ...g7c, metadata: { ...g7c.metadata, labels: { ...g7c.metadata.labels, [LABEL.gatewayOf]: 'red' } } });
      await admin.delete({ kind: 'Pod', namespace: 'default', name: 'red-7' });
      await until('the delete', () => !names().includes('red-7'), 5000, STORE_POLL);
      await sleep(300);
      assert.deepEqual(events.slice(before + 2).map((e) => `${e.type} ${e.object.metadata.name}`), ['MODIFIED red-7', 'DELETED red-7']);

      // Every stream cut and restarted: the view converges to what the server holds for my views, nothing doubled.
      srv.cutWatches();
      await admin.create(pod('default', 'after-cut', { node: ME }));
      await admin.create(pod('default', 'elsewhere', { node: nodeName(2) }));
      await until('after-cut seen', () => names().includes('after-cut'), 5000, STORE_POLL);
      const truth = (await admin.list('Pod')).items.filter((p) => (p as Pod).spec.nodeName === ME || p.metadata.labels?.[LABEL.gatewayOf] !== undefined);
      assert.deepEqual(names(), truth.map((p) => p.metadata.name).sort());
      const keys = new Set<string>();
      for (const e of events.slice(before + 4)) {
        const k = `${keyString(keyOf(e.object))}@${e.revision}`;
        assert.ok(!keys.has(k), `delivered twice: ${k}`);
        keys.add(k);
      }
    } finally {
      ac.abort();
      await agent.close();
      await admin.close();
      await srv.stop();
    }
  });

  it('list() merges the views by key at the oldest of their revisions', async () => {
    const { srv, file } = await standIn();
    const admin = new KubernetesStore({ kubeconfig: file });
    const agent = new KubernetesStore({ kubeconfig: file, views: agentKubeViews(ME) });
    try {
      await admin.create(pod('default', 'mine', { node: ME }));
      await admin.create(pod('default', 'theirs', { node: 'node-01' }));
      await admin.create(controllerGatewayPod('default', 'red-a', 'red', { node: ME }));
      await admin.create(controllerGatewayPod('default', 'red-b', 'red', { node: 'node-01' }));
      const l = await agent.list('Pod');
      assert.deepEqual(l.items.map((p) => p.metadata.name), ['mine', 'red-a', 'red-b']);
      assert.equal(l.revision, srv.revision);
      assert.deepEqual((await agent.list('Pod', { labelSelector: 'egress-code=red' })).items.map((p) => p.metadata.name), ['red-a', 'red-b']);
      assert.deepEqual((await agent.list('Pod', { labelSelector: (x) => x['egress-code'] === undefined })).items.map((p) => p.metadata.name), ['mine']);
      // openStore passes kubeViews on (what `egw agent` does); other datastores ignore it
      const opened = await openStore(`kubernetes:${file}`, { kubeViews: agentKubeViews(ME) });
      assert.deepEqual((await opened.list('Pod')).items.map((p) => p.metadata.name), ['mine', 'red-a', 'red-b']);
      await opened.close();
      const mem = await openStore('memory:', { kubeViews: agentKubeViews(ME) });
      await mem.create(pod('default', 'theirs', { node: 'node-01' }));
      assert.equal((await mem.list('Pod')).items.length, 1);
      await mem.close();
    } finally {
      await agent.close();
      await admin.close();
      await srv.stop();
    }
  });
});

describe('missing RBAC: a 403 names the verb and the resource', () => {
  const USER = 'system:serviceaccount:egw-system:egw-agent';

  it('a list and a write refused: the store’s error names verb, resource, scope, the server’s message and the RBAC', async () => {
    const { srv, file } = await standIn({ forbid: [{ verb: 'list', resource: 'pods' }, { verb: 'create', resource: 'egressgateways.operator.tigera.io' }] });
    const store = new KubernetesStore({ kubeconfig: file });
    try {
      await assert.rejects(
        store.list('Pod'),
        isStoreError('Unavailable', 'may not list pods at the cluster scope', `pods is forbidden: User "${USER}" cannot list resource "pods" in API group "" at the cluster scope`, 'deploy/kubernetes', 'verb "list"'),
      );
      await assert.rejects(
        store.create({ apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', metadata: { namespace: 'prod', name: 'red' }, spec: {} } as Resource),
        isStoreError('Unavailable', 'may not create egressgateways.operator.tigera.io in namespace "prod"', 'cannot create resource "egressgateways" in API group "operator.tigera.io" in the namespace "prod"'),
      );
      assert.deepEqual((await store.list('Namespace')).items, [], 'what is allowed still works');
    } finally {
      await store.close();
      await srv.stop();
    }
  });

  it('a watch refused: the watch fails naming watch and the resource; the informer keeps retrying with that error', async () => {
    const { srv, file } = await standIn({ forbid: [{ verb: 'watch', resource: 'pods' }] });
    const store = new KubernetesStore({ kubeconfig: file });
    const ac = new AbortController();
    try {
      await assert.rejects(store.watch({ kind: 'Pod', fromRevision: srv.revision }, () => {}), isStoreError('Unavailable', 'may not watch pods at the cluster scope', 'deploy/kubernetes'));
      const errors: string[] = [];
      const inf = startInformer({ store, kinds: ['Pod'], signal: ac.signal, onReplace: () => {}, onEvents: () => {}, onError: (e) => void errors.push((e as Error).message), backoff: { minMs: 5, maxMs: 20 } });
      await until('three failed rounds', () => errors.length >= 3, 5000, STORE_POLL);
      assert.ok(errors.every((m) => m.includes('may not watch pods')), errors[0]);
      assert.equal(inf.synced, false);
      ac.abort();
      await inf.done;
    } finally {
      ac.abort();
      await store.close();
      await srv.stop();
    }
  });

  it('the agent and the controller log that message; `egw get pods` exits non-zero with it and no stack trace', async () => {
    const { srv, file } = await standIn({ forbid: [{ verb: 'list', resource: 'pods' }] });
    const store = new KubernetesStore({ kubeconfig: file, views: agentKubeViews(ME) });
    const ac = new AbortController();
    const log = memoryLogger();
    try {
      const agent = startAgent({ store, node: ME, runner: new RecordingRunner(cannedAnswer({ link: null, nft: null })), signal: ac.signal, log, heartbeat: false });
      await until('the agent logs the failure', () => log.lines.some((l) => l.includes('may not list pods')), 5000, STORE_POLL);
      const line = log.lines.find((l) => l.includes('may not list pods'))!;
      // (the logger quotes the error value: its inner quotes come escaped)
      assert.match(line, /forbidden: may not list pods at the cluster scope: the API server says: pods is forbidden: User .* cannot list resource \\"pods\\"/);
      assert.match(line, /deploy\/kubernetes/);
      assert.equal(agent.status().synced, false);
      ac.abort();
      await agent.done;

      // the controller's informer says the same (its service account lacks list pods as well)
      const ctl = new AbortController();
      const clog = memoryLogger();
      const admin = new KubernetesStore({ kubeconfig: file });
      const running = runController({ store: admin, log: clog, signal: ctl.signal, resyncMs: 60_000 });
      await until('the controller logs the failure', () => clog.lines.some((l) => l.includes('may not list pods at the cluster scope')), 5000, STORE_POLL);
      ctl.abort();
      await running;
      await admin.close();

      const { code, stdout: out, stderr: err } = await runCli(['--datastore', `kubernetes:${file}`, 'get', 'pods']);
      assert.notEqual(code, 0);
      assert.equal(out, '');
      assert.match(err, /^error: forbidden: may not list pods in namespace "default": the API server says: pods is forbidden: User "[^"]+" cannot list resource "pods" in API group "" in the namespace "default"; .*deploy\/kubernetes/);
      assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
    } finally {
      ac.abort();
      await store.close();
      await srv.stop();
    }
  });
});
