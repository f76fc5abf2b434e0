// The gateway pod's data plane (docs/dataplane.md: the gateway owns, in its pod's netns, the link `egw.vxlan`,
// `table ip egw-gw`, forwarding and rp_filter): read what the kernel has, change only the difference.
//
// Reads: `ip -d -json link show`, one `cat` of the sysctls, `nft -j list table ip egw-gw`. Writes (only when
// something differs): one `ip -batch -`, a sysctl write per wrong value, one `nft -j -f -` transaction.
import { formatIPv4, parseIPv4 } from '../api/ipv4.js';
import { gatewayMac } from '../calc/cidr.js';
import { VXLAN_OVERHEAD } from '../calc/calculator.js';
import { writeSysctl, type Runner } from '../dataplane/exec.js';
import { desiredTable, GW_FAMILY, GW_TABLE, parseTable, planTable, type ActualGatewayTable } from './nft.js';

export const GATEWAY_VXLAN_DEVICE = 'egw.vxlan';
export const GATEWAY_UPLINK = 'eth0';
/** TCP MSS = MTU − IPv4 header (20) − TCP header (20). */
export const TCP_IP_HEADERS = 40;

export interface GatewayDataplaneConfig {
  /** The pod's own IPv4: the tunnel's local address, and the source its traffic is masqueraded to. */
  ownIP: string;
  vni: number;
  port: number;
  /** Node InternalIPs: the only allowed VXLAN senders (any order). */
  nodes: readonly string[];
  /** Allowed client IPs (any order). */
  clients: readonly string[];
  /** Default `egw.vxlan`. */
  device?: string;
  /** Default `eth0`. */
  uplink?: string;
}

export interface ProgramResult {
  /** One line per change made; empty when the kernel was already right. */
  changes: string[];
  /** Tunnel MTU (uplink MTU − 50). */
  mtu: number;
  mss: number;
}

interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean } };
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

const SAFE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** The VXLAN link commands (`ip -batch` lines) needed to go from `have` to what the config wants. */
export function planLink(have: IpLink | undefined, want: { device: string; vni: number; port: number; local: string; mac: string; mtu: number }): string[] {
  const d = want.device;
  const add = `link add ${d} type vxlan id ${want.vni} dstport ${want.port} local ${want.local} nolearning`;
  const set = `link set dev ${d} address ${want.mac} mtu ${want.mtu} up`;
  if (!have) return [add, set];
  const info = have.linkinfo?.info_data;
  // id, port, local and learning cannot be changed on an existing vxlan link: recreate it
  if (have.linkinfo?.info_kind !== 'vxlan' || !info || info.id !== want.vni || info.port !== want.port || info.local !== want.local || info.learning !== false) {
    return [`link del dev ${d}`, add, set];
  }
  const parts: string[] = [];
  if ((have.address ?? '').toLowerCase() !== want.mac) parts.push(`address ${want.mac}`);
  if (have.mtu !== want.mtu) parts.push(`mtu ${want.mtu}`);
  if (!(have.flags ?? []).includes('UP')) parts.push('up');
  return parts.length ? [`link set dev ${d} ${parts.join(' ')}`] : [];
}

/** Reads the netns, programs the difference. Throws on a command failure (the caller retries). */
export async function programGateway(runner: Runner, cfg: GatewayDataplaneConfig): Promise<ProgramResult> {
  const device = cfg.device ?? GATEWAY_VXLAN_DEVICE;
  const uplink = cfg.uplink ?? GATEWAY_UPLINK;
  if (!SAFE_NAME.test(device) || !SAFE_NAME.test(uplink)) throw new Error(`bad device name ${device} / ${uplink}`);
  const ownNum = parseIPv4(cfg.ownIP);
  if (ownNum === undefined) throw new Error(`own IP ${JSON.stringify(cfg.ownIP)} is not IPv4`);
  const changes: string[] = [];

  // 1. the tunnel
  const links = JSON.parse((await runner.run(['ip', '-d', '-json', 'link', 'show'])).stdout || '[]') as IpLink[];
  const up = links.find((l) => l.ifname === uplink);
  if (!up) throw new Error(`no ${uplink} in the pod's network namespace`);
  const mtu = up.mtu - VXLAN_OVERHEAD;
  const mss = mtu - TCP_IP_HEADERS;
  const mac = gatewayMac(ownNum);
  const batch = planLink(
    links.find((l) => l.ifname === device),
    { device, vni: cfg.vni, port: cfg.port, local: formatIPv4(ownNum), mac, mtu },
  );
  if (batch.length) {
    await runner.run(['ip', '-batch', '-'], { input: batch.join('\n') + '\n' });
    changes.push(...batch.map((l) => `ip ${l}`));
  }

  // 2. forwarding and reverse-path filtering (the tunnel's inner sources are routed back via eth0, not the tunnel)
  const want: [string, string][] = [
    ['net.ipv4.ip_forward', '1'],
    ['net/ipv4/conf/all/rp_filter', '0'],
    [`net/ipv4/conf/${device}/rp_filter`, '0'],
  ];
  const paths = want.map(([k]) => `/proc/sys/${k.includes('/') ? k : k.replace(/\./g, '/')}`);
  const values = (await runner.run(['cat', ...paths])).stdout.split('\n').map((s) => s.trim());
  for (let i = 0; i < want.length; i++) {
    if (values[i] === want[i][1]) continue;
    await writeSysctl(runner, want[i][0], want[i][1]);
    changes.push(`sysctl ${want[i][0]}=${want[i][1]}`);
  }

  // 3. nft: anti-spoofing, MSS clamp, masquerade
  const listed = await runner.run(['nft', '-j', 'list', 'table', GW_FAMILY, GW_TABLE], { allowFailure: true });
  let actual: ActualGatewayTable | null = null;
  if (listed.code === 0) actual = parseTable(listed.stdout);
  else if (!/No such file or directory/i.test(listed.stderr)) throw new Error(`nft list table ${GW_FAMILY} ${GW_TABLE} failed: ${listed.stderr.trim()}`);
  const plan = planTable(actual, desiredTable({ device, uplink, port: cfg.port, mss, nodes: sortedIPs(cfg.nodes), clients: sortedIPs(cfg.clients) }));
  if (plan.doc) {
    await runner.run(['nft', '-j', '-f', '-'], { input: JSON.stringify(plan.doc) });
    changes.push(...plan.changes.map((c) => `nft ${c}`));
  }
  return { changes, mtu, mss };
}

/** Reads `table ip egw-gw` (null if absent). For status and tests. */
export async function readGatewayTable(runner: Runner): Promise<ActualGatewayTable | null> {
  const r = await runner.run(['nft', '-j', 'list', 'table', GW_FAMILY, GW_TABLE], { allowFailure: true });
  return r.code === 0 ? parseTable(r.stdout) : null;
}
