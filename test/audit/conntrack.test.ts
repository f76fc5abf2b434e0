// The conntrack XML parser (src/audit/conntrack.ts) on lines captured from conntrack 1.4.7 on this kernel, in a
// network namespace that masquerades 10.9.1.0/24 to 10.9.2.1 (docs/kernel.md §8): events (-E) and dump lines (-L).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CtXmlParser, parseConntrackXml, parseFlowLine, type CtEntry, type CtParseError } from '../../src/audit/conntrack.js';

/** Real lines, as conntrack printed them (`-o xml,id,ktimestamp`). */
const S = {
  dump_icmp:
    `<flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.9</dst></layer3><layer4 protonum="1" protoname="icmp"></layer4><counters><packets>1</packets><bytes>84</bytes></counters></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.9</src><dst>10.9.2.1</dst></layer3><layer4 protonum="1" protoname="icmp"></layer4><counters><packets>0</packets><bytes>0</bytes></counters></meta><meta direction="independent"><timeout>28</timeout><mark>0</mark><use>2</use><id>2008540642</id><unreplied/><timestamp><start>1796180282342158543</start></timestamp><deltatime>1</deltatime></meta></flow>`,
  dump_tcp:
    `<flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>49560</sport><dport>8000</dport></layer4><counters><packets>6</packets><bytes>323</bytes></counters></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8000</sport><dport>49560</dport></layer4><counters><packets>4</packets><bytes>219</bytes></counters></meta><meta direction="independent"><state>TIME_WAIT</state><timeout>118</timeout><mark>0</mark><use>1</use><id>4262161227</id><assured/><timestamp><start>1796180282310297950</start></timestamp><deltatime>1</deltatime></meta></flow>`,
  icmp_new:
    `<flow type="new"><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="1" protoname="icmp"></layer4></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="1" protoname="icmp"></layer4></meta><meta direction="independent"><timeout>30</timeout><id>2503815680</id><unreplied/></meta></flow>`,
  icmpv6_new:
    `<flow type="new"><meta direction="original"><layer3 protonum="10" protoname="ipv6"><src>fd09:1::2</src><dst>fd09:2::2</dst></layer3><layer4 protonum="58" protoname="icmpv6"></layer4></meta><meta direction="reply"><layer3 protonum="10" protoname="ipv6"><src>fd09:2::2</src><dst>fd09:2::1</dst></layer3><layer4 protonum="58" protoname="icmpv6"></layer4></meta><meta direction="independent"><timeout>30</timeout><id>2985556042</id><unreplied/></meta></flow>`,
  tcp_destroy_user:
    `<flow type="destroy"><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>49560</sport><dport>8000</dport></layer4><counters><packets>6</packets><bytes>323</bytes></counters></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8000</sport><dport>49560</dport></layer4><counters><packets>4</packets><bytes>219</bytes></counters></meta><meta direction="independent"><state>TIME_WAIT</state><timeout>118</timeout><id>4262161227</id><assured/><timestamp><start>1796180282310297950</start><stop>1796180283871680889</stop></timestamp><deltatime>1</deltatime></meta></flow> [USERSPACE] portid=3043612374`,
  tcp_new:
    `<flow type="new"><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>49560</sport><dport>8000</dport></layer4></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8000</sport><dport>49560</dport></layer4></meta><meta direction="independent"><state>SYN_SENT</state><timeout>120</timeout><id>4262161227</id><unreplied/></meta></flow>`,
  tcp_update:
    `<flow type="update"><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>49560</sport><dport>8000</dport></layer4></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8000</sport><dport>49560</dport></layer4></meta><meta direction="independent"><state>ESTABLISHED</state><timeout>432000</timeout><id>4262161227</id><assured/></meta></flow>`,
  udp_destroy_zone:
    `<flow type="destroy"><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="17" protoname="udp"><sport>46758</sport><dport>9000</dport></layer4><counters><packets>1</packets><bytes>29</bytes></counters></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="17" protoname="udp"><sport>9000</sport><dport>46758</dport></layer4><counters><packets>0</packets><bytes>0</bytes></counters></meta><meta direction="independent"><timeout>29</timeout><zone>7</zone><id>388080872</id><unreplied/><timestamp><start>1796180296361390203</start><stop>1796180296895743067</stop></timestamp><deltatime>0</deltatime></meta></flow> [USERSPACE] portid=2240483794`,
  udp_new_zone:
    `<flow type="new"><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="17" protoname="udp"><sport>46758</sport><dport>9000</dport></layer4></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="17" protoname="udp"><sport>9000</sport><dport>46758</dport></layer4></meta><meta direction="independent"><timeout>30</timeout><zone>7</zone><id>388080872</id><unreplied/></meta></flow>`,
  unknown_new_mark:
    `<flow type="new"><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.9.1.2</src><dst>10.9.2.2</dst></layer3><layer4 protonum="253" protoname="unknown"></layer4></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.9.2.2</src><dst>10.9.2.1</dst></layer3><layer4 protonum="253" protoname="unknown"></layer4></meta><meta direction="independent"><timeout>600</timeout><mark>42</mark><id>2254141355</id><unreplied/></meta></flow>`,
  v6_destroy:
    `<flow type="destroy"><meta direction="original"><layer3 protonum="10" protoname="ipv6"><src>fd09:1::2</src><dst>fd09:2::2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>46514</sport><dport>8000</dport></layer4><counters><packets>1</packets><bytes>80</bytes></counters></meta><meta direction="reply"><layer3 protonum="10" protoname="ipv6"><src>fd09:2::2</src><dst>fd09:2::1</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8000</sport><dport>46514</dport></layer4><counters><packets>1</packets><bytes>60</bytes></counters></meta><meta direction="independent"><state>CLOSE</state><timeout>120</timeout><id>2103115998</id><unreplied/><timestamp><start>1796180323621073013</start><stop>1796180323621146388</stop></timestamp><deltatime>0</deltatime></meta></flow>`,
};

