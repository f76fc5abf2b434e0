// Leader election for `egw controller` (docs/behaviour.md §4.1): any number of controllers run; exactly one acts.
//
// One interface, Elector.run(signal, { onElected, onDeposed }), and two mechanisms behind it:
// - etcd (an EtcdStore): a real etcd lease (TTL = leaseMs) kept alive every renewEveryMs, and the leader key
//   `[PREFIX]/egw/leader/controller`, created only if absent (txn on create_revision == 0) with the lease attached.
//   The key lies outside the objects' `[PREFIX]/egw/v1/`, so no list or watch of objects ever sees it. etcd deletes
//   it when the lease expires (or is revoked on a clean stop); followers watch it and campaign when it goes.
// - any other Store (SQLite, memory): a lock record, the object `Lease egw-system/egw-controller` (the shape of
//   Kubernetes' coordination.k8s.io/v1 Lease), created, renewed and taken over with resourceVersion-checked writes.
//   A follower takes it over once it has seen the record unchanged for leaseMs by its own monotonic clock, so no two
//   processes' clocks are ever compared; a clean stop clears holderIdentity and a follower takes over at once.
//
// Safety (the leader acts only while it holds leadership): each success is a *term*. term.holds() is true until
// renewDeadlineMs after the START of the last successful renewal (or of the winning campaign). Nobody else can take
// over before leaseMs after that start: etcd's lease runs from when etcd processed the keep-alive, and a follower's
// clock starts when it saw the renewed record, both later. renewDeadlineMs < leaseMs leaves the margin in which a
// write started in time lands. term.signal aborts at the deadline (or when the elector stops), which stops the
// controller; fencedStore refuses any write once holds() is false. A deposed leader goes back to following.
//
// Identity: `--id` (default `<hostname>/<pid>`). Each process also draws a random instance token, so two processes
// given the same id still exclude each other.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Etcd3, Lease } from 'etcd3';
import type { ObjectKey, Resource } from '../api/meta.js';
import type { EtcdStore } from '../datastore/etcd.js';
import { isRaceError } from '../datastore/retry.js';
import { StoreError, type Store } from '../datastore/types.js';
import { createLogger, type Logger } from '../log.js';
import { errText, sleep } from '../util.js';

export interface ElectionTiming {
  /** How long leadership outlives its last renewal: the etcd lease TTL, or the lock's leaseDurationSeconds. */
  leaseMs: number;
  /** How often the leader renews. */
  renewEveryMs: number;
  /** The leader stops acting this long after the start of its last successful renewal (< leaseMs). */
  renewDeadlineMs: number;
  /** Followers of a lock poll it this often; a leader retries a failed renewal this often. */
  retryMs: number;
}

/**
 * The defaults: a dead leader (kill -9) is replaced within leaseMs + retryMs of its last renewal, plus etcd's
 * expiry check (every 0.5 s), so a takeover takes < 5 s (docs/behaviour.md §4.1).
 */
export const ELECTION_TIMING: Readonly<ElectionTiming> = { leaseMs: 3000, renewEveryMs: 1000, renewDeadlineMs: 2000, retryMs: 250 };

/** The lock record of the SQLite and memory stores. */
export const LEADER_LEASE_KEY: ObjectKey = { kind: 'Lease', namespace: 'egw-system', name: 'egw-controller' };
const LEASE_API_VERSION = 'coordination.k8s.io/v1';
/** The lock record's annotation that names the holding process (see "Identity" above). */
const INSTANCE_ANNOTATION = 'egw.dev/holder-instance';

/** The etcd leader key under a store prefix ('' or `/a/b`). */
export function etcdLeaderKey(prefix: string): string {
  return `${prefix}/egw/leader/controller`;
}

/** `<hostname>/<pid>`: the default `--id`. */
export function defaultElectorId(): string {
  return `${hostname()}/${process.pid}`;
}

/** One stretch of leadership. */
export interface Term {
  /** Aborts when this process stops leading (deposed, or the elector stops). */
  readonly signal: AbortSignal;
  /** True while leadership is held and the renew deadline has not passed: checked before every write. */
  holds(): boolean;
  /** When the term began (wall clock). */
  readonly since: Date;
}

