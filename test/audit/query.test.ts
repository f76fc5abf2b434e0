import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePrefix } from '../../src/api/ipv4.js';
import { openFlowStore } from '../../src/audit/store.js';
import { flowFileName, listFlowFiles, writeRetention } from '../../src/audit/files.js';
import { podIPHistory } from '../../src/audit/history.js';
import { INDEX_FILE } from '../../src/audit/indexdb.js';
import { reporterDir } from '../../src/audit/paths.js';
import { queryFlows, resolveFlowRoot, trace } from '../../src/audit/query.js';
import { DEFAULT_FLOW_DIR } from '../../src/audit/paths.js';
import type { FlowRecord } from '../../src/audit/types.js';
import { memoryLogger } from '../../src/log.js';
import { flow, gap, GW1, GW2, iso, opened, T0 } from './records.js';

const GW_IP = '192.0.2.10';
const GW2_IP = '192.0.2.20';
const NODE_IP = '172.18.0.2';
const NOW = T0 + 3600_000;

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'egw-query-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function write(dir: string, recs: { complete?: FlowRecord[]; open?: FlowRecord[]; gaps?: ReturnType<typeof gap>[] }): void {
  const s = openFlowStore(dir, { now: () => T0, log: memoryLogger() });
  for (const r of recs.complete ?? []) s.complete(r);
  for (const r of recs.open ?? []) s.open(opened(r));
  for (const g of recs.gaps ?? []) s.gap(g);
  s.close();
}

/** Two gateways and a node; the same translated port reused over time; an open connection; a gap. */
function cluster(root: string) {
  const a1 = flow({ start: T0, end: T0 + 10_000, nat: GW_IP, natPort: 40001, gateway: GW1, pod: 'client-1', uid: 'u1', sport: 5001 });
  // The same translated source port, reused 200 s later by another pod of another namespace.
  const a2 = flow({ start: T0 + 200_000, end: T0 + 260_000, nat: GW_IP, natPort: 40001, gateway: GW1, namespace: 'team-c', pod: 'client-9', uid: 'u9', src: '10.244.1.9', sport: 5002 });
  // Same port, same time, another destination (SNAT keeps tuples unique per destination).
  const a3 = flow({ start: T0 + 1000, end: T0 + 9000, nat: GW_IP, natPort: 40001, gateway: GW1, pod: 'client-2', uid: 'u2', src: '10.244.1.6', dst: '198.51.100.1', dport: 80 });
  const aOpen = flow({ start: NOW - 60_000, end: null, nat: GW_IP, natPort: 40100, gateway: GW1, pod: 'client-1', uid: 'u1', sport: 5100 });
  const b1 = flow({ start: T0 + 5000, end: T0 + 6000, nat: GW2_IP, natPort: 41000, gateway: GW2, namespace: 'team-b', pod: 'web-1', uid: 'ub', src: '10.244.3.4', dst: '203.0.113.50', dport: 8443 });
  const n1 = flow({ start: T0 + 2000, end: T0 + 3000, nat: NODE_IP, natPort: 33000, reporterName: 'node-a', namespace: 'plain', pod: 'batch-1', uid: 'un', src: '10.244.1.20', route: { kind: 'natOutgoing' } });
  // The node did not know this pod when it recorded (pod fields null): the pod-IP history tells.
  const n2 = flow({ start: T0 + 100_000, end: T0 + 101_000, nat: NODE_IP, natPort: 33001, reporterName: 'node-a', namespace: null, pod: null, uid: null, node: null, src: '10.244.1.21' });
  write(reporterDir(root, 'gateway', 'egw/gw-1'), { complete: [a1, a2, a3], open: [aOpen], gaps: [gap({ start: T0 + 400_000, end: T0 + 410_000, connections: 42 })] });
  write(reporterDir(root, 'gateway', 'egw/gw-2'), { complete: [b1] });
  write(reporterDir(root, 'node', 'node-a'), { complete: [n1, n2] });
  const h = podIPHistory(reporterDir(root, 'node', 'node-a'));
  h.observe([{ ip: '10.244.1.21', uid: 'u-old', namespace: 'plain', name: 'gone-1', node: 'node-a', labels: { app: 'gone' }, from: iso(T0) }], T0);
  h.observe([], T0 + 150_000);
  h.observe([{ ip: '10.244.1.21', uid: 'u-new', namespace: 'plain', name: 'new-1', node: 'node-a', labels: { app: 'new' }, from: iso(T0 + 160_000) }], T0 + 160_000);
  h.close();
  return { a1, a2, a3, aOpen, b1, n1, n2 };
}

