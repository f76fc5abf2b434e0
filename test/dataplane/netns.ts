// Network-namespace scaffolding for the root tests of the data plane and the agent (whether they may run:
// suiteGate(NETNS_TOOLS) in test/helpers/env.ts). Every namespace is named `egw-td<6 hex>-…` (unique per test run)
// and deleted in after(); nothing is attached to the host's namespace.
import { randomBytes } from 'node:crypto';
import { localRunner, netnsRunner, type RunOptions, type RunResult, type Runner } from '../../src/dataplane/exec.js';

/** `egw-td` + 6 random hex digits: the prefix of every namespace one test run creates. */
export function runTag(): string {
  return `egw-td${randomBytes(3).toString('hex')}`;
}

/** A runner that records every command (argv as given to it, and input) and runs it with `inner`. */
export class CountingRunner implements Runner {
  readonly calls: { argv: string[]; input?: string }[] = [];
  constructor(readonly inner: Runner) {}
  get netns(): string | undefined {
    return this.inner.netns;
  }
  run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push(opts.input === undefined ? { argv } : { argv, input: opts.input });
    return this.inner.run(argv, opts);
  }
  reset(): void {
    this.calls.length = 0;
  }
}

export interface NodeNs {
  node: string;
  peer: string;
  runner: Runner;
  cleanup(): Promise<void>;
}

const created = new Set<string>();

async function addNs(name: string): Promise<void> {
  await localRunner().run(['ip', 'netns', 'add', name]);
  created.add(name);
}

export async function deleteNs(name: string): Promise<void> {
  await localRunner().run(['ip', 'netns', 'del', name], { allowFailure: true });
  created.delete(name);
}

/**
 * A "node" namespace whose eth0 (nodeCidr, default 172.31.99.11/24) is a veth to a "peer" namespace (peerCidr,
 * default 172.31.99.1/24). Both are named `<tag>-<suffix>` / `<tag>-<suffix>p`.
 */
export async function makeNodeNs(tag: string, suffix: string, opts: { nodeCidr?: string; peerCidr?: string; mtu?: number } = {}): Promise<NodeNs> {
  const node = `${tag}-${suffix}`;
  const peer = `${tag}-${suffix}p`;
  await addNs(node);
  await addNs(peer);
  const host = localRunner();
  const mtu = String(opts.mtu ?? 1500);
  await host.run(['ip', '-n', node, 'link', 'add', 'eth0', 'mtu', mtu, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', mtu, 'netns', peer]);
  for (const [ns, cidr] of [
    [node, opts.nodeCidr ?? '172.31.99.11/24'],
    [peer, opts.peerCidr ?? '172.31.99.1/24'],
  ]) {
    await host.run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', 'eth0']);
    await host.run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    await host.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  return {
    node,
    peer,
    runner: netnsRunner(node),
    cleanup: async () => {
      await deleteNs(node);
      await deleteNs(peer);
    },
  };
}

/** Deletes every namespace this process created and has not deleted yet. */
export async function cleanupAll(): Promise<void> {
  for (const n of [...created]) await deleteNs(n);
}

/** Raw JSON of everything egw owns, for before/after comparisons. */
export type J = Record<string, unknown>;

/** A command's JSON output (`ip -json …`), [] when it printed nothing. */
export async function json(runner: Runner, argv: string[]): Promise<J[]> {
  const r = await runner.run(argv);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as J[]) : [];
}

export async function dumpKernel(runner: Runner, dev = 'egw.vxlan'): Promise<Record<string, unknown>> {
  const j = async (argv: string[]): Promise<unknown> => {
    const r = await runner.run(argv, { allowFailure: true });
    return r.code === 0 && r.stdout.trim() ? JSON.parse(r.stdout) : null;
  };
  const nft = (await j(['nft', '-j', 'list', 'table', 'ip', 'egw'])) as { nftables: Record<string, unknown>[] } | null;
  return {
    rules: await j(['ip', '-N', '-4', '-json', 'rule', 'list']),
    routes: await j(['ip', '-N', '-4', '-json', 'route', 'show', 'table', 'all']),
    link: await j(['ip', '-d', '-json', 'link', 'show', 'dev', dev]),
    neigh: await j(['ip', '-4', '-json', 'neigh', 'show', 'dev', dev]),
    fdb: await j(['bridge', '-json', 'fdb', 'show', 'dev', dev]),
    nft: nft?.nftables.filter((o) => !('metainfo' in o)) ?? null,
  };
}
