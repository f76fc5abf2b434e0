// Calico-style block IPAM over the datastore.
//
// Each pool is cut into blocks of 2^(32 - blockSize) addresses. A node claims a block (an IPAMBlock object with
// affinity `node:<name>`) and allocates inside it; when its blocks in the chosen pool are full it adopts a block no
// node holds, else claims a new free block, else borrows a free address from another node's block in that pool (so
// a /31 egress pool with blockSize 31 still serves two replicas on two nodes). Every address of a block is used
// (Calico reserves no network/broadcast address in pod blocks).
//
// Concurrency: every write is one object write checked against the resourceVersion read (update) or against
// existence (create); on Conflict/AlreadyExists the allocator re-reads and tries again. Since an address lives in
// exactly one block object, two allocators (several kubelet processes on one SQLite file) can never both commit it.
// A process killed in the middle (kill -9) has either committed its one write or not: nothing half-done remains.
//
// Releasing against re-claiming (docs/behaviour.md §4.1): the controller's garbage collection releases an address
// whose pod is missing, and a pod of the same name may be coming back at that very moment. So an allocate for a
// handle that already holds an address does not just return it: it claims it again with a write (claimedAt), and a
// guarded release (`onlyIf`) decides on the blocks it read and writes conditioned on them. Whichever write commits
// first wins; the other re-reads: either the release sees the new claim (or the pod) and keeps the address, or the
// allocate finds the address gone and allocates afresh. An address is never both released and in use.
import { writeOps } from '../datastore/batch.js';
import { cidrContains, cidrSize, formatCidr, formatIPv4, networkOf, parseCidr, parseIPv4 } from '../api/ipv4.js';
import type { IPPool } from '../api/types.js';
import type { Store } from '../datastore/types.js';
import type { Logger } from '../log.js';
import { blockName, IPAM_BLOCK_API_VERSION, IPAM_BLOCK_KIND, IpamError, nodeAffinity, type IPAMBlock } from './types.js';
import { sleep } from '../util.js';
import { isRaceError } from '../datastore/retry.js';

/** Calico's default IPv4 block size. */
export const DEFAULT_BLOCK_SIZE = 26;

interface BlockView {
  obj: IPAMBlock;
  /** First address of the block. */
  start: number;
  prefix: number;
  size: number;
}

interface PoolView {
  pool: IPPool;
  name: string;
  start: number;
  prefix: number;
  /** Prefix length of this pool's blocks (never shorter than the pool's own). */
  blockPrefix: number;
}



/** One allocated address, as the blocks record it. */
export interface Allocation {
  handle: string;
  ip: string;
  /** The IPAMBlock's name. */
  block: string;
  /** When the handle last claimed the address (RFC 3339); '' when the block does not say. */
  claimedAt: string;
}

export interface ReleaseOptions {
  /**
   * Release only if this says yes, asked after the blocks are read and before they are written (the write is
   * conditioned on what was read: if anything changed in between, it is asked again on the new state).
   */
  onlyIf?: (held: readonly Allocation[]) => boolean | Promise<boolean>;
}

export interface IpamOptions {
  log?: Logger;
  /** How many times one allocate/release re-reads after losing a race before giving up. Default 500. */
  maxAttempts?: number;
}

export class Ipam {
  private readonly log: Logger | undefined;
  private readonly maxAttempts: number;

  constructor(
    private readonly store: Store,
    opts: IpamOptions = {},
  ) {
    this.log = opts.log;
    this.maxAttempts = opts.maxAttempts ?? 500;
  }

  /**
   * Returns the pod's address. An existing allocation for this handle is returned again (idempotent), claimed anew
   * with one write so that a garbage collection deciding on the old state loses (see the file comment).
   */
  async allocate(req: { handle: string; node: string; pools: IPPool[] }): Promise<string> {
    if (typeof req?.handle !== 'string' || req.handle === '') throw new IpamError('Invalid', 'allocate: handle must be a non-empty string');
    if (typeof req.node !== 'string' || req.node === '') throw new IpamError('Invalid', `allocate ${req.handle}: node must be a non-empty string`);
    if (!Array.isArray(req.pools)) throw new IpamError('Invalid', `allocate ${req.handle}: pools must be a list of IPPools`);
    const pools = req.pools.map((p) => poolView(p));
    for (let attempt = 0; ; attempt++) {
      const blocks = await this.readBlocks();
      try {
        for (const b of blocks) {
          for (const [ip, h] of Object.entries(b.obj.spec.allocations)) {
            if (h !== req.handle) continue;
            await this.store.update(claim(b.obj, ip, req.handle)); // conditioned on the block as read
            this.log?.debug('claimed again', { handle: req.handle, ip, block: b.obj.spec.cidr, node: req.node });
            return ip;
          }
        }
        if (pools.length === 0) throw new IpamError('NoPool', `allocate ${req.handle} on node ${req.node}: no IP pool serves it`);
        const ip = await this.tryAllocate(req.handle, req.node, pools, blocks);
        if (ip !== undefined) return ip;
      } catch (e) {
        if (!isRaceError(e) || attempt + 1 >= this.maxAttempts) throw e;
        await sleep(Math.random() * Math.min(20, 1 + attempt));
        continue;
      }
      throw new IpamError('Exhausted', `allocate ${req.handle} on node ${req.node}: ${describeExhausted(pools, blocks)}`);
    }
  }

