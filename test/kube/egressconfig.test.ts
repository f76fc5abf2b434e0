// A FelixConfiguration's egress fields map onto egw's EgressConfiguration (docs/kubernetes.md), and the result is
// what the generated CRD accepts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { generateCRDs } from '../../src/kube/crds.js';
import { egressConfigurationFrom, EGRESS_FIELDS } from '../../src/kube/egressconfig.js';
import { ROOT } from '../helpers/cli.js';
import { schemaErrors } from './schema.js';

const schema = generateCRDs('apiserver').find((c) => c.spec.names.kind === 'EgressConfiguration')!.spec.versions[0].schema.openAPIV3Schema;

test('the seed guide\'s FelixConfiguration maps onto a valid EgressConfiguration', () => {
  const fc = parse(readFileSync(join(ROOT, 'examples/seed/00-felixconfiguration.yaml'), 'utf8'));
  const { config, otherFields } = egressConfigurationFrom(fc);
  assert.deepEqual(config, { apiVersion: 'egw.dev/v1', kind: 'EgressConfiguration', metadata: { name: 'default' }, spec: { egressIPSupport: 'EnabledPerNamespaceOrPerPod' } });
  assert.deepEqual(otherFields, []);
  assert.deepEqual(schemaErrors(config, schema), []);
});
test('every egress field is carried over; Felix\'s own fields are left and listed', () => {
  const spec = { egressIPSupport: 'EnabledPerNamespace', egressIPVXLANPort: 4791, egressIPVXLANVNI: 5000, egressIPRoutingRulePriority: 120, egressGatewayPollInterval: '1s', egressGatewayPollFailureCount: 5, iptablesMarkMask: 0xffff0000, logSeverityScreen: 'Info' };
  const { config, otherFields } = egressConfigurationFrom({ apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec } as never);
  assert.deepEqual(Object.keys(config.spec).sort(), [...EGRESS_FIELDS].sort());
  assert.equal(config.spec.egressIPVXLANVNI, 5000);
  assert.deepEqual(otherFields, ['iptablesMarkMask', 'logSeverityScreen']);
  assert.deepEqual(schemaErrors(config, schema), []);
});
test('a per-node FelixConfiguration is refused by name', () => {
  assert.throws(() => egressConfigurationFrom({ apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'node.n1' }, spec: {} } as never), /FelixConfiguration node\.n1: only "default"/);
});
