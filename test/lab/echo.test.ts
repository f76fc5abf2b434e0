import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { runEcho } from '../../src/lab/echo.js';
import { memoryLogger } from '../../src/log.js';
import { sleep, until } from '../helpers/wait.js';

async function withEcho(fn: (ports: { http: number; tcp: number }) => Promise<void>): Promise<void> {
  const ac = new AbortController();
  let ports!: { http: number; tcp: number };
  let listening!: () => void;
  const ready = new Promise<void>((res) => (listening = res));
  const run = runEcho({ listen: '127.0.0.1', httpPort: 0, tcpPort: 0, log: memoryLogger(), signal: ac.signal, onListening: (p) => ((ports = p), listening()) });
  await Promise.race([ready, run]);
  try {
    await fn(ports);
  } finally {
    ac.abort();
    await run;
  }
}

function get(port: number, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('HTTP GET / reports the source address and port it saw, and where it was reached', async () => {
  await withEcho(async ({ http }) => {
    const r = await get(http, '/');
    assert.equal(r.status, 200);
    const j = JSON.parse(r.body.toString());
    assert.equal(j.sourceIp, '127.0.0.1');
    assert.equal(typeof j.sourcePort, 'number');
    assert.ok(j.sourcePort > 0);
    assert.equal(j.server, `127.0.0.1:${http}`);
    assert.deepEqual(Object.keys(j).sort(), ['server', 'sourceIp', 'sourcePort']);
  });
});

test('HTTP GET /bytes?n=N streams exactly N bytes; bad n and unknown paths are client errors', async () => {
  await withEcho(async ({ http }) => {
    for (const n of [0, 1, 65536, 1_000_003]) {
      const r = await get(http, `/bytes?n=${n}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.length, n);
    }
    assert.equal((await get(http, '/bytes?n=-1')).status, 400);
    assert.equal((await get(http, '/bytes?n=abc')).status, 400);
    assert.equal((await get(http, '/nope')).status, 404);
  });
});

test('TCP line echo answers every line with the source address:port, on one long-lived connection', async () => {
  await withEcho(async ({ tcp }) => {
    const sock = connect({ host: '127.0.0.1', port: tcp });
    await new Promise<void>((res, rej) => (sock.once('connect', () => res()), sock.once('error', rej)));
    const me = `127.0.0.1:${sock.localPort}`;
    sock.setEncoding('utf8');
    let got = '';
    sock.on('data', (d: string) => (got += d));
    sock.write('one\ntwo\n');
    sock.write('thr');
    await sleep(50);
    sock.write('ee\n');
    await until('three answered lines', () => got.split('\n').length >= 4, 2000);
    assert.equal(got, `${me}\n${me}\n${me}\n`);
    sock.destroy();
  });
});

test('runEcho rejects when a port is taken', async () => {
  await withEcho(async ({ http }) => {
    await assert.rejects(runEcho({ listen: '127.0.0.1', httpPort: http, tcpPort: 0, log: memoryLogger(), signal: AbortSignal.timeout(2000) }), /EADDRINUSE/);
  });
});
