// The shared test helpers keep their promises: pods meant to be ready are ready by the api's one rule, the
// annotations come from the api's keys, and until() names what it waited for.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isPodReady } from '../../src/api/pod.js';
import { ANNOTATION, NAMESPACE_NAME_LABEL, type Pod } from '../../src/api/types.js';
import { clientPod, controllerGatewayPod, gatewayPod, namespace, oneGatewayCluster, pod, twoNodeCluster } from './resources.js';
import { until } from './wait.js';
import { createServer, type AddressInfo } from 'node:net';
import { flood, parseFloodArgs } from './connflood.js';

describe('resources', () => {
  test('a pod with an IP is Running and Ready=True (isPodReady) unless told otherwise; one without has no status', () => {
    assert.equal(isPodReady(gatewayPod('egw', 'gw-1', 'gw', { node: 'n2', ip: '10.10.10.1' })), true);
    assert.equal(isPodReady(pod('app', 'c', { ip: '10.244.0.5' })), true);
    assert.equal(isPodReady(gatewayPod('egw', 'gw-1', 'gw', { ip: '10.10.10.1', ready: false })), false);
    assert.equal(gatewayPod('egw', 'gw-1', 'gw', { ip: '10.10.10.1', ready: null }).status?.conditions, undefined);
    const unknown = gatewayPod('egw', 'gw-1', 'gw', { ip: '10.10.10.1', ready: 'Unknown' });
    assert.deepEqual(unknown.status?.conditions, [{ type: 'Ready', status: 'Unknown' }]);
    assert.equal(isPodReady(unknown), false);
    assert.deepEqual(pod('egw', 'gw-1', { ip: '10.10.10.1', phase: 'Pending' }).status, { phase: 'Pending', podIP: '10.10.10.1', podIPs: [{ ip: '10.10.10.1' }] });
    assert.equal(pod('app', 'c', { node: 'n1' }).status, undefined);
    assert.equal(controllerGatewayPod('prod', 'red-aaaaa', 'red').status, undefined);
  });

  test('the scenarios\' gateway pods are ready, and carry the api\'s annotation', () => {
    for (const cluster of [twoNodeCluster(), oneGatewayCluster({ gatewayIp: '10.10.10.0' })]) {
      const gateways = (cluster.filter((r) => r.kind === 'Pod') as Pod[]).filter((p) => p.metadata.annotations?.[ANNOTATION.gatewayOf]);
      assert.ok(gateways.length > 0);
      for (const g of gateways) assert.equal(isPodReady(g), true, g.metadata.name);
    }
  });

  test('clients and namespaces use the api\'s keys', () => {
    const c = clientPod('app', 'c', { selector: "app == 'gw'", namespaceSelector: 'all()', maxNextHops: 2, policy: 'p' });
    assert.deepEqual(c.metadata.annotations, {
      [ANNOTATION.selector]: "app == 'gw'",
      [ANNOTATION.namespaceSelector]: 'all()',
      [ANNOTATION.maxNextHops]: '2',
      [ANNOTATION.egressGatewayPolicy]: 'p',
    });
    assert.deepEqual(namespace('app').metadata.labels, { [NAMESPACE_NAME_LABEL]: 'app' });
    assert.equal(namespace('app', { nameLabel: false }).metadata.labels, undefined);
  });
});

describe('until', () => {
  test('resolves with the first truthy value', async () => {
    let n = 0;
    assert.equal(await until('n to reach 3', () => (++n >= 3 ? n : false), 1000, { everyMs: 1 }), 3);
  });

  test('names what it waited for; an error fails at once, or is retried and named with retryErrors', async () => {
    await assert.rejects(until('the moon', () => false, 30), /^Error: timed out after 30 ms waiting for the moon$/);
    await assert.rejects(until(() => 'a lazy name', () => false, 30), /waiting for a lazy name$/);
    let calls = 0;
    const boom = () => {
      calls++;
      throw new Error('store down');
    };
    await assert.rejects(until('x', boom, 1000), /^Error: store down$/);
    assert.equal(calls, 1);
    await assert.rejects(until('x', boom, 30, { retryErrors: true, everyMs: 1 }), /waiting for x; last error: store down$/);
    assert.ok(calls > 2);
  });
});

describe('connflood', () => {
  test('--rate takes a positive integer; a bad one is named', () => {
    const o = parseFloodArgs(['--to', '127.0.0.1:7', '--duration', '1', '--rate', '250']);
    assert.ok(!(o instanceof Error));
    assert.equal(o.rate, 250);
    for (const bad of ['0', '-3', '1.5', 'x']) {
      const e = parseFloodArgs(['--to', '127.0.0.1:7', '--duration', '1', '--rate', bad]);
      assert.ok(e instanceof Error && e.message.startsWith(`--rate ${bad}:`), String(e));
    }
    const missing = parseFloodArgs(['--to', '127.0.0.1:7', '--duration', '1', '--rate']);
    assert.ok(missing instanceof Error && /--rate needs a value/.test(missing.message));
  });

  test('with --rate and --count it makes exactly --count connections (a line server on loopback)', async () => {
    let accepted = 0;
    const server = createServer((s) => {
      accepted++;
      s.on('data', () => s.end('pong\n'));
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const o = parseFloodArgs(['--to', `127.0.0.1:${port}`, '--duration', '20', '--count', '30', '--rate', '200', '--concurrency', '4']);
      assert.ok(!(o instanceof Error));
      const r = await flood(o);
      assert.equal(r.made, 30);
      assert.equal(r.failed, 0);
      assert.equal(accepted, 30);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
