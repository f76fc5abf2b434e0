// Property tests (fast-check): canonical form is a fixed point; the compiled matcher agrees with the tree walk.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileClosures, compileCodegen } from '../../src/selector/compile.js';
import {
  canonicalize,
  compile,
  evaluateTree,
  parseSelector,
  printSelector,
  SelectorError,
  type Labels,
  type SelectorNode,
} from '../../src/selector/index.js';

const RUNS = 1000;

// ---- arbitraries ----

const KEYS = ['a', 'b', 'tier', 'egress-code', 'projectcalico.org/name', 'app.kubernetes.io/part-of', 'has', 'in', 'all', 'not', '_x', '9', 'constructor', '__proto__', 'toString'];
const keyArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KEYS) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}(\/[A-Za-z0-9_][A-Za-z0-9_.-]{0,8})?$/) },
);

const VALUES = ['', 'x', 'y', 'red', 'Red', 'fr', 'frontend', 'end', 'a"b', "it's", 'é', '😀', 'x\ty', ' ', '&& ||', '{}', '(', 'in'];
// Free-form values: any printable characters, but not both quote kinds (no selector can hold such a value).
const VALUE_CHARS = ['a', 'b', 'x', 'Z', '0', ' ', '\t', '"', "'", '{', '}', ',', '(', ')', '!', '&', '|', '=', 'é', '😀', '\uffff', '\\'];
const valueArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...VALUES) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.constantFrom(...VALUE_CHARS), { maxLength: 6 })
      .map((cs) => cs.join(''))
      .map((s) => (s.includes('"') ? s.replaceAll("'", '') : s)),
  },
);

const leafArb: fc.Arbitrary<SelectorNode> = fc.oneof(
  fc.constant<SelectorNode>({ type: 'all' }),
  fc.constant<SelectorNode>({ type: 'global' }),
  keyArb.map((key): SelectorNode => ({ type: 'has', key })),
  fc.record({ key: keyArb, value: valueArb }).map((r): SelectorNode => ({ type: 'eq', ...r })),
  fc.record({ key: keyArb, value: valueArb }).map((r): SelectorNode => ({ type: 'neq', ...r })),
  fc.record({ key: keyArb, values: fc.array(valueArb, { maxLength: 9 }) }).map((r): SelectorNode => ({ type: 'in', ...r })),
  fc.record({ key: keyArb, values: fc.array(valueArb, { maxLength: 9 }) }).map((r): SelectorNode => ({ type: 'notIn', ...r })),
  fc.record({ key: keyArb, value: valueArb }).map((r): SelectorNode => ({ type: 'contains', ...r })),
  fc.record({ key: keyArb, value: valueArb }).map((r): SelectorNode => ({ type: 'startsWith', ...r })),
  fc.record({ key: keyArb, value: valueArb }).map((r): SelectorNode => ({ type: 'endsWith', ...r })),
);

const { node: astArb } = fc.letrec<{ node: SelectorNode }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 5, depthSize: 'small', withCrossShrink: true },
    leafArb,
    tie('node').map((operand): SelectorNode => ({ type: 'not', operand })),
    fc.array(tie('node'), { minLength: 2, maxLength: 4 }).map((operands): SelectorNode => ({ type: 'and', operands })),
    fc.array(tie('node'), { minLength: 2, maxLength: 4 }).map((operands): SelectorNode => ({ type: 'or', operands })),
  ),
}));

const labelsArb: fc.Arbitrary<Labels> = fc
  .array(fc.tuple(keyArb, valueArb), { maxLength: 8 })
  .map((entries) => Object.fromEntries(entries) as Labels);

// ---- a "noisy" printer: some random source text that means the given AST ----

function noisyPrint(ast: SelectorNode, seed: number): string {
  let s = seed >>> 0 || 1;
  const rnd = (n: number): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
  const ws = (): string => ['', '', ' ', '\t', '  '][rnd(5)];
  const ws1 = (): string => [' ', '\t', ' \t '][rnd(3)];
  const q = (v: string): string => (v.includes('"') ? `'${v}'` : v.includes("'") ? `"${v}"` : rnd(2) ? `'${v}'` : `"${v}"`);
  const set = (values: readonly string[]): string => {
    const vs = [...values];
    if (vs.length > 0 && rnd(3) === 0) vs.push(vs[rnd(vs.length)]); // a duplicate
    for (let i = vs.length - 1; i > 0; i--) {
      const j = rnd(i + 1);
      [vs[i], vs[j]] = [vs[j], vs[i]];
    }
    return `{${ws()}${vs.map(q).join(`${ws()},${ws()}`)}${ws()}}`;
  };
  const paren = (text: string): string => `(${ws()}${text}${ws()})`;
  const maybeParen = (text: string): string => (rnd(4) === 0 ? paren(text) : text);
  const p = (n: SelectorNode): string => {
    switch (n.type) {
      case 'all':
        return `all${ws()}(${ws()})`;
      case 'global':
        return `global${ws()}(${ws()})`;
      case 'has':
        return `has${ws()}(${ws()}${n.key}${ws()})`;
      case 'eq':
        return `${n.key}${ws()}==${ws()}${q(n.value)}`;
      case 'neq':
        return `${n.key}${ws()}!=${ws()}${q(n.value)}`;
      case 'in':
        return `${n.key}${ws1()}in${ws()}${set(n.values)}`;
      case 'notIn':
        return `${n.key}${ws1()}not${ws1()}in${ws()}${set(n.values)}`;
      case 'contains':
        return `${n.key}${ws1()}contains${ws()}${q(n.value)}`;
      case 'startsWith':
        return `${n.key}${ws1()}starts${ws1()}with${ws()}${q(n.value)}`;
      case 'endsWith':
        return `${n.key}${ws1()}ends${ws1()}with${ws()}${q(n.value)}`;
      case 'not': {
        const inner = p(n.operand);
        const needsParens = n.operand.type === 'and' || n.operand.type === 'or';
        return `!${ws()}${needsParens ? paren(inner) : maybeParen(inner)}`;
      }
      case 'and':
        // an `or` operand must be parenthesised; anything else may be
        return n.operands.map((o) => (o.type === 'or' ? paren(p(o)) : maybeParen(p(o)))).join(`${ws()}&&${ws()}`);
      case 'or':
        return n.operands.map((o) => maybeParen(p(o))).join(`${ws()}||${ws()}`);
    }
  };
  return `${ws()}${maybeParen(p(ast))}${ws()}`;
}

