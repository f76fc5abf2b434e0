// Shared by the gateway tests: resources, a store that can be made unreachable, polling, and a fake kernel.
import type { Resource } from '../../src/api/meta.js';
import { StoreError, type ListOptions, type ListResult, type Store, type TxnOp, type Watch, type WatchHandler, type WatchOptions } from '../../src/datastore/types.js';
import type { ObjectKey } from '../../src/api/meta.js';
import type { RunOptions, RunResult, Runner } from '../../src/dataplane/exec.js';
import type { GatewayNftTable } from '../../src/gateway/index.js';

export const SEL = 'egress.projectcalico.org/selector';
export const NSSEL = 'egress.projectcalico.org/namespaceSelector';

export function felix(extra: Record<string, unknown> = {}): Resource {
  return { apiVersion: 'projectcalico.org/v3', kind: 'FelixConfiguration', metadata: { name: 'default' }, spec: { egressIPSupport: 'EnabledPerNamespaceOrPerPod', ...extra } };
}

export function node(name: string, ip: string): Resource {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: {}, status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }] } };
}

export function namespace(name: string, annotations?: Record<string, string>): Resource {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, annotations } };
}

export function egressGateway(ns: string, name: string, healthTimeoutDataStoreSeconds?: number): Resource {
  return {
    apiVersion: 'operator.tigera.io/v1',
    kind: 'EgressGateway',
    metadata: { name, namespace: ns },
    spec: {
      replicas: 1,
      ipPools: [{ name: 'egress' }],
      logSeverity: 'Info',
      template: { metadata: { labels: { 'egress-code': name } } },
      ...(healthTimeoutDataStoreSeconds ? { egressGatewayFailureDetection: { healthTimeoutDataStoreSeconds, icmpProbe: { ips: ['198.51.100.10'], intervalSeconds: 5, timeoutSeconds: 15 } } } : {}),
    },
  };
}

export function pod(ns: string, name: string, o: { ip?: string; node: string; labels?: Record<string, string>; annotations?: Record<string, string> }): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: o.labels, annotations: o.annotations },
    spec: { nodeName: o.node, containers: [{ name: 'c' }] },
    status: o.ip ? { phase: 'Running', podIP: o.ip, podIPs: [{ ip: o.ip }], conditions: [{ type: 'Ready', status: 'True' }] } : { phase: 'Pending' },
  };
}

export function gatewayPod(ns: string, name: string, egw: string, o: { ip?: string; node: string }): Resource {
  return pod(ns, name, { ...o, labels: { 'egress-code': egw }, annotations: { 'egw.dev/egress-gateway': egw } });
}

/** Wraps a store; while `down`, every call fails (and running watches stop at their next delivery). */
export class FlakyStore implements Store {
  down = false;
  readonly description: string;
  constructor(private readonly inner: Store) {
    this.description = `flaky(${inner.description})`;
  }
  private check(): void {
    if (this.down) throw new StoreError('Unavailable', 'datastore unreachable (test)');
  }
  async get(key: ObjectKey): Promise<Resource | undefined> {
    this.check();
    return this.inner.get(key);
  }
  async list(kind: string, opts?: ListOptions): Promise<ListResult> {
    this.check();
    return this.inner.list(kind, opts);
  }
  async create(obj: Resource): Promise<Resource> {
    return this.inner.create(obj);
  }
  async update(obj: Resource): Promise<Resource> {
    return this.inner.update(obj);
  }
  async delete(key: ObjectKey, opts?: { resourceVersion?: string }): Promise<Resource> {
    return this.inner.delete(key, opts);
  }
  async txn(ops: TxnOp[]): Promise<Resource[]> {
    return this.inner.txn(ops);
  }
  async revision(): Promise<number> {
    this.check();
    return this.inner.revision();
  }
  async watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    return this.inner.watch(opts, (events) => {
      this.check();
      return handler(events);
    });
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last instanceof Error ? last.message : String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return { status: res.status, body: await res.text() };
}

/** Records every command and passes it on. */
export class TapRunner implements Runner {
  readonly calls: { argv: string[]; input?: string }[] = [];
  constructor(private readonly inner: Runner) {}
  get netns(): string | undefined {
    return this.inner.netns;
  }
  run(argv: string[], opts?: RunOptions): Promise<RunResult> {
    this.calls.push({ argv, input: opts?.input });
    return this.inner.run(argv, opts);
  }
  /** Commands that change the kernel (everything but the reads the gateway does, and its probes). */
  writes(): { argv: string[]; input?: string }[] {
    return this.calls.filter((c) => !isRead(c.argv) && !isProbe(c.argv));
  }
  /** Every command but the probes. */
  kernelCalls(): { argv: string[]; input?: string }[] {
    return this.calls.filter((c) => !isProbe(c.argv));
  }
}

/** The ICMP/HTTP probes (ping, curl) that run through the gateway's runner: not kernel commands. */
export function isProbe(argv: string[]): boolean {
  return argv[0] === 'ping' || argv[0] === 'curl';
}

export function isRead(argv: string[]): boolean {
  const a = argv.join(' ');
  return a === 'ip -d -json link show' || argv[0] === 'cat' || /^nft -j list /.test(a);
}

/** What `nft -j list table ip egw-gw` prints for a table spec (handles numbered in order). */
export function listingOf(spec: GatewayNftTable): string {
  let h = 1;
  const T = { family: 'ip', table: 'egw-gw' };
  const out: unknown[] = [{ metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } }, { table: { family: 'ip', name: 'egw-gw', handle: h++ } }];
  for (const s of spec.sets) out.push({ set: { family: 'ip', name: s.name, table: 'egw-gw', type: 'ipv4_addr', handle: h++, ...(s.elems.length ? { elem: [...s.elems] } : {}) } });
  for (const c of spec.chains) out.push({ chain: { ...T, name: c.name, handle: h++, type: c.type, hook: c.hook, prio: c.prio, policy: c.policy } });
  for (const c of spec.chains) for (const r of c.rules) out.push({ rule: { ...T, chain: c.name, handle: h++, comment: r.comment, expr: r.expr } });
  return JSON.stringify({ nftables: out });
}
