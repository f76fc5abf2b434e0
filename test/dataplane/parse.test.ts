// Parsing real `ip -json` / `bridge -json` / `nft -j` output (test/dataplane/samples.ts) into what the diff needs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findAddressDevice, isMissingDevice, normalizeDst, parseFdb, parseLink, parseNeighbours, parseRoutes, parseRules, parseSysctls, routeSignature } from '../../src/dataplane/kernel.js';
import { canonicalTable, nodeNftTable, parseNftTable } from '../../src/dataplane/nft.js';
import { natConfig } from './helpers.js';
import { ADDRS, FDB, LINK, LINK_LEARNING_REMOTE_ADDR, LINK_VETH, MISSING_DEVICE_STDERR, NEIGH, NFT, NFT_STICKY, ROUTES, RULES, RULES_STICKY, SYSCTLS } from './samples.js';

describe('parse ip rule', () => {
  const rules = parseRules(RULES);
  test('every rule, with normalised sources and numeric tables', () => {
    assert.equal(rules.length, 9);
    assert.deepEqual(rules[1], { priority: 100, src: '10.244.0.5/32', table: 1001, plain: true, markPlain: false });
    assert.deepEqual(rules[0], { priority: 0, src: 'all', table: 255, plain: false, markPlain: false });
  });
  test('selectors and actions make a rule not plain, and are kept for an exact delete', () => {
    assert.deepEqual(rules[4], { priority: 100, src: '10.244.1.0/24', fwmark: '0x10', fwmask: '0xff', iif: 'eth0', table: 254, plain: false, markPlain: false });
    assert.deepEqual(rules[5], { priority: 100, src: '10.9.9.9/32', action: 'unreachable', plain: false, markPlain: false });
    assert.deepEqual(rules[6], { priority: 5000, src: 'all', table: 1005, plain: false, markPlain: false });
  });
  test('not/to/tos/oif/ipproto/dport, goto', () => {
    const r = parseRules(
      '[{"priority":100,"not":null,"src":"10.8.0.0","srclen":16,"dst":"1.1.0.0","dstlen":16,"tos":"0x10","oif":"eth0","ipproto":"ipproto-6","dport":80,"table":"1001"},{"priority":100,"src":"10.7.7.8","goto":32766}]',
    );
    assert.deepEqual(r[0], { priority: 100, src: '10.8.0.0/16', dst: '1.1.0.0/16', not: true, tos: '0x10', oif: 'eth0', ipproto: '6', dport: '80', table: 1001, plain: false, markPlain: false });
    assert.deepEqual(r[1], { priority: 100, src: '10.7.7.8/32', action: 'goto 32766', plain: false, markPlain: false });
  });
  test('a stickiness rule: fwmark/mask and a table, nothing else', () => {
    const r = parseRules(RULES_STICKY).filter((x) => x.priority === 99);
    assert.deepEqual(r[0], { priority: 99, src: '10.244.0.0/16', fwmark: '0x40', fwmask: '0x3fc0', table: 2000001, plain: false, markPlain: true });
    assert.equal(r.length, 2);
    assert.equal(parseRules(RULES)[4].markPlain, false, 'iif makes it something else');
  });
  test('empty output', () => assert.deepEqual(parseRules(''), []));
});

