// Validation and defaults of apps/v1 Deployment and ReplicaSet (docs/behaviour.md §6): the fields the lab's
// kube-controller-manager stand-in acts on, with Kubernetes' rules and defaults. Pure: no I/O.
import { matchesLabelSelector, parsePercent } from './apps.js';
import type { Checker } from './check.js';
import type { FieldPath } from './manifest.js';
import { APPS, type LabelSelector } from './types.js';
import { checkEgressAnnotations, checkLabels, checkPodSpec, checkQualifiedName, dropUndefined } from './validate-common.js';

const DEPLOYMENT_FIELDS = ['replicas', 'selector', 'template', 'strategy', 'minReadySeconds', 'revisionHistoryLimit', 'paused', 'progressDeadlineSeconds'];
const REPLICASET_FIELDS = ['replicas', 'selector', 'template', 'minReadySeconds'];

export function checkDeploymentSpec(c: Checker, v: unknown, p: FieldPath): unknown {
  if (v === undefined) return c.error(p, 'required field is missing (a Deployment needs spec.selector and spec.template)', true);
  const s = c.object(v, p, DEPLOYMENT_FIELDS);
  if (!s) return undefined;
  const common = checkCommon(c, s, p);
  const strategy = checkStrategy(c, s.strategy, [...p, 'strategy']);
  const revisionHistoryLimit = c.int(s.revisionHistoryLimit, [...p, 'revisionHistoryLimit'], { min: 0 });
  const paused = c.bool(s.paused, [...p, 'paused']);
  if (paused) c.warn([...p, 'paused'], 'accepted; the lab does not pause rollouts');
  const progressDeadlineSeconds = c.int(s.progressDeadlineSeconds, [...p, 'progressDeadlineSeconds'], { min: 1 });
  if (progressDeadlineSeconds !== undefined && common.minReadySeconds !== undefined && progressDeadlineSeconds <= common.minReadySeconds) {
    c.error([...p, 'progressDeadlineSeconds'], `must be greater than minReadySeconds (${common.minReadySeconds})`);
  }
  if (!common.ok || !strategy) return undefined;
  return dropUndefined({
    replicas: common.replicas ?? 1,
    selector: common.selector,
    template: common.template,
    strategy,
    minReadySeconds: common.minReadySeconds ?? 0,
    revisionHistoryLimit: revisionHistoryLimit ?? APPS.defaultRevisionHistoryLimit,
    paused,
    progressDeadlineSeconds: progressDeadlineSeconds ?? APPS.defaultProgressDeadlineSeconds,
  });
}

export function checkReplicaSetSpec(c: Checker, v: unknown, p: FieldPath): unknown {
  if (v === undefined) return c.error(p, 'required field is missing (a ReplicaSet needs spec.selector and spec.template)', true);
  const s = c.object(v, p, REPLICASET_FIELDS);
  if (!s) return undefined;
  const common = checkCommon(c, s, p);
  if (!common.ok) return undefined;
  return { replicas: common.replicas ?? 1, selector: common.selector, template: common.template, minReadySeconds: common.minReadySeconds ?? 0 };
}

/** replicas, selector, template and minReadySeconds: what a Deployment and a ReplicaSet share. */
function checkCommon(c: Checker, s: Record<string, unknown>, p: FieldPath) {
  const before = c.errors.length;
  const replicas = c.int(s.replicas, [...p, 'replicas'], { min: 0 });
  const minReadySeconds = c.int(s.minReadySeconds, [...p, 'minReadySeconds'], { min: 0 });
  let selector: LabelSelector | undefined;
  const beforeSelector = c.errors.length;
  if (c.required(s, 'selector', p)) selector = checkLabelSelector(c, s.selector, [...p, 'selector']);
  if (c.errors.length !== beforeSelector) selector = undefined; // a broken selector is not compared with the labels
  let template: Record<string, unknown> | undefined;
  if (c.required(s, 'template', p)) template = checkPodTemplate(c, s.template, [...p, 'template']);
  const labels = (template?.metadata as { labels?: Record<string, string> } | undefined)?.labels;
  if (selector && template) {
    const empty = !Object.keys(selector.matchLabels ?? {}).length && !(selector.matchExpressions ?? []).length;
    // Kubernetes' messages: an empty selector would select every pod of the namespace.
    if (empty) c.error([...p, 'selector'], 'empty selector is invalid for deployment');
    else if (!matchesLabelSelector(selector, labels)) c.error([...p, 'template', 'metadata', 'labels'], '`selector` does not match template `labels`');
  }
  return { ok: c.errors.length === before, replicas, minReadySeconds, selector, template };
}

