// NodeDataplane against canned kernel output (no root): the exact command text for each object type, the batch
// order, and "zero writes when the kernel already matches".
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { READ } from '../../src/dataplane/commands.js';
import { NodeDataplane } from '../../src/dataplane/node.js';
import { nftRebuildDocument, nodeNftTable } from '../../src/dataplane/nft.js';
import { planReconcile } from '../../src/dataplane/plan.js';
import { DataplaneError, summarizeReport } from '../../src/dataplane/types.js';
import { RecordingRunner } from '../../src/dataplane/exec.js';
import { CLEAN, cannedAnswer, cannedRunner, desiredState, filterJson, lines, natConfig, writesOf } from './helpers.js';
import { FDB, LINK, LINK_LEARNING_REMOTE_ADDR, LINK_VETH, NEIGH, ROUTES, ROUTES_STICKY, RULES, RULES_STICKY } from './samples.js';

/** The stickiness rules and routes of CLEAN alone. */
const STICKY_RULES = filterJson(RULES_STICKY, (r) => r.priority === 99);
const STICKY_ROUTES = filterJson(ROUTES_STICKY, (r) => Number(r.table) >= 2_000_000);
const concatJson = (a: string, b: string): string => JSON.stringify([...(JSON.parse(a) as unknown[]), ...(JSON.parse(b) as unknown[])]);
const STICKY_NFT = { mask: 0x00003fc0, clientPools: ['10.244.0.0/16'], marks: [{ ip: '10.10.0.2', mark: 0x40 }, { ip: '10.10.0.3', mark: 0x80 }] };


describe('reconcile from an empty node', () => {
  test('sysctls, one ip batch (link, neighbours, routes, rules), FDB after the link exists, one nft transaction', async () => {
    const runner = cannedRunner({ link: null, nft: null });
    const report = await new NodeDataplane(runner).reconcile(desiredState(), natConfig());
    // report.commands: the canonical order; the runner saw the same commands (sysctls+nft run alongside the batches)
    const w = report.commands;
    assert.deepEqual(
      w.map((c) => c.argv.join(' ')),
      [
        'sh -c r=0; echo 1 > /proc/sys/net/ipv4/fib_multipath_hash_policy || r=1; echo 1 > /proc/sys/net/ipv4/ip_forward || r=1; exit $r',
        'ip -force -batch -',
        'bridge -force -batch -',
        'nft -j -f -',
      ],
    );
    const seen = writesOf(runner);
    assert.deepEqual(seen.map((c) => JSON.stringify(c)).sort(), w.map((c) => JSON.stringify(c)).sort());
    assert.ok(seen.findIndex((c) => c.argv[0] === 'ip') < seen.findIndex((c) => c.argv[0] === 'bridge'), 'FDB after the link is created');
    assert.deepEqual(lines(w[1].input), [
      'link add egw.vxlan mtu 1450 type vxlan id 4097 dstport 4790 local 172.31.99.11 nolearning',
      'link set dev egw.vxlan up',
      'neigh replace 10.10.0.2 lladdr a2:2a:0a:0a:00:02 dev egw.vxlan nud permanent',
      'neigh replace 10.10.0.3 lladdr a2:2a:0a:0a:00:03 dev egw.vxlan nud permanent',
      'route replace 0.0.0.0/0 table 1001 nexthop via 10.10.0.2 dev egw.vxlan onlink nexthop via 10.10.0.3 dev egw.vxlan onlink',
      'route replace throw 10.244.0.0/16 table 1001',
      'route replace 0.0.0.0/0 via 10.10.0.2 dev egw.vxlan onlink table 1002',
      'route replace unreachable 8.8.0.0/16 table 1002',
      'route replace throw 10.244.0.0/16 table 1002',
      'route replace 0.0.0.0/0 via 10.10.0.2 dev egw.vxlan onlink table 2000001',
      'route replace 0.0.0.0/0 via 10.10.0.3 dev egw.vxlan onlink table 2000002',
      'rule add from 10.244.0.5/32 lookup 1001 priority 100',
      'rule add from 10.244.0.6/32 lookup 1002 priority 100',
      'rule add from 10.244.0.7/32 lookup 1001 priority 100',
      'rule add from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001 priority 99',
      'rule add from 10.244.0.0/16 fwmark 0x80/0x3fc0 lookup 2000002 priority 99',
    ]);
    assert.deepEqual(lines(w[2].input), ['fdb append a2:2a:0a:0a:00:02 dev egw.vxlan dst 10.10.0.2', 'fdb append a2:2a:0a:0a:00:03 dev egw.vxlan dst 10.10.0.3']);
    assert.deepEqual(JSON.parse(w[3].input!), nftRebuildDocument(nodeNftTable({ table: 'egw', nat: natConfig(), device: 'egw.vxlan', mss: 1410, tunnelPort: 4790, sticky: STICKY_NFT })));
    assert.equal(
      summarizeReport(report),
      'link +1 ~0 -0, rules +5 ~0 -0, routes +7 ~0 -0, tables +4 ~0 -0, neighbours +2 ~0 -0, fdb +2 ~0 -0, sysctls +0 ~2 -0, nft +1 ~0 -0, marks +2 ~0 -0',
    );
    assert.equal(report.reads, 7);
  });

  test('the reads', async () => {
    const runner = cannedRunner(CLEAN);
    await new NodeDataplane(runner).reconcile(desiredState(), natConfig());
    assert.deepEqual(
      runner.calls.map((c) => c.argv.join(' ')).sort(),
      [READ.rules(), READ.routes(), READ.link('egw.vxlan'), READ.neighbours('egw.vxlan'), READ.fdb('egw.vxlan'), READ.nft('egw'), READ.sysctls(['net.ipv4.fib_multipath_hash_policy', 'net.ipv4.ip_forward'])]
        .map((a) => a.join(' '))
        .sort(),
    );
  });
});

