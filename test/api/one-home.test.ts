// The rules that used to have several copies that disagreed, each pinned where it now lives (docs/dataplane.md,
// "Gateway readiness (one rule)"): the namespace default, gateway readiness, pool allowedUses, maxNextHops and
// Go-duration parsing. Each case below is one that a former copy answered differently.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { keyOf, namespaceOf } from '../../src/api/meta.js';
import { parseGoDuration, parseMaxNextHops } from '../../src/api/parse.js';
import { isPodReady } from '../../src/api/pod.js';
import { ANNOTATION, type Pod } from '../../src/api/types.js';
import { isPodOf } from '../../src/controller/plan.js';
import { MemoryStore } from '../../src/datastore/memory.js';
import { poolAllows } from '../../src/ipam/pools.js';
import { parseLabFile } from '../../src/lab/labfile.js';
import { writeClusterObjects } from '../../src/lab/topology.js';
import { memoryLogger } from '../../src/log.js';
import { egressGateway, ippool, pod } from '../helpers/resources.js';

describe('one home per rule', () => {
  it('a namespaced object without a namespace is in default (the controller used to say "")', () => {
    const bare = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } };
    assert.equal(namespaceOf(bare), 'default');
    assert.deepEqual(keyOf(bare), { kind: 'Pod', namespace: 'default', name: 'p' });
    assert.equal(namespaceOf({ kind: 'IPPool', metadata: { name: 'x' } }), '');
    // the controller recognises the gateway pods of an EgressGateway in default whose pods name no namespace
    const egw = egressGateway('default', 'red');
    const p = pod('default', 'red-1', { annotations: { [ANNOTATION.gatewayOf]: 'red' } });
    delete p.metadata.namespace;
    assert.equal(isPodOf(p, egw), true);
  });

  it('a gateway takes new connections only when Running and Ready=True (calc used to accept "not False")', () => {
    const base = (status: Pod['status']): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'g', namespace: 'n' }, spec: { containers: [] }, status });
    assert.equal(isPodReady(base({ phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] })), true);
    assert.equal(isPodReady(base({ phase: 'Running' })), false, 'no Ready condition');
    assert.equal(isPodReady(base({ phase: 'Running', conditions: [{ type: 'Ready', status: 'Unknown' }] })), false, 'Ready=Unknown');
    assert.equal(isPodReady(base({ phase: 'Pending', conditions: [{ type: 'Ready', status: 'True' }] })), false, 'Pending');
    assert.equal(isPodReady(base(undefined)), false, 'no status');
  });

  it('an empty allowedUses means Workload and Tunnel, in IPAM and in the lab (the lab used to say "nothing")', async () => {
    const empty = ippool('pods', '10.244.0.0/16', { allowedUses: [] });
    assert.equal(poolAllows(empty, 'Workload'), true);
    assert.equal(poolAllows(empty, 'Tunnel'), true);
    // `egw lab up` creates the lab's pod pool only when no pool serves a node: a pool with allowedUses [] does
    const cfg = parseLabFile(readFileSync(new URL('../../examples/lab/demo.yaml', import.meta.url), 'utf8'), 'demo.yaml');
    const store = new MemoryStore();
    await store.create({ ...empty, metadata: { name: 'pods' } });
    const r = await writeClusterObjects(cfg, store, memoryLogger());
    assert.equal(r.poolCreated, false);
  });

  it('maxNextHops is 1–9 decimal digits (calc used to accept any number of digits)', () => {
    assert.equal(parseMaxNextHops('0'), 0);
    assert.equal(parseMaxNextHops('2'), 2);
    assert.equal(parseMaxNextHops('123456789'), 123456789);
    assert.equal(parseMaxNextHops('1234567890'), undefined);
    assert.equal(parseMaxNextHops('-1'), undefined);
    assert.equal(parseMaxNextHops('2.0'), undefined);
    assert.equal(parseMaxNextHops(''), undefined);
  });

  it('Go durations as Felix writes them', () => {
    assert.equal(parseGoDuration('200ms'), 200);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('10'), undefined);
  });
});
