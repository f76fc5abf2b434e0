// A long TCP connection and a stream of new ones, from a process inside a pod (test/lab/fixtures/conn-stream.mjs):
// the supervision and outage tests read its report (replies on the long connection, its longest wait, new
// connections that worked or failed) before and after what they do to the lab.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ECHO } from './scenarios.js';

const STREAM = fileURLToPath(new URL('../lab/fixtures/conn-stream.mjs', import.meta.url));

export interface StreamReport {
  stream: { ok: boolean; replies: number; seen: string; maxGapMs: number };
  fresh: { ok: number; fail: number; sources: Record<string, number> };
}

export class ConnStream {
  private child!: ChildProcessWithoutNullStreams;
  private lines!: AsyncIterator<string>;

  /** Starts both in `netns`, toward the echo server: a line on the long connection and a new connection every 200 ms. */
  static async open(netns: string): Promise<ConnStream> {
    const s = new ConnStream();
    s.child = spawn('ip', ['netns', 'exec', netns, process.execPath, STREAM, ECHO, `http://${ECHO}/`, '200']);
    s.lines = createInterface({ input: s.child.stdout })[Symbol.asyncIterator]();
    assert.deepEqual(JSON.parse((await s.lines.next()).value), { started: true });
    return s;
  }

  async report(): Promise<StreamReport> {
    this.child.stdin.write('report\n');
    const n = await this.lines.next();
    assert.ok(!n.done, 'the stream process exited');
    return JSON.parse(n.value);
  }

  close(): void {
    if (this.child.exitCode === null) this.child.stdin.write('quit\n');
  }
}
