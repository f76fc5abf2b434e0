// The `egw` executable end to end on a real SQLite file: the seed guide's manifests apply, round-trip through
// `egw get -o yaml`, and are still there for a new process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { readdirSync, readFileSync } from 'node:fs';
import { ROOT, runCli, spawnEgw } from '../helpers/cli.js';

const SEED_DIR = join(ROOT, 'examples', 'seed');
const dir = mkdtempSync(join(tmpdir(), 'egw-cli-'));
const ds = `sqlite:${join(dir, 'egw.db')}`;
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Every object the seed manifests define, as [kind, namespace, name]. */
function seedObjects(): { kind: string; namespace?: string; name: string; doc: Record<string, any> }[] {
  const out = [];
  for (const f of readdirSync(SEED_DIR).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(SEED_DIR, f), 'utf8'))) {
      const doc = d.toJS();
      out.push({ kind: doc.kind, namespace: doc.metadata.namespace, name: doc.metadata.name, doc });
    }
  }
  return out;
}

const KIND_ARG: Record<string, string> = {
  IPPool: 'ippools',
  EgressGateway: 'egressgateways',
  EgressGatewayPolicy: 'egressgatewaypolicies',
  FelixConfiguration: 'felixconfigurations',
  Namespace: 'namespaces',
  Pod: 'pods',
};

test('the seed guide applies with the real executable', async () => {
  const r = await spawnEgw(['--datastore', ds, 'apply', '-f', SEED_DIR]);
  assert.equal(r.code, 0, r.stderr);
  const objects = seedObjects();
  assert.ok(objects.length >= 7);
  for (const o of objects) assert.match(r.stdout, new RegExp(`/${o.name} created$`, 'm'));
  assert.deepEqual(new Set(objects.map((o) => o.kind)), new Set(['FelixConfiguration', 'IPPool', 'EgressGateway', 'Namespace', 'Pod', 'EgressGatewayPolicy']));
});

test('every seed object round-trips through get -o yaml, in a new process', async () => {
  for (const o of seedObjects()) {
    const args = ['--datastore', ds, 'get', KIND_ARG[o.kind], o.name, '-o', 'yaml'];
    if (o.namespace) args.push('-n', o.namespace);
    const r = await spawnEgw(args);
    assert.equal(r.code, 0, r.stderr);
    const got = parseYaml(r.stdout);
    assert.equal(got.kind, o.kind);
    assert.equal(got.metadata.name, o.name);
    assert.ok(got.metadata.resourceVersion && got.metadata.uid && got.metadata.creationTimestamp);
    // Everything the user wrote is there as written (defaults may be added).
    assertContains(got.spec ?? {}, o.doc.spec ?? {}, `${o.kind} ${o.name}.spec`);
    assertContains(got.metadata, o.doc.metadata, `${o.kind} ${o.name}.metadata`);
    // Applying what get printed changes nothing.
    const yamlFile = join(dir, `${o.kind}-${o.name}.yaml`);
    writeFileSync(yamlFile, r.stdout);
    const again = await runCli(['--datastore', ds, 'apply', '-f', yamlFile]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, / unchanged$/m);
  }
});

test('defaults are applied as docs/behaviour.md §1 says', async () => {
  const egw = parseYaml((await runCli(['--datastore', ds, 'get', 'egw', 'egress-gateway', '-o', 'yaml'])).stdout);
  assert.equal(egw.spec.logSeverity, 'Info');
  assert.deepEqual(egw.spec.template.metadata.labels, { 'egress-code': 'red' });
  const pool = parseYaml((await runCli(['--datastore', ds, 'get', 'ippool', 'egress-ippool-1', '-o', 'yaml'])).stdout);
  assert.equal(pool.spec.natOutgoing, false);
  assert.equal(pool.spec.disabled, false);
  const pol = parseYaml((await runCli(['--datastore', ds, 'get', 'egwp', 'egw-policy1', '-o', 'yaml'])).stdout);
  assert.equal(pol.spec.rules[2].destination.cidr, '0.0.0.0/0');
  assert.equal(pol.spec.rules[1].gatewayPreference, 'None');
});

test('kind names: kubectl-style plural, singular and short forms', async () => {
  for (const k of ['egressgateways', 'egressgateway', 'egw', 'EgressGateway', 'egressgateways.operator.tigera.io']) {
    const r = await runCli(['--datastore', ds, 'get', k]);
    assert.equal(r.code, 0, `${k}: ${r.stderr}`);
    assert.match(r.stdout, /^NAME\s+READY\s+AGE\n(egress-gateway)\s+0\/1\s+\S+\n$/);
  }
  const bad = await runCli(['--datastore', ds, 'get', 'gateways']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: unknown resource type "gateways"; known: ippools, egressgateways/);
});

