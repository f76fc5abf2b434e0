import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseNode, containerArgv, containerStatusesFor, lastExitFromStatus, readyConditionFor } from '../../src/lab/podspec.js';
import { podNames } from '../../src/lab/names.js';
import { gatewayPod, node, pod } from '../helpers/resources.js';

const EGW = ['/usr/bin/node', '/repo/bin/egw.js'];
const P = { namespace: 'red', name: 'gw-abcde' };

test('container commands: egw runs this egw against the same datastore; gateway gets --pod', () => {
  assert.deepEqual(containerArgv({ command: ['egw', 'gateway'] }, P, EGW, 'sqlite:/x.db'), [...EGW, '--datastore', 'sqlite:/x.db', 'gateway', '--pod', 'red/gw-abcde']);
  assert.deepEqual(containerArgv({ command: ['egw'], args: ['gateway', '--pod', 'a/b'] }, P, EGW, 'sqlite:/x.db'), [...EGW, '--datastore', 'sqlite:/x.db', 'gateway', '--pod', 'a/b']);
  assert.deepEqual(containerArgv({ command: ['egw', 'get', 'pods'] }, P, EGW, 'sqlite:/x.db'), [...EGW, '--datastore', 'sqlite:/x.db', 'get', 'pods']);
  assert.deepEqual(containerArgv({ command: ['iperf3'], args: ['-s'] }, P, EGW, 'sqlite:/x.db'), ['iperf3', '-s']);
  assert.equal(containerArgv({}, P, EGW, 'sqlite:/x.db'), undefined);
});

test('names: pod netns egw-<lab>-p-<10 hex>, host veth egw<11 hex> (fits IFNAMSIZ), IPAM handle', () => {
  const n = podNames('demo', 'default', 'client');
  assert.match(n.netns, /^egw-demo-p-[0-9a-f]{10}$/);
  assert.match(n.veth, /^egw[0-9a-f]{11}$/);
  assert.equal(n.veth.length, 14);
  assert.equal(n.netns.slice(-10), n.veth.slice(3, 13));
  assert.equal(n.handle, 'pod:default/client');
  assert.notEqual(podNames('demo', 'default', 'client2').hash, n.hash);
});

test('unbound pods: every kubelet picks the same node among those matching the nodeSelector', () => {
  const nodes = [node('a', { labels: { zone: 'x' } }), node('b', { labels: { zone: 'y' } }), node('c', { labels: { zone: 'y' } }), node('d', { labels: { zone: 'y' }, spec: { unschedulable: true } })];
  /** A pod with no node yet. */
  const unbound = (name: string, nodeSelector?: Record<string, string>) => pod('default', name, { containers: [], spec: nodeSelector ? { nodeSelector } : {} });
  const counts = new Map<string, number>();
  for (let i = 0; i < 200; i++) {
    const n = chooseNode(unbound(`p${i}`), nodes)!;
    assert.equal(chooseNode(unbound(`p${i}`), [...nodes].reverse()), n, 'independent of the order');
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), ['a', 'b', 'c'], 'never the unschedulable node');
  for (let i = 0; i < 50; i++) assert.ok(['b', 'c'].includes(chooseNode(unbound(`q${i}`, { zone: 'y' }), nodes)!));
  assert.equal(chooseNode(unbound('z', { zone: 'nowhere' }), nodes), undefined);
});

test('Ready: ordinary pods True; gateway pods False/GatewayStarting, then left to the gateway', () => {
  const plain = readyConditionFor(pod('default', 'p', { containers: [] }), undefined);
  assert.equal(plain.changed, true);
  assert.deepEqual(plain.conditions.map((c) => [c.type, c.status, c.reason]), [['Ready', 'True', undefined]]);
  const gw = gatewayPod('default', 'p', 'red', { containers: [] });
  const first = readyConditionFor(gw, undefined);
  assert.equal(first.changed, true);
  assert.deepEqual(first.conditions.map((c) => [c.type, c.status, c.reason]), [['Ready', 'False', 'GatewayStarting']]);
  assert.equal(readyConditionFor(gw, first.conditions).changed, false);
  // what the gateway wrote (True or False) is kept
  for (const status of ['True', 'False'] as const) {
    const mine = [{ type: 'Ready', status, reason: status === 'True' ? 'GatewayReady' : 'ICMPProbeFailing' }];
    const r = readyConditionFor(gw, mine);
    assert.equal(r.changed, false);
    assert.deepEqual(r.conditions, mine);
  }
  // after an IPAM failure (the kubelet's own False), a gateway pod whose network now exists is "starting"
  const r = readyConditionFor(gw, [{ type: 'Ready', status: 'False', reason: 'IPAMFailed', message: 'pool full' }]);
  assert.deepEqual(r.conditions.map((c) => [c.status, c.reason]), [['False', 'GatewayStarting']]);
});

test('containerStatuses: restartCount, running or CrashLoopBackOff, and the last exit as kubelet reports it', () => {
  const at = '2026-01-01T00:00:00.000Z';
  assert.deepEqual(containerStatusesFor([{ name: 'gateway', image: 'egw', running: true, startedAt: at, restartCount: 0 }]), [
    { name: 'gateway', image: 'egw', ready: true, started: true, restartCount: 0, state: { running: { startedAt: at } }, lastState: {} },
  ]);
  const [killed] = containerStatusesFor([{ name: 'gateway', running: false, restartCount: 2, lastExit: { code: null, signal: 'SIGKILL', at } }]);
  assert.deepEqual([killed.ready, killed.state, killed.lastState], [false, { waiting: { reason: 'CrashLoopBackOff' } }, { terminated: { exitCode: 137, signal: 9, reason: 'Error', finishedAt: at } }]);
  const [failed, done, unknown] = containerStatusesFor([
    { name: 'a', running: true, restartCount: 1, lastExit: { code: 3, signal: null, at } },
    { name: 'b', running: true, restartCount: 1, lastExit: { code: 0, signal: null, at } },
    { name: 'c', running: true, restartCount: 1, lastExit: { at } }, // ended while no kubelet was its parent
  ]);
  assert.deepEqual(failed.lastState.terminated, { exitCode: 3, reason: 'Error', finishedAt: at });
  assert.equal(done.lastState.terminated?.reason, 'Completed');
  assert.deepEqual(unknown.lastState.terminated, { reason: 'Unknown', finishedAt: at });
  // A restarted kubelet reads the last exit back from the pod status.
  const p = pod('default', 'gw', { containers: [{ name: 'gateway' }] });
  p.status = { containerStatuses: [killed, failed].map((c, i) => ({ ...c, name: ['gateway', 'other'][i] })) };
  assert.deepEqual(lastExitFromStatus(p, 'gateway'), { code: null, signal: 'SIGKILL', at });
  assert.deepEqual(lastExitFromStatus(p, 'other'), { code: 3, signal: null, at });
  assert.equal(lastExitFromStatus(p, 'missing'), undefined);
});
