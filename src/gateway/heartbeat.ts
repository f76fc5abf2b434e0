// The UDP heartbeat between node agents and gateways (agent side: src/agent/health.ts).
//
// The gateway answers every well-formed request on its health port over UDP (the same number as the HTTP health
// port, 8080/udp) at once, with its readiness and whether it is draining. Agents send one request per gateway per
// egressGatewayPollInterval and drop a gateway after egressGatewayPollFailureCount missed replies, or at once when
// a reply says not ready.
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
import type { Logger } from '../log.js';

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

/**
 * Binds `host:port`/udp and answers heartbeat requests with the state last given to setState. Until the first
 * setState it stays silent: a gateway process that has just restarted does not know yet whether its (intact)
 * data plane is right, and a "not ready" answer would make every agent drop it at once, cutting the connections
 * pinned to it. Silence for less than failureCount intervals costs nothing.
 */
export async function startHeartbeatResponder(opts: { port: number; host: string; log?: Logger }): Promise<HeartbeatResponder> {
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  let flags: number | null = null;
  let answered = 0;
  sock.on('message', (msg, rinfo) => {
    if (flags === null || !answerInPlace(msg, flags)) return;
    answered++;
    sock.send(msg, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(opts.port, opts.host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  // Send errors (e.g. an ICMP error for an earlier reply) must not stop the responder.
  sock.on('error', (err) => opts.log?.debug('heartbeat socket error', { err: err.message }));
  const port = sock.address().port;
  return {
    port,
    setState: (s) => {
      flags = heartbeatFlags(s);
    },
    get answered() {
      return answered;
    },
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}
