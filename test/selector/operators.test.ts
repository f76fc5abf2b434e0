// Evaluation semantics: every operator true and false, missing labels, precedence, whitespace, keywords.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileClosures, compileCodegen } from '../../src/selector/compile.js';
import { compile, evaluateTree, parseSelector, SelectorError, type Labels } from '../../src/selector/index.js';

/**
 * Evaluates `selector` on `labels` through every path (Selector.matches, generated code, closures, tree walk),
 * asserts they agree, and returns the result.
 */
function match(selector: string, labels: Labels): boolean {
  const sel = parseSelector(selector);
  const viaMatches = sel.matches(labels);
  const ctx = `${selector} on ${JSON.stringify(labels)}`;
  assert.equal(evaluateTree(sel.ast, labels), viaMatches, `tree walk vs matches: ${ctx}`);
  assert.equal(compileCodegen(sel.ast)(labels), viaMatches, `codegen vs matches: ${ctx}`);
  assert.equal(compileClosures(sel.ast)(labels), viaMatches, `closures vs matches: ${ctx}`);
  assert.equal(compile(sel.ast)(labels), viaMatches, `compile vs matches: ${ctx}`);
  return viaMatches;
}

const red = { 'egress-code': 'red', tier: 'frontend', 'projectcalico.org/name': 'ns-1' };

describe('operators', () => {
  it('== matches an equal value only (case-sensitive)', () => {
    assert.equal(match("egress-code == 'red'", red), true);
    assert.equal(match('egress-code == "red"', red), true);
    assert.equal(match("egress-code == 'blue'", red), false);
    assert.equal(match("egress-code == 'Red'", red), false);
    assert.equal(match("egress-code == ''", { 'egress-code': '' }), true);
    assert.equal(match("egress-code == ''", red), false);
  });

  it('!= matches a different value', () => {
    assert.equal(match("egress-code != 'blue'", red), true);
    assert.equal(match("egress-code != 'red'", red), false);
    assert.equal(match("egress-code != 'RED'", red), true);
  });

  it('has() matches a present label, whatever its value', () => {
    assert.equal(match('has(tier)', red), true);
    assert.equal(match('has(projectcalico.org/name)', red), true);
    assert.equal(match('has(zone)', red), false);
    assert.equal(match('has(empty)', { empty: '' }), true);
  });

  it('!has() matches an absent label', () => {
    assert.equal(match('!has(zone)', red), true);
    assert.equal(match('!has(tier)', red), false);
  });

  it('in matches a value in the set', () => {
    assert.equal(match("tier in {'frontend', 'backend'}", red), true);
    assert.equal(match("tier in {'backend', 'db'}", red), false);
    assert.equal(match("tier in {'frontend'}", red), true);
    assert.equal(match('tier in {}', red), false);
    // a large set (compiled with a Set rather than inline comparisons)
    const big = `tier in {${Array.from({ length: 20 }, (_, i) => `'t${i}'`).join(', ')}}`;
    assert.equal(match(big, { tier: 't13' }), true);
    assert.equal(match(big, { tier: 't20' }), false);
  });

  it('not in matches a value outside the set', () => {
    assert.equal(match("tier not in {'backend', 'db'}", red), true);
    assert.equal(match("tier not in {'frontend', 'db'}", red), false);
    assert.equal(match('tier not in {}', red), true);
    const big = `tier not in {${Array.from({ length: 20 }, (_, i) => `'t${i}'`).join(', ')}}`;
    assert.equal(match(big, { tier: 't13' }), false);
    assert.equal(match(big, { tier: 'x' }), true);
  });

  it('contains / starts with / ends with', () => {
    assert.equal(match("tier contains 'ont'", red), true);
    assert.equal(match("tier contains 'back'", red), false);
    assert.equal(match("tier contains ''", red), true);
    assert.equal(match("tier starts with 'front'", red), true);
    assert.equal(match("tier starts with 'end'", red), false);
    assert.equal(match("tier starts with ''", red), true);
    assert.equal(match("tier ends with 'end'", red), true);
    assert.equal(match("tier ends with 'front'", red), false);
    assert.equal(match("tier ends with ''", red), true);
    assert.equal(match("tier contains 'FRONT'", red), false);
  });

  it('the joined spellings startswith / endswith / notin match like the spaced ones (Calico)', () => {
    assert.equal(match("tier startswith 'front'", red), true);
    assert.equal(match("tier startswith 'end'", red), false);
    assert.equal(match("tier endswith 'end'", red), true);
    assert.equal(match("tier endswith 'front'", red), false);
    assert.equal(match("tier notin {'frontend'}", red), false);
    assert.equal(match("tier notin {'db'}", red), true);
    // missing label: notin matches, startswith/endswith do not
    assert.equal(match("missing notin {'x'}", red), true);
    assert.equal(match("missing startswith ''", red), false);
    assert.equal(match("missing endswith ''", red), false);
  });

  it('all() and global() match everything, including no labels', () => {
    assert.equal(match('all()', red), true);
    assert.equal(match('all()', {}), true);
    assert.equal(match('global()', {}), true);
    assert.equal(match('!all()', red), false);
    assert.equal(match('!global()', {}), false);
  });

  it('an empty or all-whitespace selector is all()', () => {
    for (const s of ['', ' ', '\t', ' \t  ']) {
      assert.equal(parseSelector(s).canonical, 'all()');
      assert.equal(match(s, {}), true);
      assert.equal(match(s, red), true);
    }
  });
});

