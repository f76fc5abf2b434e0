// `egw flows` and `egw trace` end to end through bin/egw.js (build first: npx tsc -p tsconfig.json), on record
// directories made by the store itself (no kernel needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFlowStore } from '../../src/audit/store.js';
import { listFlowFiles } from '../../src/audit/files.js';
import { podIPHistory } from '../../src/audit/history.js';
import { reporterDir } from '../../src/audit/paths.js';
import { memoryLogger } from '../../src/log.js';
import { spawnEgw } from '../helpers/cli.js';
import { flow, gap, GW1, iso, opened } from '../audit/records.js';

const dir = mkdtempSync(join(tmpdir(), 'egw-flows-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'flows');

// Times near now, so the default `--at now` and --since mean something.
const NOW = Date.now();
const T1 = NOW - 3600_000;
const GW_IP = '192.0.2.10';
const NODE_IP = '172.18.0.2';
const gwRec = flow({
  start: T1,
  end: T1 + 30_000,
  nat: GW_IP,
  natPort: 40001,
  sport: 51000,
  gateway: GW1,
  namespace: 'team-a',
  pod: 'client-1',
  uid: 'uid-1',
  node: 'node-a',
  labels: { app: 'client', tier: 'web' },
  route: { kind: 'annotation', on: 'namespace', selector: "egress-code == 'red'" },
  bytes: [1200, 34000],
});
const openRec = flow({ start: NOW - 20_000, end: null, nat: GW_IP, natPort: 40002, gateway: GW1, pod: 'client-2', uid: 'uid-2' });
const nodeRec = flow({ start: T1 + 5000, end: T1 + 6000, nat: NODE_IP, natPort: 33000, reporterName: 'node-a', namespace: 'plain', pod: null, uid: null, node: null, src: '10.244.1.20', dst: '198.51.100.9', dport: 80 });
const policyRec = flow({ start: T1 + 7000, end: T1 + 8000, nat: GW_IP, natPort: 40003, gateway: GW1, namespace: 'team-b', pod: 'api-1', uid: 'uid-3', route: { kind: 'policy', policy: 'egress-pol', rule: 1 } });

const env = { EGW_FLOW_DIR: undefined, EGW_DATASTORE: undefined, EGW_LAB_DIR: join(dir, 'labs') };
const egw = (args: string[], extra: NodeJS.ProcessEnv = {}) => spawnEgw(args, { env: { ...env, ...extra } });

test.before(() => {
  let s = openFlowStore(reporterDir(root, 'gateway', 'egw/gw-1'), { log: memoryLogger() });
  s.complete(gwRec);
  s.complete(policyRec);
  s.open(opened(openRec));
  s.gap(gap({ start: NOW - 600_000, end: NOW - 590_000, connections: 17 }));
  s.close();
  s = openFlowStore(reporterDir(root, 'node', 'node-a'), { log: memoryLogger() });
  s.complete(nodeRec);
  s.close();
  const h = podIPHistory(reporterDir(root, 'node', 'node-a'));
  h.observe([{ ip: '10.244.1.20', uid: 'uid-batch', namespace: 'plain', name: 'batch-7', node: 'node-a', labels: { job: 'nightly' }, from: iso(T1 - 1000) }], T1);
  h.close();
});

test('egw flows: the table, wide and json, with filters', async () => {
  let r = await egw(['flows', '--flow-dir', root]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^START\s+END\s+NAMESPACE\s+POD\s+GATEWAY\s+EGRESS\s+DESTINATION\s+PROTO$/);
  assert.equal(lines.length, 5);
  assert.match(lines[1], new RegExp(`^${iso(openRec.event.start ? Date.parse(openRec.event.start) : 0)}\\s+open\\s+team-a\\s+client-2\\s+egw/gw-1\\s+${GW_IP}:40002\\s+203\\.0\\.113\\.7:443\\s+tcp$`));
  assert.match(lines[3], new RegExp(`\\s+plain\\s+<none>\\s+node:node-a\\s+${NODE_IP}:33000\\s+198\\.51\\.100\\.9:80\\s+tcp$`));
  assert.match(lines[4], new RegExp(`^${gwRec.event.start}\\s+${gwRec.event.end}\\s+team-a\\s+client-1\\s+egw/gw-1\\s+${GW_IP}:40001\\s`));

  r = await egw(['flows', '--flow-dir', root, '-o', 'wide', '--pod', 'client-1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /UID\s+NODE\s+BYTES\s+ROUTE\n/);
  assert.match(r.stdout, /uid-1\s+node-a\s+1200\/34000\s+annotation on namespace \(egress-code == 'red'\)\n$/);

  r = await egw(['flows', '--flow-dir', root, '-o', 'json', '-n', 'team-b']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [policyRec]);

  r = await egw(['flows', '--gateway', 'node:node-a', '--dst', '198.51.100.0/24:80', '-o', 'json'], { EGW_FLOW_DIR: root });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [nodeRec], 'EGW_FLOW_DIR is read');

  r = await egw(['flows', '--flow-dir', root, '--since', '10m', '-o', 'json']);
  assert.deepEqual(JSON.parse(r.stdout).map((x: any) => x.source.nat.port), [40002], 'only the open connection was live in the last 10 minutes');

  r = await egw(['flows', '--flow-dir', root, '-n', 'nobody']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^No flow records found in .*flows \(--flow-dir\)\.\n$/);
});

test('egw trace: gateway, node SNAT (pod from the history), open connection, json', async () => {
  let r = await egw(['trace', '--flow-dir', root, '--ip', GW_IP, '--port', '40001', '--at', iso(T1 + 10_000)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Connection: +tcp 10\.244\.1\.5:51000 -> 203\.0\.113\.7:443, seen outside as 192\.0\.2\.10:40001$/m);
  assert.match(r.stdout, /^Pod: +team-a\/client-1$/m);
  assert.match(r.stdout, /^ +UID: +uid-1$/m);
  assert.match(r.stdout, /^ +Node: +node-a$/m);
  assert.match(r.stdout, /^ +Labels: +app=client,tier=web$/m);
  assert.match(r.stdout, /^Gateway: +egw\/gw-1 \(EgressGateway red\), IP 10\.244\.2\.9, on node node-b$/m);
  assert.match(r.stdout, /^Egress IP: +192\.0\.2\.10$/m);
  assert.match(r.stdout, /^Route: +annotation on namespace \(egress-code == 'red'\)$/m);
  assert.match(r.stdout, new RegExp(`^Start: +${gwRec.event.start}$`, 'm'));
  assert.match(r.stdout, new RegExp(`^End: +${gwRec.event.end}$`, 'm'));

  r = await egw(['trace', '--flow-dir', root, '--ip', GW_IP, '--port', '40001', '--dst', '203.0.113.7:443', '--at', iso(T1 + 10_000), '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.pod, { namespace: 'team-a', name: 'client-1', uid: 'uid-1', node: 'node-a', labels: { app: 'client', tier: 'web' }, from: 'record' });
  assert.deepEqual(j.gateway, GW1);
  assert.deepEqual(j.connection.start, gwRec.event.start);
  assert.deepEqual(j.connection.end, gwRec.event.end);
  assert.equal(j.egressIP, GW_IP);

  r = await egw(['trace', '--flow-dir', root, '--ip', NODE_IP, '--port', '33000', '--at', iso(T1 + 5500), '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const n = JSON.parse(r.stdout);
  assert.equal(n.gateway, null);
  assert.equal(n.node, 'node-a');
  assert.deepEqual(n.pod, { namespace: 'plain', name: 'batch-7', uid: 'uid-batch', node: 'node-a', labels: { job: 'nightly' }, from: 'history' });

  r = await egw(['trace', '--flow-dir', root, '--ip', NODE_IP, '--port', '33000', '--at', iso(T1 + 5500)]);
  assert.match(r.stdout, /^Gateway: +none: node node-a translated it \(node SNAT\)$/m);
  assert.match(r.stdout, /^Pod: +plain\/batch-7 \(from the pod-IP history\)$/m);

  r = await egw(['trace', '--flow-dir', root, '--ip', GW_IP, '--port', '40002']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^End: +open/m, 'default --at is now: the open connection');
  assert.match(r.stdout, /^Pod: +team-a\/client-2$/m);
});

test('egw trace: no match exits 1 with the reason (gap, nothing recorded, no directory)', async () => {
  let r = await egw(['trace', '--flow-dir', root, '--ip', GW_IP, '--port', '40999', '--at', iso(NOW - 595_000)]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^error: no recorded connection from 192\.0\.2\.10:40999 live at /);
  assert.match(r.stderr, /gateway-egw\.gw-1 lost records from .* to .* \(overflow, up to 17 connections\): the connection may be one of them/);

  r = await egw(['trace', '--flow-dir', root, '--ip', GW_IP, '--port', '40001', '--at', iso(T1 + 120_000), '-o', 'json']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the closest connection from that address and port in time: /);

  r = await egw(['trace', '--flow-dir', join(dir, 'nowhere'), '--ip', GW_IP, '--port', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no flow records at .*nowhere \(--flow-dir\): the directory does not exist/);
});

test('the lab of EGW_DATASTORE is found without other flags', async () => {
  const labDir = join(dir, 'labs', 'tl0a1b2c');
  mkdirSync(labDir, { recursive: true });
  const ds = `sqlite:${join(dir, 'lab.db')}`;
  writeFileSync(join(labDir, 'lab.json'), JSON.stringify({ datastore: ds, hostDatastore: ds }));
  // The lab's flow root: a copy of the records, under the lab's state directory.
  const s = openFlowStore(reporterDir(join(labDir, 'flows'), 'gateway', 'egw/gw-1'), { log: memoryLogger() });
  s.complete(gwRec);
  s.close();
  const r = await egw(['trace', '--ip', GW_IP, '--port', '40001', '--at', iso(T1 + 1000), '-o', 'json'], { EGW_DATASTORE: ds });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).pod.name, 'client-1');
});

test('bad input names the flag and exits 2; no stack trace', async () => {
  const cases: [string[], RegExp][] = [
    [['trace', '--ip', '300.1.1.1', '--port', '1'], /option '--ip <ip>' argument '300\.1\.1\.1' is invalid\. expected an IPv4 address/],
    [['trace', '--ip', 'gw.example', '--port', '1'], /option '--ip <ip>' argument 'gw\.example' is invalid/],
    [['trace', '--ip', GW_IP, '--port', '0'], /option '--port <port>' argument '0' is invalid\. expected a port number 1–65535/],
    [['trace', '--ip', GW_IP, '--port', '65536'], /option '--port <port>' argument '65536' is invalid/],
    [['trace', '--ip', GW_IP, '--port', 'http'], /option '--port <port>' argument 'http' is invalid/],
    [['trace', '--ip', GW_IP, '--port', '-5'], /option '--port <port>' argument '-5' is invalid/],
    [['trace', '--ip', GW_IP, '--port', '80', '--at', 'yesterday'], /option '--at <time>' argument 'yesterday' is invalid\. expected an RFC 3339 time/],
    [['trace', '--ip', GW_IP, '--port', '80', '--at', '2026-13-45T10:00:00Z'], /option '--at <time>' argument '2026-13-45T10:00:00Z' is invalid/],
    [['trace', '--ip', GW_IP, '--port', '80', '--at', '2026-12-01 10:00'], /option '--at <time>' argument .* is invalid/],
    [['trace', '--ip', GW_IP, '--port', '80', '--dst', '1.2.3'], /option '--dst <ip\[:port\]>' argument '1\.2\.3' is invalid\. expected IP\[:PORT\]/],
    [['trace', '--ip', GW_IP, '--port', '80', '--dst', '1.2.3.4:99999'], /option '--dst <ip\[:port\]>' argument '1\.2\.3\.4:99999' is invalid\. "99999" is not a port/],
    [['trace', '--ip', GW_IP, '--port', '80', '-o', 'yaml'], /option '-o, --output <format>' argument 'yaml' is invalid\. Allowed choices are text, json/],
    [['trace', '--port', '80'], /required option '--ip <ip>' not specified/],
    [['trace', '--ip', GW_IP], /required option '--port <port>' not specified/],
    [['flows', '--since', '10 minutes'], /option '--since <duration>' argument '10 minutes' is invalid\. expected a duration/],
    [['flows', '--since', '7d'], /option '--since <duration>' argument '7d' is invalid/],
    [['flows', '--dst', '10.0.0.0/33'], /option '--dst <cidr\[:port\]>' argument '10\.0\.0\.0\/33' is invalid\. expected CIDR\[:PORT\]/],
    [['flows', '--dst', 'example.com:443'], /option '--dst <cidr\[:port\]>' argument 'example\.com:443' is invalid/],
    [['flows', '--dst', '10.0.0.0/8:0'], /option '--dst <cidr\[:port\]>' argument '10\.0\.0\.0\/8:0' is invalid\. "0" is not a port/],
    [['flows', '-o', 'yaml'], /option '-o, --output <format>' argument 'yaml' is invalid\. Allowed choices are wide, json/],
  ];
  for (const [args, want] of cases) {
    const r = await egw([...args, '--flow-dir', root]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(r.stdout, '');
  }
});

test('a corrupt record file and a corrupt index are reported and skipped, not a crash', async () => {
  const broken = join(dir, 'broken');
  const d = reporterDir(broken, 'gateway', 'egw/gw-1');
  const s = openFlowStore(d, { log: memoryLogger() });
  s.complete(gwRec);
  s.close();
  const file = listFlowFiles(d)[0].path;
  appendFileSync(file, 'garbage line\n{"event":{"dataset":"egw.fl');
  utimesSync(file, new Date(NOW - 60_000), new Date(NOW - 60_000));
  let r = await egw(['flows', '--flow-dir', broken, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).length, 1);
  assert.match(r.stderr, new RegExp(`^warning: ${file}:2: not JSON .*; skipped$`, 'm'));
  assert.match(r.stderr, new RegExp(`^warning: ${file}:3: truncated line .*; skipped$`, 'm'));

  writeFileSync(join(d, 'index.db'), 'not a database '.repeat(20));
  rmSync(join(d, 'index.db-wal'), { force: true });
  rmSync(join(d, 'index.db-shm'), { force: true });
  r = await egw(['trace', '--flow-dir', broken, '--ip', GW_IP, '--port', '40001', '--at', iso(T1 + 1000)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Pod: +team-a\/client-1$/m);
  assert.match(r.stderr, /^warning: .*index\.db: unreadable flow index .*; read the JSONL files instead/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /);

  // A root that is not a directory: one line, exit 1.
  r = await egw(['flows', '--flow-dir', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: ENOTDIR: not a directory/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('host-IP mode: egw trace of the node IP names the client, the gateway, the egress IP and the node IP; flows shows both records', async () => {
  const hroot = join(dir, 'hostip');
  const GWH = { namespace: 'default', name: 'red-x', node: 'node-2', ip: '10.10.10.1', egressGateway: 'red' };
  const NODE2 = '172.31.0.12';
  const T = NOW - 1800_000;
  const gw = flow({ start: T, end: T + 30_000, src: '10.244.1.7', sport: 52000, nat: GWH.ip, natPort: 52000, gateway: GWH, namespace: 'tenant-a', pod: 'client-a', uid: 'uid-a', node: 'node-1', labels: { app: 'a' }, route: { kind: 'annotation', on: 'namespace', selector: "egress-code == 'red'" } });
  const nd = flow({ start: T + 1, end: T + 30_001, src: GWH.ip, sport: 52000, nat: NODE2, natPort: 61000, gateway: GWH, reporter: 'node', reporterName: 'node-2', namespace: null, pod: null, uid: null, node: null, labels: {}, route: { kind: 'host-ip', pool: 'egress-ippool-1' } });
  let s = openFlowStore(reporterDir(hroot, 'gateway', 'default/red-x'), { log: memoryLogger() });
  s.complete(gw);
  s.close();
  s = openFlowStore(reporterDir(hroot, 'node', 'node-2'), { log: memoryLogger() });
  s.complete(nd);
  s.close();

  let r = await egw(['trace', '--flow-dir', hroot, '--ip', NODE2, '--port', '61000', '--at', iso(T + 10_000)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Connection: +tcp 10\.244\.1\.7:52000 -> 203\.0\.113\.7:443, seen outside as 172\.31\.0\.12:61000 \(host-IP mode\)$/m);
  assert.match(r.stdout, /^Pod: +tenant-a\/client-a$/m);
  assert.match(r.stdout, /^ +UID: +uid-a$/m);
  assert.match(r.stdout, /^Gateway: +default\/red-x \(EgressGateway red\), IP 10\.10\.10\.1, on node node-2$/m);
  assert.match(r.stdout, /^Egress IP: +10\.10\.10\.1:52000 \(the gateway's; the node translated it again\)$/m);
  assert.match(r.stdout, /^Node IP: +172\.31\.0\.12 \(node node-2, host-IP mode: the gateway's pool has natOutgoing, IPPool egress-ippool-1\)$/m);
  assert.match(r.stdout, /^Route: +annotation on namespace \(egress-code == 'red'\)$/m);
  assert.match(r.stdout, /^Recorded by: +node node-2 .*\n +and +gateway default\/red-x /m);

  r = await egw(['trace', '--flow-dir', hroot, '--ip', NODE2, '--port', '61000', '--at', iso(T + 10_000), '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.pod, { namespace: 'tenant-a', name: 'client-a', uid: 'uid-a', node: 'node-1', labels: { app: 'a' }, from: 'record' });
  assert.deepEqual(j.gateway, GWH);
  assert.deepEqual([j.egressIP, j.node, j.nodeIP, j.hostIPMode], [GWH.ip, 'node-2', NODE2, true]);
  assert.deepEqual([j.connection.start, j.connection.end], [nd.event.start, nd.event.end]);
  assert.deepEqual([j.connection.source, j.connection.gatewayNat, j.connection.nat], [{ ip: '10.244.1.7', port: 52000 }, { ip: GWH.ip, port: 52000 }, { ip: NODE2, port: 61000 }]);
  assert.deepEqual(j.route, gw.egw.route);
  assert.deepEqual(j.record, nd);
  assert.deepEqual(j.hostIP.record, gw);

  // A plain gateway trace says it is not host-IP mode.
  r = await egw(['trace', '--flow-dir', hroot, '--ip', GWH.ip, '--port', '52000', '--at', iso(T + 10_000), '-o', 'json']);
  assert.equal(JSON.parse(r.stdout).hostIPMode, false);

  r = await egw(['flows', '--flow-dir', hroot, '-o', 'wide']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\s+<none>\s+<none>\s+default\/red-x,node:node-2\s+172\.31\.0\.12:61000\s+203\.0\.113\.7:443\s+tcp\s+<none>\s+<none>\s+<none>\s+host-IP mode: node SNAT of gateway traffic \(IPPool egress-ippool-1\)\n/);
  assert.match(r.stdout, /\s+tenant-a\s+client-a\s+default\/red-x\s+10\.10\.10\.1:52000\s/);
});
