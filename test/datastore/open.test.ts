import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MemoryStore, SqliteStore, StoreError, defaultDatastoreSpec, openStore, parseDatastoreSpec } from '../../src/datastore/index.js';
import { etcdTlsArgv } from '../../src/datastore/open.js';
import { ippool } from '../helpers/resources.js';
import { CIDR } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'egw-open-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const k of Object.keys(vars)) {
    saved[k] = process.env[k];
    if (vars[k] === undefined) delete process.env[k];
    else process.env[k] = vars[k];
  }
  return fn().finally(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

describe('openStore', () => {
  it('memory: opens an empty in-memory store', async () => {
    const s = await openStore('memory:');
    assert.ok(s instanceof MemoryStore);
    assert.equal(s.description, 'memory:');
    await s.create(ippool('p', CIDR));
    assert.equal(await s.revision(), 1);
    await s.close();
  });

  it('sqlite:RELATIVE resolves against the current directory and creates missing directories', async () => {
    const cwd = process.cwd();
    process.chdir(root);
    try {
      const s = await openStore('sqlite:sub/dir/egw.db');
      assert.ok(s instanceof SqliteStore);
      assert.equal(s.description, `sqlite:${join(root, 'sub', 'dir', 'egw.db')}`);
      await s.create(ippool('p', CIDR));
      await s.close();
      assert.ok(existsSync(join(root, 'sub', 'dir', 'egw.db')));
      const again = await openStore(`sqlite:${join(root, 'sub', 'dir', 'egw.db')}`);
      assert.equal(await again.revision(), 1);
      await again.close();
    } finally {
      process.chdir(cwd);
    }
  });

  it('bad schemes fail with Invalid naming the accepted forms', async () => {
    for (const spec of ['postgres://x', 'foo', '', 'sqlite:', 'memory:x', 'SQLITE:/x']) {
      await assert.rejects(
        openStore(spec),
        (e: unknown) => e instanceof StoreError && e.code === 'Invalid' && e.message.includes(JSON.stringify(spec)) && /memory:|sqlite:/.test(e.message),
        spec,
      );
    }
    for (const spec of ['etcd:http://127.0.0.1:2379', 'etcd://', 'etcd://host', 'etcd://h:0', 'etcd://h:99999', 'etcd://a:1,,b:2', 'etcd://h:1//x', 'etcd://h:1/a b', 'etcd://h:1/x?y', 'etcd://h:1/é']) {
      await assert.rejects(
        openStore(spec),
        (e: unknown) => e instanceof StoreError && e.code === 'Invalid' && e.message.includes(JSON.stringify(spec)) && /etcd:\/\/HOST:PORT/.test(e.message),
        spec,
      );
    }
    // kubernetes: outside a pod has no in-cluster configuration: the error says what to give instead.
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      await assert.rejects(openStore('kubernetes:'), (e: unknown) => e instanceof StoreError && e.code === 'Invalid' && /KUBERNETES_SERVICE_HOST/.test(e.message) && /--kubeconfig/.test(e.message));
    } finally {
      if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
    }
    await assert.rejects(openStore('memory:', { kubeconfig: '/x' }), (e: unknown) => e instanceof StoreError && /--kubeconfig is for a kubernetes: datastore/.test(e.message));
  });

  it('parses etcd://HOST:PORT[,HOST:PORT...][/PREFIX]', () => {
    assert.deepEqual(parseDatastoreSpec('etcd://127.0.0.1:2379'), { scheme: 'etcd', endpoints: ['127.0.0.1:2379'], prefix: '' });
    assert.deepEqual(parseDatastoreSpec('etcd://a.example:2379,[::1]:2380/tenant/x/'), {
      scheme: 'etcd',
      endpoints: ['a.example:2379', '[::1]:2380'],
      prefix: '/tenant/x',
    });
  });

  it('uses $EGW_DATASTORE when no spec is given', async () => {
    const path = join(root, 'from-env.db');
    await withEnv({ EGW_DATASTORE: `sqlite:${path}` }, async () => {
      const s = await openStore();
      assert.equal(s.description, `sqlite:${path}`);
      await s.close();
    });
    await withEnv({ EGW_DATASTORE: 'memory:' }, async () => {
      const s = await openStore();
      assert.equal(s.description, 'memory:');
      await s.close();
    });
  });

  it('defaults to $XDG_STATE_HOME/egw/egw.db, else ~/.local/state/egw/egw.db, creating the directory', async () => {
    assert.equal(defaultDatastoreSpec({ XDG_STATE_HOME: '/x/state', HOME: '/home/u' }), 'sqlite:/x/state/egw/egw.db');
    assert.equal(defaultDatastoreSpec({ HOME: '/home/u' }), 'sqlite:/home/u/.local/state/egw/egw.db');
    assert.equal(defaultDatastoreSpec({ XDG_STATE_HOME: 'relative', HOME: '/home/u' }), 'sqlite:/home/u/.local/state/egw/egw.db');
    const xdg = join(root, 'xdg');
    await withEnv({ EGW_DATASTORE: undefined, XDG_STATE_HOME: xdg }, async () => {
      assert.equal(defaultDatastoreSpec(), `sqlite:${join(xdg, 'egw', 'egw.db')}`);
      const s = await openStore();
      assert.equal(s.description, `sqlite:${join(xdg, 'egw', 'egw.db')}`);
      await s.close();
      assert.ok(existsSync(join(xdg, 'egw', 'egw.db')));
    });
  });

  it('parseDatastoreSpec expands ~/', () => {
    assert.deepEqual(parseDatastoreSpec('sqlite:~/a.db', { HOME: '/home/u' }), { scheme: 'sqlite', path: '/home/u/a.db' });
    assert.deepEqual(parseDatastoreSpec('memory:'), { scheme: 'memory' });
  });

  it('etcdTlsArgv hands the given TLS files on as absolute --etcd-* options', () => {
    assert.deepEqual(etcdTlsArgv(), []);
    assert.deepEqual(etcdTlsArgv({ ca: 'pki/ca.pem', key: '/k.pem', cert: '/c.pem' }), ['--etcd-ca', join(process.cwd(), 'pki/ca.pem'), '--etcd-cert', '/c.pem', '--etcd-key', '/k.pem']);
  });
});
