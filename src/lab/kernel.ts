// Kernel commands the lab needs, all through a Runner (src/dataplane/exec.ts) and all aimed at a named namespace
// with `ip -n NS` / `ip netns exec NS`: the lab never creates anything in the caller's own namespace.
import { existsSync } from 'node:fs';
import { WRITE } from '../dataplane/commands.js';
import { localRunner, netnsRunner, type Runner } from '../dataplane/exec.js';

export class Kernel {
  constructor(readonly runner: Runner = localRunner()) {}

  /** Names from `ip netns list`. */
  async listNetns(): Promise<string[]> {
    const r = await this.runner.run(['ip', '-json', 'netns', 'list'], { allowFailure: true });
    if (r.code !== 0 || r.stdout.trim() === '') return [];
    return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
  }

  netnsExists(name: string): boolean {
    return existsSync(`/run/netns/${name}`);
  }

  async addNetns(name: string): Promise<boolean> {
    if (this.netnsExists(name)) return false;
    await this.runner.run(['ip', 'netns', 'add', name]);
    await this.ip(name, ['link', 'set', 'lo', 'up']);
    return true;
  }

  async delNetns(name: string): Promise<void> {
    if (!this.netnsExists(name)) return;
    await this.runner.run(['ip', 'netns', 'del', name], { allowFailure: true });
  }

  async netnsPids(name: string): Promise<number[]> {
    const r = await this.runner.run(['ip', 'netns', 'pids', name], { allowFailure: true });
    return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0);
  }

  /** `ip -n NS …`. */
  async ip(netns: string, args: string[], opts: { allowFailure?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.runner.run(['ip', '-n', netns, ...args], opts);
  }

  /** `ip -n NS -json …`, parsed. */
  async ipJson<T = Record<string, unknown>>(netns: string, args: string[]): Promise<T[]> {
    const r = await this.runner.run(['ip', '-n', netns, '-json', ...args], { allowFailure: true });
    if (r.code !== 0 || r.stdout.trim() === '') return [];
    return JSON.parse(r.stdout) as T[];
  }

  /** One `ip -n NS -batch -` transaction of several commands. */
  async ipBatch(netns: string, lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    await this.runner.run(['ip', '-n', netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  }

  async link(netns: string, name: string): Promise<{ ifindex: number; ifname: string; mtu: number; operstate?: string } | undefined> {
    const links = await this.ipJson<{ ifindex: number; ifname: string; mtu: number; operstate?: string }>(netns, ['link', 'show', 'dev', name]);
    return links[0];
  }

  async sysctl(netns: string, key: string, value: string | number): Promise<void> {
    await this.sysctls(netns, { [key]: value });
  }

  /**
   * Several sysctls in one process (WRITE.sysctls: every write is attempted, the shell fails if one did). Keys are
   * dotted, or slashed when a part contains dots (sysctlPath in src/dataplane/commands.ts).
   */
  async sysctls(netns: string, values: Record<string, string | number>): Promise<void> {
    const pairs = Object.entries(values).map(([key, value]): [string, string] => [key, String(value)]);
    if (pairs.length) await netnsRunner(netns).run(WRITE.sysctls(pairs));
  }

  /** `nft -f -` in the namespace. */
  async nft(netns: string, input: string): Promise<void> {
    await netnsRunner(netns).run(['nft', '-f', '-'], { input });
  }

  async nftJson(netns: string, args: string[]): Promise<unknown> {
    const r = await netnsRunner(netns).run(['nft', '-j', ...args], { allowFailure: true });
    if (r.code !== 0 || r.stdout.trim() === '') return undefined;
    return JSON.parse(r.stdout);
  }
}
