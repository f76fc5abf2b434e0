// The long-running egw processes (agent, gateway, controller) and the lab, as `egw` subcommands. Each runs until
// SIGTERM/SIGINT, then returns without touching kernel state, so a restart disturbs no traffic.
import { Command, InvalidArgumentError, Option } from 'commander';
import type { OpenStoreOptions } from '../datastore/open.js';
import type { Store } from '../datastore/types.js';
import { createLogger } from '../log.js';
import { agentKubeViews, runAgent } from '../agent/index.js';
import { runGateway } from '../gateway/index.js';
import { runKcm } from '../lab/kcm.js';
import { parseListen, runApiServer } from '../lab/apiserver-run.js';
import { defaultElectorId, electorFor, HISTORY_RETENTION_MS, runElectedController } from '../controller/index.js';
import { DEFAULT_FLOW_DIR, flowRoot } from '../audit/paths.js';
import { parseGoDuration } from '../api/parse.js';
import type { FlowRecordingOptions } from '../audit/recorder.js';
import { FLOW_STORE_SETTINGS, parseFlowStoreLimits, type FlowStoreLimits } from '../audit/store.js';
import { METRICS_PORT, type MetricsProcess } from '../metrics/metrics.js';
import { metricsSocketPath, parseMetricsListen, type MetricsListen } from '../metrics/server.js';
import {
  formatFirewallTable,
  labDown,
  labExec,
  labStart,
  labStatus,
  labStop,
  labUp,
  parseLoopbackListen,
  readFirewallLog,
  runEcho,
  runFirewallLogger,
  runForward,
  runKubelet,
  runSupervisor,
} from '../lab/index.js';

/** --flow-dir, --no-flows and the store limits, on the two processes that record flows (docs/audit.md). */
function addFlowOptions(cmd: Command): Command {
  cmd.option('--flow-dir <dir>', `flow record root (default $EGW_FLOW_DIR, else ${DEFAULT_FLOW_DIR})`).option('--no-flows', 'record no flows');
  cmd.option('--flow-aggregate <duration>', 'also write aggregates per client, gateway, destination and this interval, e.g. 1m (or $EGW_FLOW_AGGREGATE)');
  for (const s of Object.values(FLOW_STORE_SETTINGS)) cmd.option(`${s.flag} <${s.kind}>`, `flow files: ${s.flag.slice(7).replace(/-/g, ' ')} (or $${s.env})`);
  return cmd;
}

function flowOptionsFrom(opts: Record<string, unknown>): FlowRecordingOptions | false {
  if (opts.flows === false) return false;
  const flags: Partial<Record<keyof FlowStoreLimits, string>> = {};
  for (const [key, s] of Object.entries(FLOW_STORE_SETTINGS) as [keyof FlowStoreLimits, { flag: string }][]) {
    const v = opts[camel(s.flag.slice(2))];
    if (typeof v === 'string') flags[key] = v;
  }
  const out: FlowRecordingOptions = { root: flowRoot(opts.flowDir as string | undefined), store: parseFlowStoreLimits(flags) };
  const agg = (opts.flowAggregate as string | undefined) ?? process.env.EGW_FLOW_AGGREGATE;
  if (agg) {
    const ms = parseGoDuration(agg);
    if (ms === undefined || !(ms >= 1000)) throw new Error(`${opts.flowAggregate !== undefined ? '--flow-aggregate' : 'EGW_FLOW_AGGREGATE'}: "${agg}" is not a duration of at least 1s such as 1m or 30s`);
    out.aggregateMs = ms;
  }
  return out;
}

/** --metrics-listen and --no-metrics (docs/observability.md), with the process's default port. */
function addMetricsOptions(cmd: Command, process: MetricsProcess): Command {
  return cmd
    .option('--metrics-listen <[host]:port>', `serve Prometheus metrics on /metrics here (empty host: every address)`, `:${METRICS_PORT[process]}`)
    .option('--no-metrics', 'serve no metrics');
}

