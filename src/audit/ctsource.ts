// Where conntrack's records come from (docs/kernel.md §8): the one `conntrack -E` process of a recorder, its loss
// signals (the ENOBUFS line on stderr, the Drops counter of its netlink sockets), `conntrack -L` dumps, the entry
// count, and the two sysctls that put counters and kernel timestamps into the records. Thin and effectful: the
// parsing is src/audit/conntrack.ts.
//
// Every function takes `wrap`, an argv prefix that runs a command in another network namespace
// (`['ip', 'netns', 'exec', NS]`). Without it the command runs in the caller's namespace, which is how a gateway or
// an agent runs (the process already lives in the namespace it records).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localRunner, type RunResult } from '../dataplane/exec.js';
import { CtXmlParser, type CtEntry, type CtParseError } from './conntrack.js';

/** An argv prefix that runs the command in another network namespace. It must exec the command, as
 *  `ip netns exec` does, so that the pid we see is conntrack's own (the Drops poll reads its /proc entry). */
export type Wrap = readonly string[];

export const CONNTRACK = 'conntrack';
/**
 * The receive buffer wanted for conntrack's event socket. The default (`net.core.rmem_default`, 208 KiB) holds a few
 * hundred events: at 2,500 new connections/s through a gateway the recorders overflowed within seconds, and every
 * overflow costs a gap and a dump of the whole table. 16 MiB (the kernel doubles it) held floods of 3,000–4,900/s
 * with no overflow (docs/benchmarks.md, "Gateway path experiments", `ctbuf`). The kernel takes the memory only while
 * events wait. conntrack 1.4.7's `--buffer-size` sets its other socket, so scripts/ct-event-socket.py raises it.
 */
export const CT_EVENT_BUFFER_BYTES = 16 * 1024 * 1024;
const EVENT_SOCKET_HELPER = fileURLToPath(new URL('../../scripts/ct-event-socket.py', import.meta.url));

/** What scripts/ct-event-socket.py did to a conntrack's event sockets (the first one's buffer now), or why it could not. */
export type EventSocketTuning = { bytes: number } | { error: string };

/**
 * Tunes the running conntrack `pid`'s event sockets, its fds `fds` (NetlinkState.eventFds), with
 * scripts/ct-event-socket.py (python3): a socket filter that drops the events of entries without source NAT in the
 * kernel, before they are queued and conntrack is woken for them (its `--src-nat` would drop them after;
 * docs/audit.md, "Nothing lost"), and the receive buffer set to `bytes` (null: left as it is).
 * Resolves to the first socket's buffer size now, or why it could not (no python3, no ptrace access, no such fd).
 */
export function tuneEventSocket(pid: number, fds: readonly number[], bytes: number | null): Promise<EventSocketTuning> {
  return new Promise((resolve) => {
    execFile('python3', [EVENT_SOCKET_HELPER, String(pid), String(bytes ?? 0), ...fds.map(String)], { timeout: 5000 }, (err, stdout, stderr) => {
      let out: { rcvbuf?: unknown; filter?: unknown } | undefined;
      try {
        out = JSON.parse(stdout.trim().split('\n')[0] ?? '') as typeof out;
      } catch {
        out = undefined;
      }
      if (!err && out && typeof out.rcvbuf === 'number' && out.rcvbuf > 0 && out.filter === 'snat') resolve({ bytes: out.rcvbuf });
      else resolve({ error: (stderr.trim() || (err ? err.message : `unexpected output ${JSON.stringify(stdout.trim())}`)).split('\n').pop()! });
    });
  });
}
/**
 * The event reader: NEW and DESTROY only (UPDATEs are not needed for one record per connection), with ids and kernel
 * timestamps, and only source-translated connections (`--src-nat`, the only ones recorded: docs/kernel.md §8).
 * Without it every entry of the namespace reached Node to be parsed and dropped (docs/benchmarks.md, "Connection
 * scale"); the kernel filter of tuneEventSocket drops them before conntrack is even woken, and this one still decides.
 */
