// The gateway pod's data plane (docs/dataplane.md: the gateway owns, in its pod's netns, the link `egw.vxlan`,
// `table ip egw-gw`, forwarding and rp_filter; "The gateway pod's data plane"): read what the kernel has, change
// only the difference — the node's shape (src/dataplane/node.ts), with every command text from
// src/dataplane/commands.ts and the diff in plan.ts.
//
// Reads, in parallel: `ip -d -json link show`, one `cat` of the sysctls, `nft -j list table ip egw-gw`, one shell
// reading the RPS masks. Writes, only for what differs: one `ip -force -batch -`, one sysctl shell, one `nft -j -f -`
// transaction, one shell writing RPS masks.
import { formatIPv4, gatewayMac, parseIPv4 } from '../api/ipv4.js';
import { GATEWAY_UPLINK, VXLAN_DEVICE } from '../api/dataplane.js';
import { READ } from '../dataplane/commands.js';
import { CommandError, type Runner } from '../dataplane/exec.js';
import { parseSysctlsRead } from '../dataplane/kernel.js';
import type { AppliedCommand } from '../dataplane/types.js';
import { GW_TABLE, parseTable, type ActualGatewayTable } from './nft.js';
import { cpuMask, gatewaySysctls, parseGatewayLinks, parseRpsRead, planGateway, rpsNotSet, type GatewayActualState, type GatewayDesired, type GatewayPlan } from './plan.js';

export interface GatewayDataplaneConfig {
  /** The pod's own IPv4: the tunnel's local address, and the source its traffic is masqueraded to. */
  ownIP: string;
  vni: number;
  port: number;
  /** Node InternalIPs: the only allowed VXLAN senders (any order). */
  nodes: readonly string[];
  /** Allowed client IPs (any order). */
  clients: readonly string[];
  /** Default `egw.vxlan` (VXLAN_DEVICE). */
  device?: string;
  /** Default `eth0` (GATEWAY_UPLINK). */
  uplink?: string;
  /** Receive packet steering on the uplink and the tunnel over these CPUs (CPU_MASK form, src/dataplane/commands.ts); absent: left as it is. */
  rpsMask?: string;
}

export interface ProgramResult {
  /** One line per change made; empty when the kernel was already right. */
  changes: string[];
  /** Tunnel MTU (uplink MTU − 50). */
  mtu: number;
  mss: number;
  /** The write commands, in the order they ran (at most one per tool); empty when the kernel was already right. */
  commands: AppliedCommand[];
  /** What could not be done here and is not an error (GatewayPlan.notes). */
  notes: string[];
}

function sortedIPs(ips: readonly string[]): string[] {
  const nums = new Set<number>();
  for (const ip of ips) {
    const n = parseIPv4(ip);
    if (n === undefined) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
    nums.add(n);
  }
  return [...nums].sort((a, b) => a - b).map(formatIPv4);
}

/** Device names go into command lines and a /proc path: nothing but what Linux allows in an interface name. */
const SAFE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** The configuration resolved and checked: defaults, the tunnel's address and MAC, sorted unique IPs. */
export function gatewayDesired(cfg: GatewayDataplaneConfig): GatewayDesired {
  const device = cfg.device ?? VXLAN_DEVICE;
  const uplink = cfg.uplink ?? GATEWAY_UPLINK;
  if (!SAFE_NAME.test(device) || !SAFE_NAME.test(uplink)) throw new Error(`bad device name ${device} / ${uplink}`);
  const ownNum = parseIPv4(cfg.ownIP);
  if (ownNum === undefined) throw new Error(`own IP ${JSON.stringify(cfg.ownIP)} is not IPv4`);
  return {
    device,
    uplink,
    vni: cfg.vni,
    port: cfg.port,
    local: formatIPv4(ownNum),
    mac: gatewayMac(ownNum),
    nodes: sortedIPs(cfg.nodes),
    clients: sortedIPs(cfg.clients),
    rps: rpsOf(cfg.rpsMask),
    rpsOffset: ownNum,
  };
}

function rpsOf(mask: string | undefined): string | null {
  if (mask === undefined) return null;
  const m = cpuMask(mask);
  if (m === null) throw new Error(`bad RPS mask ${JSON.stringify(mask)}`);
  return m;
}

/** Reads everything the gateway owns in the runner's namespace: one command per tool, in parallel. */
async function readGatewayState(runner: Runner, want: GatewayDesired): Promise<GatewayActualState> {
  const keys = gatewaySysctls(want.device).map(([k]) => k);
  const soft = { allowFailure: true };
  const [links, sysctls, nft, rps] = await Promise.all([
    runner.run(READ.links()),
    runner.run(READ.sysctls(keys), soft),
    runner.run(READ.nft(GW_TABLE), soft),
    want.rps === null ? null : runner.run(READ.rps([want.uplink, want.device])),
  ]);
  // cat fails when a file is missing (the device's rp_filter before the device exists): only that is expected
  const unexpected = sysctls.stderr.split('\n').some((l) => l.trim() !== '' && !/No such file or directory/.test(l));
  if (sysctls.code !== 0 && (unexpected || sysctls.stderr.trim() === '')) throw new CommandError(READ.sysctls(keys), sysctls);
  const values = parseSysctlsRead(sysctls.stdout, sysctls.stderr, keys);
  let table: ActualGatewayTable | null = null;
  if (nft.code === 0) table = parseTable(nft.stdout);
  else if (!/No such file or directory/i.test(nft.stderr)) throw new CommandError(READ.nft(GW_TABLE), nft);
  return { links: parseGatewayLinks(links.stdout), sysctls: values, nft: table, rps: rps ? parseRpsRead(rps.stdout) : [] };
}

/** The diff only (no writes): what programGateway would do now. */
async function planGatewayNow(runner: Runner, cfg: GatewayDataplaneConfig): Promise<GatewayPlan> {
  const want = gatewayDesired(cfg);
  return planGateway(want, await readGatewayState(runner, want));
}

/**
 * Reads the netns, programs the difference: at most one ip batch, one sysctl shell, one nft transaction, in that
 * order (plan.ts). Throws on the first command that fails (the caller retries; the next call re-reads).
 */
export async function programGateway(runner: Runner, cfg: GatewayDataplaneConfig): Promise<ProgramResult> {
  const plan = await planGatewayNow(runner, cfg);
  const notes = [...plan.notes];
  for (const c of plan.commands) {
    const r = await runner.run(c.argv, { ...(c.input === undefined ? {} : { input: c.input }), ...(c.bestEffort ? { allowFailure: true } : {}) });
    if (c.bestEffort && r.code !== 0) notes.push(rpsNotSet(r.stderr.trim().split('\n')[0] || `exit ${r.code}`));
  }
  return { changes: plan.changes, mtu: plan.mtu, mss: plan.mss, commands: plan.commands, notes };
}

/** Reads `table ip egw-gw` (null if absent or unreadable). For status and tests. */
export async function readGatewayTable(runner: Runner): Promise<ActualGatewayTable | null> {
  const r = await runner.run(READ.nft(GW_TABLE), { allowFailure: true });
  return r.code === 0 ? parseTable(r.stdout) : null;
}
