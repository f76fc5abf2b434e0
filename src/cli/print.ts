// kubectl-style tables and `describe` text for each kind.
import { stringify as toYaml } from 'yaml';
import {
  ANNOTATION,
  type EgressGatewayPolicySpec,
  type EgressGatewaySpec,
  type EgressGatewayStatus,
  type IPPoolSpec,
  type KindInfo,
  type NodeStatus,
  type PodSpec,
  type PodStatus,
  type Resource,
} from '../api/index.js';
import type { DeploymentSpec, DeploymentStatus, LabelSelector, PodTemplateSpec, ReplicaSetSpec, ReplicaSetStatus } from '../api/types.js';
import type { LeaderInfo } from '../controller/leader.js';
import type { Resolved } from '../calc/index.js';

interface Column {
  header: string;
  value: (r: Resource) => string;
  wide?: boolean;
}

const age: Column = { header: 'AGE', value: (r) => formatAge(r.metadata.creationTimestamp) };

function egressAnnotations(r: Resource): string {
  const a = r.metadata.annotations ?? {};
  if (a[ANNOTATION.egressGatewayPolicy]) return `policy=${a[ANNOTATION.egressGatewayPolicy]}`;
  const parts: string[] = [];
  if (a[ANNOTATION.selector]) parts.push(`selector=${a[ANNOTATION.selector]}`);
  if (a[ANNOTATION.namespaceSelector]) parts.push(`namespaceSelector=${a[ANNOTATION.namespaceSelector]}`);
  if (a[ANNOTATION.maxNextHops]) parts.push(`maxNextHops=${a[ANNOTATION.maxNextHops]}`);
  return parts.join(' ') || '<none>';
}

