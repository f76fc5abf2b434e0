// Calico's selector language: parse, canonical form, evaluation. Pure: no I/O.
//
//   const sel = parseSelector("egress-code == 'red' && has(projectcalico.org/name)");
//   sel.canonical;                 // '(egress-code == "red" && has(projectcalico.org/name))'
//   sel.matches({ 'egress-code': 'red', 'projectcalico.org/name': 'ns1' });   // true

import type { Labels, SelectorNode } from './ast.js';
import { compile } from './compile.js';
import { parse } from './parser.js';
import { printSelector } from './printer.js';

export type {
  AllNode,
  AndNode,
  ContainsNode,
  EndsWithNode,
  EqNode,
  GlobalNode,
  HasNode,
  InNode,
  LabelNode,
  Labels,
  NeqNode,
  NotInNode,
  NotNode,
  OrNode,
  SelectorNode,
  SetNode,
  StartsWithNode,
  ValueNode,
} from './ast.js';
export { referencedKeys } from './ast.js';
export { SelectorError } from './errors.js';
export { evaluateTree } from './evaluate.js';
export { compile } from './compile.js';
export { printSelector } from './printer.js';

export interface Selector {
  /** The text as given. */
  readonly source: string;
  /** The normalised, frozen AST. */
  readonly ast: SelectorNode;
  /** The canonical text (see printer.ts); equal for selectors that differ only in formatting. */
  readonly canonical: string;
  /** Compiled matcher: fast. (Compiled on first use; safe to detach from the object.) */
  matches(labels: Labels): boolean;
}

function makeSelector(source: string, ast: SelectorNode): Selector {
  let matcher: ((labels: Labels) => boolean) | undefined;
  return Object.freeze({
    source,
    ast,
    canonical: printSelector(ast),
    matches: (labels: Labels): boolean => (matcher ??= compile(ast))(labels),
  });
}

/** Parsed selectors by source text, least recently used first. */
const cache = new Map<string, Selector>();
const CACHE_MAX = 2048;

/** Parses a selector (cached by source text). Throws SelectorError if it does not parse. */
export function parseSelector(source: string): Selector {
  const hit = cache.get(source);
  if (hit !== undefined) {
    cache.delete(source);
    cache.set(source, hit);
    return hit;
  }
  const sel = makeSelector(source, parse(source));
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(source, sel);
  return sel;
}

/** The canonical text of a selector. Throws SelectorError if it does not parse. */
export function canonicalize(source: string): string {
  return parseSelector(source).canonical;
}
