// A small builder of flow, gap and pod records for the audit tests (no kernel needed).
import type { FlowGateway, FlowRecord, FlowRoute, GapRecord, Reporter } from '../../src/audit/types.js';

export const T0 = Date.parse('2026-11-30T10:00:00.000Z');
export const iso = (ms: number) => new Date(ms).toISOString();

export interface FlowSpec {
  id?: number;
  start: number;
  /** null: open. Default start + 1 s. */
  end?: number | null;
  src?: string;
  sport?: number;
  nat: string;
  natPort: number;
  dst?: string;
  dport?: number;
  transport?: string;
  namespace?: string | null;
  pod?: string | null;
  uid?: string | null;
  node?: string | null;
  labels?: Record<string, string>;
  gateway?: FlowGateway | null;
  reporter?: Reporter;
  reporterName?: string;
  egressIp?: string;
  route?: FlowRoute;
  bytes?: [number, number];
}

let nextId = 1000;

export function flow(s: FlowSpec): FlowRecord {
  const end = s.end === undefined ? s.start + 1000 : s.end;
  const gateway = s.gateway === undefined ? null : s.gateway;
  const reporter: Reporter = s.reporter ?? (gateway ? 'gateway' : 'node');
  const transport = s.transport ?? 'tcp';
  return {
    '@timestamp': iso(end ?? s.start),
    event: {
      kind: 'event',
      category: ['network'],
      type: end === null ? ['connection', 'start'] : ['connection', 'end'],
      dataset: 'egw.flow',
      start: iso(s.start),
      end: end === null ? null : iso(end),
    },
    network: { transport, iana_number: transport === 'udp' ? '17' : '6', community_id: '1:test' },
    source: {
      ip: s.src ?? '10.244.1.5',
      port: s.sport ?? 40000,
      ...(s.bytes && end !== null ? { bytes: s.bytes[0], packets: 3 } : {}),
      nat: { ip: s.nat, port: s.natPort },
    },
    destination: { ip: s.dst ?? '203.0.113.7', port: s.dport ?? 443, ...(s.bytes && end !== null ? { bytes: s.bytes[1], packets: 2 } : {}) },
    orchestrator: {
      type: 'kubernetes',
      namespace: s.namespace === undefined ? 'team-a' : s.namespace,
      resource: { type: 'pod', name: s.pod === undefined ? 'client-1' : s.pod },
    },
    egw: {
      reporter,
      reporter_name: s.reporterName ?? (gateway ? `${gateway.namespace}/${gateway.name}` : 'node-a'),
      conntrack_id: s.id ?? nextId++,
      pod: {
        namespace: s.namespace === undefined ? 'team-a' : s.namespace,
        name: s.pod === undefined ? 'client-1' : s.pod,
        uid: s.uid === undefined ? 'uid-client-1' : s.uid,
        node: s.node === undefined ? 'node-a' : s.node,
        labels: s.labels ?? { app: 'client' },
      },
      gateway,
      egress_ip: s.egressIp ?? s.nat,
      route: s.route ?? (gateway ? { kind: 'policy', policy: 'p1', rule: 0 } : { kind: 'natOutgoing' }),
      seen: 'event',
      complete: true,
    },
  };
}

/** The open version of a record (what the recorder indexes at NEW). */
export function opened(r: FlowRecord): FlowRecord {
  const o = structuredClone(r);
  o.event.end = null;
  o.event.type = ['connection', 'start'];
  o['@timestamp'] = o.event.start;
  return o;
}

export function gap(s: { start: number; end: number; reporter?: Reporter; reporterName?: string; reason?: 'overflow' | 'restart' | 'reader'; connections?: number | null }): GapRecord {
  return {
    '@timestamp': iso(s.end),
    event: { kind: 'event', dataset: 'egw.gap', start: iso(s.start), end: iso(s.end) },
    egw: {
      reporter: s.reporter ?? 'gateway',
      reporter_name: s.reporterName ?? 'egw/gw-1',
      gap: { reason: s.reason ?? 'overflow', events_dropped: 12, connections: s.connections === undefined ? 7 : s.connections },
    },
  };
}

export const GW1: FlowGateway = { namespace: 'egw', name: 'gw-1', node: 'node-b', ip: '10.244.2.9', egressGateway: 'red' };
export const GW2: FlowGateway = { namespace: 'egw', name: 'gw-2', node: 'node-c', ip: '10.244.3.9', egressGateway: 'blue' };
