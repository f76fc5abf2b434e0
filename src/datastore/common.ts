// Logic shared by every backend so they behave identically: validation, copying, error messages, filters, and the
// planning of a batch of writes (`planTxn`), which a backend runs against its own storage inside its own transaction.
import { randomUUID } from 'node:crypto';
import { keyOf, kindInfo, type ObjectKey, type Resource } from '../api/meta.js';
import { labelMatcher } from './labelselector.js';
import { StoreError, type ListOptions, type TxnOp, type WatchEvent, type WatchEventType, type WatchOptions } from './types.js';

/** An object as a backend stores it: its JSON text plus its revisions. */
export interface Entry {
  key: ObjectKey;
  /** JSON of the full object, metadata.resourceVersion included. */
  value: string;
  createRevision: number;
  modRevision: number;
}

/** One row of history. */
export interface StoredEvent {
  revision: number;
  type: WatchEventType;
  kind: string;
  namespace: string;
  name: string;
  /** JSON of the object after the change (for DELETED: as last stored, resourceVersion = the delete revision). */
  object: string;
  /** When the change was committed (ms since the epoch), where the backend keeps it (WatchEvent.writtenAt). */
  writtenAt?: number | null;
}

/** `EgressGateway default/red`, `IPPool pool-a`: how error messages name an object. */
export function describeKey(key: { kind: string; namespace?: string; name: string }): string {
  return key.namespace ? `${key.kind} ${key.namespace}/${key.name}` : `${key.kind} ${key.name}`;
}

/** A string identifying a key, for maps. */
export function mapKey(key: ObjectKey): string {
  return `${key.kind}\u0000${key.namespace}\u0000${key.name}`;
}

/** Code-point order (= SQLite's BINARY collation on UTF-8), so every backend sorts names the same way. */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) as number;
    const y = b.codePointAt(i) as number;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

export function compareKeys(a: ObjectKey, b: ObjectKey): number {
  return compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name);
}

export function decode(json: string): Resource {
  return JSON.parse(json) as Resource;
}

export function eventOf(e: StoredEvent): WatchEvent {
  const ev: WatchEvent = { type: e.type, revision: e.revision, object: decode(e.object) };
  if (typeof e.writtenAt === 'number') ev.writtenAt = e.writtenAt;
  return ev;
}

function invalid(message: string): StoreError {
  return new StoreError('Invalid', message);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkStringMap(what: string, field: string, v: unknown): void {
  if (v === undefined) return;
  if (!isPlainObject(v)) throw invalid(`${what}: metadata.${field} must be a map of strings`);
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw invalid(`${what}: metadata.${field}[${JSON.stringify(k)}] must be a string`);
  }
}

/**
 * Deep-copies an object on its way into the store (through JSON, so every backend stores exactly what SQLite would)
 * and checks the envelope. Known kinds must be correctly scoped: namespaced kinds need metadata.namespace,
 * cluster-scoped kinds must not have one ('' is dropped).
 */
export function cloneIn(obj: Resource): Resource {
  if (!isPlainObject(obj)) throw invalid('object must be a JSON object with apiVersion, kind and metadata');
  const what0 =
    typeof obj.kind === 'string' && isPlainObject(obj.metadata) && typeof obj.metadata.name === 'string'
      ? describeKey({ kind: obj.kind, namespace: typeof obj.metadata.namespace === 'string' ? obj.metadata.namespace : '', name: obj.metadata.name })
      : 'object';
  let json: string | undefined;
  try {
    json = JSON.stringify(obj);
  } catch (e) {
    throw invalid(`${what0}: not JSON-serializable: ${(e as Error).message}`);
  }
  if (json === undefined) throw invalid(`${what0}: not JSON-serializable`);
  const c = JSON.parse(json) as Resource;
  if (typeof c.kind !== 'string' || c.kind === '') throw invalid(`${what0}: kind must be a non-empty string`);
  if (typeof c.apiVersion !== 'string') throw invalid(`${what0}: apiVersion must be a string`);
  if (!isPlainObject(c.metadata)) throw invalid(`${what0}: metadata must be an object`);
  const m = c.metadata;
  if (typeof m.name !== 'string' || m.name === '') throw invalid(`${c.kind}: metadata.name must be a non-empty string`);
  if (m.namespace !== undefined && typeof m.namespace !== 'string') throw invalid(`${what0}: metadata.namespace must be a string`);
  if (m.namespace === '') delete m.namespace;
  const what = describeKey({ kind: c.kind, namespace: m.namespace, name: m.name });
  if (m.name.includes('/')) throw invalid(`${what}: metadata.name must not contain '/'`);
  if (m.namespace?.includes('/')) throw invalid(`${what}: metadata.namespace must not contain '/'`);
  const info = kindInfo(c.kind);
  if (info?.namespaced && !m.namespace) throw invalid(`${what}: ${c.kind} is namespaced; metadata.namespace is required`);
  if (info && !info.namespaced && m.namespace) throw invalid(`${what}: ${c.kind} is cluster-scoped; metadata.namespace must be empty`);
  checkStringMap(what, 'labels', m.labels);
  checkStringMap(what, 'annotations', m.annotations);
  if (m.resourceVersion !== undefined && typeof m.resourceVersion !== 'string') {
    throw invalid(`${what}: metadata.resourceVersion must be a string`);
  }
  return c;
}

