// The Deployment half of the lab's kube-controller-manager stand-in (docs/behaviour.md §6), pure: a Deployment, the
// ReplicaSets and pods of its namespace → the ReplicaSets to create, scale and delete, the Deployment's revision and
// status. src/lab/kcm.ts applies it; src/lab/replicaset.ts turns each ReplicaSet's replicas into pods.
//
// As Kubernetes' deployment controller (Kubernetes documentation, "Deployments"):
// - The new ReplicaSet is the owned one whose pod-template-hash label is the hash of the Deployment's template
//   (podTemplateHash); it is `<deployment>-<hash>`, with the template's labels + pod-template-hash, a selector with
//   it, an ownerReference to the Deployment and the revision annotation (max of the old ones + 1). Going back to an
//   earlier template reuses its ReplicaSet, with a new revision.
// - RollingUpdate, with maxSurge rounded up and maxUnavailable rounded down from percentages of spec.replicas (both
//   0 → maxUnavailable 1): the new ReplicaSet grows while the ReplicaSets' replicas together stay ≤ replicas +
//   maxSurge; old ReplicaSets shrink (first their pods that are not available, then oldest ReplicaSet first) while
//   available pods stay ≥ replicas − maxUnavailable. Counts come from the pods (replicaset.ts), "available" being
//   Ready (isPodReady) for minReadySeconds. A step that scales the new ReplicaSet up waits for the next one to scale
//   old ones down, as Kubernetes does.
// - Recreate: old ReplicaSets go to 0; the new one is created (or scaled) only once none of their pods is left.
// - Old ReplicaSets with 0 replicas and no pods beyond revisionHistoryLimit are deleted, oldest first.
// - status: replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas, observedGeneration, and
//   the conditions Available (MinimumReplicasAvailable) and Progressing (NewReplicaSetCreated, ReplicaSetUpdated,
//   NewReplicaSetAvailable, ProgressDeadlineExceeded), as kubectl shows them.
import { controllerOf, isControlledBy, ownerRef, podTemplateHash, surgeAndUnavailable } from '../api/apps.js';
import { setCondition, type WantedCondition } from '../api/conditions.js';
import { APPS, type Deployment, type DeploymentCondition, type DeploymentStatus, type Pod, type ReplicaSet } from '../api/types.js';
import { replicaCounts, type ReplicaCounts } from './replicaset.js';

export interface RolloutPlan {
  /** The new ReplicaSet, when it does not exist yet. */
  create: ReplicaSet[];
  /** Owned ReplicaSets whose spec.replicas or annotations change (the whole object, to write). */
  update: ReplicaSet[];
  /** Old ReplicaSets beyond revisionHistoryLimit. */
  delete: ReplicaSet[];
  /** The Deployment's revision annotation. */
  revision: string;
  status: DeploymentStatus;
}

function revisionOf(rs: ReplicaSet): number {
  const n = Number(rs.metadata.annotations?.[APPS.revision]);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

function createdAt(r: ReplicaSet): number {
  const t = Date.parse(r.metadata.creationTimestamp ?? '');
  return Number.isFinite(t) ? t : 0;
}

/** Oldest first: revision, then creation time, then name. */
function oldestFirst(a: ReplicaSet, b: ReplicaSet): number {
  return revisionOf(a) - revisionOf(b) || createdAt(a) - createdAt(b) || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
}

/** The ReplicaSet the Deployment's current template gives (without status): what is created when none exists. */
export function newReplicaSetFor(d: Deployment, hash: string, replicas: number, revision: number, surge: number): ReplicaSet {
  const t = d.spec.template;
  const labels = { ...t.metadata.labels, [APPS.podTemplateHash]: hash };
  const template = { metadata: { ...t.metadata, labels }, spec: structuredClone(t.spec) };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: `${d.metadata.name}-${hash}`,
      namespace: d.metadata.namespace,
      labels,
      annotations: replicaSetAnnotations(d, revision, surge),
      ownerReferences: [ownerRef(d)],
    },
    spec: {
      replicas,
      minReadySeconds: d.spec.minReadySeconds ?? 0,
      selector: { ...d.spec.selector, matchLabels: { ...(d.spec.selector.matchLabels ?? {}), [APPS.podTemplateHash]: hash } },
      template,
    },
  };
}

