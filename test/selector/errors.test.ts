// Selectors that do not parse: SelectorError with the exact column and what was expected.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalize, parseSelector, SelectorError } from '../../src/selector/index.js';
import { MAX_NESTING } from '../../src/selector/parser.js';

function errorOf(source: string): SelectorError {
  try {
    parseSelector(source);
  } catch (err) {
    assert.ok(err instanceof SelectorError, `expected SelectorError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(source)} not to parse`);
}

// [selector, column, a fragment the message must contain]
const cases: Array<[string, number, string]> = [
  // unknown operator
  ["egress-code = 'red'", 13, 'unexpected "=" at column 13; expected "==", "!=", "in", "not in", "contains", "starts with" or "ends with"'],
  ["a === 'b'", 5, 'unexpected "=" at column 5; expected a quoted string'],
  ["a <> 'b'", 3, 'unexpected "<" at column 3'],
  ["a notIn {'x'}", 3, 'unexpected "notIn" at column 3; expected "==", "!="'],
  ["a startsWith 'x'", 3, 'unexpected "startsWith" at column 3'],
  ["a notin 'x'", 9, 'unexpected string at column 9; expected "{"'],
  ["a endswith {'x'}", 12, 'unexpected "{" at column 12; expected a quoted string'],
  ["a !in {'x'}", 3, 'unexpected "!" at column 3'],
  ["a starts 'x'", 10, 'unexpected string at column 10; expected "with"'],
  ["a ends wiht 'x'", 8, 'unexpected "wiht" at column 8; expected "with"'],
  ["a not {'x'}", 7, 'unexpected "{" at column 7; expected "in"'],
  ['a', 2, 'unexpected end of selector at column 2; expected "==", "!="'],
  // unterminated string
  ["a == 'red", 6, "unterminated string at column 6; expected a closing '"],
  ['a == "red', 6, 'unterminated string at column 6; expected a closing "'],
  ["a == \"it's", 6, 'unterminated string at column 6'],
  ["a == 'x' && b == 'y", 18, 'unterminated string at column 18'],
  // value must be quoted
  ['a == red', 6, 'unexpected "red" at column 6; expected a quoted string'],
  ['a == 1', 6, 'unexpected "1" at column 6; expected a quoted string'],
  ['a ==', 5, 'unexpected end of selector at column 5; expected a quoted string'],
  // missing ")"
  ["(a == 'b'", 10, 'unexpected end of selector at column 10; expected "&&", "||" or ")"'],
  ["((a == 'b') && c == 'd'", 24, 'at column 24; expected "&&", "||" or ")"'],
  ["(a == 'b' c == 'd')", 11, 'unexpected "c" at column 11; expected "&&", "||" or ")"'],
  ['has(a', 6, 'unexpected end of selector at column 6; expected ")"'],
  ['has(a b)', 7, 'unexpected "b" at column 7; expected ")"'],
  ['all(', 5, 'expected ")"'],
  ['global(x)', 8, 'unexpected "x" at column 8; expected ")"'],
  // trailing garbage
  ["a == 'b' c", 10, 'unexpected "c" at column 10; expected "&&", "||" or the end of the selector'],
  ["a == 'b')", 9, 'unexpected ")" at column 9'],
  ["a == 'b' 'c'", 10, 'unexpected string at column 10'],
  ["a == 'b' & c == 'd'", 10, 'unexpected "&" at column 10'],
  ["a == 'b' | c == 'd'", 10, 'unexpected "|" at column 10'],
  ['all() all()', 7, 'unexpected "all" at column 7'],
  // empty operand
  ["a == 'b' &&", 12, 'unexpected end of selector at column 12; expected a label key, "!", "(", "has(", "all()" or "global()"'],
  ["a == 'b' || ", 13, 'unexpected end of selector at column 13; expected a label key'],
  ["&& a == 'b'", 1, 'unexpected "&&" at column 1; expected a label key'],
  ["a == 'b' && || c == 'd'", 13, 'unexpected "||" at column 13'],
  ["a == 'b' && != 'c'", 13, 'unexpected "!=" at column 13'],
  ['()', 2, 'unexpected ")" at column 2; expected a label key'],
  ['!', 2, 'unexpected end of selector at column 2'],
  ['has()', 5, 'unexpected ")" at column 5; expected a label key'],
  // bad label key
  ["-a == 'b'", 1, 'invalid label key "-a" at column 1; a label key starts with a letter, digit or "_"'],
  [".a == 'b'", 1, 'invalid label key ".a" at column 1'],
  ["/a == 'b'", 1, 'invalid label key "/a" at column 1'],
  ["a/b/c == 'x'", 4, 'invalid label key "a/b/c" at column 4; a label key has at most one "/"'],
  ["x == 'y' && a/ == 'x'", 14, 'invalid label key "a/" at column 14; a label name is needed after "/"'],
  ["example.com/-a == 'x'", 13, 'invalid label key "example.com/-a" at column 13'],
  ['has(-a)', 5, 'invalid label key "-a" at column 5'],
  ["a:b == 'x'", 2, 'unexpected ":" at column 2'],
  // Calico's limit on a label key: 512 bytes
  [`x == 'y' && ${'k'.repeat(513)} == 'v'`, 13, 'label key at column 13 is 513 bytes long; a label key is at most 512 bytes'],
  [`has(${'a/'}${'b'.repeat(511)})`, 5, 'is 513 bytes long'],
  ["é == 'x'", 1, 'unexpected "é" at column 1'],
  ["'a' == 'x'", 1, 'unexpected string at column 1; expected a label key'],
  // newline / control characters
  ["a == 'b'\n&& c == 'd'", 9, 'unexpected newline (U+000A) at column 9; a selector is one line and only space and tab count as whitespace'],
  ["a == 'b'\r\n", 9, 'carriage return (U+000D) at column 9'],
  ["a == 'b\nc'", 8, 'newline (U+000A) at column 8'],
  ["a\u0000== 'b'", 2, 'control character U+0000 at column 2'],
  // in without a set / unterminated set
  ["a in 'x'", 6, 'unexpected string at column 6; expected "{"'],
  ['a in', 5, 'unexpected end of selector at column 5; expected "{"'],
  ["a not in ('x')", 10, 'unexpected "(" at column 10; expected "{"'],
  ["a in {'x', 'y'", 15, 'unexpected end of selector at column 15; expected "," or "}"'],
  ["a in {'x' 'y'}", 11, 'unexpected string at column 11; expected "," or "}"'],
  ["a in {'x',}", 11, 'unexpected "}" at column 11; expected a quoted string'],
  ['a in {x}', 7, 'unexpected "x" at column 7; expected a quoted string or "}"'],
  ['a in {', 7, 'unexpected end of selector at column 7; expected a quoted string or "}"'],
  // columns count code points, not UTF-16 units
  ["a == '😀😀' b", 11, 'unexpected "b" at column 11'], // 13 in UTF-16 units
];

describe('selector errors', () => {
  for (const [source, column, fragment] of cases) {
    it(`${JSON.stringify(source)} fails at column ${column}`, () => {
      const err = errorOf(source);
      assert.equal(err.column, column);
      assert.equal(err.selector, source);
      assert.ok(err.reason.includes(fragment), `reason ${JSON.stringify(err.reason)} lacks ${JSON.stringify(fragment)}`);
      assert.ok(err.reason.includes(`column ${column}`), err.reason);
      assert.equal(err.message, `selector ${JSON.stringify(source)}: ${err.reason}`);
      assert.equal(err.name, 'SelectorError');
      assert.ok(err instanceof Error);
    });
  }

  it('the message matches the documented shape', () => {
    assert.throws(() => canonicalize("egress-code = 'red'"), {
      name: 'SelectorError',
      message:
        'selector "egress-code = \'red\'": unexpected "=" at column 13; expected "==", "!=", "in", "not in", "contains", "starts with" or "ends with"',
    });
  });

  it('deep nesting is an error, not a stack overflow', () => {
    const ok = `${'('.repeat(MAX_NESTING)}a == 'b'${')'.repeat(MAX_NESTING)}`;
    assert.equal(canonicalize(ok), 'a == "b"');
    const deep = `${'('.repeat(MAX_NESTING + 1)}a == 'b'${')'.repeat(MAX_NESTING + 1)}`;
    assert.equal(errorOf(deep).column, MAX_NESTING + 1);
    assert.equal(errorOf('!'.repeat(100_000)).column, MAX_NESTING + 1);
    assert.equal(errorOf('('.repeat(100_000)).column, MAX_NESTING + 1);
  });

  it('long && / || chains are not limited by nesting', () => {
    const chain = Array.from({ length: 5000 }, (_, i) => `k${i} == 'v'`).join(' && ');
    const sel = parseSelector(chain);
    assert.ok(sel.ast.type === 'and' && sel.ast.operands.length === 5000);
  });

  it('a non-string selector is a TypeError', () => {
    assert.throws(() => parseSelector(42 as unknown as string), TypeError);
  });
});
