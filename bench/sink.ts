// A TCP sink for bench/connscale.ts, run in the lab's external namespace: `sink.ts --port P` accepts every
// connection on P, answers its first line with one line (connflood --mode line waits for that) and holds it open until SIGTERM; prints {"port","held"} when
// it stops. One process per port: a process may hold at most 20,000 open files on this machine (docs/benchmarks.md,
// "Connection scale"), so 100,000 connections need several.
import { createServer, type Socket } from 'node:net';

const i = process.argv.indexOf('--port');
const port = Number(process.argv[i + 1]);
if (i < 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: sink.ts --port P\n');
  process.exit(2);
}
const held = new Set<Socket>();
const server = createServer((s) => {
  held.add(s);
  s.once('data', () => s.write('ok\n'));
  s.on('data', () => {});
  s.on('error', () => {});
  s.on('close', () => held.delete(s));
});
server.maxConnections = 19_500;
server.listen({ port, host: '0.0.0.0', backlog: 4096 }, () => process.stdout.write(JSON.stringify({ port, listening: true }) + '\n'));
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ port, held: held.size }) + '\n');
  process.exit(0);
});
