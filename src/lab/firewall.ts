// The lab firewall (nft `table ip egw-lab` in egw-<lab>-ext) and its connection log (SPEC §6; docs/dataplane.md,
// "The firewall's log"):
//
//   firewallRules      every new TCP/UDP connection to the external host's addresses (echo, restricted, the extra
//                      networks) is logged to NFLOG, group FIREWALL_LOG_GROUPS.admit or .refuse (before the reject)
//   egw lab firewall-logger   (the lab process `firewall`, in the ext namespace) one tcpdump per group; one JSON
//                      line per connection appended to stateFiles.firewallLog
//   egw lab firewall   prints that log
//
// The pure part (rules, tcpdump's command line, its line parser, the log reader and the table) comes first; the
// processes after it.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { parseIPv4 } from '../api/ipv4.js';
import type { Logger } from '../log.js';
import { errText, sleep } from '../util.js';
import type { LabConfig } from './labfile.js';
import { labStateDir, labStateRoot, stateFiles } from './names.js';
import { RESTART, restartBackoff } from './procs.js';

export const FIREWALL_TABLE = 'egw-lab';

export type FirewallVerdict = 'admit' | 'refuse';

/** The NFLOG group of each verdict (groups are per network namespace: these are the ext namespace's own). */
export const FIREWALL_LOG_GROUPS: Readonly<Record<FirewallVerdict, number>> = { admit: 1, refuse: 2 };

/** One line of the firewall's log (stateFiles.firewallLog): one connection the firewall admitted or refused. */
export interface FirewallLogLine {
  /** RFC 3339 with milliseconds: when egw read it from tcpdump (docs/kernel.md §9). */
  time: string;
  verdict: FirewallVerdict;
  transport: 'tcp' | 'udp';
  source: { ip: string; port: number };
  destination: { ip: string; port: number };
}

/**
 * The lab firewall. Only restricted.allow may reach the restricted address (TCP refused with a reset, anything else
 * with ICMP admin-prohibited); every address of the external host admits everything else. The first packet of each
 * new TCP/UDP connection is logged to its verdict's NFLOG group:
 * - `ct state new` and, for TCP, a SYN without ACK: a connection's first packet, not a stray segment that conntrack
 *   would pick up mid-stream;
 * - admitted: also `ct status ! confirmed` — a retransmitted SYN (or a later datagram before any reply) meets the
 *   entry the first packet confirmed and is not logged again; refused packets are dropped before confirmation, so
 *   each refused attempt is one line;
 * - `queue-threshold 1`: the kernel hands each message to tcpdump at once instead of batching up to 1 s
 *   (docs/kernel.md §9).
 * The counters restricted_allowed and restricted_rejected count packets, as before.
 */
export function firewallRules(cfg: LabConfig): string {
  const r = cfg.external.restricted;
  const open = [cfg.external.echo, ...cfg.external.networks.map((n) => n.echo)];
  const log = (v: FirewallVerdict, confirmedCheck: boolean) => {
    const pre = `\t\tct state new${confirmedCheck ? ' ct status & confirmed == 0' : ''}`;
    const stmt = `log group ${FIREWALL_LOG_GROUPS[v]} queue-threshold 1`;
    return [`${pre} tcp flags & (syn | ack) == syn ${stmt}`, `${pre} meta l4proto udp ${stmt}`];
  };
  const lines = [
    `table ip ${FIREWALL_TABLE} {`,
    `\tcounter restricted_allowed {`,
    `\t}`,
    `\tcounter restricted_rejected {`,
    `\t}`,
    `\tchain input {`,
    `\t\ttype filter hook input priority filter; policy accept;`,
  ];
  if (r.allow.length) lines.push(`\t\tip daddr ${r.ip} ip saddr { ${r.allow.join(', ')} } counter name "restricted_allowed" goto admit`);
  lines.push(
    `\t\tip daddr ${r.ip} counter name "restricted_rejected" goto refuse`,
    `\t\tip daddr { ${open.join(', ')} } goto admit`,
    `\t}`,
    `\tchain admit {`,
    ...log('admit', true),
    `\t\taccept`,
    `\t}`,
    `\tchain refuse {`,
    ...log('refuse', false),
    `\t\tmeta l4proto tcp reject with tcp reset`,
    `\t\treject with icmp type admin-prohibited`,
    `\t}`,
    `}`,
  );
  return lines.join('\n') + '\n';
}