const ports = (rs: FlowRecord[]) => rs.map((r) => `${r.source.nat.ip}:${r.source.nat.port}/${r.egw.conntrack_id}`);

test('queryFlows: every reporter, open and complete, newest first, and each filter', (t) => {
  const root = tmp(t);
  const c = cluster(root);
  const all = queryFlows(root, { now: NOW });
  assert.deepEqual(all.warnings, []);
  assert.deepEqual(ports(all.records), ports([c.aOpen, c.a2, c.n2, c.b1, c.n1, c.a3, c.a1]));
  assert.equal(all.records[0].event.end, null, 'the open connection is there');

  const q = (f: Parameters<typeof queryFlows>[1]) => ports(queryFlows(root, f).records);
  assert.deepEqual(q({ now: NOW, namespace: 'team-b' }), ports([c.b1]));
  assert.deepEqual(q({ now: NOW, pod: 'client-1' }), ports([c.aOpen, c.a1]));
  assert.deepEqual(q({ now: NOW, gateway: 'gw-2' }), ports([c.b1]));
  assert.deepEqual(q({ now: NOW, gateway: 'egw/gw-2' }), ports([c.b1]));
  assert.deepEqual(q({ now: NOW, gateway: 'blue' }), ports([c.b1]), 'by EgressGateway name');
  assert.deepEqual(q({ now: NOW, gateway: 'node:node-a' }), ports([c.n2, c.n1]));
  assert.deepEqual(q({ now: NOW, dst: { cidr: parsePrefix('203.0.113.0/24')! } }), ports([c.aOpen, c.a2, c.n2, c.b1, c.n1, c.a1]));
  assert.deepEqual(q({ now: NOW, dst: { cidr: parsePrefix('203.0.113.0/24')!, port: 8443 } }), ports([c.b1]));
  assert.deepEqual(q({ now: NOW, dst: { cidr: parsePrefix('198.51.100.1')! } }), ports([c.a3]));
  assert.deepEqual(q({ now: NOW, dst: { cidr: '198.51.100.0/30' } }), ports([c.a3]), 'a CIDR as text');
  assert.throws(() => q({ now: NOW, dst: { cidr: '198.51.100.0/33' } }), /dst: "198.51.100.0\/33" is not a CIDR/);
  assert.deepEqual(q({ now: NOW, since: 3600_000 - 150_000 }), ports([c.aOpen, c.a2]), 'live during the last DURATION: open, or ended since');
  assert.deepEqual(q({ now: NOW, namespace: 'team-a', gateway: 'red', pod: 'client-2' }), ports([c.a3]));
  assert.deepEqual(q({ now: NOW, namespace: 'nobody' }), []);
  assert.deepEqual(queryFlows(join(root, 'missing'), { now: NOW }), { records: [], warnings: [] });
});

