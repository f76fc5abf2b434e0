// The egress gateway process (`egw gateway --pod NS/NAME`), running inside the gateway pod's network namespace:
// learns its configuration from the datastore (list + watch), programs the tunnel, forwarding, anti-spoofing, MSS
// clamp and masquerade (dataplane.ts), and serves /liveness and /readiness. On exit it leaves the kernel state in
// place; on start it changes only what differs, so a restart disturbs no traffic.
//
// Health (docs/behaviour.md §3.4): readiness = data plane programmed ∧ datastore seen within healthTimeoutDataStoreSeconds ∧ the
// EgressGateway's ICMP/HTTP probes passing (probes.ts). It is evaluated every `readinessTickMs` (100 ms) and after
// every probe result; the result is served on `GET /readiness` (503 + reasons), answered to the node agents'
// UDP heartbeats on the same port number (heartbeat.ts), and written to the Pod's own Ready condition when it
// changes (podstatus.ts — in Kubernetes the kubelet's readiness probe does that; in the lab the gateway does).
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { GATEWAY_UPLINK, VXLAN_DEVICE } from '../api/dataplane.js';
import { startInformer } from '../datastore/informer.js';
import type { Store } from '../datastore/types.js';
import { localRunner, type Runner } from '../dataplane/exec.js';
import { createLogger, type Logger } from '../log.js';
import { aborted, Backoff, errText, sleep } from '../util.js';
import { programGateway } from './dataplane.js';
import { intersectMasks, parseCpuList, parseCpusAllowed, rpsMask } from './plan.js';
import { Readiness, startHealthServer } from './health.js';
import { startHeartbeatResponder, type HeartbeatResponder } from './heartbeat.js';
import { GATEWAY_KINDS, GatewayModel } from './model.js';
import { hasConditions, PORT_PRESSURE_CONDITION, portPressureCondition, readyConditionOf, writePodConditions, type PodCondition, type ReadyCondition } from './podstatus.js';
import { Probes, type ProbeFn } from './probes.js';
import { gatewayEnricher, PodIPIndex } from '../audit/enrich.js';
import { startRecorder, type FlowRecordingOptions, type RecorderHandle } from '../audit/recorder.js';
import { podIPv4 } from '../api/pod.js';
import { ANNOTATION } from '../api/types.js';
import type { FlowGateway } from '../audit/types.js';
import { gatewayMetrics, processRegistry } from '../metrics/metrics.js';
import { serveMetrics, type MetricsListen, type MetricsServer } from '../metrics/server.js';
import { readConntrackCount } from '../audit/ctsource.js';
import { busiest } from '../audit/ports.js';

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
  /**
   * Receive packet steering on the uplink and the tunnel over the CPUs this process may run on (docs/dataplane.md,
   * "Why RPS"). Default true; false leaves RPS as it is (`--no-rps`).
   */
  rps?: boolean;
  /** How often readiness is re-evaluated (probe timeouts, datastore age), ms. Default 100. */
  readinessTickMs?: number;
  /** Answer the agents' UDP heartbeats on the health port number (udp). Default true. */
  heartbeat?: boolean;
  /** Write the Pod's Ready condition when readiness changes. Default true. */
  podCondition?: boolean;
  /** Replace how probes are made (tests): one attempt each, resolving null on success or an error text. */
  probes?: { ping?: ProbeFn; httpGet?: ProbeFn };
  /** Flow records of the connections this gateway translates (docs/audit.md); false or absent = none. */
  flows?: FlowRecordingOptions | false;
  /** Where to serve `/metrics` (docs/observability.md); absent or false = none (`egw gateway` serves :9092). */
  metrics?: MetricsListen | false;
}

