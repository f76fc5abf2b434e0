// A stand-in for the Kubernetes API server, for tests and the lab only, never for a cluster (docs/kubernetes-datastore.md
// says what it implements and what it does not). Plain node:http on 127.0.0.1, JSON, Kubernetes' paths: /api/v1/[namespaces/NS/]PLURAL[/NAME
// [/status]] and /apis/GROUP/VERSION/… for any plural (as if every CRD were installed). One global resourceVersion
// counter across every resource (as etcd's revision is in practice), list + `?watch=1&resourceVersion=RV` streams of
// {type, object} lines (BOOKMARK with allowWatchBookmarks=true), 409 Conflict / AlreadyExists, 404, 410 Gone (reason
// Expired) for a watch from a compacted resourceVersion, fieldSelector (metadata.name, metadata.namespace,
// spec.nodeName) and labelSelector, and Status error bodies shaped as Kubernetes sends them. A watch with a selector
// gets ADDED when an object starts to match it and DELETED (the previous object, at the change's resourceVersion)
// when it stops, as kube-apiserver's watch cache sends them. `forbid` answers 403 Forbidden for a verb on a resource,
// with the Status message a real server gives (RBAC is otherwise not modelled).
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeVerb } from '../datastore/kubernetes-kinds.js';
import { labelMatcher } from '../datastore/labelselector.js';

type Obj = { apiVersion?: string; kind?: string; metadata: Record<string, unknown> & { name: string; namespace?: string }; [k: string]: unknown };

interface Target {
  /** group/version/plural, e.g. `/v1/pods` or `operator.tigera.io/v1/egressgateways`. */
  resource: string;
  group: string;
  plural: string;
  namespace?: string;
  name?: string;
  sub?: string;
}

interface HistoryEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: string;
  obj: Obj;
  /** When it happened (ms since epoch): compactOlderThan drops by age, as kube-apiserver's compaction does. */
  at: number;
  /** For MODIFIED: the object before (a selector's watch turns the change into ADDED or DELETED). */
  prev?: Obj;
}

/** A verb on a resource the stand-in refuses with 403, e.g. `{ verb: 'list', resource: 'pods' }`. */
export interface Forbidden {
  verb: KubeVerb;
  /** The plural, `/status` for the subresource, then `.group` unless core: `pods`, `pods/status`, `egressgateways.operator.tigera.io`. */
  resource: string;
}

interface Watcher {
  target: Target;
  match: (o: Obj) => boolean;
  res: ServerResponse;
}

export interface StandInOptions {
  /** The counter's start (a real API server is never at 0). Default 1000. */
  startRevision?: number;
  /** Plurals (`egressgateways`, `pods` …) whose status is written only through /status. */
  statusSubresource?: Iterable<string>;
  /** How often a watch with allowWatchBookmarks=true gets a BOOKMARK. Default 200 ms. */
  bookmarkMs?: number;
  /** Resources (`plural.group`, e.g. `egressgateways.operator.tigera.io`) the server does not serve: a CRD not installed. */
  notServed?: Iterable<string>;
  /** Verbs on resources answered 403 Forbidden (a service account without that RBAC rule). */
  forbid?: Iterable<Forbidden>;
  /** The user a 403 names. Default `system:serviceaccount:egw-system:egw-agent`. */
  user?: string;
  /**
   * A journal file that makes the objects outlive the process (the lab's stand-in: a restarted API server keeps its
   * objects as one backed by etcd does). Every change is appended as a line; at start the file is replayed, rewritten
   * as one line per object, and the history starts empty, so a watch from before the restart gets 410 and relists.
   * A torn last line (the process killed while writing) is dropped and counted in `journalDropped`.
   */
  journal?: string;
}

/**
 * A kubeconfig for a stand-in at `server` (plain http, no auth). client-node 1.4.0 refuses an http server unless the
 * cluster says insecure-skip-tls-verify, so it does.
 */
