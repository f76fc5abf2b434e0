// `egw lab apiserver` (started by lab up, datastore: kubernetes): the stand-in Kubernetes API server of a lab on
// Kubernetes, in its own lab namespace (docs/dataplane.md, "The lab on Kubernetes"). It serves the lab's processes on
// the underlay and the host's forwarder on a unix socket, keeps its objects in a journal so that a restart loses
// none, and keeps 5 minutes of watch history as kube-apiserver's etcd compaction does (docs/behaviour.md §4.1).
import { STATUS_SUBRESOURCE } from '../datastore/kubernetes-kinds.js';
import { kindInfo } from '../api/meta.js';
import type { Logger } from '../log.js';
import { sleep } from '../util.js';
import { KubeApiStandIn } from './apiserver.js';

export interface ApiServerOptions {
  listen: { host: string; port: number };
  socket: string;
  journal: string;
  log: Logger;
  signal: AbortSignal;
}

/** How much watch history the lab's stand-in keeps (kube-apiserver: etcd compacted every 5 minutes). */
export const LAB_APISERVER_HISTORY_MS = 5 * 60_000;

/** `HOST:PORT` for `egw lab apiserver --listen` (an IPv4 address of the lab namespace it runs in). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || m[1].split('.').some((o) => Number(o) > 255) || port < 1 || port > 65535) throw new Error(`--listen: expected IPv4:PORT such as 172.31.0.2:6443, got ${JSON.stringify(text)}`);
  return { host: m[1], port };
}

export async function runApiServer(o: ApiServerOptions): Promise<void> {
  const plurals = [...STATUS_SUBRESOURCE].map((k) => kindInfo(k)!.plural);
  // Bookmarks as often as a real API server's watch cache sends them (about once a minute is Kubernetes'; a few
  // seconds keeps a lab's watchers' resourceVersions fresh without flooding the log).
  const server = new KubeApiStandIn({ statusSubresource: plurals, bookmarkMs: 5000, journal: o.journal });
  if (server.journalDropped) o.log.warn('dropped a torn last line of the journal (killed while writing)', { journal: o.journal, lines: server.journalDropped });
  await server.serve([o.listen, { path: o.socket }]);
  o.log.info('serving (a stand-in, not a real API server)', { listen: `${o.listen.host}:${o.listen.port}`, socket: o.socket, revision: server.revision });
  while (!o.signal.aborted) {
    await sleep(60_000, o.signal);
    server.compactOlderThan(LAB_APISERVER_HISTORY_MS);
  }
  await server.stop();
  o.log.info('stopped');
}
