// src/audit/ctsource.ts against the real kernel (docs/kernel.md §8), in natlab.ts's topology: a client namespace, a
// router namespace that masquerades, a server namespace running the lab echo server; all `egw-tc<6 hex>-…`, removed
// after. The connections come from test/helpers/connflood.ts run in the client namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CtEntry } from '../../src/audit/conntrack.js';
import { CONNTRACK, conntrackCount, CT_EVENT_BUFFER_BYTES, dumpConntrack, enableConntrackAccounting, netlinkState, parseNetlink, startConntrackEvents, tuneEventSocket, type CtEvents, type CtOverflow } from '../../src/audit/ctsource.js';
import { suiteGate, VERBOSE } from '../helpers/env.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';
import { NatLab, readRecs } from './natlab.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const gate = suiteGate(['ip', 'nft', 'conntrack']);

const lab = new NatLab('tc');
const TAG = lab.tag;
const R = lab.router;
const CLIENT = lab.clientIp;
const SERVER = lab.serverIp;
const NAT = lab.natIp; // the router's address toward the server: what masquerade gives the server
const WRAP_R = ['ip', 'netns', 'exec', R];
const sh = (argv: string[], input?: string) => lab.sh(argv, input);
const runFlood = (args: string[], name: string) => lab.startFlood(args, name);

