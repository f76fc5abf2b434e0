// A TCP proxy on loopback for the etcd tests: a client talks to etcd through it, and the test can cut the line (every
// connection dropped, new ones refused) and restore it, while etcd itself keeps running and other clients keep
// working. That is how a watch falls behind deterministically: cut it, write and compact past it, restore.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** host:port to connect to instead of the target. */
  endpoint: string;
  /** Drops every connection and refuses new ones (accepts and closes them at once) until restore(). */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<TcpProxy> {
  const colon = target.lastIndexOf(':');
  const host = target.slice(0, colon);
  const port = Number(target.slice(colon + 1));
  const live = new Set<Socket>();
  let down = false;
  const server: Server = createServer((client) => {
    client.on('error', () => {});
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(port, host);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    for (const s of [client, upstream]) {
      live.add(s);
      s.on('close', () => live.delete(s));
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return {
    endpoint: `127.0.0.1:${addr.port}`,
    cut() {
      down = true;
      for (const s of live) s.destroy();
    },
    restore() {
      down = false;
    },
    async close() {
      for (const s of live) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