  /**
   * Releases the handle's address(es) in one conditioned transaction; false if it had none, or if `onlyIf` said no.
   */
  async release(handle: string, opts: ReleaseOptions = {}): Promise<boolean> {
    if (typeof handle !== 'string' || handle === '') throw new IpamError('Invalid', 'release: handle must be a non-empty string');
    for (let attempt = 0; ; attempt++) {
      const blocks = await this.readBlocks();
      const holding = blocks.filter((b) => Object.values(b.obj.spec.allocations).includes(handle));
      if (holding.length === 0) return false;
      if (opts.onlyIf && !(await opts.onlyIf(holding.flatMap((b) => allocationsOf(b.obj).filter((a) => a.handle === handle))))) return false;
      try {
        const freed: string[] = [];
        const objs = holding.map((b) => {
          const obj = structuredClone(b.obj);
          for (const [ip, h] of Object.entries(obj.spec.allocations)) {
            if (h !== handle) continue;
            delete obj.spec.allocations[ip];
            if (obj.spec.claimedAt) delete obj.spec.claimedAt[ip];
            freed.push(ip);
          }
          return obj;
        });
        // Each carries the resourceVersion read. One txn where the store has them; on kubernetes: one block at a time,
        // and a block that raced is read again on the next attempt (the others stay released).
        await writeOps(this.store, objs.map((object) => ({ op: 'update', object })));
        this.log?.debug('released', { handle, ip: freed.join(','), blocks: objs.map((o) => o.spec.cidr).join(',') });
        return true;
      } catch (e) {
        if (!isRaceError(e) || attempt + 1 >= this.maxAttempts) throw e;
        await sleep(Math.random() * Math.min(20, 1 + attempt));
      }
    }
  }

  /** handle → ip, for status and planning. */
  async allocations(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const a of await this.records()) out.set(a.handle, a.ip);
    return out;
  }

  /** Every allocated address with its block and claim time, in address order (for garbage collection and tests). */
  async records(): Promise<Allocation[]> {
    return (await this.readBlocks()).flatMap((b) => allocationsOf(b.obj));
  }

  /** The IPAMBlocks in the store, sorted by address; malformed ones are skipped (and logged). */
  private async readBlocks(): Promise<BlockView[]> {
    const { items } = await this.store.list(IPAM_BLOCK_KIND);
    const out: BlockView[] = [];
    for (const item of items) {
      const obj = item as IPAMBlock;
      const c = typeof obj.spec?.cidr === 'string' ? parseCidr(obj.spec.cidr) : undefined;
      if (!c || typeof obj.spec.allocations !== 'object' || obj.spec.allocations === null) {
        this.log?.warn('ignoring malformed IPAMBlock', { name: obj.metadata.name });
        continue;
      }
      out.push({ obj, start: c.addr, prefix: c.prefix, size: cidrSize(c) });
    }
    out.sort((a, b) => a.start - b.start || a.prefix - b.prefix);
    return out;
  }

  /** One attempt against one snapshot of the blocks: the address, or undefined if every pool is full. */
  private async tryAllocate(handle: string, node: string, pools: PoolView[], blocks: BlockView[]): Promise<string | undefined> {
    const affinity = nodeAffinity(node);
    // Every allocated address, whichever block holds it: never hand one out twice, even if blocks overlap.
    const taken = new Set<string>();
    for (const b of blocks) for (const ip of Object.keys(b.obj.spec.allocations)) taken.add(ip);
    const firstFree = (b: BlockView): string | undefined => {
      for (let off = 0; off < b.size; off++) {
        const ip = formatIPv4(b.start + off);
        if (!taken.has(ip)) return ip;
      }
      return undefined;
    };
    const write = async (b: BlockView, ip: string, how: string, adopt: boolean): Promise<string> => {
      const obj = claim(b.obj, ip, handle);
      if (adopt) obj.spec.affinity = affinity;
      await this.store.update(obj); // carries the resourceVersion read: Conflict if anyone wrote the block since
      this.log?.debug('allocated', { handle, ip, block: obj.spec.cidr, node, how });
      return ip;
    };

    for (const pv of pools) {
      const inPool = blocks.filter((b) => b.prefix >= pv.prefix && cidrContains({ addr: pv.start, prefix: pv.prefix }, b.start));
      // 1. The node's own blocks.
      for (const b of inPool) {
        if (b.obj.spec.affinity !== affinity) continue;
        const ip = firstFree(b);
        if (ip !== undefined) return write(b, ip, 'affine', false);
      }
      // 2. A block no node holds: claim it.
      for (const b of inPool) {
        if (b.obj.spec.affinity) continue;
        const ip = firstFree(b);
        if (ip !== undefined) return write(b, ip, 'claimed', true);
      }
      // 3. A new block.
      const start = freeBlockStart(pv, blocks);
      if (start !== undefined) {
        const cidr = formatCidr({ addr: start, prefix: pv.blockPrefix });
        const size = 2 ** (32 - pv.blockPrefix);
        let ip: string | undefined;
        for (let off = 0; off < size && ip === undefined; off++) if (!taken.has(formatIPv4(start + off))) ip = formatIPv4(start + off);
        if (ip !== undefined) {
          const block: IPAMBlock = {
            apiVersion: IPAM_BLOCK_API_VERSION,
            kind: 'IPAMBlock',
            metadata: { name: blockName(cidr) },
            spec: { cidr, pool: pv.name, affinity, allocations: { [ip]: handle }, claimedAt: { [ip]: new Date().toISOString() } },
          };
          await this.store.create(block); // AlreadyExists if another allocator claimed it first
          this.log?.info('claimed block', { block: cidr, pool: pv.name, node });
          this.log?.debug('allocated', { handle, ip, block: cidr, node, how: 'new block' });
          return ip;
        }
      }
      // 4. Borrow from another node's block.
      for (const b of inPool) {
        if (b.obj.spec.affinity === affinity || !b.obj.spec.affinity) continue;
        const ip = firstFree(b);
        if (ip !== undefined) return write(b, ip, `borrowed from ${b.obj.spec.affinity}`, false);
      }
    }
    return undefined;
  }
}

