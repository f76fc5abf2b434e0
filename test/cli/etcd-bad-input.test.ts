// Bad etcd input from the command line, as a user meets it (the real executable, bin/egw.js: build first): nothing
// listening, a listener that never answers, every TLS mistake, missing or unusable TLS files, a prefix that holds
// something egw did not write, a prefix that does not parse. Each must end with one clear `error:` line naming the
// flag, file or key, exit code 1, no stack trace and no hang (README's Datastore section; the figures are printed as
// test diagnostics, not asserted: timings belong to `make bench`). Also: a long-running process given an unreachable
// etcd says so and keeps retrying.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Etcd3 } from 'etcd3';
import { E2E } from '../helpers/env.js';
import { EGW_BIN, ROOT, spawnEgw } from '../helpers/cli.js';
import { etcdMissing, makeTestPki, opensslMissing, startEtcd, type EtcdServer, type TestPki } from '../datastore/etcd-server.js';

const missing = etcdMissing() ?? opensslMissing();
const skip = missing && !E2E ? missing : false;
/** A hang guard only (a test that hangs fails here instead of holding the suite): the promise is 10 s. */
const HANG_MS = 30000;

let plain: EtcdServer;
let secure: EtcdServer;
let pki: TestPki;
let silent: Server;
let silentPort = 0;
const sockets = new Set<Socket>();

before(async () => {
  if (skip) return;
  if (missing) assert.fail(`EGW_E2E=1 but the etcd CLI tests cannot run: ${missing}`);
  pki = makeTestPki();
  plain = await startEtcd();
  secure = await startEtcd({ tls: pki });
  // Accepts TCP connections and never says a word.
  silent = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentPort = (silent.address() as { port: number }).port;
});
after(async () => {
  for (const s of sockets) s.destroy();
  silent?.close();
  await plain?.stop();
  await secure?.stop();
  pki?.remove();
});

