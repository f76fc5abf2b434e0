// Compiling a selector AST into a fast matcher.
//
// The main path generates one small JavaScript function per selector with `new Function`, so V8 sees straight-line
// code: named property loads (`l["app"]`), `===` against string literals, `&&`/`||` short-circuit, and no recursion
// or dispatch on node type. User-supplied keys and values only ever enter the generated code as JSON.stringify'd
// string literals (JSON text is valid, side-effect-free JavaScript), and large `in` sets are passed in as `Set`
// objects rather than written out. Where code generation is not allowed (`--disallow-code-generation-from-strings`,
// a CSP), `compile` falls back to specialised closures.
//
// Semantics are exactly those of `evaluateTree` (a label is present when `labels[key]` is a string).

import type { Labels, SelectorNode } from './ast.js';

export type Matcher = (labels: Labels) => boolean;

/** `in` sets up to this size are compared inline (`v === "a" || v === "b"`); larger ones use `Set#has`. */
const INLINE_SET_MAX = 6;

function str(s: unknown, what: string): string {
  if (typeof s !== 'string') throw new TypeError(`selector AST: ${what} ${JSON.stringify(s)} is not a string`);
  return s;
}

/** A JavaScript string literal for s (JSON string syntax; safe to embed in generated code). */
function lit(s: unknown, what: string): string {
  return JSON.stringify(str(s, what));
}

function uniqueValues(values: readonly string[]): string[] {
  if (!Array.isArray(values)) throw new TypeError('selector AST: set values are not an array');
  for (const v of values) str(v, 'set value');
  return [...new Set(values)];
}

function countKeyUses(n: SelectorNode, uses: Map<string, number>): void {
  switch (n.type) {
    case 'all':
    case 'global':
      return;
    case 'not':
      countKeyUses(n.operand, uses);
      return;
    case 'and':
    case 'or':
      for (const op of n.operands) countKeyUses(op, uses);
      return;
    default:
      uses.set(n.key, (uses.get(n.key) ?? 0) + 1);
  }
}

/** Generates a matcher with `new Function`. Throws EvalError where code generation from strings is disallowed. */
export function compileCodegen(node: SelectorNode): Matcher {
  const consts: unknown[] = [];
  // A key read more than once (`zone == "a" || zone == "b"`) is loaded once, on first use, into a local that
  // starts as a private sentinel; a key read once is loaded where it is used.
  const uses = new Map<string, number>();
  countKeyUses(node, uses);
  const slots = new Map<string, string>();
  const load = (key: string): string => {
    const k = lit(key, 'label key');
    if ((uses.get(key) ?? 0) < 2) return `l[${k}]`;
    let slot = slots.get(key);
    if (slot === undefined) {
      slot = `k${slots.size}`;
      slots.set(key, slot);
    }
    return `(${slot} === U ? (${slot} = l[${k}]) : ${slot})`;
  };

  const inExpr = (key: string, values: readonly string[]): string => {
    const vals = uniqueValues(values);
    if (vals.length === 0) return 'false';
    if (vals.length === 1) return `(${load(key)} === ${lit(vals[0], 'set value')})`;
    if (vals.length <= INLINE_SET_MAX) {
      return `((v = ${load(key)}) === ${vals.map((x) => lit(x, 'set value')).join(' || v === ')})`;
    }
    consts.push(new Set(vals));
    return `c[${consts.length - 1}].has(${load(key)})`;
  };

  const stringTest = (key: string, method: 'includes' | 'startsWith' | 'endsWith', value: string): string => {
    // Every string contains, starts and ends with "": the test is then just "present".
    if (str(value, 'value') === '') return `(typeof ${load(key)} === "string")`;
    return `(typeof (v = ${load(key)}) === "string" && v.${method}(${lit(value, 'value')}))`;
  };

  const gen = (n: SelectorNode): string => {
    switch (n.type) {
      case 'all':
      case 'global':
        return 'true';
      case 'has':
        return `(typeof ${load(n.key)} === "string")`;
      case 'eq':
        return `(${load(n.key)} === ${lit(n.value, 'value')})`;
      case 'neq':
        return `(${load(n.key)} !== ${lit(n.value, 'value')})`;
      case 'in':
        return inExpr(n.key, n.values);
      case 'notIn':
        return `!${inExpr(n.key, n.values)}`;
      case 'contains':
        return stringTest(n.key, 'includes', n.value);
      case 'startsWith':
        return stringTest(n.key, 'startsWith', n.value);
      case 'endsWith':
        return stringTest(n.key, 'endsWith', n.value);
      case 'not':
        return `!${gen(n.operand)}`;
      case 'and':
        return n.operands.length === 0 ? 'true' : `(${n.operands.map(gen).join(' && ')})`;
      case 'or':
        return n.operands.length === 0 ? 'false' : `(${n.operands.map(gen).join(' || ')})`;
      default:
        throw new TypeError(`selector AST: unknown node type ${JSON.stringify((n as { type?: unknown }).type)}`);
    }
  };

  const body = gen(node);
  const locals = ['v', ...[...slots.values()].map((slot) => `${slot} = U`)].join(', ');
  const factory = new Function('c', 'U', `"use strict"; return function selectorMatcher(l) { var ${locals}; return ${body}; };`) as (
    c: unknown[],
    sentinel: object,
  ) => Matcher;
  return factory(consts, {});
}

