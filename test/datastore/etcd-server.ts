// A throwaway etcd server for the etcd datastore tests: the Debian binary on loopback, free ports, a temporary data
// directory; stop() kills exactly the process it started and removes the directory. With `tls` it serves https
// with a certificate from makeTestPki() and asks every client for a certificate of that CA (client-cert-auth).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../src/datastore/etcd.js';
import { freeLoopbackPort } from '../../src/lab/labstore.js';

export const ETCD_BIN = process.env.EGW_ETCD_BIN || '/usr/bin/etcd';

/** Why an etcd server cannot be started here, or undefined. */
export function etcdMissing(): string | undefined {
  const r = spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `needs etcd (${ETCD_BIN}; Debian package etcd-server, installed by make setup)`;
  return undefined;
}


export interface EtcdServer {
  /** host:port of the client URL. */
  endpoint: string;
  pid: number;
  dataDir: string;
  /** What the server printed (for failures). */
  log(): string;
  /** Kills the process and removes the data directory. */
  stop(): Promise<void>;
  /** Stops the process and starts it again on the same ports and data (clients see a dropped connection). */
  restart(): Promise<void>;
}

export const OPENSSL_BIN = '/usr/bin/openssl';

/** Why test certificates cannot be made here, or undefined. */
export function opensslMissing(): string | undefined {
  const r = spawnSync(OPENSSL_BIN, ['version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `needs ${OPENSSL_BIN} (Debian package openssl, installed by make setup)`;
  return undefined;
}

/** PEM files in one temporary directory: a CA, a server certificate for IP 127.0.0.1, a client certificate, and a second CA that signed neither. */
export interface TestPki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
  /** Removes the directory. */
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync(OPENSSL_BIN, args, { cwd: dir, encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
}

/** Makes a small PKI with /usr/bin/openssl (EC P-256 keys, valid for 2 days). */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'egw-etcd-pki-'));
  const p = (f: string) => join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    openssl(dir, ['req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=egw-test-${ca}`]);
  }
  const leaf = (name: string, cn: string, ext: string): void => {
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    writeFileSync(p(`${name}.ext`), ext);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  };
  leaf('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'egw-test-client', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.pem'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function startEtcd(opts: { tls?: TestPki } = {}): Promise<EtcdServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'egw-etcd-test-'));
  const [client, peer] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const tls = opts.tls;
  const clientUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  let out = '';
  const args = [
    '--name', 'egw-test',
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `egw-test=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--log-level', 'warn',
    ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : []),
  ];
  let child: ChildProcess;
  let exited = false;
  let exit: Promise<void>;
  const spawnIt = (): void => {
    child = spawn(ETCD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    exited = false;
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  };
  /** Stops exactly the process this started. */
  const kill = async (): Promise<void> => {
    if (!exited && child.pid) {
      process.kill(child.pid, 'SIGTERM');
      const t = setTimeout(() => !exited && child.pid && process.kill(child.pid, 'SIGKILL'), 5000);
      await exit;
      clearTimeout(t);
    }
  };
  const stop = async (): Promise<void> => {
    await kill();
    rmSync(dataDir, { recursive: true, force: true });
  };
  const ready = async (): Promise<void> => {
    const probe = new Etcd3({
      hosts: clientUrl,
      ...(tls ? { credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.clientCert), privateKey: readFileSync(tls.clientKey) } } : {}),
      defaultCallOptions: () => ({ deadline: Date.now() + 1000 }),
    });
    const deadline = Date.now() + 20000;
    try {
      for (;;) {
        if (exited) throw new Error(`etcd exited at start:\n${out}`);
        try {
          await probe.get('/egw-probe').string();
          return;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`etcd did not answer on ${clientUrl} within 20 s: ${(e as Error).message}\n${out}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      probe.close();
    }
  };
  spawnIt();
  try {
    await ready();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    endpoint: `127.0.0.1:${client}`,
    get pid() {
      return child.pid as number;
    },
    dataDir,
    log: () => out,
    stop,
    async restart() {
      await kill();
      spawnIt();
      await ready();
    },
  };
}

/**
 * For a suite against one real etcd: starts it before the suite (EGW_E2E=1 without etcd fails there) and, after it,
 * closes every store `fresh` opened and stops the server. `fresh(prefix)` opens an EtcdStore on its own prefix (by
 * default a new one), so the suite's tests do not see each other's objects.
 */
export function etcdForSuite(missing: string | undefined, opts: { before: (fn: () => Promise<void>) => void; after: (fn: () => Promise<void>) => void }) {
  let srv: EtcdServer | undefined;
  let n = 0;
  const stores: EtcdStore[] = [];
  opts.before(async () => {
    if (missing) throw new Error(`EGW_E2E=1 but the etcd tests cannot run: ${missing}`);
    srv = await startEtcd();
  });
  opts.after(async () => {
    for (const s of stores) await s.close();
    await srv?.stop();
  });
  const server = (): EtcdServer => {
    if (!srv) throw new Error('etcd is not started (etcdForSuite runs before the suite)');
    return srv;
  };
  return {
    server,
    /** Every store fresh() opened, in order. */
    stores: stores as readonly EtcdStore[],
    fresh(prefix = `/s${++n}`): EtcdStore {
      const s = new EtcdStore({ endpoints: [server().endpoint], prefix });
      stores.push(s);
      return s;
    },
  };
}