/** A copy of the block with `ip` allocated to `handle`, claimed now. */
function claim(block: IPAMBlock, ip: string, handle: string): IPAMBlock {
  const obj = structuredClone(block);
  obj.spec.allocations[ip] = handle;
  obj.spec.claimedAt = { ...(obj.spec.claimedAt ?? {}), [ip]: new Date().toISOString() };
  return obj;
}

function allocationsOf(block: IPAMBlock): Allocation[] {
  return Object.entries(block.spec.allocations)
    .map(([ip, handle]) => ({ handle, ip, block: block.metadata.name, claimedAt: block.spec.claimedAt?.[ip] ?? '' }))
    .sort((a, b) => (parseIPv4(a.ip) ?? 0) - (parseIPv4(b.ip) ?? 0));
}

function poolView(p: IPPool): PoolView {
  const name = p?.metadata?.name;
  const c = typeof p?.spec?.cidr === 'string' ? parseCidr(p.spec.cidr) : undefined;
  if (!c) throw new IpamError('Invalid', `IP pool ${JSON.stringify(name)}: spec.cidr ${JSON.stringify(p?.spec?.cidr)} is not an IPv4 CIDR`);
  const bs = p.spec.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(bs) || bs < 0 || bs > 32) throw new IpamError('Invalid', `IP pool ${JSON.stringify(name)}: blockSize ${bs} is not a valid IPv4 prefix length`);
  const net = networkOf(c);
  return { pool: p, name, start: net.addr, prefix: net.prefix, blockPrefix: Math.max(bs, net.prefix) };
}

/** The first block-aligned start in the pool whose block overlaps no existing block (of any pool or size). */
function freeBlockStart(pv: PoolView, blocks: BlockView[]): number | undefined {
  const size = 2 ** (32 - pv.blockPrefix);
  const end = pv.start + 2 ** (32 - pv.prefix);
  // blocks are sorted by start; walk them alongside the candidates.
  const spans = blocks.map((b) => ({ start: b.start, last: b.start + b.size - 1 })).sort((a, b) => a.start - b.start);
  let j = 0;
  for (let s = pv.start; s < end; s += size) {
    const last = s + size - 1;
    while (j < spans.length && spans[j].last < s) j++;
    // Any span starting at or before `last` and ending at or after `s` overlaps; spans are sorted by start and
    // blocks of one size never nest, but a larger block may cover several candidates: check all that start early.
    let overlaps = false;
    for (let k = j; k < spans.length && spans[k].start <= last; k++) {
      if (spans[k].last >= s) {
        overlaps = true;
        break;
      }
    }
    if (!overlaps) return s;
  }
  return undefined;
}

function describeExhausted(pools: PoolView[], blocks: BlockView[]): string {
  const parts = pools.map((pv) => {
    const cidr = { addr: pv.start, prefix: pv.prefix };
    let used = 0;
    for (const b of blocks) {
      for (const ip of Object.keys(b.obj.spec.allocations)) {
        const n = parseIPv4(ip);
        if (n !== undefined && cidrContains(cidr, n)) used++;
      }
    }
    return `${JSON.stringify(pv.name)} (${formatCidr(cidr)}: ${used} of ${cidrSize(cidr)} addresses in use)`;
  });
  return `no free address in IP pool${pools.length > 1 ? 's' : ''} ${parts.join(', ')}`;
}
