// `egw dashboard` (docs/dashboard.md): thin over src/dashboard/. Flags are checked before anything starts: a bad one
// is a usage error naming it, and a non-loopback --listen without --token-file is refused.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { resolveFlowRoot } from '../audit/query.js';
import { labStateDir, stateFiles } from '../lab/names.js';
import type { Store } from '../datastore/types.js';
import { DEFAULT_LISTEN, InputError, isLoopback, parseListen, parseScrapeTarget, parseToken, parseWindow, type ScrapeTarget } from '../dashboard/input.js';
import { LiveDashboard } from '../dashboard/live.js';
import { serveDashboard } from '../dashboard/server.js';
import { createLogger } from '../log.js';
import { errText } from '../util.js';
import { untilSignalled } from './processes.js';

export interface DashboardContext {
  withStore<T>(fn: (store: Store) => Promise<T>): Promise<T>;
  datastore(): string | undefined;
  out(s: string): void;
  err(s: string): void;
  setExitCode(code: number): void;
  /** Stops the dashboard (SIGTERM/SIGINT by default). */
  signal?: AbortSignal;
}

export function addDashboardCommand(program: Command, ctx: DashboardContext): void {
  program
    .command('dashboard')
    .description('a web dashboard: gateways and their health as the agents see it, policies, a live flow graph, explain and trace (loopback by default)')
    .option('--listen <host:port>', 'where to serve (an address other than 127.0.0.0/8 needs --token-file)', DEFAULT_LISTEN)
    .option('--token-file <file>', 'require this token (Authorization: Bearer TOKEN, or ?token=TOKEN for the page)')
    .option('--scrape <url|unix:path>', 'a /metrics endpoint to scrape (repeatable); in a lab its sockets are found by themselves', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--lab <name>', "the lab whose metrics sockets and flow records to read (default: the lab of --datastore, if any)")
    .option('--flow-dir <dir>', 'the flow-record root (default: $EGW_FLOW_DIR, the lab of $EGW_DATASTORE, else /var/log/egw/flows)')
    .option('--window <duration>', 'how far back the flow graph reaches', '5m')
    .action(async (opts) => {
      let listen, token: string | undefined, targets: ScrapeTarget[], windowMs: number;
      try {
        listen = parseListen(opts.listen);
        if (opts.tokenFile !== undefined) {
          let text: string;
          try {
            text = readFileSync(opts.tokenFile, 'utf8');
          } catch (e) {
            throw new InputError('--token-file', `${opts.tokenFile}: ${errText(e)}`);
          }
          token = parseToken(text, opts.tokenFile);
        }
        if (!isLoopback(listen.host) && token === undefined) {
          throw new InputError('--listen', `${listen.host} is not a loopback address: serving there needs --token-file (the dashboard shows every pod, policy and connection)`);
        }
        targets = (opts.scrape as string[]).map(parseScrapeTarget);
        windowMs = parseWindow(opts.window);
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        ctx.err(`error: ${e.message}\n`);
        ctx.setExitCode(2);
        return;
      }
      const choice = resolveFlowRoot({ flag: opts.flowDir ?? (opts.lab ? stateFiles.flows(labStateDir(opts.lab)) : undefined), datastore: ctx.datastore() });
      const lab: string | undefined = opts.lab ?? choice.lab;
      const signal = ctx.signal ?? untilSignalled();
      const log = createLogger('dashboard');
      await ctx.withStore(async (store) => {
        const live = new LiveDashboard({ store, signal, targets, metricsDir: lab ? stateFiles.metrics(labStateDir(lab)) : undefined, flowRoot: choice.root, windowMs, log });
        const server = await serveDashboard(live, { listen, token, log });
        ctx.out(`dashboard: ${server.url}${lab ? ` (lab ${lab})` : ''}\n`);
        await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
        await server.close();
        await live.done;
      });
      ctx.setExitCode(0);
    });
}

