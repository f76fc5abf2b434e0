// Deployments in a lab (docs/behaviour.md §6), end to end with the real egw executable and the lab's kcm: the
// maintenance guide's client Deployment (examples/apps/maintenance-client.yaml) on the demo scenario — all three
// pods leave through the red gateways; a red gateway deleted with a grace period puts the maintenance annotations on
// all three — then scale 3 → 5 → 2, a rolling update (maxSurge 1, maxUnavailable 0) that never has fewer than 3
// Ready pods and ends on the new ReplicaSet, and a cascading delete. Lab `dep`; needs root, EGW_E2E=1 makes a missing
// prerequisite a failure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPodReady } from '../../src/api/pod.js';
import { ANNOTATION, APPS, type Deployment, type Pod, type ReplicaSet } from '../../src/api/types.js';
import { ROOT } from '../helpers/cli.js';
import { LabHarness } from '../helpers/e2e.js';
import { suiteGate } from '../helpers/env.js';
import { demoScenario, ECHO, liveGateways } from '../helpers/scenarios.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';

const root = suiteGate(['ip', 'nft', 'curl']);
const lab = new LabHarness('dep');
const MANIFEST = readFileSync(join(ROOT, 'examples', 'apps', 'maintenance-client.yaml'), 'utf8');
const NAME = 'maintenance-client';

/** The Deployment's pods that count: not terminating. */
async function clientPods(): Promise<Pod[]> {
  const all = (await lab.store.list('Pod', { namespace: 'default' })).items as Pod[];
  return all.filter((p) => p.metadata.labels?.app === NAME && !p.metadata.deletionTimestamp);
}
async function readyClients(): Promise<Pod[]> {
  return (await clientPods()).filter(isPodReady);
}
async function deployment(): Promise<Deployment> {
  return (await lab.store.get({ kind: 'Deployment', namespace: 'default', name: NAME })) as Deployment;
}
async function replicaSets(): Promise<ReplicaSet[]> {
  return ((await lab.store.list('ReplicaSet', { namespace: 'default' })).items as ReplicaSet[]).filter((r) => r.metadata.labels?.app === NAME);
}
/** Waits until exactly n pods are Ready and the Deployment's status says so. */
async function settled(n: number, timeoutMs = 30_000): Promise<void> {
  await until(`${n} Ready pods of ${NAME}`, async () => {
    const [ready, all, d] = [await readyClients(), await clientPods(), await deployment()];
    return ready.length === n && all.length === n && d.status?.availableReplicas === n && d.status?.updatedReplicas === n;
  }, timeoutMs, LAB_POLL);
}

