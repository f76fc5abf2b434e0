// The shapes the audit parts exchange (docs/audit.md): what conntrack reports (CtFlow), the record egw writes for a
// connection (FlowRecord, ECS field names), the record of a loss (GapRecord), and an aggregate. Pure types.

/** One direction's tuple as conntrack prints it. Ports are absent for protocols without them (ICMP has type/code/id). */
export interface CtTuple {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** IANA protocol number (6 tcp, 17 udp, 1 icmp, …). */
  proto: number;
  /** conntrack's protocol name (`tcp`, `udp`, `icmp`, …). */
  protoName: string;
  /** ICMP type, code and id, when proto is ICMP. */
  icmp?: { type: number; code: number; id: number };
}

export interface CtCounters {
  packets: number;
  bytes: number;
}

/**
 * One `<flow>` of `conntrack -E/-L -o xml,id,ktimestamp`.
 * - `new`: the original tuple and the reply tuple (whose dst is the translated source, after SNAT); no counters, no
 *   timestamps (the reader stamps `seenAt`);
 * - `destroy`: both tuples, counters per direction, start and stop (with nf_conntrack_acct / nf_conntrack_timestamp);
 * - `dump`: an entry of `conntrack -L`: both tuples, counters so far, start (no stop).
 */
export interface CtFlow {
  type: 'new' | 'update' | 'destroy' | 'dump';
  /** conntrack's id: the same at NEW and DESTROY of one entry. */
  id: number;
  orig: CtTuple;
  reply: CtTuple;
  origCounters?: CtCounters;
  replyCounters?: CtCounters;
  /** Kernel timestamps, milliseconds since the epoch (with fractions: ns precision lost beyond µs). */
  start?: number;
  stop?: number;
  /** TCP state, when conntrack prints one. */
  state?: string;
  mark?: number;
  /** When egw read the event (ms since the epoch). */
  seenAt: number;
}

/** Who wrote a record: a gateway pod (gateway traffic) or a node's agent (traffic the node SNATs itself). */
export type Reporter = 'gateway' | 'node';

/** What routed the connection (docs/behaviour.md §2): a policy's rule, an annotation, or the node's own NAT. */
export interface FlowRoute {
  /** `policy` (an EgressGatewayPolicy rule), `annotation` (egress.projectcalico.org/selector on pod or namespace),
   *  `natOutgoing` (node SNAT for a pool with natOutgoing), `no-gateway` (a policy rule without a gateway),
   *  `host-ip` (a node's SNAT of a gateway pod's traffic: its pool is in host-IP mode; docs/audit.md, "Host-IP mode"). */
  kind: 'policy' | 'annotation' | 'natOutgoing' | 'no-gateway' | 'host-ip' | 'unknown';
  policy?: string;
  /** Index of the rule in the policy's spec.rules. */
  rule?: number;
  /** Where the annotation was: `pod` or `namespace`. */
  on?: 'pod' | 'namespace';
  /** The annotation's selector, as written. */
  selector?: string;
  /** `host-ip`: the gateway's IP pool (in host-IP mode when the record was made). */
  pool?: string;
}

/** The client pod, as known when the record was made. Null fields when egw did not know the IP then. */
export interface FlowPod {
  namespace: string | null;
  name: string | null;
  uid: string | null;
  node: string | null;
  labels: Record<string, string>;
}

/** The gateway pod that translated the connection (null for node SNAT; a node's host-IP record: the gateway whose
 *  traffic the node SNATed again). */
export interface FlowGateway {
  namespace: string;
  name: string;
  node: string | null;
  ip: string;
  /** The EgressGateway that owns the pod, when known. */
  egressGateway?: string;
}

/**
 * One record per connection, in ECS field names (SPEC §6). Written once, at DESTROY (or when egw learns the entry is
 * gone); `event.end` is null in the index while the connection is open.
 */
