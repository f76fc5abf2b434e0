// /metrics: the listen flag, the server, and the metric sets read at scrape time (names and labels as
// docs/observability.md lists them). The processes' own wiring is checked in the lab (test/e2e/metrics.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { agentMetrics, controllerMetrics, gatewayMetrics, processRegistry } from '../../src/metrics/metrics.js';
import { metricsSocketPath, parseMetricsListen, serveMetrics } from '../../src/metrics/server.js';
import { parseMetrics, valueOf } from '../../src/metrics/scrape.js';
import http from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryLogger } from '../../src/log.js';

test('--metrics-listen: [HOST]:PORT or PORT; anything else names the flag', () => {
  assert.deepEqual(parseMetricsListen(':9091'), { host: '', port: 9091 });
  assert.deepEqual(parseMetricsListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseMetricsListen('9093'), { host: '', port: 9093 });
  for (const bad of ['', 'x', ':70000', 'host:9091', '10.0.0.300:1', '::1:9091']) {
    assert.throws(() => parseMetricsListen(bad), (e: Error) => e.message.startsWith('--metrics-listen: expected [HOST]:PORT') && e.message.includes(JSON.stringify(bad)), bad);
  }
});

async function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string | null; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
}

test('the server: GET /metrics in the Prometheus text format, 404 elsewhere, 405 for other methods', async () => {
  const { registry, watchLag } = processRegistry();
  watchLag.observe(0.003);
  const s = await serveMetrics(registry, { host: '127.0.0.1', port: 0 });
  assert.ok(s);
  try {
    const port = s.port!;
    const m = await get(port, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.type ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(m.body, /^egw_datastore_watch_lag_seconds_bucket\{le="0\.005"\} 1$/m);
    assert.match(m.body, /^egw_datastore_watch_lag_seconds_count 1$/m);
    assert.match(m.body, /^process_cpu_seconds_total /m, 'the standard process metrics');
    assert.equal((await get(port, '/')).status, 404);
    assert.equal((await get(port, '/metrics', 'POST')).status, 405);
  } finally {
    await s.close();
  }
});

test('a port in use: an error naming it, and no server (the process goes on)', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as { port: number }).port;
  const log = memoryLogger();
  try {
    const s = await serveMetrics(processRegistry().registry, { host: '127.0.0.1', port }, log);
    assert.equal(s, undefined);
    assert.ok(log.lines.some((l) => l.includes(`metrics: cannot listen on 127.0.0.1:${port}`) && l.includes('EADDRINUSE')), log.lines.join('\n'));
  } finally {
    blocker.close();
  }
});

test('the lab\'s unix socket: the same text over HTTP on a socket file, which close() removes; a stale file is replaced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-metrics-'));
  try {
    const socket = metricsSocketPath('gateway-egw.red-a', { EGW_METRICS_SOCKET_DIR: join(dir, 'metrics') })!;
    assert.equal(socket, join(dir, 'metrics', 'gateway-egw.red-a.sock'));
    assert.equal(metricsSocketPath('x', {}), undefined, 'no socket outside the lab');
    mkdirSync(join(dir, 'metrics'));
    writeFileSync(socket, 'left by a killed run');
    const { registry } = processRegistry();
    const s = await serveMetrics(registry, { host: '127.0.0.1', port: 0, socket });
    assert.ok(s);
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ socketPath: socket, path: '/metrics' }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (d: string) => (b += d)).on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.match(body, /^# TYPE egw_datastore_watch_lag_seconds histogram$/m);
    await s.close();
    assert.equal(existsSync(socket), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent set: gateway_up per gateway as read at scrape time (a gateway no longer tracked has no series); counters and histograms', async () => {
  const { registry } = processRegistry();
  let gateways = [
    { pod: 'egw/red-a', ip: '10.10.10.0', up: true },
    { pod: 'egw/red-b', ip: '10.10.10.1', up: false },
  ];
  const m = agentMetrics(registry, { gateways: () => gateways, clients: () => 3 });
  m.failovers.inc();
  m.detection.observe(0.61);
  m.kernelWrites.inc(12);
  let text = await registry.metrics();
  assert.match(text, /^egw_agent_gateway_up\{gateway="egw\/red-a",ip="10\.10\.10\.0"\} 1$/m);
  assert.match(text, /^egw_agent_gateway_up\{gateway="egw\/red-b",ip="10\.10\.10\.1"\} 0$/m);
  assert.match(text, /^egw_agent_clients 3$/m);
  assert.match(text, /^egw_agent_failovers_total 1$/m);
  assert.match(text, /^egw_agent_failover_detection_seconds_bucket\{le="0\.7"\} 1$/m);
  assert.match(text, /^egw_agent_failover_detection_seconds_bucket\{le="0\.6"\} 0$/m);
  assert.match(text, /^egw_agent_kernel_writes_total 12$/m);
  gateways = [gateways[0]!];
  text = await registry.metrics();
  assert.doesNotMatch(text, /red-b/);
});

