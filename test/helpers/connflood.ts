// A connection flood for the audit tests and `make bench BENCH=flows`, run inside a client network namespace:
//
//   ip netns exec NS node --import tsx test/helpers/connflood.ts --to IP:PORT --duration S
//       [--concurrency N] [--count N] [--rate N] [--hold] [--rst] [--mode http|line] [--record FILE]
//
// Makes TCP connections as fast as it can, N at a time (default 50): connect, send one request — an HTTP GET when
// the port is 80, else one line (the lab echo server, src/lab/echo.ts: HTTP on 80, a line echo on TCP 7) — read the
// answer, close. It stops at --duration seconds or after --count connections, whichever comes first (both bound
// it: the duration is required and at most 3600 s). At the end it prints one JSON object:
//   {"made","failed","seconds","rate","firstAt","lastAt"}  (times in ms since the epoch; rate = made / seconds)
// --rate   at most N connections started per second, in total (evenly spaced; for the rising floods of
//          `make bench BENCH=flows`); without it, as fast as the workers go;
// --hold   keeps every answered connection open until --duration ends (also when --count was reached earlier),
//          then closes them all: open conntrack entries for a dump;
// --rst    closes with a RST instead of a FIN: no TIME_WAIT on either side, conntrack ends the entry in ~10 s;
// --record one JSON line per connection: {"port","start","end","ok"[,"error"]} (local port, ms since the epoch).
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect, isIP, type Socket } from 'node:net';

export interface FloodOptions {
  host: string;
  port: number;
  durationS: number;
  concurrency: number;
  count?: number;
  /** Connections started per second at most, in total. */
  rate?: number;
  hold: boolean;
  rst: boolean;
  mode: 'http' | 'line';
  record?: string;
}

export interface FloodResult {
  made: number;
  failed: number;
  seconds: number;
  rate: number;
  firstAt: number | null;
  lastAt: number | null;
}

const USAGE = 'usage: connflood.ts --to IP:PORT --duration S [--concurrency N] [--count N] [--rate N] [--hold] [--rst] [--mode http|line] [--record FILE]';
const MAX_DURATION_S = 3600;
/** One connection may take this long before it counts as failed. */
const CONN_TIMEOUT_MS = 5000;

/** The flags, or an Error naming the bad one. */
export function parseFloodArgs(args: string[]): FloodOptions | Error {
  const o: Partial<FloodOptions> = { concurrency: 50, hold: false, rst: false };
  let modeSet = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = (): string | Error => (i + 1 < args.length ? args[++i] : new Error(`${a} needs a value`));
    const int = (min: number, max: number): number | Error => {
      const v = value();
      if (v instanceof Error) return v;
      const n = Number(v);
      return Number.isInteger(n) && n >= min && n <= max ? n : new Error(`${a} ${v}: want an integer from ${min} to ${max}`);
    };
    switch (a) {
      case '--to': {
        const v = value();
        if (v instanceof Error) return v;
        const m = /^(.+):(\d+)$/.exec(v);
        const host = m?.[1].replace(/^\[(.*)\]$/, '$1');
        const port = Number(m?.[2]);
        if (!m || !isIP(host!) || !(port >= 1 && port <= 65535)) return new Error(`--to ${v}: want IP:PORT (an address, not a name; [v6]:PORT for IPv6)`);
        o.host = host;
        o.port = port;
        break;
      }
      case '--duration': {
        const v = value();
        if (v instanceof Error) return v;
        const n = Number(v);
        if (!(n > 0 && n <= MAX_DURATION_S)) return new Error(`--duration ${v}: want seconds, more than 0 and at most ${MAX_DURATION_S}`);
        o.durationS = n;
        break;
      }
      case '--concurrency': {
        const n = int(1, 10000);
        if (n instanceof Error) return n;
        o.concurrency = n;
        break;
      }
      case '--count': {
        const n = int(1, 10_000_000);
        if (n instanceof Error) return n;
        o.count = n;
        break;
      }
      case '--rate': {
        const n = int(1, 1_000_000);
        if (n instanceof Error) return n;
        o.rate = n;
        break;
      }
      case '--hold':
        o.hold = true;
        break;
      case '--rst':
        o.rst = true;
        break;
      case '--mode': {
        const v = value();
        if (v instanceof Error) return v;
        if (v !== 'http' && v !== 'line') return new Error(`--mode ${v}: want http or line`);
        o.mode = v;
        modeSet = true;
        break;
      }
      case '--record': {
        const v = value();
        if (v instanceof Error) return v;
        o.record = v;
        break;
      }
      default:
        return new Error(`unknown argument ${a}`);
    }
  }
  if (o.host === undefined) return new Error('--to IP:PORT is required');
  if (o.durationS === undefined) return new Error('--duration S is required');
  if (!modeSet) o.mode = o.port === 80 ? 'http' : 'line';
  return o as FloodOptions;
}

