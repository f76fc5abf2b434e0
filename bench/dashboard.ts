// The dashboard's API under load (issue 12; docs/dashboard.md, "Cost"): `make bench BENCH=observability` (the
// dashboard part), or `node --import tsx bench/dashboard.ts`. A memory datastore with 5,000 client pods and 200 gateway
// pods (50 EgressGateways × 4, 50 namespaces, 20 nodes, 10 policies); the live dashboard over it (the one informer and
// calculator), with synthetic scrapes of 20 agents (each reporting every gateway) and 200 gateways (SNAT ports toward
// 5 destinations each). No network namespace, no root: loopback only.
//   1. GET /api/view (the JSON a page or a script gets, ~MBs) against a bare node:http handler answering the same bytes,
//      in the same run: latency p50/p99 over keep-alive connections, and the ratio (target p99 ≤ 2 × the baseline's);
//   2. rebuilding the view after a change (what each datastore change or scrape change costs): p50/p99;
//   3. GET /api/explain of a client: p99.
import http from 'node:http';
import type { Resource } from '../src/api/meta.js';
import { ANNOTATION } from '../src/api/types.js';
import { openStore } from '../src/datastore/open.js';
import { LiveDashboard } from '../src/dashboard/live.js';
import type { ScrapeResult } from '../src/dashboard/model.js';
import { serveDashboard } from '../src/dashboard/server.js';
import { egressGateway, felixConfiguration, gatewayPod, namespace, node, pod, policy } from '../test/helpers/resources.js';

export interface DashboardBenchOptions {
  clients?: number;
  egressGateways?: number;
  podsPerGateway?: number;
  requests?: number;
  concurrency?: number;
}

const NODES = 20;
const NAMESPACES = 50;
const DESTINATIONS = 5;

const r3 = (x: number) => Math.round(x * 1000) / 1000;
function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

function objects(o: Required<DashboardBenchOptions>): Resource[] {
  const out: Resource[] = [felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }), namespace('default')];
  for (let n = 0; n < NODES; n++) out.push(node(`node-${n}`, { ip: `172.16.0.${n + 1}` }));
  for (let p = 0; p < 10; p++) out.push(policy(`policy-${p}`, [{ destination: { cidr: '203.0.113.0/24' }, description: 'on-prem' }, { gateway: { selector: `egress-code == 'gw-${p}'`, namespaceSelector: "projectcalico.org/name == 'default'" } }]));
  let ip = 0;
  const addr = (base: number) => `10.${base}.${(ip >> 8) & 255}.${ip++ & 255}`;
  for (let g = 0; g < o.egressGateways; g++) {
    const egw = egressGateway('default', `gw-${g}`, { replicas: o.podsPerGateway, template: { metadata: { labels: { 'egress-code': `gw-${g}` } } } });
    egw.status = { readyReplicas: o.podsPerGateway, conditions: [{ type: 'Ready', status: 'True', reason: 'AllReady' }], replicas: [] };
    out.push(egw);
    for (let k = 0; k < o.podsPerGateway; k++) {
      const name = `gw-${g}-${k}`;
      const podIp = addr(10);
      out.push(gatewayPod('default', name, `gw-${g}`, { node: `node-${(g * o.podsPerGateway + k) % NODES}`, ip: podIp, labels: { 'egress-code': `gw-${g}` } }));
      egw.status.replicas!.push({ pod: name, node: `node-${k % NODES}`, ip: podIp, health: 'Ready', clients: 25 });
    }
  }
  for (let n = 0; n < NAMESPACES; n++) {
    const ann: Record<string, string> = n % 2 === 0 ? { [ANNOTATION.egressGatewayPolicy]: `policy-${n % 10}` } : { [ANNOTATION.selector]: `egress-code == 'gw-${n % o.egressGateways}'`, [ANNOTATION.namespaceSelector]: "projectcalico.org/name == 'default'" };
    out.push(namespace(`tenant-${n}`, { annotations: ann }));
  }
  for (let c = 0; c < o.clients; c++) out.push(pod(`tenant-${c % NAMESPACES}`, `client-${c}`, { node: `node-${c % NODES}`, ip: addr(20), labels: { app: `a${c % 17}` } }));
  return out;
}

