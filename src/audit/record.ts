// Building flow records (docs/audit.md, "What a record says"): a conntrack entry plus what egw knew about its client
// when it saw it → the ECS record of SPEC §6. Pure.
import { createHash } from 'node:crypto';
import type { CtFlow, CtTuple, FlowGateway, FlowPod, FlowRecord, FlowRoute, GapRecord, Reporter } from './types.js';

/** What the recorder knew about a connection's client when it saw the connection (enrich.ts). */
export interface Enrichment {
  pod: FlowPod;
  route: FlowRoute;
  gateway: FlowGateway | null;
}

export const UNKNOWN_POD: FlowPod = Object.freeze({ namespace: null, name: null, uid: null, node: null, labels: {} }) as FlowPod;

export function iso(ms: number): string {
  return new Date(Math.floor(ms)).toISOString();
}

/** The connection's identity within one reporter: conntrack's id plus the original tuple (ids can be reused). */
export function flowKey(f: { id: number; orig: CtTuple }): string {
  const o = f.orig;
  return `${f.id}|${o.proto}|${o.src}:${o.sport ?? o.icmp?.id ?? ''}>${o.dst}:${o.dport ?? ''}`;
}

/** The key of a record (the same as flowKey of the entry it came from). */
export function recordKey(r: FlowRecord): string {
  return `${r.egw.conntrack_id}|${r.network.iana_number}|${r.source.ip}:${r.source.port ?? ''}>${r.destination.ip}:${r.destination.port ?? ''}`;
}

/** True when the entry's source was translated (SNAT): the reply goes to another address or port. */
export function isTranslated(f: CtFlow): boolean {
  return f.reply.dst !== f.orig.src || (f.reply.dport !== undefined && f.reply.dport !== f.orig.sport);
}

/**
 * Community ID v1 (https://github.com/corelight/community-id-spec), seed 0, over the pod-side tuple the record's
 * source/destination fields carry. ICMP uses type/code as ports (without the request/reply pairing).
 */
export function communityId(t: CtTuple): string {
  const sp = t.sport ?? t.icmp?.type ?? 0;
  const dp = t.dport ?? t.icmp?.code ?? 0;
  const a = ipBytes(t.src);
  const b = ipBytes(t.dst);
  const swap = compare(a, b) > 0 || (compare(a, b) === 0 && sp > dp);
  const [ip1, ip2, p1, p2] = swap ? [b, a, dp, sp] : [a, b, sp, dp];
  const buf = Buffer.alloc(2 + 4 + 4 + 2 + 2 + 2);
  buf.writeUInt16BE(0, 0);
  ip1.copy(buf, 2);
  ip2.copy(buf, 6);
  buf.writeUInt8(t.proto, 10);
  buf.writeUInt8(0, 11);
  buf.writeUInt16BE(p1, 12);
  buf.writeUInt16BE(p2, 14);
  return `1:${createHash('sha1').update(buf).digest('base64')}`;
}

function ipBytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map((x) => Number(x) & 255));
}
function compare(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

export interface RecordContext {
  reporter: Reporter;
  reporterName: string;
}

/** The record of a connection seen opening (its NEW, or a dump entry): end null, no counters. */
export function openRecord(ctx: RecordContext, f: CtFlow, e: Enrichment, seen: FlowRecord['egw']['seen']): FlowRecord {
  const start = f.start ?? f.seenAt;
  const o = f.orig;
  const rec: FlowRecord = {
    '@timestamp': iso(start),
    event: { kind: 'event', category: ['network'], type: ['connection', 'start'], dataset: 'egw.flow', start: iso(start), end: null },
    network: { transport: o.protoName, iana_number: String(o.proto), community_id: communityId(o) },
    source: { ip: o.src, nat: { ip: f.reply.dst } },
    destination: { ip: o.dst },
    orchestrator: { type: 'kubernetes', namespace: e.pod.namespace, resource: { type: 'pod', name: e.pod.name } },
    egw: {
      reporter: ctx.reporter,
      reporter_name: ctx.reporterName,
      conntrack_id: f.id,
      pod: e.pod,
      gateway: e.gateway,
      egress_ip: f.reply.dst,
      route: e.route,
      seen,
      complete: false,
    },
  };
  if (o.sport !== undefined) rec.source.port = o.sport;
  if (f.reply.dport !== undefined) rec.source.nat.port = f.reply.dport;
  if (o.dport !== undefined) rec.destination.port = o.dport;
  return rec;
}

/**
 * A copy of the parts completing a record changes (the pod, gateway and route objects are shared: nothing changes
 * them). structuredClone was a quarter of the recorder's CPU.
 */
function copyRecord(r: FlowRecord): FlowRecord {
  return { ...r, event: { ...r.event }, source: { ...r.source, nat: { ...r.source.nat } }, destination: { ...r.destination }, egw: { ...r.egw } };
}

/** The finished record: the open one (or, when its NEW was lost, one made now) with the DESTROY's end and counters. */
export function completeRecord(open: FlowRecord, f: CtFlow): FlowRecord {
  const start = f.start ?? Date.parse(open.event.start);
  const end = f.stop ?? f.seenAt;
  const rec = copyRecord(open);
  rec['@timestamp'] = iso(end);
  rec.event.type = ['connection', 'end'];
  rec.event.start = iso(start);
  rec.event.end = iso(end);
  if (f.start !== undefined && f.stop !== undefined) rec.event.duration = Math.max(0, Math.round((f.stop - f.start) * 1e6));
  if (f.origCounters) Object.assign(rec.source, { bytes: f.origCounters.bytes, packets: f.origCounters.packets });
  if (f.replyCounters) Object.assign(rec.destination, { bytes: f.replyCounters.bytes, packets: f.replyCounters.packets });
  rec.egw.complete = true;
  return rec;
}

/** A connection that vanished while egw could not see its end (a gap): closed at `end`, counters unknown. */
export function vanishedRecord(open: FlowRecord, end: number): FlowRecord {
  const rec = copyRecord(open);
  rec['@timestamp'] = iso(end);
  rec.event.type = ['connection', 'end'];
  rec.event.end = iso(end);
  rec.egw.complete = false;
  return rec;
}

export function gapRecord(ctx: RecordContext, g: { start: number; end: number; reason: GapRecord['egw']['gap']['reason']; eventsDropped: number | null; connections: number | null }): GapRecord {
  return {
    '@timestamp': iso(g.end),
    event: { kind: 'event', dataset: 'egw.gap', start: iso(g.start), end: iso(g.end) },
    egw: {
      reporter: ctx.reporter,
      reporter_name: ctx.reporterName,
      gap: { reason: g.reason, events_dropped: g.eventsDropped, connections: g.connections },
    },
  };
}
