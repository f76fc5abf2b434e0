// The resolution order (docs/architecture.md, "calc: resolution order"), line by line: which configuration a client
// gets, and the routes it produces.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Resource } from '../../src/api/meta.js';
import { ANNOTATION, type EgressIPSupport } from '../../src/api/types.js';
import { EgressCalculator, type NodeEgressState } from '../../src/calc/index.js';
import { felixConfiguration, gatewayPod, ippool, namespace, node, pod, policy } from '../helpers/resources.js';
import { lookup, tableOf } from './helpers.js';

const IN_EGW = "projectcalico.org/name == 'egw'";
const RED = { [ANNOTATION.selector]: "egress-code == 'red'", [ANNOTATION.namespaceSelector]: IN_EGW };
const BLUE = { [ANNOTATION.selector]: "egress-code == 'blue'", [ANNOTATION.namespaceSelector]: IN_EGW };
const RED_IPS = ['10.10.10.1', '10.10.10.2'];
const BLUE_IPS = ['10.10.10.3'];

function world(support: EgressIPSupport = 'EnabledPerNamespaceOrPerPod'): Resource[] {
  return [
    felixConfiguration({ egressIPSupport: support }),
    ippool('pods', '10.244.0.0/16'),
    ippool('egress', '10.10.10.0/24'),
    node('n1', { ip: '192.168.1.1' }),
    node('n2', { ip: '192.168.1.2' }),
    node('n3', { ip: '192.168.1.3' }),
    namespace('egw', { labels: { tier: 'gateways' }, nameLabel: false }),
    gatewayPod('egw', 'red-a', 'red', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'red' } }),
    gatewayPod('egw', 'red-b', 'red', { ip: '10.10.10.2', node: 'n2', labels: { 'egress-code': 'red' } }),
    gatewayPod('egw', 'blue-a', 'blue', { ip: '10.10.10.3', node: 'n2', labels: { 'egress-code': 'blue' } }),
    policy('p-red', [{ gateway: { selector: "egress-code == 'red'", namespaceSelector: IN_EGW } }]),
    policy('p-blue', [{ gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW } }]),
  ];
}

function calcWith(extra: Resource[], support?: EgressIPSupport, opts = {}): EgressCalculator {
  return new EgressCalculator(opts).load([...world(support), ...extra]);
}

function client(annotations?: Record<string, string>, o: { name?: string; ip?: string; node?: string; ns?: string } = {}): Resource {
  return pod(o.ns ?? 'app', o.name ?? 'c1', { ip: o.ip ?? '10.244.1.10', node: o.node ?? 'n1', annotations, ready: null });
}

