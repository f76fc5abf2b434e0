// Types shared by the node data plane: its inputs besides NodeEgressState, the report of one reconcile, and the
// ownership constants of docs/dataplane.md ("what each part owns").

/** Node NAT (Calico's natOutgoing) as the agent derives it from the IP pools. */
export interface NodeNatConfig {
  /** Program the masquerade rule at all (`egw agent --nat-outgoing`). */
  enabled: boolean;
  /** The device holding the node IP: masquerade only traffic leaving by it. */
  underlayDevice: string;
  /** CIDRs of pools with natOutgoing, minus egress pools: sources that are masqueraded. */
  masqueradePools: string[];
  /** CIDRs of egress pools (docs/behaviour.md §3.3): never SNATed by the node, unless in hostIPPools; never clients. */
  egressPools: string[];
  /**
   * CIDRs of the egress pools in host-IP mode (natOutgoing: true; docs/behaviour.md §3.3): their gateways' traffic is
   * masqueraded to the node IP when it leaves by the underlay for a destination outside the cluster.
   */
  hostIPPools: string[];
  /** The cluster's node addresses (Node InternalIP/ExternalIP): host-IP traffic to them (the tunnel) is not masqueraded. */
  nodeAddresses: string[];
  /** CIDRs of every pool: destinations that are never masqueraded (cluster-internal). */
  allPools: string[];
}

/**
 * Per-connection stickiness (docs/dataplane.md, "Connections keep their gateway"): the bits of the conntrack mark
 * and of the packet mark egw owns, and the range of the per-gateway routing tables (one per mark: base + index),
 * which cannot meet calc's range. Every `ip rule` that looks up a table in this range is egw's.
 */
/**
 * Mark bits other components own on a Calico node (docs/kubernetes.md, "Coexisting with Felix"): Felix's
 * iptablesMarkMask/nftablesMarkMask default, and kube-proxy's masquerade (0x4000) and drop (0x8000) marks.
 */
export const FELIX_DEFAULT_MARK_MASK = 0xffff0000;
export const KUBE_PROXY_MARKS = 0x00004000 | 0x00008000;
/** egw's default: bits 6–13 (i << 6, 255 gateways per node), outside both of the above. */
export const DEFAULT_STICKY_MARK_MASK = 0x00003fc0;
export const STICKY_TABLE_BASE = 2_000_000;
export const STICKY_TABLE_RANGE = 2 ** 20;
/** The nft map (in `table ip egw`) from gateway IP to its mark: the node's mark assignment, read back on start. */
export const STICKY_MARKS_MAP = 'gw_marks';
/** The node's nft table (family ip). */
export const EGW_NFT_TABLE = 'egw';

/** The sysctls the node data plane owns, with their required values. */
export const NODE_SYSCTLS: Readonly<Record<string, string>> = Object.freeze({
  'net.ipv4.fib_multipath_hash_policy': '1',
  'net.ipv4.ip_forward': '1',
});

export interface ObjectCounts {
  added: number;
  changed: number;
  removed: number;
}

/** A command that changed kernel state (reads are only counted). */
export interface AppliedCommand {
  argv: string[];
  input?: string;
  /** A failure is a note, not an error (the gateway's RPS masks: src/gateway/plan.ts). */
  bestEffort?: true;
}

export interface ReconcileReport {
  /** The VXLAN device; `recreated` when VNI, port, local address or kind differed (delete + create). */
  link: ObjectCounts & { recreated: boolean };
  /** Addresses removed from the VXLAN device (it must have none). */
  addresses: ObjectCounts;
  rules: ObjectCounts;
  routes: ObjectCounts;
  /** Egw routing tables that appeared or disappeared (derived from routes). */
  tables: ObjectCounts;
  neighbours: ObjectCounts;
  fdb: ObjectCounts;
  sysctls: ObjectCounts;
  /** `table ip egw`: added (was absent), changed (rebuilt), removed (never: it is always wanted). */
  nft: ObjectCounts;
  /** Gateway marks (elements of the nft map `gw_marks`), whether written in place or with a rebuilt table. */
  marks: ObjectCounts;
  /** Mutating commands in the order they ran; empty when the kernel already matched. */
  commands: AppliedCommand[];
  /** Number of read commands. */
  reads: number;
  durationMs: number;
  /** Warnings (e.g. no local address: gateway routes installed as unreachable). */
  warnings: string[];
}

export function emptyCounts(): ObjectCounts {
  return { added: 0, changed: 0, removed: 0 };
}

export function emptyReport(): ReconcileReport {
  return {
    link: { ...emptyCounts(), recreated: false },
    addresses: emptyCounts(),
    rules: emptyCounts(),
    routes: emptyCounts(),
    tables: emptyCounts(),
    neighbours: emptyCounts(),
    fdb: emptyCounts(),
    sysctls: emptyCounts(),
    nft: emptyCounts(),
    marks: emptyCounts(),
    commands: [],
    reads: 0,
    durationMs: 0,
    warnings: [],
  };
}

const OBJECT_KEYS = ['link', 'addresses', 'rules', 'routes', 'tables', 'neighbours', 'fdb', 'sysctls', 'nft', 'marks'] as const;

/** `rules +3 ~0 -1, routes +2 …` for the objects that changed (empty string if none). */
export function summarizeReport(r: ReconcileReport): string {
  const parts: string[] = [];
  for (const k of OBJECT_KEYS) {
    const c = r[k];
    if (c.added || c.changed || c.removed) parts.push(`${k} +${c.added} ~${c.changed} -${c.removed}`);
  }
  if (r.link.recreated) parts.push('link recreated');
  return parts.join(', ');
}

/** Raised when a write failed; carries what was attempted. The next reconcile re-reads and repairs. */
export class DataplaneError extends Error {
  constructor(
    message: string,
    readonly report: ReconcileReport,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'DataplaneError';
  }
}
