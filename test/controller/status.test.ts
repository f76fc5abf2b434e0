// gatewayStatus, replicaHealth, sameStatus and planMaintenance: the pure parts of status and drain.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pod } from '../../src/api/types.js';
import { gatewayStatus, isProbeFailure, planGatewayPods, planMaintenance, replicaHealth, sameStatus } from '../../src/controller/index.js';
import { controllerGatewayPod, egressGateway, ippool, node, pod, seeded } from '../helpers/resources.js';

const pools = [ippool('default', '10.244.0.0/16'), ippool('egress', '10.10.10.0/30', { blockSize: 31, nodeSelector: '!all()' })];
const nodes = [node('n1', { labels: { egress: 'yes' } }), node('n2', { labels: { egress: 'yes' } }), node('n3')];
const NOW = new Date('2030-01-01T00:00:00Z');

function gw(spec: Parameters<typeof egressGateway>[2] = {}) {
  const g = egressGateway('prod', 'red', { replicas: 2, template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { egress: 'yes' } } }, ...spec });
  g.metadata.uid = 'uid-red';
  return g;
}

function gwPod(name: string, nodeName: string, ip: string | undefined, status: Pod['status'] | undefined, extra: Partial<Pod['metadata']> = {}): Pod {
  const created = `2029-12-31T00:00:0${name.endsWith('a') ? 0 : name.endsWith('b') ? 1 : 2}Z`;
  return controllerGatewayPod('prod', name, 'red', { node: nodeName, creationTimestamp: created, metadata: extra, status: status && ip ? { ...status, podIP: ip, podIPs: [{ ip }] } : status });
}

const ready: Pod['status'] = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
const probeFailing: Pod['status'] = {
  phase: 'Running',
  conditions: [{ type: 'Ready', status: 'False', reason: 'ICMPProbeFailing', message: 'icmp probe: no reply from 198.51.100.1, 198.51.100.2 for 15s' }],
};
const clients = (key: string) => ({ 'prod/red-aaaaa': 3, 'prod/red-bbbbb': 2, 'prod/red-ccccc': 5 })[key] ?? 0;
const conds = (s: ReturnType<typeof gatewayStatus>) => s.conditions!.map((c) => [c.type, c.status, c.reason, c.message]);

