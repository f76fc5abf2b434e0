// `egw selector check`: JSON lines in, JSON lines out.
//
// Each input line is `{"selector": "...", "labels": {...}}` (labels optional). Each non-blank line produces one
// output line, in order:
//   {"canonical": "...", "matches": true|false}   (matches only when labels were given)
//   {"error": "selector \"...\": unexpected ... at column N; expected ..."}   (the selector does not parse)
//   {"error": "line N: ..."}   (the line is not a JSON object with a string selector and optional string labels;
//                               unknown fields are reported too, so a typo such as "label" is not silently ignored)
// Line numbers count every input line, blank ones included.

import { createInterface } from 'node:readline';
import type { Labels } from './ast.js';
import { SelectorError } from './errors.js';
import { parseSelector } from './index.js';

type Outcome = { canonical: string; matches?: boolean } | { error: string };

function checkLine(line: string, lineNo: number): Outcome {
  const bad = (why: string): Outcome => ({ error: `line ${lineNo}: ${why}` });
  let input: unknown;
  try {
    input = JSON.parse(line);
  } catch (err) {
    return bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return bad('expected a JSON object {"selector": "...", "labels": {...}}');
  }
  const obj = input as Record<string, unknown>;
  for (const field of Object.keys(obj)) {
    if (field !== 'selector' && field !== 'labels') return bad(`unknown field ${JSON.stringify(field)}; expected "selector" and optionally "labels"`);
  }
  if (!Object.hasOwn(obj, 'selector')) return bad('missing "selector"');
  const selector = obj.selector;
  if (typeof selector !== 'string') return bad(`"selector" must be a string, not ${jsonType(selector)}`);
  let labels: Labels | undefined;
  if (Object.hasOwn(obj, 'labels')) {
    const l = obj.labels;
    if (typeof l !== 'object' || l === null || Array.isArray(l)) {
      return bad(`"labels" must be an object of strings, not ${jsonType(l)}`);
    }
    for (const [k, v] of Object.entries(l)) {
      if (typeof v !== 'string') return bad(`"labels" must be an object of strings; label ${JSON.stringify(k)} is ${jsonType(v)}`);
    }
    labels = l as Labels;
  }
  try {
    const sel = parseSelector(selector);
    return labels === undefined ? { canonical: sel.canonical } : { canonical: sel.canonical, matches: sel.matches(labels) };
  } catch (err) {
    if (err instanceof SelectorError) return { error: err.message };
    throw err;
  }
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

function write(output: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    output.once('error', onError);
    const flushed = output.write(text, (err) => {
      if (err) reject(err);
    });
    const done = (): void => {
      output.removeListener('error', onError);
      resolve();
    };
    if (flushed) done();
    else output.once('drain', done);
  });
}

/** Reads JSON lines from input, writes one JSON line per non-blank input line to output. Returns the exit code (0). */
export async function runSelectorCheck(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<number> {
  const lines = createInterface({ input, crlfDelay: Infinity, terminal: false });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    await write(output, `${JSON.stringify(checkLine(line, lineNo))}\n`);
  }
  return 0;
}