function syntheticScrapes(objs: Resource[]): ScrapeResult[] {
  const gws = objs.filter((o) => o.kind === 'Pod' && o.metadata.annotations?.[ANNOTATION.gatewayOf] !== undefined);
  const now = Date.now();
  const out: ScrapeResult[] = [];
  for (let n = 0; n < NODES; n++) {
    out.push({ source: `agent-node-${n}`, ok: true, at: now, samples: gws.map((g) => ({ name: 'egw_agent_gateway_up', labels: { gateway: `default/${g.metadata.name}`, ip: (g as { status?: { podIP?: string } }).status?.podIP ?? '' }, value: 1 })) });
  }
  for (const g of gws) {
    const ip = (g as { status?: { podIP?: string } }).status?.podIP ?? '';
    const samples: ScrapeResult['samples'][number][] = [{ name: 'egw_gateway_clients', labels: {}, value: 25 }];
    for (let d = 0; d < DESTINATIONS; d++) {
      const labels = { egress_ip: ip, destination: `198.51.100.${d + 1}:443`, protocol: 'tcp' };
      samples.push({ name: 'egw_gateway_snat_ports_in_use', labels, value: 10 * d }, { name: 'egw_gateway_snat_ports_available', labels, value: 64512 - 10 * d });
    }
    out.push({ source: `gateway-default.${g.metadata.name}`, ok: true, at: now, samples });
  }
  return out;
}

/** `requests` GETs of `path` over `concurrency` keep-alive connections: each one's latency in ms. */
async function load(port: number, path: string, requests: number, concurrency: number, headers: Record<string, string> = {}): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const lat: number[] = [];
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      http
        .get({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
          res.on('data', () => {});
          res.on('end', () => {
            if (res.statusCode !== 200) reject(new Error(`${path}: HTTP ${res.statusCode}`));
            lat.push(performance.now() - t0);
            resolve();
          });
        })
        .on('error', reject);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) await one();
    }),
  );
  agent.destroy();
  return lat;
}

export async function benchDashboard(opts: DashboardBenchOptions = {}): Promise<Record<string, unknown>> {
  const o: Required<DashboardBenchOptions> = { clients: 5000, egressGateways: 50, podsPerGateway: 4, requests: 400, concurrency: 4, ...opts };
  const store = await openStore('memory:');
  const objs = objects(o);
  for (let i = 0; i < objs.length; i += 100) await store.txn(objs.slice(i, i + 100).map((object) => ({ op: 'create' as const, object })));
  const scrapes = syntheticScrapes(objs);
  const ac = new AbortController();
  const live = new LiveDashboard({
    store,
    signal: ac.signal,
    targets: [{ target: 'unix:/synthetic', name: 'synthetic' }],
    scrape: async () => scrapes,
    windowMs: 300_000,
  });
  await live.ready();
  // Let the first scrape land in the view.
  await new Promise((r) => setTimeout(r, 200));
  const view = JSON.parse(live.viewJson());
  const body = live.viewJson();
  const server = await serveDashboard(live, { listen: { host: '127.0.0.1', port: 0 } });
  const baseline = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => baseline.listen(0, '127.0.0.1', () => r()));
  const basePort = (baseline.address() as { port: number }).port;
  try {
    // Warm both, then alternate rounds so a slow moment hits both alike.
    await load(server.port, '/api/view', 50, o.concurrency);
    await load(basePort, '/', 50, o.concurrency);
    const dash: number[] = [];
    const base: number[] = [];
    for (let round = 0; round < 3; round++) {
      dash.push(...(await load(server.port, '/api/view', o.requests, o.concurrency)));
      base.push(...(await load(basePort, '/', o.requests, o.concurrency)));
    }
    const rebuild: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      JSON.stringify(live.view());
      rebuild.push(performance.now() - t0);
    }
    const explain = await load(server.port, `/api/explain?pod=tenant-1/client-1&dst=198.51.100.1`, o.requests, o.concurrency);
    const ratio = pct(dash, 0.99) / pct(base, 0.99);
    return {
      setup: {
        clients: o.clients,
        gatewayPods: o.egressGateways * o.podsPerGateway,
        egressGateways: o.egressGateways,
        nodes: NODES,
        agentsScraped: NODES,
        viewBytes: body.length,
        gatewaysInView: view.gateways.length,
        concurrency: o.concurrency,
        requestsPerVariant: dash.length,
      },
      apiView: { p50Ms: r3(pct(dash, 0.5)), p99Ms: r3(pct(dash, 0.99)) },
      baseline: { what: 'bare node:http handler answering the same bytes', p50Ms: r3(pct(base, 0.5)), p99Ms: r3(pct(base, 0.99)) },
      ratio: { p99: r3(ratio), target: 'dashboard /api/view p99 ≤ 2 × the bare handler', met: ratio <= 2 },
      rebuildView: { p50Ms: r3(pct(rebuild, 0.5)), p99Ms: r3(pct(rebuild, 0.99)), what: 'building the view and its JSON after a change' },
      apiExplain: { p50Ms: r3(pct(explain, 0.5)), p99Ms: r3(pct(explain, 0.99)) },
    };
  } finally {
    await server.close();
    await new Promise((r) => baseline.close(r));
    baseline.closeAllConnections();
    ac.abort();
    await live.done;
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchDashboard(), null, 2));
}
