// A FlowStore in memory, for the tracker's tests: what was written, in order.
import type { AggregateRecord, FlowRecord, FlowStore, GapRecord } from '../../src/audit/types.js';
import { recordKey } from '../../src/audit/record.js';

export class MemFlowStore implements FlowStore {
  readonly lines: (FlowRecord | GapRecord | AggregateRecord)[] = [];
  readonly openRows = new Map<string, FlowRecord>();
  readonly state = new Map<string, unknown>();
  flushes = 0;
  open(rec: FlowRecord): void {
    this.openRows.set(recordKey(rec), structuredClone(rec));
  }
  complete(rec: FlowRecord): void {
    this.openRows.delete(recordKey(rec));
    this.lines.push(structuredClone(rec));
  }
  gap(rec: GapRecord): void {
    this.lines.push(structuredClone(rec));
  }
  aggregate(rec: AggregateRecord): void {
    this.lines.push(structuredClone(rec));
  }
  completedEnd(rec: FlowRecord): number | undefined {
    const k = recordKey(rec);
    const ends = this.flows.filter((r) => recordKey(r) === k && r.event.end).map((r) => Date.parse(r.event.end!));
    return ends.length ? Math.max(...ends) : undefined;
  }
  openFlows(): FlowRecord[] {
    return [...this.openRows.values()].map((r) => structuredClone(r));
  }
  getState(key: string): unknown {
    return structuredClone(this.state.get(key));
  }
  setState(key: string, value: unknown): void {
    this.state.set(key, structuredClone(value));
  }
  flush(): void {
    this.flushes++;
  }
  close(): void {}
  get flows(): FlowRecord[] {
    return this.lines.filter((l): l is FlowRecord => l.event.dataset === 'egw.flow');
  }
  get gaps(): GapRecord[] {
    return this.lines.filter((l): l is GapRecord => l.event.dataset === 'egw.gap');
  }
}