export interface ElectionHandlers {
  /**
   * This process leads now. The returned promise should settle once term.signal has aborted: the elector waits for
   * it before it campaigns again, so two terms of one process never overlap.
   */
  onElected(term: Term): void | Promise<void>;
  /** Leadership ended for another reason than the elector being stopped. */
  onDeposed?(why: string): void;
}

export interface Elector {
  readonly id: string;
  /** How leadership is held, for logs and `egw status`. */
  readonly mechanism: string;
  /** Campaigns, leads and follows until `signal` aborts; then gives leadership up. Never rejects for store errors. */
  run(signal: AbortSignal, handlers: ElectionHandlers): Promise<void>;
}

/** Who leads, as stored (for `egw status`). */
export interface LeaderInfo {
  holder: string;
  /** When the holder took leadership (RFC 3339). */
  since: string;
  /** The lock's last renewal (RFC 3339); etcd keeps the lease itself, so absent there. */
  renewed?: string;
  mechanism: string;
  /** The lock has not been renewed for longer than its duration: its holder is gone, a follower takes over. */
  stale?: boolean;
}

export interface ElectorOptions {
  id?: string;
  log?: Logger;
  timing?: Partial<ElectionTiming>;
}

/**
 * An EtcdStore, told without importing its class (and so the etcd client) at start-up: only open.ts loads it, when
 * an etcd:// datastore is opened.
 */
function isEtcdStore(store: Store): store is EtcdStore {
  return typeof (store as Partial<EtcdStore>).etcd === 'function' && store.description.startsWith('etcd');
}

/** etcd3's EtcdLeaseInvalidError, by name for the same reason. */
function isLeaseInvalid(e: unknown): boolean {
  return (e as { constructor?: { name?: string } } | null)?.constructor?.name === 'EtcdLeaseInvalidError';
}

/** The elector that fits the store: the etcd lease on an EtcdStore, the lock record on any other. */
export function electorFor(store: Store, opts: ElectorOptions = {}): Elector {
  const id = opts.id ?? defaultElectorId();
  if (typeof id !== 'string' || id.trim() === '') throw new StoreError('Invalid', '--id: the controller id must be a non-empty string');
  const timing = checkTiming({ ...ELECTION_TIMING, ...opts.timing });
  const log = opts.log ?? createLogger('controller/leader');
  const instance = randomBytes(6).toString('hex');
  const backend = isEtcdStore(store) ? new EtcdLock(store, id, instance, timing, log) : new StoreLock(store, id, instance, timing);
  return new ElectorImpl(id, backend, timing, log);
}

function checkTiming(t: ElectionTiming): ElectionTiming {
  const ok = (n: number) => Number.isFinite(n) && n > 0;
  if (![t.leaseMs, t.renewEveryMs, t.renewDeadlineMs, t.retryMs].every(ok) || !(t.renewEveryMs < t.renewDeadlineMs && t.renewDeadlineMs < t.leaseMs)) {
    throw new StoreError('Invalid', `leader election timing must satisfy 0 < renewEveryMs < renewDeadlineMs < leaseMs, got ${JSON.stringify(t)}`);
  }
  return t;
}

/** Reads who leads from the store (etcd leader key or lock record); undefined when nobody does. */
export async function readLeader(store: Store, timing: ElectionTiming = ELECTION_TIMING): Promise<LeaderInfo | undefined> {
  if (isEtcdStore(store)) {
    const { client, prefix } = store.etcd();
    const key = etcdLeaderKey(prefix);
    let res;
    try {
      res = await client.kv.range({ key: Buffer.from(key) });
    } catch (e) {
      const why = store.explainError(e);
      throw new StoreError(why.code, `reading the leader key ${key}: ${why.message}`);
    }
    const kv = res.kvs[0];
    if (!kv) return undefined;
    const v = parseEtcdValue(kv.value.toString('utf8'));
    return { holder: v?.holder ?? '<unreadable>', since: v?.since ?? '', mechanism: etcdMechanism(key, v?.ttl ?? etcdTtl(timing)) };
  }
  const rec = await store.get(LEADER_LEASE_KEY);
  const spec = (rec?.spec ?? {}) as LeaseSpec;
  if (!rec || !spec.holderIdentity) return undefined;
  const renewed = Date.parse(spec.renewTime ?? '');
  const durMs = (spec.leaseDurationSeconds ?? timing.leaseMs / 1000) * 1000;
  return {
    holder: spec.holderIdentity,
    since: spec.acquireTime ?? '',
    renewed: spec.renewTime,
    mechanism: lockMechanism(store, durMs),
    stale: !Number.isFinite(renewed) || Date.now() - renewed > durMs,
  };
}