test('trace: gateway and node records, the right one of a reused port by time, by destination, open connections', (t) => {
  const root = tmp(t);
  const c = cluster(root);
  const at = (ms: number, ip: string, port: number, dst?: { ip: string; port?: number }) => trace(root, { ip, port, at: ms, now: NOW, dst });

  let r = at(T0 + 5000, GW_IP, 40001, { ip: '203.0.113.7', port: 443 });
  assert.equal(r.match?.record.egw.conntrack_id, c.a1.egw.conntrack_id);
  assert.equal(r.match?.pod.name, 'client-1');
  assert.equal(r.match?.podFrom, 'record');
  assert.equal(r.match?.record.egw.gateway?.name, 'gw-1');
  assert.deepEqual(r.others, []);

  r = at(T0 + 230_000, GW_IP, 40001);
  assert.equal(r.match?.pod.name, 'client-9', 'the port reused later: the pod of that time');
  assert.equal(r.match?.pod.namespace, 'team-c');

  r = at(T0 + 5000, GW_IP, 40001, { ip: '198.51.100.1' });
  assert.equal(r.match?.pod.name, 'client-2', 'the destination tells two live connections apart');
  r = at(T0 + 5000, GW_IP, 40001);
  assert.equal(r.others.length, 1, 'without --dst both are live: one chosen, the other reported');
  assert.equal(r.match?.pod.name, 'client-2', 'both contain the time: the one that started last wins');

  r = at(T0 + 10_500, GW_IP, 40001);
  assert.equal(r.match?.pod.name, 'client-1', 'within a second after the end: still this one');
  r = at(T0 + 12_000, GW_IP, 40001);
  assert.equal(r.match, undefined, 'two seconds after: no connection');
  assert.equal(r.nearest?.egw.conntrack_id, c.a1.egw.conntrack_id);

  r = at(NOW - 1000, GW_IP, 40100);
  assert.equal(r.match?.record.event.end, null, 'an open connection is live until now');
  assert.equal(at(NOW - 61_500, GW_IP, 40100).match, undefined, 'but not before its start (less the second of slack)');

  r = at(T0 + 2500, NODE_IP, 33000);
  assert.equal(r.match?.record.egw.gateway, null, 'node SNAT');
  assert.equal(r.match?.pod.name, 'batch-1');
  assert.match(r.match!.reporterDir, /node-node-a$/);

  r = at(T0 + 100_500, NODE_IP, 33001);
  assert.equal(r.match?.podFrom, 'history');
  assert.deepEqual(r.match?.pod, { namespace: 'plain', name: 'gone-1', uid: 'u-old', node: 'node-a', labels: { app: 'gone' } }, 'the pod that held the IP then, not the one that holds it now');

  r = at(T0 + 5500, GW2_IP, 41000, { ip: '203.0.113.50', port: 8443 });
  assert.equal(r.match?.pod.name, 'web-1');
  assert.equal(at(T0 + 5500, GW2_IP, 41000, { ip: '203.0.113.50', port: 80 }).match, undefined, 'another destination port');
});

