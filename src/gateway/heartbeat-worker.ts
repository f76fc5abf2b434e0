// The heartbeat responder's thread (heartbeat.ts starts it). It answers on its own event loop, so work on the gateway
// process's main loop — a burst of conntrack events for the flow recorder, a recovery dump — never delays a reply:
// a gateway whose main loop stalled for 600 ms used to be dropped by every agent (3 heartbeats missed) although its
// data plane forwarded all along (docs/dataplane.md, "Gateway health and failover").
//
// Shared with the main thread (an Int32Array over a SharedArrayBuffer, cells in heartbeat.ts):
//   FLAGS     the reply flags, or -1 while the process does not know its readiness (the port stays closed)
//   ANSWERED  requests answered (the responder's `answered`)
//   TICK      bumped by every setState: while it moves, the main loop is alive
//   CLOSED    1 = stop
// If TICK has not moved for staleMs, the main loop is wedged and the readiness the flags carry is stale: the thread
// closes its socket, so requests are refused by the kernel as while no process runs, and agents keep their verdict
// (docs/behaviour.md §3.4). It opens the socket again when TICK moves.
import dgram from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import { answerInPlace, CELL } from './heartbeat.js';

interface Data {
  shared: SharedArrayBuffer;
  port: number;
  host: string;
  staleMs: number;
}
const { shared, port, host, staleMs } = workerData as Data;
const cells = new Int32Array(shared);
let sock: dgram.Socket | null = null;
let binding = false;
let retryAt = 0;
let lastTick = Atomics.load(cells, CELL.TICK);
// a monotonic clock: a step of the wall clock must neither close the port nor hide a wedged main loop
let tickSeen = performance.now();
let stale = false;

function open(): void {
  binding = true;
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  s.once('error', (err) => {
    binding = false;
    retryAt = performance.now() + 1000;
    s.close();
    parentPort?.postMessage({ type: 'bind-error', err: err.message });
  });
  s.bind(port, host, () => {
    binding = false;
    s.removeAllListeners('error');
    // Send errors (e.g. an ICMP error for an earlier reply) must not stop the responder.
    s.on('error', (err) => parentPort?.postMessage({ type: 'socket-error', err: err.message }));
    s.on('message', (msg, rinfo) => {
      const flags = Atomics.load(cells, CELL.FLAGS);
      if (flags < 0 || !answerInPlace(msg, flags)) return;
      Atomics.add(cells, CELL.ANSWERED, 1);
      s.send(msg, rinfo.port, rinfo.address);
    });
    if (Atomics.load(cells, CELL.CLOSED) === 1 || stale) {
      s.close(); // closed, or gone stale, while binding: this socket must not answer
      return;
    }
    sock = s;
    parentPort?.postMessage({ type: 'open' });
  });
}

function closeSocket(): void {
  const s = sock;
  sock = null;
  s?.close();
}

// The thread's whole schedule: every 20 ms (and at once when the main thread wakes it: the first setState), compare
// the cells with the socket's state.
function check(): void {
  if (Atomics.load(cells, CELL.CLOSED) === 1) {
    clearInterval(timer);
    closeSocket();
    parentPort?.postMessage({ type: 'closed' });
    return;
  }
  const now = performance.now();
  const tick = Atomics.load(cells, CELL.TICK);
  const known = Atomics.load(cells, CELL.FLAGS) >= 0;
  if (tick !== lastTick) {
    lastTick = tick;
    tickSeen = now;
    if (stale) parentPort?.postMessage({ type: 'fresh' });
    stale = false;
  } else if (!stale && known && now - tickSeen > staleMs) {
    // whether or not the socket is open (it may be binding, or retrying a bind): no answer from stale readiness
    stale = true;
    closeSocket();
    parentPort?.postMessage({ type: 'stale', ms: Math.round(now - tickSeen) });
  }
  if (!sock && !binding && !stale && known && now >= retryAt) open();
}
const timer = setInterval(check, 20);
parentPort?.on('message', check);
parentPort?.postMessage({ type: 'started' });
