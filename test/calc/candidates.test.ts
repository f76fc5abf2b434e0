// EgressCalculator.candidateGateways(node): the gateways a node agent heartbeats — every gateway pod matching the
// selectors of the node's clients, before health, drain, PreferNodeLocal and maxNextHops filtering.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANNOTATION } from '../../src/api/types.js';
import { EgressCalculator } from '../../src/calc/index.js';
import { felixConfiguration, gatewayPod, ippool, namespace, node, pod, policy } from '../helpers/resources.js';

const IN_EGW = "projectcalico.org/name == 'egw'";

function calc(): EgressCalculator {
  return new EgressCalculator().load([
    felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }),
    ippool('pods', '10.244.0.0/16'),
    ippool('egress', '10.10.10.0/24'),
    node('n1', { ip: '192.168.1.1' }),
    node('n2', { ip: '192.168.1.2' }),
    node('n3', { ip: '192.168.1.3' }),
    namespace('egw', { nameLabel: false }),
    gatewayPod('egw', 'red-a', 'red', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'red' } }),
    gatewayPod('egw', 'red-b', 'red', { ip: '10.10.10.2', node: 'n2', labels: { 'egress-code': 'red' }, ready: false }),
    gatewayPod('egw', 'red-c', 'red', { ip: '10.10.10.5', node: 'n2', labels: { 'egress-code': 'red' }, deleting: true }),
    gatewayPod('egw', 'blue-a', 'blue', { ip: '10.10.10.3', node: 'n2', labels: { 'egress-code': 'blue' } }),
    gatewayPod('egw', 'green-a', 'green', { ip: '10.10.10.4', node: 'n2', labels: { 'egress-code': 'green' } }),
    policy('p-blue', [
      { destination: { cidr: '203.0.113.0/24' } },
      { gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW }, gatewayPreference: 'PreferNodeLocal' },
    ]),
    // n1: a red client limited to one hop; n2: a policy client; n3: nobody with egress
    pod('app', 'c1', { ip: '10.244.0.5', node: 'n1', annotations: { [ANNOTATION.selector]: "egress-code == 'red'", [ANNOTATION.namespaceSelector]: IN_EGW, [ANNOTATION.maxNextHops]: '1' }, ready: null }),
    pod('app', 'c2', { ip: '10.244.1.5', node: 'n2', annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, ready: null }),
    pod('app', 'c3', { ip: '10.244.2.5', node: 'n3', ready: null }),
  ]);
}

/** Gateway IPs the node's egress routes point at. */
function vias(c: EgressCalculator, n: string): string[] {
  return [...new Set(c.nodeState(n).tables.flatMap((t) => t.routes.flatMap((r) => (r.type === 'ecmp' ? r.via : []))))].sort();
}

describe('candidateGateways', () => {
  it('every gateway matching a local client, whatever its health, drain or the hop limit', () => {
    const c = calc();
    assert.deepEqual(c.candidateGateways('n1'), [
      { pod: 'egw/red-a', ip: '10.10.10.1', node: 'n1' },
      { pod: 'egw/red-b', ip: '10.10.10.2', node: 'n2' },
      { pod: 'egw/red-c', ip: '10.10.10.5', node: 'n2' },
    ]);
    // only red-a is routed to (red-b not ready, red-c draining, maxNextHops 1)
    assert.deepEqual(vias(c, 'n1'), ['10.10.10.1']);
    assert.deepEqual(c.candidateGateways('n2'), [{ pod: 'egw/blue-a', ip: '10.10.10.3', node: 'n2' }]);
    assert.deepEqual(c.candidateGateways('n3'), []);
    assert.deepEqual(c.candidateGateways('nowhere'), []);
  });

  it('a gateway marked down stays a candidate (so its recovery is seen); changes show up without nodeState()', () => {
    const c = calc();
    c.setGatewayHealth('egw/red-a', { ready: false, reasons: ['3 heartbeats missed (600 ms)'] });
    assert.deepEqual(vias(c, 'n1'), []);
    assert.ok(c.candidateGateways('n1').some((g) => g.pod === 'egw/red-a'));
    // a client of green appears on n3: candidates follow at once
    c.upsert(pod('app', 'c4', { ip: '10.244.2.6', node: 'n3', annotations: { [ANNOTATION.selector]: "egress-code == 'green'", [ANNOTATION.namespaceSelector]: IN_EGW }, ready: null }));
    assert.deepEqual(c.candidateGateways('n3').map((g) => g.pod), ['egw/green-a']);
    c.remove({ kind: 'Pod', namespace: 'egw', name: 'green-a' });
    assert.deepEqual(c.candidateGateways('n3'), []);
    c.upsert(felixConfiguration({ egressIPSupport: 'Disabled' }));
    assert.deepEqual(c.candidateGateways('n1'), []);
  });
});
