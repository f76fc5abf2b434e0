// EgressCalculator.gatewayClients: which client IPs a gateway pod lets through its tunnel (the gateway's anti-spoofing
// set). It must contain every client that could ever be routed to the gateway, and nothing else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Resource } from '../../src/api/meta.js';
import type { EgressIPSupport } from '../../src/api/types.js';
import { EgressCalculator } from '../../src/calc/index.js';
import { felix, gw, MAXHOPS, namespace, node, NSSEL, pod, POLICY, policy, pool, SEL } from './helpers.js';

const IN_EGW = "projectcalico.org/name == 'egw'";
const RED = { [SEL]: "egress-code == 'red'", [NSSEL]: IN_EGW };
const BLUE = { [SEL]: "egress-code == 'blue'", [NSSEL]: IN_EGW };

function world(support: EgressIPSupport = 'EnabledPerNamespaceOrPerPod'): Resource[] {
  return [
    felix(support),
    pool('pods', '10.244.0.0/16'),
    pool('egress', '10.10.10.0/24'),
    node('n1', '192.168.1.1'),
    node('n2', '192.168.1.2'),
    namespace('egw', { labels: { tier: 'gateways' } }),
    gw('egw', 'red-a', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'red' } }),
    gw('egw', 'red-b', { ip: '10.10.10.2', node: 'n2', labels: { 'egress-code': 'red' }, ready: false }),
    gw('egw', 'blue-a', { ip: '10.10.10.3', node: 'n2', labels: { 'egress-code': 'blue' } }),
    // a tenant's own gateway, in the tenant's namespace, with the same label as the shared red ones
    gw('tenant-a', 'own-a', { ip: '10.10.10.4', node: 'n1', labels: { 'egress-code': 'red' } }),
    policy('p-red', [{ gateway: { selector: "egress-code == 'red'", namespaceSelector: IN_EGW } }]),
    policy('p-split', [
      { gateway: { selector: "egress-code == 'red'", namespaceSelector: IN_EGW, maxNextHops: 1 } },
      { destination: { cidr: '8.8.8.0/24' }, gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW }, gatewayPreference: 'PreferNodeLocal' },
      { destination: { cidr: '1.1.1.0/24' } },
    ]),
    // a rule without namespaceSelector: gateways in the client's own namespace
    policy('p-own', [{ gateway: { selector: "egress-code == 'red'" } }]),
    policy('p-none', [{ destination: { cidr: '1.1.1.0/24' } }]),
  ];
}

function calc(extra: Resource[], support?: EgressIPSupport): EgressCalculator {
  return new EgressCalculator().load([...world(support), ...extra]);
}

function client(ns: string, name: string, ip: string, annotations?: Record<string, string>, node = 'n1'): Resource {
  return pod(ns, name, { ip, node, annotations });
}

