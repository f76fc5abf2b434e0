// The dashboard's pure parts (docs/dashboard.md): the view model from objects + scrapes + flows, the flow graph, and
// the input checks of its flags and API.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Resource } from '../../src/api/meta.js';
import { ANNOTATION } from '../../src/api/types.js';
import type { FlowRecord } from '../../src/audit/types.js';
import { EgressCalculator } from '../../src/calc/index.js';
import { flowGraph, MAX_DESTINATIONS } from '../../src/dashboard/graph.js';
import { InputError, isLoopback, parseExplainQuery, parseListen, parseScrapeTarget, parseToken, parseTraceQuery, parseWindow } from '../../src/dashboard/input.js';
import { buildView, gatewayRolePod, type ScrapeResult } from '../../src/dashboard/model.js';
import { egressGateway, felixConfiguration, gatewayPod, namespace, pod, policy } from '../helpers/resources.js';

const NOW = Date.parse('2026-12-02T09:00:00Z');

function flow(o: { ns: string; pod: string; gw?: { ns: string; name: string; egw?: string }; dst: string; port: number; start: number; end: number | null; node?: string }): FlowRecord {
  return {
    '@timestamp': new Date(o.start).toISOString(),
    event: { kind: 'event', category: ['network'], type: ['connection', 'end'], dataset: 'egw.flow', start: new Date(o.start).toISOString(), end: o.end === null ? null : new Date(o.end).toISOString() },
    network: { transport: 'tcp', iana_number: '6', community_id: '' },
    source: { ip: '10.0.0.5', port: 40000, nat: { ip: '10.10.10.1', port: 40000 } },
    destination: { ip: o.dst, port: o.port },
    orchestrator: { type: 'kubernetes', namespace: o.ns, resource: { type: 'pod', name: o.pod } },
    egw: {
      reporter: o.gw ? 'gateway' : 'node',
      reporter_name: o.gw ? `${o.gw.ns}/${o.gw.name}` : (o.node ?? 'node-1'),
      conntrack_id: 1,
      pod: { namespace: o.ns, name: o.pod, uid: 'u', node: 'node-1', labels: {} },
      gateway: o.gw ? { namespace: o.gw.ns, name: o.gw.name, node: 'node-1', ip: '10.10.10.1', egressGateway: o.gw.egw } : null,
      egress_ip: '10.10.10.1',
      route: { kind: 'annotation' },
      seen: 'event',
      complete: true,
    },
  };
}

