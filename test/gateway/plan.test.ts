// The gateway without a kernel: the nft and link plans, the whole plan (configuration + kernel state → at most one
// command per tool), programGateway's commands against a fake kernel, the model (store → desired configuration),
// the health server, and runGateway's readiness with a store that goes away.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MemoryStore } from '../../src/datastore/index.js';
import { RecordingRunner, type RunResult } from '../../src/dataplane/exec.js';
import { READ, WRITE } from '../../src/dataplane/commands.js';
import { parseSysctlsRead } from '../../src/dataplane/kernel.js';
import { lines } from '../dataplane/helpers.js';
import {
  CLIENTS_SET,
  desiredTable,
  gatewayDesired,
  GatewayModel,
  gatewaySysctls,
  parseGatewayLinks,
  parseRpsRead,
  parseCpuList,
  intersectMasks,
  formatMask,
  parseTable,
  planGateway,
  planLink,
  planTable,
  programGateway,
  rpsMask,
  parseCpusAllowed,
  Readiness,
  RULE_COMMENT,
  runGateway,
  startHealthServer,
  type GatewayActualState,
  type GatewayNftParams,
  type GatewayPlan,
} from '../../src/gateway/index.js';
import { memoryLogger } from '../../src/log.js';
import { clientNamespace, clientPod, egressGateway, felixConfiguration, gatewayPod, namespaceNamed, node, oneGatewayCluster, pod } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';
import { failureDetection, FlakyStore, httpGet, isProbe, isRead, listingOf, POLL } from './helpers.js';

const PARAMS: GatewayNftParams = { device: 'egw.vxlan', uplink: 'eth0', port: 4790, mss: 1410, nodes: ['172.31.98.11', '172.31.98.12'], clients: ['10.244.0.5'] };

describe('gateway: nft plan', () => {
  it('creates the whole table when there is none', () => {
    const p = planTable(null, desiredTable(PARAMS));
    assert.ok(p.doc);
    const ops = p.doc.nftables.map((o) => Object.keys(o)[0] + ' ' + Object.keys(Object.values(o)[0] as object)[0]);
    assert.deepEqual(ops.slice(0, 3), ['add table', 'add set', 'add set']);
    assert.equal(ops.filter((o) => o === 'add chain').length, 4);
    assert.equal(ops.filter((o) => o === 'add rule').length, 6);
    // the tunnel's outer packets from nodes skip conntrack, before conntrack sees them (raw priority)
    const raw = desiredTable(PARAMS).chains.find((c) => c.hook === 'prerouting')!;
    assert.deepEqual([raw.type, raw.prio], ['filter', -300]);
    assert.deepEqual(raw.rules.map((r) => r.expr), [
      [
        { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: 4790 } },
        { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@nodes' } },
        { notrack: null },
      ],
    ]);
  });

  it('does nothing when the kernel matches (counters ignored)', () => {
    const listing = JSON.parse(listingOf(desiredTable(PARAMS)));
    for (const o of listing.nftables) for (const e of o.rule?.expr ?? []) if (e.counter) e.counter = { packets: 99, bytes: 9999 };
    const p = planTable(parseTable(JSON.stringify(listing)), desiredTable(PARAMS));
    assert.equal(p.doc, null);
    assert.deepEqual(p.changes, []);
  });

  it('updates set elements in place', () => {
    const actual = parseTable(listingOf(desiredTable(PARAMS)));
    const p = planTable(actual, desiredTable({ ...PARAMS, clients: ['10.244.0.6', '10.244.0.7'], nodes: ['172.31.98.11'] }));
    assert.deepEqual(p.doc?.nftables, [
      { delete: { element: { family: 'ip', table: 'egw-gw', name: 'nodes', elem: ['172.31.98.12'] } } },
      { delete: { element: { family: 'ip', table: 'egw-gw', name: CLIENTS_SET, elem: ['10.244.0.5'] } } },
      { add: { element: { family: 'ip', table: 'egw-gw', name: CLIENTS_SET, elem: ['10.244.0.6', '10.244.0.7'] } } },
    ]);
  });

  it('rewrites only a chain whose rules differ (MTU change, tampering, a missing rule)', () => {
    const actual = parseTable(listingOf(desiredTable(PARAMS)))!;
    let p = planTable(actual, desiredTable({ ...PARAMS, mss: 1360 }));
    assert.deepEqual(p.changes, ['chain forward: rules rewritten']);
    assert.deepEqual(Object.keys(p.doc!.nftables[0]), ['flush']);
    const noNat = { ...actual, rules: actual.rules.filter((r) => r.comment !== RULE_COMMENT.masquerade) };
    p = planTable(noNat, desiredTable(PARAMS));
    assert.deepEqual(p.changes, ['chain postrouting: rules rewritten']);
    const tampered = { ...actual, rules: actual.rules.map((r) => (r.comment === RULE_COMMENT.spoofedClient ? { ...r, expr: r.expr.slice(0, 1).concat([{ accept: null }]) } : r)) };
    assert.deepEqual(planTable(tampered, desiredTable(PARAMS)).changes, ['chain forward: rules rewritten']);
  });

  it('recreates the table when its shape is wrong', () => {
    const actual = parseTable(listingOf(desiredTable(PARAMS)))!;
    const extra = { ...actual, chains: [...actual.chains, { name: 'mine', handle: 99 }] };
    assert.deepEqual(Object.keys(planTable(extra, desiredTable(PARAMS)).doc!.nftables[0]), ['delete']);
    const interval = { ...actual, sets: actual.sets.map((s) => ({ ...s, flags: ['interval'] })) };
    assert.match(planTable(interval, desiredTable(PARAMS)).changes[0], /recreate/);
  });
});

