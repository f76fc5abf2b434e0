// Resource builders and a tiny kernel-lookup simulator for the calc tests.
import type { Resource } from '../../src/api/meta.js';
import type { EgressGatewayRule, EgressIPSupport } from '../../src/api/types.js';
import { GATEWAY_POD_ANNOTATION } from '../../src/calc/index.js';
import type { EgressRoute, NodeEgressState } from '../../src/calc/index.js';

export const SEL = 'egress.projectcalico.org/selector';
export const NSSEL = 'egress.projectcalico.org/namespaceSelector';
export const MAXHOPS = 'egress.projectcalico.org/maxNextHops';
export const POLICY = 'egress.projectcalico.org/egressGatewayPolicy';

export function felix(support: EgressIPSupport, extra: Record<string, unknown> = {}): Resource {
  return { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { egressIPSupport: support, ...extra } };
}

export function pool(name: string, cidr: string): Resource {
  return { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec: { cidr } };
}

export function node(name: string, ...ips: string[]): Resource {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: {}, status: { addresses: ips.map((address) => ({ type: 'InternalIP', address })) } };
}

export function namespace(name: string, opts: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Resource {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: opts.labels, annotations: opts.annotations } };
}

export interface PodOpts {
  ip?: string;
  node?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  /** The Ready condition's status; null or absent: no Ready condition (gw() defaults to true). */
  ready?: boolean | 'Unknown' | null;
  deleting?: boolean;
}

export function pod(ns: string, name: string, o: PodOpts = {}): Resource {
  const status: Record<string, unknown> = { phase: o.phase ?? 'Running' };
  if (o.ip) {
    status.podIP = o.ip;
    status.podIPs = [{ ip: o.ip }];
  }
  if (o.ready !== undefined && o.ready !== null) status.conditions = [{ type: 'Ready', status: o.ready === 'Unknown' ? 'Unknown' : o.ready ? 'True' : 'False' }];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      labels: o.labels,
      annotations: o.annotations,
      ...(o.deleting ? { deletionTimestamp: '2024-01-01T00:00:00Z', deletionGracePeriodSeconds: 30 } : {}),
    },
    spec: { nodeName: o.node, containers: [{ name: 'c' }] },
    status,
  };
}

/**
 * A gateway pod of EgressGateway `egw` (default: its name up to the last dash). Ready unless told otherwise: phase
 * Running (pod()'s default) and Ready=True, what a gateway pod needs to be eligible (docs/dataplane.md, "Gateway
 * readiness").
 */
export function gw(ns: string, name: string, o: PodOpts & { egw?: string } = {}): Resource {
  return pod(ns, name, { ...o, ready: o.ready === undefined ? true : o.ready, annotations: { ...(o.annotations ?? {}), [GATEWAY_POD_ANNOTATION]: o.egw ?? name.replace(/-[^-]*$/, '') } });
}

export function policy(name: string, rules: EgressGatewayRule[]): Resource {
  return { apiVersion: 'projectcalico.org/v3', kind: 'EgressGatewayPolicy', metadata: { name }, spec: { rules } };
}

function ipNum(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

function contains(cidr: string, ip: string): { ok: boolean; len: number } {
  const [a, l] = cidr.split('/');
  const len = Number(l);
  const size = 2 ** (32 - len);
  return { ok: Math.floor(ipNum(ip) / size) === Math.floor(ipNum(a) / size), len };
}

/** The client's table routes, or null when the pod has no rule. */
export function tableOf(st: NodeEgressState, podKey: string): readonly EgressRoute[] | null {
  const r = st.rules.find((x) => x.pod === podKey);
  if (!r) return null;
  const t = st.tables.find((x) => x.id === r.table);
  if (!t) throw new Error(`rule of ${podKey} points at missing table ${r.table}`);
  return t.routes;
}

/**
 * What the kernel would do for a packet from the pod to dst: 'main' (no rule, no matching route or a throw), or
 * the matching route.
 */
export function lookup(st: NodeEgressState, podKey: string, dst: string): 'main' | 'unreachable' | string[] {
  const routes = tableOf(st, podKey);
  if (!routes) return 'main';
  let best: EgressRoute | null = null;
  let bestLen = -1;
  for (const r of routes) {
    const c = contains(r.dst, dst);
    if (c.ok && c.len > bestLen) {
      best = r;
      bestLen = c.len;
    }
  }
  if (!best || best.type === 'throw') return 'main';
  if (best.type === 'unreachable') return 'unreachable';
  return [...best.via];
}
