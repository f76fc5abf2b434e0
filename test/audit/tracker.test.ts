// The recorder's pure core: records from NEW/DESTROY, DESTROY-only records, dumps after a loss, and the ledger that
// turns every connection the kernel translated and egw did not see into a gap count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowTracker } from '../../src/audit/tracker.js';
import { communityId, UNKNOWN_POD } from '../../src/audit/record.js';
import type { CtFlow } from '../../src/audit/types.js';
import { MemFlowStore } from './memstore.js';

const T0 = Date.parse('2026-12-02T10:00:00Z');

function flow(type: CtFlow['type'], id: number, sport: number, natPort: number, at: number, extra: Partial<CtFlow> = {}): CtFlow {
  return {
    type,
    id,
    orig: { src: '10.244.1.5', dst: '203.0.113.10', sport, dport: 80, proto: 6, protoName: 'tcp' },
    reply: { src: '203.0.113.10', dst: '10.10.10.7', sport: 80, dport: natPort, proto: 6, protoName: 'tcp' },
    seenAt: at,
    ...extra,
  };
}
const destroy = (id: number, sport: number, natPort: number, start: number, stop: number) =>
  flow('destroy', id, sport, natPort, stop + 1, { start, stop, origCounters: { packets: 5, bytes: 400 }, replyCounters: { packets: 4, bytes: 900 } });

function tracker(store = new MemFlowStore(), now = T0) {
  let enriched = 0;
  const t = new FlowTracker({
    reporter: 'gateway',
    reporterName: 'egw/gw-1',
    store,
    now: () => now,
    enrich: () => {
      enriched++;
      return { pod: { namespace: 'app', name: 'client', uid: 'u-1', node: 'n1', labels: { app: 'c' } }, route: { kind: 'policy', policy: 'p', rule: 0 }, gateway: { namespace: 'egw', name: 'gw-1', node: 'n2', ip: '10.10.10.7' } };
    },
    ignore: (f) => f.orig.src.startsWith('127.'),
  });
  return { t, store, enrichedCount: () => enriched };
}

test('NEW then DESTROY: one record with the translated source, counters, kernel start and stop, enriched once at NEW', () => {
  const { t, store, enrichedCount } = tracker();
  t.onFlows([flow('new', 1, 40000, 50000, T0 + 5)]);
  assert.equal(store.openRows.size, 1);
  assert.equal(store.flows.length, 0);
  t.onFlows([destroy(1, 40000, 50000, T0 + 4.5, T0 + 3000)]);
  assert.equal(store.openRows.size, 0);
  const [r] = store.flows;
  assert.ok(r);
  assert.equal(r.source.ip, '10.244.1.5');
  assert.equal(r.source.port, 40000);
  assert.deepEqual(r.source.nat, { ip: '10.10.10.7', port: 50000 });
  assert.equal(r.destination.port, 80);
  assert.equal(r.source.bytes, 400);
  assert.equal(r.destination.bytes, 900);
  assert.equal(r.event.start, new Date(T0 + 4).toISOString());
  assert.equal(r.event.end, new Date(T0 + 3000).toISOString());
  assert.equal(r.event.duration, 2995.5 * 1e6);
  assert.equal(r.egw.seen, 'event');
  assert.equal(r.egw.complete, true);
  assert.equal(r.orchestrator.resource.name, 'client');
  assert.equal(enrichedCount(), 1);
});

test('untranslated, update and egw\'s own barrier entries are not recorded', () => {
  const { t, store } = tracker();
  const plain = flow('new', 2, 1, 1, T0);
  plain.reply = { ...plain.reply, dst: plain.orig.src, dport: plain.orig.sport };
  const barrier = flow('new', 3, 9, 9, T0);
  barrier.orig = { ...barrier.orig, src: '127.0.0.2' };
  t.onFlows([plain, barrier, flow('update', 4, 5, 6, T0)]);
  assert.equal(store.openRows.size, 0);
  assert.equal(t.stats.opened, 0);
});