export function standInKubeconfig(server: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: standin\n  cluster:\n    server: ${server}\n    insecure-skip-tls-verify: true`,
    'users:',
    '- name: standin\n  user: {}',
    'contexts:',
    '- name: standin\n  context:\n    cluster: standin\n    user: standin',
    'current-context: standin',
    '',
  ].join('\n');
}

function status(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

export class KubeApiStandIn {
  private server: Server;
  private readonly extra: Server[] = [];
  private journalFd?: number;
  /** Lines of the journal that could not be read at start (at most the torn last one after a kill). */
  journalDropped = 0;
  private rv: number;
  private compactedAt = 0;
  private objects = new Map<string, Map<string, Obj>>();
  private history: HistoryEvent[] = [];
  private watchers = new Set<Watcher>();
  private readonly statusPlurals: Set<string>;
  private readonly bookmarkMs: number;
  private readonly notServed: Set<string>;
  /** Tests: called before each write (POST/PUT/DELETE); a status code returned is answered instead (409: a Conflict). */
  beforeWrite?: (method: string, path: string) => number | undefined;
  private readonly forbidden: Set<string>;
  private readonly user: string;
  /** Every watch request's query, for tests of what a client asked for. */
  readonly watchRequests: URLSearchParams[] = [];
  /** How many watch events (not bookmarks) were sent, per watch. */
  eventsSent = 0;
  url = '';

  constructor(opts: StandInOptions = {}) {
    this.rv = opts.startRevision ?? 1000;
    this.statusPlurals = new Set(opts.statusSubresource ?? []);
    this.bookmarkMs = opts.bookmarkMs ?? 200;
    this.notServed = new Set(opts.notServed ?? []);
    this.forbidden = new Set([...(opts.forbid ?? [])].map((f) => `${f.verb} ${f.resource}`));
    this.user = opts.user ?? 'system:serviceaccount:egw-system:egw-agent';
    this.server = createServer((req, res) => void this.handle(req, res));
    if (opts.journal) this.openJournal(opts.journal);
  }

  private openJournal(file: string): void {
    if (existsSync(file)) {
      const lines = readFileSync(file, 'utf8').split('\n');
      for (const [i, line] of lines.entries()) {
        if (line.trim() === '') continue;
        let e: HistoryEvent | { type: 'REVISION'; rv: number };
        try {
          e = JSON.parse(line) as HistoryEvent | { type: 'REVISION'; rv: number };
          if (typeof e.rv !== 'number') throw new Error('not a journal line');
          if (e.type === 'REVISION') {
            this.rv = Math.max(this.rv, e.rv);
            continue;
          }
          if (typeof e.resource !== 'string' || !e.obj?.metadata?.name) throw new Error('not a journal line');
        } catch {
          if (i < lines.length - 1 && lines.slice(i + 1).some((l) => l.trim() !== '')) throw new Error(`${file}:${i + 1}: not a journal line (only a torn last line is dropped)`);
          this.journalDropped++;
          continue;
        }
        const coll = this.coll(e.resource);
        const k = `${e.obj.metadata.namespace ?? ''}/${e.obj.metadata.name}`;
        if (e.type === 'DELETED') coll.delete(k);
        else coll.set(k, e.obj);
        this.rv = Math.max(this.rv, e.rv);
      }
    }
    // Nothing before this point can be replayed to a watcher: a watch from an older resourceVersion gets 410.
    this.compactedAt = this.rv;
    const tmp = `${file}.tmp`;
    // The counter first: the newest object may be older than the last change (a deletion), and the counter must never
    // go back (watchers resume from it).
    const snapshot: string[] = [JSON.stringify({ type: 'REVISION', rv: this.rv })];
    for (const [resource, coll] of this.objects) for (const obj of coll.values()) snapshot.push(JSON.stringify({ rv: Number(obj.metadata.resourceVersion) || this.rv, type: 'ADDED', resource, obj }));
    writeFileSync(tmp, snapshot.map((l) => l + '\n').join(''));
    renameSync(tmp, file);
    this.journalFd = openSync(file, 'a');
  }

  /**
   * Also serves on these addresses (the lab's stand-in: its underlay address for the lab's processes, a unix socket in
   * the state directory for the host's forwarder). A stale socket file left by a killed run is removed first.
   */
  async serve(addresses: ({ host: string; port: number } | { path: string })[]): Promise<void> {
    try {
      for (const a of addresses) {
        const srv = createServer((req, res) => void this.handle(req, res));
        if ('path' in a) rmSync(a.path, { force: true });
        await new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          if ('path' in a) srv.listen(a.path, resolve);
          else srv.listen(a.port, a.host, resolve);
        });
        this.extra.push(srv);
      }
    } catch (e) {
      // all or none: a server serving the lab but not the host's forwarder would look like a running one
      for (const srv of this.extra.splice(0)) if (srv.listening) srv.close();
      throw e;
    }
  }

  /** Drops the history older than `ms` (the lab's stand-in keeps 5 minutes, as kube-apiserver compacts etcd). */
  compactOlderThan(ms: number): void {
    const cut = Date.now() - ms;
    let rv = 0;
    for (const e of this.history) if (e.at < cut) rv = e.rv;
    if (rv > 0) this.compact(rv);
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.cutWatches();
    for (const srv of [this.server, ...this.extra]) {
      srv.closeAllConnections();
      if (srv.listening) await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
    if (this.journalFd !== undefined) closeSync(this.journalFd);
    this.journalFd = undefined;
  }

  get revision(): number {
    return this.rv;
  }

  /** Drops history at and before `rv`: later watches from there get 410 Gone. */
  compact(rv: number): void {
    this.compactedAt = Math.max(this.compactedAt, rv);
    this.history = this.history.filter((e) => e.rv > rv);
  }

  /** Ends every running watch stream, as an API server does on a timeout or restart. */
  cutWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** A kubeconfig pointing at this server's start() address (standInKubeconfig). */
  kubeconfig(): string {
    return standInKubeconfig(this.url);
  }

  private parse(path: string): Target | undefined {
    const segs = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
    let group: string;
    let rest: string[];
    if (segs[0] === 'api' && segs[1] === 'v1') {
      group = '';
      rest = segs.slice(2);
    } else if (segs[0] === 'apis' && segs.length >= 3) {
      group = segs[1];
      rest = segs.slice(3);
    } else return undefined;
    const gv = group ? `${group}/${segs[2]}` : '/v1';
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    if (rest.length < 1 || rest.length > 3) return undefined;
    return { resource: `${gv}/${rest[0]}`, group, plural: rest[0], namespace, name: rest[1], sub: rest[2] };
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private async body(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    return text ? JSON.parse(text) : undefined;
  }

  private coll(resource: string): Map<string, Obj> {
    let m = this.objects.get(resource);
    if (!m) this.objects.set(resource, (m = new Map()));
    return m;
  }

  private matcher(t: Target, q: URLSearchParams): (o: Obj) => boolean {
    const labels = labelMatcher(q.get('labelSelector') ?? undefined);
    const fields = (q.get('fieldSelector') ?? '')
      .split(',')
      .filter((s) => s !== '')
      .map((req) => {
        const m = /^([a-zA-Z.]+)(==|!=|=)(.*)$/.exec(req);
        if (!m || !['metadata.name', 'metadata.namespace', 'spec.nodeName'].includes(m[1])) {
          throw Object.assign(new Error(`field label not supported: ${req}`), { status: 400 });
        }
        return { path: m[1].split('.'), neg: m[2] === '!=', value: m[3] };
      });
    return (o) => {
      if (t.namespace !== undefined && o.metadata.namespace !== t.namespace) return false;
      if (!labels(o.metadata.labels as Record<string, string> | undefined)) return false;
      for (const f of fields) {
        let v: unknown = o;
        for (const p of f.path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
        if (((v ?? '') === f.value) === f.neg) return false;
      }
      return true;
    };
  }

  private record(type: HistoryEvent['type'], t: Target, obj: Obj, prev?: Obj): void {
    const ev: HistoryEvent = { rv: this.rv, type, resource: t.resource, obj: structuredClone(obj), at: Date.now(), ...(prev ? { prev: structuredClone(prev) } : {}) };
    this.history.push(ev);
    try {
      if (this.journalFd !== undefined) writeSync(this.journalFd, JSON.stringify({ rv: ev.rv, type, resource: ev.resource, obj: ev.obj }) + '\n');
    } finally {
      // The change is made: the watchers are told even if the journal could not take it (the client then gets a 500
      // naming the failure, and a restart would not have it).
      for (const w of this.watchers) if (w.target.resource === ev.resource) this.send1(w.res, w.match, ev);
    }
  }

  /** One event as a watch with `match` sees it: entering its selector is ADDED, leaving it DELETED (the old object). */
  private send1(res: ServerResponse, match: (o: Obj) => boolean, ev: HistoryEvent): void {
    const now = match(ev.obj);
    const before = ev.prev !== undefined && match(ev.prev);
    if (ev.type !== 'MODIFIED' || ev.prev === undefined) {
      if (now) this.line(res, ev.type, ev.obj);
    } else if (now) this.line(res, before ? 'MODIFIED' : 'ADDED', ev.obj);
    else if (before) this.line(res, 'DELETED', { ...ev.prev!, metadata: { ...ev.prev!.metadata, resourceVersion: String(ev.rv) } });
  }

  private line(res: ServerResponse, type: string, object: unknown): void {
    if (type !== 'BOOKMARK') this.eventsSent++;
    res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      const t = this.parse(url.pathname);
      if (!t) return this.send(res, 404, status(404, 'NotFound', `the server could not find the requested resource`));
      const q = url.searchParams;
      const qualified = t.group ? `${t.plural}.${t.group}` : t.plural;
      // as a real API server answers for a resource nobody registered
      if (this.notServed.has(qualified)) return this.send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      if (this.forbidden.size > 0) {
        const isWatch = q.get('watch') === '1' || q.get('watch') === 'true';
        const verb = req.method === 'POST' ? 'create' : req.method === 'PUT' ? 'update' : req.method === 'DELETE' ? 'delete' : t.name !== undefined ? 'get' : isWatch ? 'watch' : 'list';
        const rbacResource = t.sub ? `${t.plural}/${t.sub}` : t.plural;
        if (this.forbidden.has(`${verb} ${t.group ? `${rbacResource}.${t.group}` : rbacResource}`)) {
          // as kube-apiserver words it (the resource, the user, the verb, resource and group, the scope)
          const what = t.name !== undefined && req.method !== 'POST' ? `${qualified} "${t.name}"` : qualified;
          const scope = t.namespace !== undefined ? `in the namespace "${t.namespace}"` : 'at the cluster scope';
          const msg = `${what} is forbidden: User "${this.user}" cannot ${verb} resource "${rbacResource}" in API group "${t.group}" ${scope}`;
          return this.send(res, 403, status(403, 'Forbidden', msg, { ...(t.name !== undefined ? { name: t.name } : {}), group: t.group, kind: t.plural }));
        }
      }
      const notFound = (name: string) => status(404, 'NotFound', `${qualified} "${name}" not found`, { name, group: t.group, kind: t.plural });
      const key = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`;
      const coll = this.coll(t.resource);
      if (req.method === 'GET' && t.name === undefined) {
        const match = this.matcher(t, q);
        if (q.get('watch') === '1' || q.get('watch') === 'true') return this.serveWatch(t, q, match, res);
        let items = [...coll.values()].filter(match).map((o) => {
          // A list's items carry no kind/apiVersion (the list's own kind says it), as a real API server sends them.
          const { kind: _k, apiVersion: _a, ...rest } = structuredClone(o);
          return rest;
        });
        const limit = Number(q.get('limit') ?? 0);
        if (limit > 0) items = items.slice(0, limit);
        return this.send(res, 200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items });
      }
      const injected = req.method !== 'GET' ? this.beforeWrite?.(req.method ?? '', url.pathname) : undefined;
      if (injected !== undefined) {
        return this.send(res, injected, status(injected, injected === 409 ? 'Conflict' : 'InternalError', `injected by the test: ${req.method} ${url.pathname} answered ${injected}`));
      }
      if (t.name === undefined && req.method !== 'POST') return this.send(res, 405, status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
      const body = (await this.body(req)) as Obj | undefined;
      if (req.method === 'POST') {
        if (!body?.metadata?.name) return this.send(res, 422, status(422, 'Invalid', `${qualified} is invalid: metadata.name: Required value`));
        const k = key(t.namespace, body.metadata.name);
        if (coll.has(k)) {
          return this.send(res, 409, status(409, 'AlreadyExists', `${qualified} "${body.metadata.name}" already exists`, { name: body.metadata.name, group: t.group, kind: t.plural }));
        }
        this.rv++;
        const obj: Obj = { ...body, metadata: { ...body.metadata, uid: randomUUID(), creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), resourceVersion: String(this.rv) } };
        if (t.namespace !== undefined) obj.metadata.namespace = t.namespace;
        coll.set(k, obj);
        this.record('ADDED', t, obj);
        return this.send(res, 201, obj);
      }
      const k = key(t.namespace, t.name!);
      const cur = coll.get(k);
      if (req.method === 'GET') return cur ? this.send(res, 200, cur) : this.send(res, 404, notFound(t.name!));
      if (!cur) return this.send(res, 404, notFound(t.name!));
      const conflict = () =>
        status(409, 'Conflict', `Operation cannot be fulfilled on ${qualified} "${t.name}": the object has been modified; please apply your changes to the latest version and try again`, {
          name: t.name,
          group: t.group,
          kind: t.plural,
        });
      if (req.method === 'PUT') {
        if (!body?.metadata) return this.send(res, 400, status(400, 'BadRequest', 'the request body is not an object'));
        const given = body.metadata.resourceVersion;
        if (given !== undefined && given !== '' && given !== cur.metadata.resourceVersion) return this.send(res, 409, conflict());
        this.rv++;
        const statusOnly = t.sub === 'status';
        const hasSub = this.statusPlurals.has(t.plural);
        const next: Obj = statusOnly ? { ...structuredClone(cur), status: body.status } : { ...body };
        if (!statusOnly && hasSub) {
          if (cur.status === undefined) delete next.status;
          else next.status = structuredClone(cur.status);
        }
        next.metadata = { ...(statusOnly ? cur.metadata : body.metadata), uid: cur.metadata.uid, creationTimestamp: cur.metadata.creationTimestamp, resourceVersion: String(this.rv) };
        if (t.namespace !== undefined) next.metadata.namespace = t.namespace;
        coll.set(k, next);
        this.record('MODIFIED', t, next, cur);
        return this.send(res, 200, next);
      }
      if (req.method === 'DELETE') {
        const pre = (body as { preconditions?: { resourceVersion?: string } } | undefined)?.preconditions?.resourceVersion;
        if (pre !== undefined && pre !== cur.metadata.resourceVersion) return this.send(res, 409, conflict());
        this.rv++;
        coll.delete(k);
        const gone: Obj = { ...cur, metadata: { ...cur.metadata, resourceVersion: String(this.rv) } };
        this.record('DELETED', t, gone);
        return this.send(res, 200, gone);
      }
      return this.send(res, 405, status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
    } catch (e) {
      const code = (e as { status?: number }).status ?? 500;
      this.send(res, code, status(code, code === 400 ? 'BadRequest' : 'InternalError', (e as Error).message));
    }
  }

  private serveWatch(t: Target, q: URLSearchParams, match: (o: Obj) => boolean, res: ServerResponse): void {
    this.watchRequests.push(q);
    const fromText = q.get('resourceVersion') ?? '';
    const from = fromText === '' ? 0 : Number(fromText);
    if (from !== 0 && from < this.compactedAt) {
      return this.send(res, 410, status(410, 'Expired', `too old resource version: ${from} (${this.compactedAt})`));
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const w: Watcher = { target: t, match, res };
    if (from === 0) {
      // resourceVersion unset or "0": the current state as ADDED events, then changes (Kubernetes' "any" semantics).
      for (const o of this.coll(t.resource).values()) if (match(o)) this.line(res, 'ADDED', o);
    } else {
      for (const e of this.history) if (e.rv > from && e.resource === t.resource) this.send1(res, match, e);
    }
    this.watchers.add(w);
    const timers: NodeJS.Timeout[] = [];
    if (q.get('allowWatchBookmarks') === 'true') {
      timers.push(setInterval(() => this.line(res, 'BOOKMARK', { kind: 'Bookmark', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } }), this.bookmarkMs));
    }
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    if (timeout > 0) timers.push(setTimeout(() => res.end(), timeout * 1000));
    res.on('close', () => {
      for (const x of timers) clearInterval(x);
      this.watchers.delete(w);
    });
  }
}
