// The lab kubelet's pure decisions about a pod (src/lab/kubelet.ts applies them): the argv a container runs, the
// node an unbound pod goes to, and the Ready condition the kubelet writes.
import { createHash } from 'node:crypto';
import { setCondition } from '../api/conditions.js';
import { ANNOTATION, type Condition, type Node as K8sNode, type Pod } from '../api/types.js';

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
