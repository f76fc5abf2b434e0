// Tokenizer + recursive-descent parser for Calico's selector language.
//
// Grammar (whitespace = space or tab, allowed between any two tokens; any other control character, including
// newline and CR, is an error wherever it appears, even inside a string):
//
//   selector   = ws* | or
//   or         = and ( "||" and )*
//   and        = unary ( "&&" unary )*
//   unary      = "!" unary | "(" or ")" | term
//   term       = "has" "(" key ")" | "all" "(" ")" | "global" "(" ")" | key op
//   op         = "==" string | "!=" string | "in" set | "not" "in" set | "notin" set
//              | "contains" string | "starts" "with" string | "startswith" string
//              | "ends" "with" string | "endswith" string
//
// The joined spellings `notin`, `startswith` and `endswith` are Calico's too (docs/behaviour.md §1, selectors); they
// mean the same as the spaced ones, and the printer writes the spaced form.
//   set        = "{" [ string ( "," string )* ] "}"
//   string     = "'" any-but-' "'" | '"' any-but-" '"'        (no escapes; case-sensitive)
//
// So `!` binds tightest, then `&&`, then `||`; `&&`/`||` chains are left-associative (and flattened).
// Keywords are lower-case and case-sensitive. `has`, `all` and `global` are functions only when followed by "(",
// so a label may be called `has` or `in` (`in in {"x"}` is valid).
//
// Label keys. Calico selectors name Kubernetes labels, so keys have the shape of Kubernetes label keys,
// checked a little more leniently than Kubernetes does (a selector naming a key no object can carry simply
// never matches it, so there is no need to reject it):
//   - characters: A-Z a-z 0-9 "_" "." "-" and at most one "/" (separating an optional DNS-style prefix from
//     the name, as in `projectcalico.org/name` or `app.kubernetes.io/part-of`);
//   - the key, and the name after "/", start with a letter, digit or "_" (Kubernetes wants a letter or digit;
//     "_" is tolerated);
//   - prefix and name are non-empty; the last character is not checked;
//   - the whole key is at most MAX_KEY_LENGTH (512) bytes, Calico's limit (keys are ASCII, so bytes = characters).

import { makeJunction, normaliseSet, type SelectorNode } from './ast.js';
import { SelectorError } from './errors.js';

/** Nesting limit for "(" and "!" so that hostile input cannot exhaust the stack. */
export const MAX_NESTING = 128;

/** Longest label key a selector may name, in bytes (Calico's limit; docs/behaviour.md §1). */
export const MAX_KEY_LENGTH = 512;

const EXPECT_OPERAND = 'a label key, "!", "(", "has(", "all()" or "global()"';
const EXPECT_OPERATOR = '"==", "!=", "in", "not in", "contains", "starts with" or "ends with"';

const ALL: SelectorNode = Object.freeze({ type: 'all' });
const GLOBAL: SelectorNode = Object.freeze({ type: 'global' });

/** Character codes. */
const C = {
  Tab: 9,
  Space: 32,
  Bang: 33,
  DQuote: 34,
  Amp: 38,
  SQuote: 39,
  LParen: 40,
  RParen: 41,
  Comma: 44,
  Dash: 45,
  Dot: 46,
  Slash: 47,
  Eq: 61,
  Underscore: 95,
  LBrace: 123,
  Pipe: 124,
  RBrace: 125,
} as const;

function isAlnumOrUnderscore(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === C.Underscore;
}

/** Characters of label keys and keywords. */
function isWordChar(c: number): boolean {
  return isAlnumOrUnderscore(c) || c === C.Dash || c === C.Dot || c === C.Slash;
}

/** C0/C1 control characters (tab is handled as whitespace before this is asked) and the Unicode line separators. */
function isControl(c: number): boolean {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029;
}

function controlName(c: number): string {
  const hex = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  switch (c) {
    case 0x0a: return `newline (${hex})`;
    case 0x0d: return `carriage return (${hex})`;
    case 0x2028: return `line separator (${hex})`;
    case 0x2029: return `paragraph separator (${hex})`;
    default: return `control character ${hex}`;
  }
}

class Parser {
  private pos = 0;
  private depth = 0;
  private readonly len: number;

  constructor(private readonly src: string) {
    this.len = src.length;
  }

  parse(): SelectorNode {
    this.skipWs();
    if (this.pos === this.len) return ALL;
    const node = this.parseOr();
    // parseOr leaves pos after whitespace.
    if (this.pos < this.len) this.unexpected(this.pos, '"&&", "||" or the end of the selector');
    return node;
  }

  // ---- expressions ----

  private parseOr(): SelectorNode {
    const first = this.parseAnd();
    if (!this.at2(C.Pipe)) return first;
    const operands = [first];
    while (this.at2(C.Pipe)) {
      this.pos += 2;
      operands.push(this.parseAnd());
    }
    return makeJunction('or', operands);
  }