/**
 * The tcpdump that reads one NFLOG group (docs/kernel.md §9): `-q` prints `tcp N` / `UDP, length N` instead of
 * decoding the payload (without it a datagram to port 53 is printed as DNS, with no word saying UDP); `-Z root` keeps
 * it from switching to the tcpdump user, which would clear the parent-death signal that `setpriv --pdeathsig KILL`
 * gives it — so a kill -9 of the logger takes its tcpdumps with it (they would otherwise keep the groups bound, and
 * a second listener of a group is refused); `-B 4096`: a 4 MiB netlink buffer, so that a burst the logger reads late
 * is not dropped by the kernel (the default 208 KiB lost 2.7 % of 12,928 connections in 5 s).
 */
export function tcpdumpArgv(group: number): string[] {
  return ['setpriv', '--pdeathsig', 'KILL', '--', 'tcpdump', '-Z', 'root', '-i', `nflog:${group}`, '-nn', '-l', '-tt', '-q', '-B', '4096'];
}

export type TcpdumpPacket = Omit<FirewallLogLine, 'time' | 'verdict'>;

const PACKET = /^\d+\.\d+ IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): (.*)$/;

function port(text: string): number | undefined {
  const n = Number(text);
  return text.length <= 5 && Number.isInteger(n) && n >= 0 && n <= 65535 ? n : undefined;
}

/**
 * One line of `tcpdump -nn -l -tt [-q]` on an NFLOG group, e.g.
 * `1796180336.527492 IP 10.99.0.1.57328 > 10.99.0.3.80: tcp 0` (with -q; `Flags [S], …` without) or
 * `… IP 10.99.0.1.50856 > 10.99.0.3.53: UDP, length 13`. Returns the connection, or why the line is not one.
 */
export function parseTcpdumpLine(line: string): TcpdumpPacket | { error: string } {
  const m = PACKET.exec(line.trim());
  if (!m) return { error: 'not an IPv4 packet with ports (expected "<time> IP <a.b.c.d>.<port> > <a.b.c.d>.<port>: …")' };
  const [, sip, sport, dip, dport, rest] = m;
  for (const ip of [sip, dip]) if (parseIPv4(ip) === undefined) return { error: `bad IPv4 address ${ip}` };
  const sp = port(sport);
  const dp = port(dport);
  if (sp === undefined || dp === undefined) return { error: `bad port ${sp === undefined ? sport : dport}` };
  const transport = /^(tcp \d+|Flags \[)/.test(rest) ? 'tcp' : /^UDP\b/.test(rest) ? 'udp' : undefined;
  if (!transport) return { error: `neither TCP nor UDP: ${JSON.stringify(rest.slice(0, 40))}` };
  return { transport, source: { ip: sip, port: sp }, destination: { ip: dip, port: dp } };
}

/** The log line for a packet tcpdump printed, stamped with the time egw read it (ms since the epoch). */
export function firewallLogLine(p: TcpdumpPacket, verdict: FirewallVerdict, readAtMs: number): FirewallLogLine {
  return { time: new Date(readAtMs).toISOString(), verdict, transport: p.transport, source: { ...p.source }, destination: { ...p.destination } };
}

function isEndpoint(v: unknown): v is { ip: string; port: number } {
  const e = v as { ip?: unknown; port?: unknown } | null;
  return !!e && typeof e.ip === 'string' && parseIPv4(e.ip) !== undefined && typeof e.port === 'number' && port(String(e.port)) !== undefined;
}

/** Reads the firewall log's text: its lines, and one problem (`file:line: why`) per line that is not a log line. */
export function parseFirewallLog(text: string, file: string): { lines: FirewallLogLine[]; problems: string[] } {
  const lines: FirewallLogLine[] = [];
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    let v: Partial<FirewallLogLine>;
    try {
      v = JSON.parse(raw);
    } catch {
      problems.push(`${file}:${i + 1}: not JSON (a truncated or corrupt line); skipped`);
      return;
    }
    const bad =
      typeof v !== 'object' || v === null
        ? 'not an object'
        : typeof v.time !== 'string' || !Number.isFinite(Date.parse(v.time))
          ? 'time'
          : v.verdict !== 'admit' && v.verdict !== 'refuse'
            ? 'verdict'
            : v.transport !== 'tcp' && v.transport !== 'udp'
              ? 'transport'
              : !isEndpoint(v.source)
                ? 'source'
                : !isEndpoint(v.destination)
                  ? 'destination'
                  : undefined;
    if (bad) problems.push(`${file}:${i + 1}: field ${bad} is missing or wrong; skipped`);
    else lines.push(v as FirewallLogLine);
  });
  return { lines, problems };
}