describe('gatewayStatus', () => {
  it('all ready: Ready True, readyReplicas = replicas, one Ready entry per pod with its clients', () => {
    const pods = [gwPod('red-aaaaa', 'n1', '10.10.10.0', ready), gwPod('red-bbbbb', 'n2', '10.10.10.1', ready)];
    const s = gatewayStatus(gw(), planGatewayPods(gw(), pods, nodes, pools), { clients, now: NOW });
    assert.deepEqual(conds(s), [
      ['Ready', 'True', 'AllReplicasReady', '2 of 2 gateway pods ready'],
      ['Degraded', 'False', 'AsExpected', ''],
    ]);
    assert.equal(s.readyReplicas, 2);
    assert.deepEqual(s.replicas, [
      { pod: 'red-aaaaa', node: 'n1', ip: '10.10.10.0', health: 'Ready', clients: 3 },
      { pod: 'red-bbbbb', node: 'n2', ip: '10.10.10.1', health: 'Ready', clients: 2 },
    ]);
    assert.equal(s.observedGeneration, undefined);
    const withGen = gw();
    withGen.metadata.generation = 4;
    assert.equal(gatewayStatus(withGen, planGatewayPods(withGen, pods, nodes, pools)).observedGeneration, 4);
  });

  it('a pod under SNAT port pressure: still Ready, but Degraded True with SNATPortsExhausting and its message; cleared: AsExpected', () => {
    const pressure = (status: 'True' | 'False', message: string): Pod['status'] => ({
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'True' }, { type: 'egw.dev/SNATPortPressure', status, reason: status === 'True' ? 'SNATPortsExhausting' : 'SNATPortsAvailable', message }],
    });
    const msg = '203.0.113.10:80/tcp from 10.10.10.0: 52000 of 64512 source ports in use (81%)';
    const pods = [gwPod('red-aaaaa', 'n1', '10.10.10.0', pressure('True', msg)), gwPod('red-bbbbb', 'n2', '10.10.10.1', ready)];
    const s = gatewayStatus(gw(), planGatewayPods(gw(), pods, nodes, pools), { clients, now: NOW });
    assert.deepEqual(conds(s), [
      ['Ready', 'True', 'AllReplicasReady', '2 of 2 gateway pods ready'],
      ['Degraded', 'True', 'SNATPortsExhausting', `red-aaaaa: ${msg}`],
    ]);
    const cleared = [gwPod('red-aaaaa', 'n1', '10.10.10.0', pressure('False', 'every destination below 70%')), gwPod('red-bbbbb', 'n2', '10.10.10.1', ready)];
    assert.deepEqual(conds(gatewayStatus(gw(), planGatewayPods(gw(), cleared, nodes, pools), { clients, now: NOW }))[1], ['Degraded', 'False', 'AsExpected', '']);
  });

  it('one pod failing its probes: Ready False and Degraded True with ProbesFailing; that pod NotReady with the reasons', () => {
    const pods = [gwPod('red-aaaaa', 'n1', '10.10.10.0', ready), gwPod('red-bbbbb', 'n2', '10.10.10.1', probeFailing)];
    const s = gatewayStatus(gw(), planGatewayPods(gw(), pods, nodes, pools), { clients, now: NOW });
    assert.deepEqual(conds(s), [
      ['Ready', 'False', 'ProbesFailing', '1 of 2 gateway pods ready: probes failing on red-bbbbb: icmp probe: no reply from 198.51.100.1, 198.51.100.2 for 15s'],
      ['Degraded', 'True', 'ProbesFailing', 'probes failing on red-bbbbb: icmp probe: no reply from 198.51.100.1, 198.51.100.2 for 15s'],
    ]);
    assert.equal(s.readyReplicas, 1);
    assert.deepEqual(s.replicas![1], {
      pod: 'red-bbbbb',
      node: 'n2',
      ip: '10.10.10.1',
      health: 'NotReady',
      reasons: ['ICMPProbeFailing', 'icmp probe: no reply from 198.51.100.1, 198.51.100.2 for 15s'],
      clients: 2,
    });
  });

  it('a pod not ready for another reason is PodsNotReady, not Degraded', () => {
    const notProgrammed: Pod['status'] = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False', reason: 'NotReady', message: 'dataplane: not programmed' }] };
    assert.equal(isProbeFailure(notProgrammed.conditions![0]), false);
    assert.equal(isProbeFailure({ type: 'Ready', status: 'False', reason: 'DataplaneNotProgrammed', message: 'dataplane: no vxlan; icmp probe: no reply' }), false, 'the reason decides');
    assert.equal(isProbeFailure({ type: 'Ready', status: 'False', reason: 'HTTPProbeFailing', message: 'http probe: timeout' }), true);
    assert.equal(isProbeFailure({ type: 'Ready', status: 'False', reason: 'GatewayNotReady', message: 'icmp probe: no reply' }), true, 'a generic reason: the message decides');
    assert.equal(isProbeFailure({ type: 'Ready', status: 'True', reason: 'ICMPProbeFailing' }), false);
    const pods = [gwPod('red-aaaaa', 'n1', '10.10.10.0', ready), gwPod('red-bbbbb', 'n2', '10.10.10.1', notProgrammed)];
    const s = gatewayStatus(gw(), planGatewayPods(gw(), pods, nodes, pools), { now: NOW });
    assert.deepEqual(conds(s), [
      ['Ready', 'False', 'PodsNotReady', '1 of 2 gateway pods ready'],
      ['Degraded', 'False', 'AsExpected', ''],
    ]);
    assert.deepEqual(s.replicas![1].reasons, ['NotReady', 'dataplane: not programmed']);
  });

  it('pool exhausted: as many pods as addresses, Degraded PoolExhausted, new pods Unknown', () => {
    const plan = planGatewayPods(gw({ replicas: 5 }), [gwPod('red-aaaaa', 'n1', '10.10.10.0', ready)], nodes, pools, { random: seeded() });
    assert.equal(plan.create.length, 3);
    const s = gatewayStatus(gw({ replicas: 5 }), plan, { clients, now: NOW });
    assert.deepEqual(conds(s), [
      ['Ready', 'False', 'PoolExhausted', '1 of 5 gateway pods ready: IP pool "egress" can hold 4 gateway pods, 5 wanted'],
      ['Degraded', 'True', 'PoolExhausted', 'IP pool "egress" can hold 4 gateway pods, 5 wanted'],
    ]);
    assert.equal(s.readyReplicas, 1);
    assert.equal(s.replicas!.length, 4);
    assert.deepEqual(s.replicas!.map((r) => r.health).sort(), ['Ready', 'Unknown', 'Unknown', 'Unknown']);
    const fresh = s.replicas!.find((r) => r.health === 'Unknown')!;
    assert.deepEqual(Object.keys(fresh), ['pod', 'node', 'health', 'reasons', 'clients']);
    assert.deepEqual(fresh.reasons, ['not running yet']);
  });

  it('no node matches: no pods, Degraded NoMatchingNode, readyReplicas 0', () => {
    const g = gw({ template: { metadata: { labels: { 'egress-code': 'red' } }, spec: { nodeSelector: { egress: 'nowhere' } } } });
    const s = gatewayStatus(g, planGatewayPods(g, [], nodes, pools), { now: NOW });
    assert.deepEqual(conds(s), [
      ['Ready', 'False', 'NoMatchingNode', '0 of 2 gateway pods ready: no schedulable node matches the template\'s nodeSelector {"egress":"nowhere"} (3 nodes known)'],
      ['Degraded', 'True', 'NoMatchingNode', 'no schedulable node matches the template\'s nodeSelector {"egress":"nowhere"} (3 nodes known)'],
    ]);
    assert.equal(s.readyReplicas, 0);
    assert.deepEqual(s.replicas, []);
  });

  it('a draining pod is listed last as Draining and not counted; its replacement is planned', () => {
    const pods = [
      gwPod('red-aaaaa', 'n1', '10.10.10.0', ready),
      gwPod('red-bbbbb', 'n2', '10.10.10.1', ready, { deletionTimestamp: '2030-01-01T00:00:10.000Z', deletionGracePeriodSeconds: 10 }),
    ];
    const plan = planGatewayPods(gw(), pods, nodes, pools, { random: seeded() });
    assert.equal(plan.create.length, 1, 'a replacement at once');
    assert.deepEqual(plan.terminating.map((p) => p.metadata.name), ['red-bbbbb']);
    const s = gatewayStatus(gw(), plan, { clients, now: NOW });
    assert.equal(s.readyReplicas, 1);
    assert.equal(s.conditions![0].message, '1 of 2 gateway pods ready, 1 draining');
    assert.deepEqual(s.replicas!.at(-1), {
      pod: 'red-bbbbb',
      node: 'n2',
      ip: '10.10.10.1',
      health: 'Draining',
      reasons: ['drain window ends 2030-01-01T00:00:10.000Z'],
      clients: 2,
    });
  });

  it('sameStatus ignores lastTransitionTime only; the previous transition time is kept', () => {
    const pods = [gwPod('red-aaaaa', 'n1', '10.10.10.0', ready), gwPod('red-bbbbb', 'n2', '10.10.10.1', ready)];
    const plan = planGatewayPods(gw(), pods, nodes, pools);
    const a = gatewayStatus(gw(), plan, { clients, now: NOW });
    const b = gatewayStatus(gw(), plan, { clients, now: new Date(NOW.getTime() + 5000), previous: a });
    assert.equal(b.conditions![0].lastTransitionTime, NOW.toISOString());
    assert.ok(sameStatus(a, b));
    assert.ok(!sameStatus(a, gatewayStatus(gw(), plan, { now: NOW })), 'client counts differ');
  });
});

