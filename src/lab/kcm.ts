// `egw lab kcm`: the lab's kube-controller-manager stand-in (docs/behaviour.md §6) — the Deployment and ReplicaSet
// controllers and their garbage collection, which the lab needs because it has no Kubernetes control plane.
//
// Thin: the one informer (src/datastore/informer.ts) keeps Deployments, ReplicaSets and Pods; each change wakes a
// reconcile that plans from that view (rollout.ts, replicaset.ts: pure) and writes the difference. Writes of shared
// objects go through updateWithRetry (src/datastore/retry.ts) and pod deletion through deletePodGracefully
// (src/controller/delete.ts), so the lab kubelet drains a removed pod for its grace period.
//
// A reconcile never plans from a view older than its own writes: it waits until the informer has seen the revision
// of the last one (Kubernetes' controllers keep "expectations" for the same reason), so a pod it just created is not
// created twice. A reconcile also runs every resyncMs, and when a pod becomes available after minReadySeconds.
import { keyOf } from '../api/meta.js';
import type { Deployment, Pod, ReplicaSet } from '../api/types.js';
import { deletePodGracefully } from '../controller/delete.js';
import { startInformer, type Informer } from '../datastore/informer.js';
import { isRaceError, updateWithRetry } from '../datastore/retry.js';
import type { Store } from '../datastore/types.js';
import { createLogger, type Logger } from '../log.js';
import { Backoff, errText, sleep } from '../util.js';
import { planReplicaSet } from './replicaset.js';
import { orphans, planDeployment, statusKey } from './rollout.js';
import { APPS } from '../api/types.js';

export interface KcmOptions {
  store: Store;
  log?: Logger;
  signal?: AbortSignal;
  /** Reconcile at least this often. Default 5000 ms. */
  resyncMs?: number;
  /** Randomness for pod names (tests). */
  random?: () => number;
}

export const KCM_KINDS = ['Deployment', 'ReplicaSet', 'Pod'] as const;
/** How long a reconcile waits for the informer to show its own last write before planning anyway. */
const OWN_WRITES_WAIT_MS = 5000;

/** Runs until `signal` aborts; never rejects for datastore errors (they are logged and retried with backoff). */
export async function runKcm(opts: KcmOptions): Promise<void> {
  const k = new Kcm(opts);
  await k.run();
}

class Kcm {
  private readonly log: Logger;
  private readonly resyncMs: number;
  private dirty = true;
  private wake: (() => void) | undefined;
  /** Revision of this process's last write. */
  private lastWrite = 0;
  private informer!: Informer;

  constructor(private readonly o: KcmOptions) {
    this.log = o.log ?? createLogger('kcm');
    this.resyncMs = o.resyncMs ?? 5000;
  }

  private poke = (): void => {
    this.dirty = true;
    this.wake?.();
  };

