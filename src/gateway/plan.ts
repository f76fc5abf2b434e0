// The gateway pod's diff (docs/dataplane.md, "The gateway pod's data plane"): what the gateway wants + what its
// network namespace has → at most one `ip -force -batch -`, one sysctl shell and one `nft -j -f -` transaction, and a
// line per change for the log. Pure (no I/O), like the node's src/dataplane/plan.ts, so every decision is testable
// without a kernel; dataplane.ts reads the kernel and runs what this returns.
//
// The writes run in this order, each only if it has lines: the link (its rp_filter file exists only once the link
// does), the sysctls (forwarding, rp_filter), the nft table (anti-spoofing, MSS clamp, masquerade).

import { TCP_IP_HEADERS, VXLAN_OVERHEAD } from '../api/dataplane.js';
import { batchText, IP, WRITE } from '../dataplane/commands.js';
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

  const commands: AppliedCommand[] = [];
  if (ipLines.length) commands.push({ argv: WRITE.ipBatch(), input: batchText(ipLines) });
  if (sysctls.length) commands.push({ argv: WRITE.sysctls(sysctls) });
  if (nftPlan.doc) commands.push({ argv: WRITE.nft(), input: JSON.stringify(nftPlan.doc) });
  return {
    mtu,
    mss,
    ipLines,
    sysctls,
    nft: nftPlan.doc,
    commands,
    changes: [...ipLines.map((l) => `ip ${l}`), ...sysctls.map(([k, v]) => `sysctl ${k}=${v}`), ...nftPlan.changes.map((c) => `nft ${c}`)],
  };
}

/** Parses `ip -d -json link show`. */
export function parseGatewayLinks(json: string): GatewayIpLink[] {
  const t = json.trim();
  if (t === '') return [];
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error('ip link: expected a JSON array');
  return v as GatewayIpLink[];
}
