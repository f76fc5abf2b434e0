// The lab's kube-controller-manager stand-in, its pure plans (src/lab/rollout.ts, src/lab/replicaset.ts): every rule of
// docs/behaviour.md §6 on plain data, and whole rollouts simulated step by step against a small in-memory world.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { podTemplateHash, scaledValue, surgeAndUnavailable } from '../../src/api/apps.js';
import { isPodReady } from '../../src/api/pod.js';
import { APPS, type Deployment, type Pod, type ReplicaSet } from '../../src/api/types.js';
import { deletionOrder, planReplicaSet } from '../../src/lab/replicaset.js';
import { dependentsOf, orphans, planDeployment } from '../../src/lab/rollout.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
let uidN = 0;
const uid = () => `uid-${++uidN}`;

function deployment(over: { replicas?: number; strategy?: Deployment['spec']['strategy']; annotations?: Record<string, string>; minReadySeconds?: number; revisionHistoryLimit?: number } = {}): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default', uid: uid(), generation: 1, creationTimestamp: new Date(T0).toISOString() },
    spec: {
      replicas: over.replicas ?? 3,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' }, ...(over.annotations ? { annotations: over.annotations } : {}) }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
      strategy: over.strategy ?? { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      minReadySeconds: over.minReadySeconds ?? 0,
      revisionHistoryLimit: over.revisionHistoryLimit ?? 10,
    },
  };
}

/** A world of stored objects the plans are applied to; pods become Ready, and terminating pods vanish, on `tick`. */
class World {
  rss: ReplicaSet[] = [];
  pods: Pod[] = [];
  now = T0;
  private n = 0;
  private rnd = 0;
  random = () => ((this.rnd = (this.rnd * 7 + 3) % 97) / 97);

  store<T extends ReplicaSet | Pod>(o: T): T {
    const s = structuredClone(o);
    s.metadata.uid ??= uid();
    s.metadata.creationTimestamp ??= new Date(this.now + ++this.n).toISOString();
    return s;
  }

  /** One reconcile of the Deployment (and then of every ReplicaSet), as kcm.ts does. */
  reconcile(d: Deployment): ReturnType<typeof planDeployment> {
    const plan = planDeployment(d, this.rss, this.pods, this.now);
    for (const rs of plan.create) this.rss.push(this.store(rs));
    for (const rs of plan.update) this.rss = this.rss.map((r) => (r.metadata.uid === rs.metadata.uid ? structuredClone(rs) : r));
    for (const rs of plan.delete) this.rss = this.rss.filter((r) => r.metadata.uid !== rs.metadata.uid);
    d.status = plan.status;
    for (const rs of this.rss) {
      const p = planReplicaSet(rs, this.pods, { now: this.now, random: this.random });
      for (const pod of p.create) this.pods.push(this.store(pod));
      const gone = new Set(p.delete.map((x) => x.metadata.uid));
      this.pods = this.pods.map((x) => (gone.has(x.metadata.uid) ? { ...x, metadata: { ...x.metadata, deletionTimestamp: new Date(this.now + 1000).toISOString() } } : x));
      rs.status = p.status;
    }
    return plan;
  }

  /** Time passes: new pods are scheduled and Ready (if `ready`), terminating ones are gone. */
  tick(ready = true): void {
    this.now += 1000;
    this.pods = this.pods.filter((p) => !p.metadata.deletionTimestamp);
    for (const p of this.pods) {
      if (!ready || isPodReady(p)) continue;
      p.spec.nodeName = 'node-1';
      p.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date(this.now).toISOString() }] };
    }
  }

  active(): Pod[] {
    return this.pods.filter((p) => !p.metadata.deletionTimestamp);
  }
  readyActive(): number {
    return this.active().filter(isPodReady).length;
  }
  podsOfHash(hash: string): Pod[] {
    return this.active().filter((p) => p.metadata.labels?.[APPS.podTemplateHash] === hash);
  }
}

