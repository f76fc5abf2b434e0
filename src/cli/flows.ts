// `egw flows` and `egw trace` (docs/audit.md, "CLI"): thin over src/audit/query.ts. Flag values are checked by
// commander parsers, so a bad one is a usage error naming the flag (exit 2, like every other egw usage error).
import { existsSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseIPv4, parsePrefix, type Cidr } from '../api/ipv4.js';
import { parseGoDuration } from '../api/parse.js';
import { queryFlows, resolveFlowRoot, trace, type FlowRootChoice, type TraceMatch, type TraceResult } from '../audit/query.js';
import type { FlowGateway, FlowRecord, FlowRoute } from '../audit/types.js';

export interface FlowCommandContext {
  out(s: string): void;
  err(s: string): void;
  setExitCode(code: number): void;
  /** The global --datastore flag, if given (EGW_DATASTORE is read by resolveFlowRoot). */
  datastore(): string | undefined;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function parseIpOption(text: string): string {
  if (parseIPv4(text) === undefined) throw new InvalidArgumentError('expected an IPv4 address such as 192.0.2.10');
  return text;
}

export function parsePortOption(text: string): number {
  const n = Number(text);
  if (!/^[0-9]{1,5}$/.test(text) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port number 1–65535');
  return n;
}

export function parseTimeOption(text: string): number {
  const ms = Date.parse(text);
  if (!RFC3339.test(text) || !Number.isFinite(ms)) throw new InvalidArgumentError('expected an RFC 3339 time such as 2026-12-02T03:04:05.678Z or 2026-12-02T04:04:05+01:00');
  return ms;
}

export function parseDurationOption(text: string): number {
  const ms = parseGoDuration(text);
  if (ms === undefined || !(ms > 0)) throw new InvalidArgumentError('expected a duration such as 90s, 15m, 2h or 1h30m');
  return ms;
}

/** Splits `X[:PORT]`: the port, when there is one, checked like --port. */
function splitPort(text: string): { head: string; port?: number } {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { head: text };
  const p = text.slice(colon + 1);
  const n = Number(p);
  if (!/^[0-9]{1,5}$/.test(p) || n < 1 || n > 65535) throw new InvalidArgumentError(`"${p}" is not a port number 1–65535`);
  return { head: text.slice(0, colon), port: n };
}

/** `--dst` of `egw flows`: CIDR[:PORT] (a bare address is its /32). */
export function parseDstCidrOption(text: string): { cidr: Cidr; port?: number } {
  const { head, port } = splitPort(text);
  const cidr = /\s/.test(head) ? undefined : parsePrefix(head);
  if (!cidr) throw new InvalidArgumentError('expected CIDR[:PORT] such as 203.0.113.0/24, 203.0.113.7 or 203.0.113.0/24:443');
  return port === undefined ? { cidr } : { cidr, port };
}

/** `--dst` of `egw trace`: IP[:PORT]. */
export function parseDstOption(text: string): { ip: string; port?: number } {
  const { head, port } = splitPort(text);
  if (parseIPv4(head) === undefined) throw new InvalidArgumentError('expected IP[:PORT] such as 203.0.113.7 or 203.0.113.7:443');
  return port === undefined ? { ip: head } : { ip: head, port };
}

function hostPort(ip: string, port: number | undefined): string {
  return port === undefined ? ip : `${ip}:${port}`;
}

export function formatRoute(r: FlowRoute): string {
  switch (r.kind) {
    case 'policy':
      return `policy ${r.policy ?? '?'} rule ${r.rule ?? '?'}`;
    case 'annotation':
      return `annotation on ${r.on ?? '?'}${r.selector ? ` (${r.selector})` : ''}`;
    case 'natOutgoing':
      return 'node SNAT (natOutgoing)';
    case 'no-gateway':
      return `no gateway${r.policy ? ` (policy ${r.policy} rule ${r.rule ?? '?'})` : ''}`;
    case 'host-ip':
      return `host-IP mode: node SNAT of gateway traffic${r.pool ? ` (IPPool ${r.pool})` : ''}`;
    default:
      return 'unknown';
  }
}

function gatewayText(r: FlowRecord): string {
  const g = r.egw.gateway;
  if (g && r.egw.reporter === 'node') return `${g.namespace}/${g.name},node:${r.egw.reporter_name}`; // host-IP mode
  return g ? `${g.namespace}/${g.name}` : `node:${r.egw.reporter_name}`;
}

const dash = (v: string | number | null | undefined) => (v === null || v === undefined || v === '' ? '<none>' : String(v));

interface Column {
  header: string;
  value: (r: FlowRecord) => string;
  wide?: boolean;
}

const COLUMNS: Column[] = [
  { header: 'START', value: (r) => r.event.start },
  { header: 'END', value: (r) => r.event.end ?? 'open' },
  { header: 'NAMESPACE', value: (r) => dash(r.orchestrator.namespace) },
  { header: 'POD', value: (r) => dash(r.orchestrator.resource.name) },
  { header: 'GATEWAY', value: gatewayText },
  { header: 'EGRESS', value: (r) => hostPort(r.source.nat.ip, r.source.nat.port) },
  { header: 'DESTINATION', value: (r) => hostPort(r.destination.ip, r.destination.port) },
  { header: 'PROTO', value: (r) => r.network.transport },
  { header: 'UID', value: (r) => dash(r.egw.pod.uid), wide: true },
  { header: 'NODE', value: (r) => dash(r.egw.pod.node), wide: true },
  { header: 'BYTES', value: (r) => (r.source.bytes === undefined && r.destination.bytes === undefined ? '<none>' : `${r.source.bytes ?? '?'}/${r.destination.bytes ?? '?'}`), wide: true },
  { header: 'ROUTE', value: (r) => formatRoute(r.egw.route), wide: true },
];

/** The kubectl-style table (the layout of src/cli/print.ts's printTable, for records instead of resources). */
export function flowTable(records: readonly FlowRecord[], wide: boolean): string {
  const cols = COLUMNS.filter((c) => wide || !c.wide);
  const rows = [cols.map((c) => c.header), ...records.map((r) => cols.map((c) => c.value(r)))];
  const widths = cols.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] + 3))).join('').trimEnd()).join('\n') + '\n';
}

