// Plain recursive tree-walking evaluation: the reference semantics, and the benchmark baseline for `compile`.
//
// A label is present when `labels[key]` is a string (so keys such as `constructor` or `__proto__` that a plain
// object inherits, whose values are not strings, count as missing). Missing labels: `!=` and `not in` match;
// `==`, `in`, `contains`, `starts with`, `ends with` and `has` do not.

import type { Labels, SelectorNode } from './ast.js';

function labelValue(labels: Labels, key: string): string | undefined {
  const v: unknown = labels[key];
  return typeof v === 'string' ? v : undefined;
}

export function evaluateTree(node: SelectorNode, labels: Labels): boolean {
  switch (node.type) {
    case 'all':
    case 'global':
      return true;
    case 'has':
      return labelValue(labels, node.key) !== undefined;
    case 'eq':
      return labelValue(labels, node.key) === node.value;
    case 'neq':
      return labelValue(labels, node.key) !== node.value;
    case 'in': {
      const v = labelValue(labels, node.key);
      return v !== undefined && node.values.includes(v);
    }
    case 'notIn': {
      const v = labelValue(labels, node.key);
      return v === undefined || !node.values.includes(v);
    }
    case 'contains': {
      const v = labelValue(labels, node.key);
      return v !== undefined && v.includes(node.value);
    }
    case 'startsWith': {
      const v = labelValue(labels, node.key);
      return v !== undefined && v.startsWith(node.value);
    }
    case 'endsWith': {
      const v = labelValue(labels, node.key);
      return v !== undefined && v.endsWith(node.value);
    }
    case 'not':
      return !evaluateTree(node.operand, labels);
    case 'and':
      for (const op of node.operands) if (!evaluateTree(op, labels)) return false;
      return true;
    case 'or':
      for (const op of node.operands) if (evaluateTree(op, labels)) return true;
      return false;
    default:
      throw new TypeError(`selector AST: unknown node type ${JSON.stringify((node as { type?: unknown }).type)}`);
  }
}
