// Prometheus metrics in the lab (issue 12; docs/observability.md): the demo's gateways and clients, traffic through
// them, and every process's /metrics read from the host through the lab's unix sockets (<state>/metrics/*.sock):
//   - the agent of the client's node sees both red gateways up, counts its clients, reconciles and kernel writes,
//     heartbeat round trips and its watch lag;
//   - the gateways count their clients, conntrack entries, flow records and gaps, and SNAT ports per destination:
//     20 connections held to the echo's port 7 are 20 ports in use toward 198.51.100.10:7 (summed over the gateways);
//   - the leading controller says it leads, counts the red gateway pods per state and the egress pool's addresses;
//   - a gateway's link cut: egw_agent_gateway_up of that gateway drops to 0 within 1 s, a failover is counted with
//     its detection time.
// Root, network namespaces; bin/egw.js → dist (build first). EGW_E2E=1 makes a missing prerequisite a failure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pod } from '../../src/api/types.js';
import { isPodReady, podIPv4 } from '../../src/api/pod.js';
import { stateFiles } from '../../src/lab/names.js';
import { NETNS_ANNOTATION } from '../../src/lab/topology.js';
import { metricsSocketPath } from '../../src/metrics/server.js';
import { parseMetrics, scrape, valueOf, type Sample } from '../../src/metrics/scrape.js';
import { LabHarness } from '../helpers/e2e.js';
import { E2E, missingPrerequisite } from '../helpers/env.js';
import { ConnectionHolder, cutGatewayLink, demoScenario, ECHO } from '../helpers/scenarios.js';
import { LAB_POLL, sleep, until } from '../helpers/wait.js';

const missing = missingPrerequisite(['ip', 'nft', 'curl', 'conntrack']);
const lab = new LabHarness();
const figure = (text: string) => console.log(`# metrics: ${text}`);
const HELD = 20;

async function metricsOf(name: string): Promise<Sample[]> {
  const socket = metricsSocketPath(name, { EGW_METRICS_SOCKET_DIR: stateFiles.metrics(lab.info.stateDir) })!;
  return parseMetrics(await scrape(`unix:${socket}`));
}

