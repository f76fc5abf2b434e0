// The gateway pod's diff (docs/dataplane.md, "The gateway pod's data plane"): what the gateway wants + what its
// network namespace has → at most one `ip -force -batch -`, one sysctl shell and one `nft -j -f -` transaction, and a
// line per change for the log. Pure (no I/O), like the node's src/dataplane/plan.ts, so every decision is testable
// without a kernel; dataplane.ts reads the kernel and runs what this returns.
//
// The writes run in this order, each only if it has lines: the link (its rp_filter file exists only once the link
// does), the sysctls (forwarding, rp_filter), the nft table (anti-spoofing, MSS clamp, masquerade), the RPS masks of
// the uplink's and the tunnel's receive queues.

import { TCP_IP_HEADERS, VXLAN_OVERHEAD } from '../api/dataplane.js';
import { batchText, CPU_MASK, IP, rpsDir, WRITE } from '../dataplane/commands.js';
import type { AppliedCommand } from '../dataplane/types.js';
import { desiredTable, planTable, type ActualGatewayTable } from './nft.js';

/** What the gateway wants, resolved from its configuration (dataplane.ts `gatewayDesired`). */
export interface GatewayDesired {
  /** The VXLAN device (`egw.vxlan`). */
  device: string;
  /** The pod's uplink (`eth0`): its MTU gives the tunnel's. */
  uplink: string;
  vni: number;
  port: number;
  /** The tunnel's local address: the pod IP. */
  local: string;
  /** The device's MAC, a2:2a:<pod IP octets> (the MAC client nodes have in their neighbour entry for it). */
  mac: string;
  /** Node IPs, the only allowed VXLAN senders: sorted, unique. */
  nodes: readonly string[];
  /** Allowed client IPs: sorted, unique. */
  clients: readonly string[];
  /**
   * The CPUs receive packet steering may send packets to (CPU_MASK form: the CPUs the process may run on that are
   * online), or null: RPS left as it is. Each receive queue of the uplink and the tunnel goes to one CPU of these
   * (planRps). Why RPS: a veth hands a packet to the backlog of the CPU that sent it, so one flow whose sender moves
   * between CPUs waits in two backlogs and leaves out of order (spurious fast retransmits); why one CPU per queue: a
   * mask of several CPUs lets each flow's hash pick one, and a flow hashed to the CPU its sender runs on is forwarded
   * behind the sender instead of beside it (docs/dataplane.md, "Why RPS"; measured in docs/benchmarks.md, "Gateway
   * path experiments": `rps-gw`, `rps-one`).
   */
  rps: string | null;
  /** Where queue 0 starts in the RPS pool: the pod IP as a number, so the gateways of one node start on different CPUs and a restarted gateway chooses what it chose before. */
  rpsOffset: number;
}

/** A mask in CPU_MASK form with at least one CPU, lower-cased; null when it is not one. */
export function cpuMask(m: string): string | null {
  return CPU_MASK.test(m) && maskValue(m) !== 0n ? m.toLowerCase() : null;
}

/** `Cpus_allowed:` of /proc/<pid>/status (the CPUs the process may run on, in CPU_MASK form); null if absent. */
export function parseCpusAllowed(status: string): string | null {
  const m = /^Cpus_allowed:\s*(\S+)\s*$/m.exec(status);
  return m ? cpuMask(m[1]!) : null;
}

/** The note for RPS the gateway could not set, and why. */
export const rpsNotSet = (why: string): string => `receive packet steering not set (${why}): this gateway forwards, with more reordering under load`;

/** The RPS mask of the first `cpus` CPUs as the kernel prints it: hex, a comma between groups of 8 digits. */
export function rpsMask(cpus: number): string {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 8192) throw new Error(`rps: ${cpus} CPUs`);
  return formatMask((1n << BigInt(cpus)) - 1n);
}

/** A mask as the kernel prints it (CPU_MASK form). */
export function formatMask(v: bigint): string {
  const hex = v.toString(16);
  const groups: string[] = [];
  for (let end = hex.length; end > 0; end -= 8) groups.unshift(hex.slice(Math.max(0, end - 8), end));
  return groups.map((g, i) => (i === 0 ? g : g.padStart(8, '0'))).join(',');
}

/** A CPU list as /sys/devices/system/cpu/online prints it (`0-3,8`) as a mask in CPU_MASK form; null when it is not one. */
export function parseCpuList(list: string): string | null {
  let v = 0n;
  for (const part of list.trim().split(',')) {
    const m = /^(\d{1,4})(?:-(\d{1,4}))?$/.exec(part);
    if (!m) return null;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi >= 8192) return null;
    for (let c = lo; c <= hi; c++) v |= 1n << BigInt(c);
  }
  return v === 0n ? null : formatMask(v);
}

/** The CPUs in both masks (CPU_MASK form), or null when none is. */
export function intersectMasks(a: string, b: string): string | null {
  const v = (maskValue(a) ?? 0n) & (maskValue(b) ?? 0n);
  return v === 0n ? null : formatMask(v);
}