test('gateway set: port use per egress IP, destination and protocol; records and gaps as running totals', async () => {
  const { registry } = processRegistry();
  gatewayMetrics(registry, {
    clients: () => 2,
    conntrackEntries: () => 17,
    ports: () => [{ egressIp: '10.10.10.0', destination: '203.0.113.10:80', protocol: 'tcp', inUse: 5, available: 64507 }],
    records: () => 40,
    gaps: () => 1,
  });
  const text = await registry.metrics();
  assert.match(text, /^egw_gateway_clients 2$/m);
  assert.match(text, /^egw_gateway_conntrack_entries 17$/m);
  assert.match(text, /^egw_gateway_snat_ports_in_use\{egress_ip="10\.10\.10\.0",destination="203\.0\.113\.10:80",protocol="tcp"\} 5$/m);
  assert.match(text, /^egw_gateway_snat_ports_available\{egress_ip="10\.10\.10\.0",destination="203\.0\.113\.10:80",protocol="tcp"\} 64507$/m);
  assert.match(text, /^egw_flow_records_total 40$/m);
  assert.match(text, /^egw_flow_gaps_total 1$/m);
});

test('controller set: leader, gateway pods per state, addresses per pool', async () => {
  const { registry } = processRegistry();
  let leader = false;
  controllerMetrics(registry, {
    leader: () => leader,
    gateways: () => [{ egressgateway: 'egw/red', state: 'ready', count: 2 }],
    addresses: () => [{ pool: 'egress-red', state: 'allocated', count: 2 }, { pool: 'egress-red', state: 'free', count: 2 }],
  });
  assert.match(await registry.metrics(), /^egw_controller_leader 0$/m);
  leader = true;
  const text = await registry.metrics();
  assert.match(text, /^egw_controller_leader 1$/m);
  assert.match(text, /^egw_controller_gateways\{egressgateway="egw\/red",state="ready"\} 2$/m);
  assert.match(text, /^egw_ipam_addresses\{pool="egress-red",state="free"\} 2$/m);
});

test('parseMetrics reads back what the registry writes (labels with escapes, histograms); a bad line names its number', async () => {
  const { registry, watchLag } = processRegistry();
  watchLag.observe(0.2);
  gatewayMetrics(registry, {
    clients: () => 1,
    ports: () => [{ egressIp: '10.10.10.0', destination: 'a"b\\c', protocol: 'tcp', inUse: 2, available: 3 }],
    records: () => 0,
    gaps: () => 0,
  });
  const samples = parseMetrics(await registry.metrics());
  assert.equal(valueOf(samples, 'egw_gateway_snat_ports_in_use', { destination: 'a"b\\c' }), 2);
  assert.equal(valueOf(samples, 'egw_datastore_watch_lag_seconds_bucket', { le: '+Inf' }), 1);
  assert.equal(valueOf(samples, 'egw_gateway_conntrack_entries'), undefined, 'not in the gateway\'s namespace: no series');
  assert.throws(() => parseMetrics('# HELP x y\nx 1\nnot a sample line\n'), /^Error: metrics line 3: not a sample/);
});
