// NodeDataplane: makes a node's kernel state match its NodeEgressState (docs/behaviour.md §3.1, §3.3, §3.5; docs/dataplane.md).
//
// Each reconcile reads everything egw owns (in parallel), diffs it against the desired state (plan.ts) and writes
// only the difference: one `ip -batch`, at most one `bridge -batch` (FDB), one `nft -j -f` transaction, and one
// shell for the wrong sysctls. Nothing is remembered between reconciles except the rule priorities used before
// (so a Felix priority change cleans up the old rules) and the gateway marks it gave out (a hint only: the
// assignment itself is read back from the kernel every time), so a fresh instance on an already-programmed node
// adopts it, marks included, and sends no write at all. Reconciles are serialised.

import { TABLE_ID_BASE, TABLE_ID_RANGE } from '../api/dataplane.js';
import type { NodeEgressState } from '../calc/types.js';
import type { Logger } from '../log.js';
import { batchText, READ, WRITE } from './commands.js';
import { CommandError, type RunResult, type Runner } from './exec.js';
import { isMissingDevice, parseFdb, parseLink, parseNeighbours, parseRoutesIn, parseRules, parseSysctls } from './kernel.js';
import { nftRebuildDocument, parseNftTable } from './nft.js';
import { planReconcile, type ActualState, type Plan } from './plan.js';
import { stickyConfig, type StickyConfig } from './sticky.js';
import { DataplaneError, EGW_NFT_TABLE, NODE_SYSCTLS, type NodeNatConfig, type ReconcileReport } from './types.js';
import { errText } from '../util.js';

export interface NodeDataplaneOptions {
  log?: Logger;
  /** Owned routing-table range; defaults [1000, 1000 + 2^20) as calc's. */
  tableBase?: number;
  tableRange?: number;
  /** Name of the nft table (family ip). Default `egw`. */
  nftTable?: string;
  /**
   * Per-connection stickiness with conntrack marks (docs/dataplane.md, "Connections keep their gateway"). Default
   * true; false removes its marks, rules, tables and nft objects (established connections then follow the ECMP set).
   */
  stickiness?: boolean;
  /** Contiguous mark bits egw owns in the conntrack and packet marks. Default DEFAULT_STICKY_MARK_MASK, 0x00003fc0 (255 gateways per node). */
  stickyMarkMask?: number;
  /** First per-gateway routing table (table = base + mark index); must not meet [tableBase, tableBase + tableRange). Default 2,000,000. */
  stickyTableBase?: number;
}

