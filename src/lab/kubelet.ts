// The lab kubelet (`egw lab kubelet --lab L --node N`): makes the Pods bound to node N real.
//
// For each pod: an address from IPAM (handle `pod:<ns>/<name>`), a netns `egw-<lab>-p-<hash>`, a veth (`eth0` in the
// pod, `egw<hash>` in the node), Calico-style routing (pod: IP/32 on eth0, default via 169.254.1.1 answered by
// proxy ARP; node: IP/32 dev veth, strict rp_filter on the veth so a pod cannot use another source), the lab's
// stand-in for BGP (IP/32 via the node IP in the router and every other node), the Pod's status, and its container
// commands, run in the pod's netns and restarted with backoff when they exit.
//
// A restart of the kubelet adopts what exists (pod namespaces, veths, running containers) without disturbing it, and
// removes what belongs to pods that are gone. What it did is kept in the lab state directory:
//   pods/<node>/<hash>.json   the pod's network (uid, ip, netns, veth)
//   pids/pod-<hash>-<container>.pid, logs/pod-<ns>_<name>-<container>.log
//
// Deletion follows Kubernetes: a Pod with a deletionTimestamp keeps running (its drain window) until that moment,
// then its containers get SIGTERM (SIGKILL 5 s later) and the kubelet deletes the Pod object; once the object is
// gone the network is removed and the IP released. A Pod deleted outright is stopped and removed at once.
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { setCondition } from '../api/conditions.js';
import { namespaceOf } from '../api/meta.js';
import { ANNOTATION, type Node as K8sNode, type IPPool, type Pod } from '../api/types.js';
import { Ipam, IpamError, poolsForPod } from '../ipam/index.js';
import { startInformer, type Informer } from '../datastore/informer.js';
import { DELETE, isRaceError, updateWithRetry } from '../datastore/retry.js';
import type { Store } from '../datastore/types.js';
import { Backoff, errText, sleep } from '../util.js';
import { createLogger, type Logger } from '../log.js';
import { Kernel } from './kernel.js';
import { egwCommand, labStateDir, labStateRoot, ns, podNames, stateFiles } from './names.js';
import { RESTART, isRunning, nsInode, readRecord, removeFile, restartBackoff, spawnDetached, stopProcess, stopProcessesInNetns, type ExitInfo, type ProcRecord } from './procs.js';
import { NETNS_ANNOTATION, readLabState } from './topology.js';
import { PodStateFiles, type PodState } from './podstate.js';
import { chooseNode, containerArgv, containerStatusesFor, lastExitFromStatus, lastExitText, readyConditionFor, type ContainerView } from './podspec.js';

export interface KubeletOptions {
  store: Store;
  lab: string;
  node: string;
  log?: Logger;
  signal?: AbortSignal;
  /** Datastore spec handed to `egw …` container commands (default: the store's own description, e.g. sqlite:/path). */
  datastore?: string;
  /** The command that runs egw (default: the lab's recorded one, else this Node + bin/egw.js). */
  egw?: string[];
  /** Default $EGW_LAB_DIR or /run/egw/labs. */
  stateRoot?: string;
  /** How often containers and the node namespace are checked (ms); default 1000. */
  pollMs?: number;
}


interface ContainerRt {
  name: string;
  image?: string;
  argv: string[];
  role: string;
  rec?: ProcRecord;
  /** Restarts back off as kubelet's CrashLoopBackOff does (RESTART: 1 s doubling to 30 s, reset after 10 s running). */
  restarts: Backoff;
  nextStart: number;
  /** status.containerStatuses[].restartCount (kept in the container's record across kubelet restarts). */
  restartCount: number;
  /** How the last run ended (set by the exit handler when this kubelet started it). */
  exit?: ExitInfo;
  /** This kubelet spawned the process (its exit handler reports how it ended); when a tick first found it gone. */
  ownChild?: boolean;
  goneSince?: number;
  lastExit?: ContainerView['lastExit'];
}

