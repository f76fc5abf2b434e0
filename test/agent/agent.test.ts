// The agent without root: a MemoryStore and a RecordingRunner answering like an empty node. Covers the NAT
// derivation, MTU detection, watch → debounce → reconcile, retry after a failure, and abort.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startAgent } from '../../src/agent/agent.js';
import { natConfigFromResources } from '../../src/agent/nat.js';
import type { Resource } from '../../src/api/meta.js';
import { ANNOTATION } from '../../src/api/types.js';
import { READ } from '../../src/dataplane/commands.js';
import { RecordingRunner, type RunResult } from '../../src/dataplane/exec.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import { memoryLogger } from '../../src/log.js';
import { cannedAnswer, lines } from '../dataplane/helpers.js';
import { ADDRS } from '../dataplane/samples.js';
import { egressGateway, ippool, node, twoNodeCluster } from '../helpers/resources.js';
import { sleep, until } from '../helpers/wait.js';

const ADDRS_9000 = ADDRS.replace('"mtu":1500', '"mtu":9000');

function emptyNodeRunner(fail: (argv: string[]) => RunResult | null = () => null): RecordingRunner {
  const canned = cannedAnswer({ link: null, nft: null });
  return new RecordingRunner((argv) => {
    const f = fail(argv);
    if (f) return f;
    if (argv.join(' ') === READ.addresses().join(' ')) return { code: 0, stdout: ADDRS_9000, stderr: '' };
    return canned(argv);
  });
}

const ipBatches = (r: RecordingRunner) => r.calls.filter((c) => c.argv[0] === 'ip' && c.argv.includes('-batch'));

async function storeWith(resources: Resource[]): Promise<MemoryStore> {
  const s = new MemoryStore();
  for (const r of resources) await s.create(r);
  return s;
}

describe('NAT configuration from pools', () => {
  test('egress pools (by name or CIDR) are excluded from masquerade; with natOutgoing they are host-IP pools; node addresses listed', () => {
    const pools = [
      ippool('a', '10.244.0.0/16', { natOutgoing: true }),
      ippool('b', '10.10.0.0/29', { natOutgoing: true }),
      ippool('c', '10.20.0.0/30'),
      ippool('d', '10.30.0.0/24', { natOutgoing: false }),
    ];
    const gws = [egressGateway('n', 'x', { ipPools: [{ name: 'b' }] }), egressGateway('n', 'y', { ipPools: [{ cidr: '10.20.0.0/30' }, { name: 'missing' }] })];
    const nodes = [node('n2', { ip: '172.31.99.12' }), node('n1', { ip: ['172.31.99.11', 'fd00::1'], hostnameAddress: true }), node('n3')];
    assert.deepEqual(natConfigFromResources(pools, gws, { enabled: true, underlayDevice: 'eth0', nodes }), {
      enabled: true,
      underlayDevice: 'eth0',
      masqueradePools: ['10.244.0.0/16'],
      egressPools: ['10.10.0.0/29', '10.20.0.0/30'],
      hostIPPools: ['10.10.0.0/29'],
      allPools: ['10.10.0.0/29', '10.20.0.0/30', '10.30.0.0/24', '10.244.0.0/16'],
      nodeAddresses: ['172.31.99.11', '172.31.99.12'],
    });
    // Without a gateway naming it, b is an ordinary natOutgoing pool again.
    const plain = natConfigFromResources(pools, gws.slice(1), { enabled: true, underlayDevice: 'eth0' });
    assert.deepEqual([plain.masqueradePools, plain.hostIPPools, plain.nodeAddresses], [['10.10.0.0/29', '10.244.0.0/16'], [], []]);
  });
});

