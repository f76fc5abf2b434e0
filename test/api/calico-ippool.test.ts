// IPPool validation as Calico's (docs/behaviour.md §1): every rule, each with Calico's expected result, and the
// metadata rules every kind shares. Errors and warnings are checked with their file:line:column.
// Calico's public reference for the expected results: https://docs.tigera.io/calico/latest/reference/resources/ippool
// (IPv4 or IPv6 cidr, not overlapping 169.254.0.0/16 or fe80::/10; blockSize 20–32 / 116–128, default 26 / 122;
// the subnet fits a block; allowedUses, assignmentMode Automatic | Manual; awsSubnetID) and SPEC §9's rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateManifests, type ExistingObjects } from '../../src/api/index.js';
import type { Resource } from '../../src/api/meta.js';

const none: ExistingObjects = { list: () => [] };

function pool(spec: string, name = 'p1'): string {
  return `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ${name}\nspec:\n${spec}`;
}

function check(text: string, existing: ExistingObjects = none) {
  const r = validateManifests([{ file: 'p.yaml', text }], existing);
  return {
    errors: r.errors.map((e) => `${e.file}:${e.line}:${e.column}: ${e.message}`),
    warnings: r.warnings.map((e) => `${e.line}: ${e.message}`),
    resources: r.resources.map((x) => x.resource),
  };
}

function ok(text: string, existing: ExistingObjects = none) {
  const r = check(text, existing);
  assert.deepEqual(r.errors, []);
  return r;
}

function refused(text: string, expected: string[], existing: ExistingObjects = none): void {
  const r = check(text, existing);
  assert.deepEqual(r.errors, expected);
  assert.equal(r.resources.length, 0);
}

test('an IPv6 pool is a valid resource: default blockSize 122, canonical CIDR, a warning that egw does not use it', () => {
  const r = ok(pool('  cidr: "FD00:10:0:0::/120"\n'));
  const spec = r.resources[0].spec as Record<string, unknown>;
  assert.equal(spec.cidr, 'fd00:10::/120');
  assert.equal(spec.blockSize, 122);
  assert.deepEqual(r.warnings, ['6: IPPool p1: spec.cidr: accepted; egw does not use IPv6 pools yet (no pod or gateway address comes from this pool)']);
});

test('IPv6 blockSize is 116–128', () => {
  ok(pool('  cidr: "fd00::/112"\n  blockSize: 116\n'));
  ok(pool('  cidr: "fd00::/112"\n  blockSize: 128\n'));
  refused(pool('  cidr: "fd00::/112"\n  blockSize: 115\n'), ['p.yaml:7:14: IPPool p1: spec.blockSize: must be between 116 and 128, got 115']);
  refused(pool('  cidr: "fd00::/112"\n  blockSize: 26\n'), ['p.yaml:7:14: IPPool p1: spec.blockSize: must be between 116 and 128, got 26']);
  refused(pool('  cidr: "fd00::/124"\n'), ['p.yaml:6:9: IPPool p1: spec.cidr: the prefix /124 is longer than the default block size 122; set blockSize to 124 or more']);
  // and IPv4 keeps 20–32
  refused(pool('  cidr: 10.1.0.0/16\n  blockSize: 122\n'), ['p.yaml:7:14: IPPool p1: spec.blockSize: must be between 20 and 32, got 122']);
});

test('IPv6 CIDR: host bits, link-local fe80::/10, not a CIDR', () => {
  refused(pool('  cidr: "fd00::1/120"\n'), ['p.yaml:6:9: IPPool p1: spec.cidr: "fd00::1/120" has host bits set; did you mean fd00::/120?']);
  refused(pool('  cidr: "fe80::/120"\n'), ['p.yaml:6:9: IPPool p1: spec.cidr: fe80::/120 overlaps the IPv6 link-local range fe80::/10, which cannot be an IP pool']);
  refused(pool('  cidr: "febf:ffff::/120"\n'), ['p.yaml:6:9: IPPool p1: spec.cidr: febf:ffff::/120 overlaps the IPv6 link-local range fe80::/10, which cannot be an IP pool']);
  ok(pool('  cidr: "fec0::/120"\n'));
  refused(pool('  cidr: "fd00::g/120"\n'), ['p.yaml:6:9: IPPool p1: spec.cidr: "fd00::g/120" is not a CIDR such as 10.10.10.0/30 or fd00:10::/120']);
  refused(pool('  cidr: "fd00::/129"\n'), ['p.yaml:6:9: IPPool p1: spec.cidr: "fd00::/129" is not a CIDR such as 10.10.10.0/30 or fd00:10::/120']);
});