/** Checks a key given by a caller; namespace may be omitted for cluster-scoped kinds. */
export function checkKey(key: ObjectKey): ObjectKey {
  if (!isPlainObject(key)) throw invalid('key must be an object {kind, namespace, name}');
  const k = key as unknown as Record<string, unknown>;
  if (typeof k.kind !== 'string' || k.kind === '') throw invalid('key: kind must be a non-empty string');
  if (typeof k.name !== 'string' || k.name === '') throw invalid(`key: ${k.kind}: name must be a non-empty string`);
  if (k.namespace !== undefined && typeof k.namespace !== 'string') throw invalid(`key: ${k.kind} ${k.name}: namespace must be a string`);
  return { kind: k.kind, namespace: (k.namespace as string | undefined) ?? '', name: k.name };
}


export function checkRevision(what: string, rev: unknown): number {
  if (typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 0) {
    throw invalid(`${what} must be a non-negative integer, got ${JSON.stringify(rev)}`);
  }
  return rev;
}

/**
 * The namespace a list or watch actually filters on: none when unset or '' (all namespaces, as in Kubernetes), and
 * none for a known cluster-scoped kind (Kubernetes ignores the namespace for those).
 */
export function effectiveNamespace(kind: string | undefined, namespace: string | undefined): string | undefined {
  if (namespace === undefined || namespace === '') return undefined;
  if (typeof namespace !== 'string') throw invalid('namespace must be a string');
  if (kind !== undefined) {
    const info = kindInfo(kind);
    if (info && !info.namespaced) return undefined;
  }
  return namespace;
}

export function checkListArgs(kind: string, opts: ListOptions | undefined): {
  namespace: string | undefined;
  match: (labels: Record<string, string> | undefined) => boolean;
} {
  if (typeof kind !== 'string' || kind === '') throw invalid('list: kind must be a non-empty string');
  const sel = opts?.labelSelector;
  if (sel !== undefined && typeof sel !== 'string' && typeof sel !== 'function') {
    throw invalid('list: labelSelector must be a selector string or a predicate');
  }
  return { namespace: effectiveNamespace(kind, opts?.namespace), match: labelMatcher(sel) };
}

/** Checks a watch's arguments the same way in every backend: the revision to start after, the kind and namespace filters. */
export function checkWatchArgs(opts: WatchOptions, handler: unknown): { from: number; kind: string | undefined; namespace: string | undefined } {
  if (typeof handler !== 'function') throw invalid('watch: handler must be a function');
  const from = checkRevision('watch: fromRevision', opts?.fromRevision);
  const kind = opts.kind;
  if (kind !== undefined && (typeof kind !== 'string' || kind === '')) throw invalid('watch: kind must be a non-empty string');
  return { from, kind, namespace: effectiveNamespace(kind, opts.namespace) };
}

/** A watch stopped on its own: tell its onError once (an onError that throws is logged, never rethrown). */
export function reportWatchStop(onError: ((err: unknown) => void) | undefined, err: unknown): void {
  if (onError) {
    try {
      onError(err);
    } catch (e) {
      console.error('egw datastore: watch onError handler threw:', e);
    }
  } else {
    console.error('egw datastore: watch stopped:', err);
  }
}

function conflict(what: string, given: string, stored: number): StoreError {
  return new StoreError(
    'Conflict',
    `${what}: conflict: resourceVersion ${given} does not match the stored ${stored} (the object has been modified; read it again and retry)`,
  );
}

export interface TxnPlan {
  /** Final state per touched key (null = deleted), in first-touch order. */
  writes: Map<string, { key: ObjectKey; entry: Entry | null }>;
  events: StoredEvent[];
  results: Resource[];
  /** The store revision after the batch. */
  revision: number;
}