/** The CPU numbers of a mask, ascending. */
function cpusOf(v: bigint): number[] {
  const out: number[] = [];
  for (let c = 0; v >> BigInt(c) !== 0n; c++) if ((v >> BigInt(c)) & 1n) out.push(c);
  return out;
}

/** A mask as a number (`00000000,00000003` and `3` are the same mask); null when it is not one. */
function maskValue(m: string): bigint | null {
  const t = m.replace(/,/g, '').trim();
  return /^[0-9a-f]+$/i.test(t) ? BigInt(`0x${t}`) : null;
}

/** One receive queue's RPS file (READ.rps). */
export interface RpsQueue {
  path: string;
  writable: boolean;
  mask: string;
}

/** Parses READ.rps's lines. */
export function parseRpsRead(stdout: string): RpsQueue[] {
  const out: RpsQueue[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\S+) ([01]) (\S*)$/.exec(line.trim());
    if (m) out.push({ path: m[1]!, writable: m[2] === '1', mask: m[3]! });
  }
  return out;
}

/** One element of `ip -d -json link show`, the fields the gateway looks at. */
export interface GatewayIpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean } };
}

/** What the pod's network namespace has (one read per tool). */
export interface GatewayActualState {
  /** Every link (`ip -d -json link show`). */
  links: GatewayIpLink[];
  /** Sysctl key → value; null when its file could not be read (the device's, while the device does not exist). */
  sysctls: Readonly<Record<string, string | null>>;
  /** `table ip egw-gw`; null when absent. */
  nft: ActualGatewayTable | null;
  /** The receive queues of the uplink and the tunnel (READ.rps). */
  rps: readonly RpsQueue[];
}

export interface GatewayPlan {
  /** Tunnel MTU: uplink MTU − VXLAN_OVERHEAD. */
  mtu: number;
  /** MSS SYNs and SYN-ACKs are clamped to: mtu − TCP_IP_HEADERS. */
  mss: number;
  /** `ip -batch` lines for the link. */
  ipLines: string[];
  /** Sysctls to write, in gatewaySysctls order. */
  sysctls: [string, string][];
  /** The `nft -j -f -` document, or null when the table is right. */
  nft: { nftables: Record<string, unknown>[] } | null;
  /** RPS masks to write (path, mask). */
  rps: [string, string][];
  /** What the gateway wants and cannot do here, for the log (not an error): e.g. RPS on a read-only /sys. */
  notes: string[];
  /** The write commands, in the order they must run: at most one per tool; empty when the kernel is right. */
  commands: AppliedCommand[];
  /** One line per change, in that order: `ip <line>`, `sysctl <key>=<value>`, `nft <change>`. */
  changes: string[];
}

/**
 * The sysctls the gateway owns (docs/dataplane.md, "What each part owns"), with their values: it forwards, and it
 * does no reverse-path filtering — the inner sources arrive on the tunnel but their route is via the uplink. The
 * device's own key is last: it is the only one whose file may be missing.
 */
export function gatewaySysctls(device: string): [string, string][] {
  return [
    ['net.ipv4.ip_forward', '1'],
    ['net/ipv4/conf/all/rp_filter', '0'],
    [deviceRpFilter(device), '0'],
  ];
}

/** Slashed: the device name has a dot (sysctlPath in src/dataplane/commands.ts). */
const deviceRpFilter = (device: string): string => `net/ipv4/conf/${device}/rp_filter`;

type LinkWant = { device: string; vni: number; port: number; local: string; mac: string; mtu: number };

/** id, port, local and learning cannot be changed on an existing vxlan link: such a link is recreated. */
function linkAction(have: GatewayIpLink | undefined, want: LinkWant): 'create' | 'recreate' | 'adjust' {
  if (!have) return 'create';
  const info = have.linkinfo?.info_data;
  if (have.linkinfo?.info_kind !== 'vxlan' || !info || info.id !== want.vni || info.port !== want.port || info.local !== want.local || info.learning !== false) {
    return 'recreate';
  }
  return 'adjust';
}

/** The VXLAN link's `ip -batch` lines from `have` (undefined: no such link) to what is wanted. */
export function planLink(have: GatewayIpLink | undefined, want: LinkWant): string[] {
  const d = want.device;
  const action = linkAction(have, want);
  if (action !== 'adjust' || !have) {
    const make = [IP.gatewayLinkAdd(d, { vni: want.vni, port: want.port, local: want.local }), IP.linkSet(d, { address: want.mac, mtu: want.mtu, up: true })];
    return action === 'recreate' ? [IP.linkDel(d), ...make] : make;
  }
  const address = (have.address ?? '').toLowerCase() !== want.mac ? want.mac : undefined;
  const mtu = have.mtu !== want.mtu ? want.mtu : undefined;
  const up = !(have.flags ?? []).includes('UP');
  return address !== undefined || mtu !== undefined || up ? [IP.linkSet(d, { address, mtu, up })] : [];
}

