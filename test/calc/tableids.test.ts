// Table IDs: derived from content, history-independent under collisions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { aggregatePrefixes, formatCidr, gatewayMac, parsePrefix } from '../../src/api/ipv4.js';
import { TableIdAllocator } from '../../src/calc/index.js';

function fresh(keys: Iterable<string>, base: number, size: number): [string, number][] {
  const a = new TableIdAllocator(base, size);
  for (const k of [...keys].sort()) a.allocate(k);
  return a.entries();
}

describe('calc: table ID allocation', () => {
  it('an ID depends only on the key when there is no collision', () => {
    const a = new TableIdAllocator();
    const b = new TableIdAllocator();
    assert.equal(a.allocate('0.0.0.0/0 via 10.0.0.1').id, b.allocate('0.0.0.0/0 via 10.0.0.1').id);
    assert.equal(a.allocate('0.0.0.0/0 via 10.0.0.1').id, a.idOf('0.0.0.0/0 via 10.0.0.1'));
    const id = a.idOf('0.0.0.0/0 via 10.0.0.1')!;
    assert.ok(id >= 1000 && id < 1000 + 2 ** 20);
  });

  it('rejects ranges that hit reserved tables or overflow 32 bits', () => {
    assert.throws(() => new TableIdAllocator(200, 100));
    assert.throws(() => new TableIdAllocator(0, 100));
    assert.throws(() => new TableIdAllocator(2 ** 32 - 10, 100));
    assert.doesNotThrow(() => new TableIdAllocator(256, 1000));
  });

  it('the layout is a function of the key set, whatever the order of inserts and removes (forced collisions)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ add: fc.boolean(), k: fc.integer({ min: 0, max: 40 }) }), { maxLength: 120 }),
        fc.integer({ min: 48, max: 96 }),
        (ops, size) => {
          const a = new TableIdAllocator(5000, size);
          const live = new Set<string>();
          for (const op of ops) {
            const key = `k${op.k}`;
            if (op.add) {
              const { id, moves } = a.allocate(key);
              live.add(key);
              assert.equal(a.idOf(key), id);
              for (const m of moves) assert.equal(a.idOf(m.key), m.to);
            } else {
              a.release(key);
              live.delete(key);
            }
          }
          const got = a.entries();
          assert.deepEqual(got, fresh(live, 5000, size));
          assert.equal(new Set(got.map((e) => e[1])).size, got.length, 'IDs are unique');
          for (const [, id] of got) assert.ok(id >= 5000 && id < 5000 + size);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('thousands of tables in the default range stay unique and reproducible', () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `0.0.0.0/0 via 10.0.${i >> 8}.${i & 255}`);
    const a = new TableIdAllocator();
    for (const k of keys) a.allocate(k);
    const b = new TableIdAllocator();
    for (const k of [...keys].reverse()) b.allocate(k);
    assert.deepEqual(a.entries(), b.entries());
    assert.equal(new Set(a.entries().map((e) => e[1])).size, 5000);
  });
});

describe('calc: prefixes and MACs', () => {
  it('aggregates node addresses and pools into the minimal cover', () => {
    const p = (s: string) => parsePrefix(s)!;
    const agg = (xs: string[]) => aggregatePrefixes(xs.map(p)).map(formatCidr);
    assert.deepEqual(agg(['192.168.1.0', '192.168.1.1', '192.168.1.2', '192.168.1.3']), ['192.168.1.0/30']);
    assert.deepEqual(agg(['192.168.1.1', '192.168.1.2']), ['192.168.1.1/32', '192.168.1.2/32']);
    assert.deepEqual(agg(['10.244.0.0/16', '10.244.3.0/24', '10.245.0.0/16', '10.0.0.5']), ['10.0.0.5/32', '10.244.0.0/15']);
    assert.deepEqual(agg(['0.0.0.0/1', '128.0.0.0/1']), ['0.0.0.0/0']);
    assert.deepEqual(agg([]), []);
    assert.equal(formatCidr(p('10.1.2.3/8')), '10.0.0.0/8');
  });

  it('aggregation covers exactly the union (random check)', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ a: fc.integer({ min: 0, max: 255 }), len: fc.integer({ min: 26, max: 32 }) }), { maxLength: 20 }), (xs) => {
        const ps = xs.map((x) => parsePrefix(`10.0.0.${x.a}/${x.len}`)!);
        const agg = aggregatePrefixes(ps);
        const inUnion = (ip: number) => ps.some((p) => ip >>> (32 - p.prefix) === p.addr >>> (32 - p.prefix) || p.prefix === 0);
        const inAgg = (ip: number) => agg.filter((p) => (p.prefix === 0 ? true : ip >>> (32 - p.prefix) === p.addr >>> (32 - p.prefix))).length;
        for (let i = 0; i < 256; i++) {
          const ip = (10 * 2 ** 24 + i) >>> 0;
          assert.equal(inAgg(ip), inUnion(ip) ? 1 : 0);
        }
        for (let i = 1; i < agg.length; i++) {
          const prev = agg[i - 1];
          const cur = agg[i];
          assert.ok(prev.addr + 2 ** (32 - prev.prefix) <= cur.addr, 'sorted and disjoint');
          const siblings = prev.prefix === cur.prefix && prev.prefix > 0 && prev.addr % 2 ** (33 - prev.prefix) === 0 && cur.addr === prev.addr + 2 ** (32 - prev.prefix);
          assert.ok(!siblings, 'minimal: no two blocks merge into one');
        }
      }),
    );
  });

  it('gateway MAC = a2:2a + IP octets in hex', () => {
    assert.equal(gatewayMac(parsePrefix('10.10.10.1')!.addr), 'a2:2a:0a:0a:0a:01');
    assert.equal(gatewayMac(parsePrefix('192.168.255.254')!.addr), 'a2:2a:c0:a8:ff:fe');
  });
});
