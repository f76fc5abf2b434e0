// `egw lab forward --listen 127.0.0.1:PORT --to SOCKET`: the host's way to the lab's etcd (docs/dataplane.md, "The
// lab on etcd"). The lab's etcd lives in its own network namespace; the CLI on the host reaches it without anything
// attached to the host's network namespace but a loopback listener: each TCP connection accepted on loopback is
// relayed byte for byte to etcd's unix socket in the lab state directory (gRPC runs over it unchanged).
import { createConnection, createServer, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import type { Logger } from '../log.js';
import { sleep } from '../util.js';
import { labStateDir, labStateRoot, stateFiles } from './names.js';

export interface ForwardOptions {
  /** The lab: the forwarder stops when its state is gone or it is being taken down (it runs in the host namespace). */
  lab: string;
  host: string;
  port: number;
  /** The unix socket connections are relayed to. */
  socket: string;
  log: Logger;
  signal?: AbortSignal;
}

/** Parses `HOST:PORT` for --listen; only loopback addresses are accepted (the network rule). */
export function parseLoopbackListen(text: string): { host: string; port: number } {
  const m = /^(127(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`--listen: expected a loopback HOST:PORT such as 127.0.0.1:23790, got ${JSON.stringify(text)}`);
  return { host: m[1], port };
}

export async function runForward(o: ForwardOptions): Promise<void> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection(o.socket);
    open.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', (e) => (o.log.debug('upstream failed', { error: e.message }), close())).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  o.log.info('forwarding', { listen: `${o.host}:${o.port}`, to: o.socket });
  const dir = labStateDir(o.lab, labStateRoot());
  while (!o.signal?.aborted) {
    if (!existsSync(stateFiles.config(dir)) || existsSync(stateFiles.stopping(dir))) {
      o.log.info('the lab is going; stopping');
      break;
    }
    await sleep(1000, o.signal);
  }
  server.close();
  for (const s of open) s.destroy();
}
