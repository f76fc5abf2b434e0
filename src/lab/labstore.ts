// Which datastore a lab's processes use and how the host reaches it (docs/dataplane.md, "The lab on etcd" and "The
// lab on Kubernetes"): an SQLite file both share; or a server inside the lab — its etcd, or the stand-in Kubernetes
// API server (src/lab/apiserver.ts) — that the lab's processes reach on the underlay and the host through the
// loopback forwarder (src/lab/forward.ts), so nothing is attached to the host's network namespace.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { defaultDatastoreSpec, openStore, parseDatastoreSpec } from '../datastore/open.js';
import type { Store } from '../datastore/types.js';
import type { Logger } from '../log.js';
import { sleep } from '../util.js';
import { standInKubeconfig } from './apiserver.js';
import type { LabConfig } from './labfile.js';
import { APISERVER_PORT, ETCD_CLIENT_PORT, stateFiles } from './names.js';

/** `sqlite:` specs and kubeconfig paths made absolute, so processes started elsewhere open the same; etcd as it is. */
export function normalizeDatastore(spec: string): string {
  const p = parseDatastoreSpec(spec);
  if (p.scheme === 'sqlite') return `sqlite:${p.path}`;
  if (p.scheme === 'etcd') return spec;
  if (p.scheme === 'kubernetes') return p.kubeconfig === undefined ? spec : `kubernetes:${p.kubeconfig}`; // made absolute by the parser
  return 'memory:';
}

/** The spec the host uses to reach a lab's datastore (lab.json's hostDatastore; older state files: datastore). */
export function hostDatastoreOf(state: { datastore: string; hostDatastore?: string }): string {
  return state.hostDatastore ?? state.datastore;
}

export interface LabDatastores {
  /** What the lab's processes use. */
  datastore: string;
  /** What the host uses. */
  hostDatastore: string;
  /** The forwarder's port on 127.0.0.1 (a lab with its own server). */
  forwardPort?: number;
}

/**
 * Chooses the lab's datastore. A lab with its own server (etcd, kubernetes) refuses a --datastore it cannot honour
 * (an EGW_DATASTORE left from another lab only earns a warning); a lab on SQLite refuses etcd and kubernetes specs,
 * which need their own server; the forwarder keeps its port across `lab up` runs so the printed export stays valid.
 * For kubernetes it writes the two kubeconfigs into the state directory.
 */
export async function chooseLabDatastores(
  cfg: LabConfig,
  dir: string,
  opts: { file: string; datastore?: string; datastoreFrom?: 'flag' | 'env'; supervise: boolean },
  prev: { forwardPort?: number } | undefined,
  log: Logger,
): Promise<LabDatastores> {
  if (cfg.etcd || cfg.apiserver) {
    const forwardPort = prev?.forwardPort ?? (await freeLoopbackPort());
    let out: LabDatastores;
    if (cfg.etcd) {
      out = { datastore: `etcd://${cfg.etcd.ip}:${ETCD_CLIENT_PORT}`, hostDatastore: `etcd://127.0.0.1:${forwardPort}`, forwardPort };
    } else {
      mkdirSync(dir, { recursive: true });
      writeFileSync(stateFiles.kubeconfig(dir), standInKubeconfig(`http://${cfg.apiserver!.ip}:${APISERVER_PORT}`));
      writeFileSync(stateFiles.hostKubeconfig(dir), standInKubeconfig(`http://127.0.0.1:${forwardPort}`));
      out = { datastore: `kubernetes:${stateFiles.kubeconfig(dir)}`, hostDatastore: `kubernetes:${stateFiles.hostKubeconfig(dir)}`, forwardPort };
    }
    const what = cfg.etcd ? 'etcd' : 'the stand-in Kubernetes API server';
    if (opts.datastore !== undefined && opts.datastore !== out.hostDatastore && opts.datastoreFrom === 'env') {
      log.warn(`ignoring EGW_DATASTORE=${opts.datastore}: the lab file says datastore: ${cfg.datastore}, and the lab runs its own ${what}; export the EGW_DATASTORE printed below`);
    } else if (opts.datastore !== undefined && opts.datastore !== out.hostDatastore) {
      throw new Error(
        `${opts.file}: datastore: ${cfg.datastore} — the lab runs its own ${what}, so --datastore/EGW_DATASTORE (${opts.datastore}) cannot choose one; unset it (the lab prints the EGW_DATASTORE to export)`,
      );
    }
    return out;
  }
  const given = opts.datastore ?? (process.env.EGW_DATASTORE || defaultDatastoreSpec());
  const scheme = parseDatastoreSpec(given).scheme;
  if (scheme === 'etcd' || scheme === 'kubernetes') {
    throw new Error(`lab up: ${given}: a lab on ${scheme} runs its own ${scheme === 'etcd' ? 'etcd server' : 'stand-in API server'}; write "datastore: ${scheme}" in ${opts.file} and leave --datastore/EGW_DATASTORE unset`);
  }
  const datastore = normalizeDatastore(given);
  if (opts.supervise && datastore === 'memory:') throw new Error('lab up: the lab processes share the datastore; use sqlite:PATH, not memory:');
  return { datastore, hostDatastore: datastore };
}

/** A free TCP port on 127.0.0.1 (for the forwarder; the tests' etcd servers too). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no free port'))));
    });
  });
}

/** Waits until the datastore answers a list (the lab's own server, through the forwarder), up to `timeoutMs`. */
export async function waitDatastore(spec: string, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    let store: Store | undefined;
    try {
      store = await openStore(spec);
      await store.list('Node');
      return;
    } catch (e) {
      last = (e as Error).message;
    } finally {
      await store?.close().catch(() => {});
    }
    await sleep(200);
  }
  throw new Error(`${what} did not answer within ${timeoutMs / 1000} s (${last})`);
}