export const CT_EVENT_ARGS: readonly string[] = ['-E', '-e', 'NEW,DESTROY', '--src-nat', '-o', 'xml,id,ktimestamp'];
/** A dump: every family (`-L` without `-f` lists IPv4 and IPv6), translated entries only, the events' format. */
export const CT_DUMP_ARGS: readonly string[] = ['-L', '--src-nat', '-o', 'xml,id,ktimestamp'];
/** Per network namespace; without them DESTROY carries no counters and no start/stop (docs/kernel.md §8). */
export const CT_SYSCTLS: readonly string[] = ['net.netfilter.nf_conntrack_acct', 'net.netfilter.nf_conntrack_timestamp'];
/** conntrack 1.4.7's stderr when the event socket overflowed ("WARNING: We have hit ENOBUFS! We are losing events."). */
export const ENOBUFS_TEXT = 'We have hit ENOBUFS';
/** The other lines conntrack writes to stderr in normal operation: the rest of the ENOBUFS warning, the summary. */
const NORMAL_STDERR = [/^This message means that the current netlink socket buffer size is too small\.$/, /^Please, check --buffer-size in conntrack\(8\) manpage\.$/, /flow (events|entries) ha(ve|s) been shown\.$/];
/** NETLINK_NETFILTER: the `Eth` column of /proc/net/netlink for conntrack's sockets. */
const NETLINK_NETFILTER = 12;
export const DROPS_POLL_MS = 1000;
export const STOP_GRACE_MS = 2000;
const STDERR_TAIL = 4096;

function sysctlPath(key: string): string {
  return join('/proc/sys', ...key.split('.'));
}

/** Is `name` an executable on the PATH? (setpriv is in util-linux, which a minimal image may lack.) */
function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

let setprivKnown: boolean | undefined;
/**
 * The prefix that makes conntrack die with us. `setpriv --pdeathsig KILL` sets PR_SET_PDEATHSIG, kept across exec,
 * so conntrack gets SIGKILL when the thread that spawned it dies (Node's main thread, so: when our process dies,
 * kill -9 included; from a worker thread it would be that worker's end). Without
 * setpriv, conntrack still dies of SIGPIPE at its first write after we are gone (its stdout is our pipe), but it
 * stays blocked while the namespace is quiet.
 */
export function dieWithParentPrefix(): string[] {
  setprivKnown ??= onPath('setpriv');
  return setprivKnown ? ['setpriv', '--pdeathsig', 'KILL'] : [];
}

/** One short command (sysctl, conntrack -C) through the project's command runner; never throws for its exit code. */
function run(argv: readonly string[]): Promise<RunResult> {
  return localRunner().run([...argv], { allowFailure: true });
}

/**
 * Sets nf_conntrack_acct=1 and nf_conntrack_timestamp=1 in the namespace (both are per network namespace). Without
 * wrap: writes /proc/sys/net/netfilter/… of the caller's namespace; with wrap: `sysctl -qw` through it. Rejects with
 * a clear message when the namespace has no conntrack (the files do not exist) or the writes are refused.
 */