describe('Prometheus metrics of the agent, the gateways and the controller in the lab', { skip: missing && !E2E ? missing : false, timeout: 240_000 }, () => {
  let gateways: Pod[] = [];
  let client: { netns: string; ip: string; node: string };
  let holder: ConnectionHolder | undefined;

  before(async () => {
    if (missing) assert.fail(`EGW_E2E=1 but this test cannot run: ${missing}`);
    await lab.up();
    await lab.apply(demoScenario({ replicas: 2 }));
    client = await lab.podReady('tenant-a', 'client-a', 30_000);
    gateways = await until('two ready red gateway pods', async () => {
      const gws = await lab.gatewayPods('red');
      return gws.length === 2 && gws.every((p) => isPodReady(p) && podIPv4(p)) ? gws : undefined;
    }, 60_000, LAB_POLL);
    // traffic: a few requests, and connections held open through the gateways
    await until('client-a reaches the echo server', () => lab.curl('tenant-a', 'client-a', `http://${ECHO}/`), 20_000, LAB_POLL);
    holder = await ConnectionHolder.open(client.netns, HELD);
  });

  after(async () => {
    await holder?.close();
    await lab.down();
  });

  test('agent: both gateways up, clients, reconciles, kernel writes, heartbeat round trips, watch lag', async () => {
    const agent = `agent-${client.node}`;
    const m = await until('the agent sees both gateways up', async () => {
      const s = await metricsOf(agent);
      return gateways.every((g) => valueOf(s, 'egw_agent_gateway_up', { gateway: `default/${g.metadata.name}`, ip: podIPv4(g)! }) === 1) ? s : undefined;
    }, 20_000, LAB_POLL);
    const v = (name: string, labels?: Record<string, string>) => valueOf(m, name, labels) ?? NaN;
    figure(
      `${agent}: clients ${v('egw_agent_clients')}, reconciles ${v('egw_agent_reconcile_seconds_count')} (${(v('egw_agent_reconcile_seconds_sum') / v('egw_agent_reconcile_seconds_count') * 1000).toFixed(1)} ms mean), ` +
        `kernel writes ${v('egw_agent_kernel_writes_total')}, heartbeats ${v('egw_agent_heartbeat_rtt_seconds_count')} (${(v('egw_agent_heartbeat_rtt_seconds_sum') / v('egw_agent_heartbeat_rtt_seconds_count') * 1000).toFixed(2)} ms mean RTT), ` +
        `watch lag ${v('egw_datastore_watch_lag_seconds_count')} changes (${(v('egw_datastore_watch_lag_seconds_sum') / v('egw_datastore_watch_lag_seconds_count') * 1000).toFixed(1)} ms mean)`,
    );
    assert.ok(v('egw_agent_clients') >= 1, 'client-a is one of its clients');
    assert.ok(v('egw_agent_reconcile_seconds_count') >= 1);
    assert.ok(v('egw_agent_kernel_writes_total') >= 1, 'it programmed the node');
    assert.ok(v('egw_agent_heartbeat_rtt_seconds_count') >= 1, 'heartbeats answered');
    assert.ok(v('egw_datastore_watch_lag_seconds_count') >= 1, 'changes came through the watch with their commit time');
    assert.equal(v('egw_agent_failovers_total'), 0);
  });

  test(`gateways: ${HELD} held connections are ${HELD} SNAT ports in use toward the echo's port 7; clients, conntrack entries, records, gaps`, async () => {
    const dest = `${ECHO}:7`;
    const per = await until(`${HELD} ports in use toward ${dest}`, async () => {
      const all = await Promise.all(gateways.map(async (g) => ({ g, s: await metricsOf(`gateway-default.${g.metadata.name}`) })));
      const used = all.reduce((n, { s }) => n + (valueOf(s, 'egw_gateway_snat_ports_in_use', { destination: dest, protocol: 'tcp' }) ?? 0), 0);
      return used === HELD ? all : undefined;
    }, 20_000, LAB_POLL);
    for (const { g, s } of per) {
      const ip = podIPv4(g)!;
      const inUse = valueOf(s, 'egw_gateway_snat_ports_in_use', { destination: dest, protocol: 'tcp' }) ?? 0;
      const avail = valueOf(s, 'egw_gateway_snat_ports_available', { destination: dest, protocol: 'tcp' });
      figure(
        `${g.metadata.name} (${ip}): ${inUse} ports in use toward ${dest}, ${avail ?? '-'} available; clients ${valueOf(s, 'egw_gateway_clients')}, conntrack entries ${valueOf(s, 'egw_gateway_conntrack_entries')}, ` +
          `flow records ${valueOf(s, 'egw_flow_records_total')}, gaps ${valueOf(s, 'egw_flow_gaps_total')}`,
      );
      if (inUse) {
        assert.equal(valueOf(s, 'egw_gateway_snat_ports_in_use', { egress_ip: ip, destination: dest }), inUse, 'labelled with the gateway\'s egress IP');
        assert.equal(avail, 64512 - inUse);
      }
      assert.ok((valueOf(s, 'egw_gateway_clients') ?? 0) >= 1);
      assert.ok((valueOf(s, 'egw_gateway_conntrack_entries') ?? 0) >= inUse, 'the namespace tracks at least the held connections');
      assert.equal(valueOf(s, 'egw_flow_gaps_total'), 0);
      assert.ok(valueOf(s, 'egw_flow_records_total') !== undefined);
    }
  });

  test('controller: the leader says so; red gateway pods per state; the egress pool\'s addresses', async () => {
    // the lab runs two controllers and either may win the election: the leader reports the cluster, the other only
    // that it stands by
    let leader = '';
    let standby: Sample[] = [];
    const s = await until('the leading controller counted 2 ready red pods', async () => {
      for (const [name, other] of [['controller-1', 'controller-2'], ['controller-2', 'controller-1']] as const) {
        const x = await metricsOf(name);
        if (valueOf(x, 'egw_controller_leader') !== 1) continue;
        if (valueOf(x, 'egw_controller_gateways', { egressgateway: 'default/red', state: 'ready' }) !== 2) return undefined;
        leader = name;
        standby = await metricsOf(other);
        return x;
      }
      return undefined;
    }, 20_000, LAB_POLL);
    assert.equal(valueOf(standby, 'egw_controller_leader'), 0, 'the other controller stands by');
    assert.equal(valueOf(standby, 'egw_controller_gateways', { egressgateway: 'default/red', state: 'ready' }), undefined, 'a standby reports no gateways');
    assert.equal(valueOf(s, 'egw_controller_gateways', { egressgateway: 'default/red', state: 'draining' }), 0);
    const allocated = valueOf(s, 'egw_ipam_addresses', { pool: 'egress-ippool-1', state: 'allocated' });
    const free = valueOf(s, 'egw_ipam_addresses', { pool: 'egress-ippool-1', state: 'free' });
    figure(`${leader}: leader, red pods ready 2; egress-ippool-1 ${allocated} allocated, ${free} free`);
    assert.equal(allocated, 2);
    assert.equal(free, 8 - 2, 'a /29');
  });

  test('a gateway\'s link cut: its egw_agent_gateway_up drops to 0 within 1 s, and the failover is counted with its detection time', async () => {
    const agent = `agent-${client.node}`;
    const g = gateways[0]!;
    const labels = { gateway: `default/${g.metadata.name}`, ip: podIPv4(g)! };
    assert.equal(valueOf(await metricsOf(agent), 'egw_agent_gateway_up', labels), 1);
    const cutAt = Date.now();
    await cutGatewayLink(g.metadata.annotations![NETNS_ANNOTATION]!);
    let downAt = 0;
    let s: Sample[] = [];
    while (Date.now() - cutAt < 5000) {
      s = await metricsOf(agent);
      if (valueOf(s, 'egw_agent_gateway_up', labels) === 0) {
        downAt = Date.now();
        break;
      }
      await sleep(20);
    }
    assert.ok(downAt, 'egw_agent_gateway_up never dropped to 0 within 5 s');
    const detection = (valueOf(s, 'egw_agent_failover_detection_seconds_sum') ?? NaN) * 1000;
    figure(`link of ${g.metadata.name} cut: egw_agent_gateway_up 0 after ${downAt - cutAt} ms (scraped every ~20 ms); failovers ${valueOf(s, 'egw_agent_failovers_total')}, detection ${detection.toFixed(0)} ms after the last reply`);
    assert.ok(downAt - cutAt <= 1000, `dropped after ${downAt - cutAt} ms`);
    assert.equal(valueOf(s, 'egw_agent_failovers_total'), 1);
    assert.equal(valueOf(s, 'egw_agent_failover_detection_seconds_count'), 1);
    assert.ok(detection > 0 && detection < 1000, `detection ${detection} ms`);
    // the other gateway stays up
    const other = gateways[1]!;
    assert.equal(valueOf(s, 'egw_agent_gateway_up', { gateway: `default/${other.metadata.name}` }), 1);
  });
});