describe('flow graph', () => {
  test('namespace → gateway → destination, with counts; records outside the window are left out', () => {
    const red = { ns: 'default', name: 'red-abc', egw: 'red' };
    const g = flowGraph(
      [
        flow({ ns: 'tenant-a', pod: 'a', gw: red, dst: '198.51.100.10', port: 80, start: NOW - 5000, end: NOW - 4000 }),
        flow({ ns: 'tenant-a', pod: 'a', gw: red, dst: '198.51.100.10', port: 80, start: NOW - 3000, end: null }),
        flow({ ns: 'tenant-b', pod: 'b', gw: { ns: 'default', name: 'red-def', egw: 'red' }, dst: '198.51.100.11', port: 443, start: NOW - 2000, end: NOW - 1000 }),
        flow({ ns: 'plain', pod: 'p', dst: '203.0.113.5', port: 22, start: NOW - 2000, end: NOW - 1000, node: 'node-2' }),
        flow({ ns: 'old', pod: 'o', gw: red, dst: '198.51.100.99', port: 80, start: NOW - 900_000, end: NOW - 800_000 }),
      ],
      NOW,
      60_000,
    );
    assert.equal(g.connections, 4);
    const ids = g.nodes.map((n) => n.id).sort();
    assert.deepEqual(ids, ['dst:198.51.100.10:80/tcp', 'dst:198.51.100.11:443/tcp', 'dst:203.0.113.5:22/tcp', 'gw:default/red', 'gw:node:node-2', 'ns:plain', 'ns:tenant-a', 'ns:tenant-b']);
    const e = g.edges.find((x) => x.from === 'ns:tenant-a' && x.to === 'gw:default/red')!;
    assert.deepEqual([e.connections, e.open], [2, 1]);
    assert.equal(g.edges.find((x) => x.from === 'gw:default/red' && x.to === 'dst:198.51.100.11:443/tcp')?.connections, 1);
    assert.equal(g.nodes.find((n) => n.id === 'gw:default/red')?.connections, 3);
    // Columns: namespaces left of gateways left of destinations.
    const x = (id: string) => g.nodes.find((n) => n.id === id)!.x;
    assert.ok(x('ns:plain') < x('gw:default/red') && x('gw:default/red') < x('dst:203.0.113.5:22/tcp'));
  });

  test(`more than ${MAX_DESTINATIONS} destinations: the quietest share one node`, () => {
    const recs: FlowRecord[] = [];
    for (let i = 0; i < MAX_DESTINATIONS + 5; i++) {
      for (let k = 0; k <= i; k++) recs.push(flow({ ns: 'n', pod: 'p', gw: { ns: 'd', name: 'g' }, dst: `192.0.2.${i + 1}`, port: 80, start: NOW - 1000, end: null }));
    }
    const g = flowGraph(recs, NOW, 60_000);
    assert.equal(g.foldedDestinations, 5);
    assert.equal(g.nodes.filter((n) => n.kind === 'destination').length, MAX_DESTINATIONS + 1);
    // The five quietest (1..5 connections) are the folded ones.
    assert.equal(g.nodes.find((n) => n.id === 'dst:other')?.connections, 1 + 2 + 3 + 4 + 5);
    assert.equal(g.connections, recs.length);
  });
});