export async function enableConntrackAccounting(wrap?: Wrap): Promise<void> {
  if (wrap && wrap.length) {
    const argv = [...wrap, 'sysctl', '-qw', ...CT_SYSCTLS.map((k) => `${k}=1`)];
    const r = await run(argv);
    if (r.code !== 0) {
      const why = r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`;
      const missing = /cannot stat \/proc\/sys\/net\/netfilter\//.test(why) ? ' (no conntrack support in this network namespace: is nf_conntrack loaded?)' : '';
      throw new Error(`cannot enable conntrack accounting: ${argv.join(' ')}: ${why}${missing}`);
    }
    return;
  }
  for (const key of CT_SYSCTLS) {
    const path = sysctlPath(key);
    try {
      writeFileSync(path, '1');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new Error(`cannot enable conntrack accounting: ${path} does not exist (no conntrack support in this network namespace: is nf_conntrack loaded?)`);
      throw new Error(`cannot enable conntrack accounting: writing 1 to ${path}: ${(e as Error).message} (needs CAP_NET_ADMIN in the namespace)`);
    }
    const now = readFileSync(path, 'utf8').trim();
    if (now !== '1') throw new Error(`cannot enable conntrack accounting: ${path} reads ${now} after writing 1`);
  }
}

/** The event socket overflowed: from conntrack's ENOBUFS line (no count), or a rise of its sockets' Drops. */
export interface CtOverflow {
  /** When egw noticed (ms since the epoch). */
  at: number;
  /** Events the kernel dropped since the previous poll (source `drops`); null for `enobufs`. */
  dropsDelta: number | null;
  source: 'enobufs' | 'drops';
}

export interface CtEventsOptions {
  wrap?: Wrap;
  /** The flows of one stdout chunk, in order. */
  onFlows(flows: CtEntry[]): void;
  onOverflow(o: CtOverflow): void;
  /** A line of conntrack's output the parser could not read, unexpected stderr, a failed Drops read. */
  onError(msg: string): void;
  /** conntrack exited (after its last flows were delivered); stderrTail is the last 4 KiB of its stderr. */
  onExit(code: number | null, signal: NodeJS.Signals | null, stderrTail: string): void;
  /** The clock for seenAt and overflow times (default Date.now). */
  now?: () => number;
  /** How often the Drops counter is read (default DROPS_POLL_MS). */
  dropsPollMs?: number;
  /** The event socket's buffer, raised once it is subscribed (default CT_EVENT_BUFFER_BYTES); null: left as it is. */
  eventBufferBytes?: number | null;
  /** What could not be done and costs only speed (the event socket not tuned), for the log. */
  onNote?(msg: string): void;
}

/** A running `conntrack -E`. */
export interface CtEvents {
  /** conntrack's pid (wrap and setpriv exec it, so this is conntrack itself). */
  readonly pid: number;
  /** SIGTERM, SIGKILL after STOP_GRACE_MS; resolves once it exited and its output was delivered. */
  stop(): Promise<void>;
  /** The Drops of conntrack's netlink sockets at the last poll; null before the first successful read. */
  drops(): number | null;
  /**
   * Resolves once conntrack's event socket is subscribed (/proc/net/netlink shows its groups): connections made
   * from then on give events. A recorder dumps after this, so nothing falls between the dump and the events.
   * Rejects if conntrack exits first or after timeoutMs (default 10 s).
   */
  ready(timeoutMs?: number): Promise<void>;
}

/** What /proc says of a process's NETLINK_NETFILTER sockets. */
export interface NetlinkState {
  /** The Drops of those sockets, summed. */
  drops: number;
  /** The fds of those bound to multicast groups: the event subscription, once it is in place. */
  eventFds: number[];
}

/**
 * The NETLINK_NETFILTER sockets of process `pid`: its fds (`socket:[inode]`) matched against the
 * `/proc/<pid>/net/netlink` of that process's network namespace. Null when the process (or its sockets) is gone.
 */
export function netlinkState(pid: number): NetlinkState | null {
  const inodes = new Map<string, number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.set(m[1], Number(fd));
    } catch {
      /* closed meanwhile */
    }
  }
  if (!inodes.size) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/netlink`, 'utf8');
  } catch {
    return null;
  }
  const rows = parseNetlink(text, new Set(inodes.keys()));
  return rows && { drops: rows.drops, eventFds: rows.eventInodes.map((i) => inodes.get(i)!) };
}

/**
 * The rows of /proc/net/netlink for NETLINK_NETFILTER sockets whose inode is in `inodes`: Drops summed, and the
 * inodes of those with Groups (hex) set; null when none is there. Columns are found by the header:
 * `sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode`.
 */
export function parseNetlink(text: string, inodes: ReadonlySet<string>): { drops: number; eventInodes: string[] } | null {
  const lines = text.split('\n');
  const head = lines[0].trim().split(/\s+/);
  const eth = head.indexOf('Eth');
  const groups = head.indexOf('Groups');
  const drops = head.indexOf('Drops');
  const inode = head.indexOf('Inode');
  if (eth < 0 || groups < 0 || drops < 0 || inode < 0) return null;
  let sum = 0;
  let found = false;
  const eventInodes: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i].trim().split(/\s+/);
    if (f.length <= inode || Number(f[eth]) !== NETLINK_NETFILTER || !inodes.has(f[inode])) continue;
    found = true;
    sum += Number(f[drops]) || 0;
    if (/[1-9a-f]/i.test(f[groups])) eventInodes.push(f[inode]);
  }
  return found ? { drops: sum, eventInodes } : null;
}

