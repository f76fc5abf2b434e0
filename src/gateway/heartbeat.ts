// The UDP heartbeat between node agents and gateways (agent side: src/agent/health.ts).
//
// The gateway answers every well-formed request on its health port over UDP (the same number as the HTTP health
// port, 8080/udp) at once, with its readiness and whether it is draining. Agents send one request per gateway per
// egressGatewayPollInterval and drop a gateway after egressGatewayPollFailureCount missed replies, or at once when
// a reply says not ready. While the port is closed (no process, or one that does not know its readiness yet) the
// gateway's kernel refuses requests, and agents keep the gateway's verdict for a grace (docs/behaviour.md §3.4).
//
// Wire format, both directions 16 bytes, network byte order:
//   0..3   magic "EGWH"
//   4      version (1)
//   5      type: 1 = request (agent → gateway), 2 = reply (gateway → agent)
//   6      flags (reply only): bit 0 ready, bit 1 draining (the gateway's Pod has a deletionTimestamp),
//          bit 2 the gateway knows its Pod (its datastore view is complete); requests send 0
//   7      reserved, 0
//   8..11  sequence number, echoed
//   12..15 sender token (random per agent), echoed: a reply must carry it to count
// Binary and of fixed size rather than JSON on purpose: a reply is never larger than the request that caused it (no
// amplification when someone spoofs the source), and answering costs no parsing and no allocation — the gateway
// rewrites bytes 5 and 6 of the received buffer and sends that same buffer back. Anything that is not a 16-byte
// version-1 request is ignored without an answer.
import dgram from 'node:dgram';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import { sleep } from '../util.js';

export const HEARTBEAT_MAGIC = 0x45475748; // "EGWH"
export const HEARTBEAT_VERSION = 1;
export const HEARTBEAT_SIZE = 16;
export const HEARTBEAT_REQUEST = 1;
export const HEARTBEAT_REPLY = 2;
export const FLAG_READY = 1;
export const FLAG_DRAINING = 2;
export const FLAG_KNOWN = 4;

export interface HeartbeatReply {
  seq: number;
  token: number;
  ready: boolean;
  draining: boolean;
  /** The gateway has seen its own Pod in the datastore. */
  known: boolean;
}

/** Writes a request into `buf` (≥ 16 bytes, e.g. one reused buffer) and returns the 16-byte view. */
export function encodeRequest(seq: number, token: number, buf: Buffer = Buffer.allocUnsafe(HEARTBEAT_SIZE)): Buffer {
  buf.writeUInt32BE(HEARTBEAT_MAGIC, 0);
  buf[4] = HEARTBEAT_VERSION;
  buf[5] = HEARTBEAT_REQUEST;
  buf[6] = 0;
  buf[7] = 0;
  buf.writeUInt32BE(seq >>> 0, 8);
  buf.writeUInt32BE(token >>> 0, 12);
  return buf.length === HEARTBEAT_SIZE ? buf : buf.subarray(0, HEARTBEAT_SIZE);
}

/** Turns a valid request into its reply in place; false (and untouched) if `msg` is not a valid request. */
export function answerInPlace(msg: Buffer, flags: number): boolean {
  if (msg.length !== HEARTBEAT_SIZE || msg.readUInt32BE(0) !== HEARTBEAT_MAGIC || msg[4] !== HEARTBEAT_VERSION || msg[5] !== HEARTBEAT_REQUEST) return false;
  msg[5] = HEARTBEAT_REPLY;
  msg[6] = flags & 0xff;
  return true;
}

/** Builds a reply (for tests and fake peers). */
export function encodeReply(r: HeartbeatReply): Buffer {
  const b = encodeRequest(r.seq, r.token);
  b[5] = HEARTBEAT_REPLY;
  b[6] = (r.ready ? FLAG_READY : 0) | (r.draining ? FLAG_DRAINING : 0) | (r.known ? FLAG_KNOWN : 0);
  return b;
}

export function decodeReply(msg: Buffer): HeartbeatReply | null {
  if (msg.length !== HEARTBEAT_SIZE || msg.readUInt32BE(0) !== HEARTBEAT_MAGIC || msg[4] !== HEARTBEAT_VERSION || msg[5] !== HEARTBEAT_REPLY) return null;
  const f = msg[6];
  return { seq: msg.readUInt32BE(8), token: msg.readUInt32BE(12), ready: (f & FLAG_READY) !== 0, draining: (f & FLAG_DRAINING) !== 0, known: (f & FLAG_KNOWN) !== 0 };
}

export function heartbeatFlags(s: { ready: boolean; draining: boolean; known: boolean }): number {
  return (s.ready ? FLAG_READY : 0) | (s.draining ? FLAG_DRAINING : 0) | (s.known ? FLAG_KNOWN : 0);
}

export interface HeartbeatResponder {
  readonly port: number;
  /** Sets what replies carry from now on (a number kept by the responder: nothing is computed per packet). */
  setState(s: { ready: boolean; draining: boolean; known: boolean }): void;
  /** Requests answered so far. */
  readonly answered: number;
  close(): Promise<void>;
}

