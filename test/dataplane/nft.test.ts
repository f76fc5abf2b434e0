// The node's nft table: desired content, and a comparison that survives nft's way of printing sets.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addressIntervals, canonicalTable, nftRebuildDocument, nodeNftTable, parseNftTable } from '../../src/dataplane/nft.js';
import { natConfig } from './helpers.js';

const input = (nat = natConfig(), mss = 1410) => ({ table: 'egw', nat, device: 'egw.vxlan', mss, tunnelPort: 4790 });

/** What nft 1.0.6 listed for adjacent pools 10.244.0.0/16 + 10.245.0.0/24 (+ 10.245.1.0/24 in allPools). */
const LISTED_WITH_RANGES = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'ip', name: 'egw', handle: 2 } },
    { chain: { family: 'ip', table: 'egw', name: 'postrouting', handle: 1, type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } },
    { chain: { family: 'ip', table: 'egw', name: 'forward', handle: 2, type: 'filter', hook: 'forward', prio: -150, policy: 'accept' } },
    { chain: { family: 'ip', table: 'egw', name: 'tunnel_prerouting', handle: 3, type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' } },
    { chain: { family: 'ip', table: 'egw', name: 'tunnel_output', handle: 4, type: 'filter', hook: 'output', prio: -300, policy: 'accept' } },
    {
      rule: {
        family: 'ip',
        table: 'egw',
        chain: 'postrouting',
        handle: 3,
        comment: 'egress-pool sources are never SNATed',
        expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { prefix: { addr: '10.10.0.0', len: 24 } } } }, { return: null }],
      },
    },
    {
      rule: {
        family: 'ip',
        table: 'egw',
        chain: 'postrouting',
        handle: 6,
        comment: 'natOutgoing',
        expr: [
          { match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'eth0' } },
          { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { set: [{ range: ['10.244.0.0', '10.245.0.255'] }] } } },
          { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { set: [{ prefix: { addr: '10.10.0.0', len: 24 } }, { range: ['10.244.0.0', '10.245.1.255'] }] } } },
          { masquerade: null },
        ],
      },
    },
    {
      rule: {
        family: 'ip',
        table: 'egw',
        chain: 'forward',
        handle: 7,
        comment: 'clamp TCP MSS to the tunnel MTU',
        expr: [
          { match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'egw.vxlan' } },
          { match: { op: '==', left: { '&': [{ payload: { protocol: 'tcp', field: 'flags' } }, ['syn', 'rst']] }, right: 'syn' } },
          { match: { op: '>', left: { 'tcp option': { name: 'maxseg', field: 'size' } }, right: 1410 } },
          { mangle: { key: { 'tcp option': { name: 'maxseg', field: 'size' } }, value: 1410 } },
        ],
      },
    },
    ...['tunnel_prerouting', 'tunnel_output'].map((chain, i) => ({
      rule: {
        family: 'ip',
        table: 'egw',
        chain,
        handle: 11 + 2 * i,
        comment: "the tunnel's outer packets skip conntrack",
        expr: [
          { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { prefix: { addr: '10.10.0.0', len: 24 } } } },
          { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: 4790 } },
          { notrack: null },
        ],
      },
    })),
  ],
});

