// `egw controller`: keeps every EgressGateway's gateway pods (planGatewayPods), drains the ones it removes, writes
// EgressGateway status, announces drains on client pods, and garbage-collects IPAM allocations of pods that no
// longer exist.
//
// Level-triggered: every change to a relevant kind (seen through one watch from the revision read at start) marks the
// state dirty, and a reconcile re-reads everything and converges; a periodic resync reconciles anyway. Errors are
// logged and retried with backoff; the loop only ends when `signal` aborts. runController assumes it is the only
// one acting; `egw controller` runs it through runElectedController, which runs it only while this process is the
// elected leader (leader.ts, docs/behaviour.md §4.1), writing through a store that refuses writes after the term.
//
// Drain (docs/behaviour.md §3.6): scale-down surplus and the pods of a deleted EgressGateway are deleted gracefully
// (deletePodGracefully: deletionTimestamp = now + the template's terminationGracePeriodSeconds, default 30); the
// kubelet keeps them serving their existing connections until then, the agents give them no new ones, and the pod
// is not counted as a replica, so a pod a user deletes is replaced at once. While a gateway pod drains, its clients
// carry the gatewayMaintenance* annotations (maintenance.ts); they are left in place afterwards.
//
// The clients of each gateway (status `clients`, the maintenance annotations) come from an EgressCalculator fed from
// the same watch (upsert/remove per event), built from a full list whenever the watch (re)starts.
import type { KubeGatewayPodOptions } from '../kube/gatewaypod.js';
import { namespaceOf, type Resource } from '../api/meta.js';
import { ANNOTATION, type EgressGateway, type IPPool, type Node, type Pod } from '../api/types.js';
import { EgressCalculator } from '../calc/calculator.js';
import { startInformer, type Informer } from '../datastore/informer.js';
import { isRaceError } from '../datastore/retry.js';
import type { Store } from '../datastore/types.js';
import { Ipam, type Allocation } from '../ipam/ipam.js';
import { parsePodHandle } from '../ipam/types.js';
import { createLogger, type Logger } from '../log.js';
import { Backoff, errText, sleep } from '../util.js';
import { deletePodGracefully } from './delete.js';
import { HistoryRetention, HISTORY_SAMPLE_MS } from './history.js';
import { fencedStore, type Elector } from './leader.js';
import { hasMaintenance, maintenanceAnnotations, planMaintenance } from './maintenance.js';
import { planGatewayPods } from './plan.js';
import { gatewayStatus, sameStatus } from './status.js';
import { controllerView, type ControllerView } from './view.js';
import { controllerMetrics, processRegistry } from '../metrics/metrics.js';
import { serveMetrics, type MetricsListen, type MetricsServer } from '../metrics/server.js';

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
  /** On a Kubernetes cluster: gateway pods get the cluster's container (planGatewayPods' `kubernetes`; docs/kubernetes.md). */
  kubernetesPods?: KubeGatewayPodOptions;
  /**
   * Compact the datastore's history older than this (docs/behaviour.md §4.1, item 7); undefined = never (etcd keeps
   * its own retention: --auto-compaction-retention).
   */
  historyRetentionMs?: number;
  /** After each reconcile: what the metrics show (view.ts). */
  onView?: (view: ControllerView) => void;
  /** The informer's watch lag per change (egw_datastore_watch_lag_seconds). */
  onLag?: (seconds: number) => void;
}

/** Kinds the calculator reads (which clients may use which gateway). */
const CALC_KINDS = new Set(['Pod', 'Namespace', 'EgressGatewayPolicy', 'FelixConfiguration', 'IPPool', 'Node']);
/** Kinds whose changes call for a reconcile. */
const WATCHED_KINDS = ['EgressGateway', 'IPAMBlock', ...CALC_KINDS];

/** Runs the controller until `signal` aborts; resolves then. Never rejects for datastore errors. */
export async function runController(opts: ControllerOptions): Promise<void> {
  await new Controller(opts).run();
}