test('host-IP mode: trace of the node IP follows node record → gateway record → client pod; flows lists both', (t) => {
  const root = tmp(t);
  const GWH = { namespace: 'egw', name: 'gw-h', node: 'node-b', ip: '10.10.10.1', egressGateway: 'green' };
  const NODE_B = '172.18.0.3';
  const T = T0 + 500_000;
  const hostIP = { kind: 'host-ip' as const, pool: 'egress-hip' };
  // The gateway's records: the client's connection, the same translated port reused later by another client, and one
  // at the same time toward another destination.
  const g1 = flow({ start: T, end: T + 20_000, src: '10.244.1.7', sport: 5007, nat: GWH.ip, natPort: 40007, gateway: GWH, pod: 'client-7', uid: 'u7' });
  const gLater = flow({ start: T + 300_000, end: T + 301_000, src: '10.244.1.8', sport: 5008, nat: GWH.ip, natPort: 40007, gateway: GWH, pod: 'client-8', uid: 'u8' });
  const gOther = flow({ start: T + 100, end: T + 20_000, src: '10.244.1.9', sport: 5009, nat: GWH.ip, natPort: 40007, dst: '198.51.100.1', dport: 80, gateway: GWH, pod: 'client-9', uid: 'u9' });
  // The node's records of the gateway's traffic (it SNATed it again): the client unknown, the gateway named.
  const hip = { reporter: 'node' as const, reporterName: 'node-b', gateway: GWH, namespace: null, pod: null, uid: null, node: null, labels: {}, route: hostIP };
  const n1 = flow({ ...hip, start: T + 2, end: T + 20_001, src: GWH.ip, sport: 40007, nat: NODE_B, natPort: 33007 });
  const n2 = flow({ ...hip, start: T + 300_001, end: T + 301_001, src: GWH.ip, sport: 40007, nat: NODE_B, natPort: 33008 });
  // One whose gateway record was lost (the gateway's gap covers it).
  const n3 = flow({ ...hip, start: T + 600_000, end: T + 601_000, src: GWH.ip, sport: 40010, nat: NODE_B, natPort: 33010 });
  write(reporterDir(root, 'gateway', 'egw/gw-h'), { complete: [g1, gLater, gOther], gaps: [gap({ start: T + 590_000, end: T + 610_000, reporterName: 'egw/gw-h', connections: 3 })] });
  write(reporterDir(root, 'node', 'node-b'), { complete: [n1, n2, n3] });
  // The node's pod-IP history knows the gateway pod at that IP: it must not be taken for the client.
  const h = podIPHistory(reporterDir(root, 'node', 'node-b'));
  h.observe([{ ip: GWH.ip, uid: 'u-gw', namespace: 'egw', name: 'gw-h', node: 'node-b', labels: {}, from: iso(T0) }], T0);
  h.close();

  let r = trace(root, { ip: NODE_B, port: 33007, at: T + 5000, now: NOW });
  assert.equal(r.match?.record.egw.conntrack_id, n1.egw.conntrack_id, 'the node record is the match');
  assert.equal(r.match?.hostIP?.record.egw.conntrack_id, g1.egw.conntrack_id, 'joined to the gateway record of the same translated source, destination and time');
  assert.deepEqual([r.match?.pod.namespace, r.match?.pod.name, r.match?.pod.uid, r.match?.podFrom], ['team-a', 'client-7', 'u7', 'record']);
  assert.match(r.match!.hostIP!.reporterDir, /gateway-egw\.gw-h$/);
  assert.equal(r.match!.hostIP!.others, 0);

  r = trace(root, { ip: NODE_B, port: 33008, at: T + 300_500, now: NOW });
  assert.equal(r.match?.pod.name, 'client-8', 'the gateway port reused later: the client of that time');

  r = trace(root, { ip: NODE_B, port: 33010, at: T + 600_500, now: NOW });
  assert.equal(r.match?.record.egw.conntrack_id, n3.egw.conntrack_id);
  assert.equal(r.match?.hostIP, null, 'no gateway record: said, not guessed');
  assert.deepEqual([r.match?.pod.uid, r.match?.podFrom], [null, 'unknown'], 'the pod-IP history (the gateway pod) is not the client');
  assert.deepEqual(r.gaps.map((g) => g.reporter), ['gateway-egw.gw-h']);

  // The gateway's own IP:port still traces to the client directly.
  assert.equal(trace(root, { ip: GWH.ip, port: 40007, at: T + 5000, dst: { ip: '203.0.113.7' }, now: NOW }).match?.pod.name, 'client-7');

  // flows: --gateway names both the gateway's and the node's records; node:node-b the node's.
  const ids = (f: Parameters<typeof queryFlows>[1]) => queryFlows(root, f).records.map((x) => x.egw.conntrack_id).sort();
  assert.deepEqual(ids({ now: NOW, gateway: 'gw-h' }), [g1, gLater, gOther, n1, n2, n3].map((x) => x.egw.conntrack_id).sort());
  assert.deepEqual(ids({ now: NOW, gateway: 'node:node-b' }), [n1, n2, n3].map((x) => x.egw.conntrack_id).sort());
});

test('trace: closest when several are live, and why nothing matched (gap, retention)', (t) => {
  const root = tmp(t);
  const dir = reporterDir(root, 'gateway', 'egw/gw-1');
  // Back-to-back reuse of one port: the first ended at T0 + 10 s, the next started at T0 + 10.4 s.
  const first = flow({ start: T0, end: T0 + 10_000, nat: GW_IP, natPort: 50000, pod: 'first', gateway: GW1 });
  const second = flow({ start: T0 + 10_400, end: T0 + 20_000, nat: GW_IP, natPort: 50000, pod: 'second', gateway: GW1 });
  write(dir, { complete: [first, second], gaps: [gap({ start: T0 + 30_000, end: T0 + 40_000, connections: 42 })] });
  assert.equal(trace(root, { ip: GW_IP, port: 50000, at: T0 + 9_900, now: NOW }).match?.record.orchestrator.resource.name, 'first');
  assert.equal(trace(root, { ip: GW_IP, port: 50000, at: T0 + 10_300, now: NOW }).match?.record.orchestrator.resource.name, 'second', 'closer to the second');
  assert.equal(trace(root, { ip: GW_IP, port: 50000, at: T0 + 10_100, now: NOW }).match?.record.orchestrator.resource.name, 'first');

  let r = trace(root, { ip: GW_IP, port: 50001, at: T0 + 35_000, now: NOW });
  assert.equal(r.match, undefined);
  assert.equal(r.gaps.length, 1);
  assert.equal(r.gaps[0].reporter, 'gateway-egw.gw-1');
  assert.equal(r.gaps[0].gap.egw.gap.connections, 42);
  assert.deepEqual(r.retention, []);
  assert.deepEqual(trace(root, { ip: GW_IP, port: 50001, at: T0 + 50_000, now: NOW }).gaps, [], 'a gap elsewhere in time is not a reason');

  writeRetention(dir, T0 + 5000, NOW);
  r = trace(root, { ip: GW_IP, port: 50002, at: T0 + 1000, now: NOW });
  assert.deepEqual(r.retention, [{ reporter: 'gateway-egw.gw-1', removedBefore: iso(T0 + 5000) }]);
  assert.deepEqual(trace(root, { ip: GW_IP, port: 50002, at: T0 + 6000, now: NOW }).retention, [], 'after the horizon retention is no reason');
});

