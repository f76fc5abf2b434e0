// Configurations: what a client's resolution amounts to, shared by every client that resolves alike. A configuration
// is named by one typed key (the plan key: per node, plans.ts prepares one plan per configuration) and holds its
// rules in route order with the candidate entry of each gateway rule. It does not depend on nodes, health or the
// internal CIDRs, so the gateway-side questions (gatewayClients) need no node computation (docs/architecture.md,
// "calc: the calculation graph").

import type { EgressIPSupport } from '../api/types.js';
import type { CandEntry, CandidateIndex } from './candidates.js';
import { addTo, removeFrom } from './collections.js';
import { ALL_DESTINATIONS, EMPTY, type ClientRec, type EgressAnnotations, type PolicyRec, type RuleRec } from './records.js';
import { resolve, type Resolved } from './resolve.js';

/**
 * The one key of a configuration. The client's namespace is part of it only where a gateway rule has no
 * namespaceSelector (its gateways are then the ones in the client's own namespace).
 */
export type ConfigKey =
  | { readonly kind: 'policy'; readonly policy: string; readonly ns: string | null }
  | { readonly kind: 'selector'; readonly selector: string; readonly namespaceSelector: string | null; readonly ns: string | null; readonly maxNextHops: number }
  | { readonly kind: 'fail-closed' };

const FAIL_CLOSED: ConfigKey = Object.freeze({ kind: 'fail-closed' });

/** The configuration key of a resolution; null when the client has none (egress disabled, no annotation). */
function configKeyOf(r: Resolved, clientNs: string, policies: ReadonlyMap<string, PolicyRec>): ConfigKey | null {
  switch (r.kind) {
    case 'policy':
      return { kind: 'policy', policy: r.policy, ns: policies.get(r.policy)!.scoped ? clientNs : null };
    case 'selector':
      return {
        kind: 'selector',
        selector: r.selector,
        namespaceSelector: r.namespaceSelector ?? null,
        ns: r.namespaceSelector === undefined ? clientNs : null,
        maxNextHops: r.maxNextHops,
      };
    case 'fail-closed':
      return FAIL_CLOSED;
    default:
      return null;
  }
}

/** The key as map text. */
function configKeyText(k: ConfigKey): string {
  switch (k.kind) {
    case 'policy':
      return k.ns === null ? `P\u0000${k.policy}` : `P\u0000${k.policy}\u0000${k.ns}`;
    case 'selector':
      return `S\u0000${k.selector}\u0000${k.namespaceSelector ?? `\u0001${k.ns}`}\u0000${k.maxNextHops}`;
    case 'fail-closed':
      return 'F';
  }
}

export interface Config {
  readonly key: ConfigKey;
  readonly text: string;
  /** Every rule is unreachable (a policy annotation naming no policy, an invalid annotation). */
  readonly failClosed: boolean;
  /** In canonical route order. */
  readonly rules: readonly RuleRec[];
  /** Parallel to `rules`: the candidate entry of each gateway rule, null for the others. */
  readonly entries: readonly (CandEntry | null)[];
  readonly clients: Set<ClientRec>;
  /** Its policy changed: no new client gets it; it is unlinked when its last client leaves. */
  evicted: boolean;
}

/** What resolution reads besides the pod. */
export interface ResolutionInputs {
  support(): EgressIPSupport;
  nsAnnotations(ns: string): EgressAnnotations;
  readonly policies: ReadonlyMap<string, PolicyRec>;
}

/** The configurations, and which client has which. */
export class Configs {
  private readonly byText = new Map<string, Config>();
  /** Clients whose resolution inputs changed since their configuration was computed. */
  private readonly dirty = new Set<ClientRec>();
  /** Policy name → clients whose resolution looked it up (existing or not). */
  private readonly byPolicy = new Map<string, Set<ClientRec>>();

  constructor(
    private readonly candidates: CandidateIndex,
    private readonly inputs: ResolutionInputs,
  ) {}