describe('calc: resolution order', () => {
  const rows: { name: string; support?: EgressIPSupport; ns?: Record<string, string>; pod?: Record<string, string>; expect: 'main' | 'unreachable' | string[] }[] = [
    { name: 'Disabled: nothing applies', support: 'Disabled', ns: RED, pod: BLUE, expect: 'main' },
    { name: 'EnabledPerNamespace ignores pod selector annotations', support: 'EnabledPerNamespace', pod: RED, expect: 'main' },
    { name: 'EnabledPerNamespace ignores pod policy annotations', support: 'EnabledPerNamespace', ns: RED, pod: { [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, expect: RED_IPS },
    { name: 'EnabledPerNamespace ignores a pod annotation naming a missing policy', support: 'EnabledPerNamespace', ns: RED, pod: { [ANNOTATION.egressGatewayPolicy]: 'nope' }, expect: RED_IPS },
    { name: 'EnabledPerNamespace honours namespace selectors', support: 'EnabledPerNamespace', ns: RED, expect: RED_IPS },
    { name: 'EnabledPerNamespace honours namespace policies', support: 'EnabledPerNamespace', ns: { [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, expect: BLUE_IPS },
    { name: 'EnabledPerNamespaceOrPerPod honours pod selectors', pod: BLUE, expect: BLUE_IPS },
    { name: '1. pod policy (exists) beats namespace policy and pod selectors', ns: { [ANNOTATION.egressGatewayPolicy]: 'p-red' }, pod: { ...RED, [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, expect: BLUE_IPS },
    { name: '1. a policy annotation makes the other three on that object ignored', pod: { ...RED, [ANNOTATION.maxNextHops]: 'x', [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, expect: BLUE_IPS },
    { name: '2. namespace policy beats pod selector', ns: { [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, pod: RED, expect: BLUE_IPS },
    { name: '2. pod policy missing: namespace policy (exists) applies', ns: { [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, pod: { [ANNOTATION.egressGatewayPolicy]: 'nope' }, expect: BLUE_IPS },
    { name: '3. pod policy missing, no namespace policy: fail closed', pod: { ...BLUE, [ANNOTATION.egressGatewayPolicy]: 'nope' }, expect: 'unreachable' },
    { name: '3. namespace policy missing: fail closed, even with a pod selector', ns: { [ANNOTATION.egressGatewayPolicy]: 'nope' }, pod: RED, expect: 'unreachable' },
    { name: '3. both policies missing: fail closed', ns: { [ANNOTATION.egressGatewayPolicy]: 'nope1' }, pod: { [ANNOTATION.egressGatewayPolicy]: 'nope2' }, expect: 'unreachable' },
    { name: '4. pod selector beats namespace selector', ns: RED, pod: BLUE, expect: BLUE_IPS },
    { name: '5. namespace selector when the pod has none', ns: BLUE, expect: BLUE_IPS },
    { name: '5. pod maxNextHops alone does not make a pod config', ns: BLUE, pod: { [ANNOTATION.maxNextHops]: '1' }, expect: BLUE_IPS },
    { name: '6. no annotation: no rule', expect: 'main' },
    { name: '6. a namespaceSelector without selector is ignored', ns: { [ANNOTATION.namespaceSelector]: IN_EGW }, expect: 'main' },
    { name: 'selector without namespaceSelector matches only the own namespace', pod: { [ANNOTATION.selector]: "egress-code == 'red'" }, expect: 'unreachable' },
    { name: 'invalid selector annotation fails closed', pod: { [ANNOTATION.selector]: "egress-code = 'red'" }, expect: 'unreachable' },
    { name: 'non-decimal maxNextHops annotation fails closed', pod: { ...RED, [ANNOTATION.maxNextHops]: 'two' }, expect: 'unreachable' },
    // the api rule (parseMaxNextHops: 1–9 digits), which validation applies too; calc used to accept any safe integer
    { name: 'a 10-digit maxNextHops annotation fails closed, as validation rejects it', pod: { ...RED, [ANNOTATION.maxNextHops]: '1234567890' }, expect: 'unreachable' },
    { name: 'a 9-digit maxNextHops annotation is a (large) hop limit', pod: { ...RED, [ANNOTATION.maxNextHops]: '999999999' }, expect: RED_IPS },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const c = calcWith([namespace('app', { annotations: row.ns, nameLabel: false }), client(row.pod)], row.support);
      const st = c.nodeState('n1');
      assert.deepEqual(lookup(st, 'app/c1', '8.8.8.8'), row.expect);
      if (row.expect === 'main') assert.equal(tableOf(st, 'app/c1'), null, 'no rule at all');
      if (row.support === 'Disabled') {
        assert.equal(st.enabled, false);
        assert.deepEqual(st.rules, []);
        assert.deepEqual(st.tables, []);
        assert.deepEqual(st.gateways, []);
      }
      // explain agrees with the state
      const e = c.explain('app', 'c1', '8.8.8.8');
      const verdict = row.expect === 'main' ? 'normal-routing' : row.expect === 'unreachable' ? 'dropped' : 'via-gateway';
      assert.equal(e.verdict, verdict, JSON.stringify(e, null, 1));
      if (Array.isArray(row.expect)) assert.deepEqual(e.hops, row.expect);
    });
  }

  it('explain names the source and kind', () => {
    const c = calcWith([namespace('app', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, nameLabel: false }), client(RED)]);
    const e = c.explain('app', 'c1', '1.1.1.1');
    assert.equal(e.kind, 'policy');
    assert.equal(e.source, 'namespace');
    assert.equal(e.policy, 'p-blue');
    assert.deepEqual(e.annotation, { name: ANNOTATION.egressGatewayPolicy, value: 'p-blue' });
    const c2 = calcWith([namespace('app', { nameLabel: false }), client({ ...RED, [ANNOTATION.egressGatewayPolicy]: 'gone' })]);
    const f = c2.explain('app', 'c1', '1.1.1.1');
    assert.equal(f.kind, 'fail-closed');
    assert.equal(f.source, 'pod');
    assert.ok(f.why.some((w) => w.includes('gone')));
    const c3 = calcWith([namespace('app', { annotations: RED, nameLabel: false }), client(BLUE)], 'EnabledPerNamespace');
    const g = c3.explain('app', 'c1', '1.1.1.1');
    assert.equal(g.kind, 'selector');
    assert.equal(g.source, 'namespace');
    assert.ok(g.why.some((w) => w.includes('pod annotations ignored')));
    assert.equal(calcWith([namespace('app', { nameLabel: false }), client(RED)], 'Disabled').explain('app', 'c1', '1.1.1.1').kind, 'disabled');
    assert.equal(calcWith([namespace('app', { nameLabel: false }), client()]).explain('app', 'c1', '1.1.1.1').kind, 'none');
  });

  it('fail-closed keeps internal destinations routable and recovers when the policy appears', () => {
    const c = calcWith([namespace('app', { nameLabel: false }), client({ [ANNOTATION.egressGatewayPolicy]: 'later' })]);
    let st = c.nodeState('n1');
    assert.equal(lookup(st, 'app/c1', '8.8.8.8'), 'unreachable');
    assert.equal(lookup(st, 'app/c1', '10.244.7.7'), 'main');
    assert.equal(lookup(st, 'app/c1', '192.168.1.2'), 'main');
    c.upsert(policy('later', [{ gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW } }]));
    st = c.nodeState('n1');
    assert.deepEqual(lookup(st, 'app/c1', '8.8.8.8'), BLUE_IPS);
    c.remove({ kind: 'EgressGatewayPolicy', namespace: '', name: 'later' });
    assert.equal(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), 'unreachable');
  });

  it('switching egressIPSupport recomputes every client', () => {
    const c = calcWith([namespace('app', { annotations: RED, nameLabel: false }), client(BLUE)], 'Disabled');
    assert.equal(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), 'main');
    c.upsert(felixConfiguration({ egressIPSupport: 'EnabledPerNamespace' }));
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), RED_IPS);
    c.upsert(felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }));
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), BLUE_IPS);
    c.remove({ kind: 'FelixConfiguration', namespace: '', name: 'default' });
    assert.equal(c.nodeState('n1').enabled, false);
    assert.deepEqual(c.nodeState('n1').rules, []);
  });
});

