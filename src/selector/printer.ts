// The canonical text of a selector AST.
//
//   k == "v"   k != "v"   has(k)   !<operand>   k in {"a", "b"}   k not in {}   k contains "s"
//   k starts with "s"   k ends with "s"   all()   global()   (a && b && c)   (a || (b && c))
//
// `&&`/`||` groups are always parenthesised and flattened (same-operator children are spliced in); strings are
// double-quoted unless they contain `"`, then single-quoted; set members are sorted (UTF-16 code-unit order) and
// de-duplicated. Printing any AST and parsing the result back gives an AST that prints the same (a fixed point).

import { normaliseSet, type SelectorNode } from './ast.js';
import { MAX_KEY_LENGTH } from './parser.js';

const KEY = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/;
// Control characters other than tab, and the Unicode line separators: the parser rejects these anywhere.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/;

function key(k: string): string {
  if (typeof k !== 'string' || k.length > MAX_KEY_LENGTH || !KEY.test(k)) throw new TypeError(`selector AST: invalid label key ${JSON.stringify(k)}`);
  return k;
}

/** A string literal: double-quoted unless the value contains `"`. */
export function quote(v: string): string {
  if (typeof v !== 'string') throw new TypeError(`selector AST: value ${JSON.stringify(v)} is not a string`);
  if (UNPRINTABLE.test(v)) throw new TypeError(`selector AST: value ${JSON.stringify(v)} contains a control character`);
  if (!v.includes('"')) return `"${v}"`;
  if (!v.includes("'")) return `'${v}'`;
  throw new TypeError(`selector AST: value ${JSON.stringify(v)} contains both quote characters and cannot be written`);
}

function set(values: readonly string[]): string {
  const sorted = normaliseSet(values);
  return sorted.length === 0 ? '{}' : `{${sorted.map(quote).join(', ')}}`;
}

/** The canonical text of an AST (parsed or hand-built). Throws TypeError for a key or value no selector can hold. */
export function printSelector(node: SelectorNode): string {
  switch (node.type) {
    case 'all':
      return 'all()';
    case 'global':
      return 'global()';
    case 'has':
      return `has(${key(node.key)})`;
    case 'eq':
      return `${key(node.key)} == ${quote(node.value)}`;
    case 'neq':
      return `${key(node.key)} != ${quote(node.value)}`;
    case 'in':
      return `${key(node.key)} in ${set(node.values)}`;
    case 'notIn':
      return `${key(node.key)} not in ${set(node.values)}`;
    case 'contains':
      return `${key(node.key)} contains ${quote(node.value)}`;
    case 'startsWith':
      return `${key(node.key)} starts with ${quote(node.value)}`;
    case 'endsWith':
      return `${key(node.key)} ends with ${quote(node.value)}`;
    case 'not':
      return `!${printSelector(node.operand)}`;
    case 'and':
    case 'or': {
      const parts: string[] = [];
      const collect = (operands: readonly SelectorNode[]): void => {
        for (const op of operands) {
          if (op.type === node.type) collect(op.operands);
          else parts.push(printSelector(op));
        }
      };
      collect(node.operands);
      // Degenerate hand-built junctions: an empty `and` is true, an empty `or` is false.
      if (parts.length === 0) return node.type === 'and' ? 'all()' : '!all()';
      if (parts.length === 1) return parts[0];
      return `(${parts.join(node.type === 'and' ? ' && ' : ' || ')})`;
    }
    default:
      throw new TypeError(`selector AST: unknown node type ${JSON.stringify((node as { type?: unknown }).type)}`);
  }
}