/** Reconciles and ticks until nothing changes; calls `check` after every reconcile. */
function converge(w: World, d: Deployment, check: () => void = () => {}, steps = 60): void {
  for (let i = 0; i < steps; i++) {
    const before = JSON.stringify([w.rss.map((r) => r.spec.replicas), w.pods.map((p) => [p.metadata.name, p.metadata.deletionTimestamp ?? '', isPodReady(p)])]);
    w.reconcile(d);
    check();
    w.tick();
    const after = JSON.stringify([w.rss.map((r) => r.spec.replicas), w.pods.map((p) => [p.metadata.name, p.metadata.deletionTimestamp ?? '', isPodReady(p)])]);
    if (before === after) return;
  }
  assert.fail('did not converge');
}

test('maxSurge rounds up and maxUnavailable rounds down from percentages; both 0 makes maxUnavailable 1', () => {
  assert.equal(scaledValue('25%', 10, true), 3);
  assert.equal(scaledValue('25%', 10, false), 2);
  assert.equal(scaledValue('25%', 3, true), 1);
  assert.equal(scaledValue('25%', 3, false), 0);
  assert.equal(scaledValue('50%', 5, true), 3);
  assert.equal(scaledValue('50%', 5, false), 2);
  assert.equal(scaledValue(2, 100, true), 2);
  assert.deepEqual(surgeAndUnavailable('25%', '25%', 3), { surge: 1, unavailable: 0 });
  assert.deepEqual(surgeAndUnavailable('10%', '10%', 5), { surge: 1, unavailable: 0 });
  assert.deepEqual(surgeAndUnavailable(0, '10%', 5), { surge: 0, unavailable: 1 });
  assert.throws(() => scaledValue('x%', 3, true), /neither a whole number nor a percentage/);
});

test('a new Deployment: one ReplicaSet <name>-<hash> with the hash label, owner, revision 1, and its pods from the template', () => {
  const w = new World();
  const d = deployment({ annotations: { [`egress.projectcalico.org/selector`]: "egress-code == 'red'" } });
  const plan = w.reconcile(d);
  const hash = podTemplateHash(d.spec.template);
  assert.equal(plan.create.length, 1);
  const rs = w.rss[0];
  assert.equal(rs.metadata.name, `web-${hash}`);
  assert.equal(rs.metadata.labels?.[APPS.podTemplateHash], hash);
  assert.equal(rs.spec.selector.matchLabels?.[APPS.podTemplateHash], hash);
  assert.equal(rs.metadata.annotations?.[APPS.revision], '1');
  assert.equal(plan.revision, '1');
  assert.deepEqual(rs.metadata.ownerReferences, [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: d.metadata.uid, controller: true, blockOwnerDeletion: true }]);
  // 3 replicas, maxSurge 25% → 1: the first step may create all 3 (nothing else exists).
  assert.equal(rs.spec.replicas, 3);
  assert.equal(w.pods.length, 3);
  for (const p of w.pods) {
    assert.match(p.metadata.name, new RegExp(`^web-${hash}-[a-z0-9]{5}$`));
    assert.deepEqual(p.metadata.labels, { app: 'web', [APPS.podTemplateHash]: hash });
    assert.equal(p.metadata.annotations?.['egress.projectcalico.org/selector'], "egress-code == 'red'");
    assert.equal(p.metadata.ownerReferences?.[0].uid, rs.metadata.uid);
    assert.equal(p.spec.nodeName, undefined, 'the lab kubelets bind it');
  }
  assert.equal(new Set(w.pods.map((p) => p.metadata.name)).size, 3);
  assert.equal(d.status?.replicas, 0, 'status counts pods that exist when planned');
  converge(w, d);
  assert.deepEqual(
    { replicas: d.status?.replicas, updated: d.status?.updatedReplicas, ready: d.status?.readyReplicas, available: d.status?.availableReplicas, unavailable: d.status?.unavailableReplicas },
    { replicas: 3, updated: 3, ready: 3, available: 3, unavailable: 0 },
  );
  const cond = Object.fromEntries((d.status?.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]));
  assert.deepEqual(cond, { Available: 'True/MinimumReplicasAvailable', Progressing: 'True/NewReplicaSetAvailable' });
  assert.equal(d.status?.observedGeneration, 1);
});

