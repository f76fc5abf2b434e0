// Which processes a lab runs, and how (pure: labProcesses builds argv from the lab state; nothing is started).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLabFile } from '../../src/lab/labfile.js';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labProcesses, labUp, supervisorSpec, type LabState } from '../../src/lab/topology.js';
import { memoryLogger } from '../../src/log.js';
import { inNetnsArgv } from '../../src/lab/procs.js';
import { labChildEnv } from '../../src/lab/names.js';

const EGW = ['/usr/bin/node', '/repo/bin/egw.js'];

function state(extra: string, over: Partial<LabState> = {}): LabState {
  const config = parseLabFile(`name: t1\nnodes: [{name: a}, {name: b}]\n${extra}`);
  const etcd = config.datastore === 'etcd';
  return {
    config,
    datastore: etcd ? 'etcd://172.31.0.2:2379' : 'sqlite:/x/egw.db',
    hostDatastore: etcd ? 'etcd://127.0.0.1:40000' : 'sqlite:/x/egw.db',
    ...(etcd ? { forwardPort: 40000 } : {}),
    roles: ['etcd', 'forwarder', 'kubelet', 'agent', 'controller', 'echo'],
    file: '/x/lab.yaml',
    egw: EGW,
    firewall: '',
    createdAt: '',
    ...over,
  };
}

test('a lab on SQLite: kubelets in their node (nsenter), agents, two controllers by default, echo; no etcd', () => {
  const ps = labProcesses(state(''), '/state/t1');
  assert.deepEqual(ps.map((p) => p.role), ['kubelet-a', 'kubelet-b', 'agent-a', 'agent-b', 'controller-1', 'controller-2', 'echo']);
  assert.deepEqual(ps.find((p) => p.role === 'controller-2')?.argv.slice(-5), ['controller', '--id', 'controller-2', '--metrics-listen', ':9094']);
  const k = ps[0];
  assert.deepEqual([k.netns, k.netnsMode], ['egw-t1-n-a', 'enter']);
  assert.deepEqual(k.argv, [...EGW, '--datastore', 'sqlite:/x/egw.db', 'lab', 'kubelet', '--lab', 't1', '--node', 'a']);
  assert.deepEqual(inNetnsArgv(k.argv, k.netns, k.netnsMode).slice(0, 3), ['nsenter', '--net=/run/netns/egw-t1-n-a', '--']);
  assert.deepEqual(ps.find((p) => p.role === 'controller-1')?.netns, 'egw-t1-router');
  // Only the roles the lab runs (lab up with start: [...]).
  assert.deepEqual(labProcesses(state('', { roles: ['kubelet', 'echo'] }), '/s').map((p) => p.role), ['kubelet-a', 'kubelet-b', 'echo']);
});

test('a lab on etcd with 2 controllers: etcd in its namespace with a unix socket, the forwarder, every process on the underlay address', () => {
  const ps = labProcesses(state('datastore: etcd\ncontrollers: 2\n'), '/state/t1');
  assert.deepEqual(ps.map((p) => p.role), ['etcd', 'forwarder', 'kubelet-a', 'kubelet-b', 'agent-a', 'agent-b', 'controller-1', 'controller-2', 'echo']);
  const etcd = ps[0];
  assert.deepEqual([etcd.netns, etcd.cwd, etcd.staleFiles], ['egw-t1-etcd', '/state/t1', ['/state/t1/etcd.sock:0']]);
  const arg = (name: string) => etcd.argv[etcd.argv.indexOf(name) + 1];
  assert.equal(arg('--listen-client-urls'), 'http://172.31.0.2:2379,unix://etcd.sock:0');
  assert.equal(arg('--advertise-client-urls'), 'http://172.31.0.2:2379');
  assert.deepEqual([arg('--auto-compaction-mode'), arg('--auto-compaction-retention')], ['periodic', '5m'], 'etcd keeps 5 minutes of history (docs/behaviour.md §4.1)');
  assert.equal(arg('--data-dir'), '/state/t1/etcd');
  assert.equal(arg('--listen-peer-urls'), 'http://127.0.0.1:2380');
  const fwd = ps[1];
  assert.equal(fwd.netns, undefined, 'the forwarder runs where lab up runs (loopback only)');
  assert.deepEqual(fwd.argv.slice(2), ['lab', 'forward', '--lab', 't1', '--listen', '127.0.0.1:40000', '--to', '/state/t1/etcd.sock:0']);
  for (const p of ps.filter((p) => /^(kubelet|agent|controller)/.test(p.role))) assert.equal(p.argv[p.argv.indexOf('--datastore') + 1], 'etcd://172.31.0.2:2379', p.role);
  assert.deepEqual(supervisorSpec(state('datastore: etcd\n'), 'watchdog').argv.slice(2), ['lab', 'supervise', '--lab', 't1', '--watchdog']);
});

test('lab up refuses a datastore the lab file contradicts, before creating anything', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'egw-labup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const etcdFile = join(dir, 'etcd.yaml');
  writeFileSync(etcdFile, 'name: tzz001\nnodes: [{name: a}]\ndatastore: etcd\n');
  await assert.rejects(labUp({ file: etcdFile, datastore: 'sqlite:/tmp/x.db', datastoreFrom: 'flag', stateRoot: join(dir, 's'), log: memoryLogger() }), /datastore: etcd — the lab runs its own etcd/);
  const sqliteFile = join(dir, 'sqlite.yaml');
  writeFileSync(sqliteFile, 'name: tzz001\nnodes: [{name: a}]\n');
  await assert.rejects(labUp({ file: sqliteFile, datastore: 'etcd://127.0.0.1:2379', stateRoot: join(dir, 's'), log: memoryLogger() }), /write "datastore: etcd"/);
  assert.equal(existsSync(join(dir, 's')), false, 'nothing was created');
});

test('lab processes get EGW_LAB_DIR, the lab\'s EGW_FLOW_DIR (over the caller\'s), its metrics socket dir and none of the caller CLI datastore settings (they are told --datastore)', () => {
  const env = labChildEnv('/run/egw/labs', 't1', { PATH: '/bin', EGW_DATASTORE: 'etcd://10.0.0.1:2379', EGW_ETCD_CA: '/ca.pem', EGW_ETCD_CERT: '/c.pem', EGW_ETCD_KEY: '/k.pem', EGW_LAB_DIR: '/old', EGW_FLOW_DIR: '/elsewhere' });
  assert.deepEqual(env, { PATH: '/bin', EGW_LAB_DIR: '/run/egw/labs', EGW_FLOW_DIR: '/run/egw/labs/t1/flows', EGW_METRICS_SOCKET_DIR: '/run/egw/labs/t1/metrics' });
});
