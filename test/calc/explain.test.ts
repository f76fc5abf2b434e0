// explain: the seed guide's scenario, answered with reasons and the kernel objects.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANNOTATION } from '../../src/api/types.js';
import { EgressCalculator } from '../../src/calc/index.js';
import { formatExplanation } from '../../src/cli/explain.js';
import { felixConfiguration, gatewayPod, ippool, namespace, node, pod, policy } from '../helpers/resources.js';

function guide(): EgressCalculator {
  return new EgressCalculator().load([
    felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }),
    ippool('default-ipv4-ippool', '192.168.0.0/16'),
    ippool('egress-ippool-1', '10.10.10.0/31'),
    ippool('egress-ippool-2', '10.10.11.0/31'),
    node('worker-1', { ip: '172.18.0.2' }),
    node('worker-2', { ip: '172.18.0.3' }),
    namespace('default', { nameLabel: false }),
    namespace('my-namespace', { annotations: { [ANNOTATION.selector]: "egress-code == 'red'", [ANNOTATION.namespaceSelector]: "projectcalico.org/name == 'default'" }, nameLabel: false }),
    gatewayPod('default', 'egress-gateway-red-5b8d', 'egress-gateway-red', { ip: '10.10.10.0', node: 'worker-1', labels: { 'egress-code': 'red' } }),
    gatewayPod('default', 'egress-gateway-red-9kq2', 'egress-gateway-red', { ip: '10.10.10.1', node: 'worker-2', labels: { 'egress-code': 'red' } }),
    gatewayPod('default', 'egress-gateway-blue-x7', 'egress-gateway-blue', { ip: '10.10.11.0', node: 'worker-2', labels: { 'egress-code': 'blue' } }),
    gatewayPod('default', 'egress-gateway-blue-z1', 'egress-gateway-blue', { ip: '10.10.11.1', node: 'worker-2', labels: { 'egress-code': 'blue' }, ready: false }),
    policy('egw-policy1', [
      { destination: { cidr: '10.0.0.0/8' }, description: 'Local: no gateway' },
      { destination: { cidr: '11.0.0.0/8' }, description: 'Gateway to on prem', gateway: { namespaceSelector: "projectcalico.org/name == 'default'", selector: "egress-code == 'blue'", maxNextHops: 2 } },
      { description: 'Gateway to internet', gateway: { namespaceSelector: "projectcalico.org/name == 'default'", selector: "egress-code == 'red'" }, gatewayPreference: 'PreferNodeLocal' },
    ]),
    pod('my-namespace', 'my-client', { ip: '192.168.1.10', node: 'worker-1', ready: null }),
    pod('my-namespace', 'policy-client', { ip: '192.168.1.11', node: 'worker-1', annotations: { [ANNOTATION.egressGatewayPolicy]: 'egw-policy1' }, ready: null }),
  ]);
}