describe('reconcile against a programmed node', () => {
  test('already right: zero writes', async () => {
    const runner = cannedRunner(CLEAN);
    const report = await new NodeDataplane(runner).reconcile(desiredState(), natConfig());
    assert.deepEqual(writesOf(runner), []);
    assert.deepEqual(report.commands, []);
    assert.equal(summarizeReport(report), '');
  });

  test('strays at the egw priority, in egw tables, on the device are removed; nothing else is touched', async () => {
    const runner = cannedRunner({ ...CLEAN, rules: concatJson(STICKY_RULES, RULES), routes: concatJson(STICKY_ROUTES, ROUTES), neigh: NEIGH, fdb: FDB });
    const report = await new NodeDataplane(runner).reconcile(desiredState(), natConfig());
    const w = writesOf(runner);
    assert.deepEqual(
      w.map((c) => c.argv.join(' ')),
      ['bridge -force -batch -', 'ip -force -batch -'],
    );
    assert.deepEqual(lines(w[0].input), ['fdb del 00:00:00:00:00:00 dev egw.vxlan dst 10.10.0.99 port 4789 vni 7']);
    assert.deepEqual(lines(w[1].input), [
      'rule del priority 100 from 10.244.1.0/24 fwmark 0x10/0xff iif eth0 lookup 254',
      'rule del priority 100 from 10.9.9.9/32 unreachable',
      'route del 1.2.3.0/24 table 1003',
      'route del 1.2.3.4/32 table 1003 metric 5',
      'neigh del 10.10.0.9 dev egw.vxlan',
    ]);
    assert.equal(report.tables.removed, 1);
  });

  test('a deleted route and rule are restored, and only they', async () => {
    const runner = cannedRunner({
      ...CLEAN,
      rules: filterJson(CLEAN.rules, (r) => r.src !== '10.244.0.6'),
      routes: filterJson(CLEAN.routes, (r) => !(r.table === '1002' && r.type === '7')),
    });
    const report = await new NodeDataplane(runner).reconcile(desiredState(), natConfig());
    const w = writesOf(runner);
    assert.equal(w.length, 1);
    assert.deepEqual(lines(w[0].input), ['route replace unreachable 8.8.0.0/16 table 1002', 'rule add from 10.244.0.6/32 lookup 1002 priority 100']);
    assert.equal(report.rules.added, 1);
    assert.equal(report.routes.added, 1);
  });

  test('a client moving table: new rule before the old one goes; counted as a change', async () => {
    const d = desiredState();
    const moved = desiredState({ rules: d.rules.map((r) => (r.src === '10.244.0.7/32' ? { ...r, table: 1002 } : r)) });
    const runner = cannedRunner(CLEAN);
    const report = await new NodeDataplane(runner).reconcile(moved, natConfig());
    assert.deepEqual(lines(writesOf(runner)[0].input), ['rule add from 10.244.0.7/32 lookup 1002 priority 100', 'rule del priority 100 from 10.244.0.7/32 lookup 1001']);
    assert.deepEqual(report.rules, { added: 0, changed: 1, removed: 0 });
  });

  test('route changes are atomic replaces: ECMP → one hop, one hop → unreachable', async () => {
    const d = desiredState();
    const changed = desiredState({
      tables: [
        { id: 1001, routes: [{ dst: '0.0.0.0/0', type: 'ecmp', via: ['10.10.0.3'] }, d.tables[0].routes[1]] },
        { id: 1002, routes: [{ dst: '0.0.0.0/0', type: 'unreachable' }, ...d.tables[1].routes.slice(1)] },
      ],
    });
    const runner = cannedRunner(CLEAN);
    const report = await new NodeDataplane(runner).reconcile(changed, natConfig());
    assert.deepEqual(lines(writesOf(runner)[0].input), [
      'route replace 0.0.0.0/0 via 10.10.0.3 dev egw.vxlan onlink table 1001',
      'route replace unreachable 0.0.0.0/0 table 1002',
    ]);
    assert.deepEqual(report.routes, { added: 0, changed: 2, removed: 0 });
  });

  test('a new gateway: FDB before the ip batch (routes never point at an unknown MAC); a gone one: removed after its routes; marks change in place', async () => {
    const d = desiredState();
    const next = desiredState({
      tables: [{ id: 1001, routes: [{ dst: '0.0.0.0/0', type: 'ecmp', via: ['10.10.0.3', '10.10.0.4'] }, d.tables[0].routes[1]] }, { id: 1002, routes: [{ dst: '0.0.0.0/0', type: 'ecmp', via: ['10.10.0.4'] }, ...d.tables[1].routes.slice(1)] }],
      gateways: [d.gateways[1], { ip: '10.10.0.4', mac: 'a2:2a:0a:0a:00:04', pod: 'g/gw-c', node: 'n3', ready: true, draining: false }],
    });
    const runner = cannedRunner(CLEAN);
    const report = await new NodeDataplane(runner).reconcile(next, natConfig());
    // nft runs alongside the bridge + ip batches: the report has the canonical order
    const w = report.commands;
    assert.deepEqual(w.map((c) => c.argv[0]), ['bridge', 'ip', 'nft']);
    assert.deepEqual(writesOf(runner).map((c) => JSON.stringify(c)).sort(), w.map((c) => JSON.stringify(c)).sort());
    assert.deepEqual(lines(w[0].input), ['fdb del a2:2a:0a:0a:00:02 dev egw.vxlan dst 10.10.0.2', 'fdb append a2:2a:0a:0a:00:04 dev egw.vxlan dst 10.10.0.4']);
    assert.deepEqual(lines(w[1].input), [
      'neigh replace 10.10.0.4 lladdr a2:2a:0a:0a:00:04 dev egw.vxlan nud permanent',
      'route replace 0.0.0.0/0 table 1001 nexthop via 10.10.0.3 dev egw.vxlan onlink nexthop via 10.10.0.4 dev egw.vxlan onlink',
      'route replace 0.0.0.0/0 via 10.10.0.4 dev egw.vxlan onlink table 1002',
      // gw-c gets mark 3, not the mark 1 gw-a gives up in this very reconcile (see assignMarks)
      'route replace 0.0.0.0/0 via 10.10.0.4 dev egw.vxlan onlink table 2000003',
      'rule add from 10.244.0.0/16 fwmark 0xc0/0x3fc0 lookup 2000003 priority 99',
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001',
      'route del 0.0.0.0/0 table 2000001',
      'neigh del 10.10.0.2 dev egw.vxlan',
    ]);
    // the map changes in place (no table rebuild); gw-b's mark, rule and table are untouched
    assert.deepEqual(JSON.parse(w[2].input!), {
      nftables: [
        { delete: { element: { family: 'ip', table: 'egw', name: 'gw_marks', elem: ['10.10.0.2'] } } },
        { add: { element: { family: 'ip', table: 'egw', name: 'gw_marks', elem: [['10.10.0.4', 0xc0]] } } },
      ],
    });
    assert.deepEqual(report.nft, { added: 0, changed: 0, removed: 0 });
    assert.deepEqual(report.marks, { added: 1, changed: 0, removed: 1 });
    assert.deepEqual(report.rules, { added: 1, changed: 0, removed: 1 });
  });
});

