// Gateway pods for Calico IPAM (docs/kubernetes.md, "Gateway pods"): with the pod builder's `kubernetes` option the
// pods carry cni.projectcalico.org/ipv4pools and a container port named `health` (8080), and are valid v1 Pods;
// without it (the lab, egw IPAM) they keep the lab's shape.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pod as PodModel } from 'kubernetes-models/v1';
import { ANNOTATION } from '../../src/api/types.js';
import { planGatewayPods } from '../../src/controller/index.js';
import { egressGateway, ippool, node, seeded } from '../helpers/resources.js';

const pools = [ippool('egress', '10.10.10.0/30', { blockSize: 31, nodeSelector: '!all()' }), ippool('egress-b', '10.10.20.0/30', { blockSize: 31 })];
const nodes = [node('n1'), node('n2')];
const egw = () => {
  const g = egressGateway('prod', 'red', { replicas: 2, ipPools: [{ name: 'egress' }, { cidr: '10.10.20.0/30' }], template: { metadata: { labels: { 'egress-code': 'red' } } } });
  g.metadata.uid = 'uid-red';
  return g;
};

describe('gateway pods on Kubernetes', () => {
  it('carry the Calico IPAM annotation and a port named health 8080; they are valid v1 Pods', () => {
    const plan = planGatewayPods(egw(), [], nodes, pools, { random: seeded(), kubernetes: { image: 'reg.example/egw:2' } });
    assert.equal(plan.create.length, 2);
    for (const p of plan.create) {
      assert.equal(p.metadata.annotations![ANNOTATION.ipv4Pools], '["egress","egress-b"]');
      assert.deepEqual(JSON.parse(p.metadata.annotations!['cni.projectcalico.org/ipv4pools']), ['egress', 'egress-b']);
      const c = p.spec.containers[0];
      assert.equal(c.image, 'reg.example/egw:2');
      const health = c.ports!.find((x) => x.name === 'health');
      assert.deepEqual([health?.containerPort, health?.protocol], [8080, 'TCP']);
      assert.equal(c.ports!.find((x) => x.name === 'metrics')?.containerPort, 9092);
      assert.equal((p.spec as any).volumes[0].hostPath.path, '/var/log/egw/flows');
      assert.equal((c as any).readinessProbe.httpGet.port, 'health');
      assert.doesNotThrow(() => new PodModel(structuredClone(p) as never).validate());
    }
    // Each pod has its own copy: changing one does not change the next one planned.
    plan.create[0].spec.containers[0].ports!.length = 0;
    assert.ok(plan.create[1].spec.containers[0].ports!.length > 0);
  });
  it('the lab keeps its own pod shape (no ports, no image registry)', () => {
    const plan = planGatewayPods(egw(), [], nodes, pools, { random: seeded() });
    assert.deepEqual(plan.create[0].spec.containers, [{ name: 'gateway', image: 'egw', command: ['egw', 'gateway'] }]);
    assert.equal(plan.create[0].metadata.annotations![ANNOTATION.ipv4Pools], '["egress","egress-b"]');
  });
});