/** kubectl-style table of log lines. */
export function formatFirewallTable(lines: FirewallLogLine[]): string {
  const rows = [['TIME', 'VERDICT', 'TRANSPORT', 'SOURCE', 'DESTINATION'], ...lines.map((l) => [l.time, l.verdict, l.transport, `${l.source.ip}:${l.source.port}`, `${l.destination.ip}:${l.destination.port}`])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] + 3))).join('')).join('\n') + '\n';
}

// ---- processes

/** `egw lab firewall`: the lab's firewall log, the last `tail` lines if given. Throws when the lab is not up. */
export function readFirewallLog(opts: { lab: string; stateRoot?: string; tail?: number }): { file: string; lines: FirewallLogLine[]; problems: string[] } {
  if (!/^[a-z0-9]{1,8}$/.test(opts.lab)) throw new Error(`--lab: ${JSON.stringify(opts.lab)}: a lab name is 1-8 characters [a-z0-9]`);
  const dir = labStateDir(opts.lab, opts.stateRoot ? resolve(opts.stateRoot) : labStateRoot());
  const file = stateFiles.firewallLog(dir);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file}: ${errText(e)}`);
    // No line yet (the logger writes the file at its first start): empty, if the lab is up at all.
    if (!existsSync(stateFiles.config(dir))) throw new Error(`lab ${opts.lab} is not up (no ${stateFiles.config(dir)})`);
  }
  const r = parseFirewallLog(text, file);
  return { file, lines: opts.tail === undefined ? r.lines : r.lines.slice(Math.max(0, r.lines.length - opts.tail)), problems: r.problems };
}

export interface FirewallLoggerOptions {
  lab: string;
  log: Logger;
  signal?: AbortSignal;
  /** Default $EGW_LAB_DIR or /run/egw/labs. */
  stateRoot?: string;
}

/**
 * The lab process `firewall` (runs in the ext namespace): one tcpdump per verdict's NFLOG group, each line parsed and
 * appended to the log as JSON; a tcpdump that exits is started again with the lab's restart backoff (RESTART). Runs
 * until the signal aborts, then stops its tcpdumps by PID.
 */
export async function runFirewallLogger(o: FirewallLoggerOptions): Promise<void> {
  const dir = labStateDir(o.lab, o.stateRoot ? resolve(o.stateRoot) : labStateRoot());
  const file = stateFiles.firewallLog(dir);
  // O_APPEND: each line is one write at the end of the file, so lines of the two readers never interleave.
  const fd = openSync(file, 'a');
  const children = new Set<ChildProcess>();
  const readers = (Object.keys(FIREWALL_LOG_GROUPS) as FirewallVerdict[]).map((verdict) => readGroup(verdict, fd, o, children));
  o.log.info('logging the firewall', { file, groups: FIREWALL_LOG_GROUPS });
  try {
    await Promise.all(readers);
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    closeSync(fd);
    o.log.info('stopped');
  }
}

async function readGroup(verdict: FirewallVerdict, fd: number, o: FirewallLoggerOptions, children: Set<ChildProcess>): Promise<void> {
  const group = FIREWALL_LOG_GROUPS[verdict];
  const backoff = restartBackoff();
  const log = o.log.child(`nflog:${group}`);
  while (!o.signal?.aborted) {
    const startedAt = Date.now();
    const argv = tcpdumpArgv(group);
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const ended = new Promise<string>((res) => {
      child.once('error', (e) => res(`cannot start ${argv.join(' ')}: ${errText(e)}`));
      child.once('exit', (code, sig) => res(sig ? `signal ${sig}` : `exit ${code}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const now = Date.now();
      if (line.trim() === '') return; // tcpdump ends its output with an empty line when it stops
      const p = parseTcpdumpLine(line);
      if ('error' in p) {
        log.warn('tcpdump line not understood; not logged', { line, why: p.error });
        return;
      }
      try {
        writeSync(fd, JSON.stringify(firewallLogLine(p, verdict, now)) + '\n');
      } catch (e) {
        log.error('cannot append to the firewall log', { error: errText(e) });
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) => log.info('tcpdump', { line }));
    const onAbort = () => child.kill('SIGTERM');
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const how = await ended;
    o.signal?.removeEventListener('abort', onAbort);
    children.delete(child);
    if (o.signal?.aborted) return;
    if (Date.now() - startedAt >= RESTART.resetAfterMs) backoff.reset();
    const wait = backoff.next();
    log.warn('tcpdump ended; starting it again', { how, inMs: wait });
    await sleep(wait, o.signal);
  }
}
