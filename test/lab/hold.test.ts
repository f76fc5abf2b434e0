// `egw lab stop ROLE` / `egw lab start ROLE` (docs/dataplane.md, "Stopping one process for a while"): a held process
// stays stopped under a running supervisor, shows as `held`, comes back on start without a restart counted; a
// process that is not held is restarted (the supervisor is live); a bad role names the valid ones; `lab down` still
// stops everything. The lab is only a state directory and its underlay namespace (the supervisor looks for it),
// its one process a shell standing in for the forwarder (the one lab process that runs in the caller's namespace).
// Needs root (a network namespace); EGW_E2E=1 makes its absence a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLabFile } from '../../src/lab/labfile.js';
import { labDown, labStart, labStatus, labStop, type LabState } from '../../src/lab/topology.js';
import { runSupervisor } from '../../src/lab/supervise.js';
import { labStateDir, stateFiles } from '../../src/lab/names.js';
import { isRunning, readRecord } from '../../src/lab/procs.js';
import { memoryLogger } from '../../src/log.js';
import { E2E, missingPrerequisite } from '../helpers/env.js';
import { sleep, until } from '../helpers/wait.js';

const missing = missingPrerequisite(['ip']);

test('lab stop holds a process stopped under a live supervisor; lab start brings it back; lab down stops all', { skip: missing && !E2E ? missing : false, timeout: 60_000 }, async (t) => {
  if (missing) assert.fail(`EGW_E2E=1 but this test cannot run: ${missing}`);
  const name = `tl${randomBytes(3).toString('hex')}`;
  const root = mkdtempSync(join(tmpdir(), 'egw-hold-'));
  const dir = labStateDir(name, root);
  const netns = `egw-${name}-net`;
  const ac = new AbortController();
  let supervisor: Promise<void> | undefined;
  t.after(async () => {
    ac.abort();
    await supervisor;
    rmSync(stateFiles.pidFile(dir, 'supervisor'), { force: true }); // this test process: not for lab down to stop
    await labDown({ name, stateRoot: root, log: memoryLogger() }).catch(() => {});
    spawnSync('ip', ['netns', 'del', netns]);
    rmSync(root, { recursive: true, force: true });
  });
  assert.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0);
  // `sleep; true`: a shell that stays a shell (no exec), so its command line stays the recorded one.
  const state: LabState = {
    config: parseLabFile(`name: ${name}\nnodes: [{name: a}]\ndatastore: etcd\n`),
    datastore: 'etcd://172.31.0.2:2379',
    hostDatastore: 'etcd://127.0.0.1:1',
    forwardPort: 1,
    roles: ['forwarder'],
    file: join(root, 'lab.yaml'),
    egw: ['sh', '-c', 'sleep 300; true', 'egw'],
    firewall: '',
    createdAt: new Date().toISOString(),
  };
  for (const d of [dir, stateFiles.pids(dir), stateFiles.logs(dir)]) mkdirSync(d, { recursive: true });
  writeFileSync(stateFiles.config(dir), JSON.stringify(state));

  // Bad input first: the role named, the valid ones listed; a lab that is not up.
  await assert.rejects(labStop({ name, role: 'etdc', stateRoot: root }), (e: Error) => {
    assert.match(e.message, /has no process "etdc"; its processes are: forwarder, supervisor, watchdog$/);
    return true;
  });
  await assert.rejects(labStart({ name: 'nolab', role: 'etcd', stateRoot: root }), /lab nolab is not up/);

  // The watchdog held before the supervisor starts (it would run `sh -c …` as a watchdog): never started.
  assert.deepEqual(await labStop({ name, role: 'watchdog', stateRoot: root }), { role: 'watchdog', how: 'gone' });
  const log = memoryLogger();
  supervisor = runSupervisor({ lab: name, log, signal: ac.signal, stateRoot: root, pollMs: 50 });
  const rec = (role: string) => readRecord(stateFiles.pidFile(dir, role));
  const first = await until('the supervisor starts the forwarder', async () => {
    const r = rec('forwarder');
    return r && isRunning(r) ? r : undefined;
  }, 10_000, { everyMs: 50 });

  // Held: stopped by PID, and not started again for longer than the first restart delay (1 s).
  const stopped = await labStop({ name, role: 'forwarder', stateRoot: root });
  assert.deepEqual(stopped, { role: 'forwarder', pid: first.pid, how: 'stopped' });
  assert.equal(isRunning(first), false);
  await sleep(2500);
  assert.equal(rec('forwarder')?.pid, first.pid, 'nothing started while held');
  const status = await labStatus({ name, stateRoot: root });
  assert.match(status, new RegExp(`forwarder +pid ${first.pid} +held`));
  assert.equal(rec('watchdog'), undefined, 'the held watchdog was never started');

  // Released: started at once, no restart counted.
  const started = await labStart({ name, role: 'forwarder', stateRoot: root });
  assert.equal(started.how, 'started');
  const second = rec('forwarder')!;
  assert.notEqual(second.pid, first.pid);
  assert.ok(isRunning(second));
  assert.equal(second.restarts ?? 0, first.restarts ?? 0);
  assert.match(second.lastExit ?? '', /^held by egw lab stop at /);
  assert.match(await labStatus({ name, stateRoot: root }), new RegExp(`forwarder +pid ${second.pid} +running`));
  assert.equal((await labStart({ name, role: 'forwarder', stateRoot: root })).how, 'running', 'start of a running process starts nothing');

  // Not held: a kill -9 is a crash, and the supervisor restarts it (counted).
  process.kill(second.pid, 'SIGKILL');
  const third = await until('the supervisor restarts the killed forwarder', async () => {
    const r = rec('forwarder');
    return r && r.pid !== second.pid && isRunning(r) ? r : undefined;
  }, 10_000, { everyMs: 50 });
  assert.equal(third.restarts, (second.restarts ?? 0) + 1);

  // Held again, then lab down: it stops the rest and removes the lab (held or not).
  await labStop({ name, role: 'forwarder', stateRoot: root });
  assert.equal(isRunning(third), false);
  await labStart({ name, role: 'forwarder', stateRoot: root });
  const fourth = rec('forwarder')!;
  assert.ok(isRunning(fourth));
  ac.abort();
  await supervisor;
  rmSync(stateFiles.pidFile(dir, 'supervisor'), { force: true });
  await labStop({ name, role: 'watchdog', stateRoot: root }); // still held: lab down must cope with markers
  const down = await labDown({ name, stateRoot: root, log: memoryLogger() });
  assert.ok(down.stopped.some((s) => s.pid === fourth.pid && s.how === 'stopped'));
  assert.equal(isRunning(fourth), false);
  assert.equal(existsSync(dir), false);
  assert.equal(existsSync(`/run/netns/${netns}`), false);
  assert.ok(log.lines.some((l) => l.includes('held (egw lab stop); not restarting') && l.includes('forwarder')), 'the supervisor saw the hold');
});