describe('missing labels', () => {
  const none = {};
  const other = { unrelated: 'x' };
  for (const labels of [none, other]) {
    const name = JSON.stringify(labels);
    it(`!= and not in match a missing label (${name})`, () => {
      assert.equal(match("k != 'v'", labels), true);
      assert.equal(match("k not in {'v'}", labels), true);
      assert.equal(match("k not in {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}", labels), true);
      assert.equal(match('k not in {}', labels), true);
      assert.equal(match('!has(k)', labels), true);
    });
    it(`==, in, contains, starts with, ends with and has do not (${name})`, () => {
      assert.equal(match("k == 'v'", labels), false);
      assert.equal(match("k == ''", labels), false);
      assert.equal(match("k in {'v', ''}", labels), false);
      assert.equal(match("k in {'a', 'b', 'c', 'd', 'e', 'f', 'g', ''}", labels), false);
      assert.equal(match("k contains ''", labels), false);
      assert.equal(match("k contains 'v'", labels), false);
      assert.equal(match("k starts with ''", labels), false);
      assert.equal(match("k starts with 'v'", labels), false);
      assert.equal(match("k ends with ''", labels), false);
      assert.equal(match("k ends with 'v'", labels), false);
      assert.equal(match('has(k)', labels), false);
    });
  }

  it('keys that a plain object inherits (constructor, toString, __proto__) are missing labels', () => {
    for (const key of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      assert.equal(match(`has(${key})`, {}), false, key);
      assert.equal(match(`${key} != 'x'`, {}), true, key);
      assert.equal(match(`${key} not in {'a', 'b'}`, {}), true, key);
      assert.equal(match(`${key} contains ''`, {}), false, key);
    }
    // ...but an own label of that name (as JSON.parse makes) is present.
    const own = JSON.parse('{"__proto__": "x", "constructor": "y"}') as Labels;
    assert.equal(match("__proto__ == 'x'", own), true);
    assert.equal(match("constructor in {'y', 'z'}", own), true);
    assert.equal(match('has(__proto__)', own), true);
    // null-prototype label objects work too
    const bare = Object.assign(Object.create(null) as Record<string, string>, { a: 'b' });
    assert.equal(match("a == 'b' && !has(toString)", bare), true);
  });
});

