// Stable routing-table IDs for shared tables.
//
// A table's ID is derived from its content key (the canonical text of its routes), not from the order in which
// tables were created: a restarted agent, or another calculator fed the same resources, computes the same IDs and
// the kernel is not churned.
//
// Scheme: home(key) = hashString(key) mod (size - headroom); the ID is base + slot. Collisions are resolved by
// *ordered* linear probing: the layout is, by definition, the one obtained by inserting all current keys sorted by
// (home, key) and giving each the first free slot at or after its home. That layout depends only on the set of
// keys (it is history-independent), so incremental allocation and a fresh computation always agree. Incrementally,
// an insertion or removal re-lays out only the run of occupied slots it touches; a colliding table can therefore
// move by a slot when a key that sorts before it arrives or leaves (reported to the caller so that rules follow).
// Runs never wrap: the top `headroom` slots are reachable only by probing, and running past the end throws
// (with the default 2^20 slots and thousands of tables that needs a run thousands of slots long).

import { TABLE_ID_BASE, TABLE_ID_RANGE } from '../api/dataplane.js';
import { hashString } from './hash.js';

export interface TableIdMove {
  key: string;
  from: number;
  to: number;
}

export class TableIdAllocator {
  readonly base: number;
  readonly size: number;
  private readonly homes: number;
  private readonly bySlot = new Map<number, string>();
  private readonly byKey = new Map<string, { slot: number; home: number }>();

  constructor(base: number = TABLE_ID_BASE, size: number = TABLE_ID_RANGE) {
    if (!Number.isInteger(base) || !Number.isInteger(size) || size < 2) throw new RangeError('table id range: base and size must be integers, size >= 2');
    if (base < 1 || base + size - 1 > 0xfffffffe) throw new RangeError(`table id range [${base}, ${base + size}) must lie within [1, 2^32-1)`);
    if (base <= 255 && base + size - 1 >= 253) throw new RangeError(`table id range [${base}, ${base + size}) overlaps the kernel's reserved tables 253-255`);
    this.base = base;
    this.size = size;
    const headroom = Math.max(1, Math.min(Math.floor(size / 8), 4096));
    this.homes = size - headroom;
  }

  /** The home slot of a key. */
  private home(key: string): number {
    return hashString(key) % this.homes;
  }

  idOf(key: string): number | undefined {
    const e = this.byKey.get(key);
    return e === undefined ? undefined : this.base + e.slot;
  }

  /** Adds `key`; returns its ID and the tables whose IDs moved because of it. */
  allocate(key: string): { id: number; moves: TableIdMove[] } {
    const have = this.byKey.get(key);
    if (have) return { id: this.base + have.slot, moves: [] };
    const home = this.home(key);
    if (!this.bySlot.has(home)) {
      this.bySlot.set(home, key);
      this.byKey.set(key, { slot: home, home });
      return { id: this.base + home, moves: [] };
    }
    let start = home;
    while (start > 0 && this.bySlot.has(start - 1)) start--;
    const run = this.collectRun(start);
    run.push(key);
    this.byKey.set(key, { slot: -1, home });
    const moves = this.layout(start, run);
    const id = this.base + this.byKey.get(key)!.slot;
    return { id, moves: moves.filter((m) => m.key !== key) };
  }

  /** Removes `key`; returns the tables whose IDs moved because of it. */
  release(key: string): TableIdMove[] {
    const e = this.byKey.get(key);
    if (!e) return [];
    let start = e.slot;
    while (start > 0 && this.bySlot.has(start - 1)) start--;
    const run = this.collectRun(start).filter((k) => k !== key);
    this.bySlot.delete(e.slot);
    this.byKey.delete(key);
    return this.layout(start, run);
  }

  /** All (key, id) pairs, by id. */
  entries(): [string, number][] {
    return [...this.byKey].map(([k, e]) => [k, this.base + e.slot] as [string, number]).sort((a, b) => a[1] - b[1]);
  }

  private collectRun(start: number): string[] {
    const keys: string[] = [];
    for (let s = start; this.bySlot.has(s); s++) keys.push(this.bySlot.get(s)!);
    return keys;
  }

  /** Lays out `keys` (a run starting at `start`, plus possibly one new key) in canonical order. */
  private layout(start: number, keys: string[]): TableIdMove[] {
    for (const k of keys) {
      const e = this.byKey.get(k)!;
      if (e.slot >= 0 && this.bySlot.get(e.slot) === k) this.bySlot.delete(e.slot);
    }
    const entries = keys.map((k) => ({ k, e: this.byKey.get(k)! }));
    entries.sort((a, b) => a.e.home - b.e.home || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
    const moves: TableIdMove[] = [];
    let next = start;
    for (const { k, e } of entries) {
      const slot = Math.max(e.home, next);
      if (slot >= this.size) throw new RangeError(`routing table id range [${this.base}, ${this.base + this.size}) exhausted`);
      if (this.bySlot.has(slot)) throw new Error(`table id layout invariant broken at slot ${slot}`);
      if (slot !== e.slot) moves.push({ key: k, from: e.slot < 0 ? -1 : this.base + e.slot, to: this.base + slot });
      e.slot = slot;
      this.bySlot.set(slot, k);
      next = slot + 1;
    }
    return moves;
  }
}