test('get: wide, namespaces, all namespaces, json, not found', async () => {
  const wide = await runCli(['--datastore', ds, 'get', 'egw', '-o', 'wide']);
  assert.match(wide.stdout, /^NAME\s+READY\s+POOLS\s+LABELS\s+PROBES\s+AGE\negress-gateway\s+0\/1\s+egress-ippool-1,10\.10\.10\.0\/31\s+egress-code=red\s+icmp\+http\s/);
  const none = await runCli(['--datastore', ds, 'get', 'pods']);
  assert.equal(none.stdout, '');
  assert.equal(none.stderr, 'No resources found in this namespace.\n');
  const all = await runCli(['--datastore', ds, 'get', 'pods', '-A']);
  assert.match(all.stdout, /^NAMESPACE\s+NAME\s+STATUS\s+NODE\s+IP\s+AGE\nmy-namespace\s+my-client\s+Pending\s+<none>\s+<none>\s/);
  const json = JSON.parse((await runCli(['--datastore', ds, 'get', 'ns', '-o', 'json'])).stdout);
  assert.equal(json.kind, 'List');
  assert.deepEqual(json.items.map((i: any) => i.metadata.name), ['my-namespace', 'plain']);
  const missing = await runCli(['--datastore', ds, 'get', 'egw', 'nope']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'error: egressgateways "nope" not found in namespace default\n');
});

test('describe shows the object', async () => {
  const r = await runCli(['--datastore', ds, 'describe', 'ippool', 'egress-ippool-1']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Name: +egress-ippool-1\nKind: +IPPool\n/);
  assert.match(r.stdout, /Spec:\n  cidr: 10\.10\.10\.0\/31\n  blockSize: 31\n/);
});

test('apply --dry-run and validate change nothing; apply from stdin', async () => {
  const ns = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: dry\n';
  const dry = await runCli(['--datastore', ds, 'apply', '--dry-run', '-f', '-'], { stdin: ns });
  assert.equal(dry.stdout, 'namespace/dry created (dry run)\n');
  const val = await runCli(['--datastore', ds, 'validate', '-f', '-'], { stdin: ns });
  assert.equal(val.stdout, '1 object valid\n');
  assert.equal((await runCli(['--datastore', ds, 'get', 'ns', 'dry'])).code, 1);
  const real = await runCli(['--datastore', ds, 'apply', '-f', '-'], { stdin: ns });
  assert.equal(real.stdout, 'namespace/dry created\n');
  const changed = await runCli(['--datastore', ds, 'apply', '-f', '-'], { stdin: ns + '  labels: {team: a}\n' });
  assert.equal(changed.stdout, 'namespace/dry configured\n');
});

test('warnings for fields egw accepts but does not act on', async () => {
  const r = await runCli(['--datastore', ds, 'apply', '-f', '-'], {
    stdin: 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: encap}\nspec:\n  cidr: 10.30.0.0/24\n  vxlanMode: Always\n',
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, 'warning: <stdin>:6:14: IPPool encap: spec.vxlanMode: accepted; egw does not act on pool encapsulation\n');
});

test('delete by name and by file; not found is an error', async () => {
  const r = await runCli(['--datastore', ds, 'delete', 'ippool', 'encap']);
  assert.equal(r.stdout, 'ippool.projectcalico.org "encap" deleted\n');
  const again = await runCli(['--datastore', ds, 'delete', 'ippool', 'encap']);
  assert.equal(again.code, 1);
  assert.equal(again.stderr, 'error: ippools "encap" not found; nothing deleted\n');
  assert.equal((await runCli(['--datastore', ds, 'delete', 'ippool', 'encap', '--ignore-not-found'])).code, 0);
  const byFile = await runCli(['--datastore', ds, 'delete', '-f', join(SEED_DIR, '40-pod.yaml')]);
  assert.equal(byFile.stdout, 'pod "my-client" deleted\n', 'a pod without a node goes at once');
  assert.equal((await runCli(['--datastore', ds, 'get', 'pods', '-A'])).stderr, 'No resources found.\n');
});

test('selector check speaks JSON lines', async () => {
  const input = [
    JSON.stringify({ selector: "egress-code == 'red'", labels: { 'egress-code': 'red' } }),
    JSON.stringify({ selector: 'a in {"y", "x", "x"}' }),
    JSON.stringify({ selector: "a = 'b'" }),
  ].join('\n');
  const r = await spawnEgw(['selector', 'check'], { stdin: input });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines[0], { canonical: 'egress-code == "red"', matches: true });
  assert.deepEqual(lines[1], { canonical: 'a in {"x", "y"}' });
  assert.ok(typeof lines[2].error === 'string' && lines[2].error.includes('column 3'));
});

