// Validation and defaulting of each kind egw knows, following docs/behaviour.md §1. Every problem names the field path; the
// caller (see load.ts) turns paths into file:line:column. Pure: no I/O.
import { Checker } from './check.js';
import type { FieldPath, RawObject } from './manifest.js';
import { isPlainObject } from './manifest.js';
import { DEFAULT_NAMESPACE, KINDS, kindInfo, type KindInfo, type ObjectMeta, type Resource } from './meta.js';
import {
  cidrSize,
  formatCidr,
  hasHostBits,
  isLinkLocal,
  networkOf,
  parseCidr,
  parseIPv4,
} from './ipv4.js';
import { formatCidr6, hasHostBits6, isLinkLocal6, networkOf6, parseCidr6, parseIPv6 } from './ipv6.js';
import { DEFAULT_ALLOWED_USES, DEFAULT_GATEWAY_LABEL, FELIX_CONFIGURATION_DEFAULT } from './types.js';
import { parseGoDuration } from './parse.js';
import {
  ALLOWED_USES, BLOCK_SIZE, DEFAULT_GATEWAY_PREFERENCE, DEFAULT_LOG_SEVERITY, EGRESS_IP_SUPPORT, EGW_REPLICAS, ENCAP_MODES, FELIX_RANGES, GATEWAY_PREFERENCES,
  GRACE_SECONDS_MIN, HEALTH_TIMEOUT_DATASTORE, LOG_SEVERITIES, MAX_NEXT_HOPS_MIN, PROBE_DEFAULTS, PROBE_SECONDS_MIN,
} from './limits.js';
import { checkDeploymentSpec, checkReplicaSetSpec } from './validate-apps.js';
import { checkEgressAnnotations, checkLabels, checkName, checkPodSpec, checkQualifiedName, checkSelector, dropUndefined } from './validate-common.js';

export { checkEgressAnnotations } from './validate-common.js';

/** Older or alternative apiVersions accepted for a kind (Calico's CRD group), normalised to the canonical one. */
const API_VERSION_ALIASES: Record<string, string[]> = {
  IPPool: ['crd.projectcalico.org/v1'],
  EgressGatewayPolicy: ['crd.projectcalico.org/v1'],
  FelixConfiguration: ['crd.projectcalico.org/v1'],
};

export interface ValidationResult {
  resource?: Resource;
  checker: Checker;
  /** `IPPool egress-ippool-1`, `Pod default/my-client`, or the kind alone if the name is unusable. */
  subject: string;
}

