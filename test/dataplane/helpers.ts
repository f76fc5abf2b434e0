// Shared by the dataplane unit tests: a desired NodeEgressState like the one the samples were captured from, a
// RecordingRunner that answers the read commands with canned kernel output, and a filter for the writes.
import type { NodeEgressState } from '../../src/calc/types.js';
import { READ } from '../../src/dataplane/commands.js';
import { RecordingRunner, type RunResult } from '../../src/dataplane/exec.js';
import type { NodeNatConfig } from '../../src/dataplane/types.js';
import { FDB, LINK, MISSING_DEVICE_STDERR, MISSING_TABLE_STDERR, NEIGH, NFT_STICKY, ROUTES_STICKY, RULES_STICKY } from './samples.js';

export function desiredState(over: Omit<Partial<NodeEgressState>, 'vxlan'> & { vxlan?: Partial<NodeEgressState['vxlan']> } = {}): NodeEgressState {
  const base: NodeEgressState = {
    node: 'n1',
    enabled: true,
    egressIPSupport: 'EnabledPerNamespaceOrPerPod',
    vxlan: { device: 'egw.vxlan', vni: 4097, port: 4790, mtu: 1450, local: '172.31.99.11' },
    rulePriority: 100,
    rules: [
      { src: '10.244.0.5/32', table: 1001, pod: 'a/a' },
      { src: '10.244.0.6/32', table: 1002, pod: 'a/b' },
      { src: '10.244.0.7/32', table: 1001, pod: 'a/c' },
    ],
    tables: [
      {
        id: 1001,
        routes: [
          { dst: '0.0.0.0/0', type: 'ecmp', via: ['10.10.0.2', '10.10.0.3'] },
          { dst: '10.244.0.0/16', type: 'throw' },
        ],
      },
      {
        id: 1002,
        routes: [
          { dst: '0.0.0.0/0', type: 'ecmp', via: ['10.10.0.2'] },
          { dst: '8.8.0.0/16', type: 'unreachable' },
          { dst: '10.244.0.0/16', type: 'throw' },
        ],
      },
    ],
    gateways: [
      { ip: '10.10.0.2', mac: 'a2:2a:0a:0a:00:02', pod: 'g/gw-a', node: 'n2', ready: true, draining: false },
      { ip: '10.10.0.3', mac: 'a2:2a:0a:0a:00:03', pod: 'g/gw-b', node: 'n2', ready: true, draining: false },
    ],
    internalCidrs: ['10.244.0.0/16'],
  };
  const { vxlan, ...rest } = over;
  return { ...base, ...rest, vxlan: { ...base.vxlan, ...(vxlan ?? {}) } };
}

export function natConfig(over: Partial<NodeNatConfig> = {}): NodeNatConfig {
  return { enabled: true, underlayDevice: 'eth0', masqueradePools: ['10.244.0.0/16'], egressPools: ['10.10.0.0/24'], hostIPPools: [], allPools: ['10.244.0.0/16', '10.10.0.0/24'], nodeAddresses: [], ...over };
}

/** Canned answers; `null` link/nft = absent. */
export interface Canned {
  rules?: string;
  routes?: string;
  link?: string | null;
  neigh?: string;
  fdb?: string;
  nft?: string | null;
  sysctls?: string;
}

const ok = (stdout: string): RunResult => ({ code: 0, stdout, stderr: '' });
const key = (argv: string[]): string => argv.join(' ');

export function cannedRunner(c: Canned, dev = 'egw.vxlan', table = 'egw'): RecordingRunner {
  return new RecordingRunner(cannedAnswer(c, dev, table));
}

/** The answer function of cannedRunner: reads get the canned output, writes succeed silently. */
export function cannedAnswer(c: Canned, dev = 'egw.vxlan', table = 'egw'): (argv: string[]) => RunResult {
  return (argv) => {
    const k = key(argv);
    if (k === key(READ.rules())) return ok(c.rules ?? '[]');
    if (k === key(READ.routes())) return ok(c.routes ?? '[]');
    if (k === key(READ.link(dev))) return c.link == null ? { code: 1, stdout: '', stderr: MISSING_DEVICE_STDERR.replace('nope', dev) } : ok(c.link);
    if (k === key(READ.neighbours(dev))) return c.link == null ? { code: 1, stdout: '', stderr: `Cannot find device "${dev}"\n` } : ok(c.neigh ?? '[]');
    if (k === key(READ.fdb(dev))) return c.link == null ? { code: 255, stdout: '', stderr: `Cannot find device "${dev}"\n` } : ok(c.fdb ?? '[]');
    if (k === key(READ.nft(table))) return c.nft == null ? { code: 1, stdout: '', stderr: MISSING_TABLE_STDERR } : ok(c.nft);
    if (argv[0] === 'cat') return ok(c.sysctls ?? '0\n0\n');
    return ok('');
  };
}

export function isRead(argv: readonly string[]): boolean {
  if (argv[0] === 'cat') return true;
  if (argv.includes('-batch') || (argv[0] === 'nft' && argv.includes('-f'))) return false;
  if (argv[0] === 'sh') return false;
  return argv.includes('-json') || argv.includes('-j') || argv.includes('list') || argv.includes('show');
}

/** The writes a runner saw (argv and input), in order. Strips a leading `ip netns exec NS`. */
export function writesOf(r: { calls: { argv: string[]; input?: string }[] }): { argv: string[]; input?: string }[] {
  return r.calls
    .map((c) => {
      const argv = c.argv[0] === 'ip' && c.argv[1] === 'netns' && c.argv[2] === 'exec' ? c.argv.slice(4) : c.argv;
      return c.input === undefined ? { argv } : { argv, input: c.input };
    })
    .filter((c) => !isRead(c.argv));
}

/** Filters a JSON array sample. */
export function filterJson(json: string, keep: (e: Record<string, unknown>) => boolean): string {
  return JSON.stringify((JSON.parse(json) as Record<string, unknown>[]).filter(keep));
}

/** Lines of a batch input. */
export function lines(input: string | undefined): string[] {
  return (input ?? '').split('\n').filter((l) => l !== '');
}

/** Exactly desiredState() + natConfig() with stickiness (the samples without the hand-made strays). */
export const CLEAN = {
  rules: RULES_STICKY,
  routes: ROUTES_STICKY,
  link: LINK,
  neigh: filterJson(NEIGH, (n) => n.dst !== '10.10.0.9'),
  fdb: filterJson(FDB, (e) => e.port === undefined),
  nft: NFT_STICKY,
  sysctls: '1\n1\n',
};