describe('Deployments in the lab', { skip: root.skip, timeout: 240_000 }, () => {
  before(async () => {
    root.check();
    await lab.up();
    await lab.apply(demoScenario({ replicas: 2, graceSeconds: 10 }));
    await until('two live red gateways', async () => (await liveGateways(lab)).filter((g) => g.ready).length === 2, 40_000, LAB_POLL);
  });
  after(async () => {
    await lab.down();
  });

  test('the maintenance guide\'s Deployment: 3 pods, all leaving through the red gateways', async (t) => {
    const started = Date.now();
    const r = await lab.egw(['apply', '-f', '-'], MANIFEST);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deployment\.apps\/maintenance-client created/);
    await settled(3);
    t.diagnostic(`3 pods Ready ${Date.now() - started} ms after apply`);
    const red = new Set((await liveGateways(lab)).map((g) => g.ip));
    for (const p of await clientPods()) {
      assert.match(p.metadata.name, /^maintenance-client-[a-z0-9]+-[a-z0-9]{5}$/);
      assert.ok(p.spec.nodeName, `${p.metadata.name} is bound to a node`);
      const seen = await until(`${p.metadata.name} to reach the echo server via a red gateway`, async () => {
        const res = await lab.curl('default', p.metadata.name, `http://${ECHO}/`);
        return res && red.has(res.sourceIp) ? res : undefined;
      }, 20_000, LAB_POLL);
      t.diagnostic(`${p.metadata.name} on ${p.spec.nodeName}: the echo server saw ${seen.sourceIp}`);
    }
    const get = await lab.egw(['get', 'deploy', NAME]);
    assert.match(get.stdout, /maintenance-client\s+3\/3\s+3\s+3\s+/);
  });

  test('a red gateway deleted with a grace period: all three pods carry the maintenance annotations', async () => {
    const gw = (await liveGateways(lab))[0];
    const r = await lab.egw(['delete', 'pod', gw.name, '--grace-period', '15']);
    assert.equal(r.code, 0, r.stderr);
    const pods = await until('maintenance annotations on all three clients', async () => {
      const ps = await clientPods();
      return ps.length === 3 && ps.every((p) => p.metadata.annotations?.[ANNOTATION.maintenanceGatewayIP] === gw.ip) ? ps : undefined;
    }, 20_000, LAB_POLL);
    for (const p of pods) {
      const a = p.metadata.annotations!;
      assert.ok(Date.parse(a[ANNOTATION.maintenanceFinished]) > Date.parse(a[ANNOTATION.maintenanceStarted]), JSON.stringify(a));
    }
  });

  test('scale 3 → 5 → 2', async () => {
    for (const n of [5, 2]) {
      const r = await lab.egw(['scale', `deploy/${NAME}`, '--replicas', String(n)]);
      assert.equal(r.code, 0, r.stderr);
      await settled(n);
      assert.equal((await replicaSets()).length, 1);
    }
  });

  test('rolling update with maxSurge 1 / maxUnavailable 0: never fewer than 3 Ready pods, ends on the new ReplicaSet', async (t) => {
    await lab.egw(['scale', `deploy/${NAME}`, '--replicas', '3']);
    await settled(3);
    const [oldRs] = await replicaSets();
    const changed = MANIFEST.replace('      annotations:\n', '      annotations:\n        example.com/rollout: "2"\n');
    assert.notEqual(changed, MANIFEST);
    let min = Infinity;
    let samples = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const n = (await readyClients()).length;
        min = Math.min(min, n);
        samples++;
        await sleep(50);
      }
    })();
    const started = Date.now();
    const r = await lab.egw(['apply', '-f', '-'], changed);
    assert.match(r.stdout, /configured/);
    try {
      await until('the rollout to finish', async () => {
        const sets = await replicaSets();
        const neu = sets.find((s) => s.metadata.uid !== oldRs.metadata.uid);
        const old = sets.find((s) => s.metadata.uid === oldRs.metadata.uid);
        const pods = await readyClients();
        return neu && old?.spec.replicas === 0 && pods.length === 3 && pods.every((p) => p.metadata.labels?.[APPS.podTemplateHash] === neu.metadata.labels?.[APPS.podTemplateHash]) && (await clientPods()).length === 3;
      }, 60_000, LAB_POLL);
    } finally {
      watching = false;
      await watch;
    }
    t.diagnostic(`rollout of 3 pods took ${Date.now() - started} ms; fewest Ready pods seen ${min} in ${samples} samples`);
    assert.ok(min >= 3, `Ready pods fell to ${min}`);
    const d = await deployment();
    assert.equal(d.metadata.annotations?.[APPS.revision], '2');
    await until('status to show the finished rollout', async () => {
      const s = (await deployment()).status;
      return s?.updatedReplicas === 3 && s.availableReplicas === 3 && s.conditions?.some((c) => c.type === 'Progressing' && c.reason === 'NewReplicaSetAvailable');
    }, 10_000, LAB_POLL);
  });

  test('delete deploy removes its ReplicaSets and, gracefully, its pods', async () => {
    const r = await lab.egw(['delete', 'deploy', NAME]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await replicaSets()).length, 0);
    await until('every client pod gone', async () => {
      const all = (await lab.store.list('Pod', { namespace: 'default' })).items as Pod[];
      return all.every((p) => p.metadata.labels?.app !== NAME);
    }, 20_000, LAB_POLL);
  });
});
