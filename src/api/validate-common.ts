// Checks shared by the validation of several kinds (validate.ts, validate-apps.ts): names, label and annotation keys,
// labels, and a Pod's spec (a Pod's, and a Deployment's or ReplicaSet's pod template). Pure: no I/O.
import type { Checker } from './check.js';
import type { FieldPath } from './manifest.js';
import { parseMaxNextHops } from './parse.js';
import { ANNOTATION } from './types.js';
import { parseSelector, SelectorError } from '../selector/index.js';

export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** Why `name` is not a valid Kubernetes name of this form (DNS-1123 label or subdomain), or undefined. */
export function nameProblem(name: string, form: 'label' | 'subdomain'): string | undefined {
  const max = form === 'label' ? 63 : 253;
  if (name.length === 0) return 'must not be empty';
  if (name.length > max) return `must be at most ${max} characters, got ${name.length}`;
  if (!(form === 'label' ? DNS1123_LABEL : DNS1123_SUBDOMAIN).test(name)) {
    return `${JSON.stringify(name)} is not a valid name: use lower-case letters, digits and '-'${form === 'subdomain' ? " (and '.')" : ''}, starting and ending with a letter or digit`;
  }
  return undefined;
}

export function checkName(c: Checker, name: string, path: FieldPath, form: 'label' | 'subdomain'): void {
  const problem = nameProblem(name, form);
  if (problem) c.error(path, problem);
}

export function checkQualifiedName(c: Checker, key: string, path: FieldPath, what: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : '';
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0 && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) {
    c.error(path, `${what} ${JSON.stringify(key)}: the prefix must be a DNS subdomain such as example.com`, true);
    return false;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    c.error(path, `${what} ${JSON.stringify(key)} is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`, true);
    return false;
  }
  return true;
}

export function checkLabels(c: Checker, labels: Record<string, string>, path: FieldPath): void {
  for (const [k, val] of Object.entries(labels)) {
    checkQualifiedName(c, k, [...path, k], 'label key');
    if (val.length > 63 || (val.length > 0 && !LABEL_NAME.test(val))) {
      c.error([...path, k], `label value ${JSON.stringify(val)} is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`);
    }
  }
}

const POD_SPEC_FIELDS = [
  'volumes', 'initContainers', 'containers', 'ephemeralContainers', 'restartPolicy', 'terminationGracePeriodSeconds',
  'activeDeadlineSeconds', 'dnsPolicy', 'nodeSelector', 'serviceAccountName', 'serviceAccount',
  'automountServiceAccountToken', 'nodeName', 'hostNetwork', 'hostPID', 'hostIPC', 'shareProcessNamespace',
  'securityContext', 'imagePullSecrets', 'hostname', 'subdomain', 'affinity', 'schedulerName', 'tolerations',
  'hostAliases', 'priorityClassName', 'priority', 'dnsConfig', 'readinessGates', 'runtimeClassName',
  'enableServiceLinks', 'preemptionPolicy', 'overhead', 'topologySpreadConstraints', 'setHostnameAsFQDN', 'os',
  'hostUsers', 'schedulingGates', 'resourceClaims', 'resources',
];
const CONTAINER_FIELDS = [
  'name', 'image', 'command', 'args', 'workingDir', 'ports', 'envFrom', 'env', 'resources', 'resizePolicy',
  'restartPolicy', 'volumeMounts', 'volumeDevices', 'livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle',
  'terminationMessagePath', 'terminationMessagePolicy', 'imagePullPolicy', 'securityContext', 'stdin', 'stdinOnce', 'tty',
];

