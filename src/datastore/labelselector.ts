// Kubernetes label-selector strings (the `-l` / `?labelSelector=` syntax), as k8s.io/apimachinery/pkg/labels parses them:
//   a=b  a==b  a!=b  a  !a  a in (x,y)  a notin (x,y)     requirements joined by `,` are ANDed.
// `!=` and `notin` also match objects that lack the key, as in Kubernetes. The empty selector matches everything.
import { StoreError } from './types.js';

export type LabelRequirement =
  | { key: string; op: 'exists' }
  | { key: string; op: 'notexists' }
  | { key: string; op: '='; value: string }
  | { key: string; op: '!='; value: string }
  | { key: string; op: 'in'; values: string[] }
  | { key: string; op: 'notin'; values: string[] };

export interface LabelSelector {
  readonly requirements: readonly LabelRequirement[];
  matches(labels: Record<string, string> | undefined): boolean;
  /** Canonical form (`a=b,c in (x,y)`): parses back to an equal selector. */
  toString(): string;
}

// Key: optional DNS-subdomain prefix + '/', then a name of at most 63 characters.
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function invalid(selector: string, why: string): StoreError {
  return new StoreError('Invalid', `invalid label selector ${JSON.stringify(selector)}: ${why}`);
}

function checkKey(selector: string, key: string): void {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !PREFIX.test(prefix))) {
    throw invalid(selector, `label key ${JSON.stringify(key)} has an invalid prefix (must be a lower-case DNS subdomain)`);
  }
  if (!NAME.test(name)) {
    throw invalid(
      selector,
      `label key ${JSON.stringify(key)} is invalid (at most 63 characters: alphanumerics, '-', '_', '.', starting and ending with an alphanumeric)`,
    );
  }
}

function checkValue(selector: string, value: string): void {
  if (!VALUE.test(value)) {
    throw invalid(
      selector,
      `label value ${JSON.stringify(value)} is invalid (at most 63 characters: alphanumerics, '-', '_', '.', starting and ending with an alphanumeric)`,
    );
  }
}

type Tok =
  | { t: 'id'; v: string; pos: number }
  | { t: '!' | '=' | '==' | '!=' | '(' | ')' | ',' | 'in' | 'notin'; pos: number }
  | { t: 'end'; pos: number };

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (c === '!' && s[i + 1] === '=') {
      out.push({ t: '!=', pos: i });
      i += 2;
    } else if (c === '=' && s[i + 1] === '=') {
      out.push({ t: '==', pos: i });
      i += 2;
    } else if (c === '!' || c === '=' || c === '(' || c === ')' || c === ',') {
      out.push({ t: c, pos: i });
      i++;
    } else if (c === '<' || c === '>') {
      throw invalid(s, `operator '${c}' at position ${i} is not supported (use =, ==, !=, in, notin, exists or !key)`);
    } else {
      const start = i;
      while (i < s.length && !' \t\n\r!=(),<>'.includes(s[i])) i++;
      const v = s.slice(start, i);
      if (v === 'in' || v === 'notin') out.push({ t: v, pos: start });
      else out.push({ t: 'id', v, pos: start });
    }
  }
  out.push({ t: 'end', pos: s.length });
  return out;
}

function describeTok(tok: Tok): string {
  if (tok.t === 'end') return 'end of input';
  if (tok.t === 'id') return `${JSON.stringify(tok.v)} at position ${tok.pos}`;
  return `'${tok.t}' at position ${tok.pos}`;
}