// ---- the loop both mechanisms share

/** Thrown by a backend's renew when leadership is gone for good (not a transient failure). */
class LostLeadership extends Error {}

interface LockBackend {
  readonly mechanism: string;
  /** Set by the elector while leading: the backend calls it when it learns leadership is gone between renewals. */
  onLost?: (why: string) => void;
  /** One campaign: true if this process holds leadership now. */
  acquire(): Promise<boolean>;
  /** Extends leadership; LostLeadership if it is gone, any other error is transient. */
  renew(timeoutMs: number): Promise<void>;
  /** Best effort: gives leadership up so a follower takes over at once (never touches another holder's). */
  release(): Promise<void>;
  /** Resolves when another campaign is worth it (the holder let go, or a poll period passed) or `signal` aborts. */
  waitForChance(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
  /** A failure of this backend as one line for the log (what the datastore's own calls would say). */
  explain(e: unknown): string;
}

const now = (): number => performance.now();

class TermImpl implements Term {
  readonly since = new Date();
  private readonly ac = new AbortController();
  private validUntil: number;
  private timer: NodeJS.Timeout | undefined;
  reason = '';

  constructor(validUntil: number) {
    this.validUntil = validUntil;
    this.arm();
  }

  get signal(): AbortSignal {
    return this.ac.signal;
  }

  holds(): boolean {
    return !this.ac.signal.aborted && now() < this.validUntil;
  }

  /** Time left before the deadline (ms). */
  left(): number {
    return this.validUntil - now();
  }

  extend(until: number): void {
    if (this.ac.signal.aborted) return;
    this.validUntil = Math.max(this.validUntil, until);
    this.arm();
  }

  end(why: string): void {
    if (this.ac.signal.aborted) return;
    this.reason = why;
    clearTimeout(this.timer);
    this.ac.abort();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.end(`not renewed within the renew deadline`), Math.max(0, this.validUntil - now()));
  }
}

class ElectorImpl implements Elector {
  constructor(
    readonly id: string,
    private readonly backend: LockBackend,
    private readonly timing: ElectionTiming,
    private readonly log: Logger,
  ) {}

  get mechanism(): string {
    return this.backend.mechanism;
  }

  async run(signal: AbortSignal, handlers: ElectionHandlers): Promise<void> {
    this.log.info('campaigning for leadership', { id: this.id, mechanism: this.mechanism });
    /** Failures since the last logged one, and when that was: a datastore that stays down is logged every 10 s. */
    let failures = 0;
    let loggedAt = -Infinity;
    try {
      while (!signal.aborted) {
        const t0 = now();
        let won = false;
        try {
          won = await this.backend.acquire();
          failures = 0;
          loggedAt = -Infinity;
        } catch (e) {
          failures++;
          if (t0 - loggedAt >= 10_000) {
            this.log.warn('campaign failed; trying again', { error: this.backend.explain(e), failures });
            loggedAt = t0;
            failures = 0;
          }
        }
        if (won) {
          await this.lead(t0, signal, handlers);
          continue;
        }
        if (signal.aborted) break;
        await this.backend.waitForChance(signal);
      }
    } finally {
      await this.backend.close();
    }
  }

