// A Store over etcd v3 (the `etcd3` npm client). Objects live under `[PREFIX]/egw/v1/<kind>/[<namespace>/]<name>`;
// an object's resourceVersion is its key's mod_revision and the store's revision is etcd's. Writes are planned with
// common.ts's planTxn on a snapshot of the keys they touch, then committed as one etcd transaction conditioned on
// every touched key's mod_revision (or absence); a lost race re-reads and re-plans, so a stale resourceVersion still
// ends in Conflict. Watches are etcd watches without prev_kv (a DELETED event's object, as last stored, is read at the
// revision before the delete), resumed after the last event taken on every reconnect.
//
// Differences from memory/SQLite that callers can see (docs/architecture.md, "Datastore"): a txn is ONE etcd revision,
// so every op of a batch shares one resourceVersion and a key written twice in a batch gives one event; revisions are
// etcd's (a new prefix starts wherever the server is; writes outside the prefix move the revision too); compaction is
// the server's; a batch is limited by etcd's transaction limits. Connection trouble and TLS mistakes become one clear
// Unavailable error within seconds (explainEtcdError), never a hang.
import { Etcd3, isRecoverableError, type IKeyValue, type IRequestOp, type ICompare, type Watcher } from 'etcd3';
import { keyOf, type ObjectKey, type Resource } from '../api/meta.js';
import {
  checkKey,
  checkListArgs,
  checkRevision,
  closedError,
  cloneIn,
  compareKeys,
  decode,
  checkWatchArgs,
  mapKey,
  planTxn,
  type Entry,
} from './common.js';
import {
  StoreError,
  type ListOptions,
  type ListResult,
  type Store,
  type TxnOp,
  type Watch,
  type WatchEvent,
  type WatchHandler,
  type WatchOptions,
} from './types.js';
import { EtcdWatch, type PendingEvent } from './etcd-watch.js';

/** etcd's default --max-txn-ops. */
export const ETCD_MAX_TXN_OPS = 128;
/** etcd's default --max-request-bytes (1.5 MiB); we keep a margin for the request's framing. */
export const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
const REQUEST_MARGIN = 16 * 1024;
/** How often a write re-plans after losing a race on its compare before giving up with Conflict. */
const MAX_ATTEMPTS = 20;

/**
 * How long one try of a call to etcd may take; a call whose try failed with an error etcd3 calls recoverable
 * (unavailable, deadline exceeded …) is tried again, at most ETCD_CALL_ATTEMPTS times, and only while another full try
 * still ends within ETCD_CALL_BUDGET_MS. So a server that accepts connections but never answers fails a call after
 * two tries, 4 s: the clear error within 10 s that README's Datastore section promises; a refused connection fails
 * at once.
 */
export const ETCD_CALL_TIMEOUT_MS = 2000;
export const ETCD_CALL_ATTEMPTS = 3;
export const ETCD_CALL_BUDGET_MS = 5000;

/**
 * etcd3's "global" fault policy, which wraps every unary call (etcd3 1.1.2 calls only `execute` on it), replacing its
 * default (cockatiel's retry, four tries of up to a deadline each).
 */
const retryPolicy = {
  async execute<T>(fn: (ctx: { attempt: number; signal: AbortSignal }) => Promise<T>): Promise<T> {
    const signal = new AbortController().signal;
    const start = Date.now();
    let telling: unknown;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn({ attempt, signal });
      } catch (e) {
        // A retry on a fresh channel often knows only "Last error: null": report the try that said why.
        if (telling === undefined || !/Last error: null/.test(String((e as Error)?.message))) telling = e;
        const again = attempt < ETCD_CALL_ATTEMPTS && Date.now() - start + ETCD_CALL_TIMEOUT_MS <= ETCD_CALL_BUDGET_MS;
        if (!again || !(e instanceof Error) || !isRecoverableError(e)) throw telling;
      }
    }
  },
};

/** PEM text of the TLS material (open.ts reads and checks the files). */
export interface EtcdTls {
  /** CA bundle the server's certificate must chain to (omitted: the system's roots). */
  ca?: Buffer;
  /** Client certificate and its key, for servers with --client-cert-auth; both or neither. */
  cert?: Buffer;
  key?: Buffer;
}

