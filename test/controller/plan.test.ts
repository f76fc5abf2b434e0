// planGatewayPods and gatewayConditions: the pure planning of gateway pods.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANNOTATION, DEFAULT_GATEWAY_LABEL, LABEL, type Pod } from '../../src/api/types.js';
import { gatewayConditions, planGatewayPods } from '../../src/controller/index.js';
import { controllerGatewayPod, egressGateway, ippool, node, seeded } from '../helpers/resources.js';

const pools = [ippool('default', '10.244.0.0/16'), ippool('egress', '10.10.10.0/30', { blockSize: 31, nodeSelector: '!all()' })];
const nodes = [node('n1', { labels: { egress: 'yes' } }), node('n2', { labels: { egress: 'yes' } }), node('n3')];

function gw(spec: Parameters<typeof egressGateway>[2] = {}) {
  const g = egressGateway('prod', 'red', { replicas: 2, template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { egress: 'yes' } } }, ...spec });
  g.metadata.uid = 'uid-red';
  return g;
}

/** A pod of prod/red as the controller made it, created at `created`. */
const existing = (name: string, nodeName: string, created: string, metadata: Partial<Pod['metadata']> = {}, status?: Pod['status']): Pod =>
  controllerGatewayPod('prod', name, 'red', { node: nodeName, creationTimestamp: created, metadata, status });

const running: Pod['status'] = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };

