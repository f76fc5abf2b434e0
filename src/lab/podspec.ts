// The lab kubelet's pure decisions about a pod (src/lab/kubelet.ts applies them): the argv a container runs, the
// node an unbound pod goes to, and the Ready condition the kubelet writes.
import { createHash } from 'node:crypto';
import { setCondition } from '../api/conditions.js';
import { ANNOTATION, type Condition, type Node as K8sNode, type Pod } from '../api/types.js';
import { exitText } from './procs.js';

/** The argv a container runs: `command` + `args`; `egw …` runs this egw against the same datastore. */
export function containerArgv(c: { command?: string[]; args?: string[] }, pod: { namespace: string; name: string }, egw: string[], datastore: string): string[] | undefined {
  const full = [...(c.command ?? []), ...(c.args ?? [])];
  if (full.length === 0) return undefined;
  if (full[0] !== 'egw') return full;
  const rest = full.slice(1);
  if (rest[0] === 'gateway' && !rest.includes('--pod')) rest.push('--pod', `${pod.namespace}/${pod.name}`);
  return [...egw, '--datastore', datastore, ...rest];
}

/** Which node a pod without spec.nodeName goes to: every kubelet computes the same answer (rendezvous hashing). */
export function chooseNode(pod: Pod, nodes: K8sNode[]): string | undefined {
  const sel = pod.spec.nodeSelector ?? {};
  let best: string | undefined;
  let bestScore = '';
  for (const n of nodes) {
    const labels = n.metadata.labels ?? {};
    if (n.spec?.unschedulable) continue;
    if (!Object.entries(sel).every(([k, v]) => labels[k] === v)) continue;
    const score = createHash('sha1').update(`${pod.metadata.namespace}/${pod.metadata.name}/${n.metadata.name}`).digest('hex');
    if (score > bestScore) {
      bestScore = score;
      best = n.metadata.name;
    }
  }
  return best;
}

/**
 * The Ready condition the lab kubelet wants for a running pod. A gateway pod's readiness belongs to the gateway: in
 * Kubernetes the kubelet's readiness probe (`GET :8080/readiness`) sets Ready; this kubelet does not probe, so it marks
 * a gateway pod (annotation `egw.dev/egress-gateway`) `Ready=False, reason GatewayStarting` and leaves the condition
 * to the gateway process from then on (src/gateway/podstatus.ts). Ordinary pods are Ready once their network exists.
 */
export function readyConditionFor(p: Pod, conds: Condition[] | undefined): { conditions: Condition[]; changed: boolean } {
  if (p.metadata.annotations?.[ANNOTATION.gatewayOf] === undefined) return setCondition(conds, { type: 'Ready', status: 'True' });
  const cur = conds?.find((c) => c.type === 'Ready');
  if (cur && cur.reason !== 'IPAMFailed') return { conditions: [...(conds ?? [])], changed: false }; // the gateway's to set
  return setCondition(conds, { type: 'Ready', status: 'False', reason: 'GatewayStarting', message: 'waiting for the gateway to report its readiness' });
}

/** What the lab kubelet knows about one container of a pod (src/lab/kubelet.ts). */
export interface ContainerView {
  name: string;
  image?: string;
  running: boolean;
  startedAt?: string;
  restartCount: number;
  /** How its previous run ended: exit code or signal if the kubelet was its parent, else unknown. */
  lastExit?: { code?: number | null; signal?: string | null; at: string };
}

/** Kubernetes' `status.containerStatuses[]`, the part the lab kubelet fills in. */
export interface ContainerStatus {
  name: string;
  image?: string;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: { running: { startedAt?: string } } | { waiting: { reason: string } };
  lastState: { terminated?: { exitCode?: number; signal?: number; reason: string; finishedAt: string } };
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/**
 * The containerStatuses for a pod, as kubelet reports them: restartCount, the current state (running, or waiting in
 * CrashLoopBackOff between restarts) and how the last run ended (exit code 128 + n for signal n, as kubelet does).
 * `ready` is the container running: a gateway's readiness is its own (the pod's Ready condition, readyConditionFor).
 */
export function containerStatusesFor(views: ContainerView[]): ContainerStatus[] {
  return views.map((v) => {
    let terminated: NonNullable<ContainerStatus['lastState']['terminated']> | undefined;
    if (v.lastExit) {
      const sig = v.lastExit.signal ? SIGNALS[v.lastExit.signal] : undefined;
      const code = v.lastExit.signal ? (sig !== undefined ? 128 + sig : undefined) : (v.lastExit.code ?? undefined);
      terminated = {
        ...(code !== undefined && code !== null ? { exitCode: code } : {}),
        ...(sig !== undefined ? { signal: sig } : {}),
        reason: code === undefined || code === null ? 'Unknown' : code === 0 ? 'Completed' : 'Error',
        finishedAt: v.lastExit.at,
      };
    }
    return {
      name: v.name,
      ...(v.image ? { image: v.image } : {}),
      ready: v.running,
      started: v.running,
      restartCount: v.restartCount,
      state: v.running ? { running: { ...(v.startedAt ? { startedAt: v.startedAt } : {}) } } : { waiting: { reason: 'CrashLoopBackOff' } },
      lastState: terminated ? { terminated } : {},
    };
  });
}

/** The last exit a pod's status records for a container (what a restarted kubelet adopts), or undefined. */
export function lastExitFromStatus(pod: Pod, container: string): ContainerView['lastExit'] {
  const cs = (pod.status?.containerStatuses as ContainerStatus[] | undefined)?.find((c) => c.name === container);
  const t = cs?.lastState?.terminated;
  if (!t) return undefined;
  const signal = t.signal !== undefined ? Object.keys(SIGNALS).find((k) => SIGNALS[k] === t.signal) : undefined;
  if (signal) return { code: null, signal, at: t.finishedAt };
  return t.exitCode !== undefined ? { code: t.exitCode, signal: null, at: t.finishedAt } : { at: t.finishedAt };
}

/** A container's last exit for its record and the log: exit code or signal if known, else when it was found gone. */
export function lastExitText(e: NonNullable<ContainerView['lastExit']>): string {
  if ((e.code === undefined || e.code === null) && !e.signal) return `gone by ${e.at}`;
  return exitText({ code: e.code ?? null, signal: (e.signal ?? null) as NodeJS.Signals | null, at: e.at });
}
