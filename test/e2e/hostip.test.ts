// Host-IP mode end to end (issue 13, SPEC §9; docs/behaviour.md §3.3, docs/audit.md "Host-IP mode") in one lab named
// `hip` (root, network namespaces, the real egw processes from dist/ — `npx tsc -p tsconfig.json` first):
//   1. The demo's resources; tenant-a/client-a leaves through the red gateways: the echo server sees a gateway IP.
//   2. natOutgoing: true on the egress pool: new connections are seen as the gateway's node IP; connections held
//      open from before keep the gateway IP and keep working (conntrack keeps their binding); the client's node does
//      not translate client → gateway traffic; the gateway's node records the connection as host-IP mode, and
//      `egw trace` of what the echo saw names client-a, its gateway, the egress IP and the node IP; `egw explain` says
//      the outside sees the node's IP.
//   3. natOutgoing: false again: new connections are seen as the gateway IP again; both sets of held connections (from
//      before each switch) keep working with the source they had.
// Figures as `# hostip: …` lines. EGW_E2E=1 makes a missing prerequisite a failure.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT } from '../helpers/cli.js';
import { inNs, LabHarness, run } from '../helpers/e2e.js';
import { suiteGate } from '../helpers/env.js';
import { ConnectionHolder, demoManifests, ECHO, kernelHops } from '../helpers/scenarios.js';
import { LAB_POLL, until } from '../helpers/wait.js';

/** The brief's lab name: every namespace is egw-hip-…. */
class Lab extends LabHarness {
  override readonly name = 'hip';
}

const NODE_IP: Record<string, string> = { 'node-1': '172.31.0.11', 'node-2': '172.31.0.12' };
const root = suiteGate(['ip', 'nft', 'curl', 'conntrack', 'tcpdump', 'setpriv']);
const lab = new Lab();
const HELD = 8;

/** The demo's egress pool (examples/demo/10-egress-pool.yaml) with natOutgoing set. */
function egressPool(natOutgoing: boolean): string {
  const text = readFileSync(join(ROOT, 'examples', 'demo', '10-egress-pool.yaml'), 'utf8');
  assert.match(text, /natOutgoing: false/);
  return text.replace('natOutgoing: false', `natOutgoing: ${natOutgoing}`);
}

interface Gw {
  name: string;
  ip: string;
  node: string;
}

