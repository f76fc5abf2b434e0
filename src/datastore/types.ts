// The one datastore interface every backend implements (memory, SQLite, later etcd v3 and Kubernetes).
// Its shape follows etcd v3 / the Kubernetes API: a single monotonically increasing revision per store,
// optimistic concurrency on resourceVersion, and watch-from-revision with no lost events.
import type { ObjectKey, Resource } from '../api/meta.js';

export interface ListOptions {
  /** Only namespaced kinds; undefined = all namespaces. */
  namespace?: string;
  /** A Kubernetes label selector (`a=b,c!=d,e`), or a predicate over labels. */
  labelSelector?: string | ((labels: Record<string, string>) => boolean);
}

export interface ListResult {
  items: Resource[];
  /** The store revision the list was read at: watch from here to see every later change. */
  revision: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  type: WatchEventType;
  /**
   * The revision at which this change happened. Never decreasing along a watch: on memory and SQLite every op has its
   * own revision, so it strictly increases; on etcd the events of one txn share that txn's revision (in op order).
   */
  revision: number;
  /** The object after the change; for DELETED, the object as it was last stored. */
  object: Resource;
  /**
   * When the change was committed (ms since the epoch, the writer's clock): memory and SQLite keep it; etcd does not
   * (absent). The informer measures its watch lag with it (docs/observability.md).
   */
  writtenAt?: number;
}

export interface WatchOptions {
  /** Kind to watch; undefined = all kinds. */
  kind?: string;
  namespace?: string;
  /** Deliver every event with revision > fromRevision (0 = from the beginning of history). */
  fromRevision: number;
  /**
   * Called once if the watch stops on its own: the handler threw or rejected, history the watch still needed was
   * compacted (StoreError 'Compacted'), or the backend failed. Without it such errors are logged to stderr.
   */
  onError?: (err: unknown) => void;
}

export interface Watch {
  /** Stops delivery; resolves when the watch has released its resources. */
  close(): Promise<void>;
}

export type WatchHandler = (events: WatchEvent[]) => void | Promise<void>;

/** One operation of an atomic batch (`txn`). */
export type TxnOp =
  | { op: 'create'; object: Resource }
  /** Update; when object.metadata.resourceVersion is set it must equal the stored one. */
  | { op: 'update'; object: Resource }
  /** Create or replace (apply) regardless of the stored version. */
  | { op: 'put'; object: Resource }
  | { op: 'delete'; key: ObjectKey; resourceVersion?: string };

export interface Store {
  /** Human description, e.g. `sqlite:/path/to/egw.db`. */
  readonly description: string;
  get(key: ObjectKey): Promise<Resource | undefined>;
  list(kind: string, opts?: ListOptions): Promise<ListResult>;
  /** Fails with StoreError('AlreadyExists') if present. Returns the stored object (resourceVersion, uid, creationTimestamp set). */
  create(obj: Resource): Promise<Resource>;
  /** Fails with StoreError('NotFound') if absent, StoreError('Conflict') if resourceVersion is given and stale. */
  update(obj: Resource): Promise<Resource>;
  /** Fails with StoreError('NotFound') if absent, StoreError('Conflict') if resourceVersion is given and stale. Returns the deleted object. */
  delete(key: ObjectKey, opts?: { resourceVersion?: string }): Promise<Resource>;
  /**
   * All-or-nothing: either every op applies or none does. Memory and SQLite give each op its own consecutive revision;
   * etcd gives the whole batch one revision, and a key written twice in a batch yields one event (its final state).
   */
  txn(ops: TxnOp[]): Promise<Resource[]>;
  /**
   * The most ops one txn may hold; undefined = no limit. The kubernetes: datastore has 1 (the Kubernetes API writes
   * one object at a time): writers of several objects use writeOps (src/datastore/batch.ts).
   */
  readonly maxTxnOps?: number;
  /** The current revision of the store. */
  revision(): Promise<number>;
  /**
   * Delivers, in revision order and without gaps, every change after opts.fromRevision, then every new change.
   * Fails with StoreError('Compacted') if history before fromRevision is no longer kept.
   */
  watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch>;
  /**
   * Optional: drops the history at and before `revision` (objects are kept). Later watches from an earlier revision,
   * and running watches that have not yet read past it, fail with StoreError('Compacted').
   */
  compact?(revision: number): Promise<void>;
  close(): Promise<void>;
}

export type StoreErrorCode = 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Compacted' | 'Invalid' | 'Unavailable';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}
