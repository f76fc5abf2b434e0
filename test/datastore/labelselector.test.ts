import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { labelMatcher, parseLabelSelector } from '../../src/datastore/labelselector.js';
import { StoreError } from '../../src/datastore/types.js';

const L = { app: 'web', tier: 'gold', 'example.com/team': 'net', empty: '' };
const m = (sel: string, labels: Record<string, string> = L) => parseLabelSelector(sel).matches(labels);

describe('label selectors', () => {
  it('equality: =, == and !=', () => {
    assert.equal(m('app=web'), true);
    assert.equal(m('app==web'), true);
    assert.equal(m('app=db'), false);
    assert.equal(m('app!=db'), true);
    assert.equal(m('app!=web'), false);
    // != matches objects without the key, as in Kubernetes.
    assert.equal(m('zone!=a'), true);
    assert.equal(m('zone=a'), false);
  });

  it('existence: a and !a', () => {
    assert.equal(m('app'), true);
    assert.equal(m('zone'), false);
    assert.equal(m('!zone'), true);
    assert.equal(m('!app'), false);
    assert.equal(m('empty'), true);
  });

  it('set membership: in and notin', () => {
    assert.equal(m('tier in (gold,silver)'), true);
    assert.equal(m('tier in (silver)'), false);
    assert.equal(m('zone in (a,b)'), false);
    assert.equal(m('tier notin (silver, bronze)'), true);
    assert.equal(m('tier notin (gold)'), false);
    assert.equal(m('zone notin (a)'), true, 'notin matches a missing key');
    assert.equal(m('tier in(gold)'), true);
    assert.equal(m('  tier   in   (  gold  ,  x )  '), true);
  });

  it('comma means AND', () => {
    assert.equal(m('app=web,tier=gold'), true);
    assert.equal(m('app=web,tier=silver'), false);
    assert.equal(m('app, !zone, tier in (gold), example.com/team=net'), true);
    assert.equal(m('app, zone'), false);
  });

  it('empty values and prefixed keys', () => {
    assert.equal(m('empty='), true);
    assert.equal(m('empty=,app=web'), true);
    assert.equal(m('app='), false);
    assert.equal(m('example.com/team=net'), true);
    assert.equal(m('example.com/team!=net'), false);
  });

  it('the empty selector matches everything, including no labels', () => {
    assert.equal(m(''), true);
    assert.equal(m('   '), true);
    assert.equal(parseLabelSelector('').matches(undefined), true);
    assert.equal(parseLabelSelector('a').matches(undefined), false);
    assert.equal(parseLabelSelector('!a').matches(undefined), true);
  });

  it('exposes its requirements and a canonical string that round-trips', () => {
    const s = parseLabelSelector('b in (y, x), !c, a==1, d!=2, e');
    assert.deepEqual(s.requirements, [
      { key: 'b', op: 'in', values: ['x', 'y'] },
      { key: 'c', op: 'notexists' },
      { key: 'a', op: '=', value: '1' },
      { key: 'd', op: '!=', value: '2' },
      { key: 'e', op: 'exists' },
    ]);
    assert.equal(s.toString(), 'b in (x,y),!c,a=1,d!=2,e');
    assert.deepEqual(parseLabelSelector(s.toString()).requirements, s.requirements);
  });

  it('rejects bad syntax with StoreError Invalid and a useful message', () => {
    const bad: [string, RegExp][] = [
      ['a=b,', /trailing comma/],
      [',a', /expected a label key/],
      ['a in b', /expected '\('/],
      ['a in (b', /expected ',' or '\)'/],
      ['a in ()', /must not be empty/],
      ['a notin (,)', /expected a label value/],
      ['a b', /expected an operator/],
      ['a=b c', /expected ','/],
      ['a=(b)', /expected a label value/],
      ['!', /expected a label key/],
      ['!a=b', /expected ','/],
      ['a>1', /not supported/],
      ['-a=b', /label key "-a" is invalid/],
      ['a=-b', /label value "-b" is invalid/],
      ['Example.com/a=b', /invalid prefix/],
      [`${'x'.repeat(64)}=1`, /label key/],
      ['a=b=c', /expected ','/],
      ['in=b', /expected a label key/],
    ];
    for (const [sel, re] of bad) {
      assert.throws(
        () => parseLabelSelector(sel),
        (e: unknown) => e instanceof StoreError && e.code === 'Invalid' && re.test(e.message) && e.message.includes(JSON.stringify(sel)),
        `selector ${JSON.stringify(sel)} should fail matching ${re}`,
      );
    }
  });

  it('labelMatcher accepts a string, a predicate or nothing', () => {
    assert.equal(labelMatcher(undefined)(undefined), true);
    assert.equal(labelMatcher('app=web')(L), true);
    assert.equal(labelMatcher((l) => l.app === 'db')(L), false);
    assert.equal(labelMatcher((l) => Object.keys(l).length === 0)(undefined), true);
  });

  it('property: a selector built from requirements matches exactly when each requirement holds', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'x.io/d');
    const val: fc.Arbitrary<string> = fc.constantFrom('1', '2', '3');
    const req = fc.oneof(
      fc.record({ k: key, op: fc.constantFrom('=', '==', '!='), v: val }).map((r) => ({ s: `${r.k}${r.op}${r.v}`, f: (l: Record<string, string>) => (r.op === '!=' ? l[r.k] !== r.v : l[r.k] === r.v) })),
      key.map((k) => ({ s: k, f: (l: Record<string, string>) => k in l })),
      key.map((k) => ({ s: `!${k}`, f: (l: Record<string, string>) => !(k in l) })),
      fc.record({ k: key, op: fc.constantFrom('in', 'notin'), vs: fc.uniqueArray(val, { minLength: 1 }) }).map((r) => ({
        s: `${r.k} ${r.op} (${r.vs.join(', ')})`,
        f: (l: Record<string, string>) => (r.op === 'in' ? r.vs.includes(l[r.k]) : !r.vs.includes(l[r.k])),
      })),
    );
    const labels = fc.dictionary(key, val);
    fc.assert(
      fc.property(fc.array(req, { maxLength: 4 }), labels, (reqs, l) => {
        const sel = parseLabelSelector(reqs.map((r) => r.s).join(','));
        assert.equal(sel.matches(l), reqs.every((r) => r.f(l)));
        assert.equal(parseLabelSelector(sel.toString()).matches(l), sel.matches(l));
      }),
      { numRuns: 500 },
    );
  });
});
