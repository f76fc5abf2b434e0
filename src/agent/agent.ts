// The node agent (`egw agent --node N`): datastore → EgressCalculator → NodeDataplane, in the node's network
// namespace (docs/dataplane.md "The processes").
//
//   1. One informer (src/datastore/informer.ts) over the kinds calc and the node NAT read: each (re)list rebuilds a
//      calculator whose underlay MTU is the MTU of the device holding the node's InternalIP (`ip -4 -json addr`);
//      each later change is applied to it, none lost and none twice.
//   2. Events are applied to the calculator at once and trigger a reconcile after a short debounce (~20 ms), which
//      runs only if the node's desired state (an object calc re-creates only when something changed) or the NAT
//      configuration changed. Every `resyncMs` a reconcile runs regardless, repairing drift in the kernel, and the
//      underlay is looked at again.
//   3. A failed reconcile is logged and retried with the one backoff policy (src/util.ts); a failed list or watch is
//      the informer's to retry, and meanwhile reconciles go on from the last known state (gateway health keeps
//      being applied: failover must not wait for the datastore). Nothing here throws out of the loop.
//   4. On abort it stops watching and returns, leaving the kernel as it is (a restart must not disturb traffic).
// Reconciles never overlap: one loop runs them, woken by the debounce, resync and retry timers.
//
// Gateway health (health.ts): the agent heartbeats every gateway a local client could use (calc's
// candidateGateways) over UDP from the node's network namespace, every egressGatewayPollInterval; a verdict change
// goes to calc.setGatewayHealth and wakes the loop at once (no debounce). Heartbeats are on by default when the agent
// runs in the node's own namespace (no `runner` given, as `egw agent` does); with a `runner` (tests, a namespace
// other than this process's) they are off unless `heartbeat.transport` says where to send them, because a UDP socket
// of this process would send from the wrong namespace. A gateway whose kernel refuses the heartbeats (its process
// restarting) keeps its verdict for `heartbeat.restartGraceMs` (health.ts, docs/behaviour.md §3.4).

import { keyOf, keyString, type Resource } from '../api/meta.js';
import { FELIX_CONFIGURATION_DEFAULT, FELIX_DEFAULTS, LABEL, type FelixConfiguration, type Node, type Pod } from '../api/types.js';
import { parseGoDuration } from '../api/parse.js';
import { EgressCalculator } from '../calc/calculator.js';
import type { NodeEgressState } from '../calc/types.js';
import { READ } from '../dataplane/commands.js';
import { localRunner, type Runner } from '../dataplane/exec.js';
import { findAddressDevice } from '../dataplane/kernel.js';
import { NodeDataplane } from '../dataplane/node.js';
import { DEFAULT_STICKY_MARK_MASK, summarizeReport, type NodeNatConfig, type ReconcileReport } from '../dataplane/types.js';
import { markMaskConflict } from '../dataplane/sticky.js';
import { startInformer, type Informer, type InformerEvent } from '../datastore/informer.js';
import type { KubeViews } from '../datastore/kubernetes-views.js';
import type { Store } from '../datastore/types.js';
import type { Logger } from '../log.js';
import { Backoff, errText } from '../util.js';
import { natConfigFromResources } from './nat.js';
import { agentMetrics, processRegistry, type AgentMetrics } from '../metrics/metrics.js';
import { serveMetrics, type MetricsListen, type MetricsServer } from '../metrics/server.js';
import { isPodReady } from '../api/pod.js';
import { nodeEnricher, PodIPIndex } from '../audit/enrich.js';
import { startRecorder, type FlowRecordingOptions, type RecorderHandle } from '../audit/recorder.js';
import type { ObservedPod } from '../audit/history.js';
import {
  DEFAULT_HEARTBEAT_PORT,
  DEFAULT_POLL_FAILURE_COUNT,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_RESTART_GRACE_MS,
  GatewayHealthMonitor,
  udpHeartbeatTransport,
  type Clock,
  type GatewayHealthStatus,
  type HeartbeatTransport,
} from './health.js';

