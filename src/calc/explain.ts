// explain: which gateway would a pod use for a destination, and why — each decision step of resolution, the rule,
// the candidates with their health and the choice, and the kernel objects that implement it. A function over the
// calculation's parts: it reads them and decides nothing new. The kernel texts are the data plane's own command
// lines (src/dataplane/commands.ts, pure string building), so explain shows exactly what the reconciler writes. The
// text rendering for humans is the CLI's (src/cli/explain.ts).

import { isHostIPPool } from '../api/egresspools.js';
import { cidrContains, formatCidr, formatIPv4, parseIPv4, parsePrefix, type Cidr } from '../api/ipv4.js';
import type { EgressIPSupport, IPPool } from '../api/types.js';
import { BRIDGE, IP } from '../dataplane/commands.js';
import { rendezvousTopK } from './hash.js';
import type { NodeCalc } from './node.js';
import { hopsFor, viaOf, type RulePlan } from './plans.js';
import { byIp, podKeyOf, type ClientRec, type GatewayRec, type PodRec, type RuleRec } from './records.js';
import type { Resolved } from './resolve.js';
import type { EgressRoute, ExplainedCandidate, ExplainedEgress, ExplainedRule, Explanation, NodeEgressState } from './types.js';

/** The parts of the calculation explain reads. */
export interface ExplainInputs {
  readonly vxlanDevice: string;
  readonly support: EgressIPSupport;
  readonly internal: readonly Cidr[];
  pod(key: string): PodRec | undefined;
  client(key: string): ClientRec | undefined;
  /** The node's state, with every pending change computed, and its calculation. */
  node(name: string): { state: NodeEgressState; calc: NodeCalc };
  /** Resolution of the pod's configuration, recording each step in `why`. */
  resolve(pod: PodRec, why: string[]): Resolved;
  /** The IP pool holding an address (a gateway's: its host-IP mode). */
  poolHolding(ip: string): IPPool | undefined;
  /** A node's IP (the tunnel's local address: first InternalIP, else ExternalIP), or null. */
  nodeIP(node: string): string | null;
}