test('IPv6 pools overlap each other, never an IPv4 pool', () => {
  const stored: ExistingObjects = {
    list: (k) => (k === 'IPPool' ? [{ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'v6' }, spec: { cidr: 'fd00::/112', blockSize: 122 } } as Resource] : []),
  };
  refused(pool('  cidr: "fd00::/120"\n'), ['p.yaml:6:9: IPPool p1: spec.cidr: fd00::/120 overlaps IPPool v6 (fd00::/112)'], stored);
  ok(pool('  cidr: "fd01::/120"\n'), stored);
  ok(pool('  cidr: 10.1.0.0/16\n'), stored);
});

test('IPIP is not allowed on an IPv6 pool; VXLAN is', () => {
  refused(pool('  cidr: "fd00::/120"\n  ipipMode: Always\n'), ['p.yaml:7:13: IPPool p1: spec.ipipMode: IPIP is IPv4 only; an IPv6 pool needs ipipMode Never (or VXLAN), got Always']);
  ok(pool('  cidr: "fd00::/120"\n  ipipMode: Never\n  vxlanMode: Always\n'));
  ok(pool('  cidr: 10.1.0.0/16\n  ipipMode: CrossSubnet\n'));
});

test('LoadBalancer excludes Workload and Tunnel, encapsulation, disableBGPExport: true and any nodeSelector but all()', () => {
  const lb = (extra: string) => pool(`  cidr: 10.1.0.0/16\n  allowedUses: [LoadBalancer]\n${extra}`);
  ok(lb(''));
  ok(lb('  nodeSelector: all()\n  disableBGPExport: false\n  ipipMode: Never\n  vxlanMode: Never\n'));
  refused(pool('  cidr: 10.1.0.0/16\n  allowedUses: [LoadBalancer, Workload]\n'), ['p.yaml:7:16: IPPool p1: spec.allowedUses: LoadBalancer cannot be combined with other uses (Workload, Tunnel)']);
  refused(pool('  cidr: 10.1.0.0/16\n  allowedUses: [Tunnel, LoadBalancer]\n'), ['p.yaml:7:16: IPPool p1: spec.allowedUses: LoadBalancer cannot be combined with other uses (Workload, Tunnel)']);
  refused(lb('  ipipMode: Always\n'), ['p.yaml:8:13: IPPool p1: spec.ipipMode: must be Never on a LoadBalancer pool, got Always']);
  refused(lb('  vxlanMode: CrossSubnet\n'), ['p.yaml:8:14: IPPool p1: spec.vxlanMode: must be Never on a LoadBalancer pool, got CrossSubnet']);
  refused(lb('  disableBGPExport: true\n'), ['p.yaml:8:21: IPPool p1: spec.disableBGPExport: must not be true on a LoadBalancer pool (its addresses are advertised)']);
  refused(lb('  nodeSelector: "zone == \'a\'"\n'), [`p.yaml:8:17: IPPool p1: spec.nodeSelector: must be all() on a LoadBalancer pool, got "zone == 'a'"`]);
  refused(lb('  nodeSelector: "!all()"\n'), ['p.yaml:8:17: IPPool p1: spec.nodeSelector: must be all() on a LoadBalancer pool, got "!all()"']);
  // the same settings are fine on a Workload pool
  ok(pool('  cidr: 10.1.0.0/16\n  allowedUses: [Workload]\n  disableBGPExport: true\n  nodeSelector: "!all()"\n'));
});

test('a Tunnel pool has no namespaceSelector', () => {
  refused(pool('  cidr: 10.1.0.0/16\n  allowedUses: [Workload, Tunnel]\n  namespaceSelector: "team == \'a\'"\n'), ['p.yaml:8:22: IPPool p1: spec.namespaceSelector: a Tunnel pool serves nodes, not namespaces: remove namespaceSelector or Tunnel from allowedUses']);
  ok(pool('  cidr: 10.1.0.0/16\n  allowedUses: [Workload]\n  namespaceSelector: "team == \'a\'"\n'));
});