/** Builds a matcher out of closures specialised per node (no code generation). */
export function compileClosures(node: SelectorNode): Matcher {
  switch (node.type) {
    case 'all':
    case 'global':
      return () => true;
    case 'has': {
      const k = str(node.key, 'label key');
      return (l) => typeof l[k] === 'string';
    }
    case 'eq': {
      const k = str(node.key, 'label key');
      const x = str(node.value, 'value');
      return (l) => l[k] === x;
    }
    case 'neq': {
      const k = str(node.key, 'label key');
      const x = str(node.value, 'value');
      return (l) => l[k] !== x;
    }
    case 'in':
    case 'notIn': {
      const k = str(node.key, 'label key');
      const vals = uniqueValues(node.values);
      let m: Matcher;
      if (vals.length === 0) m = () => false;
      else if (vals.length === 1) {
        const x = vals[0];
        m = (l) => l[k] === x;
      } else {
        const s = new Set(vals);
        m = (l) => s.has(l[k]);
      }
      if (node.type === 'in') return m;
      return (l) => !m(l);
    }
    case 'contains': {
      const k = str(node.key, 'label key');
      const x = str(node.value, 'value');
      return (l) => {
        const v: unknown = l[k];
        return typeof v === 'string' && v.includes(x);
      };
    }
    case 'startsWith': {
      const k = str(node.key, 'label key');
      const x = str(node.value, 'value');
      return (l) => {
        const v: unknown = l[k];
        return typeof v === 'string' && v.startsWith(x);
      };
    }
    case 'endsWith': {
      const k = str(node.key, 'label key');
      const x = str(node.value, 'value');
      return (l) => {
        const v: unknown = l[k];
        return typeof v === 'string' && v.endsWith(x);
      };
    }
    case 'not': {
      const m = compileClosures(node.operand);
      return (l) => !m(l);
    }
    case 'and': {
      const ms = node.operands.map(compileClosures);
      if (ms.length === 0) return () => true;
      if (ms.length === 1) return ms[0];
      if (ms.length === 2) {
        const [a, b] = ms;
        return (l) => a(l) && b(l);
      }
      return (l) => {
        for (const m of ms) if (!m(l)) return false;
        return true;
      };
    }
    case 'or': {
      const ms = node.operands.map(compileClosures);
      if (ms.length === 0) return () => false;
      if (ms.length === 1) return ms[0];
      if (ms.length === 2) {
        const [a, b] = ms;
        return (l) => a(l) || b(l);
      }
      return (l) => {
        for (const m of ms) if (m(l)) return true;
        return false;
      };
    }
    default:
      throw new TypeError(`selector AST: unknown node type ${JSON.stringify((node as { type?: unknown }).type)}`);
  }
}

let codegenAllowed: boolean | undefined;

function canGenerateCode(): boolean {
  if (codegenAllowed === undefined) {
    try {
      codegenAllowed = (new Function('return true') as () => boolean)() === true;
    } catch {
      codegenAllowed = false;
    }
  }
  return codegenAllowed;
}

/** The fast matcher for an AST (what `Selector.matches` uses). Throws TypeError for a malformed hand-built AST. */
export function compile(node: SelectorNode): Matcher {
  return canGenerateCode() ? compileCodegen(node) : compileClosures(node);
}