/** The cells the main thread and the responder's thread share (heartbeat-worker.ts says what each means). */
export const CELL = { FLAGS: 0, ANSWERED: 1, TICK: 2, CLOSED: 3 } as const;
/** How long the main loop may go without a setState before the thread treats the readiness as stale (heartbeat-worker.ts). */
export const HEARTBEAT_STALE_MS = 2000;

/**
 * Answers heartbeat requests on `host:port`/udp with the state last given to setState, from a thread of its own
 * (heartbeat-worker.ts), so that nothing the gateway's main loop does can delay a reply. Until the first setState the
 * port stays closed: a gateway process that has just restarted does not know yet whether its (intact) data plane is
 * right, and a "not ready" answer would make every agent drop it at once, cutting the connections pinned to it;
 * silence would do the same after failureCount intervals. A closed port makes the gateway's kernel refuse each
 * request (ICMP port unreachable), which tells the agents the namespace is alive and only the process is not: they
 * keep its verdict meanwhile (src/agent/health.ts, docs/behaviour.md §3.4) — the same as while no process runs at all.
 *
 * So the socket is bound twice: once here, to report a port in use (or learn the port, given 0) at start, and closed
 * at once; then for good, by the thread, at the first setState. A bind that fails then is logged and tried again
 * (at most once a second).
 */
export async function startHeartbeatResponder(opts: { port: number; host: string; log?: Logger; staleMs?: number }): Promise<HeartbeatResponder> {
  const probe = await bindUdp(opts.port, opts.host);
  const port = probe.address().port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const shared = new SharedArrayBuffer(4 * Object.keys(CELL).length);
  const cells = new Int32Array(shared);
  Atomics.store(cells, CELL.FLAGS, -1);
  // dist/gateway/heartbeat-worker.js when built; the .ts beside this file when run through tsx (the tests), whose
  // loader a worker does not inherit on Node 20: the thread registers it before importing the entry
  const ext = extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./heartbeat-worker${ext}`, import.meta.url);
  const workerData = { shared, port, host: opts.host, staleMs: opts.staleMs ?? HEARTBEAT_STALE_MS };
  let closing = false;
  let worker: Worker;
  let exited: Promise<void>;
  /** Starts the thread; resolves once it runs, rejects when it fails or exits before. */
  const spawnThread = (): Promise<void> => {
    const w =
      ext === '.ts'
        ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`, { eval: true, workerData })
        : new Worker(entry, { workerData });
    worker = w;
    // the process's lifetime is the main thread's: a responder never keeps it running
    w.unref();
    let started = false;
    exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    return new Promise<void>((resolve, reject) => {
      w.on('message', (m: { type: string; err?: string; ms?: number }) => {
        if (m.type === 'started') {
          started = true;
          resolve();
        } else if (m.type === 'bind-error') opts.log?.error('cannot answer heartbeats; trying again', { port: `${port}/udp`, err: m.err });
        else if (m.type === 'socket-error') opts.log?.debug('heartbeat socket error', { err: m.err });
        else if (m.type === 'stale') opts.log?.warn('heartbeats refused: the main loop has not set the readiness for a while', { ms: m.ms });
        else if (m.type === 'fresh') opts.log?.info('heartbeats answered again');
      });
      w.on('error', (err) => {
        if (!started) reject(new Error(`heartbeat thread: ${err.message}`));
        else opts.log?.error('heartbeat thread failed', { err: err.message });
      });
      w.once('exit', (code) => {
        if (!started) return reject(new Error(`heartbeat thread exited (${code}) before it started`));
        if (closing) return;
        // Its socket is gone with it, so requests are refused (agents keep the verdict for a while): start another
        // (a second later: a thread that dies at once must not spin).
        opts.log?.error('heartbeat thread exited; starting another', { code });
        setTimeout(() => {
          if (!closing) spawnThread().then(() => worker.postMessage('wake'), (err: Error) => opts.log?.error('cannot start the heartbeat thread', { err: err.message }));
        }, 1000).unref();
      });
    });
  };
  await spawnThread();
  let woken = false;
  return {
    port,
    setState: (s) => {
      Atomics.store(cells, CELL.FLAGS, heartbeatFlags(s));
      Atomics.add(cells, CELL.TICK, 1);
      if (!woken) worker.postMessage('wake');
      woken = true;
    },
    get answered() {
      return Atomics.load(cells, CELL.ANSWERED);
    },
    close: async () => {
      closing = true;
      Atomics.store(cells, CELL.CLOSED, 1);
      const w = worker;
      let onMessage: ((m: { type: string }) => void) | undefined;
      const done = new Promise<void>((resolve) => {
        onMessage = (m) => m.type === 'closed' && resolve();
        w.on('message', onMessage);
      });
      const wait = new AbortController();
      await Promise.race([done, exited, sleep(2000, wait.signal)]);
      wait.abort();
      w.off('message', onMessage!);
      await w.terminate();
      await exited;
    },
  };
}

function bindUdp(port: number, host: string): Promise<dgram.Socket> {
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  return new Promise<dgram.Socket>((resolve, reject) => {
    sock.once('error', (err) => {
      try {
        sock.close();
      } catch {
        /* not running */
      }
      reject(err);
    });
    sock.bind(port, host, () => {
      sock.removeAllListeners('error');
      resolve(sock);
    });
  });
}