describe('host-IP mode end to end', { skip: root.skip }, () => {
  let gateways: Gw[] = [];
  let client: { netns: string; ip: string; node: string };
  let heldBefore: ConnectionHolder | undefined;
  let heldDuring: ConnectionHolder | undefined;
  let seenBefore = new Map<number, string>();
  let seenDuring = new Map<number, string>();
  const nodeIPOf = (gwIp: string) => NODE_IP[gateways.find((g) => g.ip === gwIp)?.node ?? ''];
  const seen = async () => (await lab.curl('tenant-a', 'client-a', `http://${ECHO}/`))?.sourceIp;

  before(async () => {
    root.check();
    await lab.up();
    await lab.apply(demoManifests());
    client = await lab.podReady('tenant-a', 'client-a');
    gateways = await until('two gateway pods with IPs and nodes', async () => {
      const gs = (await lab.gatewayPods('red'))
        .map((p) => ({ name: p.metadata.name, ip: p.status?.podIPs?.[0]?.ip ?? '', node: p.spec.nodeName ?? '' }))
        .filter((g) => g.ip && g.node);
      return gs.length === 2 ? gs.sort((a, b) => (a.ip < b.ip ? -1 : 1)) : undefined;
    }, 30_000, LAB_POLL);
    await until('both gateways in client-a\'s route', async () => (await kernelHops(lab.nodeNetns(client.node), client.ip)).join() === gateways.map((g) => g.ip).join(), 30_000, LAB_POLL);
  });
  after(async () => {
    await heldBefore?.close();
    await heldDuring?.close();
    await lab.down();
  });

  test('natOutgoing false (the demo): the echo server sees a gateway IP', async (t) => {
    const ip = await seen();
    assert.ok(ip && gateways.some((g) => g.ip === ip), `seen as ${ip}; gateways ${gateways.map((g) => g.ip)}`);
    heldBefore = await ConnectionHolder.open(client.netns, HELD);
    const c = await heldBefore.check();
    assert.ok(c.every((x) => x.ok && gateways.some((g) => g.ip === x.seen)), JSON.stringify(c));
    seenBefore = new Map(c.map((x) => [x.id, x.seen]));
    t.diagnostic(`gateways ${gateways.map((g) => `${g.name} ${g.ip} on ${g.node}`).join(', ')}; ${HELD} connections held, seen as ${[...new Set(seenBefore.values())].join(', ')}`);
  });

  test('natOutgoing true: new connections are seen as the gateway node\'s IP; held ones keep the gateway IP; trace and explain say so', async (t) => {
    const applied = Date.now();
    await lab.apply(egressPool(true));
    const first = await until('a new connection seen as a gateway node\'s IP', async () => {
      const ip = await seen();
      return ip && Object.values(NODE_IP).includes(ip) ? ip : undefined;
    }, 20_000, LAB_POLL);
    const switchMs = Date.now() - applied;
    console.log(`# hostip: natOutgoing true → first connection seen as a node IP after ${switchMs} ms (${first})`);
    t.diagnostic(`switch to host-IP mode: ${switchMs} ms`);
    const gatewayNodes = new Set(gateways.map((g) => NODE_IP[g.node]));
    assert.ok(gatewayNodes.has(first), `${first} is a gateway's node IP (${[...gatewayNodes]})`);

    // Ten more: every one seen as the node IP of a gateway node, none as a gateway IP.
    const answers: { sourceIp: string; sourcePort: number }[] = [];
    for (let i = 0; i < 10; i++) {
      const a = await lab.curl('tenant-a', 'client-a', `http://${ECHO}/`);
      assert.ok(a, 'the request went through');
      answers.push(a);
    }
    assert.ok(answers.every((a) => gatewayNodes.has(a.sourceIp)), JSON.stringify(answers.map((a) => a.sourceIp)));

    // Held from before the switch: still working, still the gateway IP (their conntrack entries keep no node NAT).
    const c = await heldBefore!.check();
    assert.deepEqual(c.filter((x) => !x.ok).map((x) => x.id), [], 'no held connection broke');
    assert.deepEqual(c.filter((x) => x.seen !== seenBefore.get(x.id)).map((x) => `${x.id}: ${seenBefore.get(x.id)} → ${x.seen}`), [], 'the held connections kept their source');
    heldDuring = await ConnectionHolder.open(client.netns, HELD);
    const d = await heldDuring.check();
    assert.ok(d.every((x) => x.ok && gatewayNodes.has(x.seen)), JSON.stringify(d));
    seenDuring = new Map(d.map((x) => [x.id, x.seen]));

    // The client's node does not translate client → gateway traffic (it goes through the tunnel, to a pool address):
    // its conntrack entries of client-a toward the echo answer to client-a's own address.
    const ct = await inNs(lab.nodeNetns(client.node), ['conntrack', '-L', '-s', client.ip, '-d', ECHO, '-p', 'tcp'], 30_000);
    const entries = ct.stdout.split('\n').filter((l) => l.includes(`dst=${ECHO}`));
    assert.ok(entries.length > 0, `conntrack -L: ${ct.stderr}`);
    for (const l of entries) assert.match(l, new RegExp(`src=${ECHO.replace(/\./g, '\\.')} dst=${client.ip.replace(/\./g, '\\.')} `), `not translated on the client's node: ${l}`);

    // The gateway nodes' tables: the host-IP rule, no return for the pool.
    for (const node of new Set(gateways.map((g) => g.node))) {
      const nft = await run(['ip', 'netns', 'exec', lab.nodeNetns(node), 'nft', 'list', 'table', 'ip', 'egw']);
      assert.match(nft.stdout, /ip saddr 10\.10\.10\.0\/30 ip daddr != \{[^}]*\} masquerade comment "host-IP mode: egress pools with natOutgoing"/, nft.stdout);
      assert.doesNotMatch(nft.stdout, /ip saddr 10\.10\.10\.0\/30 return/);
    }

    // egw trace of what the echo server saw (the node IP and port): the client pod, its gateway, both addresses.
    const last = answers.at(-1)!;
    const traced = await until(`egw trace of ${last.sourceIp}:${last.sourcePort}`, async () => {
      const r = await lab.egw(['trace', '--ip', last.sourceIp, '--port', String(last.sourcePort), '--dst', `${ECHO}:80`, '-o', 'json']);
      if (r.code !== 0) return undefined;
      const j = JSON.parse(r.stdout);
      return j.hostIP?.record ? j : undefined;
    }, 15_000, { everyMs: 500 });
    assert.deepEqual([traced.pod.namespace, traced.pod.name, traced.pod.from], ['tenant-a', 'client-a', 'record']);
    assert.equal(traced.hostIPMode, true);
    assert.equal(traced.nodeIP, last.sourceIp);
    assert.equal(NODE_IP[traced.node], last.sourceIp, 'the node that translated it is the one whose IP the echo saw');
    assert.ok(gateways.some((g) => g.name === traced.gateway.name && g.ip === traced.egressIP && g.node === traced.node), JSON.stringify(traced.gateway));
    assert.equal(traced.connection.source.ip, client.ip);
    assert.equal(traced.route.kind, 'annotation');
    const text = await lab.egw(['trace', '--ip', last.sourceIp, '--port', String(last.sourcePort), '--dst', `${ECHO}:80`]);
    assert.match(text.stdout, /^Pod: +tenant-a\/client-a$/m);
    assert.match(text.stdout, new RegExp(`^Node IP: +${last.sourceIp.replace(/\./g, '\\.')} \\(node ${traced.node}, host-IP mode`, 'm'));
    t.diagnostic(`trace ${last.sourceIp}:${last.sourcePort} → ${traced.pod.namespace}/${traced.pod.name} (${traced.connection.source.ip}:${traced.connection.source.port}) via ${traced.gateway.namespace}/${traced.gateway.name} ${traced.egressIP} on ${traced.node}`);

    // The gateway nodes' records of host-IP traffic are all toward the outside (the tunnel back is never translated).
    const flows = await lab.egw(['flows', '--gateway', traced.gateway.name, '-o', 'json']);
    assert.equal(flows.code, 0, flows.stderr);
    const nodeRecs = (JSON.parse(flows.stdout) as { egw: { reporter: string; route: { kind: string } }; destination: { ip: string } }[]).filter((r) => r.egw.reporter === 'node');
    assert.ok(nodeRecs.length > 0, 'the gateway node recorded its host-IP connections');
    assert.deepEqual([...new Set(nodeRecs.map((r) => `${r.egw.route.kind} ${r.destination.ip}`))], [`host-ip ${ECHO}`]);

    // explain: the outside sees the node's IP.
    const ex = await lab.egw(['explain', '--pod', 'tenant-a/client-a', '--dst', ECHO, '-o', 'json']);
    assert.equal(ex.code, 0, ex.stderr);
    const e = JSON.parse(ex.stdout) as { egress: { ip: string; hostIP: { node: string; nodeIP: string } | null; seenAs: string }[] };
    assert.deepEqual(e.egress.map((x) => [x.ip, x.hostIP?.node, x.seenAs]).sort(), gateways.map((g) => [g.ip, g.node, NODE_IP[g.node]]).sort());
  });

  test('natOutgoing false again: the gateway IP again; connections held from before each switch keep working', async (t) => {
    const applied = Date.now();
    await lab.apply(egressPool(false));
    const first = await until('a new connection seen as a gateway IP', async () => {
      const ip = await seen();
      return ip && gateways.some((g) => g.ip === ip) ? ip : undefined;
    }, 20_000, LAB_POLL);
    const switchMs = Date.now() - applied;
    console.log(`# hostip: natOutgoing false → first connection seen as a gateway IP after ${switchMs} ms (${first})`);
    t.diagnostic(`switch back: ${switchMs} ms`);
    for (let i = 0; i < 5; i++) {
      const ip = await seen();
      assert.ok(ip && gateways.some((g) => g.ip === ip), `seen as ${ip}`);
    }
    for (const [name, holder, was] of [['before the first switch', heldBefore!, seenBefore], ['before the second switch', heldDuring!, seenDuring]] as const) {
      const c = await holder.check();
      assert.deepEqual(c.filter((x) => !x.ok).map((x) => x.id), [], `held ${name}: none broke`);
      assert.deepEqual(c.filter((x) => x.seen !== was.get(x.id)).map((x) => `${x.id}: ${was.get(x.id)} → ${x.seen}`), [], `held ${name}: each kept its source`);
      t.diagnostic(`${HELD} connections held ${name}: all working, seen as ${[...new Set(c.map((x) => x.seen))].join(', ')}`);
    }
    // Those held during host-IP mode were translated by their gateway's node: their source is that node's IP.
    assert.ok([...seenDuring.values()].every((ip) => Object.values(NODE_IP).includes(ip)));
    assert.ok([...seenBefore.values()].every((ip) => nodeIPOf(ip) !== undefined));
    for (const node of new Set(gateways.map((g) => g.node))) {
      const nft = await run(['ip', 'netns', 'exec', lab.nodeNetns(node), 'nft', 'list', 'table', 'ip', 'egw']);
      assert.match(nft.stdout, /ip saddr 10\.10\.10\.0\/30 return/);
      assert.doesNotMatch(nft.stdout, /host-IP mode/);
    }
  });
});
