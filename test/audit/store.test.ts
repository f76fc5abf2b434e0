import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { FLOW_STORE_DEFAULTS, openFlowStore, parseFlowStoreLimits, parseSize } from '../../src/audit/store.js';
import { FlowIndex, INDEX_FILE } from '../../src/audit/indexdb.js';
import { flowFileName, listFlowFiles, parseFlowFileName, readLinesFrom, readRetention } from '../../src/audit/files.js';
import { podIPAt, podIPHistory, readPodIPFile, readPodIPHistory, POD_IP_FILE } from '../../src/audit/history.js';
import { memoryLogger } from '../../src/log.js';
import { flow, gap, GW1, iso, opened, T0 } from './records.js';

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'egw-store-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function clock(start = T0) {
  let now = start;
  return { now: () => now, set: (ms: number) => void (now = ms), add: (ms: number) => void (now += ms) };
}

/** Every JSONL line of a directory, parsed, in file order. */
function allLines(dir: string): Record<string, any>[] {
  return listFlowFiles(dir).flatMap((f) => readLinesFrom(f.path).lines.map((l) => JSON.parse(l.text)));
}

function indexRows(dir: string): { open: number; record: string; file: string | null }[] {
  const db = new Database(join(dir, INDEX_FILE), { readonly: true });
  try {
    return db
      .prepare('SELECT * FROM (SELECT 0 AS open, record, file, start_ms FROM flows UNION ALL SELECT 1 AS open, record, NULL AS file, start_ms FROM open_flows) ORDER BY start_ms, open')
      .all() as { open: number; record: string; file: string | null }[];
  } finally {
    db.close();
  }
}

test('file names carry the start time and sort by it', () => {
  const name = flowFileName(Date.parse('2026-12-02T02:57:40.123Z'));
  assert.equal(name, 'flows-20261202T025740.123Z.jsonl');
  assert.equal(parseFlowFileName(name), Date.parse('2026-12-02T02:57:40.123Z'));
  assert.equal(parseFlowFileName('flows-2026.jsonl'), undefined);
  assert.equal(parseFlowFileName('index.db'), undefined);
  assert.ok(flowFileName(T0) < flowFileName(T0 + 1));
});

test('open → complete: the open row is replaced, only the complete one is a line; open rows survive a restart', (t) => {
  const dir = tmp(t);
  const c = clock();
  const rec = flow({ start: T0, end: T0 + 5000, nat: '192.0.2.10', natPort: 40001, gateway: GW1 });
  const other = flow({ start: T0 + 10, end: T0 + 20, nat: '192.0.2.10', natPort: 40002, gateway: GW1 });
  let s = openFlowStore(dir, { now: c.now, log: memoryLogger() });
  s.open(opened(rec));
  s.open(opened(other));
  assert.equal(s.openFlows().length, 2, 'openFlows includes what was buffered');
  s.close();
  assert.deepEqual(allLines(dir), [], 'open connections are not written to JSONL');

  s = openFlowStore(dir, { now: c.now, log: memoryLogger() });
  assert.deepEqual(s.openFlows().map((r) => r.egw.conntrack_id).sort(), [rec.egw.conntrack_id, other.egw.conntrack_id].sort(), 'open rows survive a restart');
  s.complete(rec);
  s.flush();
  assert.deepEqual(s.openFlows().map((r) => r.egw.conntrack_id), [other.egw.conntrack_id]);
  s.close();
  const rows = indexRows(dir);
  assert.equal(rows.length, 2);
  assert.deepEqual(rows.map((r) => r.open), [0, 1]);
  assert.deepEqual(JSON.parse(rows[0].record), rec);
  assert.deepEqual(allLines(dir), [rec]);
});

test('the same conntrack id with another tuple is another connection', (t) => {
  const dir = tmp(t);
  const a = flow({ id: 7, start: T0, nat: '192.0.2.10', natPort: 40001 });
  const b = flow({ id: 7, start: T0, nat: '192.0.2.10', natPort: 40002, sport: 40002 });
  const s = openFlowStore(dir, { log: memoryLogger() });
  s.open(opened(a));
  s.open(opened(b));
  s.complete(a);
  assert.deepEqual(s.openFlows().map((r) => r.source.port), [40002]);
  s.close();
});

