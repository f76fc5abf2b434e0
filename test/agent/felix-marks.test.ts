// Coexisting with Felix (docs/kubernetes.md): egw's default mark mask lies outside Felix's and kube-proxy's bits, and
// the agent refuses to start with a mask that overlaps a FelixConfiguration's iptablesMarkMask/nftablesMarkMask.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_STICKY_MARK_MASK, FELIX_DEFAULT_MARK_MASK, KUBE_PROXY_MARKS } from '../../src/dataplane/types.js';
import { markMaskConflict, stickyConfig } from '../../src/dataplane/sticky.js';
import { checkFelixMarks } from '../../src/agent/agent.js';
import { openStore } from '../../src/datastore/open.js';
import { runCli, spawnEgw } from '../helpers/cli.js';

describe('mark masks beside Felix', () => {
  test('the default mask shares no bit with Felix\'s default or kube-proxy\'s marks, and still holds 255 gateways', () => {
    assert.equal(DEFAULT_STICKY_MARK_MASK & FELIX_DEFAULT_MARK_MASK, 0);
    assert.equal(DEFAULT_STICKY_MARK_MASK & KUBE_PROXY_MARKS, 0);
    assert.equal(stickyConfig().capacity, 255);
    assert.equal(markMaskConflict(DEFAULT_STICKY_MARK_MASK, [{ name: 'default', spec: {} }]), undefined);
  });
  test('an overlap with an absent field (Felix\'s default), a number or a hex string is named', () => {
    assert.match(markMaskConflict(0x0ff00000, [{ name: 'default', spec: {} }])!, /overlaps FelixConfiguration default's iptablesMarkMask 0xffff0000 \(Felix's default\) in bits 0x0ff00000/);
    assert.match(markMaskConflict(0x3fc0, [{ name: 'default', spec: { iptablesMarkMask: 0xffff0000, nftablesMarkMask: '0x00000f00' } }])!, /nftablesMarkMask 0x00000f00 in bits 0x00000f00/);
    assert.equal(markMaskConflict(0x0ff00000, [{ name: 'default', spec: { iptablesMarkMask: 0xf0000000, nftablesMarkMask: 0xf0000000 } }]), undefined);
    assert.equal(markMaskConflict(0x0ff00000, []), undefined, 'no FelixConfiguration: no Felix to collide with');
    assert.throws(() => markMaskConflict(0x3fc0, [{ name: 'default', spec: { iptablesMarkMask: 'lots' } }]), /FelixConfiguration default: spec.iptablesMarkMask "lots" is not a 32-bit mask/);
  });
  test('checkFelixMarks reads default and node.<node> from the store', async () => {
    const store = await openStore('memory:');
    try {
      await checkFelixMarks({ store, node: 'n1' });
      await store.create({ apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'node.n1' }, spec: { nftablesMarkMask: 0x3000 } } as never);
      await assert.rejects(checkFelixMarks({ store, node: 'n1' }), /agent n1: refusing to start: sticky mark mask 0x00003fc0 overlaps FelixConfiguration node\.n1's nftablesMarkMask/);
      await checkFelixMarks({ store, node: 'n2' });
      await checkFelixMarks({ store, node: 'n1', stickyMarkMask: 0x0c00 }); // beside node.n1's 0x3000 and the default's 0xffff0000
    } finally {
      await store.close();
    }
  });
  test('egw agent refuses to start, with a clear error and exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-felix-'));
    try {
      const ds = `sqlite:${join(dir, 'egw.db')}`;
      writeFileSync(join(dir, 'felix.yaml'), 'apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  egressIPSupport: EnabledPerNamespace\n');
      const applied = await runCli(['--datastore', ds, 'apply', '-f', join(dir, 'felix.yaml')]);
      assert.equal(applied.code, 0, applied.stderr);
      const r = await spawnEgw(['--datastore', ds, 'agent', '--node', 'n1', '--sticky-mark-mask', '0x0ff00000', '--no-metrics']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /refusing to start: sticky mark mask 0x0ff00000 overlaps FelixConfiguration default's iptablesMarkMask 0xffff0000/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