describe('replicaHealth', () => {
  it('Unknown without status, Unknown with a Ready condition of Unknown, Draining wins over everything', () => {
    assert.deepEqual(replicaHealth(gwPod('red-aaaaa', 'n1', undefined, undefined)), { health: 'Unknown', reasons: ['not running yet'] });
    assert.equal(replicaHealth(gwPod('red-aaaaa', 'n1', '10.10.10.0', { phase: 'Running', conditions: [{ type: 'Ready', status: 'Unknown' }] })).health, 'Unknown');
    assert.equal(replicaHealth(gwPod('red-aaaaa', 'n1', '10.10.10.0', probeFailing, { deletionTimestamp: '2030-01-01T00:00:10Z' })).health, 'Draining');
  });
});

describe('planMaintenance', () => {
  const client = (ns: string, name: string, ip: string): Pod => pod(ns, name, { node: 'n1', ip, ready: null });

  it('clients of a draining gateway get its IP and window; the later window wins for a client of two', () => {
    const a = gwPod('red-aaaaa', 'n1', '10.10.10.0', ready, { deletionTimestamp: '2030-01-01T00:00:10.000Z', deletionGracePeriodSeconds: 10 });
    const b = gwPod('red-bbbbb', 'n2', '10.10.10.1', ready, { deletionTimestamp: '2030-01-01T00:00:30.000Z', deletionGracePeriodSeconds: 60 });
    const c = gwPod('red-ccccc', 'n2', '10.10.10.2', ready);
    const pods = [a, b, c, client('t', 'one', '10.244.0.1'), client('t', 'two', '10.244.0.2'), client('t', 'three', '10.244.0.3')];
    const ips: Record<string, string[]> = {
      'prod/red-aaaaa': ['10.244.0.1', '10.244.0.2'],
      'prod/red-bbbbb': ['10.244.0.2'],
      'prod/red-ccccc': ['10.244.0.1', '10.244.0.2', '10.244.0.3'],
    };
    const m = planMaintenance(pods, (k) => ips[k] ?? []);
    assert.deepEqual(Object.fromEntries(m), {
      't/one': { gatewayIP: '10.10.10.0', started: '2030-01-01T00:00:00.000Z', finished: '2030-01-01T00:00:10.000Z' },
      't/two': { gatewayIP: '10.10.10.1', started: '2029-12-31T23:59:30.000Z', finished: '2030-01-01T00:00:30.000Z' },
    });
  });
});
