// The lab's external echo server (runs in egw-<lab>-ext): tells a client which source address and port it saw.
//   HTTP  GET /          → {"sourceIp","sourcePort","server"}   (server = the local address:port it was reached on)
//         GET /bytes?n=N → N bytes, streamed (long transfers)
//   TCP   port 7         → each line received is answered with `<sourceIp>:<sourcePort>\n` (long-lived connections)
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../log.js';
import { createLogger } from '../log.js';

export interface EchoOptions {
  listen?: string;
  httpPort?: number;
  tcpPort?: number;
  log?: Logger;
  signal?: AbortSignal;
  /** Called once both servers listen, with the ports they got (useful with port 0). */
  onListening?: (ports: { http: number; tcp: number }) => void;
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');
const MAX_BYTES = 1e12;

function plain(addr: string | undefined): string {
  return (addr ?? '').replace(/^::ffff:/, '');
}

function handleHttp(req: IncomingMessage, res: ServerResponse, log: Logger): void {
  const url = new URL(req.url ?? '/', 'http://echo');
  const sourceIp = plain(req.socket.remoteAddress);
  const sourcePort = req.socket.remotePort ?? 0;
  const server = `${plain(req.socket.localAddress)}:${req.socket.localPort}`;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { 'content-type': 'text/plain' }).end('only GET\n');
    return;
  }
  if (url.pathname === '/') {
    const body = JSON.stringify({ sourceIp, sourcePort, server }) + '\n';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(req.method === 'HEAD' ? undefined : body);
    log.debug('GET /', { sourceIp, sourcePort, server });
    return;
  }
  if (url.pathname === '/bytes') {
    const n = Number(url.searchParams.get('n') ?? '0');
    if (!Number.isSafeInteger(n) || n < 0 || n > MAX_BYTES) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('n must be an integer between 0 and 1e12\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
    if (req.method === 'HEAD') return void res.end();
    let left = n;
    const pump = () => {
      while (left > 0) {
        const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        left -= chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => (left = 0));
    log.debug('GET /bytes', { sourceIp, sourcePort, n });
    pump();
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try / or /bytes?n=N\n');
}

function handleTcp(sock: Socket, log: Logger): void {
  const who = `${plain(sock.remoteAddress)}:${sock.remotePort}`;
  let buf = '';
  sock.setEncoding('utf8');
  sock.setNoDelay(true);
  sock.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      buf = buf.slice(nl + 1);
      sock.write(`${who}\n`);
    }
    if (buf.length > 65536) buf = '';
  });
  sock.on('error', (e) => log.debug('tcp connection error', { peer: who, error: e.message }));
}

function listen(server: Server | ReturnType<typeof createHttpServer>, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
}

/** Runs until the signal aborts; rejects if a port cannot be bound. */
export async function runEcho(opts: EchoOptions = {}): Promise<void> {
  const log = opts.log ?? createLogger('echo');
  const host = opts.listen ?? '0.0.0.0';
  const sockets = new Set<Socket>();
  const http = createHttpServer((req, res) => handleHttp(req, res, log));
  http.keepAliveTimeout = 5000;
  const tcp = createTcpServer((s) => handleTcp(s, log));
  for (const s of [http, tcp] as Server[]) {
    s.on('connection', (sock: Socket) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
  }
  if (opts.signal?.aborted) return;
  try {
    const httpPort = await listen(http, opts.httpPort ?? 80, host);
    const tcpPort = await listen(tcp, opts.tcpPort ?? 7, host);
    log.info('listening', { http: `${host}:${httpPort}`, tcp: `${host}:${tcpPort}` });
    opts.onListening?.({ http: httpPort, tcp: tcpPort });
  } catch (e) {
    http.close();
    tcp.close();
    throw e;
  }
  await new Promise<void>((resolve) => {
    if (!opts.signal) return; // runs forever
    if (opts.signal.aborted) return resolve();
    opts.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await Promise.all(
    [http, tcp].map(
      (s) =>
        new Promise<void>((resolve) => {
          s.close(() => resolve());
          for (const sock of sockets) sock.destroy();
        }),
    ),
  );
  log.info('stopped');
}