describe('gateway: link plan', () => {
  const want = { device: 'egw.vxlan', vni: 4097, port: 4790, local: '10.10.10.0', mac: 'a2:2a:0a:0a:0a:00', mtu: 1450 };
  const good = {
    ifindex: 4,
    ifname: 'egw.vxlan',
    mtu: 1450,
    address: 'a2:2a:0a:0a:0a:00',
    flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
    linkinfo: { info_kind: 'vxlan', info_data: { id: 4097, local: '10.10.10.0', port: 4790, learning: false } },
  };
  it('creates, keeps, adjusts, recreates', () => {
    assert.deepEqual(planLink(undefined, want), [
      'link add egw.vxlan type vxlan id 4097 dstport 4790 local 10.10.10.0 nolearning',
      'link set dev egw.vxlan address a2:2a:0a:0a:0a:00 mtu 1450 up',
    ]);
    assert.deepEqual(planLink(good, want), []);
    assert.deepEqual(planLink({ ...good, mtu: 1500, flags: ['BROADCAST'] }, want), ['link set dev egw.vxlan mtu 1450 up']);
    assert.equal(planLink({ ...good, linkinfo: { info_kind: 'vxlan', info_data: { ...good.linkinfo.info_data, id: 1 } } }, want)[0], 'link del dev egw.vxlan');
    assert.equal(planLink({ ...good, linkinfo: { info_kind: 'vxlan', info_data: { ...good.linkinfo.info_data, learning: true } } }, want)[0], 'link del dev egw.vxlan');
    assert.equal(planLink({ ...good, linkinfo: { info_kind: 'veth', info_data: {} } }, want)[0], 'link del dev egw.vxlan');
  });
});

/** A fake netns: answers reads from `state` (sysctls: the cat output; a missing file is named on stderr), records writes. */
function fakeKernel(state: FakeState): RecordingRunner {
  return new RecordingRunner(fakeAnswer(state));
}

interface FakeState {
  links: unknown[];
  sysctls: string;
  nft: string | null;
  missing?: string;
}

function fakeAnswer(state: FakeState): (argv: string[]) => RunResult {
  const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
  return (argv) => {
    const a = argv.join(' ');
    if (a === 'ip -d -json link show') return ok(JSON.stringify(state.links));
    if (argv[0] === 'cat') return state.missing ? { code: 1, stdout: state.sysctls, stderr: `cat: ${state.missing}: No such file or directory\n` } : ok(state.sysctls);
    if (a.startsWith('nft -j list table')) return state.nft === null ? { code: 1, stdout: '', stderr: 'Error: No such file or directory\n' } : ok(state.nft);
    return ok();
  };
}

const ETH0 = { ifindex: 2, ifname: 'eth0', mtu: 1500, address: '0e:00:00:00:00:01', flags: ['UP'] };
const VXLAN = {
  ifindex: 3,
  ifname: 'egw.vxlan',
  mtu: 1450,
  address: 'a2:2a:0a:0a:0a:00',
  flags: ['UP', 'LOWER_UP'],
  linkinfo: { info_kind: 'vxlan', info_data: { id: 4097, local: '10.10.10.0', port: 4790, learning: false } },
};
const CFG = { ownIP: '10.10.10.0', vni: 4097, port: 4790, nodes: ['172.31.98.12', '172.31.98.11'], clients: ['10.244.0.5'] };
const DEV_RP = '/proc/sys/net/ipv4/conf/egw.vxlan/rp_filter';

