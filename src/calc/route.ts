// Which configuration routed a client's connection to a destination, for flow records (docs/audit.md, "What a record
// says"): the policy and its rule (longest prefix covering the destination), or the annotation. The same resolution
// as the data plane's (resolve.ts); decides nothing new. Pure.
import { cidrContains } from '../api/ipv4.js';
import type { FlowRoute } from '../audit/types.js';
import type { PolicyRec, RuleRec } from './records.js';
import type { Resolved } from './resolve.js';

export function routeOf(r: Resolved, policies: ReadonlyMap<string, PolicyRec>, dst: number): FlowRoute {
  switch (r.kind) {
    case 'disabled':
    case 'none':
      return { kind: 'unknown' };
    case 'fail-closed':
      return { kind: 'annotation', on: r.source, selector: r.value };
    case 'selector':
      return { kind: 'annotation', on: r.source, selector: r.selector };
    case 'policy': {
      const p = policies.get(r.policy);
      let best: RuleRec | undefined;
      for (const rule of p?.rules ?? []) if (cidrContains(rule.dst, dst) && (!best || rule.dst.prefix > best.dst.prefix)) best = rule;
      const out: FlowRoute = { kind: best && !best.gateway ? 'no-gateway' : 'policy', policy: r.policy, on: r.source };
      if (best && best.index >= 0) out.rule = best.index;
      return out;
    }
  }
}
