// The append-only pod-IP history (SPEC §6; docs/audit.md, "Pod-IP history"): `pod-ips.jsonl` in a node agent's
// reporter directory, so a question about an IP last Tuesday is answered with last Tuesday's pod. Two line shapes:
//   {"event":"start","ip","uid","namespace","name","node","labels","from","to":null}   a pod got the IP (a PodIPEntry)
//   {"event":"end","ip","uid","to"}                                                  it lost it
// The writer (the agent) diffs what it sees against what it wrote, so a restart reads the file and goes on; pods that
// went away while it was down are ended at its first observation after the restart (a later `to`: see podIPAt).
// The file is not rotated (yet): one pair of short lines per pod.
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { listReporterDirs, readLinesFrom } from './files.js';
import type { PodIPEntry } from './types.js';

export const POD_IP_FILE = 'pod-ips.jsonl';

/** A pod as the agent sees it now. `from`: RFC 3339 when it got its IP (default: when first observed). */
export type ObservedPod = Omit<PodIPEntry, 'from' | 'to'> & { from?: string };

export interface PodIPHistoryWriter {
  /** Writes a start line for every (ip, uid) new since the last call, an end line for every one gone. */
  observe(pods: readonly ObservedPod[], now: number): void;
  /** The entries currently open (held). */
  held(): PodIPEntry[];
  close(): void;
}

export interface HistoryWarning {
  file: string;
  line: number;
  reason: string;
}

const key = (ip: string, uid: string) => `${ip}|${uid}`;

/**
 * Reads a history file: its entries (start and end lines joined) and the lines it skipped. A line after a crash
 * mid-write (no "\n") is reported and ignored.
 */
export function readPodIPFile(path: string): { entries: PodIPEntry[]; warnings: HistoryWarning[]; validBytes: number } {
  const warnings: HistoryWarning[] = [];
  if (!existsSync(path)) return { entries: [], warnings, validBytes: 0 };
  const tail = readLinesFrom(path);
  const entries: PodIPEntry[] = [];
  const open = new Map<string, PodIPEntry>();
  for (const l of tail.lines) {
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(l.text) as Record<string, unknown>;
    } catch (e) {
      warnings.push({ file: path, line: l.line, reason: `not JSON (${(e as Error).message})` });
      continue;
    }
    const str = (k: string) => (typeof v?.[k] === 'string' ? (v[k] as string) : undefined);
    const ip = str('ip');
    const uid = str('uid');
    if (v?.event === 'start' && ip && uid && str('namespace') && str('name') && str('from') && Number.isFinite(Date.parse(str('from')!))) {
      const labels = typeof v.labels === 'object' && v.labels !== null && !Array.isArray(v.labels) ? (v.labels as Record<string, string>) : {};
      const e: PodIPEntry = { ip, uid, namespace: str('namespace')!, name: str('name')!, node: str('node') ?? null, labels, from: str('from')!, to: null };
      entries.push(e);
      open.set(key(ip, uid), e);
    } else if (v?.event === 'end' && ip && uid && str('to') && Number.isFinite(Date.parse(str('to')!))) {
      const e = open.get(key(ip, uid));
      if (!e) warnings.push({ file: path, line: l.line, reason: `end of ${ip} for pod ${uid} without a start` });
      else {
        e.to = str('to')!;
        open.delete(key(ip, uid));
      }
    } else {
      warnings.push({ file: path, line: l.line, reason: 'not a pod-IP history line ({"event":"start"|"end", "ip", "uid", …})' });
    }
  }
  if (tail.partial) warnings.push({ file: path, line: tail.partial.line, reason: `truncated line (${tail.partial.bytes} bytes without a final newline)` });
  return { entries, warnings, validBytes: tail.end };
}

/** The writer for one reporter directory (a node agent's). */
export function podIPHistory(dir: string, opts: { fsync?: boolean; onWarning?: (w: HistoryWarning) => void } = {}): PodIPHistoryWriter {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, POD_IP_FILE);
  const { entries, warnings, validBytes } = readPodIPFile(path);
  for (const w of warnings) opts.onWarning?.(w);
  const fd = openSync(path, 'a+');
  // One writer owns this file: a torn last line (crash mid-write) is cut off, so the next line starts clean.
  ftruncateSync(fd, validBytes);
  const held = new Map<string, PodIPEntry>();
  for (const e of entries) if (e.to === null) held.set(key(e.ip, e.uid), e);
  let closed = false;

  const write = (lines: unknown[]) => {
    if (!lines.length) return;
    const buf = Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    if (opts.fsync ?? true) fsyncSync(fd);
  };

  return {
    observe(pods, now) {
      if (closed) throw new Error(`pod-IP history ${path} is closed`);
      const at = new Date(now).toISOString();
      const seen = new Map<string, ObservedPod>();
      for (const p of pods) if (p.ip && p.uid) seen.set(key(p.ip, p.uid), p);
      const lines: unknown[] = [];
      for (const [k, e] of held) {
        if (seen.has(k)) continue;
        lines.push({ event: 'end', ip: e.ip, uid: e.uid, to: at });
        held.delete(k);
      }
      for (const [k, p] of seen) {
        if (held.has(k)) continue;
        const from = p.from && Number.isFinite(Date.parse(p.from)) ? new Date(Date.parse(p.from)).toISOString() : at;
        const e: PodIPEntry = { ip: p.ip, uid: p.uid, namespace: p.namespace, name: p.name, node: p.node, labels: { ...p.labels }, from, to: null };
        lines.push({ event: 'start', ...e });
        held.set(k, e);
      }
      write(lines);
    },
    held: () => [...held.values()].map((e) => ({ ...e })),
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}

/** Every reporter directory's history under a flow root. */
export function readPodIPHistory(root: string): { entries: PodIPEntry[]; warnings: HistoryWarning[] } {
  const entries: PodIPEntry[] = [];
  const warnings: HistoryWarning[] = [];
  for (const d of listReporterDirs(root)) {
    const r = readPodIPFile(join(d.path, POD_IP_FILE));
    entries.push(...r.entries);
    warnings.push(...r.warnings);
  }
  return { entries, warnings };
}

/**
 * Who held `ip` at `atMs`: of the entries covering that time, the one that got it last — an end written late (the
 * agent was down when the old pod went) must not hide the pod that has the IP since.
 */
export function podIPAt(entries: readonly PodIPEntry[], ip: string, atMs: number): PodIPEntry | undefined {
  let best: PodIPEntry | undefined;
  let bestFrom = -Infinity;
  for (const e of entries) {
    if (e.ip !== ip) continue;
    const from = Date.parse(e.from);
    const to = e.to === null ? Infinity : Date.parse(e.to);
    if (from <= atMs && atMs <= to && from >= bestFrom) {
      best = e;
      bestFrom = from;
    }
  }
  return best;
}
