// The diff: desired node state + actual kernel state → the commands that make the kernel match, and counts.
// Pure (no I/O), so every decision is unit-testable.
//
// Order inside the one `ip -batch`: link (create / recreate / mtu, learning, up; stray addresses), neighbours
// (replace), routes (replace: atomic, no gap), rule adds, then removals in reverse dependency order: rules, routes,
// neighbours, and last the link (when egress is disabled). A client that moves table gets its new rule before its
// old one goes (same priority: the older rule keeps matching until deleted), so there is no gap either.
// FDB entries need `bridge`: with the link already up they are written just before the ip batch (so new gateways
// are reachable before routes use them); when the link is being created, just after it.
// Only a VNI, port, local-address or kind mismatch deletes and recreates the link; the routes, neighbours and FDB
// entries that vanish with it are then re-added, not deleted.
// Stickiness (sticky.ts) adds per-gateway tables (with the routes, same order), mark rules (with the rule adds and
// deletions) and the map `gw_marks` (whose elements change in place unless the table is rebuilt anyway).

import { TABLE_ID_BASE, TABLE_ID_RANGE, TCP_IP_HEADERS } from '../api/dataplane.js';
import { comparePrefix, parsePrefix } from '../api/ipv4.js';
import type { EgressRoute, NodeEgressState } from '../calc/types.js';
import { BRIDGE, IP, type RuleSelectors } from './commands.js';
import { routeKey, routeSignature, type ActualFdb, type ActualLink, type ActualNeighbour, type ActualRoute, type ActualRule } from './kernel.js';
import { canonicalTable, nftMarkElementsDocument, nodeNftTable, type ActualNftTable, type NftMarkElem, type NftTableSpec } from './nft.js';
import { inStickyRange, planSticky, stickyConfig, type StickyConfig, type StickyPlan } from './sticky.js';
import { NODE_SYSCTLS, emptyReport, type NodeNatConfig, type ReconcileReport } from './types.js';

export interface ActualState {
  link: ActualLink | null;
  rules: ActualRule[];
  /** Routes in egw tables only (calc's range and the per-gateway range). */
  routes: ActualRoute[];
  neighbours: ActualNeighbour[];
  fdb: ActualFdb[];
  nft: ActualNftTable | null;
  sysctls: Record<string, string>;
}

export interface PlanOptions {
  /** Rule priorities egw owns besides desired.rulePriority (a priority used before a Felix change). */
  extraPriorities?: Iterable<number>;
  /**
   * The client tables' range: a client-shaped rule (`from <ip>/32 lookup <table in it>`) is egw's at any priority, so rules left at an old priority
   * (egressIPRoutingRulePriority changed while the agent was down) are removed, not left to steer traffic.
   * Default [TABLE_ID_BASE, TABLE_ID_BASE + TABLE_ID_RANGE).
   */
  clientTables?: { base: number; range: number };
  nftTable?: string;
  /** Stickiness settings (sticky.ts); default: on, mask DEFAULT_STICKY_MARK_MASK (0x00003fc0), tables from 2,000,000. */
  sticky?: StickyConfig;
  /** (gateway IP, index) this process gave out before, preferred over the lowest free index when still free. */
  stickyHints?: Iterable<readonly [string, number]>;
}

export interface Plan {
  ipLines: string[];
  /** `bridge -batch` lines (deletions first); run before the ip batch unless `fdbAfterIp`. */
  fdbLines: string[];
  fdbAfterIp: boolean;
  /** The table to write, when the kernel's differs. */
  nft: NftTableSpec | null;
  /** In-place changes of the map `gw_marks` (`nft -j -f -` document), when the table is not rebuilt. */
  nftElements: { nftables: unknown[] } | null;
  /** The gateway marks and the objects derived from them. */
  sticky: StickyPlan;
  sysctls: [string, string][];
  /** Counts (commands, reads and duration are filled in by the caller). */
  report: ReconcileReport;
}

type LinkAction = 'keep' | 'create' | 'recreate' | 'delete' | 'none';