test('a DESTROY whose NEW was lost still makes a full record (seen: destroy); a second DESTROY is no second record', () => {
  const { t, store } = tracker();
  t.onFlows([destroy(7, 41000, 51000, T0, T0 + 10)]);
  t.onFlows([destroy(7, 41000, 51000, T0, T0 + 10)]);
  assert.equal(store.flows.length, 1);
  assert.equal(store.flows[0]!.egw.seen, 'destroy');
  assert.equal(store.flows[0]!.egw.complete, true);
});

test('a reopened tuple (same conntrack id and tuple, as the kernel gives a SYN on a closed entry\'s tuple) is a new connection each time', () => {
  const { t, store } = tracker();
  t.check(0, T0);
  // two connections one after the other from port 42000, each under id 9 (NEW, DESTROY, NEW, DESTROY)
  t.onFlows([flow('new', 9, 42000, 52000, T0 + 1), destroy(9, 42000, 52000, T0 + 0.5, T0 + 50)]);
  t.onFlows([flow('new', 9, 42000, 52000, T0 + 61), destroy(9, 42000, 52000, T0 + 60, T0 + 100)]);
  // a third whose NEW was lost: its DESTROY alone, started after the second ended
  t.onFlows([destroy(9, 42000, 52000, T0 + 200, T0 + 300)]);
  // the third's DESTROY again (it started before the recorded end): no record
  t.onFlows([destroy(9, 42000, 52000, T0 + 200, T0 + 300)]);
  assert.deepEqual(
    store.flows.map((r) => [r.event.start, r.event.end, r.egw.seen, r.egw.complete]),
    [
      [new Date(T0 + 0.5).toISOString(), new Date(T0 + 50).toISOString(), 'event', true],
      [new Date(T0 + 60).toISOString(), new Date(T0 + 100).toISOString(), 'event', true],
      [new Date(T0 + 200).toISOString(), new Date(T0 + 300).toISOString(), 'destroy', true],
    ],
  );
  // a dump after a loss: an entry of that key started before the last end is that connection (no record); one
  // started after it is a fourth connection, opened from the dump
  const dumpStart = T0 + 1000;
  t.applyDump([flow('dump', 9, 42000, 52000, dumpStart, { start: T0 + 200 })], dumpStart);
  assert.equal(store.openRows.size, 0);
  t.applyDump([flow('dump', 9, 42000, 52000, dumpStart, { start: T0 + 400 })], dumpStart);
  assert.equal([...store.openRows.values()].map((r) => r.egw.seen).join(), 'dump');
  // every one counted: 4 translated, 4 seen
  assert.equal(t.check(4, T0 + 2000), null);
});

test('the ledger: balanced intervals write no gap; a shortfall after a loss is a gap of that many connections', () => {
  const { t, store } = tracker();
  assert.equal(t.check(100, T0), null); // first check: the base
  t.onFlows([flow('new', 1, 1, 1, T0 + 1), flow('new', 2, 2, 2, T0 + 2)]);
  assert.equal(t.check(102, T0 + 10_000), null);
  // 5 more translated, 2 seen, and the reader reported an overflow
  t.onFlows([flow('new', 3, 3, 3, T0 + 10_001), flow('new', 4, 4, 4, T0 + 10_002)]);
  const g = t.check(107, T0 + 20_000, { reason: 'overflow', start: T0 + 10_002, eventsDropped: 6 });
  assert.ok(g);
  assert.equal(g.egw.gap.connections, 3);
  assert.equal(g.egw.gap.events_dropped, 6);
  assert.equal(g.egw.gap.reason, 'overflow');
  assert.equal(g.event.start, new Date(T0 + 10_002).toISOString());
  assert.equal(store.gaps.length, 1);
});

