// Aggregates: per client, gateway, destination and interval, beside (never instead of) the per-connection records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatingStore } from '../../src/audit/aggregate.js';
import type { AggregateRecord, FlowRecord } from '../../src/audit/types.js';
import { openRecord, completeRecord } from '../../src/audit/record.js';
import { MemFlowStore } from './memstore.js';

const T0 = Date.parse('2026-12-02T10:00:00Z');
function rec(id: number, dst: string, stop: number, bytes: number, pod = 'uid-a'): FlowRecord {
  const f = {
    type: 'destroy' as const,
    id,
    orig: { src: '10.244.0.5', dst, sport: 1000 + id, dport: 443, proto: 6, protoName: 'tcp' },
    reply: { src: dst, dst: '10.10.10.1', sport: 443, dport: 1000 + id, proto: 6, protoName: 'tcp' },
    seenAt: stop,
    start: stop - 10,
    stop,
    origCounters: { packets: 2, bytes },
    replyCounters: { packets: 3, bytes: bytes * 2 },
  };
  const e = { pod: { namespace: 'app', name: 'c', uid: pod, node: 'n1', labels: {} }, route: { kind: 'unknown' as const }, gateway: { namespace: 'egw', name: 'gw', node: 'n2', ip: '10.10.10.1' } };
  return completeRecord(openRecord({ reporter: 'gateway', reporterName: 'egw/gw' }, f, e, 'event'), f);
}

test('connections that ended in one interval toward one destination are one aggregate; the records are all kept', () => {
  const inner = new MemFlowStore();
  const s = new AggregatingStore(inner, 60_000);
  s.complete(rec(1, '203.0.113.1', T0 + 1000, 100));
  s.complete(rec(2, '203.0.113.1', T0 + 2000, 50));
  s.complete(rec(3, '203.0.113.2', T0 + 3000, 7));
  s.complete(rec(4, '203.0.113.1', T0 + 61_000, 1)); // next interval
  s.complete(rec(5, '203.0.113.1', T0 + 4000, 1, 'uid-b')); // another client
  assert.equal(s.tick(T0 + 59_000), 0, 'nothing before the interval ends');
  assert.equal(s.tick(T0 + 60_000), 3);
  const aggs = inner.lines.filter((l): l is AggregateRecord => l.event.dataset === 'egw.flow_aggregate');
  const a = aggs.find((x) => x.destination.ip === '203.0.113.1' && x.egw.pod.uid === 'uid-a')!;
  assert.equal(a.egw.connections, 2);
  assert.deepEqual(a.egw.source, { bytes: 150, packets: 4 });
  assert.deepEqual(a.egw.destination, { bytes: 300, packets: 6 });
  assert.equal(a.event.start, new Date(T0).toISOString());
  assert.equal(a.event.end, new Date(T0 + 60_000).toISOString());
  assert.deepEqual(a.egw.gateway, { namespace: 'egw', name: 'gw' });
  assert.equal(inner.flows.length, 5, 'every connection record is written');
  assert.equal(s.tick(T0 + 60_000, true), 1, 'at stop, the open interval is written too');
});