export interface EtcdStoreOptions {
  /** host:port endpoints. */
  endpoints: string[];
  /** Prepended to `/egw/v1/`: '' (default) or e.g. `/tenant-a`. */
  prefix?: string;
  /** With TLS the endpoints are https. */
  tls?: EtcdTls;
}

/**
 * The watch stream's reconnect delays (etcd3's own default grows to 30 s, far longer than a restart of etcd takes):
 * 100 ms doubling to 2 s. An etcd3 IBackoff: `duration` is this delay, `next()` the following one.
 */
function watchBackoff(ms = 100): { duration: number; next(): ReturnType<typeof watchBackoff> } {
  return { duration: ms, next: () => watchBackoff(Math.min(ms * 2, 2000)) };
}

/**
 * etcd3's per-endpoint policy, replacing its default circuit breaker: that one, after three failures, refuses every
 * call for 5 s with "the circuit breaker is open", which hides the real reason (refused, TLS …) from the logs and
 * delays the return to work after an etcd restart. Our callers already back off (the informer, updateWithRetry).
 */
const passThrough = {
  // async: etcd3 also runs a function that throws synchronously through it (markFailed) and expects a rejection.
  async execute<T>(fn: (ctx: { attempt: number; signal: AbortSignal }) => Promise<T>): Promise<T> {
    return fn({ attempt: 1, signal: new AbortController().signal });
  },
};

/**
 * gRPC sets the TLS server name to the endpoint even when it is an IP address, and Node then prints deprecation
 * DEP0123 on every run of the CLI. The certificate is still checked against the IP (its subjectAltName): only that one
 * warning is dropped.
 */
let quieted = false;
function quietIpServername(): void {
  if (quieted) return;
  quieted = true;
  const emit = process.emitWarning.bind(process) as (...a: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const opt = rest[0];
    const code = typeof opt === 'object' && opt ? (opt as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

function bump(b: Buffer): Buffer {
  // The range end of a prefix: the prefix with its last byte incremented (no trailing 0xff in our ASCII keys).
  const c = Buffer.from(b);
  c[c.length - 1]++;
  return c;
}

/**
 * An etcd3/gRPC failure as a user should read it: what went wrong and what to check (the flag to give or drop), then
 * gRPC's own detail without its noise. `secure`: whether we spoke TLS.
 */
export function explainEtcdError(description: string, e: unknown, secure: boolean): StoreError {
  if (e instanceof StoreError) return e;
  const raw = String((e as Error)?.message ?? e);
  const detail = raw
    .replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)/g, '')
    .replace(/\.?\s*Resolution note:.*$/s, '')
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/^No connection established\. Last error: null\.?$/, 'no connection established')
    .replace(/^No connection established\. Last error: (Error: )?/, '')
    .replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):.*$/s, '$1')
    .replace(/\s+/g, ' ')
    .trim();
  let why: string;
  if (/ECONNREFUSED/.test(raw)) why = 'connection refused: is etcd running and listening there?';
  else if (/DEADLINE_EXCEEDED/.test(raw)) {
    why = `no answer within ${ETCD_CALL_TIMEOUT_MS / 1000} s: is it an etcd server, reachable, and ${secure ? 'serving https' : 'serving plain http (for https give --etcd-ca)'}?`;
  } else if (secure && /verify|self[- ]signed|issuer|certificate has expired|altnames|Hostname\/IP does not match/i.test(raw)) {
    why = "TLS: the server's certificate does not check out against --etcd-ca (wrong CA, expired, or not issued for this address)";
  } else if (secure && /bad certificate|certificate required|unknown ca|alert/i.test(raw)) {
    why = 'TLS: the server refused our client certificate (it wants one its CA signed: check --etcd-cert/--etcd-key)';
  } else if (secure && /before secure TLS connection|wrong version number|packet length too long|EPROTO/i.test(raw)) {
    why = 'TLS: the server does not speak TLS (plain http?): drop --etcd-ca/--etcd-cert/--etcd-key';
  } else if (secure && /ECONNRESET/.test(raw)) {
    // A plain-http etcd answers a TLS ClientHello either with an HTTP/2 error (above) or by resetting the connection,
    // depending on how much of the hello it read first; a reset at this point means the same thing in practice.
    why = 'TLS: the server reset the connection during the handshake: it most likely does not speak TLS (plain http?): drop --etcd-ca/--etcd-cert/--etcd-key';
  } else if (!secure && /Failed to connect|ECONNRESET|Connection dropped|Protocol error/i.test(raw)) {
    why = 'the connection failed: if the server serves https, give --etcd-ca (and --etcd-cert/--etcd-key if it asks for a client certificate)';
  } else if (/UNAVAILABLE/i.test(raw)) why = 'etcd is unavailable';
  else why = 'etcd call failed';
  return new StoreError('Unavailable', `${description}: ${why} (${detail})`);
}

