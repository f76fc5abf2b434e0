// The gateway without a kernel: the nft and link plans, programGateway's commands against a fake kernel, the model
// (store → desired configuration), the health server, and runGateway's readiness with a store that goes away.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MemoryStore } from '../../src/datastore/index.js';
import { RecordingRunner, type RunResult } from '../../src/dataplane/exec.js';
import {
  CLIENTS_SET,
  desiredTable,
  GatewayModel,
  parseTable,
  planLink,
  planTable,
  programGateway,
  Readiness,
  RULE_COMMENT,
  runGateway,
  startHealthServer,
  type GatewayNftParams,
} from '../../src/gateway/index.js';
import { memoryLogger } from '../../src/log.js';
import { egressGateway, felix, FlakyStore, gatewayPod, httpGet, isProbe, isRead, listingOf, namespace, node, NSSEL, pod, SEL, waitFor } from './helpers.js';

const PARAMS: GatewayNftParams = { device: 'egw.vxlan', uplink: 'eth0', port: 4790, mss: 1410, nodes: ['172.31.98.11', '172.31.98.12'], clients: ['10.244.0.5'] };

describe('gateway: nft plan', () => {
  it('creates the whole table when there is none', () => {
    const p = planTable(null, desiredTable(PARAMS));
    assert.ok(p.doc);
    const ops = p.doc.nftables.map((o) => Object.keys(o)[0] + ' ' + Object.keys(Object.values(o)[0] as object)[0]);
    assert.deepEqual(ops.slice(0, 3), ['add table', 'add set', 'add set']);
    assert.equal(ops.filter((o) => o === 'add chain').length, 3);
    assert.equal(ops.filter((o) => o === 'add rule').length, 5);
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

/** A fake netns: answers reads from `state`, records writes. */
function fakeKernel(state: { links: unknown[]; sysctls: string; nft: string | null }): RecordingRunner {
  const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
  return new RecordingRunner((argv) => {
    const a = argv.join(' ');
    if (a === 'ip -d -json link show') return ok(JSON.stringify(state.links));
    if (argv[0] === 'cat') return ok(state.sysctls);
    if (a.startsWith('nft -j list table')) return state.nft === null ? { code: 1, stdout: '', stderr: 'Error: No such file or directory\n' } : ok(state.nft);
    return ok();
  });
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

describe('gateway: programGateway against a fake kernel', () => {
  it('an empty netns gets the link, the sysctls and the table', async () => {
    const r = fakeKernel({ links: [ETH0], sysctls: '0\n1\n1\n', nft: null });
    const res = await programGateway(r, CFG);
    assert.equal(res.mtu, 1450);
    assert.equal(res.mss, 1410);
    const writes = r.calls.filter((c) => !isRead(c.argv));
    assert.deepEqual(writes[0], {
      argv: ['ip', '-batch', '-'],
      input: 'link add egw.vxlan type vxlan id 4097 dstport 4790 local 10.10.10.0 nolearning\nlink set dev egw.vxlan address a2:2a:0a:0a:0a:00 mtu 1450 up\n',
    });
    assert.deepEqual(
      writes.slice(1, 4).map((c) => c.argv.join(' ')),
      ['sh -c echo 1 > /proc/sys/net/ipv4/ip_forward', 'sh -c echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter', 'sh -c echo 0 > /proc/sys/net/ipv4/conf/egw.vxlan/rp_filter'],
    );
    assert.deepEqual(writes[4].argv, ['nft', '-j', '-f', '-']);
    const doc = JSON.parse(writes[4].input!);
    assert.deepEqual(doc.nftables[1].add.set, { family: 'ip', table: 'egw-gw', name: 'nodes', type: 'ipv4_addr', elem: ['172.31.98.11', '172.31.98.12'] });
    assert.equal(writes.length, 5);
  });

  it('a netns that is already right gets no command but the three reads', async () => {
    const nft = listingOf(desiredTable({ ...PARAMS, nodes: ['172.31.98.11', '172.31.98.12'], clients: ['10.244.0.5'] }));
    const r = fakeKernel({ links: [ETH0, VXLAN], sysctls: '1\n0\n0\n', nft });
    const res = await programGateway(r, CFG);
    assert.deepEqual(res.changes, []);
    assert.deepEqual(
      r.calls.map((c) => c.argv[0]),
      ['ip', 'cat', 'nft'],
    );
  });

  it('fails without an uplink, or when nft cannot list', async () => {
    await assert.rejects(programGateway(fakeKernel({ links: [], sysctls: '', nft: null }), CFG), /no eth0/);
    const r = new RecordingRunner((argv) =>
      argv[0] === 'nft' ? { code: 1, stdout: '', stderr: 'Error: Operation not permitted' } : argv[0] === 'ip' ? { code: 0, stdout: JSON.stringify([ETH0, VXLAN]), stderr: '' } : { code: 0, stdout: '1\n0\n0\n', stderr: '' },
    );
    await assert.rejects(programGateway(r, CFG), /Operation not permitted/);
  });
});

describe('gateway: model', () => {
  it('waits for its pod and its IP; defaults; node InternalIPs; allowed clients', () => {
    const m = new GatewayModel('egw', 'red-1');
    assert.deepEqual(m.desired(), { waiting: 'pod egw/red-1 is not in the datastore' });
    m.apply('upsert', gatewayPod('egw', 'red-1', 'red', { node: 'n2' }));
    assert.deepEqual(m.desired(), { waiting: 'pod egw/red-1 has no IPv4 address yet' });
    for (const r of [
      felix(),
      node('n1', '172.31.98.11'),
      node('n2', '172.31.98.12'),
      namespace('app', { [SEL]: "egress-code == 'red'", [NSSEL]: "projectcalico.org/name == 'egw'" }),
      pod('app', 'c1', { ip: '10.244.0.5', node: 'n1' }),
      pod('other', 'c2', { ip: '10.244.0.6', node: 'n1' }),
      gatewayPod('egw', 'red-1', 'red', { ip: '10.10.10.0', node: 'n2' }),
    ])
      m.apply('upsert', r);
    assert.deepEqual(m.desired(), { config: { ownIP: '10.10.10.0', vni: 4097, port: 4790, nodes: ['172.31.98.11', '172.31.98.12'], clients: ['10.244.0.5'] }, warnings: [] });
    assert.equal(m.failureDetection().healthTimeoutDataStoreSeconds, 90);
    m.apply('upsert', egressGateway('egw', 'red', 7));
    assert.equal(m.failureDetection().healthTimeoutDataStoreSeconds, 7);
    m.apply('upsert', felix({ egressIPVXLANVNI: 5000, egressIPVXLANPort: 4800 }));
    m.apply('delete', node('n1', '172.31.98.11'));
    const d = m.desired();
    assert.ok('config' in d);
    assert.deepEqual([d.config.vni, d.config.port, d.config.nodes], [5000, 4800, ['172.31.98.12']]);
    m.apply('upsert', felix({ egressIPSupport: 'Disabled' }));
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
    for (const r of [
      felix(),
      node('n1', '172.31.98.11'),
      node('n2', '172.31.98.12'),
      namespace('egw'),
      namespace('app'),
      egressGateway('egw', 'red', 1),
      gatewayPod('egw', 'red-1', 'red', { node: 'n2' }), // no IP yet
      pod('app', 'c1', { ip: '10.244.0.5', node: 'n1', annotations: { [SEL]: "egress-code == 'red'", [NSSEL]: 'all()' } }),
    ])
      await mem.create(r);
    const kernel = fakeKernel({ links: [ETH0], sysctls: '0\n1\n1\n', nft: null });
    const log = memoryLogger();
    const ac = new AbortController();
    stops.push(ac);
    let port = 0;
    const done = runGateway({ store, namespace: 'egw', name: 'red-1', runner: kernel, healthPort: 0, healthHost: '127.0.0.1', log, signal: ac.signal, onHealthListening: (p) => (port = p) });
    await waitFor('health server', () => port || undefined);
    const ready = (): Promise<{ status: number; body: string }> => httpGet(`http://127.0.0.1:${port}/readiness`);
    assert.equal((await ready()).status, 503);
    assert.match((await ready()).body, /dataplane: pod egw\/red-1 has no IPv4 address yet/);
    const kernelCalls = () => kernel.calls.filter((c) => !isProbe(c.argv)); // (the EgressGateway's ICMP probe pings through the runner too)
    assert.equal(kernelCalls().length, 0, 'nothing is programmed before the pod has an IP');

    await mem.update(gatewayPod('egw', 'red-1', 'red', { node: 'n2', ip: '10.10.10.0' }));
    await waitFor('ready', async () => (await ready()).status === 200);
    const nftDocs = (): { nftables: Record<string, { element?: { elem: string[] }; set?: { name: string; elem?: string[] } }>[] }[] =>
      kernel.calls.filter((c) => c.argv.join(' ') === 'nft -j -f -').map((c) => JSON.parse(c.input!));
    const clientsIn = (doc: ReturnType<typeof nftDocs>[number]): string[] | undefined => doc.nftables.map((o) => o.add?.set).find((s) => s?.name === 'clients')?.elem;
    assert.deepEqual(clientsIn(nftDocs().at(-1)!), ['10.244.0.5']);

    // a second client: the fake kernel still says "nothing there", so the whole table is written again
    await mem.create(pod('app', 'c2', { ip: '10.244.0.9', node: 'n1', annotations: { [SEL]: "egress-code == 'red'", [NSSEL]: 'all()' } }));
    await waitFor('client c2 programmed', () => clientsIn(nftDocs().at(-1)!)?.includes('10.244.0.9'));
    // a pod that changes nothing for this gateway triggers no programming
    const before = kernelCalls().length;
    await mem.create(pod('app', 'c3', { ip: '10.244.0.10', node: 'n1' }));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(kernelCalls().length, before);

    // the datastore goes away: not ready after healthTimeoutDataStoreSeconds (1 s), ready again when it is back
    store.down = true;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await ready()).status, 200, 'still ready within the timeout');
    await waitFor('not ready', async () => (await ready()).status === 503, 5000);
    const waited = Date.now() - t0;
    assert.ok(waited >= 600 && waited <= 1500, `503 after ${waited} ms: last seen at most timeout/3 before the outage`);
    assert.match((await ready()).body, /^datastore: datastore flaky\(memory:\) not seen for \d+\.\ds \(healthTimeoutDataStoreSeconds 1\)\n$/);
    assert.equal((await httpGet(`http://127.0.0.1:${port}/liveness`)).status, 200);
    store.down = false;
    await waitFor('ready again', async () => (await ready()).status === 200, 5000);

    ac.abort();
    await done;
    await assert.rejects(httpGet(`http://127.0.0.1:${port}/liveness`), 'the health server is closed');
    assert.ok(log.lines.some((l) => l.includes('stopped (kernel state left in place)')));
  });
});
