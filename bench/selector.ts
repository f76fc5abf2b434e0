// Selector benchmark: compiled matchers vs the plain tree walk, on the same seeded inputs in the same run.
//
//   node --import tsx bench/selector.ts      prints the JSON result
//
// Inputs: ~200 realistic selectors (gateway, namespace and pool selectors as egress users write them: ==, in, has,
// &&, ||, !, starts with, …) and ~1,000 label sets shaped like pod, gateway and namespace labels, both generated
// from a fixed seed. Each round evaluates every selector on every label set; after warm-up rounds, the median of
// several timed rounds is reported.

import { pathToFileURL } from 'node:url';
import { compile, evaluateTree, printSelector, type Labels, type SelectorNode } from '../src/selector/index.js';
import { parse } from '../src/selector/parser.js';
import { prng } from './util.js';

export interface SelectorBenchOptions {
  /** Number of selectors (default 200). */
  selectors?: number;
  /** Number of label sets (default 1000). */
  labelSets?: number;
  /** Timed rounds per matcher (default 7); the median is reported. */
  rounds?: number;
  /** Untimed rounds per matcher first (default 3). */
  warmupRounds?: number;
  /** PRNG seed (default 20240611). */
  seed?: number;
}


const APPS = ['web', 'api', 'worker', 'payments', 'checkout', 'search', 'auth', 'billing', 'cart', 'catalog', 'db', 'cache'];
const TIERS = ['frontend', 'backend', 'data'];
const ENVS = ['prod', 'staging', 'dev', 'qa'];
const TEAMS = ['payments', 'platform', 'growth', 'security', 'data-eng', 'payroll'];
const ZONES = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c', 'us-east-1a', 'us-east-1b'];
const CODES = ['red', 'blue', 'green', 'orange', 'purple'];
const GATEWAYS = Array.from({ length: 12 }, (_, i) => `egw-${i}`);
const NAMESPACES = Array.from({ length: 40 }, (_, i) => `ns-${i}`);

function makeInputs(nSelectors: number, nLabelSets: number, seed: number, uniqueShapes: boolean): { selectors: string[]; labelSets: Labels[] } {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const some = (xs: readonly string[], min: number, max: number): string[] => {
    const n = min + Math.floor(rnd() * (max - min + 1));
    return Array.from({ length: n }, () => pick(xs));
  };
  const set = (xs: readonly string[]): string => `{${xs.map((x) => `'${x}'`).join(', ')}}`;

  const templates: Array<() => string> = [
    () => `egress-code == '${pick(CODES)}'`,
    () => `projectcalico.org/egw == '${pick(GATEWAYS)}'`,
    () => `projectcalico.org/name == '${pick(NAMESPACES)}'`,
    () => `app in ${set(some(APPS, 2, 4))}`,
    () => `has(egress-code)`,
    () => `tier == '${pick(TIERS)}' && env in ${set(some(ENVS, 1, 2))}`,
    () => `!has(dev-only) && app == '${pick(APPS)}'`,
    () => `team starts with '${pick(TEAMS).slice(0, 3)}'`,
    () => `(topology.kubernetes.io/zone == '${pick(ZONES)}' || topology.kubernetes.io/zone == '${pick(ZONES)}') && egress-code == '${pick(CODES)}'`,
    () => `env != 'dev' && !(tier in ${set(some(TIERS, 1, 2))})`,
    () => `app.kubernetes.io/part-of == 'shop' && app.kubernetes.io/component starts with '${pick(['db', 'web', 'api'])}'`,
    () => `projectcalico.org/name in ${set(some(NAMESPACES, 3, 12))}`,
    () => `has(projectcalico.org/egw) && egress-code in ${set(some(CODES, 1, 3))} && env == '${pick(ENVS)}'`,
    () => `app == '${pick(APPS)}' || app == '${pick(APPS)}' || team == '${pick(TEAMS)}'`,
    () => `all()`,
    () => `tier not in {'data'} && has(app) && topology.kubernetes.io/zone ends with '${pick(['a', 'b', 'c'])}'`,
  ];
  const selectors = Array.from({ length: nSelectors }, () => pick(templates)());

  // Label sets. In a cluster, pods of one Deployment carry the same label keys in the same order (one template),
  // so label objects share a few dozen shapes; values such as pod-template-hash differ per pod. With
  // `uniqueShapes`, every label set instead gets its own random subset and order of keys: the worst case for
  // property lookups (every object has its own hidden class), reported separately.
  type Template = () => Array<[string, string]>;
  const hash = (): string => Math.floor(rnd() * 1e10).toString(36);
  const podTemplate = (): Template => {
    const app = pick(APPS);
    const fixed: Array<[string, string]> = [['app', app]];
    if (rnd() < 0.8) fixed.push(['tier', pick(TIERS)]);
    if (rnd() < 0.8) fixed.push(['env', pick(ENVS)]);
    if (rnd() < 0.6) fixed.push(['team', pick(TEAMS)]);
    if (rnd() < 0.3) fixed.push(['egress-code', pick(CODES)]);
    if (rnd() < 0.4) fixed.push(['app.kubernetes.io/part-of', 'shop'], ['app.kubernetes.io/component', pick(['db', 'web', 'api', 'queue'])]);
    if (rnd() < 0.1) fixed.push(['dev-only', 'true']);
    if (rnd() < 0.5) fixed.push(['version', `v${Math.floor(rnd() * 5)}`]);
    return () => [...fixed, ['pod-template-hash', hash()]];
  };
  const gatewayTemplate = (): Template => {
    const gw = pick(GATEWAYS);
    const code = pick(CODES);
    const env = pick(ENVS);
    return () => [['projectcalico.org/egw', gw], ['egress-code', code], ['env', env], ['topology.kubernetes.io/zone', pick(ZONES)], ['pod-template-hash', hash()]];
  };
  const namespaceTemplate = (): Template => {
    const extra: Array<[string, string]> = [];
    if (rnd() < 0.5) extra.push(['team', pick(TEAMS)]);
    if (rnd() < 0.3) extra.push(['egress-code', pick(CODES)]);
    return () => {
      const ns = pick(NAMESPACES);
      return [['kubernetes.io/metadata.name', ns], ['projectcalico.org/name', ns], ...extra];
    };
  };
  const templates2: Template[] = [
    ...Array.from({ length: 40 }, podTemplate),
    ...Array.from({ length: 12 }, gatewayTemplate),
    ...Array.from({ length: 8 }, namespaceTemplate),
  ];
  const labelSets: Labels[] = [];
  for (let i = 0; i < nLabelSets; i++) {
    let entries = pick(templates2)();
    if (uniqueShapes) {
      entries = entries.filter(() => rnd() < 0.85);
      for (let j = entries.length - 1; j > 0; j--) {
        const k = Math.floor(rnd() * (j + 1));
        [entries[j], entries[k]] = [entries[k], entries[j]];
      }
      entries.push([`extra-${i}`, 'x']);
    }
    labelSets.push(Object.fromEntries(entries) as Labels);
  }
  return { selectors, labelSets };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One round: every matcher on every label set. Returns [seconds, number of matches]. */
function round(matchers: ReadonlyArray<(labels: Labels) => boolean>, labelSets: readonly Labels[]): [number, number] {
  let hits = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < matchers.length; i++) {
    const m = matchers[i];
    for (let j = 0; j < labelSets.length; j++) if (m(labelSets[j])) hits++;
  }
  const t1 = process.hrtime.bigint();
  return [Number(t1 - t0) / 1e9, hits];
}

