import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRunning, procStat, readCmdline, readRecord, readRecords, spawnDetached, stopProcess } from '../../src/lab/procs.js';
import { sleep } from '../helpers/wait.js';

test('a detached process is recorded with its command line and start time, and stopped only while it is ours', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-procs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const rec = spawnDetached({ role: 'sleeper', argv: ['sleep', '30'], logFile: join(dir, 'logs', 'sleeper.log'), pidFile: join(dir, 'pids', 'sleeper.pid') });
  t.after(() => {
    try {
      if (isRunning(rec)) process.kill(rec.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  assert.ok(rec.pid > 1);
  assert.deepEqual(readRecord(join(dir, 'pids', 'sleeper.pid')), rec);
  assert.deepEqual(readRecords(join(dir, 'pids')).map((r) => r.rec.role), ['sleeper']);
  assert.deepEqual(readCmdline(rec.pid), ['sleep', '30']);
  assert.equal(procStat(rec.pid)?.start, rec.start);
  assert.ok(isRunning(rec));
  // A record whose marker does not match (another command line, or another start time = a reused PID) is never hit.
  assert.equal(isRunning({ ...rec, argv: ['sleep', '31'] }), false);
  assert.equal(isRunning({ ...rec, start: (rec.start ?? 0) + 1 }), false);
  assert.equal(await stopProcess({ ...rec, argv: ['something', 'else'] }), 'gone');
  assert.ok(isRunning(rec), 'a mismatching record must not stop the process');
  assert.equal(await stopProcess(rec), 'stopped');
  assert.equal(isRunning(rec), false);
  assert.equal(await stopProcess(rec), 'gone');
});

test('a process that ignores SIGTERM is killed after the grace period', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-procs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const rec = spawnDetached({ role: 'stubborn', argv: ['sh', '-c', 'trap "" TERM; while :; do sleep 0.1; done'], logFile: join(dir, 'stubborn.log') });
  await sleep(100);
  assert.ok(isRunning(rec));
  assert.equal(await stopProcess(rec, 300), 'killed');
  assert.equal(isRunning(rec), false);
});
