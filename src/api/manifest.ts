// Reading manifests: YAML (or JSON) text with one or more documents, keeping where each field was written so that
// every error can name the file, line and column. Pure: the caller reads the files.
import { LineCounter, parseAllDocuments, isMap, isSeq, isPair, isScalar, type Document, type Node } from 'yaml';

export type PathSegment = string | number;
export type FieldPath = PathSegment[];

/** `spec.rules[1].destination.cidr` */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export interface Position {
  line: number;
  column: number;
}

/** One object read from a manifest, with a way to find where any of its fields was written. */
export interface RawObject {
  file: string;
  /** 0-based index of the YAML document in the file. */
  document: number;
  value: unknown;
  /** Path from the document root to this object (non-empty for the items of a `kind: List`). */
  root: FieldPath;
  /** Where the value at `path` (relative to this object) was written; `key` = point at the field's key. */
  locate(path: FieldPath, key?: boolean): Position;
}

export interface ManifestProblem {
  file: string;
  line: number;
  column: number;
  message: string;
}

export function formatProblem(p: ManifestProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.message}`;
}

export interface ParsedManifest {
  objects: RawObject[];
  problems: ManifestProblem[];
}

/** Parses every document of a file. A document that is not valid YAML is a problem; empty documents are skipped. */
export function parseManifest(text: string, file: string): ParsedManifest {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  const objects: RawObject[] = [];
  const problems: ManifestProblem[] = [];
  const at = (offset: number): Position => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  if (!Array.isArray(docs)) {
    // parseAllDocuments returns an EmptyStream for empty input
    return { objects, problems };
  }
  docs.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = at(e.pos[0]);
        problems.push({ file, ...pos, message: `invalid YAML: ${firstLine(e.message)}` });
      }
      return;
    }
    if (doc.contents === null) return;
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    const make = (v: unknown, root: FieldPath): RawObject => ({
      file,
      document: index,
      value: v,
      root,
      locate: (path, key) => at(offsetOf(doc, [...root, ...path], key ?? false)),
    });
    if (isPlainObject(value) && value.kind === 'List' && Array.isArray(value.items)) {
      value.items.forEach((item, i) => objects.push(make(item, ['items', i])));
    } else {
      objects.push(make(value, []));
    }
  });
  return { objects, problems };
}

function firstLine(s: string): string {
  return s.split('\n')[0].trim();
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Offset of the deepest node on `path` that exists (so a missing field points at its parent). */
function offsetOf(doc: Document, path: FieldPath, key: boolean): number {
  let node: unknown = doc.contents;
  let best = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return best;
      const keyStart = rangeStart(pair.key);
      if (last && key && keyStart !== undefined) return keyStart;
      node = pair.value;
      best = rangeStart(node) ?? keyStart ?? best;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) return best;
      node = item;
      best = rangeStart(node) ?? best;
    } else {
      return best;
    }
  }
  return best;
}

function rangeStart(node: unknown): number | undefined {
  const r = (node as Node | null | undefined)?.range;
  return r ? r[0] : undefined;
}