export function planReconcile(desired: NodeEgressState, nat: NodeNatConfig, actual: ActualState, opts: PlanOptions = {}): Plan {
  const report = emptyReport();
  const dev = desired.vxlan.device;
  const stCfg = opts.sticky ?? stickyConfig();
  const sticky = planSticky(desired, nat, stCfg, { mapElems: actual.nft?.marks ?? [], routes: actual.routes }, opts.stickyHints);
  report.warnings.push(...sticky.warnings);
  const v = desired.vxlan;
  const linkWanted = desired.enabled && v.local !== null;
  const ipHead: string[] = [];
  const neighAdds: string[] = [];
  const routeAdds: string[] = [];
  const ruleAdds: string[] = [];
  const ruleDels: string[] = [];
  const routeDels: string[] = [];
  const neighDels: string[] = [];
  const ipTail: string[] = [];

  // ---- link
  const a = actual.link;
  let link: LinkAction = 'none';
  if (linkWanted) {
    const params = { vni: v.vni, port: v.port, local: v.local!, mtu: v.mtu };
    if (!a) link = 'create';
    else if (a.kind !== 'vxlan' || a.vni !== v.vni || a.port !== v.port || a.local !== v.local || a.hasPeer) link = 'recreate';
    else link = 'keep';
    if (link === 'create' || link === 'recreate') {
      if (link === 'recreate') ipHead.push(IP.linkDel(dev));
      ipHead.push(IP.linkAdd(dev, params), IP.linkUp(dev));
      if (link === 'create') report.link.added++;
      else {
        report.link.changed++;
        report.link.recreated = true;
      }
    } else if (a) {
      let changed = false;
      if (a.learning) {
        ipHead.push(IP.linkNoLearning(dev));
        changed = true;
      }
      if (a.mtu !== v.mtu) {
        ipHead.push(IP.linkMtu(dev, v.mtu));
        changed = true;
      }
      if (!a.up) {
        ipHead.push(IP.linkUp(dev));
        changed = true;
      }
      if (changed) report.link.changed++;
      for (const addr of a.addresses) {
        ipHead.push(IP.addrDel(dev, addr));
        report.addresses.removed++;
      }
    }
  } else if (a) {
    link = 'delete';
    ipTail.push(IP.linkDel(dev));
    report.link.removed++;
  }
  /** Objects on the device are gone (recreate) or going (delete) with it. */
  const deviceObjectsGone = link === 'recreate' || link === 'delete' || link === 'create';
  if (desired.enabled && v.local === null) report.warnings.push('node has no local address: routes via gateways are installed as unreachable (fail closed)');

  // ---- neighbours
  const wantNeigh = new Map<string, string>();
  if (linkWanted) for (const g of desired.gateways) wantNeigh.set(g.ip, g.mac.toLowerCase());
  const haveNeigh = new Map<string, ActualNeighbour>();
  if (!deviceObjectsGone) for (const n of actual.neighbours) haveNeigh.set(n.ip, n);
  for (const [ip, mac] of wantNeigh) {
    const h = haveNeigh.get(ip);
    if (h && h.mac === mac && h.permanent) continue;
    neighAdds.push(IP.neighReplace(dev, ip, mac));
    if (h) report.neighbours.changed++;
    else report.neighbours.added++;
  }
  for (const [ip] of haveNeigh) {
    if (wantNeigh.has(ip)) continue;
    if (link !== 'delete') neighDels.push(IP.neighDel(dev, ip));
    report.neighbours.removed++;
  }
  if (link === 'delete') report.neighbours.removed += actual.neighbours.length - haveNeigh.size;

  // ---- FDB
  const wantFdb = new Map<string, { mac: string; ip: string }>();
  if (linkWanted) for (const g of desired.gateways) wantFdb.set(`${g.mac.toLowerCase()}|${g.ip}`, { mac: g.mac.toLowerCase(), ip: g.ip });
  const fdbDels: string[] = [];
  const fdbAdds: string[] = [];
  const seenFdb = new Set<string>();
  if (!deviceObjectsGone) {
    for (const e of actual.fdb) {
      const k = `${e.mac}|${e.dst ?? ''}`;
      if (!e.odd && wantFdb.has(k) && !seenFdb.has(k)) {
        seenFdb.add(k);
        continue;
      }
      if (link !== 'delete') fdbDels.push(BRIDGE.fdbDel(dev, e));
      report.fdb.removed++;
    }
  } else if (link === 'delete') report.fdb.removed += actual.fdb.length;
  for (const [k, e] of wantFdb) {
    if (seenFdb.has(k)) continue;
    fdbAdds.push(BRIDGE.fdbAppend(dev, e.mac, e.ip));
    report.fdb.added++;
  }

  // ---- routes
  const failClosed = desired.enabled && !linkWanted;
  const wantRoutes = new Map<string, { table: number; route: EgressRoute; sig: string }>();
  const allTables = [...desired.tables, ...sticky.tables];
  for (const t of allTables) {
    for (const r0 of t.routes) {
      const route: EgressRoute = failClosed && r0.type === 'ecmp' ? { dst: r0.dst, type: 'unreachable' } : r0;
      wantRoutes.set(routeKey({ table: t.id, dst: route.dst }), { table: t.id, route, sig: routeSignature(route, dev) });
    }
  }
  const haveRoutes = new Map<string, ActualRoute>();
  const gone = (r: ActualRoute): boolean => r.usesDevice && (link === 'recreate' || link === 'delete');
  const haveTables = new Set<number>();
  for (const r of actual.routes) {
    const k = routeKey(r);
    if (gone(r)) {
      if (!wantRoutes.has(k)) report.routes.removed++;
      continue;
    }
    haveTables.add(r.table);
    if (!haveRoutes.has(k)) {
      haveRoutes.set(k, r);
      continue;
    }
    // a second route with the same identity (`ip route append`): not ours
    routeDels.push(IP.routeDel(r));
    report.routes.removed++;
  }
  for (const [k, w] of wantRoutes) {
    const h = haveRoutes.get(k);
    if (h && h.sig === w.sig) continue;
    routeAdds.push(IP.routeReplace(dev, w.table, w.route));
    if (h) report.routes.changed++;
    else report.routes.added++;
  }
  const stale = [...haveRoutes].filter(([k]) => !wantRoutes.has(k)).map(([, h]) => h);
  stale.sort((x, y) => x.table - y.table || comparePrefix(parsePrefix(x.dst)!, parsePrefix(y.dst)!) || x.metric - y.metric);
  for (const h of stale) {
    routeDels.push(IP.routeDel(h));
    report.routes.removed++;
  }
  const wantTables = new Set(allTables.map((t) => t.id));
  for (const t of wantTables) if (!haveTables.has(t)) report.tables.added++;
  for (const t of haveTables) if (!wantTables.has(t)) report.tables.removed++;

  // ---- rules
  // Owned: every rule at the egw priority (and priorities used before), and every rule that looks up a client
  // table or a per-gateway table, at any priority. Wanted: the clients' plain rules at rulePriority, the mark rules at rulePriority − 1.
  const prio = desired.rulePriority;
  const owned = new Set<number>([prio, ...(opts.extraPriorities ?? [])]);
  const wantRules = new Map<string, { src: string; table: number }>();
  for (const r of desired.rules) wantRules.set(`${r.src}|${r.table}`, { src: r.src, table: r.table });
  const markKey = (src: string, mark: number, mask: number, table: number): string => `${src}|${mark >>> 0}/${mask >>> 0}|${table}`;
  const wantMarkRules = new Map<string, (typeof sticky.rules)[number]>();
  for (const r of sticky.rules) wantMarkRules.set(markKey(r.src, r.mark, stCfg.mask, r.table), r);
  const keptRules = new Set<string>();
  const keptMarkRules = new Set<string>();
  const addedSrc = new Set<string>();
  const removedSrc = new Set<string>();
  /** Rules of one kind with the same source are "the same rule, changed" in the counts. */
  const countKey = (r: RuleSelectors): string => (r.fwmark !== undefined ? `m|${r.src}|${r.fwmark}` : `p|${r.src}`);
  const num = (x: string | undefined): number | null => (x !== undefined && /^(0x[0-9a-f]+|\d+)$/i.test(x) ? Number(x) : null);
  const ct = opts.clientTables ?? { base: TABLE_ID_BASE, range: TABLE_ID_RANGE };
  /** A client rule's shape (`from <ip>/32 lookup <client table>`) at any priority: left over from an older priority. */
  const strayClientRule = (r: ActualRule): boolean =>
    r.plain && r.src.endsWith('/32') && r.table !== undefined && r.table >= ct.base && r.table < ct.base + ct.range;
  for (const r of actual.rules) {
    if (!owned.has(r.priority) && !inStickyRange(r.table, stCfg) && !strayClientRule(r)) continue;
    const k = `${r.src}|${r.table}`;
    if (r.plain && r.priority === prio && wantRules.has(k) && !keptRules.has(k)) {
      keptRules.add(k);
      continue;
    }
    if (r.markPlain && r.priority === sticky.priority && r.table !== undefined) {
      const mark = num(r.fwmark);
      const mask = r.fwmask === undefined ? 0xffffffff : num(r.fwmask);
      const mk = mark !== null && mask !== null ? markKey(r.src, mark, mask, r.table) : '';
      if (wantMarkRules.has(mk) && !keptMarkRules.has(mk)) {
        keptMarkRules.add(mk);
        continue;
      }
    }
    ruleDels.push(IP.ruleDel(r));
    removedSrc.add(countKey(r));
    report.rules.removed++;
  }
  for (const [k, w] of wantRules) {
    if (keptRules.has(k)) continue;
    ruleAdds.push(IP.ruleAdd(w.src, w.table, prio));
    addedSrc.add(`p|${w.src}`);
    report.rules.added++;
  }
  for (const [k, w] of wantMarkRules) {
    if (keptMarkRules.has(k)) continue;
    ruleAdds.push(IP.ruleAddMark(w.src, w.mark, stCfg.mask, w.table, sticky.priority));
    addedSrc.add(`m|${w.src}|0x${(w.mark >>> 0).toString(16)}`);
    report.rules.added++;
  }
  for (const s of addedSrc) {
    if (!removedSrc.has(s)) continue;
    report.rules.added--;
    report.rules.removed--;
    report.rules.changed++;
  }

  // ---- nft
  const nftTable = opts.nftTable ?? 'egw';
  const nftSpec = nodeNftTable({
    table: nftTable,
    nat,
    device: dev,
    mss: v.mtu - TCP_IP_HEADERS,
    tunnelPort: v.port,
    ...(stCfg.enabled ? { sticky: { mask: stCfg.mask, clientPools: sticky.clientPools, marks: sticky.marks } } : {}),
  });
  let nft: NftTableSpec | null = null;
  let nftElements: { nftables: unknown[] } | null = null;
  if (!actual.nft) {
    nft = nftSpec;
    report.nft.added++;
  } else if (canonicalTable(actual.nft) !== canonicalTable(nftSpec)) {
    nft = nftSpec;
    report.nft.changed++;
  }
  // map elements: counted against what the kernel holds; written in place unless the table is rebuilt
  const haveMarks = new Map<string, number>();
  for (const e of actual.nft?.marks ?? []) haveMarks.set(e.ip, e.mark);
  const wantMarks = new Map<string, number>((nftSpec.marks ?? []).map((e) => [e.ip, e.mark]));
  const markDels: string[] = [];
  const markAdds: NftMarkElem[] = [];
  for (const [ip, mark] of wantMarks) {
    const h = haveMarks.get(ip);
    if (h === mark) continue;
    if (h !== undefined) {
      markDels.push(ip);
      report.marks.changed++;
    } else report.marks.added++;
    markAdds.push({ ip, mark });
  }
  for (const [ip] of haveMarks) {
    if (wantMarks.has(ip)) continue;
    markDels.push(ip);
    report.marks.removed++;
  }
  if (!nft && (markDels.length || markAdds.length)) nftElements = nftMarkElementsDocument(nftTable, markDels, markAdds);

  // ---- sysctls
  const sysctls: [string, string][] = [];
  for (const [k, val] of Object.entries(NODE_SYSCTLS)) {
    if (actual.sysctls[k] === val) continue;
    sysctls.push([k, val]);
    report.sysctls.changed++;
  }

  return {
    ipLines: [...ipHead, ...neighAdds, ...routeAdds, ...ruleAdds, ...ruleDels, ...routeDels, ...neighDels, ...ipTail],
    fdbLines: [...fdbDels, ...fdbAdds],
    fdbAfterIp: link === 'create' || link === 'recreate',
    nft,
    nftElements,
    sticky,
    sysctls,
    report,
  };
}