export interface FlowRecord {
  '@timestamp': string;
  event: {
    kind: 'event';
    category: ['network'];
    type: ['connection', 'end'] | ['connection', 'start'];
    dataset: 'egw.flow';
    /** RFC 3339 with milliseconds. */
    start: string;
    end: string | null;
    /** ns, when start and end are both kernel timestamps. */
    duration?: number;
  };
  network: { transport: string; iana_number: string; community_id: string };
  source: {
    ip: string;
    port?: number;
    bytes?: number;
    packets?: number;
    nat: { ip: string; port?: number };
  };
  destination: { ip: string; port?: number; bytes?: number; packets?: number };
  orchestrator: { type: 'kubernetes'; namespace: string | null; resource: { type: 'pod'; name: string | null } };
  egw: {
    reporter: Reporter;
    /** `ns/pod` of the gateway, or the node name. */
    reporter_name: string;
    conntrack_id: number;
    pod: FlowPod;
    gateway: FlowGateway | null;
    egress_ip: string;
    route: FlowRoute;
    /** How egw learned of the connection: its NEW event, only its DESTROY, or a conntrack dump (after a gap or restart). */
    seen: 'event' | 'destroy' | 'dump';
    /** False when the end was not observed (the entry vanished during a gap): end is the gap's end, counters missing. */
    complete: boolean;
  };
}

/** Loss, never silent (SPEC §6): a time range in which some connections may have no FlowRecord. */
export interface GapRecord {
  '@timestamp': string;
  event: { kind: 'event'; dataset: 'egw.gap'; start: string; end: string };
  egw: {
    reporter: Reporter;
    reporter_name: string;
    gap: {
      /**
       * `overflow` (ENOBUFS / netlink drops), `restart` (the process was not running), `reader` (conntrack exited),
       * `unaccounted` (the kernel translated more connections than egw saw, with no other sign of loss),
       * `counter-reset` (the kernel's count restarted: the interval cannot be checked; connections null).
       */
      reason: 'overflow' | 'restart' | 'reader' | 'unaccounted' | 'counter-reset';
      /** Events the kernel dropped on the event socket (netlink Drops delta), when known. */
      events_dropped: number | null;
      /** Upper bound on connections translated in the range that have no record (kernel SNAT count − recorded). */
      connections: number | null;
    };
  };
}

/** Optional aggregate per client, gateway, destination and interval (SPEC §6, "for volume"). */
export interface AggregateRecord {
  '@timestamp': string;
  event: { kind: 'metric'; dataset: 'egw.flow_aggregate'; start: string; end: string };
  network: { transport: string };
  destination: { ip: string; port?: number };
  orchestrator: { type: 'kubernetes'; namespace: string | null; resource: { type: 'pod'; name: string | null } };
  egw: {
    reporter: Reporter;
    reporter_name: string;
    pod: { uid: string | null };
    gateway: { namespace: string; name: string } | null;
    egress_ip: string;
    connections: number;
    source: { bytes: number; packets: number };
    destination: { bytes: number; packets: number };
  };
}

/** One entry of the append-only pod-IP history (SPEC §6): who held an IP, from when until when. */
export interface PodIPEntry {
  ip: string;
  uid: string;
  namespace: string;
  name: string;
  node: string | null;
  labels: Record<string, string>;
  /** RFC 3339: when the pod got the IP (its creation, or when egw first saw it). */
  from: string;
  /** RFC 3339, or null while the pod holds it. */
  to: string | null;
}

/**
 * A reporter's record store (implemented by src/audit/store.ts): JSONL files rotated by size and age, plus a local
 * index that also keeps the connections still open, so a restarted process completes them later.
 * Calls are synchronous and buffered; flush() makes everything so far durable (file written, index committed).
 */
export interface FlowStore {
  /** A connection seen opening (its NEW event, or a dump entry): index only, until it completes. */
  open(rec: FlowRecord): void;
  /** A connection that ended: one JSONL line, and its index row (replacing the open row of the same connection). */
  complete(rec: FlowRecord): void;
  gap(rec: GapRecord): void;
  aggregate(rec: AggregateRecord): void;
  /** Connections left open by a previous run of this reporter (restart recovery), and by this one. */
  openFlows(): FlowRecord[];
  /**
   * The end (ms) of the latest committed complete record of this connection (recordKey and translated source of
   * `rec`), if there is one: after a restart, what the previous run completed, which a late DESTROY or a dump entry
   * must not record again.
   */
  completedEnd(rec: FlowRecord): number | undefined;
  /** Small persisted state of the recorder (its loss ledger), JSON values. */
  getState(key: string): unknown;
  setState(key: string, value: unknown): void;
  flush(): void;
  close(): void;
}
