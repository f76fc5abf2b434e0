// The output of calc: each node's desired egress state, and the answer to "explain".
// Plain JSON-able data, sorted deterministically, so a data-plane reconciler can diff it against the kernel.

import type { EgressIPSupport, GatewayPreference } from '../api/types.js';

/** ECMP route: `dst` via every IP in `via` (sorted numerically), each `dev <vxlan> onlink`. */
export interface EcmpRoute {
  readonly dst: string;
  readonly type: 'ecmp';
  readonly via: readonly string[];
}
/** Leave this table: the lookup continues with the next rule (normal routing). */
export interface ThrowRoute {
  readonly dst: string;
  readonly type: 'throw';
}
/** Drop with ICMP "net unreachable" to the client. */
export interface UnreachableRoute {
  readonly dst: string;
  readonly type: 'unreachable';
}
export type EgressRoute = EcmpRoute | ThrowRoute | UnreachableRoute;

/** `ip rule add from <src> lookup <table> priority <rulePriority>`. */
export interface EgressRule {
  /** `<podIP>/32`. */
  readonly src: string;
  readonly table: number;
  /** The client, `namespace/name`. */
  readonly pod: string;
}

export interface EgressTable {
  readonly id: number;
  /** Sorted by destination address, then prefix length. Includes a `throw` for every internal CIDR. */
  readonly routes: readonly EgressRoute[];
}

/** A gateway the node needs a neighbour (`ip` → `mac`) and an FDB entry (`mac` → dst `ip`) for. */
export interface EgressGatewayEntry {
  readonly ip: string;
  readonly mac: string;
  /** The gateway pod, `namespace/name`. */
  readonly pod: string;
  /** Node hosting the gateway pod ('' if unknown). */
  readonly node: string;
  readonly ready: boolean;
  readonly draining: boolean;
}

export interface NodeEgressState {
  readonly node: string;
  /** egressIPSupport != Disabled. When false, rules/tables/gateways are empty. */
  readonly enabled: boolean;
  readonly egressIPSupport: EgressIPSupport;
  readonly vxlan: {
    /** Device name the explain texts use (constructor option, default `egw.vxlan`). */
    readonly device: string;
    readonly vni: number;
    readonly port: number;
    /** Underlay MTU − 50. */
    readonly mtu: number;
    /** The node's own IPv4 (first InternalIP, else ExternalIP) to use as the tunnel's local address; null if unknown. */
    readonly local: string | null;
  };
  readonly rulePriority: number;
  /** Sorted by source address, then pod. */
  readonly rules: readonly EgressRule[];
  /** Sorted by id. */
  readonly tables: readonly EgressTable[];
  /** Every gateway a local table routes to, plus draining gateways still referenced by a local client; by IP. */
  readonly gateways: readonly EgressGatewayEntry[];
  /** Cluster-internal destinations (IP pools and node addresses, aggregated), by address. */
  readonly internalCidrs: readonly string[];
}

export interface GatewayHealth {
  ready: boolean;
  /** In its drain window: no new clients, existing ones keep it. Default: the pod has a deletionTimestamp. */
  draining?: boolean;
  reasons?: string[];
}

// ---- explain ----------------------------------------------------------------------------------------------------

/**
 * What decided the client's routing for the destination:
 * - `disabled`: egressIPSupport is Disabled; - `none`: no egress annotation applies (ordinary routing);
 * - `policy` / `selector`: that configuration applied (see `source`); - `fail-closed`: a policy annotation names no
 *   existing policy (or an annotation is invalid): egress-routed traffic is dropped;
 * - `internal`: the destination is cluster-internal and never goes via a gateway (the config is still reported);
 * - `not-client`: the pod is unknown, has no IP or node, has finished, or is itself a gateway.
 */
export type ExplanationKind = 'disabled' | 'none' | 'policy' | 'selector' | 'fail-closed' | 'internal' | 'not-client';

export interface ExplainedCandidate {
  /** Gateway pod `namespace/name`. */
  pod: string;
  ip: string;
  node: string;
  ready: boolean;
  draining: boolean;
  /** On the client's node. */
  local: boolean;
  /** Ready, not draining, and kept by PreferNodeLocal. */
  eligible: boolean;
  /** One of the client's next hops for this rule. */
  chosen: boolean;
  /** Draining but was one of the client's hops: kept for existing connections (neighbour/FDB stay). */
  keptForExisting: boolean;
  /** 1-based rendezvous rank among the eligible candidates when maxNextHops limits the set. */
  rank?: number;
  reasons: string[];
}

/** A chosen next hop's egress source (docs/behaviour.md §3.3): the egress IP, or in host-IP mode its node's IP. */
export interface ExplainedEgress {
  /** Gateway pod `namespace/name`. */
  pod: string;
  /** The gateway's address: the egress IP. */
  ip: string;
  /** The IP pool holding that address, if known. */
  pool: string | null;
  /** Host-IP mode (the pool has natOutgoing): the gateway's node masquerades again; null otherwise. */
  hostIP: { node: string; nodeIP: string | null } | null;
  /** The source address the outside sees: nodeIP in host-IP mode (null when the node's IP is unknown), else ip. */
  seenAs: string | null;
}

export interface ExplainedRule {
  /** Index in the policy's rules (0-based); absent for a selector annotation's implicit rule. */
  index?: number;
  destination: string;
  description?: string;
  gateway?: { selector: string; namespaceSelector?: string; maxNextHops: number };
  gatewayPreference: GatewayPreference;
}

export interface Explanation {
  pod: string;
  podIP: string | null;
  node: string | null;
  dst: string;
  egressIPSupport: EgressIPSupport;
  kind: ExplanationKind;
  /** Where the applied configuration came from. */
  source?: 'pod' | 'namespace';
  /** The annotation that decided it and its value. */
  annotation?: { name: string; value: string };
  policy?: string;
  /** The configuration kind before the internal-destination check (equals `kind` unless kind is `internal`). */
  configKind: Exclude<ExplanationKind, 'internal'>;
  /** The internal CIDR containing dst, when kind is `internal`. */
  internalCidr?: string;
  /** The rule that matched dst by longest prefix, if any. */
  rule?: ExplainedRule;
  /** Every gateway pod matching the rule's selectors, with health and choice. */
  candidates: ExplainedCandidate[];
  /** IPs of the chosen next hops. */
  hops: string[];
  /** Per chosen hop, the source address the outside sees. */
  egress: ExplainedEgress[];
  /** What happens to a packet from the pod to dst. */
  verdict: 'via-gateway' | 'dropped' | 'normal-routing';
  /** One line per decision step, in order. */
  why: string[];
  kernel: {
    rule: string | null;
    table: number | null;
    /** The route in that table that dst matches (longest prefix), or null if none (the lookup falls through). */
    route: string | null;
    neighbours: string[];
    fdb: string[];
  };
}