export function checkPodSpec(c: Checker, v: unknown, p: FieldPath): unknown {
  if (v === undefined) return c.error(p, 'required field is missing (a Pod needs spec.containers)', true);
  const s = c.object(v, p, POD_SPEC_FIELDS);
  if (!s) return undefined;
  c.string(s.nodeName, [...p, 'nodeName']);
  c.int(s.terminationGracePeriodSeconds, [...p, 'terminationGracePeriodSeconds'], { min: 0 });
  const ns = c.stringMap(s.nodeSelector, [...p, 'nodeSelector']);
  if (ns) checkLabels(c, ns, [...p, 'nodeSelector']);
  if (c.required(s, 'containers', p)) {
    const arr = c.array(s.containers, [...p, 'containers']);
    if (arr && arr.length === 0) c.error([...p, 'containers'], 'must have at least one container');
    const names = new Set<string>();
    arr?.forEach((item, i) => {
      const cp = [...p, 'containers', i];
      const ct = c.object(item, cp, CONTAINER_FIELDS);
      if (!ct) return;
      if (c.required(ct, 'name', cp)) {
        const n = c.string(ct.name, [...cp, 'name']);
        if (n !== undefined) {
          checkName(c, n, [...cp, 'name'], 'label');
          if (names.has(n)) c.error([...cp, 'name'], `container name ${JSON.stringify(n)} is used twice`);
          names.add(n);
        }
      }
      c.string(ct.image, [...cp, 'image']);
      c.stringArray(ct.command, [...cp, 'command']);
      c.stringArray(ct.args, [...cp, 'args']);
      c.array(ct.ports, [...cp, 'ports'])?.forEach((port, j) => {
        const pp = [...cp, 'ports', j];
        const po = c.object(port, pp, ['containerPort', 'name', 'protocol', 'hostPort', 'hostIP']);
        if (!po) return;
        if (c.required(po, 'containerPort', pp)) c.int(po.containerPort, [...pp, 'containerPort'], { min: 1, max: 65535 });
        c.string(po.name, [...pp, 'name']);
        c.string(po.protocol, [...pp, 'protocol'], { enum: ['TCP', 'UDP', 'SCTP'] });
        // 0 means "no host port" in Kubernetes; egw does not act on host ports.
        c.int(po.hostPort, [...pp, 'hostPort'], { min: 0, max: 65535 });
      });
    });
  }
  return s;
}

export function dropUndefined<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

export function checkSelector(c: Checker, v: unknown, path: FieldPath, opts: { nonEmpty?: boolean; noGlobal?: boolean } = {}): string | undefined {
  const s = c.string(v, path);
  if (s === undefined) return undefined;
  if (opts.nonEmpty && s.trim() === '') return c.error(path, 'must not be empty; use "all()" to select everything');
  // Calico refuses global() in an IP pool's selectors (it has no meaning for nodes or namespaces of one cluster);
  // like Calico, the check is on the text, so `global(` anywhere is refused.
  if (opts.noGlobal && s.includes('global(')) return c.error(path, `${JSON.stringify(s)}: global() is not allowed in an IP pool's selectors`);
  try {
    parseSelector(s);
    return s; // kept as written, as Calico does; the canonical form is computed where it is used
  } catch (e) {
    if (e instanceof SelectorError) return c.error(path, `bad ${(e as Error).message}`);
    throw e;
  }
}

// ---- annotations egw reads -------------------------------------------------------------------------------------

/** Checks the egress annotations on a Namespace or Pod (selectors parse, maxNextHops is a decimal). */
export function checkEgressAnnotations(c: Checker, annotations: Record<string, string> | undefined, base: FieldPath = ['metadata', 'annotations']): void {
  if (!annotations) return;
  for (const key of [ANNOTATION.selector, ANNOTATION.namespaceSelector]) {
    if (annotations[key] !== undefined) checkSelector(c, annotations[key], [...base, key]);
  }
  const hops = annotations[ANNOTATION.maxNextHops];
  if (hops !== undefined && parseMaxNextHops(hops) === undefined) {
    c.error([...base, ANNOTATION.maxNextHops], `${JSON.stringify(hops)} is not a whole number of hops (0 = all)`);
  }
  const policy = annotations[ANNOTATION.egressGatewayPolicy];
  if (policy !== undefined && !DNS1123_SUBDOMAIN.test(policy)) {
    c.error([...base, ANNOTATION.egressGatewayPolicy], `${JSON.stringify(policy)} is not a valid policy name`);
  }
}
