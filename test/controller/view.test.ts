// The controller's metrics view: gateway pods per EgressGateway and state, addresses per pool (src/controller/view.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controllerView } from '../../src/controller/view.js';
import { ANNOTATION, type EgressGateway, type IPPool, type Pod } from '../../src/api/types.js';

const egw = (name: string): EgressGateway => ({ apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', metadata: { namespace: 'egw', name }, spec: { replicas: 2, ipPools: [{ name: 'red' }] } }) as EgressGateway;
function pod(name: string, of: string | undefined, state: 'ready' | 'not-ready' | 'draining' | 'pending'): Pod {
  const p: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'egw', name, annotations: of ? { [ANNOTATION.gatewayOf]: of } : {} }, spec: { nodeName: 'n1', containers: [] } } as unknown as Pod;
  if (state === 'draining') p.metadata.deletionTimestamp = '2026-12-02T10:00:00Z';
  if (state === 'ready' || state === 'not-ready' || state === 'draining') {
    p.status = { phase: 'Running', conditions: [{ type: 'Ready', status: state === 'not-ready' ? 'False' : 'True' }] } as Pod['status'];
  }
  return p;
}
const pool = (name: string, cidr: string): IPPool => ({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name }, spec: { cidr } }) as IPPool;

test('gateway pods counted per EgressGateway and state (every state present, 0 when none); other pods ignored', () => {
  const v = controllerView(
    [egw('red'), egw('blue')],
    [pod('red-a', 'red', 'ready'), pod('red-b', 'red', 'draining'), pod('red-c', 'red', 'not-ready'), pod('blue-a', 'blue', 'pending'), pod('client', undefined, 'ready'), pod('gone-a', 'gone', 'ready')],
    [],
    [],
  );
  const of = (g: string) => Object.fromEntries(v.gateways.filter((x) => x.egressgateway === g).map((x) => [x.state, x.count]));
  assert.deepEqual(of('egw/red'), { ready: 1, 'not-ready': 1, draining: 1, unknown: 0 });
  assert.deepEqual(of('egw/blue'), { ready: 0, 'not-ready': 0, draining: 0, unknown: 1 });
  assert.deepEqual(of('egw/gone'), {}, 'an EgressGateway that no longer exists has no series');
});

test('addresses per IPv4 pool: allocated ones inside it, the rest free; IPv6 pools have none', () => {
  const v = controllerView([], [], [pool('red', '10.10.10.0/30'), pool('pods', '10.244.0.0/16'), pool('v6', 'fd00::/120')], ['10.10.10.1', '10.244.1.5', '10.244.1.6', 'not-an-ip']);
  assert.deepEqual(v.addresses, [
    { pool: 'red', state: 'allocated', count: 1 },
    { pool: 'red', state: 'free', count: 3 },
    { pool: 'pods', state: 'allocated', count: 2 },
    { pool: 'pods', state: 'free', count: 65534 },
  ]);
});