/** A port nothing listens on: one the OS just handed out and that was closed again. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `egw ARGS get pods`: fails with exit code 1 and one `error:` line holding every fragment; reports how long it took. */
async function failsClearly(t: TestContext, args: string[], fragments: (string | RegExp)[], env?: NodeJS.ProcessEnv): Promise<string> {
  const start = Date.now();
  const r = await spawnEgw([...args, 'get', 'pods'], { env });
  const ms = Date.now() - start;
  t.diagnostic(`failed after ${ms} ms: ${r.stderr.trim()}`);
  assert.equal(r.code, 1, `exit code (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^error: [^\n]+\n$/, 'one error line');
  assert.doesNotMatch(r.stderr, /\n\s+at |DeprecationWarning/, 'no stack trace, no warning');
  for (const f of fragments) {
    if (typeof f === 'string') assert.ok(r.stderr.includes(f), `${JSON.stringify(r.stderr)} should mention ${JSON.stringify(f)}`);
    else assert.match(r.stderr, f);
  }
  return r.stderr;
}

const tlsFlags = (ca: string, cert?: string, key?: string): string[] => [
  '--etcd-ca', ca,
  ...(cert ? ['--etcd-cert', cert] : []),
  ...(key ? ['--etcd-key', key] : []),
];

describe('egw against a bad etcd', { skip, timeout: HANG_MS * 8 }, () => {
  it('a good TLS setup works (so the failures below are the mistakes, not the setup)', { timeout: HANG_MS }, async () => {
    const r = await spawnEgw(['--datastore', `etcd://${secure.endpoint}`, ...tlsFlags(pki.ca, pki.clientCert, pki.clientKey), 'get', 'pods']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, 'No resources found in this namespace.\n');
    // And with the files from the environment instead of flags.
    const env = { EGW_DATASTORE: `etcd://${secure.endpoint}`, EGW_ETCD_CA: pki.ca, EGW_ETCD_CERT: pki.clientCert, EGW_ETCD_KEY: pki.clientKey };
    const e = await spawnEgw(['get', 'pods', '-A'], { env });
    assert.equal(e.code, 0, e.stderr);
  });

  it('nothing listening on the port', { timeout: HANG_MS }, async (t) => {
    const port = await closedPort();
    await failsClearly(t, ['--datastore', `etcd://127.0.0.1:${port}`], [`etcd://127.0.0.1:${port}`, 'connection refused']);
  });

  it('a listener that accepts TCP but never answers', { timeout: HANG_MS }, async (t) => {
    await failsClearly(t, ['--datastore', `etcd://127.0.0.1:${silentPort}`], [`etcd://127.0.0.1:${silentPort}`, 'no answer within']);
  });

  it('TLS: a CA that did not sign the server certificate', { timeout: HANG_MS }, async (t) => {
    await failsClearly(t, ['--datastore', `etcd://${secure.endpoint}`, ...tlsFlags(pki.otherCa, pki.clientCert, pki.clientKey)], [
      "server's certificate does not check out against --etcd-ca",
    ]);
  });

  it('TLS: no client certificate for a server that asks for one', { timeout: HANG_MS }, async (t) => {
    await failsClearly(t, ['--datastore', `etcd://${secure.endpoint}`, ...tlsFlags(pki.ca)], ['refused our client certificate', '--etcd-cert']);
  });

  it('TLS: https to a plain-http server', { timeout: HANG_MS }, async (t) => {
    await failsClearly(t, ['--datastore', `etcd://${plain.endpoint}`, ...tlsFlags(pki.ca, pki.clientCert, pki.clientKey)], ['does not speak TLS']);
  });

  it('TLS: plain http to a TLS server', { timeout: HANG_MS }, async (t) => {
    await failsClearly(t, ['--datastore', `etcd://${secure.endpoint}`], ['give --etcd-ca']);
  });

  it('TLS files: missing, a directory, not PEM, not a key, encrypted, cert and key apart or not a pair', { timeout: HANG_MS * 4 }, async (t) => {
    const ds = ['--datastore', `etcd://${secure.endpoint}`];
    const nowhere = join(pki.dir, 'nope.pem');
    await failsClearly(t, [...ds, '--etcd-ca', nowhere], [`--etcd-ca ${nowhere}: no such file`]);
    const dir = join(pki.dir, 'a-dir');
    mkdirSync(dir, { recursive: true });
    await failsClearly(t, [...ds, '--etcd-ca', dir], [`--etcd-ca ${dir}: is a directory`]);
    await failsClearly(t, [...ds, '--etcd-ca', pki.clientKey], [`--etcd-ca ${pki.clientKey}: not a PEM certificate`]);
    await failsClearly(t, [...ds, ...tlsFlags(pki.ca, pki.clientCert, pki.clientCert)], [`--etcd-key ${pki.clientCert}: not a PEM private key`]);
    const enc = join(pki.dir, 'encrypted.key');
    writeFileSync(enc, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n');
    await failsClearly(t, [...ds, ...tlsFlags(pki.ca, pki.clientCert, enc)], [`--etcd-key ${enc}: the key is encrypted`]);
    await failsClearly(t, [...ds, ...tlsFlags(pki.ca, pki.clientCert)], [`--etcd-cert ${pki.clientCert}`, '--etcd-key']);
    await failsClearly(t, [...ds, '--etcd-key', pki.clientKey], [`--etcd-key ${pki.clientKey}`, '--etcd-cert']);
    await failsClearly(t, [...ds, ...tlsFlags(pki.ca, pki.clientCert, pki.serverKey)], ['do not belong together', '--etcd-cert', '--etcd-key']);
    // From the environment, the error names the variable.
    await failsClearly(t, ds, [`EGW_ETCD_CA (environment) ${nowhere}: no such file`], { EGW_ETCD_CA: nowhere });
    // TLS flags for a datastore that is not etcd.
    await failsClearly(t, ['--datastore', 'memory:', '--etcd-ca', pki.ca], ['--etcd-ca is for an etcd:// datastore']);
  });

  it('a prefix holding keys egw did not write: the error names the key; a prefix that does not parse: a parse error', { timeout: HANG_MS * 2 }, async (t) => {
    const raw = new Etcd3({ hosts: `http://${plain.endpoint}` });
    try {
      await raw.put('/other-app/egw/v1/Pod/default/web').value('not json at all');
      await failsClearly(t, ['--datastore', `etcd://${plain.endpoint}/other-app`], [
        'key /other-app/egw/v1/Pod/default/web does not hold an egw object',
        'is the prefix right?',
      ]);
      await raw.put('/mixed/egw/v1/Pod/default/web').value(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'api', namespace: 'default' } }));
      await failsClearly(t, ['--datastore', `etcd://${plain.endpoint}/mixed`], ['key /mixed/egw/v1/Pod/default/web', 'it holds Pod default/api']);
    } finally {
      raw.close();
    }
    await failsClearly(t, ['--datastore', `etcd://${plain.endpoint}/my prefix`], ['the prefix "/my prefix" holds " "']);
    await failsClearly(t, ['--datastore', `etcd://${plain.endpoint}//x`], ['empty segment']);
  });

  it('a long-running process (the controller) given an unreachable etcd logs a clear error within 10 s and keeps retrying', { timeout: HANG_MS }, async (t) => {
    const port = await closedPort();
    const child = spawn(process.execPath, [EGW_BIN, '--datastore', `etcd://127.0.0.1:${port}`, 'controller', '--no-metrics'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const start = Date.now();
    try {
      const failures = () => out.split('\n').filter((l) => l.includes('connection refused')).length;
      while (failures() < 2 && Date.now() - start < HANG_MS - 5000) await new Promise((r) => setTimeout(r, 100));
      t.diagnostic(`after ${Date.now() - start} ms:\n${out.trim()}`);
      assert.ok(failures() >= 2, `two failed attempts logged, with the reason:\n${out}`);
      assert.ok(out.includes(`etcd://127.0.0.1:${port}`), 'the log names the datastore');
      assert.doesNotMatch(out, /\n\s+at /, 'no stack trace');
      assert.equal(child.exitCode, null, 'still running, retrying');
    } finally {
      if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGTERM');
      await exited;
    }
  });
});