function whereText(c: FlowRootChoice): string {
  const why = c.from === 'flag' ? '--flow-dir' : c.from === 'env' ? 'EGW_FLOW_DIR' : c.from === 'lab' ? `lab ${c.lab}` : 'the default; set --flow-dir or EGW_FLOW_DIR';
  return `${c.root} (${why})`;
}

function labelsText(l: Record<string, string>): string {
  const e = Object.entries(l ?? {});
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
}

function gatewayLine(g: FlowGateway): string {
  return `${g.namespace}/${g.name}${g.egressGateway ? ` (EgressGateway ${g.egressGateway})` : ''}, IP ${g.ip}${g.node ? `, on node ${g.node}` : ''}`;
}

function podLines(m: TraceMatch): string[] {
  const from = m.podFrom === 'history' ? ' (from the pod-IP history)' : m.podFrom === 'unknown' ? ' (unknown: not in the record nor the pod-IP history)' : '';
  return [
    `Pod:          ${m.pod.namespace ?? '<unknown>'}/${m.pod.name ?? '<unknown>'}${from}`,
    `  UID:        ${dash(m.pod.uid)}`,
    `  Node:       ${dash(m.pod.node)}`,
    `  Labels:     ${labelsText(m.pod.labels)}`,
  ];
}

function endText(r: FlowRecord): string {
  return `${r.event.end ?? 'open (still in conntrack when last recorded)'}${r.event.end !== null && r.egw.complete === false ? ' (end not observed: it ended while egw could not see; counters unknown)' : ''}`;
}

function recordedBy(r: FlowRecord, dir: string): string {
  return `${r.egw.reporter} ${r.egw.reporter_name} (conntrack id ${r.egw.conntrack_id}, ${dir})`;
}

/**
 * Host-IP mode (docs/audit.md, "Host-IP mode"): the node's record (what the outside saw) and the gateway's (who the
 * client was), joined by trace.
 */
