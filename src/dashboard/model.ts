// The dashboard's view model (docs/dashboard.md): from the datastore's objects, the metrics scraped from the
// processes and the flow graph, everything the page shows. Pure: the live part (src/dashboard/live.ts) hands in what
// its informer, scraper and flow index hold; the page draws the result with textContent only.
//
// Health "as agents see it" is egw_agent_gateway_up{gateway="ns/pod"} of every agent scraped (docs/observability.md):
// a gateway pod is up when every agent that heartbeats it says 1, down when all say 0, split otherwise; without an
// agent's word the controller's status (EgressGateway status.replicas) is shown, marked as such.
import { ANNOTATION, type EgressGatewayPolicy, type EgressGatewayRule, type Pod } from '../api/types.js';
import type { Resource } from '../api/meta.js';
import { namespaceOf } from '../api/meta.js';
import { gatewayStatusView } from '../cli/print.js';
import type { Resolved } from '../calc/resolve.js';
import type { FlowGraph } from './graph.js';
import type { Sample } from '../metrics/scrape.js';

/** What one scrape of one process gave. */
export interface ScrapeResult {
  /** `agent-<node>`, `gateway-<ns>.<pod>`, `controller-<i>` (lab sockets), or the --scrape target's name. */
  source: string;
  ok: boolean;
  error?: string;
  /** ms since the epoch. */
  at: number;
  samples: readonly Sample[];
}

export type AgentHealth = 'up' | 'down' | 'split' | 'unknown';

export interface PortUseView {
  egressIp: string;
  destination: string;
  protocol: string;
  inUse: number;
  available: number;
  /** inUse / (inUse + available). */
  share: number;
}

export interface GatewayPodView {
  namespace: string;
  name: string;
  node: string | null;
  ip: string | null;
  /** The controller's word (status.replicas[].health), 'Unknown' without one. */
  status: string;
  reasons: string[];
  /** Every agent's egw_agent_gateway_up for this pod, by agent. */
  agents: { agent: string; up: boolean }[];
  health: AgentHealth;
  clients: number | null;
  conntrackEntries: number | null;
  ports: PortUseView[];
}

export interface EgressGatewayView {
  namespace: string;
  name: string;
  desired: number;
  ready: number;
  conditions: { type: string; status: string; reason: string; message: string }[];
  pods: GatewayPodView[];
}

export interface PolicyView {
  name: string;
  rules: { index: number; destination: string; description: string; gateway: string | null; preference: string }[];
  /** Namespaces whose annotation names it. */
  namespaces: string[];
  /** Client pods it routes (`ns/name`), by the calculator's resolution (docs/behaviour.md §2). */
  pods: string[];
}

/** Clients routed by selector annotations rather than a policy, grouped by the selectors. */
export interface SelectorRouteView {
  selector: string;
  namespaceSelector: string | null;
  pods: string[];
}

export interface SourceView {
  source: string;
  ok: boolean;
  error: string | null;
  at: string;
}

export interface DashboardView {
  generatedAt: string;
  /** The datastore revision the objects are of. */
  revision: number;
  gateways: EgressGatewayView[];
  policies: PolicyView[];
  selectorRoutes: SelectorRouteView[];
  graph: FlowGraph;
  sources: SourceView[];
}