export interface AgentHeartbeatOptions {
  /** Where requests go out and replies come in. Default: a UDP socket of this process (see the top of the file). */
  transport?: HeartbeatTransport;
  /** The gateways' heartbeat port. Default 8080. */
  port?: number;
  /** Override FelixConfiguration egressGatewayPollInterval / egressGatewayPollFailureCount (tests). */
  intervalMs?: number;
  failureCount?: number;
  /** Default half the interval. */
  replyTimeoutMs?: number;
  /**
   * How long a gateway whose kernel refuses the heartbeats (its process is down or restarting, its data plane still
   * forwarding) keeps its verdict; default 30 s; 0 = refusals count as misses (docs/behaviour.md §3.4).
   */
  restartGraceMs?: number;
  clock?: Clock;
}

export interface AgentOptions {
  store: Store;
  /** This node's name (a Node resource). */
  node: string;
  /** Where kernel commands run. Default: this process's network namespace. */
  runner?: Runner;
  /** Masquerade natOutgoing pools leaving by the underlay device. Default true. */
  natOutgoing?: boolean;
  /** Full reconcile period (drift repair), ms. Default 10000. */
  resyncMs?: number;
  /** Delay between a datastore event and the reconcile it triggers, ms. Default 20. */
  debounceMs?: number;
  log?: Logger;
  signal?: AbortSignal;
  /** Called after every successful reconcile (tests, health). */
  onReconcile?: (report: ReconcileReport, state: NodeEgressState) => void;
  /** Gateway heartbeats; false = off (health from the Pods' Ready conditions only). Default: see the top of the file. */
  heartbeat?: AgentHeartbeatOptions | false;
  /**
   * Conntrack/packet mark bits egw may use to keep connections on their gateway (default DEFAULT_STICKY_MARK_MASK,
   * 0x00003fc0, outside Felix's 0xffff0000 and kube-proxy's 0xc000). Set it when another component owns those bits;
   * runAgent refuses a mask that overlaps a FelixConfiguration's mark masks (docs/kubernetes.md).
   */
  stickyMarkMask?: number;
  /** Flow records of the connections this node SNATs itself, and its pods' IP history (docs/audit.md); false or absent = none. */
  flows?: FlowRecordingOptions | false;
  /** Where to serve `/metrics` (docs/observability.md); absent or false = none (`egw agent` serves :9091). */
  metrics?: MetricsListen | false;
}

export interface AgentStatus {
  node: string;
  /** The store has been listed and is being watched. */
  synced: boolean;
  /** Revision of the newest datastore change applied. */
  revision: number;
  underlay: { ip: string; device: string; mtu: number } | null;
  /** Successful reconciles so far. */
  reconciles: number;
  /** Consecutive failed reconciles (0 when the last one succeeded). */
  failures: number;
  lastSuccess: string | null;
  lastError: string | null;
  lastReport: { at: string; summary: string; commands: number; durationMs: number } | null;
  /** Size of the node's desired state at the last successful reconcile. */
  desired: { clients: number; tables: number; gateways: number } | null;
  /** Gateway failure detection: settings and every heartbeated gateway's verdict. */
  health: { enabled: boolean; intervalMs: number; failureCount: number; restartGraceMs: number; gateways: GatewayHealthStatus[] };
}

export interface AgentHandle {
  /** Resolves when the agent has stopped (after the signal aborted). */
  readonly done: Promise<void>;
  status(): AgentStatus;
  /** Asks for a full reconcile now (as the periodic resync does). */
  resync(): void;
}

const MAX_BACKOFF_MS = 10_000;
/** What calc and the node NAT read (exported for the scale bench, bench/kubescale.ts, which runs this informer). */
export const AGENT_KINDS: readonly string[] = ['Pod', 'Namespace', 'EgressGatewayPolicy', 'FelixConfiguration', 'IPPool', 'Node', 'EgressGateway'];

