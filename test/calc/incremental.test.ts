// Incremental correctness: after any sequence of upserts, removes and health reports, the incremental nodeState
// equals a fresh calculator's nodeState for the same final inputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { keyOf, keyString, type Resource } from '../../src/api/meta.js';
import { ANNOTATION, type EgressGatewayRule } from '../../src/api/types.js';
import { EgressCalculator, type GatewayHealth } from '../../src/calc/index.js';
import { felixConfiguration, gatewayPod, ippool, namespace, node, pod, policy } from '../helpers/resources.js';

const NODES = ['n1', 'n2', 'n3'];
const NAMESPACES = ['ns-a', 'ns-b', 'egw', 'egw2'];
const ANNOTATION_MENU: (Record<string, string> | undefined)[] = [
  undefined,
  { [ANNOTATION.selector]: "color == 'red'", [ANNOTATION.namespaceSelector]: "tier == 'gw'" },
  { [ANNOTATION.selector]: "color == 'blue'", [ANNOTATION.namespaceSelector]: 'all()', [ANNOTATION.maxNextHops]: '1' },
  { [ANNOTATION.selector]: 'has(color)', [ANNOTATION.namespaceSelector]: "projectcalico.org/name in {'egw', 'egw2'}", [ANNOTATION.maxNextHops]: '2' },
  { [ANNOTATION.selector]: "color == 'red'" },
  { [ANNOTATION.selector]: 'all()', [ANNOTATION.maxNextHops]: '1' },
  { [ANNOTATION.egressGatewayPolicy]: 'p1' },
  { [ANNOTATION.egressGatewayPolicy]: 'p2' },
  { [ANNOTATION.egressGatewayPolicy]: 'missing' },
  { [ANNOTATION.egressGatewayPolicy]: 'p1', [ANNOTATION.selector]: 'all()' },
  { [ANNOTATION.selector]: "color == 'red'", [ANNOTATION.namespaceSelector]: "tier == 'gw'", [ANNOTATION.maxNextHops]: 'bad' },
];
const RULE_MENU: EgressGatewayRule[] = [
  { gateway: { selector: "color == 'red'", namespaceSelector: "tier == 'gw'" } },
  { gateway: { selector: 'has(color)', namespaceSelector: 'all()', maxNextHops: 2 } },
  { gateway: { selector: "color == 'blue'", namespaceSelector: 'all()' }, gatewayPreference: 'PreferNodeLocal' },
  { destination: { cidr: '10.0.0.0/8' }, gateway: { selector: "color == 'blue'" } },
  { destination: { cidr: '10.0.0.0/8' }, gateway: { selector: 'has(color)', namespaceSelector: "tier == 'gw'", maxNextHops: 1 }, gatewayPreference: 'PreferNodeLocal' },
  { destination: { cidr: '10.1.0.0/16' } },
  { destination: { cidr: '10.1.0.0/16' }, gateway: { selector: "color == 'green'", namespaceSelector: 'all()' } },
  { destination: { cidr: '10.244.5.0/24' }, gateway: { selector: 'all()', namespaceSelector: 'all()' } },
  { destination: { cidr: '8.8.8.0/24' }, gateway: { selector: "color == 'red'", namespaceSelector: 'all()', maxNextHops: 1 } },
];