test('rotation by size: no file passes the limit, every line is kept in order', (t) => {
  const dir = tmp(t);
  const c = clock();
  const s = openFlowStore(dir, { now: c.now, maxFileBytes: 4000, log: memoryLogger() });
  const recs = Array.from({ length: 30 }, (_, i) => flow({ start: T0 + i, nat: '192.0.2.10', natPort: 30000 + i }));
  for (const r of recs) s.complete(r);
  s.close();
  const files = listFlowFiles(dir);
  assert.ok(files.length >= 5, `${files.length} files`);
  for (const f of files) assert.ok(f.size <= 4000, `${f.name} is ${f.size} bytes`);
  assert.deepEqual(allLines(dir).map((l) => l.source.nat.port), recs.map((r) => r.source.nat.port));
  assert.equal(indexRows(dir).length, 30);
});

test('rotation by age, and an existing whole file within the limits is appended to after a restart', (t) => {
  const dir = tmp(t);
  const c = clock();
  let s = openFlowStore(dir, { now: c.now, maxFileAgeMs: 60_000, log: memoryLogger() });
  s.complete(flow({ start: T0, nat: '192.0.2.10', natPort: 1 }));
  s.close();
  c.add(10_000);
  s = openFlowStore(dir, { now: c.now, maxFileAgeMs: 60_000, log: memoryLogger() });
  s.complete(flow({ start: T0, nat: '192.0.2.10', natPort: 2 }));
  s.flush();
  assert.equal(listFlowFiles(dir).length, 1, 'appended to the whole, young file');
  c.add(60_000);
  s.complete(flow({ start: T0, nat: '192.0.2.10', natPort: 3 }));
  s.close();
  const files = listFlowFiles(dir);
  assert.equal(files.length, 2);
  assert.equal(files[1].startMs, T0 + 70_000);
  assert.deepEqual(readLinesFrom(files[1].path).lines.map((l) => JSON.parse(l.text).source.nat.port), [3]);
});

test('retention by age deletes whole old files, their index rows, and remembers the horizon', (t) => {
  const dir = tmp(t);
  const c = clock();
  const day = 24 * 3600_000;
  const s = openFlowStore(dir, { now: c.now, maxFileAgeMs: day, retainAgeMs: 3 * day, retentionCheckMs: 0, log: memoryLogger() });
  for (let d = 0; d < 6; d++) {
    s.complete(flow({ start: c.now(), nat: '192.0.2.10', natPort: 100 + d }));
    s.flush();
    c.add(day);
  }
  // Now T0 + 6 d: files started at d = 0..5; a file ends when the next starts, so files 0..1 (ended ≤ T0 + 2 d) are
  // older than 3 days: removed. File 2 ended at T0 + 3 d, exactly the cutoff: kept.
  s.flush();
  const left = listFlowFiles(dir).map((f) => f.startMs);
  assert.deepEqual(left, [2, 3, 4, 5].map((d) => T0 + d * day));
  assert.equal(readRetention(dir), T0 + 2 * day);
  assert.deepEqual(indexRows(dir).map((r) => JSON.parse(r.record).source.nat.port), [102, 103, 104, 105]);
  s.close();
});

test('retention by total size deletes the oldest files first, never the current one', (t) => {
  const dir = tmp(t);
  const c = clock();
  const s = openFlowStore(dir, { now: c.now, maxFileBytes: 3000, retainBytes: 7000, log: memoryLogger() });
  for (let i = 0; i < 40; i++) {
    c.add(1000);
    s.complete(flow({ start: c.now(), nat: '192.0.2.10', natPort: 1000 + i }));
    s.flush();
  }
  s.close();
  const files = listFlowFiles(dir);
  const total = files.reduce((n, f) => n + f.size, 0);
  assert.ok(total <= 7000 + 3000, `total ${total}`);
  const ports = allLines(dir).map((l) => l.source.nat.port);
  assert.equal(ports[ports.length - 1], 1039, 'the newest record is kept');
  assert.ok(ports[0] > 1000, 'the oldest records were removed');
  assert.ok(readRetention(dir)! > T0);
  assert.equal(indexRows(dir).length, ports.length, 'the index holds exactly what the files hold');
});