test('a reopened tuple: complete records with one conntrack id and tuple are each a connection, indexed or not yet, and an open one beside them', (t) => {
  const root = tmp(t);
  const dir = reporterDir(root, 'gateway', 'egw/gw-1');
  const same = { id: 77, sport: 45000, nat: GW_IP, natPort: 45000, gateway: GW1 };
  const one = flow({ ...same, start: T0, end: T0 + 100, pod: 'one', uid: 'u-one' });
  const two = flow({ ...same, start: T0 + 150, end: T0 + 250, pod: 'two', uid: 'u-two' });
  const three = flow({ ...same, start: T0 + 300, end: null, pod: 'three', uid: 'u-three' });
  write(dir, { complete: [one, two], open: [three] });
  const names = () => queryFlows(root, { now: NOW }).records.map((r) => r.orchestrator.resource.name);
  assert.deepEqual(names(), ['three', 'two', 'one']);
  for (const [at, pod] of [[T0 + 50, 'one'], [T0 + 200, 'two'], [T0 + 5000, 'three']] as const) {
    assert.equal(trace(root, { ip: GW_IP, port: 45000, at, now: NOW }).match?.pod.name, pod, `at +${at - T0} ms`);
  }
  // a fourth complete line of that key written after the index (a writer's flush under way): it completes the open
  // row of its connection, and the complete ones stay
  const four = flow({ ...same, start: T0 + 300, end: T0 + 400, pod: 'three', uid: 'u-three' });
  const file = listFlowFiles(dir).at(-1)!;
  appendFileSync(file.path, JSON.stringify(four) + '\n');
  assert.deepEqual(
    queryFlows(root, { now: NOW }).records.map((r) => `${r.orchestrator.resource.name} ${r.event.end === null ? 'open' : 'complete'}`),
    ['three complete', 'two complete', 'one complete'],
  );
});

test('damaged files and indexes are warnings with file and line; the rest is still answered', (t) => {
  const root = tmp(t);
  const c = cluster(root);
  const gw1 = reporterDir(root, 'gateway', 'egw/gw-1');
  const file = listFlowFiles(gw1)[0].path;
  // Lines after the index (the writer's last, unindexed): one garbage, one flow missing fields, then a torn line.
  const late = flow({ start: T0 + 300_000, nat: GW_IP, natPort: 40500, gateway: GW1, pod: 'late' });
  appendFileSync(file, '{oops\n' + JSON.stringify({ event: { dataset: 'egw.flow' } }) + '\n' + JSON.stringify(late) + '\n{"event":{"dataset":"egw.fl');
  let res = queryFlows(root, { now: NOW });
  assert.ok(!res.warnings.some((x) => /truncated/.test(x)), 'a torn end of the newest file, just written, may be a write under way: not reported');
  // Some seconds later it is a crash's torn line.
  utimesSync(file, new Date(Date.now() - 10_000), new Date(Date.now() - 10_000));
  res = queryFlows(root, { now: NOW });
  assert.ok(res.records.some((r) => r.orchestrator.resource.name === 'late'), 'a whole unindexed line is read');
  assert.equal(res.records.length, 8);
  const w = res.warnings.join('\n');
  assert.match(w, new RegExp(`${file}:5: not JSON`));
  assert.match(w, new RegExp(`${file}:6: flow record: event.start is not a time`));
  assert.match(w, new RegExp(`${file}:8: truncated line`));
  assert.equal(res.warnings.length, 3, w);

  // A corrupt index: warned, the files are read instead (open connections only lived there).
  writeFileSync(join(gw1, INDEX_FILE), 'garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage');
  rmSync(join(gw1, `${INDEX_FILE}-wal`), { force: true });
  rmSync(join(gw1, `${INDEX_FILE}-shm`), { force: true });
  res = queryFlows(root, { now: NOW });
  assert.ok(res.warnings.some((x) => x.startsWith(`${join(gw1, INDEX_FILE)}: unreadable flow index`)), res.warnings.join('\n'));
  assert.ok(res.warnings.some((x) => x.startsWith(`${file}:5: not JSON`)), 'the bad lines are still reported');
  assert.equal(res.records.length, 7, 'everything but the open connection');
  assert.ok(!res.records.some((r) => r.event.end === null));
  const tr = trace(root, { ip: GW_IP, port: 40001, at: T0 + 230_000, now: NOW });
  assert.equal(tr.match?.record.egw.conntrack_id, c.a2.egw.conntrack_id, 'trace still answers from the files');

  // No index at all: the files are read.
  rmSync(join(gw1, INDEX_FILE));
  res = queryFlows(root, { now: NOW, pod: 'late' });
  assert.deepEqual(res.records.map((r) => r.orchestrator.resource.name), ['late']);
  assert.ok(res.warnings.some((x) => x.startsWith(`${join(gw1, INDEX_FILE)}: no flow index`)));

  // A directory of JSONL written by hand (say, copied from a node) with no index at all.
  const hand = reporterDir(root, 'node', 'node-z');
  mkdirSync(hand);
  const z = flow({ start: T0, nat: '172.18.0.9', natPort: 1234, reporterName: 'node-z', pod: 'zed' });
  writeFileSync(join(hand, flowFileName(T0)), JSON.stringify(z) + '\n');
  assert.equal(trace(root, { ip: '172.18.0.9', port: 1234, at: T0 + 500, now: NOW }).match?.pod.name, 'zed');
});