/**
 * The agent's views on a `kubernetes:` datastore (SPEC §7, "the agent watches only what it needs"): of the Pods only
 * its own node's (field selector spec.nodeName) and the gateway pods (label LABEL.gatewayOf, which the controller puts
 * on every gateway pod: src/controller/plan.ts); every other kind whole. Other datastores ignore it.
 * Nothing in the agent needs another node's client pods: calc programs one node from that node's clients
 * (docs/architecture.md, "calc: the calculation graph": node.ts, "per node: the clients"), while routes, heartbeats
 * (candidateGateways) and explain read the gateway pods; cluster-internal destinations come from IPPools and Nodes
 * (internal.ts), the node NAT from IPPools (nat.ts), and the flow recorder enriches and keeps the IP history of this
 * node's own pods only (historyPods below; docs/audit.md).
 */
export function agentKubeViews(node: string): KubeViews {
  return { Pod: [{ fieldSelector: `spec.nodeName=${node}` }, { labelSelector: LABEL.gatewayOf }] };
}

class Agent implements AgentHandle {
  readonly done: Promise<void>;
  private readonly store: Store;
  private readonly node: string;
  private readonly runner: Runner;
  private readonly natOutgoing: boolean;
  private readonly resyncMs: number;
  private readonly debounceMs: number;
  private readonly log?: Logger;
  private readonly onReconcile?: AgentOptions['onReconcile'];
  private readonly dp: NodeDataplane;

  private calc: EgressCalculator = new EgressCalculator();
  /** Pods by IP for the flow records, fed by the same informer as the calculator. */
  private readonly podIndex = new PodIPIndex();
  private recorder: RecorderHandle | null = null;
  /** Tells the recorder the first list is in. */
  private podsListed: () => void = () => {};
  private readonly recorderStop = new AbortController();
  private readonly flows: FlowRecordingOptions | false;
  private informer: Informer | null = null;
  private readonly informerStop = new AbortController();

  private aborted = false;
  private wakeResolve: (() => void) | null = null;
  private woken = false;
  private wantForce = true;
  private wantUnderlay = true;
  private debounceTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** A full list has succeeded at least once: the calculator holds a usable (if stale) picture. */
  private everSynced = false;
  private resyncTimer: NodeJS.Timeout | null = null;
  private readonly reconcileBackoff: Backoff;

  private lastState: NodeEgressState | null = null;
  private lastNatKey = '';
  private readonly st: AgentStatus;

  private readonly heartbeatOpts: AgentHeartbeatOptions | null;
  private monitor: GatewayHealthMonitor | null = null;
  private transport: HeartbeatTransport | null = null;
  /** Bumped whenever the calculator's inputs change; the heartbeat targets are recomputed when it moved. */
  private calcGen = 0;
  private targetsGen = -1;
  private readonly metricsListen: MetricsListen | false;
  private metrics: (AgentMetrics & { watchLag: (s: number) => void }) | null = null;
  private metricsServer: MetricsServer | undefined;

  constructor(opts: AgentOptions) {
    this.store = opts.store;
    this.node = opts.node;
    this.runner = opts.runner ?? localRunner();
    this.natOutgoing = opts.natOutgoing ?? true;
    this.resyncMs = opts.resyncMs ?? 10_000;
    this.debounceMs = opts.debounceMs ?? 20;
    this.log = opts.log;
    this.onReconcile = opts.onReconcile;
    this.flows = opts.flows ?? false;
    this.metricsListen = opts.metrics ?? false;
    this.reconcileBackoff = new Backoff({ minMs: 100, maxMs: Math.max(1000, Math.min(this.resyncMs, MAX_BACKOFF_MS)) });
    this.dp = new NodeDataplane(this.runner, { log: opts.log?.child('dataplane'), stickyMarkMask: opts.stickyMarkMask });
    this.st = {
      node: opts.node,
      synced: false,
      revision: 0,
      underlay: null,
      reconciles: 0,
      failures: 0,
      lastSuccess: null,
      lastError: null,
      lastReport: null,
      desired: null,
      health: { enabled: false, intervalMs: DEFAULT_POLL_INTERVAL_MS, failureCount: DEFAULT_POLL_FAILURE_COUNT, restartGraceMs: DEFAULT_RESTART_GRACE_MS, gateways: [] },
    };
    const hb = opts.heartbeat;
    this.heartbeatOpts = hb === false ? null : hb?.transport ? hb : opts.runner === undefined ? (hb ?? {}) : null;
    const signal = opts.signal;
    if (signal?.aborted) this.aborted = true;
    else signal?.addEventListener('abort', () => this.stop(), { once: true });
    this.done = this.loop();
  }