test('the ledger: a surplus (seen before the barrier, counted after) is carried; a shortfall is a gap at once', () => {
  const { t } = tracker();
  t.check(0, T0);
  t.onFlows([flow('new', 1, 1, 1, T0 + 1), flow('new', 2, 2, 2, T0 + 2)]);
  assert.equal(t.check(1, T0 + 10_000), null); // 2 seen, 1 counted: one came after the count was read
  t.onFlows([flow('new', 3, 3, 3, T0 + 10_001)]);
  assert.equal(t.check(3, T0 + 20_000), null); // the count caught up: balanced
  assert.equal(t.check(3, T0 + 30_000), null);
  const g = t.check(6, T0 + 40_000); // three translated, none seen: with no loss signal, still a gap
  assert.ok(g);
  assert.equal(g.egw.gap.reason, 'unaccounted');
  assert.equal(g.egw.gap.connections, 3);
  assert.equal(g.event.start, new Date(T0 + 30_000).toISOString());
  // a surplus is made up by the next count; a loss after that shows
  t.onFlows([flow('new', 4, 4, 4, T0 + 40_001), flow('new', 5, 5, 5, T0 + 40_002)]);
  assert.equal(t.check(6, T0 + 50_000), null); // surplus 2
  assert.equal(t.check(8, T0 + 60_000), null); // made up
  assert.equal(t.check(8, T0 + 70_000), null);
  assert.equal(t.check(9, T0 + 80_000)?.egw.gap.connections, 1);
});

test('a counter that went backwards (rule replaced) is a gap of unknown size, and the ledger starts again', () => {
  const { t } = tracker();
  t.check(50, T0);
  const g = t.check(3, T0 + 10_000);
  assert.ok(g);
  assert.equal(g.egw.gap.reason, 'counter-reset');
  assert.equal(g.egw.gap.connections, null);
  assert.equal(t.check(3, T0 + 20_000), null);
});

test('after a loss, a dump opens what egw missed and closes what ended unseen (complete: false)', () => {
  const { t, store } = tracker();
  t.check(0, T0);
  t.onFlows([flow('new', 1, 1, 1, T0 + 1), flow('new', 2, 2, 2, T0 + 2)]);
  // overflow: connection 2 ended unseen, 3 began unseen and is still open, 4 began and ended unseen
  const dumpStart = T0 + 5000;
  const missing = t.applyDump([flow('dump', 1, 1, 1, dumpStart, { start: T0 + 1 }), flow('dump', 3, 3, 3, dumpStart, { start: T0 + 3000 })], dumpStart);
  assert.deepEqual([...missing].length, 1);
  assert.equal(t.closeVanished(missing, dumpStart), 1);
  const v = store.flows.find((r) => r.egw.conntrack_id === 2)!;
  assert.equal(v.egw.complete, false);
  assert.equal(v.event.end, new Date(dumpStart).toISOString());
  assert.equal(store.openRows.size, 2);
  assert.equal([...store.openRows.values()].find((r) => r.egw.conntrack_id === 3)!.egw.seen, 'dump');
  const g = t.check(4, dumpStart + 100, { reason: 'overflow', start: T0 + 2, eventsDropped: 3 });
  assert.equal(g?.egw.gap.connections, 1); // 4 translated, 3 seen (1, 2 by NEW, 3 by the dump)
  // the late DESTROY of a connection closed as vanished is not a second record
  t.onFlows([destroy(2, 2, 2, T0 + 2, T0 + 4000)]);
  assert.equal(store.flows.filter((r) => r.egw.conntrack_id === 2).length, 1);
});

test('a restart: open rows and the ledger come back from the store; the restart gap counts what no one saw', () => {
  const store = new MemFlowStore();
  const a = tracker(store).t;
  a.check(10, T0);
  a.onFlows([flow('new', 1, 1, 1, T0 + 1), flow('new', 2, 2, 2, T0 + 2)]);
  a.persist();
  // killed here; meanwhile 1 ended, 5 began (still open) and 6 began and ended
  const b = tracker(store).t;
  assert.equal(b.restarted, true);
  assert.equal(b.openCount, 2);
  const dumpStart = T0 + 9000;
  const missing = b.applyDump([flow('dump', 2, 2, 2, dumpStart, { start: T0 + 2 }), flow('dump', 5, 5, 5, dumpStart, { start: T0 + 5000 })], dumpStart);
  b.closeVanished(missing, dumpStart);
  const g = b.check(14, dumpStart + 50, { reason: 'restart', start: b.lastCheckAt!, eventsDropped: null });
  assert.equal(g?.egw.gap.connections, 1); // 4 translated since the last check: 1, 2 (before), 5 (dump) → 6 is missing
  assert.equal(store.flows.find((r) => r.egw.conntrack_id === 1)?.egw.complete, false);
});

