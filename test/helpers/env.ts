// The environment the tests read, and the one rule for the tests that need root and network namespaces: where a
// prerequisite is missing they are skipped with the reason, except under EGW_E2E=1, where that is a failure (CI and
// the lead's lab runs must never pass by skipping).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';

/** EGW_E2E=1: every root / network-namespace test must run; a missing prerequisite fails it. */
export const E2E = process.env.EGW_E2E === '1';
/** EGW_SHOW_NFT=1: the netns tests print the nft tables and conntrack entries they read. */
export const SHOW_NFT = !!process.env.EGW_SHOW_NFT;
/** EGW_TEST_VERBOSE=1: the netns tests print the logs and tables of the processes they ran. */
export const VERBOSE = !!process.env.EGW_TEST_VERBOSE;
/** EGW_TEST_KEEP=1: the netns tests leave their namespaces behind for a look. */
export const KEEP = !!process.env.EGW_TEST_KEEP;

/**
 * What the lab tests run by default; tcpdump and setpriv (util-linux) for the lab firewall's log
 * (src/lab/firewall.ts: every lab runs it).
 */
export const LAB_TOOLS: readonly string[] = ['ip', 'nft', 'curl', 'ping', 'tcpdump', 'setpriv'];
/** What the network-namespace tests of the data plane and the agent run (test/dataplane/netns.ts). */
export const NETNS_TOOLS: readonly string[] = ['ip', 'nft', 'bridge'];

const known = new Map<string, string | undefined>();

/**
 * Why root / network-namespace tests cannot run here, or undefined: not Linux, not root, one of `tools` not on the
 * PATH, no network namespace can be made, or (with nft among the tools) nft does not work inside one. Answered once
 * per process and tool list.
 */
export function missingPrerequisite(tools: readonly string[] = LAB_TOOLS): string | undefined {
  const key = tools.join(' ');
  if (!known.has(key)) known.set(key, probe(tools));
  return known.get(key);
}

function probe(tools: readonly string[]): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const tool of tools) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool}`;
  }
  const ns = `egw-tp${randomBytes(3).toString('hex')}-probe`;
  const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  try {
    if (add.status !== 0) return `cannot create network namespaces: ${add.stderr.trim()}`;
    if (tools.includes('nft')) {
      const nft = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' });
      if (nft.status !== 0) return `cannot use nft in a network namespace: ${nft.stderr.trim()}`;
    }
    return undefined;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

function cannotRun(why: string): never {
  assert.fail(`EGW_E2E=1 but this test cannot run: ${why}`);
}

/** For one test: true if it may go on; otherwise it is skipped with the reason, or fails under EGW_E2E=1. */
export function gate(t: TestContext, tools?: readonly string[]): boolean {
  const why = missingPrerequisite(tools);
  if (!why) return true;
  if (E2E) cannotRun(why);
  t.skip(why);
  return false;
}

export interface SuiteGate {
  /** Why the suite cannot run here, or undefined. */
  missing: string | undefined;
  /** The suite's `skip` option: the reason, except under EGW_E2E=1 (then the suite runs and check() fails it). */
  skip: string | false;
  /** First thing in the suite's before(): fails it (every test in it) when a prerequisite is missing. */
  check(): void;
}

/**
 * For a whole describe():
 *
 *     const root = suiteGate(['ip', 'nft', 'bridge']);
 *     describe('…', { skip: root.skip }, () => {
 *       before(async () => { root.check(); … });
 */
export function suiteGate(tools?: readonly string[]): SuiteGate {
  const missing = missingPrerequisite(tools);
  return {
    missing,
    skip: missing && !E2E ? missing : false,
    check() {
      if (missing) cannotRun(missing);
    },
  };
}
