// Rendezvous hashing: deterministic, balanced, minimally disruptive; and the hash itself.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ANNOTATION } from '../../src/api/types.js';
import { EgressCalculator, fmix32, fnv1a32, hashString, rendezvousScore, rendezvousTopK } from '../../src/calc/index.js';
import { felixConfiguration, gatewayPod, ippool, namespace, node, pod } from '../helpers/resources.js';
import { lookup } from './helpers.js';

describe('calc: hash functions', () => {
  it('are fixed functions (same values on every platform and run)', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c); // published FNV-1a test vector
    assert.equal(fnv1a32('foobar'), 0xbf9cf968); // published FNV-1a test vector
    assert.equal(fmix32(0), 0);
    assert.equal(hashString('default/client-1'), fmix32(fnv1a32('default/client-1')));
    assert.notEqual(hashString('default/client-1'), hashString('default/client-2'));
  });

  it('rendezvousTopK equals sorting by score', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 30 }), fc.integer({ min: 0, max: 35 }), fc.string(), (names, k, client) => {
        const items = names.map((key) => ({ key, hash: hashString(key) }));
        const ch = hashString(client);
        const want = [...items].sort((a, b) => rendezvousScore(ch, b.hash) - rendezvousScore(ch, a.hash) || (a.key < b.key ? -1 : 1));
        const got = rendezvousTopK(items, k, ch);
        assert.deepEqual(
          got.map((x) => x.key),
          want.slice(0, k <= 0 ? want.length : k).map((x) => x.key),
        );
      }),
    );
  });
});

const GWS = 10;
function gateways(n: number, skip = -1) {
  const out = [];
  for (let i = 0; i < n; i++) if (i !== skip) out.push(gatewayPod('egress', `gateway-${i}`, 'gateway', { ip: `10.10.10.${10 + i}`, node: `gw-node-${i % 3}`, labels: { app: 'egw' } }));
  return out;
}
function setup(gws: ReturnType<typeof gateways>, clients: number, hops: string) {
  const res = [
    felixConfiguration({ egressIPSupport: 'EnabledPerNamespace' }),
    ippool('pods', '10.244.0.0/16'),
    node('n1', { ip: '192.168.0.1' }),
    namespace('egress', { nameLabel: false }),
    ...gws,
  ];
  for (let i = 0; i < 20; i++) res.push(namespace(`team-${i}`, { annotations: { [ANNOTATION.selector]: "app == 'egw'", [ANNOTATION.namespaceSelector]: "projectcalico.org/name == 'egress'", [ANNOTATION.maxNextHops]: hops }, nameLabel: false }));
  for (let i = 0; i < clients; i++) res.push(pod(`team-${i % 20}`, `web-${i}-7f9c`, { ip: `10.244.${i >> 8}.${i & 255}`, node: 'n1', ready: null }));
  return new EgressCalculator().load(res);
}
function hopSets(c: EgressCalculator): Map<string, string[]> {
  const st = c.nodeState('n1');
  return new Map(st.rules.map((r) => [r.pod, lookup(st, r.pod, '8.8.8.8') as string[]]));
}

describe('calc: rendezvous hashing of (client, gateway)', () => {
  it('balances: 1,000 clients, 10 gateways, maxNextHops 2 → each gateway within ±15% of the mean', () => {
    const sets = hopSets(setup(gateways(GWS), 1000, '2'));
    assert.equal(sets.size, 1000);
    const load = new Map<string, number>();
    for (const via of sets.values()) {
      assert.equal(via.length, 2);
      for (const ip of via) load.set(ip, (load.get(ip) ?? 0) + 1);
    }
    assert.equal(load.size, GWS);
    const mean = 2000 / GWS;
    for (const [ip, n] of load) assert.ok(Math.abs(n - mean) <= 0.15 * mean, `${ip} serves ${n}, mean ${mean}: ${JSON.stringify([...load])}`);
  });

  it('is stable: removing 1 of 10 gateways changes only the clients that used it', () => {
    const before = hopSets(setup(gateways(GWS), 1000, '2'));
    const removedIp = '10.10.10.13';
    const c = setup(gateways(GWS), 1000, '2');
    c.remove({ kind: 'Pod', namespace: 'egress', name: 'gateway-3' });
    const after = hopSets(c);
    let changed = 0;
    for (const [client, via] of before) {
      const now = after.get(client)!;
      if (via.includes(removedIp)) {
        changed++;
        assert.ok(!now.includes(removedIp));
        // the other hop stays: only the lost one is replaced
        const kept = via.find((x) => x !== removedIp)!;
        assert.ok(now.includes(kept), `${client}: ${via} → ${now}`);
      } else assert.deepEqual(now, via, `${client} did not use the removed gateway but moved`);
    }
    assert.ok(changed > 100 && changed < 300, `changed ${changed}`);
    // and adding it back restores the original choice exactly
    c.upsert(gateways(GWS)[3]);
    assert.deepEqual(hopSets(c), before);
  });

  it('is the same on every node and after a restart (fresh calculator)', () => {
    const a = hopSets(setup(gateways(GWS), 200, '3'));
    const b = hopSets(setup([...gateways(GWS)].reverse(), 200, '3'));
    assert.deepEqual(a, b);
  });
});
