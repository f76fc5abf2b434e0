// poolsForPod: which pools a pod's address may come from.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IpamError, poolsForPod } from '../../src/ipam/index.js';
import { ANNOTATION } from '../../src/api/types.js';
import { ippool, node, pod } from '../helpers/resources.js';

/** A pod whose pools annotation says `pools`. */
const withPools = (pools: string) => pod('ns', 'gw', { annotations: { [ANNOTATION.ipv4Pools]: pools } });
const names = (ps: { metadata: { name: string } }[]) => ps.map((p) => p.metadata.name);

const pools = [
  ippool('default', '10.244.0.0/16'),
  ippool('egress', '10.10.10.0/30', { blockSize: 31, nodeSelector: '!all()' }),
  ippool('zone-a', '10.245.0.0/16', { nodeSelector: "zone == 'a'" }),
  ippool('off', '10.246.0.0/16', { disabled: true }),
  ippool('tunnel-only', '10.247.0.0/16', { allowedUses: ['Tunnel'] }),
  ippool('lb', '10.248.0.0/16', { allowedUses: ['LoadBalancer', 'Workload'] }),
];

function expectIpamError(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof IpamError, `expected IpamError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  });
}

describe('poolsForPod', () => {
  it('uses the annotation by pool name, in the order given', () => {
    const p = withPools('["egress", "default"]');
    assert.deepEqual(names(poolsForPod(p, node('n1'), pools)), ['egress', 'default']);
  });

  it('uses the annotation by CIDR (normalised) and de-duplicates', () => {
    const p = withPools('["10.10.10.0/30", "egress", " 10.244.0.0/16"]');
    assert.deepEqual(names(poolsForPod(p, node('n1'), pools)), ['egress', 'default']);
  });

  it('an unknown pool in the annotation is an error naming it', () => {
    expectIpamError(() => poolsForPod(withPools('["egress", "nope"]'), node('n1'), pools), 'NoPool', /"nope".*does not exist/);
    expectIpamError(() => poolsForPod(withPools('["192.168.0.0/24"]'), node('n1'), pools), 'NoPool', /192\.168\.0\.0\/24/);
  });

  it('a disabled pool in the annotation is an error naming it', () => {
    expectIpamError(() => poolsForPod(withPools('["off"]'), node('n1'), pools), 'NoPool', /"off".*disabled/);
  });

  it('a malformed annotation is Invalid', () => {
    expectIpamError(() => poolsForPod(withPools('egress'), node('n1'), pools), 'Invalid', /not JSON/);
    expectIpamError(() => poolsForPod(withPools('{"a":1}'), node('n1'), pools), 'Invalid', /JSON list/);
    expectIpamError(() => poolsForPod(withPools('[]'), node('n1'), pools), 'NoPool', /names no pool/);
  });

  it('a named pool that does not allow Workload is an error', () => {
    expectIpamError(() => poolsForPod(withPools('["tunnel-only"]'), node('n1'), pools), 'NoPool', /allowedUses/);
  });

  it('without the annotation: enabled pools whose nodeSelector matches the node', () => {
    assert.deepEqual(names(poolsForPod(pod('ns', 'a'), node('n1', { labels: { zone: 'a' } }), pools)), ['default', 'zone-a', 'lb']);
    assert.deepEqual(names(poolsForPod(pod('ns', 'a'), node('n2', { labels: { zone: 'b' } }), pools)), ['default', 'lb']);
    assert.deepEqual(names(poolsForPod(pod('ns', 'a'), node('n3'), pools)), ['default', 'lb']);
  });

  it('"!all()" pools are never chosen without the annotation', () => {
    for (const n of [node('n1'), node('n2', { labels: { zone: 'a' } }), node('n3', { labels: { egress: 'true' } })]) {
      assert.ok(!names(poolsForPod(pod('ns', 'a'), n, pools)).includes('egress'));
    }
    // ... but a pod that names it gets it, whatever the node.
    assert.deepEqual(names(poolsForPod(withPools('["egress"]'), node('n1'), pools)), ['egress']);
  });

  it('allowedUses: only pools that allow Workload (absent = Workload and Tunnel)', () => {
    const got = names(poolsForPod(pod('ns', 'a'), node('n1'), pools));
    assert.ok(!got.includes('tunnel-only'));
    assert.ok(got.includes('lb'));
    assert.ok(got.includes('default'));
  });

  it('no pool serves the node: empty list', () => {
    assert.deepEqual(poolsForPod(pod('ns', 'a'), node('n1'), [pools[1], pools[3]]), []);
  });
});
