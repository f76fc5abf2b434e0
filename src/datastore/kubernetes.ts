// A Store over the Kubernetes API (`kubernetes:` in-cluster, `kubernetes:PATH` or --kubeconfig), on
// @kubernetes/client-node 1.4.0: its KubeConfig (loadFromCluster / loadFromFile) gives the server, TLS and auth; reads
// and writes are plain REST calls made with the request options it builds; watches are its Watch (kubernetes-watch.ts).
//
// What differs from memory/SQLite/etcd (docs/kubernetes-datastore.md):
// - No multi-object transactions: a txn of one op works; a txn of two or more fails with StoreError 'Invalid' before
//   anything is written.
// - The revision is the API server's resourceVersion. We rely on what real API servers do over etcd (one etcd revision
//   counter across every kind; a list's metadata.resourceVersion is the revision it was read at), though Kubernetes
//   calls resourceVersions opaque: revision() reads it from a one-item list of namespaces.
// - A watch without a kind is one watch per known kind: each kind's events come in order, kinds interleave as their
//   streams deliver (the informer skips per kind, so it only needs that).
// - No compact(): compaction is the API server's; a watch from a compacted resourceVersion fails with Compacted.
// - Only known kinds (src/api/meta.ts KINDS) can be stored; status goes through /status for the kinds that have it.
// - Views (option `views`): a kind can be held only partly, as the union of several selector-scoped list+watch
//   streams (the agent: its node's pods and the gateway pods). list() merges the views by key at the MIN of their
//   list revisions; the union watch drops an event at or below what it delivered for that key (duplicates, late
//   streams) and a DELETED while another view still holds the object. The rules: kubernetes-views.ts.
// - 403 Forbidden names the verb and the resource refused and points at the RBAC (forbiddenError).
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import fetch from 'node-fetch';
import { keyOf, keyString, KINDS, type ObjectKey, type Resource } from '../api/meta.js';
import { checkKey, checkListArgs, checkWatchArgs, closedError, cloneIn, compareKeys, describeKey, reportWatchStop } from './common.js';
import { collectionPath, forbiddenError, kubeResource, unauthorizedError, objectPath, STATUS_SUBRESOURCE, type KubeResource, type KubeVerb } from './kubernetes-kinds.js';
import { checkViews, viewQuery, ViewUnion, type KubeView, type KubeViews } from './kubernetes-views.js';
import { KindWatch } from './kubernetes-watch.js';
import { StoreError, type ListOptions, type ListResult, type Store, type TxnOp, type Watch, type WatchEvent, type WatchHandler, type WatchOptions } from './types.js';

export interface KubernetesStoreOptions {
  /** A kubeconfig file; undefined = in-cluster (the pod's service account). */
  kubeconfig?: string;
  /**
   * Per kind, the views whose union the store holds (kubernetes-views.ts), e.g. the agent's
   * `{ Pod: [{ fieldSelector: 'spec.nodeName=node-1' }, { labelSelector: 'egw.dev/egress-gateway' }] }`
   * (agentKubeViews in src/agent/agent.ts): it sees only its node's pods and the gateway pods (SPEC §7).
   */
  views?: KubeViews;
}

