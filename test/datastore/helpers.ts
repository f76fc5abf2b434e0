// Shared by the datastore tests, and only theirs: a bare store object, a watch recorder and its event summary.
// Resources (ippool, egressGateway …) and polls come from test/helpers/.
import type { Resource } from '../../src/api/meta.js';
import assert from 'node:assert/strict';
import { StoreError, type Store, type Watch, type WatchEvent, type WatchOptions } from '../../src/datastore/types.js';
import { until, type PollOptions } from '../helpers/wait.js';

/**
 * An object of kind EgressGateway with exactly the spec given (default `{ replicas: 1 }`), for the tests that compare
 * what a store gives back with a literal spec or object: a store keeps any shape, so these stay bare (and some carry
 * specs no EgressGateway has). Anything else uses egressGateway() from test/helpers/resources.ts.
 */
export function gw(namespace: string, name: string, labels?: Record<string, string>, spec: unknown = { replicas: 1 }): Resource {
  return {
    apiVersion: 'operator.tigera.io/v1',
    kind: 'EgressGateway',
    metadata: { name, namespace, ...(labels ? { labels } : {}) },
    spec,
  };
}

/** The CIDR of the datastore tests' pools, where it does not matter. */
export const CIDR = '10.10.10.0/24';

/** A store answers at once: the datastore tests poll every 2 ms. */
export const STORE_POLL: PollOptions = { everyMs: 2 };

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
    await until(() => `${n} watch events (have ${c.events.length})`, () => c.events.length >= n || c.errors.length > 0, timeoutMs, STORE_POLL);
    if (c.errors.length) throw c.errors[0];
    return c.events;
  };
  return c;
}

/** What a watch event says happened, without the volatile fields. */
export function summary(e: WatchEvent): string {
  const m = e.object.metadata;
  return `${e.revision} ${e.type} ${e.object.kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name} rv=${m.resourceVersion}`;
}

/** An assert.rejects predicate: a StoreError with this code whose message mentions each text. */
export function isStoreError(code: StoreError['code'], ...mentions: string[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof StoreError, `expected a StoreError, got ${String(e)}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `message ${JSON.stringify(e.message)} should mention ${JSON.stringify(m)}`);
    return true;
  };
}