describe('calc: explain', () => {
  it('selector annotation on the namespace, to the internet', () => {
    const e = guide().explain('my-namespace', 'my-client', '93.184.216.34');
    assert.equal(e.kind, 'selector');
    assert.equal(e.source, 'namespace');
    assert.equal(e.verdict, 'via-gateway');
    assert.deepEqual(e.hops, ['10.10.10.0', '10.10.10.1']);
    assert.deepEqual(
      e.candidates.map((c) => [c.pod, c.chosen, c.local]),
      [
        ['default/egress-gateway-red-5b8d', true, true],
        ['default/egress-gateway-red-9kq2', true, false],
      ],
    );
    assert.match(e.kernel.rule!, /^ip rule add from 192\.168\.1\.10\/32 lookup \d+ priority 100$/);
    assert.equal(e.kernel.route, `ip route replace 0.0.0.0/0 table ${e.kernel.table} nexthop via 10.10.10.0 dev egw.vxlan onlink nexthop via 10.10.10.1 dev egw.vxlan onlink`);
    assert.deepEqual(e.kernel.neighbours, [
      'ip neigh replace 10.10.10.0 lladdr a2:2a:0a:0a:0a:00 dev egw.vxlan nud permanent',
      'ip neigh replace 10.10.10.1 lladdr a2:2a:0a:0a:0a:01 dev egw.vxlan nud permanent',
    ]);
    assert.deepEqual(e.kernel.fdb, ['bridge fdb append a2:2a:0a:0a:0a:00 dev egw.vxlan dst 10.10.10.0', 'bridge fdb append a2:2a:0a:0a:0a:01 dev egw.vxlan dst 10.10.10.1']);
    assert.deepEqual(JSON.parse(JSON.stringify(e)), e);
  });

  it('policy rules: PreferNodeLocal, maxNextHops with a not-ready candidate, gateway-less rule, internal', () => {
    const c = guide();
    const internet = c.explain('my-namespace', 'policy-client', '93.184.216.34');
    assert.equal(internet.kind, 'policy');
    assert.equal(internet.source, 'pod');
    assert.equal(internet.rule?.description, 'Gateway to internet');
    assert.equal(internet.rule?.gatewayPreference, 'PreferNodeLocal');
    assert.deepEqual(internet.hops, ['10.10.10.0']);
    assert.equal(internet.kernel.route, `ip route replace 0.0.0.0/0 via 10.10.10.0 dev egw.vxlan onlink table ${internet.kernel.table}`);
    const remote = internet.candidates.find((x) => x.ip === '10.10.10.1')!;
    assert.equal(remote.eligible, false);
    assert.match(remote.reasons[0], /PreferNodeLocal/);

    const onprem = c.explain('my-namespace', 'policy-client', '11.1.2.3');
    assert.equal(onprem.rule?.destination, '11.0.0.0/8');
    assert.deepEqual(onprem.hops, ['10.10.11.0']);
    const down = onprem.candidates.find((x) => x.ip === '10.10.11.1')!;
    assert.equal(down.ready, false);
    assert.equal(down.chosen, false);
    assert.equal(down.reasons[0], 'not ready');

    const local = c.explain('my-namespace', 'policy-client', '10.20.30.40');
    assert.equal(local.verdict, 'normal-routing');
    assert.equal(local.rule?.description, 'Local: no gateway');
    assert.equal(local.kernel.route, `ip route replace throw 10.0.0.0/8 table ${local.kernel.table}`);

    const internal = c.explain('my-namespace', 'policy-client', '192.168.7.7');
    assert.equal(internal.kind, 'internal');
    assert.equal(internal.internalCidr, '192.168.0.0/16');
    assert.equal(internal.kernel.route, `ip route replace throw 192.168.0.0/16 table ${internal.kernel.table}`);
  });

  it('formats for humans', () => {
    const c = guide();
    const text = formatExplanation(c.explain('my-namespace', 'policy-client', '11.1.2.3'));
    assert.match(text, /^pod my-namespace\/policy-client \(192\.168\.1\.11\) on node worker-1 → 11\.1\.2\.3$/m);
    assert.match(text, /^verdict: via gateway 10\.10\.11\.0$/m);
    assert.match(text, /^decision: policy from the pod \[egress\.projectcalico\.org\/egressGatewayPolicy=egw-policy1\]$/m);
    assert.match(text, /^rule: #1 destination 11\.0\.0\.0\/8 "Gateway to on prem", selector egress-code == 'blue'/m);
    assert.match(text, /^ {2}\* +default\/egress-gateway-blue-x7 +10\.10\.11\.0 +worker-2 +ready/m);
    assert.match(text, /^ {2}rule: {2}ip rule add from 192\.168\.1\.11\/32 lookup \d+ priority 100$/m);
    assert.match(text, /^ {2}neigh: ip neigh replace 10\.10\.11\.0 lladdr a2:2a:0a:0a:0b:00 dev egw\.vxlan nud permanent$/m);
    const none = formatExplanation(c.explain('default', 'nobody', '1.1.1.1'));
    assert.match(none, /not known/);
    assert.match(none, /rule: {2}\(none/);
  });

  it('host-IP mode: a chosen gateway whose pool has natOutgoing is seen outside as its node\'s IP', () => {
    const c = guide();
    const before = c.explain('my-namespace', 'my-client', '93.184.216.34');
    assert.deepEqual(before.egress.map((x) => [x.ip, x.pool, x.hostIP, x.seenAs]), [
      ['10.10.10.0', 'egress-ippool-1', null, '10.10.10.0'],
      ['10.10.10.1', 'egress-ippool-1', null, '10.10.10.1'],
    ]);
    assert.match(formatExplanation(before), /^egress IP: 10\.10\.10\.0 \(gateway default\/egress-gateway-red-5b8d, IPPool egress-ippool-1\): the outside sees 10\.10\.10\.0$/m);
    assert.ok(!before.why.some((w) => w.includes('host-IP')));

    c.upsert(ippool('egress-ippool-1', '10.10.10.0/31', { natOutgoing: true }));
    const e = c.explain('my-namespace', 'my-client', '93.184.216.34');
    assert.deepEqual(e.hops, ['10.10.10.0', '10.10.10.1'], 'the route is the same: only the source the outside sees changes');
    assert.deepEqual(e.egress.map((x) => [x.pod, x.hostIP, x.seenAs]), [
      ['default/egress-gateway-red-5b8d', { node: 'worker-1', nodeIP: '172.18.0.2' }, '172.18.0.2'],
      ['default/egress-gateway-red-9kq2', { node: 'worker-2', nodeIP: '172.18.0.3' }, '172.18.0.3'],
    ]);
    assert.ok(e.why.includes('host-IP mode: IPPool egress-ippool-1 has natOutgoing, so node worker-2 masquerades default/egress-gateway-red-9kq2\'s traffic: the outside sees 172.18.0.3, not the egress IP 10.10.10.1'), e.why.join('\n'));
    const text = formatExplanation(e);
    assert.match(text, /^egress IP: 10\.10\.10\.1 \(gateway default\/egress-gateway-red-9kq2, IPPool egress-ippool-1\): host-IP mode, the outside sees 172\.18\.0\.3 \(node worker-2's IP\), not the egress IP \(the pool has natOutgoing\)$/m);
    // Another pool's gateways are not affected; a node without an address is said to be unknown.
    assert.deepEqual(c.explain('my-namespace', 'policy-client', '11.1.2.3').egress.map((x) => x.hostIP), [null]);
    c.upsert(node('worker-2', {}));
    const unknown = c.explain('my-namespace', 'my-client', '93.184.216.34').egress[1];
    assert.deepEqual([unknown.hostIP, unknown.seenAs], [{ node: 'worker-2', nodeIP: null }, null]);
    // Not via a gateway: nothing to say.
    assert.deepEqual(c.explain('my-namespace', 'policy-client', '10.20.30.40').egress, []);
  });

  it('not-clients and bad input', () => {
    const c = guide();
    assert.equal(c.explain('default', 'egress-gateway-red-5b8d', '1.1.1.1').kind, 'not-client');
    assert.equal(c.explain('x', 'y', '1.1.1.1').kind, 'not-client');
    assert.throws(() => c.explain('my-namespace', 'my-client', 'example.com'), /not an IPv4 address/);
  });
});
