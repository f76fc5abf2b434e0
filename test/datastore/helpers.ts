// Shared helpers for the datastore tests.
import type { Resource } from '../../src/api/meta.js';
import type { Store, Watch, WatchEvent, WatchOptions } from '../../src/datastore/types.js';

export function gw(namespace: string, name: string, labels?: Record<string, string>, spec: unknown = { replicas: 1 }): Resource {
  return {
    apiVersion: 'operator.tigera.io/v1',
    kind: 'EgressGateway',
    metadata: { name, namespace, ...(labels ? { labels } : {}) },
    spec,
  };
}

export function pool(name: string, cidr = '10.10.10.0/24', labels?: Record<string, string>): Resource {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { cidr },
  };
}

export async function until(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export interface Collector {
  events: WatchEvent[];
  batches: number;
  errors: unknown[];
  watch: Watch;
  waitFor(n: number, timeoutMs?: number): Promise<WatchEvent[]>;
}

/** Watches and records every event; `waitFor(n)` resolves once n events have arrived. */
export async function collect(store: Store, opts: WatchOptions): Promise<Collector> {
  const c = { events: [] as WatchEvent[], batches: 0, errors: [] as unknown[] } as Collector;
  c.watch = await store.watch(
    { onError: (e) => c.errors.push(e), ...opts },
    (events) => {
      c.batches++;
      c.events.push(...events);
    },
  );
  c.waitFor = async (n, timeoutMs = 5000) => {
    await until(`${n} watch events (have ${c.events.length})`, () => c.events.length >= n || c.errors.length > 0, timeoutMs);
    if (c.errors.length) throw c.errors[0];
    return c.events;
  };
  return c;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** What a watch event says happened, without the volatile fields. */
export function summary(e: WatchEvent): string {
  const m = e.object.metadata;
  return `${e.revision} ${e.type} ${e.object.kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name} rv=${m.resourceVersion}`;
}