/** `name`: the process's socket name in the lab (metricsSocketPath): agent-<node>, gateway-<ns>.<pod>, the controller's --id. */
function metricsFrom(opts: Record<string, unknown>, name: string): MetricsListen | false {
  if (opts.metrics === false) return false;
  const listen = parseMetricsListen(String(opts.metricsListen));
  const socket = metricsSocketPath(name);
  return socket ? { ...listen, socket } : listen;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export interface ProcessContext {
  /** Opens the datastore chosen by --datastore / EGW_DATASTORE (`open`: options a kubernetes: datastore uses, e.g. views). */
  withStore<T>(fn: (store: Store) => Promise<T>, open?: Pick<OpenStoreOptions, 'kubeViews'>): Promise<T>;
  /** The datastore spec the other processes of a lab must use (sqlite:PATH, a lab etcd's etcd://…, kubernetes:PATH). */
  datastoreSpec(): string;
  /** --datastore or $EGW_DATASTORE as given (and which), or undefined. */
  datastoreGiven(): { spec: string; from: 'flag' | 'env' } | undefined;
  setExitCode(code: number): void;
  out(s: string): void;
  /** Standard error (warnings that do not stop a command); default process.stderr. */
  err?(s: string): void;
}

/** An AbortSignal that fires on SIGTERM or SIGINT. */
export function untilSignalled(): AbortSignal {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return ac.signal;
}

/** A 32-bit mask written in hex (0x…) or decimal; commander reports the error as an invalid option value. */
function parseMask(text: string): number {
  const n = /^0x[0-9a-f]{1,8}$/i.test(text) ? parseInt(text, 16) : /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) throw new InvalidArgumentError('expected a non-zero 32-bit mask such as 0x00003f00');
  return n;
}

function parseId(text: string): string {
  if (text.trim() === '' || /\s/.test(text)) throw new InvalidArgumentError('expected a non-empty identity without spaces, e.g. controller-1');
  return text;
}

function parseSeconds(text: string): number {
  const n = Number(text);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number of seconds ≥ 0, e.g. 10');
  return n;
}

function parseLoopbackListenOption(text: string): { host: string; port: number } {
  return wrapArg(parseLoopbackListen, text);
}

