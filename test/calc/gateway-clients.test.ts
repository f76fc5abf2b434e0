// EgressCalculator.gatewayClients: which client IPs a gateway pod lets through its tunnel (the gateway's anti-spoofing
// set). It must contain every client that could ever be routed to the gateway, and nothing else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIPv4, parseIPv4, parsePrefix } from '../../src/api/ipv4.js';
import { keyOf, keyString, type Resource } from '../../src/api/meta.js';
import { parseMaxNextHops } from '../../src/api/parse.js';
import { podIPv4 } from '../../src/api/pod.js';
import { ANNOTATION, FELIX_DEFAULTS, type EgressGatewayPolicy, type EgressGatewayRule, type EgressIPSupport, type Pod } from '../../src/api/types.js';
import { EgressCalculator, type GatewayHealth } from '../../src/calc/index.js';
import { parseSelector } from '../../src/selector/index.js';
import { felixConfiguration, gatewayPod, ippool, namespace, node, pod, policy } from '../helpers/resources.js';

const IN_EGW = "projectcalico.org/name == 'egw'";
const RED = { [ANNOTATION.selector]: "egress-code == 'red'", [ANNOTATION.namespaceSelector]: IN_EGW };
const BLUE = { [ANNOTATION.selector]: "egress-code == 'blue'", [ANNOTATION.namespaceSelector]: IN_EGW };

function world(support: EgressIPSupport = 'EnabledPerNamespaceOrPerPod'): Resource[] {
  return [
    felixConfiguration({ egressIPSupport: support }),
    ippool('pods', '10.244.0.0/16'),
    ippool('egress', '10.10.10.0/24'),
    node('n1', { ip: '192.168.1.1' }),
    node('n2', { ip: '192.168.1.2' }),
    namespace('egw', { labels: { tier: 'gateways' }, nameLabel: false }),
    gatewayPod('egw', 'red-a', 'red', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'red' } }),
    gatewayPod('egw', 'red-b', 'red', { ip: '10.10.10.2', node: 'n2', labels: { 'egress-code': 'red' }, ready: false }),
    gatewayPod('egw', 'blue-a', 'blue', { ip: '10.10.10.3', node: 'n2', labels: { 'egress-code': 'blue' } }),
    // a tenant's own gateway, in the tenant's namespace, with the same label as the shared red ones
    gatewayPod('tenant-a', 'own-a', 'own', { ip: '10.10.10.4', node: 'n1', labels: { 'egress-code': 'red' } }),
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
  return pod(ns, name, { ip, node, annotations, ready: null });
}

