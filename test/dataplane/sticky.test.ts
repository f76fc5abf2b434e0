// Per-connection stickiness without a kernel: mark arithmetic, the assignment (adoption, lowest free, no reuse in
// the same reconcile, capacity), and the exact command text for marks, rules and per-gateway tables.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeEgressState } from '../../src/calc/types.js';
import { IP, WRITE } from '../../src/dataplane/commands.js';
import { parseFdb, parseLink, parseNeighbours, parseRoutes, parseRules } from '../../src/dataplane/kernel.js';
import { NodeDataplane } from '../../src/dataplane/node.js';
import { nftMarkElementsDocument, parseNftTable } from '../../src/dataplane/nft.js';
import { planReconcile, type ActualState } from '../../src/dataplane/plan.js';
import { assignMarks, clientPools, indexOfMark, markOf, stickyConfig, stickyGateways } from '../../src/dataplane/sticky.js';
import { CLEAN, cannedRunner, desiredState, filterJson, lines, natConfig, writesOf } from './helpers.js';
import { ROUTES_STICKY, RULES_STICKY } from './samples.js';


/** The ActualState NodeDataplane.readActual would build from canned output. */
function actualOf(c: typeof CLEAN): ActualState {
  return {
    link: parseLink(c.link),
    rules: parseRules(c.rules),
    routes: [...parseRoutes(c.routes, 1000, 2 ** 20, 'egw.vxlan'), ...parseRoutes(c.routes, 2_000_000, 2 ** 20, 'egw.vxlan')],
    neighbours: parseNeighbours(c.neigh),
    fdb: parseFdb(c.fdb),
    nft: parseNftTable(c.nft, 'egw'),
    sysctls: { 'net.ipv4.fib_multipath_hash_policy': '1', 'net.ipv4.ip_forward': '1' },
  };
}

const EMPTY: ActualState = { link: null, rules: [], routes: [], neighbours: [], fdb: [], nft: null, sysctls: {} };
const gw = (ip: string, over: Partial<NodeEgressState['gateways'][number]> = {}) => ({
  ip,
  mac: `a2:2a:${ip
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join(':')}`,
  pod: `g/${ip}`,
  node: 'n2',
  ready: true,
  draining: false,
  ...over,
});
const markRules = (ls: string[]) => ls.filter((l) => l.includes('fwmark'));
const stickyRoutes = (ls: string[]) => ls.filter((l) => /table 2\d{6}$/.test(l));

describe('marks', () => {
  test('default mask 0x00003fc0 (outside the Felix and kube-proxy bits): 255 marks, index i ↔ i << 6', () => {
    const c = stickyConfig();
    assert.deepEqual([c.mask, c.shift, c.capacity, c.tableBase, c.enabled], [0x00003fc0, 6, 255, 2_000_000, true]);
    assert.equal(markOf(1, c), 0x40);
    assert.equal(markOf(255, c), 0x00003fc0);
    assert.equal(indexOfMark(0xc0, c), 3);
    assert.equal(indexOfMark(0xc1, c), null, 'bits outside the mask');
    assert.equal(indexOfMark(0, c), null);
  });
  test('a mask using the top bit stays unsigned; non-contiguous or zero masks are refused', () => {
    const c = stickyConfig({ mask: 0xff000000 });
    assert.equal(c.capacity, 255);
    assert.equal(markOf(255, c), 0xff000000);
    assert.equal(indexOfMark(0xff000000, c), 255);
    assert.equal(stickyConfig({ mask: 0x3 }).capacity, 3);
    assert.throws(() => stickyConfig({ mask: 0x0f0f0000 }), /contiguous/);
    assert.throws(() => stickyConfig({ mask: 0 }), /non-zero/);
  });
  test('per-gateway tables must not meet the egw tables', () => {
    assert.throws(() => new NodeDataplane(cannedRunner({}), { stickyTableBase: 1500 }), /overlap/);
    assert.doesNotThrow(() => new NodeDataplane(cannedRunner({}), { tableBase: 1000, tableRange: 1000, stickyTableBase: 2000 }));
  });
  test('sticky gateways: ready or draining; client pools: all pools minus egress pools', () => {
    const d = desiredState({ gateways: [gw('10.10.0.9', { ready: false }), gw('10.10.0.3', { draining: true }), gw('10.10.0.2'), gw('10.10.0.4', { ready: false, draining: true })] });
    assert.deepEqual(stickyGateways(d), ['10.10.0.2', '10.10.0.3', '10.10.0.4']);
    assert.deepEqual(stickyGateways(desiredState({ enabled: false })), []);
    assert.deepEqual(
      clientPools(natConfig({ allPools: ['10.244.0.0/16', '10.10.0.0/24', '10.245.0.0/16', '192.168.0.0/24'], egressPools: ['10.10.0.0/24'] })).map((p) => `${p.addr}/${p.prefix}`).length,
      2, // 10.244/16 + 10.245/16 merge into 10.244/15; 192.168.0.0/24
    );
  });
});

