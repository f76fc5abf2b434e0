// The agent side of bench/kubescale.ts, in a process of its own so its heap and RSS are the agent's alone: a
// KubernetesStore on the stand-in's kubeconfig (with the agent's views, or without any as the baseline) under the
// informer with the agent's kinds (AGENT_KINDS). It counts what the informer hands on and answers the parent's
// questions over IPC. The real agent (runAgent) is not run: it needs a kernel to program; its informer is this one.
import { AGENT_KINDS, agentKubeViews } from '../src/agent/agent.js';
import { startInformer } from '../src/datastore/informer.js';
import { KubernetesStore } from '../src/datastore/kubernetes.js';

export interface AgentStats {
  synced: boolean;
  /** Pod events the informer handed on (after the union's filtering). */
  podEvents: number;
  /** Events of every kind. */
  events: number;
  /** Pods in the informer's view. */
  pods: number;
  /** ms from start to the first completed list. */
  syncMs?: number;
  heapUsedMiB: number;
  rssMiB: number;
}

export type AgentRequest = { cmd: 'start'; kubeconfig: string; node: string; views: boolean } | { cmd: 'stats' } | { cmd: 'stop' };

const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
let podEvents = 0;
let events = 0;
let syncMs: number | undefined;
let informer: ReturnType<typeof startInformer> | undefined;
let store: KubernetesStore | undefined;
const ac = new AbortController();

function stats(): AgentStats {
  // (--expose-gc: a collection first, so the figure is what is live, not what is garbage yet)
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { synced: informer?.synced ?? false, podEvents, events, pods: informer?.list('Pod').length ?? 0, syncMs, heapUsedMiB: mib(m.heapUsed), rssMiB: mib(m.rss) };
}

process.on('message', (msg: AgentRequest) => {
  if (msg.cmd === 'start') {
    const t0 = performance.now();
    store = new KubernetesStore({ kubeconfig: msg.kubeconfig, views: msg.views ? agentKubeViews(msg.node) : undefined });
    informer = startInformer({
      store,
      kinds: AGENT_KINDS,
      signal: ac.signal,
      onReplace: () => {
        syncMs ??= Math.round(performance.now() - t0);
      },
      onEvents: (evs) => {
        events += evs.length;
        for (const e of evs) if (e.object.kind === 'Pod') podEvents++;
      },
      onError: (err) => process.stderr.write(`kubescale agent: ${(err as Error).message}\n`),
    });
    process.send!({ started: true });
  } else if (msg.cmd === 'stats') {
    process.send!(stats());
  } else if (msg.cmd === 'stop') {
    ac.abort();
    void Promise.resolve(informer?.done)
      .then(() => store?.close())
      .finally(() => process.exit(0));
  }
});
process.send!({ ready: true, ...stats() });