describe('view model', () => {
  const gwPod = (name: string, node: string, ip: string): Resource => gatewayPod('default', name, 'red', { node, ip });
  const red = egressGateway('default', 'red', { replicas: 2 });
  red.status = { readyReplicas: 2, conditions: [{ type: 'Ready', status: 'True', reason: 'AllReady' }], replicas: [{ pod: 'red-1', node: 'node-1', ip: '10.10.10.1', health: 'Ready', clients: 7 }, { pod: 'red-2', node: 'node-2', ip: '10.10.10.2', health: 'Ready', clients: 3 }] };
  const objects: Resource[] = [
    felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }),
    red,
    gwPod('red-1', 'node-1', '10.10.10.1'),
    gwPod('red-2', 'node-2', '10.10.10.2'),
    namespace('tenant-a', { annotations: { [ANNOTATION.selector]: "egress-code == 'red'" } }),
    namespace('tenant-b', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p1' } }),
    policy('p1', [{ destination: { cidr: '203.0.113.0/24' }, description: 'on-prem <b>direct</b>' }, { gateway: { selector: "egress-code == 'red'" } }]),
    pod('tenant-a', 'client-a', { node: 'node-1', ip: '10.0.1.5' }),
    pod('tenant-b', 'client-b', { node: 'node-2', ip: '10.0.2.5' }),
  ];
  const calc = new EgressCalculator().load(objects);
  const up = (_agent: string, gw: string, v: number): ScrapeResult['samples'][number] => ({ name: 'egw_agent_gateway_up', labels: { gateway: gw, ip: '' }, value: v });
  const view = (scrapes: ScrapeResult[]) =>
    buildView({
      now: NOW,
      revision: 9,
      egressGateways: objects.filter((o) => o.kind === 'EgressGateway'),
      pods: objects.filter((o) => o.kind === 'Pod'),
      namespaces: objects.filter((o) => o.kind === 'Namespace'),
      policies: objects.filter((o) => o.kind === 'EgressGatewayPolicy'),
      egressOf: (ns, n) => calc.egressOf(ns, n),
      scrapes,
      graph: flowGraph([], NOW, 60_000),
    });

  test('health is every agent\'s egw_agent_gateway_up: up, split, down; without an agent, unknown', () => {
    const v = view([
      { source: 'agent-node-1', ok: true, at: NOW, samples: [up('node-1', 'default/red-1', 1), up('node-1', 'default/red-2', 1)] },
      { source: 'agent-node-2', ok: true, at: NOW, samples: [up('node-2', 'default/red-1', 1), up('node-2', 'default/red-2', 0)] },
    ]);
    const pods = v.gateways[0].pods;
    assert.deepEqual(pods.map((p) => [p.name, p.health, p.agents.map((a) => `${a.agent}=${a.up}`).join(',')]), [
      ['red-1', 'up', 'node-1=true,node-2=true'],
      ['red-2', 'split', 'node-1=true,node-2=false'],
    ]);
    const down = view([{ source: 'agent-node-1', ok: true, at: NOW, samples: [up('node-1', 'default/red-2', 0)] }]).gateways[0].pods;
    assert.deepEqual(down.map((p) => p.health), ['unknown', 'down']);
    // A failed scrape says nothing about health.
    const failed = view([{ source: 'agent-node-1', ok: false, error: 'ECONNREFUSED', at: NOW, samples: [] }]);
    assert.deepEqual(failed.gateways[0].pods.map((p) => p.health), ['unknown', 'unknown']);
    assert.deepEqual(failed.sources, [{ source: 'agent-node-1', ok: false, error: 'ECONNREFUSED', at: new Date(NOW).toISOString() }]);
  });

  test('node, IP, clients (the gateway\'s metric over the status), SNAT ports by egress IP', () => {
    const ports = (ip: string, dst: string, inUse: number): ScrapeResult['samples'] => [
      { name: 'egw_gateway_snat_ports_in_use', labels: { egress_ip: ip, destination: dst, protocol: 'tcp' }, value: inUse },
      { name: 'egw_gateway_snat_ports_available', labels: { egress_ip: ip, destination: dst, protocol: 'tcp' }, value: 64512 - inUse },
    ];
    const v = view([
      { source: 'gateway-default.red-1', ok: true, at: NOW, samples: [{ name: 'egw_gateway_clients', labels: {}, value: 11 }, ...ports('10.10.10.1', '198.51.100.10:80', 3), ...ports('10.10.10.1', '198.51.100.11:443', 60000)] },
      { source: '127.0.0.1:9092', ok: true, at: NOW, samples: ports('10.10.10.2', '198.51.100.10:80', 1) },
    ]);
    const [a, b] = v.gateways[0].pods;
    assert.deepEqual([a.node, a.ip, a.clients, b.node, b.ip, b.clients], ['node-1', '10.10.10.1', 11, 'node-2', '10.10.10.2', 3]);
    assert.deepEqual(a.ports.map((p) => [p.destination, p.inUse]), [['198.51.100.11:443', 60000], ['198.51.100.10:80', 3]], 'busiest first');
    assert.ok(Math.abs(a.ports[0].share - 60000 / 64512) < 1e-9);
    assert.deepEqual(b.ports.map((p) => p.inUse), [1]);
    assert.deepEqual(v.gateways[0].conditions, [{ type: 'Ready', status: 'True', reason: 'AllReady', message: '' }]);
    assert.equal(gatewayRolePod('gateway-default.red-1.x'), 'default/red-1.x');
    assert.equal(gatewayRolePod('agent-node-1'), undefined);
  });

  test('policies with their rules and whom they route; selector annotations grouped; user text kept as is', () => {
    const v = view([]);
    assert.deepEqual(v.policies.map((p) => [p.name, p.namespaces, p.pods]), [['p1', ['tenant-b'], ['tenant-b/client-b']]]);
    assert.equal(v.policies[0].rules[0].description, 'on-prem <b>direct</b>');
    assert.deepEqual(v.policies[0].rules.map((r) => [r.destination, r.gateway]), [['203.0.113.0/24', null], ['0.0.0.0/0', "egress-code == 'red'"]]);
    assert.deepEqual(v.selectorRoutes, [{ selector: "egress-code == 'red'", namespaceSelector: null, pods: ['tenant-a/client-a'] }]);
  });
});

