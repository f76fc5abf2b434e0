// Canonical form of every construct. Calico's selector syntax (including the joined spellings startswith, endswith and
// notin): https://docs.tigera.io/calico/latest/reference/resources/networkpolicy#selectors
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalize, parseSelector, printSelector, referencedKeys, type SelectorNode } from '../../src/selector/index.js';

const cases: Array<[string, string]> = [
  // comparisons
  ["a == 'v'", 'a == "v"'],
  ['a=="v"', 'a == "v"'],
  ["a != 'v'", 'a != "v"'],
  ["a contains 's'", 'a contains "s"'],
  ["a starts with 's'", 'a starts with "s"'],
  ["a\tends   with\t's'", 'a ends with "s"'],
  // Calico's joined spellings mean the same; the canonical form is spaced
  ["a startswith 'x'", 'a starts with "x"'],
  ["a endswith'x'", 'a ends with "x"'],
  ["a notin {'b'}", 'a not in {"b"}'],
  ["a notin{'c','b'} && b startswith \"p\"", '(a not in {"b", "c"} && b starts with "p")'],
  // a label key of 512 bytes is Calico's maximum and allowed
  [`${'k'.repeat(512)} == 'v'`, `${'k'.repeat(512)} == "v"`],
  ['has(a)', 'has(a)'],
  ['has( projectcalico.org/name )', 'has(projectcalico.org/name)'],
  ['!has(a)', '!has(a)'],
  ['! has(a)', '!has(a)'],
  ['all()', 'all()'],
  ['all ( )', 'all()'],
  ['global()', 'global()'],
  ['', 'all()'],
  ['   \t ', 'all()'],
  // sets: sorted by code unit, de-duplicated, ", "-joined, quotes chosen per member
  ["k in {'b','a'}", 'k in {"a", "b"}'],
  ["k in {'b', 'a', 'b', 'a'}", 'k in {"a", "b"}'],
  ["k not in {'z','Z','a','10','9', ''}", 'k not in {"", "10", "9", "Z", "a", "z"}'],
  ['k in {}', 'k in {}'],
  ['k not in { }', 'k not in {}'],
  [`k in {'x"y', "plain", "it's"}`, `k in {"it's", "plain", 'x"y'}`],
  ["k in {'é', 'e', 'z', '😀', '\uffff'}", 'k in {"e", "z", "é", "😀", "\uffff"}'],
  // quote choice
  [`a == "it's"`, `a == "it's"`],
  [`a == 'say "hi"'`, `a == 'say "hi"'`],
  [`a == ''`, `a == ""`],
  [`a contains '"'`, `a contains '"'`],
  // negation: "!" + canonical operand
  ["!a == 'b'", '!a == "b"'],
  ["!(a == 'b')", '!a == "b"'],
  ["!!a == 'b'", '!!a == "b"'],
  ["!(a == 'b' && c == 'd')", '!(a == "b" && c == "d")'],
  ["!(a == 'b' || c == 'd')", '!(a == "b" || c == "d")'],
  ["!k in {'y','x'}", '!k in {"x", "y"}'],
  // && / || always parenthesised, chains flattened, redundant parentheses dropped
  ["a == '1' && b == '2'", '(a == "1" && b == "2")'],
  ["a == '1' || b == '2'", '(a == "1" || b == "2")'],
  ["a == '1' && b == '2' && c == '3'", '(a == "1" && b == "2" && c == "3")'],
  ["a == '1' || b == '2' || c == '3' || d == '4'", '(a == "1" || b == "2" || c == "3" || d == "4")'],
  ["a == '1' || b == '2' && c == '3'", '(a == "1" || (b == "2" && c == "3"))'],
  ["a == '1' && b == '2' || c == '3'", '((a == "1" && b == "2") || c == "3")'],
  ["(a == '1' || b == '2') && c == '3'", '((a == "1" || b == "2") && c == "3")'],
  ["((a == '1'))", 'a == "1"'],
  ["(((has(a))))", 'has(a)'],
  ["(a == '1' && b == '2') && c == '3'", '(a == "1" && b == "2" && c == "3")'],
  ["a == '1' && (b == '2' && (c == '3' && d == '4'))", '(a == "1" && b == "2" && c == "3" && d == "4")'],
  ["a == '1' || (b == '2' || c == '3')", '(a == "1" || b == "2" || c == "3")'],
  ["a == '1' && (b == '2' || c == '3') && d == '4'", '(a == "1" && (b == "2" || c == "3") && d == "4")'],
  ["!(a == '1' && b == '2') && !(c == '3' || d == '4')", '(!(a == "1" && b == "2") && !(c == "3" || d == "4"))'],
  [
    "egress-code == 'red' && has(projectcalico.org/name) && tier in {'web','api'} || all()",
    '((egress-code == "red" && has(projectcalico.org/name) && tier in {"api", "web"}) || all())',
  ],
];

describe('canonical form', () => {
  for (const [source, expected] of cases) {
    it(`${JSON.stringify(source)} → ${expected}`, () => {
      assert.equal(canonicalize(source), expected);
      // fixed point
      assert.equal(canonicalize(expected), expected);
    });
  }

  it('Selector keeps the source and exposes the normalised, frozen AST', () => {
    const sel = parseSelector("(a == '1' && b == '2') && k in {'y','x','y'}");
    assert.equal(sel.source, "(a == '1' && b == '2') && k in {'y','x','y'}");
    assert.deepEqual(sel.ast, {
      type: 'and',
      operands: [
        { type: 'eq', key: 'a', value: '1' },
        { type: 'eq', key: 'b', value: '2' },
        { type: 'in', key: 'k', values: ['x', 'y'] },
      ],
    });
    assert.ok(Object.isFrozen(sel));
    assert.ok(Object.isFrozen(sel.ast));
    assert.ok(sel.ast.type === 'and' && Object.isFrozen(sel.ast.operands) && Object.isFrozen(sel.ast.operands[2]));
    assert.deepEqual(referencedKeys(sel.ast), ['a', 'b', 'k']);
  });

  it('parseSelector caches by source text', () => {
    assert.equal(parseSelector("cached == 'yes'"), parseSelector("cached == 'yes'"));
    assert.notEqual(parseSelector("cached == 'yes'"), parseSelector('cached == "yes"'));
  });

  it('matches is usable detached from the Selector', () => {
    const { matches } = parseSelector("a == 'b'");
    assert.equal(matches({ a: 'b' }), true);
    assert.equal(matches({ a: 'c' }), false);
  });

  it('printSelector normalises hand-built ASTs', () => {
    const eq = (key: string, value: string): SelectorNode => ({ type: 'eq', key, value });
    const ast: SelectorNode = {
      type: 'or',
      operands: [
        { type: 'or', operands: [eq('a', '1'), { type: 'and', operands: [eq('b', '2')] }] },
        { type: 'notIn', key: 'k', values: ['b', 'a', 'b'] },
      ],
    };
    assert.equal(printSelector(ast), '(a == "1" || b == "2" || k not in {"a", "b"})');
    assert.equal(printSelector({ type: 'and', operands: [] }), 'all()');
    assert.equal(printSelector({ type: 'or', operands: [] }), '!all()');
    assert.throws(() => printSelector(eq('bad key', 'x')), TypeError);
    assert.throws(() => printSelector(eq('k'.repeat(513), 'x')), TypeError);
    assert.equal(printSelector(eq('k'.repeat(512), 'x')), `${'k'.repeat(512)} == "x"`);
    assert.throws(() => printSelector(eq('a', `both ' and "`)), TypeError);
    assert.throws(() => printSelector(eq('a', 'line\nbreak')), TypeError);
  });
});