const arbResource: fc.Arbitrary<Resource> = fc.oneof(
  fc.record({ s: fc.constantFrom('Disabled', 'EnabledPerNamespace', 'EnabledPerNamespaceOrPerPod', 'EnabledPerNamespaceOrPerPod'), prio: fc.constantFrom(100, 101) }).map(({ s, prio }) =>
    felixConfiguration({ egressIPSupport: s as 'Disabled', egressIPRoutingRulePriority: prio }),
  ),
  fc.constantFrom(ippool('pods', '10.244.0.0/16'), ippool('extra', '172.16.0.0/12'), ippool('tiny', '10.1.0.0/24'), ippool('extra', '10.0.0.0/8')),
  fc.record({ n: fc.constantFrom(...NODES), ip: fc.constantFrom('192.168.0.1', '192.168.0.2', '192.168.0.3', '192.168.0.9') }).map(({ n, ip }) => node(n, { ip })),
  fc.record({ n: fc.constantFrom(...NAMESPACES), tier: fc.constantFrom(undefined, 'gw', 'x'), ann: fc.constantFrom(...ANNOTATION_MENU) }).map(({ n, tier, ann }) =>
    namespace(n, { labels: tier ? { tier } : undefined, annotations: ann, nameLabel: false }),
  ),
  fc.record({
    name: fc.constantFrom('p1', 'p2', 'missing'),
    rules: fc.uniqueArray(fc.constantFrom(...RULE_MENU), { minLength: 1, maxLength: 4, selector: (r) => r.destination?.cidr ?? '0.0.0.0/0' }),
  }).map(({ name, rules }) => policy(name, rules)),
  // gateway pods (some names are also used by clients: a pod can switch roles)
  fc.record({
    ns: fc.constantFrom('egw', 'egw2', 'ns-a'),
    name: fc.constantFrom('g1', 'g2', 'g3', 'g4', 'sw'),
    ip: fc.integer({ min: 1, max: 8 }),
    n: fc.constantFrom(...NODES),
    color: fc.constantFrom(undefined, 'red', 'blue', 'green'),
    // null: no Ready condition at all
    ready: fc.constantFrom<boolean | 'Unknown' | null>(true, true, false, 'Unknown', null),
    phase: fc.constantFrom('Running' as const, 'Running' as const, 'Pending' as const),
    deleting: fc.boolean(),
  }).map(({ ns, name, ip, n, color, ready, phase, deleting }) =>
    gatewayPod(ns, name, name, { ip: `10.10.10.${ip}`, node: n, labels: color ? { color } : {}, ready, phase, deleting: deleting && ip % 3 === 0 }),
  ),
  // client pods
  fc.record({
    ns: fc.constantFrom('ns-a', 'ns-b', 'egw'),
    name: fc.constantFrom('c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'sw'),
    ip: fc.option(fc.integer({ min: 1, max: 12 }), { freq: 6 }),
    n: fc.option(fc.constantFrom(...NODES), { freq: 8 }),
    ann: fc.constantFrom(...ANNOTATION_MENU),
  }).map(({ ns, name, ip, n, ann }) => pod(ns, name, { ip: ip === null ? undefined : `10.244.1.${ip}`, node: n ?? undefined, annotations: ann, ready: null })),
);

type Op =
  | { op: 'upsert'; r: Resource }
  | { op: 'remove'; pick: number }
  | { op: 'health'; key: string; h: GatewayHealth | null }
  | { op: 'state'; n: string };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: arbResource.map((r) => ({ op: 'upsert' as const, r })) },
  { weight: 2, arbitrary: fc.nat().map((pick) => ({ op: 'remove' as const, pick })) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        key: fc.constantFrom('egw/g1', 'egw/g2', 'egw2/g3', 'ns-a/g4', 'egw/sw', 'ns-a/c1'),
        h: fc.option(fc.record({ ready: fc.boolean(), draining: fc.option(fc.boolean(), { nil: undefined }) }), { nil: null }),
      })
      .map(({ key, h }) => ({ op: 'health' as const, key, h })),
  },
  { weight: 2, arbitrary: fc.constantFrom(...NODES).map((n) => ({ op: 'state' as const, n })) },
);