/** Validates one decoded object: envelope, metadata and the kind's spec. Returns the defaulted copy if valid. */
export function validateObject(raw: RawObject, opts: { defaultNamespace?: string } = {}): ValidationResult {
  const c = new Checker();
  const v = raw.value;
  if (!isPlainObject(v)) {
    c.error([], `expected a Kubernetes-style object with apiVersion, kind and metadata, got ${typeof v}`);
    return { checker: c, subject: 'document' };
  }
  const kindName = typeof v.kind === 'string' ? v.kind : undefined;
  const info = kindName ? kindInfo(kindName) : undefined;
  const nameForSubject = isPlainObject(v.metadata) && typeof v.metadata.name === 'string' ? v.metadata.name : '';
  const nsForSubject = isPlainObject(v.metadata) && typeof v.metadata.namespace === 'string' ? v.metadata.namespace : '';
  const nsShown = info?.namespaced ? (nsForSubject || opts.defaultNamespace || DEFAULT_NAMESPACE) + '/' : '';
  const subject = `${kindName ?? 'object'}${nameForSubject ? ' ' + nsShown + nameForSubject : ''}`;

  if (v.kind === undefined) c.error(['kind'], 'required field is missing', true);
  else if (!info) {
    c.error(['kind'], `unknown kind ${JSON.stringify(v.kind)}; egw knows ${KINDS.filter((k) => !k.managed).map((k) => k.kind).join(', ')}`);
  }
  if (!info) return { checker: c, subject };
  if (info.managed) {
    c.error(['kind'], `${info.kind} objects are written by egw itself (IP address management) and cannot be applied`);
    return { checker: c, subject };
  }

  c.object(v, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const apiVersion = c.string(v.apiVersion, ['apiVersion']);
  if (v.apiVersion === undefined) c.error(['apiVersion'], `required field is missing; use ${info.apiVersion}`, true);
  else if (apiVersion !== undefined && apiVersion !== info.apiVersion && !(API_VERSION_ALIASES[info.kind] ?? []).includes(apiVersion)) {
    c.error(['apiVersion'], `${info.kind} is ${info.apiVersion}, not ${JSON.stringify(apiVersion)}`);
  }
  const metadata = checkMetadata(c, v.metadata, info, opts.defaultNamespace ?? DEFAULT_NAMESPACE);
  const spec = SPEC_CHECKERS[info.kind](c, v.spec, ['spec'], metadata?.name ?? '');
  const status = checkStatus(c, v.status, info);
  if (info.kind === 'Namespace' || info.kind === 'Pod') checkEgressAnnotations(c, metadata?.annotations);
  if (c.errors.length > 0 || !metadata) return { checker: c, subject };
  const resource: Resource = { apiVersion: info.apiVersion, kind: info.kind, metadata };
  if (spec !== undefined) resource.spec = spec;
  if (status !== undefined) resource.status = status;
  return { resource, checker: c, subject };
}

// ---- metadata --------------------------------------------------------------------------------------------------

const METADATA_FIELDS = [
  'name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'creationTimestamp', 'generation',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'ownerReferences', 'finalizers', 'generateName', 'managedFields',
  'selfLink',
];

function checkMetadata(c: Checker, v: unknown, info: KindInfo, defaultNamespace: string): ObjectMeta | undefined {
  const p: FieldPath = ['metadata'];
  if (v === undefined) {
    c.error(p, 'required field is missing', true);
    return undefined;
  }
  const m = c.object(v, p, METADATA_FIELDS);
  if (!m) return undefined;
  const name = c.string(m.name, [...p, 'name']);
  if (m.name === undefined) c.error([...p, 'name'], 'required field is missing', true);
  else if (name !== undefined) checkName(c, name, [...p, 'name'], info.kind === 'Namespace' ? 'label' : 'subdomain');
  const namespace = c.string(m.namespace, [...p, 'namespace']);
  if (!info.namespaced && namespace !== undefined) {
    c.error([...p, 'namespace'], `${info.kind} is cluster-scoped and has no namespace; remove this field`);
  }
  if (info.namespaced && namespace !== undefined) checkName(c, namespace, [...p, 'namespace'], 'label');
  const labels = c.stringMap(m.labels, [...p, 'labels']);
  if (labels) checkLabels(c, labels, [...p, 'labels']);
  const annotations = c.stringMap(m.annotations, [...p, 'annotations']);
  if (annotations) {
    for (const k of Object.keys(annotations)) checkQualifiedName(c, k, [...p, 'annotations', k], 'annotation key');
    const size = annotationBytes(annotations);
    if (size > MAX_ANNOTATION_BYTES) {
      c.error([...p, 'annotations'], `annotations total ${size} bytes (keys and values); at most ${MAX_ANNOTATION_BYTES} (256 KiB) are allowed`);
    }
  }
  const ownerReferences = c.passthrough(m.ownerReferences, [...p, 'ownerReferences'], 'array');
  const finalizers = c.stringArray(m.finalizers, [...p, 'finalizers']);
  c.string(m.generateName, [...p, 'generateName']);
  if (name === undefined) return undefined;
  // Server-set fields (uid, resourceVersion, timestamps) are the store's; what a user copies from `get -o yaml`
  // is not applied back.
  const out: ObjectMeta = { name };
  if (info.namespaced) out.namespace = namespace ?? defaultNamespace;
  if (labels && Object.keys(labels).length) out.labels = labels;
  if (annotations && Object.keys(annotations).length) out.annotations = annotations;
  if (ownerReferences) out.ownerReferences = ownerReferences as ObjectMeta['ownerReferences'];
  if (finalizers?.length) out.finalizers = finalizers;
  return out;
}

/** Kubernetes' limit on an object's annotations, keys and values together, in bytes (docs/behaviour.md §1). */
export const MAX_ANNOTATION_BYTES = 256 * 1024;

function annotationBytes(annotations: Record<string, string>): number {
  let n = 0;
  for (const [k, val] of Object.entries(annotations)) n += Buffer.byteLength(k, 'utf8') + Buffer.byteLength(val, 'utf8');
  return n;
}

// ---- spec of each kind ------------------------------------------------------------------------------------------

type SpecChecker = (c: Checker, v: unknown, path: FieldPath, name: string) => unknown;

const SPEC_CHECKERS: Record<KindInfo['kind'], SpecChecker> = {
  IPPool: checkIPPoolSpec,
  EgressGateway: checkEgressGatewaySpec,
  EgressGatewayPolicy: checkPolicySpec,
  FelixConfiguration: checkFelixSpec,
  Node: checkNodeSpec,
  Namespace: (c, v, p) => {
    const s = c.object(v, p, ['finalizers']);
    if (s) c.stringArray(s.finalizers, [...p, 'finalizers']);
    return s && Object.keys(s).length ? s : undefined;
  },
  Pod: checkPodSpec,
  Deployment: checkDeploymentSpec,
  ReplicaSet: checkReplicaSetSpec,
  IPAMBlock: () => undefined, // managed: rejected before its spec is read
  Lease: () => undefined, // managed
};

const IPPOOL_FIELDS = [
  'cidr', 'blockSize', 'nodeSelector', 'natOutgoing', 'disabled', 'allowedUses', 'ipipMode', 'vxlanMode',
  'disableBGPExport', 'assignmentMode', 'namespaceSelector', 'awsSubnetID', 'ipip', 'nat-outgoing',
];

/** Block sizes and defaults per address family (Calico's; docs/behaviour.md §1). */

/** A pool's CIDR, normalised, with its family: the one reading of spec.cidr that knows IPv6 (for validation only). */
export function poolCidrFamily(text: string): { family: 4 | 6; cidr: string; prefix: number } | undefined {
  const v4 = parseCidr(text);
  if (v4) return { family: 4, cidr: formatCidr(networkOf(v4)), prefix: v4.prefix };
  const v6 = parseCidr6(text);
  if (v6) return { family: 6, cidr: formatCidr6(networkOf6(v6)), prefix: v6.prefix };
  return undefined;
}

function checkIPPoolSpec(c: Checker, v: unknown, p: FieldPath): unknown {
  if (v === undefined) return c.error(p, 'required field is missing (an IPPool needs spec.cidr)', true);
  const s = c.object(v, p, IPPOOL_FIELDS);
  if (!s) return undefined;
  let cidr: string | undefined;
  let prefix: number | undefined;
  let family: 4 | 6 | undefined;
  if (c.required(s, 'cidr', p)) {
    const text = c.string(s.cidr, [...p, 'cidr']);
    if (text !== undefined) {
      const v4 = parseCidr(text);
      const v6 = v4 ? undefined : parseCidr6(text);
      if (v4) {
        if (hasHostBits(v4)) c.error([...p, 'cidr'], `${JSON.stringify(text)} has host bits set; did you mean ${formatCidr(networkOf(v4))}?`);
        else if (isLinkLocal(v4)) c.error([...p, 'cidr'], `${text} overlaps the link-local range 169.254.0.0/16, which cannot be an IP pool`);
        else [cidr, prefix, family] = [formatCidr(v4), v4.prefix, 4];
      } else if (v6) {
        if (hasHostBits6(v6)) c.error([...p, 'cidr'], `${JSON.stringify(text)} has host bits set; did you mean ${formatCidr6(networkOf6(v6))}?`);
        else if (isLinkLocal6(v6)) c.error([...p, 'cidr'], `${text} overlaps the IPv6 link-local range fe80::/10, which cannot be an IP pool`);
        else [cidr, prefix, family] = [formatCidr6(v6), v6.prefix, 6];
      } else {
        c.error([...p, 'cidr'], `${JSON.stringify(text)} is not a CIDR such as 10.10.10.0/30 or fd00:10::/120`);
      }
    }
  }
  const disabled = c.bool(s.disabled, [...p, 'disabled']);
  // The block-size range depends on the family; with an unusable cidr, IPv4's range is assumed for the message.
  const bs = BLOCK_SIZE[family ?? (typeof s.cidr === 'string' && s.cidr.includes(':') ? 6 : 4)];
  const blockSize = c.int(s.blockSize, [...p, 'blockSize'], { min: bs.min, max: bs.max }) ?? (s.blockSize === undefined ? bs.default : undefined);
  // A disabled pool hands out no blocks, so Calico does not hold it to prefix ≤ blockSize.
  if (blockSize !== undefined && prefix !== undefined && prefix > blockSize && disabled !== true) {
    if (s.blockSize === undefined) c.error([...p, 'cidr'], `the prefix /${prefix} is longer than the default block size ${bs.default}; set blockSize to ${prefix} or more`);
    else c.error([...p, 'blockSize'], `the pool's prefix /${prefix} is longer than its block size ${blockSize}; use blockSize ${prefix} or more`);
  }
  const nodeSelector = checkSelector(c, s.nodeSelector, [...p, 'nodeSelector'], { noGlobal: true });
  const natOutgoing = c.bool(s.natOutgoing, [...p, 'natOutgoing']);
  const ipipMode = c.string(s.ipipMode, [...p, 'ipipMode'], { enum: ENCAP_MODES });
  const vxlanMode = c.string(s.vxlanMode, [...p, 'vxlanMode'], { enum: ENCAP_MODES });
  if (ipipMode && vxlanMode && ipipMode !== 'Never' && vxlanMode !== 'Never') {
    c.error([...p, 'vxlanMode'], 'IPIP and VXLAN cannot both be enabled on one pool; set one of ipipMode, vxlanMode to Never');
  }
  if (family === 6 && ipipMode !== undefined && ipipMode !== 'Never') {
    c.error([...p, 'ipipMode'], `IPIP is IPv4 only; an IPv6 pool needs ipipMode Never (or VXLAN), got ${ipipMode}`);
  }
  const allowedUses = c.stringArray(s.allowedUses, [...p, 'allowedUses']);
  allowedUses?.forEach((u, i) => c.string(u, [...p, 'allowedUses', i], { enum: ALLOWED_USES }));
  if (allowedUses && new Set(allowedUses).size !== allowedUses.length) c.error([...p, 'allowedUses'], 'lists a use twice');
  const disableBGPExport = c.bool(s.disableBGPExport, [...p, 'disableBGPExport']);
  if (allowedUses?.includes('LoadBalancer')) {
    // A LoadBalancer pool serves Service addresses on every node: Calico refuses the settings that would narrow or
    // tunnel it.
    if (allowedUses.length > 1) c.error([...p, 'allowedUses'], 'LoadBalancer cannot be combined with other uses (Workload, Tunnel)');
    for (const f of ['ipipMode', 'vxlanMode'] as const) {
      const mode = f === 'ipipMode' ? ipipMode : vxlanMode;
      if (mode !== undefined && mode !== 'Never') c.error([...p, f], `must be Never on a LoadBalancer pool, got ${mode}`);
    }
    if (disableBGPExport === true) c.error([...p, 'disableBGPExport'], 'must not be true on a LoadBalancer pool (its addresses are advertised)');
    if (nodeSelector !== undefined && nodeSelector !== '' && nodeSelector !== 'all()') {
      c.error([...p, 'nodeSelector'], `must be all() on a LoadBalancer pool, got ${JSON.stringify(nodeSelector)}`);
    }
  }
  const assignmentMode = c.string(s.assignmentMode, [...p, 'assignmentMode'], { enum: ['Automatic', 'Manual'] });
  const namespaceSelector = checkSelector(c, s.namespaceSelector, [...p, 'namespaceSelector'], { noGlobal: true });
  if (allowedUses?.includes('Tunnel') && namespaceSelector !== undefined && namespaceSelector.trim() !== '') {
    c.error([...p, 'namespaceSelector'], 'a Tunnel pool serves nodes, not namespaces: remove namespaceSelector or Tunnel from allowedUses');
  }
  // Not acted on by egw, so not checked beyond its type: Calico's own guides use IDs such as subnet-000000000000000001.
  const awsSubnetID = c.string(s.awsSubnetID, [...p, 'awsSubnetID']);
  if (s.ipip !== undefined) c.error([...p, 'ipip'], 'the v1 field ipip is not accepted in projectcalico.org/v3; use ipipMode', true);
  if (s['nat-outgoing'] !== undefined) c.error([...p, 'nat-outgoing'], 'the v1 field nat-outgoing is not accepted in projectcalico.org/v3; use natOutgoing', true);

  // Accepted, but not acted on by egw: say so rather than ignore silently.
  for (const f of ['ipipMode', 'vxlanMode'] as const) {
    if (s[f] !== undefined && s[f] !== 'Never') c.warn([...p, f], 'accepted; egw does not act on pool encapsulation');
  }
  for (const f of ['disableBGPExport', 'namespaceSelector', 'awsSubnetID'] as const) {
    if (s[f] !== undefined) c.warn([...p, f], 'accepted; egw does not act on this field');
  }
  if (family === 6) c.warn([...p, 'cidr'], 'accepted; egw does not use IPv6 pools yet (no pod or gateway address comes from this pool)');
  if (assignmentMode === 'Manual') c.warn([...p, 'assignmentMode'], 'accepted; egw assigns from this pool only to pods that name it');
  if (!cidr || blockSize === undefined) return undefined;
  return dropUndefined({
    cidr,
    blockSize,
    nodeSelector: nodeSelector ?? 'all()',
    natOutgoing: natOutgoing ?? false,
    disabled: disabled ?? false,
    allowedUses: allowedUses ?? [...DEFAULT_ALLOWED_USES],
    ipipMode: ipipMode ?? 'Never',
    vxlanMode: vxlanMode ?? 'Never',
    disableBGPExport,
    assignmentMode: assignmentMode ?? 'Automatic',
    namespaceSelector,
    awsSubnetID,
  });
}

/** Why an EgressGateway cannot take addresses from an IPv6 pool (egw's egress is IPv4; docs/behaviour.md §1). */
export const IPV6_EGRESS = 'IPv6 egress is not supported yet; an EgressGateway takes its addresses from IPv4 pools';

const EGW_FIELDS = ['replicas', 'ipPools', 'logSeverity', 'externalNetworks', 'egressGatewayFailureDetection', 'template', 'aws'];
const EGW_POD_SPEC_FIELDS = ['nodeSelector', 'affinity', 'tolerations', 'topologySpreadConstraints', 'terminationGracePeriodSeconds', 'priorityClassName'];

function checkEgressGatewaySpec(c: Checker, v: unknown, p: FieldPath, name: string): unknown {
  if (v === undefined) return c.error(p, 'required field is missing (an EgressGateway needs spec.ipPools)', true);
  const s = c.object(v, p, EGW_FIELDS);
  if (!s) return undefined;
  const replicas = c.int(s.replicas, [...p, 'replicas'], { min: EGW_REPLICAS.min });
  const ipPools: { name?: string; cidr?: string }[] = [];
  if (c.required(s, 'ipPools', p)) {
    const arr = c.array(s.ipPools, [...p, 'ipPools']);
    if (arr && arr.length === 0) c.error([...p, 'ipPools'], 'must list at least one pool ({name: ...} or {cidr: ...})');
    arr?.forEach((item, i) => {
      const ip = [...p, 'ipPools', i];
      const o = c.object(item, ip, ['name', 'cidr']);
      if (!o) return;
      const pname = c.string(o.name, [...ip, 'name'], { nonEmpty: true });
      let pcidr = c.string(o.cidr, [...ip, 'cidr']);
      if (pcidr !== undefined) {
        const parsed = parseCidr(pcidr);
        if (pcidr === '' && pname === undefined) c.error([...ip, 'cidr'], 'must not be empty: give the pool\'s CIDR or its name');
        else if (pcidr === '') pcidr = undefined;
        else if (!parsed && parseCidr6(pcidr)) c.error([...ip, 'cidr'], `${JSON.stringify(pcidr)}: ${IPV6_EGRESS}`);
        else if (!parsed) c.error([...ip, 'cidr'], `${JSON.stringify(pcidr)} is not an IPv4 CIDR`);
        else if (hasHostBits(parsed)) c.error([...ip, 'cidr'], `${JSON.stringify(pcidr)} has host bits set; did you mean ${formatCidr(networkOf(parsed))}?`);
        else pcidr = formatCidr(parsed);
      }
      if (o.name === undefined && o.cidr === undefined) c.error(ip, 'give the pool\'s name or cidr');
      ipPools.push(dropUndefined({ name: pname, cidr: pcidr }));
    });
  }
  const logSeverity = c.string(s.logSeverity, [...p, 'logSeverity'], { enum: LOG_SEVERITIES });
  const externalNetworks = c.stringArray(s.externalNetworks, [...p, 'externalNetworks']);
  if (externalNetworks?.length) c.warn([...p, 'externalNetworks'], 'accepted; egw does not support external networks yet');
  const failureDetection = checkFailureDetection(c, s.egressGatewayFailureDetection, [...p, 'egressGatewayFailureDetection']);
  const template = checkTemplate(c, s.template, [...p, 'template'], name);
  const aws = c.object(s.aws, [...p, 'aws'], ['nativeIP', 'elasticIPs']);
  if (aws) {
    c.string(aws.nativeIP, [...p, 'aws', 'nativeIP'], { enum: ['Enabled', 'Disabled'] });
    c.stringArray(aws.elasticIPs, [...p, 'aws', 'elasticIPs']);
    c.warn([...p, 'aws'], 'accepted; egw does not act on AWS settings');
  }
  return dropUndefined({
    replicas: replicas ?? EGW_REPLICAS.default,
    ipPools,
    logSeverity: logSeverity ?? DEFAULT_LOG_SEVERITY,
    externalNetworks,
    egressGatewayFailureDetection: failureDetection,
    template,
    aws,
  });
}

function checkFailureDetection(c: Checker, v: unknown, p: FieldPath): unknown {
  const f = c.object(v, p, ['healthTimeoutDataStoreSeconds', 'icmpProbe', 'httpProbe']);
  if (!f) return undefined;
  const healthTimeout = c.int(f.healthTimeoutDataStoreSeconds, [...p, 'healthTimeoutDataStoreSeconds'], { min: HEALTH_TIMEOUT_DATASTORE.min });
  const probe = (key: 'icmpProbe' | 'httpProbe', listKey: 'ips' | 'urls', interval: number, timeout: number) => {
    const pp = [...p, key];
    const o = c.object(f[key], pp, [listKey, 'intervalSeconds', 'timeoutSeconds']);
    if (!o) return undefined;
    let list: string[] | undefined;
    if (c.required(o, listKey, pp)) {
      list = c.stringArray(o[listKey], [...pp, listKey]);
      if (list && list.length === 0) c.error([...pp, listKey], 'must list at least one target');
      list?.forEach((t, i) => {
        if (listKey === 'ips' && parseIPv4(t) === undefined) c.error([...pp, listKey, i], `${JSON.stringify(t)} is not an IPv4 address`);
        if (listKey === 'urls' && !isHttpUrl(t)) c.error([...pp, listKey, i], `${JSON.stringify(t)} is not an http:// or https:// URL`);
      });
    }
    const iv = c.int(o.intervalSeconds, [...pp, 'intervalSeconds'], { min: PROBE_SECONDS_MIN }) ?? interval;
    const to = c.int(o.timeoutSeconds, [...pp, 'timeoutSeconds'], { min: PROBE_SECONDS_MIN }) ?? timeout;
    if (to < iv) c.error([...pp, 'timeoutSeconds'], `must be at least intervalSeconds (${iv}), got ${to}`);
    return { [listKey]: list ?? [], intervalSeconds: iv, timeoutSeconds: to };
  };
  const icmpProbe = probe('icmpProbe', 'ips', PROBE_DEFAULTS.icmpProbe.intervalSeconds, PROBE_DEFAULTS.icmpProbe.timeoutSeconds);
  const httpProbe = probe('httpProbe', 'urls', PROBE_DEFAULTS.httpProbe.intervalSeconds, PROBE_DEFAULTS.httpProbe.timeoutSeconds);
  if (f.icmpProbe === undefined && f.httpProbe === undefined) {
    c.error(p, 'configure icmpProbe, httpProbe or both (failure detection needs a probe)');
  }
  return dropUndefined({ healthTimeoutDataStoreSeconds: healthTimeout ?? HEALTH_TIMEOUT_DATASTORE.default, icmpProbe, httpProbe });
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

function checkTemplate(c: Checker, v: unknown, p: FieldPath, name: string): unknown {
  const t = c.object(v, p, ['metadata', 'spec']);
  const md = c.object(t?.metadata, [...p, 'metadata'], ['labels', 'annotations']);
  const labels = c.stringMap(md?.labels, [...p, 'metadata', 'labels']);
  if (labels) checkLabels(c, labels, [...p, 'metadata', 'labels']);
  const annotations = c.stringMap(md?.annotations, [...p, 'metadata', 'annotations']);
  const ps = c.object(t?.spec, [...p, 'spec'], EGW_POD_SPEC_FIELDS);
  let spec: Record<string, unknown> | undefined;
  if (ps) {
    const sp = [...p, 'spec'];
    const nodeSelector = c.stringMap(ps.nodeSelector, [...sp, 'nodeSelector']);
    if (nodeSelector) checkLabels(c, nodeSelector, [...sp, 'nodeSelector']);
    const tolerations = c.array(ps.tolerations, [...sp, 'tolerations']);
    tolerations?.forEach((tol, i) => {
      const tp = [...sp, 'tolerations', i];
      const o = c.object(tol, tp, ['key', 'operator', 'value', 'effect', 'tolerationSeconds']);
      if (!o) return;
      c.string(o.key, [...tp, 'key']);
      c.string(o.operator, [...tp, 'operator'], { enum: ['Exists', 'Equal'] });
      c.string(o.value, [...tp, 'value']);
      c.string(o.effect, [...tp, 'effect'], { enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] });
      c.int(o.tolerationSeconds, [...tp, 'tolerationSeconds']);
    });
    const affinity = c.object(ps.affinity, [...sp, 'affinity'], ['nodeAffinity', 'podAffinity', 'podAntiAffinity']);
    const tsc = c.array(ps.topologySpreadConstraints, [...sp, 'topologySpreadConstraints']);
    tsc?.forEach((x, i) => c.passthrough(x, [...sp, 'topologySpreadConstraints', i], 'object'));
    const grace = c.int(ps.terminationGracePeriodSeconds, [...sp, 'terminationGracePeriodSeconds'], { min: GRACE_SECONDS_MIN });
    const priorityClassName = c.string(ps.priorityClassName, [...sp, 'priorityClassName']);
    spec = dropUndefined({ nodeSelector, affinity, tolerations, topologySpreadConstraints: tsc, terminationGracePeriodSeconds: grace, priorityClassName });
  }
  const finalLabels = labels && Object.keys(labels).length ? labels : { [DEFAULT_GATEWAY_LABEL]: name };
  return dropUndefined({
    metadata: dropUndefined({ labels: finalLabels, annotations: annotations && Object.keys(annotations).length ? annotations : undefined }),
    spec: spec && Object.keys(spec).length ? spec : undefined,
  });
}

function checkPolicySpec(c: Checker, v: unknown, p: FieldPath): unknown {
  if (v === undefined) return c.error(p, 'required field is missing (a policy needs spec.rules)', true);
  const s = c.object(v, p, ['rules']);
  if (!s) return undefined;
  if (!c.required(s, 'rules', p)) return undefined;
  const arr = c.array(s.rules, [...p, 'rules']);
  if (!arr) return undefined;
  if (arr.length === 0) return c.error([...p, 'rules'], 'must have at least one rule');
  const seen = new Map<string, number>();
  const rules: unknown[] = [];
  let anyEffect = false;
  arr.forEach((item, i) => {
    const rp = [...p, 'rules', i];
    const r = c.object(item, rp, ['destination', 'description', 'gateway', 'gatewayPreference']);
    if (!r) return;
    const description = c.string(r.description, [...rp, 'description']);
    let dst = '0.0.0.0/0';
    const d = c.object(r.destination, [...rp, 'destination'], ['cidr']);
    if (d) {
      if (c.required(d, 'cidr', [...rp, 'destination'])) {
        const text = c.string(d.cidr, [...rp, 'destination', 'cidr']);
        if (text !== undefined) {
          const parsed = parseCidr(text);
          if (!parsed) {
            c.error([...rp, 'destination', 'cidr'], text.includes(':') ? `${JSON.stringify(text)}: IPv6 destinations are not supported yet` : `${JSON.stringify(text)} is not an IPv4 CIDR such as 10.0.0.0/8`);
          } else if (hasHostBits(parsed)) {
            c.error([...rp, 'destination', 'cidr'], `${JSON.stringify(text)} has host bits set; did you mean ${formatCidr(networkOf(parsed))}?`);
          } else dst = formatCidr(parsed);
        }
      }
    }
    const earlier = seen.get(dst);
    if (earlier !== undefined) {
      c.error(r.destination === undefined ? rp : [...rp, 'destination'], `destination ${dst} is the same as rule ${earlier}'s; each destination may appear once`);
    } else seen.set(dst, i);
    let gateway: Record<string, unknown> | undefined;
    const g = c.object(r.gateway, [...rp, 'gateway'], ['selector', 'namespaceSelector', 'maxNextHops']);
    if (g) {
      const gp = [...rp, 'gateway'];
      let selector: string | undefined;
      let namespaceSelector: string | undefined;
      if (c.required(g, 'selector', gp)) selector = checkSelector(c, g.selector, [...gp, 'selector'], { nonEmpty: true });
      if (c.required(g, 'namespaceSelector', gp)) namespaceSelector = checkSelector(c, g.namespaceSelector, [...gp, 'namespaceSelector'], { nonEmpty: true });
      const maxNextHops = c.int(g.maxNextHops, [...gp, 'maxNextHops'], { min: MAX_NEXT_HOPS_MIN });
      gateway = dropUndefined({ selector, namespaceSelector, maxNextHops });
    }
    const gatewayPreference = c.string(r.gatewayPreference, [...rp, 'gatewayPreference'], { enum: GATEWAY_PREFERENCES });
    if (r.destination !== undefined || r.gateway !== undefined) anyEffect = true;
    rules.push(dropUndefined({
      destination: { cidr: dst },
      description,
      gateway,
      gatewayPreference: gatewayPreference ?? DEFAULT_GATEWAY_PREFERENCE,
    }));
  });
  if (!anyEffect) c.error([...p, 'rules'], 'no rule sets a destination or a gateway, so the policy would do nothing');
  return { rules };
}

const FELIX_EGRESS_FIELDS = [
  'egressIPSupport', 'egressIPVXLANPort', 'egressIPVXLANVNI', 'egressIPRoutingRulePriority',
  'egressGatewayPollInterval', 'egressGatewayPollFailureCount',
];

function checkFelixSpec(c: Checker, v: unknown, p: FieldPath, name: string): unknown {
  if (name && name !== FELIX_CONFIGURATION_DEFAULT && !name.startsWith('node.')) {
    c.error(['metadata', 'name'], `FelixConfiguration must be named "default" (or "node.<nodename>"), got ${JSON.stringify(name)}`);
  }
  if (v === undefined) return undefined;
  if (!isPlainObject(v)) return c.error(p, 'expected a mapping (object)');
  c.string(v.egressIPSupport, [...p, 'egressIPSupport'], { enum: EGRESS_IP_SUPPORT });
  c.int(v.egressIPVXLANPort, [...p, 'egressIPVXLANPort'], FELIX_RANGES.egressIPVXLANPort);
  c.int(v.egressIPVXLANVNI, [...p, 'egressIPVXLANVNI'], FELIX_RANGES.egressIPVXLANVNI);
  c.int(v.egressIPRoutingRulePriority, [...p, 'egressIPRoutingRulePriority'], FELIX_RANGES.egressIPRoutingRulePriority);
  const poll = c.string(v.egressGatewayPollInterval, [...p, 'egressGatewayPollInterval']);
  if (poll !== undefined && parseGoDuration(poll) === undefined) {
    c.error([...p, 'egressGatewayPollInterval'], `${JSON.stringify(poll)} is not a duration such as "10s" or "200ms"`);
  }
  c.int(v.egressGatewayPollFailureCount, [...p, 'egressGatewayPollFailureCount'], FELIX_RANGES.egressGatewayPollFailureCount);
  for (const k of Object.keys(v)) {
    if (!FELIX_EGRESS_FIELDS.includes(k)) c.warn([...p, k], 'accepted; egw acts only on the egress fields of FelixConfiguration');
  }
  return v;
}

function checkNodeSpec(c: Checker, v: unknown, p: FieldPath): unknown {
  const s = c.object(v, p, ['podCIDR', 'podCIDRs', 'unschedulable', 'taints', 'providerID', 'externalID', 'configSource']);
  if (!s) return undefined;
  c.string(s.podCIDR, [...p, 'podCIDR']);
  c.stringArray(s.podCIDRs, [...p, 'podCIDRs']);
  c.bool(s.unschedulable, [...p, 'unschedulable']);
  c.array(s.taints, [...p, 'taints']);
  return Object.keys(s).length ? s : undefined;
}

// ---- status ----------------------------------------------------------------------------------------------------

function checkStatus(c: Checker, v: unknown, info: KindInfo): unknown {
  if (v === undefined || v === null) return undefined;
  const p: FieldPath = ['status'];
  if (!isPlainObject(v)) return c.error(p, 'expected a mapping (object)');
  switch (info.kind) {
    case 'Pod': {
      // A dual-stack pod lists an IPv6 address too: accepted, as Kubernetes does; egw uses the IPv4 one (podIPv4).
      const ip = c.string(v.podIP, [...p, 'podIP']);
      if (ip !== undefined && ip !== '' && !isIPAddress(ip)) c.error([...p, 'podIP'], `${JSON.stringify(ip)} is not an IP address`);
      c.array(v.podIPs, [...p, 'podIPs'])?.forEach((item, i) => {
        const o = c.object(item, [...p, 'podIPs', i], ['ip']);
        const a = c.string(o?.ip, [...p, 'podIPs', i, 'ip']);
        if (a !== undefined && !isIPAddress(a)) c.error([...p, 'podIPs', i, 'ip'], `${JSON.stringify(a)} is not an IP address`);
      });
      c.string(v.phase, [...p, 'phase'], { enum: ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] });
      return v;
    }
    case 'Node': {
      c.array(v.addresses, [...p, 'addresses'])?.forEach((item, i) => {
        const ap = [...p, 'addresses', i];
        const o = c.object(item, ap, ['type', 'address']);
        if (!o) return;
        c.string(o.type, [...ap, 'type'], { enum: ['InternalIP', 'ExternalIP', 'Hostname', 'InternalDNS', 'ExternalDNS'] });
        const a = c.string(o.address, [...ap, 'address']);
        // A dual-stack node has IPv6 addresses too: accepted; egw uses the IPv4 ones (calc/records.ts skips the rest).
        if (a !== undefined && (o.type === 'InternalIP' || o.type === 'ExternalIP') && !isIPAddress(a)) {
          c.error([...ap, 'address'], `${JSON.stringify(a)} is not an IP address`);
        }
      });
      return v;
    }
    case 'Namespace':
      return v;
    default:
      c.warn(p, 'status is written by egw itself; the status given here is not applied');
      return undefined;
  }
}

export function poolCapacity(cidr: string): number {
  const parsed = parseCidr(cidr);
  return parsed ? cidrSize(parsed) : 0;
}

function isIPAddress(text: string): boolean {
  return parseIPv4(text) !== undefined || parseIPv6(text) !== undefined;
}