/** The difference between `actual` and `want`. Throws when the uplink is missing (no MTU to derive the tunnel's from). */
export function planGateway(want: GatewayDesired, actual: GatewayActualState): GatewayPlan {
  const up = actual.links.find((l) => l.ifname === want.uplink);
  if (!up) throw new Error(`no ${want.uplink} in the pod's network namespace`);
  const mtu = up.mtu - VXLAN_OVERHEAD;
  const mss = mtu - TCP_IP_HEADERS;

  // 1. the tunnel
  const have = actual.links.find((l) => l.ifname === want.device);
  const link: LinkWant = { device: want.device, vni: want.vni, port: want.port, local: want.local, mac: want.mac, mtu };
  const ipLines = planLink(have, link);
  /** A link this batch creates starts with conf/default's rp_filter, whatever was read before. */
  const fresh = linkAction(have, link) !== 'adjust';

  // 2. forwarding and reverse-path filtering
  const sysctls = gatewaySysctls(want.device).filter(([k, v]) => actual.sysctls[k] !== v || (fresh && k === deviceRpFilter(want.device)));

  // 3. nft: anti-spoofing, MSS clamp, masquerade
  const nftPlan = planTable(actual.nft, desiredTable({ device: want.device, uplink: want.uplink, port: want.port, mss, nodes: want.nodes, clients: want.clients }));

  // 4. receive packet steering
  const { rps, notes } = planRps(want, actual, fresh);

  const commands: AppliedCommand[] = [];
  if (ipLines.length) commands.push({ argv: WRITE.ipBatch(), input: batchText(ipLines) });
  if (sysctls.length) commands.push({ argv: WRITE.sysctls(sysctls) });
  if (nftPlan.doc) commands.push({ argv: WRITE.nft(), input: JSON.stringify(nftPlan.doc) });
  // best effort: a kernel that refuses a mask (EINVAL when none of its CPUs may take packets) costs speed, not service
  if (rps.length) commands.push({ argv: WRITE.rps(rps), bestEffort: true });
  return {
    mtu,
    mss,
    ipLines,
    sysctls,
    nft: nftPlan.doc,
    rps,
    notes,
    commands,
    changes: [...ipLines.map((l) => `ip ${l}`), ...sysctls.map(([k, v]) => `sysctl ${k}=${v}`), ...nftPlan.changes.map((c) => `nft ${c}`), ...rps.map(([f, m]) => `rps ${f}=${m}`)],
  };
}

/**
 * The RPS masks to write: every queue of the uplink and the tunnel whose mask is not its one CPU. Queue `rx-i` of
 * each device goes to CPU number (rpsOffset + i) mod n of the pool's n CPUs, like a NIC's receive queue with its
 * interrupt on one CPU: the uplink's and the tunnel's `rx-0` share one, so a decapsulated packet stays where it was.
 * A tunnel this plan creates has one queue (rx-0: `ip link add … type vxlan` makes one) whatever was read, writable
 * as the uplink's are. A queue that is not writable (a container's read-only /sys) is a note, not a write: the data
 * plane works without RPS, only slower.
 */
function planRps(want: GatewayDesired, actual: GatewayActualState, freshTunnel: boolean): { rps: [string, string][]; notes: string[] } {
  const rps: [string, string][] = [];
  const notes: string[] = [];
  if (want.rps === null) return { rps, notes };
  const pool = cpusOf(maskValue(want.rps)!);
  const tunnelDir = `${rpsDir(want.device)}/`;
  const uplinkQueues = actual.rps.filter((q) => q.path.startsWith(`${rpsDir(want.uplink)}/`));
  const queues = actual.rps.filter((q) => !(freshTunnel && q.path.startsWith(tunnelDir)));
  // the new tunnel's /sys is the uplink's: writable when the uplink's queues are (a read-only /sys is read-only for both)
  if (freshTunnel && uplinkQueues.length) queues.push({ path: `${tunnelDir}rx-0/rps_cpus`, writable: uplinkQueues.some((q) => q.writable), mask: '' });
  const readOnly: string[] = [];
  for (const q of queues) {
    const i = Number(/\/rx-(\d+)\/rps_cpus$/.exec(q.path)?.[1] ?? 0);
    const cpu = 1n << BigInt(pool[(want.rpsOffset + i) % pool.length]!);
    // the kernel's zero-padded spelling is the same mask
    if (maskValue(q.mask) === cpu) continue;
    if (q.writable) rps.push([q.path, formatMask(cpu)]);
    else readOnly.push(q.path);
  }
  if (readOnly.length) notes.push(rpsNotSet(`read-only: ${readOnly.join(', ')}`));
  if (!uplinkQueues.length && actual.links.some((l) => l.ifname === want.uplink)) {
    notes.push(`receive packet steering not available on ${want.uplink} (no ${rpsDir(want.uplink)}/rx-*/rps_cpus)`);
  }
  return { rps, notes };
}

/** Parses `ip -d -json link show`. */
export function parseGatewayLinks(json: string): GatewayIpLink[] {
  const t = json.trim();
  if (t === '') return [];
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error('ip link: expected a JSON array');
  return v as GatewayIpLink[];
}
