// Watch fan-out: one writer and 200 watchers, as 200 agents would watch one datastore. Each watcher has its own
// client (its own connection, as each process has), and every write must reach every watcher. Two figures per
// backend: the delivery latency (write issued → event handed to the watcher) at a steady write rate, and the delivery
// rate when the writer goes flat out. The baseline is the raw `etcd3` client watching the same keys in the same run
// (no decoding, no ordering queue): egw's etcd watch should stay within 1.5× its p99 latency. SQLite is measured the
// same way (each watcher its own SqliteStore on one file, woken by fs.watch on the WAL file or polling data_version).
// Rounds alternate between the variants so a slow moment of the machine hits them alike; medians are reported.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Resource } from '../src/api/meta.js';
import { EtcdStore } from '../src/datastore/etcd.js';
import { SqliteStore } from '../src/datastore/sqlite.js';
import type { Store } from '../src/datastore/types.js';
import { etcdMissing, startEtcd, type EtcdServer } from '../test/datastore/etcd-server.js';

const KIND = 'EgressGateway';
const OBJECTS = 50;

interface Opts {
  watchers?: number;
  rounds?: number;
  /** Writes in the steady phase and their rate. */
  steadyWrites?: number;
  steadyPerSecond?: number;
  /** Writes in the flat-out phase, and how many are in flight at once. */
  burstWrites?: number;
  burstConcurrency?: number;
}

/** What a watcher variant must provide: start N watchers from `from`, each calling `seen(watcher, revision)`. */
interface Variant {
  name: string;
  start(n: number, from: number, seen: (w: number, rev: number) => void): Promise<() => Promise<void>>;
}