const HEADER = '<?xml version="1.0" encoding="utf-8"?>\n<conntrack>\n';
const FOOTER = '</conntrack>\n';

function one(line: string, seenAt = 1): CtEntry {
  const r = parseFlowLine(line, seenAt);
  if (typeof r === 'string') assert.fail(`not parsed: ${r}`);
  return r;
}

test('a TCP NEW: both tuples, the reply destination is the translated source, no counters or times', () => {
  const f = one(S.tcp_new, 42);
  assert.equal(f.type, 'new');
  assert.equal(f.id, 4262161227);
  assert.deepEqual(f.orig, { src: '10.9.1.2', dst: '10.9.2.2', sport: 49560, dport: 8000, proto: 6, protoName: 'tcp' });
  assert.deepEqual(f.reply, { src: '10.9.2.2', dst: '10.9.2.1', sport: 8000, dport: 49560, proto: 6, protoName: 'tcp' });
  assert.equal(f.state, 'SYN_SENT');
  assert.equal(f.unreplied, true);
  assert.equal(f.assured, undefined);
  assert.equal(f.origCounters, undefined);
  assert.equal(f.start, undefined);
  assert.equal(f.seenAt, 42);
});

test('an UPDATE keeps its type and flags', () => {
  const f = one(S.tcp_update);
  assert.equal(f.type, 'update');
  assert.equal(f.state, 'ESTABLISHED');
  assert.equal(f.assured, true);
  assert.equal(f.unreplied, undefined);
});

test('a DESTROY: counters per direction, kernel start/stop in ms (µs kept), the [USERSPACE] suffix', () => {
  const f = one(S.tcp_destroy_user);
  assert.equal(f.type, 'destroy');
  assert.equal(f.id, 4262161227); // the same id as at NEW
  assert.deepEqual(f.origCounters, { packets: 6, bytes: 323 });
  assert.deepEqual(f.replyCounters, { packets: 4, bytes: 219 });
  // <start>1796180282310297950</start><stop>1796180283871680889</stop>
  assert.ok(Math.abs(f.start! - 1796180282310.29795) < 0.001, String(f.start));
  assert.ok(Math.abs(f.stop! - 1796180283871.680889) < 0.001, String(f.stop));
  assert.equal(f.state, 'TIME_WAIT');
  assert.equal(f.userspace, true);
  assert.equal(new Date(f.start!).toISOString(), '2026-12-02T02:58:02.310Z');
});

test('UDP in a zone: ports, zone, no state', () => {
  const n = one(S.udp_new_zone);
  assert.equal(n.orig.protoName, 'udp');
  assert.equal(n.orig.proto, 17);
  assert.equal(n.orig.sport, 46758);
  assert.equal(n.reply.dst, '10.9.2.1');
  assert.equal(n.zone, 7);
  assert.equal(n.state, undefined);
  const d = one(S.udp_destroy_zone);
  assert.equal(d.zone, 7);
  assert.deepEqual(d.replyCounters, { packets: 0, bytes: 0 });
  assert.equal(d.id, n.id);
});

test('an unknown protocol has no ports; a mark is read', () => {
  const f = one(S.unknown_new_mark);
  assert.deepEqual(f.orig, { src: '10.9.1.2', dst: '10.9.2.2', proto: 253, protoName: 'unknown' });
  assert.equal(f.mark, 42);
});