describe('agent with a recording runner', () => {
  test('programs the node from the store, with the tunnel MTU from the underlay device', async () => {
    const store = await storeWith(twoNodeCluster());
    const runner = emptyNodeRunner();
    const ac = new AbortController();
    const agent = startAgent({ store, node: 'n1', runner, signal: ac.signal, log: memoryLogger() });
    await until('the first reconcile', () => agent.status().reconciles >= 1, 2000);
    const batch = lines(ipBatches(runner)[0].input);
    assert.equal(batch[0], 'link add egw.vxlan mtu 8950 type vxlan id 4097 dstport 4790 local 172.31.99.11 nolearning');
    assert.ok(batch.some((l) => /^rule add from 10\.244\.0\.5\/32 lookup \d+ priority 100$/.test(l)));
    assert.ok(batch.some((l) => /^route replace 0\.0\.0\.0\/0 table \d+ nexthop via 10\.10\.10\.1 dev egw\.vxlan onlink nexthop via 10\.10\.10\.2 dev egw\.vxlan onlink$/.test(l)));
    const nft = runner.calls.find((c) => c.argv[0] === 'nft' && c.argv.includes('-f'))!;
    assert.match(nft.input!, /"right":"eth0"/);
    assert.ok(nft.input!.includes('{"prefix":{"addr":"10.10.10.0","len":29}}}},{"return":null}'));
    assert.deepEqual(agent.status().underlay, { ip: '172.31.99.11', device: 'eth0', mtu: 9000 });
    assert.deepEqual(agent.status().desired, { clients: 1, tables: 1, gateways: 2 });
    ac.abort();
    await agent.done;
  });

  test('a burst of changes is debounced into few reconciles; unrelated changes reconcile nothing', async () => {
    const store = await storeWith(twoNodeCluster());
    const runner = emptyNodeRunner();
    const ac = new AbortController();
    const agent = startAgent({ store, node: 'n1', runner, signal: ac.signal, debounceMs: 30 });
    await until('the first reconcile', () => agent.status().reconciles >= 1, 2000);
    const before = ipBatches(runner).length;
    // a namespace label nobody selects on: desired state unchanged → no reconcile
    for (let i = 0; i < 20; i++) {
      const ns = (await store.get({ kind: 'Namespace', namespace: '', name: 'app' }))!;
      await store.update({ ...ns, metadata: { ...ns.metadata, labels: { ...ns.metadata.labels, n: String(i) } } });
    }
    await sleep(100);
    assert.equal(ipBatches(runner).length, before);
    // 20 client annotation flips (ending at maxNextHops 1) in a burst: at most a couple of reconciles
    for (let i = 0; i < 20; i++) {
      const p = (await store.get({ kind: 'Pod', namespace: 'app', name: 'client' }))!;
      await store.update({ ...p, metadata: { ...p.metadata, annotations: { ...p.metadata.annotations, [ANNOTATION.maxNextHops]: i % 2 ? '1' : '2' } } });
    }
    await sleep(150);
    const n = ipBatches(runner).length - before;
    assert.ok(n >= 1 && n <= 3, `reconciles after burst: ${n}`);
    ac.abort();
    await agent.done;
  });

  test('a failing reconcile is retried with backoff and the agent keeps going', async () => {
    const store = await storeWith(twoNodeCluster());
    let failuresLeft = 2;
    const runner = emptyNodeRunner((argv) => (argv[0] === 'ip' && argv.includes('-batch') && failuresLeft-- > 0 ? { code: 1, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted\n' } : null));
    const log = memoryLogger();
    const ac = new AbortController();
    const agent = startAgent({ store, node: 'n1', runner, signal: ac.signal, log });
    await until('the first reconcile', () => agent.status().reconciles >= 1, 3000);
    assert.equal(ipBatches(runner).length, 3);
    assert.equal(agent.status().failures, 0);
    assert.match(agent.status().lastError ?? '', /Operation not permitted/);
    assert.equal(log.lines.filter((l) => l.includes('reconcile failed; will retry')).length, 2);
    ac.abort();
    await agent.done;
  });

  test('abort: done resolves, nothing is written afterwards; an already-aborted signal starts nothing', async () => {
    const store = await storeWith(twoNodeCluster());
    const runner = emptyNodeRunner();
    const ac = new AbortController();
    const agent = startAgent({ store, node: 'n1', runner, signal: ac.signal, resyncMs: 20 });
    await until('the first reconcile', () => agent.status().reconciles >= 1, 2000);
    ac.abort();
    await agent.done;
    const calls = runner.calls.length;
    await sleep(60);
    assert.equal(runner.calls.length, calls);
    const r2 = emptyNodeRunner();
    await startAgent({ store, node: 'n1', runner: r2, signal: AbortSignal.abort() }).done;
    assert.equal(r2.calls.length, 0);
  });

  test('periodic resync reconciles even without changes', async () => {
    const store = await storeWith(twoNodeCluster());
    const runner = emptyNodeRunner();
    const ac = new AbortController();
    const agent = startAgent({ store, node: 'n1', runner, signal: ac.signal, resyncMs: 30 });
    await until('3 reconciles', () => agent.status().reconciles >= 3, 2000);
    ac.abort();
    await agent.done;
  });
});