  status(): AgentStatus {
    this.st.synced = this.informer?.synced ?? false;
    if (this.monitor) {
      const s = this.monitor.settings;
      this.st.health = { enabled: true, intervalMs: s.intervalMs, failureCount: s.failureCount, restartGraceMs: s.restartGraceMs, gateways: this.monitor.status() };
    }
    return structuredClone(this.st);
  }

  resync(): void {
    this.wantForce = true;
    this.wake();
  }

  private stop(): void {
    this.aborted = true;
    this.wake();
  }

  private wake(): void {
    this.woken = true;
    const r = this.wakeResolve;
    this.wakeResolve = null;
    r?.();
  }

  private sleep(): Promise<void> {
    if (this.woken || this.aborted) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.wakeResolve = () => {
        this.woken = false;
        resolve();
      };
    });
  }

  private retryIn(ms: number): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.wantForce = true;
      this.wake();
    }, ms);
  }

  private async loop(): Promise<void> {
    if (this.aborted) return;
    this.log?.info('agent starting', { node: this.node, store: this.store.description, natOutgoing: this.natOutgoing, resyncMs: this.resyncMs });
    this.resyncTimer = setInterval(() => {
      this.wantForce = true;
      this.wantUnderlay = true;
      this.wake();
    }, this.resyncMs);
    this.resyncTimer.unref?.();
    await this.startMetrics();
    await this.startHeartbeats();
    this.startRecorder();
    this.informer = this.startInformer();
    try {
      while (!this.aborted) {
        // Before the first list there is nothing to program from (and a restarted agent must not flush the kernel).
        if (this.everSynced) await this.reconcileOnce();
        await this.sleep();
      }
    } finally {
      await this.shutdown();
    }
  }

  /** The informer: a (re)list rebuilds the calculator, a change is applied to it and reconciled after a debounce. */
  private startInformer(): Informer {
    return startInformer({
      store: this.store,
      kinds: AGENT_KINDS,
      signal: this.informerStop.signal,
      onReplace: (objects, revision) => {
        this.st.revision = revision;
        this.rebuildCalc(this.calc.underlayMtu, objects);
        this.podIndex.replace(objects);
        this.podsListed();
        this.wantUnderlay = true;
        this.wantForce = true;
        this.everSynced = true;
        this.log?.info('datastore synced', { objects: objects.length, revision });
        this.wake();
      },
      onEvents: (events) => this.onEvents(events),
      onLag: (s) => this.metrics?.watchLag(s),
      onError: (err, retryMs) => {
        this.log?.error('datastore list/watch failed; listing again (reconciles go on from the last known state)', { error: errText(err), retryMs });
      },
    });
  }

  /**
   * The flow recorder starts with the agent (a restart loses as little recording as it can); it enriches what it
   * reads once the first list has brought the pods (podsListed).
   */
  private startRecorder(): void {
    const flows = this.flows;
    if (!flows || this.recorder || this.aborted) return;
    const podsKnown = new Promise<void>((res) => (this.podsListed = res));
    this.recorder = startRecorder({
      reporter: 'node',
      reporterName: this.node,
      root: flows.root,
      store: flows.store,
      checkMs: flows.checkMs,
      aggregateMs: flows.aggregateMs,
      runner: this.runner,
      enrich: nodeEnricher(this.podIndex, { routeOf: (ns, name, dst) => this.calc.routeOf(ns, name, dst) }),
      historyPods: () => this.historyPods(),
      podsKnown,
      log: this.log?.child('flows'),
      signal: this.recorderStop.signal,
    });
  }

  /** This node's pods with their IPs, for the pod-IP history. */
  private historyPods(): ObservedPod[] {
    const out: ObservedPod[] = [];
    for (const { ip, pod, since } of this.podIndex.entries()) {
      if (pod.node !== this.node || !pod.uid || !pod.namespace || !pod.name) continue;
      const o: ObservedPod = { ip, uid: pod.uid, namespace: pod.namespace, name: pod.name, node: pod.node, labels: pod.labels };
      if (since) o.from = since;
      out.push(o);
    }
    return out;
  }

  private async startHeartbeats(): Promise<void> {
    const o = this.heartbeatOpts;
    if (!o || this.aborted) return;
    try {
      this.transport = o.transport ?? (await udpHeartbeatTransport({ log: this.log?.child('heartbeat') }));
    } catch (e) {
      this.log?.error('gateway heartbeats unavailable (health from the Pods\' Ready conditions only)', { error: errText(e) });
      return;
    }
    this.monitor = new GatewayHealthMonitor({
      transport: this.transport,
      port: o.port ?? DEFAULT_HEARTBEAT_PORT,
      intervalMs: o.intervalMs ?? DEFAULT_POLL_INTERVAL_MS,
      failureCount: o.failureCount ?? DEFAULT_POLL_FAILURE_COUNT,
      replyTimeoutMs: o.replyTimeoutMs,
      restartGraceMs: o.restartGraceMs,
      clock: o.clock,
      log: this.log?.child('health'),
      observe: {
        rtt: (ms) => this.metrics?.heartbeatRtt.observe(ms / 1000),
        down: (_pod, sinceLastReplyMs) => {
          this.metrics?.failovers.inc();
          if (sinceLastReplyMs !== null) this.metrics?.detection.observe(sinceLastReplyMs / 1000);
        },
      },
      onTransition: (pod, health) => {
        this.calc.setGatewayHealth(pod, health);
        this.wake(); // reconcile now: no debounce for failover
      },
      onForget: (pod) => {
        this.calc.setGatewayHealth(pod, null);
        this.wake();
      },
    });
    this.st.health.enabled = true;
    this.monitor.start();
  }

  /** egressGatewayPollInterval / egressGatewayPollFailureCount: FelixConfiguration `node.<node>`, then `default`. */
  private applyPollSettings(): void {
    const m = this.monitor;
    const o = this.heartbeatOpts;
    if (!m || !o) return;
    const specs = [`node.${this.node}`, FELIX_CONFIGURATION_DEFAULT].map((name) => (this.informer?.get({ kind: 'FelixConfiguration', namespace: '', name }) as FelixConfiguration | undefined)?.spec);
    const interval = specs.map((s) => s?.egressGatewayPollInterval).find((v) => v !== undefined);
    const count = specs.map((s) => s?.egressGatewayPollFailureCount).find((v) => v !== undefined);
    let ms = parseGoDuration(interval ?? FELIX_DEFAULTS.egressGatewayPollInterval);
    if (ms === undefined) {
      this.log?.warn('egressGatewayPollInterval is not a Go duration; using the default', { value: interval, default: FELIX_DEFAULTS.egressGatewayPollInterval });
      ms = DEFAULT_POLL_INTERVAL_MS;
    }
    const n = typeof count === 'number' && Number.isInteger(count) && count >= 1 ? count : FELIX_DEFAULTS.egressGatewayPollFailureCount;
    m.configure(o.intervalMs ?? ms, o.failureCount ?? n);
  }

  /** The gateways to heartbeat: recomputed when the calculator's inputs changed. */
  private updateHeartbeatTargets(): void {
    if (!this.monitor || this.targetsGen === this.calcGen) return;
    this.targetsGen = this.calcGen;
    this.monitor.setTargets(this.calc.candidateGateways(this.node));
  }

  /** `/metrics` (docs/observability.md): gauges read the agent's state at scrape time; the rest is counted as it happens. */
  private async startMetrics(): Promise<void> {
    if (!this.metricsListen || this.aborted) return;
    const { registry, watchLag } = processRegistry();
    const m = agentMetrics(registry, {
      gateways: () => this.gatewaysAsSeen(),
      clients: () => this.st.desired?.clients ?? 0,
    });
    this.metrics = { ...m, watchLag: (s) => watchLag.observe(s) };
    this.metricsServer = await serveMetrics(registry, this.metricsListen, this.log?.child('metrics'));
  }

  /** Every heartbeated gateway, up as this agent sees it: its verdict, or before the first one its Pod's Ready condition. */
  private gatewaysAsSeen(): { pod: string; ip: string; up: boolean }[] {
    return (this.monitor?.status() ?? []).map((g) => {
      if (g.verdict !== 'unknown') return { pod: g.pod, ip: g.ip, up: g.verdict === 'up' };
      const [namespace, name] = g.pod.split('/');
      const pod = this.informer?.get({ kind: 'Pod', namespace: namespace ?? '', name: name ?? '' }) as Pod | undefined;
      return { pod: g.pod, ip: g.ip, up: !!pod && isPodReady(pod) };
    });
  }

  private async shutdown(): Promise<void> {
    await this.metricsServer?.close();
    this.monitor?.stop();
    if (this.transport && this.transport !== this.heartbeatOpts?.transport) await this.transport.close().catch(() => undefined); // ours only
    for (const t of [this.debounceTimer, this.retryTimer]) if (t) clearTimeout(t);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.debounceTimer = this.retryTimer = this.resyncTimer = null;
    this.informerStop.abort();
    this.recorderStop.abort();
    await this.informer?.done;
    await this.recorder?.done;
    this.log?.info('agent stopped (kernel state left in place)', { node: this.node });
  }

  private rebuildCalc(underlayMtu: number, objects: readonly Resource[] = this.informer?.list() ?? []): void {
    this.calc = new EgressCalculator({ underlayMtu });
    this.calc.load(objects);
    // the heartbeat verdicts outlive the calculator
    for (const [pod, h] of this.monitor?.verdicts() ?? []) this.calc.setGatewayHealth(pod, h);
    this.lastState = null;
    this.calcGen++;
    this.applyPollSettings();
  }

  private onEvents(events: readonly InformerEvent[]): void {
    for (const ev of events) {
      const obj = ev.object;
      this.podIndex.apply(ev.type === 'DELETED' ? 'delete' : 'upsert', obj);
      try {
        if (ev.type === 'DELETED') this.calc.remove(obj);
        else this.calc.upsert(obj);
      } catch (e) {
        // a malformed object must not stop the watch; the next full list rebuilds the calculator
        this.log?.error('cannot apply datastore change', { object: keyString(keyOf(obj)), revision: ev.revision, error: errText(e) });
      }
      if (obj.kind === 'Node' && obj.metadata.name === this.node) this.wantUnderlay = true;
      if (obj.kind === 'FelixConfiguration') this.applyPollSettings();
      this.st.revision = Math.max(this.st.revision, ev.revision);
    }
    if (events.length > 0) this.calcGen++;
    if (events.length === 0 || this.debounceTimer) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = null;
      this.wake();
    }, this.debounceMs);
  }

  /** The node's IP (first InternalIP, else ExternalIP), the device holding it and its MTU. */
  private async detectUnderlay(): Promise<void> {
    this.wantUnderlay = false;
    const node = this.informer?.get({ kind: 'Node', namespace: '', name: this.node }) as Node | undefined;
    const addrs = node?.status?.addresses ?? [];
    const ip = addrs.find((a) => a.type === 'InternalIP')?.address ?? addrs.find((a) => a.type === 'ExternalIP')?.address;
    let found: { ip: string; device: string; mtu: number } | null = null;
    if (ip) {
      try {
        const r = await this.runner.run(READ.addresses());
        const d = findAddressDevice(r.stdout, ip);
        if (d) found = { ip, device: d.device, mtu: d.mtu };
      } catch (e) {
        this.log?.warn('cannot read addresses; keeping the previous underlay', { error: errText(e) });
        return;
      }
    }
    const prev = this.st.underlay;
    if (JSON.stringify(prev) !== JSON.stringify(found)) {
      if (found) this.log?.info('underlay', found);
      else this.log?.warn('node IP not found on any device: tunnel MTU from 1500, no natOutgoing rule', { node: this.node, ip: ip ?? null });
    }
    this.st.underlay = found;
    const mtu = found?.mtu ?? 1500;
    if (mtu !== this.calc.underlayMtu) {
      this.log?.info('underlay MTU changed; recalculating', { from: this.calc.underlayMtu, to: mtu });
      this.rebuildCalc(mtu);
    }
  }

  private natConfig(): NodeNatConfig {
    const pools = this.informer?.list('IPPool') ?? [];
    const gateways = this.informer?.list('EgressGateway') ?? [];
    const nodes = this.informer?.list('Node') ?? [];
    return natConfigFromResources(pools, gateways, { enabled: this.natOutgoing, underlayDevice: this.st.underlay?.device ?? '', nodes });
  }

  private async reconcileOnce(): Promise<void> {
    const force = this.wantForce;
    this.wantForce = false;
    if (this.wantUnderlay) await this.detectUnderlay();
    let state: NodeEgressState;
    let nat: NodeNatConfig;
    try {
      state = this.calc.nodeState(this.node);
      nat = this.natConfig();
      this.updateHeartbeatTargets();
    } catch (e) {
      this.log?.error('egress calculation failed', { error: errText(e) });
      this.st.lastError = errText(e);
      return;
    }
    const natKey = JSON.stringify(nat);
    if (!force && state === this.lastState && natKey === this.lastNatKey) return;
    const stateChanged = state !== this.lastState;
    try {
      const report = await this.dp.reconcile(state, nat);
      this.lastState = state;
      this.lastNatKey = natKey;
      const now = new Date().toISOString();
      const summary = summarizeReport(report);
      this.st.reconciles++;
      this.st.failures = 0;
      this.reconcileBackoff.reset();
      this.st.lastSuccess = now;
      this.st.lastReport = { at: now, summary, commands: report.commands.length, durationMs: Math.round(report.durationMs * 10) / 10 };
      this.metrics?.reconcile.observe(report.durationMs / 1000);
      this.metrics?.kernelWrites.inc(report.commands.length);
      this.st.desired = { clients: state.rules.length, tables: state.tables.length, gateways: state.gateways.length };
      const fields = { clients: state.rules.length, tables: state.tables.length, gateways: state.gateways.length, ms: Math.round(report.durationMs) };
      if (summary) this.log?.info(`kernel updated: ${summary}`, { ...fields, resync: force && !stateChanged });
      else if (this.st.reconciles === 1) this.log?.info('kernel already right: adopted as it is', fields);
      else this.log?.debug(force ? 'resync: kernel already right' : 'state changed; kernel already right', fields);
      this.onReconcile?.(report, state);
    } catch (e) {
      this.st.failures++;
      this.st.lastError = errText(e);
      const ms = this.reconcileBackoff.next();
      this.log?.error('reconcile failed; will retry', { error: errText(e), failures: this.st.failures, retryMs: ms });
      this.retryIn(ms);
    }
  }
}

