// `egw controller`: keeps every EgressGateway's gateway pods (planGatewayPods), records simple status conditions,
// and garbage-collects IPAM allocations of pods that no longer exist.
//
// Level-triggered: every change to a relevant kind (seen through one watch from the revision read at start) marks the
// state dirty, and a reconcile re-reads everything and converges; a periodic resync reconciles anyway. Errors are
// logged and retried with backoff; the loop only ends when `signal` aborts. One controller per datastore is assumed.
import type { Resource } from '../api/meta.js';
import { ANNOTATION, type Condition, type EgressGateway, type IPPool, type Node, type Pod } from '../api/types.js';
import { StoreError, type Store, type Watch, type WatchEvent } from '../datastore/types.js';
import { Ipam } from '../ipam/ipam.js';
import { parsePodHandle } from '../ipam/types.js';
import { createLogger, type Logger } from '../log.js';
import { gatewayConditions, planGatewayPods, sameConditions } from './plan.js';

export interface ControllerOptions {
  store: Store;
  log?: Logger;
  signal?: AbortSignal;
  /** Reconcile at least this often even without changes. Default 10 000 ms. */
  resyncMs?: number;
  /** An allocation whose pod is gone is released after it has been seen orphaned this long. Default 10 000 ms. */
  gcGraceMs?: number;
  /** Source of randomness for pod name suffixes (tests). */
  random?: () => number;
}

const RELEVANT_KINDS = new Set(['EgressGateway', 'Pod', 'Node', 'IPPool', 'IPAMBlock']);

/** Runs the controller until `signal` aborts; resolves then. Never rejects for datastore errors. */
export async function runController(opts: ControllerOptions): Promise<void> {
  await new Controller(opts).run();
}

class Controller {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly signal: AbortSignal | undefined;
  private readonly resyncMs: number;
  private readonly gcGraceMs: number;
  private readonly random: () => number;
  private readonly ipam: Ipam;
  private dirty = true;
  private wake: (() => void) | undefined;
  private watch: Watch | undefined;
  private watchBroken = false;
  /** Orphaned allocation handle → when first seen orphaned (ms). */
  private readonly orphans = new Map<string, number>();
  /** Last logged problem text per gateway (`ns/name`), so a lasting problem is logged once. */
  private readonly lastProblems = new Map<string, string>();

  constructor(opts: ControllerOptions) {
    this.store = opts.store;
    this.log = opts.log ?? createLogger('controller');
    this.signal = opts.signal;
    this.resyncMs = opts.resyncMs ?? 10_000;
    this.gcGraceMs = opts.gcGraceMs ?? 10_000;
    this.random = opts.random ?? Math.random;
    this.ipam = new Ipam(this.store, { log: this.log.child('ipam') });
  }

  private poke = (): void => {
    this.dirty = true;
    this.wake?.();
  };

  async run(): Promise<void> {
    if (this.signal?.aborted) return;
    const onAbort = () => this.stop?.();
    this.signal?.addEventListener('abort', onAbort);
    this.log.info('controller started', { store: this.store.description, resyncMs: this.resyncMs });
    let backoff = 0;
    let nextResync = Date.now() + this.resyncMs;
    /** When the next orphaned allocation's grace ends (a reconcile then releases it). */
    let nextGc: number | undefined;
    try {
      while (!this.signal?.aborted) {
        let failed = false;
        try {
          if (!this.watch || this.watchBroken) await this.startWatch();
          const now = Date.now();
          if (this.dirty || now >= nextResync || (nextGc !== undefined && now >= nextGc)) {
            this.dirty = false;
            nextResync = now + this.resyncMs;
            nextGc = await this.reconcile();
          }
          backoff = 0;
        } catch (e) {
          failed = true;
          backoff = Math.min(backoff ? backoff * 2 : 200, 5000);
          this.log.error('reconcile failed; retrying', { error: errorText(e), retryInMs: backoff });
        }
        const deadline = failed ? Date.now() + backoff : Math.min(nextResync, nextGc ?? Infinity);
        if (this.signal?.aborted) break;
        if (!failed && this.dirty) continue;
        // After a failure, wait out the backoff whatever changes; otherwise a change wakes us at once.
        await this.sleepUntil(deadline, !failed);
        if (failed) this.dirty = true;
      }
    } finally {
      this.signal?.removeEventListener('abort', onAbort);
      await this.watch?.close().catch(() => {});
      this.watch = undefined;
      this.log.info('controller stopped');
    }
  }