  /** Returns with pos after trailing whitespace. */
  private parseAnd(): SelectorNode {
    const first = this.parseUnary();
    this.skipWs();
    if (!this.at2(C.Amp)) return first;
    const operands = [first];
    while (this.at2(C.Amp)) {
      this.pos += 2;
      operands.push(this.parseUnary());
      this.skipWs();
    }
    return makeJunction('and', operands);
  }

  private parseUnary(): SelectorNode {
    this.skipWs();
    const start = this.pos;
    const c = this.code(start);
    if (c === C.Bang) {
      if (this.code(start + 1) === C.Eq) this.unexpected(start, EXPECT_OPERAND);
      this.pos++;
      this.enter(start);
      const operand = this.parseUnary();
      this.depth--;
      return Object.freeze({ type: 'not', operand });
    }
    if (c === C.LParen) {
      this.pos++;
      this.enter(start);
      const inner = this.parseOr();
      if (this.code(this.pos) !== C.RParen) this.unexpected(this.pos, '"&&", "||" or ")"');
      this.pos++;
      this.depth--;
      return inner;
    }
    if (isWordChar(c)) return this.parseTerm();
    return this.unexpected(start, EXPECT_OPERAND);
  }

  private parseTerm(): SelectorNode {
    const start = this.pos;
    const word = this.readWord();
    if (word === 'has' || word === 'all' || word === 'global') {
      const after = this.pos;
      this.skipWs();
      if (this.code(this.pos) === C.LParen) {
        this.pos++;
        return word === 'has' ? this.parseHas() : this.parseNullary(word);
      }
      this.pos = after; // a label that happens to be called has/all/global
    }
    this.checkKey(word, start);
    return this.parseComparison(word);
  }

  private parseHas(): SelectorNode {
    this.skipWs();
    const start = this.pos;
    if (!isWordChar(this.code(start))) this.unexpected(start, 'a label key');
    const key = this.readWord();
    this.checkKey(key, start);
    this.expectChar(C.RParen, '")"');
    return Object.freeze({ type: 'has', key });
  }

  private parseNullary(word: 'all' | 'global'): SelectorNode {
    this.expectChar(C.RParen, '")"');
    return word === 'all' ? ALL : GLOBAL;
  }

  private parseComparison(key: string): SelectorNode {
    this.skipWs();
    const start = this.pos;
    const c = this.code(start);
    if (c === C.Eq && this.code(start + 1) === C.Eq) {
      this.pos += 2;
      return Object.freeze({ type: 'eq', key, value: this.parseString('a quoted string') });
    }
    if (c === C.Bang && this.code(start + 1) === C.Eq) {
      this.pos += 2;
      return Object.freeze({ type: 'neq', key, value: this.parseString('a quoted string') });
    }
    if (isWordChar(c)) {
      switch (this.readWord()) {
        case 'in':
          return Object.freeze({ type: 'in', key, values: this.parseSet() });
        case 'not':
          this.expectWord('in');
          return Object.freeze({ type: 'notIn', key, values: this.parseSet() });
        case 'notin':
          return Object.freeze({ type: 'notIn', key, values: this.parseSet() });
        case 'contains':
          return Object.freeze({ type: 'contains', key, value: this.parseString('a quoted string') });
        case 'starts':
          this.expectWord('with');
          return Object.freeze({ type: 'startsWith', key, value: this.parseString('a quoted string') });
        case 'startswith':
          return Object.freeze({ type: 'startsWith', key, value: this.parseString('a quoted string') });
        case 'ends':
          this.expectWord('with');
          return Object.freeze({ type: 'endsWith', key, value: this.parseString('a quoted string') });
        case 'endswith':
          return Object.freeze({ type: 'endsWith', key, value: this.parseString('a quoted string') });
        default:
          break;
      }
    }
    return this.unexpected(start, EXPECT_OPERATOR);
  }

  private parseSet(): readonly string[] {
    this.skipWs();
    if (this.code(this.pos) !== C.LBrace) this.unexpected(this.pos, '"{"');
    this.pos++;
    this.skipWs();
    const values: string[] = [];
    if (this.code(this.pos) === C.RBrace) {
      this.pos++;
    } else {
      values.push(this.parseString('a quoted string or "}"'));
      for (;;) {
        this.skipWs();
        const c = this.code(this.pos);
        if (c === C.RBrace) {
          this.pos++;
          break;
        }
        if (c !== C.Comma) this.unexpected(this.pos, '"," or "}"');
        this.pos++;
        values.push(this.parseString('a quoted string'));
      }
    }
    return Object.freeze(normaliseSet(values));
  }