// ---- properties ----

describe('properties', () => {
  it('canonical form is a fixed point, and any spelling of an AST has the canonical form of that AST', () => {
    fc.assert(
      fc.property(astArb, fc.integer(), (ast, seed) => {
        const canonical = printSelector(ast);
        assert.equal(canonicalize(canonical), canonical);
        assert.equal(parseSelector(parseSelector(canonical).canonical).canonical, canonical);
        const noisy = noisyPrint(ast, seed);
        assert.equal(canonicalize(noisy), canonical, `noisy spelling: ${JSON.stringify(noisy)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('compile(ast)(labels) === evaluateTree(ast, labels), for hand-built and parsed ASTs', () => {
    fc.assert(
      fc.property(astArb, fc.array(labelsArb, { minLength: 1, maxLength: 6 }), (ast, labelSets) => {
        const parsed = parseSelector(printSelector(ast)).ast;
        const compiled = compile(parsed);
        const codegen = compileCodegen(ast);
        const closures = compileClosures(ast);
        for (const labels of labelSets) {
          const expected = evaluateTree(ast, labels);
          assert.equal(evaluateTree(parsed, labels), expected, 'parsing keeps the meaning');
          assert.equal(compiled(labels), expected, 'compile(parsed)');
          assert.equal(codegen(labels), expected, 'codegen(hand-built)');
          assert.equal(closures(labels), expected, 'closures(hand-built)');
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('labels that the selector itself mentions: compiled and tree walk agree (dense hits)', () => {
    // Label sets built from the AST's own keys and values, so that ==, in, starts with… actually hit.
    const pairs = (n: SelectorNode, out: Array<[string, string]>): Array<[string, string]> => {
      switch (n.type) {
        case 'not':
          pairs(n.operand, out);
          break;
        case 'and':
        case 'or':
          for (const o of n.operands) pairs(o, out);
          break;
        case 'all':
        case 'global':
          break;
        case 'has':
          out.push([n.key, '']);
          break;
        case 'in':
        case 'notIn':
          for (const v of n.values) out.push([n.key, v]);
          break;
        default:
          out.push([n.key, n.value], [n.key, `${n.value}${n.value}`]);
      }
      return out;
    };
    fc.assert(
      fc.property(astArb, fc.array(fc.nat()), (ast, picks) => {
        const ps = pairs(ast, []);
        const labels = Object.fromEntries(ps.length === 0 ? [] : picks.map((i) => ps[i % ps.length])) as Labels;
        assert.equal(parseSelector(printSelector(ast)).matches(labels), evaluateTree(ast, labels));
        assert.equal(compileClosures(ast)(labels), evaluateTree(ast, labels));
      }),
      { numRuns: RUNS },
    );
  });

  it('arbitrary text either fails with a SelectorError inside the text, or has a fixed-point canonical form', () => {
    const TOKENS = ['a', 'b', 'has', 'all', 'global', 'in', 'not', 'contains', 'starts', 'with', 'ends', '(', ')', '{', '}', ',', '!', '&&', '||', '==', '!=', '=', '&', '|', "'x'", '"y"', "'", '"', ' ', '\t', '\n', '-', '/', '.', 'é'];
    const soupArb = fc.array(fc.constantFrom(...TOKENS), { maxLength: 14 }).map((ts) => ts.join(''));
    // Near-misses: a valid spelling with a few characters deleted, replaced or inserted.
    const mutantArb = fc
      .tuple(astArb, fc.integer(), fc.array(fc.tuple(fc.nat(), fc.nat(2), fc.constantFrom(...TOKENS)), { minLength: 1, maxLength: 3 }))
      .map(([ast, seed, edits]) => {
        let text = noisyPrint(ast, seed);
        for (const [at, kind, token] of edits) {
          const i = at % (text.length + 1);
          if (kind === 0) text = text.slice(0, i) + text.slice(i + 1);
          else if (kind === 1) text = text.slice(0, i) + token + text.slice(i + 1);
          else text = text.slice(0, i) + token + text.slice(i);
        }
        return text;
      });
    const textArb = fc.oneof(soupArb, mutantArb);
    fc.assert(
      fc.property(textArb, labelsArb, (text, labels) => {
        let canonical: string;
        try {
          canonical = canonicalize(text);
        } catch (err) {
          assert.ok(err instanceof SelectorError, `not a SelectorError: ${String(err)}`);
          assert.ok(err.column >= 1 && err.column <= [...text].length + 1, `column ${err.column} outside ${JSON.stringify(text)}`);
          return;
        }
        assert.equal(canonicalize(canonical), canonical);
        const sel = parseSelector(text);
        assert.equal(sel.matches(labels), evaluateTree(sel.ast, labels));
        assert.equal(parseSelector(canonical).matches(labels), sel.matches(labels));
      }),
      { numRuns: RUNS * 5 },
    );
  });
});
