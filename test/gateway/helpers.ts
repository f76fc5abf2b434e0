// Shared by the gateway tests, and only theirs: their poll options and failure detection, a store that can be made
// unreachable, an HTTP GET, and a runner that records the commands (with the nft listing a fake kernel answers).
// Resources, polls and environment flags come from test/helpers/.
import type { Resource } from '../../src/api/meta.js';
import type { EgressGatewayFailureDetection } from '../../src/api/types.js';
import { StoreError, type ListOptions, type ListResult, type Store, type TxnOp, type Watch, type WatchHandler, type WatchOptions } from '../../src/datastore/types.js';
import type { ObjectKey } from '../../src/api/meta.js';
import type { RunOptions, RunResult, Runner } from '../../src/dataplane/exec.js';
import type { GatewayNftTable } from '../../src/gateway/index.js';
import type { PollOptions } from '../helpers/wait.js';

/** The gateway tests' polls (HTTP readiness, the store, a fake kernel's calls): every 50 ms, errors retried. */
export const POLL: PollOptions = { everyMs: 50, retryErrors: true };

/**
 * The failure detection the gateway tests give their EgressGateway: this datastore timeout, and an ICMP probe of
 * the external host 198.51.100.10 every 5 s (timeout 15 s).
 */
export function failureDetection(healthTimeoutDataStoreSeconds: number): EgressGatewayFailureDetection {
  return { healthTimeoutDataStoreSeconds, icmpProbe: { ips: ['198.51.100.10'], intervalSeconds: 5, timeoutSeconds: 15 } };
}

/** Wraps a store; while `down`, every read fails (and running watches stop at their next delivery). */
export class FlakyStore implements Store {
  down = false;
  /**
   * When the store last answered what a gateway takes as word from it (ms since the epoch): a list, a revision (its
   * heartbeat), a watch delivery. A get is only the Pod condition writer's read before its write.
   */
  lastAnswered = 0;
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
    return this.answered(await this.inner.list(kind, opts));
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
    return this.answered(await this.inner.revision());
  }
  async watch(opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    return this.inner.watch(opts, (events) => {
      this.check();
      return handler(this.answered(events));
    });
  }
  private answered<T>(v: T): T {
    this.lastAnswered = Date.now();
    return v;
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}

export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return { status: res.status, body: await res.text() };
}

/** Records every command and passes it on; then when it returned, and its exit code. */
export class TapRunner implements Runner {
  readonly calls: { argv: string[]; input?: string }[] = [];
  /** The commands that have returned, in that order, with their exit code and when (ms since the epoch). */
  readonly returned: { argv: string[]; code: number; at: number }[] = [];
  constructor(private readonly inner: Runner) {}
  get netns(): string | undefined {
    return this.inner.netns;
  }
  async run(argv: string[], opts?: RunOptions): Promise<RunResult> {
    this.calls.push({ argv, input: opts?.input });
    const r = await this.inner.run(argv, opts);
    this.returned.push({ argv, code: r.code, at: Date.now() });
    return r;
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
  return a === 'ip -d -json link show' || argv[0] === 'cat' || /^nft -j list /.test(a) || (argv[0] === 'sh' && /^for f in \/sys\/class\/net\//.test(argv[2] ?? '')); // the last: READ.rps
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