/** A reader of the router's events that keeps everything it was told. */
function watch(opts: { eventBufferBytes?: number | null } = {}): { ev: CtEvents; flows: CtEntry[]; overflows: CtOverflow[]; errors: string[]; notes: string[]; exits: { code: number | null; signal: string | null; stderrTail: string }[] } {
  const notes: string[] = [];
  const flows: CtEntry[] = [];
  const overflows: CtOverflow[] = [];
  const errors: string[] = [];
  const exits: { code: number | null; signal: string | null; stderrTail: string }[] = [];
  const ev = startConntrackEvents({
    wrap: WRAP_R,
    ...opts,
    onFlows: (f) => flows.push(...f),
    onOverflow: (o) => overflows.push(o),
    onError: (m) => errors.push(m),
    onNote: (m) => notes.push(m),
    onExit: (code, signal, stderrTail) => exits.push({ code, signal, stderrTail }),
  });
  return { ev, flows, overflows, errors, notes, exits };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// /proc/<pid>/net/netlink as read in a router namespace while conntrack -E (pid 4072, sockets 2061342 and 2061343)
// was stopped during a flood: its event socket (groups 5 = NEW|DESTROY) had dropped 5835 messages.
const NETLINK = `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000943f53e9 0   0          00000000 0        0        0     2        0        2059744
0000000011a7f888 12  3606204948 00000005 212480   0        0     2        5835     2061343
00000000d5fe5865 12  3609901113 00000007 0        0        0     2        3838     2059120
000000001f125f50 12  4072       00000000 0        0        0     2        0        2061342
0000000053544ebc 12  3815       00000000 0        0        0     2        0        2059119
000000000eb7c3a7 16  0          00000000 0        0        0     2        7        2061344
`;

test('parseNetlink sums the Drops of the given NETLINK_NETFILTER sockets only, and sees their subscription', () => {
  assert.deepEqual(parseNetlink(NETLINK, new Set(['2061342', '2061343'])), { drops: 5835, eventInodes: ['2061343'] });
  assert.deepEqual(parseNetlink(NETLINK, new Set(['2061342'])), { drops: 0, eventInodes: [] });
  assert.equal(parseNetlink(NETLINK, new Set(['2061344'])), null, 'not a netfilter socket');
  assert.equal(parseNetlink(NETLINK, new Set(['1'])), null);
  assert.equal(parseNetlink('garbage\n', new Set(['2061343'])), null);
});

// A stand-in for `ip netns exec NS`: `sh -c SCRIPT sh` ignores the conntrack argv after it and plays conntrack.
const fake = (script: string): string[] => ['sh', '-c', script, 'sh'];
const FLOW = `<flow type="new"><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>35076</sport><dport>8000</dport></layer4></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8000</sport><dport>35076</dport></layer4></meta><meta direction="independent"><state>SYN_SENT</state><timeout>120</timeout><id>2273832333</id><unreplied/></meta></flow>`;

test('the event reader plumbing: flows, a bad line, the ENOBUFS warning, other stderr, the exit', async () => {
  const script = `printf '%s\\n' '<?xml version="1.0" encoding="utf-8"?>' '<conntrack>' '${FLOW}' 'garbage'
printf '%s\\n' 'WARNING: We have hit ENOBUFS! We are losing events.' 'This message means that the current netlink socket buffer size is too small.' 'Please, check --buffer-size in conntrack(8) manpage.' 'something odd' >&2
printf '%s\\n' '${FLOW.replace('2273832333', '7')}' '</conntrack>'
echo 'conntrack v1.4.7 (conntrack-tools): 2 flow events have been shown.' >&2
exit 3`;
  const flows: CtEntry[] = [];
  const overflows: CtOverflow[] = [];
  const errors: string[] = [];
  const exit = new Promise<[number | null, string | null, string]>((resolve) => {
    startConntrackEvents({ wrap: fake(script), now: () => 99, onFlows: (f) => flows.push(...f), onOverflow: (o) => overflows.push(o), onError: (m) => errors.push(m), onExit: (c, sig, tail) => resolve([c, sig, tail]) });
  });
  const [code, signal, tail] = await exit;
  assert.equal(code, 3);
  assert.equal(signal, null);
  assert.match(tail, /2 flow events have been shown/);
  assert.deepEqual(flows.map((f) => [f.type, f.id, f.seenAt]), [['new', 2273832333, 99], ['new', 7, 99]]);
  assert.deepEqual(overflows, [{ at: 99, dropsDelta: null, source: 'enobufs' }]);
  assert.equal(errors.length, 2, errors.join('\n'));
  assert.match(errors[0], /^conntrack output line 4: not a <flow> line: garbage$/);
  assert.equal(errors[1], 'conntrack: something odd');
});

test('a reader that cannot start throws; a dump or a count that fails rejects with the command and its stderr', async () => {
  assert.throws(() => startConntrackEvents({ wrap: ['/nonexistent/egw-wrap'], onFlows() {}, onOverflow() {}, onError() {}, onExit() {} }), /cannot start \/nonexistent\/egw-wrap/);
  await assert.rejects(dumpConntrack({ wrap: fake('echo boom >&2; exit 3') }), /conntrack -L --src-nat -o xml,id,ktimestamp failed \(exit 3\): boom/);
  await assert.rejects(dumpConntrack({ wrap: fake(`echo '${FLOW}'; echo '<flow type="new"></flow>'`) }), /: 1 line\(s\) could not be read; line 2: a <meta direction="original\|reply\|independent"> is missing: <flow type="new"><\/flow>$/);
  const ok = await dumpConntrack({ wrap: fake(`echo '${FLOW.replace(' type="new"', '')}'`) });
  assert.deepEqual(ok.map((f) => [f.type, f.id]), [['dump', 2273832333]]);
  await assert.rejects(conntrackCount({ wrap: fake('echo many') }), /not a count: "many"/);
  assert.equal(await conntrackCount({ wrap: fake('echo 42') }), 42);
});

describe('conntrack in a masquerading namespace', { skip: gate.skip }, () => {
  before(async () => {
    gate.check();
    try {
      await lab.up();
    } catch (e) {
      await lab.down();
      throw e;
    }
  });
  after(() => lab.down());

  test('enableConntrackAccounting sets acct and timestamp in that namespace; a missing namespace is a clear error', async () => {
    await enableConntrackAccounting(WRAP_R);
    const v = await sh(['ip', 'netns', 'exec', R, 'sysctl', '-n', 'net.netfilter.nf_conntrack_acct', 'net.netfilter.nf_conntrack_timestamp']);
    assert.deepEqual(v.trim().split('\n'), ['1', '1']);
    await assert.rejects(enableConntrackAccounting(['ip', 'netns', 'exec', `${TAG}-nope`]), /cannot enable conntrack accounting: .*egw-tc[0-9a-f]{6}-nope/);
  });

  test('ready() raises the event socket\'s buffer (conntrack 1.4.7\'s --buffer-size sets its other socket); a raise that cannot be done says why', async () => {
    const w = watch();
    try {
      await w.ev.ready();
      assert.deepEqual(w.notes, []);
      // the event socket: conntrack's NETLINK_NETFILTER socket with groups; its port id, as ss prints it (signed)
      const fds = new Set(readdirSync(`/proc/${w.ev.pid}/fd`).map((f) => /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${w.ev.pid}/fd/${f}`))?.[1]));
      const row = readFileSync(`/proc/${w.ev.pid}/net/netlink`, 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).find((c) => c[1] === '12' && fds.has(c[9]) && Number.parseInt(c[3]!, 16) !== 0);
      assert.ok(row, 'conntrack has a subscribed socket');
      const port = Number(row[2]) | 0;
      const ss = await sh([...WRAP_R, 'ss', '-f', 'netlink', '-m']);
      const rb = new RegExp(`nft:${port}\\s.*\\brb(\\d+)`).exec(ss);
      assert.ok(rb, ss);
      assert.equal(Number(rb[1]), 2 * CT_EVENT_BUFFER_BYTES, 'the kernel doubles what it is given');
      const gone = await tuneEventSocket(2 ** 22 + 7, [4], CT_EVENT_BUFFER_BYTES);
      assert.ok('error' in gone && /No such process/.test(gone.error), JSON.stringify(gone));
      const noFd = await tuneEventSocket(w.ev.pid, [999], CT_EVENT_BUFFER_BYTES);
      assert.ok('error' in noFd && /pidfd_getfd of fd 999: Bad file descriptor/.test(noFd.error), JSON.stringify(noFd));
    } finally {
      await w.ev.stop();
    }
  });

  test('the SNAT filter drops untranslated entries\' events in the kernel and keeps translated ones', async () => {
    // A reader without --src-nat prints whatever the kernel queues to it: with the filter, only translated entries.
    const seen = async (filter: boolean, sport: number): Promise<string> => {
      const ct = spawn('ip', ['netns', 'exec', R, CONNTRACK, '-E', '-e', 'NEW', '-p', 'udp', '-o', 'xml'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      ct.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      try {
        const fds = await until('the reader subscribed', () => netlinkState(ct.pid!)?.eventFds.length ? netlinkState(ct.pid!)!.eventFds : undefined, 10_000, LAB_POLL);
        if (filter) {
          const r = await tuneEventSocket(ct.pid!, fds, null);
          assert.ok('bytes' in r, JSON.stringify(r));
        }
        const ins = (extra: string[], port: number) => sh([...WRAP_R, CONNTRACK, '-I', '-p', 'udp', '-s', '127.0.0.2', '-d', '127.0.0.3', '--sport', String(port), '--dport', '9', ...extra, '-t', '5']);
        await ins([], sport); // untranslated
        await ins(['--src-nat', '127.0.0.4'], sport + 1); // translated
        await until('the translated entry\'s NEW', () => out.includes(`<sport>${sport + 1}</sport>`) || undefined, 10_000, LAB_POLL);
        await sleep(200);
        return out;
      } finally {
        ct.kill('SIGTERM');
      }
    };
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const plain = await seen(false, port);
    assert.ok(plain.includes(`<sport>${port}</sport>`), 'without the filter the untranslated entry is printed (the check can fail)');
    const filtered = await seen(true, port + 2);
    assert.ok(!filtered.includes(`<sport>${port + 2}</sport>`), `with the filter the untranslated entry is not queued: ${filtered}`);
    assert.ok(filtered.includes(`<sport>${port + 3}</sport>`));
  });

  test('a TCP connection: NEW with the translated source, then DESTROY with counters and kernel start/stop', async () => {
    await enableConntrackAccounting(WRAP_R);
    const w = watch();
    try {
      await w.ev.ready(); // a connection before conntrack's subscription would give no event
      const { done } = runFlood(['--to', `${SERVER}:7`, '--duration', '10', '--count', '1'], 'one');
      const { out, recs } = await done;
      assert.equal(out.made, 1, JSON.stringify(out));
      const port = recs[0].port;
      const isOurs = (f: CtEntry) => f.orig.src === CLIENT && f.orig.sport === port && f.orig.dport === 7;
      const nw = await until(`NEW of port ${port} (seen: ${w.flows.length})`, () => w.flows.find((f) => f.type === 'new' && isOurs(f)), 10_000, LAB_POLL);
      assert.equal(nw.orig.dst, SERVER);
      assert.equal(nw.orig.protoName, 'tcp');
      assert.equal(nw.reply.src, SERVER);
      assert.equal(nw.reply.dst, NAT, 'the reply goes to the translated source');
      assert.equal(typeof nw.reply.dport, 'number');
      assert.equal(nw.origCounters, undefined);
      // A closed connection stays in TIME_WAIT for 120 s: delete it to get its DESTROY now.
      await sh([...WRAP_R, 'conntrack', '-D', '-p', 'tcp', '--orig-src', CLIENT, '--orig-port-src', String(port)]);
      const ds = await until(`DESTROY of port ${port}`, () => w.flows.find((f) => f.type === 'destroy' && isOurs(f)), 10_000, LAB_POLL);
      assert.equal(ds.id, nw.id);
      assert.equal(ds.reply.dst, NAT);
      assert.equal(ds.reply.dport, nw.reply.dport);
      assert.ok(ds.origCounters!.packets >= 3, JSON.stringify(ds.origCounters)); // SYN, ACK, data, FIN …
      assert.ok(ds.replyCounters!.packets >= 2, JSON.stringify(ds.replyCounters));
      assert.ok(ds.origCounters!.bytes > 0 && ds.replyCounters!.bytes > 0);
      assert.ok(ds.start! <= ds.stop!, `${ds.start} <= ${ds.stop}`);
      // The kernel's CLOCK_REALTIME start is the SYN: inside the client's own connect…answer window (1 s slack).
      assert.ok(Math.abs(ds.start! - recs[0].start) < 1000, `start ${ds.start} vs client ${recs[0].start}`);
      assert.equal(ds.userspace, true);
      // An untranslated connection (the client to the router itself: no masquerade) gives no event (--src-nat).
      const local = runFlood(['--to', '10.9.1.1:7', '--duration', '3', '--count', '1'], 'local');
      await local.done;
      const seen = await sh([...WRAP_R, 'conntrack', '-L', '-d', '10.9.1.1']).catch(() => '');
      await sleep(500);
      assert.equal(w.flows.filter((f) => f.orig.dst === '10.9.1.1').length, 0, `events for an untranslated connection (the table had: ${seen.trim() || 'none left'})`);
      assert.deepEqual(w.errors, []);
    } finally {
      await w.ev.stop();
    }
    assert.equal(w.exits.length, 1);
    assert.match(w.exits[0].stderrTail, /flow events have been shown/);
    assert.equal(alive(w.ev.pid), false);
  });

  test('a dump shows an open connection with counters and start, no stop; the count includes it', async () => {
    await enableConntrackAccounting(WRAP_R);
    const { done, recFile } = runFlood(['--to', `${SERVER}:7`, '--duration', '5', '--count', '1', '--hold'], 'hold');
    const rec = await until('the held connection', () => readRecs(recFile)[0], 15_000, LAB_POLL);
    const dump = await dumpConntrack({ wrap: WRAP_R });
    const e = dump.find((f) => f.orig.src === CLIENT && f.orig.sport === rec.port);
    assert.ok(e, `no dump entry for port ${rec.port} among ${dump.length}`);
    assert.equal(e.type, 'dump');
    assert.equal(e.state, 'ESTABLISHED');
    assert.equal(e.reply.dst, NAT);
    assert.ok(e.origCounters!.packets >= 3);
    assert.ok(e.start! > 0);
    assert.equal(e.stop, undefined);
    assert.ok((await conntrackCount({ wrap: WRAP_R })) >= 1);
    await done;
  });

  test('overflow: with conntrack stopped while thousands of connections open, ENOBUFS and a Drops rise are reported', async () => {
    // the default socket size, which 3,000 connections overflow (the raised one holds tens of thousands of events)
    const w = watch({ eventBufferBytes: null });
    try {
      await w.ev.ready();
      await until('the first Drops read', () => w.ev.drops() !== null, 10_000, LAB_POLL);
      const before = w.flows.length;
      process.kill(w.ev.pid, 'SIGSTOP');
      let out: { made: number };
      try {
        ({ out } = await runFlood(['--to', `${SERVER}:7`, '--duration', '30', '--count', '3000', '--concurrency', '50', '--rst'], 'flood').done);
      } finally {
        process.kill(w.ev.pid, 'SIGCONT');
      }
      assert.ok(out.made >= 2000, JSON.stringify(out));
      await until(() => `an ENOBUFS and a drops overflow (got ${JSON.stringify(w.overflows)})`, () => w.overflows.some((o) => o.source === 'enobufs') && w.overflows.some((o) => o.source === 'drops'), 15_000, LAB_POLL);
      const dropped = w.overflows.filter((o) => o.source === 'drops').reduce((s, o) => s + o.dropsDelta!, 0);
      assert.ok(dropped > 0);
      assert.equal(w.ev.drops(), dropped, 'drops() is the sum of the deltas reported');
      // Every NEW is either delivered or counted as dropped (DESTROYs of older entries may be among the drops).
      await sleep(1500);
      const news = w.flows.slice(before).filter((f) => f.type === 'new' && f.orig.src === CLIENT && f.orig.dport === 7).length;
      assert.ok(news + dropped >= out.made, `delivered ${news} + dropped ${dropped} >= made ${out.made}`);
      assert.ok(news < out.made, 'some events were lost (else the test did not overflow anything)');
      if (VERBOSE) console.log({ made: out.made, news, dropped, overflows: w.overflows.length });
    } finally {
      await w.ev.stop();
    }
  });

  test('conntrack dies with its parent: kill -9 of the process that started it', async () => {
    const script = `import { startConntrackEvents } from ${JSON.stringify(join(ROOT, 'src/audit/ctsource.ts'))};
const ev = startConntrackEvents({ wrap: ${JSON.stringify(WRAP_R)}, onFlows() {}, onOverflow() {}, onError() {}, onExit() {} });
console.log(ev.pid);
setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    parent.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const pid = Number(await until('the child conntrack pid', () => /^\d+\n/.exec(out)?.[0], 30_000, LAB_POLL));
    await until('conntrack running', () => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('conntrack\0'), 10_000, { everyMs: 50, retryErrors: true });
    const gone = new Promise((r) => parent.once('exit', r));
    parent.kill('SIGKILL');
    await gone;
    try {
      await until(`conntrack ${pid} gone after its parent was killed`, () => !alive(pid), 5000, LAB_POLL);
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});