function replicaSetAnnotations(d: Deployment, revision: number, surge: number): Record<string, string> {
  return {
    [APPS.revision]: String(revision),
    [APPS.desiredReplicas]: String(d.spec.replicas),
    [APPS.maxReplicas]: String(d.spec.replicas + surge),
  };
}

interface Owned {
  rs: ReplicaSet;
  counts: ReplicaCounts;
  /** spec.replicas as planned. */
  replicas: number;
}

export function planDeployment(d: Deployment, replicaSets: readonly ReplicaSet[], pods: readonly Pod[], now: number): RolloutPlan {
  const replicas = d.spec.replicas;
  const strategy = d.spec.strategy ?? { type: 'RollingUpdate' };
  const ru = strategy.rollingUpdate ?? { maxSurge: APPS.defaultMaxSurge, maxUnavailable: APPS.defaultMaxUnavailable };
  const { surge, unavailable } = strategy.type === 'Recreate' ? { surge: 0, unavailable: replicas } : surgeAndUnavailable(ru.maxSurge, ru.maxUnavailable, replicas);
  const hash = podTemplateHash(d.spec.template);
  const owned: Owned[] = replicaSets
    .filter((rs) => rs.metadata.namespace === d.metadata.namespace && isControlledBy(rs, d) && !rs.metadata.deletionTimestamp)
    .sort(oldestFirst)
    .map((rs) => ({ rs, counts: replicaCounts(rs, pods, now), replicas: rs.spec.replicas }));
  let neu = owned.find((o) => o.rs.metadata.labels?.[APPS.podTemplateHash] === hash);
  const old = owned.filter((o) => o !== neu);
  const maxOld = old.reduce((m, o) => Math.max(m, revisionOf(o.rs)), 0);
  const revision = neu && revisionOf(neu.rs) > maxOld ? revisionOf(neu.rs) : maxOld + 1;
  let created: ReplicaSet | undefined;
  let progressed = false;

  if (strategy.type === 'Recreate') {
    const oldLeft = old.some((o) => o.replicas > 0);
    for (const o of old) if (o.replicas > 0) o.replicas = 0;
    // Every old pod, terminating ones too, must be gone before the new ones start.
    const oldPods = old.some((o) => o.counts.all > 0);
    if (oldLeft) progressed = true;
    else if (!oldPods) {
      if (!neu) {
        created = newReplicaSetFor(d, hash, replicas, revision, surge);
        neu = { rs: created, counts: { replicas: 0, ready: 0, available: 0, all: 0 }, replicas };
      } else if (neu.replicas !== replicas) neu.replicas = replicas;
    }
  } else {
    // reconcileNewReplicaSet: grow within replicas + maxSurge (or shrink to replicas).
    const current = old.reduce((n, o) => n + o.replicas, 0) + (neu?.replicas ?? 0);
    const base = neu?.replicas ?? 0;
    let target = base;
    if (base > replicas) target = replicas;
    else if (base < replicas) {
      const room = replicas + surge - current;
      target = room > 0 ? base + Math.min(room, replicas - base) : base;
    }
    if (!neu) {
      created = newReplicaSetFor(d, hash, target, revision, surge);
      neu = { rs: created, counts: { replicas: 0, ready: 0, available: 0, all: 0 }, replicas: target };
      progressed = true;
    } else if (target !== neu.replicas) {
      progressed = target > neu.replicas;
      neu.replicas = target;
    }
    if (!progressed) scaleDownOld(old, neu, replicas, unavailable);
  }

  const update: ReplicaSet[] = [];
  for (const o of owned) {
    const rev = o === neu ? revision : revisionOf(o.rs);
    const ann = o === neu ? replicaSetAnnotations(d, rev, surge) : { [APPS.revision]: String(rev), [APPS.desiredReplicas]: String(replicas), [APPS.maxReplicas]: String(replicas + surge) };
    const cur = o.rs.metadata.annotations ?? {};
    const annChanged = Object.entries(ann).some(([k, v]) => cur[k] !== v);
    if (o.replicas === o.rs.spec.replicas && !annChanged) continue;
    if (o.replicas !== o.rs.spec.replicas) progressed = true;
    update.push({ ...o.rs, metadata: { ...o.rs.metadata, annotations: { ...cur, ...ann } }, spec: { ...o.rs.spec, replicas: o.replicas } });
  }

  // History: old ReplicaSets at 0 with no pod left, beyond revisionHistoryLimit, oldest first.
  const limit = d.spec.revisionHistoryLimit ?? APPS.defaultRevisionHistoryLimit;
  const idle = old.filter((o) => o.replicas === 0 && o.counts.all === 0);
  const del = idle.slice(0, Math.max(0, idle.length - limit)).map((o) => o.rs);

  const all = [...owned, ...(created && neu ? [neu] : [])];
  const total = (f: (o: Owned) => number) => all.reduce((n, o) => n + f(o), 0);
  const status: DeploymentStatus = {
    observedGeneration: d.metadata.generation ?? 1,
    replicas: total((o) => o.counts.replicas),
    updatedReplicas: neu?.counts.replicas ?? 0,
    readyReplicas: total((o) => o.counts.ready),
    availableReplicas: total((o) => o.counts.available),
    unavailableReplicas: Math.max(0, total((o) => o.replicas) - total((o) => o.counts.available)),
  };
  status.conditions = conditionsFor(d, status, { newName: neu?.rs.metadata.name ?? `${d.metadata.name}-${hash}`, created: !!created, progressed, unavailable }, now);
  return { create: created ? [created] : [], update, delete: del, revision: String(revision), status };
}

