// Good inputs: defaults, aliases, lists and the positions errors point at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateManifests, parseManifest, resolveKind } from '../../src/api/index.js';
import { DEFAULT_GATEWAY_LABEL } from '../../src/api/types.js';

const none = { list: () => [] };

test('IPPool defaults', () => {
  const r = validateManifests([{ file: 'p.yaml', text: 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16}\n' }], none);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.resources[0].resource.spec, {
    cidr: '10.1.0.0/16', blockSize: 26, nodeSelector: 'all()', natOutgoing: false, disabled: false,
    allowedUses: ['Workload', 'Tunnel'], ipipMode: 'Never', vxlanMode: 'Never', assignmentMode: 'Automatic',
  });
});

test('Calico CRD apiVersion is accepted and normalised', () => {
  const r = validateManifests([{ file: 'p.yaml', text: 'apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16}\n' }], none);
  assert.deepEqual(r.errors, []);
  assert.equal(r.resources[0].resource.apiVersion, 'projectcalico.org/v3');
});

test('EgressGateway defaults: replicas, logSeverity, template labels, probe timings', () => {
  const text = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool}
spec: {cidr: 10.10.10.0/30, blockSize: 31}
---
apiVersion: operator.tigera.io/v1
kind: EgressGateway
metadata: {name: gw, namespace: default}
spec:
  ipPools: [{name: pool}]
  egressGatewayFailureDetection:
    icmpProbe: {ips: [192.0.2.1]}
    httpProbe: {urls: ["http://192.0.2.1/"]}
`;
  const r = validateManifests([{ file: 'g.yaml', text }], none);
  assert.deepEqual(r.errors, []);
  const spec = r.resources[1].resource.spec as any;
  assert.equal(spec.replicas, 1);
  assert.equal(spec.logSeverity, 'Info');
  assert.deepEqual(spec.template.metadata.labels, { [DEFAULT_GATEWAY_LABEL]: 'gw' });
  assert.deepEqual(spec.egressGatewayFailureDetection, {
    healthTimeoutDataStoreSeconds: 90,
    icmpProbe: { ips: ['192.0.2.1'], intervalSeconds: 5, timeoutSeconds: 15 },
    httpProbe: { urls: ['http://192.0.2.1/'], intervalSeconds: 10, timeoutSeconds: 30 },
  });
});

test('a kind: List is read item by item, with positions inside the list', () => {
  const text = 'apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {name: a}\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {name: B}\n';
  const r = validateManifests([{ file: 'l.yaml', text }], none);
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0].line, 9);
  assert.match(r.errors[0].message, /^Namespace B: metadata\.name: "B" is not a valid name/);
});

test('FelixConfiguration: other fields accepted with a warning', () => {
  const r = validateManifests([{ file: 'f.yaml', text: 'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec:\n  egressIPSupport: EnabledPerNamespace\n  bpfEnabled: true\n' }], none);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings.map((w) => `${w.line}:${w.column} ${w.message}`), ['6:15 FelixConfiguration default: spec.bpfEnabled: accepted; egw acts only on the egress fields of FelixConfiguration']);
});

test('every problem of one object is reported, not only the first', () => {
  const r = validateManifests([{ file: 'p.yaml', text: 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.1/16, blockSize: 40, disabled: 1}\n' }], none);
  assert.equal(r.errors.length, 3);
  assert.equal(r.resources.length, 0);
});

test('parseManifest locates keys and values', () => {
  const m = parseManifest('a:\n  b:\n    - x\n    - y: 1\n', 'f.yaml');
  const o = m.objects[0];
  assert.deepEqual(o.locate(['a', 'b', 1, 'y']), { line: 4, column: 10 });
  assert.deepEqual(o.locate(['a', 'b', 1, 'y'], true), { line: 4, column: 7 });
  assert.deepEqual(o.locate(['a', 'missing']), { line: 2, column: 3 });
});

test('Deployment defaults: replicas 1, RollingUpdate 25%/25%, minReadySeconds 0, history 10, deadline 600; aliases', () => {
  const text = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector:
    matchExpressions: [{key: app, operator: In, values: [web, api]}]
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: busybox}]}
`;
  const r = validateManifests([{ file: 'd.yaml', text }], none);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.resources[0].resource.spec, {
    replicas: 1,
    selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] },
    template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
    minReadySeconds: 0,
    revisionHistoryLimit: 10,
    progressDeadlineSeconds: 600,
  });
  const rs = validateManifests([{ file: 'r.yaml', text: text.replace('kind: Deployment', 'kind: ReplicaSet').replace('metadata: {name: web}', 'metadata: {name: web, namespace: default}') }], none);
  assert.deepEqual(rs.errors, []);
  assert.equal((rs.resources[0].resource.spec as { replicas: number }).replicas, 1);
  for (const [typed, kind] of [['deploy', 'Deployment'], ['deployments', 'Deployment'], ['rs', 'ReplicaSet'], ['replicaset', 'ReplicaSet'], ['deployments.apps', 'Deployment']]) {
    assert.equal(resolveKind(typed)?.kind, kind, typed);
  }
  const recreate = validateManifests([{ file: 'd.yaml', text: text.replace('spec:\n  selector', 'spec:\n  strategy: {type: Recreate}\n  selector') }], none);
  assert.deepEqual(recreate.errors, []);
  assert.deepEqual((recreate.resources[0].resource.spec as { strategy: unknown }).strategy, { type: 'Recreate' });
});
