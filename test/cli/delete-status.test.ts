// `egw delete pod` (graceful, kubectl's output and flags), the STATUS column of `egw get pods`, apply over a
// terminating pod, and `egw status` (exact text for a fixed scenario, and -o json), on a real SQLite file.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/datastore/open.js';
import type { EgressGateway, Pod } from '../../src/api/types.js';
import { runCli } from '../helpers/cli.js';
import { egressGateway } from '../helpers/resources.js';

const dir = mkdtempSync(join(tmpdir(), 'egw-cli-drain-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const podYaml = (name: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: default}
spec:
  nodeName: node-1
  terminationGracePeriodSeconds: 45
  containers: [{name: c}]
`;

async function getPod(ds: string, name: string): Promise<Pod | undefined> {
  const r = await runCli(['--datastore', ds, 'get', 'pod', name, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

test('delete pod: a scheduled pod becomes Terminating for its grace period; a second delete does not extend it', async () => {
  const ds = `sqlite:${join(dir, 'delete.db')}`;
  assert.equal((await runCli(['--datastore', ds, 'apply', '-f', '-'], { stdin: podYaml('web') })).code, 0);
  const before = await runCli(['--datastore', ds, 'get', 'pods']);
  assert.match(before.stdout, /^NAME\s+STATUS\s+NODE\s+IP\s+AGE\nweb\s+Pending\s+node-1\s+<none>\s+\d+s\n$/);

  const t0 = Date.now();
  const r = await runCli(['--datastore', ds, 'delete', 'pod', 'web']);
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'pod "web" deleted\n', '']);
  const p = (await getPod(ds, 'web'))!;
  assert.ok(p, 'still there: its kubelet removes it when the window ends');
  assert.equal(p.metadata.deletionGracePeriodSeconds, 45);
  const at = Date.parse(p.metadata.deletionTimestamp!);
  assert.ok(at >= t0 + 45_000 && at <= Date.now() + 45_000, p.metadata.deletionTimestamp);
  assert.match((await runCli(['--datastore', ds, 'get', 'pods'])).stdout, /\nweb\s+Terminating\s+node-1\s/);
  assert.match((await runCli(['--datastore', ds, 'describe', 'pod', 'web'])).stdout, new RegExp(`\\nTerminating: +until ${p.metadata.deletionTimestamp} \\(grace period 45s\\)\\n`));

  const again = await runCli(['--datastore', ds, 'delete', 'pod', 'web', '--grace-period', '600']);
  assert.equal(again.stdout, 'pod "web" deleted\n');
  assert.equal((await getPod(ds, 'web'))!.metadata.deletionTimestamp, p.metadata.deletionTimestamp, 'not extended');

  // apply over a terminating pod keeps it terminating, and says so.
  const applied = await runCli(['--datastore', ds, 'apply', '-f', '-'], { stdin: podYaml('web').replace('namespace: default}', 'namespace: default, labels: {a: b}}') });
  assert.equal(applied.code, 0, applied.stderr);
  assert.equal(applied.stdout, 'pod/web configured\n');
  assert.equal(applied.stderr, `warning: pod/web is terminating (until ${p.metadata.deletionTimestamp}); applying does not stop that\n`);
  const kept = (await getPod(ds, 'web'))!;
  assert.deepEqual([kept.metadata.labels, kept.metadata.deletionTimestamp, kept.metadata.deletionGracePeriodSeconds], [{ a: 'b' }, p.metadata.deletionTimestamp, 45]);

  // --grace-period 0 without --force is 1 (kubectl's rule); with --force the pod goes at once.
  const one = await runCli(['--datastore', ds, 'delete', 'pod', 'web', '--grace-period', '0']);
  assert.equal(one.stdout, 'pod "web" deleted\n');
  const shortened = (await getPod(ds, 'web'))!;
  assert.equal(shortened.metadata.deletionGracePeriodSeconds, 1);
  assert.ok(Date.parse(shortened.metadata.deletionTimestamp!) <= Date.now() + 1000);
  const forced = await runCli(['--datastore', ds, 'delete', 'pod', 'web', '--grace-period', '0', '--force']);
  assert.deepEqual(
    [forced.code, forced.stdout, forced.stderr],
    [0, 'pod "web" force deleted\n', 'warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.\n'],
  );
  assert.equal(await getPod(ds, 'web'), undefined);
});

test('delete pod: --grace-period N, --now, a pod without a node, bad flags', async () => {
  const ds = `sqlite:${join(dir, 'flags.db')}`;
  await runCli(['--datastore', ds, 'apply', '-f', '-'], { stdin: podYaml('a') + '---\n' + podYaml('b') + '---\napiVersion: v1\nkind: Pod\nmetadata: {name: floating}\nspec: {containers: [{name: c}]}\n' });
  const t0 = Date.now();
  assert.equal((await runCli(['--datastore', ds, 'delete', 'pod', 'a', '--grace-period', '10'])).stdout, 'pod "a" deleted\n');
  const a = (await getPod(ds, 'a'))!;
  assert.equal(a.metadata.deletionGracePeriodSeconds, 10);
  assert.ok(Math.abs(Date.parse(a.metadata.deletionTimestamp!) - (t0 + 10_000)) < 2000);
  assert.equal((await runCli(['--datastore', ds, 'delete', 'pod', 'b', '--now'])).stdout, 'pod "b" deleted\n');
  assert.equal((await getPod(ds, 'b'))!.metadata.deletionGracePeriodSeconds, 1);
  assert.equal((await runCli(['--datastore', ds, 'delete', 'pod', 'floating'])).stdout, 'pod "floating" deleted\n');
  assert.equal(await getPod(ds, 'floating'), undefined, 'nothing runs it: gone at once');
  const both = await runCli(['--datastore', ds, 'delete', 'pod', 'a', '--now', '--grace-period', '3']);
  assert.deepEqual([both.code, both.stderr], [1, 'error: --now and --grace-period cannot be given together\n']);
  const bad = await runCli(['--datastore', ds, 'delete', 'pod', 'a', '--grace-period', 'soon']);
  assert.deepEqual([bad.code, bad.stderr], [1, 'error: --grace-period: "soon" is not a whole number of seconds\n']);
  const list = await runCli(['--datastore', ds, 'get', 'pods']);
  assert.match(list.stdout, /^NAME\s+STATUS\s+NODE\s+IP\s+AGE\na\s+Terminating\s+node-1\s+<none>\s+\S+\nb\s+Terminating\s+node-1\s/);
});

test('egw status: every EgressGateway at a glance (exact text), -o json, and READY in get egw -o wide', async () => {
  const ds = `sqlite:${join(dir, 'status.db')}`;
  const store = await openStore(ds);
  const egw = (namespace: string, name: string, replicas: number, status?: EgressGateway['status']): EgressGateway => ({
    ...egressGateway(namespace, name, { replicas }),
    ...(status ? { status } : {}),
  });
  try {
    await store.create(
      egw('default', 'red', 2, {
        readyReplicas: 1,
        conditions: [
          { type: 'Ready', status: 'False', reason: 'ProbesFailing', message: '1 of 2 gateway pods ready, 1 draining: probes failing on red-bbbbb: icmp probe: no reply', lastTransitionTime: '2030-01-01T00:00:00Z' },
          { type: 'Degraded', status: 'True', reason: 'ProbesFailing', message: 'probes failing on red-bbbbb: icmp probe: no reply', lastTransitionTime: '2030-01-01T00:00:00Z' },
        ],
        replicas: [
          { pod: 'red-aaaaa', node: 'node-1', ip: '10.10.10.0', health: 'Ready', clients: 12 },
          { pod: 'red-bbbbb', node: 'node-2', ip: '10.10.10.1', health: 'NotReady', reasons: ['ICMPProbeFailing', 'icmp probe: no reply'], clients: 12 },
          { pod: 'red-ccccc', node: 'node-1', ip: '10.10.10.2', health: 'Draining', reasons: ['drain window ends 2030-01-01T00:00:10.000Z'], clients: 12 },
        ],
      }),
    );
    await store.create(
      egw('tenant', 'blue', 1, {
        readyReplicas: 0,
        conditions: [
          { type: 'Ready', status: 'False', reason: 'NoMatchingNode', message: '0 of 1 gateway pods ready: no schedulable node matches' },
          { type: 'Degraded', status: 'True', reason: 'NoMatchingNode', message: 'no schedulable node matches' },
        ],
        replicas: [],
      }),
    );
    await store.create(egw('default', 'green', 1));
  } finally {
    await store.close();
  }
  const r = await runCli(['--datastore', ds, 'status']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    `controller: no leader (no egw controller is running, or none has been elected yet)

default/green: 0/1 ready
  no status yet (is the controller running?)

default/red: 1/2 ready
  Ready:      False   ProbesFailing   1 of 2 gateway pods ready, 1 draining: probes failing on red-bbbbb: icmp probe: no reply
  Degraded:   True    ProbesFailing   probes failing on red-bbbbb: icmp probe: no reply
  POD         NODE     IP           HEALTH     CLIENTS   REASONS
  red-aaaaa   node-1   10.10.10.0   Ready      12
  red-bbbbb   node-2   10.10.10.1   NotReady   12        ICMPProbeFailing; icmp probe: no reply
  red-ccccc   node-1   10.10.10.2   Draining   12        drain window ends 2030-01-01T00:00:10.000Z

tenant/blue: 0/1 ready
  Ready:      False   NoMatchingNode   0 of 1 gateway pods ready: no schedulable node matches
  Degraded:   True    NoMatchingNode   no schedulable node matches
  no gateway pods
`,
  );
  const out = JSON.parse((await runCli(['--datastore', ds, 'status', '-o', 'json', '-n', 'default'])).stdout);
  assert.deepEqual(out.controller, { leader: null });
  const json = out.gateways;
  assert.deepEqual(json.map((v: any) => [v.namespace, v.name, v.desired, v.readyReplicas, v.reported, v.replicas.length]), [
    ['default', 'green', 1, 0, false, 0],
    ['default', 'red', 2, 1, true, 3],
  ]);
  assert.equal(json[1].replicas[1].health, 'NotReady');
  const none = await runCli(['--datastore', ds, 'status', '-n', 'nowhere']);
  assert.deepEqual([none.code, none.stdout, none.stderr], [
    0,
    'controller: no leader (no egw controller is running, or none has been elected yet)\n',
    'No EgressGateways found in namespace nowhere.\n',
  ]);
  const wide = await runCli(['--datastore', ds, 'get', 'egw', '-o', 'wide']);
  assert.match(wide.stdout, /^NAME\s+READY\s+POOLS\s+LABELS\s+PROBES\s+AGE\ngreen\s+0\/1\s+egress\s+egress-code=green\s+<none>\s+\S+\nred\s+1\/2\s+egress\s/);
});