export function explain(inp: ExplainInputs, podNamespace: string, podName: string, dstIp: string): Explanation {
  const dstNum = parseIPv4(dstIp.trim());
  if (dstNum === undefined) throw new Error(`explain: "${dstIp}" is not an IPv4 address`);
  const key = podKeyOf(podNamespace, podName);
  const pod = inp.pod(key);
  const e: Explanation = {
    pod: key,
    podIP: pod?.ip ?? null,
    node: pod?.node || null,
    dst: formatIPv4(dstNum),
    egressIPSupport: inp.support,
    kind: 'not-client',
    configKind: 'not-client',
    candidates: [],
    hops: [],
    egress: [],
    verdict: 'normal-routing',
    why: [],
    kernel: { rule: null, table: null, route: null, neighbours: [], fdb: [] },
  };
  if (!pod) return { ...e, why: [`pod ${key} is not known`] };
  if (pod.gatewayOf !== undefined) return { ...e, why: [`pod ${key} is an egress gateway pod (of EgressGateway ${pod.gatewayOf}); gateways are never clients`] };
  if (pod.finished) return { ...e, why: [`pod ${key} has finished`] };
  if (pod.ip === null) return { ...e, why: [`pod ${key} has no IPv4 address yet`] };
  if (pod.node === '') return { ...e, why: [`pod ${key} is not scheduled to a node`] };

  const { state, calc: n } = inp.node(pod.node);
  const c = inp.client(key)!;
  const why = e.why;
  const r = inp.resolve(pod, why);
  e.kind = e.configKind = r.kind;
  if (r.kind === 'policy' || r.kind === 'fail-closed' || r.kind === 'selector') {
    e.source = r.source;
    const value = r.kind === 'policy' ? r.policy : r.kind === 'fail-closed' ? r.value : r.selector;
    e.annotation = { name: r.annotation, value };
    if (r.kind === 'policy') e.policy = r.policy;
  }
  // kernel objects for this client
  const table = c.table;
  if (table && c.rule) {
    e.kernel.rule = `ip ${IP.ruleAdd(c.rule.src, c.rule.table, state.rulePriority)}`;
    e.kernel.table = table.id;
    let best: EgressRoute | null = null;
    let bestLen = -1;
    for (const rt of table.out.routes) {
      const p = parsePrefix(rt.dst)!;
      if (p.prefix > bestLen && cidrContains(p, dstNum)) {
        best = rt;
        bestLen = p.prefix;
      }
    }
    e.kernel.route = best ? `ip ${IP.routeReplace(inp.vxlanDevice, table.id, best)}` : null;
  }

  const internal = inp.internal.find((p) => cidrContains(p, dstNum));
  // the node computed the client just now (inp.node): its configuration is the one `r` names
  const plan = c.config ? n.plan(c.config) : null;
  if (!plan) return finish(inp, e, state);
  // longest-prefix rule covering dst
  let rp: RulePlan | undefined;
  for (const x of plan.all) if (cidrContains(x.rule.dst, dstNum) && (!rp || x.rule.dst.prefix > rp.rule.dst.prefix)) rp = x;
  if (rp) e.rule = explainedRule(rp.rule);
  if (internal) {
    e.kind = 'internal';
    e.internalCidr = formatCidr(internal);
    why.push(`${e.dst} is inside cluster-internal ${e.internalCidr} (IP pool or node network): never routed via a gateway (throw)`);
    return finish(inp, e, state);
  }
  if (!rp) {
    why.push(`no rule of policy ${r.kind === 'policy' ? r.policy : ''} covers ${e.dst}: ordinary routing`);
    return finish(inp, e, state);
  }
  const dstText = rp.rule.dstText;
  const ruleName = rp.rule.index >= 0 ? `rule ${rp.rule.index} (${dstText}${rp.rule.description ? `, "${rp.rule.description}"` : ''})` : `the implicit rule for ${dstText}`;
  if (rp.kind === 'unreachable') {
    e.verdict = 'dropped';
    why.push(`${ruleName}: unreachable (fail closed)`);
    return finish(inp, e, state);
  }
  if (rp.kind === 'throw') {
    why.push(`${ruleName} has no gateway: throw, ordinary routing`);
    return finish(inp, e, state);
  }
  // gateway rule: candidates
  const kept = new Set<GatewayRec>();
  const hops = hopsFor(rp, c.hash, kept);
  const chosen = new Set(hops.map((g) => g.key));
  const ranks = new Map<string, number>();
  if (rp.k > 0 && rp.k < rp.eligible.length) rendezvousTopK(rp.eligible, 0, c.hash).forEach((g, i) => ranks.set(g.key, i + 1));
  const eligible = new Set(rp.eligible.map((g) => g.key));
  const preferLocal = rp.rule.preference === 'PreferNodeLocal';
  const anyLocal = rp.eligible.some((g) => g.node === n.name);
  for (const g of [...rp.entry!.members].sort(byIp)) {
    const reasons = [...g.reasons];
    if (!g.ready) reasons.unshift('not ready');
    else if (g.draining) reasons.unshift(kept.has(g) ? 'draining: no new connections, kept for existing ones' : 'draining: no new connections');
    else if (!eligible.has(g.key) && preferLocal && anyLocal) reasons.unshift('PreferNodeLocal: a gateway on the client node is available');
    else if (!chosen.has(g.key)) reasons.unshift(`not among the ${rp.k} highest rendezvous scores for this client`);
    const cand: ExplainedCandidate = {
      pod: g.key,
      ip: g.ip,
      node: g.node,
      ready: g.ready,
      draining: g.draining,
      local: g.node === n.name,
      eligible: eligible.has(g.key),
      chosen: chosen.has(g.key),
      keptForExisting: kept.has(g),
      reasons,
    };
    const rank = ranks.get(g.key);
    if (rank !== undefined) cand.rank = rank;
    e.candidates.push(cand);
  }
  e.hops = hops.length ? viaOf(hops) : [];
  const gw = rp.rule.gateway!;
  why.push(
    `${ruleName}: gateway pods matching selector "${gw.selector}"` +
      (gw.namespaceSelector ? ` in namespaces matching "${gw.namespaceSelector}"` : ` in namespace ${pod.ns}`) +
      `: ${rp.entry!.members.length} found, ${rp.eligible.length} eligible` +
      (preferLocal ? (anyLocal ? ' (PreferNodeLocal: local ones only)' : ' (PreferNodeLocal: none local, using all)') : '') +
      (rp.k > 0 ? `; maxNextHops ${rp.k}` : ''),
  );
  if (rp.entry!.error) why.push(`invalid selector: ${rp.entry!.error}`);
  if (hops.length === 0) {
    e.verdict = 'dropped';
    why.push('no eligible gateway: unreachable (dropped with an ICMP error, never sent with the wrong source IP)');
  } else {
    e.verdict = 'via-gateway';
    why.push(`next hops: ${e.hops.join(', ')}`);
    for (const g of hops) {
      const x = egressOf(inp, g);
      e.egress.push(x);
      if (x.hostIP) {
        const nodeIP = x.hostIP.nodeIP ?? '(its IP is not known)';
        why.push(`host-IP mode: IPPool ${x.pool} has natOutgoing, so node ${x.hostIP.node} masquerades ${g.key}'s traffic: the outside sees ${nodeIP}, not the egress IP ${g.ip}`);
      }
    }
  }
  return finish(inp, e, state);
}

/** The source the outside sees for traffic through gateway g (docs/behaviour.md §3.3; the rule: src/api/egresspools.ts). */
function egressOf(inp: ExplainInputs, g: GatewayRec): ExplainedEgress {
  const pool = inp.poolHolding(g.ip);
  if (!isHostIPPool(pool)) return { pod: g.key, ip: g.ip, pool: pool?.metadata.name ?? null, hostIP: null, seenAs: g.ip };
  const nodeIP = g.node ? inp.nodeIP(g.node) : null;
  return { pod: g.key, ip: g.ip, pool: pool!.metadata.name, hostIP: { node: g.node, nodeIP }, seenAs: nodeIP };
}

/** The neighbour and FDB entries of the chosen hops. */
function finish(inp: ExplainInputs, e: Explanation, state: NodeEgressState): Explanation {
  for (const ip of e.hops) {
    const g = state.gateways.find((x) => x.ip === ip);
    if (!g) continue;
    e.kernel.neighbours.push(`ip ${IP.neighReplace(inp.vxlanDevice, g.ip, g.mac)}`);
    e.kernel.fdb.push(`bridge ${BRIDGE.fdbAppend(inp.vxlanDevice, g.mac, g.ip)}`);
  }
  return e;
}

function explainedRule(r: RuleRec): ExplainedRule {
  const out: ExplainedRule = { destination: r.dstText, gatewayPreference: r.preference };
  if (r.index >= 0) out.index = r.index;
  if (r.description !== undefined) out.description = r.description;
  if (r.gateway) {
    out.gateway = { selector: r.gateway.selector, maxNextHops: r.gateway.maxNextHops };
    if (r.gateway.namespaceSelector !== undefined) out.gateway.namespaceSelector = r.gateway.namespaceSelector;
  }
  return out;
}
