// The install artefacts (docs/kubernetes.md): every generated object against Kubernetes' own OpenAPI schemas
// (kubernetes-models), the checked-in deploy/kubernetes/ copy against the generator, RBAC least privilege, and the
// CRD schemas against the repository's examples (the seed guide's included) and bad values.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { Namespace, ServiceAccount } from 'kubernetes-models/v1';
import { CALICO_MODES, FORBIDDEN_CRD_GROUP, generateCRDs, policyApiVersion, type CRD, type Schema } from '../../src/kube/crds.js';
import { CHECKED_IN, installObjects, installYaml, rbacRules, leaseRules } from '../../src/kube/manifests.js';
import { EGRESS_IP_SUPPORT, FELIX_DEFAULTS, LOG_SEVERITIES, PROBE_DEFAULTS } from '../../src/api/index.js';
import { LEADER_LEASE_KEY } from '../../src/controller/leader.js';
import { ROOT } from '../helpers/cli.js';
import { runCli } from '../helpers/cli.js';
import { schemaErrors, nodes } from './schema.js';

const MODELS: Record<string, new (x: never) => { validate(): void }> = {
  CustomResourceDefinition, DaemonSet, Deployment, ClusterRole, ClusterRoleBinding, Role, RoleBinding, Namespace, ServiceAccount,
} as never;

describe('install objects validate against Kubernetes OpenAPI schemas', () => {
  for (const mode of CALICO_MODES) {
    test(`calico mode ${mode}`, () => {
      const objs = installObjects({ calicoMode: mode });
      const kinds = new Set(objs.map((o) => o.kind));
      for (const k of ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'DaemonSet', 'Deployment']) assert.ok(kinds.has(k), `no ${k}`);
      for (const o of objs) {
        const M = MODELS[o.kind];
        assert.ok(M, `no model for ${o.kind}`);
        assert.doesNotThrow(() => new M(structuredClone(o) as never).validate(), `${o.kind} ${o.metadata.name}`);
      }
    });
  }
  test('the validator is not a rubber stamp: a broken DaemonSet fails', () => {
    const ds = structuredClone(installObjects().find((o) => o.kind === 'DaemonSet')!) as any;
    ds.spec.template.spec.containers[0].ports[0].containerPort = 'ninety';
    assert.throws(() => new DaemonSet(ds).validate());
  });
});

describe('deploy/kubernetes is what the generator makes', () => {
  for (const { file, opts } of CHECKED_IN) {
    test(file, () => {
      const have = readFileSync(join(ROOT, file), 'utf8');
      assert.ok(have === installYaml(opts), `${file} is stale: regenerate it with \`make manifests\` (or \`egw manifests --calico-mode ${opts.calicoMode}\`)`);
    });
  }
  test('egw manifests prints the checked-in YAML; bad flags are named', async () => {
    const r = await runCli(['manifests', '--calico-mode', 'native-v3']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, readFileSync(join(ROOT, 'deploy/kubernetes/egw-native-v3.yaml'), 'utf8'));
    const img = await runCli(['manifests', '--image', 'reg.example/egw:1', '--namespace', 'egress']);
    const docs = parseAllDocuments(img.stdout).map((d) => d.toJS());
    const ds = docs.find((d) => d?.kind === 'DaemonSet');
    assert.equal(ds.metadata.namespace, 'egress');
    assert.equal(ds.spec.template.spec.containers[0].image, 'reg.example/egw:1');
    const ctl = docs.find((d) => d?.kind === 'Deployment').spec.template.spec.containers[0];
    assert.equal(ctl.image, 'reg.example/egw:1');
    assert.deepEqual(ctl.command.slice(ctl.command.indexOf('--gateway-image'), ctl.command.indexOf('--gateway-image') + 2), ['--gateway-image', 'reg.example/egw:1'], 'gateway pods get the same image');
    const bad = await runCli(['manifests', '--namespace', 'Not_Valid']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--namespace/);
    assert.equal(bad.stdout, '');
    const mode = await runCli(['manifests', '--calico-mode', 'crd']);
    assert.notEqual(mode.code, 0);
    assert.match(mode.stderr, /calico-mode/);
  });
});

