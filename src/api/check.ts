// A small toolkit for validating one decoded object field by field. It collects every problem (with its field path)
// instead of stopping at the first, and builds the defaulted, normalised copy as it goes.
import { formatPath, isPlainObject, type FieldPath, type RawObject, type ManifestProblem } from './manifest.js';

export interface FieldProblem {
  path: FieldPath;
  message: string;
  /** Point at the field's key rather than its value (unknown fields, missing children). */
  atKey?: boolean;
}

export class Checker {
  readonly errors: FieldProblem[] = [];
  readonly warnings: FieldProblem[] = [];

  error(path: FieldPath, message: string, atKey = false): undefined {
    this.errors.push({ path, message, atKey });
    return undefined;
  }

  warn(path: FieldPath, message: string): void {
    this.warnings.push({ path, message });
  }

  /** A mapping whose keys must all be in `known`; unknown keys are errors, with a suggestion when one is close. */
  object(v: unknown, path: FieldPath, known: readonly string[]): Record<string, unknown> | undefined {
    if (v === undefined) return undefined;
    if (!isPlainObject(v)) return this.error(path, `expected a mapping (object), got ${describe(v)}`);
    for (const k of Object.keys(v)) {
      if (!known.includes(k)) {
        const hint = closest(k, known);
        this.error([...path, k], `unknown field${hint ? `; did you mean ${hint}?` : ''}`, true);
      }
    }
    return v;
  }

  required(obj: Record<string, unknown> | undefined, key: string, path: FieldPath): boolean {
    if (obj && obj[key] !== undefined && obj[key] !== null) return true;
    if (obj) this.error([...path, key], 'required field is missing', true);
    return false;
  }

  string(v: unknown, path: FieldPath, opts: { enum?: readonly string[]; nonEmpty?: boolean } = {}): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') return this.error(path, `expected a string, got ${describe(v)}`);
    if (opts.nonEmpty && v.length === 0) return this.error(path, 'must not be empty');
    if (opts.enum && !opts.enum.includes(v)) {
      return this.error(path, `${JSON.stringify(v)} is not one of ${opts.enum.join(', ')}`);
    }
    return v;
  }

  int(v: unknown, path: FieldPath, opts: { min?: number; max?: number } = {}): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) return this.error(path, `expected an integer, got ${describe(v)}`);
    if (opts.min !== undefined && opts.max !== undefined && (v < opts.min || v > opts.max)) {
      return this.error(path, `must be between ${opts.min} and ${opts.max}, got ${v}`);
    }
    if (opts.min !== undefined && v < opts.min) return this.error(path, `must be at least ${opts.min}, got ${v}`);
    if (opts.max !== undefined && v > opts.max) return this.error(path, `must be at most ${opts.max}, got ${v}`);
    return v;
  }

  bool(v: unknown, path: FieldPath): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') return this.error(path, `expected true or false, got ${describe(v)}`);
    return v;
  }

  array(v: unknown, path: FieldPath): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) return this.error(path, `expected a list, got ${describe(v)}`);
    return v;
  }

  stringArray(v: unknown, path: FieldPath): string[] | undefined {
    const arr = this.array(v, path);
    if (!arr) return undefined;
    const out: string[] = [];
    arr.forEach((item, i) => {
      const s = this.string(item, [...path, i]);
      if (s !== undefined) out.push(s);
    });
    return out.length === arr.length ? out : undefined;
  }

  /** A map of string to string (labels, annotations, nodeSelector). */
  stringMap(v: unknown, path: FieldPath): Record<string, string> | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isPlainObject(v)) return this.error(path, `expected a mapping of strings, got ${describe(v)}`);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      if (typeof val !== 'string') this.error([...path, k], `expected a string, got ${describe(val)}; quote it`);
      else out[k] = val;
    }
    return out;
  }

  /** Any JSON-ish value, kept as written (fields egw passes through without interpreting). */
  passthrough(v: unknown, path: FieldPath, kind: 'object' | 'array'): unknown {
    if (v === undefined || v === null) return undefined;
    if (kind === 'object' && !isPlainObject(v)) return this.error(path, `expected a mapping (object), got ${describe(v)}`);
    if (kind === 'array' && !Array.isArray(v)) return this.error(path, `expected a list, got ${describe(v)}`);
    return v;
  }

  /** Turns this checker's findings into located problems. `subject` is e.g. `IPPool egress-ippool-1`. */
  toProblems(raw: RawObject, subject: string, which: 'errors' | 'warnings' = 'errors'): ManifestProblem[] {
    return this[which].map((p) => {
      const pos = raw.locate(p.path, p.atKey);
      const where = p.path.length ? `${formatPath(p.path)}: ` : '';
      return { file: raw.file, line: pos.line, column: pos.column, message: `${subject}: ${where}${p.message}` };
    });
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `number ${v}` : `non-integer ${v}`;
  return `${typeof v} ${String(v)}`;
}

/** The known name closest to a mistyped one (edit distance ≤ 2, or a case-only difference). */
export function closest(typed: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    if (k.toLowerCase() === typed.toLowerCase()) return k;
    const d = editDistance(typed, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}
