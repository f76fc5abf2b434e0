// A highly available controller (docs/behaviour.md §4.1), with real processes: three `egw controller` (bin/egw.js)
// on one datastore — an SQLite file, then a throwaway etcd server — and, several times in a row, kill -9 of the one
// that leads, then at once a scale-up (EgressGateway replicas + 1). The new gateway Pod object must exist within 5 s
// of the kill (the issue's bound, as the wait's limit), created by exactly one controller. No kubelet runs: Pod
// objects are checked. The takeover times are printed (figures, not assertions).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ANNOTATION, type EgressGateway, type Pod } from '../../src/api/types.js';
import { openStore } from '../../src/datastore/open.js';
import type { Store } from '../../src/datastore/types.js';
import { E2E } from '../helpers/env.js';
import { egressGateway, ippool, node } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { etcdMissing, startEtcd, type EtcdServer } from '../datastore/etcd-server.js';
import { distMissing, leaderId, startController, type ControllerProc } from './procs.js';

/** The issue's requirement: a scale-up applied right after the leader is killed is carried out within 5 s. */
const TAKEOVER_BOUND_MS = 5000;
const KILLS = 3;
const GW = { kind: 'EgressGateway', namespace: 'prod', name: 'red' };

async function seed(store: Store): Promise<void> {
  await store.create(ippool('egress', '10.10.10.0/28', { blockSize: 28, nodeSelector: '!all()' }));
  await store.create(node('n1', { labels: { egress: 'yes' } }));
  await store.create(node('n2', { labels: { egress: 'yes' } }));
  await store.create(egressGateway('prod', 'red', { replicas: 1, template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { egress: 'yes' } } } }));
}

async function gatewayPods(store: Store): Promise<Pod[]> {
  const pods = (await store.list('Pod', { namespace: 'prod' })).items as Pod[];
  return pods.filter((p) => p.metadata.annotations?.[ANNOTATION.gatewayOf] === 'red' && !p.metadata.deletionTimestamp);
}

/** Kill the leader, scale up at once, measure; `KILLS` times. Returns the figures per kill. */
async function killLeaderAndScale(t: TestContext, datastore: string, store: Store): Promise<{ leaderMs: number; podMs: number }[]> {
  const procs = new Map<string, ControllerProc>();
  const spawnOne = (id: string) => procs.set(id, startController(datastore, id));
  const logs = () => [...procs.values()].map((p) => `--- ${p.id}\n${p.log()}`).join('\n');
  for (const id of ['ctl-1', 'ctl-2', 'ctl-3']) spawnOne(id);
  const figures: { leaderMs: number; podMs: number }[] = [];
  try {
    await until(() => `a leader and 1 gateway pod\n${logs()}`, async () => (await leaderId(store)) !== undefined && (await gatewayPods(store)).length === 1, 20_000, { everyMs: 50 });
    for (let round = 1; round <= KILLS; round++) {
      const victim = procs.get((await leaderId(store))!);
      assert.ok(victim, 'the leader is one of ours');
      const want = round + 1;
      const t0 = performance.now();
      await victim.kill9();
      // the scale-up, right after the kill
      const egw = (await store.get(GW)) as EgressGateway;
      egw.spec.replicas = want;
      await store.update(egw);
      let leaderMs = NaN;
      await until(
        () => `${want} gateway pods within ${TAKEOVER_BOUND_MS} ms of kill -9 of ${victim.id}\n${logs()}`,
        async () => {
          if (Number.isNaN(leaderMs)) {
            const l = await leaderId(store);
            if (l !== undefined && l !== victim.id) leaderMs = performance.now() - t0;
          }
          return (await gatewayPods(store)).length === want;
        },
        TAKEOVER_BOUND_MS,
        { everyMs: 10 },
      );
      const podMs = performance.now() - t0;
      const newLeader = await leaderId(store);
      figures.push({ leaderMs: Math.round(leaderMs), podMs: Math.round(podMs) });
      t.diagnostic(`kill -9 of leader ${victim.id}: new leader ${newLeader} recorded after ${Math.round(leaderMs)} ms, replica ${want} created after ${Math.round(podMs)} ms`);
      // Exactly one acted: the count stays at `want` (no second controller made its own pod).
      await sleep(1000);
      assert.equal((await gatewayPods(store)).length, want, 'no extra pods from a second actor');
      // Restarted under the same id, as a supervisor would: it joins as a follower (its instance differs).
      spawnOne(victim.id);
    }
    return figures;
  } finally {
    await Promise.all([...procs.values()].map((p) => p.stop()));
  }
}

const noDist = distMissing();

describe('HA: kill -9 of the leading egw controller', { skip: noDist && !E2E ? noDist : false, timeout: 180_000 }, () => {
  let dir: string;
  before(() => {
    if (noDist) assert.fail(`EGW_E2E=1 but the HA test cannot run: ${noDist}`);
    dir = mkdtempSync(join(tmpdir(), 'egw-ha-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('on SQLite (the lock record): a scale-up right after the kill is carried out within 5 s, three times', async (t) => {
    const datastore = `sqlite:${join(dir, 'ha.db')}`;
    const store = await openStore(datastore);
    try {
      await seed(store);
      const figures = await killLeaderAndScale(t, datastore, store);
      console.log(`HA sqlite takeover (kill -9 → new leader / → new pod), ms: ${figures.map((f) => `${f.leaderMs}/${f.podMs}`).join(', ')}`);
    } finally {
      await store.close();
    }
  });

  const noEtcd = etcdMissing();
  describe('on etcd', { skip: noEtcd && !E2E ? noEtcd : false }, () => {
    let srv: EtcdServer;
    before(async () => {
      if (noEtcd) assert.fail(`EGW_E2E=1 but the etcd HA test cannot run: ${noEtcd}`);
      srv = await startEtcd();
    });
    after(async () => srv?.stop());

    it('(the etcd lease): a scale-up right after the kill is carried out within 5 s, three times', async (t) => {
      const datastore = `etcd://${srv.endpoint}/ha`;
      const store = await openStore(datastore);
      try {
        await seed(store);
        const figures = await killLeaderAndScale(t, datastore, store);
        console.log(`HA etcd takeover (kill -9 → new leader / → new pod), ms: ${figures.map((f) => `${f.leaderMs}/${f.podMs}`).join(', ')}`);
      } finally {
        await store.close();
      }
    });
  });
});
