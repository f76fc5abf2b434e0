// Smoke test for the selector benchmark: small inputs, the documented result shape.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { benchSelectors } from '../../bench/selector.js';

it('benchSelectors returns JSON-able results with both rates', async () => {
  const r = await benchSelectors({ selectors: 20, labelSets: 50, rounds: 3, warmupRounds: 1 });
  assert.equal(r.selectors, 20);
  assert.equal(r.labelSets, 50);
  for (const field of ['compiledMatchesPerSec', 'treeWalkMatchesPerSec', 'speedup']) {
    assert.equal(typeof r[field], 'number', field);
    assert.ok((r[field] as number) > 0, field);
  }
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
});
