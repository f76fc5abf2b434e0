// The egress gateway process (`egw gateway --pod NS/NAME`), running inside the gateway pod's network namespace:
// learns its configuration from the datastore (list + watch), programs the tunnel, forwarding, anti-spoofing, MSS
// clamp and masquerade (dataplane.ts), and serves /liveness and /readiness. On exit it leaves the kernel state in
// place; on start it changes only what differs, so a restart disturbs no traffic.
import type { Store, Watch } from '../datastore/types.js';
import { localRunner, type Runner } from '../dataplane/exec.js';
import { createLogger, type Logger } from '../log.js';
import { GATEWAY_UPLINK, GATEWAY_VXLAN_DEVICE, programGateway } from './dataplane.js';
import { Readiness, startHealthServer } from './health.js';
import { GATEWAY_KINDS, GatewayModel } from './model.js';

export interface GatewayOptions {
  store: Store;
  /** The gateway pod's namespace and name. */
  namespace: string;
  name: string;
  /** Runs the kernel commands; default localRunner() (the process runs inside the pod's netns). */
  runner?: Runner;
  /** Default 8080; 0 picks a free port (see onHealthListening). */
  healthPort?: number;
  /** Default '0.0.0.0'. */
  healthHost?: string;
  log?: Logger;
  /** Abort to stop: runGateway resolves once everything it started has stopped. Kernel state is left in place. */
  signal?: AbortSignal;
  /** Called with the bound health port once the server listens. */
  onHealthListening?: (port: number) => void;
  /** How often the datastore is pinged for readiness. Default: min(5 s, healthTimeoutDataStoreSeconds / 3). */
  heartbeatMs?: number;
  /** Full re-read of the kernel to repair drift, even when nothing changed in the datastore. Default 30 s. */
  resyncMs?: number;
  /** Names of the tunnel device and the uplink. Defaults `egw.vxlan`, `eth0`. */
  device?: string;
  uplink?: string;
}

const DEBOUNCE_MS = 10;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Resolves after `ms`, or early when the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

class GatewayProcess {
  private readonly log: Logger;
  private readonly runner: Runner;
  private readonly ac = new AbortController();
  private readonly stop = this.ac.signal;
  /** Resolves when the process is asked to stop (one listener, shared). */
  private readonly stopped = aborted(this.stop);
  private model: GatewayModel;
  private readonly readiness = new Readiness();
  /** When the datastore last answered (ms since epoch); null = never. */
  private lastSeen: number | null = null;
  private programmed = false;
  private notReady: string | null = 'data plane not programmed yet';
  private lastApplied: string | null = null;
  private lastWarnings = '';
  private dirty = false;
  private force = true;
  private wake: (() => void) | null = null;

  constructor(private readonly opts: GatewayOptions) {
    this.log = opts.log ?? createLogger('gateway');
    this.runner = opts.runner ?? localRunner();
    this.model = new GatewayModel(opts.namespace, opts.name);
    this.readiness.register('dataplane', () => (this.programmed ? [] : [this.notReady ?? 'not programmed']));
    this.readiness.register('datastore', () => this.datastoreReasons());
  }

  private timeoutSeconds(): number {
    return this.model.failureDetection().healthTimeoutDataStoreSeconds;
  }

  private datastoreReasons(): string[] {
    const t = this.timeoutSeconds();
    if (this.lastSeen === null) return [`datastore ${this.opts.store.description} not reached yet`];
    const age = Date.now() - this.lastSeen;
    if (age > t * 1000) return [`datastore ${this.opts.store.description} not seen for ${(age / 1000).toFixed(1)}s (healthTimeoutDataStoreSeconds ${t})`];
    return [];
  }

  private seen(): void {
    this.lastSeen = Date.now();
  }

  async run(): Promise<void> {
    const outer = this.opts.signal;
    if (outer?.aborted) return;
    const health = await startHealthServer({
      port: this.opts.healthPort ?? 8080,
      host: this.opts.healthHost ?? '0.0.0.0',
      readiness: this.readiness,
      log: this.log,
    });
    this.log.info('started', { pod: this.model.podKey, health: `${this.opts.healthHost ?? '0.0.0.0'}:${health.port}`, store: this.opts.store.description });
    this.opts.onHealthListening?.(health.port);
    const onAbort = (): void => this.ac.abort();
    outer?.addEventListener('abort', onAbort, { once: true });
    if (outer?.aborted) this.ac.abort();
    try {
      const loops = [this.syncLoop(), this.heartbeatLoop(), this.reconcileLoop(), this.resyncLoop()];
      await this.stopped;
      this.wake?.();
      await Promise.allSettled(loops);
    } finally {
      outer?.removeEventListener('abort', onAbort);
      await health.close();
      this.log.info('stopped (kernel state left in place)', { pod: this.model.podKey });
    }
  }

  // ---- datastore ------------------------------------------------------------------------------------------------