/**
 * reconcileOldReplicaSets: old ReplicaSets shrink while the available pods stay ≥ replicas − maxUnavailable, their
 * not-available pods first (they count for nothing), then the oldest ReplicaSet first.
 */
function scaleDownOld(old: Owned[], neu: Owned, replicas: number, unavailable: number): void {
  if (old.every((o) => o.replicas === 0)) return;
  const all = [...old, neu];
  const allPods = all.reduce((n, o) => n + o.replicas, 0);
  const minAvailable = replicas - unavailable;
  const newUnavailable = Math.max(0, neu.replicas - neu.counts.available);
  let maxScaledDown = allPods - minAvailable - newUnavailable;
  if (maxScaledDown <= 0) return;
  // cleanupUnhealthyReplicas: pods that are not available can go without lowering availability.
  let cleaned = 0;
  for (const o of old) {
    if (cleaned >= maxScaledDown) break;
    const unhealthy = o.replicas - Math.min(o.replicas, o.counts.available);
    if (o.replicas === 0 || unhealthy <= 0) continue;
    const n = Math.min(maxScaledDown - cleaned, unhealthy);
    o.replicas -= n;
    cleaned += n;
  }
  maxScaledDown -= cleaned;
  // scaleDownOldReplicaSetsForRollingUpdate: then available ones, as far as availability allows.
  const availableNow = all.reduce((n, o) => n + o.counts.available, 0);
  if (availableNow <= minAvailable) return;
  const totalScaleDown = Math.min(availableNow - minAvailable, maxScaledDown);
  let done = 0;
  for (const o of old) {
    if (done >= totalScaleDown) break;
    if (o.replicas === 0) continue;
    const n = Math.min(o.replicas, totalScaleDown - done);
    o.replicas -= n;
    done += n;
  }
}