/** Parses a label-selector string; throws StoreError('Invalid') naming the problem. */
export function parseLabelSelector(selector: string): LabelSelector {
  if (typeof selector !== 'string') throw new StoreError('Invalid', 'label selector must be a string');
  const toks = tokenize(selector);
  let p = 0;
  const peek = (): Tok => toks[p];
  const next = (): Tok => toks[p++];
  const reqs: LabelRequirement[] = [];

  const expectKey = (): string => {
    const tok = next();
    if (tok.t !== 'id') throw invalid(selector, `expected a label key, found ${describeTok(tok)}`);
    checkKey(selector, tok.v);
    return tok.v;
  };

  const parseValues = (): string[] => {
    const open = next();
    if (open.t !== '(') throw invalid(selector, `expected '(' after in/notin, found ${describeTok(open)}`);
    const values: string[] = [];
    for (;;) {
      const tok = next();
      if (tok.t === 'id') {
        checkValue(selector, tok.v);
        values.push(tok.v);
        const sep = next();
        if (sep.t === ')') break;
        if (sep.t !== ',') throw invalid(selector, `expected ',' or ')' in value list, found ${describeTok(sep)}`);
      } else if (tok.t === ')' && values.length === 0) {
        throw invalid(selector, `the value list for in/notin must not be empty (position ${tok.pos})`);
      } else {
        throw invalid(selector, `expected a label value, found ${describeTok(tok)}`);
      }
    }
    return [...new Set(values)].sort();
  };

  if (peek().t === 'end') return makeSelector([]);
  for (;;) {
    const first = peek();
    if (first.t === '!') {
      next();
      reqs.push({ key: expectKey(), op: 'notexists' });
    } else {
      const key = expectKey();
      const op = peek();
      if (op.t === '=' || op.t === '==' || op.t === '!=') {
        next();
        // `a=` (empty value) is legal: it matches a present key with an empty value.
        let value = '';
        const v = peek();
        if (v.t === 'id') {
          next();
          value = v.v;
        } else if (v.t !== ',' && v.t !== 'end') {
          throw invalid(selector, `expected a label value after '${op.t}', found ${describeTok(v)}`);
        }
        checkValue(selector, value);
        reqs.push(op.t === '!=' ? { key, op: '!=', value } : { key, op: '=', value });
      } else if (op.t === 'in' || op.t === 'notin') {
        next();
        reqs.push({ key, op: op.t, values: parseValues() });
      } else if (op.t === ',' || op.t === 'end') {
        reqs.push({ key, op: 'exists' });
      } else {
        throw invalid(selector, `expected an operator (=, ==, !=, in, notin), ',' or end after key ${JSON.stringify(key)}, found ${describeTok(op)}`);
      }
    }
    const sep = next();
    if (sep.t === 'end') break;
    if (sep.t !== ',') throw invalid(selector, `expected ',' between requirements, found ${describeTok(sep)}`);
    if (peek().t === 'end') throw invalid(selector, 'trailing comma');
  }
  return makeSelector(reqs);
}

function matchOne(r: LabelRequirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  const v = has ? labels[r.key] : undefined;
  switch (r.op) {
    case 'exists':
      return has;
    case 'notexists':
      return !has;
    case '=':
      return has && v === r.value;
    case '!=':
      return !has || v !== r.value;
    case 'in':
      return has && r.values.includes(v as string);
    case 'notin':
      return !has || !r.values.includes(v as string);
  }
}

function reqString(r: LabelRequirement): string {
  switch (r.op) {
    case 'exists':
      return r.key;
    case 'notexists':
      return `!${r.key}`;
    case '=':
      return `${r.key}=${r.value}`;
    case '!=':
      return `${r.key}!=${r.value}`;
    case 'in':
    case 'notin':
      return `${r.key} ${r.op} (${r.values.join(',')})`;
  }
}

function makeSelector(requirements: LabelRequirement[]): LabelSelector {
  const frozen = Object.freeze(requirements.slice());
  return {
    requirements: frozen,
    matches(labels) {
      const l = labels ?? {};
      return frozen.every((r) => matchOne(r, l));
    },
    toString() {
      return frozen.map(reqString).join(',');
    },
  };
}

/** A predicate for ListOptions.labelSelector (a selector string, or a predicate used as is). */
export function labelMatcher(
  selector: string | ((labels: Record<string, string>) => boolean) | undefined,
): (labels: Record<string, string> | undefined) => boolean {
  if (selector === undefined) return () => true;
  if (typeof selector === 'function') return (labels) => selector({ ...(labels ?? {}) });
  const sel = parseLabelSelector(selector);
  return (labels) => sel.matches(labels);
}