test('crash between the file write and the index commit: the unindexed tail is indexed at the next open', (t) => {
  const dir = tmp(t);
  const log = memoryLogger();
  const a = flow({ start: T0, nat: '192.0.2.10', natPort: 1 });
  const b = flow({ start: T0 + 1, nat: '192.0.2.10', natPort: 2 });
  const g = gap({ start: T0 + 2, end: T0 + 3 });
  let s = openFlowStore(dir, { log });
  s.complete(a);
  s.open(opened(b));
  s.close();
  // What a crash after the write and before the commit leaves: lines the index has not seen.
  const file = listFlowFiles(dir)[0].path;
  appendFileSync(file, JSON.stringify(b) + '\n' + JSON.stringify(g) + '\n');
  s = openFlowStore(dir, { log });
  assert.deepEqual(s.openFlows(), [], 'the complete line replaced the open row');
  // what the previous run completed is found by the connection (the tracker asks, so as not to record it again)
  assert.equal(s.completedEnd(b), Date.parse(b.event.end!));
  assert.equal(s.completedEnd(a), Date.parse(a.event.end!));
  assert.equal(s.completedEnd({ ...b, egw: { ...b.egw, conntrack_id: b.egw.conntrack_id + 1 } }), undefined, 'another conntrack id');
  assert.equal(s.completedEnd({ ...b, source: { ...b.source, nat: { ip: '192.0.2.10', port: 3 } } }), undefined, 'another translated port');
  s.close();
  assert.deepEqual(indexRows(dir).map((r) => JSON.parse(r.record).source.nat.port), [1, 2]);
  const ix = FlowIndex.openReadonly(join(dir, INDEX_FILE));
  assert.equal(ix.gaps().length, 1);
  assert.equal(ix.fileMarks().get(listFlowFiles(dir)[0].name)!.lines, 3);
  ix.close();
  assert.ok(log.lines.some((l) => /not indexed then/.test(l) && /lines=2/.test(l)), log.lines.join('\n'));
});

test('a file that does not end in a newline is never appended to; its partial line is reported, bad lines are skipped', (t) => {
  const dir = tmp(t);
  const c = clock();
  const log = memoryLogger();
  let s = openFlowStore(dir, { now: c.now, log });
  s.complete(flow({ start: T0, nat: '192.0.2.10', natPort: 1 }));
  s.close();
  const first = listFlowFiles(dir)[0];
  appendFileSync(first.path, 'not json at all\n{"event":{"dataset":"egw.flow"},"source":');
  const before = readFileSync(first.path);
  c.add(1000);
  s = openFlowStore(dir, { now: c.now, log });
  s.complete(flow({ start: T0 + 1000, nat: '192.0.2.10', natPort: 2 }));
  s.close();
  assert.deepEqual(readFileSync(first.path), before, 'the torn file is unchanged');
  const files = listFlowFiles(dir);
  assert.equal(files.length, 2);
  assert.deepEqual(readLinesFrom(files[1].path).lines.map((l) => JSON.parse(l.text).source.nat.port), [2]);
  assert.ok(log.lines.some((l) => /partial line/.test(l) && /line=3/.test(l)), log.lines.join('\n'));
  assert.ok(log.lines.some((l) => /line skipped/.test(l) && /line=2/.test(l) && /not JSON/.test(l)), log.lines.join('\n'));
  const ix = FlowIndex.openReadonly(join(dir, INDEX_FILE));
  assert.deepEqual(ix.skipped().map((x) => [x.file, x.line]), [[first.name, 2]]);
  ix.close();
});