/** A populated start, so that most random operations change something visible. */
const BASELINE: Op[] = [
  felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }),
  ippool('pods', '10.244.0.0/16'),
  node('n1', { ip: '192.168.0.1' }),
  node('n2', { ip: '192.168.0.2' }),
  namespace('egw', { labels: { tier: 'gw' }, nameLabel: false }),
  namespace('egw2', { labels: { tier: 'gw' }, nameLabel: false }),
  namespace('ns-a', { annotations: ANNOTATION_MENU[1], nameLabel: false }),
  namespace('ns-b', { annotations: ANNOTATION_MENU[6], nameLabel: false }),
  policy('p1', [RULE_MENU[1], RULE_MENU[4], RULE_MENU[5]]),
  policy('p2', [RULE_MENU[2], RULE_MENU[8]]),
  gatewayPod('egw', 'g1', 'g1', { ip: '10.10.10.1', node: 'n1', labels: { color: 'red' } }),
  gatewayPod('egw', 'g2', 'g2', { ip: '10.10.10.2', node: 'n2', labels: { color: 'blue' } }),
  gatewayPod('egw2', 'g3', 'g3', { ip: '10.10.10.3', node: 'n2', labels: { color: 'red' } }),
  gatewayPod('ns-a', 'g4', 'g4', { ip: '10.10.10.4', node: 'n3', labels: { color: 'blue' } }),
  pod('ns-a', 'c1', { ip: '10.244.1.1', node: 'n1', ready: null }),
  pod('ns-a', 'c2', { ip: '10.244.1.2', node: 'n1', annotations: ANNOTATION_MENU[2], ready: null }),
  pod('ns-b', 'c3', { ip: '10.244.1.3', node: 'n1', ready: null }),
  pod('ns-b', 'c4', { ip: '10.244.1.4', node: 'n2', annotations: ANNOTATION_MENU[3], ready: null }),
  pod('egw', 'c5', { ip: '10.244.1.5', node: 'n2', annotations: ANNOTATION_MENU[7], ready: null }),
].map((r) => ({ op: 'upsert' as const, r }));

function run(ops: Op[], opts: { tableIdRange?: number }): void {
  const c = new EgressCalculator(opts);
  const live = new Map<string, Resource>();
  const health = new Map<string, GatewayHealth>();
  for (const o of [...BASELINE, ...ops]) {
    if (o.op === 'upsert') {
      live.set(keyString(keyOf(o.r)), o.r);
      c.upsert(o.r);
    } else if (o.op === 'remove') {
      const keys = [...live.keys()];
      if (keys.length === 0) continue;
      const k = keys[o.pick % keys.length];
      const r = live.get(k)!;
      live.delete(k);
      if (r.kind === 'Pod') health.delete(`${r.metadata.namespace}/${r.metadata.name}`);
      c.remove(o.pick % 2 ? keyOf(r) : r);
    } else if (o.op === 'health') {
      if (o.h) health.set(o.key, o.h);
      else health.delete(o.key);
      c.setGatewayHealth(o.key, o.h);
    } else c.nodeState(o.n);
  }
  const fresh = new EgressCalculator(opts).load([...live.values()].reverse());
  for (const [k, h] of health) fresh.setGatewayHealth(k, h);
  for (const n of NODES) {
    const got = c.nodeState(n);
    const want = fresh.nodeState(n);
    assert.deepEqual(got, want, `node ${n}`);
    // self-consistency: every rule points at a table; every ECMP hop is in the gateway list
    const ids = new Set(got.tables.map((t) => t.id));
    for (const r of got.rules) assert.ok(ids.has(r.table));
    const gwIps = new Set(got.gateways.map((g) => g.ip));
    for (const t of got.tables) for (const rt of t.routes) if (rt.type === 'ecmp') for (const v of rt.via) assert.ok(gwIps.has(v), `${v} missing from gateways`);
    assert.equal(new Set(got.tables.map((t) => JSON.stringify(t.routes))).size, got.tables.length, 'tables are distinct');
  }
}

describe('calc: incremental equals fresh', () => {
  it('random sequences of upserts, removes and health reports', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 100, size: 'max' }), (ops) => run(ops, {})),
      { numRuns: 400 },
    );
  });

  it('the same with a tiny table-ID range (forced collisions)', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 100, size: 'max' }), (ops) => run(ops, { tableIdRange: 40 })),
      { numRuns: 300 },
    );
  });
});
