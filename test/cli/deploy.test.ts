// Deployments through the CLI on a real SQLite file, with the lab's kcm (src/lab/kcm.ts) running in-process against
// it (no kubelet: the pods stay unscheduled, so deleting one removes it at once): apply, get deploy/rs with
// kubectl's columns, describe, scale, a template change, and delete with cascade. Bad Deployments name file, line and
// field (more cases in test/api/bad-inputs.test.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APPS, type Deployment, type Pod, type ReplicaSet } from '../../src/api/types.js';
import { openStore } from '../../src/datastore/open.js';
import type { Store } from '../../src/datastore/types.js';
import { runKcm } from '../../src/lab/kcm.js';
import { memoryLogger } from '../../src/log.js';
import { runCli } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'egw-deploy-'));
const ds = `sqlite:${join(dir, 'egw.db')}`;
let store: Store;
const stop = new AbortController();
let kcm: Promise<void>;
const logs = memoryLogger();

const DEPLOY = (annotation = 'a') => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
      annotations:
        egress.projectcalico.org/selector: "egress-code == 'red'"
        version: "${annotation}"
    spec:
      terminationGracePeriodSeconds: 5
      containers: [{name: client, image: busybox}]
`;

before(async () => {
  store = await openStore(ds);
  kcm = runKcm({ store, log: logs, signal: stop.signal, resyncMs: 500 });
});
after(async () => {
  stop.abort();
  await kcm;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const cli = (args: string[], stdin?: string) => runCli(['--datastore', ds, ...args], { stdin });
const pods = async () => ((await store.list('Pod', { namespace: 'default' })).items as Pod[]).filter((p) => !p.metadata.deletionTimestamp);
const rss = async () => (await store.list('ReplicaSet', { namespace: 'default' })).items as ReplicaSet[];

test('apply a Deployment: kcm makes its ReplicaSet and pods; get shows kubectl columns', async () => {
  const r = await cli(['apply', '-f', '-'], DEPLOY());
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'deployment.apps/web created');
  const got = await until('3 pods', async () => ((await pods()).length === 3 ? pods() : undefined));
  for (const p of got) {
    assert.equal(p.metadata.annotations?.['egress.projectcalico.org/selector'], "egress-code == 'red'");
    assert.equal(p.spec.terminationGracePeriodSeconds, 5);
  }
  const d = (await store.get({ kind: 'Deployment', namespace: 'default', name: 'web' })) as Deployment;
  assert.equal(d.metadata.generation, 1);
  await until('the revision annotation', async () => ((await store.get({ kind: 'Deployment', namespace: 'default', name: 'web' })) as Deployment).metadata.annotations?.[APPS.revision] === '1');
  const g = await cli(['get', 'deploy']);
  assert.match(g.stdout, /^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\nweb\s+0\/3\s+3\s+0\s+\d+s\n$/);
  const gw = await cli(['get', 'deploy', '-o', 'wide']);
  assert.match(gw.stdout, /CONTAINERS\s+IMAGES\s+SELECTOR\n.*client\s+busybox\s+app=web\n/);
  const rs = await cli(['get', 'rs']);
  assert.match(rs.stdout, /^NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE\nweb-[a-z0-9]+\s+3\s+3\s+0\s+\d+s\n$/);
  const desc = await cli(['describe', 'deploy', 'web']);
  assert.match(desc.stdout, /Replicas:\s+3 desired \| 3 updated \| 3 total \| 0 available \| 3 unavailable/);
  assert.match(desc.stdout, /RollingUpdateStrategy: 0 max unavailable, 1 max surge/);
  // Applying the same manifest again changes nothing (the revision annotation stays, the generation too).
  const again = await cli(['apply', '-f', '-'], DEPLOY());
  assert.equal(again.stdout.trim(), 'deployment.apps/web unchanged');
});

test('scale 3 → 5 → 2 with egw scale', async () => {
  for (const n of [5, 2]) {
    const r = await cli(['scale', `deploy/web`, '--replicas', String(n)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'deployment.apps/web scaled');
    await until(`${n} pods`, async () => (await pods()).length === n);
  }
  const d = (await store.get({ kind: 'Deployment', namespace: 'default', name: 'web' })) as Deployment;
  assert.equal(d.metadata.generation, 3);
  assert.equal((await rss()).length, 1);
  const bad = await cli(['scale', 'pods/x', '--replicas', '1']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /pods cannot be scaled/);
});

test('a template change makes a second ReplicaSet (revision 2), bumps the generation', async () => {
  await cli(['scale', 'deploy', 'web', '--replicas', '3']);
  const r = await cli(['apply', '-f', '-'], DEPLOY('b'));
  assert.equal(r.stdout.trim(), 'deployment.apps/web configured');
  const d = (await store.get({ kind: 'Deployment', namespace: 'default', name: 'web' })) as Deployment;
  assert.equal(d.metadata.generation, 5);
  const sets = await until('a second ReplicaSet', async () => ((await rss()).length === 2 ? rss() : undefined));
  assert.deepEqual(sets.map((s) => s.metadata.annotations?.[APPS.revision]).sort(), ['1', '2']);
});

test('delete deploy cascades to its ReplicaSets and pods', async () => {
  const r = await cli(['delete', 'deploy', 'web']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'deployment.apps "web" deleted');
  assert.equal((await rss()).length, 0);
  await until('no pods', async () => (await store.list('Pod')).items.length === 0);
});

test('a selector that does not match the template labels is refused with file, line and field', async () => {
  const bad = DEPLOY().replace('matchLabels: {app: web}', 'matchLabels: {app: other}');
  const r = await cli(['apply', '-f', '-'], bad);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^<stdin>:\d+:\d+: Deployment default\/web: spec\.template\.metadata\.labels: `selector` does not match template `labels`$/m);
  assert.equal((await store.list('Deployment')).items.length, 0);
});
