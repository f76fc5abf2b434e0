// NodeDataplane against a real kernel, inside network namespaces this test creates (root). Without root (or
// without `ip netns`/nft) the tests are skipped, unless EGW_E2E=1, where that is a failure.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { NodeEgressState } from '../../src/calc/types.js';
import { NodeDataplane } from '../../src/dataplane/node.js';
import type { Runner } from '../../src/dataplane/exec.js';
import type { NodeNatConfig } from '../../src/dataplane/types.js';
import { desiredState, lines, natConfig, writesOf } from './helpers.js';
import { NETNS_TOOLS, SHOW_NFT, suiteGate } from '../helpers/env.js';
import { CountingRunner, cleanupAll, dumpKernel, json, makeNodeNs, runTag, type J, type NodeNs } from './netns.js';

const root = suiteGate(NETNS_TOOLS);


async function text(runner: Runner, argv: string[]): Promise<string> {
  return (await runner.run(argv)).stdout;
}

describe('NodeDataplane in a network namespace', { skip: root.skip }, () => {
  const tag = runTag();
  let ns: NodeNs;
  let runner: CountingRunner;
  let dp: NodeDataplane;
  const desired = desiredState();
  const nat = natConfig();

  before(async () => {
    root.check();
    ns = await makeNodeNs(tag, 'n1');
    runner = new CountingRunner(ns.runner);
    dp = new NodeDataplane(runner);
  });
  after(async () => {
    await cleanupAll();
  });

  const reconcile = async (d: NodeEgressState = desired, onto: NodeDataplane = dp, n: NodeNatConfig = nat) => {
    runner.reset();
    const report = await onto.reconcile(d, n);
    return { report, writes: writesOf(runner) };
  };

  test('programs a node from empty: link, rules, ECMP/throw/unreachable routes, neighbours, FDB, sysctls, nft', async () => {
    const { report, writes } = await reconcile();
    assert.equal(writes.length, 4, JSON.stringify(writes));
    assert.equal(report.link.added, 1);

    const link = (await json(ns.runner, ['ip', '-d', '-json', 'link', 'show', 'dev', 'egw.vxlan']))[0];
    const info = (link.linkinfo as J).info_data as J;
    assert.equal((link.linkinfo as J).info_kind, 'vxlan');
    assert.equal(info.id, 4097);
    assert.equal(info.port, 4790);
    assert.equal(info.local, '172.31.99.11');
    assert.equal(info.learning, false);
    assert.equal(link.mtu, 1450);
    assert.ok((link.flags as string[]).includes('UP'));
    const addrs = await json(ns.runner, ['ip', '-4', '-json', 'addr', 'show', 'dev', 'egw.vxlan']);
    assert.deepEqual(addrs.flatMap((a) => a.addr_info as J[]), []);

    const rules = (await json(ns.runner, ['ip', '-json', 'rule', 'list'])).filter((r) => r.priority === 100);
    assert.deepEqual(
      rules.map((r) => [r.src, r.table]),
      [
        ['10.244.0.5', '1001'],
        ['10.244.0.6', '1002'],
        ['10.244.0.7', '1001'],
      ],
    );

    const t1 = await json(ns.runner, ['ip', '-json', 'route', 'show', 'table', '1001']);
    assert.deepEqual(t1, [
      {
        dst: 'default',
        flags: [],
        nexthops: [
          { gateway: '10.10.0.2', dev: 'egw.vxlan', weight: 1, flags: ['onlink'] },
          { gateway: '10.10.0.3', dev: 'egw.vxlan', weight: 1, flags: ['onlink'] },
        ],
      },
      { type: 'throw', dst: '10.244.0.0/16', flags: [] },
    ]);
    const t2 = await json(ns.runner, ['ip', '-json', 'route', 'show', 'table', '1002']);
    assert.deepEqual(t2, [
      { dst: 'default', gateway: '10.10.0.2', dev: 'egw.vxlan', flags: ['onlink'] },
      { type: 'unreachable', dst: '8.8.0.0/16', flags: [] },
      { type: 'throw', dst: '10.244.0.0/16', flags: [] },
    ]);

    // what the kernel does with a client's packet
    const via = (await json(ns.runner, ['ip', '-json', 'route', 'get', '1.1.1.1', 'from', '10.244.0.5', 'iif', 'eth0']))[0];
    assert.equal(via.dev, 'egw.vxlan');
    assert.ok(['10.10.0.2', '10.10.0.3'].includes(via.gateway as string));
    const unr = await ns.runner.run(['ip', 'route', 'get', '8.8.8.8', 'from', '10.244.0.6', 'iif', 'eth0'], { allowFailure: true });
    assert.notEqual(unr.code, 0);
    assert.match(unr.stderr, /No route to host|unreachable/i);

    const neigh = await json(ns.runner, ['ip', '-4', '-json', 'neigh', 'show', 'dev', 'egw.vxlan']);
    assert.deepEqual(
      neigh.map((n) => [n.dst, n.lladdr, n.state]).sort(),
      [
        ['10.10.0.2', 'a2:2a:0a:0a:00:02', ['PERMANENT']],
        ['10.10.0.3', 'a2:2a:0a:0a:00:03', ['PERMANENT']],
      ],
    );
    const fdb = await json(ns.runner, ['bridge', '-json', 'fdb', 'show', 'dev', 'egw.vxlan']);
    assert.deepEqual(
      fdb.map((e) => [e.mac, e.dst, e.state]).sort(),
      [
        ['a2:2a:0a:0a:00:02', '10.10.0.2', 'permanent'],
        ['a2:2a:0a:0a:00:03', '10.10.0.3', 'permanent'],
      ],
    );

    assert.equal((await text(ns.runner, ['cat', '/proc/sys/net/ipv4/fib_multipath_hash_policy'])).trim(), '1');
    assert.equal((await text(ns.runner, ['cat', '/proc/sys/net/ipv4/ip_forward'])).trim(), '1');

    const nft = await text(ns.runner, ['nft', 'list', 'table', 'ip', 'egw']);
    assert.match(nft, /type nat hook postrouting priority srcnat; policy accept;/);
    assert.match(nft, /ip saddr 10\.10\.0\.0\/24 return/);
    assert.match(nft, /oifname "eth0" ip saddr 10\.244\.0\.0\/16 ip daddr != \{ 10\.10\.0\.0\/24, 10\.244\.0\.0\/16 \} masquerade/);
    assert.match(nft, /oifname "egw\.vxlan" tcp flags syn \/ syn,rst tcp option maxseg size > 1410 tcp option maxseg size set 1410/);
    if (SHOW_NFT) process.stderr.write(nft);
  });

  test('a second reconcile of the same state sends zero commands', async () => {
    const { report, writes } = await reconcile();
    assert.deepEqual(writes, []);
    assert.deepEqual(report.commands, []);
  });

  test('a fresh NodeDataplane on the programmed node sends zero commands (adoption after restart)', async () => {
    const { writes } = await reconcile(desired, new NodeDataplane(runner));
    assert.deepEqual(writes, []);
  });

  test('a route and a rule deleted by hand are restored, and nothing else is written', async () => {
    await ns.runner.run(['ip', 'route', 'del', 'unreachable', '8.8.0.0/16', 'table', '1002']);
    await ns.runner.run(['ip', 'rule', 'del', 'priority', '100', 'from', '10.244.0.7', 'lookup', '1001']);
    const { writes, report } = await reconcile();
    assert.equal(writes.length, 1);
    assert.deepEqual(lines(writes[0].input), ['route replace unreachable 8.8.0.0/16 table 1002', 'rule add from 10.244.0.7/32 lookup 1001 priority 100']);
    assert.equal(report.rules.added, 1);
    assert.equal(report.routes.added, 1);
    assert.deepEqual((await reconcile()).writes, []);
  });

  test('stale egw rule, route, table and neighbour are removed; a non-egw rule and the main table are untouched', async () => {
    const host = ns.runner;
    await host.run(['ip', '-batch', '-'], {
      input: [
        'rule add from 10.244.9.9 lookup 1001 priority 100',
        'rule add from 10.244.0.5 fwmark 0x1 lookup 1002 priority 100',
        'rule add from 10.1.0.0/16 lookup 200 priority 5000',
        'route add 9.9.9.0/24 via 10.10.0.2 dev egw.vxlan onlink table 1001',
        'route add unreachable 7.7.7.0/24 table 4242',
        'route add 198.51.100.0/24 via 172.31.99.1 dev eth0',
        'route add 198.51.100.0/24 via 172.31.99.1 dev eth0 table 200',
        'neigh add 10.10.0.77 lladdr a2:2a:0a:0a:00:4d dev egw.vxlan nud permanent',
      ].join('\n'),
    });
    const before = await dumpKernel(host);
    const { writes, report } = await reconcile();
    assert.deepEqual(lines(writes[0].input), [
      'rule del priority 100 from 10.244.9.9/32 lookup 1001',
      'rule del priority 100 from 10.244.0.5/32 fwmark 0x1 lookup 1002',
      'route del 9.9.9.0/24 table 1001',
      'route del unreachable 7.7.7.0/24 table 4242',
      'neigh del 10.10.0.77 dev egw.vxlan',
    ]);
    assert.equal(report.tables.removed, 1);
    const afterDump = await dumpKernel(host);
    const rules = afterDump.rules as J[];
    assert.ok(rules.some((r) => r.priority === 5000 && r.src === '10.1.0.0' && r.table === '200'), 'non-egw rule kept');
    const routes = afterDump.routes as J[];
    assert.ok(routes.some((r) => r.dst === '198.51.100.0/24' && r.table === undefined), 'main-table route kept');
    assert.ok(routes.some((r) => r.dst === '198.51.100.0/24' && r.table === '200'), 'non-egw table kept');
    assert.ok(!routes.some((r) => r.table === '4242'));
    const foreign = (d: Record<string, unknown>) =>
      (d.routes as J[]).filter((r) => !(Number(r.table) >= 1000 && Number(r.table) < 1000 + 2 ** 20)).map((r) => JSON.stringify(r));
    assert.deepEqual(foreign(afterDump), foreign(before));
    assert.deepEqual((await reconcile()).writes, []);
  });

  test('changing the VNI recreates the link; everything on it comes back; then quiet again', async () => {
    const ifBefore = (await json(ns.runner, ['ip', '-json', 'link', 'show', 'dev', 'egw.vxlan']))[0].ifindex;
    const d = desiredState({ vxlan: { vni: 5005 } });
    const { report } = await reconcile(d);
    assert.equal(report.link.recreated, true);
    const link = (await json(ns.runner, ['ip', '-d', '-json', 'link', 'show', 'dev', 'egw.vxlan']))[0];
    assert.notEqual(link.ifindex, ifBefore);
    assert.equal(((link.linkinfo as J).info_data as J).id, 5005);
    const t1 = await json(ns.runner, ['ip', '-json', 'route', 'show', 'table', '1001']);
    assert.equal((t1[0].nexthops as J[]).length, 2);
    assert.equal((await json(ns.runner, ['ip', '-4', '-json', 'neigh', 'show', 'dev', 'egw.vxlan'])).length, 2);
    assert.equal((await json(ns.runner, ['bridge', '-json', 'fdb', 'show', 'dev', 'egw.vxlan'])).length, 2);
    assert.deepEqual((await reconcile(d)).writes, []);
  });

  test('MTU change is applied in place (same ifindex) and moves the MSS clamp', async () => {
    const d = desiredState({ vxlan: { vni: 5005, mtu: 1400 } });
    const ifBefore = (await json(ns.runner, ['ip', '-json', 'link', 'show', 'dev', 'egw.vxlan']))[0].ifindex;
    const { report } = await reconcile(d);
    assert.equal(report.link.recreated, false);
    const link = (await json(ns.runner, ['ip', '-json', 'link', 'show', 'dev', 'egw.vxlan']))[0];
    assert.equal(link.ifindex, ifBefore);
    assert.equal(link.mtu, 1400);
    assert.match(await text(ns.runner, ['nft', 'list', 'table', 'ip', 'egw']), /maxseg size set 1360/);
    assert.deepEqual((await reconcile(d)).writes, []);
  });

  test('NAT with adjacent, overlapping and single-address pools: written once, then read back as equal', async () => {
    const n2 = natConfig({
      masqueradePools: ['10.244.0.0/16', '10.245.0.0/24', '10.244.3.0/24'],
      egressPools: ['10.10.0.0/31', '10.10.0.2/32'],
      allPools: ['10.244.0.0/16', '10.245.0.0/24', '10.245.1.0/24', '10.10.0.0/31', '10.10.0.2/32', '192.168.7.7/32'],
    });
    const first = await reconcile(desiredState({ vxlan: { vni: 5005, mtu: 1400 } }), dp, n2);
    assert.equal(first.report.nft.changed, 1);
    const listed = await text(ns.runner, ['nft', 'list', 'table', 'ip', 'egw']);
    assert.match(listed, /10\.244\.0\.0-10\.245\.0\.255/); // nft merged the adjacent pools into a range
    assert.deepEqual((await reconcile(desiredState({ vxlan: { vni: 5005, mtu: 1400 } }), dp, n2)).writes, []);
  });

  test('egress disabled: rules, egw tables and the link go; the nft table stays', async () => {
    const d = desiredState({ enabled: false, egressIPSupport: 'Disabled', rules: [], tables: [], gateways: [] });
    await reconcile(d);
    const rules = await json(ns.runner, ['ip', '-json', 'rule', 'list']);
    assert.ok(!rules.some((r) => r.priority === 100));
    const routes = await json(ns.runner, ['ip', '-N', '-json', 'route', 'show', 'table', 'all']);
    assert.ok(!routes.some((r) => Number(r.table) >= 1000 && Number(r.table) < 1000 + 2 ** 20));
    const link = await ns.runner.run(['ip', 'link', 'show', 'dev', 'egw.vxlan'], { allowFailure: true });
    assert.notEqual(link.code, 0);
    assert.match(await text(ns.runner, ['nft', 'list', 'table', 'ip', 'egw']), /maxseg/);
    assert.deepEqual((await reconcile(d)).writes, []);
  });
});