test('global( is forbidden in a pool\'s nodeSelector and namespaceSelector', () => {
  refused(pool('  cidr: 10.1.0.0/16\n  nodeSelector: global()\n'), [`p.yaml:7:17: IPPool p1: spec.nodeSelector: "global()": global() is not allowed in an IP pool's selectors`]);
  refused(pool('  cidr: 10.1.0.0/16\n  allowedUses: [Workload]\n  namespaceSelector: "has(a) && global()"\n'), [`p.yaml:8:22: IPPool p1: spec.namespaceSelector: "has(a) && global()": global() is not allowed in an IP pool's selectors`]);
  ok(pool('  cidr: 10.1.0.0/16\n  nodeSelector: "has(globalzone)"\n'));
});

test('a disabled pool is exempt from prefix ≤ blockSize', () => {
  refused(pool('  cidr: 10.1.0.0/28\n  blockSize: 26\n'), ["p.yaml:7:14: IPPool p1: spec.blockSize: the pool's prefix /28 is longer than its block size 26; use blockSize 28 or more"]);
  ok(pool('  cidr: 10.1.0.0/28\n  blockSize: 26\n  disabled: true\n'));
  ok(pool('  cidr: 10.1.0.0/30\n  disabled: true\n'));
  ok(pool('  cidr: "fd00::/126"\n  disabled: true\n'));
});

test('assignmentMode is Automatic or Manual; the empty string is refused', () => {
  assert.equal((ok(pool('  cidr: 10.1.0.0/16\n')).resources[0].spec as { assignmentMode: string }).assignmentMode, 'Automatic');
  ok(pool('  cidr: 10.1.0.0/16\n  assignmentMode: Manual\n'));
  refused(pool('  cidr: 10.1.0.0/16\n  assignmentMode: ""\n'), ['p.yaml:7:19: IPPool p1: spec.assignmentMode: "" is not one of Automatic, Manual']);
  refused(pool('  cidr: 10.1.0.0/16\n  assignmentMode: automatic\n'), ['p.yaml:7:19: IPPool p1: spec.assignmentMode: "automatic" is not one of Automatic, Manual']);
});