test('a restart: what the previous run completed is not recorded again by a late DESTROY or a dump entry', () => {
  const store = new MemFlowStore();
  const a = tracker(store).t;
  a.check(0, T0);
  a.onFlows([flow('new', 7, 7, 7, T0 + 1, { start: T0 + 1 }), flow('new', 8, 8, 8, T0 + 2, { start: T0 + 2 })]);
  // a dump that missed 7 (a dump is not atomic under churn): closed as ended unseen; 8 ended and was seen ending
  a.closeVanished(a.applyDump([flow('dump', 8, 8, 8, T0 + 100, { start: T0 + 2 })], T0 + 100), T0 + 100);
  a.onFlows([destroy(8, 8, 8, T0 + 2, T0 + 200)]);
  a.persist();
  assert.equal(store.flows.length, 2);
  // killed; the next run starts at T0 + 10 s and meets 7 again: in its first dump, then its real DESTROY
  const b = tracker(store, T0 + 10_000).t;
  const missing = b.applyDump([flow('dump', 7, 7, 7, T0 + 10_000, { start: T0 + 1 }), flow('dump', 9, 9, 9, T0 + 10_000, { start: T0 + 9000 })], T0 + 10_000);
  assert.equal(missing.size, 0);
  b.onFlows([destroy(7, 7, 7, T0 + 1, T0 + 12_000), destroy(8, 8, 8, T0 + 2, T0 + 200)]);
  assert.deepEqual(store.flows.map((r) => r.egw.conntrack_id), [7, 8], 'no second record of 7 or 8');
  assert.deepEqual([...store.openRows.values()].map((r) => r.egw.conntrack_id), [9], 'a connection the previous run never saw is opened');
  // the same key again, begun after the recorded end: a reopened tuple, a new connection
  b.onFlows([destroy(8, 8, 8, T0 + 300, T0 + 900), destroy(10, 10, 10, T0 + 5000, T0 + 9500)]);
  assert.deepEqual(store.flows.map((r) => r.egw.conntrack_id), [7, 8, 8, 10]);
});

test('SNAT port use: each open connection holds one port toward its destination; ending or vanishing frees it; a restart counts the restored ones', () => {
  const store = new MemFlowStore();
  const { t } = tracker(store);
  const use = () => t.ports.snapshot().map((p) => `${p.egressIp} ${p.destination} ${p.protocol} ${p.inUse}/${p.inUse + p.available}`);
  t.onFlows([flow('new', 1, 1, 50001, T0), flow('new', 2, 2, 50002, T0), flow('new', 3, 3, 50003, T0)]);
  assert.deepEqual(use(), ['10.10.10.7 203.0.113.10:80 tcp 3/64512']);
  t.onFlows([destroy(1, 1, 50001, T0, T0 + 10)]);
  assert.deepEqual(use(), ['10.10.10.7 203.0.113.10:80 tcp 2/64512']);
  // a DESTROY whose NEW was lost never held a port here
  t.onFlows([destroy(9, 9, 50009, T0, T0 + 10)]);
  assert.deepEqual(use(), ['10.10.10.7 203.0.113.10:80 tcp 2/64512']);
  t.closeVanished(t.applyDump([flow('dump', 2, 2, 50002, T0 + 100, { start: T0 })], T0 + 100), T0 + 100);
  assert.deepEqual(use(), ['10.10.10.7 203.0.113.10:80 tcp 1/64512'], '3 ended unseen');
  const again = tracker(store).t;
  assert.deepEqual(again.ports.snapshot().map((p) => p.inUse), [1], 'restored from the open rows');
  t.onFlows([destroy(2, 2, 50002, T0, T0 + 200)]);
  assert.deepEqual(use(), []);
});