  private async lead(t0: number, signal: AbortSignal, handlers: ElectionHandlers): Promise<void> {
    const { renewDeadlineMs, renewEveryMs, retryMs } = this.timing;
    const term = new TermImpl(t0 + renewDeadlineMs);
    const onStop = () => term.end('the controller is stopping');
    signal.addEventListener('abort', onStop);
    if (signal.aborted) onStop();
    this.backend.onLost = (why) => term.end(why);
    this.log.info('elected leader', { id: this.id, mechanism: this.mechanism });
    const acting = Promise.resolve()
      .then(() => handlers.onElected(term))
      .catch((e) => this.log.error('the leader\'s work failed', { error: errText(e) }));
    try {
      let wait = renewEveryMs;
      while (!term.signal.aborted) {
        await sleep(wait, term.signal);
        if (term.signal.aborted) break;
        const t = now();
        try {
          await withTimeout(this.backend.renew(term.left()), term.left(), 'renewal timed out');
          term.extend(t + renewDeadlineMs);
          wait = renewEveryMs;
        } catch (e) {
          if (e instanceof LostLeadership) {
            term.end(e.message);
            break;
          }
          this.log.warn('renewing leadership failed; retrying until the renew deadline', { error: this.backend.explain(e), deadlineInMs: Math.max(0, Math.round(term.left())) });
          wait = retryMs;
        }
      }
    } finally {
      signal.removeEventListener('abort', onStop);
      this.backend.onLost = undefined;
      term.end('the controller is stopping');
      if (!signal.aborted) {
        this.log.warn('no longer the leader; following', { id: this.id, why: term.reason });
        try {
          handlers.onDeposed?.(term.reason);
        } catch {
          // a failing handler must not stop the election
        }
      }
      await acting;
      await this.backend.release().catch(() => undefined);
      if (signal.aborted) this.log.info('gave up leadership', { id: this.id });
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(what)), Math.max(0, ms));
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

// ---- the lock record (SQLite, memory)

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

function lockMechanism(store: Store, durMs: number): string {
  return `lock Lease ${LEADER_LEASE_KEY.namespace}/${LEADER_LEASE_KEY.name} in ${store.description} (taken over ${durMs / 1000} s after its last renewal)`;
}

class StoreLock implements LockBackend {
  readonly mechanism: string;
  /** The record as last seen, and when (monotonic): a follower's clock for the holder's silence. */
  private seen: { rv: string; at: number } | undefined;
  /** The record as this process last wrote it, while it leads. */
  private held: Resource | undefined;

  constructor(
    private readonly store: Store,
    private readonly id: string,
    private readonly instance: string,
    private readonly timing: ElectionTiming,
  ) {
    this.mechanism = lockMechanism(store, timing.leaseMs);
  }

  explain(e: unknown): string {
    return errText(e);
  }

  private record(prev: Resource | undefined, wall: string): Resource {
    const spec = (prev?.spec ?? {}) as LeaseSpec;
    const mine = prev !== undefined && this.isMine(prev);
    return {
      apiVersion: LEASE_API_VERSION,
      kind: LEADER_LEASE_KEY.kind,
      metadata: {
        ...(prev?.metadata ?? { name: LEADER_LEASE_KEY.name, namespace: LEADER_LEASE_KEY.namespace }),
        annotations: { ...(prev?.metadata.annotations ?? {}), [INSTANCE_ANNOTATION]: this.instance },
      },
      spec: {
        holderIdentity: this.id,
        leaseDurationSeconds: this.timing.leaseMs / 1000,
        acquireTime: wall,
        renewTime: wall,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (prev && !mine ? 1 : 0),
      } satisfies LeaseSpec,
    };
  }

  private isMine(r: Resource): boolean {
    return (r.spec as LeaseSpec | undefined)?.holderIdentity === this.id && r.metadata.annotations?.[INSTANCE_ANNOTATION] === this.instance;
  }