export interface ElectedControllerOptions extends ControllerOptions {
  elector: Elector;
  /** Where to serve `/metrics` (docs/observability.md); absent or false = none (`egw controller` serves :9093). */
  metrics?: MetricsListen | false;
}

/**
 * `egw controller`: campaigns with `elector` until `signal` aborts, and while this process leads runs the controller
 * (a fresh one per term, so nothing a deposed leader believed is carried over) on a store that refuses writes once
 * the term has ended. A deposed leader follows again.
 */
export async function runElectedController(opts: ElectedControllerOptions): Promise<void> {
  const signal = opts.signal ?? new AbortController().signal;
  // The metrics outlive the terms: a standby serves leader 0 and no cluster view (only the leader reads it all).
  let leader = false;
  let view: ControllerView | undefined;
  let server: MetricsServer | undefined;
  let lag: ((s: number) => void) | undefined;
  if (opts.metrics) {
    const { registry, watchLag } = processRegistry();
    lag = (s) => watchLag.observe(s);
    controllerMetrics(registry, { leader: () => leader, gateways: () => view?.gateways ?? [], addresses: () => view?.addresses ?? [] });
    server = await serveMetrics(registry, opts.metrics, opts.log?.child('metrics'));
  }
  try {
    await opts.elector.run(signal, {
      onElected: async (term) => {
        leader = true;
        try {
          await runController({ ...opts, store: fencedStore(opts.store, term), signal: term.signal, onView: (v) => (view = v), onLag: lag });
        } finally {
          leader = false;
          view = undefined;
        }
      },
    });
  } finally {
    await server?.close();
  }
}

