// SNAT port pressure: the gateway's Pod condition with hysteresis (src/gateway/podstatus.ts), and writing it beside
// the Ready condition in one update.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { portPressureCondition, writePodConditions, PORT_PRESSURE_CONDITION } from '../../src/gateway/podstatus.js';
import { SNAT_PORTS, type PortUse } from '../../src/audit/ports.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import type { Pod } from '../../src/api/types.js';

const use = (inUse: number): PortUse => ({ egressIp: '10.10.10.0', destination: '203.0.113.10:80', protocol: 'tcp', inUse, available: SNAT_PORTS - inUse });
const at = (share: number) => use(Math.floor(SNAT_PORTS * share));

test('raised above 80%, cleared below 70% (not in between); nothing at all while it was never raised', () => {
  assert.equal(portPressureCondition(undefined, null), null);
  assert.equal(portPressureCondition(at(0.8), null), null, '80% exactly is not above');
  const raised = portPressureCondition(at(0.81), null);
  assert.equal(raised?.status, 'True');
  assert.equal(raised?.reason, 'SNATPortsExhausting');
  assert.equal(raised?.message, `203.0.113.10:80/tcp from 10.10.10.0: ${Math.floor(SNAT_PORTS * 0.81)} of ${SNAT_PORTS} source ports in use (81%)`);
  assert.equal(portPressureCondition(at(0.75), true)?.status, 'True', 'between the thresholds it stays raised');
  const cleared = portPressureCondition(at(0.69), true);
  assert.equal(cleared?.status, 'False');
  assert.equal(cleared?.reason, 'SNATPortsAvailable');
  assert.equal(portPressureCondition(at(0.75), false)?.status, 'False', 'between the thresholds it stays cleared');
  assert.equal(portPressureCondition(undefined, true)?.status, 'False', 'no connection left');
});

test('writePodConditions: Ready and the pressure condition in one update; unchanged when both already say so', async () => {
  const store = new MemoryStore();
  const created = (await store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'egw', name: 'red-a' }, spec: { containers: [] }, status: { phase: 'Running' } } as unknown as Pod)) as Pod;
  const wants = [
    { type: 'Ready', status: 'True' as const, reason: 'GatewayReady', message: 'ok' },
    { type: PORT_PRESSURE_CONDITION, ...portPressureCondition(at(0.9), null)! },
  ];
  const rev = await store.revision();
  assert.equal(await writePodConditions(store, 'egw', 'red-a', created.metadata.uid, wants), 'written');
  assert.equal(await store.revision(), rev + 1, 'one write');
  const pod = (await store.get({ kind: 'Pod', namespace: 'egw', name: 'red-a' })) as Pod;
  assert.deepEqual(pod.status?.conditions?.map((c) => [c.type, c.status, c.reason]), [['Ready', 'True', 'GatewayReady'], [PORT_PRESSURE_CONDITION, 'True', 'SNATPortsExhausting']]);
  assert.equal(await writePodConditions(store, 'egw', 'red-a', created.metadata.uid, wants), 'unchanged');
});