function object(i: number, gen: number): Resource {
  return {
    apiVersion: 'operator.tigera.io/v1',
    kind: KIND,
    metadata: { namespace: 'default', name: `gw-${i}`, labels: { 'egress-code': `c${i % 7}`, app: 'bench' } },
    spec: { replicas: 1 + (gen % 3), ipPools: [{ name: 'egress-ippool-1' }], logSeverity: 'Info', template: { metadata: { labels: { gen: String(gen) } } } },
  };
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** One round: watchers up, a steady phase (latency), a flat-out phase (rate), watchers down. */
async function round(writer: Store, variant: Variant, o: Required<Opts>) {
  let gen = 0;
  const n = o.watchers;
  const from = await writer.revision();
  const sentAt = new Map<number, number>();
  const got: { rev: number; at: number }[][] = Array.from({ length: n }, () => []);
  const seen = (w: number, rev: number): void => void got[w].push({ rev, at: performance.now() });
  const t0 = performance.now();
  const stop = await variant.start(n, from, seen);
  const setupMs = performance.now() - t0;

  const write = async (): Promise<number> => {
    const g = ++gen;
    const at = performance.now();
    const stored = await writer.update(object(g % OBJECTS, g));
    const rev = Number(stored.metadata.resourceVersion);
    sentAt.set(rev, at);
    return rev;
  };
  const allHave = async (rev: number, timeoutMs: number): Promise<number> => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const missing = got.filter((g) => !g.length || g[g.length - 1].rev < rev).length;
      if (!missing) return performance.now();
      if (performance.now() > deadline) throw new Error(`${variant.name}: ${missing} of ${n} watchers lack revision ${rev} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };

  // Steady phase: latency of each delivery.
  const steadyFrom = got.map((g) => g.length);
  const gap = 1000 / o.steadyPerSecond;
  let last = 0;
  const steadyStart = performance.now();
  for (let i = 0; i < o.steadyWrites; i++) {
    const due = steadyStart + i * gap;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    last = await write();
  }
  await allHave(last, 30_000);
  const lat: number[] = [];
  for (let w = 0; w < n; w++) {
    for (const e of got[w].slice(steadyFrom[w])) {
      const s = sentAt.get(e.rev);
      if (s !== undefined) lat.push(e.at - s);
    }
  }
  lat.sort((a, b) => a - b);
  const expected = o.steadyWrites * n;
  if (lat.length !== expected) throw new Error(`${variant.name}: ${lat.length} deliveries in the steady phase, expected ${expected}`);

  // Flat-out phase: deliveries per second until every watcher has the last write.
  const burstStart = performance.now();
  let issued = 0;
  let top = 0;
  await Promise.all(
    Array.from({ length: o.burstConcurrency }, async () => {
      while (issued < o.burstWrites) {
        issued++;
        top = Math.max(top, await write());
      }
    }),
  );
  const writesDone = performance.now();
  const end = await allHave(top, 60_000);
  const burstSeconds = (end - burstStart) / 1000;

  // Every watcher saw every revision once, in order.
  for (let w = 0; w < n; w++) {
    const revs = got[w].map((e) => e.rev);
    for (let i = 1; i < revs.length; i++) if (revs[i] <= revs[i - 1]) throw new Error(`${variant.name}: watcher ${w} got revision ${revs[i]} after ${revs[i - 1]}`);
    if (revs.length !== o.steadyWrites + o.burstWrites) throw new Error(`${variant.name}: watcher ${w} got ${revs.length} events, expected ${o.steadyWrites + o.burstWrites}`);
  }
  await stop();
  return {
    setupMs,
    p50Ms: quantile(lat, 0.5),
    p99Ms: quantile(lat, 0.99),
    maxMs: lat[lat.length - 1],
    deliveriesPerSecond: (o.burstWrites * n) / burstSeconds,
    writesPerSecond: o.burstWrites / ((writesDone - burstStart) / 1000),
  };
}

type RoundResult = Awaited<ReturnType<typeof round>>;

function summarize(rs: RoundResult[]) {
  return {
    rounds: rs.length,
    p50Ms: r3(median(rs.map((r) => r.p50Ms))),
    p99Ms: r3(median(rs.map((r) => r.p99Ms))),
    maxMs: r3(median(rs.map((r) => r.maxMs))),
    eventsPerSecond: Math.round(median(rs.map((r) => r.deliveriesPerSecond))),
    writesPerSecond: Math.round(median(rs.map((r) => r.writesPerSecond))),
    watchSetupMs: r3(median(rs.map((r) => r.setupMs))),
    p99PerRoundMs: rs.map((r) => r3(r.p99Ms)),
  };
}

function egwVariant(name: string, open: () => Store): Variant {
  return {
    name,
    async start(n, from, seen) {
      const stores = Array.from({ length: n }, open);
      const watches = await Promise.all(
        stores.map((s, w) =>
          s.watch({ kind: KIND, fromRevision: from, onError: (e) => process.stderr.write(`bench datastore: ${name} watcher ${w}: ${String(e)}\n`) }, (evs) => {
            for (const e of evs) seen(w, e.revision);
          }),
        ),
      );
      return async () => {
        await Promise.all(watches.map((w) => w.close()));
        await Promise.all(stores.map((s) => s.close()));
      };
    },
  };
}

function rawEtcdVariant(endpoint: string, keyPrefix: string, prevKv = false): Variant {
  return {
    name: prevKv ? 'etcd3 raw, prev_kv' : 'etcd3 raw',
    async start(n, from, seen) {
      const clients = Array.from({ length: n }, () => new Etcd3({ hosts: `http://${endpoint}` }));
      const watchers = await Promise.all(
        clients.map(async (c, w) => {
          const b = c.watch().prefix(keyPrefix).startRevision(String(from + 1));
          const watcher = await (prevKv ? b.withPreviousKV() : b).create();
          watcher.on('put', (kv) => seen(w, Number(kv.mod_revision)));
          return watcher;
        }),
      );
      return async () => {
        await Promise.all(watchers.map((w) => w.cancel()));
        for (const c of clients) c.close();
      };
    },
  };
}

