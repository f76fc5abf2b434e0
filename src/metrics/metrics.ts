// Every Prometheus metric egw exports, in one place (docs/observability.md lists them with their meanings): the names,
// help texts, label names and buckets. Each process makes its set on its own registry and feeds it from what it
// already keeps (a gauge reads its value at scrape time through `collect`, so a scrape costs what reading a few
// counters costs, never a kernel dump). Labels are bounded: per gateway, per pool, per EgressGateway, per egress IP
// and destination — never per connection or per client.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PortUse } from '../audit/ports.js';

/** Default `/metrics` ports (SPEC §8): agent, gateway (in its pod's namespace), controller. */
export const METRICS_PORT = { agent: 9091, gateway: 9092, controller: 9093 } as const;
export type MetricsProcess = keyof typeof METRICS_PORT;

/** Seconds, from 1 ms to 30 s: reconciles, watch lag, heartbeat round trips. */
const FAST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds, from 100 ms to 60 s: failover detection (the defaults give 0.5–0.7 s: docs/behaviour.md §3.4). */
const DETECTION_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1, 1.5, 2, 3, 5, 10, 30, 60];

/** A registry with the process's standard metrics (process_*, nodejs_*) and the one metric every egw process has. */
export function processRegistry(): { registry: Registry; watchLag: Histogram } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const watchLag = new Histogram({
    name: 'egw_datastore_watch_lag_seconds',
    help: 'Seconds from a datastore change being committed until this process took it from its watch (memory and SQLite datastores; etcd keeps no commit time)',
    buckets: FAST_BUCKETS,
    registers: [registry],
  });
  return { registry, watchLag };
}

/** A gauge whose series are recomputed at every scrape (old series vanish: a gateway no longer tracked has none). */
export function gaugeFrom<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  read: () => Iterable<[Partial<Record<L, string>>, number]>,
): Gauge<L> {
  return new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.set(labels, v);
    },
  });
}

/** A counter read from a running total at every scrape (the total is kept by the code that counts). */
export function counterFrom(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

export interface AgentMetrics {
  failovers: Counter;
  detection: Histogram;
  reconcile: Histogram;
  kernelWrites: Counter;
  heartbeatRtt: Histogram;
}

/**
 * The agent's own metrics; `egw_agent_gateway_up` and `egw_agent_clients` are read from its status at scrape time
 * (the caller passes them in).
 */
export function agentMetrics(
  registry: Registry,
  read: { gateways: () => { pod: string; ip: string; up: boolean }[]; clients: () => number },
): AgentMetrics {
  gaugeFrom(registry, 'egw_agent_gateway_up', 'Whether this agent sees the gateway pod as healthy (1) or not (0), by its heartbeats (before the first verdict: the Pod\'s Ready condition)', ['gateway', 'ip'], () =>
    read.gateways().map((g) => [{ gateway: g.pod, ip: g.ip }, g.up ? 1 : 0]),
  );
  gaugeFrom(registry, 'egw_agent_clients', 'Client pods on this node whose egress traffic egw routes', [], () => [[{}, read.clients()]]);
  return {
    failovers: new Counter({ name: 'egw_agent_failovers_total', help: 'Gateways this agent declared DOWN (its clients\' new connections move to the others)', registers: [registry] }),
    detection: new Histogram({
      name: 'egw_agent_failover_detection_seconds',
      help: 'Seconds from a gateway\'s last good heartbeat reply to this agent declaring it DOWN',
      buckets: DETECTION_BUCKETS,
      registers: [registry],
    }),
    reconcile: new Histogram({ name: 'egw_agent_reconcile_seconds', help: 'Seconds one reconcile of the node data plane took (read, plan, apply)', buckets: FAST_BUCKETS, registers: [registry] }),
    kernelWrites: new Counter({ name: 'egw_agent_kernel_writes_total', help: 'Kernel changes the agent applied (routes, rules, neighbours, nft and sysctl writes)', registers: [registry] }),
    heartbeatRtt: new Histogram({ name: 'egw_agent_heartbeat_rtt_seconds', help: 'Round trip of heartbeat requests to gateways', buckets: FAST_BUCKETS, registers: [registry] }),
  };
}

/** The gateway's metrics, all read at scrape time from what the gateway and its flow recorder keep. */
export function gatewayMetrics(
  registry: Registry,
  /** conntrackEntries: absent when the process does not run in the gateway's namespace (tests): no such series. */
  read: { clients: () => number; conntrackEntries?: () => number; ports: () => PortUse[]; records: () => number; gaps: () => number },
): void {
  gaugeFrom(registry, 'egw_gateway_clients', 'Client pods that may send their egress traffic through this gateway', [], () => [[{}, read.clients()]]);
  const entries = read.conntrackEntries;
  if (entries) gaugeFrom(registry, 'egw_gateway_conntrack_entries', 'Connection tracking entries in the gateway pod\'s network namespace', [], () => [[{}, entries()]]);
  const labels = ['egress_ip', 'destination', 'protocol'] as const;
  gaugeFrom(registry, 'egw_gateway_snat_ports_in_use', 'Source ports of the egress IP in use toward one destination (each connection to it holds one)', labels, () =>
    read.ports().map((p) => [{ egress_ip: p.egressIp, destination: p.destination, protocol: p.protocol }, p.inUse]),
  );
  gaugeFrom(registry, 'egw_gateway_snat_ports_available', 'Source ports of the egress IP still free toward one destination (the SNAT port range minus those in use)', labels, () =>
    read.ports().map((p) => [{ egress_ip: p.egressIp, destination: p.destination, protocol: p.protocol }, p.available]),
  );
  counterFrom(registry, 'egw_flow_records_total', 'Flow records this gateway completed (docs/audit.md)', read.records);
  counterFrom(registry, 'egw_flow_gaps_total', 'Gap records this gateway wrote: intervals where connections went unrecorded (docs/audit.md)', read.gaps);
}

/** The controller's metrics, read at scrape time from its view. */
export function controllerMetrics(
  registry: Registry,
  read: {
    leader: () => boolean;
    gateways: () => { egressgateway: string; state: string; count: number }[];
    addresses: () => { pool: string; state: string; count: number }[];
  },
): void {
  gaugeFrom(registry, 'egw_controller_leader', 'Whether this controller is the elected leader (1) or standing by (0)', [], () => [[{}, read.leader() ? 1 : 0]]);
  gaugeFrom(registry, 'egw_controller_gateways', 'Gateway pods per EgressGateway and state (ready, not-ready, terminating)', ['egressgateway', 'state'], () =>
    read.gateways().map((g) => [{ egressgateway: g.egressgateway, state: g.state }, g.count]),
  );
  gaugeFrom(registry, 'egw_ipam_addresses', 'Addresses per IP pool and state (allocated, free)', ['pool', 'state'], () =>
    read.addresses().map((a) => [{ pool: a.pool, state: a.state }, a.count]),
  );
}
