// The lab firewall's connection log (src/lab/firewall.ts; docs/dataplane.md, "The firewall's log").
//   Pure: the tcpdump line parser (lines as tcpdump 4.99 printed them on this machine), the rules, the log reader.
//   Lab (root, network namespaces, the real egw processes from dist/ — `npx tsc -p tsconfig.json` first): TCP and UDP
//   connections from pods to the echo server, the restricted address (admitted from node-1's IP, refused from
//   node-2's) and an extra network appear in the log once each, with the source the server saw; kill -9 of the logger:
//   the supervisor restarts it, its old tcpdumps are gone and it logs again; every lab process gets the lab's
//   EGW_FLOW_DIR; lab down removes the flow directory and the log with the state.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseLabFile } from '../../src/lab/labfile.js';
import {
  FIREWALL_LOG_GROUPS,
  firewallLogLine,
  firewallRules,
  formatFirewallTable,
  parseFirewallLog,
  parseTcpdumpLine,
  readFirewallLog,
  tcpdumpArgv,
  type FirewallLogLine,
} from '../../src/lab/firewall.js';
import { labStatus } from '../../src/lab/index.js';
import { ALL_ROLES, labProcesses } from '../../src/lab/roles.js';
import { stateFiles } from '../../src/lab/names.js';
import { isRunning, procStat, readCmdline, type ProcRecord } from '../../src/lab/procs.js';
import { runCli } from '../helpers/cli.js';
import { inNs, LabHarness, run } from '../helpers/e2e.js';
import { suiteGate } from '../helpers/env.js';
import { pod } from '../helpers/resources.js';
import { LAB_POLL, until } from '../helpers/wait.js';

// ---- pure

test('tcpdump lines: TCP (with -q and without), UDP with -q; anything else is an error, never a throw', () => {
  assert.deepEqual(parseTcpdumpLine('1796180336.527492 IP 10.99.0.1.57328 > 10.99.0.3.80: tcp 0'), {
    transport: 'tcp',
    source: { ip: '10.99.0.1', port: 57328 },
    destination: { ip: '10.99.0.3', port: 80 },
  });
  assert.deepEqual(
    parseTcpdumpLine('1796180335.503266 IP 10.99.0.1.59236 > 10.99.0.2.80: Flags [S], seq 3842512475, win 64240, options [mss 1460,sackOK,TS val 4065789703 ecr 0,nop,wscale 10], length 0'),
    { transport: 'tcp', source: { ip: '10.99.0.1', port: 59236 }, destination: { ip: '10.99.0.2', port: 80 } },
  );
  assert.deepEqual(parseTcpdumpLine('1796180336.527628 IP 172.31.0.12.50856 > 198.51.100.20.53: UDP, length 13\n'), {
    transport: 'udp',
    source: { ip: '172.31.0.12', port: 50856 },
    destination: { ip: '198.51.100.20', port: 53 },
  });
  const bad: [string, RegExp][] = [
    // without -q a datagram to port 53 is printed as DNS: nothing says UDP (why the logger passes -q)
    ['1796180336.527489 IP 10.99.0.1.36505 > 10.99.0.2.53: 30840 zoneRef% [b2&3=0x7878] [30840a] [|domain]', /neither TCP nor UDP/],
    ['1796180336.5 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64', /not an IPv4 packet with ports/],
    ['1796180336.5 IP 10.0.0.1.1 > 10.0.0.2.2: ip-proto-132 20', /neither TCP nor UDP/],
    ['1796180336.5 IP 300.0.0.1.1000 > 10.0.0.2.80: tcp 0', /bad IPv4 address 300\.0\.0\.1/],
    ['1796180336.5 IP 10.0.0.1.70000 > 10.0.0.2.80: tcp 0', /bad port 70000/],
    ['1796180336.5 IP6 fd00::1.1000 > fd00::2.80: tcp 0', /not an IPv4 packet/],
    ['listening on nflog:1, link-type NFLOG (Linux netfilter log messages), snapshot length 262144 bytes', /not an IPv4 packet/],
    ['', /not an IPv4 packet/],
  ];
  for (const [line, why] of bad) {
    const r = parseTcpdumpLine(line);
    assert.ok('error' in r, `${line}: ${JSON.stringify(r)}`);
    assert.match(r.error, why, line);
  }
});