describe('node nft table', () => {
  test('NAT on: postrouting (egress pools return, then masquerade) and the MSS clamp', () => {
    const t = nodeNftTable(input());
    assert.deepEqual(
      t.chains.map((c) => [c.name, c.type, c.hook, c.prio, c.rules.length]),
      [
        ['postrouting', 'nat', 'postrouting', 100, 2],
        ['forward', 'filter', 'forward', -150, 1],
        ['tunnel_prerouting', 'filter', 'prerouting', -300, 1],
        ['tunnel_output', 'filter', 'output', -300, 1],
      ],
    );
    assert.deepEqual(t.chains[0].rules[0].expr[1], { return: null });
    assert.deepEqual(t.chains[0].rules[1].expr.at(-1), { masquerade: null });
  });

  test('NAT off: no postrouting chain; no egress pools: no return rule; no natOutgoing pools: no masquerade', () => {
    assert.deepEqual(nodeNftTable(input(natConfig({ enabled: false }))).chains.map((c) => c.name), ['forward', 'tunnel_prerouting', 'tunnel_output']);
    const noEgress = nodeNftTable(input(natConfig({ egressPools: [] })));
    assert.equal(noEgress.chains[0].rules.length, 1);
    assert.equal(noEgress.chains[0].rules[0].comment, 'natOutgoing');
    const noMasq = nodeNftTable(input(natConfig({ masqueradePools: [] })));
    assert.deepEqual(noMasq.chains[0].rules.map((r) => r.comment), ['egress-pool sources are never SNATed']);
  });

  test('host-IP mode: an egress pool with natOutgoing loses its return and is masqueraded, except toward pools and node IPs', () => {
    // Two egress pools, adjacent (nft would merge them): 10.10.0.0/25 in host-IP mode, 10.10.0.128/25 not.
    const nat = natConfig({
      egressPools: ['10.10.0.0/25', '10.10.0.128/25'],
      hostIPPools: ['10.10.0.0/25'],
      allPools: ['10.244.0.0/16', '10.10.0.0/25', '10.10.0.128/25'],
      nodeAddresses: ['172.31.0.11', '172.31.0.12'],
    });
    const rules = nodeNftTable(input(nat)).chains[0].rules;
    assert.deepEqual(rules.map((r) => r.comment), ['egress-pool sources are never SNATed', 'natOutgoing', 'host-IP mode: egress pools with natOutgoing']);
    const right = (r: { expr: unknown[] }, i: number) => (r.expr[i] as { match: { right: unknown } }).match.right;
    assert.deepEqual(right(rules[0], 0), { prefix: { addr: '10.10.0.128', len: 25 } }, 'only the pool without natOutgoing returns');
    assert.deepEqual(right(rules[2], 0), 'eth0');
    assert.deepEqual(right(rules[2], 1), { prefix: { addr: '10.10.0.0', len: 25 } });
    assert.deepEqual(right(rules[2], 2), { set: [{ prefix: { addr: '10.10.0.0', len: 24 } }, { prefix: { addr: '10.244.0.0', len: 16 } }, '172.31.0.11', '172.31.0.12'] }, 'pools and node addresses, aggregated');
    assert.deepEqual(rules[2].expr.at(-1), { masquerade: null });
    // Every egress pool in host-IP mode: no return rule at all; no underlay device: no masquerade.
    const all = nodeNftTable(input(natConfig({ ...nat, hostIPPools: ['10.10.0.128/25', '10.10.0.0/25'] }))).chains[0].rules;
    assert.deepEqual(all.map((r) => r.comment), ['natOutgoing', 'host-IP mode: egress pools with natOutgoing']);
    assert.deepEqual(nodeNftTable(input(natConfig({ ...nat, underlayDevice: '' }))).chains[0].rules.map((r) => r.comment), ['egress-pool sources are never SNATed']);
  });

  test('overlapping and adjacent pools are aggregated before they reach nft (which rejects overlaps)', () => {
    const t = nodeNftTable(input(natConfig({ masqueradePools: ['10.244.0.0/16', '10.244.1.0/24', '10.245.0.0/16'] })));
    const saddr = (t.chains[0].rules[1].expr[1] as { match: { right: unknown } }).match.right;
    assert.deepEqual(saddr, { prefix: { addr: '10.244.0.0', len: 15 } });
  });

  test('nft merging adjacent set elements into ranges is still "equal"', () => {
    const listed = parseNftTable(LISTED_WITH_RANGES, 'egw')!;
    const want = nodeNftTable(input(natConfig({ masqueradePools: ['10.244.0.0/16', '10.245.0.0/24'], allPools: ['10.244.0.0/16', '10.245.0.0/24', '10.245.1.0/24', '10.10.0.0/24'] })));
    assert.equal(canonicalTable(listed), canonicalTable(want));
    const other = nodeNftTable(input(natConfig({ masqueradePools: ['10.244.0.0/16'] })));
    assert.notEqual(canonicalTable(listed), canonicalTable(other));
    assert.notEqual(canonicalTable(listed), canonicalTable(nodeNftTable(input(natConfig(), 1400))));
  });

  test('a hand-added chain, rule or set makes the table differ', () => {
    const doc = JSON.parse(LISTED_WITH_RANGES) as { nftables: unknown[] };
    const want = canonicalTable(parseNftTable(LISTED_WITH_RANGES, 'egw')!);
    const withSet = { nftables: [...doc.nftables, { set: { family: 'ip', table: 'egw', name: 's', type: 'ipv4_addr', handle: 9 } }] };
    assert.notEqual(canonicalTable(parseNftTable(JSON.stringify(withSet), 'egw')!), want);
    const withChain = { nftables: [...doc.nftables, { chain: { family: 'ip', table: 'egw', name: 'x', handle: 9 } }] };
    assert.notEqual(canonicalTable(parseNftTable(JSON.stringify(withChain), 'egw')!), want);
    const withRule = { nftables: [...doc.nftables, { rule: { family: 'ip', table: 'egw', chain: 'forward', handle: 9, expr: [{ accept: null }] } }] };
    assert.notEqual(canonicalTable(parseNftTable(JSON.stringify(withRule), 'egw')!), want);
  });

  test('addressIntervals', () => {
    assert.deepEqual(addressIntervals('10.0.0.1'), [[0x0a000001, 0x0a000001]]);
    assert.deepEqual(addressIntervals({ prefix: { addr: '10.0.0.0', len: 31 } }), [[0x0a000000, 0x0a000001]]);
    assert.deepEqual(addressIntervals({ set: ['10.0.0.1', { range: ['10.0.0.2', '10.0.0.5'] }] }), [[0x0a000001, 0x0a000005]]);
    assert.equal(addressIntervals('eth0'), null);
    assert.equal(addressIntervals({ set: ['syn', 'ack'] }), null);
  });

  test('the rebuild is one transaction: add, delete, add the table, then chains, then rules', () => {
    const doc = nftRebuildDocument(nodeNftTable(input()));
    const ops = doc.nftables.map((o) => {
      const [verb, body] = Object.entries(o as Record<string, Record<string, unknown>>)[0];
      return `${verb} ${Object.keys(body)[0]}`;
    });
    assert.deepEqual(ops, ['add table', 'delete table', 'add table', ...Array(4).fill('add chain'), ...Array(5).fill('add rule')]);
  });

  test("the tunnel's outer packets to gateways skip conntrack, sent and forwarded; no egress pools: no such chains", () => {
    const t = nodeNftTable(input(natConfig({ egressPools: ['10.10.0.0/25', '10.10.0.128/25', '10.20.0.0/24'] })));
    const tun = t.chains.filter((c) => c.name.startsWith('tunnel_'));
    assert.deepEqual(tun.map((c) => [c.name, c.type, c.hook, c.prio]), [
      ['tunnel_prerouting', 'filter', 'prerouting', -300],
      ['tunnel_output', 'filter', 'output', -300],
    ]);
    for (const c of tun) {
      assert.deepEqual(c.rules.map((r) => r.expr), [
        [
          { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { set: [{ prefix: { addr: '10.10.0.0', len: 24 } }, { prefix: { addr: '10.20.0.0', len: 24 } }] } } },
          { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: 4790 } },
          { notrack: null },
        ],
      ]);
    }
    assert.notEqual(canonicalTable(t), canonicalTable(nodeNftTable({ ...input(natConfig({ egressPools: ['10.10.0.0/24', '10.20.0.0/24'] })), tunnelPort: 4789 })), 'the port is part of the shape');
    assert.deepEqual(nodeNftTable(input(natConfig({ egressPools: [] }))).chains.map((c) => c.name), ['postrouting', 'forward']);
  });
});