/** Loads the client configuration; every failure names the file (or the in-cluster files) and why. */
export function loadKubeConfig(kubeconfig?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig !== undefined) {
    try {
      readFileSync(kubeconfig);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not readable (permission denied)' : code === 'EISDIR' ? 'is a directory, not a file' : (e as Error).message;
      throw new StoreError('Invalid', `kubeconfig ${kubeconfig}: ${why}`);
    }
    try {
      kc.loadFromFile(kubeconfig);
    } catch (e) {
      throw new StoreError('Invalid', `kubeconfig ${kubeconfig}: not a valid kubeconfig: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!kc.getCurrentCluster()) throw new StoreError('Invalid', `kubeconfig ${kubeconfig}: no current cluster (set current-context to a context whose cluster exists)`);
    return kc;
  }
  if (!process.env.KUBERNETES_SERVICE_HOST) {
    throw new StoreError('Invalid', 'datastore kubernetes: (in-cluster) needs $KUBERNETES_SERVICE_HOST, which is set only inside a pod; outside a cluster give kubernetes:PATH-TO-KUBECONFIG or --kubeconfig');
  }
  try {
    kc.loadFromCluster();
  } catch (e) {
    throw new StoreError('Invalid', `datastore kubernetes: in-cluster configuration: ${(e as Error).message}`);
  }
  return kc;
}

/** What a call asks for, in RBAC's words (a 403 names it). */
interface Access {
  verb: KubeVerb;
  r: KubeResource;
  namespace?: string;
  sub?: 'status';
}

interface KubeStatus {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

export class KubernetesStore implements Store {
  readonly description: string;
  /** No multi-object transactions (see txn). */
  readonly maxTxnOps = 1;
  private readonly kc: KubeConfig;
  private readonly server: string;
  private closed = false;
  private readonly watches = new Set<{ close(): Promise<void> }>();
  private readonly views: KubeViews;

  constructor(opts: KubernetesStoreOptions = {}) {
    this.views = checkViews(opts.views) ?? {};
    this.kc = loadKubeConfig(opts.kubeconfig);
    this.server = this.kc.getCurrentCluster()!.server.replace(/\/+$/, '');
    this.description = opts.kubeconfig !== undefined ? `kubernetes:${opts.kubeconfig} (${this.server})` : `kubernetes: (in-cluster, ${this.server})`;
  }

  private check(): void {
    if (this.closed) throw closedError(this.description);
  }

  /** One REST call; a Kubernetes Status error becomes the StoreError of the same meaning, naming `what`. */
  private async call(method: string, path: string, what: string, access: Access, body?: unknown): Promise<unknown> {
    this.check();
    const init = await this.kc.applyToFetchOptions({});
    init.method = method;
    init.headers = { ...(init.headers as Record<string, string>), accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let res;
    try {
      res = await fetch(this.server + path, init);
    } catch (e) {
      throw new StoreError('Unavailable', `${this.description}: ${method} ${path}: ${(e as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.status < 400) return json;
    const st = (json ?? {}) as KubeStatus;
    const msg = `${what}: ${st.message ?? `${res.status} ${res.statusText}`}`;
    if (res.status === 404) throw new StoreError('NotFound', `${what}: not found (${st.message ?? path})`);
    if (res.status === 409 && st.reason === 'AlreadyExists') throw new StoreError('AlreadyExists', `${what}: already exists`);
    if (res.status === 409) throw new StoreError('Conflict', `${what}: conflict: resourceVersion is stale (${st.message ?? 'the object has been modified'}); read it again and retry`);
    if (res.status === 410) throw new StoreError('Compacted', msg);
    if (res.status === 400 || res.status === 422) throw new StoreError('Invalid', msg);
    if (res.status === 403) throw forbiddenError(access.verb, access.r, access.namespace, st.message, access.sub);
    if (res.status === 401) throw unauthorizedError(what);
    throw new StoreError('Unavailable', msg);
  }

  /** Kubernetes omits kind/apiVersion on list items: every object leaving the store has them. */
  private out(r: KubeResource, o: unknown): Resource {
    const x = o as Resource;
    return { ...x, apiVersion: r.info.apiVersion, kind: r.info.kind };
  }

  /** The views of a kind: its declared ones, or the whole kind as one view without selectors. */
  private viewsOf(kind: string): readonly (KubeView | undefined)[] {
    return this.views[kind] ?? [undefined];
  }

  private static query(view: KubeView | undefined, label?: string): string {
    const s = new URLSearchParams(viewQuery(view, label)).toString();
    return s ? `?${s}` : '';
  }

  /** One list of one view: its items (kind/apiVersion set) and the revision it was read at. */
  private async listView(r: KubeResource, namespace: string | undefined, view: KubeView | undefined, label?: string): Promise<{ items: Resource[]; revision: number }> {
    const res = (await this.call('GET', collectionPath(r, namespace) + KubernetesStore.query(view, label), `list ${r.info.kind}`, { verb: 'list', r, namespace }).catch(
      (e: unknown) => {
        throw notServed(e, r);
      },
    )) as { metadata?: { resourceVersion?: string }; items?: unknown[] };
    return { items: (res.items ?? []).map((o) => this.out(r, o)), revision: Number(res.metadata?.resourceVersion ?? 0) };
  }

  async get(key: ObjectKey): Promise<Resource | undefined> {
    this.check();
    const k = checkKey(key);
    const r = kubeResource(k.kind);
    try {
      return this.out(r, await this.call('GET', objectPath(r, k), describeKey(k), { verb: 'get', r, namespace: k.namespace }));
    } catch (e) {
      if (e instanceof StoreError && e.code === 'NotFound') return undefined;
      throw e;
    }
  }

  async list(kind: string, opts?: ListOptions): Promise<ListResult> {
    this.check();
    const { namespace, match } = checkListArgs(kind, opts);
    const r = kubeResource(kind);
    const label = typeof opts?.labelSelector === 'string' ? opts.labelSelector : undefined;
    // Each view on its own; merged by key, the newest copy winning; the revision is the oldest of the lists'
    // (kubernetes-views.ts: a watch from there misses none of the changes any view's list missed).
    const lists = await Promise.all(this.viewsOf(kind).map((v) => this.listView(r, namespace, v, label)));
    const byKey = new Map<string, Resource>();
    for (const l of lists) {
      for (const o of l.items) {
        const k = keyString(keyOf(o));
        const had = byKey.get(k);
        if (!had || Number(o.metadata.resourceVersion) > Number(had.metadata.resourceVersion)) byKey.set(k, o);
      }
    }
    const items = [...byKey.values()].filter((o) => match(o.metadata.labels));
    items.sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
    return { items, revision: Math.min(...lists.map((l) => l.revision)) };
  }

  async create(obj: Resource): Promise<Resource> {
    return this.createOne(cloneIn(obj));
  }

  private async createOne(c: Resource): Promise<Resource> {
    this.check();
    const key = keyOf(c);
    const r = kubeResource(c.kind);
    delete c.metadata.resourceVersion;
    delete c.metadata.uid;
    delete c.metadata.creationTimestamp;
    const created = this.out(r, await this.call('POST', collectionPath(r, key.namespace), describeKey(key), { verb: 'create', r, namespace: key.namespace }, c));
    return this.writeStatus(r, key, c, created);
  }

  /** For kinds with a status subresource the object's status is written by a second PUT, when it differs. */
  private async writeStatus(r: KubeResource, key: ObjectKey, wanted: Resource, stored: Resource): Promise<Resource> {
    if (!STATUS_SUBRESOURCE.has(r.info.kind) || wanted.status === undefined) return stored;
    if (JSON.stringify(wanted.status) === JSON.stringify(stored.status)) return stored;
    const body = { ...stored, status: wanted.status };
    return this.out(r, await this.call('PUT', objectPath(r, key, 'status'), describeKey(key), { verb: 'update', r, namespace: key.namespace, sub: 'status' }, body));
  }

  async update(obj: Resource): Promise<Resource> {
    return this.updateOne(cloneIn(obj));
  }

  private async updateOne(c: Resource): Promise<Resource> {
    this.check();
    const key = keyOf(c);
    const r = kubeResource(c.kind);
    if (c.metadata.resourceVersion === '') delete c.metadata.resourceVersion;
    const stored = this.out(r, await this.call('PUT', objectPath(r, key), describeKey(key), { verb: 'update', r, namespace: key.namespace }, c));
    return this.writeStatus(r, key, c, stored);
  }

  async delete(key: ObjectKey, opts?: { resourceVersion?: string }): Promise<Resource> {
    this.check();
    const k = checkKey(key);
    const r = kubeResource(k.kind);
    const rv = opts?.resourceVersion;
    const body = { kind: 'DeleteOptions', apiVersion: 'v1', ...(rv ? { preconditions: { resourceVersion: rv } } : {}) };
    return this.out(r, await this.call('DELETE', objectPath(r, k), describeKey(k), { verb: 'delete', r, namespace: k.namespace }, body));
  }

  /**
   * Kubernetes has no multi-object transactions: one op is done as that write (a `put` as update, or create when
   * absent); two or more fail with Invalid before anything is written, so nothing is half-applied.
   */
  async txn(ops: TxnOp[]): Promise<Resource[]> {
    this.check();
    if (!Array.isArray(ops)) throw new StoreError('Invalid', 'txn: ops must be an array');
    if (ops.length === 0) return [];
    if (ops.length > 1) {
      throw new StoreError(
        'Invalid',
        `txn of ${ops.length} ops: the kubernetes: datastore has no multi-object transactions (the Kubernetes API writes one object at a time); write each object on its own`,
      );
    }
    const op = ops[0];
    try {
      switch (op?.op) {
        case 'create':
          return [await this.create(op.object)];
        case 'update':
          return [await this.update(op.object)];
        case 'put': {
          const c = cloneIn(op.object);
          delete c.metadata.resourceVersion;
          try {
            return [await this.updateOne(structuredClone(c))];
          } catch (e) {
            if (e instanceof StoreError && e.code === 'NotFound') return [await this.createOne(c)];
            throw e;
          }
        }
        case 'delete':
          return [await this.delete(op.key, { resourceVersion: op.resourceVersion })];
        default:
          throw new StoreError('Invalid', `unknown op ${JSON.stringify((op as { op?: unknown })?.op)} (expected create, update, put or delete)`);
      }
    } catch (e) {
      if (!(e instanceof StoreError)) throw e;
      throw new StoreError(e.code, `txn op 1 of 1 (${typeof op?.op === 'string' ? op.op : 'invalid'}): ${e.message}`);
    }
  }

  async revision(): Promise<number> {
    const res = (await this.call('GET', '/api/v1/namespaces?limit=1', 'revision', { verb: 'list', r: kubeResource('Namespace') })) as { metadata?: { resourceVersion?: string } };
    return Number(res.metadata?.resourceVersion ?? 0);
  }

  async watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    const { from, kind, namespace } = checkWatchArgs(opts, handler);
    // Every kind: one watch each; with a namespace, only the namespaced kinds (a cluster-scoped object is in none).
    const kinds = kind !== undefined ? [kind] : KINDS.filter((k) => namespace === undefined || k.namespaced).map((k) => k.kind);
    const resources = kinds.map((k) => kubeResource(k));
    let stopped = false;
    const parts: KindWatch[] = [];
    // Handler calls are serialized across the kinds: one at a time, as the interface promises.
    let chain: Promise<void> = Promise.resolve();
    const w = {
      close: async () => {
        stopped = true;
        for (const p of parts) p.close();
        this.watches.delete(w);
        // Not awaiting the handler chain: close() may be called from inside the handler itself.
      },
    };
    const fail = (err: unknown) => {
      if (stopped) return;
      void w.close();
      reportWatchStop(opts.onError, err);
    };
    const push = (events: WatchEvent[]): Promise<void> => {
      const next = chain.then(async () => {
        if (!stopped && events.length) await handler(events);
      });
      chain = next.catch(() => {});
      return next;
    };
    try {
      for (const r of resources) {
        const views = this.viewsOf(r.info.kind);
        // Several views: their union (kubernetes-views.ts), its holders seeded from one list of each view.
        const union = views.length > 1 ? new ViewUnion<WatchEvent>(views.length, from) : undefined;
        if (union) {
          const lists = await Promise.all(views.map((v) => this.listView(r, namespace, v)));
          lists.forEach((l, i) => l.items.forEach((o) => union.hold(i, keyString(keyOf(o)))));
        }
        views.forEach((view, i) => {
          const q = viewQuery(view);
          parts.push(
            new KindWatch({
              kc: this.kc,
              path: collectionPath(r, namespace),
              resource: r,
              namespace,
              kind: r.info.kind,
              apiVersion: r.info.apiVersion,
              from,
              labelSelector: q.labelSelector,
              fieldSelector: q.fieldSelector,
              // (the union decides synchronously, in the order each stream delivers; the handler calls are chained)
              deliver: union ? (events) => push(events.flatMap((e) => union.accept(i, e, keyString(keyOf(e.object))) ?? [])) : push,
              onProgress: union ? (rv) => union.advance(i, rv) : undefined,
              fail,
            }),
          );
        });
      }
      await Promise.all(parts.map((p) => p.start()));
    } catch (e) {
      stopped = true;
      for (const p of parts) p.close();
      throw e;
    }
    this.watches.add(w);
    return w;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const w of [...this.watches]) await w.close();
    this.closed = true;
  }
}

/**
 * A list answered 404: the API server does not serve the resource at all (a collection that exists answers with an
 * empty list), so its CRD is not installed. Unavailable (the informer retries: it may be installed later), naming it.
 */
function notServed(e: unknown, r: KubeResource): unknown {
  if (!(e instanceof StoreError) || e.code !== 'NotFound') return e;
  const [group, version] = r.info.apiVersion.includes('/') ? r.info.apiVersion.split('/') : ['', r.info.apiVersion];
  const name = group ? `${r.info.plural}.${group}` : r.info.plural;
  const hint = group && group !== 'apps' && group !== 'coordination.k8s.io' ? `: is the CRD ${name} installed? (egw's CRDs: egw manifests, docs/kubernetes.md)` : '';
  return new StoreError('Unavailable', `the API server does not serve ${name} ${version}${hint}`);
}