test('community ID v1 of a known tuple (the spec\'s TCP example)', () => {
  // community-id-spec baseline: 128.232.110.120:34855 → 66.35.250.204:80 tcp, seed 0
  assert.equal(communityId({ src: '128.232.110.120', dst: '66.35.250.204', sport: 34855, dport: 80, proto: 6, protoName: 'tcp' }), '1:LQU9qZlK+B5F3KDmev6m5PMibrg=');
  assert.equal(
    communityId({ src: '66.35.250.204', dst: '128.232.110.120', sport: 80, dport: 34855, proto: 6, protoName: 'tcp' }),
    '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
  );
  assert.equal(UNKNOWN_POD.uid, null);
});

test('a second NEW of an open key is a new connection: the first one ended unseen (its DESTROY was lost)', () => {
  const { t, store } = tracker();
  t.check(0, T0);
  t.onFlows([flow('new', 9, 9, 9, T0 + 1), flow('new', 9, 9, 9, T0 + 50)]);
  assert.equal(store.flows.length, 1);
  assert.equal(store.flows[0]!.egw.complete, false);
  assert.equal(store.openRows.size, 1);
  assert.equal(t.check(2, T0 + 10_000), null, 'both were seen');
  // a dump entry first, then its late NEW: one connection
  t.applyDump([flow('dump', 10, 10, 10, T0 + 10_001, { start: T0 + 10_000.5 })], T0 + 10_001);
  t.onFlows([flow('new', 10, 10, 10, T0 + 10_002)]);
  assert.equal(store.openRows.size, 2);
  assert.equal(t.check(3, T0 + 20_000), null);
});

test('a DESTROY of an open key that began after the open connection was seen is a later connection: the open one ended unseen', () => {
  const { t, store } = tracker();
  t.check(0, T0);
  // NEW of connection 1 seen at T0+5 (kernel start T0+4.2); its DESTROY and connection 2's NEW lost; connection 2's DESTROY
  t.onFlows([flow('new', 7, 7, 7, T0 + 5), destroy(7, 7, 7, T0 + 3000.4, T0 + 3020)]);
  assert.equal(store.flows.length, 2, JSON.stringify(store.flows.map((r) => [r.event.start, r.event.end, r.egw.complete])));
  const [first, second] = store.flows;
  assert.equal(first!.egw.complete, false);
  assert.equal(first!.event.start, new Date(T0 + 5).toISOString());
  assert.equal(first!.event.end, new Date(T0 + 3000).toISOString(), 'it ended before the next one began');
  assert.equal(second!.egw.complete, true);
  assert.equal(second!.event.start, new Date(T0 + 3000).toISOString());
  assert.equal(second!.egw.seen, 'destroy');
  assert.equal(store.openRows.size, 0);
  assert.equal(t.check(2, T0 + 10_000), null, 'both connections were seen');
  // the same connection's DESTROY (kernel start before its NEW arrived, in the same millisecond or earlier) completes it
  t.onFlows([flow('new', 8, 8, 8, T0 + 10_005), destroy(8, 8, 8, T0 + 10_005.9, T0 + 10_050)]);
  assert.equal(store.flows.length, 3);
  assert.equal(store.flows[2]!.egw.complete, true);
  assert.equal(store.flows[2]!.egw.seen, 'event');
});

test('the ledger: surpluses of consecutive intervals add up (each is made up by the next count), so steady traffic writes no gap', () => {
  const { t } = tracker();
  t.check(0, T0);
  // every interval: 10 new connections, all seen; w[i] of them come between the count and the barrier (seen now,
  // counted by the next count)
  const w = [3, 4, 2, 5, 1, 0];
  let kernel = 0;
  let id = 100;
  for (let i = 0; i < w.length; i++) {
    t.onFlows(Array.from({ length: 10 }, () => flow('new', ++id, id, id, T0 + (i + 1) * 10_000 - 5)));
    kernel += 10 - w[i]! + (i > 0 ? w[i - 1]! : 0);
    assert.equal(t.check(kernel, T0 + (i + 1) * 10_000), null, `interval ${i + 1}`);
  }
  // and a real loss still shows
  assert.equal(t.check(kernel + 2, T0 + 90_000)?.egw.gap.connections, 2);
});