describe('boolean structure', () => {
  const l = { a: '1', b: '2', c: '3' };
  it('&& needs both, || needs either', () => {
    assert.equal(match("a == '1' && b == '2'", l), true);
    assert.equal(match("a == '1' && b == 'x'", l), false);
    assert.equal(match("a == 'x' && b == '2'", l), false);
    assert.equal(match("a == '1' || b == 'x'", l), true);
    assert.equal(match("a == 'x' || b == '2'", l), true);
    assert.equal(match("a == 'x' || b == 'x'", l), false);
    assert.equal(match("a == '1' && b == '2' && c == '3'", l), true);
    assert.equal(match("a == '1' && b == '2' && c == 'x'", l), false);
    assert.equal(match("a == 'x' || b == 'x' || c == '3'", l), true);
  });

  it('! negates the operand next to it', () => {
    assert.equal(match("!a == '1'", l), false);
    assert.equal(match("!a == 'x'", l), true);
    assert.equal(match("!!a == '1'", l), true);
    assert.equal(match("!(a == '1' && b == 'x')", l), true);
  });

  it('&& binds tighter than ||', () => {
    // a || (b && c): true because a holds, although b && c does not.
    assert.equal(match("a == '1' || b == 'x' && c == 'x'", l), true);
    // (a || b) && c would be false here; a || (b && c) is false too, so use a case that tells them apart:
    assert.equal(match("a == 'x' || b == '2' && c == '3'", l), true);
    assert.equal(match("a == '1' || b == '2' && c == 'x'", l), true); // (a||b)&&c would be false
    assert.equal(match("(a == '1' || b == '2') && c == 'x'", l), false);
    assert.equal(match("b == 'x' && c == 'x' || a == '1'", l), true);
  });

  it('! binds tighter than && and ||', () => {
    // !a && b  =  (!a) && b
    assert.equal(match("!a == 'x' && b == '2'", l), true);
    assert.equal(match("!a == '1' && b == 'x'", l), false);
    assert.equal(match("!a == '1' || b == '2'", l), true); // (!a) || b; !(a || b) would be false
    assert.equal(parseSelector("!a == '1' || b == '2'").canonical, '(!a == "1" || b == "2")');
  });

  it('parentheses group', () => {
    assert.equal(match("!(a == '1' || b == '2')", l), false);
    assert.equal(match("((a == '1'))", l), true);
    assert.equal(match("(a == 'x' || (b == '2' && (c == '3')))", l), true);
  });
});

describe('whitespace and keywords', () => {
  const l = { a: 'x', 'b.c/d-e': 'y' };
  it('space and tab are whitespace anywhere between tokens, and none is needed around symbols', () => {
    assert.equal(match("\ta\t==\t'x'\t", l), true);
    assert.equal(match("a=='x'&&b.c/d-e=='y'", l), true);
    assert.equal(match("a=='x'||!has(zz)", l), true);
    assert.equal(match("has ( a )", l), true);
    assert.equal(match("all ( )", l), true);
    assert.equal(match("a  not \t in {'y'}", l), true);
    assert.equal(match("a starts\twith 'x'", l), true);
    assert.equal(match("a in{'x','z'}", l), true);
    assert.equal(match("a in {  }", l), false);
    assert.equal(match("! ( a == 'x' )", l), false);
  });

  it('tab inside a string is part of the value', () => {
    assert.equal(match("a == 'x\ty'", { a: 'x\ty' }), true);
    assert.equal(match("a == 'x\ty'", { a: 'x y' }), false);
  });

  for (const [name, ch] of [['newline', '\n'], ['CR', '\r'], ['NUL', '\0'], ['vertical tab', '\v'], ['form feed', '\f'], ['DEL', '\x7f'], ['NEL', '\u0085'], ['line separator', '\u2028']] as const) {
    it(`${name} is an error, between tokens or inside a string`, () => {
      assert.throws(() => parseSelector(`a == 'x'${ch}&& has(b)`), (e: unknown) => e instanceof SelectorError && e.column === 9);
      assert.throws(() => parseSelector(`a == 'x${ch}'`), (e: unknown) => e instanceof SelectorError && e.column === 8);
      assert.throws(() => parseSelector(ch), (e: unknown) => e instanceof SelectorError && e.column === 1);
    });
  }

  it('non-breaking space is not whitespace', () => {
    assert.throws(() => parseSelector("a ==\u00a0'x'"), (e: unknown) => e instanceof SelectorError && e.column === 5);
  });

  it('keywords are lower-case and case-sensitive', () => {
    for (const s of ["a IN {'x'}", "a Not in {'x'}", "a not IN {'x'}", "a CONTAINS 'x'", "a Starts with 'x'", "a starts With 'x'", "a ENDS with 'x'", 'HAS(a)', 'All()', 'GLOBAL()']) {
      assert.throws(() => parseSelector(s), SelectorError, s);
    }
  });

  it('has, all, global, in, not are usable as label keys when not called', () => {
    assert.equal(match("has == 'x'", { has: 'x' }), true);
    assert.equal(match("all != 'x'", { all: 'y' }), true);
    assert.equal(match("global in {'g'}", { global: 'g' }), true);
    assert.equal(match("in in {'x'}", { in: 'x' }), true);
    assert.equal(match("not not in {'x'}", { not: 'y' }), true);
    assert.equal(match('has(has)', { has: '' }), true);
  });

  it('label keys: Kubernetes-style prefixes and names', () => {
    const labels = { 'app.kubernetes.io/part-of': 'shop', 'projectcalico.org/name': 'ns', egress_code: 'r', '9lives': 'y', _x: 'z' };
    assert.equal(match("app.kubernetes.io/part-of == 'shop'", labels), true);
    assert.equal(match("projectcalico.org/name == 'ns'", labels), true);
    assert.equal(match("egress_code == 'r' && 9lives == 'y' && _x == 'z'", labels), true);
    assert.equal(match("a.b-c_d == 'v'", { 'a.b-c_d': 'v' }), true);
  });

  it('strings: either quote, no escapes, the other quote inside', () => {
    assert.equal(match(`a == 'say "hi"'`, { a: 'say "hi"' }), true);
    assert.equal(match(`a == "it's"`, { a: "it's" }), true);
    assert.equal(match(`a == 'back\\slash'`, { a: 'back\\slash' }), true);
    assert.equal(match(`a == 'ünïcødé 😀'`, { a: 'ünïcødé 😀' }), true);
    assert.equal(match(`a == '&& || ( ) !'`, { a: '&& || ( ) !' }), true);
  });
});