describe('the link', () => {
  test('VNI change: delete + create, then every route/neighbour/FDB entry that lived on it is re-added', async () => {
    const runner = cannedRunner(CLEAN);
    const report = await new NodeDataplane(runner).reconcile(desiredState({ vxlan: { vni: 5000 } }), natConfig());
    const w = writesOf(runner);
    assert.deepEqual(w.map((c) => c.argv[0]), ['ip', 'bridge']);
    assert.deepEqual(lines(w[0].input), [
      'link del dev egw.vxlan',
      'link add egw.vxlan mtu 1450 type vxlan id 5000 dstport 4790 local 172.31.99.11 nolearning',
      'link set dev egw.vxlan up',
      'neigh replace 10.10.0.2 lladdr a2:2a:0a:0a:00:02 dev egw.vxlan nud permanent',
      'neigh replace 10.10.0.3 lladdr a2:2a:0a:0a:00:03 dev egw.vxlan nud permanent',
      'route replace 0.0.0.0/0 table 1001 nexthop via 10.10.0.2 dev egw.vxlan onlink nexthop via 10.10.0.3 dev egw.vxlan onlink',
      'route replace 0.0.0.0/0 via 10.10.0.2 dev egw.vxlan onlink table 1002',
      'route replace 0.0.0.0/0 via 10.10.0.2 dev egw.vxlan onlink table 2000001',
      'route replace 0.0.0.0/0 via 10.10.0.3 dev egw.vxlan onlink table 2000002',
    ]);
    assert.deepEqual(lines(w[1].input), ['fdb append a2:2a:0a:0a:00:02 dev egw.vxlan dst 10.10.0.2', 'fdb append a2:2a:0a:0a:00:03 dev egw.vxlan dst 10.10.0.3']);
    assert.equal(report.link.recreated, true);
  });

  test('port or local change, a remote, or another kind also recreate', async () => {
    for (const [link, d] of [
      [LINK, desiredState({ vxlan: { port: 4789 } })],
      [LINK, desiredState({ vxlan: { local: '172.31.99.12' } })],
      [LINK_LEARNING_REMOTE_ADDR.replace('"t2"', '"egw.vxlan"').replace('"id":7', '"id":4097').replace('"port":4789', '"port":4790'), desiredState()],
      [LINK_VETH, desiredState()],
    ] as const) {
      const runner = cannedRunner({ ...CLEAN, link });
      const report = await new NodeDataplane(runner).reconcile(d, natConfig());
      assert.equal(report.link.recreated, true, link);
      assert.equal(lines(writesOf(runner).find((c) => c.argv[0] === 'ip')!.input)[0], 'link del dev egw.vxlan');
    }
  });

  test('MTU, learning, down and a stray address are fixed in place; the MSS clamp follows the MTU', async () => {
    const link = LINK_LEARNING_REMOTE_ADDR.replace('"remote":"172.31.99.1",', '').replace('"id":7', '"id":4097').replace('"port":4789', '"port":4790');
    const runner = cannedRunner({ ...CLEAN, link });
    const report = await new NodeDataplane(runner).reconcile(desiredState({ vxlan: { mtu: 1410 } }), natConfig());
    const w = writesOf(runner);
    assert.deepEqual(lines(w.find((c) => c.argv[0] === 'ip')!.input), [
      'link set dev egw.vxlan type vxlan nolearning',
      'link set dev egw.vxlan mtu 1410',
      'link set dev egw.vxlan up',
      'address del 192.0.2.1/24 dev egw.vxlan',
    ]);
    assert.equal(report.link.recreated, false);
    assert.deepEqual(report.addresses, { added: 0, changed: 0, removed: 1 });
    const nft = w.find((c) => c.argv[0] === 'nft')!;
    assert.match(nft.input!, /"right":1370/);
    assert.equal(report.nft.changed, 1);
  });

  test('egress disabled: rules and routes go, then the link (its neighbours and FDB go with it); the marks go in place', async () => {
    const runner = cannedRunner(CLEAN);
    const report = await new NodeDataplane(runner).reconcile(
      desiredState({ enabled: false, egressIPSupport: 'Disabled', rules: [], tables: [], gateways: [] }),
      natConfig(),
    );
    const w = report.commands;
    assert.deepEqual(w.map((c) => c.argv[0]), ['ip', 'nft']);
    assert.deepEqual(JSON.parse(w[1].input!), { nftables: [{ delete: { element: { family: 'ip', table: 'egw', name: 'gw_marks', elem: ['10.10.0.2', '10.10.0.3'] } } }] });
    assert.deepEqual(lines(w[0].input), [
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001',
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x80/0x3fc0 lookup 2000002',
      'rule del priority 100 from 10.244.0.5/32 lookup 1001',
      'rule del priority 100 from 10.244.0.6/32 lookup 1002',
      'rule del priority 100 from 10.244.0.7/32 lookup 1001',
      'route del throw 10.244.0.0/16 table 1001',
      'route del unreachable 8.8.0.0/16 table 1002',
      'route del throw 10.244.0.0/16 table 1002',
      'link del dev egw.vxlan',
    ]);
    assert.deepEqual(report.routes.removed, 7);
    assert.deepEqual(report.marks.removed, 2);
    assert.deepEqual(report.neighbours.removed, 2);
    assert.deepEqual(report.fdb.removed, 2);
  });

  test('no local address: no link, gateway routes become unreachable (fail closed), with a warning', () => {
    const plan = planReconcile(desiredState({ vxlan: { local: null } }), natConfig(), { link: null, rules: [], routes: [], neighbours: [], fdb: [], nft: null, sysctls: {} });
    assert.ok(plan.ipLines.includes('route replace unreachable 0.0.0.0/0 table 1001'));
    assert.ok(!plan.ipLines.some((l) => l.startsWith('link') || l.startsWith('neigh')));
    assert.deepEqual(plan.fdbLines, []);
    assert.equal(plan.report.warnings.length, 1);
  });
});

