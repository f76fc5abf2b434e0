// Failover and connection safety, measured in a lab (root): how long new connections fail when a gateway dies
// (5 kills: its link is cut while a client opens a new connection every 20 ms), and how many long-lived
// connections each gateway change breaks (the "no collateral damage" scenario). Calico Enterprise's defaults take
// 20–30 s to fail over and cut connections on every gateway change: those are the baselines to compare with.
import { pathToFileURL } from 'node:url';
import { LabHarness, missingPrerequisite, sleep, until } from '../test/helpers/e2e.js';
import { collateralScenario, cutGatewayLink, demoScenario, failoverProbe, kernelHops, liveGateways, restoreGatewayLink } from '../test/helpers/scenarios.js';

export async function benchFailover(opts: { kills?: number } = {}): Promise<Record<string, unknown>> {
  const why = missingPrerequisite(['ip', 'nft', 'curl']);
  if (why) return { skipped: why };
  const kills = opts.kills ?? 5;
  const out: Record<string, unknown> = {};

  const lab = new LabHarness();
  try {
    await lab.up();
    await lab.apply(demoScenario({ replicas: 3, graceSeconds: 10 }));
    const client = await lab.podReady('tenant-a', 'client-a');
    const node = lab.nodeNetns(client.node);
    await until('3 gateways in the route', async () => (await kernelHops(node, client.ip)).length === 3, 30_000);
    const gaps: number[] = [];
    const failures: number[] = [];
    for (let i = 0; i < kills; i++) {
      const gws = await liveGateways(lab);
      const victim = gws[i % gws.length];
      const r = await failoverProbe(client.netns, {
        intervalMs: 20,
        durationMs: 4000,
        during: async () => {
          await sleep(1000);
          const at = Date.now();
          await cutGatewayLink(victim.netns);
          return at;
        },
      });
      gaps.push(r.outageMs);
      failures.push(r.failures);
      await restoreGatewayLink(victim.netns);
      await until('the gateway back in the route', async () => (await kernelHops(node, client.ip)).length === 3, 15_000);
    }
    const sorted = [...gaps].sort((a, b) => a - b);
    out.failover = {
      method: 'a new HTTP connection every 20 ms from one client (300 ms timeout); one of 3 gateways has its link cut; outage = cut → start of the last connection that failed',
      kills,
      outagesMs: gaps,
      medianOutageMs: sorted[Math.floor(sorted.length / 2)],
      worstOutageMs: sorted[sorted.length - 1],
      failedRequestsPerKill: failures,
      targetMs: 1000,
      calicoDefaultsMs: '20000–30000',
    };
  } finally {
    await lab.down();
  }

  const lab2 = new LabHarness();
  try {
    await lab2.up();
    await lab2.apply(demoScenario({ replicas: 3, graceSeconds: 10 }));
    const steps = await collateralScenario(lab2, { graceSeconds: 10, connections: 30 });
    out.connectionsBroken = {
      method: '30 long-lived TCP connections from one client, spread over the gateways by ECMP',
      steps: steps.map((s) => ({ step: s.step, connections: s.connections, broken: s.broken, onKilledGateway: s.onKilledGateway, brokenOnHealthyGateways: s.brokenOnHealthyGateways, sourceChanged: s.sourceChanged })),
    };
  } finally {
    await lab2.down();
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchFailover(), null, 2));
}
