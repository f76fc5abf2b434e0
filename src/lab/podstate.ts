// What the lab kubelet keeps about its pods' networks in the lab state directory (docs/dataplane.md, "The lab"):
// pods/<node>/<hash>.json, written atomically (tmp + rename), read back by a restarted kubelet to adopt what exists;
// and the pid files of a pod's containers, pids/pod-<hash>-<container>.pid.
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stateFiles } from './names.js';

/** What the kubelet keeps about a pod's network, in pods/<node>/<hash>.json. */
export interface PodState {
  namespace: string;
  name: string;
  uid: string;
  node: string;
  hash: string;
  netns: string;
  veth: string;
  handle: string;
  ip?: string;
  netnsIno?: number;
  gateway?: boolean;
  /** terminationGracePeriodSeconds: how long its containers get between SIGTERM and SIGKILL. */
  grace?: number;
}

export class PodStateFiles {
  constructor(
    private readonly dir: string,
    private readonly node: string,
  ) {}

  podDir(): string {
    return join(stateFiles.pods(this.dir), this.node);
  }

  file(hash: string): string {
    return join(this.podDir(), `${hash}.json`);
  }

  save(s: PodState): void {
    mkdirSync(this.podDir(), { recursive: true });
    const f = this.file(s.hash);
    writeFileSync(`${f}.tmp`, JSON.stringify(s, null, 2) + '\n');
    renameSync(`${f}.tmp`, f);
  }

  /** This node's pod states; unreadable files are skipped. */
  read(): PodState[] {
    let names: string[] = [];
    try {
      names = readdirSync(this.podDir()).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    const out: PodState[] = [];
    for (const n of names) {
      try {
        const s = JSON.parse(readFileSync(join(this.podDir(), n), 'utf8')) as PodState;
        if (s.node === this.node && s.hash && s.namespace && s.name) out.push(s);
      } catch {
        /* unreadable: ignore */
      }
    }
    return out;
  }

  /** The pid files of a pod's containers. */
  pidFiles(hash: string): string[] {
    const dir = stateFiles.pids(this.dir);
    try {
      return readdirSync(dir)
        .filter((n) => n.startsWith(`pod-${hash}-`) && n.endsWith('.pid'))
        .map((n) => join(dir, n));
    } catch {
      return [];
    }
  }
}