test('resolveFlowRoot: --flow-dir, EGW_FLOW_DIR, the lab whose host datastore is EGW_DATASTORE, the default', (t) => {
  const labs = tmp(t);
  for (const [lab, hostDatastore] of [
    ['tlaaaaaa', 'sqlite:/tmp/other.db'],
    ['tlbbbbbb', `sqlite:${join(labs, 'x.db')}`],
    ['tlcccccc', 'etcd://127.0.0.1:23790'],
  ]) {
    mkdirSync(join(labs, lab));
    writeFileSync(join(labs, lab, 'lab.json'), JSON.stringify({ hostDatastore, datastore: hostDatastore }));
  }
  mkdirSync(join(labs, 'broken'));
  writeFileSync(join(labs, 'broken', 'lab.json'), '{');
  const env = { EGW_LAB_DIR: labs };
  assert.deepEqual(resolveFlowRoot({ flag: '/x', env: { ...env, EGW_FLOW_DIR: '/y' } }), { root: '/x', from: 'flag' });
  assert.deepEqual(resolveFlowRoot({ env: { ...env, EGW_FLOW_DIR: '/y', EGW_DATASTORE: `sqlite:${join(labs, 'x.db')}` } }), { root: '/y', from: 'env' });
  assert.deepEqual(resolveFlowRoot({ env: { ...env, EGW_DATASTORE: `sqlite:${join(labs, 'x.db')}` } }), { root: join(labs, 'tlbbbbbb', 'flows'), from: 'lab', lab: 'tlbbbbbb' });
  assert.deepEqual(resolveFlowRoot({ env: { ...env, EGW_DATASTORE: 'etcd://127.0.0.1:23790' } }), { root: join(labs, 'tlcccccc', 'flows'), from: 'lab', lab: 'tlcccccc' });
  assert.deepEqual(resolveFlowRoot({ datastore: 'etcd://127.0.0.1:23790', env }), { root: join(labs, 'tlcccccc', 'flows'), from: 'lab', lab: 'tlcccccc' }, 'the --datastore flag too');
  assert.deepEqual(resolveFlowRoot({ env: { ...env, EGW_DATASTORE: 'sqlite:/nowhere.db' } }), { root: DEFAULT_FLOW_DIR, from: 'default' });
  assert.deepEqual(resolveFlowRoot({ env: { ...env, EGW_DATASTORE: 'bogus:spec' } }), { root: DEFAULT_FLOW_DIR, from: 'default' });
  assert.deepEqual(resolveFlowRoot({ env: { EGW_LAB_DIR: join(labs, 'none') } }), { root: DEFAULT_FLOW_DIR, from: 'default' });
});