function formatHostIPTrace(t: TraceResult): string {
  const m = t.match!;
  const r = m.record;
  const h = m.hostIP;
  const g = h?.record.egw.gateway ?? r.egw.gateway;
  const src = h ? hostPort(h.record.source.ip, h.record.source.port) : '<unknown client>';
  const lines = [
    `Connection:   ${r.network.transport} ${src} -> ${hostPort(r.destination.ip, r.destination.port)}, seen outside as ${hostPort(r.source.nat.ip, r.source.nat.port)} (host-IP mode)`,
    `Start:        ${r.event.start}`,
    `End:          ${endText(r)}`,
    ...(h ? podLines(m) : [`Pod:          <unknown>: no record of gateway ${g ? `${g.namespace}/${g.name}` : '?'} translated a connection to ${hostPort(r.source.ip, r.source.port)} then${t.gaps.length ? ' (see the gaps below)' : ''}`]),
    g ? `Gateway:      ${gatewayLine(g)}` : 'Gateway:      <unknown>',
    `Egress IP:    ${h?.record.egw.egress_ip ?? r.source.ip}${h ? `:${h.record.source.nat.port ?? '?'}` : ''} (the gateway's; the node translated it again)`,
    `Node IP:      ${r.source.nat.ip} (node ${r.egw.reporter_name}, host-IP mode: the gateway's pool has natOutgoing${r.egw.route.pool ? `, IPPool ${r.egw.route.pool}` : ''})`,
    `Route:        ${h ? formatRoute(h.record.egw.route) : 'unknown'}`,
    `Recorded by:  ${recordedBy(r, m.reporterDir)}`,
  ];
  if (h) lines.push(`         and  ${recordedBy(h.record, h.reporterDir)}`);
  for (const { reporter, gap } of t.gaps) lines.push(`Note:         ${reporter} lost records from ${gap.event.start} to ${gap.event.end} (${gap.egw.gap.reason})`);
  const others = t.others.length + (h?.others ?? 0);
  if (others) lines.push(`Note:         ${others} other connection${others > 1 ? 's' : ''} matched too; the closest in time was chosen`);
  return lines.join('\n') + '\n';
}

export function formatTrace(t: TraceResult): string {
  const m = t.match!;
  if (m.hostIP !== undefined) return formatHostIPTrace(t);
  const r = m.record;
  const g = r.egw.gateway;
  const lines = [
    `Connection:   ${r.network.transport} ${hostPort(r.source.ip, r.source.port)} -> ${hostPort(r.destination.ip, r.destination.port)}, seen outside as ${hostPort(r.source.nat.ip, r.source.nat.port)}`,
    `Start:        ${r.event.start}`,
    `End:          ${endText(r)}`,
    ...podLines(m),
    g ? `Gateway:      ${gatewayLine(g)}` : `Gateway:      none: node ${r.egw.reporter_name} translated it (node SNAT)`,
    `Egress IP:    ${r.egw.egress_ip}`,
    `Route:        ${formatRoute(r.egw.route)}`,
    `Recorded by:  ${recordedBy(r, m.reporterDir)}`,
  ];
  if (t.others.length) lines.push(`Note:         ${t.others.length} other connection${t.others.length > 1 ? 's' : ''} from this address and port were live then; this one is the closest in time`);
  return lines.join('\n') + '\n';
}

/**
 * `egw trace -o json`. In host-IP mode (docs/audit.md): pod is the client (from the gateway's record), gateway and
 * egressIP are the gateway's, node and nodeIP the node that translated it again; connection.source is the client's
 * ip:port, connection.gatewayNat what the gateway translated it to, connection.nat what the outside saw; `record` is
 * the node's record and `hostIP.record` the gateway's (null when it was not found).
 */
export function traceJson(t: TraceResult) {
  const m = t.match!;
  const r = m.record;
  const h = m.hostIP;
  const hostIP = h !== undefined;
  const inner = h?.record;
  return {
    pod: { ...m.pod, from: m.podFrom },
    gateway: inner?.egw.gateway ?? r.egw.gateway,
    node: r.egw.reporter === 'node' ? r.egw.reporter_name : null,
    egressIP: hostIP ? (inner?.egw.egress_ip ?? r.source.ip) : r.egw.egress_ip,
    nodeIP: r.egw.reporter === 'node' ? r.source.nat.ip : null,
    hostIPMode: hostIP,
    route: inner?.egw.route ?? r.egw.route,
    connection: {
      start: r.event.start,
      end: r.event.end,
      transport: r.network.transport,
      source: inner ? { ip: inner.source.ip, port: inner.source.port ?? null } : { ip: r.source.ip, port: r.source.port ?? null },
      ...(hostIP ? { gatewayNat: { ip: r.source.ip, port: r.source.port ?? null } } : {}),
      nat: { ip: r.source.nat.ip, port: r.source.nat.port ?? null },
      destination: { ip: r.destination.ip, port: r.destination.port ?? null },
      complete: r.egw.complete,
    },
    reporter: { kind: r.egw.reporter, name: r.egw.reporter_name },
    others: t.others.length + (h?.others ?? 0),
    record: r,
    ...(hostIP ? { hostIP: { record: inner ?? null, reporter: inner ? { kind: inner.egw.reporter, name: inner.egw.reporter_name } : null } } : {}),
  };
}

