// Which revision the leader may compact the datastore's history to (docs/behaviour.md §4.1, item 7). Pure: fed
// (time, revision) samples, it answers with the newest sampled revision at least `retentionMs` old, once per sample
// that passes that age. kube-apiserver compacts etcd every 5 minutes the same way; watchers further behind than
// that relist (the informer's answer to Compacted).

/** Keep this much history; older events may go. */
export const HISTORY_RETENTION_MS = 5 * 60_000;
/** Sample the revision this often (the compaction's granularity). */
export const HISTORY_SAMPLE_MS = 60_000;

export class HistoryRetention {
  private readonly samples: { at: number; revision: number }[] = [];
  private compacted = 0;

  constructor(
    private readonly retentionMs = HISTORY_RETENTION_MS,
    private readonly sampleMs = HISTORY_SAMPLE_MS,
  ) {}

  /** Whether a sample is due at `now`. */
  wantsSample(now: number): boolean {
    const last = this.samples[this.samples.length - 1];
    return !last || now - last.at >= this.sampleMs;
  }

  /** Records the store's revision at `now`; returns the revision to compact to, if any is due. */
  note(now: number, revision: number): number | undefined {
    if (this.wantsSample(now)) this.samples.push({ at: now, revision });
    let due: number | undefined;
    while (this.samples.length && now - this.samples[0].at >= this.retentionMs) due = this.samples.shift()!.revision;
    if (due === undefined || due <= this.compacted) return undefined;
    this.compacted = due;
    return due;
  }
}