test("the AWS guide's pools (awsSubnetID subnet-000000000000000001) are accepted with the not-acted-on warning", () => {
  const text = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: egress-red-west
spec:
  cidr: 100.64.0.0/30
  allowedUses: ["Workload"]
  awsSubnetID: subnet-000000000000000001
  blockSize: 32
  nodeSelector: "!all()"
  disableBGPExport: true
`;
  const r = ok(text);
  assert.deepEqual(r.warnings, [
    '11: IPPool egress-red-west: spec.disableBGPExport: accepted; egw does not act on this field',
    '8: IPPool egress-red-west: spec.awsSubnetID: accepted; egw does not act on this field',
  ]);
  assert.equal((r.resources[0].spec as { awsSubnetID: string }).awsSubnetID, 'subnet-000000000000000001');
  refused(pool('  cidr: 10.1.0.0/16\n  awsSubnetID: 12\n'), ['p.yaml:7:16: IPPool p1: spec.awsSubnetID: expected a string, got number 12']);
});

// ---- metadata, every kind ---------------------------------------------------------------------------------------

function ns(meta: string): string {
  return `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n1\n${meta}`;
}

test('label keys are qualified names: optional DNS-subdomain prefix ≤ 253, "/", name ≤ 63', () => {
  ok(ns('  labels:\n    example.com/a-b_c.d: x\n    A9: ""\n'));
  ok(ns(`  labels:\n    ${'p'.repeat(253)}/${'n'.repeat(63)}: v\n`));
  refused(ns(`  labels:\n    ${'n'.repeat(64)}: v\n`), [`p.yaml:6:5: Namespace n1: metadata.labels.${'n'.repeat(64)}: label key "${'n'.repeat(64)}" is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`]);
  refused(ns(`  labels:\n    ${'p'.repeat(254)}/n: v\n`), [`p.yaml:6:5: Namespace n1: metadata.labels["${'p'.repeat(254)}/n"]: label key "${'p'.repeat(254)}/n": the prefix must be a DNS subdomain such as example.com`]);
  refused(ns('  labels:\n    Example.com/a: v\n'), ['p.yaml:6:5: Namespace n1: metadata.labels["Example.com/a"]: label key "Example.com/a": the prefix must be a DNS subdomain such as example.com']);
  refused(ns('  labels:\n    a-: v\n'), [`p.yaml:6:5: Namespace n1: metadata.labels["a-"]: label key "a-" is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`]);
  refused(ns('  labels:\n    /a: v\n'), ['p.yaml:6:5: Namespace n1: metadata.labels["/a"]: label key "/a": the prefix must be a DNS subdomain such as example.com']);
});

test('label values: at most 63 characters of the same alphabet, or empty', () => {
  ok(ns(`  labels:\n    a: "${'v'.repeat(63)}"\n    b: ""\n    c: A.b-c_9\n`));
  refused(ns(`  labels:\n    a: "${'v'.repeat(64)}"\n`), [`p.yaml:6:8: Namespace n1: metadata.labels.a: label value "${'v'.repeat(64)}" is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`]);
  refused(ns('  labels:\n    a: "-v"\n'), [`p.yaml:6:8: Namespace n1: metadata.labels.a: label value "-v" is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`]);
});

test('annotations are at most 256 KiB in total (keys and values)', () => {
  const big = (n: number) => `  annotations:\n    a: "${'x'.repeat(n)}"\n    b: "${'y'.repeat(10)}"\n`;
  // 1 + n + 1 + 10 bytes
  ok(ns(big(256 * 1024 - 12)));
  refused(ns(big(256 * 1024 - 11)), ['p.yaml:6:5: Namespace n1: metadata.annotations: annotations total 262145 bytes (keys and values); at most 262144 (256 KiB) are allowed']);
  // also on other kinds
  const r = check(`apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\n  annotations:\n    a: "${'é'.repeat(131072)}"\nspec: {cidr: 10.1.0.0/16}\n`);
  assert.deepEqual(r.errors, ['p.yaml:6:5: IPPool p1: metadata.annotations: annotations total 262145 bytes (keys and values); at most 262144 (256 KiB) are allowed']);
});

// ---- an EgressGateway on an IPv6 pool -------------------------------------------------------------------------------

const V6 = pool('  cidr: "fd00:10::/126"\n  blockSize: 128\n', 'v6');

test('an EgressGateway naming an IPv6 pool is refused: "IPv6 egress is not supported yet"', () => {
  refused(`${V6}---\napiVersion: operator.tigera.io/v1\nkind: EgressGateway\nmetadata: {name: gw, namespace: default}\nspec:\n  ipPools:\n    - name: v6\n`, [
    'p.yaml:14:7: EgressGateway default/gw: spec.ipPools[0]: IPPool v6 (fd00:10::/126) is an IPv6 pool: IPv6 egress is not supported yet; an EgressGateway takes its addresses from IPv4 pools',
  ]);
  refused(`${V6}---\napiVersion: operator.tigera.io/v1\nkind: EgressGateway\nmetadata: {name: gw, namespace: default}\nspec:\n  ipPools:\n    - cidr: "fd00:10::/126"\n`, [
    'p.yaml:14:13: EgressGateway default/gw: spec.ipPools[0].cidr: "fd00:10::/126": IPv6 egress is not supported yet; an EgressGateway takes its addresses from IPv4 pools',
  ]);
});

test('an egress pool cannot be turned into an IPv6 pool under its gateway', () => {
  const stored: ExistingObjects = {
    list: (k) =>
      k === 'IPPool'
        ? [{ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'v6' }, spec: { cidr: '10.10.10.0/31', blockSize: 31 } } as Resource]
        : k === 'EgressGateway'
          ? [{ apiVersion: 'operator.tigera.io/v1', kind: 'EgressGateway', metadata: { name: 'gw', namespace: 'default' }, spec: { replicas: 1, ipPools: [{ name: 'v6' }] } } as Resource]
          : [],
  };
  refused(V6, ['p.yaml:6:9: IPPool v6: spec.cidr: EgressGateway default/gw takes its addresses from this pool: IPv6 egress is not supported yet; an EgressGateway takes its addresses from IPv4 pools'], stored);
});

// ---- no stricter than Kubernetes/Calico on fields egw does not act on -----------------------------------------------

test('a dual-stack Pod and Node (IPv6 addresses beside the IPv4 ones) are accepted; a non-address is not', () => {
  ok(`apiVersion: v1\nkind: Namespace\nmetadata: {name: n1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: n1}\nspec:\n  containers: [{name: c, image: busybox, ports: [{containerPort: 80, hostPort: 0}]}]\nstatus:\n  podIP: "fd00::5"\n  podIPs: [{ip: "fd00::5"}, {ip: 10.244.0.5}]\n`);
  ok(`apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses: [{type: InternalIP, address: 192.168.1.1}, {type: InternalIP, address: "fd00:1::1"}]\n`);
  refused(`apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses: [{type: InternalIP, address: "192.168.1"}]\n`, ['p.yaml:5:43: Node n1: status.addresses[0].address: "192.168.1" is not an IP address']);
});