describe('gateway: the plan (configuration + kernel → batches)', () => {
  const want = gatewayDesired(CFG);
  /** The kernel exactly as the gateway leaves it. */
  const right = (): GatewayActualState => ({
    links: [ETH0, VXLAN],
    sysctls: { 'net.ipv4.ip_forward': '1', 'net/ipv4/conf/all/rp_filter': '0', 'net/ipv4/conf/egw.vxlan/rp_filter': '0' },
    nft: parseTable(listingOf(desiredTable(PARAMS))),
    rps: [],
  });
  const tools = (p: GatewayPlan): string[] => p.commands.map((c) => c.argv.join(' '));

  it('resolves the configuration: defaults, MAC from the pod IP, sorted unique IPs', () => {
    assert.deepEqual(want, {
      device: 'egw.vxlan',
      uplink: 'eth0',
      vni: 4097,
      port: 4790,
      local: '10.10.10.0',
      mac: 'a2:2a:0a:0a:0a:00',
      nodes: ['172.31.98.11', '172.31.98.12'],
      clients: ['10.244.0.5'],
      rps: null,
      rpsOffset: 0x0a0a0a00,
    });
    assert.deepEqual(gatewayDesired({ ...CFG, nodes: ['172.31.98.11', '172.31.98.11'] }).nodes, ['172.31.98.11']);
    assert.throws(() => gatewayDesired({ ...CFG, device: 'bad name' }), /bad device name/);
    assert.throws(() => gatewayDesired({ ...CFG, ownIP: 'x' }), /not IPv4/);
    assert.throws(() => gatewayDesired({ ...CFG, clients: ['10.244.0'] }), /not an IPv4 address/);
  });

  it('a kernel that is right: zero commands, zero changes', () => {
    const p = planGateway(want, right());
    assert.deepEqual([p.commands, p.changes, p.ipLines, p.sysctls, p.nft], [[], [], [], [], null]);
    assert.deepEqual([p.mtu, p.mss], [1450, 1410]);
  });

  it('an empty netns: one ip batch, one sysctl shell (the new device’s rp_filter included), one nft transaction', () => {
    const p = planGateway(want, { links: [ETH0], sysctls: { 'net.ipv4.ip_forward': '0', 'net/ipv4/conf/all/rp_filter': '1', 'net/ipv4/conf/egw.vxlan/rp_filter': null }, nft: null, rps: [] });
    assert.deepEqual(tools(p), ['ip -force -batch -', `sh -c r=0; echo 1 > /proc/sys/net/ipv4/ip_forward || r=1; echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter || r=1; echo 0 > ${DEV_RP} || r=1; exit $r`, 'nft -j -f -']);
    assert.equal(p.commands[0].input, 'link add egw.vxlan type vxlan id 4097 dstport 4790 local 10.10.10.0 nolearning\nlink set dev egw.vxlan address a2:2a:0a:0a:0a:00 mtu 1450 up\n');
    assert.deepEqual(JSON.parse(p.commands[2].input!), p.nft);
    assert.deepEqual(p.changes.slice(0, 5), [
      'ip link add egw.vxlan type vxlan id 4097 dstport 4790 local 10.10.10.0 nolearning',
      'ip link set dev egw.vxlan address a2:2a:0a:0a:0a:00 mtu 1450 up',
      'sysctl net.ipv4.ip_forward=1',
      'sysctl net/ipv4/conf/all/rp_filter=0',
      'sysctl net/ipv4/conf/egw.vxlan/rp_filter=0',
    ]);
    assert.deepEqual(p.changes.slice(5), ['nft create table ip egw-gw']);
  });

  it('link drift: exactly the ip line that fixes it, nothing else', () => {
    const linkOnly = (link: object): GatewayPlan => planGateway(want, { ...right(), links: [ETH0, { ...VXLAN, ...link }] });
    for (const [drift, line] of [
      [{ mtu: 1400 }, 'link set dev egw.vxlan mtu 1450'],
      [{ flags: ['BROADCAST'] }, 'link set dev egw.vxlan up'],
      [{ address: '02:00:00:00:00:01' }, 'link set dev egw.vxlan address a2:2a:0a:0a:0a:00'],
      [{ address: 'A2:2A:0A:0A:0A:00', mtu: 9000, flags: [] }, 'link set dev egw.vxlan mtu 1450 up'],
    ] as const) {
      const p = linkOnly(drift);
      assert.deepEqual(tools(p), ['ip -force -batch -'], JSON.stringify(drift));
      assert.equal(p.commands[0].input, `${line}\n`);
    }
  });

  it('a link that cannot be changed in place is recreated, and its rp_filter written again', () => {
    const p = planGateway(want, { ...right(), links: [ETH0, { ...VXLAN, linkinfo: { info_kind: 'vxlan', info_data: { ...VXLAN.linkinfo.info_data, port: 8472 } } }] });
    assert.deepEqual(lines(p.commands[0].input), [
      'link del dev egw.vxlan',
      'link add egw.vxlan type vxlan id 4097 dstport 4790 local 10.10.10.0 nolearning',
      'link set dev egw.vxlan address a2:2a:0a:0a:0a:00 mtu 1450 up',
    ]);
    assert.deepEqual(p.sysctls, [['net/ipv4/conf/egw.vxlan/rp_filter', '0']], 'the new device starts with conf/default’s value');
    assert.deepEqual(tools(p).map((t) => t.split(' ')[0]), ['ip', 'sh']);
  });

  it('sysctl drift: one shell with only the wrong values', () => {
    const p = planGateway(want, { ...right(), sysctls: { ...right().sysctls, 'net/ipv4/conf/all/rp_filter': '2' } });
    assert.deepEqual(tools(p), ['sh -c r=0; echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter || r=1; exit $r']);
    assert.deepEqual(p.changes, ['sysctl net/ipv4/conf/all/rp_filter=0']);
    const two = planGateway(want, { ...right(), sysctls: { ...right().sysctls, 'net.ipv4.ip_forward': '0', 'net/ipv4/conf/egw.vxlan/rp_filter': '1' } });
    assert.deepEqual(two.sysctls, [
      ['net.ipv4.ip_forward', '1'],
      ['net/ipv4/conf/egw.vxlan/rp_filter', '0'],
    ]);
    assert.equal(two.commands.length, 1);
  });

  it('nft drift: one transaction (elements in place; a chain rewritten when the uplink MTU changes)', () => {
    const p = planGateway(gatewayDesired({ ...CFG, clients: ['10.244.0.6'] }), right());
    assert.deepEqual(tools(p), ['nft -j -f -']);
    assert.deepEqual(p.changes, ['nft set clients: -10.244.0.5', 'nft set clients: +10.244.0.6']);
    // a smaller uplink MTU: the tunnel's MTU (ip) and the MSS clamp (nft) follow, one command each
    const mtu = planGateway(want, { ...right(), links: [{ ...ETH0, mtu: 1400 }, VXLAN] });
    assert.deepEqual([mtu.mtu, mtu.mss], [1350, 1310]);
    assert.deepEqual(tools(mtu), ['ip -force -batch -', 'nft -j -f -']);
    assert.deepEqual(mtu.changes, ['ip link set dev egw.vxlan mtu 1350', 'nft chain forward: rules rewritten']);
  });

  it('everything wrong at once: still one command per tool, in the order ip, sysctls, nft', () => {
    const p = planGateway(want, {
      links: [ETH0, { ...VXLAN, mtu: 1500, flags: [] }],
      sysctls: { 'net.ipv4.ip_forward': '0', 'net/ipv4/conf/all/rp_filter': '1', 'net/ipv4/conf/egw.vxlan/rp_filter': '1' },
      nft: null,
      rps: [],
    });
    assert.deepEqual(tools(p).map((t) => t.split(' ').slice(0, 2).join(' ')), ['ip -force', 'sh -c', 'nft -j']);
  });

  it('no uplink: an error, not a guess at the MTU', () => {
    assert.throws(() => planGateway(want, { ...right(), links: [VXLAN] }), /no eth0/);
  });

  it('reads: links as ip prints them; sysctls with the device’s file missing', () => {
    assert.deepEqual(parseGatewayLinks(JSON.stringify([ETH0, VXLAN])), [ETH0, VXLAN]);
    assert.deepEqual(parseGatewayLinks(''), []);
    const keys = gatewaySysctls('egw.vxlan').map(([k]) => k);
    assert.deepEqual(parseSysctlsRead('1\n0\n', `cat: ${DEV_RP}: No such file or directory\n`, keys), {
      'net.ipv4.ip_forward': '1',
      'net/ipv4/conf/all/rp_filter': '0',
      'net/ipv4/conf/egw.vxlan/rp_filter': null,
    });
    assert.deepEqual(parseSysctlsRead('1\n0\n0\n', '', keys), { 'net.ipv4.ip_forward': '1', 'net/ipv4/conf/all/rp_filter': '0', 'net/ipv4/conf/egw.vxlan/rp_filter': '0' });
  });
});

