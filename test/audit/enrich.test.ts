// Enrichment (the pod holding an IP, the route that sent it) and the count table's parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PodIPIndex, gatewayEnricher, nodeEnricher } from '../../src/audit/enrich.js';
import { parseCount } from '../../src/audit/kernel.js';
import { EgressCalculator } from '../../src/calc/calculator.js';
import type { CtFlow } from '../../src/audit/types.js';
import { clientPod, clientNamespace, gatewayPod, ippool, pod } from '../helpers/resources.js';

const flow = (src: string, dst: string): CtFlow => ({
  type: 'new',
  id: 1,
  orig: { src, dst, sport: 1000, dport: 80, proto: 6, protoName: 'tcp' },
  reply: { src: dst, dst: '10.10.10.1', sport: 80, dport: 1000, proto: 6, protoName: 'tcp' },
  seenAt: 0,
});

test('PodIPIndex: the running pod answers for its IP; a finished pod with the same IP does not hide it; deletes forget', () => {
  const idx = new PodIPIndex();
  const old = pod('app', 'old', { ip: '10.244.0.5', phase: 'Succeeded', node: 'n1' });
  const neu = pod('app', 'new', { ip: '10.244.0.5', node: 'n1', labels: { app: 'web' } });
  idx.replace([old, neu]);
  assert.equal(idx.lookup('10.244.0.5')?.name, 'new');
  assert.deepEqual(idx.lookup('10.244.0.5')?.labels, { app: 'web' });
  // a connection that began before the new pod existed is not the new pod's
  const created = Date.parse('2026-12-02T10:00:00Z');
  idx.apply('upsert', { ...neu, metadata: { ...neu.metadata, creationTimestamp: new Date(created).toISOString() } });
  assert.equal(idx.lookup('10.244.0.5', created - 5000), null);
  assert.equal(idx.lookup('10.244.0.5', created + 5)?.name, 'new');
  idx.apply('delete', neu);
  assert.equal(idx.lookup('10.244.0.5')?.name, 'old');
  idx.apply('delete', old);
  assert.equal(idx.lookup('10.244.0.5'), null);
  assert.equal(idx.entries().length, 0);
});

test('gateway enrichment names the policy rule by longest prefix; node enrichment says natOutgoing or no-gateway', () => {
  const ns = clientNamespace('tenant', { policy: 'p1' });
  const client = clientPod('tenant', 'c', { policy: 'p1' }, { ip: '10.244.0.9', node: 'n1' });
  const gw = gatewayPod('egw', 'gw-1', 'egw/red', { ip: '10.10.10.1', node: 'n2', labels: { egress: 'red' } });
  const policy = {
    apiVersion: 'projectcalico.org/v3',
    kind: 'EgressGatewayPolicy',
    metadata: { name: 'p1' },
    spec: { rules: [{ destination: { cidr: '0.0.0.0/0' }, gateway: { selector: "egress == 'red'", namespaceSelector: 'all()' } }, { destination: { cidr: '203.0.113.0/24' } }] },
  };
  const felix = { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { egressIPSupport: 'EnabledPerNamespaceOrPerPod' } };
  const calc = new EgressCalculator().load([felix as never, ns, client, gw, policy as never]);
  const idx = new PodIPIndex();
  idx.replace([client, gw]);
  const self = { namespace: 'egw', name: 'gw-1', node: 'n2', ip: '10.10.10.1' };
  const g = gatewayEnricher(idx, calc, () => self);
  const e = g(flow('10.244.0.9', '198.51.100.10'));
  assert.equal(e.pod.name, 'c');
  assert.deepEqual(e.route, { kind: 'policy', policy: 'p1', on: 'pod', rule: 0 });
  assert.deepEqual(e.gateway, self);
  const n = nodeEnricher(idx, calc);
  assert.deepEqual(n(flow('10.244.0.9', '203.0.113.10')).route, { kind: 'no-gateway', policy: 'p1', on: 'pod', rule: 1 });
  assert.deepEqual(n(flow('10.244.0.77', '198.51.100.10')), { pod: { namespace: null, name: null, uid: null, node: null, labels: {} }, route: { kind: 'natOutgoing' }, gateway: null });
});

test('node enrichment of a gateway pod\'s connection (host-IP mode): route host-ip with its pool, the gateway, the client unknown', () => {
  const gw = gatewayPod('egw', 'gw-1', 'red', { ip: '10.10.10.1', node: 'n2' });
  const client = pod('tenant', 'c', { ip: '10.244.0.9', node: 'n1' });
  const calc = new EgressCalculator().load([gw, client]);
  const idx = new PodIPIndex();
  idx.replace([gw, client, ippool('egress', '10.10.10.0/30', { natOutgoing: true }), ippool('pods', '10.244.0.0/16', { natOutgoing: true })]);
  const n = nodeEnricher(idx, calc);
  const unknown = { namespace: null, name: null, uid: null, node: null, labels: {} };
  const gateway = { namespace: 'egw', name: 'gw-1', node: 'n2', ip: '10.10.10.1', egressGateway: 'red' };
  assert.deepEqual(n(flow('10.10.10.1', '198.51.100.10')), { pod: unknown, route: { kind: 'host-ip', pool: 'egress' }, gateway });
  assert.equal(n(flow('10.244.0.9', '198.51.100.10')).route.kind, 'natOutgoing', 'a client pod is ordinary node SNAT');
  // The pool switched back (a connection whose DESTROY alone came later): still the gateway's traffic, no pool named.
  idx.apply('upsert', ippool('egress', '10.10.10.0/30', { natOutgoing: false }));
  assert.deepEqual(n(flow('10.10.10.1', '198.51.100.10')).route, { kind: 'host-ip' });
  assert.deepEqual(idx.gatewayAt('10.10.10.1')?.gateway, gateway);
  assert.equal(idx.gatewayAt('10.244.0.9'), null);
  idx.apply('delete', gw);
  assert.equal(idx.gatewayAt('10.10.10.1'), null);
});

test('parseCount: the count rule\'s packets; anything else in the chain is not a count', () => {
  const rule = (expr: unknown[]) => JSON.stringify({ nftables: [{ metainfo: {} }, { chain: { name: 'count' } }, { rule: { chain: 'count', expr } }] });
  const match = { match: { op: '==', left: { '&': [{ ct: { key: 'status' } }, ['snat', 'confirmed']] }, right: 'snat' } };
  assert.equal(parseCount(rule([match, { counter: { packets: 42, bytes: 2520 } }])), 42);
  assert.equal(parseCount(rule([{ counter: { packets: 42, bytes: 0 } }])), null);
  assert.equal(parseCount('not json'), null);
  assert.equal(parseCount(JSON.stringify({ nftables: [] })), null);
});
