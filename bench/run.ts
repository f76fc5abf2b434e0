// `make bench`: runs every benchmark in one process and prints one JSON document. Each benchmark measures egw
// against a baseline in the same run (ratios, not absolute targets), so results compare across machines.
import { cpus, totalmem } from 'node:os';
import { benchSelectors } from './selector.js';
import { benchCalc } from './calc.js';
import { benchDataplane } from './dataplane.js';
import { benchFailover } from './failover.js';
import { benchThroughput } from './throughput.js';
import { benchDatastore } from './datastore.js';
import { benchFlows } from './flows.js';
import { benchDashboard } from './dashboard.js';
import { benchScrape } from './scrape.js';
import { benchPaths } from './paths.js';
import { benchConnScale } from './connscale.js';
import { benchKubeScale } from './kubescale.js';

const only = process.argv.slice(2);
const benches: Record<string, () => Promise<Record<string, unknown>>> = {
  selector: benchSelectors,
  calc: benchCalc,
  dataplane: benchDataplane,
  failover: benchFailover,
  throughput: benchThroughput,
  datastore: benchDatastore,
  flows: benchFlows,
  // Issue 14: direct vs through a gateway on the same and on another node (bench/paths.ts).
  paths: benchPaths,
  // Issue 14: 100,000 connections through one gateway, then past its ports toward one destination (bench/connscale.ts).
  connscale: benchConnScale,
  // A gateway's /metrics with 100,000 connections (bench/scrape.ts) and the dashboard's API (bench/dashboard.ts).
  observability: async () => ({ scrape: await benchScrape(), dashboard: await benchDashboard() }),
  // Issue 11: one agent's views on a 1,000-node, 50,000-pod stand-in cluster vs the same informer without views (bench/kubescale.ts).
  kubescale: benchKubeScale,
};

const results: Record<string, unknown> = {};
for (const [name, run] of Object.entries(benches)) {
  if (only.length && !only.includes(name)) continue;
  const start = performance.now();
  results[name] = await run();
  process.stderr.write(`bench ${name}: ${((performance.now() - start) / 1000).toFixed(1)} s\n`);
}

console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
      results,
    },
    null,
    2,
  ),
);