for (const [what, damage] of [
  ['not a database', (p: string) => writeFileSync(p, 'this is not sqlite, just some text that is long enough to be a header')],
  [
    'another schema',
    (p: string) => {
      const db = new Database(p);
      db.exec('CREATE TABLE something (x)');
      db.close();
    },
  ],
] as const) {
  test(`a corrupt index (${what}) is moved aside, reported and rebuilt from the JSONL files`, (t) => {
    const dir = tmp(t);
    const c = clock();
    const log = memoryLogger();
    let s = openFlowStore(dir, { now: c.now, log });
    for (let i = 0; i < 5; i++) s.complete(flow({ start: T0 + i, nat: '192.0.2.10', natPort: i + 1 }));
    s.gap(gap({ start: T0, end: T0 + 10 }));
    s.open(opened(flow({ start: T0, nat: '192.0.2.10', natPort: 99 })));
    s.setState('ledger', { n: 1 });
    s.close();
    for (const f of readdirSync(dir)) if (f.startsWith(INDEX_FILE)) rmSync(join(dir, f));
    damage(join(dir, INDEX_FILE));
    s = openFlowStore(dir, { now: c.now, log });
    assert.deepEqual(s.openFlows(), [], 'open rows lived only in the index');
    assert.equal(s.getState('ledger'), undefined);
    s.close();
    const aside = readdirSync(dir).filter((f) => f.startsWith(`${INDEX_FILE}.corrupt-`) && !/-(wal|shm)$/.test(f));
    assert.equal(aside.length, 1, readdirSync(dir).join(' '));
    assert.deepEqual(indexRows(dir).map((r) => JSON.parse(r.record).source.nat.port), [1, 2, 3, 4, 5]);
    const ix = FlowIndex.openReadonly(join(dir, INDEX_FILE));
    assert.equal(ix.gaps().length, 1);
    ix.close();
    assert.ok(log.lines.some((l) => /WARN/.test(l) && /moved aside and rebuilt/.test(l) && /cannot be rebuilt/.test(l)), log.lines.join('\n'));
  });
}

test('state is kept with the records and survives a restart', (t) => {
  const dir = tmp(t);
  let s = openFlowStore(dir, { log: memoryLogger() });
  s.setState('ledger', { recorded: 3, lost: 1 });
  assert.deepEqual(s.getState('ledger'), { recorded: 3, lost: 1 }, 'read back before a flush');
  s.close();
  s = openFlowStore(dir, { log: memoryLogger() });
  assert.deepEqual(s.getState('ledger'), { recorded: 3, lost: 1 });
  assert.equal(s.getState('other'), undefined);
  s.close();
  assert.throws(() => s.complete(flow({ start: T0, nat: '192.0.2.10', natPort: 1 })), /closed/);
});

test('aggregates share the stream; nothing is written before a flush', (t) => {
  const dir = tmp(t);
  const s = openFlowStore(dir, { log: memoryLogger() });
  s.complete(flow({ start: T0, nat: '192.0.2.10', natPort: 1 }));
  const agg = {
    '@timestamp': iso(T0),
    event: { kind: 'metric' as const, dataset: 'egw.flow_aggregate' as const, start: iso(T0), end: iso(T0 + 60_000) },
    network: { transport: 'tcp' },
    destination: { ip: '203.0.113.7', port: 443 },
    orchestrator: { type: 'kubernetes' as const, namespace: 'team-a', resource: { type: 'pod' as const, name: 'client-1' } },
    egw: {
      reporter: 'gateway' as const,
      reporter_name: 'egw/gw-1',
      pod: { uid: 'u' },
      gateway: { namespace: 'egw', name: 'gw-1' },
      egress_ip: '192.0.2.10',
      connections: 4,
      source: { bytes: 1, packets: 1 },
      destination: { bytes: 1, packets: 1 },
    },
  };
  s.aggregate(agg);
  assert.equal(listFlowFiles(dir).reduce((n, f) => n + f.size, 0), 0, 'buffered');
  s.flush();
  assert.deepEqual(allLines(dir).map((l) => l.event.dataset), ['egw.flow', 'egw.flow_aggregate']);
  s.close();
});