/** A parser's error as commander's (printed as the flag's error, no stack trace). */
function wrapArg<T>(parse: (t: string) => T, text: string): T {
  try {
    return parse(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function parseCount(text: string): number {
  if (!/^[0-9]{1,9}$/.test(text)) throw new InvalidArgumentError('expected a whole number of lines ≥ 0, e.g. 20');
  return Number(text);
}

function splitPod(text: string): { namespace: string; name: string } {
  const parts = text.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`--pod: expected NAMESPACE/NAME, got "${text}"`);
  return { namespace: parts[0], name: parts[1] };
}

export function addProcessCommands(program: Command, ctx: ProcessContext): void {
  addMetricsOptions(addFlowOptions(program
    .command('agent')
    .description('node agent: datastore → egress calculation → kernel (run inside the node\'s network namespace)')
    .requiredOption('--node <name>', 'this node\'s name (a Node resource)')
    .option('--no-nat-outgoing', 'leave outgoing NAT of pod traffic to another component (e.g. Calico)')
    .option('--resync <ms>', 'full resync period in milliseconds', (v) => Number(v), 10000)
    .option('--sticky-mark-mask <bits>', 'mark bits egw may use to keep connections on their gateway (e.g. 0x00003f00 beside Calico Felix)', parseMask)
    .option('--gateway-restart-grace <seconds>', 'how long a gateway whose kernel refuses the heartbeats (its process restarting) keeps its verdict; 0 = off', parseSeconds, 30)), 'agent')
    .action(async (opts) => {
      const flows = flowOptionsFrom(opts);
      const metrics = metricsFrom(opts, `agent-${opts.node}`);
      await ctx.withStore((store) =>
        runAgent({
          store,
          node: opts.node,
          natOutgoing: opts.natOutgoing,
          resyncMs: opts.resync,
          stickyMarkMask: opts.stickyMarkMask,
          heartbeat: { restartGraceMs: opts.gatewayRestartGrace * 1000 },
          flows,
          metrics,
          log: createLogger(`agent ${opts.node}`),
          signal: untilSignalled(),
        }),
        // on kubernetes: only this node's pods and the gateway pods (SPEC §7)
        { kubeViews: agentKubeViews(opts.node) },
      );
    });

  addMetricsOptions(addFlowOptions(program
    .command('gateway')
    .description('egress gateway: tunnel, SNAT, anti-spoofing and health (run inside the gateway pod\'s network namespace)')
    .requiredOption('--pod <ns/name>', 'this gateway pod')
    .option('--health-port <port>', 'port of /readiness and /liveness', (v) => Number(v), 8080)
    .option('--no-rps', 'leave receive packet steering of eth0 and egw.vxlan as it is (default: spread flows over the CPUs this process may run on)')), 'gateway')
    .action(async (opts) => {
      const pod = splitPod(opts.pod);
      const flows = flowOptionsFrom(opts);
      const metrics = metricsFrom(opts, `gateway-${pod.namespace}.${pod.name}`);
      await ctx.withStore((store) =>
        runGateway({ store, ...pod, healthPort: opts.healthPort, rps: opts.rps !== false, flows, metrics, log: createLogger(`gateway ${opts.pod}`), signal: untilSignalled() }),
      );
    });

  addMetricsOptions(program
    .command('controller')
    .description('controller: EgressGateway → gateway pods, IP address garbage collection; any number may run, the elected leader acts')
    .option('--id <id>', `this controller's identity in the leader election (default <hostname>/<pid>, here ${defaultElectorId()})`, parseId)
    .option('--ipam-gc-grace <seconds>', 'release the address of a missing pod after it has been missing this long', parseSeconds, 10)
    .option('--gateway-image <ref>', 'on a Kubernetes cluster: the image of the gateway pods, which then get the cluster\'s pod shape (docs/kubernetes.md)'), 'controller')
    .action(async (opts) => {
      const metrics = metricsFrom(opts, opts.id ?? defaultElectorId());
      const signal = untilSignalled();
      await ctx.withStore(async (store) => {
        const log = createLogger(`controller ${opts.id ?? defaultElectorId()}`);
        const elector = electorFor(store, { id: opts.id, log: log.child('leader') });
        // SQLite's history is egw's own to trim; etcd's is the etcd operator's (--auto-compaction-retention).
        const historyRetentionMs = store.description.startsWith('sqlite:') ? HISTORY_RETENTION_MS : undefined;
        await runElectedController({
          store, elector, log, signal, gcGraceMs: opts.ipamGcGrace * 1000, historyRetentionMs, metrics,
          kubernetesPods: opts.gatewayImage ? { image: opts.gatewayImage } : undefined,
        });
      });
    });

  const lab = program.command('lab').description('a cluster of network namespaces on this machine (needs root)');
  lab
    .command('up')
    .description('build the lab and start its processes')
    .option('-f, --filename <file>', 'lab file', 'examples/lab/demo.yaml')
    .action(async (opts) => {
      const given = ctx.datastoreGiven();
      const info = await labUp({ file: opts.filename, datastore: given?.spec, datastoreFrom: given?.from, log: createLogger('lab') });
      ctx.out(`lab ${info.name} is up (datastore ${info.datastore}; state in ${info.stateDir})\n`);
      ctx.out(`export EGW_DATASTORE=${info.hostDatastore}\n`);
    });
  lab
    .command('down')
    .description('stop the lab\'s processes and remove its namespaces (also after a crash)')
    .argument('[name]', 'lab name', 'demo')
    .action(async (name: string) => {
      await labDown({ name });
      ctx.out(`lab ${name} is down\n`);
    });
  lab
    .command('stop')
    .description('stop one lab process and keep it stopped (the supervisor does not restart it) until `egw lab start`')
    .argument('<role>', 'the process, as `egw lab status` names it (etcd, agent-node-1, controller-1, …)')
    .argument('[name]', 'lab name', 'demo')
    .action(async (role: string, name: string) => {
      const r = await labStop({ name, role, log: createLogger('lab') });
      ctx.out(`${r.role} of lab ${name} is held stopped (${r.pid ? `pid ${r.pid} ${r.how}` : 'it was not running'}); egw lab start ${r.role} ${name} releases it\n`);
    });
  lab
    .command('start')
    .description('release a process held by `egw lab stop` and start it')
    .argument('<role>', 'the process, as `egw lab status` names it')
    .argument('[name]', 'lab name', 'demo')
    .action(async (role: string, name: string) => {
      const r = await labStart({ name, role, log: createLogger('lab') });
      ctx.out(`${r.role} of lab ${name} ${r.how === 'started' ? 'started' : 'runs'}${r.pid ? ` (pid ${r.pid})` : ''}\n`);
    });
  lab
    .command('status')
    .description('namespaces, processes, nodes and pods of a lab')
    .argument('[name]', 'lab name')
    .action(async (name: string | undefined) => {
      ctx.out(await labStatus({ name }));
    });
  lab
    .command('exec')
    .description('run a command inside a pod: egw lab exec NS/POD -- CMD [ARGS...]')
    .argument('<pod>', 'NS/POD')
    .argument('<command...>', 'the command and its arguments (after --)')
    .action(async (pod: string, argv: string[]) => {
      ctx.setExitCode(await labExec({ datastore: ctx.datastoreSpec(), pod, argv }));
    });
  lab
    .command('kubelet')
    .description('(started by lab up) the lab kubelet of one node')
    .requiredOption('--lab <name>')
    .requiredOption('--node <name>')
    .action(async (opts) => {
      await ctx.withStore((store) => runKubelet({ store, datastore: ctx.datastoreSpec(), lab: opts.lab, node: opts.node, log: createLogger(`kubelet ${opts.node}`), signal: untilSignalled() }));
    });
  lab
    .command('kcm')
    .description('(started by lab up) the kube-controller-manager stand-in: Deployments → ReplicaSets → pods')
    .action(async () => {
      await ctx.withStore((store) => runKcm({ store, log: createLogger('kcm'), signal: untilSignalled() }));
    });
  lab
    .command('supervise')
    .description('(started by lab up) restarts the lab\'s processes when they exit; with --watchdog, restarts the supervisor')
    .requiredOption('--lab <name>')
    .option('--watchdog', 'watch the supervisor only')
    .action(async (opts) => {
      await runSupervisor({ lab: opts.lab, watchdog: !!opts.watchdog, log: createLogger(opts.watchdog ? 'watchdog' : 'supervisor'), signal: untilSignalled() });
    });
  lab
    .command('forward')
    .description('(started by lab up, datastore: etcd) relays 127.0.0.1:PORT to the lab etcd\'s unix socket')
    .requiredOption('--lab <name>')
    .requiredOption('--listen <host:port>', 'loopback address to listen on', parseLoopbackListenOption)
    .requiredOption('--to <socket>', 'unix socket to relay to')
    .action(async (opts) => {
      await runForward({ lab: opts.lab, ...opts.listen, socket: opts.to, log: createLogger('forwarder'), signal: untilSignalled() });
    });
  lab
    .command('apiserver')
    .description('(started by lab up, datastore: kubernetes) the stand-in Kubernetes API server of a lab on Kubernetes')
    .requiredOption('--listen <ip:port>', 'address in the lab namespace it runs in', (t: string) => wrapArg(parseListen, t))
    .requiredOption('--socket <path>', 'unix socket for the host-side forwarder')
    .requiredOption('--journal <file>', 'where its objects are kept across restarts')
    .action(async (opts) => {
      await runApiServer({ listen: opts.listen, socket: opts.socket, journal: opts.journal, log: createLogger('apiserver'), signal: untilSignalled() });
    });
  lab
    .command('firewall')
    .description('the lab firewall\'s log: every connection to the external host it admitted or refused')
    .option('--lab <name>', 'lab name', 'demo')
    .option('--tail <n>', 'only the last N lines', parseCount)
    .addOption(new Option('-o, --output <format>', 'output format (json: one JSON object per line, as in the log file)').choices(['table', 'json']).default('table'))
    .action((opts) => {
      const r = readFirewallLog({ lab: opts.lab, tail: opts.tail });
      for (const p of r.problems) (ctx.err ?? ((s: string) => process.stderr.write(s)))(`warning: ${p}\n`);
      if (opts.output === 'json') ctx.out(r.lines.map((l) => JSON.stringify(l) + '\n').join(''));
      else if (r.lines.length) ctx.out(formatFirewallTable(r.lines));
      else (ctx.err ?? ((s: string) => process.stderr.write(s)))(`No firewall log lines yet (${r.file}).\n`);
    });
  lab
    .command('firewall-logger')
    .description('(started by lab up) writes the lab firewall\'s log from its NFLOG groups (runs in the external host\'s namespace)')
    .requiredOption('--lab <name>')
    .action(async (opts) => {
      await runFirewallLogger({ lab: opts.lab, log: createLogger('firewall'), signal: untilSignalled() });
    });
  lab
    .command('echo')
    .description('(started by lab up) the external echo server')
    .addOption(new Option('--listen <addr>', 'address to listen on').default('0.0.0.0'))
    .option('--http-port <port>', 'HTTP port', (v) => Number(v), 80)
    .option('--tcp-port <port>', 'TCP line-echo port', (v) => Number(v), 7)
    .action(async (opts) => {
      await runEcho({ listen: opts.listen, httpPort: opts.httpPort, tcpPort: opts.tcpPort, log: createLogger('echo'), signal: untilSignalled() });
    });
}