describe('assignMarks', () => {
  test('adopts existing indexes (map first, then tables), new IPs get the lowest free one', () => {
    const { assigned } = assignMarks(
      ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'],
      [
        [['10.0.0.3', 1]],
        [
          ['10.0.0.1', 4],
          ['10.0.0.3', 9],
        ],
      ],
      255,
    );
    assert.deepEqual([...assigned], [
      ['10.0.0.1', 4],
      ['10.0.0.2', 2],
      ['10.0.0.3', 1],
      ['10.0.0.4', 3],
    ]);
  });
  test('an index still held by a leaving gateway is not reused in the same reconcile, unless nothing else is free', () => {
    const held: [string, number][] = [
      ['10.0.0.1', 1],
      ['10.0.0.2', 2],
    ];
    assert.deepEqual([...assignMarks(['10.0.0.2', '10.0.0.9'], [held], 255, held).assigned], [
      ['10.0.0.2', 2],
      ['10.0.0.9', 3],
    ]);
    assert.deepEqual([...assignMarks(['10.0.0.2', '10.0.0.9'], [held], 2, held).assigned], [
      ['10.0.0.2', 2],
      ['10.0.0.9', 1],
    ]);
  });
  test('beyond the capacity: unassigned', () => {
    const r = assignMarks(['10.0.0.1', '10.0.0.2', '10.0.0.3'], [], 2);
    assert.deepEqual([...r.assigned.values()], [1, 2]);
    assert.deepEqual(r.unassigned, ['10.0.0.3']);
  });
  test('inconsistent records (two IPs on one index in the kernel) are dropped; out-of-range indexes ignored', () => {
    const held: [string, number][] = [
      ['10.0.0.1', 1],
      ['10.0.0.2', 1],
      ['10.0.0.3', 300],
    ];
    const { assigned } = assignMarks(['10.0.0.1', '10.0.0.2', '10.0.0.3'], [held], 255, held);
    assert.deepEqual([...assigned], [
      ['10.0.0.1', 2],
      ['10.0.0.2', 3],
      ['10.0.0.3', 4],
    ]);
  });
  test('hints (indexes given out before by this process) are used when free', () => {
    assert.deepEqual([...assignMarks(['10.0.0.5'], [[], [], [['10.0.0.5', 7]]], 255).assigned], [['10.0.0.5', 7]]);
    const held: [string, number][] = [['10.0.0.6', 7]];
    assert.deepEqual([...assignMarks(['10.0.0.5', '10.0.0.6'], [held, [], [['10.0.0.5', 7]]], 255, held).assigned], [
      ['10.0.0.5', 1],
      ['10.0.0.6', 7],
    ]);
  });
});

