// The ReplicaSet half of the lab's kube-controller-manager stand-in (docs/behaviour.md §6), pure: a ReplicaSet and
// the pods of its namespace → the pods to create and to delete, and its status. src/lab/kcm.ts applies the plan.
//
// As Kubernetes' ReplicaSet controller (Kubernetes documentation, "ReplicaSet"):
// - A ReplicaSet's pods are those whose controller ownerReference is it (by uid). Active pods count: not
//   terminating (no deletionTimestamp) and not finished (Succeeded/Failed). egw does not adopt orphans.
// - Fewer active pods than spec.replicas: new pods `<rs>-<5 random characters>` with the template's labels and
//   annotations, the template's spec (no nodeName: the lab kubelets bind it, src/lab/podspec.ts chooseNode) and an
//   ownerReference to the ReplicaSet. More: the surplus is deleted gracefully, in Kubernetes' order — unscheduled
//   before scheduled, Pending before Unknown before Running, not Ready before Ready, Ready for a shorter time first,
//   more container restarts first, newer first.
// - status: replicas (active pods), fullyLabeledReplicas, readyReplicas (isPodReady, src/api/pod.ts), availableReplicas
//   (Ready for at least minReadySeconds), observedGeneration.
import { isControlledBy, matchesLabelSelector, ownerRef } from '../api/apps.js';
import { isPodFinished, isPodReady, readyCondition } from '../api/pod.js';
import type { Pod, ReplicaSet, ReplicaSetStatus } from '../api/types.js';
import { randomSuffix } from '../controller/plan.js';

/** A pod that counts towards its ReplicaSet's replicas: neither terminating nor finished. */
export function isPodActive(p: Pod): boolean {
  return !p.metadata.deletionTimestamp && !isPodFinished(p);
}

/** When a Ready pod became (or becomes) available: Ready since + minReadySeconds (ms); undefined if not Ready. */
export function availableAt(p: Pod, minReadySeconds: number): number | undefined {
  if (!isPodReady(p)) return undefined;
  if (minReadySeconds <= 0) return -Infinity;
  const since = Date.parse(readyCondition(p)?.lastTransitionTime ?? '');
  return Number.isFinite(since) ? since + minReadySeconds * 1000 : -Infinity;
}

/** Available: Ready for at least minReadySeconds (Kubernetes' podutil.IsPodAvailable). */
export function isPodAvailable(p: Pod, minReadySeconds: number, now: number): boolean {
  const at = availableAt(p, minReadySeconds);
  return at !== undefined && at <= now;
}

/** The pods `owner` controls (by uid), in any state. */
export function podsOf(owner: ReplicaSet, pods: readonly Pod[]): Pod[] {
  return pods.filter((p) => p.metadata.namespace === owner.metadata.namespace && isControlledBy(p, owner));
}

export interface ReplicaCounts {
  /** Active pods. */
  replicas: number;
  ready: number;
  available: number;
  /** Every pod, terminating or finished too (a ReplicaSet with pods left is not removed by history cleanup). */
  all: number;
}

/** The counts of a ReplicaSet from its pods (fresher than its stored status). */
export function replicaCounts(rs: ReplicaSet, pods: readonly Pod[], now: number): ReplicaCounts {
  const mine = podsOf(rs, pods);
  const active = mine.filter(isPodActive);
  const min = rs.spec.minReadySeconds ?? 0;
  return {
    replicas: active.length,
    ready: active.filter(isPodReady).length,
    available: active.filter((p) => isPodAvailable(p, min, now)).length,
    all: mine.length,
  };
}

function restarts(p: Pod): number {
  const cs = p.status?.containerStatuses as { restartCount?: number }[] | undefined;
  return (cs ?? []).reduce((n, c) => n + (typeof c.restartCount === 'number' ? c.restartCount : 0), 0);
}

const PHASE_RANK: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