function isCompactedMessage(e: unknown): boolean {
  return /compacted/i.test((e as Error)?.message ?? String(e));
}

export class EtcdStore implements Store {
  readonly description: string;
  private readonly client: Etcd3;
  /** `[prefix]/egw/v1/` */
  private readonly root: string;
  private readonly watches = new Set<EtcdWatch>();
  /** watchKeyDeletion's watchers, cancelled with the store. */
  private readonly keyWatchers = new Set<Watcher>();
  private closed = false;
  private readonly secure: boolean;
  /** The last failure that said why (gRPC, reconnecting in the background, often says only "no connection"). */
  private lastWhy: string | undefined;

  constructor(opts: EtcdStoreOptions) {
    if (!opts.endpoints.length) throw new StoreError('Invalid', 'etcd: at least one HOST:PORT endpoint is needed');
    const prefix = (opts.prefix ?? '').replace(/\/+$/, '');
    this.description = `etcd://${opts.endpoints.join(',')}${prefix}`;
    this.root = `${prefix}/egw/v1/`;
    const tls = opts.tls;
    if (tls && !tls.cert !== !tls.key) throw new StoreError('Invalid', 'etcd: a client certificate needs its key, and a key its certificate');
    const secure = !!(tls && (tls.ca || tls.cert));
    this.secure = secure;
    if (secure && opts.endpoints.some((e) => /^[0-9.]+:|^\[/.test(e))) quietIpServername();
    this.client = new Etcd3({
      hosts: opts.endpoints.map((e) => `${secure ? 'https' : 'http'}://${e}`),
      ...(secure ? { credentials: { rootCertificate: tls?.ca as Buffer, privateKey: tls?.key, certChain: tls?.cert } } : {}),
      // Every unary call gets a deadline (without one, a server that never answers hangs the call forever); watch
      // streams run for as long as they are wanted.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }),
      faultHandling: { global: retryPolicy as never, host: () => passThrough as never, watchBackoff: watchBackoff() as never },
    });
  }

  private check(): void {
    if (this.closed) throw closedError(this.description);
  }

  private unavailable(e: unknown): StoreError {
    const err = explainEtcdError(this.description, e, this.secure);
    if (err.code !== 'Unavailable') return err;
    if (err.message.endsWith('(no connection established)') && this.lastWhy) {
      return new StoreError('Unavailable', `${this.lastWhy}, still (no connection established)`);
    }
    this.lastWhy = err.message;
    return err;
  }

  /** The etcd key of an object. */
  keyPath(key: ObjectKey): string {
    return key.namespace ? `${this.root}${key.kind}/${key.namespace}/${key.name}` : `${this.root}${key.kind}/${key.name}`;
  }

  /**
   * Something under our root that egw did not write (the "wrong prefix" of README's Datastore section): an error that
   * names the key, never a crash or a silently skipped object.
   */
  private foreign(path: string, why: string): StoreError {
    return new StoreError(
      'Invalid',
      `${this.description}: key ${path} does not hold an egw object (${why}); egw keeps only its own objects under ${this.root}: is the prefix right?`,
    );
  }

  /** The object key of an etcd key under our root. */
  private keyOfPath(path: string): ObjectKey {
    const parts = path.slice(this.root.length).split('/');
    if (path.startsWith(this.root) && parts.every((p) => p !== '')) {
      if (parts.length === 2) return { kind: parts[0], namespace: '', name: parts[1] };
      if (parts.length === 3) return { kind: parts[0], namespace: parts[1], name: parts[2] };
    }
    throw this.foreign(path, `not of the form ${this.root}<kind>/[<namespace>/]<name>`);
  }

  /** Decodes a value egw stored, checking that it is the object its key names. */
  private decodeAt(path: string, value: Buffer): Resource {
    let obj: Resource;
    try {
      obj = decode(value.toString('utf8'));
    } catch (e) {
      throw this.foreign(path, `not JSON: ${(e as Error).message}`);
    }
    const m = (obj as unknown as { metadata?: unknown })?.metadata as Resource['metadata'] | undefined;
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj) || typeof obj.kind !== 'string' || typeof m !== 'object' || m === null || typeof m.name !== 'string') {
      throw this.foreign(path, 'not an object with kind and metadata.name');
    }
    const key = this.keyOfPath(path);
    if (key.kind !== obj.kind || key.name !== m.name || key.namespace !== (m.namespace ?? '')) {
      throw this.foreign(path, `it holds ${obj.kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name}`);
    }
    return obj;
  }

  /** The object a kv holds, with resourceVersion = its mod_revision. */
  private objectOf(kv: IKeyValue, path = kv.key.toString('utf8')): Resource {
    const obj = this.decodeAt(path, kv.value);
    obj.metadata.resourceVersion = String(kv.mod_revision);
    return obj;
  }

  private entryOf(key: ObjectKey, kv: IKeyValue): Entry {
    this.decodeAt(kv.key.toString('utf8'), kv.value);
    return { key, value: kv.value.toString('utf8'), createRevision: Number(kv.create_revision), modRevision: Number(kv.mod_revision) };
  }

  async get(key: ObjectKey): Promise<Resource | undefined> {
    this.check();
    const k = checkKey(key);
    let res;
    try {
      res = await this.client.kv.range({ key: Buffer.from(this.keyPath(k)) });
    } catch (e) {
      throw this.unavailable(e);
    }
    return res.kvs.length ? this.objectOf(res.kvs[0]) : undefined;
  }

  async list(kind: string, opts?: ListOptions): Promise<ListResult> {
    this.check();
    const { namespace, match } = checkListArgs(kind, opts);
    const p = Buffer.from(`${this.root}${kind}/`);
    let res;
    try {
      res = await this.client.kv.range({ key: p, range_end: bump(p) });
    } catch (e) {
      throw this.unavailable(e);
    }
    const found: { key: ObjectKey; obj: Resource }[] = [];
    for (const kv of res.kvs) {
      const key = this.keyOfPath(kv.key.toString('utf8'));
      if (key.kind !== kind) continue;
      if (namespace !== undefined && key.namespace !== namespace) continue;
      found.push({ key, obj: this.objectOf(kv) });
    }
    found.sort((a, b) => compareKeys(a.key, b.key));
    const items = found.filter((f) => match(f.obj.metadata.labels)).map((f) => f.obj);
    return { items, revision: Number(res.header.revision) };
  }

  async create(obj: Resource): Promise<Resource> {
    return (await this.apply([{ op: 'create', object: obj }], true))[0];
  }

  async update(obj: Resource): Promise<Resource> {
    return (await this.apply([{ op: 'update', object: obj }], true))[0];
  }

  async delete(key: ObjectKey, opts?: { resourceVersion?: string }): Promise<Resource> {
    return (await this.apply([{ op: 'delete', key, resourceVersion: opts?.resourceVersion }], true))[0];
  }

  async txn(ops: TxnOp[]): Promise<Resource[]> {
    return this.apply(ops, false);
  }

  /** The keys a batch touches; ops too broken to name a key are left to planTxn to reject. */
  private touchedKeys(ops: readonly TxnOp[]): ObjectKey[] {
    const keys = new Map<string, ObjectKey>();
    for (const op of ops) {
      try {
        const k = op.op === 'delete' ? checkKey(op.key) : keyOf(cloneIn(op.object));
        keys.set(mapKey(k), k);
      } catch {
        // planTxn reports it.
      }
    }
    return [...keys.values()];
  }

  private async apply(ops: readonly TxnOp[], single: boolean): Promise<Resource[]> {
    this.check();
    if (!Array.isArray(ops)) return planTxn(ops, 0, () => undefined, single).results; // throws Invalid
    const keys = this.touchedKeys(ops);
    if (keys.length > ETCD_MAX_TXN_OPS) {
      throw new StoreError(
        'Invalid',
        `txn: ${ops.length} ops touch ${keys.length} objects; an etcd transaction takes at most ${ETCD_MAX_TXN_OPS} (split the batch)`,
      );
    }
    for (let attempt = 1; ; attempt++) {
      // A consistent snapshot of every touched key.
      let snap;
      try {
        snap = await this.client.kv.txn({
          success: keys.map((k): IRequestOp => ({ request_range: { key: Buffer.from(this.keyPath(k)) } })),
        });
      } catch (e) {
        throw this.unavailable(e);
      }
      const read = new Map<string, Entry>();
      keys.forEach((k, i) => {
        const kv = snap.responses[i]?.response_range?.kvs?.[0];
        if (kv) read.set(mapKey(k), this.entryOf(k, kv));
      });
      const plan = planTxn(ops, Number(snap.header.revision), (k) => read.get(mapKey(k)), single, true);
      if (plan.results.length === 0) return [];
      const compare: ICompare[] = keys.map((k) => {
        const e = read.get(mapKey(k));
        return e
          ? { key: Buffer.from(this.keyPath(k)), target: 'Mod', result: 'Equal', mod_revision: e.modRevision }
          : { key: Buffer.from(this.keyPath(k)), target: 'Create', result: 'Equal', create_revision: 0 };
      });
      const success: IRequestOp[] = [];
      let bytes = 0;
      for (const w of plan.writes.values()) {
        const key = Buffer.from(this.keyPath(w.key));
        bytes += key.length * 2;
        if (w.entry) {
          const value = Buffer.from(w.entry.value, 'utf8');
          bytes += value.length;
          success.push({ request_put: { key, value } });
        } else if (read.has(mapKey(w.key))) {
          success.push({ request_delete_range: { key } });
        }
        // else: created and deleted within the batch; nothing to write.
      }
      if (bytes > ETCD_MAX_REQUEST_BYTES - REQUEST_MARGIN) {
        throw new StoreError(
          'Invalid',
          `txn: the batch is ${bytes} bytes; an etcd request takes at most ${ETCD_MAX_REQUEST_BYTES} bytes by default (split the batch or shrink the objects)`,
        );
      }
      let res;
      try {
        res = await this.client.kv.txn({ compare, success });
      } catch (e) {
        throw this.unavailable(e);
      }
      if (res.succeeded) {
        const rev = String(res.header.revision);
        for (const r of plan.results) r.metadata.resourceVersion = rev;
        return plan.results;
      }
      if (attempt >= MAX_ATTEMPTS) {
        throw new StoreError('Conflict', `${this.description}: txn: gave up after ${attempt} attempts; the objects kept changing underneath`);
      }
    }
  }

  async revision(): Promise<number> {
    this.check();
    try {
      // Any range answers with the current revision in its header.
      const res = await this.client.kv.range({ key: Buffer.from(this.root), limit: 1, keys_only: true });
      return Number(res.header.revision);
    } catch (e) {
      throw this.unavailable(e);
    }
  }

  private compactedError(from: number, detail?: string): StoreError {
    return new StoreError(
      'Compacted',
      `${this.description}: history has been compacted; cannot watch from revision ${from}${detail ? ` (${detail})` : ''} (list again and watch from the list's revision)`,
    );
  }

  async watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    const { from, kind, namespace } = checkWatchArgs(opts, handler);
    // etcd accepts a watch starting at the compact revision itself; our contract needs every event after `from`.
    let kept: boolean;
    try {
      kept = await this.historyKeptAfter(from);
    } catch (e) {
      throw this.unavailable(e);
    }
    if (!kept) throw this.compactedError(from);
    const prefix = kind === undefined ? this.root : namespace === undefined ? `${this.root}${kind}/` : `${this.root}${kind}/${namespace}/`;
    const w = new EtcdWatch(this, prefix, from, namespace, handler, opts.onError, (x) => this.watches.delete(x));
    this.watches.add(w);
    try {
      await w.start(this.client);
    } catch (e) {
      this.watches.delete(w);
      throw this.unavailable(e);
    }
    return w;
  }

  /**
   * @internal For EtcdWatch: the events of one watch response, in order. A delete comes without its object (the
   * watch does not ask for prev_kv: etcd would then read the previous value of every PUT for every watcher, which
   * costs the server a range per event per watcher); `withDeletedObjects` reads those few before delivery.
   */
  eventsOf(events: { type: string; kv: IKeyValue }[], namespace: string | undefined): PendingEvent[] {
    const out: PendingEvent[] = [];
    for (const ev of events) {
      const path = ev.kv.key.toString('utf8');
      const key = this.keyOfPath(path);
      if (namespace !== undefined && key.namespace !== namespace) continue;
      const revision = Number(ev.kv.mod_revision);
      if (ev.type === 'Delete' || ev.type === 'DELETE' || (ev.type as unknown) === 1) {
        out.push({ type: 'DELETED', revision, path: ev.kv.key });
      } else {
        out.push({ type: Number(ev.kv.version) === 1 ? 'ADDED' : 'MODIFIED', revision, object: this.objectOf(ev.kv, path) });
      }
    }
    return out;
  }

  /**
   * @internal Fills in each delete's object: the key's value just before the deleting revision, with
   * resourceVersion = that revision. If that version was compacted away first, the watch cannot say what was
   * deleted: that is `Compacted`, and the watcher lists again.
   */
  async withDeletedObjects(batch: PendingEvent[]): Promise<WatchEvent[]> {
    if (!batch.some((e) => 'path' in e)) return batch as WatchEvent[];
    return Promise.all(
      batch.map(async (e): Promise<WatchEvent> => {
        if (!('path' in e)) return e;
        let res;
        try {
          res = await this.client.kv.range({ key: e.path, revision: String(e.revision - 1) });
        } catch (err) {
          if (isCompactedMessage(err)) throw this.compactedError(e.revision - 1, `the object deleted at revision ${e.revision} was compacted before the watch read it`);
          throw this.unavailable(err);
        }
        const kv = res.kvs[0];
        if (!kv) throw new StoreError('Unavailable', `${this.description}: etcd reported a delete of ${e.path.toString('utf8')} at revision ${e.revision}, but the key held nothing just before`);
        const obj = this.objectOf(kv);
        obj.metadata.resourceVersion = String(e.revision);
        return { type: 'DELETED', revision: e.revision, object: obj };
      }),
    );
  }

  /**
   * @internal Whether etcd still has every revision after `rev` (false iff `rev` is before its compact revision): a
   * range at `rev` is refused exactly then. etcd's first revision is 1.
   */
  async historyKeptAfter(rev: number): Promise<boolean> {
    try {
      await this.client.kv.range({ key: Buffer.from(this.root), limit: 1, keys_only: true, revision: Math.max(rev, 1) });
      return true;
    } catch (e) {
      if (isCompactedMessage(e)) return false;
      if (/future revision/i.test((e as Error)?.message ?? '')) return true;
      throw e;
    }
  }

  /** @internal */
  compactedFor(from: number, detail: string): StoreError {
    return this.compactedError(from, detail);
  }

  async compact(revision: number): Promise<void> {
    this.check();
    checkRevision('compact: revision', revision);
    const current = await this.revision();
    if (revision > current) throw new StoreError('Invalid', `compact: revision ${revision} is after the current revision ${current}`);
    try {
      await this.client.kv.compact({ revision, physical: true });
    } catch (e) {
      // Compacting at or before the compact revision again is a no-op, as for the other backends.
      if (isCompactedMessage(e)) return;
      throw this.unavailable(e);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    await Promise.all([...this.keyWatchers].map((w) => w.cancel().catch(() => undefined)));
    this.client.close();
  }

  /** A failure of the raw client (see etcd()) as this store's own calls report it: one line, what to check. */
  explainError(e: unknown): StoreError {
    return this.unavailable(e);
  }

  /**
   * Watches one key that is not an object (the controller's leader key, src/controller/leader.ts) for its deletion:
   * the store's watches stay in the store, and close with it. It connects in the background (etcd3 reconnects it),
   * so a down etcd holds nobody up; a watch that fails reports to onError and is cancelled (the caller opens another).
   */
  watchKeyDeletion(key: string, onDelete: () => void, onError: (e: Error) => void): { cancel(): Promise<void> } {
    this.check();
    const w = this.client.watch().key(key).watcher();
    this.keyWatchers.add(w);
    const cancel = async (): Promise<void> => {
      this.keyWatchers.delete(w);
      await w.cancel().catch(() => undefined);
    };
    w.on('delete', () => onDelete());
    w.on('error', (e: Error) => {
      onError(e);
      void cancel();
    });
    return { cancel };
  }

  /** The raw client and the prefix ('' or `/a/b`), for state that is not an object: the controller's leader lease (src/controller/leader.ts). */
  etcd(): { client: Etcd3; prefix: string } {
    this.check();
    return { client: this.client, prefix: this.root.slice(0, -'/egw/v1/'.length) };
  }
}