const DEBOUNCE_MS = 10;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

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
  /**
   * Since when the datastore has not answered: the start of the first heartbeat read that failed (or is still
   * waiting) after the last contact; null while it answers. Contact was lost at or before this moment, so counting
   * from it never reports not-ready before healthTimeoutDataStoreSeconds have passed (docs/behaviour.md §3.4).
   */
  private unansweredSince: number | null = null;
  private programmed = false;
  /** True once the first attempt to program the data plane has finished (successfully or not). */
  private firstAttemptDone = false;
  private notReady: string | null = 'data plane not programmed yet';
  private lastApplied: string | null = null;
  private lastWarnings = '';
  /** The data plane's last notes (logged when they change). */
  private lastNotes = '';
  /** The RPS mask the data plane sets (allowedCpuMask), or undefined: RPS off. */
  private readonly rpsMask: string | undefined;
  private dirty = false;
  private force = true;
  private wake: (() => void) | null = null;
  private readonly probes: Probes;
  private heartbeat: HeartbeatResponder | null = null;
  /** `ready|failing checks` of the last evaluation: a change is a readiness transition. */
  private healthSig: string | null = null;
  private wantCondition: ReadyCondition | null = null;
  private condWriting = false;
  /** SNAT port pressure (podstatus.ts portPressureCondition), re-evaluated once a second; null: never raised. */
  private wantPressure: ReadyCondition | null = null;
  private pressureAt = 0;
  /** The conditions last written (their JSON) and the Pod's resourceVersion they were written over (until the watch shows it). */
  private condWritten: { sig: string; rv: string | undefined } | null = null;
  private condRetryAt = 0;
  private readonly condBackoff = new Backoff({ minMs: BACKOFF_MIN_MS, maxMs: BACKOFF_MAX_MS });
  /** Pods by IP for the flow records, fed by the same informer as the model. */
  private readonly podIndex = new PodIPIndex();
  private recorder: RecorderHandle | null = null;
  /** Tells the recorder the first list is in. */
  private podsListed: () => void = () => {};
  private watchLag: ((s: number) => void) | undefined;

  constructor(private readonly opts: GatewayOptions) {
    this.log = opts.log ?? createLogger('gateway');
    this.runner = opts.runner ?? localRunner();
    this.rpsMask = opts.rps === false ? undefined : allowedCpuMask();
    this.model = new GatewayModel(opts.namespace, opts.name);
    this.probes = new Probes({
      runner: this.runner,
      ping: opts.probes?.ping,
      httpGet: opts.probes?.httpGet,
      startedAt: Date.now(),
      onResult: () => this.evaluateHealth(),
      log: this.log.child('probe'),
    });
    this.readiness.register('dataplane', () => (this.programmed ? [] : [this.notReady ?? 'not programmed']));
    this.readiness.register('datastore', () => this.datastoreReasons());
    this.readiness.register('icmp probe', () => this.probes.icmpReasons());
    this.readiness.register('http probe', () => this.probes.httpReasons());
  }

  private timeoutSeconds(): number {
    return this.model.failureDetection().healthTimeoutDataStoreSeconds;
  }

  private datastoreReasons(): string[] {
    const t = this.timeoutSeconds();
    if (this.lastSeen === null) return [`datastore ${this.opts.store.description} not reached yet`];
    if (this.unansweredSince === null) return [];
    const age = Date.now() - this.unansweredSince;
    if (age > t * 1000) return [`datastore ${this.opts.store.description} not answering for ${(age / 1000).toFixed(1)}s (healthTimeoutDataStoreSeconds ${t})`];
    return [];
  }

  private seen(): void {
    this.lastSeen = Date.now();
    this.unansweredSince = null;
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
    if (this.opts.heartbeat ?? true) {
      try {
        this.heartbeat = await startHeartbeatResponder({ port: health.port, host: this.opts.healthHost ?? '0.0.0.0', log: this.log });
      } catch (err) {
        // the agents then see missed heartbeats and keep this gateway out of their routes
        this.log.error('cannot answer heartbeats', { port: `${health.port}/udp`, err: errText(err) });
      }
    }
    this.log.info('started', { pod: this.model.podKey, health: `${this.opts.healthHost ?? '0.0.0.0'}:${health.port}`, heartbeat: this.heartbeat ? `${health.port}/udp` : 'off', store: this.opts.store.description });
    this.opts.onHealthListening?.(health.port);
    const onAbort = (): void => this.ac.abort();
    outer?.addEventListener('abort', onAbort, { once: true });
    if (outer?.aborted) this.ac.abort();
    this.startRecorder();
    const metrics = await this.startMetrics();
    try {
      const loops = [this.syncLoop(), this.heartbeatLoop(), this.reconcileLoop(), this.resyncLoop(), this.healthLoop()];
      await this.stopped;
      this.wake?.();
      await Promise.allSettled(loops);
      await this.recorder?.done;
    } finally {
      outer?.removeEventListener('abort', onAbort);
      this.probes.stop();
      await this.heartbeat?.close();
      await metrics?.close();
      await health.close();
      this.log.info('stopped (kernel state left in place)', { pod: this.model.podKey });
    }
  }

  // ---- datastore ------------------------------------------------------------------------------------------------

  /** The informer (src/datastore/informer.ts) over the kinds the gateway needs: a relist rebuilds the model. */
  private async syncLoop(): Promise<void> {
    const informer = startInformer({
      store: this.opts.store,
      kinds: GATEWAY_KINDS,
      signal: this.stop,
      backoff: { minMs: BACKOFF_MIN_MS, maxMs: BACKOFF_MAX_MS },
      onReplace: (objects, revision) => {
        const model = new GatewayModel(this.opts.namespace, this.opts.name);
        for (const item of objects) model.apply('upsert', item);
        this.model = model;
        this.podIndex.replace(objects);
        this.podsListed();
        this.seen();
        // (as the agent's: when it is read again after an outage, docs/behaviour.md §3.4)
        this.log.info('datastore synced', { objects: objects.length, revision });
        this.request(false);
      },
      onEvents: (events) => {
        this.seen();
        let changed = false;
        for (const ev of events) {
          changed = this.model.apply(ev.type === 'DELETED' ? 'delete' : 'upsert', ev.object) || changed;
          this.podIndex.apply(ev.type === 'DELETED' ? 'delete' : 'upsert', ev.object);
        }
        if (changed) this.request(false);
      },
      onLag: (s) => this.watchLag?.(s),
      onError: (err, retryMs) => this.log.warn('datastore list/watch failed; listing again', { err: errText(err), retryMs }),
    });
    await informer.done;
  }

  /**
   * The flow recorder starts with the process (a restart loses as little recording as it can); it enriches what it
   * reads once the first list has brought the pods (podsListed).
   */
  private startRecorder(): void {
    const flows = this.opts.flows;
    if (!flows || this.recorder || this.stop.aborted) return;
    const podsKnown = new Promise<void>((res) => (this.podsListed = res));
    const self = (): FlowGateway => {
      const pod = this.model.pod();
      const g: FlowGateway = { namespace: this.opts.namespace, name: this.opts.name, node: pod?.spec?.nodeName ?? null, ip: (pod && podIPv4(pod)) ?? '' };
      const of = pod?.metadata.annotations?.[ANNOTATION.gatewayOf];
      if (of) g.egressGateway = of;
      return g;
    };
    this.recorder = startRecorder({
      reporter: 'gateway',
      reporterName: this.model.podKey,
      root: flows.root,
      store: flows.store,
      checkMs: flows.checkMs,
      aggregateMs: flows.aggregateMs,
      runner: this.runner,
      enrich: gatewayEnricher(this.podIndex, { routeOf: (ns, name, dst) => this.model.calc.routeOf(ns, name, dst) }, self),
      podsKnown,
      log: this.log.child('flows'),
      signal: this.stop,
    });
  }

  /** `/metrics` (docs/observability.md): every value is read at scrape time from what the process already keeps. */
  private async startMetrics(): Promise<MetricsServer | undefined> {
    const listen = this.opts.metrics;
    if (!listen || this.stop.aborted) return undefined;
    const { registry, watchLag } = processRegistry();
    this.watchLag = (s) => watchLag.observe(s);
    // the conntrack count of this namespace: only when the process runs in it (no runner given)
    const inNetns = this.opts.runner === undefined;
    gatewayMetrics(registry, {
      clients: () => this.model.calc.gatewayClients(this.model.podKey).length,
      ...(inNetns ? { conntrackEntries: conntrackCount } : {}),
      ports: () => this.recorder?.portUse() ?? [],
      records: () => this.recorder?.stats().records ?? 0,
      gaps: () => this.recorder?.stats().gaps ?? 0,
    });
    return serveMetrics(registry, listen, this.log.child('metrics'));
  }

  /** Readiness needs to know the datastore answers even when nothing changes in it. */
  private async heartbeatLoop(): Promise<void> {
    let last = Date.now();
    /** When the heartbeat read first failed in a row of failures (a watch that reconnects by itself says nothing). */
    let failingSince: number | null = null;
    while (!this.stop.aborted) {
      // the period follows the EgressGateway's timeout, which may only be learnt after the first list
      const every = this.opts.heartbeatMs ?? Math.min(5000, (this.timeoutSeconds() * 1000) / 3);
      const wait = last + every - Date.now();
      if (wait > 0) {
        await sleep(Math.min(wait, 250), this.stop);
        continue;
      }
      last = Date.now();
      const asked = last;
      // A read still waiting counts as unanswered from its start (a frozen datastore may not fail it for seconds).
      const pending = setTimeout(() => (this.unansweredSince ??= asked), every);
      try {
        await Promise.race([this.opts.store.revision(), this.stopped]);
        if (!this.stop.aborted) {
          this.seen();
          if (failingSince !== null) this.log.info('datastore reachable again', { unreachableForMs: Date.now() - failingSince });
          failingSince = null;
        }
      } catch (err) {
        this.unansweredSince ??= asked;
        if (failingSince === null) {
          failingSince = last;
          // once per outage (docs/behaviour.md §3.4: readiness goes after healthTimeoutDataStoreSeconds of this)
          this.log.warn('datastore unreachable; keeping the data plane as it is', { err: errText(err), notReadyAfterS: this.timeoutSeconds() });
        } else this.log.debug('datastore heartbeat failed', { err: errText(err) });
      } finally {
        clearTimeout(pending);
      }
    }
  }

  // ---- health ----------------------------------------------------------------------------------------------------

  private async healthLoop(): Promise<void> {
    const every = this.opts.readinessTickMs ?? 100;
    while (!this.stop.aborted) {
      this.evaluateHealth();
      await sleep(every, this.stop);
    }
  }

  /** Re-evaluates readiness: heartbeat replies, transition log, the Pod condition. Cheap; runs 10×/s. */
  private evaluateHealth(): void {
    if (this.stop.aborted) return;
    this.probes.configure(this.model.failureDetection());
    // Before its first programming attempt the gateway says nothing (no heartbeat replies, no Pod condition): it
    // may be a restart over a data plane that is working, and agents must not drop it for that.
    if (!this.firstAttemptDone) return;
    const r = this.readiness.evaluate();
    const pod = this.model.pod();
    const draining = !!pod?.metadata.deletionTimestamp;
    this.heartbeat?.setState({ ready: r.ready, draining, known: pod !== undefined });
    const sig = `${r.ready}|${r.failing.join(',')}`;
    if (sig !== this.healthSig) {
      if (r.ready) this.log.info('ready', { pod: this.model.podKey });
      else if (this.healthSig !== null || r.failing.some((f) => f !== 'dataplane' && f !== 'datastore')) this.log.warn('not ready', { pod: this.model.podKey, reasons: r.reasons });
      this.healthSig = sig;
      this.wantCondition = readyConditionOf(r);
    }
    this.evaluatePressure();
    this.syncCondition();
  }

  private evaluatePressure(): void {
    const now = Date.now();
    if (!this.recorder || now - this.pressureAt < 1000) return;
    this.pressureAt = now;
    const was = this.wantPressure ? this.wantPressure.status === 'True' : null;
    const want = portPressureCondition(busiest(this.recorder.portUse()), was);
    if (want && (want.status !== this.wantPressure?.status || want.status === 'True')) {
      if (want.status !== this.wantPressure?.status) this.log[want.status === 'True' ? 'warn' : 'info'](`SNAT port pressure ${want.status === 'True' ? 'raised' : 'cleared'}: ${want.message}`);
      this.wantPressure = want;
    }
  }

  /**
   * Writes the wanted Ready (and SNAT port pressure) conditions unless the Pod (or a write the watch has not shown
   * yet) already has them. The pressure message follows the port use only while it is True (a write per second at
   * most, and only under pressure).
   */
  private syncCondition(): void {
    const ready = this.wantCondition;
    const pod = this.model.pod();
    if (!ready || !pod || this.condWriting || !(this.opts.podCondition ?? true)) return;
    const wants: PodCondition[] = [{ type: 'Ready', ...ready }, ...(this.wantPressure ? [{ type: PORT_PRESSURE_CONDITION, ...this.wantPressure }] : [])];
    if (hasConditions(pod, wants)) {
      this.condWritten = null;
      return;
    }
    const rv = pod.metadata.resourceVersion;
    const sig = JSON.stringify(wants);
    if (this.condWritten && this.condWritten.sig === sig && this.condWritten.rv === rv) return; // in flight via the watch
    if (Date.now() < this.condRetryAt) return;
    this.condWriting = true;
    writePodConditions(this.opts.store, this.opts.namespace, this.opts.name, pod.metadata.uid, wants)
      .then((res) => {
        this.condWritten = { sig, rv };
        this.condBackoff.reset();
        if (res === 'written') this.log.info('pod conditions written', { ready: ready.status, reason: ready.reason, ...(this.wantPressure ? { snatPortPressure: this.wantPressure.status } : {}) });
      })
      .catch((err) => {
        const retryMs = this.condBackoff.next();
        this.condRetryAt = Date.now() + retryMs;
        this.log.warn('writing the pod Ready condition failed', { err: errText(err), retryMs });
      })
      .finally(() => {
        this.condWriting = false;
      });
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
    const backoff = new Backoff({ minMs: BACKOFF_MIN_MS, maxMs: BACKOFF_MAX_MS });
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
        backoff.reset();
        this.firstAttemptDone ||= this.programmed;
      } catch (err) {
        this.firstAttemptDone = true;
        this.programmed = false;
        this.notReady = `programming the data plane failed: ${errText(err)}`;
        const retryMs = backoff.next();
        this.log.error('programming the data plane failed', { err: errText(err), retryMs });
        await sleep(retryMs, this.stop);
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
    const r = await programGateway(this.runner, { ...d.config, device: this.opts.device ?? VXLAN_DEVICE, uplink: this.opts.uplink ?? GATEWAY_UPLINK, ...(this.rpsMask ? { rpsMask: this.rpsMask } : {}) });
    this.lastApplied = key;
    const notes = r.notes.join('\n');
    if (notes !== this.lastNotes) for (const x of r.notes) this.log.warn(x);
    this.lastNotes = notes;
    if (r.changes.length) this.log.info('data plane programmed', { changes: r.changes, clients: d.config.clients.length, nodes: d.config.nodes.length, mtu: r.mtu });
    // the first programming of this process (a restart over a working data plane) says so at info, as the agent does
    else if (!this.programmed) this.log.info('data plane already right: adopted as it is', { clients: d.config.clients.length, nodes: d.config.nodes.length });
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

/** Connection tracking entries of this network namespace (per namespace since Linux 4.x); NaN if unreadable. */
/** The gateway namespace's conntrack entries for the metric: NaN (not a failed scrape) when they cannot be read. */
function conntrackCount(): number {
  try {
    return readConntrackCount();
  } catch {
    return NaN;
  }
}

/**
 * The CPUs RPS may use (GatewayDesired.rps): those this process may run on (its Cpus_allowed) that are online — the
 * kernel keeps only online CPUs of a mask it is given, and a CPU it dropped would mean a write every resync. Every
 * CPU when neither can be read.
 */
function allowedCpuMask(): string {
  const read = (f: string): string | null => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return null; /* not Linux's /proc or /sys */
    }
  };
  const status = read('/proc/self/status');
  const allowed = status === null ? null : parseCpusAllowed(status);
  const onlineList = read('/sys/devices/system/cpu/online');
  const online = onlineList === null ? null : parseCpuList(onlineList);
  const both = allowed && online ? intersectMasks(allowed, online) : (allowed ?? online);
  return both ?? rpsMask(availableParallelism());
}