/** Kubernetes' order of deletion (see the file comment): the first pod is the first to go. */
export function deletionOrder(pods: readonly Pod[]): Pod[] {
  const t = (s: string | undefined) => {
    const v = Date.parse(s ?? '');
    return Number.isFinite(v) ? v : 0;
  };
  const key = (p: Pod) => ({
    scheduled: p.spec?.nodeName ? 1 : 0,
    phase: PHASE_RANK[p.status?.phase ?? 'Pending'] ?? 0,
    ready: isPodReady(p) ? 1 : 0,
    readySince: isPodReady(p) ? t(readyCondition(p)?.lastTransitionTime) : 0,
    restarts: restarts(p),
    created: t(p.metadata.creationTimestamp),
  });
  return [...pods].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    return (
      x.scheduled - y.scheduled ||
      x.phase - y.phase ||
      x.ready - y.ready ||
      y.readySince - x.readySince || // Ready more recently goes first
      y.restarts - x.restarts ||
      y.created - x.created || // newer goes first
      (a.metadata.name < b.metadata.name ? 1 : a.metadata.name > b.metadata.name ? -1 : 0)
    );
  });
}

export interface ReplicaSetPlanOptions {
  now: number;
  /** Randomness for pod name suffixes (tests). */
  random?: () => number;
  /** Pod names already taken in the namespace (a new name avoids them). */
  takenNames?: ReadonlySet<string>;
}

export interface ReplicaSetPlan {
  create: Pod[];
  /** Deleted gracefully (src/controller/delete.ts), each with its uid. */
  delete: Pod[];
  status: ReplicaSetStatus;
  /** The earliest future time (ms) a pod becomes available: status changes then without any write. */
  wakeAt?: number;
}

/** The pod `rs` creates next, named `name`. */
export function podFor(rs: ReplicaSet, name: string): Pod {
  const t = rs.spec.template;
  const metadata: Pod['metadata'] = { name, namespace: rs.metadata.namespace, labels: { ...t.metadata.labels }, ownerReferences: [ownerRef(rs)] };
  if (t.metadata.annotations && Object.keys(t.metadata.annotations).length) metadata.annotations = { ...t.metadata.annotations };
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: structuredClone(t.spec) };
}

export function planReplicaSet(rs: ReplicaSet, pods: readonly Pod[], opts: ReplicaSetPlanOptions): ReplicaSetPlan {
  const mine = podsOf(rs, pods);
  const active = mine.filter(isPodActive);
  const min = rs.spec.minReadySeconds ?? 0;
  const want = rs.metadata.deletionTimestamp ? 0 : rs.spec.replicas;
  const create: Pod[] = [];
  let del: Pod[] = [];
  if (active.length < want) {
    const random = opts.random ?? Math.random;
    const taken = new Set([...(opts.takenNames ?? []), ...pods.map((p) => p.metadata.name)]);
    for (let i = active.length; i < want; i++) {
      let name: string;
      do name = `${rs.metadata.name}-${randomSuffix(random)}`;
      while (taken.has(name));
      taken.add(name);
      create.push(podFor(rs, name));
    }
  } else if (active.length > want) {
    del = deletionOrder(active).slice(0, active.length - want);
  }
  let wakeAt: number | undefined;
  for (const p of active) {
    const at = availableAt(p, min);
    if (at !== undefined && at > opts.now && (wakeAt === undefined || at < wakeAt)) wakeAt = at;
  }
  const status: ReplicaSetStatus = {
    replicas: active.length,
    fullyLabeledReplicas: active.filter((p) => matchesLabelSelector({ matchLabels: rs.spec.template.metadata.labels }, p.metadata.labels)).length,
    readyReplicas: active.filter(isPodReady).length,
    availableReplicas: active.filter((p) => isPodAvailable(p, min, opts.now)).length,
    observedGeneration: rs.metadata.generation ?? 1,
  };
  return { create, delete: del, status, ...(wakeAt !== undefined ? { wakeAt } : {}) };
}
