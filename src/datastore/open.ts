// Chooses a datastore from a spec string: `memory:`, `sqlite:PATH` (the default, under the XDG state directory) or
// `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`, over https when TLS files are given (--etcd-ca/--etcd-cert/--etcd-key or
// $EGW_ETCD_CA/$EGW_ETCD_CERT/$EGW_ETCD_KEY), which are read and checked here, before anything connects.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { EtcdTls } from './etcd.js';
import type { KubeViews } from './kubernetes-views.js';
import { MemoryStore } from './memory.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
import { StoreError, type Store } from './types.js';

/** `sqlite:${XDG_STATE_HOME:-$HOME/.local/state}/egw/egw.db` (a relative XDG_STATE_HOME is ignored, per the XDG spec). */
export function defaultDatastoreSpec(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'state');
  return `sqlite:${join(base, 'egw', 'egw.db')}`;
}

export const DATASTORE_FORMS =
  'memory:, sqlite:PATH (e.g. sqlite:./egw.db), etcd://HOST:PORT[,HOST:PORT...][/PREFIX], kubernetes: (in-cluster, or with --kubeconfig) or kubernetes:PATH-TO-KUBECONFIG';

export type DatastoreSpec =
  | { scheme: 'memory' }
  | { scheme: 'sqlite'; path: string }
  /** prefix: '' or `/a/b` (no trailing slash); keys live under `${prefix}/egw/v1/`. */
  | { scheme: 'etcd'; endpoints: string[]; prefix: string }
  /** kubeconfig: the file (absolute), or undefined for the in-cluster configuration (or --kubeconfig). */
  | { scheme: 'kubernetes'; kubeconfig?: string };

/** Parses a spec; relative sqlite paths resolve against the current directory, `~/` against $HOME. */
export function parseDatastoreSpec(spec: string, env: NodeJS.ProcessEnv = process.env): DatastoreSpec {
  if (typeof spec !== 'string') throw new StoreError('Invalid', `datastore spec must be a string; expected ${DATASTORE_FORMS}`);
  const colon = spec.indexOf(':');
  const scheme = colon > 0 ? spec.slice(0, colon) : '';
  const rest = colon > 0 ? spec.slice(colon + 1) : '';
  if (scheme === 'memory') {
    if (rest !== '') throw new StoreError('Invalid', `datastore ${JSON.stringify(spec)}: memory: takes no argument`);
    return { scheme: 'memory' };
  }
  if (scheme === 'sqlite') {
    if (rest === '') throw new StoreError('Invalid', `datastore ${JSON.stringify(spec)}: sqlite: needs a file path, e.g. sqlite:./egw.db`);
    let p = rest;
    if (p === '~' || p.startsWith('~/')) p = join(env.HOME || homedir(), p.slice(1));
    return { scheme: 'sqlite', path: resolve(p) };
  }
  if (scheme === 'etcd') return parseEtcd(spec, rest);
  if (scheme === 'kubernetes') {
    if (rest === '') return { scheme: 'kubernetes' };
    let p = rest;
    if (p === '~' || p.startsWith('~/')) p = join(env.HOME || homedir(), p.slice(1));
    return { scheme: 'kubernetes', kubeconfig: resolve(p) };
  }
  throw new StoreError('Invalid', `unknown datastore ${JSON.stringify(spec)}: expected ${DATASTORE_FORMS}`);
}

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$/;

function parseEtcd(spec: string, rest: string): DatastoreSpec {
  const bad = (why: string) =>
    new StoreError('Invalid', `datastore ${JSON.stringify(spec)}: ${why}; expected etcd://HOST:PORT[,HOST:PORT...][/PREFIX], e.g. etcd://127.0.0.1:2379`);
  if (!rest.startsWith('//')) throw bad('etcd: needs //HOST:PORT');
  const body = rest.slice(2);
  const slash = body.indexOf('/');
  const hosts = slash < 0 ? body : body.slice(0, slash);
  const prefix = (slash < 0 ? '' : body.slice(slash)).replace(/\/+$/, '');
  if (hosts === '') throw bad('no endpoint given');
  const endpoints = hosts.split(',');
  for (const e of endpoints) {
    const m = HOST_PORT.exec(e);
    if (!m) throw bad(`endpoint ${JSON.stringify(e)} is not HOST:PORT`);
    const port = Number(m[1]);
    if (port < 1 || port > 65535) throw bad(`endpoint ${JSON.stringify(e)}: port out of range`);
  }
  if (prefix.includes('//')) throw bad('the prefix must not contain an empty segment');
  // Keys are built as PREFIX/egw/v1/…: keep the prefix to plain path characters (no spaces, '?', '#', '%', non-ASCII).
  const odd = /[^A-Za-z0-9._~/-]/.exec(prefix);
  if (odd) throw bad(`the prefix ${JSON.stringify(prefix)} holds ${JSON.stringify(odd[0])}; use letters, digits and . _ ~ - between slashes`);
  return { scheme: 'etcd', endpoints, prefix };
}

