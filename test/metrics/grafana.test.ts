// docs/grafana/egw-dashboard.json (docs/observability.md, "Grafana"): a dashboard Grafana can import, whose queries
// name only metrics egw exports, and which shows every metric egw exports (so a renamed or added metric fails here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { agentMetrics, controllerMetrics, gatewayMetrics, processRegistry } from '../../src/metrics/metrics.js';

const FILE = new URL('../../docs/grafana/egw-dashboard.json', import.meta.url);

/** Every egw_ metric the three processes register (names as Prometheus sees them, before _bucket/_sum/_count). */
function exported(): Set<string> {
  const registries: Registry[] = [];
  const a = processRegistry().registry;
  agentMetrics(a, { gateways: () => [], clients: () => 0 });
  const g = processRegistry().registry;
  gatewayMetrics(g, { clients: () => 0, conntrackEntries: () => 0, ports: () => [], records: () => 0, gaps: () => 0 });
  const c = processRegistry().registry;
  controllerMetrics(c, { leader: () => false, gateways: () => [], addresses: () => [] });
  registries.push(a, g, c);
  return new Set(registries.flatMap((r) => r.getMetricsAsArray().map((m) => m.name)).filter((n) => n.startsWith('egw_')));
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: { refId: string; expr: string }[];
}

test('the Grafana dashboard: importable shape, every query on an exported metric, every exported metric shown', () => {
  const d = JSON.parse(readFileSync(FILE, 'utf8')) as { title: string; uid: string; schemaVersion: number; panels: Panel[]; templating: { list: { name: string; type: string }[] } };
  assert.equal(typeof d.title, 'string');
  assert.match(d.uid, /^[a-z0-9-]{1,40}$/);
  assert.ok(d.schemaVersion >= 30);
  assert.ok(d.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const names = exported();
  assert.ok(names.size >= 15, `the metric sets register ${names.size} egw_ metrics`);
  const used = new Set<string>();
  for (const p of d.panels) {
    assert.ok(p.targets.length > 0, `panel ${p.title} has a query`);
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `panel ${p.title} fits the 24-column grid`);
    for (const t of p.targets) {
      const refs = t.expr.match(/\begw_[a-z_]+/g) ?? [];
      assert.ok(refs.length > 0, `panel ${p.title}: ${t.expr} names an egw metric`);
      for (const r of refs) {
        const base = r.replace(/_(bucket|sum|count)$/, '');
        assert.ok(names.has(base), `panel ${p.title}: ${r} is not a metric egw exports`);
        used.add(base);
      }
    }
  }
  assert.deepEqual([...names].filter((n) => !used.has(n)), [], 'every exported metric has a panel');
});
