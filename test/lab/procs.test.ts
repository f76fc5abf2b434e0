import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimRecord, isRunning, procStat, readCmdline, readRecord, readRecords, spawnDetached, stopProcess, withStartLock } from '../../src/lab/procs.js';
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

test('claimRecord: one holder while it lives; a dead holder is taken over with its restart count carried on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-procs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'pids', 'supervisor.pid');
  // A live other holder (a sleeper recorded there) keeps it.
  const other = spawnDetached({ role: 'supervisor', argv: ['sleep', '30'], logFile: join(dir, 'x.log'), pidFile: file });
  assert.equal(claimRecord(file, 'supervisor'), undefined);
  assert.equal(readRecord(file)?.pid, other.pid);
  // Once it is gone, we take it: restarts 1, and how the previous one ended.
  assert.equal(await stopProcess(other), 'stopped');
  const mine = claimRecord(file, 'supervisor');
  assert.equal(mine?.pid, process.pid);
  assert.equal(mine?.restarts, 1);
  assert.match(mine?.lastExit ?? '', new RegExp(`^gone \\(pid ${other.pid}\\)`));
  assert.deepEqual(readRecord(file), mine);
  assert.ok(isRunning(mine!), 'our own record describes us');
  // Claiming again while we hold it is fine (we are the holder); nothing else is left in the directory.
  assert.equal(claimRecord(file, 'supervisor')?.pid, process.pid);
  assert.deepEqual(readdirSync(join(dir, 'pids')), ['supervisor.pid']);
});

test('withStartLock: held while fn runs (a second taker gets nothing), released after; a dead holder does not block', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-procs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'echo.pid');
  const inner = withStartLock(file, () => {
    assert.ok(existsSync(`${file}.lock`));
    return 'started';
  });
  assert.equal(inner, 'started');
  assert.equal(existsSync(`${file}.lock`), false);
  // A lock left by a process that died (kill -9 while starting) is broken.
  writeFileSync(`${file}.lock`, JSON.stringify({ role: 'start-lock', pid: 999_999_999, argv: ['x'], startedAt: '' }) + '\n');
  assert.equal(withStartLock(file, () => 1), 1);
  // A lock held by a live process is respected.
  const holder = spawnDetached({ role: 'start-lock', argv: ['sleep', '30'], logFile: join(dir, 'x.log'), pidFile: `${file}.lock` });
  t.after(() => void stopProcess(holder));
  assert.equal(withStartLock(file, () => 1), undefined);
  assert.equal(readRecord(`${file}.lock`)?.pid, holder.pid, 'the holder keeps its lock');
});
