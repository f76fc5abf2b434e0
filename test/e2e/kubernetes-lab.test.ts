// The lab in Kubernetes mode (issue 11; docs/dataplane.md, "The lab on Kubernetes"): a lab with `datastore:
// kubernetes` runs the stand-in API server (src/lab/apiserver.ts) in its own namespace, and every process — kubelets,
// agents, controllers, kcm and the gateways the kubelets start — on `--datastore kubernetes:KUBECONFIG`, through the
// real @kubernetes/client-node. The demo scenario then has the demo's outcomes:
//   1. tenant-a/client-a (namespace annotation) leaves through a red gateway, and the restricted service admits it;
//      plain/client-plain leaves with its node's IP and is refused; tenant-b/client-b (policy) leaves through a
//      gateway to the Internet and with its node's IP to on-prem;
//   2. a firewall log line of client-b's request traces back to client-b (`egw trace`);
//   3. the controllers elect their leader on a coordination.k8s.io Lease;
//   4. the API server killed with -9 is restarted by the supervisor with every object (its journal), a connection
//      through a gateway keeps flowing meanwhile, and a pod created after the restart is routed (every informer
//      relisted after its watch failed: 410 from the restarted server).
// Root, network namespaces; bin/egw.js → dist (build first). EGW_E2E=1 makes a missing prerequisite a failure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cidrContains, parseCidr, parseIPv4 } from '../../src/api/ipv4.js';
import type { Pod } from '../../src/api/types.js';
import { readFirewallLog } from '../../src/lab/index.js';
import { isRunning, readRecords } from '../../src/lab/procs.js';
import { LabHarness } from '../helpers/e2e.js';
import { E2E, missingPrerequisite } from '../helpers/env.js';
import { demoScenario, ECHO, liveGateways } from '../helpers/scenarios.js';
import { ConnStream } from '../helpers/stream.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';

const missing = missingPrerequisite(['ip', 'nft', 'curl']);
const lab = new LabHarness();
const RESTRICTED = '198.51.100.20';
const ONPREM = '203.0.113.10';
const EGRESS_POOL = parseCidr('10.10.10.0/29')!;
const inPool = (ip: string | undefined) => ip !== undefined && cidrContains(EGRESS_POOL, parseIPv4(ip) ?? 0);

function records(stateDir: string) {
  return readRecords(join(stateDir, 'pids')).map((r) => r.rec);
}