describe('calc: selector scope and namespaces', () => {
  it('without namespaceSelector, a selector matches gateways in the annotated object’s namespace only', () => {
    const c = calcWith([
      namespace('app', { annotations: { [ANNOTATION.selector]: "egress-code == 'red'" }, nameLabel: false }),
      namespace('other', { annotations: { [ANNOTATION.selector]: "egress-code == 'red'" }, nameLabel: false }),
      gatewayPod('app', 'own-red', 'own', { ip: '10.10.10.9', node: 'n3', labels: { 'egress-code': 'red' } }),
      client(),
      client(undefined, { ns: 'other', name: 'o1', ip: '10.244.1.11' }),
    ]);
    const st = c.nodeState('n1');
    assert.deepEqual(lookup(st, 'app/c1', '8.8.8.8'), ['10.10.10.9']);
    assert.equal(lookup(st, 'other/o1', '8.8.8.8'), 'unreachable');
  });

  it('every namespace carries projectcalico.org/name; namespaceSelector over namespace labels, incrementally', () => {
    const c = calcWith([
      namespace('app', { annotations: { [ANNOTATION.selector]: "egress-code == 'red'", [ANNOTATION.namespaceSelector]: "tier == 'gateways'" }, nameLabel: false }),
      namespace('egw2', { nameLabel: false }),
      gatewayPod('egw2', 'red-z', 'red', { ip: '10.10.10.20', node: 'n3', labels: { 'egress-code': 'red' } }),
      client(),
    ]);
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), RED_IPS);
    c.upsert(namespace('egw2', { labels: { tier: 'gateways' }, nameLabel: false }));
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), [...RED_IPS, '10.10.10.20']);
    c.upsert(namespace('egw', { labels: { tier: 'retired' }, nameLabel: false }));
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), ['10.10.10.20']);
    // a namespace that was never upserted still has its name label
    const d = calcWith([namespace('app', { annotations: { [ANNOTATION.selector]: 'all()', [ANNOTATION.namespaceSelector]: "projectcalico.org/name == 'ghost'" }, nameLabel: false }), gatewayPod('ghost', 'g-1', 'g', { ip: '10.10.10.30', node: 'n2', labels: {} }), client()]);
    assert.deepEqual(lookup(d.nodeState('n1'), 'app/c1', '8.8.8.8'), ['10.10.10.30']);
  });

  it('namespace annotation changes reach every client of the namespace', () => {
    const c = calcWith([namespace('app', { nameLabel: false }), client(), client(undefined, { name: 'c2', ip: '10.244.1.12' })]);
    assert.deepEqual(c.nodeState('n1').rules, []);
    c.upsert(namespace('app', { annotations: BLUE, nameLabel: false }));
    const st = c.nodeState('n1');
    assert.deepEqual(lookup(st, 'app/c1', '8.8.8.8'), BLUE_IPS);
    assert.deepEqual(lookup(st, 'app/c2', '8.8.8.8'), BLUE_IPS);
    c.remove({ kind: 'Namespace', namespace: '', name: 'app' });
    assert.deepEqual(c.nodeState('n1').rules, []);
  });

  it('a gateway pod is never a client, whatever its annotations', () => {
    const c = calcWith([
      namespace('egw', { labels: { tier: 'gateways' }, annotations: BLUE, nameLabel: false }),
      gatewayPod('egw', 'red-c', 'red', { ip: '10.10.10.4', node: 'n1', labels: { 'egress-code': 'red' }, annotations: RED }),
    ]);
    const st = c.nodeState('n1');
    assert.equal(st.rules.find((r) => r.pod === 'egw/red-c'), undefined);
    assert.equal(c.explain('egw', 'red-c', '8.8.8.8').kind, 'not-client');
    // ... and a client that becomes a gateway loses its rule
    c.upsert(client(RED, { ns: 'egw', name: 'x' }));
    assert.deepEqual(lookup(c.nodeState('n1'), 'egw/x', '8.8.8.8'), ['10.10.10.1', '10.10.10.2', '10.10.10.4']);
    c.upsert(gatewayPod('egw', 'x', 'x', { ip: '10.244.1.10', node: 'n1', labels: { 'egress-code': 'red' }, annotations: RED }));
    assert.equal(tableOf(c.nodeState('n1'), 'egw/x'), null);
  });

  it('a pod without metadata.namespace (or with an empty one) is in default, on upsert and on remove (namespaceOf)', () => {
    const c = calcWith([namespace('default', { annotations: RED, nameLabel: false })]);
    for (const ns of [undefined, '']) {
      const p = client(undefined, { ns: 'x', name: 'anon' });
      p.metadata.namespace = ns;
      c.upsert(p);
      assert.deepEqual(lookup(c.nodeState('n1'), 'default/anon', '8.8.8.8'), RED_IPS);
      assert.equal(c.explain('default', 'anon', '8.8.8.8').verdict, 'via-gateway');
      c.remove({ kind: 'Pod', namespace: '', name: 'anon' });
      assert.deepEqual(c.nodeState('n1').rules, []);
    }
  });

  it('pods without an IP, unscheduled, finished, or on other nodes get no rule here', () => {
    const c = calcWith([
      namespace('app', { annotations: RED, nameLabel: false }),
      pod('app', 'noip', { node: 'n1', ready: null }),
      pod('app', 'unscheduled', { ip: '10.244.1.20', ready: null }),
      pod('app', 'done', { ip: '10.244.1.21', node: 'n1', phase: 'Succeeded', ready: null }),
      client(undefined, { name: 'far', node: 'n2', ip: '10.244.2.2' }),
      client(),
    ]);
    const st = c.nodeState('n1');
    assert.deepEqual(
      st.rules.map((r) => r.pod),
      ['app/c1'],
    );
    assert.deepEqual(
      c.nodeState('n2').rules.map((r) => r.pod),
      ['app/far'],
    );
  });
});

