// The dashboard's one page (docs/dashboard.md): HTML with its style and script inline — no CDN, no build step, vanilla
// JS. Every value shown is user data (names, labels, annotations), so the script builds the DOM with createElement and
// textContent only, never innerHTML; the server's Content-Security-Policy admits just these two inline blocks (by
// their hashes: src/dashboard/server.ts), so even an injected <script> would not run.

export const PAGE_STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 10px 18px; display: flex; gap: 18px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
#conn.live { color: #7ee08a; } #conn.lost { color: #ff8a80; }
main { padding: 12px 18px; display: grid; gap: 14px; grid-template-columns: 1fr 1fr; }
section { background: #fff; border-radius: 6px; padding: 10px 14px; box-shadow: 0 1px 2px #0002; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 15px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 10px 0 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { font-weight: 600; color: #555; }
.health { font-weight: 600; padding: 1px 6px; border-radius: 3px; }
.health.up { background: #d7f5dc; color: #17692a; } .health.down { background: #ffd9d6; color: #9c1c10; }
.health.split { background: #fff0c2; color: #7a5a00; } .health.unknown { background: #e8e8e8; color: #555; }
.cond { font-size: 12px; color: #555; }
.bar { display: inline-block; width: 80px; height: 8px; background: #e3e6ea; border-radius: 4px; vertical-align: middle; }
.bar > span { display: block; height: 8px; background: #4d7cfe; border-radius: 4px; }
.bar.hot > span { background: #e0452f; }
form { display: flex; gap: 8px; flex-wrap: wrap; align-items: end; }
label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
input { font: inherit; padding: 3px 6px; }
pre { background: #f0f2f5; padding: 8px; overflow: auto; max-height: 320px; white-space: pre-wrap; }
.error { color: #9c1c10; font-weight: 600; }
svg text { font-size: 12px; } svg .edge { stroke: #8aa4e8; fill: none; } svg .edge.open { stroke: #2f5fe0; }
svg .n-namespace { fill: #e6f0ff; } svg .n-gateway { fill: #e8f7ea; } svg .n-destination { fill: #fff4e0; }
svg rect { stroke: #889; }
.muted { color: #777; }
`;

export const PAGE_SCRIPT = `
'use strict';
const token = new URLSearchParams(location.search).get('token');
const withToken = (path) => token ? path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : path;
const headers = token ? { authorization: 'Bearer ' + token } : {};
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k === null || k === undefined ? '' : String(k)));
  return e;
}
const SVG = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
function table(headersRow, rows) {
  const t = el('table', {}, el('tr', {}, ...headersRow.map((h) => el('th', {}, h))));
  for (const r of rows) t.append(r);
  return t;
}
function portsCell(ports) {
  if (!ports.length) return el('span', { class: 'muted' }, 'none in use');
  const box = el('div');
  for (const p of ports.slice(0, 4)) {
    const bar = el('span', { class: 'bar' + (p.share > 0.8 ? ' hot' : '') }, el('span'));
    bar.firstChild.style.width = Math.max(2, Math.round(p.share * 100)) + '%';
    box.append(el('div', { 'data-port-destination': p.destination }, bar, ' ', p.egressIp + ' → ' + p.destination + '/' + p.protocol + ': ' + p.inUse + ' in use, ' + p.available + ' free'));
  }
  if (ports.length > 4) box.append(el('div', { class: 'muted' }, '+' + (ports.length - 4) + ' more destinations'));
  return box;
}
function renderGateways(v) {
  const box = $('gateways');
  box.replaceChildren();
  if (!v.gateways.length) box.append(el('p', { class: 'muted' }, 'No EgressGateways.'));
  for (const g of v.gateways) {
    const sec = el('div', { 'data-egressgateway': g.namespace + '/' + g.name });
    sec.append(el('h3', {}, g.namespace + '/' + g.name + ' — ' + g.ready + '/' + g.desired + ' ready'));
    for (const c of g.conditions) sec.append(el('div', { class: 'cond' }, c.type + ': ' + c.status + (c.reason ? ' (' + c.reason + ')' : '') + (c.message ? ' ' + c.message : '')));
    const rows = g.pods.map((p) => {
      const agents = p.agents.length ? p.agents.map((a) => a.agent + ': ' + (a.up ? 'up' : 'DOWN')).join(', ') : 'no agent heartbeats it';
      return el('tr', { 'data-pod': p.namespace + '/' + p.name, 'data-health': p.health },
        el('td', {}, p.name),
        el('td', {}, el('span', { class: 'health ' + p.health, 'data-role': 'health' }, p.health), el('div', { class: 'cond' }, agents)),
        el('td', {}, p.status, p.reasons.length ? el('div', { class: 'cond' }, p.reasons.join('; ')) : ''),
        el('td', {}, p.node === null ? '—' : p.node),
        el('td', {}, p.ip === null ? '—' : p.ip),
        el('td', {}, p.clients === null ? '—' : p.clients),
        el('td', {}, portsCell(p.ports)));
    });
    sec.append(rows.length ? table(['pod', 'health (agents)', 'controller', 'node', 'IP', 'clients', 'SNAT ports'], rows) : el('p', { class: 'muted' }, 'no gateway pods'));
    box.append(sec);
  }
}
function renderPolicies(v) {
  const box = $('policies');
  box.replaceChildren();
  for (const p of v.policies) {
    const sec = el('div', { 'data-policy': p.name }, el('h3', {}, p.name));
    sec.append(table(['#', 'destination', 'via', 'description'], p.rules.map((r) => el('tr', {}, el('td', {}, r.index), el('td', {}, r.destination), el('td', {}, r.gateway === null ? 'no gateway' : r.gateway + (r.preference !== 'None' ? ' (' + r.preference + ')' : '')), el('td', {}, r.description)))));
    sec.append(el('div', { class: 'cond' }, 'namespaces: ' + (p.namespaces.join(', ') || 'none') + '; pods: ' + (p.pods.join(', ') || 'none')));
    box.append(sec);
  }
  for (const s of v.selectorRoutes) {
    box.append(el('div', { 'data-selector': s.selector }, el('h3', {}, 'selector ' + s.selector + (s.namespaceSelector ? ' in namespaces ' + s.namespaceSelector : '')), el('div', { class: 'cond' }, 'pods: ' + s.pods.join(', '))));
  }
  if (!v.policies.length && !v.selectorRoutes.length) box.append(el('p', { class: 'muted' }, 'No policies and no selector annotations.'));
}
function renderGraph(v) {
  const g = v.graph;
  const svg = $('graph');
  svg.replaceChildren();
  const rows = Math.max(1, ...['namespace', 'gateway', 'destination'].map((k) => g.nodes.filter((n) => n.kind === k).length));
  const height = 30 + rows * 34 + 10;
  svg.setAttribute('viewBox', '0 0 900 ' + height);
  svg.setAttribute('height', String(height));
  $('graph-caption').textContent = g.connections + ' connections in the last ' + Math.round(g.windowMs / 60000 * 10) / 10 + ' min' + (g.foldedDestinations ? ' (' + g.foldedDestinations + ' destinations folded)' : '');
  const at = new Map(g.nodes.map((n) => [n.id, n]));
  const max = Math.max(1, ...g.edges.map((e) => e.connections));
  for (const e of g.edges) {
    const a = at.get(e.from), b = at.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + 90, x2 = b.x - 90, mx = (x1 + x2) / 2;
    const path = svgEl('path', { class: 'edge' + (e.open ? ' open' : ''), d: 'M' + x1 + ',' + a.y + ' C' + mx + ',' + a.y + ' ' + mx + ',' + b.y + ' ' + x2 + ',' + b.y, 'stroke-width': 1 + 5 * e.connections / max, 'data-edge': e.from + ' > ' + e.to });
    path.append(svgEl('title', {}, e.connections + ' connections (' + e.open + ' open)'));
    svg.append(path);
  }
  for (const n of g.nodes) {
    const grp = svgEl('g', { 'data-node': n.id, 'data-kind': n.kind });
    grp.append(svgEl('rect', { class: 'n-' + n.kind, x: n.x - 90, y: n.y - 12, width: 180, height: 24, rx: 4 }));
    const label = n.label.length > 26 ? n.label.slice(0, 25) + '…' : n.label;
    grp.append(svgEl('text', { x: n.x, y: n.y + 4, 'text-anchor': 'middle' }, label + ' (' + n.connections + ')'));
    grp.append(svgEl('title', {}, n.label));
    svg.append(grp);
  }
  if (!g.nodes.length) svg.append(svgEl('text', { x: 450, y: 40, 'text-anchor': 'middle', class: 'muted' }, 'no connections recorded in the window'));
}
function renderSources(v) {
  const rows = v.sources.map((s) => el('tr', { 'data-source': s.source }, el('td', {}, s.source), el('td', {}, s.ok ? 'ok' : 'failed'), el('td', {}, s.error || ''), el('td', {}, s.at)));
  $('sources').replaceChildren(rows.length ? table(['process', 'scrape', 'error', 'at'], rows) : el('p', { class: 'muted' }, 'No metrics endpoints (lab sockets or --scrape).'));
}
function render(v) {
  renderGateways(v); renderPolicies(v); renderGraph(v); renderSources(v);
  $('updated').textContent = 'revision ' + v.revision + ', ' + v.generatedAt;
}
function connect() {
  const es = new EventSource(withToken('/api/events'));
  es.addEventListener('view', (ev) => { $('conn').textContent = 'live'; $('conn').className = 'live'; render(JSON.parse(ev.data)); });
  es.onerror = () => { $('conn').textContent = 'reconnecting…'; $('conn').className = 'lost'; };
}
async function ask(form, path, out) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (String(v).trim() !== '') params.set(k, String(v).trim());
  out.replaceChildren(el('span', { class: 'muted' }, '…'));
  try {
    const r = await fetch(path + '?' + params, { headers });
    const body = await r.json();
    if (!r.ok) { out.replaceChildren(el('div', { class: 'error', role: 'alert', 'data-field': body.field || '' }, body.error || ('HTTP ' + r.status))); return; }
    out.replaceChildren(el('pre', { 'data-role': 'answer' }, body.text));
  } catch (e) {
    out.replaceChildren(el('div', { class: 'error', role: 'alert' }, String(e)));
  }
}
$('explain-form').addEventListener('submit', (e) => { e.preventDefault(); ask(e.target, '/api/explain', $('explain-out')); });
$('trace-form').addEventListener('submit', (e) => { e.preventDefault(); ask(e.target, '/api/trace', $('trace-out')); });
connect();
`;

export function pageHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>egw dashboard</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<header><h1>egw</h1><span id="conn">connecting…</span><span id="updated" class="muted"></span></header>
<main>
<section class="wide"><h2>Egress gateways</h2><div id="gateways"></div></section>
<section class="wide"><h2>Flows: namespace → gateway → destination</h2><div id="graph-caption" class="muted"></div>
<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 900 100" role="img" aria-label="flow graph"></svg></section>
<section><h2>Policies and whom they route</h2><div id="policies"></div></section>
<section><h2>Explain</h2>
<form id="explain-form"><label>pod (namespace/name)<input name="pod" placeholder="tenant-a/client-a"></label>
<label>destination IP<input name="dst" placeholder="198.51.100.10"></label><button type="submit">explain</button></form>
<div id="explain-out"></div></section>
<section><h2>Trace</h2>
<form id="trace-form"><label>source IP seen outside<input name="ip" placeholder="10.10.10.1"></label>
<label>port<input name="port" placeholder="40000"></label>
<label>time (RFC 3339, default now)<input name="at" placeholder="2026-12-02T08:00:00Z"></label>
<label>destination (optional)<input name="dst" placeholder="198.51.100.10:80"></label><button type="submit">trace</button></form>
<div id="trace-out"></div></section>
<section><h2>Metrics sources</h2><div id="sources"></div></section>
</main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
