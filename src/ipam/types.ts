// IPAM's own resource (IPAMBlock, egw.dev/v1, egw-managed), its error type and the handle format.
import type { Resource } from '../api/meta.js';

export const IPAM_BLOCK_KIND = 'IPAMBlock';
export const IPAM_BLOCK_API_VERSION = 'egw.dev/v1';

export interface IPAMBlockSpec {
  /** The block's CIDR, e.g. `10.244.0.0/26`. */
  cidr: string;
  /** Name of the IPPool the block was cut from. */
  pool: string;
  /** `node:<name>` for the node that claimed the block; null when no node holds it. */
  affinity: string | null;
  /** Allocated address → handle (`pod:<namespace>/<name>`). */
  allocations: Record<string, string>;
  /**
   * Allocated address → when its handle last claimed it (RFC 3339; absent in blocks written before it existed). An
   * allocate for a handle that already holds an address claims it again (a new time): the controller's garbage
   * collection restarts its grace then, and never releases an address claimed during the grace (src/ipam/ipam.ts).
   */
  claimedAt?: Record<string, string>;
}

export type IPAMBlock = Resource<IPAMBlockSpec> & { kind: 'IPAMBlock'; spec: IPAMBlockSpec };

export type IpamErrorCode = 'Exhausted' | 'NoPool' | 'Invalid';

export class IpamError extends Error {
  constructor(
    readonly code: IpamErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'IpamError';
  }
}

/** `10.244.0.0/26` → `10-244-0-0-26`: the IPAMBlock name of a block CIDR. */
export function blockName(cidr: string): string {
  return cidr.replace(/[./]/g, '-');
}

/** `node:<name>`: the affinity a node writes on the blocks it claims. */
export function nodeAffinity(node: string): string {
  return `node:${node}`;
}

/** The IPAM handle of a pod: `pod:<namespace>/<name>`. */
export function podHandle(namespace: string, name: string): string {
  return `pod:${namespace}/${name}`;
}

/** The pod a handle names, or undefined if the handle is not `pod:<namespace>/<name>`. */
export function parsePodHandle(handle: string): { namespace: string; name: string } | undefined {
  const m = /^pod:([^/]+)\/([^/]+)$/.exec(handle);
  return m ? { namespace: m[1], name: m[2] } : undefined;
}