describe('the lab in Kubernetes mode: the demo on --datastore kubernetes through the stand-in API server', { skip: missing && !E2E ? missing : false }, () => {
  before(async () => {
    if (missing) assert.fail(`EGW_E2E=1 but this test cannot run: ${missing}`);
    await lab.up(lab.labFile('datastore: kubernetes\n'));
    await lab.apply(demoScenario({ replicas: 2 }));
    for (const [ns, name] of [['tenant-a', 'client-a'], ['plain', 'client-plain'], ['tenant-b', 'client-b']]) await lab.podReady(ns, name, 40_000);
    await until('two ready red gateways', async () => {
      const g = await liveGateways(lab);
      return g.length === 2 && g.every((x) => x.ready) ? g : undefined;
    }, 40_000, LAB_POLL);
    // As make demo does: running pods are not yet routed pods; wait (bounded) until the agents have programmed them.
    for (const [ns, name] of [['tenant-a', 'client-a'], ['tenant-b', 'client-b']]) {
      await until(`${ns}/${name} through a gateway`, async () => inPool((await lab.curl(ns, name, `http://${ECHO}/`))?.sourceIp) || undefined, 40_000, LAB_POLL);
    }
  });
  after(async () => {
    await lab.down();
  });

  test('every lab process and every gateway runs on --datastore kubernetes:', async () => {
    assert.match(lab.info.datastore, /^kubernetes:\/.+\/kubeconfig$/);
    assert.match(lab.datastore, /^kubernetes:\/.+\/kubeconfig-host$/);
    assert.equal(lab.store.description.startsWith('kubernetes:'), true, lab.store.description);
    const recs = records(lab.info.stateDir);
    const roles = recs.map((r) => r.role);
    for (const want of ['apiserver', 'forwarder', 'kubelet-node-1', 'agent-node-2', 'controller-1', 'controller-2', 'kcm']) assert.ok(roles.includes(want), `${want} in ${roles.join(',')}`);
    const onDatastore = recs.filter((r) => /^(kubelet|agent|controller|kcm)/.test(r.role) || /-gateway$/.test(r.role));
    assert.ok(onDatastore.filter((r) => /-gateway$/.test(r.role)).length >= 2, 'the gateway containers have records');
    for (const r of onDatastore) {
      const i = r.argv.indexOf('--datastore');
      assert.ok(i >= 0 && r.argv[i + 1] === lab.info.datastore, `${r.role}: ${r.argv.join(' ')}`);
      assert.ok(isRunning(r), `${r.role} runs`);
    }
  });

  test('the demo outcomes: gateway, node IP, the restricted service, on-prem', async () => {
    const a = await lab.curl('tenant-a', 'client-a', `http://${ECHO}/`);
    const plain = await lab.curl('plain', 'client-plain', `http://${ECHO}/`);
    const b = await lab.curl('tenant-b', 'client-b', `http://${ECHO}/`);
    const bOnprem = await lab.curl('tenant-b', 'client-b', `http://${ONPREM}/`);
    const nodeIp = (n: string) => lab.info.nodes.find((x) => x.name === n)!.ip;
    const plainNode = (await lab.podReady('plain', 'client-plain')).node;
    const bNode = (await lab.podReady('tenant-b', 'client-b')).node;
    assert.ok(inPool(a?.sourceIp), `tenant-a/client-a left as ${a?.sourceIp}, not a gateway`);
    assert.equal(plain?.sourceIp, nodeIp(plainNode));
    assert.ok(inPool(b?.sourceIp), `tenant-b/client-b left as ${b?.sourceIp}, not a gateway`);
    assert.equal(bOnprem?.sourceIp, nodeIp(bNode), 'on-prem is a "no gateway" rule of the policy');
    const restricted = (ns: string, pod: string) => lab.inPod(ns, pod, ['curl', '-sS', '--noproxy', '*', '--max-time', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://${RESTRICTED}/`]);
    assert.equal((await restricted('tenant-a', 'client-a')).code, 0, 'the restricted service admits the gateway');
    assert.notEqual((await restricted('plain', 'client-plain')).code, 0, 'and refuses the node IP');
  });

  test("a firewall line of client-b's request traces back to client-b", async () => {
    const seen = await lab.curl('tenant-b', 'client-b', `http://${ECHO}/`);
    assert.ok(seen && inPool(seen.sourceIp));
    const line = await until('the firewall line', async () => readFirewallLog({ lab: lab.name }).lines.find((l) => l.source.ip === seen.sourceIp && l.source.port === seen.sourcePort), 10_000, LAB_POLL);
    const t = await until('egw trace to find it', async () => {
      const r = await lab.egw(['trace', '--ip', line.source.ip, '--port', String(line.source.port), '--dst', `${line.destination.ip}:${line.destination.port}`, '--at', line.time, '-o', 'json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as { pod: { namespace: string; name: string }; gateway: { name: string } | null }) : undefined;
    }, 10_000, LAB_POLL);
    assert.deepEqual([t.pod.namespace, t.pod.name], ['tenant-b', 'client-b']);
    assert.ok(t.gateway, 'through a gateway');
  });

  test('the controllers elect their leader on a coordination.k8s.io Lease', async () => {
    const lease = (await until('the Lease', async () => lab.store.get({ kind: 'Lease', namespace: 'egw-system', name: 'egw-controller' }), 10_000, LAB_POLL)) as unknown as {
      apiVersion: string;
      spec: { holderIdentity?: string };
    };
    assert.equal(lease.apiVersion, 'coordination.k8s.io/v1');
    assert.match(lease.spec.holderIdentity ?? '', /^controller-[12]/);
    const status = await lab.egw(['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /controller-[12] leads.*Lease egw-system\/egw-controller/);
  });

  test('the API server killed with -9: restarted with every object, traffic undisturbed, later changes carried out', async () => {
    const client = await lab.podReady('tenant-a', 'client-a');
    const podsBefore = (await lab.store.list('Pod')).items.map((p) => `${p.metadata.namespace}/${p.metadata.name} ${p.metadata.uid}`).sort();
    const s = await ConnStream.open(client.netns);
    try {
      await until('the stream to answer', async () => (await s.report()).stream.replies > 0, 10_000, LAB_POLL);
      const api = records(lab.info.stateDir).find((r) => r.role === 'apiserver')!;
      process.kill(api.pid, 'SIGKILL');
      const back = await until('a new API server', async () => {
        const r = records(lab.info.stateDir).find((x) => x.role === 'apiserver');
        return r && r.pid !== api.pid && isRunning(r) ? r : undefined;
      }, 20_000, LAB_POLL);
      assert.notEqual(back.pid, api.pid);
      const podsAfter = await until('the API server to answer again', async () => {
        try {
          return (await lab.store.list('Pod')).items.map((p) => `${p.metadata.namespace}/${p.metadata.name} ${p.metadata.uid}`).sort();
        } catch {
          return undefined;
        }
      }, 20_000, LAB_POLL);
      assert.deepEqual(podsAfter, podsBefore, 'every pod kept (same uids)');
      // A pod created after the restart is routed: the agents and the kubelet listed again.
      await lab.apply('apiVersion: v1\nkind: Pod\nmetadata: {name: client-a2, namespace: tenant-a}\nspec: {containers: [{name: main, image: x, command: [sleep, "3600"]}]}\n');
      await lab.podReady('tenant-a', 'client-a2', 30_000);
      const seen = await until('client-a2 through a gateway', async () => {
        const r = await lab.curl('tenant-a', 'client-a2', `http://${ECHO}/`);
        return r && inPool(r.sourceIp) ? r : undefined;
      }, 20_000, LAB_POLL);
      assert.ok(inPool(seen.sourceIp));
      await sleep(1000);
      const r = await s.report();
      assert.ok(r.stream.ok, 'the long connection through the gateway never broke');
      assert.ok(r.stream.maxGapMs < 1000, `the long connection stalled ${r.stream.maxGapMs} ms`);
      assert.equal(r.fresh.fail, 0, `${r.fresh.fail} new connections failed`);
      const gws = (await lab.gatewayPods('red')) as Pod[];
      assert.equal(gws.length, 2);
    } finally {
      s.close();
    }
  });
});