describe('rules priority, nft, sysctls, errors', () => {
  test('a rule left at an old priority by an earlier process is removed when it looks up a client table', () => {
    // egressIPRoutingRulePriority changed while the agent was down: the new process never used priority 50, yet a
    // rule there still steers 10.244.0.9 into a client table; a rule of someone else's (table 200) stays.
    const actual = {
      link: null,
      rules: [
        { priority: 50, src: '10.244.0.9/32', table: 1001, plain: true, markPlain: false },
        { priority: 50, src: '10.1.0.0/16', table: 200, plain: true, markPlain: false },
      ],
      routes: [],
      neighbours: [],
      fdb: [],
      nft: null,
      sysctls: {},
    };
    const plan = planReconcile(desiredState(), natConfig(), actual);
    assert.ok(plan.ipLines.includes('rule del priority 50 from 10.244.0.9/32 lookup 1001'), plan.ipLines.join('\n'));
    assert.ok(!plan.ipLines.some((l) => / lookup 200$/.test(l)), 'a rule outside egw\'s tables is not touched');
  });

  test('a priority change removes the rules at the old priority', async () => {
    const runner = cannedRunner(CLEAN);
    const dp = new NodeDataplane(runner);
    await dp.reconcile(desiredState(), natConfig());
    await dp.reconcile(desiredState({ rulePriority: 90 }), natConfig());
    assert.deepEqual(lines(writesOf(runner)[0].input), [
      'rule add from 10.244.0.5/32 lookup 1001 priority 90',
      'rule add from 10.244.0.6/32 lookup 1002 priority 90',
      'rule add from 10.244.0.7/32 lookup 1001 priority 90',
      'rule add from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001 priority 89',
      'rule add from 10.244.0.0/16 fwmark 0x80/0x3fc0 lookup 2000002 priority 89',
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x40/0x3fc0 lookup 2000001',
      'rule del priority 99 from 10.244.0.0/16 fwmark 0x80/0x3fc0 lookup 2000002',
      'rule del priority 100 from 10.244.0.5/32 lookup 1001',
      'rule del priority 100 from 10.244.0.6/32 lookup 1002',
      'rule del priority 100 from 10.244.0.7/32 lookup 1001',
    ]);
  });

  test('NAT config change rebuilds the table in one transaction; NAT off drops the postrouting chain', async () => {
    const runner = cannedRunner(CLEAN);
    await new NodeDataplane(runner).reconcile(desiredState(), natConfig({ enabled: false }));
    const w = writesOf(runner);
    assert.equal(w.length, 1);
    const doc = JSON.parse(w[0].input!) as { nftables: Record<string, Record<string, Record<string, unknown>>>[] };
    assert.deepEqual(Object.keys(doc.nftables[0]), ['add']);
    assert.deepEqual(Object.keys(doc.nftables[1]), ['delete']);
    assert.deepEqual(
      doc.nftables.filter((o) => o.add?.chain).map((o) => o.add.chain.name),
      ['forward', 'prerouting', 'postrouting_mark', 'tunnel_prerouting', 'tunnel_output'],
    );
    // the rebuilt table carries the marks the node had
    assert.deepEqual(doc.nftables.find((o) => o.add?.map)!.add.map.elem, [
      ['10.10.0.2', 0x40],
      ['10.10.0.3', 0x80],
    ]);
  });

  test('one wrong sysctl is written, alone', async () => {
    const runner = cannedRunner({ ...CLEAN, sysctls: '0\n1\n' });
    await new NodeDataplane(runner).reconcile(desiredState(), natConfig());
    assert.deepEqual(writesOf(runner), [{ argv: ['sh', '-c', 'r=0; echo 1 > /proc/sys/net/ipv4/fib_multipath_hash_policy || r=1; exit $r'] }]);
  });

  test('a failing write: the other writes still run, the error carries the report', async () => {
    const canned = cannedAnswer({ link: null, nft: null });
    const runner = new RecordingRunner((argv) => (argv[0] === 'ip' && argv.includes('-batch') ? { code: 1, stdout: '', stderr: 'RTNETLINK answers: File exists\nCommand failed -:3\n' } : canned(argv)));
    await assert.rejects(new NodeDataplane(runner).reconcile(desiredState(), natConfig()), (e: unknown) => {
      assert.ok(e instanceof DataplaneError);
      assert.match(e.message, /File exists/);
      assert.deepEqual(
        e.report.commands.map((c) => c.argv[0]),
        ['sh', 'ip', 'bridge', 'nft'],
      );
      return true;
    });
  });
});