describe('calc: gatewayClients', () => {
  it('selector configuration: the clients whose 0/0 rule selects the gateway', () => {
    const c = calc([
      namespace('tenant-a', { annotations: RED, nameLabel: false }),
      namespace('tenant-b', { annotations: BLUE, nameLabel: false }),
      client('tenant-a', 'a1', '10.244.1.10'),
      client('tenant-a', 'a2', '10.244.1.9', undefined, 'n2'),
      client('tenant-b', 'b1', '10.244.2.1'),
    ]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.9', '10.244.1.10'], 'numeric order, every node');
    assert.deepEqual(c.gatewayClients('egw/blue-a'), ['10.244.2.1']);
    assert.deepEqual(c.gatewayClients('tenant-a/own-a'), [], 'namespaceSelector picks only namespace egw');
  });

  it('regardless of health, maxNextHops and PreferNodeLocal', () => {
    const c = calc([namespace('tenant-a', { annotations: { ...RED, [ANNOTATION.maxNextHops]: '1' }, nameLabel: false }), client('tenant-a', 'a1', '10.244.1.10'), client('tenant-a', 'a2', '10.244.1.11')]);
    // red-b is not ready and maxNextHops is 1: still allowed everywhere, so failover needs no gateway-side change
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
    assert.deepEqual(c.gatewayClients('egw/red-b'), ['10.244.1.10', '10.244.1.11']);
    c.setGatewayHealth('egw/red-a', { ready: false, draining: true });
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
  });

  it('policy configuration: any rule whose gateway selector matches', () => {
    const c = calc([
      namespace('tenant-a', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-split' }, nameLabel: false }),
      namespace('tenant-b', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-red' }, nameLabel: false }),
      namespace('tenant-c', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-none' }, nameLabel: false }),
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
      namespace('tenant-a', { annotations: { [ANNOTATION.selector]: "egress-code == 'red'" }, nameLabel: false }),
      namespace('tenant-b', { annotations: { [ANNOTATION.selector]: "egress-code == 'red'" }, nameLabel: false }),
      namespace('tenant-c', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-own' }, nameLabel: false }),
      client('tenant-a', 'a1', '10.244.1.10'),
      client('tenant-b', 'b1', '10.244.2.1'),
      client('tenant-c', 'c1', '10.244.3.1'),
      client('tenant-a', 'a2', '10.244.1.20', { [ANNOTATION.egressGatewayPolicy]: 'p-own' }),
    ]);
    assert.deepEqual(c.gatewayClients('tenant-a/own-a'), ['10.244.1.10', '10.244.1.20']);
    assert.deepEqual(c.gatewayClients('egw/red-a'), [], 'no tenant selects gateways of namespace egw');
  });

  it('Disabled: nobody', () => {
    const c = calc([namespace('tenant-a', { annotations: RED, nameLabel: false }), client('tenant-a', 'a1', '10.244.1.10', RED)], 'Disabled');
    assert.deepEqual(c.gatewayClients('egw/red-a'), []);
    c.upsert(felixConfiguration({ egressIPSupport: 'EnabledPerNamespace' }));
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10']);
  });

  it('pod annotations count only with EnabledPerNamespaceOrPerPod', () => {
    const extra = [
      namespace('tenant-a', { annotations: RED, nameLabel: false }),
      namespace('tenant-b', { nameLabel: false }),
      client('tenant-a', 'a1', '10.244.1.10', BLUE), // pod overrides the namespace when pod annotations count
      client('tenant-b', 'b1', '10.244.2.1', RED),
      client('tenant-b', 'b2', '10.244.2.2', { [ANNOTATION.egressGatewayPolicy]: 'p-red' }),
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
      namespace('tenant-a', { annotations: { ...RED, [ANNOTATION.egressGatewayPolicy]: 'missing' }, nameLabel: false }),
      namespace('tenant-b', { annotations: RED, nameLabel: false }),
      client('tenant-a', 'a1', '10.244.1.10'),
      client('tenant-b', 'b1', '10.244.2.1', { ...RED, [ANNOTATION.egressGatewayPolicy]: 'missing' }),
      client('tenant-b', 'b2', '10.244.2.2', { [ANNOTATION.selector]: "egress-code = 'red'" }), // invalid selector
      client('tenant-b', 'b3', '10.244.2.3', { ...RED, [ANNOTATION.maxNextHops]: 'two' }), // invalid maxNextHops
      client('tenant-b', 'b4', '10.244.2.4'),
    ]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.2.4']);
    // the policy appears: the fail-closed clients get it
    c.upsert(policy('missing', [{ gateway: { selector: "egress-code == 'blue'", namespaceSelector: IN_EGW } }]));
    assert.deepEqual(c.gatewayClients('egw/blue-a'), ['10.244.1.10', '10.244.2.1']);
  });

  it('excludes gateway pods, finished pods and unknown keys', () => {
    const c = calc([
      namespace('egw', { labels: { tier: 'gateways' }, annotations: RED, nameLabel: false }), // gateways' own namespace is annotated
      client('egw', 'app', '10.244.1.10'),
      pod('egw', 'done', { ip: '10.244.1.11', node: 'n1', phase: 'Succeeded', ready: null }),
    ]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10']);
    assert.deepEqual(c.gatewayClients('egw/app'), [], 'not a gateway pod');
    assert.deepEqual(c.gatewayClients('egw/nope'), []);
  });

  it('follows changes: annotations, labels, namespace labels, policies, removal', () => {
    const c = calc([namespace('tenant-a', { nameLabel: false }), client('tenant-a', 'a1', '10.244.1.10'), client('tenant-a', 'a2', '10.244.1.11')]);
    assert.deepEqual(c.gatewayClients('egw/red-a'), []);
    c.upsert(client('tenant-a', 'a2', '10.244.1.11', RED));
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.11']);
    c.upsert(namespace('tenant-a', { annotations: { [ANNOTATION.egressGatewayPolicy]: 'p-red' }, nameLabel: false }));
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
    c.upsert(gatewayPod('egw', 'red-a', 'red', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'green' } }));
    assert.deepEqual(c.gatewayClients('egw/red-a'), []);
    c.upsert(gatewayPod('egw', 'red-a', 'red', { ip: '10.10.10.1', node: 'n1', labels: { 'egress-code': 'red' } }));
    c.upsert(namespace('egw', { labels: { 'projectcalico.org/name': 'other' }, nameLabel: false })); // cannot rename: the label is forced
    assert.deepEqual(c.gatewayClients('egw/red-a'), ['10.244.1.10', '10.244.1.11']);
    c.upsert(policy('p-red', [{ gateway: { selector: "egress-code == 'red'", namespaceSelector: "tier == 'gateways'" } }]));
    c.upsert(namespace('egw', { labels: { tier: 'other' }, nameLabel: false }));
    assert.deepEqual(c.gatewayClients('egw/red-a'), [], "the namespace's policy beats a2's pod selector; its namespaceSelector no longer matches");
    c.upsert(namespace('egw', { labels: { tier: 'gateways' }, nameLabel: false }));
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
        const a: Record<string, string> = { [ANNOTATION.selector]: s };
        if (n) a[ANNOTATION.namespaceSelector] = n;
        if (k) a[ANNOTATION.maxNextHops] = k;
        return a;
      }),
      fc.constantFrom('p1', 'p2', 'missing').map((p) => ({ [ANNOTATION.egressGatewayPolicy]: p })),
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
        const rs: Resource[] = [felixConfiguration({ egressIPSupport: w.support }), ippool('pods', '10.244.0.0/16'), node('n1', { ip: '192.168.1.1' }), node('n2', { ip: '192.168.1.2' })];
        NS.forEach((n, i) => rs.push(namespace(n, { labels: w.nsTier[i] ? { tier: 'gw' } : undefined, annotations: w.nsAnn[i], nameLabel: false })));
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
        w.gws.forEach((g, i) => rs.push(gatewayPod(NS[g.ns], `gw-${i}`, 'gw', { ip: `10.10.10.${i + 1}`, node: g.n, labels: g.c ? { c: g.c } : {}, ready: g.ready })));
        w.clients.forEach((cl, i) => rs.push(pod(NS[cl.ns], `c${i}`, { ip: `10.244.1.${i + 1}`, node: cl.n, annotations: cl.ann, ready: null })));
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

  it('equals a brute-force reference (every client re-resolved from the resources) after random changes', () => {
    const NS = ['ns0', 'ns1', 'egw'];
    const sels = ["c == 'red'", "c == 'blue'", 'has(c)', 'all()', "c = 'bad'", ' ', ''];
    const nsSels = [undefined, 'all()', "tier == 'gw'", "projectcalico.org/name == 'egw'", '', 'bad =='];
    const arbAnn = fc.oneof(
      fc.constant(undefined),
      fc.record({ s: fc.constantFrom(...sels), n: fc.constantFrom(...nsSels), k: fc.constantFrom(undefined, '1', 'x', '1234567890', ' 2 ') }).map(({ s, n, k }) => {
        const a: Record<string, string> = { [ANNOTATION.selector]: s };
        if (n !== undefined) a[ANNOTATION.namespaceSelector] = n;
        if (k) a[ANNOTATION.maxNextHops] = k;
        return a;
      }),
      fc.record({ p: fc.constantFrom('p1', 'p2', 'missing', ' p1 '), s: fc.option(fc.constantFrom(...sels)) }).map(({ p, s }) => ({ [ANNOTATION.egressGatewayPolicy]: p, ...(s === null ? {} : { [ANNOTATION.selector]: s }) })),
      fc.constant({ [ANNOTATION.namespaceSelector]: 'all()' }),
    );
    const arbRule: fc.Arbitrary<EgressGatewayRule> = fc
      .record({
        // 10.244.0.0/16 is the pod pool: a rule inside it is internal (routes nothing) but still allows its clients
        dst: fc.constantFrom(undefined, '8.8.8.0/24', '10.0.0.0/8', '10.244.1.0/24'),
        s: fc.option(fc.constantFrom(...sels)),
        n: fc.constantFrom(...nsSels),
        k: fc.constantFrom(0, 1),
      })
      .map(({ dst, s, n, k }) => ({ destination: dst ? { cidr: dst } : undefined, gateway: s === null ? undefined : { selector: s, namespaceSelector: n, maxNextHops: k } }));
    const arbResource: fc.Arbitrary<Resource> = fc.oneof(
      fc.constantFrom<EgressIPSupport>('Disabled', 'EnabledPerNamespace', 'EnabledPerNamespaceOrPerPod', 'EnabledPerNamespaceOrPerPod').map((x) => felixConfiguration({ egressIPSupport: x })),
      fc.record({ n: fc.constantFrom(...NS), tier: fc.boolean(), ann: arbAnn }).map(({ n, tier, ann }) => namespace(n, { labels: tier ? { tier: 'gw' } : undefined, annotations: ann, nameLabel: false })),
      fc.record({ name: fc.constantFrom('p1', 'p2'), rules: fc.uniqueArray(arbRule, { minLength: 1, maxLength: 3, selector: (r) => r.destination?.cidr ?? '' }) }).map(({ name, rules }) => policy(name, rules)),
      fc.record({ ns: fc.constantFrom(...NS), i: fc.nat(3), c: fc.constantFrom(undefined, 'red', 'blue'), ready: fc.boolean(), phase: fc.constantFrom('Running' as const, 'Succeeded' as const), noip: fc.boolean() })
        .map(({ ns, i, c, ready, phase, noip }) => gatewayPod(ns, `gw-${i}`, 'gw', { ip: noip ? undefined : `10.10.10.${i + 1}`, node: 'n1', labels: c ? { c } : {}, ready, phase })),
      fc.record({ ns: fc.constantFrom(...NS), i: fc.nat(5), ann: arbAnn, n: fc.constantFrom('n1', 'n2', undefined), ip: fc.nat(7), phase: fc.constantFrom('Running' as const, 'Running' as const, 'Failed' as const) })
        .map(({ ns, i, ann, n, ip, phase }) => pod(ns, i === 5 ? 'gw-0' : `c${i}`, { ip: ip === 7 ? undefined : `10.244.1.${ip + 1}`, node: n, annotations: ann, phase, ready: null })),
    );
    type Op = { op: 'upsert'; r: Resource } | { op: 'remove'; pick: number } | { op: 'health'; key: string; h: GatewayHealth | null } | { op: 'check' } | { op: 'state'; n: string };
    const arbOp: fc.Arbitrary<Op> = fc.oneof(
      { weight: 8, arbitrary: arbResource.map((r) => ({ op: 'upsert' as const, r })) },
      { weight: 2, arbitrary: fc.nat().map((pick) => ({ op: 'remove' as const, pick })) },
      { weight: 1, arbitrary: fc.record({ key: fc.constantFrom('egw/gw-0', 'ns0/gw-1'), h: fc.option(fc.record({ ready: fc.boolean() }), { nil: null }) }).map(({ key, h }) => ({ op: 'health' as const, key, h })) },
      { weight: 2, arbitrary: fc.constant({ op: 'check' as const }) },
      { weight: 1, arbitrary: fc.constantFrom('n1', 'n2').map((n) => ({ op: 'state' as const, n })) },
    );
    const base: Resource[] = [felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }), ippool('pods', '10.244.0.0/16'), node('n1', { ip: '192.168.1.1' }), namespace('egw', { labels: { tier: 'gw' }, nameLabel: false })];
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 60 }), (ops) => {
        const c = new EgressCalculator();
        const live = new Map<string, Resource>();
        const upsert = (r: Resource) => {
          live.set(keyString(keyOf(r)), r);
          c.upsert(r);
        };
        const check = () => {
          for (const ns of NS) for (let i = 0; i < 4; i++) assert.deepEqual(c.gatewayClients(`${ns}/gw-${i}`), referenceGatewayClients([...live.values()], `${ns}/gw-${i}`), `${ns}/gw-${i}`);
        };
        base.forEach(upsert);
        for (const o of ops) {
          if (o.op === 'upsert') upsert(o.r);
          else if (o.op === 'remove') {
            const keys = [...live.keys()];
            if (keys.length === 0) continue;
            const k = keys[o.pick % keys.length];
            c.remove(live.get(k)!);
            live.delete(k);
          } else if (o.op === 'health') c.setGatewayHealth(o.key, o.h);
          else if (o.op === 'state') c.nodeState(o.n);
          else check();
        }
        check();
      }),
      { numRuns: 400 },
    );
  });
});

