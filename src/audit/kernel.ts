// The kernel side of the ledger (docs/audit.md, "Nothing lost"), in the recorder's own network namespace:
//
//   table ip egw-flows {
//     chain count {
//       type filter hook postrouting priority 300; policy accept;      # after every srcnat chain (priority 100)
//       ct status & (snat | confirmed) == snat counter                 # the first packet of each translated connection
//     }
//   }
//
// The counter counts connections the kernel source-translated, whoever's rule did it (the gateway's masquerade, the
// node's natOutgoing, or Felix's), once each: the first packet of a connection is not yet confirmed (confirmation
// comes last, after every postrouting chain), a retransmitted SYN is. The table is egw-flows' own and is never
// rebuilt while it is right, so the counter only restarts when someone deletes it (the tracker then writes a gap of
// unknown size). A barrier is an entry egw inserts itself (`conntrack -I`, loopback addresses, 2 s timeout): its NEW
// event comes after every event queued before it, so seeing it means the recorder has read everything up to then.
import type { Runner } from '../dataplane/exec.js';
import type { CtFlow } from './types.js';

export const COUNT_TABLE = 'egw-flows';
const COUNT_CHAIN = 'count';
const RULE = 'ct status & (snat | confirmed) == snat counter';

/** Creates the count table when missing or not as above. Returns true when it was (re)created (the count restarts). */
export async function ensureCountTable(run: Runner): Promise<boolean> {
  if ((await readTranslatedCount(run)) !== null) return false;
  const text = [
    `table ip ${COUNT_TABLE}`,
    `delete table ip ${COUNT_TABLE}`,
    `table ip ${COUNT_TABLE} {`,
    `\tchain ${COUNT_CHAIN} {`,
    `\t\ttype filter hook postrouting priority 300; policy accept;`,
    `\t\t${RULE}`,
    `\t}`,
    `}`,
  ].join('\n');
  await run.run(['nft', '-f', '-'], { input: text + '\n' });
  return true;
}

/** The counter's packets (= translated connections), or null when the table or its rule is not there as expected. */
export async function readTranslatedCount(run: Runner): Promise<number | null> {
  const r = await run.run(['nft', '-j', 'list', 'chain', 'ip', COUNT_TABLE, COUNT_CHAIN], { allowFailure: true });
  if (r.code !== 0) return null;
  return parseCount(r.stdout);
}

/** Pure: the one rule's counter from `nft -j list chain`, or null when the chain holds anything else. */
export function parseCount(json: string): number | null {
  let doc: { nftables?: Record<string, { expr?: Record<string, unknown>[] }>[] };
  try {
    doc = JSON.parse(json);
  } catch {
    return null;
  }
  const rules = (doc.nftables ?? []).filter((o) => o.rule).map((o) => o.rule!.expr ?? []);
  if (rules.length !== 1) return null;
  const expr = rules[0]!;
  const c = expr.find((e) => 'counter' in e)?.counter as { packets?: number } | undefined;
  const ok = expr.length === 2 && JSON.stringify(expr[0]).includes('"snat"') && JSON.stringify(expr[0]).includes('"confirmed"');
  return ok && typeof c?.packets === 'number' ? c.packets : null;
}

/**
 * Barrier entries: UDP 127.0.0.2:<port> → 127.0.0.3:9, never sent. Inserted as source-translated (to 127.0.0.4) so
 * that the recorder's `--src-nat` event filter lets them through (CT_EVENT_ARGS); no rule counts them (they pass no
 * hook) and the tracker ignores them.
 */
export const BARRIER = { src: '127.0.0.2', dst: '127.0.0.3', dport: 9, nat: '127.0.0.4' } as const;

export function isBarrier(f: CtFlow): boolean {
  return f.orig.src === BARRIER.src && f.orig.dst === BARRIER.dst;
}

/** False when an entry with that port is still there (an earlier barrier): take another port. */
export async function insertBarrier(run: Runner, sport: number): Promise<boolean> {
  const argv = ['conntrack', '-I', '-p', 'udp', '-s', BARRIER.src, '-d', BARRIER.dst, '--sport', String(sport), '--dport', String(BARRIER.dport), '--src-nat', BARRIER.nat, '-t', '2'];
  const r = await run.run(argv, { allowFailure: true });
  if (r.code === 0) return true;
  if (/exists/i.test(r.stderr)) return false;
  throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
}