test('ICMP and ICMPv6: conntrack 1.4.7 prints an empty <layer4>, so no ports and no type/code/id', () => {
  const f = one(S.icmp_new);
  assert.deepEqual(f.orig, { src: '10.9.1.2', dst: '10.9.2.2', proto: 1, protoName: 'icmp' });
  const g = one(S.icmpv6_new);
  assert.deepEqual(g.reply, { src: 'fd09:2::2', dst: 'fd09:2::1', proto: 58, protoName: 'icmpv6' });
});

test('ICMP type/code/id are read when a conntrack prints them', () => {
  const line = S.icmp_new.replaceAll('<layer4 protonum="1" protoname="icmp"></layer4>', '<layer4 protonum="1" protoname="icmp"><type>8</type><code>0</code><id>1234</id></layer4>');
  const f = one(line);
  assert.deepEqual(f.orig.icmp, { type: 8, code: 0, id: 1234 });
  assert.deepEqual(f.reply.icmp, { type: 8, code: 0, id: 1234 });
  assert.equal(f.id, 2503815680); // the entry's id is the independent one, not ICMP's
});

test('IPv6 TCP DESTROY (closed before a reply: CLOSE, unreplied)', () => {
  const f = one(S.v6_destroy);
  assert.equal(f.orig.src, 'fd09:1::2');
  assert.equal(f.reply.dst, 'fd09:2::1');
  assert.equal(f.state, 'CLOSE');
  assert.equal(f.unreplied, true);
  assert.equal(f.userspace, undefined);
  assert.ok(f.stop! >= f.start!);
});

test('dump lines (-L) have no type attribute: type dump, counters so far, start without stop, mark 0', () => {
  const f = one(S.dump_tcp);
  assert.equal(f.type, 'dump');
  assert.deepEqual(f.origCounters, { packets: 6, bytes: 323 });
  assert.ok(f.start! > 0);
  assert.equal(f.stop, undefined);
  assert.equal(f.mark, 0);
  assert.equal(f.assured, true);
  const g = one(S.dump_icmp);
  assert.equal(g.type, 'dump');
  assert.equal(g.unreplied, true);
  assert.deepEqual(g.replyCounters, { packets: 0, bytes: 0 });
});

test('the stream: header, flows, footer, in chunks split at every possible place', () => {
  const lines = [S.tcp_new, S.udp_new_zone, S.tcp_destroy_user, S.unknown_new_mark];
  const text = HEADER + lines.join('\n') + '\n' + FOOTER;
  const whole = parseConntrackXml(text);
  assert.equal(whole.errors.length, 0);
  assert.deepEqual(
    whole.flows.map((f) => [f.type, f.id]),
    [
      ['new', 4262161227],
      ['new', 388080872],
      ['destroy', 4262161227],
      ['new', 2254141355],
    ],
  );
  for (let cut = 0; cut <= text.length; cut += 7) {
    for (const cut2 of [cut + 1, cut + 333]) {
      const p = new CtXmlParser({ now: () => 5 });
      const got = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut, cut2)), ...p.push(text.slice(cut2)), ...p.end()];
      assert.deepEqual(got, whole.flows.map((f) => ({ ...f, seenAt: 5 })), `cut at ${cut}/${cut2}`);
      assert.equal(p.errorCount, 0);
    }
  }
});

test('one character at a time gives the same flows', () => {
  const text = HEADER + S.dump_tcp + '\n' + S.v6_destroy + '\r\n';
  const p = new CtXmlParser({ now: () => 0 });
  const got: CtEntry[] = [];
  for (const ch of text) got.push(...p.push(ch));
  got.push(...p.end());
  assert.equal(got.length, 2);
  assert.equal(got[1].orig.src, 'fd09:1::2');
});

test('seenAt comes from now(), once per chunk', () => {
  let t = 100;
  const p = new CtXmlParser({ now: () => t++ });
  const a = p.push(S.tcp_new + '\n' + S.tcp_update + '\n');
  const b = p.push(S.tcp_destroy_user + '\n');
  assert.deepEqual([...a, ...b].map((f) => f.seenAt), [100, 100, 101]);
});

test('a last line without its newline is read at end(); a truncated one is an error', () => {
  const p = new CtXmlParser();
  assert.deepEqual(p.push(S.tcp_new), []);
  assert.equal(p.end().length, 1);
  const q = new CtXmlParser();
  q.push(HEADER + S.tcp_new.slice(0, 200));
  assert.deepEqual(q.end(), []);
  assert.equal(q.errors.length, 1);
  assert.match(q.errors[0].reason, /no <\/flow>/);
  assert.equal(q.errors[0].line, 3);
});

