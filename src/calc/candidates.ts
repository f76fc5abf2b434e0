// The candidate index: the gateway pods, and one entry per distinct (selector, namespaceSelector | own namespace)
// pair holding the gateway pods that match it and the configurations that use it. A gateway pod change re-tests
// that pod against each entry, a namespace label change re-tests that namespace's gateways: never every client
// against every selector (docs/architecture.md, "calc: the calculation graph").

import { parseSelector, type Selector } from '../selector/index.js';
import type { Config } from './configs.js';
import { byKey, sameGateway, type GatewayRec, type Labels } from './records.js';
import { addTo, bsearch, removeFrom } from './collections.js';
import { errText } from '../util.js';

/** Gateway pods matching one (selector, namespaceSelector | own namespace) pair, and the configurations using it. */
export interface CandEntry {
  readonly key: string;
  readonly sel: Selector | null;
  /** null: scoped to `scopeNs`. */
  readonly nsSel: Selector | null;
  readonly scopeNs: string | null;
  /** The selector or namespaceSelector does not parse: the entry matches nothing. */
  readonly error: string | null;
  /** Sorted by key. Every matching gateway pod, whatever its health. */
  members: GatewayRec[];
  readonly memberKeys: Set<string>;
  readonly users: Set<Config>;
}

export class CandidateIndex {
  readonly gateways = new Map<string, GatewayRec>();
  readonly entries = new Map<string, CandEntry>();
  private readonly byNs = new Map<string, Set<string>>();
  /** Normally one pod per IP; a stale pod can briefly share its IP with a new one. */
  private readonly byIp = new Map<string, Set<string>>();

  /** `nsLabels(ns)`: a namespace's labels as selectors see them. */
  constructor(private readonly nsLabels: (ns: string) => Labels) {}

  /** Does the entry select this gateway pod (or a pod that would be one)? */
  matches(e: CandEntry, g: { readonly ns: string; readonly labels: Labels }): boolean {
    if (!e.sel) return false;
    if (e.scopeNs !== null) {
      if (g.ns !== e.scopeNs) return false;
    } else if (!e.nsSel!.matches(this.nsLabels(g.ns))) return false;
    return e.sel.matches(g.labels);
  }

  /** The configurations using an entry that selects this gateway pod: whose clients may send through it. */
  *usersSelecting(g: { readonly ns: string; readonly labels: Labels }): Iterable<Config> {
    for (const e of this.entries.values()) if (e.users.size > 0 && this.matches(e, g)) yield* e.users;
  }

  /** The entry for (selector, namespaceSelector), or (selector, own namespace `scopeNs`) without a namespaceSelector. */
  entryFor(selector: string, namespaceSelector: string | undefined, scopeNs: string): CandEntry {
    let sel: Selector | null = null;
    let nsSel: Selector | null = null;
    let error: string | null = null;
    try {
      sel = parseSelector(selector);
      if (namespaceSelector !== undefined) nsSel = parseSelector(namespaceSelector);
    } catch (err) {
      error = errText(err);
      sel = null;
    }
    const scope = namespaceSelector === undefined ? scopeNs : null;
    const key = error !== null ? `!${selector}\u0000${namespaceSelector ?? ''}` : `${sel!.canonical}\u0000${nsSel ? nsSel.canonical : `@${scope}`}`;
    let e = this.entries.get(key);
    if (e) return e;
    e = { key, sel, nsSel, scopeNs: scope, error, members: [], memberKeys: new Set(), users: new Set() };
    if (sel) {
      const add = (gks: Iterable<string>): void => {
        for (const gk of gks) {
          const g = this.gateways.get(gk)!;
          if (sel.matches(g.labels)) e.members.push(g);
        }
      };
      if (scope !== null) add(this.byNs.get(scope) ?? []);
      else for (const [ns, gks] of this.byNs) if (nsSel!.matches(this.nsLabels(ns))) add(gks);
      e.members.sort(byKey);
      for (const g of e.members) e.memberKeys.add(g.key);
    }
    this.entries.set(key, e);
    return e;
  }

  /**
   * Adds, replaces (`neu`) or removes (undefined) a gateway pod. Returns null when nothing routing reads changed;
   * else the previous record and the entries it was or now is a member of.
   */
  setGateway(key: string, neu: GatewayRec | undefined): { old: GatewayRec | undefined; touched: CandEntry[] } | null {
    const old = this.gateways.get(key);
    if (old && neu && sameGateway(old, neu)) return null;
    if (!old && !neu) return null;
    if (neu) this.gateways.set(key, neu);
    else this.gateways.delete(key);
    if (old) removeFrom(this.byIp, old.ip, key);
    if (neu) addTo(this.byIp, neu.ip, key);
    const ns = (old ?? neu)!.ns;
    if (neu) addTo(this.byNs, ns, key);
    else removeFrom(this.byNs, ns, key);
    const touched: CandEntry[] = [];
    for (const e of this.entries.values()) {
      const was = e.memberKeys.has(key);
      const now = neu !== undefined && this.matches(e, neu);
      if (!was && !now) continue;
      if (was) e.members = e.members.filter((g) => g.key !== key);
      if (now) {
        const i = bsearch(e.members, neu, byKey);
        e.members.splice(i < 0 ? -i - 1 : i, i < 0 ? 0 : 1, neu);
        e.memberKeys.add(key);
      } else e.memberKeys.delete(key);
      touched.push(e);
    }
    return { old, touched };
  }

  /** Namespace `name`'s labels changed: returns the entries whose members changed. */
  namespaceLabelsChanged(name: string, oldLabels: Labels, newLabels: Labels): CandEntry[] {
    const gws = this.byNs.get(name);
    const touched: CandEntry[] = [];
    if (!gws || gws.size === 0) return touched;
    for (const e of this.entries.values()) {
      if (!e.nsSel || !e.sel) continue;
      const was = e.nsSel.matches(oldLabels);
      const now = e.nsSel.matches(newLabels);
      if (was === now) continue;
      let any = false;
      for (const gk of gws) {
        if (!e.sel.matches(this.gateways.get(gk)!.labels)) continue;
        any = true;
        if (now) e.memberKeys.add(gk);
        else e.memberKeys.delete(gk);
      }
      if (!any) continue;
      e.members = [...e.memberKeys].map((k) => this.gateways.get(k)!).sort(byKey);
      touched.push(e);
    }
    return touched;
  }

  /** The gateway pod reported for an IP: usable ones first, then ready ones, then by key. */
  gatewayAt(ip: string): GatewayRec | undefined {
    let best: GatewayRec | undefined;
    const rank = (g: GatewayRec): number => (g.ready ? (g.draining ? 1 : 0) : 2);
    for (const k of this.byIp.get(ip) ?? []) {
      const g = this.gateways.get(k)!;
      if (!best || rank(g) < rank(best) || (rank(g) === rank(best) && g.key < best.key)) best = g;
    }
    return best;
  }

  /** Forgets entries no configuration uses. */
  gc(): void {
    for (const [k, e] of this.entries) if (e.users.size === 0) this.entries.delete(k);
  }
}