  /** List every kind, then watch everything from the oldest list revision; on any failure start over. */
  private async syncLoop(): Promise<void> {
    const store = this.opts.store;
    let backoff = BACKOFF_MIN_MS;
    while (!this.stop.aborted) {
      let watch: Watch | undefined;
      try {
        // (a datastore call that hangs must not hold up stopping)
        const lists = await Promise.race([Promise.all(GATEWAY_KINDS.map((k) => store.list(k))), this.stopped.then(() => null)]);
        if (!lists || this.stop.aborted) break;
        const model = new GatewayModel(this.opts.namespace, this.opts.name);
        for (const l of lists) for (const item of l.items) model.apply('upsert', item);
        this.model = model;
        this.seen();
        this.request(false);
        // Replaying events between the oldest and the newest list revision converges to the same state.
        const from = Math.min(...lists.map((l) => l.revision));
        let failed: (err: unknown) => void = () => {};
        const stopped = new Promise<unknown>((resolve) => (failed = resolve));
        watch = await store.watch({ fromRevision: from, onError: (err) => failed(err) }, (events) => {
          this.seen();
          let changed = false;
          for (const ev of events) changed = this.model.apply(ev.type === 'DELETED' ? 'delete' : 'upsert', ev.object) || changed;
          if (changed) this.request(false);
        });
        backoff = BACKOFF_MIN_MS;
        const err = await Promise.race([stopped, this.stopped.then(() => undefined)]);
        if (this.stop.aborted) break;
        this.log.warn('datastore watch stopped; listing again', { err: errText(err) });
      } catch (err) {
        if (this.stop.aborted) break;
        this.log.warn('datastore unavailable', { err: errText(err), retryMs: backoff });
      } finally {
        await watch?.close().catch(() => {});
      }
      await sleep(backoff, this.stop);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  /** Readiness needs to know the datastore answers even when nothing changes in it. */
  private async heartbeatLoop(): Promise<void> {
    let last = Date.now();
    while (!this.stop.aborted) {
      // the period follows the EgressGateway's timeout, which may only be learnt after the first list
      const every = this.opts.heartbeatMs ?? Math.min(5000, (this.timeoutSeconds() * 1000) / 3);
      const wait = last + every - Date.now();
      if (wait > 0) {
        await sleep(Math.min(wait, 250), this.stop);
        continue;
      }
      last = Date.now();
      try {
        await Promise.race([this.opts.store.revision(), this.stopped]);
        if (!this.stop.aborted) this.seen();
      } catch (err) {
        this.log.debug('datastore heartbeat failed', { err: errText(err) });
      }
    }
  }

  // ---- data plane ----------------------------------------------------------------------------------------------

  /** Asks for a reconcile; `force` re-reads the kernel even if the desired configuration did not change. */
  private request(force: boolean): void {
    this.dirty = true;
    if (force) this.force = true;
    this.wake?.();
  }

  private async resyncLoop(): Promise<void> {
    const every = this.opts.resyncMs ?? 30_000;
    while (!this.stop.aborted) {
      await sleep(every, this.stop);
      if (!this.stop.aborted) this.request(true);
    }
  }

  private async reconcileLoop(): Promise<void> {
    let backoff = BACKOFF_MIN_MS;
    while (!this.stop.aborted) {
      if (!this.dirty) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
        continue;
      }
      await sleep(DEBOUNCE_MS, this.stop);
      if (this.stop.aborted) break;
      this.dirty = false;
      const force = this.force;
      this.force = false;
      try {
        await this.reconcile(force);
        backoff = BACKOFF_MIN_MS;
      } catch (err) {
        this.programmed = false;
        this.notReady = `programming the data plane failed: ${errText(err)}`;
        this.log.error('programming the data plane failed', { err: errText(err), retryMs: backoff });
        await sleep(backoff, this.stop);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        this.request(true);
      }
    }
  }

  private async reconcile(force: boolean): Promise<void> {
    const d = this.model.desired();
    if ('waiting' in d) {
      if (this.notReady !== d.waiting || this.programmed) this.log.info('waiting', { reason: d.waiting });
      this.programmed = false;
      this.notReady = d.waiting;
      this.force = true; // once the pod is back, re-read the kernel
      return;
    }
    const w = d.warnings.join('\n');
    if (w !== this.lastWarnings) for (const x of d.warnings) this.log.warn(x);
    this.lastWarnings = w;
    const key = JSON.stringify(d.config);
    if (!force && this.programmed && key === this.lastApplied) return;
    const r = await programGateway(this.runner, { ...d.config, device: this.opts.device ?? GATEWAY_VXLAN_DEVICE, uplink: this.opts.uplink ?? GATEWAY_UPLINK });
    this.lastApplied = key;
    if (r.changes.length) this.log.info('data plane programmed', { changes: r.changes, clients: d.config.clients.length, nodes: d.config.nodes.length, mtu: r.mtu });
    else this.log.debug('data plane already right', { clients: d.config.clients.length, nodes: d.config.nodes.length });
    if (!this.programmed) this.log.info('ready to forward', { ip: d.config.ownIP, vni: d.config.vni, port: d.config.port, mtu: r.mtu, mss: r.mss });
    this.programmed = true;
    this.notReady = null;
  }
}

/** Runs the gateway until `opts.signal` aborts. */
export async function runGateway(opts: GatewayOptions): Promise<void> {
  await new GatewayProcess(opts).run();
}