describe('RBAC is least privilege', () => {
  for (const mode of CALICO_MODES) {
    test(`no wildcards, no writes where a role only reads (${mode})`, () => {
      const roles = installObjects({ calicoMode: mode }).filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role') as any[];
      assert.ok(roles.length >= 4);
      for (const r of roles) for (const rule of r.rules) {
        for (const f of ['verbs', 'resources', 'apiGroups']) assert.ok(!rule[f].includes('*'), `${r.metadata.name}: * in ${f}`);
        assert.ok(!rule.resources.some((x: string) => x === 'secrets'), `${r.metadata.name} reads secrets`);
        assert.ok(!rule.resources.includes('customresourcedefinitions'), 'egw does not manage CRDs at run time');
        if (rule.apiGroups.includes(FORBIDDEN_CRD_GROUP)) assert.deepEqual(rule.verbs, ['get', 'list', 'watch'], 'crd.projectcalico.org is read only');
      }
      const rules = rbacRules(mode);
      const writes = (rs: typeof rules.agent) => rs.filter((x) => x.verbs.some((v) => !['get', 'list', 'watch'].includes(v)));
      assert.deepEqual(writes(rules.agent), [], 'the agent only reads');
      assert.ok(writes(rules.controller).some((x) => x.resources.includes('pods') && x.verbs.includes('create')), 'the controller creates gateway pods');
      assert.ok(rules.controller.some((x) => x.apiGroups.includes(policyApiVersion(mode).split('/')[0]) && x.resources.includes('egressgatewaypolicies/status')));
      assert.ok(!rules.gateway.some((x) => x.resources.includes('pods') && x.verbs.includes('create')));
    });
  }
  test('leader election: a Lease in the lease namespace, updates only by name', () => {
    const role = installObjects().find((o) => o.kind === 'Role') as any;
    assert.equal(role.metadata.namespace, LEADER_LEASE_KEY.namespace);
    const upd = leaseRules().find((r) => r.verbs.includes('update'))!;
    assert.deepEqual(upd.resourceNames, [LEADER_LEASE_KEY.name]);
    assert.deepEqual(upd.apiGroups, ['coordination.k8s.io']);
  });
  test('the agent: host network, NET_ADMIN only, metrics 9091; the controller: 2 replicas, non-root', () => {
    const objs = installObjects() as any[];
    const ds = objs.find((o) => o.kind === 'DaemonSet').spec.template.spec;
    assert.equal(ds.hostNetwork, true);
    assert.deepEqual(ds.containers[0].securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
    assert.equal(ds.containers[0].ports.find((p: any) => p.name === 'metrics').containerPort, 9091);
    assert.equal(ds.volumes[0].hostPath.path, '/var/log/egw/flows');
    const dep = objs.find((o) => o.kind === 'Deployment');
    assert.equal(dep.spec.replicas, 2);
    assert.equal(dep.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.ok(!dep.spec.template.spec.hostNetwork);
  });
});

function crdFor(kind: string, mode: (typeof CALICO_MODES)[number] = 'native-v3'): CRD {
  return generateCRDs(mode).find((c) => c.spec.names.kind === kind)!;
}
const schemaOf = (kind: string, mode?: (typeof CALICO_MODES)[number]): Schema => crdFor(kind, mode).spec.versions[0].schema.openAPIV3Schema;

function exampleDocs(): { file: string; doc: any }[] {
  const out: { file: string; doc: any }[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e.name)) for (const d of parseAllDocuments(readFileSync(p, 'utf8'))) { const j = d.toJS(); if (j?.kind) out.push({ file: p.slice(ROOT.length), doc: j }); }
    }
  };
  walk(join(ROOT, 'examples'));
  return out;
}