  async run(): Promise<void> {
    const signal = this.o.signal ?? new AbortController().signal;
    if (signal.aborted) return;
    this.log.info('kube-controller-manager stand-in started', { store: this.o.store.description });
    const stop = new AbortController();
    this.informer = startInformer({
      store: this.o.store,
      kinds: KCM_KINDS,
      signal: stop.signal,
      onReplace: () => this.poke(),
      onEvents: () => this.poke(),
      onError: (err, retryMs) => this.log.error('datastore list/watch failed; listing again', { error: errText(err), retryMs }),
      log: this.log,
    });
    const onAbort = () => this.wake?.();
    signal.addEventListener('abort', onAbort);
    const backoff = new Backoff({ minMs: 200, maxMs: 5000 });
    let next = Date.now() + this.resyncMs;
    try {
      while (!signal.aborted) {
        if (this.informer.syncs === 0) {
          await Promise.race([this.informer.whenSynced(), sleep(1000, signal)]);
          continue;
        }
        let wait: number;
        try {
          if (this.dirty || Date.now() >= next) {
            this.dirty = false;
            await this.ownWritesSeen(signal);
            const wakeAt = await this.reconcile();
            next = Math.min(Date.now() + this.resyncMs, wakeAt ?? Infinity);
          }
          backoff.reset();
          wait = next - Date.now();
        } catch (e) {
          wait = backoff.next();
          this.dirty = true;
          this.log.error('reconcile failed; retrying', { error: errText(e), retryInMs: wait });
        }
        if (!this.dirty) await this.sleep(Math.max(0, wait), signal);
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      stop.abort();
      await this.informer.done;
      this.log.info('kube-controller-manager stand-in stopped');
    }
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = done;
      if (this.dirty || signal.aborted) done();
    });
  }

  private async ownWritesSeen(signal: AbortSignal): Promise<void> {
    const until = Date.now() + OWN_WRITES_WAIT_MS;
    while (this.informer.revision < this.lastWrite && Date.now() < until && !signal.aborted) await sleep(20, signal);
  }

  private wrote(r: { metadata: { resourceVersion?: string } } | undefined): void {
    const rev = Number(r?.metadata.resourceVersion);
    if (Number.isFinite(rev) && rev > this.lastWrite) this.lastWrite = rev;
  }

  /** Ignores a lost race (the next reconcile decides again from the new state); rethrows anything else. */
  private async racy<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
    try {
      return await f();
    } catch (e) {
      if (!isRaceError(e)) throw e;
      this.log.debug('lost a race; deciding again', { what, error: errText(e) });
      this.dirty = true;
      return undefined;
    }
  }

  /** One pass over the view. Returns when a pod becomes available (a status change without any event), if ever. */
  private async reconcile(): Promise<number | undefined> {
    const store = this.o.store;
    const now = Date.now();
    const deployments = this.informer.list('Deployment') as Deployment[];
    let replicaSets = this.informer.list('ReplicaSet') as ReplicaSet[];
    const pods = this.informer.list('Pod') as Pod[];
    let wakeAt: number | undefined;

    // Garbage collection: what a deleted owner left (egw delete -f, or a CLI that stopped half-way).
    const garbage = orphans(deployments, replicaSets, pods);
    for (const rs of garbage.replicaSets) {
      const gone = await this.racy('delete orphaned ReplicaSet', () => store.delete(keyOf(rs), { resourceVersion: rs.metadata.resourceVersion }));
      this.wrote(gone);
      if (gone) this.log.info('deleted ReplicaSet: its Deployment is gone', { rs: `${rs.metadata.namespace}/${rs.metadata.name}` });
    }
    for (const p of garbage.pods) await this.deletePod(p, 'its ReplicaSet is gone');
    const dropped = new Set(garbage.replicaSets.map((r) => r.metadata.uid));
    replicaSets = replicaSets.filter((r) => !dropped.has(r.metadata.uid));

    // Deployments → ReplicaSets.
    const byUid = new Map(replicaSets.map((r) => [r.metadata.uid, r]));
    for (const d of deployments) {
      if (d.metadata.deletionTimestamp) continue;
      const plan = planDeployment(d, replicaSets, pods, now);
      const id = `${d.metadata.namespace}/${d.metadata.name}`;
      for (const rs of plan.create) {
        const made = (await this.racy('create ReplicaSet', () => store.create(rs))) as ReplicaSet | undefined;
        this.wrote(made);
        if (made) {
          byUid.set(made.metadata.uid, made);
          this.log.info('created ReplicaSet', { deployment: id, rs: made.metadata.name, replicas: made.spec.replicas, revision: plan.revision });
        }
      }
      for (const rs of plan.update) {
        const upd = (await this.racy('scale ReplicaSet', () => store.update(rs))) as ReplicaSet | undefined;
        this.wrote(upd);
        if (upd) {
          byUid.set(upd.metadata.uid, upd);
          this.log.info('scaled ReplicaSet', { deployment: id, rs: upd.metadata.name, replicas: upd.spec.replicas });
        }
      }
      for (const rs of plan.delete) {
        const gone = await this.racy('delete old ReplicaSet', () => store.delete(keyOf(rs), { resourceVersion: rs.metadata.resourceVersion }));
        this.wrote(gone);
        if (gone) byUid.delete(rs.metadata.uid);
      }
      const r = await updateWithRetry<Deployment>(store, keyOf(d), (cur) => {
        if (!cur || cur.metadata.uid !== d.metadata.uid) return undefined;
        const annOk = cur.metadata.annotations?.[APPS.revision] === plan.revision;
        if (annOk && statusKey(cur.status) === statusKey(plan.status)) return undefined;
        cur.metadata.annotations = { ...(cur.metadata.annotations ?? {}), [APPS.revision]: plan.revision };
        cur.status = plan.status;
        return cur;
      });
      if (r.outcome === 'updated') this.wrote(r.object);
    }

    // ReplicaSets → pods (with what this pass just wrote, so a new ReplicaSet gets its pods at once).
    const taken = new Set(pods.map((p) => p.metadata.name));
    for (const rs of byUid.values()) {
      const plan = planReplicaSet(rs, pods, { now, random: this.o.random, takenNames: taken });
      if (plan.wakeAt !== undefined && (wakeAt === undefined || plan.wakeAt < wakeAt)) wakeAt = plan.wakeAt;
      for (const p of plan.create) {
        taken.add(p.metadata.name);
        const made = await this.racy('create pod', () => store.create(p));
        this.wrote(made);
        if (made) this.log.info('created pod', { rs: `${rs.metadata.namespace}/${rs.metadata.name}`, pod: p.metadata.name });
      }
      for (const p of plan.delete) await this.deletePod(p, `ReplicaSet ${rs.metadata.name} scaled to ${rs.spec.replicas}`);
      const r = await updateWithRetry<ReplicaSet>(store, keyOf(rs), (cur) => {
        if (!cur || cur.metadata.uid !== rs.metadata.uid) return undefined;
        if (JSON.stringify(cur.status ?? null) === JSON.stringify(plan.status)) return undefined;
        cur.status = plan.status;
        return cur;
      });
      if (r.outcome === 'updated') this.wrote(r.object);
    }
    return wakeAt;
  }

  private async deletePod(p: Pod, why: string): Promise<void> {
    const r = await this.racy('delete pod', () => deletePodGracefully(this.o.store, { namespace: p.metadata.namespace ?? 'default', name: p.metadata.name }, { uid: p.metadata.uid }));
    if (!r || r.outcome === 'not-found' || r.outcome === 'unchanged') return;
    this.wrote(r.pod);
    this.log.info(r.outcome === 'deleted' ? 'deleted pod' : 'deleting pod (grace period)', { pod: `${p.metadata.namespace}/${p.metadata.name}`, why, until: r.pod?.metadata.deletionTimestamp });
  }
}