/** Paths of the etcd TLS files as the command line gives them; an unset one falls back to its environment variable. */
export interface EtcdTlsFiles {
  /** --etcd-ca: the CA the server's certificate must chain to. */
  ca?: string;
  /** --etcd-cert: the client certificate (servers with --client-cert-auth); needs key. */
  cert?: string;
  /** --etcd-key: the client certificate's private key (unencrypted PEM); needs cert. */
  key?: string;
}

/** Each TLS file's flag and environment variable: errors name the one the path came from. */
export const ETCD_TLS_SOURCES = {
  ca: { flag: '--etcd-ca', env: 'EGW_ETCD_CA' },
  cert: { flag: '--etcd-cert', env: 'EGW_ETCD_CERT' },
  key: { flag: '--etcd-key', env: 'EGW_ETCD_KEY' },
} as const;

type TlsField = keyof typeof ETCD_TLS_SOURCES;

function tlsInvalid(message: string): StoreError {
  return new StoreError('Invalid', message);
}

/** Reads one TLS file; the error names where its path came from and why it cannot be used. */
function readTlsFile(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not readable (permission denied)' : code === 'EISDIR' ? 'is a directory, not a file' : (e as Error).message;
    throw tlsInvalid(`${what} ${path}: ${why}`);
  }
}

/**
 * The TLS material for an etcd datastore, from `files` (the flags) or the environment; undefined when none is given
 * (plain http). Every file must exist, be readable and hold PEM of the right kind; a client certificate needs its key
 * and the key must be the certificate's. Nothing connects before this has passed.
 */
export function loadEtcdTls(files: EtcdTlsFiles = {}, env: NodeJS.ProcessEnv = process.env): EtcdTls | undefined {
  const given: Partial<Record<TlsField, { what: string; path: string }>> = {};
  for (const f of Object.keys(ETCD_TLS_SOURCES) as TlsField[]) {
    const src = ETCD_TLS_SOURCES[f];
    const fromFlag = files[f];
    const path = fromFlag !== undefined ? fromFlag : env[src.env];
    if (path === undefined || path === '') {
      if (fromFlag === '') throw tlsInvalid(`${src.flag} needs a file path`);
      continue;
    }
    given[f] = { what: fromFlag !== undefined ? src.flag : `${src.env} (environment)`, path };
  }
  if (!given.ca && !given.cert && !given.key) return undefined;
  if (!!given.cert !== !!given.key) {
    throw tlsInvalid(
      given.cert
        ? `${given.cert.what} ${given.cert.path} is given without --etcd-key: a client certificate needs its private key (--etcd-cert and --etcd-key go together)`
        : `${given.key!.what} ${given.key!.path} is given without --etcd-cert: a private key needs its client certificate (--etcd-cert and --etcd-key go together)`,
    );
  }
  const tls: EtcdTls = {};
  const certs: Partial<Record<'ca' | 'cert', X509Certificate>> = {};
  for (const f of ['ca', 'cert'] as const) {
    const g = given[f];
    if (!g) continue;
    const pem = readTlsFile(g.what, g.path);
    if (!pem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
      throw tlsInvalid(`${g.what} ${g.path}: not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line)`);
    }
    try {
      certs[f] = new X509Certificate(pem);
    } catch (e) {
      throw tlsInvalid(`${g.what} ${g.path}: not a valid PEM certificate: ${(e as Error).message}`);
    }
    tls[f] = pem;
  }
  if (given.key) {
    const g = given.key;
    const pem = readTlsFile(g.what, g.path);
    const text = pem.toString('latin1');
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
      throw tlsInvalid(`${g.what} ${g.path}: the key is encrypted; give an unencrypted PEM key`);
    }
    if (!/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(text)) {
      throw tlsInvalid(`${g.what} ${g.path}: not a PEM private key (no "-----BEGIN PRIVATE KEY-----" line)`);
    }
    let key;
    try {
      key = createPrivateKey(pem);
    } catch (e) {
      throw tlsInvalid(`${g.what} ${g.path}: not a valid PEM private key: ${(e as Error).message}`);
    }
    if (certs.cert && !certs.cert.checkPrivateKey(key)) {
      throw tlsInvalid(`${given.cert!.what} ${given.cert!.path} and ${g.what} ${g.path} do not belong together: the key is not the certificate's`);
    }
    tls.key = pem;
  }
  return tls;
}

