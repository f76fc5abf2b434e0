// Every kernel command text egw's data planes send is built here, in one place, so unit tests can assert on it
// (with RecordingRunner) and the benchmark can replay exactly the same objects without the reconciler. Both data
// planes use it: the node's (src/dataplane) and the gateway pod's (src/gateway/plan.ts, dataplane.ts) —
// docs/dataplane.md, "What each part owns". IP.ruleAdd, IP.routeReplace, IP.neighReplace and BRIDGE.fdbAppend are
// also what `egw explain` shows a user: their text must stay what the node writes.
//
// Reads (node):    ip -N -4 -json rule list | ip -N -4 -json route show table all | ip -d -json addr show dev D |
//                  ip -4 -json neigh show dev D | bridge -json fdb show dev D | nft -j list table ip egw | cat /proc/sys/…
// Reads (gateway): ip -d -json link show | nft -j list table ip egw-gw | cat /proc/sys/… | the RPS masks under /sys
// Writes: one `ip -force -batch -` (lines below, without the leading `ip`), one `bridge -force -batch -` for FDB
//         entries (iproute2's `ip` cannot write them; node only), one `nft -j -f -` transaction, and one shell that
//         writes every wrong sysctl under /proc (the gateway: and one that writes its wrong RPS masks).
// `-N` prints table IDs, route types and actions as numbers (no dependence on /etc/iproute2/rt_tables); `-force`
// lets the rest of a batch apply when one line fails (the reconcile still fails and the next one repairs).

import type { EgressRoute } from '../calc/types.js';

// ---- reads ------------------------------------------------------------------------------------------------------

export const READ = {
  rules: (): string[] => ['ip', '-N', '-4', '-json', 'rule', 'list'],
  routes: (): string[] => ['ip', '-N', '-4', '-json', 'route', 'show', 'table', 'all'],
  /** Link details (`-d`: linkinfo) and its addresses in one read. */
  link: (dev: string): string[] => ['ip', '-d', '-json', 'addr', 'show', 'dev', dev],
  /** Every link with details (`-d`: linkinfo): the gateway needs its uplink's MTU and its VXLAN device in one read. */
  links: (): string[] => ['ip', '-d', '-json', 'link', 'show'],
  neighbours: (dev: string): string[] => ['ip', '-4', '-json', 'neigh', 'show', 'dev', dev],
  fdb: (dev: string): string[] => ['bridge', '-json', 'fdb', 'show', 'dev', dev],
  nft: (table: string): string[] => ['nft', '-j', 'list', 'table', 'ip', table],
  sysctls: (keys: readonly string[]): string[] => ['cat', ...keys.map(sysctlPath)],
  addresses: (): string[] => ['ip', '-4', '-json', 'addr', 'show'],
  /**
   * Every receive queue's RPS mask of the devices, one line each: `<path> <1 if writable, else 0> <mask>`. A device
   * that does not exist prints nothing; a read-only /sys (a container's usual mount) prints 0. Names are checked by the
   * caller (SAFE_NAME in src/gateway/dataplane.ts).
   */
  rps: (devices: readonly string[]): string[] => [
    'sh',
    '-c',
    `for f in ${devices.map((d) => `${rpsDir(d)}/rx-*/rps_cpus`).join(' ')}; do [ -e "$f" ] || continue; if [ -w "$f" ]; then w=1; else w=0; fi; echo "$f $w $(cat "$f")"; done`,
  ],
};

/** Where a device's receive queues are: `<dir>/rx-<n>/rps_cpus` is one queue's RPS mask (docs/dataplane.md). */
export const rpsDir = (device: string): string => `/sys/class/net/${device}/queues`;

/**
 * The /proc path of a sysctl — the only place egw maps keys to paths. The key is dotted (`net.ipv4.ip_forward`) or,
 * when a part contains dots such as a device name, slashed (`net/ipv4/conf/egw.vxlan/rp_filter`).
 */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
}