describe('calc: rules, LPM and internal destinations', () => {
  const lpm = policy('lpm', [
    { description: 'internet', gateway: { selector: "egress-code == 'red'", namespaceSelector: IN_EGW } },
    { destination: { cidr: '10.0.0.0/8' }, description: 'on prem', gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW } },
    { destination: { cidr: '10.1.0.0/16' }, description: 'local: no gateway' },
  ]);

  it('longest prefix between 0.0.0.0/0, 10.0.0.0/8 and 10.1.0.0/16', () => {
    const c = calcWith([lpm, namespace('app', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'lpm' }, nameLabel: false }), client()]);
    const st = c.nodeState('n1');
    assert.deepEqual(lookup(st, 'app/c1', '8.8.8.8'), RED_IPS);
    assert.deepEqual(lookup(st, 'app/c1', '10.2.3.4'), BLUE_IPS);
    assert.equal(lookup(st, 'app/c1', '10.1.2.3'), 'main');
    const routes = tableOf(st, 'app/c1')!;
    assert.deepEqual(routes.find((r) => r.dst === '10.1.0.0/16'), { dst: '10.1.0.0/16', type: 'throw' });
    const e = c.explain('app', 'c1', '10.1.2.3');
    assert.equal(e.rule?.destination, '10.1.0.0/16');
    assert.equal(e.rule?.index, 2);
    assert.equal(e.verdict, 'normal-routing');
    assert.match(e.kernel.route!, /^ip route replace throw 10\.1\.0\.0\/16 table \d+$/);
    const e2 = c.explain('app', 'c1', '10.9.9.9');
    assert.equal(e2.rule?.description, 'on prem');
    assert.deepEqual(e2.hops, BLUE_IPS);
    assert.equal(e2.candidates.length, 1);
    assert.ok(e2.candidates[0].chosen);
  });

  it('a destination no rule covers is routed normally (no route in the table)', () => {
    const c = calcWith([
      policy('onprem', [{ destination: { cidr: '10.0.0.0/8' }, gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW } }]),
      namespace('app', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'onprem' }, nameLabel: false }),
      client(),
    ]);
    const st = c.nodeState('n1');
    assert.deepEqual(lookup(st, 'app/c1', '10.2.3.4'), BLUE_IPS);
    assert.equal(lookup(st, 'app/c1', '8.8.8.8'), 'main');
    assert.ok(!tableOf(st, 'app/c1')!.some((r) => r.dst === '0.0.0.0/0'));
    const e = c.explain('app', 'c1', '8.8.8.8');
    assert.equal(e.verdict, 'normal-routing');
    assert.equal(e.rule, undefined);
    assert.equal(e.kernel.route, null);
  });

  it('a policy of only gateway-less rules needs no rule at all', () => {
    const c = calcWith([policy('direct', [{ destination: { cidr: '10.0.0.0/8' } }]), namespace('app', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'direct' }, nameLabel: false }), client()]);
    assert.equal(tableOf(c.nodeState('n1'), 'app/c1'), null);
    assert.equal(c.explain('app', 'c1', '10.0.0.1').verdict, 'normal-routing');
  });

  it('a rule whose candidate set is empty is unreachable', () => {
    const c = calcWith([
      policy('p', [
        { gateway: { selector: "egress-code == 'green'", namespaceSelector: IN_EGW } },
        { destination: { cidr: '10.0.0.0/8' }, gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW } },
      ]),
      namespace('app', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p' }, nameLabel: false }),
      client(),
    ]);
    const st = c.nodeState('n1');
    assert.equal(lookup(st, 'app/c1', '8.8.8.8'), 'unreachable');
    assert.deepEqual(lookup(st, 'app/c1', '10.0.0.1'), BLUE_IPS);
    // the green gateway appears: reachable
    c.upsert(gatewayPod('egw', 'green-a', 'green', { ip: '10.10.10.7', node: 'n3', labels: { 'egress-code': 'green' } }));
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), ['10.10.10.7']);
  });

  it('destinations inside IP pools or node addresses throw in every table; rules inside them are dropped', () => {
    const c = calcWith([
      node('n4', { ip: '192.168.1.0' }),
      policy('p', [
        { gateway: { selector: "egress-code == 'red'", namespaceSelector: IN_EGW } },
        { destination: { cidr: '10.244.5.0/24' }, gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW } },
      ]),
      namespace('app', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p' }, nameLabel: false }),
      client(),
    ]);
    const st = c.nodeState('n1');
    assert.deepEqual(st.internalCidrs, ['10.10.10.0/24', '10.244.0.0/16', '169.254.0.0/16', '192.168.1.0/30']);
    for (const dst of ['10.244.5.5', '10.244.9.9', '192.168.1.2', '10.10.10.1']) assert.equal(lookup(st, 'app/c1', dst), 'main', dst);
    assert.deepEqual(lookup(st, 'app/c1', '192.168.1.4'), RED_IPS);
    const routes = tableOf(st, 'app/c1')!;
    assert.deepEqual(
      routes.map((r) => `${r.dst} ${r.type}`),
      ['0.0.0.0/0 ecmp', '10.10.10.0/24 throw', '10.244.0.0/16 throw', '169.254.0.0/16 throw', '192.168.1.0/30 throw'],
    );
    const e = c.explain('app', 'c1', '10.244.5.5');
    assert.equal(e.kind, 'internal');
    assert.equal(e.configKind, 'policy');
    assert.equal(e.internalCidr, '10.244.0.0/16');
    assert.equal(e.verdict, 'normal-routing');
    // a new pool becomes internal everywhere, table IDs unchanged
    const before = st.rules[0].table;
    c.upsert(ippool('more', '172.16.0.0/12'));
    const st2 = c.nodeState('n1');
    assert.equal(lookup(st2, 'app/c1', '172.20.0.1'), 'main');
    assert.equal(st2.rules[0].table, before);
    c.remove({ kind: 'IPPool', namespace: '', name: 'more' });
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '172.20.0.1'), RED_IPS);
  });
});