async function seed(writer: Store): Promise<void> {
  for (let i = 0; i < OBJECTS; i++) await writer.create(object(i, 0));
}

export async function benchDatastore(opts: Opts = {}): Promise<Record<string, unknown>> {
  const o: Required<Opts> = {
    watchers: opts.watchers ?? 200,
    rounds: opts.rounds ?? 5,
    steadyWrites: opts.steadyWrites ?? 100,
    steadyPerSecond: opts.steadyPerSecond ?? 50,
    burstWrites: opts.burstWrites ?? 400,
    burstConcurrency: opts.burstConcurrency ?? 4,
  };
  const method = {
    watchers: o.watchers,
    writer: `1 writer updating ${OBJECTS} EgressGateways in turn (egw's update: a read and a conditioned write)`,
    steady: `${o.steadyWrites} writes at ${o.steadyPerSecond}/s; latency = write issued → event handed to a watcher, over every delivery`,
    flatOut: `${o.burstWrites} writes, ${o.burstConcurrency} in flight; events/s = writes × watchers / (first write → last watcher has the last write)`,
    rounds: `${o.rounds}, alternating the variants; medians`,
  };
  const out: Record<string, unknown> = { method };

  const missing = etcdMissing();
  let srv: EtcdServer | undefined;
  if (missing) out.etcd = { skipped: missing };
  else {
    srv = await startEtcd();
    const endpoint = srv.endpoint;
    const prefix = '/bench';
    const writer = new EtcdStore({ endpoints: [endpoint], prefix });
    try {
      await seed(writer);
      const egw = egwVariant('egw EtcdStore', () => new EtcdStore({ endpoints: [endpoint], prefix }));
      const raw = rawEtcdVariant(endpoint, `${prefix}/egw/v1/${KIND}/`);
      // The same raw client asking for what egw's watch asks for (prev_kv, so a DELETED event carries the object).
      const rawPrev = rawEtcdVariant(endpoint, `${prefix}/egw/v1/${KIND}/`, true);
      const variants = { egw, raw, rawPrevKv: rawPrev };
      const res: Record<keyof typeof variants, RoundResult[]> = { egw: [], raw: [], rawPrevKv: [] };
      const names = Object.keys(variants) as (keyof typeof variants)[];
      for (let i = 0; i < o.rounds; i++) {
        // Rotate which goes first, so none always runs on a warmer process.
        for (let j = 0; j < names.length; j++) {
          const v = names[(i + j) % names.length];
          res[v].push(await round(writer, variants[v], o));
        }
      }
      const e = summarize(res.egw);
      const r = summarize(res.raw);
      const rp = summarize(res.rawPrevKv);
      out.etcd = {
        egw: e,
        raw: r,
        rawPrevKv: rp,
        ratios: {
          p99Latency: r3(e.p99Ms / r.p99Ms),
          p50Latency: r3(e.p50Ms / r.p50Ms),
          eventsPerSecond: r3(e.eventsPerSecond / r.eventsPerSecond),
          p99LatencyVsPrevKv: r3(e.p99Ms / rp.p99Ms),
        },
        target: 'egw p99 latency ≤ 1.5 × raw',
        met: e.p99Ms / r.p99Ms <= 1.5,
      };
    } finally {
      await writer.close();
      await srv.stop();
    }
  }

  const dir = mkdtempSync(join(tmpdir(), 'egw-bench-ds-'));
  try {
    const file = join(dir, 'egw.db');
    const writer = new SqliteStore(file);
    try {
      await seed(writer);
      const sq = egwVariant('egw SqliteStore', () => new SqliteStore(file));
      const rs: RoundResult[] = [];
      for (let i = 0; i < o.rounds; i++) rs.push(await round(writer, sq, o));
      out.sqlite = { egw: summarize(rs), note: 'each watcher its own SqliteStore on one file, as each process opens it; commits by another connection are noticed through fs.watch on the WAL file, else by polling data_version every 25 ms' };
    } finally {
      await writer.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