// ---- write commands -----------------------------------------------------------------------------------------------

export const WRITE = {
  ipBatch: (): string[] => ['ip', '-force', '-batch', '-'],
  bridgeBatch: (): string[] => ['bridge', '-force', '-batch', '-'],
  nft: (): string[] => ['nft', '-j', '-f', '-'],
  /**
   * Sets sysctls in one shell, in the runner's network namespace (/proc/sys/net is per namespace). Every write is
   * attempted; the shell fails if any of them failed.
   */
  sysctls: (pairs: readonly (readonly [string, string])[]): string[] => {
    for (const [key, value] of pairs) {
      if (!/^[a-z0-9_.\-/]+$/i.test(key) || !/^-?\d+$/.test(value)) throw new Error(`bad sysctl ${key}=${value}`);
    }
    return writeFiles(pairs.map(([k, v]) => [sysctlPath(k), v]));
  },
  /** Sets RPS masks (path from READ.rps, mask in CPU_MASK form) in one shell. */
  rps: (pairs: readonly (readonly [string, string])[]): string[] => {
    for (const [path, mask] of pairs) {
      if (!/^\/sys\/class\/net\/[A-Za-z0-9_.-]{1,15}\/queues\/rx-\d+\/rps_cpus$/.test(path) || !CPU_MASK.test(mask)) throw new Error(`bad rps ${path}=${mask}`);
    }
    return writeFiles(pairs);
  },
};

/** A CPU mask as the kernel prints and takes it: hex, a comma between groups of 8 digits from the right. */
export const CPU_MASK = /^[0-9a-f]{1,8}(,[0-9a-f]{8})*$/i;

/** One shell writing each value to its file (checked by the callers): every write is attempted, any failure fails it. */
function writeFiles(pairs: readonly (readonly [string, string])[]): string[] {
  return ['sh', '-c', `r=0; ${pairs.map(([f, v]) => `echo ${v} > ${f} || r=1; `).join('')}exit $r`];
}

export interface VxlanParams {
  vni: number;
  port: number;
  local: string;
  mtu: number;
}

// ---- `ip -batch` lines ------------------------------------------------------------------------------------------