/**
 * Works out the effect of `ops` applied in order on top of `read` (the store at `revision`), without writing anything.
 * Op i gets revision + i + 1, or with `oneRevision` (etcd: a transaction is one revision) every op gets revision + 1,
 * so a later op of the batch checks an earlier op's write against the resourceVersion it will really have. Throws the
 * first op's StoreError; for a real txn (`single` false) the message says which op failed. The backend then applies
 * `writes` and appends `events` atomically, or, on error, applies nothing.
 */
export function planTxn(
  ops: readonly TxnOp[],
  revision: number,
  read: (key: ObjectKey) => Entry | undefined,
  single = false,
  oneRevision = false,
): TxnPlan {
  if (!Array.isArray(ops)) throw invalid('txn: ops must be an array');
  const writes = new Map<string, { key: ObjectKey; entry: Entry | null }>();
  const current = (key: ObjectKey): Entry | undefined => {
    const w = writes.get(mapKey(key));
    if (w) return w.entry ?? undefined;
    return read(key);
  };
  const events: StoredEvent[] = [];
  const results: Resource[] = [];
  let rev = revision;
  const nowMs = Date.now();
  const now = new Date(nowMs).toISOString();

  ops.forEach((op, i) => {
    try {
      rev = oneRevision ? revision + 1 : rev + 1;
      if (!isPlainObject(op as unknown)) throw invalid('op must be an object {op, ...}');
      switch (op.op) {
        case 'create':
        case 'update':
        case 'put': {
          if (op.object === undefined) throw invalid(`'${op.op}' needs an object`);
          const obj = cloneIn(op.object);
          const key = keyOf(obj);
          const what = describeKey(key);
          const prev = current(key);
          if (op.op === 'create' && prev) throw new StoreError('AlreadyExists', `${what}: already exists`);
          if (op.op === 'update') {
            if (!prev) throw new StoreError('NotFound', `${what}: not found`);
            const given = obj.metadata.resourceVersion;
            if (given !== undefined && given !== '' && given !== String(prev.modRevision)) throw conflict(what, given, prev.modRevision);
          }
          if (prev) {
            const old = decode(prev.value).metadata;
            if (old.uid !== undefined) obj.metadata.uid = old.uid;
            else delete obj.metadata.uid;
            if (old.creationTimestamp !== undefined) obj.metadata.creationTimestamp = old.creationTimestamp;
            else delete obj.metadata.creationTimestamp;
          } else {
            obj.metadata.uid = randomUUID();
            obj.metadata.creationTimestamp = now;
          }
          obj.metadata.resourceVersion = String(rev);
          const value = JSON.stringify(obj);
          const entry: Entry = { key, value, createRevision: prev ? prev.createRevision : rev, modRevision: rev };
          writes.set(mapKey(key), { key, entry });
          events.push({ revision: rev, type: prev ? 'MODIFIED' : 'ADDED', ...key, object: value, writtenAt: nowMs });
          results.push(decode(value));
          break;
        }
        case 'delete': {
          const key = checkKey(op.key);
          const what = describeKey(key);
          const rv = op.resourceVersion;
          if (rv !== undefined && typeof rv !== 'string') throw invalid(`${what}: resourceVersion must be a string`);
          const prev = current(key);
          if (!prev) throw new StoreError('NotFound', `${what}: not found`);
          if (rv !== undefined && rv !== '' && rv !== String(prev.modRevision)) throw conflict(what, rv, prev.modRevision);
          const obj = decode(prev.value);
          obj.metadata.resourceVersion = String(rev);
          const value = JSON.stringify(obj);
          writes.set(mapKey(key), { key, entry: null });
          events.push({ revision: rev, type: 'DELETED', ...key, object: value, writtenAt: nowMs });
          results.push(decode(value));
          break;
        }
        default:
          throw invalid(`unknown op ${JSON.stringify((op as { op?: unknown }).op)} (expected create, update, put or delete)`);
      }
    } catch (e) {
      if (single || !(e instanceof StoreError)) throw e;
      throw new StoreError(e.code, `txn op ${i + 1} of ${ops.length} (${describeOp(op)}): ${e.message}`);
    }
  });
  return { writes, events, results, revision: rev };
}

function describeOp(op: TxnOp): string {
  const name = isPlainObject(op) ? (op as { op?: unknown }).op : undefined;
  return typeof name === 'string' ? name : 'invalid';
}

export function closedError(description: string): StoreError {
  return new StoreError('Unavailable', `${description}: the store is closed`);
}