interface PodRt {
  state: PodState;
  containers: Map<string, ContainerRt>;
  /** The network was checked and completed by this run (later events only refresh status and containers). */
  ready?: boolean;
  /** Set once the pod's grace period is over and its containers are being stopped. */
  stopping?: boolean;
  /** When a Pod with a deletionTimestamp is to be stopped (ms since epoch). */
  deadline?: number;
  /** The containerStatuses last written (JSON), and whether a write is under way. */
  statusWritten?: string;
  statusWriting?: boolean;
}

/** How long a tick waits for its own child's exit handler before recording the end without an exit code. */
const EXIT_REPORT_WAIT_MS = 2000;
const LINK_LOCAL_GW = '169.254.1.1';

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

class Kubelet {
  private readonly log: Logger;
  private readonly k = new Kernel();
  private readonly pods = new Map<string, PodRt>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly queued = new Set<string>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly retryBackoff = new Map<string, Backoff>();
  private readonly dir: string;
  private readonly nodeNs: string;
  private readonly ipam: Ipam;
  private readonly states: PodStateFiles;
  private egw: string[] = [];
  private datastore = '';
  private nodeIP = '';
  private nodeObj!: K8sNode;
  private mtu = 1500;
  private informer?: Informer;
  private readonly informerStop = new AbortController();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private finish!: (err?: Error) => void;

  constructor(private readonly o: KubeletOptions) {
    this.log = o.log ?? createLogger(`kubelet ${o.node}`);
    this.dir = labStateDir(o.lab, o.stateRoot ? resolve(o.stateRoot) : labStateRoot());
    this.nodeNs = ns.node(o.lab, o.node);
    this.ipam = new Ipam(o.store, { log: this.log.child('ipam') });
    this.states = new PodStateFiles(this.dir, o.node);
  }