describe('calc: candidates, health, PreferNodeLocal, maxNextHops', () => {
  it('PreferNodeLocal uses the local gateway when there is one, all otherwise', () => {
    const c = calcWith([
      policy('local', [{ gateway: { selector: "egress-code == 'red'", namespaceSelector: IN_EGW }, gatewayPreference: 'PreferNodeLocal' }]),
      namespace('app', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'local' }, nameLabel: false }),
      client(),
      client(undefined, { name: 'c2', node: 'n2', ip: '10.244.2.10' }),
      client(undefined, { name: 'c3', node: 'n3', ip: '10.244.3.10' }),
    ]);
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), ['10.10.10.1']);
    assert.deepEqual(lookup(c.nodeState('n2'), 'app/c2', '8.8.8.8'), ['10.10.10.2']);
    assert.deepEqual(lookup(c.nodeState('n3'), 'app/c3', '8.8.8.8'), RED_IPS);
    // the local gateway fails: fall back to all
    c.setGatewayHealth('egw/red-a', { ready: false, reasons: ['icmp probe failed'] });
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), ['10.10.10.2']);
    const e = c.explain('app', 'c1', '8.8.8.8');
    const a = e.candidates.find((x) => x.pod === 'egw/red-a')!;
    assert.equal(a.ready, false);
    assert.equal(a.local, true);
    assert.ok(a.reasons.includes('icmp probe failed'));
  });

  it('maxNextHops 0 = all, 1 = one, more than available = all', () => {
    const gws = [0, 1, 2, 3].map((i) => gatewayPod('egw', `g-${i}`, 'g', { ip: `10.10.10.${100 + i}`, node: 'n3', labels: { pool: 'x' } }));
    const all = gws.map((_, i) => `10.10.10.${100 + i}`);
    for (const [hops, expectLen] of [
      ['0', 4],
      ['1', 1],
      ['2', 2],
      ['9', 4],
    ] as const) {
      const c = calcWith([...gws, namespace('app', { annotations: { [ANNOTATION.selector]: "pool == 'x'", [ANNOTATION.namespaceSelector]: IN_EGW, [ANNOTATION.maxNextHops]: hops }, nameLabel: false }), client()]);
      const via = lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8') as string[];
      assert.equal(via.length, expectLen, `maxNextHops ${hops}`);
      for (const v of via) assert.ok(all.includes(v));
      const e = c.explain('app', 'c1', '8.8.8.8');
      assert.deepEqual(e.hops, via);
      assert.equal(e.candidates.filter((x) => x.chosen).length, expectLen);
    }
  });

  it('policy maxNextHops picks the same subset as the equivalent annotation', () => {
    const gws = [0, 1, 2, 3, 4].map((i) => gatewayPod('egw', `g-${i}`, 'g', { ip: `10.10.10.${100 + i}`, node: 'n3', labels: { pool: 'x' } }));
    const a = calcWith([...gws, namespace('app', { annotations: { [ANNOTATION.selector]: "pool == 'x'", [ANNOTATION.namespaceSelector]: IN_EGW, [ANNOTATION.maxNextHops]: '2' }, nameLabel: false }), client()]);
    const b = calcWith([...gws, policy('two', [{ gateway: { selector: "pool == 'x'", namespaceSelector: IN_EGW, maxNextHops: 2 } }]), namespace('app', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'two' }, nameLabel: false }), client()]);
    assert.deepEqual(lookup(a.nodeState('n1'), 'app/c1', '8.8.8.8'), lookup(b.nodeState('n1'), 'app/c1', '8.8.8.8'));
  });

  it('not-ready gateways are excluded (pod condition or reported health); all not ready = unreachable', () => {
    const c = calcWith([namespace('app', { annotations: RED, nameLabel: false }), client(), gatewayPod('egw', 'red-c', 'red', { ip: '10.10.10.4', node: 'n3', labels: { 'egress-code': 'red' }, ready: false })]);
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), RED_IPS);
    c.setGatewayHealth('egw/red-b', { ready: false });
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), ['10.10.10.1']);
    c.setGatewayHealth('egw/red-a', { ready: false });
    assert.equal(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), 'unreachable');
    assert.deepEqual(c.nodeState('n1').gateways, []);
    c.setGatewayHealth('egw/red-c', { ready: true });
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), ['10.10.10.4']);
    c.setGatewayHealth('egw/red-a', null);
    c.setGatewayHealth('egw/red-b', null);
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), [...RED_IPS, '10.10.10.4']);
  });

  it('a gateway pod is eligible only when Running with Ready=True (as Endpoints count it); a health report overrides the Pod', () => {
    const red = { 'egress-code': 'red' };
    const c = calcWith([
      namespace('app', { annotations: RED, nameLabel: false }),
      client(),
      gatewayPod('egw', 'red-none', 'red', { ip: '10.10.10.4', node: 'n3', labels: red, ready: null }),
      gatewayPod('egw', 'red-pending', 'red', { ip: '10.10.10.5', node: 'n3', labels: red, phase: 'Pending', ready: true }),
      gatewayPod('egw', 'red-unknown', 'red', { ip: '10.10.10.6', node: 'n3', labels: red, ready: 'Unknown' }),
    ]);
    // red-a and red-b (world()) are Running with Ready=True
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), RED_IPS);
    const why = new Map(c.explain('app', 'c1', '8.8.8.8').candidates.map((x) => [x.pod, [x.eligible, ...x.reasons]]));
    assert.deepEqual(why.get('egw/red-a'), [true]);
    assert.deepEqual(why.get('egw/red-none'), [false, 'not ready', 'pod has no Ready condition']);
    assert.deepEqual(why.get('egw/red-pending'), [false, 'not ready', 'pod phase is Pending, not Running']);
    assert.deepEqual(why.get('egw/red-unknown'), [false, 'not ready', 'pod Ready condition is Unknown']);
    // the gateway's health as reported (agent heartbeats) wins over the Pod object, both ways
    c.setGatewayHealth('egw/red-none', { ready: true });
    c.setGatewayHealth('egw/red-a', { ready: false });
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), ['10.10.10.2', '10.10.10.4']);
    c.setGatewayHealth('egw/red-none', null);
    c.setGatewayHealth('egw/red-a', null);
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), RED_IPS);
    // and the Pod becoming ready is enough
    c.upsert(gatewayPod('egw', 'red-pending', 'red', { ip: '10.10.10.5', node: 'n3', labels: red, phase: 'Running', ready: true }));
    assert.deepEqual(lookup(c.nodeState('n1'), 'app/c1', '8.8.8.8'), [...RED_IPS, '10.10.10.5']);
  });

  it('draining gateways get no new clients but stay in the gateway list for the clients that use them', () => {
    const c = calcWith([namespace('app', { annotations: RED, nameLabel: false }), client()]);
    c.setGatewayHealth('egw/red-b', { ready: true, draining: true });
    const st = c.nodeState('n1');
    assert.deepEqual(lookup(st, 'app/c1', '8.8.8.8'), ['10.10.10.1']);
    assert.deepEqual(
      st.gateways.map((g) => [g.ip, g.ready, g.draining]),
      [
        ['10.10.10.1', true, false],
        ['10.10.10.2', true, true],
      ],
    );
    const e = c.explain('app', 'c1', '8.8.8.8');
    assert.ok(e.candidates.find((x) => x.ip === '10.10.10.2')!.keptForExisting);
    // a deletionTimestamp on the gateway pod means draining too
    c.setGatewayHealth('egw/red-b', null);
    c.upsert(gatewayPod('egw', 'red-a', 'red', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'red' }, deleting: true }));
    const st2 = c.nodeState('n1');
    assert.deepEqual(lookup(st2, 'app/c1', '8.8.8.8'), ['10.10.10.2']);
    assert.deepEqual(st2.gateways.map((g) => [g.ip, g.draining]), [
      ['10.10.10.1', true],
      ['10.10.10.2', false],
    ]);
    // once the drained pod is gone, so is its entry
    c.remove({ kind: 'Pod', namespace: 'egw', name: 'red-a' });
    assert.deepEqual(c.nodeState('n1').gateways.map((g) => g.ip), ['10.10.10.2']);
  });

  it('with maxNextHops, a draining gateway is kept only by clients that had it', () => {
    const gws = [0, 1, 2, 3, 4, 5].map((i) => gatewayPod('egw', `g-${i}`, 'g', { ip: `10.10.10.${100 + i}`, node: 'n3', labels: { pool: 'x' } }));
    const clients = Array.from({ length: 40 }, (_, i) => client(undefined, { name: `c${i}`, ip: `10.244.1.${i + 1}` }));
    const c = calcWith([...gws, namespace('app', { annotations: { [ANNOTATION.selector]: "pool == 'x'", [ANNOTATION.namespaceSelector]: IN_EGW, [ANNOTATION.maxNextHops]: '1' }, nameLabel: false }), ...clients]);
    const before = c.nodeState('n1');
    const users = before.rules.filter((r) => (lookup(before, r.pod, '8.8.8.8') as string[])[0] === '10.10.10.100').map((r) => r.pod);
    assert.ok(users.length > 0);
    c.setGatewayHealth('egw/g-0', { ready: true, draining: true });
    const after = c.nodeState('n1');
    for (const r of after.rules) {
      const via = lookup(after, r.pod, '8.8.8.8') as string[];
      assert.notEqual(via[0], '10.10.10.100');
      if (!users.includes(r.pod)) assert.deepEqual(via, lookup(before, r.pod, '8.8.8.8'), 'clients not on the draining gateway keep their hop');
    }
    assert.ok(after.gateways.some((g) => g.ip === '10.10.10.100' && g.draining));
    // Even with only non-users on this node it stays listed (no route uses it): connections pinned to it by
    // conntrack marks keep their tunnel path until its drain window ends.
    const d = calcWith([...gws, namespace('app', { annotations: { [ANNOTATION.selector]: "pool == 'x'", [ANNOTATION.namespaceSelector]: IN_EGW, [ANNOTATION.maxNextHops]: '1' }, nameLabel: false }), ...clients.filter((_, i) => !users.includes(`app/c${i}`))]);
    d.setGatewayHealth('egw/g-0', { ready: true, draining: true });
    const ds = d.nodeState('n1');
    assert.ok(ds.gateways.some((g) => g.ip === '10.10.10.100' && g.draining));
    assert.ok(ds.tables.every((t) => t.routes.every((r) => r.type !== 'ecmp' || !r.via.includes('10.10.10.100'))), 'no route uses it');
  });

  it('every ready candidate stays in the gateway list, also those no client route uses now', () => {
    const gws = [0, 1, 2, 3, 4].map((i) => gatewayPod('egw', `g-${i}`, 'g', { ip: `10.10.10.${100 + i}`, node: 'n3', labels: { pool: 'x' } }));
    const c = calcWith([...gws, namespace('app', { annotations: { [ANNOTATION.selector]: "pool == 'x'", [ANNOTATION.namespaceSelector]: IN_EGW, [ANNOTATION.maxNextHops]: '1' }, nameLabel: false }), client()]);
    const st = c.nodeState('n1');
    const used = new Set(st.tables.flatMap((t) => t.routes.flatMap((r) => (r.type === 'ecmp' ? r.via : []))));
    assert.equal(used.size, 1, 'maxNextHops 1: one hop in the route');
    assert.deepEqual(st.gateways.map((g) => g.ip), [0, 1, 2, 3, 4].map((i) => `10.10.10.${100 + i}`), 'all five listed (pinned connections keep their path)');
    c.setGatewayHealth('egw/g-4', { ready: false, reasons: ['down'] });
    assert.ok(!c.nodeState('n1').gateways.some((g) => g.ip === '10.10.10.104'), 'a not-ready gateway is dropped');
    c.remove({ kind: 'Pod', namespace: 'app', name: 'c1' });
    assert.deepEqual(c.nodeState('n1').gateways, [], 'no clients, no gateways');
  });

  it('a namespace label change that adds or removes an unused candidate updates the gateway list (incremental = fresh)', () => {
    // Two clients limited to one hop, both on red-a: a gateway joining or leaving their entry through its namespace's
    // labels changes no route and no table, only the list (it used to stay stale until something else changed).
    const extra = [
      namespace('egw2', { nameLabel: false }),
      gatewayPod('egw2', 'red-z', 'red', { ip: '10.10.10.20', node: 'n3', labels: { 'egress-code': 'red' } }),
      gatewayPod('egw', 'red-b', 'red', { ip: '10.10.10.2', node: 'n2', labels: { 'egress-code': 'blue-ish' } }), // leaves red-a alone
      namespace('app', { annotations: { [ANNOTATION.selector]: "egress-code == 'red'", [ANNOTATION.namespaceSelector]: "tier == 'gateways'", [ANNOTATION.maxNextHops]: '1' }, nameLabel: false }),
      client(undefined, { name: 'a0', ip: '10.244.1.1' }),
      client(undefined, { name: 'b0', ip: '10.244.1.2' }),
    ];
    const c = calcWith(extra);
    const ips = (st: NodeEgressState) => st.gateways.map((g) => g.ip);
    assert.deepEqual(ips(c.nodeState('n1')), ['10.10.10.1']);
    c.upsert(namespace('egw2', { labels: { tier: 'gateways' }, nameLabel: false }));
    const st = c.nodeState('n1');
    for (const p of ['app/a0', 'app/b0']) assert.deepEqual(lookup(st, p, '8.8.8.8'), ['10.10.10.1'], `${p} keeps red-a (precondition)`);
    assert.deepEqual(ips(st), ['10.10.10.1', '10.10.10.20']);
    assert.deepEqual(st, calcWith([...extra, namespace('egw2', { labels: { tier: 'gateways' }, nameLabel: false })]).nodeState('n1'));
    c.upsert(namespace('egw2', { nameLabel: false }));
    assert.deepEqual(ips(c.nodeState('n1')), ['10.10.10.1']);
  });
});