function labelsText(l: Record<string, string> | undefined): string {
  const entries = Object.entries(l ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
}

/**
 * A pod's effective egress for `get pods -o wide`, from the calculator's resolution (docs/behaviour.md §2): what decides
 * and where it comes from, e.g. `policy:egw-policy1 (ns)`, `selector:egress-code == 'red' (pod)`,
 * `fail-closed:missing-policy (ns)`, `<none>` (no egress annotation applies, or egressIPSupport is Disabled).
 */
export function effectiveEgressText(r: Resolved | null): string {
  if (!r || r.kind === 'none' || r.kind === 'disabled') return '<none>';
  const from = r.source === 'pod' ? '(pod)' : '(ns)';
  switch (r.kind) {
    case 'policy':
      return `policy:${r.policy} ${from}`;
    case 'selector':
      // The gateway selector as written; the namespaceSelector and maxNextHops are in `egw explain`.
      return `selector:${r.selector} ${from}`;
    case 'fail-closed':
      return `fail-closed:${r.value} ${from}`;
  }
}

/** kubectl's SELECTOR text of a LabelSelector: `app=web,tier in (a,b),!gone`. */
export function labelSelectorText(sel: LabelSelector | undefined): string {
  const parts = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${(e.values ?? []).join(',')})`);
  }
  return parts.join(',') || '<none>';
}

/** CONTAINERS, IMAGES and SELECTOR, the wide columns of Deployments and ReplicaSets (as kubectl's). */
function templateColumns(): Column[] {
  const tmpl = (r: Resource) => (r.spec as { template?: PodTemplateSpec } | undefined)?.template;
  return [
    { header: 'CONTAINERS', value: (r) => (tmpl(r)?.spec.containers ?? []).map((c) => c.name).join(',') || '<none>', wide: true },
    { header: 'IMAGES', value: (r) => (tmpl(r)?.spec.containers ?? []).map((c) => c.image ?? '<none>').join(',') || '<none>', wide: true },
    { header: 'SELECTOR', value: (r) => labelSelectorText((r.spec as { selector?: LabelSelector }).selector), wide: true },
  ];
}

const COLUMNS: Record<string, Column[]> = {
  Deployment: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'READY', value: (r) => `${(r.status as DeploymentStatus | undefined)?.readyReplicas ?? 0}/${(r.spec as DeploymentSpec).replicas}` },
    { header: 'UP-TO-DATE', value: (r) => String((r.status as DeploymentStatus | undefined)?.updatedReplicas ?? 0) },
    { header: 'AVAILABLE', value: (r) => String((r.status as DeploymentStatus | undefined)?.availableReplicas ?? 0) },
    age,
    ...templateColumns(),
  ],
  ReplicaSet: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'DESIRED', value: (r) => String((r.spec as ReplicaSetSpec).replicas) },
    { header: 'CURRENT', value: (r) => String((r.status as ReplicaSetStatus | undefined)?.replicas ?? 0) },
    { header: 'READY', value: (r) => String((r.status as ReplicaSetStatus | undefined)?.readyReplicas ?? 0) },
    age,
    ...templateColumns(),
  ],
  IPPool: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'CIDR', value: (r) => (r.spec as IPPoolSpec).cidr },
    { header: 'BLOCKSIZE', value: (r) => String((r.spec as IPPoolSpec).blockSize) },
    { header: 'NAT', value: (r) => String(!!(r.spec as IPPoolSpec).natOutgoing) },
    { header: 'DISABLED', value: (r) => String(!!(r.spec as IPPoolSpec).disabled) },
    { header: 'SELECTOR', value: (r) => (r.spec as IPPoolSpec).nodeSelector ?? 'all()', wide: true },
    age,
  ],
  EgressGateway: [
    { header: 'NAME', value: (r) => r.metadata.name },
    {
      header: 'READY',
      value: (r) => `${(r.status as EgressGatewayStatus | undefined)?.readyReplicas ?? 0}/${(r.spec as EgressGatewaySpec).replicas}`,
    },
    { header: 'POOLS', value: (r) => (r.spec as EgressGatewaySpec).ipPools.map((p) => p.name ?? p.cidr).join(','), wide: true },
    { header: 'LABELS', value: (r) => labelsText((r.spec as EgressGatewaySpec).template.metadata.labels), wide: true },
    {
      header: 'PROBES',
      value: (r) => {
        const fd = (r.spec as EgressGatewaySpec).egressGatewayFailureDetection;
        const kinds = [fd?.icmpProbe ? 'icmp' : '', fd?.httpProbe ? 'http' : ''].filter(Boolean);
        return kinds.join('+') || '<none>';
      },
      wide: true,
    },
    age,
  ],
  EgressGatewayPolicy: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'RULES', value: (r) => String((r.spec as EgressGatewayPolicySpec).rules.length) },
    {
      header: 'DESTINATIONS',
      value: (r) =>
        (r.spec as EgressGatewayPolicySpec).rules
          .map((x) => `${x.destination?.cidr ?? '0.0.0.0/0'}${x.gateway ? '→gw' : '→direct'}`)
          .join(' '),
      wide: true,
    },
    age,
  ],
  FelixConfiguration: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'EGRESSIPSUPPORT', value: (r) => String((r.spec as Record<string, unknown> | undefined)?.egressIPSupport ?? 'Disabled') },
    age,
  ],
  Node: [
    { header: 'NAME', value: (r) => r.metadata.name },
    {
      header: 'INTERNAL-IP',
      value: (r) => (r.status as NodeStatus | undefined)?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '<none>',
    },
    { header: 'LABELS', value: (r) => labelsText(r.metadata.labels), wide: true },
    age,
  ],
  Namespace: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'EGRESS', value: egressAnnotations },
    { header: 'LABELS', value: (r) => labelsText(r.metadata.labels), wide: true },
    age,
  ],
  Pod: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'STATUS', value: (r) => podStatusText(r) },
    { header: 'NODE', value: (r) => (r.spec as PodSpec).nodeName ?? '<none>' },
    {
      header: 'IP',
      value: (r) => {
        const s = r.status as PodStatus | undefined;
        return s?.podIPs?.[0]?.ip ?? s?.podIP ?? '<none>';
      },
    },
    { header: 'EGRESS', value: egressAnnotations, wide: true },
    { header: 'LABELS', value: (r) => labelsText(r.metadata.labels), wide: true },
    age,
  ],
};

/** kubectl's STATUS of a pod: Terminating once it has a deletionTimestamp, else its phase (Pending until it has one). */
export function podStatusText(r: Resource): string {
  if (r.metadata.deletionTimestamp) return 'Terminating';
  return (r.status as PodStatus | undefined)?.phase ?? 'Pending';
}

/**
 * `egress`: a pod's effective egress (the calculator's resolution, effectiveEgressText); without it the EGRESS column
 * of pods shows the pod's own annotations.
 */
export function printTable(
  items: Resource[],
  kind: KindInfo,
  opts: { wide: boolean; allNamespaces: boolean; egress?: (r: Resource) => string },
): string {
  const egress = opts.egress;
  const cols = (COLUMNS[kind.kind] ?? [{ header: 'NAME', value: (r: Resource) => r.metadata.name }, age])
    .filter((c) => opts.wide || !c.wide)
    .map((c) => (kind.kind === 'Pod' && c.header === 'EGRESS' && egress ? { ...c, value: egress } : c));
  if (kind.namespaced && opts.allNamespaces) cols.unshift({ header: 'NAMESPACE', value: (r) => r.metadata.namespace ?? '' });
  const rows = [cols.map((c) => c.header), ...items.map((r) => cols.map((c) => c.value(r)))];
  const widths = cols.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] + 3))).join('').trimEnd()).join('\n') + '\n';
}

export function describeObject(r: Resource): string {
  const lines = [
    `Name:         ${r.metadata.name}`,
    ...(r.metadata.namespace ? [`Namespace:    ${r.metadata.namespace}`] : []),
    `Kind:         ${r.kind}`,
    `API Version:  ${r.apiVersion}`,
    `Labels:       ${multiline(r.metadata.labels)}`,
    `Annotations:  ${multiline(r.metadata.annotations)}`,
    `Created:      ${r.metadata.creationTimestamp ?? '<unknown>'}`,
    `Version:      ${r.metadata.resourceVersion ?? '<unknown>'}`,
  ];
  if (r.metadata.deletionTimestamp) {
    const g = r.metadata.deletionGracePeriodSeconds;
    lines.push(`Terminating:  until ${r.metadata.deletionTimestamp}${g !== undefined ? ` (grace period ${g}s)` : ''}`);
  }
  lines.push(...appsSummary(r));
  if (r.spec !== undefined) lines.push('Spec:', indent(toYaml(r.spec, { lineWidth: 0 })));
  if (r.status !== undefined) lines.push('Status:', indent(toYaml(r.status, { lineWidth: 0 })));
  return lines.join('\n') + '\n';
}

/** kubectl describe's summary lines of a Deployment or ReplicaSet (replica counts, selector, strategy). */
function appsSummary(r: Resource): string[] {
  if (r.kind === 'Deployment') {
    const spec = r.spec as DeploymentSpec;
    const st = (r.status ?? {}) as DeploymentStatus;
    const out = [
      `Selector:     ${labelSelectorText(spec.selector)}`,
      `Replicas:     ${spec.replicas} desired | ${st.updatedReplicas ?? 0} updated | ${st.replicas ?? 0} total | ${st.availableReplicas ?? 0} available | ${st.unavailableReplicas ?? 0} unavailable`,
      `StrategyType: ${spec.strategy.type}`,
      `MinReadySeconds: ${spec.minReadySeconds}`,
    ];
    if (spec.strategy.rollingUpdate) out.push(`RollingUpdateStrategy: ${spec.strategy.rollingUpdate.maxUnavailable} max unavailable, ${spec.strategy.rollingUpdate.maxSurge} max surge`);
    for (const c of st.conditions ?? []) out.push(`Condition:    ${c.type} ${c.status} ${c.reason ?? ''}`.trimEnd());
    return out;
  }
  if (r.kind === 'ReplicaSet') {
    const spec = r.spec as ReplicaSetSpec;
    const st = (r.status ?? {}) as ReplicaSetStatus;
    const owner = r.metadata.ownerReferences?.find((o) => o.controller);
    return [
      `Selector:     ${labelSelectorText(spec.selector)}`,
      ...(owner ? [`Controlled By: ${owner.kind}/${owner.name}`] : []),
      `Replicas:     ${st.replicas ?? 0} current / ${spec.replicas} desired`,
      `Pods Status:  ${st.readyReplicas ?? 0} Ready / ${st.availableReplicas ?? 0} Available`,
    ];
  }
  return [];
}

function multiline(m: Record<string, string> | undefined): string {
  const entries = Object.entries(m ?? {});
  if (!entries.length) return '<none>';
  return entries.map(([k, v], i) => `${i ? '              ' : ''}${k}=${v}`).join('\n');
}

function indent(text: string): string {
  return text.trimEnd().replace(/^/gm, '  ');
}

export function formatAge(ts: string | undefined, now = Date.now()): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// ---- egw status -------------------------------------------------------------------------------------------------

/** One EgressGateway as `egw status` reports it (also its -o json shape). */
export interface GatewayStatusView {
  namespace: string;
  name: string;
  /** spec.replicas. */
  desired: number;
  readyReplicas: number;
  conditions: EgressGatewayStatus['conditions'];
  replicas: NonNullable<EgressGatewayStatus['replicas']>;
  /** False when the controller has written no status yet. */
  reported: boolean;
}

export function gatewayStatusView(r: Resource): GatewayStatusView {
  const spec = r.spec as EgressGatewaySpec;
  const st = r.status as EgressGatewayStatus | undefined;
  return {
    namespace: r.metadata.namespace ?? '',
    name: r.metadata.name,
    desired: spec.replicas,
    readyReplicas: st?.readyReplicas ?? 0,
    conditions: st?.conditions ?? [],
    replicas: st?.replicas ?? [],
    reported: st?.conditions !== undefined || st?.replicas !== undefined,
  };
}

/**
 * `egw status`'s first line: which controller leads, since when, and how leadership is held (docs/behaviour.md §4.1).
 * A lock whose holder stopped renewing is shown as such: no controller acts until a running one takes it over.
 */
export function formatLeader(info: LeaderInfo | undefined): string {
  if (!info) return 'controller: no leader (no egw controller is running, or none has been elected yet)\n';
  if (info.stale) return `controller: no leader (${info.holder} stopped renewing at ${info.renewed ?? '?'}; a running controller takes over: ${info.mechanism})\n`;
  return `controller: ${info.holder} leads, since ${info.since || '?'} (${info.mechanism})\n`;
}

/** Plain aligned columns (no trailing spaces), each row prefixed with `indent`. */
function columns(rows: string[][], indent = ''): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] + 3))).join('').trimEnd());
}

/**
 * `egw status`: per EgressGateway a header (namespace/name, ready/desired), its conditions with reasons and
 * messages, and a table of its gateway pods (node, IP, health, clients, reasons). Gateways are separated by a blank
 * line.
 */
export function formatGatewayStatus(views: GatewayStatusView[]): string {
  const blocks: string[] = [];
  for (const v of views) {
    const lines = [`${v.namespace}/${v.name}: ${v.readyReplicas}/${v.desired} ready`];
    if (!v.reported) {
      lines.push('  no status yet (is the controller running?)');
      blocks.push(lines.join('\n'));
      continue;
    }
    if (v.conditions?.length) {
      lines.push(...columns(v.conditions.map((c) => [`${c.type}:`, c.status, c.reason ?? '', c.message ?? '']), '  '));
    }
    if (v.replicas.length === 0) {
      lines.push('  no gateway pods');
    } else {
      const rows = [['POD', 'NODE', 'IP', 'HEALTH', 'CLIENTS', 'REASONS']];
      for (const p of v.replicas) rows.push([p.pod, p.node ?? '<none>', p.ip ?? '<none>', p.health, String(p.clients ?? 0), (p.reasons ?? []).join('; ')]);
      lines.push(...columns(rows, '  '));
    }
    blocks.push(lines.join('\n'));
  }
  return blocks.join('\n\n') + '\n';
}