describe('CRD schemas', () => {
  test('the CRDs: groups, scope, status subresource; never crd.projectcalico.org', () => {
    for (const mode of CALICO_MODES) {
      const crds = generateCRDs(mode);
      for (const c of crds) assert.notEqual(c.spec.group, FORBIDDEN_CRD_GROUP);
      const egw = crds.find((c) => c.metadata.name === 'egressgateways.operator.tigera.io')!;
      assert.equal(egw.spec.scope, 'Namespaced');
      assert.deepEqual(egw.spec.versions.map((v) => [v.name, !!v.subresources?.status]), [['v1', true]]);
      const pol = crds.find((c) => c.spec.names.kind === 'EgressGatewayPolicy')!;
      assert.equal(`${pol.spec.group}/${pol.spec.versions[0].name}`, mode === 'native-v3' ? 'projectcalico.org/v3' : 'egw.dev/v1');
      assert.equal(pol.spec.scope, 'Cluster');
      assert.equal(crds.find((c) => c.spec.names.kind === 'EgressConfiguration')!.spec.scope, 'Cluster');
    }
  });
  test('structural: every node has a type, enums and defaults come from src/api', () => {
    for (const c of generateCRDs('native-v3')) for (const [p, n] of nodes(c.spec.versions[0].schema.openAPIV3Schema)) assert.ok(n.type, `${c.metadata.name} ${p} has no type`);
    const egw = schemaOf('EgressGateway').properties!.spec.properties!;
    assert.deepEqual(egw.logSeverity.enum, [...LOG_SEVERITIES]);
    assert.equal(egw.egressGatewayFailureDetection.properties!.icmpProbe.properties!.timeoutSeconds.default, PROBE_DEFAULTS.icmpProbe.timeoutSeconds);
    const cfg = schemaOf('EgressConfiguration').properties!.spec.properties!;
    assert.deepEqual(cfg.egressIPSupport.enum, [...EGRESS_IP_SUPPORT]);
    assert.equal(cfg.egressIPVXLANVNI.default, FELIX_DEFAULTS.egressIPVXLANVNI);
  });
  test('CEL rules where one expression fits', () => {
    const rules = JSON.stringify(generateCRDs('native-v3'));
    for (const r of ['self.timeoutSeconds >= self.intervalSeconds', 'has(self.icmpProbe) || has(self.httpProbe)', 'has(self.name) || has(self.cidr)']) assert.ok(rules.includes(r), r);
  });
  test('every example in the repository (the seed guide\'s included) is accepted', () => {
    const docs = exampleDocs();
    const seen = new Set<string>();
    for (const { file, doc } of docs) {
      let schema: Schema | undefined;
      let body = doc;
      if (doc.kind === 'EgressGateway' || doc.kind === 'EgressGatewayPolicy') schema = schemaOf(doc.kind);
      // FelixConfiguration's egress fields are what egw's configuration resource holds (docs/kubernetes.md).
      if (doc.kind === 'FelixConfiguration') { schema = schemaOf('EgressConfiguration'); body = { ...doc, kind: 'EgressConfiguration', apiVersion: 'egw.dev/v1' }; }
      if (!schema) continue;
      seen.add(`${doc.kind} ${file.split('/')[1]}`);
      assert.deepEqual(schemaErrors(body, schema), [], `${file}: ${doc.kind} ${doc.metadata?.name}`);
    }
    for (const k of ['EgressGateway seed', 'EgressGatewayPolicy seed', 'FelixConfiguration seed']) assert.ok(seen.has(k), `no ${k} example checked`);
  });
  test('wrong types, enum values and ranges are rejected, naming the field', () => {
    const seedEgw = exampleDocs().find((d) => d.doc.kind === 'EgressGateway' && d.file.includes('seed'))!.doc;
    const bad = (mut: (x: any) => void, kind = 'EgressGateway', base: any = seedEgw) => {
      const x = structuredClone(base);
      mut(x);
      return schemaErrors(x, schemaOf(kind)).join('; ');
    };
    assert.match(bad((x) => (x.spec.replicas = 'two')), /spec\.replicas: expected integer/);
    assert.match(bad((x) => (x.spec.replicas = -1)), /spec\.replicas: -1 < minimum 0/);
    assert.match(bad((x) => (x.spec.logSeverity = 'Verbose')), /logSeverity: "Verbose" is not one of/);
    assert.match(bad((x) => (x.spec.ipPools = [])), /ipPools: fewer than 1/);
    assert.match(bad((x) => delete x.spec.ipPools), /missing required ipPools/);
    assert.match(bad((x) => (x.spec.egressGatewayFailureDetection.icmpProbe.intervalSeconds = 0)), /intervalSeconds: 0 < minimum 1/);
    assert.match(bad((x) => (x.spec.bogus = 1)), /spec\.bogus: unknown field/);
    const seedPol = exampleDocs().find((d) => d.doc.kind === 'EgressGatewayPolicy' && d.file.includes('seed'))!.doc;
    assert.match(bad((x) => (x.spec.rules[2].gatewayPreference = 'Nearest'), 'EgressGatewayPolicy', seedPol), /gatewayPreference/);
    assert.match(bad((x) => (x.spec.rules[1].gateway.maxNextHops = -2), 'EgressGatewayPolicy', seedPol), /maxNextHops: -2 < minimum 0/);
    assert.match(bad((x) => (x.spec.rules = []), 'EgressGatewayPolicy', seedPol), /rules: fewer than 1/);
    const cfg = { apiVersion: 'egw.dev/v1', kind: 'EgressConfiguration', metadata: { name: 'default' }, spec: { egressIPRoutingRulePriority: 32766, egressIPSupport: 'On' } };
    const errs = schemaErrors(cfg, schemaOf('EgressConfiguration')).join('; ');
    assert.match(errs, /egressIPRoutingRulePriority: 32766 > maximum 32765/);
    assert.match(errs, /egressIPSupport: "On"/);
  });
});
