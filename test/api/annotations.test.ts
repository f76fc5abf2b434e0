// The keys egw shares with Calico, the operator and its own processes, written out once: every other test builds
// its resources and expectations from these constants (test/helpers/resources.ts), so a changed key fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANNOTATION, DEFAULT_GATEWAY_LABEL, NAMESPACE_NAME_LABEL } from '../../src/api/types.js';
import { NETNS_ANNOTATION } from '../../src/lab/topology.js';

test('annotation and label keys are the ones Calico and the docs name', () => {
  assert.deepEqual(ANNOTATION, {
    selector: 'egress.projectcalico.org/selector',
    namespaceSelector: 'egress.projectcalico.org/namespaceSelector',
    maxNextHops: 'egress.projectcalico.org/maxNextHops',
    egressGatewayPolicy: 'egress.projectcalico.org/egressGatewayPolicy',
    maintenanceGatewayIP: 'egress.projectcalico.org/gatewayMaintenanceGatewayIP',
    maintenanceStarted: 'egress.projectcalico.org/gatewayMaintenanceStartedTimestamp',
    maintenanceFinished: 'egress.projectcalico.org/gatewayMaintenanceFinishedTimestamp',
    gatewayOf: 'egw.dev/egress-gateway',
    ipv4Pools: 'cni.projectcalico.org/ipv4pools',
  });
  assert.equal(NAMESPACE_NAME_LABEL, 'projectcalico.org/name');
  assert.equal(DEFAULT_GATEWAY_LABEL, 'projectcalico.org/egw');
  assert.equal(NETNS_ANNOTATION, 'egw.dev/netns');
});
