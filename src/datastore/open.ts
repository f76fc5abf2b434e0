// Chooses a datastore from a spec string: `memory:`, `sqlite:PATH` (the default, under the XDG state directory) or
// `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]` (plain http; TLS options are not supported yet).
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { EtcdStore } from './etcd.js';
import { MemoryStore } from './memory.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
import { StoreError, type Store } from './types.js';

/** `sqlite:${XDG_STATE_HOME:-$HOME/.local/state}/egw/egw.db` (a relative XDG_STATE_HOME is ignored, per the XDG spec). */
export function defaultDatastoreSpec(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'state');
  return `sqlite:${join(base, 'egw', 'egw.db')}`;
}

export const DATASTORE_FORMS = 'memory:, sqlite:PATH (e.g. sqlite:./egw.db) or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]; a kubernetes: backend is planned';

export type DatastoreSpec =
  | { scheme: 'memory' }
  | { scheme: 'sqlite'; path: string }
  /** prefix: '' or `/a/b` (no trailing slash); keys live under `${prefix}/egw/v1/`. */
  | { scheme: 'etcd'; endpoints: string[]; prefix: string };

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
    throw new StoreError('Invalid', `datastore ${JSON.stringify(spec)}: the ${scheme}: backend is not implemented yet; use ${DATASTORE_FORMS}`);
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
  return { scheme: 'etcd', endpoints, prefix };
}

/**
 * Opens the datastore named by `spec`, else by $EGW_DATASTORE, else the default SQLite file. For SQLite the parent
 * directory is created if missing.
 */
export async function openStore(spec?: string, opts: { sqlite?: SqliteStoreOptions } = {}): Promise<Store> {
  const s = spec ?? (process.env.EGW_DATASTORE || defaultDatastoreSpec());
  const parsed = parseDatastoreSpec(s);
  if (parsed.scheme === 'memory') return new MemoryStore();
  if (parsed.scheme === 'etcd') return new EtcdStore({ endpoints: parsed.endpoints, prefix: parsed.prefix });
  try {
    mkdirSync(dirname(parsed.path), { recursive: true });
  } catch (e) {
    throw new StoreError('Unavailable', `datastore sqlite:${parsed.path}: cannot create directory ${dirname(parsed.path)}: ${(e as Error).message}`);
  }
  return new SqliteStore(parsed.path, opts.sqlite);
}