describe('gateway: programGateway against a fake kernel (RecordingRunner)', () => {
  it('an empty netns: three reads, then one ip batch (-force), one sysctl shell, one nft transaction', async () => {
    const r = fakeKernel({ links: [ETH0], sysctls: '0\n1\n', missing: DEV_RP, nft: null });
    const res = await programGateway(r, CFG);
    assert.equal(res.mtu, 1450);
    assert.equal(res.mss, 1410);
    assert.deepEqual(
      r.calls.filter((c) => isRead(c.argv)).map((c) => c.argv.join(' ')),
      ['ip -d -json link show', `cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/rp_filter ${DEV_RP}`, 'nft -j list table ip egw-gw'],
    );
    const writes = r.calls.filter((c) => !isRead(c.argv));
    assert.deepEqual(writes[0], {
      argv: ['ip', '-force', '-batch', '-'],
      input: 'link add egw.vxlan type vxlan id 4097 dstport 4790 local 10.10.10.0 nolearning\nlink set dev egw.vxlan address a2:2a:0a:0a:0a:00 mtu 1450 up\n',
    });
    assert.deepEqual(writes[1].argv, [
      'sh',
      '-c',
      `r=0; echo 1 > /proc/sys/net/ipv4/ip_forward || r=1; echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter || r=1; echo 0 > ${DEV_RP} || r=1; exit $r`,
    ]);
    assert.deepEqual(writes[2].argv, ['nft', '-j', '-f', '-']);
    const doc = JSON.parse(writes[2].input!);
    assert.deepEqual(doc.nftables[1].add.set, { family: 'ip', table: 'egw-gw', name: 'nodes', type: 'ipv4_addr', elem: ['172.31.98.11', '172.31.98.12'] });
    assert.equal(writes.length, 3);
    assert.deepEqual(res.commands.map((c) => [c.argv, c.input]), writes.map((c) => [c.argv, c.input]), 'the result lists exactly the writes');
    assert.equal(res.changes.length, 6);
  });

  it('a netns that is already right gets no command but the three reads', async () => {
    const nft = listingOf(desiredTable({ ...PARAMS, nodes: ['172.31.98.11', '172.31.98.12'], clients: ['10.244.0.5'] }));
    const r = fakeKernel({ links: [ETH0, VXLAN], sysctls: '1\n0\n0\n', nft });
    const res = await programGateway(r, CFG);
    assert.deepEqual([res.changes, res.commands], [[], []]);
    assert.deepEqual(
      r.calls.map((c) => c.argv[0]),
      ['ip', 'cat', 'nft'],
    );
  });

  it('some drift of every kind: still one write per tool', async () => {
    const nft = listingOf(desiredTable({ ...PARAMS, clients: ['10.244.0.9'] }));
    const r = fakeKernel({ links: [ETH0, { ...VXLAN, flags: [] }], sysctls: '0\n0\n1\n', nft });
    const res = await programGateway(r, CFG);
    const writes = r.calls.filter((c) => !isRead(c.argv));
    assert.deepEqual(
      writes.map((c) => [c.argv.join(' '), c.input]),
      [
        ['ip -force -batch -', 'link set dev egw.vxlan up\n'],
        [`sh -c r=0; echo 1 > /proc/sys/net/ipv4/ip_forward || r=1; echo 0 > ${DEV_RP} || r=1; exit $r`, undefined],
        [
          'nft -j -f -',
          JSON.stringify({
            nftables: [
              { delete: { element: { family: 'ip', table: 'egw-gw', name: 'clients', elem: ['10.244.0.9'] } } },
              { add: { element: { family: 'ip', table: 'egw-gw', name: 'clients', elem: ['10.244.0.5'] } } },
            ],
          }),
        ],
      ],
    );
    assert.deepEqual(res.changes, [
      'ip link set dev egw.vxlan up',
      'sysctl net.ipv4.ip_forward=1',
      'sysctl net/ipv4/conf/egw.vxlan/rp_filter=0',
      'nft set clients: -10.244.0.9',
      'nft set clients: +10.244.0.5',
    ]);
  });

  it('fails without an uplink, when nft cannot list, or when cat fails for another reason', async () => {
    await assert.rejects(programGateway(fakeKernel({ links: [], sysctls: '', nft: null }), CFG), /no eth0/);
    const r = new RecordingRunner((argv) =>
      argv[0] === 'nft' ? { code: 1, stdout: '', stderr: 'Error: Operation not permitted' } : argv[0] === 'ip' ? { code: 0, stdout: JSON.stringify([ETH0, VXLAN]), stderr: '' } : { code: 0, stdout: '1\n0\n0\n', stderr: '' },
    );
    await assert.rejects(programGateway(r, CFG), /Operation not permitted/);
    assert.equal(r.calls.filter((c) => !isRead(c.argv)).length, 0, 'nothing written after a failed read');
    const cat = new RecordingRunner((argv) => (argv[0] === 'cat' ? { code: 1, stdout: '', stderr: 'cat: /proc/sys/net/ipv4/ip_forward: Permission denied\n' } : { code: 0, stdout: JSON.stringify([ETH0, VXLAN]), stderr: '' }));
    await assert.rejects(programGateway(cat, CFG), /Permission denied/);
  });

  it('a failed write stops the reconcile there (the caller retries and the next one re-reads)', async () => {
    const empty = fakeAnswer({ links: [ETH0], sysctls: '0\n1\n', missing: DEV_RP, nft: null });
    const r = new RecordingRunner((argv) => (argv.join(' ') === 'ip -force -batch -' ? { code: 1, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' } : empty(argv)));
    await assert.rejects(programGateway(r, CFG), /ip -force -batch - failed/);
    assert.deepEqual(r.calls.filter((c) => !isRead(c.argv)).map((c) => c.argv[0]), ['ip']);
  });
});

describe('gateway: model', () => {
  it('waits for its pod and its IP; defaults; node InternalIPs; allowed clients', () => {
    const m = new GatewayModel('egw', 'red-1');
    assert.deepEqual(m.desired(), { waiting: 'pod egw/red-1 is not in the datastore' });
    m.apply('upsert', gatewayPod('egw', 'red-1', 'red', { node: 'n2', phase: 'Pending' }));
    assert.deepEqual(m.desired(), { waiting: 'pod egw/red-1 has no IPv4 address yet' });
    for (const r of [
      felixConfiguration(),
      node('n1', { ip: '172.31.98.11', hostnameAddress: true }),
      node('n2', { ip: '172.31.98.12', hostnameAddress: true }),
      clientNamespace('app', { selector: "egress-code == 'red'", namespaceSelector: namespaceNamed('egw') }),
      pod('app', 'c1', { node: 'n1', ip: '10.244.0.5' }),
      pod('other', 'c2', { node: 'n1', ip: '10.244.0.6' }),
      gatewayPod('egw', 'red-1', 'red', { node: 'n2', ip: '10.10.10.0' }),
    ])
      m.apply('upsert', r);
    assert.deepEqual(m.desired(), { config: { ownIP: '10.10.10.0', vni: 4097, port: 4790, nodes: ['172.31.98.11', '172.31.98.12'], clients: ['10.244.0.5'] }, warnings: [] });
    assert.equal(m.failureDetection().healthTimeoutDataStoreSeconds, 90);
    m.apply('upsert', egressGateway('egw', 'red', { egressGatewayFailureDetection: failureDetection(7) }));
    assert.equal(m.failureDetection().healthTimeoutDataStoreSeconds, 7);
    m.apply('upsert', felixConfiguration({ egressIPVXLANVNI: 5000, egressIPVXLANPort: 4800 }));
    m.apply('delete', node('n1', { ip: '172.31.98.11', hostnameAddress: true }));
    const d = m.desired();
    assert.ok('config' in d);
    assert.deepEqual([d.config.vni, d.config.port, d.config.nodes], [5000, 4800, ['172.31.98.12']]);
    m.apply('upsert', felixConfiguration({ egressIPSupport: 'Disabled' }));
    const off = m.desired();
    assert.ok('config' in off);
    assert.deepEqual(off.config.clients, []);
  });
});

describe('gateway: health server', () => {
  it('liveness, readiness with reasons, 404', async () => {
    const r = new Readiness();
    let failing: string[] = ['not yet'];
    r.register('a', () => failing);
    r.register('b', () => []);
    const s = await startHealthServer({ port: 0, host: '127.0.0.1', readiness: r });
    try {
      const base = `http://127.0.0.1:${s.port}`;
      assert.deepEqual(await httpGet(`${base}/liveness`), { status: 200, body: 'ok\n' });
      assert.deepEqual(await httpGet(`${base}/readiness`), { status: 503, body: 'a: not yet\n' });
      failing = [];
      assert.deepEqual(await httpGet(`${base}/readiness`), { status: 200, body: 'ok\n' });
      r.register('probes', () => ['icmp: all targets failed', 'http: all targets failed']);
      assert.deepEqual(await httpGet(`${base}/readiness`), { status: 503, body: 'probes: icmp: all targets failed\nprobes: http: all targets failed\n' });
      assert.equal((await httpGet(`${base}/other`)).status, 404);
    } finally {
      await s.close();
    }
  });
});

describe('gateway: runGateway with a fake kernel', () => {
  const stops: AbortController[] = [];
  after(() => stops.forEach((s) => s.abort()));

  it('programs, follows the allowed clients, reports the datastore timeout, stops', async () => {
    const mem = new MemoryStore();
    const store = new FlakyStore(mem);
    // red-1 has no IP yet
    for (const r of oneGatewayCluster({ egressGateway: egressGateway('egw', 'red', { egressGatewayFailureDetection: failureDetection(1) }) })) await mem.create(r);
    const kernel = fakeKernel({ links: [ETH0], sysctls: '0\n1\n1\n', nft: null });
    const log = memoryLogger();
    const ac = new AbortController();
    stops.push(ac);
    let port = 0;
    const done = runGateway({ store, namespace: 'egw', name: 'red-1', runner: kernel, healthPort: 0, healthHost: '127.0.0.1', log, signal: ac.signal, onHealthListening: (p) => (port = p) });
    await until('health server', () => port || undefined, 10_000, POLL);
    const ready = (): Promise<{ status: number; body: string }> => httpGet(`http://127.0.0.1:${port}/readiness`);
    assert.equal((await ready()).status, 503);
    // (first "data plane not programmed yet", until the first reconcile has looked: the health server listens first)
    await until('the reason: no IP', async () => /dataplane: pod egw\/red-1 has no IPv4 address yet/.test((await ready()).body), 10_000, POLL);
    assert.equal((await ready()).status, 503);
    const kernelCalls = () => kernel.calls.filter((c) => !isProbe(c.argv)); // (the EgressGateway's ICMP probe pings through the runner too)
    assert.equal(kernelCalls().length, 0, 'nothing is programmed before the pod has an IP');

    await mem.update(gatewayPod('egw', 'red-1', 'red', { node: 'n2', ip: '10.10.10.0' }));
    await until('ready', async () => (await ready()).status === 200, 10_000, POLL);
    const nftDocs = (): { nftables: Record<string, { element?: { elem: string[] }; set?: { name: string; elem?: string[] } }>[] }[] =>
      kernel.calls.filter((c) => c.argv.join(' ') === 'nft -j -f -').map((c) => JSON.parse(c.input!));
    const clientsIn = (doc: ReturnType<typeof nftDocs>[number]): string[] | undefined => doc.nftables.map((o) => o.add?.set).find((s) => s?.name === 'clients')?.elem;
    assert.deepEqual(clientsIn(nftDocs().at(-1)!), ['10.244.0.5']);

    // a second client: the fake kernel still says "nothing there", so the whole table is written again
    await mem.create(clientPod('app', 'c2', { selector: "egress-code == 'red'", namespaceSelector: 'all()' }, { node: 'n1', ip: '10.244.0.9' }));
    await until('client c2 programmed', () => clientsIn(nftDocs().at(-1)!)?.includes('10.244.0.9'), 10_000, POLL);
    // a pod that changes nothing for this gateway triggers no programming
    const before = kernelCalls().length;
    await mem.create(pod('app', 'c3', { node: 'n1', ip: '10.244.0.10' }));
    await sleep(100);
    assert.equal(kernelCalls().length, before);

    // the datastore goes away: not ready after healthTimeoutDataStoreSeconds (1 s), ready again when it is back
    store.down = true;
    await sleep(500);
    // (the gateway asks every timeout / 3: last answered at most that long before the outage)
    assert.equal((await ready()).status, 200, 'still ready within the timeout');
    await until('not ready', async () => (await ready()).status === 503, 5000, POLL);
    // never before the timeout since the datastore last answered
    const since = Date.now() - store.lastAnswered;
    assert.ok(since >= 1000, `503 ${since} ms after the datastore last answered (healthTimeoutDataStoreSeconds 1)`);
    assert.match((await ready()).body, /^datastore: datastore flaky\(memory:\) not answering for \d+\.\ds \(healthTimeoutDataStoreSeconds 1\)\n$/);
    assert.equal((await httpGet(`http://127.0.0.1:${port}/liveness`)).status, 200);
    store.down = false;
    await until('ready again', async () => (await ready()).status === 200, 5000, POLL);

    ac.abort();
    await done;
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/liveness`), 'the health server is closed');
    assert.ok(log.lines.some((l) => l.includes('stopped (kernel state left in place)')));
  });
});

describe('gateway: receive packet steering (RPS) in the plan', () => {
  const want = gatewayDesired({ ...CFG, rpsMask: '3' });
  const q = (dev: string, n: number, mask: string, writable = true) => ({ path: `/sys/class/net/${dev}/queues/rx-${n}/rps_cpus`, writable, mask });
  const state = (rps: GatewayActualState['rps']): GatewayActualState => ({
    links: [ETH0, VXLAN],
    sysctls: { 'net.ipv4.ip_forward': '1', 'net/ipv4/conf/all/rp_filter': '0', 'net/ipv4/conf/egw.vxlan/rp_filter': '0' },
    nft: parseTable(listingOf(desiredTable(PARAMS))),
    rps,
  });

  it('masks as the kernel prints them: a comma between groups of 8 hex digits; the process\'s own CPUs from its status', () => {
    assert.deepEqual([rpsMask(1), rpsMask(2), rpsMask(32), rpsMask(33), rpsMask(72)], ['1', '3', 'ffffffff', '1,ffffffff', 'ff,ffffffff,ffffffff']);
    assert.throws(() => rpsMask(0), /rps: 0 CPUs/);
    assert.equal(parseCpusAllowed('Name:\tegw\nCpus_allowed:\t0000000f,000000F0\nCpus_allowed_list:\t4-7,32-35\n'), '0000000f,000000f0');
    assert.equal(parseCpusAllowed('Cpus_allowed:\t00000000\n'), null);
    assert.equal(parseCpusAllowed('Name:\tegw\n'), null);
    assert.equal(want.rps, '3');
    assert.equal(gatewayDesired({ ...CFG, rpsMask: '0000000F,000000f0' }).rps, '0000000f,000000f0');
    for (const bad of ['', '0', '00000000,00000000', '123456789', '3;reboot']) assert.throws(() => gatewayDesired({ ...CFG, rpsMask: bad }), /bad RPS mask/, bad);
    // the pool: the allowed CPUs that are online (/sys/devices/system/cpu/online's list form)
    assert.deepEqual([parseCpuList('0-1\n'), parseCpuList('0'), parseCpuList('0-3,8'), parseCpuList('32')], ['3', '1', '10f', '1,00000000']);
    for (const bad of ['', '1-0', 'x', '0-', '0,,1']) assert.equal(parseCpuList(bad), null, bad);
    assert.deepEqual([intersectMasks('0000000f,000000f0', '1,ffffffff'), intersectMasks('3', '4'), formatMask(1n << 40n)], ['1,000000f0', null, '100,00000000']);
    assert.equal(want.rpsOffset, 0x0a0a0a00, 'the pod IP as a number');
  });

  it('right: each queue on its one CPU of the pool — rx-i on CPU (offset + i) mod n, the uplink\'s and the tunnel\'s rx-0 on the same; the kernel\'s zero-padded spelling', () => {
    // offset 0x0a0a0a00 (10.10.10.0) is even: rx-0 on CPU 0 of CPUs {0, 1}, rx-1 on CPU 1
    const ok = planGateway(want, state([q('eth0', 0, '00000001'), q('egw.vxlan', 0, '00000000,00000001'), q('eth0', 1, '00000002')]));
    assert.deepEqual([ok.commands, ok.changes, ok.notes], [[], [], []]);
    // the next pod IP starts on the next CPU, so two gateways of a node do not share one
    const next = planGateway(gatewayDesired({ ...CFG, ownIP: '10.10.10.1', rpsMask: '3' }), state([q('eth0', 0, '1'), q('egw.vxlan', 0, '1'), q('eth0', 1, '1')]));
    assert.deepEqual(next.rps, [['/sys/class/net/eth0/queues/rx-0/rps_cpus', '2'], ['/sys/class/net/egw.vxlan/queues/rx-0/rps_cpus', '2']]);
    // a pool with gaps (a cpuset): its CPUs in order, 0x0a0a0a00 mod 3 = 0
    const gaps = planGateway(gatewayDesired({ ...CFG, rpsMask: '0000000f,00000000' }), state([q('eth0', 0, '1,00000000'), q('eth0', 1, '2,00000000'), q('eth0', 2, '4,00000000'), q('eth0', 3, '1,00000000')]));
    assert.deepEqual([gaps.changes, 0x0a0a0a00 % 4], [['rps /sys/class/net/eth0/queues/rx-3/rps_cpus=8,00000000'], 0]);
  });

  it('wrong (off, several CPUs, another CPU): one shell with only those queues, best effort, last', () => {
    const p = planGateway(want, state([q('eth0', 0, '00000000'), q('eth0', 1, '00000003'), q('egw.vxlan', 0, '00000002'), q('egw.vxlan', 1, '2')]));
    assert.deepEqual(p.rps, [
      ['/sys/class/net/eth0/queues/rx-0/rps_cpus', '1'],
      ['/sys/class/net/eth0/queues/rx-1/rps_cpus', '2'],
      ['/sys/class/net/egw.vxlan/queues/rx-0/rps_cpus', '1'],
    ]);
    assert.deepEqual(p.commands.map((c) => c.argv.join(' ')), ['sh -c r=0; echo 1 > /sys/class/net/eth0/queues/rx-0/rps_cpus || r=1; echo 2 > /sys/class/net/eth0/queues/rx-1/rps_cpus || r=1; echo 1 > /sys/class/net/egw.vxlan/queues/rx-0/rps_cpus || r=1; exit $r']);
    assert.equal(p.commands[0]!.bestEffort, true);
    assert.deepEqual(p.changes, ['rps /sys/class/net/eth0/queues/rx-0/rps_cpus=1', 'rps /sys/class/net/eth0/queues/rx-1/rps_cpus=2', 'rps /sys/class/net/egw.vxlan/queues/rx-0/rps_cpus=1']);
  });

  it('a tunnel this plan creates gets rx-0 set after it, writable as the uplink\'s queues are', () => {
    const p = planGateway(want, { ...state([q('eth0', 0, '1'), q('egw.vxlan', 0, '1'), q('egw.vxlan', 1, '2')]), links: [ETH0] });
    assert.deepEqual(p.rps, [['/sys/class/net/egw.vxlan/queues/rx-0/rps_cpus', '1']]);
    assert.deepEqual(p.commands.map((c) => c.argv[0]), ['ip', 'sh', 'sh'], 'link first, then sysctls, then RPS');
    assert.match(p.commands.at(-1)!.argv[2]!, /rps_cpus/);
    // a read-only /sys: the new tunnel's queue is not written either (that write would fail the reconcile)
    const ro = planGateway(want, { ...state([q('eth0', 0, '0', false)]), links: [ETH0] });
    assert.deepEqual(ro.rps, []);
    assert.deepEqual(ro.commands.map((c) => c.argv.slice(0, 2).join(' ')), ['ip -force', 'sh -c'], 'the link and its rp_filter, no RPS shell');
    assert.doesNotMatch(ro.commands[1]!.argv[2]!, /rps_cpus/);
    assert.match(ro.notes[0]!, /read-only: \/sys\/class\/net\/eth0\/queues\/rx-0\/rps_cpus, \/sys\/class\/net\/egw.vxlan\/queues\/rx-0\/rps_cpus\)/);
  });

  it('a read-only /sys (a container): a note, no write, the rest of the plan as always', () => {
    const p = planGateway(want, state([q('eth0', 0, '0', false), q('egw.vxlan', 0, '0', false)]));
    assert.deepEqual([p.commands, p.rps], [[], []]);
    assert.deepEqual(p.notes, ['receive packet steering not set (read-only: /sys/class/net/eth0/queues/rx-0/rps_cpus, /sys/class/net/egw.vxlan/queues/rx-0/rps_cpus): this gateway forwards, with more reordering under load']);
    const none = planGateway(want, state([]));
    assert.deepEqual(none.notes, ['receive packet steering not available on eth0 (no /sys/class/net/eth0/queues/rx-*/rps_cpus)']);
  });

  it('off (no rpsMask): RPS is neither read nor written, whatever the kernel has', async () => {
    const off = gatewayDesired(CFG);
    assert.equal(off.rps, null);
    const p = planGateway(off, state([q('eth0', 0, '0')]));
    assert.deepEqual([p.commands, p.notes], [[], []]);
    const r = fakeKernel({ links: [ETH0, VXLAN], sysctls: '1\n0\n0\n', nft: listingOf(desiredTable(PARAMS)) });
    await programGateway(r, CFG);
    assert.deepEqual(r.calls.filter((c) => c.argv[0] === 'sh'), [], 'no RPS read (nor any shell)');
  });

  it('programGateway: a refused RPS write is a note and the reconcile succeeds; the read is one shell beside the others', async () => {
    const answer = fakeAnswer({ links: [ETH0, VXLAN], sysctls: '1\n0\n0\n', nft: listingOf(desiredTable(PARAMS)) });
    const r = new RecordingRunner((argv) => {
      if (argv[0] === 'sh' && argv[2]!.startsWith('for f in')) return { code: 0, stdout: '/sys/class/net/eth0/queues/rx-0/rps_cpus 1 00000000\n/sys/class/net/egw.vxlan/queues/rx-0/rps_cpus 1 00000001\n', stderr: '' };
      if (argv[0] === 'sh') return { code: 1, stdout: '', stderr: 'sh: 1: echo: echo: I/O error: Invalid argument\n' };
      return answer(argv);
    });
    const res = await programGateway(r, { ...CFG, rpsMask: '3' });
    assert.deepEqual(res.changes, ['rps /sys/class/net/eth0/queues/rx-0/rps_cpus=1']);
    assert.deepEqual(res.notes, ['receive packet steering not set (sh: 1: echo: echo: I/O error: Invalid argument): this gateway forwards, with more reordering under load']);
    assert.equal(r.calls.filter((c) => isRead(c.argv)).length, 4);
  });

  it('the read: one line per queue (path, writable, mask); WRITE.rps refuses anything but an RPS path and a mask', () => {
    assert.deepEqual(parseRpsRead('/sys/class/net/eth0/queues/rx-0/rps_cpus 1 00000003\n/sys/class/net/egw.vxlan/queues/rx-0/rps_cpus 0 0\n\n'), [q('eth0', 0, '00000003'), q('egw.vxlan', 0, '0', false)]);
    assert.deepEqual(READ.rps(['eth0', 'egw.vxlan']).slice(0, 2), ['sh', '-c']);
    assert.match(READ.rps(['eth0', 'egw.vxlan'])[2]!, /^for f in \/sys\/class\/net\/eth0\/queues\/rx-\*\/rps_cpus \/sys\/class\/net\/egw\.vxlan\/queues\/rx-\*\/rps_cpus; do/);
    assert.throws(() => WRITE.rps([['/proc/sys/net/ipv4/ip_forward', '1']]), /bad rps/);
    assert.throws(() => WRITE.rps([['/sys/class/net/eth0/queues/rx-0/rps_cpus', '3; reboot']]), /bad rps/);
    // device names reach READ.rps only through gatewayDesired's name check
    assert.throws(() => gatewayDesired({ ...CFG, uplink: 'eth0 /etc' }), /bad device name/);
  });
});