test('limits from flags and environment: sizes, durations, errors naming the flag or variable', () => {
  assert.equal(parseSize('64Mi'), 64 * 1024 * 1024);
  assert.equal(parseSize('500M'), 500e6);
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('1.5Gi'), undefined);
  assert.equal(parseSize('-1'), undefined);
  assert.deepEqual(parseFlowStoreLimits({}, {}), {});
  assert.deepEqual(parseFlowStoreLimits({ maxFileBytes: '1Mi', retainAgeMs: '168h' }, { EGW_FLOW_MAX_FILE_AGE: '30m', EGW_FLOW_RETAIN_SIZE: '2Gi' }), {
    maxFileBytes: 1024 * 1024,
    maxFileAgeMs: 30 * 60_000,
    retainAgeMs: 168 * 3600_000,
    retainBytes: 2 * 1024 ** 3,
  });
  assert.deepEqual(parseFlowStoreLimits({ maxFileAgeMs: '2h' }, { EGW_FLOW_MAX_FILE_AGE: 'junk' }), { maxFileAgeMs: 7_200_000 }, 'the flag wins');
  assert.throws(() => parseFlowStoreLimits({ maxFileBytes: '64MB' }, {}), /^Error: --flow-max-file-size: "64MB" is not a size/);
  assert.throws(() => parseFlowStoreLimits({ retainAgeMs: '7d' }, {}), /^Error: --flow-retain-age: "7d" is not a duration/);
  assert.throws(() => parseFlowStoreLimits({}, { EGW_FLOW_RETAIN_SIZE: '0' }), /^Error: EGW_FLOW_RETAIN_SIZE: "0" is not a size/);
  assert.throws(() => parseFlowStoreLimits({}, { EGW_FLOW_MAX_FILE_AGE: '0s' }), /EGW_FLOW_MAX_FILE_AGE/);
  assert.equal(FLOW_STORE_DEFAULTS.maxFileBytes, 64 * 1024 * 1024);
  assert.equal(FLOW_STORE_DEFAULTS.retainAgeMs, 7 * 24 * 3600_000);
});

test('pod-IP history: an IP reused by a new pod answers with the right pod per time, across restarts', (t) => {
  const root = tmp(t);
  const dir = join(root, 'node-node-a');
  const old = { ip: '10.244.1.5', uid: 'uid-old', namespace: 'team-a', name: 'old', node: 'node-a', labels: { app: 'old' }, from: iso(T0) };
  const other = { ip: '10.244.1.6', uid: 'uid-x', namespace: 'team-b', name: 'x', node: 'node-a', labels: {} };
  let h = podIPHistory(dir);
  h.observe([old, other], T0 + 1000);
  h.observe([old, other], T0 + 2000);
  h.observe([other], T0 + 60_000);
  h.close();
  // The agent restarts; meanwhile the IP went to a new pod.
  h = podIPHistory(dir);
  assert.deepEqual(h.held().map((e) => e.uid), ['uid-x']);
  const young = { ip: '10.244.1.5', uid: 'uid-new', namespace: 'team-b', name: 'new', node: 'node-a', labels: { app: 'new' }, from: iso(T0 + 90_000) };
  h.observe([other, young], T0 + 100_000);
  h.close();
  const lines = readFileSync(join(dir, POD_IP_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => [l.event, l.uid]), [
    ['start', 'uid-old'],
    ['start', 'uid-x'],
    ['end', 'uid-old'],
    ['start', 'uid-new'],
  ]);
  const { entries, warnings } = readPodIPHistory(root);
  assert.deepEqual(warnings, []);
  assert.equal(podIPAt(entries, '10.244.1.5', T0 + 30_000)?.uid, 'uid-old');
  assert.equal(podIPAt(entries, '10.244.1.5', T0 + 95_000)?.uid, 'uid-new');
  assert.equal(podIPAt(entries, '10.244.1.5', T0 + 70_000), undefined, 'nobody held it between');
  assert.equal(podIPAt(entries, '10.244.1.5', T0 - 1), undefined);
  assert.equal(podIPAt(entries, '10.244.1.6', T0 + 1000)?.name, 'x', 'without `from`, the first observation');
});

test('pod-IP history: an end written late (agent down) does not hide the pod that got the IP since', (t) => {
  const root = tmp(t);
  const dir = join(root, 'node-n');
  let h = podIPHistory(dir);
  h.observe([{ ip: '10.0.0.9', uid: 'a', namespace: 'ns', name: 'a', node: 'n', labels: {}, from: iso(T0) }], T0);
  h.close();
  h = podIPHistory(dir);
  // While the agent was down, a went at T0 + 10 s and b got the IP at T0 + 20 s; the agent sees it at T0 + 60 s.
  h.observe([{ ip: '10.0.0.9', uid: 'b', namespace: 'ns', name: 'b', node: 'n', labels: {}, from: iso(T0 + 20_000) }], T0 + 60_000);
  h.close();
  const { entries } = readPodIPHistory(root);
  assert.equal(podIPAt(entries, '10.0.0.9', T0 + 5_000)?.name, 'a');
  assert.equal(podIPAt(entries, '10.0.0.9', T0 + 30_000)?.name, 'b');
});