describe('parse ip route', () => {
  const routes = parseRoutes(ROUTES, 1000, 2 ** 20, 'egw.vxlan');
  test('only the egw table range', () => {
    assert.deepEqual([...new Set(routes.map((r) => r.table))], [1001, 1002, 1003]);
    assert.equal(routes.length, 7);
  });
  test('ECMP (nexthops), single hop, throw and unreachable (numeric types) match the desired signatures', () => {
    const dev = 'egw.vxlan';
    const [ecmp, thr, single, unr] = routes;
    assert.deepEqual(ecmp, { table: 1001, dst: '0.0.0.0/0', type: 'unicast', metric: 0, usesDevice: true, sig: routeSignature({ dst: '0.0.0.0/0', type: 'ecmp', via: ['10.10.0.2', '10.10.0.3'] }, dev) });
    assert.equal(thr.sig, routeSignature({ dst: '10.244.0.0/16', type: 'throw' }, dev));
    assert.equal(thr.type, 'throw');
    assert.equal(thr.usesDevice, false);
    assert.equal(single.sig, routeSignature({ dst: '0.0.0.0/0', type: 'ecmp', via: ['10.10.0.2'] }, dev));
    assert.equal(unr.sig, 'unreachable');
    assert.equal(unr.type, 'unreachable');
  });
  test('foreign attributes (scope, metrics, protocol) make a route differ; metric is part of the identity', () => {
    const mtu = routes.find((r) => r.dst === '1.2.3.0/24')!;
    assert.match(mtu.sig, /\?metrics=.*scope=/);
    const stat = routes.find((r) => r.dst === '1.2.3.4/32')!;
    assert.equal(stat.metric, 5);
    assert.match(stat.sig, /^via 10\.10\.0\.2 dev egw\.vxlan onlink \?protocol="4"$/);
  });
  test('normalizeDst', () => {
    assert.equal(normalizeDst('default'), '0.0.0.0/0');
    assert.equal(normalizeDst('1.2.3.4'), '1.2.3.4/32');
    assert.equal(normalizeDst('10.1.2.3/8'), '10.0.0.0/8');
    assert.equal(normalizeDst('fe80::/64'), null);
  });
});

describe('parse link', () => {
  test('egw.vxlan as created', () => {
    assert.deepEqual(parseLink(LINK), {
      ifindex: 3,
      name: 'egw.vxlan',
      kind: 'vxlan',
      vni: 4097,
      port: 4790,
      local: '172.31.99.11',
      learning: false,
      hasPeer: false,
      mtu: 1450,
      up: true,
      addresses: [],
    });
  });
  test('learning, remote, an IPv4 address, down', () => {
    const l = parseLink(LINK_LEARNING_REMOTE_ADDR)!;
    assert.equal(l.learning, true);
    assert.equal(l.hasPeer, true);
    assert.equal(l.up, false);
    assert.deepEqual(l.addresses, ['192.0.2.1/24']);
    assert.equal(l.vni, 7);
    assert.equal(l.port, 4789);
  });
  test('a veth is not a vxlan', () => {
    const l = parseLink(LINK_VETH)!;
    assert.equal(l.kind, 'veth');
    assert.equal(l.vni, null);
  });
  test('missing device', () => assert.ok(isMissingDevice(MISSING_DEVICE_STDERR)));
});

describe('parse neighbours, fdb, sysctls, addresses', () => {
  test('neighbours', () => {
    assert.deepEqual(parseNeighbours(NEIGH), [
      { ip: '10.10.0.9', mac: 'a2:2a:0a:0a:00:09', permanent: true },
      { ip: '10.10.0.3', mac: 'a2:2a:0a:0a:00:03', permanent: true },
      { ip: '10.10.0.2', mac: 'a2:2a:0a:0a:00:02', permanent: true },
    ]);
    assert.deepEqual(parseNeighbours('[{"dst":"10.1.1.1","state":["FAILED"]}]'), [{ ip: '10.1.1.1', mac: null, permanent: false }]);
  });
  test('fdb: entries with port/vni are odd', () => {
    assert.deepEqual(parseFdb(FDB), [
      { mac: '00:00:00:00:00:00', dst: '10.10.0.99', port: 4789, vni: 7, odd: true },
      { mac: 'a2:2a:0a:0a:00:03', dst: '10.10.0.3', odd: false },
      { mac: 'a2:2a:0a:0a:00:02', dst: '10.10.0.2', odd: false },
    ]);
  });
  test('sysctls', () => {
    assert.deepEqual(parseSysctls(SYSCTLS, ['a', 'b']), { a: '1', b: '1' });
  });
  test('the device holding the node IP', () => {
    assert.deepEqual(findAddressDevice(ADDRS, '172.31.99.11'), { device: 'eth0', mtu: 1500, prefixlen: 24 });
    assert.equal(findAddressDevice(ADDRS, '172.31.99.12'), null);
  });
});