test('the hash depends on the template only, not on key order', () => {
  const a = deployment().spec.template;
  const b = { spec: a.spec, metadata: { labels: { app: 'web' } } };
  assert.equal(podTemplateHash(a), podTemplateHash(b));
  assert.notEqual(podTemplateHash(a), podTemplateHash(deployment({ annotations: { x: 'y' } }).spec.template));
});

test('scaling 3 → 5 → 2 changes the one ReplicaSet; scale-down deletes not-ready and unscheduled pods first, then the newest', () => {
  const w = new World();
  const d = deployment();
  converge(w, d);
  d.spec.replicas = 5;
  converge(w, d);
  assert.equal(w.rss.length, 1);
  assert.equal(w.rss[0].spec.replicas, 5);
  assert.equal(w.readyActive(), 5);
  // Make one pod not ready: it must be among the three deleted, with the two newest Ready ones.
  const byAge = [...w.active()].sort((a, b) => Date.parse(a.metadata.creationTimestamp!) - Date.parse(b.metadata.creationTimestamp!));
  byAge[0].status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] };
  d.spec.replicas = 2;
  w.reconcile(d);
  const deleted = w.pods.filter((p) => p.metadata.deletionTimestamp).map((p) => p.metadata.name).sort();
  assert.deepEqual(deleted, [byAge[0], byAge[3], byAge[4]].map((p) => p.metadata.name).sort());
  converge(w, d);
  assert.equal(w.active().length, 2);
});

test('deletion order: unscheduled, then Pending < Running, not Ready < Ready, more restarts, then newest', () => {
  const mk = (name: string, o: { node?: string; phase?: 'Pending' | 'Running'; ready?: boolean; created: number; restarts?: number }): Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', creationTimestamp: new Date(T0 + o.created * 1000).toISOString() },
    spec: { containers: [], ...(o.node ? { nodeName: o.node } : {}) },
    status: {
      phase: o.phase ?? 'Running',
      conditions: [{ type: 'Ready', status: o.ready ? 'True' : 'False', lastTransitionTime: new Date(T0).toISOString() }],
      containerStatuses: [{ restartCount: o.restarts ?? 0 }],
    },
  });
  const pods = [
    mk('ready-old', { node: 'n', ready: true, created: 1 }),
    mk('ready-new', { node: 'n', ready: true, created: 5 }),
    mk('ready-restarts', { node: 'n', ready: true, created: 2, restarts: 3 }),
    mk('notready', { node: 'n', ready: false, created: 3 }),
    mk('pending', { node: 'n', phase: 'Pending', created: 4 }),
    mk('unscheduled', { phase: 'Pending', created: 0 }),
  ];
  assert.deepEqual(deletionOrder(pods).map((p) => p.metadata.name), ['unscheduled', 'pending', 'notready', 'ready-restarts', 'ready-new', 'ready-old']);
});

test('rolling update with maxSurge 1 / maxUnavailable 0: never fewer than replicas available, at most replicas + 1 planned, ends on the new ReplicaSet', () => {
  const w = new World();
  const d = deployment({ replicas: 3, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } });
  converge(w, d);
  const oldHash = podTemplateHash(d.spec.template);
  d.spec.template = { ...d.spec.template, metadata: { ...d.spec.template.metadata, annotations: { rollout: '2' } } };
  d.metadata.generation = 2;
  const newHash = podTemplateHash(d.spec.template);
  let steps = 0;
  converge(w, d, () => {
    steps++;
    assert.ok(w.readyActive() >= 3, `ready pods fell to ${w.readyActive()}`);
    const planned = w.rss.reduce((n, r) => n + r.spec.replicas, 0);
    assert.ok(planned <= 4, `${planned} replicas planned`);
  });
  assert.ok(steps >= 4, `a one-at-a-time rollout of 3 takes several steps, took ${steps}`);
  assert.equal(w.podsOfHash(newHash).length, 3);
  assert.equal(w.podsOfHash(oldHash).length, 0);
  const oldRs = w.rss.find((r) => r.metadata.labels?.[APPS.podTemplateHash] === oldHash)!;
  const newRs = w.rss.find((r) => r.metadata.labels?.[APPS.podTemplateHash] === newHash)!;
  assert.equal(oldRs.spec.replicas, 0);
  assert.equal(newRs.spec.replicas, 3);
  assert.equal(newRs.metadata.annotations?.[APPS.revision], '2');
  assert.equal(d.status?.observedGeneration, 2);
  assert.equal(d.status?.updatedReplicas, 3);
});

