// Chooses a datastore from a spec string: `memory:` or `sqlite:PATH` (the default, under the XDG state directory).
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { MemoryStore } from './memory.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
import { StoreError, type Store } from './types.js';

/** `sqlite:${XDG_STATE_HOME:-$HOME/.local/state}/egw/egw.db` (a relative XDG_STATE_HOME is ignored, per the XDG spec). */
export function defaultDatastoreSpec(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'state');
  return `sqlite:${join(base, 'egw', 'egw.db')}`;
}

export const DATASTORE_FORMS = 'memory: or sqlite:PATH (e.g. sqlite:./egw.db); etcd: and kubernetes: backends are planned';

export type DatastoreSpec = { scheme: 'memory' } | { scheme: 'sqlite'; path: string };

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
  if (scheme === 'etcd' || scheme === 'kubernetes') {
    throw new StoreError('Invalid', `datastore ${JSON.stringify(spec)}: the ${scheme}: backend is not implemented yet; use ${DATASTORE_FORMS}`);
  }
  throw new StoreError('Invalid', `unknown datastore ${JSON.stringify(spec)}: expected ${DATASTORE_FORMS}`);
}

/**
 * Opens the datastore named by `spec`, else by $EGW_DATASTORE, else the default SQLite file. For SQLite the parent
 * directory is created if missing.
 */
export async function openStore(spec?: string, opts: { sqlite?: SqliteStoreOptions } = {}): Promise<Store> {
  const s = spec ?? (process.env.EGW_DATASTORE || defaultDatastoreSpec());
  const parsed = parseDatastoreSpec(s);
  if (parsed.scheme === 'memory') return new MemoryStore();
  try {
    mkdirSync(dirname(parsed.path), { recursive: true });
  } catch (e) {
    throw new StoreError('Unavailable', `datastore sqlite:${parsed.path}: cannot create directory ${dirname(parsed.path)}: ${(e as Error).message}`);
  }
  return new SqliteStore(parsed.path, opts.sqlite);
}