test('a log line is stamped with the time egw read it, RFC 3339 with milliseconds', () => {
  const p = parseTcpdumpLine('1796180336.527492 IP 10.99.0.1.57328 > 10.99.0.3.80: tcp 0');
  assert.ok(!('error' in p));
  const at = Date.UTC(2026, 11, 2, 3, 4, 5, 67);
  assert.deepEqual(firewallLogLine(p, 'refuse', at), {
    time: '2026-12-02T03:04:05.067Z',
    verdict: 'refuse',
    transport: 'tcp',
    source: { ip: '10.99.0.1', port: 57328 },
    destination: { ip: '10.99.0.3', port: 80 },
  });
});

test('the rules log the first packet of each new TCP/UDP connection to every external address, by verdict, before the reject', () => {
  const cfg = parseLabFile('name: t1\nnodes: [{name: a}]\nexternal:\n  restricted: {ip: 198.51.100.20, allow: [172.31.0.11/32, 10.10.10.0/30]}\n  networks: [203.0.113.0/24, 192.0.2.0/24]\n');
  const rules = firewallRules(cfg);
  const chain = (name: string) => {
    const m = new RegExp(`\\tchain ${name} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(rules);
    assert.ok(m, `chain ${name} in\n${rules}`);
    return m[1].split('\n').map((l) => l.trim());
  };
  assert.deepEqual(chain('input'), [
    'type filter hook input priority filter; policy accept;',
    'ip daddr 198.51.100.20 ip saddr { 172.31.0.11/32, 10.10.10.0/30 } counter name "restricted_allowed" goto admit',
    'ip daddr 198.51.100.20 counter name "restricted_rejected" goto refuse',
    'ip daddr { 198.51.100.10, 203.0.113.10, 192.0.2.10 } goto admit',
  ]);
  const admit = chain('admit');
  const refuse = chain('refuse');
  for (const [lines, v] of [[admit, 'admit'], [refuse, 'refuse']] as const) {
    const logs = lines.filter((l) => l.includes('log group'));
    assert.equal(logs.length, 2, v);
    // immediate delivery (no 1 s batching: docs/kernel.md §9), only new connections, TCP only their SYN
    for (const l of logs) assert.match(l, new RegExp(`^ct state new .* log group ${FIREWALL_LOG_GROUPS[v]} queue-threshold 1$`), l);
    assert.ok(logs.some((l) => l.includes('tcp flags & (syn | ack) == syn')) && logs.some((l) => l.includes('meta l4proto udp')), v);
    const verdict = lines.findIndex((l) => l === 'accept' || l.includes('reject'));
    assert.ok(verdict > 0 && logs.every((l) => lines.indexOf(l) < verdict), `${v}: the log rules come before the verdict`);
  }
  assert.ok(admit.every((l) => !l.includes('log') || l.includes('ct status & confirmed == 0')), 'a retransmitted SYN is not logged twice');
  assert.deepEqual(admit.at(-1), 'accept');
  assert.deepEqual(refuse.slice(-2), ['meta l4proto tcp reject with tcp reset', 'reject with icmp type admin-prohibited']);
  assert.notEqual(FIREWALL_LOG_GROUPS.admit, FIREWALL_LOG_GROUPS.refuse);
  // no allow list: nothing reaches the restricted address
  assert.doesNotMatch(firewallRules(parseLabFile('name: t1\nnodes: [{name: a}]\nexternal:\n  restricted: {ip: 198.51.100.20, allow: []}\n')), /restricted_allowed" goto/);
});

test('tcpdump dies with the logger: parent-death signal, and no switch to the tcpdump user (which would clear it)', () => {
  const argv = tcpdumpArgv(7);
  assert.deepEqual(argv.slice(0, 5), ['setpriv', '--pdeathsig', 'KILL', '--', 'tcpdump']);
  assert.deepEqual(argv.slice(5), ['-Z', 'root', '-i', 'nflog:7', '-nn', '-l', '-tt', '-q', '-B', '4096']);
});

test('the lab process `firewall`: every lab runs it, in the external namespace, supervised like the others', () => {
  assert.ok(ALL_ROLES.includes('firewall'));
  const config = parseLabFile('name: t1\nnodes: [{name: a}]\n');
  const egw = ['/usr/bin/node', '/repo/bin/egw.js'];
  const state = { config, datastore: 'sqlite:/x.db', hostDatastore: 'sqlite:/x.db', roles: [...ALL_ROLES], file: '/x.yaml', egw, firewall: '', createdAt: '' };
  const spec = labProcesses(state, '/state/t1').find((p) => p.role === 'firewall');
  assert.deepEqual(spec, { kind: 'firewall', role: 'firewall', argv: [...egw, 'lab', 'firewall-logger', '--lab', 't1'], netns: 'egw-t1-ext' });
  assert.equal(labProcesses({ ...state, roles: ['kubelet', 'echo'] }, '/s').find((p) => p.role === 'firewall'), undefined, 'only when the lab runs the role');
});

test('the log reader: lines, corrupt lines named by file:line and skipped, --tail, a lab that is not up', () => {
  const good: FirewallLogLine = { time: '2026-12-02T03:04:05.067Z', verdict: 'admit', transport: 'udp', source: { ip: '172.31.0.11', port: 5000 }, destination: { ip: '203.0.113.10', port: 9999 } };
  const text = [
    JSON.stringify(good),
    '{"time": "2026-12-02T03:04:05.067Z", "verdict": "admit", "transport": "tcp", "source": {"ip": "1.2.3.4", "port": 1}, "desti', // truncated
    JSON.stringify({ ...good, verdict: 'maybe' }),
    JSON.stringify({ ...good, source: { ip: '1.2.3', port: 1 } }),
    JSON.stringify({ ...good, time: 'yesterday' }),
    '',
    JSON.stringify({ ...good, verdict: 'refuse', transport: 'tcp' }),
  ].join('\n');
  const r = parseFirewallLog(text, '/x/firewall.jsonl');
  assert.deepEqual(r.lines, [good, { ...good, verdict: 'refuse', transport: 'tcp' }]);
  assert.deepEqual(r.problems, [
    '/x/firewall.jsonl:2: not JSON (a truncated or corrupt line); skipped',
    '/x/firewall.jsonl:3: field verdict is missing or wrong; skipped',
    '/x/firewall.jsonl:4: field source is missing or wrong; skipped',
    '/x/firewall.jsonl:5: field time is missing or wrong; skipped',
  ]);
  assert.equal(
    formatFirewallTable(r.lines),
    'TIME                       VERDICT   TRANSPORT   SOURCE             DESTINATION\n' +
      '2026-12-02T03:04:05.067Z   admit     udp         172.31.0.11:5000   203.0.113.10:9999\n' +
      '2026-12-02T03:04:05.067Z   refuse    tcp         172.31.0.11:5000   203.0.113.10:9999\n',
  );

  const root = mkdtempSync(join(tmpdir(), 'egw-fw-'));
  try {
    assert.throws(() => readFirewallLog({ lab: 'tzz9', stateRoot: root }), /lab tzz9 is not up/);
    assert.throws(() => readFirewallLog({ lab: 'Bad/Name', stateRoot: root }), /--lab: "Bad\/Name": a lab name is 1-8 characters/);
    const dir = join(root, 'tzz9');
    mkdirSync(dir);
    writeFileSync(stateFiles.config(dir), '{}\n');
    assert.deepEqual(readFirewallLog({ lab: 'tzz9', stateRoot: root }).lines, [], 'up, nothing logged yet');
    writeFileSync(stateFiles.firewallLog(dir), text);
    const tail = readFirewallLog({ lab: 'tzz9', stateRoot: root, tail: 1 });
    assert.deepEqual(tail.lines, [{ ...good, verdict: 'refuse', transport: 'tcp' }]);
    assert.equal(tail.problems.length, 4);
    assert.equal(readFirewallLog({ lab: 'tzz9', stateRoot: root, tail: 0 }).lines.length, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('egw lab firewall: a bad --tail or -o is a usage error naming the flag', async () => {
  for (const [args, why] of [
    [['--tail', 'ten'], /--tail.*whole number/],
    [['--tail', '-1'], /--tail/],
    [['-o', 'yaml'], /-o, --output.*yaml.*Allowed choices are table, json/],
  ] as const) {
    const r = await runCli(['lab', 'firewall', '--lab', 'tzz9', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, why, args.join(' '));
  }
});

// ---- a real lab

/** A lab named `tl<hex>`, whose restricted service admits node-1's IP only. */
class Lab extends LabHarness {
  override readonly name = `tl${randomBytes(3).toString('hex')}`;
  override labFile(extra = ''): string {
    return (
      `name: ${this.name}\nnodes:\n  - {name: node-1, labels: {kubernetes.io/os: linux}}\n  - {name: node-2, labels: {kubernetes.io/os: linux}}\n` +
      `external:\n  restricted: {ip: 198.51.100.20, allow: [172.31.0.11/32]}\n  networks: [203.0.113.0/24]\n${extra}`
    );
  }
}

const ECHO = '198.51.100.10';
const RESTRICTED = '198.51.100.20';
const ONPREM = '203.0.113.10';

/** PIDs of live tcpdump processes whose parent is `ppid` (any parent if undefined), from /proc. */
function tcpdumps(ppid?: number): { pid: number; ppid: number; start: number }[] {
  const out: { pid: number; ppid: number; start: number }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') continue;
    if (readCmdline(pid)?.[0] !== 'tcpdump') continue;
    const pp = Number(rest[1]);
    if (ppid === undefined || pp === ppid) out.push({ pid, ppid: pp, start: Number(rest[19]) });
  }
  return out;
}

/** The tcpdumps (one per NFLOG group) of the logger `rec`, once both are up. */
async function loggerTcpdumps(rec: ProcRecord): Promise<{ pid: number; start: number }[]> {
  return until(`the 2 tcpdumps of the firewall logger (pid ${rec.pid})`, () => {
    const t = tcpdumps(rec.pid);
    return t.length === Object.keys(FIREWALL_LOG_GROUPS).length ? t : undefined;
  }, 20_000, LAB_POLL);
}

/** Waits until the logger's log shows every group listening `times` times (each tcpdump start prints it once). */
async function listening(lab: Lab, times: number): Promise<void> {
  const file = stateFiles.logFile(lab.info.stateDir, 'firewall');
  await until(`the firewall logger listening on its groups (${file})`, () => {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return false;
    }
    return Object.values(FIREWALL_LOG_GROUPS).every((g) => text.split(`listening on nflog:${g},`).length - 1 >= times);
  }, 20_000, LAB_POLL);
}

/** One datagram from `sport` (so the test knows the port the outside sees: masquerade keeps a free port). */
function udpSend(netns: string, sport: number, ip: string, dport: number) {
  const js = `const s=require('dgram').createSocket('udp4');s.bind(${sport},()=>s.send('x',${dport},'${ip}',()=>setTimeout(()=>s.close(),100)))`;
  return inNs(netns, [process.execPath, '-e', js]);
}

async function logLines(lab: Lab): Promise<FirewallLogLine[]> {
  const r = await lab.egw(['lab', 'firewall', '--lab', lab.name, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'no corrupt line');
  return r.stdout.split('\n').filter((l) => l).map((l) => JSON.parse(l) as FirewallLogLine);
}

const key = (l: Pick<FirewallLogLine, 'verdict' | 'transport' | 'source' | 'destination'>) =>
  `${l.verdict} ${l.transport} ${l.source.ip}:${l.source.port} > ${l.destination.ip}:${l.destination.port}`;

const root = suiteGate();
const lab = new Lab();
let n1: { netns: string; ip: string; node: string };
let n2: { netns: string; ip: string; node: string };

describe('the lab firewall log', { skip: root.skip }, () => {
  before(async () => {
    root.check();
    await lab.up();
    // Two pods, one per node: their connections leave with their node's IP (natOutgoing). The first runs a command
    // (so the kubelet starts a container whose environment the flow test reads).
    await lab.store.create(pod('default', 'fw-1', { node: 'node-1', containers: [{ name: 'main', image: 'lab', command: ['sleep', '3600'] }] }));
    await lab.store.create(pod('default', 'fw-2', { node: 'node-2', containers: [{ name: 'main', image: 'lab' }] }));
    n1 = await lab.podReady('default', 'fw-1', 40_000);
    n2 = await lab.podReady('default', 'fw-2', 40_000);
    await listening(lab, 1);
  });
  after(async () => {
    await lab.down();
  });

  test('connections admitted and refused appear once each, with the source the server saw, the destination and the verdict', { timeout: 60_000 }, async () => {
    const t0 = Date.now();
    const sent: number[] = [];
    const seen = async (netns: string, url: string) => {
      sent.push(Date.now());
      const r = await inNs(netns, ['curl', '-sS', '--noproxy', '*', '--max-time', '4', url]);
      assert.equal(r.code, 0, `${url}: ${r.stderr}`);
      return JSON.parse(r.stdout) as { sourceIp: string; sourcePort: number; server: string };
    };
    const echo1 = await seen(n1.netns, `http://${ECHO}/`);
    const echo2 = await seen(n2.netns, `http://${ECHO}/`);
    const restricted1 = await seen(n1.netns, `http://${RESTRICTED}/`);
    const onprem2 = await seen(n2.netns, `http://${ONPREM}/`);
    assert.deepEqual([echo1.sourceIp, echo2.sourceIp, restricted1.sourceIp], ['172.31.0.11', '172.31.0.12', '172.31.0.11'], 'natOutgoing: the node IPs');
    // Refused: the server sees nothing, so the client picks its port (the node's masquerade keeps a free port).
    const port = 40000 + (randomBytes(2).readUInt16BE() % 10000);
    const refused = await inNs(n2.netns, ['curl', '-sS', '--noproxy', '*', '--max-time', '4', '--local-port', String(port), `http://${RESTRICTED}/`]);
    assert.equal(refused.code, 7, `refused with a reset: ${refused.stdout}${refused.stderr}`);
    assert.equal((await udpSend(n2.netns, port + 1, RESTRICTED, 5353)).code, 0);
    assert.equal((await udpSend(n1.netns, port + 2, ONPREM, 9999)).code, 0);
    const t1 = Date.now();

    const want = [
      { verdict: 'admit', transport: 'tcp', source: { ip: echo1.sourceIp, port: echo1.sourcePort }, destination: { ip: ECHO, port: 80 } },
      { verdict: 'admit', transport: 'tcp', source: { ip: echo2.sourceIp, port: echo2.sourcePort }, destination: { ip: ECHO, port: 80 } },
      { verdict: 'admit', transport: 'tcp', source: { ip: restricted1.sourceIp, port: restricted1.sourcePort }, destination: { ip: RESTRICTED, port: 80 } },
      { verdict: 'admit', transport: 'tcp', source: { ip: onprem2.sourceIp, port: onprem2.sourcePort }, destination: { ip: ONPREM, port: 80 } },
      { verdict: 'refuse', transport: 'tcp', source: { ip: '172.31.0.12', port }, destination: { ip: RESTRICTED, port: 80 } },
      { verdict: 'refuse', transport: 'udp', source: { ip: '172.31.0.12', port: port + 1 }, destination: { ip: RESTRICTED, port: 5353 } },
      { verdict: 'admit', transport: 'udp', source: { ip: '172.31.0.11', port: port + 2 }, destination: { ip: ONPREM, port: 9999 } },
    ] as const;
    const lines = await until('every connection in the firewall log', async () => {
      const l = await logLines(lab);
      return want.every((w) => l.some((x) => key(x) === key(w))) ? l : undefined;
    }, 10_000, LAB_POLL);
    for (const w of want) {
      const mine = lines.filter((x) => key(x) === key(w));
      assert.equal(mine.length, 1, `${key(w)} once: ${JSON.stringify(lines, null, 1)}`);
      const at = Date.parse(mine[0].time);
      assert.match(mine[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(at >= t0 - 5 && at <= Date.now(), `${key(w)}: stamped while the test ran (${mine[0].time})`);
    }
    // A figure, not an assertion: from just before each curl started (process start included) to the line's stamp.
    const delays = want.slice(0, 4).map((w, i) => Date.parse(lines.find((x) => key(x) === key(w))!.time) - sent[i]);
    console.log(`# firewall log: ${lines.length} lines for ${want.length} connections (${new Date(t0).toISOString()} – ${new Date(t1).toISOString()}); curl start → stamp: ${delays.join(', ')} ms`);
    assert.doesNotMatch(readFileSync(stateFiles.logFile(lab.info.stateDir, 'firewall'), 'utf8'), /not understood/, 'the logger understood every tcpdump line');
    // The table the CLI prints by default has the same lines.
    const table = await lab.egw(['lab', 'firewall', '--lab', lab.name, '--tail', '3']);
    assert.equal(table.code, 0, table.stderr);
    assert.deepEqual(table.stdout.trimEnd().split('\n')[0].split(/\s+/), ['TIME', 'VERDICT', 'TRANSPORT', 'SOURCE', 'DESTINATION']);
    assert.equal(table.stdout.trimEnd().split('\n').length, 4);
  });

  test('kill -9 of the firewall logger: the supervisor restarts it, none of its tcpdumps is left, and it logs again', { timeout: 60_000 }, async () => {
    const old = lab.record('firewall');
    assert.ok(old && isRunning(old), 'the logger runs');
    const oldDumps = await loggerTcpdumps(old);
    const killedAt = Date.now();
    lab.kill9('firewall');
    const back = await lab.cameBack('firewall', old);
    const restartedMs = Date.parse(back.startedAt) - killedAt;
    // The old tcpdumps died with their parent (their parent-death signal), at once: not on their next packet.
    for (const d of oldDumps) {
      const st = procStat(d.pid);
      assert.ok(!st || st.state === 'Z' || st.start !== d.start, `old tcpdump ${d.pid} is gone`);
    }
    const newDumps = await loggerTcpdumps(back);
    const inExt = (await run(['ip', 'netns', 'pids', lab.info.namespaces.ext])).stdout.split('\n').filter((l) => l).map(Number);
    assert.deepEqual(
      tcpdumps().filter((d) => inExt.includes(d.pid)).map((d) => d.pid).sort(),
      newDumps.map((d) => d.pid).sort(),
      'the only tcpdumps in the external namespace are the new logger\'s',
    );
    await listening(lab, 2);
    const r = await inNs(n1.netns, ['curl', '-sS', '--noproxy', '*', '--max-time', '4', `http://${ECHO}/`]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { sourceIp: string; sourcePort: number };
    const w = { verdict: 'admit', transport: 'tcp', source: { ip: s.sourceIp, port: s.sourcePort }, destination: { ip: ECHO, port: 80 } } as const;
    const lines = await until('the new connection in the log', async () => {
      const l = (await logLines(lab)).filter((x) => key(x) === key(w));
      return l.length ? l : undefined;
    }, 10_000, LAB_POLL);
    assert.equal(lines.length, 1);
    assert.equal(back.restarts, (old.restarts ?? 0) + 1);
    console.log(`# kill -9 of the firewall logger: restarted after ${restartedMs} ms, logging again (both groups listening) ${Date.parse(lines[0].time) - killedAt} ms after the kill`);
  });

  test('every lab process writes flows into the lab\'s directory (EGW_FLOW_DIR), which lab status shows', async () => {
    const flows = stateFiles.flows(lab.info.stateDir);
    assert.ok(existsSync(flows), `${flows} made by lab up`);
    const envOf = (pid: number) => new Map(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((e) => e).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    const roles = ['agent-node-1', 'agent-node-2', 'controller-1', 'kubelet-node-1', 'echo', 'firewall'];
    const container = readdirSync(join(lab.info.stateDir, 'pids')).find((f) => f.startsWith('pod-') && f.endsWith('-main.pid'));
    assert.ok(container, 'the container of fw-1 is recorded');
    for (const role of [...roles, container.replace(/\.pid$/, '')]) {
      const rec = lab.record(role);
      assert.ok(rec && isRunning(rec), `${role} runs`);
      assert.equal(envOf(rec.pid).get('EGW_FLOW_DIR'), flows, role);
    }
    const status = await labStatus({ name: lab.name });
    assert.ok(status.includes(`  flows:      ${flows}\n`), status);
    assert.ok(status.includes(`  firewall:   ${stateFiles.firewallLog(lab.info.stateDir)} `), status);
  });

  test('lab down removes the flow directory and the log with the rest of the state, and leaves no tcpdump', { timeout: 60_000 }, async () => {
    const dir = lab.info.stateDir;
    const dumps = tcpdumps(lab.record('firewall')!.pid);
    assert.equal(dumps.length, 2);
    await lab.down();
    assert.equal(existsSync(stateFiles.flows(dir)), false);
    assert.equal(existsSync(stateFiles.firewallLog(dir)), false);
    for (const d of dumps) {
      const st = procStat(d.pid);
      assert.ok(!st || st.state === 'Z' || st.start !== d.start, `tcpdump ${d.pid} is gone`);
    }
    assert.equal((await run(['ip', 'netns', 'list'])).stdout.includes(`egw-${lab.name}-`), false);
  });
});
