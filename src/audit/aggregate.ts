// Optional aggregate records (SPEC §6, "for volume"; docs/audit.md, "Aggregates"): per client pod, gateway,
// destination (IP, port, transport), egress IP and interval, the number of connections that ended in the interval
// and their bytes and packets each way. Written beside the per-connection records, never instead of them. Pure: a
// FlowStore decorator that counts what passes through complete() and writes an interval's aggregates once it ended.
import { iso } from './record.js';
import type { AggregateRecord, FlowRecord, FlowStore } from './types.js';

interface Acc {
  rec: AggregateRecord;
}

export class AggregatingStore implements FlowStore {
  private readonly slots = new Map<number, Map<string, Acc>>();

  /** `intervalMs`: the aggregation interval (e.g. 60 000). */
  constructor(
    private readonly inner: FlowStore,
    private readonly intervalMs: number,
  ) {
    if (!(intervalMs > 0)) throw new RangeError('aggregation interval must be > 0');
  }

  open(rec: FlowRecord): void {
    this.inner.open(rec);
  }
  completedEnd(rec: FlowRecord): number | undefined {
    return this.inner.completedEnd(rec);
  }
  complete(rec: FlowRecord): void {
    this.inner.complete(rec);
    const end = Date.parse(rec.event.end ?? rec.event.start);
    const slot = Math.floor(end / this.intervalMs) * this.intervalMs;
    let m = this.slots.get(slot);
    if (!m) this.slots.set(slot, (m = new Map()));
    const g = rec.egw.gateway;
    const key = [rec.egw.pod.uid ?? rec.source.ip, g ? `${g.namespace}/${g.name}` : '', rec.destination.ip, rec.destination.port ?? '', rec.network.transport, rec.egw.egress_ip].join('|');
    let a = m.get(key);
    if (!a) {
      a = {
        rec: {
          '@timestamp': iso(slot + this.intervalMs),
          event: { kind: 'metric', dataset: 'egw.flow_aggregate', start: iso(slot), end: iso(slot + this.intervalMs) },
          network: { transport: rec.network.transport },
          destination: rec.destination.port === undefined ? { ip: rec.destination.ip } : { ip: rec.destination.ip, port: rec.destination.port },
          orchestrator: { type: 'kubernetes', namespace: rec.orchestrator.namespace, resource: { type: 'pod', name: rec.orchestrator.resource.name } },
          egw: {
            reporter: rec.egw.reporter,
            reporter_name: rec.egw.reporter_name,
            pod: { uid: rec.egw.pod.uid },
            gateway: g ? { namespace: g.namespace, name: g.name } : null,
            egress_ip: rec.egw.egress_ip,
            connections: 0,
            source: { bytes: 0, packets: 0 },
            destination: { bytes: 0, packets: 0 },
          },
        },
      };
      m.set(key, a);
    }
    const e = a.rec.egw;
    e.connections++;
    e.source.bytes += rec.source.bytes ?? 0;
    e.source.packets += rec.source.packets ?? 0;
    e.destination.bytes += rec.destination.bytes ?? 0;
    e.destination.packets += rec.destination.packets ?? 0;
  }

  /** Writes the aggregates of every interval that ended before `now` (all of them with `all`, at stop). */
  tick(now: number, all = false): number {
    let n = 0;
    for (const [slot, m] of [...this.slots].sort((a, b) => a[0] - b[0])) {
      if (!all && slot + this.intervalMs > now) continue;
      for (const a of m.values()) {
        this.inner.aggregate(a.rec);
        n++;
      }
      this.slots.delete(slot);
    }
    return n;
  }

  gap(rec: Parameters<FlowStore['gap']>[0]): void {
    this.inner.gap(rec);
  }
  aggregate(rec: AggregateRecord): void {
    this.inner.aggregate(rec);
  }
  openFlows(): FlowRecord[] {
    return this.inner.openFlows();
  }
  getState(key: string): unknown {
    return this.inner.getState(key);
  }
  setState(key: string, value: unknown): void {
    this.inner.setState(key, value);
  }
  flush(): void {
    this.inner.flush();
  }
  close(): void {
    this.inner.close();
  }
}