  async acquire(): Promise<boolean> {
    const cur = await this.store.get(LEADER_LEASE_KEY);
    // after the read: a slow read must not make the holder's silence look longer than it is
    const t = now();
    const wall = new Date().toISOString();
    try {
      if (!cur) {
        this.held = await this.store.create(this.record(undefined, wall));
        return true;
      }
      const rv = cur.metadata.resourceVersion ?? '';
      if (rv !== this.seen?.rv) this.seen = { rv, at: t };
      const spec = (cur.spec ?? {}) as LeaseSpec;
      const free = !spec.holderIdentity || this.isMine(cur) || t - this.seen.at >= this.timing.leaseMs;
      if (!free) return false;
      // carries the resourceVersion read: whoever wrote the record since wins, and we follow
      this.held = await this.store.update(this.record(cur, wall));
      return true;
    } catch (e) {
      if (isRaceError(e)) return false;
      throw e;
    }
  }

  async renew(): Promise<void> {
    const held = this.held;
    if (!held) throw new LostLeadership('the lock is not held');
    const next = { ...held, spec: { ...(held.spec as LeaseSpec), renewTime: new Date().toISOString() } };
    try {
      this.held = await this.store.update(next);
    } catch (e) {
      if (isRaceError(e)) {
        this.held = undefined;
        throw new LostLeadership(`the lock record was changed or removed by someone else (${errText(e)})`);
      }
      throw e;
    }
  }

  async release(): Promise<void> {
    const held = this.held;
    this.held = undefined;
    if (!held) return;
    // conditioned on our last write: a record someone else has taken since is left alone
    await this.store.update({ ...held, spec: { ...(held.spec as LeaseSpec), holderIdentity: '', renewTime: new Date().toISOString() } });
  }

  waitForChance(signal: AbortSignal): Promise<void> {
    return sleep(this.timing.retryMs, signal);
  }

