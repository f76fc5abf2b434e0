// IPv6 pools are valid resources (docs/behaviour.md §1) but never reach egw's IPv4-only parts: IPAM, the calculator's
// internal CIDRs and the node NAT configuration each skip them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EgressCalculator } from '../../src/calc/index.js';
import { natConfigFromResources } from '../../src/agent/nat.js';
import { IpamError, isIPv4Pool, poolsForPod } from '../../src/ipam/index.js';
import { ANNOTATION } from '../../src/api/types.js';
import { felixConfiguration, egressGateway, ippool, node, pod } from '../helpers/resources.js';

const V6 = ippool('v6', 'fd00:10::/120', { blockSize: 122, natOutgoing: true });
const V4 = ippool('v4', '10.244.0.0/16', { natOutgoing: true });

test('IPAM: an IPv6 pool gives no pod an address, by default or by annotation', () => {
  assert.equal(isIPv4Pool(V6), false);
  assert.equal(isIPv4Pool(V4), true);
  const n = node('n1', { ip: '192.168.1.1' });
  assert.deepEqual(poolsForPod(pod('default', 'c1'), n, [V6, V4]).map((p) => p.metadata.name), ['v4']);
  assert.deepEqual(poolsForPod(pod('default', 'c1'), n, [V6]), []);
  const named = pod('default', 'c2', { annotations: { [ANNOTATION.ipv4Pools]: '["v6"]' } });
  assert.throws(() => poolsForPod(named, n, [V6, V4]), (e: unknown) => e instanceof IpamError && /IP pool "v6" .* is not an IPv4 pool/.test(e.message));
});

test('calc: an IPv6 pool is not among the internal CIDRs every table throws', () => {
  const base = [felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }), node('n1', { ip: '192.168.1.1' }), V4];
  const without = new EgressCalculator().load(base).nodeState('n1').internalCidrs;
  const withV6 = new EgressCalculator().load([...base, V6]).nodeState('n1').internalCidrs;
  assert.ok(without.includes('10.244.0.0/16'));
  assert.deepEqual(withV6, without);
  assert.ok(!withV6.some((c) => c.includes(':')));
});

test('node NAT: an IPv6 pool is neither masqueraded nor an internal destination', () => {
  const gw = egressGateway('default', 'gw', { ipPools: [{ name: 'v6' }] });
  const cfg = natConfigFromResources([V4, V6], [gw], { enabled: true, underlayDevice: 'eth0' });
  assert.deepEqual(cfg.allPools, ['10.244.0.0/16']);
  assert.deepEqual(cfg.masqueradePools, ['10.244.0.0/16']);
  assert.deepEqual(cfg.egressPools, []);
});