/**
 * Starts the one `conntrack -E -e NEW,DESTROY -o xml,id,ktimestamp` of a recorder (never one per event).
 * - Flows are delivered per stdout chunk; a line that does not parse goes to onError with its text.
 * - Loss: each ENOBUFS line on stderr is an overflow (`enobufs`); every dropsPollMs the Drops of conntrack's netlink
 *   sockets are read and a rise is an overflow with its count (`drops`). An ENOBUFS line also triggers a read at once.
 * - It dies with us: through setpriv's parent-death signal when setpriv exists (kill -9 of our process included),
 *   else by SIGPIPE at its next write (dieWithParentPrefix). It is not detached: a signal to our process group
 *   reaches it too.
 * - The caller must keep its event loop free: while it is blocked (a spawnSync, a long computation) nobody reads the
 *   pipe, conntrack blocks writing to it and the kernel drops events (measured: 334 of 16,255 NEWs delivered with
 *   the loop blocked 8 s; all of 22,548 at ~2,800 connections/s with it free).
 * Throws when the first command of the argv cannot be started.
 */
export function startConntrackEvents(opts: CtEventsOptions): CtEvents {
  const now = opts.now ?? Date.now;
  const argv = [...(opts.wrap ?? []), ...dieWithParentPrefix(), CONNTRACK, ...CT_EVENT_ARGS];
  const child: ChildProcess = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) {
    child.on('error', () => {});
    throw new Error(`cannot start ${argv[0]} (${argv.join(' ')}): not found or not executable`);
  }
  const pid = child.pid;
  const parser = new CtXmlParser({ now, onError: (e: CtParseError) => opts.onError(`conntrack output line ${e.line}: ${e.reason}: ${e.text}`) });
  let stderrTail = '';
  let stderrLine = '';
  let lastDrops: number | null = null;
  let exited = false;
  let tuned = false;
  const bytes = opts.eventBufferBytes === undefined ? CT_EVENT_BUFFER_BYTES : opts.eventBufferBytes;
  let exitPromise: Promise<void> | undefined;
  let resolveExit!: () => void;
  const exitDone = new Promise<void>((r) => (resolveExit = r));

  const pollDrops = () => {
    if (exited) return;
    const d = netlinkState(pid)?.drops ?? null;
    if (d === null) return;
    const before = lastDrops ?? 0; // conntrack's sockets are its own, new: they start at 0
    lastDrops = d;
    if (d > before) opts.onOverflow({ at: now(), dropsDelta: d - before, source: 'drops' });
  };
  const timer = setInterval(pollDrops, opts.dropsPollMs ?? DROPS_POLL_MS);
  timer.unref();

  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const flows = parser.push(chunk);
    if (flows.length) opts.onFlows(flows);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL);
    const lines = (stderrLine + chunk).split('\n');
    stderrLine = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.trim();
      if (!line) continue;
      if (line.includes(ENOBUFS_TEXT)) {
        opts.onOverflow({ at: now(), dropsDelta: null, source: 'enobufs' });
        pollDrops();
      } else if (!NORMAL_STDERR.some((re) => re.test(line))) opts.onError(`conntrack: ${line}`);
    }
  });
  child.on('error', (e) => opts.onError(`conntrack (${argv.join(' ')}): ${e.message}`));
  child.on('close', (code, signal) => {
    exited = true;
    clearInterval(timer);
    const rest = parser.end();
    if (rest.length) opts.onFlows(rest);
    if (stderrLine.trim()) {
      const line = stderrLine.trim();
      if (line.includes(ENOBUFS_TEXT)) opts.onOverflow({ at: now(), dropsDelta: null, source: 'enobufs' });
      else if (!NORMAL_STDERR.some((re) => re.test(line))) opts.onError(`conntrack: ${line}`);
    }
    opts.onExit(code, signal, stderrTail);
    resolveExit();
  });

  return {
    pid,
    drops: () => lastDrops,
    ready: async (timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (exited) throw new Error(`conntrack exited before it was subscribed: ${stderrTail.trim()}`);
        const eventFds = netlinkState(pid)?.eventFds ?? [];
        if (eventFds.length) {
          // once per conntrack: before the first dump, so the flood that follows a resync meets the large buffer
          if (!tuned) {
            tuned = true;
            const r = await tuneEventSocket(pid, eventFds, bytes);
            if ('error' in r) opts.onNote?.(`conntrack's event socket could not be tuned (${r.error}): it may have no kernel filter (every entry of the namespace wakes conntrack)${bytes !== null ? " and the kernel's 208 KiB buffer (floods overflow it sooner)" : ''}`);
          }
          return;
        }
        if (Date.now() > deadline) throw new Error(`conntrack (pid ${pid}) not subscribed to events after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: () => {
      exitPromise ??= (async () => {
        if (exited) return;
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        const kill = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }, STOP_GRACE_MS);
        await exitDone;
        clearTimeout(kill);
      })();
      return exitPromise;
    },
  };
}

export interface CtDumpOptions {
  wrap?: Wrap;
  now?: () => number;
  /** Lines that do not parse. Without it, the dump rejects naming the first one (a dump never loses one silently). */
  onError?: (e: CtParseError) => void;
}

/**
 * `conntrack -L -o xml,id,ktimestamp` (both families), streamed through the parser: only the entries are kept, not
 * the text. Entries have type `dump`, counters so far (with nf_conntrack_acct) and start (with
 * nf_conntrack_timestamp), no stop (docs/kernel.md §8).
 */
export function dumpConntrack(opts: CtDumpOptions = {}): Promise<CtEntry[]> {
  const argv = [...(opts.wrap ?? []), CONNTRACK, ...CT_DUMP_ARGS];
  return new Promise((resolve, reject) => {
    const errors: CtParseError[] = [];
    const parser = new CtXmlParser({ now: opts.now, onError: opts.onError ?? ((e) => errors.push(e)) });
    const flows: CtEntry[] = [];
    let stderr = '';
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      for (const f of parser.push(chunk)) flows.push(f);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-STDERR_TAIL)));
    child.on('error', (e) => reject(new Error(`cannot run ${argv.join(' ')}: ${e.message}`)));
    child.on('close', (code, signal) => {
      for (const f of parser.end()) flows.push(f);
      if (code !== 0) return reject(new Error(`${argv.join(' ')} failed (${code === null ? `signal ${signal}` : `exit ${code}`}): ${stderr.trim()}`));
      if (errors.length) {
        const e = errors[0];
        return reject(new Error(`${argv.join(' ')}: ${errors.length} line(s) could not be read; line ${e.line}: ${e.reason}: ${e.text}`));
      }
      resolve(flows);
    });
  });
}

/** /proc/sys/net/netfilter/nf_conntrack_count of the caller's namespace: what `conntrack -C` reads there. */
export const CT_COUNT_FILE = '/proc/sys/net/netfilter/nf_conntrack_count';

/** The caller's namespace's conntrack entries (a file read: cheap enough for every scrape, docs/observability.md). */
export function readConntrackCount(): number {
  let text: string;
  try {
    text = readFileSync(CT_COUNT_FILE, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${CT_COUNT_FILE}: ${(e as Error).message} (no conntrack support in this network namespace?)`);
  }
  return countOf(text, CT_COUNT_FILE);
}

function countOf(text: string, what: string): number {
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what}: not a count: ${JSON.stringify(text.trim().slice(0, 80))}`);
  return n;
}

/**
 * How many entries the namespace's conntrack table holds: readConntrackCount in the caller's namespace, or
 * `conntrack -C` through wrap (which reads the same counter there).
 */
export async function conntrackCount(opts: { wrap?: Wrap } = {}): Promise<number> {
  if (!opts.wrap || !opts.wrap.length) return readConntrackCount();
  const argv = [...opts.wrap, CONNTRACK, '-C'];
  const what = argv.join(' ');
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return countOf(r.stdout, what);
}
