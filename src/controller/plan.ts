// The pure part of the gateway controller: from an EgressGateway, its current pods, the nodes and the pools, work out
// which pods to create, delete and relabel (planGatewayPods), and the status conditions that describe the result.
//
// Shape of a gateway pod (docs/dataplane.md, "Resources and annotations the processes exchange"): name
// `<egw>-<5 lowercase alnum>`, the EgressGateway's namespace, labels = template labels plus `egw.dev/egress-gateway:
// <egw>` (LABEL.gatewayOf: selectable, so the agent's Kubernetes view can ask for gateway pods), annotations
// `egw.dev/egress-gateway: <egw>` and `cni.projectcalico.org/ipv4pools: '["<pool>", …]'` (plus any template
// annotations, which the two egw ones override), spec.nodeName chosen here, one container `egw gateway`,
// terminationGracePeriodSeconds from the template, and a controller ownerReference to the EgressGateway. With the
// `kubernetes` option the container is the cluster's (src/kube/gatewaypod.ts: image, port `health` 8080, probes).
//
// Choices (documented, not Kubernetes-exact):
// - Placement: nodes whose labels include every template.spec.nodeSelector entry, that are not unschedulable and whose
//   NoSchedule/NoExecute taints the template tolerates; the node with the fewest pods of this gateway first, then name.
// - A template change (labels) is applied to the existing pods in place, labels only: the pod's address, node and
//   tunnel stay, so no client connection is cut (a Deployment would roll the pods instead). Template annotations,
//   a changed nodeSelector or changed ipPools affect only new pods.
// - Pods on a node that no longer exists, and finished pods (phase Failed/Succeeded), are deleted and replaced.
//   Pods being deleted (metadata.deletionTimestamp set) are neither counted nor deleted again: they drain (they are
//   listed in `terminating`), and a replacement is created at once unless replicas dropped.
// - Scale down removes, in order: pods on nodes that no longer match, pods not Ready, then the newest. The controller
//   deletes them gracefully (deletePodGracefully: they drain for the template's terminationGracePeriodSeconds).
// - The pools' capacity bounds how many pods are created: a pod that could never get an address is not made.
import { PORT_PRESSURE_CONDITION, PORT_PRESSURE_REASON } from '../api/conditions.js';
import { cidrContains, cidrSize, parseCidr, parseIPv4 } from '../api/ipv4.js';
import { setCondition } from '../api/conditions.js';
import { namespaceOf, type OwnerReference } from '../api/meta.js';
import { isPodFinished, isPodReady, readyCondition } from '../api/pod.js';
import {
  ANNOTATION,
  DEFAULT_GATEWAY_LABEL,
  LABEL,
  type Condition,
  type EgressGateway,
  type IPPool,
  type Labels,
  type Node,
  type Pod,
  type Toleration,
} from '../api/types.js';
import { findPool } from '../ipam/pools.js';
import { kubeGatewayPodParts, type KubeGatewayPodOptions } from '../kube/gatewaypod.js';
import { podHandle } from '../ipam/types.js';

export type PlanProblemReason = 'NoMatchingNode' | 'PoolExhausted' | 'PoolNotFound' | 'PoolDisabled';

export interface PlanProblem {
  reason: PlanProblemReason;
  message: string;
}

export interface GatewayPlan {
  /** New pods to create (complete objects). */
  create: Pod[];
  /** Existing pods to delete (the controller drains scale-down surplus, and removes the others at once). */
  delete: Pod[];
  /** This gateway's pods already being deleted (metadata.deletionTimestamp set): draining, not counted. */
  terminating: Pod[];
  /** Existing pods with their labels (and ownerReference) brought up to date; carry the resourceVersion read. */
  update: Pod[];
  /** The gateway's pods after the plan is carried out (kept existing ones, updated where planned, and new ones). */
  result: Pod[];
  /** The resolved pool names, in spec.ipPools order (what the ipv4pools annotation lists). */
  pools: string[];
  /** Why fewer than spec.replicas pods exist or will exist. Empty when all is well. */
  problems: PlanProblem[];
}

export interface PlanOptions {
  /** handle → ip of every IPAM allocation, to count each pool's free addresses. Absent: pools count as empty. */
  allocations?: Map<string, string>;
  /** Pod names already used in the gateway's namespace: new names avoid them. */
  takenNames?: Set<string>;
  /** Source of randomness for name suffixes (default Math.random). */
  random?: () => number;
  /**
   * On a Kubernetes cluster: the container and pod fields the kubelet needs (image, the `health` port 8080,
   * probes, flow hostPath; src/kube/gatewaypod.ts). Absent: the lab's pod, whose processes egw runs itself.
   */
  kubernetes?: KubeGatewayPodOptions;
}

const SUFFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** The template labels of a gateway's pods (Calico's default when the template has none). */
export function templateLabels(egw: EgressGateway): Labels {
  const l = egw.spec?.template?.metadata?.labels;
  return l && Object.keys(l).length > 0 ? { ...l } : { [DEFAULT_GATEWAY_LABEL]: egw.metadata.name };
}

/** The labels of a gateway's pods: the template's, and LABEL.gatewayOf naming the gateway (it wins over the template). */
export function gatewayPodLabels(egw: EgressGateway): Labels {
  return { ...templateLabels(egw), [LABEL.gatewayOf]: egw.metadata.name };
}

/** True if the pod is one of this EgressGateway's (same namespace, annotation `egw.dev/egress-gateway: <name>`). */
export function isPodOf(pod: Pod, egw: EgressGateway): boolean {
  return namespaceOf(pod) === namespaceOf(egw) && pod.metadata.annotations?.[ANNOTATION.gatewayOf] === egw.metadata.name;
}

export function ownerReferenceOf(egw: EgressGateway): OwnerReference {
  return { apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', name: egw.metadata.name, uid: egw.metadata.uid ?? '', controller: true };
}


function sameLabels(a: Labels | undefined, b: Labels): boolean {
  const ka = Object.keys(a ?? {});
  return ka.length === Object.keys(b).length && ka.every((k) => a![k] === b[k]);
}

function tolerates(tols: Toleration[] | undefined, taint: { key: string; value?: string; effect: string }): boolean {
  return (tols ?? []).some((t) => {
    if (t.effect !== undefined && t.effect !== taint.effect) return false;
    if (t.operator === 'Exists') return t.key === undefined || t.key === '' || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

/** Nodes a gateway pod may be placed on, sorted by name. */
export function eligibleNodes(egw: EgressGateway, nodes: readonly Node[]): Node[] {
  const sel = egw.spec?.template?.spec?.nodeSelector ?? {};
  const tols = egw.spec?.template?.spec?.tolerations;
  return nodes
    .filter((n) => {
      const labels = n.metadata.labels ?? {};
      if (!Object.entries(sel).every(([k, v]) => labels[k] === v)) return false;
      if (n.spec?.unschedulable) return false;
      return (n.spec?.taints ?? []).every((t) => (t.effect !== 'NoSchedule' && t.effect !== 'NoExecute') || tolerates(tols, t));
    })
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
}

/** `<name>-` + this: five random characters, for names of pods a controller makes (gateway pods, the lab's ReplicaSets). */
export function randomSuffix(random: () => number): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += SUFFIX_ALPHABET[Math.floor(random() * SUFFIX_ALPHABET.length) % SUFFIX_ALPHABET.length];
  return s;
}

/** Newest first: creationTimestamp, then name. */
function newestFirst(a: Pod, b: Pod): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.metadata.name < b.metadata.name ? 1 : a.metadata.name > b.metadata.name ? -1 : 0;
}

/**
 * Plans an EgressGateway's pods: exactly spec.replicas of them (fewer only if no node fits or the pools are full),
 * each shaped as docs/dataplane.md says. `existingPods` may hold other pods too; only this gateway's count.
 */
export function planGatewayPods(
  egw: EgressGateway,
  existingPods: readonly Pod[],
  nodes: readonly Node[],
  pools: readonly IPPool[],
  opts: PlanOptions = {},
): GatewayPlan {
  const name = egw.metadata.name;
  const namespace = namespaceOf(egw);
  const replicas = Number.isInteger(egw.spec?.replicas) && egw.spec.replicas >= 0 ? egw.spec.replicas : 1;
  const labels = gatewayPodLabels(egw);
  const owner = ownerReferenceOf(egw);
  const problems: PlanProblem[] = [];
  const random = opts.random ?? Math.random;

  // Pools.
  const resolved: IPPool[] = [];
  for (const ref of egw.spec?.ipPools ?? []) {
    const p = findPool(ref, pools);
    const what = ref.name ?? ref.cidr ?? '?';
    if (!p) problems.push({ reason: 'PoolNotFound', message: `IP pool ${JSON.stringify(what)} does not exist` });
    else if (p.spec.disabled) problems.push({ reason: 'PoolDisabled', message: `IP pool ${JSON.stringify(p.metadata.name)} is disabled` });
    else if (!resolved.includes(p)) resolved.push(p);
  }
  const poolNames = resolved.map((p) => p.metadata.name);

  // Existing pods.
  const nodeNames = new Set(nodes.map((n) => n.metadata.name));
  const mine = existingPods.filter((p) => isPodOf(p, egw));
  const toDelete: Pod[] = [];
  const live: Pod[] = [];
  const terminating: Pod[] = [];
  for (const p of mine) {
    if (p.metadata.deletionTimestamp) {
      terminating.push(p);
      continue;
    }
    if (isPodFinished(p) || !p.spec?.nodeName || !nodeNames.has(p.spec.nodeName)) toDelete.push(p);
    else live.push(p);
  }

  // Capacity: the pools' addresses minus those held by anything other than this gateway's live pods.
  let capacity = 0;
  if (resolved.length > 0) {
    const cidrs = resolved.map((p) => parseCidr(p.spec.cidr)).filter((c) => c !== undefined);
    capacity = cidrs.reduce((n, c) => n + cidrSize(c), 0);
    const ours = new Set(live.map((p) => podHandle(namespace, p.metadata.name)));
    for (const [handle, ip] of opts.allocations ?? []) {
      if (ours.has(handle)) continue;
      const n = parseIPv4(ip);
      if (n !== undefined && cidrs.some((c) => cidrContains(c, n))) capacity--;
    }
  }

  const eligible = eligibleNodes(egw, nodes);
  const eligibleNames = new Set(eligible.map((n) => n.metadata.name));

  // Scale down.
  const keep = [...live];
  if (keep.length > replicas) {
    const rank = (p: Pod) => (eligibleNames.has(p.spec.nodeName!) ? 0 : 2) + (isPodReady(p) ? 0 : 1);
    const order = [...keep].sort((a, b) => rank(b) - rank(a) || newestFirst(a, b));
    for (const p of order.slice(0, keep.length - replicas)) {
      toDelete.push(p);
      keep.splice(keep.indexOf(p), 1);
    }
  }

  // Relabel.
  const update: Pod[] = [];
  const result: Pod[] = [];
  for (const p of keep) {
    const refs = p.metadata.ownerReferences ?? [];
    const ownerOk = refs.some((r) => r.kind === owner.kind && r.name === owner.name && r.uid === owner.uid && r.controller === true);
    if (sameLabels(p.metadata.labels, labels) && ownerOk) {
      result.push(p);
      continue;
    }
    const u = structuredClone(p);
    u.metadata.labels = { ...labels };
    if (!ownerOk) u.metadata.ownerReferences = [{ ...owner }];
    update.push(u);
    result.push(u);
  }

  // Scale up.
  const create: Pod[] = [];
  let want = Math.max(0, replicas - keep.length);
  if (want > 0 && eligible.length === 0) {
    const sel = egw.spec?.template?.spec?.nodeSelector;
    problems.push({
      reason: 'NoMatchingNode',
      message: `no schedulable node matches the template's nodeSelector ${JSON.stringify(sel ?? {})} (${nodes.length} node${nodes.length === 1 ? '' : 's'} known)`,
    });
    want = 0;
  }
  const room = Math.max(0, capacity - keep.length);
  if (want > room) {
    if (resolved.length > 0) {
      problems.push({
        reason: 'PoolExhausted',
        message: `IP pool${resolved.length > 1 ? 's' : ''} ${poolNames.map((n) => JSON.stringify(n)).join(', ')} can hold ${keep.length + room} gateway pod${keep.length + room === 1 ? '' : 's'}, ${replicas} wanted`,
      });
    } else if (!problems.some((p) => p.reason === 'PoolNotFound' || p.reason === 'PoolDisabled')) {
      problems.push({ reason: 'PoolNotFound', message: 'spec.ipPools names no pool' });
    }
    want = room;
  }
  if (want > 0) {
    const perNode = new Map<string, number>(eligible.map((n) => [n.metadata.name, 0]));
    for (const p of keep) if (perNode.has(p.spec.nodeName!)) perNode.set(p.spec.nodeName!, perNode.get(p.spec.nodeName!)! + 1);
    const taken = new Set([...(opts.takenNames ?? []), ...mine.map((p) => p.metadata.name)]);
    const grace = egw.spec?.template?.spec?.terminationGracePeriodSeconds;
    const tmplAnn = egw.spec?.template?.metadata?.annotations ?? {};
    const kube = opts.kubernetes ? kubeGatewayPodParts(opts.kubernetes) : undefined;
    for (let i = 0; i < want; i++) {
      let nodeName = eligible[0].metadata.name;
      for (const n of eligible) if (perNode.get(n.metadata.name)! < perNode.get(nodeName)!) nodeName = n.metadata.name;
      perNode.set(nodeName, perNode.get(nodeName)! + 1);
      let podName: string;
      do podName = `${name}-${randomSuffix(random)}`;
      while (taken.has(podName));
      taken.add(podName);
      const pod: Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: podName,
          namespace,
          labels: { ...labels },
          annotations: { ...tmplAnn, [ANNOTATION.gatewayOf]: name, [ANNOTATION.ipv4Pools]: JSON.stringify(poolNames) },
          ownerReferences: [{ ...owner }],
        },
        spec: {
          nodeName,
          containers: [kube ? structuredClone(kube.container) : { name: 'gateway', image: 'egw', command: ['egw', 'gateway'] }],
          ...(kube ? structuredClone(kube.pod) : {}),
          ...(grace !== undefined ? { terminationGracePeriodSeconds: grace } : {}),
        },
      };
      create.push(pod);
      result.push(pod);
    }
  }

  return { create, delete: toDelete, terminating, update, result, pools: poolNames, problems };
}