describe('parse nft', () => {
  test('chains and rules in order; equal to the desired table', () => {
    const t = parseNftTable(NFT, 'egw')!;
    assert.deepEqual(
      t.chains.map((c) => [c.name, c.type, c.hook, c.prio, c.policy, c.rules.length]),
      [
        ['postrouting', 'nat', 'postrouting', 100, 'accept', 2],
        ['forward', 'filter', 'forward', -150, 'accept', 1],
        ['tunnel_prerouting', 'filter', 'prerouting', -300, 'accept', 1],
        ['tunnel_output', 'filter', 'output', -300, 'accept', 1],
      ],
    );
    assert.deepEqual(t.foreign, []);
    const want = nodeNftTable({ table: 'egw', nat: natConfig(), device: 'egw.vxlan', mss: 1410, tunnelPort: 4790 });
    assert.equal(canonicalTable(t), canonicalTable(want));
  });
  test('with stickiness: the map gw_marks and its elements, two more chains; equal to the desired table', () => {
    const t = parseNftTable(NFT_STICKY, 'egw')!;
    assert.deepEqual(t.marks, [
      { ip: '10.10.0.2', mark: 0x40 },
      { ip: '10.10.0.3', mark: 0x80 },
    ]);
    assert.deepEqual(t.foreign, []);
    assert.deepEqual(t.chains.map((c) => [c.name, c.type, c.hook, c.prio]), [
      ['postrouting', 'nat', 'postrouting', 100],
      ['forward', 'filter', 'forward', -150],
      ['prerouting', 'filter', 'prerouting', -150],
      ['postrouting_mark', 'filter', 'postrouting', -150],
      ['tunnel_prerouting', 'filter', 'prerouting', -300],
      ['tunnel_output', 'filter', 'output', -300],
    ]);
    const sticky = { mask: 0x00003fc0, clientPools: ['10.244.0.0/16'], marks: [{ ip: '10.10.0.9', mark: 0x140 }] };
    const want = nodeNftTable({ table: 'egw', nat: natConfig(), device: 'egw.vxlan', mss: 1410, tunnelPort: 4790, sticky });
    assert.equal(canonicalTable(t), canonicalTable(want), 'elements are not part of the shape');
    assert.notEqual(canonicalTable(t), canonicalTable(nodeNftTable({ table: 'egw', nat: natConfig(), device: 'egw.vxlan', mss: 1410, tunnelPort: 4790 })), 'the map and chains are');
    assert.notEqual(canonicalTable(t), canonicalTable(nodeNftTable({ table: 'egw', nat: natConfig(), device: 'egw.vxlan', mss: 1410, tunnelPort: 4790, sticky: { ...sticky, mask: 0xff000000 } })));
  });
  test('a gw_marks map of another shape is foreign (the table gets rebuilt)', () => {
    const doc = JSON.parse(NFT_STICKY) as { nftables: Record<string, Record<string, unknown>>[] };
    for (const change of [{ flags: ['interval'] }, { map: 'verdict' }, { elem: [[{ prefix: { addr: '10.10.0.0', len: 24 } }, 64]] }]) {
      const bad = { nftables: doc.nftables.map((o) => (o.map ? { map: { ...o.map, ...change } } : o)) };
      const t = parseNftTable(JSON.stringify(bad), 'egw')!;
      assert.equal(t.marks, undefined);
      assert.equal(t.foreign.length, 1);
    }
  });
  test('another table in the output is not this one', () => {
    assert.equal(parseNftTable('{"nftables":[{"table":{"family":"ip","name":"other","handle":1}}]}', 'egw'), null);
  });
});