describe('planGatewayPods', () => {
  it('2 replicas on 2 matching nodes: 2 pods of exactly the documented shape on different nodes', () => {
    const egw = gw({ template: { metadata: { labels: { 'egress-code': 'red', tier: 'gw' } }, spec: { nodeSelector: { egress: 'yes' }, terminationGracePeriodSeconds: 45 } } });
    const plan = planGatewayPods(egw, [], nodes, pools, { random: seeded() });
    assert.equal(plan.create.length, 2);
    assert.deepEqual(plan.delete, []);
    assert.deepEqual(plan.update, []);
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(plan.create.map((p) => p.spec.nodeName), ['n1', 'n2']);
    for (const p of plan.create) {
      assert.match(p.metadata.name, /^red-[a-z0-9]{5}$/);
      assert.deepEqual(p, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: p.metadata.name,
          namespace: 'prod',
          labels: { 'egress-code': 'red', tier: 'gw', [LABEL.gatewayOf]: 'red' },
          annotations: { [ANNOTATION.gatewayOf]: 'red', [ANNOTATION.ipv4Pools]: '["egress"]' },
          ownerReferences: [{ apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', name: 'red', uid: 'uid-red', controller: true }],
        },
        spec: {
          nodeName: p.spec.nodeName,
          containers: [{ name: 'gateway', image: 'egw', command: ['egw', 'gateway'] }],
          terminationGracePeriodSeconds: 45,
        },
      });
    }
    assert.notEqual(plan.create[0].metadata.name, plan.create[1].metadata.name);
  });

  it('resolves pools by name or CIDR into the annotation; no grace period unless the template sets one', () => {
    const egw = gw({ replicas: 1, ipPools: [{ cidr: '10.10.10.0/30' }, { name: 'default' }] });
    const plan = planGatewayPods(egw, [], nodes, pools);
    assert.equal(plan.create[0].metadata.annotations![ANNOTATION.ipv4Pools], '["egress","default"]');
    assert.equal('terminationGracePeriodSeconds' in plan.create[0].spec, false);
  });

  it('default template labels and no nodeSelector: every node is eligible', () => {
    const egw = gw({ replicas: 3, template: { metadata: { labels: {} } }, ipPools: [{ name: 'default' }] });
    const plan = planGatewayPods(egw, [], nodes, pools);
    assert.deepEqual(plan.create.map((p) => p.spec.nodeName), ['n1', 'n2', 'n3']);
    assert.deepEqual(plan.create[0].metadata.labels, { [DEFAULT_GATEWAY_LABEL]: 'red', [LABEL.gatewayOf]: 'red' });
  });

  it('places new pods on the node with the fewest pods of this gateway, ties by name', () => {
    const egw = gw({ replicas: 4, ipPools: [{ name: 'default' }] });
    const plan = planGatewayPods(egw, [existing('red-aaaaa', 'n1', '2024-01-01T00:00:00Z')], nodes, pools);
    assert.deepEqual(plan.create.map((p) => p.spec.nodeName), ['n2', 'n1', 'n2']);
  });

  it('keeps exactly replicas: nothing to do when the pods are right', () => {
    const pods = [existing('red-aaaaa', 'n1', '2024-01-01T00:00:00Z'), existing('red-bbbbb', 'n2', '2024-01-01T00:00:01Z')];
    const plan = planGatewayPods(gw(), pods, nodes, pools);
    assert.deepEqual([plan.create, plan.delete, plan.update, plan.problems], [[], [], [], []]);
    assert.deepEqual(plan.result, pods);
  });

  it('ignores pods of other gateways and other namespaces', () => {
    const other = existing('blue-aaaaa', 'n1', '2024-01-01T00:00:00Z');
    other.metadata.annotations![ANNOTATION.gatewayOf] = 'blue';
    const elsewhere = existing('red-ccccc', 'n1', '2024-01-01T00:00:00Z', { namespace: 'dev' });
    const plan = planGatewayPods(gw(), [other, elsewhere], nodes, pools, { random: seeded() });
    assert.equal(plan.create.length, 2);
    assert.deepEqual(plan.delete, []);
  });

  it('scale down deletes the newest extra pods first', () => {
    const pods = [
      existing('red-ccccc', 'n1', '2024-01-01T00:00:02Z', {}, running),
      existing('red-aaaaa', 'n1', '2024-01-01T00:00:00Z', {}, running),
      existing('red-bbbbb', 'n2', '2024-01-01T00:00:01Z', {}, running),
    ];
    const plan = planGatewayPods(gw({ replicas: 1 }), pods, nodes, pools);
    assert.deepEqual(plan.delete.map((p) => p.metadata.name), ['red-ccccc', 'red-bbbbb']);
    assert.deepEqual(plan.create, []);
  });

  it('scale down prefers pods on nodes that no longer match, then pods that are not Ready', () => {
    const pods = [
      existing('red-aaaaa', 'n3', '2024-01-01T00:00:00Z', {}, running), // n3 does not match the nodeSelector
      existing('red-bbbbb', 'n1', '2024-01-01T00:00:01Z'), // not ready
      existing('red-ccccc', 'n2', '2024-01-01T00:00:02Z', {}, running),
      existing('red-ddddd', 'n1', '2024-01-01T00:00:03Z', {}, running),
    ];
    const plan = planGatewayPods(gw({ replicas: 1 }), pods, nodes, pools);
    assert.deepEqual(plan.delete.map((p) => p.metadata.name), ['red-aaaaa', 'red-bbbbb', 'red-ddddd']);
  });

  it('relabels pods whose template labels are stale, in place (labels only)', () => {
    const pods = [existing('red-aaaaa', 'n1', '2024-01-01T00:00:00Z', { labels: { 'egress-code': 'old', extra: 'x' } }), existing('red-bbbbb', 'n2', '2024-01-01T00:00:01Z')];
    const egw = gw({ template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { egress: 'yes' } } } });
    const plan = planGatewayPods(egw, pods, nodes, pools);
    assert.equal(plan.update.length, 1);
    const u = plan.update[0];
    assert.deepEqual(u, { ...pods[0], metadata: { ...pods[0].metadata, labels: { 'egress-code': 'red', [LABEL.gatewayOf]: 'red' } } });
    assert.equal(u.metadata.resourceVersion, '7', 'the update carries the version read');
    assert.deepEqual(pods[0].metadata.labels, { 'egress-code': 'old', extra: 'x' }, 'input not mutated');
  });

  it('fixes the ownerReference of a pod adopted from an earlier EgressGateway of the same name', () => {
    const pods = [existing('red-aaaaa', 'n1', '2024-01-01T00:00:00Z'), existing('red-bbbbb', 'n2', '2024-01-01T00:00:01Z')];
    const egw = gw();
    egw.metadata.uid = 'uid-new';
    const plan = planGatewayPods(egw, pods, nodes, pools);
    assert.equal(plan.update.length, 2);
    assert.equal(plan.update[0].metadata.ownerReferences![0].uid, 'uid-new');
  });

  it('a nodeSelector matching no node: no pods and NoMatchingNode', () => {
    const egw = gw({ template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { egress: 'nowhere' } } } });
    const plan = planGatewayPods(egw, [], nodes, pools);
    assert.deepEqual(plan.create, []);
    assert.equal(plan.problems.length, 1);
    assert.equal(plan.problems[0].reason, 'NoMatchingNode');
    assert.match(plan.problems[0].message, /nowhere/);
  });

  it('unschedulable nodes and untolerated NoSchedule taints are skipped', () => {
    const ns = [node('n1', { labels: { egress: 'yes' } }), node('n2', { labels: { egress: 'yes' } }), node('n4', { labels: { egress: 'yes' } })];
    ns[0].spec = { unschedulable: true };
    ns[1].spec = { taints: [{ key: 'dedicated', value: 'gw', effect: 'NoSchedule' }] };
    assert.deepEqual(planGatewayPods(gw(), [], ns, pools, { random: seeded() }).create.map((p) => p.spec.nodeName), ['n4', 'n4']);
    const tolerant = gw({ template: { metadata: { labels: { a: 'b' } }, spec: { nodeSelector: { egress: 'yes' }, tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gw', effect: 'NoSchedule' }] } } });
    assert.deepEqual(planGatewayPods(tolerant, [], ns, pools, { random: seeded() }).create.map((p) => p.spec.nodeName), ['n2', 'n4']);
  });

  it('pools that cannot hold replicas: only as many pods as addresses, and PoolExhausted', () => {
    const small = [ippool('egress', '10.10.10.0/31', { blockSize: 31 })];
    const plan = planGatewayPods(gw({ replicas: 3 }), [], nodes, small, { random: seeded() });
    assert.equal(plan.create.length, 2);
    assert.equal(plan.problems[0].reason, 'PoolExhausted');
    assert.match(plan.problems[0].message, /"egress" can hold 2 gateway pods, 3 wanted/);
    // An address held by someone else counts; one held by this gateway's own pod does not.
    const allocations = new Map([
      ['pod:other/x', '10.10.10.0'],
      ['pod:prod/red-aaaaa', '10.10.10.1'],
    ]);
    const p2 = planGatewayPods(gw({ replicas: 2 }), [existing('red-aaaaa', 'n1', '2024-01-01T00:00:00Z')], nodes, small, { allocations });
    assert.equal(p2.create.length, 0);
    assert.equal(p2.problems[0].reason, 'PoolExhausted');
  });

  it('a missing or disabled pool is reported', () => {
    const p1 = planGatewayPods(gw({ ipPools: [{ name: 'nope' }] }), [], nodes, pools);
    assert.deepEqual(p1.create, []);
    assert.deepEqual(p1.problems.map((p) => p.reason), ['PoolNotFound']);
    const p2 = planGatewayPods(gw({ ipPools: [{ name: 'egress' }, { name: 'off' }] }), [], nodes, [...pools, ippool('off', '10.9.0.0/24', { disabled: true })], { random: seeded() });
    assert.equal(p2.create.length, 2);
    assert.equal(p2.create[0].metadata.annotations![ANNOTATION.ipv4Pools], '["egress"]');
    assert.deepEqual(p2.problems.map((p) => p.reason), ['PoolDisabled']);
  });

  it('replaces pods on deleted nodes and finished pods; ignores pods being deleted', () => {
    const pods = [
      existing('red-aaaaa', 'gone', '2024-01-01T00:00:00Z'),
      existing('red-bbbbb', 'n1', '2024-01-01T00:00:01Z', {}, { phase: 'Failed' }),
      existing('red-ccccc', 'n2', '2024-01-01T00:00:02Z', { deletionTimestamp: '2024-01-01T00:01:00Z' }),
    ];
    const plan = planGatewayPods(gw(), pods, nodes, pools, { random: seeded() });
    assert.deepEqual(plan.delete.map((p) => p.metadata.name).sort(), ['red-aaaaa', 'red-bbbbb']);
    assert.equal(plan.create.length, 2);
  });

  it('new names avoid names in use', () => {
    // A random source stuck on one value would produce one name forever; vary it after a few draws.
    let n = 0;
    const random = () => (n++ < 10 ? 0 : seeded(n)());
    const plan = planGatewayPods(gw({ replicas: 1 }), [], nodes, pools, { random, takenNames: new Set(['red-aaaaa']) });
    assert.notEqual(plan.create[0].metadata.name, 'red-aaaaa');
    assert.match(plan.create[0].metadata.name, /^red-[a-z0-9]{5}$/);
  });
});

describe('gatewayConditions', () => {
  it('Ready when every wanted pod is Ready; PodsNotReady otherwise; Degraded with the problem reason', () => {
    const ready = [existing('red-aaaaa', 'n1', 't0', {}, running), existing('red-bbbbb', 'n2', 't1', {}, running)];
    const ok = gatewayConditions(planGatewayPods(gw(), ready, nodes, pools), 2, [], new Date(0));
    assert.deepEqual(
      ok.map((c) => [c.type, c.status, c.reason]),
      [
        ['Ready', 'True', 'AllReplicasReady'],
        ['Degraded', 'False', 'AsExpected'],
      ],
    );
    const notReady = gatewayConditions(planGatewayPods(gw(), [ready[0]], nodes, pools), 2, ok, new Date(1000));
    assert.deepEqual(notReady.map((c) => [c.type, c.status, c.reason]), [['Ready', 'False', 'PodsNotReady'], ['Degraded', 'False', 'AsExpected']]);
    assert.equal(notReady[0].lastTransitionTime, new Date(1000).toISOString());
    assert.equal(notReady[1].lastTransitionTime, new Date(0).toISOString(), 'unchanged status keeps its transition time');
    const bad = gw({ template: { metadata: { labels: { a: 'b' } }, spec: { nodeSelector: { egress: 'nowhere' } } } });
    const deg = gatewayConditions(planGatewayPods(bad, [], nodes, pools), 2);
    assert.deepEqual(deg.map((c) => [c.type, c.status, c.reason]), [['Ready', 'False', 'NoMatchingNode'], ['Degraded', 'True', 'NoMatchingNode']]);
  });
});