test('rolling update with the defaults on 10 replicas: at most 13 planned, at least 8 available', () => {
  const w = new World();
  const d = deployment({ replicas: 10 });
  converge(w, d);
  d.spec.template = { ...d.spec.template, metadata: { ...d.spec.template.metadata, annotations: { v: '2' } } };
  converge(w, d, () => {
    assert.ok(w.readyActive() >= 8, `available fell to ${w.readyActive()}`);
    assert.ok(w.rss.reduce((n, r) => n + r.spec.replicas, 0) <= 13);
  });
  assert.equal(w.podsOfHash(podTemplateHash(d.spec.template)).length, 10);
});

test('old ReplicaSets shrink by their pods that are not available first', () => {
  const w = new World();
  const d = deployment({ replicas: 4, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } } });
  converge(w, d);
  // Two old pods are broken: they can go without lowering availability.
  const [a, b] = w.active();
  for (const p of [a, b]) p.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] };
  d.spec.template = { ...d.spec.template, metadata: { ...d.spec.template.metadata, annotations: { v: '2' } } };
  w.reconcile(d); // creates the new ReplicaSet at 0 (no room: maxSurge 0)
  w.reconcile(d);
  const oldRs = w.rss.find((r) => r.metadata.labels?.[APPS.podTemplateHash] !== podTemplateHash(d.spec.template))!;
  // 4 planned, minAvailable 3, new unavailable 0 → may remove 1… plus availability 2 ≤ 3: only the unhealthy go.
  assert.equal(oldRs.spec.replicas, 3);
  const deleted = w.pods.filter((p) => p.metadata.deletionTimestamp).map((p) => p.metadata.name);
  assert.equal(deleted.length, 1);
  assert.ok([a.metadata.name, b.metadata.name].includes(deleted[0]), 'a broken pod went first');
});

test('Recreate: old pods go first, the new ReplicaSet starts only when none is left', () => {
  const w = new World();
  const d = deployment({ replicas: 3, strategy: { type: 'Recreate' } });
  converge(w, d);
  const oldHash = podTemplateHash(d.spec.template);
  d.spec.template = { ...d.spec.template, metadata: { ...d.spec.template.metadata, annotations: { v: '2' } } };
  const newHash = podTemplateHash(d.spec.template);
  w.reconcile(d);
  assert.equal(w.rss.length, 1, 'no new ReplicaSet while old pods exist');
  assert.equal(w.rss[0].spec.replicas, 0);
  assert.equal(w.pods.filter((p) => p.metadata.deletionTimestamp).length, 3);
  w.reconcile(d);
  assert.equal(w.rss.length, 1, 'terminating old pods still block the new ReplicaSet');
  converge(w, d, () => {
    if (w.podsOfHash(newHash).length) assert.equal(w.pods.filter((p) => p.metadata.labels?.[APPS.podTemplateHash] === oldHash).length, 0, 'old and new pods never together');
  });
  assert.equal(w.podsOfHash(newHash).length, 3);
});

