// Ipam: block allocation in the datastore (MemoryStore).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/datastore/memory.js';
import { Ipam, IpamError, type IPAMBlock } from '../../src/ipam/index.js';
import { ippool } from '../helpers/resources.js';

async function blocks(store: MemoryStore): Promise<IPAMBlock[]> {
  return (await store.list('IPAMBlock')).items as IPAMBlock[];
}

async function expectIpamError(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof IpamError, `expected IpamError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  });
}

describe('Ipam', () => {
  it('fills a node\'s block in order, then claims a new one', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    const pool = ippool('p', '10.0.0.0/24', { blockSize: 30 });
    const got: string[] = [];
    for (let i = 0; i < 6; i++) got.push(await ipam.allocate({ handle: `pod:ns/a${i}`, node: 'n1', pools: [pool] }));
    // Every address of a block is used, network and broadcast included.
    assert.deepEqual(got, ['10.0.0.0', '10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5']);
    const bs = await blocks(store);
    assert.deepEqual(
      bs.map((b) => [b.metadata.name, b.apiVersion, b.spec.cidr, b.spec.pool, b.spec.affinity]),
      [
        ['10-0-0-0-30', 'egw.dev/v1', '10.0.0.0/30', 'p', 'node:n1'],
        ['10-0-0-4-30', 'egw.dev/v1', '10.0.0.4/30', 'p', 'node:n1'],
      ],
    );
    assert.deepEqual(bs[0].spec.allocations, { '10.0.0.0': 'pod:ns/a0', '10.0.0.1': 'pod:ns/a1', '10.0.0.2': 'pod:ns/a2', '10.0.0.3': 'pod:ns/a3' });
  });

  it('two nodes get different blocks', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    const pool = ippool('p', '10.0.0.0/24', { blockSize: 28 });
    const a = await ipam.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [pool] });
    const b = await ipam.allocate({ handle: 'pod:ns/b', node: 'n2', pools: [pool] });
    const a2 = await ipam.allocate({ handle: 'pod:ns/a2', node: 'n1', pools: [pool] });
    assert.equal(a, '10.0.0.0');
    assert.equal(b, '10.0.0.16');
    assert.equal(a2, '10.0.0.1');
    const bs = await blocks(store);
    assert.deepEqual(bs.map((x) => [x.spec.cidr, x.spec.affinity]), [['10.0.0.0/28', 'node:n1'], ['10.0.0.16/28', 'node:n2']]);
  });

  it('borrows from another node\'s block when no block is free, then reports exhaustion naming the pool', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    const pool = ippool('small', '10.0.0.0/29', { blockSize: 30 });
    // n1 claims both blocks.
    for (let i = 0; i < 5; i++) await ipam.allocate({ handle: `pod:ns/a${i}`, node: 'n1', pools: [pool] });
    assert.deepEqual((await blocks(store)).map((b) => b.spec.affinity), ['node:n1', 'node:n1']);
    // n2 finds no free block: borrows n1's free addresses.
    assert.equal(await ipam.allocate({ handle: 'pod:ns/b0', node: 'n2', pools: [pool] }), '10.0.0.5');
    assert.equal(await ipam.allocate({ handle: 'pod:ns/b1', node: 'n2', pools: [pool] }), '10.0.0.6');
    assert.equal(await ipam.allocate({ handle: 'pod:ns/b2', node: 'n2', pools: [pool] }), '10.0.0.7');
    const bs = await blocks(store);
    assert.equal(bs[1].spec.affinity, 'node:n1', 'borrowing does not move the affinity');
    assert.equal(bs[1].spec.allocations['10.0.0.7'], 'pod:ns/b2');
    await expectIpamError(ipam.allocate({ handle: 'pod:ns/b3', node: 'n2', pools: [pool] }), 'Exhausted', /"small".*8 of 8/);
  });

  it('moves on to the next pool when the first is full', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    const p1 = ippool('one', '10.0.0.0/32', { blockSize: 32 });
    const p2 = ippool('two', '10.0.1.0/31', { blockSize: 31 });
    assert.equal(await ipam.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [p1, p2] }), '10.0.0.0');
    assert.equal(await ipam.allocate({ handle: 'pod:ns/b', node: 'n1', pools: [p1, p2] }), '10.0.1.0');
    await ipam.allocate({ handle: 'pod:ns/c', node: 'n1', pools: [p1, p2] });
    await expectIpamError(ipam.allocate({ handle: 'pod:ns/d', node: 'n1', pools: [p1, p2] }), 'Exhausted', /pools "one".*"two"/);
  });

  it('allocate is idempotent for a handle', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    const pool = ippool('p', '10.0.0.0/24');
    const a = await ipam.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [pool] });
    const rev = await store.revision();
    const [first] = await ipam.records();
    await new Promise((r) => setTimeout(r, 5)); // a later claim time
    assert.equal(await ipam.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [pool] }), a);
    assert.equal(await ipam.allocate({ handle: 'pod:ns/a', node: 'n2', pools: [pool] }), a);
    // Each repeat claims the address again (one write each), so a garbage collection deciding on the old state loses.
    assert.equal(await store.revision(), rev + 2, 'one write per repeated allocate');
    assert.deepEqual([...(await ipam.allocations())], [['pod:ns/a', a]]);
    const [again] = await ipam.records();
    assert.ok(again.claimedAt > first.claimedAt, `claimed again: ${first.claimedAt} → ${again.claimedAt}`);
  });

  it('release frees the address for the next allocation; releasing twice returns false', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    const pool = ippool('p', '10.0.0.0/30', { blockSize: 30 });
    const ips = [];
    for (const h of ['pod:ns/a', 'pod:ns/b', 'pod:ns/c', 'pod:ns/d']) ips.push(await ipam.allocate({ handle: h, node: 'n1', pools: [pool] }));
    await expectIpamError(ipam.allocate({ handle: 'pod:ns/e', node: 'n1', pools: [pool] }), 'Exhausted', /"p"/);
    assert.equal(await ipam.release('pod:ns/b'), true);
    assert.equal(await ipam.release('pod:ns/b'), false);
    assert.equal(await ipam.release('pod:ns/never'), false);
    assert.equal((await ipam.allocations()).has('pod:ns/b'), false);
    assert.equal(await ipam.allocate({ handle: 'pod:ns/e', node: 'n1', pools: [pool] }), ips[1]);
    // Releasing everything keeps the (now empty) block and its affinity.
    for (const h of ['pod:ns/a', 'pod:ns/c', 'pod:ns/d', 'pod:ns/e']) assert.equal(await ipam.release(h), true);
    const bs = await blocks(store);
    assert.equal(bs.length, 1);
    assert.deepEqual(bs[0].spec.allocations, {});
    assert.equal(bs[0].spec.affinity, 'node:n1');
  });

  it('a guarded release (onlyIf) is decided on the blocks it writes: a re-claim in between wins', async () => {
    const store = new MemoryStore();
    const gc = new Ipam(store);
    const kubelet = new Ipam(store);
    const pool = ippool('p', '10.0.0.0/28', { blockSize: 28 });
    const ip = await kubelet.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [pool] });
    const [seen] = await gc.records();
    assert.equal(await gc.release('pod:ns/a', { onlyIf: () => false }), false, 'onlyIf said no');
    // The collector decides on what it read; meanwhile the pod comes back and its address is claimed again.
    const asked: string[] = [];
    const released = await gc.release('pod:ns/a', {
      onlyIf: async (held) => {
        asked.push(held.map((h) => `${h.ip}@${h.claimedAt}`).join(','));
        if (asked.length === 1) {
          await new Promise((r) => setTimeout(r, 5));
          assert.equal(await kubelet.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [pool] }), ip);
        }
        return held.every((h) => h.claimedAt === seen.claimedAt);
      },
    });
    assert.equal(released, false, 'the release lost to the re-claim');
    assert.equal(asked.length, 2, 'asked again after its conditioned write lost');
    assert.notEqual(asked[0], asked[1]);
    assert.equal((await gc.allocations()).get('pod:ns/a'), ip, 'the address stays allocated');
    // Without a change in between the same guard releases it.
    assert.equal(await gc.release('pod:ns/a', { onlyIf: (held) => held.length === 1 && held[0].ip === ip }), true);
    assert.deepEqual(await gc.records(), []);
  });

  it('a /31 egress pool with blockSize 31 serves exactly 2 handles on 2 nodes; a 3rd is Exhausted', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    const pool = ippool('egress', '10.10.10.0/31', { blockSize: 31, nodeSelector: '!all()' });
    const a = await ipam.allocate({ handle: 'pod:ns/gw-aaaaa', node: 'n1', pools: [pool] });
    const b = await ipam.allocate({ handle: 'pod:ns/gw-bbbbb', node: 'n2', pools: [pool] });
    assert.deepEqual([a, b].sort(), ['10.10.10.0', '10.10.10.1']);
    await expectIpamError(ipam.allocate({ handle: 'pod:ns/gw-ccccc', node: 'n3', pools: [pool] }), 'Exhausted', /"egress".*2 of 2/);
    await expectIpamError(ipam.allocate({ handle: 'pod:ns/gw-ccccc', node: 'n1', pools: [pool] }), 'Exhausted', /"egress"/);
  });

  it('a block no node holds is adopted before a new one is cut', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    const pool = ippool('p', '10.0.0.0/24', { blockSize: 30 });
    await store.create({
      apiVersion: 'egw.dev/v1',
      kind: 'IPAMBlock',
      metadata: { name: '10-0-0-8-30' },
      spec: { cidr: '10.0.0.8/30', pool: 'p', affinity: null, allocations: { '10.0.0.8': 'pod:ns/old' } },
    });
    assert.equal(await ipam.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [pool] }), '10.0.0.9');
    const bs = await blocks(store);
    assert.equal(bs.length, 1);
    assert.equal(bs[0].spec.affinity, 'node:n1');
  });

  it('new blocks never overlap existing blocks of another size (blockSize changed)', async () => {
    const store = new MemoryStore();
    const ipam = new Ipam(store);
    await ipam.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [ippool('p', '10.0.0.0/24', { blockSize: 28 })] });
    // The pool is re-created with smaller blocks; n2's new block must skip 10.0.0.0/28.
    const ip = await ipam.allocate({ handle: 'pod:ns/b', node: 'n2', pools: [ippool('p', '10.0.0.0/24', { blockSize: 30 })] });
    assert.equal(ip, '10.0.0.16');
  });

  it('rejects bad requests with Invalid and an empty pool list with NoPool', async () => {
    const ipam = new Ipam(new MemoryStore());
    await expectIpamError(ipam.allocate({ handle: '', node: 'n1', pools: [] }), 'Invalid', /handle/);
    await expectIpamError(ipam.allocate({ handle: 'pod:ns/a', node: '', pools: [] }), 'Invalid', /node/);
    await expectIpamError(ipam.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [ippool('bad', 'nope')] }), 'Invalid', /"bad"/);
    await expectIpamError(ipam.allocate({ handle: 'pod:ns/a', node: 'n1', pools: [] }), 'NoPool', /no IP pool/);
  });

  it('retries on a Conflict from a concurrent writer (same process)', async () => {
    const store = new MemoryStore();
    const ipam1 = new Ipam(store);
    const ipam2 = new Ipam(store);
    const pool = ippool('p', '10.0.0.0/26', { blockSize: 29 });
    const jobs: Promise<string>[] = [];
    for (let i = 0; i < 40; i++) jobs.push((i % 2 ? ipam1 : ipam2).allocate({ handle: `pod:ns/x${i}`, node: i % 3 ? 'n1' : 'n2', pools: [pool] }));
    const ips = await Promise.all(jobs);
    assert.equal(new Set(ips).size, 40);
  });
});
