// Many UDP flows at once, for bench/scrape.ts: `udpflows.ts --to IP --ports N --flows N [--rate N]` sends one
// datagram per flow from sockets bound to consecutive source ports from 30000 (one port per socket, never reused) to N destination ports of IP, so the namespaces
// on the way hold one conntrack entry per flow (UDP entries outlive the socket: until the UDP timeout). Prints
// {"sent","seconds"} on stdout. Loopback or project namespaces only: IP is the bench's own server namespace.
import dgram from 'node:dgram';

const USAGE = 'usage: udpflows.ts --to IP --ports N --flows N [--rate FLOWS_PER_S] [--base-port P]';

function parse(args: string[]): { to: string; ports: number; flows: number; rate: number; basePort: number } | Error {
  const o = { to: '', ports: 0, flows: 0, rate: 0, basePort: 20000 };
  for (let i = 0; i < args.length; i += 2) {
    const [a, v] = [args[i], args[i + 1]];
    const n = Number(v);
    if (a === '--to' && v && /^\d+\.\d+\.\d+\.\d+$/.test(v)) o.to = v;
    else if (a === '--ports' && Number.isInteger(n) && n > 0 && n <= 1000) o.ports = n;
    else if (a === '--flows' && Number.isInteger(n) && n > 0) o.flows = n;
    else if (a === '--rate' && Number.isInteger(n) && n >= 0) o.rate = n;
    else if (a === '--base-port' && Number.isInteger(n) && n > 0 && n < 65000) o.basePort = n;
    else return new Error(`bad or incomplete argument ${a}${v === undefined ? '' : ' ' + v}`);
  }
  if (!o.to || !o.ports || !o.flows) return new Error('--to, --ports and --flows are required');
  return o;
}

const o = parse(process.argv.slice(2));
if (o instanceof Error) {
  process.stderr.write(`udpflows: ${o.message}\n${USAGE}\n`);
  process.exit(2);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const payload = Buffer.from('egw-bench\n');
const t0 = Date.now();
let sent = 0;
// Sockets in batches of 256 (each sends to every port, then closes): bounded file descriptors, paced to --rate.
while (sent < o.flows) {
  const batch: Promise<void>[] = [];
  for (let s = 0; s < 256 && sent < o.flows; s++) {
    const sock = dgram.createSocket('udp4');
    const srcPort = 30000 + Math.floor(sent / o.ports);
    if (srcPort > 65535) throw new Error(`too many flows for ${o.ports} ports: source ports 30000–65535 run out`);
    const n = Math.min(o.ports, o.flows - sent);
    sent += n;
    batch.push(
      new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(srcPort, () => {
          let left = n;
          for (let p = 0; p < n; p++)
            sock.send(payload, o.basePort + p, o.to, (err) => {
              if (err) return reject(err);
              if (--left === 0) sock.close(() => resolve());
            });
        });
      }),
    );
  }
  await Promise.all(batch);
  if (o.rate) {
    const due = t0 + (sent / o.rate) * 1000;
    if (due > Date.now()) await sleep(due - Date.now());
  }
}
process.stdout.write(JSON.stringify({ sent, seconds: (Date.now() - t0) / 1000 }) + '\n');
