// What a recorder knows about a connection's client when it sees the connection (docs/audit.md, "What a record
// says"): the pod holding the source IP now (from the process's one informer), and the configuration that routes it
// (calc.routeOf). Records are enriched at event time, so a reused IP is answered with the pod that held it then.
// A node's record of a gateway pod's traffic is host-IP mode (docs/audit.md, "Host-IP mode"). Pure: fed with
// objects, asked with flows.
import { isHostIPPool, poolHolding } from '../api/egresspools.js';
import { namespaceOf, type Resource } from '../api/meta.js';
import { parseIPv4 } from '../api/ipv4.js';
import { isPodFinished, podIPv4 } from '../api/pod.js';
import { ANNOTATION, type IPPool, type Pod } from '../api/types.js';
import type { EgressCalculator } from '../calc/calculator.js';
import { UNKNOWN_POD, type Enrichment } from './record.js';
import type { CtFlow, FlowGateway, FlowPod, FlowRoute } from './types.js';

/** Timestamps in pod objects have whole seconds: a pod that started "after" a connection by less is not ruled out. */
const SINCE_SLACK_MS = 1000;

interface IndexedPod {
  ip: string;
  pod: FlowPod;
  finished: boolean;
  since: string | undefined;
  /** Set for an egress gateway pod (its Pod carries ANNOTATION.gatewayOf). */
  gateway: FlowGateway | null;
}

/**
 * Pods by IPv4 address. When two pods claim one IP (a finished pod not yet deleted), the running one answers. It keeps
 * the IP pools too, for the host-IP mode of a gateway's pool.
 */
export class PodIPIndex {
  private readonly byKey = new Map<string, IndexedPod>();
  private readonly byIp = new Map<string, Set<string>>();
  private readonly pools = new Map<string, IPPool>();

  replace(objects: Iterable<Resource>): void {
    this.byKey.clear();
    this.byIp.clear();
    this.pools.clear();
    for (const o of objects) this.apply('upsert', o);
  }

  apply(type: 'upsert' | 'delete', obj: Resource): void {
    if (obj.kind === 'IPPool') {
      if (type === 'delete') this.pools.delete(obj.metadata.name);
      else this.pools.set(obj.metadata.name, obj as IPPool);
      return;
    }
    if (obj.kind !== 'Pod') return;
    const key = `${namespaceOf(obj)}/${obj.metadata.name}`;
    this.drop(key);
    if (type === 'delete') return;
    const pod = obj as Pod;
    const ip = podIPv4(pod);
    if (!ip) return;
    const gatewayOf = pod.metadata.annotations?.[ANNOTATION.gatewayOf];
    const fp = flowPodOf(pod);
    const gateway: FlowGateway | null =
      gatewayOf !== undefined ? { namespace: fp.namespace!, name: fp.name!, node: fp.node, ip, ...(gatewayOf ? { egressGateway: gatewayOf } : {}) } : null;
    this.byKey.set(key, { ip, finished: isPodFinished(pod), pod: fp, gateway, since: (typeof pod.status?.startTime === 'string' ? pod.status.startTime : undefined) ?? pod.metadata.creationTimestamp });
    let s = this.byIp.get(ip);
    if (!s) this.byIp.set(ip, (s = new Set()));
    s.add(key);
  }

  /**
   * The pod holding `ip`; with `at` (when the connection began, ms), null when that pod started after then: the IP
   * was someone else's, and the record leaves the pod to the pod-IP history (query.ts) rather than name the wrong one.
   */
  lookup(ip: string, at?: number): FlowPod | null {
    return this.entryAt(ip, at)?.pod ?? null;
  }

  /**
   * When `ip` is an egress gateway pod's (at `at`, as lookup): that gateway, and the name of the pool holding its
   * address if that pool is in host-IP mode (src/api/egresspools.ts).
   */
  gatewayAt(ip: string, at?: number): { gateway: FlowGateway; hostIPPool: string | null } | null {
    const e = this.entryAt(ip, at);
    if (!e?.gateway) return null;
    const pool = poolHolding(ip, this.pools.values());
    return { gateway: e.gateway, hostIPPool: pool && isHostIPPool(pool) ? pool.metadata.name : null };
  }

  private entryAt(ip: string, at: number | undefined): IndexedPod | null {
    const keys = this.byIp.get(ip);
    if (!keys) return null;
    let best: IndexedPod | undefined;
    for (const k of keys) {
      const e = this.byKey.get(k)!;
      if (!best || (best.finished && !e.finished)) best = e;
    }
    if (!best) return null;
    if (at !== undefined && best.since !== undefined && Date.parse(best.since) > at + SINCE_SLACK_MS) return null;
    return best;
  }

  /** Every running pod with an IP, for the pod-IP history (history.ts); `since`: its start (or creation) time. */
  entries(): { ip: string; pod: FlowPod; since: string | undefined }[] {
    return [...this.byKey.values()].filter((e) => !e.finished).map((e) => ({ ip: e.ip, pod: e.pod, since: e.since }));
  }

  private drop(key: string): void {
    const old = this.byKey.get(key);
    if (!old) return;
    this.byKey.delete(key);
    const s = this.byIp.get(old.ip);
    s?.delete(key);
    if (s && s.size === 0) this.byIp.delete(old.ip);
  }
}

export function flowPodOf(pod: Pod): FlowPod {
  return {
    namespace: namespaceOf(pod),
    name: pod.metadata.name,
    uid: pod.metadata.uid ?? null,
    node: pod.spec?.nodeName ?? null,
    labels: { ...(pod.metadata.labels ?? {}) },
  };
}

type RouteSource = Pick<EgressCalculator, 'routeOf'>;

function clientRoute(calc: RouteSource, pod: FlowPod | null, dst: string): FlowRoute | null {
  if (!pod?.namespace || !pod.name) return null;
  const n = parseIPv4(dst);
  return n === undefined ? null : calc.routeOf(pod.namespace, pod.name, n);
}

/** A gateway's records: the client pod, the route that sent it here, and this gateway. */
export function gatewayEnricher(index: PodIPIndex, calc: RouteSource, self: () => FlowGateway): (f: CtFlow) => Enrichment {
  return (f) => {
    const pod = index.lookup(f.orig.src, f.start ?? f.seenAt);
    return { pod: pod ?? UNKNOWN_POD, route: clientRoute(calc, pod, f.orig.dst) ?? { kind: 'unknown' }, gateway: self() };
  };
}

/**
 * A node's records (it SNATs the connection itself): natOutgoing, or a policy rule without a gateway; or, when the
 * source is a gateway pod, host-IP mode: the node SNATed the gateway's traffic again. That record's client is not
 * known here (the gateway's own record has it; `egw trace` joins the two), so its pod is unknown and its gateway set.
 */
export function nodeEnricher(index: PodIPIndex, calc: RouteSource): (f: CtFlow) => Enrichment {
  return (f) => {
    const at = f.start ?? f.seenAt;
    const gw = index.gatewayAt(f.orig.src, at);
    if (gw) return { pod: UNKNOWN_POD, route: { kind: 'host-ip', ...(gw.hostIPPool ? { pool: gw.hostIPPool } : {}) }, gateway: gw.gateway };
    const pod = index.lookup(f.orig.src, at);
    const r = clientRoute(calc, pod, f.orig.dst);
    const route: FlowRoute = r?.kind === 'no-gateway' ? r : { kind: 'natOutgoing' };
    return { pod: pod ?? UNKNOWN_POD, route, gateway: null };
  };
}