test('malformed lines are reported with their number, reason and text, and never stop the stream', () => {
  const bad: [string, RegExp][] = [
    ['conntrack v1.4.7 (conntrack-tools): 13 flow events have been shown.', /not a <flow> line/],
    [S.tcp_new.replace('type="new"', 'type="weird"'), /unknown flow type "weird"/],
    [S.tcp_new.replace('<id>4262161227</id>', ''), /no <id>/],
    [S.tcp_new.replace('<sport>49560</sport>', '<sport>70000</sport>'), /bad <sport> "70000"/],
    [S.tcp_new.replace('<dport>8000</dport>', '<dport>-1</dport>'), /bad <dport> "-1"/],
    [S.tcp_destroy_user.replace('<packets>6</packets>', '<packets>six</packets>'), /bad <packets> "six"/],
    [S.tcp_destroy_user.replace('<start>1796180282310297950</start>', '<start>17961x</start>'), /bad timestamp <start>/],
    [S.tcp_new.replace('<src>10.9.1.2</src><dst>10.9.2.2</dst>', ''), /original tuple has no <src>\/<dst>/],
    [S.tcp_new.replace('protonum="6" protoname="tcp"', 'protonum="6"'), /without protonum\/protoname/],
    [S.tcp_new.replace('direction="reply"', 'direction="sideways"'), /a <meta direction="original\|reply\|independent"> is missing/],
    [S.tcp_new + ' trailing junk', /unexpected text after <\/flow>/],
    [S.unknown_new_mark.replace('<mark>42</mark>', '<mark>0x2a</mark>'), /bad <mark> "0x2a"/],
    ['<flow type="new"><meta direction="original"><layer3', /no <\/flow>/],
  ];
  const errors: CtParseError[] = [];
  const p = new CtXmlParser({ onError: (e) => errors.push(e) });
  const text = HEADER + bad.map(([l]) => l + '\n' + S.tcp_update + '\n').join('');
  const flows = p.push(text);
  assert.equal(flows.length, bad.length, 'every good line between the bad ones is read');
  assert.equal(errors.length, bad.length);
  assert.equal(p.errorCount, bad.length);
  assert.equal(p.errors.length, 0, 'with onError nothing is kept');
  bad.forEach(([line, re], i) => {
    assert.match(errors[i].reason, re, `line ${i}: ${errors[i].reason}`);
    assert.equal(errors[i].line, 3 + 2 * i);
    assert.equal(errors[i].text, line.length > 300 ? line.slice(0, 300) + '…' : line);
  });
});

test('unknown elements (a newer conntrack) are skipped', () => {
  const line = S.dump_tcp.replace('<use>1</use>', '<use>1</use><secctx><name>system_u</name></secctx><labels></labels><helper>ftp</helper>');
  const f = one(line);
  assert.equal(f.id, 4262161227);
  assert.equal(f.state, 'TIME_WAIT');
});

test('a generated stream of many flows: every id back, in order', () => {
  const n = 5000;
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const src = S.tcp_destroy_user;
    lines.push(src.replace('<id>4262161227</id>', `<id>${i + 1}</id>`).replace(/<sport>49560<\/sport>/, `<sport>${(i % 60000) + 1024}</sport>`));
  }
  const text = HEADER + lines.join('\n') + '\n' + FOOTER;
  const p = new CtXmlParser();
  const got: CtEntry[] = [];
  for (let i = 0; i < text.length; i += 65536) got.push(...p.push(text.slice(i, i + 65536)));
  got.push(...p.end());
  assert.equal(p.errorCount, 0);
  assert.deepEqual(got.map((f) => f.id), Array.from({ length: n }, (_, i) => i + 1));
  assert.deepEqual(got.map((f) => f.orig.sport), Array.from({ length: n }, (_, i) => (i % 60000) + 1024));
});

test('an overlong line is reported once and dropped; the lines after it are read', () => {
  const p = new CtXmlParser();
  const huge = 'x'.repeat(100_000);
  const got: CtEntry[] = [];
  got.push(...p.push(S.tcp_new + '\n' + huge.slice(0, 40_000)));
  got.push(...p.push(huge.slice(40_000)));
  got.push(...p.push(huge + '\n' + S.tcp_update + '\n'));
  got.push(...p.end());
  assert.deepEqual(got.map((f) => f.type), ['new', 'update']);
  assert.equal(p.errors.length, 1);
  assert.match(p.errors[0].reason, /line longer than 65536 characters/);
  assert.equal(p.errors[0].line, 2);
  // The line numbers go on counting after it.
  p.push('junk\n');
  assert.equal(p.errors[1].line, 4);
});