describe('stickiness objects in the plan', () => {
  test('from empty: a table per gateway, a rule per client pool × gateway at rulePriority − 1, the map with the marks', () => {
    const nat = natConfig({ allPools: ['10.244.0.0/16', '10.10.0.0/24', '192.168.0.0/24'] });
    const plan = planReconcile(desiredState(), nat, EMPTY);
    assert.deepEqual(stickyRoutes(plan.ipLines), [
      'route replace 0.0.0.0/0 via 10.10.0.2 dev egw.vxlan onlink table 2000001',
      'route replace 0.0.0.0/0 via 10.10.0.3 dev egw.vxlan onlink table 2000002',
    ]);
    assert.deepEqual(markRules(plan.ipLines), [
      'rule add from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001 priority 99',
      'rule add from 10.244.0.0/16 fwmark 0x80/0x3fc0 lookup 2000002 priority 99',
      'rule add from 192.168.0.0/24 fwmark 0x40/0x3fc0 lookup 2000001 priority 99',
      'rule add from 192.168.0.0/24 fwmark 0x80/0x3fc0 lookup 2000002 priority 99',
    ]);
    assert.ok(plan.ipLines.indexOf(stickyRoutes(plan.ipLines)[1]) < plan.ipLines.indexOf(markRules(plan.ipLines)[0]), 'tables before the rules that use them');
    assert.deepEqual(plan.nft!.marks, [
      { ip: '10.10.0.2', mark: 0x40 },
      { ip: '10.10.0.3', mark: 0x80 },
    ]);
    assert.equal(plan.nftElements, null, 'the new table carries the elements');
    assert.deepEqual(plan.report.marks, { added: 2, changed: 0, removed: 0 });
    assert.deepEqual(IP.ruleAddMark('10.0.0.0/8', 0xff000000, 0xff000000, 2000255, 7), 'rule add from 10.0.0.0/8 fwmark 0xff000000/0xff000000 lookup 2000255 priority 7');
  });

  test('a mask option changes rules and nft; a table base option moves the tables', async () => {
    const runner = cannedRunner({ link: null, nft: null });
    const report = await new NodeDataplane(runner, { stickyMarkMask: 0xff000000, stickyTableBase: 3_000_000 }).reconcile(desiredState(), natConfig());
    const ip = lines(report.commands.find((c) => c.argv.join(' ') === WRITE.ipBatch().join(' '))!.input);
    assert.deepEqual(markRules(ip), [
      'rule add from 10.244.0.0/16 fwmark 0x1000000/0xff000000 lookup 3000001 priority 99',
      'rule add from 10.244.0.0/16 fwmark 0x2000000/0xff000000 lookup 3000002 priority 99',
    ]);
    const nft = report.commands.find((c) => c.argv[0] === 'nft')!.input!;
    assert.ok(nft.includes('{"&":[{"ct":{"key":"mark"}},4278190080]}'), nft);
    assert.ok(nft.includes('"elem":[["10.10.0.2",16777216],["10.10.0.3",33554432]]'));
  });

  test('adoption: marks that are not the lowest ones are kept; missing tables and rules are rebuilt from the map', () => {
    const actual = actualOf({ ...CLEAN, rules: filterJson(RULES_STICKY, (r) => r.priority !== 99), routes: filterJson(ROUTES_STICKY, (r) => Number(r.table) < 2_000_000) });
    actual.nft!.marks = [
      { ip: '10.10.0.2', mark: 0x140 },
      { ip: '10.10.0.3', mark: 0x80 },
    ];
    const plan = planReconcile(desiredState(), natConfig(), actual);
    assert.deepEqual(plan.ipLines, [
      'route replace 0.0.0.0/0 via 10.10.0.3 dev egw.vxlan onlink table 2000002',
      'route replace 0.0.0.0/0 via 10.10.0.2 dev egw.vxlan onlink table 2000005',
      'rule add from 10.244.0.0/16 fwmark 0x80/0x3fc0 lookup 2000002 priority 99',
      'rule add from 10.244.0.0/16 fwmark 0x140/0x3fc0 lookup 2000005 priority 99',
    ]);
    assert.equal(plan.nft, null);
    assert.equal(plan.nftElements, null, 'the map is the record: untouched');
    assert.deepEqual([...plan.sticky.assigned], [
      ['10.10.0.2', 5],
      ['10.10.0.3', 2],
    ]);
  });

  test('adoption from the per-gateway tables when the map is gone (the nft table was flushed)', () => {
    const actual = actualOf({ ...CLEAN, routes: ROUTES_STICKY.replace('"gateway":"10.10.0.2","dev":"egw.vxlan","table":"2000001"', '"gateway":"10.10.0.2","dev":"egw.vxlan","table":"2000007"') });
    actual.nft = null;
    const plan = planReconcile(desiredState(), natConfig(), actual);
    assert.deepEqual([...plan.sticky.assigned], [
      ['10.10.0.2', 7],
      ['10.10.0.3', 2],
    ]);
    assert.deepEqual(plan.nft!.marks, [
      { ip: '10.10.0.2', mark: 0x1c0 },
      { ip: '10.10.0.3', mark: 0x80 },
    ]);
    assert.deepEqual(plan.ipLines, [
      'rule add from 10.244.0.0/16 fwmark 0x1c0/0x3fc0 lookup 2000007 priority 99',
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001',
    ]);
  });

  test('a gateway neither ready nor draining loses mark, rule and table; a draining one keeps them; ECMP routes are calc\'s business', () => {
    const d = desiredState({ gateways: [gw('10.10.0.2', { ready: false }), gw('10.10.0.3', { draining: true })] });
    const plan = planReconcile(d, natConfig(), actualOf(CLEAN));
    assert.deepEqual(plan.ipLines, ['rule del priority 99 from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001', 'route del 0.0.0.0/0 table 2000001']);
    assert.deepEqual(plan.nftElements, nftMarkElementsDocument('egw', ['10.10.0.2'], []));
    assert.deepEqual(plan.report.marks, { added: 0, changed: 0, removed: 1 });
    assert.deepEqual(plan.report.tables, { added: 0, changed: 0, removed: 1 });
  });

  test('an inconsistent map (two gateways on one mark) is repaired in place (delete + add, one transaction)', () => {
    const actual = actualOf(CLEAN);
    actual.nft!.marks = [
      { ip: '10.10.0.2', mark: 0x40 },
      { ip: '10.10.0.3', mark: 0x40 },
    ];
    const plan = planReconcile(desiredState(), natConfig(), actual);
    // two IPs on mark 1: every record naming index 1 is dropped; .3 keeps index 2 (its table), .2 gets a fresh one
    assert.deepEqual([...plan.sticky.assigned], [
      ['10.10.0.2', 3],
      ['10.10.0.3', 2],
    ]);
    assert.deepEqual(plan.nftElements, {
      nftables: [
        { delete: { element: { family: 'ip', table: 'egw', name: 'gw_marks', elem: ['10.10.0.2', '10.10.0.3'] } } },
        {
          add: {
            element: {
              family: 'ip',
              table: 'egw',
              name: 'gw_marks',
              elem: [
                ['10.10.0.2', 0xc0],
                ['10.10.0.3', 0x80],
              ],
            },
          },
        },
      ],
    });
    assert.deepEqual(plan.report.marks, { added: 0, changed: 2, removed: 0 });
    assert.deepEqual(plan.ipLines, [
      'route replace 0.0.0.0/0 via 10.10.0.2 dev egw.vxlan onlink table 2000003',
      'rule add from 10.244.0.0/16 fwmark 0xc0/0x3fc0 lookup 2000003 priority 99',
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001',
      'route del 0.0.0.0/0 table 2000001',
    ]);
  });

  test('ownership: any rule into a per-gateway table goes unless wanted; other rules at rulePriority − 1 stay', () => {
    const stray = JSON.stringify([
      { priority: 5000, src: '10.1.0.0', srclen: 16, table: '2000009' },
      { priority: 99, src: '10.9.0.0', srclen: 16, table: '77' },
      { priority: 99, src: '10.244.0.0', srclen: 16, fwmark: '0x40', fwmask: '0x3fc0', iif: 'eth0', table: '2000001' },
    ]);
    const actual = actualOf({ ...CLEAN, rules: JSON.stringify([...JSON.parse(RULES_STICKY), ...JSON.parse(stray)]) });
    assert.deepEqual(planReconcile(desiredState(), natConfig(), actual).ipLines, [
      'rule del priority 5000 from 10.1.0.0/16 lookup 2000009',
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x40/0x3fc0 iif eth0 lookup 2000001',
    ]);
  });

  test('no local address (fail closed): the per-gateway tables hold unreachable routes too', () => {
    const plan = planReconcile(desiredState({ vxlan: { local: null } }), natConfig(), EMPTY);
    assert.deepEqual(stickyRoutes(plan.ipLines), ['route replace unreachable 0.0.0.0/0 table 2000001', 'route replace unreachable 0.0.0.0/0 table 2000002']);
  });

  test('no rules (with a warning) when there is no client pool, no room below the priority, or the node IP is in a client pool', () => {
    for (const [d, nat, re] of [
      [desiredState(), natConfig({ allPools: ['10.10.0.0/24'] }), /no client pools/],
      [desiredState({ rulePriority: 0 }), natConfig(), /no room/],
      [desiredState({ vxlan: { local: '10.244.9.9' } }), natConfig(), /inside a client pool/],
    ] as const) {
      const plan = planReconcile(d, nat, EMPTY);
      assert.deepEqual(markRules(plan.ipLines), []);
      assert.equal(plan.nft!.marks!.length, 2, 'the marks are still kept');
      assert.ok(plan.report.warnings.some((w) => re.test(w)), plan.report.warnings.join('; '));
    }
  });

  test('stickiness off: its rules, tables, map and chains are removed', async () => {
    const runner = cannedRunner(CLEAN);
    const report = await new NodeDataplane(runner, { stickiness: false }).reconcile(desiredState(), natConfig());
    const ip = lines(report.commands.find((c) => c.argv[0] === 'ip')!.input);
    assert.deepEqual(ip, [
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001',
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x80/0x3fc0 lookup 2000002',
      'route del 0.0.0.0/0 table 2000001',
      'route del 0.0.0.0/0 table 2000002',
    ]);
    const doc = JSON.parse(report.commands.find((c) => c.argv[0] === 'nft')!.input!) as { nftables: Record<string, Record<string, Record<string, unknown>>>[] };
    assert.deepEqual(
      doc.nftables.filter((o) => o.add?.chain).map((o) => o.add.chain.name),
      ['postrouting', 'forward', 'tunnel_prerouting', 'tunnel_output'],
    );
    assert.ok(!doc.nftables.some((o) => o.add?.map));
    assert.deepEqual(report.marks, { added: 0, changed: 0, removed: 2 });
    assert.equal(writesOf(runner).length, 2);
  });

  test('a second NodeDataplane over the same (canned) kernel: zero writes; stickyMarks() reports the adopted marks', async () => {
    const dp = new NodeDataplane(cannedRunner(CLEAN));
    const report = await dp.reconcile(desiredState(), natConfig());
    assert.deepEqual(report.commands, []);
    assert.deepEqual([...dp.stickyMarks()], [
      ['10.10.0.2', 0x40],
      ['10.10.0.3', 0x80],
    ]);
  });
});