  /** Wakes the current sleep on abort. */
  private stop: (() => void) | undefined;

  private sleepUntil(deadline: number, wakeOnChange: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = undefined;
        this.stop = undefined;
        resolve();
      };
      const t = setTimeout(done, Math.max(0, deadline - Date.now()));
      this.stop = done;
      if (wakeOnChange) this.wake = done;
      if ((wakeOnChange && this.dirty) || this.signal?.aborted) done();
    });
  }

  private async startWatch(): Promise<void> {
    await this.watch?.close().catch(() => {});
    this.watch = undefined;
    this.watchBroken = false;
    const rev = await this.store.revision();
    this.watch = await this.store.watch(
      {
        fromRevision: rev,
        onError: (err) => {
          this.log.warn('watch stopped; restarting', { error: errorText(err) });
          this.watchBroken = true;
          this.poke();
        },
      },
      (events: WatchEvent[]) => {
        if (events.some((e) => RELEVANT_KINDS.has(e.object.kind))) this.poke();
      },
    );
    // Everything up to `rev` is read by the reconcile that follows.
    this.dirty = true;
  }

  /** One pass over everything. Returns when the next orphan's grace ends, if any is pending. */
  private async reconcile(): Promise<number | undefined> {
    const [egws, pods, nodes, pools] = await Promise.all([
      this.store.list('EgressGateway').then((r) => r.items as EgressGateway[]),
      this.store.list('Pod').then((r) => r.items as Pod[]),
      this.store.list('Node').then((r) => r.items as Node[]),
      this.store.list('IPPool').then((r) => r.items as IPPool[]),
    ]);
    const allocations = await this.ipam.allocations();
    const namesByNs = new Map<string, Set<string>>();
    for (const p of pods) {
      const ns = p.metadata.namespace ?? '';
      if (!namesByNs.has(ns)) namesByNs.set(ns, new Set());
      namesByNs.get(ns)!.add(p.metadata.name);
    }

    const gateways = new Set<string>();
    for (const egw of egws) {
      const id = `${egw.metadata.namespace}/${egw.metadata.name}`;
      gateways.add(id);
      try {
        await this.reconcileGateway(egw, pods, nodes, pools, allocations, namesByNs.get(egw.metadata.namespace ?? '') ?? new Set());
      } catch (e) {
        if (e instanceof StoreError && (e.code === 'Conflict' || e.code === 'AlreadyExists' || e.code === 'NotFound')) {
          this.log.debug('lost a race; reconciling again', { gateway: id, error: e.message });
          this.dirty = true;
        } else {
          throw e;
        }
      }
    }
    for (const id of [...this.lastProblems.keys()]) if (!gateways.has(id)) this.lastProblems.delete(id);

    // Pods of EgressGateways that no longer exist.
    for (const p of pods) {
      const of = p.metadata.annotations?.[ANNOTATION.gatewayOf];
      if (of === undefined || p.metadata.deletionTimestamp) continue;
      if (gateways.has(`${p.metadata.namespace}/${of}`)) continue;
      await this.deletePod(p, `EgressGateway ${p.metadata.namespace}/${of} no longer exists`);
    }

    return this.collectGarbage(pods, allocations);
  }

  private async reconcileGateway(
    egw: EgressGateway,
    pods: Pod[],
    nodes: Node[],
    pools: IPPool[],
    allocations: Map<string, string>,
    takenNames: Set<string>,
  ): Promise<void> {
    const id = `${egw.metadata.namespace}/${egw.metadata.name}`;
    const plan = planGatewayPods(egw, pods, nodes, pools, { allocations, takenNames, random: this.random });

    const problemText = plan.problems.map((p) => `${p.reason}: ${p.message}`).join('; ');
    if (problemText !== (this.lastProblems.get(id) ?? '')) {
      if (problemText) {
        for (const p of plan.problems) this.log.warn(`EgressGateway ${id}: ${p.message}`, { reason: p.reason, replicas: egw.spec?.replicas });
      } else {
        this.log.info(`EgressGateway ${id}: problems resolved`);
      }
      this.lastProblems.set(id, problemText);
    }

    for (const p of plan.delete) await this.deletePod(p, `gateway ${id}: scale down or replace`);
    for (const p of plan.update) {
      await this.store.update(p); // carries the resourceVersion read: Conflict → next round
      this.log.info('relabelled gateway pod', { gateway: id, pod: p.metadata.name });
    }
    for (const p of plan.create) {
      await this.store.create(p);
      takenNames.add(p.metadata.name);
      this.log.info('created gateway pod', { gateway: id, pod: p.metadata.name, node: p.spec.nodeName, pools: plan.pools.join(',') });
    }

    const previous = egw.status?.conditions ?? [];
    const replicas = Number.isInteger(egw.spec?.replicas) && egw.spec.replicas >= 0 ? egw.spec.replicas : 1;
    const conditions: Condition[] = gatewayConditions(plan, replicas, previous);
    if (!sameConditions(previous, conditions)) {
      const updated: Resource = { ...egw, status: { ...(egw.status ?? {}), conditions } };
      await this.store.update(updated); // resourceVersion as read: a concurrent spec change wins, and we retry
    }
  }

  private async deletePod(p: Pod, why: string): Promise<void> {
    try {
      await this.store.delete({ kind: 'Pod', namespace: p.metadata.namespace ?? '', name: p.metadata.name });
      this.log.info('deleted gateway pod', { pod: `${p.metadata.namespace}/${p.metadata.name}`, node: p.spec?.nodeName, why });
    } catch (e) {
      if (!(e instanceof StoreError && e.code === 'NotFound')) throw e;
    }
  }

  /**
   * Releases allocations whose handle `pod:<ns>/<name>` names a pod that has been missing for gcGraceMs (the grace
   * keeps a kubelet that is setting a pod up, or tearing it down, from being raced). Returns the next grace end.
   */
  private async collectGarbage(pods: Pod[], allocations: Map<string, string>): Promise<number | undefined> {
    const present = new Set(pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`));
    const now = Date.now();
    let next: number | undefined;
    for (const h of [...this.orphans.keys()]) if (!allocations.has(h)) this.orphans.delete(h);
    for (const [handle, ip] of allocations) {
      const who = parsePodHandle(handle);
      if (!who) continue;
      if (present.has(`${who.namespace}/${who.name}`)) {
        this.orphans.delete(handle);
        continue;
      }
      const since = this.orphans.get(handle);
      if (since === undefined) {
        this.orphans.set(handle, now);
        next = Math.min(next ?? Infinity, now + this.gcGraceMs);
        continue;
      }
      if (now - since < this.gcGraceMs) {
        next = Math.min(next ?? Infinity, since + this.gcGraceMs);
        continue;
      }
      // Read the pod once more right before releasing.
      if (await this.store.get({ kind: 'Pod', namespace: who.namespace, name: who.name })) {
        this.orphans.delete(handle);
        continue;
      }
      if (await this.ipam.release(handle)) this.log.info('released the address of a pod that no longer exists', { handle, ip });
      this.orphans.delete(handle);
    }
    return next;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
