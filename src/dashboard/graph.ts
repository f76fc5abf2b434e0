// The flow graph of the dashboard (docs/dashboard.md, "Flow graph"): the connections of the last minutes as
// namespace → gateway → destination, what Calico shows as its service graph (SPEC §8). Pure: flow records in, nodes
// with their places and edges with connection counts out; the page only draws them (SVG).
import type { FlowRecord } from '../audit/types.js';

export type GraphNodeKind = 'namespace' | 'gateway' | 'destination';

export interface GraphNode {
  id: string;
  kind: GraphNodeKind;
  label: string;
  /** Connections through this node in the window. */
  connections: number;
  /** Place in the drawing (the page's viewBox is GRAPH_SIZE). */
  x: number;
  y: number;
}

export interface GraphEdge {
  from: string;
  to: string;
  connections: number;
  /** Of those, still open when last recorded. */
  open: number;
}

export interface FlowGraph {
  windowMs: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Connections in the window (each counted once). */
  connections: number;
  /** Destinations folded into one "other destinations" node beyond MAX_DESTINATIONS. */
  foldedDestinations: number;
}

/** The drawing's size; columns at 15%, 50% and 85% of the width. */
export const GRAPH_SIZE = { width: 900, rowHeight: 34, top: 30 } as const;
/** The busiest destinations get a node each; the rest share one. */
export const MAX_DESTINATIONS = 25;
const OTHER_DST = 'dst:other';

function destinationOf(r: FlowRecord): string {
  const p = r.destination.port;
  return `${r.destination.ip}${p === undefined ? '' : `:${p}`}/${r.network.transport}`;
}

/** Who translated it: the EgressGateway (`ns/name`; its pod's name when unknown), or the node (node SNAT). */
function gatewayOf(r: FlowRecord): { id: string; label: string } {
  const g = r.egw.gateway;
  if (!g) return { id: `gw:node:${r.egw.reporter_name}`, label: `node ${r.egw.reporter_name} (SNAT)` };
  const owner = g.egressGateway ?? g.name;
  return { id: `gw:${g.namespace}/${owner}`, label: `${g.namespace}/${owner}` };
}

/** The graph of the connections live in [now − windowMs, now] (open ones, and those that ended in it). */
export function flowGraph(records: readonly FlowRecord[], now: number, windowMs: number): FlowGraph {
  const since = now - windowMs;
  const nodes = new Map<string, Omit<GraphNode, 'x' | 'y'>>();
  const edges = new Map<string, GraphEdge>();
  const dstCount = new Map<string, number>();
  const live: { ns: string; nsLabel: string; gw: { id: string; label: string }; dst: string; open: boolean }[] = [];
  for (const r of records) {
    const end = r.event.end === null ? null : Date.parse(r.event.end);
    if (end !== null && end < since) continue;
    if (Date.parse(r.event.start) > now) continue;
    const nsName = r.orchestrator.namespace ?? r.egw.pod.namespace;
    const item = {
      ns: `ns:${nsName ?? '?'}`,
      nsLabel: nsName ?? '(unknown pod)',
      gw: gatewayOf(r),
      dst: destinationOf(r),
      open: end === null,
    };
    live.push(item);
    dstCount.set(item.dst, (dstCount.get(item.dst) ?? 0) + 1);
  }
  const keep = new Set(
    [...dstCount]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, MAX_DESTINATIONS)
      .map(([d]) => d),
  );
  const node = (id: string, kind: GraphNodeKind, label: string) => {
    const n = nodes.get(id);
    if (n) n.connections++;
    else nodes.set(id, { id, kind, label, connections: 1 });
  };
  const edge = (from: string, to: string, open: boolean) => {
    const k = `${from}\u0000${to}`;
    let e = edges.get(k);
    if (!e) edges.set(k, (e = { from, to, connections: 0, open: 0 }));
    e.connections++;
    if (open) e.open++;
  };
  for (const l of live) {
    const dstId = keep.has(l.dst) ? `dst:${l.dst}` : OTHER_DST;
    node(l.ns, 'namespace', l.nsLabel);
    node(l.gw.id, 'gateway', l.gw.label);
    node(dstId, 'destination', keep.has(l.dst) ? l.dst : 'other destinations');
    edge(l.ns, l.gw.id, l.open);
    edge(l.gw.id, dstId, l.open);
  }
  const columns: Record<GraphNodeKind, number> = { namespace: 0.15, gateway: 0.5, destination: 0.85 };
  const placed: GraphNode[] = [];
  for (const kind of ['namespace', 'gateway', 'destination'] as const) {
    const col = [...nodes.values()].filter((n) => n.kind === kind).sort((a, b) => (a.id === OTHER_DST ? 1 : b.id === OTHER_DST ? -1 : a.label.localeCompare(b.label)));
    col.forEach((n, i) => placed.push({ ...n, x: Math.round(GRAPH_SIZE.width * columns[kind]), y: GRAPH_SIZE.top + i * GRAPH_SIZE.rowHeight }));
  }
  return {
    windowMs,
    nodes: placed,
    edges: [...edges.values()].sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to)),
    connections: live.length,
    foldedDestinations: Math.max(0, dstCount.size - keep.size),
  };
}