export interface ModelInputs {
  now: number;
  revision: number;
  egressGateways: readonly Resource[];
  pods: readonly Resource[];
  namespaces: readonly Resource[];
  policies: readonly Resource[];
  /** The calculator's resolution of a client pod (EgressCalculator.egressOf). */
  egressOf(namespace: string, name: string): Resolved | null;
  scrapes: readonly ScrapeResult[];
  graph: FlowGraph;
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The pod a lab socket's role names (`gateway-<ns>.<pod>`: a namespace has no dot), or undefined. */
export function gatewayRolePod(source: string): string | undefined {
  const m = /^gateway-([^.]+)\.(.+)$/.exec(source);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

function ruleView(r: EgressGatewayRule, index: number) {
  const g = r.gateway;
  return {
    index,
    destination: r.destination?.cidr ?? '0.0.0.0/0',
    description: r.description ?? '',
    gateway: g ? `${g.selector}${g.namespaceSelector ? ` in namespaces ${g.namespaceSelector}` : ''}${g.maxNextHops ? `, at most ${g.maxNextHops} hops` : ''}` : null,
    preference: r.gatewayPreference ?? 'None',
  };
}

export function buildView(inp: ModelInputs): DashboardView {
  // Metrics by what they describe.
  const agentUp = new Map<string, { agent: string; up: boolean }[]>();
  const byPod = new Map<string, { clients?: number; conntrack?: number }>();
  const portsByIp = new Map<string, PortUseView[]>();
  for (const s of inp.scrapes) {
    if (!s.ok) continue;
    const agent = s.source.startsWith('agent-') ? s.source.slice('agent-'.length) : s.source;
    const pod = gatewayRolePod(s.source);
    const ports = new Map<string, { egressIp: string; destination: string; protocol: string; inUse: number; available: number }>();
    for (const x of s.samples) {
      if (x.name === 'egw_agent_gateway_up' && x.labels.gateway) {
        let l = agentUp.get(x.labels.gateway);
        if (!l) agentUp.set(x.labels.gateway, (l = []));
        l.push({ agent, up: x.value === 1 });
      } else if (pod && (x.name === 'egw_gateway_clients' || x.name === 'egw_gateway_conntrack_entries')) {
        const e = byPod.get(pod) ?? {};
        if (x.name === 'egw_gateway_clients') e.clients = x.value;
        else e.conntrack = x.value;
        byPod.set(pod, e);
      } else if (x.name === 'egw_gateway_snat_ports_in_use' || x.name === 'egw_gateway_snat_ports_available') {
        const { egress_ip: egressIp = '', destination = '', protocol = '' } = x.labels;
        const k = `${egressIp}|${destination}|${protocol}`;
        let p = ports.get(k);
        if (!p) ports.set(k, (p = { egressIp, destination, protocol, inUse: 0, available: 0 }));
        if (x.name === 'egw_gateway_snat_ports_in_use') p.inUse = x.value;
        else p.available = x.value;
      }
    }
    // A gateway's ports are keyed by its egress IP, which is its pod's IP: so a --scrape URL maps as well as a socket.
    for (const p of ports.values()) {
      const total = p.inUse + p.available;
      let l = portsByIp.get(p.egressIp);
      if (!l) portsByIp.set(p.egressIp, (l = []));
      l.push({ ...p, share: total > 0 ? p.inUse / total : 0 });
    }
  }
  for (const l of portsByIp.values()) l.sort((a, b) => b.share - a.share || byName(a.destination, b.destination));

  const podsOf = new Map<string, Pod[]>();
  for (const r of inp.pods) {
    const p = r as Pod;
    const owner = p.metadata.annotations?.[ANNOTATION.gatewayOf];
    if (owner === undefined) continue;
    const k = `${namespaceOf(p)}/${owner}`;
    let l = podsOf.get(k);
    if (!l) podsOf.set(k, (l = []));
    l.push(p);
  }

  const gateways: EgressGatewayView[] = [...inp.egressGateways]
    .sort((a, b) => byName(namespaceOf(a), namespaceOf(b)) || byName(a.metadata.name, b.metadata.name))
    .map((r) => {
      const v = gatewayStatusView(r);
      const replicas = new Map(v.replicas.map((x) => [x.pod, x]));
      const pods = (podsOf.get(`${v.namespace}/${v.name}`) ?? []).sort((a, b) => byName(a.metadata.name, b.metadata.name));
      return {
        namespace: v.namespace,
        name: v.name,
        desired: v.desired,
        ready: v.readyReplicas,
        conditions: (v.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason ?? '', message: c.message ?? '' })),
        pods: pods.map((p): GatewayPodView => {
          const key = `${v.namespace}/${p.metadata.name}`;
          const st = replicas.get(p.metadata.name);
          const ip = p.status?.podIPs?.[0]?.ip ?? p.status?.podIP ?? st?.ip ?? null;
          const agents = (agentUp.get(key) ?? []).sort((a, b) => byName(a.agent, b.agent));
          const ups = agents.filter((a) => a.up).length;
          const health: AgentHealth = agents.length === 0 ? 'unknown' : ups === agents.length ? 'up' : ups === 0 ? 'down' : 'split';
          const m = byPod.get(key);
          return {
            namespace: v.namespace,
            name: p.metadata.name,
            node: p.spec?.nodeName ?? st?.node ?? null,
            ip,
            status: st?.health ?? 'Unknown',
            reasons: st?.reasons ?? [],
            agents,
            health,
            clients: m?.clients ?? st?.clients ?? null,
            conntrackEntries: m?.conntrack ?? null,
            ports: ip ? (portsByIp.get(ip) ?? []) : [],
          };
        }),
      };
    });

  // Whom each policy routes: the namespaces naming it, and every client pod the calculator resolves to it.
  const policies = new Map<string, PolicyView>();
  for (const r of [...inp.policies].sort((a, b) => byName(a.metadata.name, b.metadata.name))) {
    const spec = (r as EgressGatewayPolicy).spec;
    policies.set(r.metadata.name, { name: r.metadata.name, rules: (spec?.rules ?? []).map(ruleView), namespaces: [], pods: [] });
  }
  for (const n of [...inp.namespaces].sort((a, b) => byName(a.metadata.name, b.metadata.name))) {
    const name = n.metadata.annotations?.[ANNOTATION.egressGatewayPolicy];
    if (name !== undefined) policies.get(name)?.namespaces.push(n.metadata.name);
  }
  const selectors = new Map<string, SelectorRouteView>();
  const clients = inp.pods
    .filter((p) => p.metadata.annotations?.[ANNOTATION.gatewayOf] === undefined)
    .map((p) => ({ ns: namespaceOf(p), name: p.metadata.name }))
    .sort((a, b) => byName(a.ns, b.ns) || byName(a.name, b.name));
  for (const c of clients) {
    const r = inp.egressOf(c.ns, c.name);
    if (!r) continue;
    if (r.kind === 'policy') policies.get(r.policy)?.pods.push(`${c.ns}/${c.name}`);
    else if (r.kind === 'selector') {
      const k = `${r.selector}\u0000${r.namespaceSelector ?? ''}`;
      let s = selectors.get(k);
      if (!s) selectors.set(k, (s = { selector: r.selector, namespaceSelector: r.namespaceSelector ?? null, pods: [] }));
      s.pods.push(`${c.ns}/${c.name}`);
    }
  }

  return {
    generatedAt: new Date(inp.now).toISOString(),
    revision: inp.revision,
    gateways,
    policies: [...policies.values()],
    selectorRoutes: [...selectors.values()].sort((a, b) => byName(a.selector, b.selector)),
    graph: inp.graph,
    sources: [...inp.scrapes]
      .sort((a, b) => byName(a.source, b.source))
      .map((s) => ({ source: s.source, ok: s.ok, error: s.error ?? null, at: new Date(s.at).toISOString() })),
  };
}