  async close(): Promise<void> {}
}

// ---- the etcd lease

/** The leader key's value. */
interface EtcdLeaderValue {
  holder: string;
  instance: string;
  since: string;
  /** The lease's TTL, seconds. */
  ttl: number;
}

function parseEtcdValue(text: string): EtcdLeaderValue | undefined {
  try {
    const v = JSON.parse(text) as EtcdLeaderValue;
    return typeof v?.holder === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** etcd leases are whole seconds (and at least ~2 s on a default server). */
function etcdTtl(timing: ElectionTiming): number {
  return Math.max(1, Math.ceil(timing.leaseMs / 1000));
}

function etcdMechanism(key: string, ttl: number): string {
  return `etcd lease (TTL ${ttl} s) on key ${key}`;
}

class EtcdLock implements LockBackend {
  readonly mechanism: string;
  onLost?: (why: string) => void;
  private readonly client: Etcd3;
  private readonly store: EtcdStore;
  private readonly key: string;
  private readonly ttl: number;
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  private watcher: { cancel(): Promise<void> } | undefined;
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(
    store: EtcdStore,
    private readonly id: string,
    private readonly instance: string,
    private readonly timing: ElectionTiming,
    private readonly log: Logger,
  ) {
    const { client, prefix } = store.etcd();
    this.client = client;
    this.store = store;
    this.key = etcdLeaderKey(prefix);
    this.ttl = etcdTtl(timing);
    this.mechanism = etcdMechanism(this.key, this.ttl);
  }

  explain(e: unknown): string {
    return e instanceof LostLeadership ? errText(e) : this.store.explainError(e).message;
  }

  private deadline(ms: number): Date {
    return new Date(Date.now() + Math.max(1, ms));
  }

  /** One watch on the leader key for the process' lifetime: a deletion wakes a follower at once. */
  private ensureWatch(): void {
    if (this.watcher || this.closed) return;
    const w = this.store.watchKeyDeletion(
      this.key,
      () => {
        // a key deleted (or a lease revoked) by hand ends our term as soon as we see it, not only at the next renewal
        if (this.lease) this.onLost?.(`the leader key ${this.key} was deleted`);
        this.wake?.();
      },
      (e) => {
        // the periodic campaign still notices a free key; the next campaign opens a new watch
        this.log.debug('leader key watch failed', { error: errText(e) });
        if (this.watcher === w) this.watcher = undefined;
      },
    );
    this.watcher = w;
  }

  async acquire(): Promise<boolean> {
    const key = Buffer.from(this.key);
    const timeout = { deadline: this.deadline(this.timing.leaseMs) };
    this.ensureWatch();
    // Someone holds it: nothing to try (the txn below decides races; this only saves granting a lease per poll).
    const cur = await this.client.kv.range({ key, keys_only: true }, timeout);
    if (cur.kvs.length) return false;
    const lease = this.client.lease(this.ttl, { autoKeepAlive: false, deadline: timeout.deadline });
    lease.on('lost', () => undefined);
    let granted = false;
    try {
      const leaseId = await lease.grant();
      const value: EtcdLeaderValue = { holder: this.id, instance: this.instance, since: new Date().toISOString(), ttl: this.ttl };
      const res = await this.client.kv.txn(
        {
          compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [{ request_put: { key, value: Buffer.from(JSON.stringify(value)), lease: leaseId } }],
        },
        timeout,
      );
      if (!res.succeeded) return false;
      granted = true;
      this.lease = lease;
      this.leaseId = leaseId;
      return true;
    } finally {
      if (!granted) void lease.revoke({ deadline: this.deadline(this.timing.retryMs * 4) }).catch(() => undefined);
    }
  }

  async renew(timeoutMs: number): Promise<void> {
    const lease = this.lease;
    if (!lease) throw new LostLeadership('the lease is not held');
    try {
      await lease.keepaliveOnce({ deadline: this.deadline(timeoutMs) });
    } catch (e) {
      if (isLeaseInvalid(e)) throw new LostLeadership(`etcd says the lease has expired (${errText(e)})`);
      throw e;
    }
    // The key could have been deleted by hand while the lease lives on: then a follower may be leading already.
    const res = await this.client.kv.range({ key: Buffer.from(this.key) }, { deadline: this.deadline(timeoutMs) });
    const kv = res.kvs[0];
    if (!kv || String(kv.lease) !== String(this.leaseId)) throw new LostLeadership(`the leader key ${this.key} is gone or held under another lease`);
  }

  async release(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    this.leaseId = undefined;
    if (!lease) return;
    // Revoking deletes the key (it holds this lease only): followers are woken by its deletion.
    await lease.revoke({ deadline: this.deadline(this.timing.renewDeadlineMs) });
  }

  waitForChance(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      // a watch that missed the deletion (reconnecting) is covered by campaigning every renewal period anyway
      const t = setTimeout(done, this.timing.renewEveryMs);
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
      if (signal.aborted) done();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.watcher;
    this.watcher = undefined;
    // (the client belongs to the store, which whoever opened it closes)
    await w?.cancel();
  }
}

// ---- writes only while leading

/** Thrown by fencedStore for a write once the term has ended. */
export class NotLeaderError extends StoreError {
  constructor(what: string) {
    super('Unavailable', `${what}: not written: this controller is no longer the leader`);
    this.name = 'NotLeaderError';
  }
}

/**
 * `store` for the leader's work: reads pass through; every write is started only while `term.holds()` (the check
 * runs right before the call), so a leader past its renew deadline never starts a write. close() does nothing: the
 * store belongs to whoever opened it.
 */
export function fencedStore(store: Store, term: Term): Store {
  const check = (what: string): void => {
    if (!term.holds()) throw new NotLeaderError(what);
  };
  return {
    get description() {
      return store.description;
    },
    ...(store.maxTxnOps !== undefined ? { maxTxnOps: store.maxTxnOps } : {}),
    get: (key) => store.get(key),
    list: (kind, opts) => store.list(kind, opts),
    revision: () => store.revision(),
    watch: (opts, handler) => store.watch(opts, handler),
    create: async (obj) => (check(`create ${obj?.kind} ${obj?.metadata?.name}`), store.create(obj)),
    update: async (obj) => (check(`update ${obj?.kind} ${obj?.metadata?.name}`), store.update(obj)),
    delete: async (key, opts) => (check(`delete ${key?.kind} ${key?.name}`), store.delete(key, opts)),
    txn: async (ops) => (check(`txn of ${Array.isArray(ops) ? ops.length : '?'} ops`), store.txn(ops)),
    ...(store.compact ? { compact: async (rev: number) => (check(`compact to ${rev}`), store.compact!(rev)) } : {}),
    close: async () => undefined,
  };
}