describe('calc: output shape, shared tables, stable IDs', () => {
  it('vxlan settings, rule priority and gateway MACs', () => {
    const c = new EgressCalculator({ underlayMtu: 9000 }).load([
      ...world(),
      felixConfiguration({ egressIPSupport: 'EnabledPerNamespace', egressIPVXLANVNI: 5000, egressIPVXLANPort: 4800, egressIPRoutingRulePriority: 150 }),
      namespace('app', { annotations: RED, nameLabel: false }),
      client(),
    ]);
    const st = c.nodeState('n1');
    assert.deepEqual(st.vxlan, { device: 'egw.vxlan', vni: 5000, port: 4800, mtu: 8950, local: '192.168.1.1' });
    assert.equal(st.rulePriority, 150);
    assert.equal(new EgressCalculator().nodeState('x').vxlan.mtu, 1450);
    assert.deepEqual(st.gateways[0], { ip: '10.10.10.1', mac: 'a2:2a:0a:0a:0a:01', pod: 'egw/red-a', node: 'n1', ready: true, draining: false });
    assert.equal(st.rules[0].src, '10.244.1.10/32');
    assert.ok(st.tables[0].id >= 1000 && st.tables[0].id < 1000 + 2 ** 20);
    // JSON round trip: plain data
    assert.deepEqual(JSON.parse(JSON.stringify(st)), st);
  });

  it('clients with identical routes share one table', () => {
    const clients = Array.from({ length: 300 }, (_, i) => client(undefined, { name: `c${i}`, ip: `10.244.${1 + (i >> 8)}.${i & 255}` }));
    const c = calcWith([namespace('app', { annotations: RED, nameLabel: false }), namespace('b', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, nameLabel: false }), ...clients, client(undefined, { ns: 'b', name: 'x', ip: '10.244.9.9' }), client(undefined, { ns: 'b', name: 'y', ip: '10.244.9.10' })]);
    const st = c.nodeState('n1');
    assert.equal(st.rules.length, 302);
    assert.equal(st.tables.length, 2);
    // sorted by source address
    const srcs = st.rules.map((r) => r.src.split('/')[0].split('.').reduce((a, o) => a * 256 + Number(o), 0));
    assert.deepEqual(srcs, [...srcs].sort((a, b) => a - b));
  });

  it('table IDs are unchanged by unrelated changes and identical in a fresh calculator', () => {
    const base = [
      ...world(),
      namespace('app', { annotations: RED, nameLabel: false }),
      namespace('b', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-blue' }, nameLabel: false }),
      client(),
      client(undefined, { ns: 'b', name: 'x', ip: '10.244.9.9' }),
    ];
    const c = new EgressCalculator().load(base);
    const ids = (st: ReturnType<EgressCalculator['nodeState']>) => Object.fromEntries(st.rules.map((r) => [r.pod, r.table]));
    const first = ids(c.nodeState('n1'));
    c.upsert(namespace('zzz', { labels: { a: 'b' }, nameLabel: false }));
    c.upsert(client(BLUE, { ns: 'zzz', name: 'z', ip: '10.244.8.8' }));
    c.upsert(gatewayPod('egw', 'green-a', 'green', { ip: '10.10.10.7', node: 'n3', labels: { 'egress-code': 'green' } }));
    c.upsert(policy('unused', [{ gateway: { selector: 'all()' } }]));
    const second = ids(c.nodeState('n1'));
    assert.equal(second['app/c1'], first['app/c1']);
    assert.equal(second['b/x'], first['b/x']);
    // a fresh calculator fed the same resources in another order computes the same state
    const fresh = new EgressCalculator().load([...base].reverse().concat([
      namespace('zzz', { labels: { a: 'b' }, nameLabel: false }),
      client(BLUE, { ns: 'zzz', name: 'z', ip: '10.244.8.8' }),
      gatewayPod('egw', 'green-a', 'green', { ip: '10.10.10.7', node: 'n3', labels: { 'egress-code': 'green' } }),
      policy('unused', [{ gateway: { selector: 'all()' } }]),
    ]));
    assert.deepEqual(fresh.nodeState('n1'), c.nodeState('n1'));
  });

  it('nodeState is cached while nothing relevant changes', () => {
    const c = calcWith([namespace('app', { annotations: RED, nameLabel: false }), client()]);
    const a = c.nodeState('n1');
    assert.equal(c.nodeState('n1'), a);
    c.upsert(client(undefined, { name: 'elsewhere', node: 'n2', ip: '10.244.2.2' }));
    assert.equal(c.nodeState('n1'), a);
    c.upsert(client(undefined, { name: 'c2', ip: '10.244.1.11' }));
    assert.notEqual(c.nodeState('n1'), a);
  });
});