test('rollback to an earlier template reuses its ReplicaSet with a new revision; history beyond revisionHistoryLimit is deleted', () => {
  const w = new World();
  const d = deployment({ replicas: 1, revisionHistoryLimit: 1 });
  converge(w, d);
  const t1 = d.spec.template;
  for (const v of ['2', '3']) {
    d.spec.template = { ...t1, metadata: { ...t1.metadata, annotations: { v } } };
    converge(w, d);
  }
  assert.equal(w.rss.length, 2, 'the current one and one old (limit 1)');
  d.spec.template = { ...t1, metadata: { ...t1.metadata, annotations: { v: '2' } } };
  const plan = w.reconcile(d);
  assert.equal(plan.create.length, 0, 'revision 2 is reused');
  converge(w, d);
  const cur = w.rss.find((r) => r.metadata.labels?.[APPS.podTemplateHash] === podTemplateHash(d.spec.template))!;
  assert.equal(cur.metadata.annotations?.[APPS.revision], '4');
  assert.equal(cur.spec.replicas, 1);
});

test('minReadySeconds: a Ready pod counts as available only after it, and the plan says when to look again', () => {
  const w = new World();
  const d = deployment({ replicas: 1, minReadySeconds: 10 });
  w.reconcile(d);
  w.tick();
  w.reconcile(d);
  assert.equal(d.status?.readyReplicas, 1);
  assert.equal(d.status?.availableReplicas, 0);
  const rs = w.rss[0];
  const p = planReplicaSet(rs, w.pods, { now: w.now });
  assert.equal(p.wakeAt, w.now + 10_000);
  w.now += 10_000;
  w.reconcile(d);
  assert.equal(d.status?.availableReplicas, 1);
});

test('cascade and garbage: dependents of a Deployment, orphans whose owner is gone (never gateway pods)', () => {
  const w = new World();
  const d = deployment();
  converge(w, d);
  const gw: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'red-abcde', namespace: 'default', ownerReferences: [{ apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', name: 'red', uid: 'gone', controller: true }] }, spec: { containers: [] } };
  const dep = dependentsOf(d, w.rss, [...w.pods, gw]);
  assert.equal(dep.replicaSets.length, 1);
  assert.equal(dep.pods.length, 3);
  assert.deepEqual(orphans([d], w.rss, [...w.pods, gw]), { replicaSets: [], pods: [] });
  const o = orphans([], w.rss, [...w.pods, gw]);
  assert.equal(o.replicaSets.length, 1);
  assert.deepEqual(orphans([], [], [...w.pods, gw]).pods.length, 3);
});

test('a ReplicaSet being deleted or scaled to 0 keeps no pods; status counts Ready pods by the one readiness rule', () => {
  const w = new World();
  const d = deployment({ replicas: 2 });
  converge(w, d);
  const rs = { ...w.rss[0], spec: { ...w.rss[0].spec, replicas: 0 } };
  const p = planReplicaSet(rs, w.pods, { now: w.now });
  assert.equal(p.delete.length, 2);
  assert.equal(p.status.readyReplicas, 2);
  assert.equal(p.status.replicas, 2);
});

test('the lab process `kcm`: every lab runs it, in the router namespace, supervised like the others', async () => {
  const { ALL_ROLES, labProcesses } = await import('../../src/lab/roles.js');
  const { parseLabFile } = await import('../../src/lab/labfile.js');
  assert.ok(ALL_ROLES.includes('kcm'));
  const config = parseLabFile('name: t1\nnodes: [{name: a}]\n');
  const egw = ['/usr/bin/node', '/repo/bin/egw.js'];
  const state = { config, datastore: 'sqlite:/x.db', hostDatastore: 'sqlite:/x.db', roles: [...ALL_ROLES], file: '/x.yaml', egw, firewall: '', createdAt: '' };
  const spec = labProcesses(state, '/state/t1').find((p) => p.role === 'kcm');
  assert.deepEqual(spec, { kind: 'kcm', role: 'kcm', argv: [...egw, '--datastore', 'sqlite:/x.db', 'lab', 'kcm'], netns: 'egw-t1-router' });
});