  async run(): Promise<void> {
    const { signal } = this.o;
    if (signal?.aborted) return;
    const done = new Promise<void>((res, rej) => (this.finish = (err) => (err ? rej(err) : res())));
    const onAbort = () => void this.stop();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.start();
    } catch (e) {
      signal?.removeEventListener('abort', onAbort);
      await this.stop();
      throw e;
    }
    try {
      await done;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private async start(): Promise<void> {
    const { store, lab, node } = this.o;
    if (!this.k.netnsExists(this.nodeNs)) throw new Error(`node ${node}: network namespace ${this.nodeNs} does not exist; run egw lab up first`);
    const labState = readLabState(lab, resolve(this.dir, '..'));
    this.egw = this.o.egw ?? labState?.egw ?? egwCommand();
    this.datastore = this.o.datastore ?? store.description;
    // The Node object (written by lab up): its InternalIP is where the other nodes and the router send pod traffic.
    for (;;) {
      const n = (await store.get({ kind: 'Node', namespace: '', name: node })) as K8sNode | undefined;
      const ip = n?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      if (n && ip) {
        this.nodeObj = n;
        this.nodeIP = ip;
        break;
      }
      if (this.stopped || this.o.signal?.aborted) return;
      this.log.warn('waiting for the Node object with an InternalIP address', { node });
      await sleep(1000);
    }
    this.mtu = (await this.k.link(this.nodeNs, 'eth0'))?.mtu ?? labState?.config.underlay.mtu ?? 1500;
    for (const d of [stateFiles.pids(this.dir), stateFiles.logs(this.dir), this.states.podDir()]) mkdirSync(d, { recursive: true });

    // One informer on Pods (src/datastore/informer.ts): the first list adopts what a previous run left; every list
    // (the first, and each after a failure) enqueues every pod this kubelet knows or may act on.
    let adopted = false;
    this.informer = startInformer({
      store,
      kinds: ['Pod'],
      signal: this.informerStop.signal,
      onReplace: async (objects) => {
        const pods = objects as Pod[];
        if (!adopted) {
          await this.adopt(pods);
          await this.learnRoutes(pods);
          adopted = true;
        }
        const present = new Set<string>();
        for (const p of pods) {
          const key = keyOf(namespaceOf(p), p.metadata.name);
          present.add(key);
          if (this.relevant(p) || this.pods.has(key)) this.enqueue(key);
        }
        for (const key of this.pods.keys()) if (!present.has(key)) this.enqueue(key);
      },
      onEvents: (events) => {
        for (const e of events) {
          const p = e.object as Pod;
          const key = keyOf(namespaceOf(p), p.metadata.name);
          if (this.pods.has(key) || this.relevant(p)) this.enqueue(key);
          else if (e.type === 'DELETED' && p.spec?.nodeName && p.spec.nodeName !== this.o.node) void this.forgetRemoteRoute(p);
        }
      },
      onError: (err, retryMs) => {
        if (!this.stopped) this.log.warn('pod list/watch failed; listing again', { error: errText(err), retryMs });
      },
    });
    await this.informer.whenSynced();
    if (this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.o.pollMs ?? 1000);
    this.log.info('started', { node, nodeIP: this.nodeIP, pods: this.pods.size });
  }

  /** Pods this kubelet acts on: bound to its node, or not bound at all (it may bind them). */
  private relevant(p: Pod): boolean {
    return p.spec?.nodeName === this.o.node || (!p.spec?.nodeName && !p.metadata.deletionTimestamp);
  }

  /** On start: take over what a previous run left, and remove what belongs to pods that are gone. */
  private async adopt(pods: Pod[]): Promise<void> {
    const byKey = new Map(pods.map((p) => [keyOf(namespaceOf(p), p.metadata.name), p]));
    const known = new Set<string>();
    for (const s of this.states.read()) {
      const key = keyOf(s.namespace, s.name);
      const p = byKey.get(key);
      if (!p || p.metadata.uid !== s.uid || p.spec.nodeName !== this.o.node) {
        this.log.info('removing the network of a pod that is gone', { pod: key, netns: s.netns });
        await this.teardown(s, p);
        continue;
      }
      const rt: PodRt = { state: s, containers: new Map() };
      this.pods.set(key, rt);
      known.add(s.veth);
      this.setContainers(p, rt, true);
      this.log.info('adopted pod', { pod: key, ip: s.ip, netns: s.netns });
    }
    // Host-side veths with no state (a crash between creating and recording): remove unless a pod of ours owns them.
    const mine = new Map<string, Pod>();
    for (const p of pods) if (p.spec.nodeName === this.o.node) mine.set(podNames(this.o.lab, namespaceOf(p), p.metadata.name).veth, p);
    const links = await this.k.ipJson<{ ifname: string }>(this.nodeNs, ['link', 'show']);
    for (const l of links) {
      if (!/^egw[0-9a-f]{11}$/.test(l.ifname) || known.has(l.ifname) || mine.has(l.ifname)) continue;
      this.log.info('removing a stray pod veth', { veth: l.ifname });
      await this.k.ip(this.nodeNs, ['link', 'del', l.ifname], { allowFailure: true });
      const podNs = ns.pod(this.o.lab, l.ifname.slice(3, 13));
      const owned = pods.some((p) => podNames(this.o.lab, namespaceOf(p), p.metadata.name).netns === podNs);
      if (!owned) await this.k.delNetns(podNs);
    }
  }

  /** Routes to the pods of other nodes that exist already (their kubelets pushed them before this node existed). */
  private async learnRoutes(pods: Pod[]): Promise<void> {
    const nodes = await this.labNodes();
    const ips = new Set(nodes.filter((n) => n.name !== this.o.node).map((n) => n.ip));
    const lines: string[] = [];
    for (const p of pods) {
      const ip = p.status?.podIP;
      const host = p.status?.hostIP;
      if (!ip || !host || p.spec.nodeName === this.o.node || !ips.has(host)) continue;
      lines.push(`route replace ${ip}/32 via ${host}`);
    }
    if (lines.length) await this.k.ipBatch(this.nodeNs, lines).catch((e) => this.log.warn('learning routes failed', { error: errText(e) }));
  }

  private async forgetRemoteRoute(p: Pod): Promise<void> {
    const ip = p.status?.podIP;
    const host = p.status?.hostIP;
    if (!ip || !host) return;
    await this.k.ip(this.nodeNs, ['route', 'del', `${ip}/32`, 'via', host], { allowFailure: true });
  }

  /** The lab's other nodes: Node objects whose namespace exists. */
  private async labNodes(): Promise<{ name: string; ip: string; netns: string }[]> {
    const out: { name: string; ip: string; netns: string }[] = [];
    for (const n of (await this.o.store.list('Node')).items as K8sNode[]) {
      const netns = ns.node(this.o.lab, n.metadata.name);
      const ip = n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      if (ip && this.k.netnsExists(netns)) out.push({ name: n.metadata.name, ip, netns });
    }
    return out;
  }

  // ---- the work queue: one chain per pod, so a pod's changes apply in order and pods do not wait for each other

  private enqueue(key: string): void {
    if (this.stopped || this.queued.has(key)) return;
    this.queued.add(key);
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.then(async () => {
      this.queued.delete(key);
      if (this.stopped) return;
      try {
        await this.sync(key);
        this.retryBackoff.delete(key);
      } catch (e) {
        let b = this.retryBackoff.get(key);
        if (!b) this.retryBackoff.set(key, (b = new Backoff({ minMs: 1000, maxMs: 10_000 })));
        const delay = b.next();
        this.log.error('pod sync failed; retrying', { pod: key, inMs: delay, error: errText(e) });
        clearTimeout(this.retryTimers.get(key));
        const t = setTimeout(() => {
          this.retryTimers.delete(key);
          this.enqueue(key);
        }, delay);
        t.unref();
        this.retryTimers.set(key, t);
      }
    });
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  private async sync(key: string): Promise<void> {
    const [namespace, name] = key.split('/', 2) as [string, string];
    const pod = (await this.o.store.get({ kind: 'Pod', namespace, name })) as Pod | undefined;
    let rt = this.pods.get(key);
    if (pod && !pod.spec?.nodeName && !pod.metadata.deletionTimestamp) {
      await this.maybeBind(pod);
      return;
    }
    const mine = pod !== undefined && pod.spec.nodeName === this.o.node;
    if (!mine) {
      if (rt) {
        await this.teardown(rt.state, pod, rt);
        this.pods.delete(key);
      }
      return;
    }
    if (rt && rt.state.uid !== pod.metadata.uid) {
      await this.teardown(rt.state, pod, rt);
      this.pods.delete(key);
      rt = undefined;
    }
    if (pod.metadata.deletionTimestamp) {
      // Drain window: keep everything running until the deadline; tick() stops the containers then.
      const rtNow = rt ?? this.pods.get(key);
      if (rtNow) {
        const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
        const t = Date.parse(pod.metadata.deletionTimestamp);
        rtNow.deadline = Number.isFinite(t) ? t : Date.now() + grace * 1000;
        this.log.info('pod terminating', { pod: key, stopAt: new Date(rtNow.deadline).toISOString() });
      } else {
        await this.deletePodObject(pod); // nothing of it runs here
      }
      return;
    }
    if (!rt?.ready) {
      rt = await this.ensureNetwork(pod, rt);
      rt.ready = true;
    }
    await this.ensureStatus(pod, rt);
    this.setContainers(pod, rt, false);
  }

  private async maybeBind(pod: Pod): Promise<void> {
    const nodes = ((await this.o.store.list('Node')).items as K8sNode[]).filter((n) => this.k.netnsExists(ns.node(this.o.lab, n.metadata.name)));
    if (chooseNode(pod, nodes) !== this.o.node) return;
    try {
      await this.o.store.update({ ...pod, spec: { ...pod.spec, nodeName: this.o.node } });
      this.log.info('bound pod to this node', { pod: keyOf(pod.metadata.namespace!, pod.metadata.name) });
    } catch (e) {
      if (isRaceError(e)) return; // the next event decides
      throw e;
    }
  }

  // ---- network

  private async ensureNetwork(pod: Pod, existing: PodRt | undefined): Promise<PodRt> {
    const { lab } = this.o;
    const namespace = pod.metadata.namespace!;
    const name = pod.metadata.name;
    const key = keyOf(namespace, name);
    const names = podNames(lab, namespace, name);
    const gateway = pod.metadata.annotations?.[ANNOTATION.gatewayOf] !== undefined;
    let rt = existing;
    if (!rt) {
      const s: PodState = {
        namespace,
        name,
        uid: pod.metadata.uid ?? '',
        node: this.o.node,
        hash: names.hash,
        netns: names.netns,
        veth: names.veth,
        handle: names.handle,
        gateway,
        grace: pod.spec.terminationGracePeriodSeconds ?? 30,
      };
      this.states.save(s); // before anything exists, so a crash in between is cleaned up on restart
      rt = { state: s, containers: new Map() };
      this.pods.set(key, rt);
    }
    const s = rt.state;
    if (!s.ip) {
      const pools = (await this.o.store.list('IPPool')).items as IPPool[];
      let ip: string;
      try {
        const chosen = poolsForPod(pod, this.nodeObj, pools);
        ip = await this.ipam.allocate({ handle: s.handle, node: this.o.node, pools: chosen });
      } catch (e) {
        if (e instanceof IpamError) await this.notReady(pod, 'IPAMFailed', errText(e));
        throw e;
      }
      s.ip = ip;
      this.states.save(s);
      this.log.info('address allocated', { pod: key, ip });
    }
    const ip = s.ip;
    const created = await this.k.addNetns(s.netns);
    if (created || s.netnsIno === undefined) {
      s.netnsIno = nsInode(`/run/netns/${s.netns}`);
      this.states.save(s);
    }
    const hostLink = await this.k.link(this.nodeNs, s.veth);
    const podLink = await this.k.link(s.netns, 'eth0');
    const fresh = !hostLink || !podLink;
    if (fresh) {
      if (hostLink) await this.k.ip(this.nodeNs, ['link', 'del', s.veth], { allowFailure: true });
      if (podLink) await this.k.ip(s.netns, ['link', 'del', 'eth0'], { allowFailure: true });
      const m = String(this.mtu);
      await this.k.ip(this.nodeNs, ['link', 'add', s.veth, 'mtu', m, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', m, 'netns', s.netns]);
    }
    // Every step below is a replace: running it again over a working pod changes nothing.
    await this.k.ipBatch(s.netns, [
      `link set eth0 mtu ${this.mtu} up`,
      `addr replace ${ip}/32 dev eth0`,
      `route replace ${LINK_LOCAL_GW} dev eth0 scope link`,
      `route replace default via ${LINK_LOCAL_GW} dev eth0`,
    ]);
    // Gateways forward other pods' replies with their original source: no strict reverse-path check for them.
    s.gateway = gateway;
    await this.k.sysctls(this.nodeNs, {
      [`net/ipv4/conf/${s.veth}/proxy_arp`]: 1,
      [`net/ipv4/neigh/${s.veth}/proxy_delay`]: 0, // answer the pod's ARP at once (the default waits up to 0.8 s)
      [`net/ipv4/conf/${s.veth}/rp_filter`]: gateway ? 0 : 1,
    });
    await this.k.ipBatch(this.nodeNs, [`link set ${s.veth} up`, `route replace ${ip}/32 dev ${s.veth}`]);
    // "BGP": the router and every other node reach the pod via this node.
    const others = (await this.labNodes()).filter((n) => n.name !== this.o.node);
    await this.k.ip(ns.router(lab), ['route', 'replace', `${ip}/32`, 'via', this.nodeIP]);
    for (const n of others) await this.k.ip(n.netns, ['route', 'replace', `${ip}/32`, 'via', this.nodeIP], { allowFailure: true });
    if (fresh) this.log.info('pod network ready', { pod: key, ip, netns: s.netns, veth: s.veth });
    return rt;
  }

  /** Stops the pod's processes (SIGTERM, SIGKILL after its grace period), then removes its network and address. */
  private async teardown(s: PodState, podNow: Pod | undefined, rt?: PodRt, graceMs = (s.grace ?? 30) * 1000): Promise<void> {
    const key = keyOf(s.namespace, s.name);
    // Containers: those we know of, and any record left for this pod.
    const recs = new Map<string, ProcRecord>();
    for (const c of rt?.containers.values() ?? []) if (c.rec) recs.set(c.role, c.rec);
    for (const f of this.states.pidFiles(s.hash)) {
      const r = readRecord(f);
      if (r) recs.set(r.role, r);
    }
    await Promise.all([...recs.values()].map((r) => stopProcess(r, graceMs)));
    for (const f of this.states.pidFiles(s.hash)) removeFile(f);
    const sameNetns = this.k.netnsExists(s.netns) && (s.netnsIno === undefined || nsInode(`/run/netns/${s.netns}`) === s.netnsIno);
    if (sameNetns) {
      const pids = await this.k.netnsPids(s.netns);
      if (pids.length) await stopProcessesInNetns(s.netns, pids);
    }
    if (s.ip) {
      await this.k.ip(ns.router(this.o.lab), ['route', 'del', `${s.ip}/32`, 'via', this.nodeIP], { allowFailure: true });
      for (const n of await this.labNodes()) {
        if (n.name !== this.o.node) await this.k.ip(n.netns, ['route', 'del', `${s.ip}/32`, 'via', this.nodeIP], { allowFailure: true });
      }
    }
    await this.k.ip(this.nodeNs, ['link', 'del', s.veth], { allowFailure: true });
    if (sameNetns) await this.k.delNetns(s.netns);
    // The address: unless a newer pod of the same name (another uid, elsewhere) holds the handle now.
    const replaced = podNow !== undefined && podNow.metadata.uid !== s.uid && podNow.spec?.nodeName !== this.o.node;
    if (s.ip && !replaced) {
      try {
        await this.ipam.release(s.handle);
      } catch (e) {
        this.log.warn('releasing the address failed (the controller collects it later)', { pod: key, ip: s.ip, error: errText(e) });
      }
    }
    removeFile(this.states.file(s.hash));
    this.log.info('pod removed', { pod: key, ip: s.ip, netns: s.netns });
  }

  // ---- status

  /** Read-modify-write of this pod (the same uid only); `mutate` returns false to write nothing. */
  private async updatePod(pod: Pod, mutate: (p: Pod) => boolean): Promise<void> {
    const key = { kind: 'Pod', namespace: pod.metadata.namespace!, name: pod.metadata.name };
    await updateWithRetry<Pod>(this.o.store, key, (cur) => (cur && cur.metadata.uid === pod.metadata.uid && mutate(cur) ? cur : undefined));
  }

  private async ensureStatus(pod: Pod, rt: PodRt): Promise<void> {
    const s = rt.state;
    await this.updatePod(pod, (p) => {
      const status = p.status ?? {};
      const ready = readyConditionFor(p, status.conditions);
      const ann = p.metadata.annotations ?? {};
      const same =
        status.podIP === s.ip &&
        status.podIPs?.length === 1 &&
        status.podIPs[0].ip === s.ip &&
        status.hostIP === this.nodeIP &&
        status.phase === 'Running' &&
        !ready.changed &&
        ann[NETNS_ANNOTATION] === s.netns;
      if (same) return false;
      p.metadata.annotations = { ...ann, [NETNS_ANNOTATION]: s.netns };
      p.status = { ...status, phase: 'Running', podIP: s.ip, podIPs: [{ ip: s.ip! }], hostIP: this.nodeIP, conditions: ready.conditions };
      return true;
    });
  }

  private containerViews(rt: PodRt): ContainerView[] {
    return [...rt.containers.values()].map((c) => ({
      name: c.name,
      image: c.image,
      running: !!c.rec && isRunning(c.rec),
      startedAt: c.rec?.startedAt,
      restartCount: c.restartCount,
      lastExit: c.lastExit,
    }));
  }

  /**
   * status.containerStatuses of the pod, written when they differ from what this kubelet last wrote (restarts,
   * state); every tick calls it, so a write that failed (datastore away) is made later.
   */
  private writeContainerStatuses(key: string, rt: PodRt): void {
    if (rt.statusWriting || rt.containers.size === 0) return;
    const want = containerStatusesFor(this.containerViews(rt));
    const text = JSON.stringify(want);
    if (text === rt.statusWritten) return;
    const [namespace, name] = key.split('/', 2) as [string, string];
    rt.statusWriting = true;
    this.updatePod({ metadata: { namespace, name, uid: rt.state.uid } } as Pod, (p) => {
      const status = p.status ?? {};
      if (JSON.stringify(status.containerStatuses ?? []) === text) return false;
      p.status = { ...status, containerStatuses: want };
      return true;
    })
      .then(() => (rt.statusWritten = text))
      .catch((e) => this.log.warn('writing container statuses failed; will retry', { pod: key, error: errText(e) }))
      .finally(() => (rt.statusWriting = false));
  }

  private async notReady(pod: Pod, reason: string, message: string): Promise<void> {
    await this.updatePod(pod, (p) => {
      const status = p.status ?? {};
      const c = setCondition(status.conditions, { type: 'Ready', status: 'False', reason, message });
      if (!c.changed && status.phase === 'Pending') return false;
      p.status = { ...status, phase: 'Pending', conditions: c.conditions };
      return true;
    }).catch(() => {});
  }

  private async deletePodObject(pod: Pod): Promise<void> {
    const key = { kind: 'Pod', namespace: pod.metadata.namespace!, name: pod.metadata.name };
    const r = await updateWithRetry<Pod>(this.o.store, key, (cur) => (cur && cur.metadata.uid === pod.metadata.uid ? DELETE : undefined));
    if (r.outcome === 'deleted') this.log.info('pod deleted after its grace period', { pod: `${key.namespace}/${key.name}` });
  }

  // ---- containers

  private setContainers(pod: Pod, rt: PodRt, adopting: boolean): void {
    const p = { namespace: pod.metadata.namespace!, name: pod.metadata.name };
    for (const c of pod.spec.containers ?? []) {
      if (rt.containers.has(c.name)) continue;
      const argv = containerArgv(c, p, this.egw, this.datastore);
      if (!argv) continue;
      const role = `pod-${rt.state.hash}-${c.name}`;
      const crt: ContainerRt = { name: c.name, image: c.image, argv, role, restarts: restartBackoff(), nextStart: 0, restartCount: 0 };
      const rec = readRecord(stateFiles.pidFile(this.dir, role));
      if (rec && rec.meta?.uid === rt.state.uid) {
        crt.restartCount = rec.restarts ?? 0;
        crt.lastExit = isRunning(rec) ? lastExitFromStatus(pod, c.name) : { at: new Date().toISOString() }; // ended while no kubelet watched
      }
      if (rec && rec.meta?.uid === rt.state.uid && isRunning(rec)) {
        crt.rec = rec;
        if (adopting) this.log.info('adopted container', { pod: `${p.namespace}/${p.name}`, container: c.name, pid: rec.pid });
      }
      rt.containers.set(c.name, crt);
    }
    if (!adopting) void this.tick();
  }

  private startContainer(rt: PodRt, c: ContainerRt): void {
    const s = rt.state;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      POD_NAME: s.name,
      POD_NAMESPACE: s.namespace,
      POD_IP: s.ip ?? '',
      NODE_NAME: this.o.node,
      EGW_LAB: this.o.lab,
      // Also when this kubelet was started by hand: its containers (gateways) write flow records into the lab's root
      // (names.ts labChildEnv; docs/dataplane.md, "The lab").
      EGW_FLOW_DIR: stateFiles.flows(this.dir),
      EGW_METRICS_SOCKET_DIR: stateFiles.metrics(this.dir),
    };
    try {
      c.rec = spawnDetached({
        role: c.role,
        argv: c.argv,
        netns: s.netns,
        logFile: stateFiles.logFile(this.dir, `pod-${s.namespace}_${s.name}-${c.name}`),
        pidFile: stateFiles.pidFile(this.dir, c.role),
        env,
        meta: { pod: `${s.namespace}/${s.name}`, container: c.name, uid: s.uid },
        restarts: c.restartCount,
        ...(c.lastExit ? { lastExit: lastExitText(c.lastExit) } : {}),
        // (only while this run is the container's: a handler later than EXIT_REPORT_WAIT_MS must not mark the next)
        onExit: (e) => void (c.rec === rec ? (c.exit = e) : undefined),
      });
      const rec = c.rec;
      c.ownChild = true;
      this.log.info('container started', { pod: `${s.namespace}/${s.name}`, container: c.name, pid: c.rec.pid, argv: c.argv.join(' ') });
    } catch (e) {
      this.log.error('container failed to start', { pod: `${s.namespace}/${s.name}`, container: c.name, error: errText(e) });
      c.rec = undefined;
      c.nextStart = Date.now() + c.restarts.next();
    }
  }

  private ticking = false;

  private async tick(): Promise<void> {
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    try {
      if (!this.k.netnsExists(this.nodeNs)) {
        this.log.warn('the node namespace is gone (lab down?); stopping', { netns: this.nodeNs });
        await this.stop();
        return;
      }
      if (existsSync(stateFiles.stopping(this.dir))) return; // lab down: restart nothing (docs/dataplane.md, "Supervision")
      const now = Date.now();
      for (const [key, rt] of this.pods) {
        if (rt.deadline !== undefined && now >= rt.deadline && !rt.stopping) {
          rt.stopping = true;
          void this.stopPod(key, rt);
          continue;
        }
        if (rt.stopping || !this.k.netnsExists(rt.state.netns)) continue;
        for (const c of rt.containers.values()) {
          if (c.rec && isRunning(c.rec)) {
            if (c.restarts.failures && now - Date.parse(c.rec.startedAt) >= RESTART.resetAfterMs) c.restarts.reset();
            continue;
          }
          if (c.rec) {
            // reaped a moment before Node runs its 'exit' handler: wait for the exit code (kubelet reports it)
            if (c.ownChild && !c.exit && now - (c.goneSince ??= now) < EXIT_REPORT_WAIT_MS) continue;
            [c.goneSince, c.ownChild] = [undefined, false];
            c.nextStart = now + c.restarts.next();
            c.lastExit = c.exit ? { code: c.exit.code, signal: c.exit.signal, at: c.exit.at } : { at: new Date(now).toISOString() };
            c.exit = undefined;
            this.log.warn('container exited; restarting', { pod: key, container: c.name, pid: c.rec.pid, inMs: c.nextStart - now, how: lastExitText(c.lastExit) });
            c.rec = undefined;
            this.writeContainerStatuses(key, rt);
          }
          if (now >= c.nextStart) {
            if (c.lastExit !== undefined) c.restartCount++; // a run ended before: this start is a restart
            this.startContainer(rt, c);
          }
        }
        if (rt.ready) this.writeContainerStatuses(key, rt);
      }
    } finally {
      this.ticking = false;
    }
  }

  /** End of a terminating pod's grace period: stop its containers, then delete the Pod (the watch then tears down). */
  private async stopPod(key: string, rt: PodRt): Promise<void> {
    try {
      await Promise.all([...rt.containers.values()].map((c) => (c.rec ? stopProcess(c.rec, 5000) : undefined)));
      const [namespace, name] = key.split('/', 2) as [string, string];
      const pod = (await this.o.store.get({ kind: 'Pod', namespace, name })) as Pod | undefined;
      if (pod && pod.metadata.uid === rt.state.uid) await this.deletePodObject(pod);
      else this.enqueue(key);
    } catch (e) {
      // The datastore was busy or unreachable: try again on a later tick (a pod left terminating would keep its
      // address, and with a small egress pool its replacement could not get one).
      this.log.error('finishing the terminating pod failed; will retry', { pod: key, error: errText(e) });
      rt.stopping = false;
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const t of this.retryTimers.values()) clearTimeout(t);
    this.informerStop.abort();
    await this.informer?.done;
    await Promise.allSettled([...this.chains.values()]);
    this.log.info('stopped (pods and their processes keep running)');
    this.finish?.();
  }
}

/**
 * Runs the lab kubelet for one node until the signal aborts (or the node's namespace disappears). On abort it leaves
 * pods, their networks and their processes running; the next run adopts them.
 */
export async function runKubelet(opts: KubeletOptions): Promise<void> {
  await new Kubelet(opts).run();
}