class Controller {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly signal: AbortSignal | undefined;
  private readonly resyncMs: number;
  private readonly gcGraceMs: number;
  private readonly random: () => number;
  private readonly kubernetesPods: KubeGatewayPodOptions | undefined;
  private readonly ipam: Ipam;
  private readonly history: HistoryRetention | undefined;
  private readonly onView: ControllerOptions['onView'];
  private readonly onLag: ControllerOptions['onLag'];
  private dirty = true;
  private wake: (() => void) | undefined;
  /** Fed from the watch: the clients of each gateway pod. */
  private calc = new EgressCalculator();
  /** Orphaned allocation (handle, address and claim time: a new claim is a new sighting) → when first seen (ms). */
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
    this.kubernetesPods = opts.kubernetesPods;
    this.onView = opts.onView;
    this.onLag = opts.onLag;
    this.ipam = new Ipam(this.store, { log: this.log.child('ipam') });
    this.history = opts.historyRetentionMs === undefined ? undefined : new HistoryRetention(opts.historyRetentionMs, Math.min(HISTORY_SAMPLE_MS, opts.historyRetentionMs / 5));
  }

  /** Drops history older than the retention, when a sample says it is due; a failure is retried next time. */
  private async compactHistory(): Promise<void> {
    if (!this.history || !this.store.compact || !this.history.wantsSample(Date.now())) return;
    const rev = this.history.note(Date.now(), await this.store.revision());
    if (rev === undefined) return;
    await this.store.compact(rev);
    this.log.debug('history compacted', { revision: rev });
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
    const stopInformer = new AbortController();
    const informer = this.startInformer(stopInformer.signal);
    const backoff = new Backoff({ minMs: 200, maxMs: 5000 });
    let retryMs = 0;
    let nextResync = Date.now() + this.resyncMs;
    /** When the next orphaned allocation's grace ends (a reconcile then releases it). */
    let nextGc: number | undefined;
    try {
      while (!this.signal?.aborted) {
        let failed = false;
        try {
          if (informer.syncs === 0) {
            // nothing to reconcile against before the first list
            await Promise.race([informer.whenSynced(), sleep(1000, this.signal)]);
            continue;
          }
          const now = Date.now();
          if (this.dirty || now >= nextResync || (nextGc !== undefined && now >= nextGc)) {
            this.dirty = false;
            nextResync = now + this.resyncMs;
            nextGc = await this.reconcile();
          }
          await this.compactHistory();
          backoff.reset();
        } catch (e) {
          failed = true;
          retryMs = backoff.next();
          this.log.error('reconcile failed; retrying', { error: errText(e), retryInMs: retryMs });
        }
        const deadline = failed ? Date.now() + retryMs : Math.min(nextResync, nextGc ?? Infinity);
        if (this.signal?.aborted) break;
        if (!failed && this.dirty) continue;
        // After a failure, wait out the backoff whatever changes; otherwise a change wakes us at once.
        await this.sleepUntil(deadline, !failed);
        if (failed) this.dirty = true;
      }
    } finally {
      this.signal?.removeEventListener('abort', onAbort);
      stopInformer.abort();
      await informer.done;
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

  /**
   * The informer (src/datastore/informer.ts) that feeds the calculator (clients per gateway, for status and
   * maintenance annotations) and wakes a reconcile on any change. A relist rebuilds the calculator.
   */
  private startInformer(signal: AbortSignal): Informer {
    return startInformer({
      store: this.store,
      kinds: WATCHED_KINDS,
      signal,
      onReplace: (objects) => {
        const calc = new EgressCalculator();
        for (const r of objects) if (CALC_KINDS.has(r.kind)) calc.upsert(r);
        this.calc = calc;
        this.poke();
      },
      onEvents: (events) => {
        for (const e of events) {
          if (!CALC_KINDS.has(e.object.kind)) continue;
          if (e.type === 'DELETED') this.calc.remove(e.object);
          else this.calc.upsert(e.object);
        }
        this.poke();
      },
      onLag: this.onLag,
      onError: (err, retryMs) => this.log.error('datastore list/watch failed; listing again', { error: errText(err), retryMs }),
    });
  }

  /** One pass over everything. Returns when the next orphan's grace ends, if any is pending. */
  private async reconcile(): Promise<number | undefined> {
    const [egws, pods, nodes, pools] = await Promise.all([
      this.store.list('EgressGateway').then((r) => r.items as EgressGateway[]),
      this.store.list('Pod').then((r) => r.items as Pod[]),
      this.store.list('Node').then((r) => r.items as Node[]),
      this.store.list('IPPool').then((r) => r.items as IPPool[]),
    ]);
    const records = await this.ipam.records();
    const allocations = new Map(records.map((a) => [a.handle, a.ip]));
    const namesByNs = new Map<string, Set<string>>();
    for (const p of pods) {
      const ns = namespaceOf(p);
      if (!namesByNs.has(ns)) namesByNs.set(ns, new Set());
      namesByNs.get(ns)!.add(p.metadata.name);
    }
    // The pods as this pass leaves them (drained ones with their deletionTimestamp, removed ones gone).
    const podsNow = new Map(pods.map((p) => [podKey(p), p]));
    const nodeNames = new Set(nodes.map((n) => n.metadata.name));

    const gateways = new Set<string>();
    for (const egw of egws) {
      const id = `${egw.metadata.namespace}/${egw.metadata.name}`;
      gateways.add(id);
      try {
        await this.reconcileGateway(egw, pods, nodes, pools, allocations, namesByNs.get(namespaceOf(egw)) ?? new Set(), podsNow);
      } catch (e) {
        if (isRaceError(e)) {
          this.log.debug('lost a race; reconciling again', { gateway: id, error: errText(e) });
          this.dirty = true;
        } else {
          throw e;
        }
      }
    }
    for (const id of [...this.lastProblems.keys()]) if (!gateways.has(id)) this.lastProblems.delete(id);

    for (const p of pods) {
      const of = p.metadata.annotations?.[ANNOTATION.gatewayOf];
      if (of === undefined) continue;
      if (p.metadata.deletionTimestamp) {
        // Draining on a node that no longer exists: no kubelet will ever finish it (Kubernetes' pod GC does this).
        if (!p.spec?.nodeName || !nodeNames.has(p.spec.nodeName)) await this.deletePod(p, `its node ${p.spec?.nodeName ?? '<none>'} no longer exists`, podsNow, 0);
        continue;
      }
      // Pods of EgressGateways that no longer exist: drained with their own grace period.
      if (gateways.has(`${p.metadata.namespace}/${of}`)) continue;
      await this.deletePod(p, `EgressGateway ${p.metadata.namespace}/${of} no longer exists`, podsNow);
    }

    await this.announceMaintenance([...podsNow.values()]);
    this.onView?.(controllerView(egws, [...podsNow.values()], pools, records.map((r) => r.ip)));
    return this.collectGarbage(pods, records);
  }

  private async reconcileGateway(
    egw: EgressGateway,
    pods: Pod[],
    nodes: Node[],
    pools: IPPool[],
    allocations: Map<string, string>,
    takenNames: Set<string>,
    podsNow: Map<string, Pod>,
  ): Promise<void> {
    const id = `${egw.metadata.namespace}/${egw.metadata.name}`;
    const plan = planGatewayPods(egw, pods, nodes, pools, { allocations, takenNames, random: this.random, kubernetes: this.kubernetesPods });

    const problemText = plan.problems.map((p) => `${p.reason}: ${p.message}`).join('; ');
    if (problemText !== (this.lastProblems.get(id) ?? '')) {
      if (problemText) {
        for (const p of plan.problems) this.log.warn(`EgressGateway ${id}: ${p.message}`, { reason: p.reason, replicas: egw.spec?.replicas });
      } else {
        this.log.info(`EgressGateway ${id}: problems resolved`);
      }
      this.lastProblems.set(id, problemText);
    }

    // Surplus pods drain for the template's grace period; pods whose node is gone (nothing runs them) go at once,
    // as do finished ones (deletePodGracefully decides that).
    const nodeNames = new Set(nodes.map((n) => n.metadata.name));
    const grace = egw.spec?.template?.spec?.terminationGracePeriodSeconds;
    const drained: Pod[] = [];
    for (const p of plan.delete) {
      const nodeGone = !p.spec?.nodeName || !nodeNames.has(p.spec.nodeName);
      const after = await this.deletePod(p, `gateway ${id}: ${nodeGone ? 'its node no longer exists' : 'scale down or replace'}`, podsNow, nodeGone ? 0 : grace);
      if (after) drained.push(after);
    }
    for (const p of plan.update) {
      const stored = (await this.store.update(p)) as Pod; // carries the resourceVersion read: Conflict → next round
      podsNow.set(podKey(p), stored);
      this.log.info('relabelled gateway pod', { gateway: id, pod: p.metadata.name });
    }
    for (const p of plan.create) {
      await this.store.create(p);
      takenNames.add(p.metadata.name);
      this.log.info('created gateway pod', { gateway: id, pod: p.metadata.name, node: p.spec.nodeName, pools: plan.pools.join(',') });
    }

    // Status as the plan leaves things: the pods drained just now count as draining.
    const after = { ...plan, delete: [], terminating: [...plan.terminating, ...drained] };
    const status = gatewayStatus(egw, after, { clients: (key) => this.calc.gatewayClients(key).length, previous: egw.status });
    if (!sameStatus(egw.status, status)) {
      const updated: Resource = { ...egw, status };
      await this.store.update(updated); // resourceVersion as read: a concurrent spec change wins, and we retry
    }
  }

  /**
   * Deletes a gateway pod through deletePodGracefully (grace undefined: the pod's own). Returns the pod if it is now
   * draining, undefined if it is gone.
   */
  private async deletePod(p: Pod, why: string, podsNow: Map<string, Pod>, grace?: number): Promise<Pod | undefined> {
    const key = { namespace: namespaceOf(p), name: p.metadata.name };
    const r = await deletePodGracefully(this.store, key, { gracePeriodSeconds: grace, uid: p.metadata.uid });
    if (r.outcome === 'not-found') return undefined;
    const pod = `${key.namespace}/${key.name}`;
    if (r.outcome === 'deleted') {
      podsNow.delete(pod);
      this.log.info('deleted gateway pod', { pod, node: p.spec?.nodeName, why });
      return undefined;
    }
    podsNow.set(pod, r.pod!);
    if (r.outcome === 'terminating') this.log.info('deleted gateway pod (draining)', { pod, node: p.spec?.nodeName, why, until: r.pod!.metadata.deletionTimestamp });
    return r.pod;
  }

  /**
   * Puts the gatewayMaintenance* annotations on the clients of every draining gateway pod: one revision-checked
   * write per client whose annotations differ (a Conflict is retried by the next pass). Annotations of a drain that
   * is over are left as they are: they record the last maintenance.
   */
  private async announceMaintenance(pods: Pod[]): Promise<void> {
    const want = planMaintenance(pods, (key) => this.calc.gatewayClients(key));
    if (want.size === 0) return;
    const byKey = new Map(pods.map((p) => [podKey(p), p]));
    for (const [key, m] of want) {
      const p = byKey.get(key);
      if (!p || hasMaintenance(p, m)) continue;
      const next: Pod = { ...p, metadata: { ...p.metadata, annotations: { ...(p.metadata.annotations ?? {}), ...maintenanceAnnotations(m) } } };
      try {
        await this.store.update(next);
        this.log.info('client told of gateway maintenance', { pod: key, gateway: m.gatewayIP, until: m.finished });
      } catch (e) {
        if (isRaceError(e)) {
          this.dirty = true;
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * Releases allocations whose handle `pod:<ns>/<name>` names a pod that has been missing for gcGraceMs (the grace
   * keeps a kubelet that is setting a pod up, or tearing it down, from being raced), and that nobody claimed again
   * meanwhile. The release is guarded (Ipam.release onlyIf): decided on the blocks it writes, conditioned on them,
   * after reading the pod once more, so an allocate re-claiming the address or a pod coming back wins. Returns the
   * next grace end.
   */
  private async collectGarbage(pods: Pod[], records: Allocation[]): Promise<number | undefined> {
    const present = new Set(pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`));
    const now = Date.now();
    let next: number | undefined;
    const sighting = (a: Allocation) => `${a.handle}\u0000${a.ip}\u0000${a.claimedAt}`;
    const current = new Set(records.map(sighting));
    for (const k of [...this.orphans.keys()]) if (!current.has(k)) this.orphans.delete(k);
    for (const a of records) {
      const who = parsePodHandle(a.handle);
      if (!who) continue;
      const key = sighting(a);
      if (present.has(`${who.namespace}/${who.name}`)) {
        this.orphans.delete(key);
        continue;
      }
      const since = this.orphans.get(key);
      if (since === undefined) {
        this.orphans.set(key, now);
        next = Math.min(next ?? Infinity, now + this.gcGraceMs);
        continue;
      }
      if (now - since < this.gcGraceMs) {
        next = Math.min(next ?? Infinity, since + this.gcGraceMs);
        continue;
      }
      const podKey = { kind: 'Pod', namespace: who.namespace, name: who.name };
      const released = await this.ipam.release(a.handle, {
        // every address it holds now is one seen orphaned for the whole grace (not claimed since), and the pod is still gone
        onlyIf: async (held) => held.every((h) => now - (this.orphans.get(sighting(h)) ?? now) >= this.gcGraceMs) && !(await this.store.get(podKey)),
      });
      if (released) this.log.info('released the address of a pod that no longer exists', { handle: a.handle, ip: a.ip });
      this.orphans.delete(key);
    }
    return next;
  }
}

function podKey(p: Pod): string {
  return `${namespaceOf(p)}/${p.metadata.name}`;
}