test('pod-IP history: a torn last line is reported and cut off before the next write', (t) => {
  const dir = tmp(t);
  let h = podIPHistory(dir);
  h.observe([{ ip: '10.0.0.1', uid: 'a', namespace: 'ns', name: 'a', node: null, labels: {} }], T0);
  h.close();
  appendFileSync(join(dir, POD_IP_FILE), '{"event":"start","ip":"10.0');
  const r = readPodIPFile(join(dir, POD_IP_FILE));
  assert.deepEqual(r.warnings.map((w) => [w.line, /truncated/.test(w.reason)]), [[2, true]]);
  const seen: string[] = [];
  h = podIPHistory(dir, { onWarning: (w) => seen.push(`${w.line}`) });
  h.observe([], T0 + 1000);
  h.close();
  assert.deepEqual(seen, ['2']);
  const after = readPodIPFile(join(dir, POD_IP_FILE));
  assert.deepEqual(after.warnings, []);
  assert.equal(after.entries[0].to, iso(T0 + 1000));
});

test('performance sanity: 100k records written and indexed (figures printed, no assertion on time)', (t) => {
  const dir = tmp(t);
  const n = 100_000;
  const recs = Array.from({ length: n }, (_, i) =>
    flow({ id: i, start: T0 + i, nat: '192.0.2.10', natPort: 1024 + (i % 60000), sport: 1024 + (i % 60000), src: `10.244.${(i >> 8) & 255}.${i & 255}`, gateway: GW1 }),
  );
  const s = openFlowStore(dir, { log: memoryLogger() });
  const t0 = process.hrtime.bigint();
  // The recorder's pattern: open at NEW, complete at DESTROY, a flush every 200 ms (here: every 2,000 records).
  for (let i = 0; i < n; i++) {
    s.complete(recs[i]);
    if (i % 2000 === 1999) s.flush();
  }
  s.close();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const bytes = listFlowFiles(dir).reduce((a, f) => a + f.size, 0);
  t.diagnostic(`100k records: ${ms.toFixed(0)} ms (${Math.round(n / (ms / 1000))} records/s), JSONL ${(bytes / 1e6).toFixed(1)} MB, index ${(statSync(join(dir, INDEX_FILE)).size / 1e6).toFixed(1)} MB`);
  assert.equal(indexRows(dir).length, n);
  assert.ok(existsSync(join(dir, INDEX_FILE)));
});

test('an index damaged while the store runs is rebuilt at the next flush; nothing written is lost', (t) => {
  const dir = tmp(t);
  const log = memoryLogger();
  const s = openFlowStore(dir, { log });
  const a = flow({ start: T0, nat: '192.0.2.10', natPort: 1 });
  const b = flow({ start: T0 + 1, nat: '192.0.2.10', natPort: 2 });
  const c = flow({ start: T0 + 2, nat: '192.0.2.10', natPort: 3 });
  s.complete(a);
  s.flush();
  // Damage the database under the open connection (same inode), past SQLite's header and first pages.
  const size = statSync(join(dir, INDEX_FILE)).size;
  writeFileSync(join(dir, INDEX_FILE), Buffer.alloc(Math.max(size, 65536), 0x5a));
  for (const suffix of ['-wal', '-shm']) if (existsSync(join(dir, INDEX_FILE + suffix))) writeFileSync(join(dir, INDEX_FILE + suffix), Buffer.alloc(4096, 0x5a));
  s.open(opened(b));
  s.complete(b);
  s.open(opened(c));
  s.setState('k', 1);
  s.flush();
  assert.deepEqual(s.openFlows().map((r) => r.source.nat.port), [3], 'the open row of a connection completed in the same batch is not brought back');
  assert.equal(s.getState('k'), 1);
  s.close();
  assert.deepEqual(indexRows(dir).filter((r) => !r.open).map((r) => JSON.parse(r.record).source.nat.port), [1, 2]);
  assert.ok(log.lines.some((l) => /moved aside and rebuilt/.test(l)), log.lines.join('\n'));
});