/**
 * The command-line options that hand the same TLS files to another egw process (the lab's agents, controller,
 * kubelets and gateway pods): `--etcd-ca /abs/ca.pem …`, paths made absolute, only the ones given.
 */
export function etcdTlsArgv(files: EtcdTlsFiles = {}): string[] {
  const out: string[] = [];
  for (const f of Object.keys(ETCD_TLS_SOURCES) as TlsField[]) {
    const path = files[f];
    if (path !== undefined && path !== '') out.push(ETCD_TLS_SOURCES[f].flag, resolve(path));
  }
  return out;
}

export interface OpenStoreOptions {
  sqlite?: SqliteStoreOptions;
  /** etcd TLS files from the command line (each unset one: its environment variable). */
  etcdTls?: EtcdTlsFiles;
  /** --kubeconfig: the kubeconfig for a `kubernetes:` datastore (an error with any other datastore, or with kubernetes:PATH). */
  kubeconfig?: string;
  /** Per kind, the views a `kubernetes:` datastore holds (KubernetesStoreOptions.views, kubernetes-views.ts); ignored elsewhere. */
  kubeViews?: KubeViews;
}

/**
 * Opens the datastore named by `spec`, else by $EGW_DATASTORE, else the default SQLite file. For SQLite the parent
 * directory is created if missing. TLS files given for a datastore that is not etcd are an error (the environment
 * variables are simply not used there).
 */
export async function openStore(spec?: string, opts: OpenStoreOptions = {}): Promise<Store> {
  const s = spec ?? (process.env.EGW_DATASTORE || defaultDatastoreSpec());
  const parsed = parseDatastoreSpec(s);
  if (parsed.scheme !== 'etcd') {
    for (const f of Object.keys(ETCD_TLS_SOURCES) as TlsField[]) {
      if (opts.etcdTls?.[f] !== undefined) throw tlsInvalid(`${ETCD_TLS_SOURCES[f].flag} is for an etcd:// datastore; the datastore is ${s}`);
    }
  }
  if (opts.kubeconfig !== undefined && parsed.scheme !== 'kubernetes') throw new StoreError('Invalid', `--kubeconfig is for a kubernetes: datastore; the datastore is ${s}`);
  if (parsed.scheme === 'kubernetes') {
    if (opts.kubeconfig !== undefined && parsed.kubeconfig !== undefined) {
      throw new StoreError('Invalid', `--kubeconfig ${opts.kubeconfig} and datastore ${s} both name a kubeconfig; give one`);
    }
    const kubeconfig = parsed.kubeconfig ?? (opts.kubeconfig !== undefined ? resolve(opts.kubeconfig) : undefined);
    // loaded only when used, as etcd's client is: client-node is large
    const { KubernetesStore } = await import('./kubernetes.js');
    return new KubernetesStore({ kubeconfig, views: opts.kubeViews });
  }
  if (parsed.scheme === 'memory') return new MemoryStore();
  if (parsed.scheme === 'etcd') {
    const tls = loadEtcdTls(opts.etcdTls);
    // loaded only when used: the etcd client and gRPC are a third of every egw command's start-up
    const { EtcdStore } = await import('./etcd.js');
    return new EtcdStore({ endpoints: parsed.endpoints, prefix: parsed.prefix, tls });
  }
  try {
    mkdirSync(dirname(parsed.path), { recursive: true });
  } catch (e) {
    throw new StoreError('Unavailable', `datastore sqlite:${parsed.path}: cannot create directory ${dirname(parsed.path)}: ${(e as Error).message}`);
  }
  return new SqliteStore(parsed.path, opts.sqlite);
}