  private parseString(expected: string): string {
    this.skipWs();
    const start = this.pos;
    const q = this.code(start);
    if (q !== C.SQuote && q !== C.DQuote) this.unexpected(start, expected);
    for (let i = start + 1; i < this.len; i++) {
      const c = this.src.charCodeAt(i);
      if (c === q) {
        this.pos = i + 1;
        return this.src.slice(start + 1, i);
      }
      if (c !== C.Tab && isControl(c)) this.controlError(i);
    }
    const quote = q === C.SQuote ? `'` : `"`;
    return this.fail(start, `unterminated string at column ${this.column(start)}; expected a closing ${quote} before the end of the selector`);
  }

  // ---- tokens ----

  private code(i: number): number {
    return i < this.len ? this.src.charCodeAt(i) : -1;
  }

  /** True if the next two characters are both c (`&&`, `||`). */
  private at2(c: number): boolean {
    return this.code(this.pos) === c && this.code(this.pos + 1) === c;
  }

  private skipWs(): void {
    while (this.pos < this.len) {
      const c = this.src.charCodeAt(this.pos);
      if (c === C.Space || c === C.Tab) this.pos++;
      else if (isControl(c)) this.controlError(this.pos);
      else return;
    }
  }

  private readWord(): string {
    const start = this.pos;
    while (this.pos < this.len && isWordChar(this.src.charCodeAt(this.pos))) this.pos++;
    return this.src.slice(start, this.pos);
  }

  private expectChar(c: number, expected: string): void {
    this.skipWs();
    if (this.code(this.pos) !== c) this.unexpected(this.pos, expected);
    this.pos++;
  }

  private expectWord(word: string): void {
    this.skipWs();
    const start = this.pos;
    if (!isWordChar(this.code(start)) || this.readWord() !== word) this.unexpected(start, `"${word}"`);
  }

  private enter(at: number): void {
    if (++this.depth > MAX_NESTING) {
      this.fail(at, `selector nested too deeply at column ${this.column(at)} (more than ${MAX_NESTING} levels of "(" and "!")`);
    }
  }

  private checkKey(key: string, start: number): void {
    const bad = (offset: number, why: string): never =>
      this.fail(start + offset, `invalid label key ${JSON.stringify(key)} at column ${this.column(start + offset)}; ${why}`);
    if (!isAlnumOrUnderscore(key.charCodeAt(0))) bad(0, 'a label key starts with a letter, digit or "_"');
    if (key.length > MAX_KEY_LENGTH) {
      this.fail(start, `label key at column ${this.column(start)} is ${key.length} bytes long; a label key is at most ${MAX_KEY_LENGTH} bytes`);
    }
    const slash = key.indexOf('/');
    if (slash < 0) return;
    const second = key.indexOf('/', slash + 1);
    if (second >= 0) bad(second, 'a label key has at most one "/"');
    if (slash === key.length - 1) bad(slash, 'a label name is needed after "/"');
    if (!isAlnumOrUnderscore(key.charCodeAt(slash + 1))) bad(slash + 1, 'the name after "/" starts with a letter, digit or "_"');
  }

  // ---- errors ----

  /** 1-based column of index i, counting code points. */
  private column(i: number): number {
    let col = 1;
    for (let j = 0; j < i; j++) {
      const c = this.src.charCodeAt(j);
      // Skip the low half of a surrogate pair.
      if (c >= 0xd800 && c <= 0xdbff && j + 1 < i) {
        const d = this.src.charCodeAt(j + 1);
        if (d >= 0xdc00 && d <= 0xdfff) j++;
      }
      col++;
    }
    return col;
  }

  private describe(i: number): string {
    if (i >= this.len) return 'end of selector';
    const c = this.src.charCodeAt(i);
    if (c === C.SQuote || c === C.DQuote) return 'string';
    if (isWordChar(c)) {
      let j = i;
      while (j < this.len && isWordChar(this.src.charCodeAt(j))) j++;
      const word = this.src.slice(i, j);
      return JSON.stringify(word.length > 40 ? `${word.slice(0, 40)}…` : word);
    }
    const two = this.src.slice(i, i + 2);
    if (two === '&&' || two === '||' || two === '==' || two === '!=') return `"${two}"`;
    if (isControl(c)) return controlName(c);
    return JSON.stringify(String.fromCodePoint(this.src.codePointAt(i) ?? c));
  }

  private unexpected(i: number, expected: string): never {
    return this.fail(i, `unexpected ${this.describe(i)} at column ${this.column(i)}; expected ${expected}`);
  }

  private controlError(i: number): never {
    const name = controlName(this.src.charCodeAt(i));
    return this.fail(i, `unexpected ${name} at column ${this.column(i)}; a selector is one line and only space and tab count as whitespace`);
  }

  private fail(i: number, reason: string): never {
    throw new SelectorError(this.src, this.column(i), reason);
  }
}

/** Parses a selector into a normalised, frozen AST. Throws SelectorError. */
export function parse(source: string): SelectorNode {
  if (typeof source !== 'string') throw new TypeError(`selector must be a string, not ${source === null ? 'null' : typeof source}`);
  return new Parser(source).parse();
}
