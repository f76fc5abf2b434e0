// `egw explain`'s text: the human-readable rendering of calc's Explanation (EgressCalculator.explain builds it;
// `-o json` prints it as is). Presentation only: nothing here decides anything.
import type { Explanation } from '../calc/types.js';

/** Human-readable rendering of an explanation (what `egw explain` prints without `-o json`). */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`pod ${e.pod}${e.podIP ? ` (${e.podIP})` : ''}${e.node ? ` on node ${e.node}` : ''} → ${e.dst}`);
  const verdict = e.verdict === 'via-gateway' ? `via gateway ${e.hops.join(', ')}` : e.verdict === 'dropped' ? 'DROPPED (unreachable)' : 'ordinary routing (no gateway)';
  lines.push(`verdict: ${verdict}`);
  for (const x of e.egress) {
    const pool = x.pool ? `, IPPool ${x.pool}` : '';
    if (!x.hostIP) lines.push(`egress IP: ${x.ip} (gateway ${x.pod}${pool}): the outside sees ${x.ip}`);
    else {
      const seen = x.hostIP.nodeIP ? `${x.hostIP.nodeIP} (node ${x.hostIP.node}'s IP)` : `node ${x.hostIP.node}'s IP (not known)`;
      lines.push(`egress IP: ${x.ip} (gateway ${x.pod}${pool}): host-IP mode, the outside sees ${seen}, not the egress IP (the pool has natOutgoing)`);
    }
  }
  lines.push(`decision: ${e.kind}${e.kind !== e.configKind ? ` (configuration: ${e.configKind})` : ''}${e.source ? ` from the ${e.source}` : ''}` + (e.annotation ? ` [${e.annotation.name}=${e.annotation.value}]` : ''));
  if (e.policy) lines.push(`policy: ${e.policy}`);
  if (e.rule) {
    const r = e.rule;
    let s = `rule: ${r.index !== undefined ? `#${r.index} ` : ''}destination ${r.destination}`;
    if (r.description) s += ` "${r.description}"`;
    if (r.gateway) {
      s += `, selector ${r.gateway.selector}`;
      if (r.gateway.namespaceSelector) s += `, namespaceSelector ${r.gateway.namespaceSelector}`;
      if (r.gateway.maxNextHops) s += `, maxNextHops ${r.gateway.maxNextHops}`;
    } else s += ', no gateway';
    if (r.gatewayPreference !== 'None') s += `, ${r.gatewayPreference}`;
    lines.push(s);
  }
  if (e.internalCidr) lines.push(`internal: ${e.internalCidr}`);
  lines.push('why:');
  for (const w of e.why) lines.push(`  - ${w}`);
  if (e.candidates.length) {
    lines.push('candidates:');
    const rows = e.candidates.map((c) => [
      c.chosen ? '*' : c.keptForExisting ? '~' : ' ',
      c.pod,
      c.ip,
      c.node || '-',
      c.ready ? (c.draining ? 'draining' : 'ready') : 'not-ready',
      c.local ? 'local' : '',
      c.rank !== undefined ? `#${c.rank}` : '',
      c.reasons.join('; '),
    ]);
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) lines.push(`  ${r.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd()}`);
    lines.push('  (* chosen, ~ draining but kept for existing connections)');
  }
  lines.push('kernel:');
  lines.push(`  rule:  ${e.kernel.rule ?? '(none: the main table applies)'}`);
  if (e.kernel.table !== null) lines.push(`  route: ${e.kernel.route ?? `(no route for ${e.dst} in table ${e.kernel.table}: the lookup falls through)`}`);
  for (const x of e.kernel.neighbours) lines.push(`  neigh: ${x}`);
  for (const x of e.kernel.fdb) lines.push(`  fdb:   ${x}`);
  return lines.join('\n');
}