export class NodeDataplane {
  private readonly log?: Logger;
  private readonly tableBase: number;
  private readonly tableRange: number;
  private readonly nftTable: string;
  /** Rule priorities used by earlier reconciles (still owned until cleaned). */
  private readonly priorities = new Set<number>();
  readonly sticky: StickyConfig;
  /** Gateway IP → mark index after the last successful reconcile. */
  private marks = new Map<string, number>();
  /** Indexes of gateways that lost their mark (insertion order = age), reused if still free when they come back. */
  private readonly released = new Map<string, number>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly runner: Runner,
    opts: NodeDataplaneOptions = {},
  ) {
    this.log = opts.log;
    this.tableBase = opts.tableBase ?? TABLE_ID_BASE;
    this.tableRange = opts.tableRange ?? TABLE_ID_RANGE;
    this.nftTable = opts.nftTable ?? EGW_NFT_TABLE;
    this.sticky = stickyConfig({ enabled: opts.stickiness ?? true, mask: opts.stickyMarkMask, tableBase: opts.stickyTableBase });
    const s = this.sticky;
    if (s.tableBase < this.tableBase + this.tableRange && this.tableBase < s.tableBase + s.tableRange) {
      throw new Error(`per-gateway tables [${s.tableBase}, ${s.tableBase + s.tableRange}) overlap the egw tables [${this.tableBase}, ${this.tableBase + this.tableRange})`);
    }
  }

  /** Gateway IP → mark value, as of the last successful reconcile (in IP order). */
  stickyMarks(): Map<string, number> {
    return new Map([...this.marks].map(([ip, i]) => [ip, (i * 2 ** this.sticky.shift) >>> 0]));
  }

  /** Brings the kernel to `desired` + `nat`. Throws DataplaneError (with the report) if a write failed. */
  reconcile(desired: NodeEgressState, nat: NodeNatConfig): Promise<ReconcileReport> {
    const run = this.queue.then(
      () => this.reconcileNow(desired, nat),
      () => this.reconcileNow(desired, nat),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Reads everything egw owns on the node. */
  async readActual(device: string): Promise<{ actual: ActualState; reads: number }> {
    const r = this.runner;
    const keys = Object.keys(NODE_SYSCTLS);
    const soft = { allowFailure: true };
    const [rules, routes, link, neigh, fdb, nft, sysctls] = await Promise.all([
      r.run(READ.rules()),
      r.run(READ.routes()),
      r.run(READ.link(device), soft),
      r.run(READ.neighbours(device), soft),
      r.run(READ.fdb(device), soft),
      r.run(READ.nft(this.nftTable), soft),
      r.run(READ.sysctls(keys), soft),
    ]);
    let actualLink = null;
    if (link.code === 0) actualLink = parseLink(link.stdout);
    else if (!isMissingDevice(link.stderr)) throw new CommandError(READ.link(device), link);
    const need = (res: RunResult, argv: string[]): string => {
      if (res.code !== 0) throw new CommandError(argv, res);
      return res.stdout;
    };
    let actualNft = null;
    if (nft.code === 0) actualNft = parseNftTable(nft.stdout, this.nftTable);
    else if (!/No such file or directory|does not exist/i.test(nft.stderr)) throw new CommandError(READ.nft(this.nftTable), nft);
    const actual: ActualState = {
      link: actualLink,
      rules: parseRules(rules.stdout),
      routes: parseRoutesIn(
        routes.stdout,
        [
          [this.tableBase, this.tableRange],
          [this.sticky.tableBase, this.sticky.tableRange],
        ],
        device,
      ),
      neighbours: actualLink ? parseNeighbours(need(neigh, READ.neighbours(device))) : [],
      fdb: actualLink ? parseFdb(need(fdb, READ.fdb(device))) : [],
      nft: actualNft,
      sysctls: sysctls.code === 0 ? parseSysctls(sysctls.stdout, keys) : {},
    };
    return { actual, reads: 7 };
  }

  /** The diff only (no writes): what the next reconcile would do. */
  async plan(desired: NodeEgressState, nat: NodeNatConfig): Promise<Plan> {
    const { actual } = await this.readActual(desired.vxlan.device);
    return planReconcile(desired, nat, actual, this.planOptions());
  }

  private planOptions() {
    return {
      extraPriorities: this.priorities,
      clientTables: { base: this.tableBase, range: this.tableRange },
      nftTable: this.nftTable,
      sticky: this.sticky,
      stickyHints: [...this.released],
    };
  }

  private async reconcileNow(desired: NodeEgressState, nat: NodeNatConfig): Promise<ReconcileReport> {
    const start = performance.now();
    const { actual, reads } = await this.readActual(desired.vxlan.device);
    const plan = planReconcile(desired, nat, actual, this.planOptions());
    const report = plan.report;
    report.reads = reads;
    const errors: unknown[] = [];
    // Planned writes in their canonical order (the report); then run as two independent chains: sysctls + nft, and
    // FDB/ip batches (whose relative order matters). Nothing in one chain depends on the other.
    const sysctls = plan.sysctls.length ? { argv: WRITE.sysctls(plan.sysctls) } : null;
    const fdb = plan.fdbLines.length ? { argv: WRITE.bridgeBatch(), input: batchText(plan.fdbLines) } : null;
    const ip = plan.ipLines.length ? { argv: WRITE.ipBatch(), input: batchText(plan.ipLines) } : null;
    const nftDoc = plan.nft ? nftRebuildDocument(plan.nft) : plan.nftElements;
    const nft = nftDoc ? { argv: WRITE.nft(), input: JSON.stringify(nftDoc) } : null;
    const chainA = [sysctls, nft].filter((c) => c !== null);
    const chainB = (plan.fdbAfterIp ? [ip, fdb] : [fdb, ip]).filter((c) => c !== null);
    report.commands = [...(sysctls ? [sysctls] : []), ...chainB, ...(nft ? [nft] : [])];
    const runChain = async (chain: { argv: string[]; input?: string }[]): Promise<void> => {
      for (const c of chain) {
        try {
          await this.runner.run(c.argv, c.input === undefined ? {} : { input: c.input });
        } catch (e) {
          errors.push(e);
        }
      }
    };
    await Promise.all([runChain(chainA), runChain(chainB)]);

    report.durationMs = performance.now() - start;
    if (errors.length) {
      this.priorities.add(desired.rulePriority);
      const msg = errors.map(errText).join('; ');
      this.log?.warn('reconcile failed', { error: msg });
      throw new DataplaneError(`dataplane reconcile failed: ${msg}`, report, errors[0]);
    }
    this.priorities.clear();
    this.priorities.add(desired.rulePriority);
    this.rememberMarks(plan.sticky.assigned);
    for (const w of report.warnings) this.log?.warn(w);
    return report;
  }

  private rememberMarks(now: ReadonlyMap<string, number>): void {
    for (const [ip, i] of this.marks) if (!now.has(ip)) this.released.set(ip, i);
    const used = new Set(now.values());
    for (const [ip, i] of this.released) if (now.has(ip) || used.has(i)) this.released.delete(ip);
    for (const ip of this.released.keys()) {
      if (this.released.size <= this.sticky.capacity) break;
      this.released.delete(ip);
    }
    this.marks = new Map(now);
  }
}
