// One kind's watch on a Kubernetes API server, through @kubernetes/client-node's Watch (its HTTP and auth): from a
// resourceVersion, with bookmarks, restarted from the last resourceVersion seen after every stream end or error
// (client-node's own informer stops on errors other than 410), and stopped with StoreError 'Compacted' on 410 Gone —
// the caller lists again (docs/kubernetes-datastore.md, SPEC §7 "Kubernetes watch semantics"). A 403 Forbidden (or
// 401) stops it too, with the error naming the verb (watch) and the resource (forbiddenError): retrying the same
// stream would fail the same way until RBAC changes, and the informer's relist reports it and backs off.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { Resource } from '../api/meta.js';
import { Backoff, errText, sleep } from '../util.js';
import { forbiddenError, unauthorizedError, type KubeResource } from './kubernetes-kinds.js';
import { StoreError, type WatchEvent, type WatchEventType } from './types.js';

export interface KindWatchOptions {
  kc: KubeConfig;
  path: string;
  kind: string;
  apiVersion: string;
  /** The resource and namespace watched: a 403 names them. */
  resource: KubeResource;
  namespace?: string;
  from: number;
  labelSelector?: string;
  fieldSelector?: string;
  /** Events of this kind in resourceVersion order (awaited: the next call waits for it). */
  deliver(events: WatchEvent[]): Promise<void>;
  /** The stream has seen everything up to this resourceVersion (each event and bookmark; the union's progress). */
  onProgress?(rv: number): void;
  /** The watch stopped for good (410, 401/403, or deliver threw). */
  fail(err: unknown): void;
  /** Called on each transient error before the restart (logging). */
  onRetry?(err: unknown): void;
}

/** Bookmarks and restarts: how long the server may keep one stream before we ask for a new one. */
const WATCH_TIMEOUT_SECONDS = 300;

export class KindWatch {
  private last: number;
  private closed = false;
  private abort?: AbortController;
  private queue: WatchEvent[] = [];
  private draining = false;
  private readonly backoff = new Backoff({ minMs: 50, maxMs: 2000 });
  private stopped = false;
  /** The last error was 401/403: the stream was refused, not broken. */
  private refused = false;

  constructor(private readonly o: KindWatchOptions) {
    this.last = o.from;
  }

  /** Opens the first stream; rejects with Compacted if the server says 410 right away. */
  async start(): Promise<void> {
    const first = await this.connect();
    if (first) throw first;
  }

  /** Connects once; resolves with the error the server answered at once (410), else undefined. */
  private connect(): Promise<StoreError | undefined> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (err: unknown) => {
        const e = this.translate(err);
        if (!settled) {
          settled = true;
          if (e instanceof StoreError && (e.code === 'Compacted' || this.refused)) {
            resolve(e);
            return;
          }
          resolve(undefined);
        }
        if (this.closed || this.stopped) return;
        if (e instanceof StoreError && (e.code === 'Compacted' || this.refused)) return this.stop(e);
        if (e) this.o.onRetry?.(e);
        void this.restart(!!e);
      };
      const query: Record<string, string | number | boolean | undefined> = {
        resourceVersion: String(this.last),
        allowWatchBookmarks: true,
        timeoutSeconds: WATCH_TIMEOUT_SECONDS,
        labelSelector: this.o.labelSelector,
        fieldSelector: this.o.fieldSelector,
      };
      new Watch(this.o.kc)
        .watch(this.o.path, query, (type, obj) => this.onLine(type, obj), done)
        .then((ac) => {
          this.abort = ac;
          if (this.closed) ac.abort();
          // The response arrived with status 200: no immediate error to report.
          if (!settled) {
            settled = true;
            resolve(undefined);
          }
        })
        .catch(done);
    });
  }

  private translate(err: unknown): unknown {
    this.refused = false;
    if (err === null || err === undefined) return undefined;
    const code = (err as { statusCode?: number; code?: number }).statusCode ?? (err as { code?: number }).code;
    this.refused = code === 401 || code === 403;
    if (code === 410) return new StoreError('Compacted', `watch ${this.o.kind} from revision ${this.last}: 410 Gone (too old resource version): list again`);
    // (client-node's Watch keeps only the status code of a refused stream, not the Status body: the message is built from what we asked)
    if (code === 403) return forbiddenError('watch', this.o.resource, this.o.namespace);
    if (code === 401) return unauthorizedError(`watch ${this.o.resource.qualified}`);
    return err;
  }

  private async restart(afterError: boolean): Promise<void> {
    if (afterError) await sleep(this.backoff.next());
    if (this.closed || this.stopped) return;
    const e = await this.connect();
    if (e) this.stop(e);
  }

  private onLine(type: string, obj: unknown): void {
    if (this.closed || this.stopped) return;
    const o = obj as Resource & { code?: number; status?: unknown };
    if (type === 'BOOKMARK') {
      // A bookmark moves the restart point without an event; a later restart needs nothing before it.
      const rv = Number(o?.metadata?.resourceVersion);
      if (Number.isSafeInteger(rv) && rv > this.last && this.queue.length === 0 && !this.draining) {
        this.last = rv;
        this.o.onProgress?.(rv);
      }
      this.backoff.reset();
      return;
    }
    if (type === 'ERROR') {
      if (o?.code === 410) this.stop(new StoreError('Compacted', `watch ${this.o.kind} from revision ${this.last}: 410 Gone (${errText((o as { message?: string }).message)}): list again`));
      else this.o.onRetry?.(new Error(`watch ${this.o.kind}: server sent an error: ${JSON.stringify(o)}`));
      return;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
    const rv = Number(o?.metadata?.resourceVersion);
    if (!Number.isSafeInteger(rv) || rv <= this.last) return; // a replay after a restart: already delivered
    this.last = rv;
    this.backoff.reset();
    const object: Resource = { ...o, apiVersion: this.o.apiVersion, kind: this.o.kind };
    this.queue.push({ type: type as WatchEventType, revision: rv, object });
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length && !this.closed && !this.stopped) {
        const batch = this.queue.splice(0);
        await this.o.deliver(batch);
      }
    } catch (e) {
      this.stop(e);
    } finally {
      this.draining = false;
    }
  }

  private stop(err: unknown): void {
    if (this.stopped || this.closed) return;
    this.stopped = true;
    this.abort?.abort();
    this.o.fail(err);
  }

  close(): void {
    this.closed = true;
    this.abort?.abort();
  }
}