test('a bad datastore spec is a clear error', async () => {
  const r = await spawnEgw(['--datastore', 'postgres://x', 'get', 'egw']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: unknown datastore "postgres:\/\/x": expected memory:, sqlite:PATH .*, etcd:\/\/HOST:PORT.* or kubernetes:PATH-TO-KUBECONFIG/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

function assertContains(actual: any, expected: any, where: string): void {
  if (expected === null || typeof expected !== 'object') {
    assert.deepEqual(actual, expected, where);
    return;
  }
  assert.ok(actual && typeof actual === 'object', `${where}: missing`);
  for (const [k, v] of Object.entries(expected)) assertContains(actual[k], v, `${where}.${k}`);
}

test('explain: the seed scenario with gateway and client pods', async () => {
  const eds = `sqlite:${join(dir, 'explain.db')}`;
  const applied = await runCli(['--datastore', eds, 'apply', '-f', SEED_DIR, '-f', join(ROOT, 'examples', 'seed-cluster', 'cluster.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  const text = await spawnEgw(['--datastore', eds, 'explain', '--pod', 'my-namespace/web-client', '--dst', '198.51.100.10']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^verdict: via gateway 10\.10\.10\.0, 10\.10\.10\.1$/m);
  assert.match(text.stdout, /^  rule: +ip rule add from 10\.244\.0\.5\/32 lookup \d+ priority 100$/m);
  const json = JSON.parse((await runCli(['--datastore', eds, 'explain', '--pod', 'my-namespace/policy-client', '--dst', '10.1.2.3', '-o', 'json'])).stdout);
  assert.equal(json.kind, 'policy');
  assert.equal(json.verdict, 'normal-routing');
  assert.equal(json.rule.destination, '10.0.0.0/8');
  const missing = await runCli(['--datastore', eds, 'explain', '--pod', 'default/nope', '--dst', '1.2.3.4']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'error: pod default/nope not found\n');
  const badDst = await runCli(['--datastore', eds, 'explain', '--pod', 'my-namespace/web-client', '--dst', '1.2.3']);
  assert.equal(badDst.stderr, 'error: --dst: "1.2.3" is not an IPv4 address\n');
});

test('agent: a bad --sticky-mark-mask is refused before anything runs', async () => {
  const notHex = await runCli(['--datastore', 'memory:', 'agent', '--node', 'n1', '--sticky-mark-mask', 'zz']);
  assert.equal(notHex.code, 2);
  assert.match(notHex.stderr, /option '--sticky-mark-mask <bits>' argument 'zz' is invalid\. expected a non-zero 32-bit mask such as 0x00003f00/);
  const gaps = await spawnEgw(['--datastore', 'memory:', 'agent', '--node', 'n1', '--sticky-mark-mask', '0x123']);
  assert.equal(gaps.code, 1);
  assert.equal(gaps.stderr, 'egw: sticky mark mask 0x123 is not contiguous\n');
});

test('get pods -o wide: EGRESS is each pod\'s effective egress (its own, its namespace\'s or a policy)', async () => {
  const ds2 = `sqlite:${join(dir, 'egress-column.db')}`;
  const podDoc = (ns: string, name: string, annotations = '{}') =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: ${ns}, annotations: ${annotations}}\nspec: {containers: [{name: c, image: busybox}]}\n`;
  const text = [
    'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {egressIPSupport: EnabledPerNamespaceOrPerPod}\n',
    'apiVersion: projectcalico.org/v3\nkind: EgressGatewayPolicy\nmetadata: {name: egw-policy1}\nspec:\n  rules:\n    - gateway: {selector: "egress-code == \'blue\'", namespaceSelector: all()}\n',
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: by-policy, annotations: {egress.projectcalico.org/egressGatewayPolicy: egw-policy1}}\n',
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: by-selector, annotations: {egress.projectcalico.org/selector: "egress-code == \'red\'"}}\n',
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n',
    podDoc('by-policy', 'a'),
    podDoc('by-selector', 'b'),
    // the pod's own policy annotation beats its namespace's selector; naming a missing policy fails closed
    podDoc('by-selector', 'c', '{egress.projectcalico.org/egressGatewayPolicy: no-such-policy}'),
    podDoc('plain', 'd'),
    podDoc('plain', 'e', '{egress.projectcalico.org/selector: "egress-code == \'green\'"}'),
  ].join('---\n');
  writeFileSync(join(dir, 'egress-column.yaml'), text);
  const applied = await runCli(['--datastore', ds2, 'apply', '-f', join(dir, 'egress-column.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  const r = await runCli(['--datastore', ds2, 'get', 'pods', '-A', '-o', 'wide']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  const header = lines[0];
  const at = header.indexOf('EGRESS');
  const end = header.indexOf('LABELS');
  assert.ok(at > 0 && end > at, header);
  const egress = Object.fromEntries(lines.slice(1).map((l) => [l.split(/\s+/).slice(0, 2).join('/'), l.slice(at, end).trim()]));
  assert.deepEqual(egress, {
    'by-policy/a': 'policy:egw-policy1 (ns)',
    'by-selector/b': "selector:egress-code == 'red' (ns)",
    'by-selector/c': 'fail-closed:no-such-policy (pod)',
    'plain/d': '<none>',
    'plain/e': "selector:egress-code == 'green' (pod)",
  });
  // With egressIPSupport Disabled, nothing applies.
  writeFileSync(join(dir, 'felix-off.yaml'), 'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {egressIPSupport: Disabled}\n');
  assert.equal((await runCli(['--datastore', ds2, 'apply', '-f', join(dir, 'felix-off.yaml')])).code, 0);
  const off = await runCli(['--datastore', ds2, 'get', 'pods', '-n', 'by-policy', '-o', 'wide']);
  assert.match(off.stdout, /^a\s+Pending\s+<none>\s+<none>\s+<none>\s+<none>\s+\S+$/m);
});