describe('calc: gatewayClients', () => {
  it('selector configuration: the clients whose 0/0 rule selects the gateway', () => {
    const c = calc([
      namespace('tenant-a', { annotations: RED }),
      namespace('tenant-b', { annotations: BLUE }),
      client('tenant-a', 'a1', '10.244.1.10'),
      client('tenant-a', 'a2', '10.244.1.9', undefined, 'n2'),
      client('tenant-b', 'b1', '10.244.2.1'),
    ]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.9', '10.244.1.10'], 'numeric order, every node');
    assert.deepEqual(c.gatewayClients('egw/blue-a'), ['10.244.2.1']);
    assert.deepEqual(c.gatewayClients('tenant-a/own-a'), [], 'namespaceSelector picks only namespace egw');
  });

  it('regardless of health, maxNextHops and PreferNodeLocal', () => {
    const c = calc([namespace('tenant-a', { annotations: { ...RED, [MAXHOPS]: '1' } }), client('tenant-a', 'a1', '10.244.1.10'), client('tenant-a', 'a2', '10.244.1.11')]);
    // red-b is not ready and maxNextHops is 1: still allowed everywhere, so failover needs no gateway-side change
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
    assert.deepEqual(c.gatewayClients('egw/red-b'), ['10.244.1.10', '10.244.1.11']);
    c.setGatewayHealth('egw/red-a', { ready: false, draining: true });
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
  });

  it('policy configuration: any rule whose gateway selector matches', () => {
    const c = calc([
      namespace('tenant-a', { annotations: { [POLICY]: 'p-split' } }),
      namespace('tenant-b', { annotations: { [POLICY]: 'p-red' } }),
      namespace('tenant-c', { annotations: { [POLICY]: 'p-none' } }),
      client('tenant-a', 'a1', '10.244.1.10'),
      client('tenant-b', 'b1', '10.244.2.1'),
      client('tenant-c', 'c1', '10.244.3.1'),
    ]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.2.1']);
    assert.deepEqual(c.gatewayClients('egw/red-b'), ['10.244.1.10', '10.244.2.1']);
    assert.deepEqual(c.gatewayClients('egw/blue-a'), ['10.244.1.10'], 'the 8.8.8.0/24 rule of p-split');
    assert.deepEqual(c.gatewayClients('tenant-a/own-a'), []);
  });

  it('namespace scoping: a selector or rule without namespaceSelector matches only gateways in the client namespace', () => {
    const c = calc([
      namespace('tenant-a', { annotations: { [SEL]: "egress-code == 'red'" } }),
      namespace('tenant-b', { annotations: { [SEL]: "egress-code == 'red'" } }),
      namespace('tenant-c', { annotations: { [POLICY]: 'p-own' } }),
      client('tenant-a', 'a1', '10.244.1.10'),
      client('tenant-b', 'b1', '10.244.2.1'),
      client('tenant-c', 'c1', '10.244.3.1'),
      client('tenant-a', 'a2', '10.244.1.20', { [POLICY]: 'p-own' }),
    ]);
    assert.deepEqual(c.gatewayClients('tenant-a/own-a'), ['10.244.1.10', '10.244.1.20']);
    assert.deepEqual(c.gatewayClients('egw/red-a'), [], 'no tenant selects gateways of namespace egw');
  });

  it('Disabled: nobody', () => {
    const c = calc([namespace('tenant-a', { annotations: RED }), client('tenant-a', 'a1', '10.244.1.10', RED)], 'Disabled');
    assert.deepEqual(c.gatewayClients('egw/red-a'), []);
    c.upsert(felix('EnabledPerNamespace'));
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10']);
  });

  it('pod annotations count only with EnabledPerNamespaceOrPerPod', () => {
    const extra = [
      namespace('tenant-a', { annotations: RED }),
      namespace('tenant-b'),
      client('tenant-a', 'a1', '10.244.1.10', BLUE), // pod overrides the namespace when pod annotations count
      client('tenant-b', 'b1', '10.244.2.1', RED),
      client('tenant-b', 'b2', '10.244.2.2', { [POLICY]: 'p-red' }),
    ];
    const perNs = calc(extra, 'EnabledPerNamespace');
    assert.deepEqual(perNs.gatewayClients('egw/red-a'), ['10.244.1.10']);
    assert.deepEqual(perNs.gatewayClients('egw/blue-a'), []);
    const perPod = calc(extra, 'EnabledPerNamespaceOrPerPod');
    assert.deepEqual(perPod.gatewayClients('egw/red-a'), ['10.244.2.1', '10.244.2.2']);
    assert.deepEqual(perPod.gatewayClients('egw/blue-a'), ['10.244.1.10']);
  });

  it('fail-closed clients get nothing', () => {
    const c = calc([
      namespace('tenant-a', { annotations: { ...RED, [POLICY]: 'missing' } }),
      namespace('tenant-b', { annotations: RED }),
      client('tenant-a', 'a1', '10.244.1.10'),
      client('tenant-b', 'b1', '10.244.2.1', { ...RED, [POLICY]: 'missing' }),
      client('tenant-b', 'b2', '10.244.2.2', { [SEL]: "egress-code = 'red'" }), // invalid selector
      client('tenant-b', 'b3', '10.244.2.3', { ...RED, [MAXHOPS]: 'two' }), // invalid maxNextHops
      client('tenant-b', 'b4', '10.244.2.4'),
    ]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.2.4']);
    // the policy appears: the fail-closed clients get it
    c.upsert(policy('missing', [{ gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW } }]));
    assert.deepEqual(c.gatewayClients('egw/blue-a'), ['10.244.1.10', '10.244.2.1']);
  });

  it('excludes gateway pods, finished pods and unknown keys', () => {
    const c = calc([
      namespace('egw', { labels: { tier: 'gateways' }, annotations: RED }), // gateways' own namespace is annotated
      client('egw', 'app', '10.244.1.10'),
      pod('egw', 'done', { ip: '10.244.1.11', node: 'n1', phase: 'Succeeded' }),
    ]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10']);
    assert.deepEqual(c.gatewayClients('egw/app'), [], 'not a gateway pod');
    assert.deepEqual(c.gatewayClients('egw/nope'), []);
  });

  it('follows changes: annotations, labels, namespace labels, policies, removal', () => {
    const c = calc([namespace('tenant-a'), client('tenant-a', 'a1', '10.244.1.10'), client('tenant-a', 'a2', '10.244.1.11')]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), []);
    c.upsert(client('tenant-a', 'a2', '10.244.1.11', RED));
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.11']);
    c.upsert(namespace('tenant-a', { annotations: { [POLICY]: 'p-red' } }));
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
    c.upsert(gw('egw', 'red-a', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'green' } }));
    assert.deepEqual(c.gatewayClients('egw/red-a'), []);
    c.upsert(gw('egw', 'red-a', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'red' } }));
    c.upsert(namespace('egw', { labels: { 'projectcalico.org/name': 'other' } })); // cannot rename: the label is forced
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
    c.upsert(policy('p-red', [{ gateway: { selector: "egress-code == 'red'", namespaceSelector: "tier == 'gateways'" } }]));
    c.upsert(namespace('egw', { labels: { tier: 'other' } }));
    assert.deepEqual(c.gatewayClients('egw/red-a'), [], "the namespace's policy beats a2's pod selector; its namespaceSelector no longer matches");
    c.upsert(namespace('egw', { labels: { tier: 'gateways' } }));
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
    c.remove({ kind: 'Pod', namespace: 'tenant-a', name: 'a2' });
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10']);
    c.remove({ kind: 'EgressGatewayPolicy', namespace: '', name: 'p-red' });
    assert.deepEqual(c.gatewayClients('egw/red-a'), [], 'policy gone: fail closed');
  });

  it('soundness: every client routed via a gateway is among its allowed clients (random worlds)', () => {
    const sels = ["c == 'red'", "c == 'blue'", 'has(c)', 'all()'];
    const nsSels = [undefined, 'all()', "tier == 'gw'"];
    const arbAnn = fc.oneof(
      fc.constant(undefined),
      fc.record({ s: fc.constantFrom(...sels), n: fc.constantFrom(...nsSels), k: fc.constantFrom(undefined, '1', 'x') }).map(({ s, n, k }) => {
        const a: Record<string, string> = { [SEL]: s };
        if (n) a[NSSEL] = n;
        if (k) a[MAXHOPS] = k;
        return a;
      }),
      fc.constantFrom('p1', 'p2', 'missing').map((p) => ({ [POLICY]: p })),
    );
    const arbRule = fc.record({
      dst: fc.constantFrom(undefined, '8.8.8.0/24', '10.0.0.0/8'),
      s: fc.option(fc.constantFrom(...sels)),
      n: fc.constantFrom(...nsSels),
      k: fc.constantFrom(0, 1),
      pref: fc.constantFrom('None' as const, 'PreferNodeLocal' as const),
    });
    const arbWorld = fc.record({
      support: fc.constantFrom<EgressIPSupport>('Disabled', 'EnabledPerNamespace', 'EnabledPerNamespaceOrPerPod'),
      nsAnn: fc.array(arbAnn, { minLength: 3, maxLength: 3 }),
      nsTier: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      p1: fc.uniqueArray(arbRule, { minLength: 1, maxLength: 3, selector: (r) => r.dst ?? '' }),
      p2: fc.uniqueArray(arbRule, { minLength: 1, maxLength: 3, selector: (r) => r.dst ?? '' }),
      gws: fc.array(fc.record({ ns: fc.nat(2), c: fc.constantFrom(undefined, 'red', 'blue'), n: fc.constantFrom('n1', 'n2'), ready: fc.boolean() }), { minLength: 1, maxLength: 5 }),
      clients: fc.array(fc.record({ ns: fc.nat(2), ann: arbAnn, n: fc.constantFrom('n1', 'n2') }), { minLength: 1, maxLength: 8 }),
    });
    fc.assert(
      fc.property(arbWorld, (w) => {
        const NS = ['ns0', 'ns1', 'ns2'];
        const rs: Resource[] = [felix(w.support), pool('pods', '10.244.0.0/16'), node('n1', '192.168.1.1'), node('n2', '192.168.1.2')];
        NS.forEach((n, i) => rs.push(namespace(n, { labels: w.nsTier[i] ? { tier: 'gw' } : undefined, annotations: w.nsAnn[i] })));
        for (const [name, rules] of [
          ['p1', w.p1],
          ['p2', w.p2],
        ] as const) {
          rs.push(
            policy(
              name,
              rules.map((r) => ({
                destination: r.dst ? { cidr: r.dst } : undefined,
                gateway: r.s === null ? undefined : { selector: r.s, namespaceSelector: r.n, maxNextHops: r.k },
                gatewayPreference: r.pref,
              })),
            ),
          );
        }
        w.gws.forEach((g, i) => rs.push(gw(NS[g.ns], `gw-${i}`, { ip: `10.10.10.${i + 1}`, node: g.n, labels: g.c ? { c: g.c } : undefined, ready: g.ready })));
        w.clients.forEach((cl, i) => rs.push(pod(NS[cl.ns], `c${i}`, { ip: `10.244.1.${i + 1}`, node: cl.n, annotations: cl.ann })));
        const c = new EgressCalculator().load(rs);
        const allowed = new Map(w.gws.map((g, i) => [`10.10.10.${i + 1}`, new Set(c.gatewayClients(`${NS[g.ns]}/gw-${i}`))]));
        for (const n of ['n1', 'n2']) {
          const st = c.nodeState(n);
          for (const rule of st.rules) {
            const t = st.tables.find((x) => x.id === rule.table)!;
            const ip = rule.src.replace('/32', '');
            for (const rt of t.routes) {
              if (rt.type !== 'ecmp') continue;
              for (const via of rt.via) assert.ok(allowed.get(via)!.has(ip), `${rule.pod} (${ip}) routed via ${via} but not allowed there`);
            }
          }
        }
        // and nothing is allowed when egress is off
        if (w.support === 'Disabled') for (const s of allowed.values()) assert.equal(s.size, 0);
      }),
      { numRuns: 300 },
    );
  });
});