/**
 * gatewayClients' documented semantics, computed the slow way: every client pod re-resolved from the resources (the
 * resolution order of docs/architecture.md), a configuration counting when any of its gateway rules' selectors
 * match the gateway pod; health, drain, hop limits and internal destinations ignored.
 */
function referenceGatewayClients(rs: readonly Resource[], gwKey: string): string[] {
  const key = (r: Resource) => `${r.metadata.namespace || 'default'}/${r.metadata.name}`;
  const ann = (a: Record<string, string> | undefined, name: string): string | undefined => {
    const v = a?.[name]?.trim();
    return v ? v : undefined;
  };
  const sel = (text: string) => {
    try {
      return parseSelector(text);
    } catch {
      return null;
    }
  };
  const pods = rs.filter((r): r is Pod => r.kind === 'Pod');
  const finished = (p: Pod) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
  const isGw = (p: Pod) => p.metadata.annotations?.['egw.dev/egress-gateway'] !== undefined;
  const gp = pods.find((p) => key(p) === gwKey);
  if (!gp || !isGw(gp) || finished(gp)) return [];
  const fcfg = rs.find((r) => r.kind === 'FelixConfiguration' && r.metadata.name === 'default') as { spec?: { egressIPSupport?: EgressIPSupport } } | undefined;
  const support = fcfg?.spec?.egressIPSupport ?? FELIX_DEFAULTS.egressIPSupport;
  if (support === 'Disabled') return [];
  const nsObj = (n: string) => rs.find((r) => r.kind === 'Namespace' && r.metadata.name === n);
  const nsLabels = (n: string) => ({ ...(nsObj(n)?.metadata.labels ?? {}), 'projectcalico.org/name': n });
  const policies = new Map(rs.filter((r) => r.kind === 'EgressGatewayPolicy').map((r) => [r.metadata.name, r as EgressGatewayPolicy]));
  const gwNs = gp.metadata.namespace || 'default';
  const matches = (selector: string, namespaceSelector: string | undefined, clientNs: string): boolean => {
    if (namespaceSelector === undefined || namespaceSelector.trim() === '') {
      if (gwNs !== clientNs) return false;
    } else if (!sel(namespaceSelector)?.matches(nsLabels(gwNs))) return false;
    return sel(selector)?.matches(gp.metadata.labels ?? {}) ?? false;
  };
  const ips = new Set<number>();
  for (const p of pods) {
    const ip = podIPv4(p);
    if (isGw(p) || finished(p) || ip === null || !p.spec?.nodeName) continue;
    const ns = p.metadata.namespace || 'default';
    const nsA = nsObj(ns)?.metadata.annotations;
    const podA = support === 'EnabledPerNamespaceOrPerPod' ? p.metadata.annotations : undefined;
    const pp = ann(podA, ANNOTATION.egressGatewayPolicy);
    const np = ann(nsA, ANNOTATION.egressGatewayPolicy);
    let ok = false;
    const policy = pp !== undefined && policies.has(pp) ? pp : np !== undefined && policies.has(np) ? np : undefined;
    if (policy !== undefined) {
      const seen = new Set<string>();
      for (const r of policies.get(policy)!.spec?.rules ?? []) {
        const dst = r.destination?.cidr ? parsePrefix(r.destination.cidr) : { addr: 0, prefix: 0 };
        const d = dst ? `${dst.addr}/${dst.prefix}` : null;
        if (d === null || seen.has(d)) continue; // calc keeps the first rule per destination
        seen.add(d);
        if (r.gateway && matches(r.gateway.selector ?? '', r.gateway.namespaceSelector, ns)) ok = true;
      }
    } else if (pp === undefined && np === undefined) {
      const a = ann(podA, ANNOTATION.selector) !== undefined ? podA : ann(nsA, ANNOTATION.selector) !== undefined ? nsA : undefined;
      const s = ann(a, ANNOTATION.selector);
      const n = ann(a, ANNOTATION.namespaceSelector);
      const k = ann(a, ANNOTATION.maxNextHops);
      const valid = s !== undefined && sel(s) !== null && (n === undefined || sel(n) !== null) && (k === undefined || parseMaxNextHops(k) !== undefined);
      if (valid) ok = matches(s, n, ns);
    } // else: a policy annotation naming no policy fails closed
    if (ok) ips.add(parseIPv4(ip)!);
  }
  return [...ips].sort((a, b) => a - b).map(formatIPv4);
}