/** Starts the agent; see AgentHandle. */
export function startAgent(opts: AgentOptions): AgentHandle {
  return new Agent(opts);
}

/** Runs the agent until `signal` aborts. Never flushes kernel state on exit. */
export async function runAgent(opts: AgentOptions): Promise<void> {
  await checkFelixMarks(opts);
  return startAgent(opts).done;
}

/**
 * Refuses to start (a clear error, nothing programmed) when the sticky mark mask overlaps the mark masks of this
 * node's FelixConfigurations (`default` and `node.<node>`): Felix would rewrite egw's marks (docs/kubernetes.md,
 * "Coexisting with Felix").
 */
export async function checkFelixMarks(opts: Pick<AgentOptions, 'store' | 'node' | 'stickyMarkMask'>): Promise<void> {
  const felix: { name: string; spec?: Record<string, unknown> }[] = [];
  for (const name of [FELIX_CONFIGURATION_DEFAULT, `node.${opts.node}`]) {
    const fc = (await opts.store.get({ kind: 'FelixConfiguration', namespace: '', name })) as FelixConfiguration | undefined;
    if (fc) felix.push({ name, spec: fc.spec as Record<string, unknown> | undefined });
  }
  const problem = markMaskConflict(opts.stickyMarkMask ?? DEFAULT_STICKY_MARK_MASK, felix);
  if (problem) throw new Error(`agent ${opts.node}: refusing to start: ${problem}`);
}