function conditionsFor(
  d: Deployment,
  s: DeploymentStatus,
  x: { newName: string; created: boolean; progressed: boolean; unavailable: number },
  now: number,
): DeploymentCondition[] {
  const at = new Date(now);
  const prev = (d.status?.conditions ?? []) as DeploymentCondition[];
  const replicas = d.spec.replicas;
  const availableOk = (s.availableReplicas ?? 0) >= replicas - x.unavailable;
  const conds: DeploymentCondition[] = setCondition(
    prev,
    availableOk
      ? { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' }
      : { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' },
    at,
  ).conditions;
  const old = prev.find((c) => c.type === 'Progressing');
  // Progress: a ReplicaSet was created or scaled, or the pods' counts moved. lastUpdateTime is the last progress
  // (Kubernetes' DeploymentCondition); progressDeadlineSeconds counts from it.
  const moved = x.created || x.progressed || !old || countsChanged(d.status, s);
  const complete = s.updatedReplicas === replicas && s.replicas === replicas && s.availableReplicas === replicas;
  let want: WantedCondition | undefined;
  if (complete) want = { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${x.newName}" has successfully progressed.` };
  else if (x.created) want = { type: 'Progressing', status: 'True', reason: 'NewReplicaSetCreated', message: `Created new replica set "${x.newName}"` };
  else if (moved) want = { type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: `ReplicaSet "${x.newName}" is progressing.` };
  else {
    const since = Date.parse(old?.lastUpdateTime ?? old?.lastTransitionTime ?? '');
    const deadline = (d.spec.progressDeadlineSeconds ?? APPS.defaultProgressDeadlineSeconds) * 1000;
    if (Number.isFinite(since) && now - since > deadline) {
      want = { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "${x.newName}" has timed out progressing.` };
    }
  }
  if (!want) return conds; // no progress, deadline not passed: Progressing stays as it was
  const r = setCondition(conds, want, at);
  const out = r.conditions as DeploymentCondition[];
  const i = out.findIndex((c) => c.type === 'Progressing');
  const keep = !moved && !r.changed ? old?.lastUpdateTime : undefined;
  out[i] = { ...out[i], lastUpdateTime: keep ?? at.toISOString() };
  return out;
}

function countsChanged(prev: DeploymentStatus | undefined, s: DeploymentStatus): boolean {
  if (!prev) return true;
  return prev.replicas !== s.replicas || prev.updatedReplicas !== s.updatedReplicas || prev.availableReplicas !== s.availableReplicas;
}

/** Status without the timestamps of its conditions: equal here means nothing to write. */
export function statusKey(s: DeploymentStatus | undefined): string {
  return JSON.stringify({ ...s, conditions: (s?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message })) });
}

/**
 * What `owner` controls, transitively (Deployment → its ReplicaSets → their pods; ReplicaSet → its pods): what a
 * cascading delete removes (the CLI's `egw delete deploy`, and kcm's garbage collection).
 */
export function dependentsOf(owner: Deployment | ReplicaSet, replicaSets: readonly ReplicaSet[], pods: readonly Pod[]): { replicaSets: ReplicaSet[]; pods: Pod[] } {
  const rss = owner.kind === 'Deployment' ? replicaSets.filter((rs) => rs.metadata.namespace === owner.metadata.namespace && isControlledBy(rs, owner)) : [owner as ReplicaSet];
  const uids = new Set(rss.map((r) => r.metadata.uid));
  const ps = pods.filter((p) => {
    const ref = controllerOf(p);
    return p.metadata.namespace === owner.metadata.namespace && ref?.kind === 'ReplicaSet' && uids.has(ref.uid);
  });
  return { replicaSets: owner.kind === 'Deployment' ? rss : [], pods: ps };
}

/**
 * Garbage: ReplicaSets whose controller is a Deployment that no longer exists (by uid), and pods whose controller
 * is a ReplicaSet that no longer exists. Only these two owner kinds: gateway pods belong to EgressGateways and the
 * egw controller.
 */
export function orphans(deployments: readonly Deployment[], replicaSets: readonly ReplicaSet[], pods: readonly Pod[]): { replicaSets: ReplicaSet[]; pods: Pod[] } {
  const dUids = new Set(deployments.map((d) => d.metadata.uid));
  const rsUids = new Set(replicaSets.map((r) => r.metadata.uid));
  return {
    replicaSets: replicaSets.filter((rs) => {
      const ref = controllerOf(rs);
      return ref?.kind === 'Deployment' && !dUids.has(ref.uid);
    }),
    pods: pods.filter((p) => {
      const ref = controllerOf(p);
      return ref?.kind === 'ReplicaSet' && !rsUids.has(ref.uid) && !p.metadata.deletionTimestamp;
    }),
  };
}