interface Measured {
  compiledMatchesPerSec: number;
  treeWalkMatchesPerSec: number;
  speedup: number;
  matchFraction: number;
}

async function measure(asts: readonly SelectorNode[], labelSets: readonly Labels[], warmup: number, rounds: number): Promise<Measured> {
  // Fresh matchers per scenario, so that no scenario inherits another's type feedback in the compiled code.
  const compiled = asts.map((ast) => compile(ast));
  const walkers = asts.map((ast) => (labels: Labels) => evaluateTree(ast, labels));
  const evals = asts.length * labelSets.length;
  const compiledTimes: number[] = [];
  const treeTimes: number[] = [];
  let compiledHits = -1;
  let treeHits = -1;
  // Interleave the two so that machine noise affects both alike.
  for (let r = 0; r < warmup + rounds; r++) {
    const [tc, hc] = round(compiled, labelSets);
    const [tt, ht] = round(walkers, labelSets);
    compiledHits = hc;
    treeHits = ht;
    if (r >= warmup) {
      compiledTimes.push(tc);
      treeTimes.push(tt);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (compiledHits !== treeHits) throw new Error(`compiled and tree-walk matchers disagree: ${compiledHits} vs ${treeHits} matches`);
  const compiledMatchesPerSec = Math.round(evals / median(compiledTimes));
  const treeWalkMatchesPerSec = Math.round(evals / median(treeTimes));
  return {
    compiledMatchesPerSec,
    treeWalkMatchesPerSec,
    speedup: Math.round((compiledMatchesPerSec / treeWalkMatchesPerSec) * 100) / 100,
    matchFraction: Math.round((compiledHits / evals) * 1000) / 1000,
  };
}

export async function benchSelectors(options: SelectorBenchOptions = {}): Promise<Record<string, unknown>> {
  const nSelectors = options.selectors ?? 200;
  const nLabelSets = options.labelSets ?? 1000;
  const rounds = options.rounds ?? 7;
  const warmup = options.warmupRounds ?? 3;
  const seed = options.seed ?? 20240611;
  const { selectors, labelSets } = makeInputs(nSelectors, nLabelSets, seed, false);

  // Parse and compile throughput (`parse` + `printSelector` is what parseSelector does, without its cache).
  const tParse = process.hrtime.bigint();
  const asts: SelectorNode[] = selectors.map((s) => {
    const ast = parse(s);
    printSelector(ast);
    return ast;
  });
  const tCompile = process.hrtime.bigint();
  for (const ast of asts) compile(ast);
  const tDone = process.hrtime.bigint();

  const main = await measure(asts, labelSets, warmup, rounds);
  const worst = await measure(asts, makeInputs(nSelectors, nLabelSets, seed, true).labelSets, warmup, rounds);
  return {
    selectors: nSelectors,
    labelSets: nLabelSets,
    compiledMatchesPerSec: main.compiledMatchesPerSec,
    treeWalkMatchesPerSec: main.treeWalkMatchesPerSec,
    speedup: main.speedup,
    rounds,
    matchFraction: main.matchFraction,
    /** Every label set with its own keys and key order (one hidden class each): property lookups dominate. */
    uniqueShapes: worst,
    parseSelectorsPerSec: Math.round(nSelectors / (Number(tCompile - tParse) / 1e9)),
    compileSelectorsPerSec: Math.round(nSelectors / (Number(tDone - tCompile) / 1e9)),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchSelectors().then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
