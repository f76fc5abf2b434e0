// The selector AST: a discriminated union on `type`, exported so other modules (the egress calculation) can walk
// it, e.g. to index which label keys and values a selector needs.
//
// ASTs produced by the parser are normalised and frozen:
//   - `and` / `or` nodes have at least two operands, and no operand of an `and` is itself an `and` (likewise `or`):
//     `a && (b && c)` and `(a && b) && c` both become one `and` of three operands;
//   - `in` / `not in` value lists are sorted (JS string order, UTF-16 code units) and de-duplicated;
//   - there are no parenthesis nodes.
// Hand-built ASTs need not be normalised: the printer, `evaluateTree` and `compile` accept any tree (an `and` of
// no operands is true, an `or` of none is false).

/** A set of labels: key → value. A label is present when `labels[key]` is a string. */
export type Labels = Readonly<Record<string, string>>;

/** `all()`: matches every label set. */
export interface AllNode { readonly type: 'all' }
/** `global()`: over labels it matches like `all()`; its special meaning (non-namespaced endpoints) does not arise in egw. */
export interface GlobalNode { readonly type: 'global' }
/** `has(key)`: the label is present. */
export interface HasNode { readonly type: 'has'; readonly key: string }
/** `key == "value"`: present and equal. */
export interface EqNode { readonly type: 'eq'; readonly key: string; readonly value: string }
/** `key != "value"`: missing, or present with a different value. */
export interface NeqNode { readonly type: 'neq'; readonly key: string; readonly value: string }
/** `key in {…}`: present and one of the values. */
export interface InNode { readonly type: 'in'; readonly key: string; readonly values: readonly string[] }
/** `key not in {…}`: missing, or present with none of the values. */
export interface NotInNode { readonly type: 'notIn'; readonly key: string; readonly values: readonly string[] }
/** `key contains "s"`: present and the value contains s. */
export interface ContainsNode { readonly type: 'contains'; readonly key: string; readonly value: string }
/** `key starts with "s"`: present and the value starts with s. */
export interface StartsWithNode { readonly type: 'startsWith'; readonly key: string; readonly value: string }
/** `key ends with "s"`: present and the value ends with s. */
export interface EndsWithNode { readonly type: 'endsWith'; readonly key: string; readonly value: string }
/** `!operand`. */
export interface NotNode { readonly type: 'not'; readonly operand: SelectorNode }
/** `a && b && …`. */
export interface AndNode { readonly type: 'and'; readonly operands: readonly SelectorNode[] }
/** `a || b || …`. */
export interface OrNode { readonly type: 'or'; readonly operands: readonly SelectorNode[] }

export type SelectorNode =
  | AllNode
  | GlobalNode
  | HasNode
  | EqNode
  | NeqNode
  | InNode
  | NotInNode
  | ContainsNode
  | StartsWithNode
  | EndsWithNode
  | NotNode
  | AndNode
  | OrNode;

/** The node types that compare one label against a single string value. */
export type ValueNode = EqNode | NeqNode | ContainsNode | StartsWithNode | EndsWithNode;
/** The node types that compare one label against a set of values. */
export type SetNode = InNode | NotInNode;
/** Every node type that reads a label. */
export type LabelNode = HasNode | ValueNode | SetNode;

/** Sorted (UTF-16 code-unit order), de-duplicated copy of `values`. */
export function normaliseSet(values: readonly string[]): string[] {
  const out = [...new Set(values)];
  out.sort();
  return out;
}

/**
 * Builds a frozen `and`/`or` node from operands, flattening operands of the same type into it
 * (associativity). With a single operand, returns that operand.
 */
export function makeJunction(type: 'and' | 'or', operands: readonly SelectorNode[]): SelectorNode {
  const flat: SelectorNode[] = [];
  for (const op of operands) {
    if (op.type === type) flat.push(...op.operands);
    else flat.push(op);
  }
  if (flat.length === 1) return flat[0];
  return Object.freeze({ type, operands: Object.freeze(flat) }) as AndNode | OrNode;
}

/** The label keys a selector reads, in first-seen order (each once). */
export function referencedKeys(node: SelectorNode): string[] {
  const keys = new Set<string>();
  const walk = (n: SelectorNode): void => {
    switch (n.type) {
      case 'all':
      case 'global':
        return;
      case 'not':
        walk(n.operand);
        return;
      case 'and':
      case 'or':
        for (const op of n.operands) walk(op);
        return;
      default:
        keys.add(n.key);
    }
  };
  walk(node);
  return [...keys];
}
