// A child process for sqlite-xproc.test.ts: makes exactly COUNT changes (creates, updates, deletes; some batched in a
// txn) to the SQLite datastore at DBPATH, then prints one JSON line per change: {"rev","type","ns","name"}.
//   node --import tsx test/datastore/xproc-writer.ts DBPATH COUNT [PREFIX] [START_AT_MS] [PAUSE_MS]
// START_AT_MS (epoch ms) makes several writers begin at the same moment; PAUSE_MS is a pause between changes, as real
// writers have (without it a writer re-takes SQLite's write lock at once and a competing process, which polls for the
// lock, rarely gets in until the first is done).
import type { Resource } from '../../src/api/meta.js';
import { SqliteStore } from '../../src/datastore/sqlite.js';
import type { TxnOp } from '../../src/datastore/types.js';
import { egressGateway } from '../helpers/resources.js';
import { sleep } from '../helpers/wait.js';

const [dbPath, countArg, prefix = 'w', startAtArg, pauseArg] = process.argv.slice(2);
const pauseMs = Number(pauseArg ?? 0);
const count = Number(countArg);
if (!dbPath || !Number.isInteger(count) || count < 0) {
  console.error('usage: xproc-writer.ts DBPATH COUNT [PREFIX] [START_AT_MS]');
  process.exit(2);
}

// Deterministic per prefix, so runs are reproducible.
let seed = [...prefix].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
const rand = (): number => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32;
};

const obj = (ns: string, name: string, n: number): Resource => egressGateway(ns, name, { replicas: n }, { labels: { writer: prefix } });

async function main(): Promise<void> {
  const store = new SqliteStore(dbPath);
  if (startAtArg && startAtArg !== '0') {
    const wait = Number(startAtArg) - Date.now();
    if (wait > 0) await sleep(wait);
  }
  const live = new Map<string, { ns: string; name: string; rv: string }>();
  const log: string[] = [];
  let made = 0;
  let next = 0;
  while (made < count) {
    const batch = Math.min(count - made, rand() < 0.2 ? 2 + Math.floor(rand() * 3) : 1);
    const ops: TxnOp[] = [];
    const pending = new Map(live);
    for (let i = 0; i < batch; i++) {
      const r = rand();
      const keys = [...pending.keys()];
      if (keys.length === 0 || r < 0.4) {
        const ns = ['a', 'b', 'c'][Math.floor(rand() * 3)];
        const name = `${prefix}-${next++}`;
        ops.push({ op: 'create', object: obj(ns, name, 0) });
        pending.set(`${ns}/${name}`, { ns, name, rv: '' });
      } else {
        const k = keys[Math.floor(rand() * keys.length)];
        const cur = pending.get(k)!;
        if (r < 0.8) {
          const o = obj(cur.ns, cur.name, Math.floor(rand() * 100));
          // Pin the version when this writer knows it (always true unless created earlier in this same batch).
          if (cur.rv) o.metadata.resourceVersion = cur.rv;
          ops.push({ op: 'update', object: o });
          pending.set(k, { ...cur, rv: '' });
        } else {
          ops.push({ op: 'delete', key: { kind: 'EgressGateway', namespace: cur.ns, name: cur.name }, resourceVersion: cur.rv || undefined });
          pending.delete(k);
        }
      }
    }
    const results = ops.length === 1 && rand() < 0.5 ? [await single(store, ops[0])] : await store.txn(ops);
    results.forEach((res, i) => {
      const op = ops[i];
      const ns = res.metadata.namespace!;
      const name = res.metadata.name;
      const type = op.op === 'create' ? 'ADDED' : op.op === 'delete' ? 'DELETED' : 'MODIFIED';
      log.push(JSON.stringify({ rev: Number(res.metadata.resourceVersion), type, ns, name }));
      if (op.op === 'delete') live.delete(`${ns}/${name}`);
      else live.set(`${ns}/${name}`, { ns, name, rv: res.metadata.resourceVersion! });
    });
    made += results.length;
    if (pauseMs > 0) await sleep(pauseMs);
  }
  await store.close();
  process.stdout.write(log.join('\n') + (log.length ? '\n' : ''));
}

function single(store: SqliteStore, op: TxnOp): Promise<Resource> {
  switch (op.op) {
    case 'create':
      return store.create(op.object);
    case 'update':
      return store.update(op.object);
    case 'delete':
      return store.delete(op.key, { resourceVersion: op.resourceVersion });
    default:
      return store.txn([op]).then((r) => r[0]);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