/**
 * The Ready and Degraded conditions for a gateway after a plan:
 * - the plan has problems (no node, pools): Ready False and Degraded True, reason = the first problem's;
 * - else a counted pod's Ready condition is False for a probe reason (isProbeFailure): Ready False and Degraded True,
 *   reason ProbesFailing (the gateway runs but cannot reach what it must);
 * - else Ready True (AllReplicasReady) when every wanted pod exists and is Ready, False (PodsNotReady) otherwise;
 *   Degraded True, reason SNATPortsExhausting, when a counted pod says one destination uses most of its source ports
 *   (its egw.dev/SNATPortPressure condition: src/gateway/podstatus.ts), else Degraded False (AsExpected).
 * Draining pods (plan.terminating) are not counted; the Ready message mentions them. lastTransitionTime is kept from
 * `previous` when a condition's status did not change.
 */
export function gatewayConditions(plan: GatewayPlan, replicas: number, previous: Condition[] = [], now = new Date()): Condition[] {
  const ready = plan.result.filter((p) => plan.create.indexOf(p) < 0 && isPodReady(p)).length;
  const draining = plan.terminating?.length ?? 0;
  const counted = `${ready} of ${replicas} gateway pods ready${draining ? `, ${draining} draining` : ''}`;
  const probes = plan.result.filter((p) => plan.create.indexOf(p) < 0 && isProbeFailure(readyCondition(p)));
  const probeText = probes.map((p) => `${p.metadata.name}: ${readyCondition(p)?.message || readyCondition(p)?.reason}`).join('; ');
  const first = plan.problems[0];
  const detail = [...plan.problems.map((p) => p.message), ...(probes.length ? [`probes failing on ${probeText}`] : [])].join('; ');
  const conds: Condition[] = [];
  if (first) {
    conds.push({ type: 'Ready', status: 'False', reason: first.reason, message: `${counted}: ${detail}` });
    conds.push({ type: 'Degraded', status: 'True', reason: first.reason, message: detail });
  } else if (probes.length) {
    conds.push({ type: 'Ready', status: 'False', reason: 'ProbesFailing', message: `${counted}: ${detail}` });
    conds.push({ type: 'Degraded', status: 'True', reason: 'ProbesFailing', message: detail });
  } else {
    const allReady = ready >= replicas && plan.create.length === 0 && plan.delete.length === 0;
    conds.push({ type: 'Ready', status: allReady ? 'True' : 'False', reason: allReady ? 'AllReplicasReady' : 'PodsNotReady', message: counted });
    const pressed = plan.result.flatMap((p) => {
      const c = p.status?.conditions?.find((x) => x.type === PORT_PRESSURE_CONDITION);
      return c?.status === 'True' ? [`${p.metadata.name}: ${c.message ?? ''}`] : [];
    });
    if (pressed.length) conds.push({ type: 'Degraded', status: 'True', reason: PORT_PRESSURE_REASON.high, message: pressed.join('; ') });
    else conds.push({ type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' });
  }
  return conds.map((c) => setCondition(previous, c, now).conditions.find((x) => x.type === c.type)!);
}

/**
 * True if a Ready condition says False because of the gateway's ICMP/HTTP probes: its reason names a probe (the
 * gateway writes its own Ready condition: ICMPProbeFailing, HTTPProbeFailing, see src/gateway/podstatus.ts), or a
 * generic reason (none, NotReady, GatewayNotReady) comes with a message naming one. Other reasons (data plane not
 * programmed, datastore not seen, GatewayStarting, IPAMFailed) are not probe failures.
 */
export function isProbeFailure(c: Condition | undefined): boolean {
  if (!c || c.status !== 'False') return false;
  const reason = c.reason ?? '';
  if (/probe/i.test(reason)) return true;
  return /^(|NotReady|GatewayNotReady)$/.test(reason) && /probe/i.test(c.message ?? '');
}