/** ms since the epoch, with fractions. */
const wall = (): number => performance.timeOrigin + performance.now();

/** Runs the flood; resolves when every connection it started has ended. */
export async function flood(o: FloodOptions): Promise<FloodResult> {
  const t0 = wall();
  const deadline = t0 + o.durationS * 1000;
  const rec: WriteStream | undefined = o.record ? createWriteStream(o.record) : undefined;
  const held: Socket[] = [];
  let started = 0;
  let made = 0;
  let failed = 0;
  let firstAt: number | null = null;
  let lastAt: number | null = null;
  const request = o.mode === 'http' ? `GET / HTTP/1.1\r\nHost: ${o.host}\r\nConnection: close\r\n\r\n` : 'ping\n';
  const more = () => wall() < deadline && (o.count === undefined || started < o.count);

  const one = (): Promise<void> =>
    new Promise((resolve) => {
      started++;
      const start = wall();
      firstAt ??= start;
      let port = 0;
      let done = false;
      const s = connect({ host: o.host, port: o.port });
      const finish = (ok: boolean, error?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const end = wall();
        lastAt = end;
        if (ok) made++;
        else failed++;
        rec?.write(JSON.stringify(error === undefined ? { port, start, end, ok } : { port, start, end, ok, error }) + '\n');
        if (ok && o.hold) held.push(s);
        else if (o.rst && ok) s.resetAndDestroy();
        else s.destroy();
        resolve();
      };
      const timer = setTimeout(() => finish(false, 'timeout'), CONN_TIMEOUT_MS);
      s.setNoDelay(true);
      s.on('connect', () => {
        port = s.localPort ?? 0;
        s.write(request);
      });
      // The answer: the echo's line, or the first bytes of the HTTP response (its status line).
      s.once('data', () => finish(true));
      s.on('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
      s.on('close', () => finish(false, 'closed before an answer'));
    });

  // --rate: connection k starts no earlier than t0 + k / rate (slots taken in order by whichever worker is free)
  let slot = 0;
  const paced = async (): Promise<void> => {
    if (o.rate === undefined) return;
    const due = t0 + (slot++ * 1000) / o.rate;
    const wait = due - wall();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  };
  const worker = async () => {
    while (more()) {
      await paced();
      if (!more()) break;
      await one();
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const end = wall();
  if (o.hold && wall() < deadline) await new Promise((r) => setTimeout(r, deadline - wall()));
  for (const s of held) {
    if (o.rst) s.resetAndDestroy();
    else s.end();
  }
  if (rec) await new Promise<void>((r) => rec.end(r));
  const seconds = (end - t0) / 1000;
  return { made, failed, seconds, rate: seconds > 0 ? made / seconds : 0, firstAt, lastAt };
}

async function main(): Promise<void> {
  const o = parseFloodArgs(process.argv.slice(2));
  if (o instanceof Error) {
    process.stderr.write(`connflood: ${o.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const r = await flood(o);
  process.stdout.write(JSON.stringify(r) + '\n');
  // Held sockets are ended above; do not wait for the peer's FIN.
  process.exit(0);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/connflood.ts')) void main();