/** Why nothing matched: the gaps and retention that may explain it, and the closest connection from that source. */
export function noMatchText(t: TraceResult, what: string, choice: FlowRootChoice, rootExists: boolean): string {
  const lines = [`error: no recorded connection ${what}`];
  if (!rootExists) lines.push(`  no flow records at ${whereText(choice)}: the directory does not exist`);
  for (const { reporter, gap } of t.gaps) {
    const n = gap.egw.gap.connections;
    lines.push(
      `  ${reporter} lost records from ${gap.event.start} to ${gap.event.end} (${gap.egw.gap.reason}${n !== null ? `, up to ${n} connection${n === 1 ? '' : 's'}` : ''}): the connection may be one of them`,
    );
  }
  for (const r of t.retention) lines.push(`  ${r.reporter}: records before ${r.removedBefore} were removed by retention`);
  if (t.nearest) lines.push(`  the closest connection from that address and port in time: ${t.nearest.event.start} to ${t.nearest.event.end ?? 'open'}`);
  if (rootExists && !t.gaps.length && !t.retention.length && !t.nearest) lines.push(`  searched ${whereText(choice)}`);
  return lines.join('\n') + '\n';
}

export function addFlowCommands(program: Command, ctx: FlowCommandContext): void {
  /** A failure to read the root itself (not a directory, permissions) is one line and exit 1, never a stack trace. */
  const guarded = (fn: (opts: any) => void) => (opts: any) => {
    try {
      fn(opts);
    } catch (e) {
      ctx.err(`error: ${(e as Error).message}\n`);
      ctx.setExitCode(1);
    }
  };
  const warn = (ws: readonly string[]) => {
    for (const w of ws) ctx.err(`warning: ${w}\n`);
  };

  program
    .command('flows')
    .description('the connections egw recorded (open and complete), newest first')
    .option('-n, --namespace <ns>', "only the client pods' namespace")
    .option('--pod <name>', 'only this client pod')
    .option('--gateway <name>', 'only through this gateway (pod name, ns/name or EgressGateway name; node:<node> for node SNAT)')
    .option('--dst <cidr[:port]>', 'only toward these destinations', parseDstCidrOption)
    .option('--since <duration>', 'only connections live during the last DURATION (e.g. 15m, 2h)', parseDurationOption)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['wide', 'json']))
    .option('--flow-dir <dir>', 'the flow-record root (default: $EGW_FLOW_DIR, the lab of $EGW_DATASTORE, else /var/log/egw/flows)')
    .action(
      guarded((opts) => {
        const choice = resolveFlowRoot({ flag: opts.flowDir, datastore: ctx.datastore() });
        const { records, warnings } = queryFlows(choice.root, {
          namespace: opts.namespace,
          pod: opts.pod,
          gateway: opts.gateway,
          dst: opts.dst,
          since: opts.since,
          now: Date.now(),
        });
        warn(warnings);
        if (opts.output === 'json') ctx.out(JSON.stringify(records, null, 2) + '\n');
        else if (records.length === 0) ctx.err(`No flow records found in ${whereText(choice)}${existsSync(choice.root) ? '' : ': the directory does not exist'}.\n`);
        else ctx.out(flowTable(records, opts.output === 'wide'));
        ctx.setExitCode(0);
      }),
    );

  program
    .command('trace')
    .description('which pod made the connection a firewall saw from IP:PORT (the translated source), at a time')
    .requiredOption('--ip <ip>', 'the source IP the outside saw (a gateway\'s egress IP or a node IP)', parseIpOption)
    .requiredOption('--port <port>', 'the source port the outside saw', parsePortOption)
    .option('--dst <ip[:port]>', 'the destination the connection went to', parseDstOption)
    .option('--at <time>', 'when (RFC 3339; default now)', parseTimeOption)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--flow-dir <dir>', 'the flow-record root (default: $EGW_FLOW_DIR, the lab of $EGW_DATASTORE, else /var/log/egw/flows)')
    .action(
      guarded((opts) => {
        const now = Date.now();
        const at: number = opts.at ?? now;
        const choice = resolveFlowRoot({ flag: opts.flowDir, datastore: ctx.datastore() });
        const t = trace(choice.root, { ip: opts.ip, port: opts.port, dst: opts.dst, at, now });
        warn(t.warnings);
        if (!t.match) {
          const what = `from ${opts.ip}:${opts.port}${opts.dst ? ` to ${hostPort(opts.dst.ip, opts.dst.port)}` : ''} live at ${new Date(at).toISOString()}`;
          ctx.err(noMatchText(t, what, choice, existsSync(choice.root)));
          ctx.setExitCode(1);
          return;
        }
        ctx.out(opts.output === 'json' ? JSON.stringify(traceJson(t), null, 2) + '\n' : formatTrace(t));
        ctx.setExitCode(0);
      }),
    );
}