describe('compiled code safety', () => {
  it('hostile values and keys are data, never code', () => {
    const hostile = [
      `"); throw new Error("pwned"); ("`,
      `'); globalThis.pwned = 1; ('`,
      '${globalThis.pwned = 1}',
      '`; globalThis.pwned = 1; `',
      '\\"; globalThis.pwned = 1; //',
      '</script><script>',
      '\\u0022',
      '\\',
    ];
    for (const value of hostile) {
      const quoteChar = value.includes('"') ? "'" : '"';
      if (value.includes(quoteChar)) continue;
      const lit = `${quoteChar}${value}${quoteChar}`;
      for (const src of [`k == ${lit}`, `k != ${lit}`, `k in {${lit}, 'a', 'b', 'c', 'd', 'e', 'f', 'g'}`, `k contains ${lit}`, `k starts with ${lit}`, `k ends with ${lit}`]) {
        assert.equal(match(src, { k: value }), !src.includes('!='), src);
        assert.equal(match(src, { k: 'other' }), src.includes('!='), src);
      }
    }
    assert.equal((globalThis as { pwned?: unknown }).pwned, undefined);
  });

  it('malformed hand-built ASTs are rejected, not compiled', () => {
    const bad = [
      { type: 'eq', key: 'a', value: 1 },
      { type: 'eq', key: { toString: () => 'x' }, value: 'v' },
      { type: 'in', key: 'a', values: ['x', 2] },
      { type: 'bogus' },
    ] as unknown as Parameters<typeof compile>[0][];
    for (const node of bad) {
      assert.throws(() => compileCodegen(node), TypeError, JSON.stringify(node));
      assert.throws(() => compileClosures(node), TypeError, JSON.stringify(node));
    }
    assert.throws(() => evaluateTree(bad[3], {}), TypeError);
  });

  it('without code generation from strings, compile falls back to closures', async () => {
    const { execFileSync } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const index = fileURLToPath(new URL('../../src/selector/index.ts', import.meta.url));
    const script = `
      import { parseSelector } from ${JSON.stringify(index)};
      let evalWorks = true;
      try { new Function('return 1'); } catch { evalWorks = false; }
      const s = parseSelector("a in {'x','y'} && !has(b) && c starts with 'p'");
      console.log(JSON.stringify([evalWorks, s.matches({ a: 'x', c: 'pq' }), s.matches({ a: 'x', b: '', c: 'pq' }), s.matches({ a: 'z', c: 'pq' })]));
    `;
    const out = execFileSync(process.execPath, ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    assert.deepEqual(JSON.parse(out), [false, true, false, false]);
  });
});