function checkLabelSelector(c: Checker, v: unknown, p: FieldPath): LabelSelector | undefined {
  const s = c.object(v, p, ['matchLabels', 'matchExpressions']);
  if (!s) return undefined;
  const matchLabels = c.stringMap(s.matchLabels, [...p, 'matchLabels']);
  if (matchLabels) checkLabels(c, matchLabels, [...p, 'matchLabels']);
  const exprs = c.array(s.matchExpressions, [...p, 'matchExpressions']);
  const matchExpressions: NonNullable<LabelSelector['matchExpressions']> = [];
  exprs?.forEach((item, i) => {
    const ep = [...p, 'matchExpressions', i];
    const e = c.object(item, ep, ['key', 'operator', 'values']);
    if (!e) return;
    let key: string | undefined;
    if (c.required(e, 'key', ep)) {
      key = c.string(e.key, [...ep, 'key']);
      if (key !== undefined) checkQualifiedName(c, key, [...ep, 'key'], 'label key');
    }
    let operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | undefined;
    if (c.required(e, 'operator', ep)) operator = c.string(e.operator, [...ep, 'operator'], { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }) as typeof operator;
    const values = c.stringArray(e.values, [...ep, 'values']);
    if ((operator === 'In' || operator === 'NotIn') && !values?.length) c.error([...ep, 'values'], `must be specified when \`operator\` is '${operator}'`);
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values?.length) c.error([...ep, 'values'], `may not be specified when \`operator\` is '${operator}'`);
    if (key !== undefined && operator !== undefined) matchExpressions.push(dropUndefined({ key, operator, values: values?.length ? values : undefined }));
  });
  return dropUndefined({ matchLabels: matchLabels && Object.keys(matchLabels).length ? matchLabels : undefined, matchExpressions: matchExpressions.length ? matchExpressions : undefined });
}

function checkPodTemplate(c: Checker, v: unknown, p: FieldPath): Record<string, unknown> | undefined {
  const t = c.object(v, p, ['metadata', 'spec']);
  if (!t) return undefined;
  const mp = [...p, 'metadata'];
  const md = c.object(t.metadata, mp, ['labels', 'annotations', 'name', 'namespace']);
  const labels = c.stringMap(md?.labels, [...mp, 'labels']);
  if (labels) checkLabels(c, labels, [...mp, 'labels']);
  const annotations = c.stringMap(md?.annotations, [...mp, 'annotations']);
  if (annotations) {
    for (const k of Object.keys(annotations)) checkQualifiedName(c, k, [...mp, 'annotations', k], 'annotation key');
    // The pods get these annotations: the egress ones are checked as on a Pod, at their place in the template.
    checkEgressAnnotations(c, annotations, [...mp, 'annotations']);
  }
  let spec: unknown;
  if (c.required(t, 'spec', p)) {
    spec = checkPodSpec(c, t.spec, [...p, 'spec']);
    const rp = (t.spec as Record<string, unknown> | undefined)?.restartPolicy;
    // A controller's pods run until deleted: Kubernetes accepts only Always in a Deployment's or ReplicaSet's template.
    if (rp !== undefined && rp !== 'Always') c.error([...p, 'spec', 'restartPolicy'], `${JSON.stringify(rp)}: only "Always" is supported in a pod template`);
    if ((t.spec as Record<string, unknown> | undefined)?.nodeName !== undefined) {
      c.warn([...p, 'spec', 'nodeName'], 'every pod of this template goes to this one node');
    }
  }
  return dropUndefined({
    metadata: dropUndefined({ labels: labels ?? {}, annotations: annotations && Object.keys(annotations).length ? annotations : undefined }),
    spec: spec as Record<string, unknown> | undefined,
  });
}

function checkIntOrPercent(c: Checker, v: unknown, p: FieldPath, opts: { maxPercent?: number }): number | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return c.int(v, p, { min: 0 });
  if (typeof v !== 'string') return c.error(p, 'expected a whole number of pods or a percentage such as "25%"');
  const pct = parsePercent(v);
  if (pct === undefined) return c.error(p, `${JSON.stringify(v)} is neither a whole number of pods nor a percentage such as "25%"`);
  if (opts.maxPercent !== undefined && pct > opts.maxPercent) return c.error(p, `must not be greater than ${opts.maxPercent}%, got ${v}`);
  return v;
}

function checkStrategy(c: Checker, v: unknown, p: FieldPath): Record<string, unknown> | undefined {
  if (v === undefined) return { type: 'RollingUpdate', rollingUpdate: { maxSurge: APPS.defaultMaxSurge, maxUnavailable: APPS.defaultMaxUnavailable } };
  const s = c.object(v, p, ['type', 'rollingUpdate']);
  if (!s) return undefined;
  const before = c.errors.length;
  const type = c.string(s.type, [...p, 'type'], { enum: ['RollingUpdate', 'Recreate'] }) ?? 'RollingUpdate';
  if (type === 'Recreate') {
    if (s.rollingUpdate !== undefined) c.error([...p, 'rollingUpdate'], "may not be specified when strategy `type` is 'Recreate'");
    return c.errors.length === before ? { type } : undefined;
  }
  const rp = [...p, 'rollingUpdate'];
  const ru = c.object(s.rollingUpdate, rp, ['maxSurge', 'maxUnavailable']);
  const maxSurge = checkIntOrPercent(c, ru?.maxSurge, [...rp, 'maxSurge'], {}) ?? (ru?.maxSurge === undefined ? APPS.defaultMaxSurge : undefined);
  const maxUnavailable = checkIntOrPercent(c, ru?.maxUnavailable, [...rp, 'maxUnavailable'], { maxPercent: 100 }) ?? (ru?.maxUnavailable === undefined ? APPS.defaultMaxUnavailable : undefined);
  const zero = (x: number | string | undefined) => x === 0 || (typeof x === 'string' && parsePercent(x) === 0);
  if (zero(maxSurge) && zero(maxUnavailable)) c.error([...rp, 'maxUnavailable'], 'may not be 0 when `maxSurge` is 0');
  if (c.errors.length !== before || maxSurge === undefined || maxUnavailable === undefined) return undefined;
  return { type, rollingUpdate: { maxSurge, maxUnavailable } };
}
