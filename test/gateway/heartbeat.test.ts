// The heartbeat responder answers from a thread of its own (src/gateway/heartbeat-worker.ts): a main loop that is
// busy (a burst of flow-recorder work) does not delay replies, and a main loop that stopped setting the readiness
// makes the port refuse requests — as while no process runs — instead of answering with a stale readiness.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { udpHeartbeatTransport } from '../../src/agent/health.js';
import { decodeReply, startHeartbeatResponder } from '../../src/gateway/heartbeat.js';
import { sleep } from '../../src/util.js';
import { until } from '../helpers/wait.js';

/** A sender in another process: `count` requests `everyMs` apart; prints each reply's and refusal's time (ms since its start). */
function sender(host: string, port: number, count: number, everyMs: number): Promise<{ replies: number[]; refused: number[] }> {
  const code = `
const dgram = require('node:dgram');
const s = dgram.createSocket('udp4');
const t0 = Date.now(); const replies = []; const refused = [];
s.on('message', () => replies.push(Date.now() - t0));
s.on('error', () => refused.push(Date.now() - t0));
s.connect(${port}, ${JSON.stringify(host)}, () => {
  let i = 0;
  const req = Buffer.alloc(16); req.writeUInt32BE(0x45475748, 0); req[4] = 1; req[5] = 1; req.writeUInt32BE(7, 12);
  const tick = setInterval(() => {
    if (i === ${count}) { clearInterval(tick); setTimeout(() => { console.log(JSON.stringify({ replies, refused })); s.close(); }, 200); return; }
    req.writeUInt32BE(i++, 8); s.send(req);
  }, ${everyMs});
});`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (c) => (c === 0 ? resolve(JSON.parse(out) as { replies: number[]; refused: number[] }) : reject(new Error(`sender exit ${c}`))));
  });
}

const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);

test('replies keep coming while the main loop is blocked for 700 ms', async () => {
  const r = await startHeartbeatResponder({ port: 0, host: '127.0.0.7' });
  const ready = setInterval(() => r.setState({ ready: true, draining: false, known: true }), 100);
  try {
    r.setState({ ready: true, draining: false, known: true });
    const sent = sender('127.0.0.7', r.port, 60, 50); // 3 s of requests once it runs
    await until('the sender is answered', () => r.answered >= 2, 10_000); // it has started, the port is open
    const before = r.answered;
    const end = Date.now() + 700;
    while (Date.now() < end) {
      /* the main loop does nothing else: no timer, no I/O */
    }
    const during = r.answered - before;
    const { replies, refused } = await sent;
    // 700 ms at one request per 50 ms: ~14 answered while blocked; a responder on the main loop answers none, and
    // its replies stop for the whole 700 ms (the bounds leave room for a loaded machine delaying the sender)
    assert.ok(during >= 3, `${during} requests answered while the main loop was blocked`);
    assert.equal(refused.length, 0);
    assert.ok(replies.length >= 45, `${replies.length} of 60 answered`);
    assert.ok(Math.max(...gaps(replies)) < 500, `the longest silence between replies: ${Math.max(...gaps(replies))} ms`);
  } finally {
    clearInterval(ready);
    await r.close();
  }
});

test('a main loop that stops setting the readiness: the port refuses after staleMs (800 ms), and answers again at the next setState', async () => {
  const r = await startHeartbeatResponder({ port: 0, host: '127.0.0.8', staleMs: 800 });
  const set = () => r.setState({ ready: true, draining: false, known: true });
  let ready = setInterval(set, 100);
  try {
    set();
    const sent = sender('127.0.0.8', r.port, 100, 50); // 5 s of requests once it runs
    await until('the sender is answered', () => r.answered >= 2, 10_000);
    clearInterval(ready); // the main loop goes on, but no longer sets the readiness
    await sleep(800 + 300);
    const stale = r.answered;
    await sleep(600);
    assert.equal(r.answered, stale, 'no answer once the readiness is stale');
    ready = setInterval(set, 100);
    set();
    await until('answers again', () => r.answered > stale, 2000);
    const { replies, refused } = await sent;
    assert.ok(refused.length >= 5, `refused while stale: ${refused.length}`);
    assert.ok(replies.length > stale, `answered after the readiness came back: ${replies.length} replies, ${stale} before`);
  } finally {
    clearInterval(ready);
    await r.close();
  }
});

test('the responder answers only valid requests, with ready/draining, in place (same size)', async () => {
  const r = await startHeartbeatResponder({ port: 0, host: '127.0.0.1' });
  const t = await udpHeartbeatTransport({ bindHost: '127.0.0.1' });
  const got: Buffer[] = [];
  t.onReply((d) => got.push(d));
  try {
    const req = Buffer.alloc(16);
    req.writeUInt32BE(0x45475748, 0);
    req[4] = 1;
    req[5] = 1;
    req.writeUInt32BE(42, 8);
    req.writeUInt32BE(99, 12);
    r.setState({ ready: false, draining: false, known: false });
    // the first setState opens the port (on the responder's thread): ask again until it answers, as agents do
    for (const deadline = Date.now() + 2000; got.length === 0; ) {
      if (Date.now() > deadline) throw new Error('no reply within 2 s of the first setState');
      t.send('127.0.0.1', r.port, req);
      await sleep(50);
    }
    await sleep(100); // a late answer to a repeated request comes now, not in the second part
    const first = got.length;
    r.setState({ ready: true, draining: true, known: true });
    req.writeUInt32BE(43, 8);
    t.send('127.0.0.1', r.port, req);
    t.send('127.0.0.1', r.port, Buffer.from('hello'));
    t.send('127.0.0.1', r.port, Buffer.concat([req, Buffer.alloc(100)])); // oversized: no answer
    const bad = Buffer.from(req);
    bad[5] = 2; // a reply sent to it: ignored (no ping-pong between responders)
    t.send('127.0.0.1', r.port, bad);
    await until('the second reply', () => got.length > first, 1000);
    await sleep(50);
    assert.equal(got.length, first + 1, 'one answer: not to the short, the oversized or the reply-typed datagram');
    assert.ok(got.every((b) => b.length === 16));
    assert.ok(got.slice(0, first).every((b) => JSON.stringify(decodeReply(b)) === JSON.stringify({ seq: 42, token: 99, ready: false, draining: false, known: false })));
    assert.deepEqual(decodeReply(got[first]), { seq: 43, token: 99, ready: true, draining: true, known: true });
    assert.equal(r.answered, got.length);
  } finally {
    await t.close();
    await r.close();
  }
});