  /** One of the client's resolution inputs changed (or it is new). */
  markDirty(c: ClientRec): void {
    this.dirty.add(c);
  }

  /** The client's configuration, resolved again first if one of its inputs changed. */
  of(c: ClientRec): Config | null {
    if (this.dirty.delete(c)) {
      const r = resolve(c.pod, this.inputs.support(), this.inputs.nsAnnotations(c.pod.ns), this.inputs.policies);
      this.setPolicyDeps(c, r.kind === 'policy' || r.kind === 'fail-closed' ? r.deps : EMPTY);
      const key = configKeyOf(r, c.pod.ns, this.inputs.policies);
      this.assign(c, key ? this.get(key) : null);
    }
    return c.config;
  }

  /** Resolves every client with a pending change. */
  flush(): void {
    for (const c of this.dirty) this.of(c);
  }

  /** The clients whose resolution depends on policy `name`. */
  clientsOfPolicy(name: string): Iterable<ClientRec> {
    return this.byPolicy.get(name) ?? EMPTY;
  }

  remove(c: ClientRec): void {
    this.dirty.delete(c);
    this.setPolicyDeps(c, EMPTY);
    this.assign(c, null);
  }

  private setPolicyDeps(c: ClientRec, deps: readonly string[]): void {
    const old = c.policyDeps;
    if (old.length === deps.length && old.every((d, i) => d === deps[i])) return;
    for (const d of old) removeFrom(this.byPolicy, d, c);
    for (const d of deps) addTo(this.byPolicy, d, c);
    c.policyDeps = deps;
  }

  /** The configuration for `key`, built on first use. */
  private get(key: ConfigKey): Config {
    const text = configKeyText(key);
    const have = this.byText.get(text);
    if (have) return have;
    let rules: readonly RuleRec[];
    if (key.kind === 'policy') rules = this.inputs.policies.get(key.policy)!.rules;
    else if (key.kind === 'selector') {
      const gateway = { selector: key.selector, namespaceSelector: key.namespaceSelector ?? undefined, maxNextHops: key.maxNextHops };
      rules = [{ index: -1, dst: ALL_DESTINATIONS, dstText: '0.0.0.0/0', gateway, preference: 'None' }];
    } else rules = [{ index: -1, dst: ALL_DESTINATIONS, dstText: '0.0.0.0/0', preference: 'None' }];
    const failClosed = key.kind === 'fail-closed';
    const scope = key.kind === 'fail-closed' ? '' : (key.ns ?? '');
    const entries = rules.map((r) => (failClosed || !r.gateway ? null : this.candidates.entryFor(r.gateway.selector, r.gateway.namespaceSelector, scope)));
    const cfg: Config = { key, text, failClosed, rules, entries, clients: new Set(), evicted: false };
    for (const e of entries) e?.users.add(cfg);
    this.byText.set(text, cfg);
    return cfg;
  }

  private assign(c: ClientRec, cfg: Config | null): void {
    const old = c.config;
    if (old === cfg) return;
    if (old) {
      old.clients.delete(c);
      if (old.evicted && old.clients.size === 0) unlink(old);
    }
    c.config = cfg;
    cfg?.clients.add(c);
  }

  /** Policy `name` changed: its configurations are rebuilt for the next client that resolves to them. */
  evictPolicy(name: string): void {
    for (const [text, cfg] of this.byText) {
      if (cfg.key.kind !== 'policy' || cfg.key.policy !== name) continue;
      this.byText.delete(text);
      cfg.evicted = true;
      if (cfg.clients.size === 0) unlink(cfg);
    }
  }

  /** Forgets configurations without clients (their entries may then be forgotten: CandidateIndex.gc). */
  gc(): void {
    for (const [text, cfg] of this.byText) {
      if (cfg.clients.size > 0) continue;
      this.byText.delete(text);
      unlink(cfg);
    }
  }
}

function unlink(cfg: Config): void {
  for (const e of cfg.entries) e?.users.delete(cfg);
}
