// Request/response round trips on one TCP connection, for bench/paths.ts, run in a client's network namespace:
//   rtt.ts --to IP:PORT --count N
// Sends one line and waits for the answer line (the lab echo server answers each line on TCP 7: src/lab/echo.ts), N
// times in a row on one connection (Nagle off), after 50 unmeasured warm-up exchanges. Prints
// {"count","p50Us","p99Us","meanUs"} on stdout. Loopback or the bench's own lab namespaces only.
import { connect } from 'node:net';

const USAGE = 'usage: rtt.ts --to IP:PORT --count N';
function parse(a: string[]): { host: string; port: number; count: number } | Error {
  let to: string | undefined;
  let count = 0;
  for (let i = 0; i < a.length; i += 2) {
    if (a[i] === '--to' && a[i + 1]) to = a[i + 1];
    else if (a[i] === '--count' && Number.isInteger(Number(a[i + 1])) && Number(a[i + 1]) > 0) count = Number(a[i + 1]);
    else return new Error(`bad or incomplete argument ${a[i]}${a[i + 1] === undefined ? '' : ' ' + a[i + 1]}`);
  }
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(to ?? '');
  if (!m || !count) return new Error('--to IP:PORT and --count N are required');
  return { host: m[1]!, port: Number(m[2]), count };
}

const o = parse(process.argv.slice(2));
if (o instanceof Error) {
  process.stderr.write(`rtt: ${o.message}\n${USAGE}\n`);
  process.exit(2);
}
const WARMUP = 50;
const sock = connect({ host: o.host, port: o.port, noDelay: true });
sock.setEncoding('utf8');
const times: number[] = [];
let buf = '';
let sentAt = 0n;
let n = 0;
const send = () => {
  sentAt = process.hrtime.bigint();
  sock.write('x\n');
};
const timer = setTimeout(() => {
  process.stderr.write(`rtt: no answer from ${o.host}:${o.port} within 30 s (${n} exchanges)\n`);
  process.exit(1);
}, 30_000);
sock.on('error', (e) => {
  process.stderr.write(`rtt: ${o.host}:${o.port}: ${e.message}\n`);
  process.exit(1);
});
sock.on('connect', send);
sock.on('data', (d: string) => {
  buf += d;
  let nl: number;
  while ((nl = buf.indexOf('\n')) >= 0) {
    buf = buf.slice(nl + 1);
    const us = Number(process.hrtime.bigint() - sentAt) / 1000;
    if (n++ >= WARMUP) times.push(us);
    if (times.length >= o.count) {
      clearTimeout(timer);
      sock.destroy();
      const s = [...times].sort((a, b) => a - b);
      const q = (p: number) => Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]!);
      process.stdout.write(JSON.stringify({ count: s.length, p50Us: q(0.5), p99Us: q(0.99), meanUs: Math.round(s.reduce((a, b) => a + b, 0) / s.length) }) + '\n');
      return;
    }
    send();
  }
});