describe('input checks', () => {
  const err = (fn: () => unknown, field: string, re: RegExp) => {
    assert.throws(fn, (e: unknown) => e instanceof InputError && e.field === field && re.test(e.message));
  };
  test('--listen, loopback, token, --scrape, --window', () => {
    assert.deepEqual(parseListen('127.0.0.1:8088'), { host: '127.0.0.1', port: 8088 });
    assert.deepEqual(parseListen('localhost:0'), { host: '127.0.0.1', port: 0 });
    err(() => parseListen('8088'), '--listen', /HOST:PORT/);
    err(() => parseListen('example.com:80'), '--listen', /IPv4/);
    err(() => parseListen('127.0.0.1:70000'), '--listen', /HOST:PORT/);
    assert.equal(isLoopback('127.3.2.1'), true);
    assert.equal(isLoopback('0.0.0.0'), false);
    assert.equal(isLoopback('10.0.0.1'), false);
    assert.equal(parseToken('  0123456789abcdef\n', 'f'), '0123456789abcdef');
    err(() => parseToken('short', 't.txt'), '--token-file', /t\.txt.*16 characters/);
    assert.deepEqual(parseScrapeTarget('unix:/run/x.sock'), { target: 'unix:/run/x.sock', name: '/run/x.sock' });
    assert.deepEqual(parseScrapeTarget('http://127.0.0.1:9091/metrics'), { target: 'http://127.0.0.1:9091', name: '127.0.0.1:9091' });
    err(() => parseScrapeTarget('unix:rel.sock'), '--scrape', /absolute/);
    err(() => parseScrapeTarget('https://x:1'), '--scrape', /http:\/\//);
    err(() => parseScrapeTarget('http://x:1/other'), '--scrape', /http:\/\//);
    assert.equal(parseWindow('5m'), 300_000);
    err(() => parseWindow('2s'), '--window', /10s to 1h/);
    err(() => parseWindow('soon'), '--window', /duration/);
  });

  test('explain and trace queries: each malformed field named', () => {
    const q = (s: string) => new URLSearchParams(s);
    assert.deepEqual(parseExplainQuery(q('pod=tenant-a/client-a&dst=198.51.100.10')), { namespace: 'tenant-a', name: 'client-a', dst: '198.51.100.10' });
    err(() => parseExplainQuery(q('dst=1.2.3.4')), 'pod', /required/);
    err(() => parseExplainQuery(q('pod=client-a&dst=1.2.3.4')), 'pod', /NAMESPACE\/NAME/);
    err(() => parseExplainQuery(q('pod=Tenant/x&dst=1.2.3.4')), 'pod', /namespace .*not a valid name/);
    err(() => parseExplainQuery(q('pod=t/<script>&dst=1.2.3.4')), 'pod', /name .*not a valid name/);
    err(() => parseExplainQuery(q('pod=t/x&dst=1.2.3')), 'dst', /IPv4/);
    const at = '2026-12-02T08:00:00.000Z';
    assert.deepEqual(parseTraceQuery(q(`ip=10.10.10.1&port=40000&at=${at}&dst=198.51.100.10:80`), NOW), { ip: '10.10.10.1', port: 40000, at: Date.parse(at), dst: { ip: '198.51.100.10', port: 80 } });
    assert.deepEqual(parseTraceQuery(q('ip=10.10.10.1&port=1'), NOW), { ip: '10.10.10.1', port: 1, at: NOW });
    err(() => parseTraceQuery(q('ip=10.10.10&port=1'), NOW), 'ip', /IPv4/);
    err(() => parseTraceQuery(q('ip=10.10.10.1&port=0'), NOW), 'port', /1–65535/);
    err(() => parseTraceQuery(q('ip=10.10.10.1&port=80&at=yesterday'), NOW), 'at', /RFC 3339/);
    err(() => parseTraceQuery(q('ip=10.10.10.1&port=80&dst=x'), NOW), 'dst', /IP\[:PORT\]/);
    err(() => parseTraceQuery(q('port=80'), NOW), 'ip', /required/);
  });
});