export const IP = {
  linkAdd: (dev: string, p: VxlanParams): string =>
    `link add ${dev} mtu ${p.mtu} type vxlan id ${p.vni} dstport ${p.port} local ${p.local} nolearning`,
  /**
   * The gateway pod's VXLAN device (docs/dataplane.md, packet path): created bare, then given its MAC, MTU and up
   * state by `linkSet` in the same batch.
   */
  gatewayLinkAdd: (dev: string, p: Omit<VxlanParams, 'mtu'>): string =>
    `link add ${dev} type vxlan id ${p.vni} dstport ${p.port} local ${p.local} nolearning`,
  /** Changes a link's MAC, MTU and/or up state in one line (`link set dev D address M mtu N up`). */
  linkSet: (dev: string, s: { address?: string; mtu?: number; up?: boolean }): string =>
    `link set dev ${dev}${s.address !== undefined ? ` address ${s.address}` : ''}${s.mtu !== undefined ? ` mtu ${s.mtu}` : ''}${s.up ? ' up' : ''}`,
  linkDel: (dev: string): string => `link del dev ${dev}`,
  linkUp: (dev: string): string => `link set dev ${dev} up`,
  linkMtu: (dev: string, mtu: number): string => `link set dev ${dev} mtu ${mtu}`,
  linkNoLearning: (dev: string): string => `link set dev ${dev} type vxlan nolearning`,
  addrDel: (dev: string, cidr: string): string => `address del ${cidr} dev ${dev}`,

  neighReplace: (dev: string, ip: string, mac: string): string => `neigh replace ${ip} lladdr ${mac} dev ${dev} nud permanent`,
  neighDel: (dev: string, ip: string): string => `neigh del ${ip} dev ${dev}`,

  routeReplace: (dev: string, table: number, r: EgressRoute): string => {
    switch (r.type) {
      case 'throw':
        return `route replace throw ${r.dst} table ${table}`;
      case 'unreachable':
        return `route replace unreachable ${r.dst} table ${table}`;
      case 'ecmp':
        if (r.via.length === 1) return `route replace ${r.dst} via ${r.via[0]} dev ${dev} onlink table ${table}`;
        return `route replace ${r.dst} table ${table} ${r.via.map((v) => `nexthop via ${v} dev ${dev} onlink`).join(' ')}`;
    }
  },
  /** Deletes exactly one route: by type, destination, table, metric and tos as the kernel reported them. */
  routeDel: (r: { table: number; dst: string; type?: string; metric?: number; tos?: string }): string =>
    `route del ${r.type && r.type !== 'unicast' ? `${r.type} ` : ''}${r.dst} table ${r.table}${r.metric ? ` metric ${r.metric}` : ''}${r.tos ? ` tos ${r.tos}` : ''}`,

  ruleAdd: (src: string, table: number, priority: number): string => `rule add from ${src} lookup ${table} priority ${priority}`,
  /** A stickiness rule: packets from `src` carrying gateway mark `mark` (under `mask`) use that gateway's table. */
  ruleAddMark: (src: string, mark: number, mask: number, table: number, priority: number): string =>
    `rule add from ${src} fwmark ${hex(mark)}/${hex(mask)} lookup ${table} priority ${priority}`,
  /** Deletes one rule, naming every selector the kernel reported so that no other rule at the priority matches. */
  ruleDel: (r: RuleSelectors): string => {
    const parts = ['rule del priority', String(r.priority)];
    if (r.not) parts.push('not');
    parts.push('from', r.src);
    if (r.dst) parts.push('to', r.dst);
    if (r.tos) parts.push('tos', r.tos);
    if (r.fwmark) parts.push('fwmark', r.fwmask ? `${r.fwmark}/${r.fwmask}` : r.fwmark);
    if (r.iif) parts.push('iif', r.iif);
    if (r.oif) parts.push('oif', r.oif);
    if (r.ipproto) parts.push('ipproto', r.ipproto);
    if (r.sport) parts.push('sport', r.sport);
    if (r.dport) parts.push('dport', r.dport);
    if (r.table !== undefined) parts.push('lookup', String(r.table));
    else if (r.action) parts.push(r.action);
    return parts.join(' ');
  },
};

export interface RuleSelectors {
  priority: number;
  /** `a.b.c.d/len` or `all`. */
  src: string;
  dst?: string;
  not?: boolean;
  tos?: string;
  fwmark?: string;
  fwmask?: string;
  iif?: string;
  oif?: string;
  ipproto?: string;
  sport?: string;
  dport?: string;
  /** Numeric table of a `lookup` rule. */
  table?: number;
  /** `unreachable`, `blackhole`, `prohibit`, `goto N`, … for rules without a table. */
  action?: string;
}

// ---- `bridge -batch` lines --------------------------------------------------------------------------------------

export const BRIDGE = {
  fdbAppend: (dev: string, mac: string, dst: string): string => `fdb append ${mac} dev ${dev} dst ${dst}`,
  fdbDel: (dev: string, e: { mac: string; dst?: string; port?: number; vni?: number }): string =>
    `fdb del ${e.mac} dev ${dev}${e.dst ? ` dst ${e.dst}` : ''}${e.port ? ` port ${e.port}` : ''}${e.vni !== undefined ? ` vni ${e.vni}` : ''}`,
};

/** `0x…` as `ip rule` prints marks (lower case, no padding). */
export function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

/** The text of a batch: one command per line, newline-terminated. */
export function batchText(lines: readonly string[]): string {
  return lines.length ? lines.join('\n') + '\n' : '';
}
