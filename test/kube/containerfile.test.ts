// The Containerfile (docs/kubernetes.md, "The image"): no container runtime runs here, so this test parses it for
// the parts every role needs — Node 20, the kernel tools, a production install, the tsc build, `egw` on PATH.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/cli.js';

const lines = readFileSync(join(ROOT, 'Containerfile'), 'utf8')
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stages: string[][] = [];
for (const l of lines) {
  if (/^FROM\s/i.test(l)) stages.push([]);
  stages[stages.length - 1]?.push(l);
}

test('two stages on Node 20; the last one is the image', () => {
  assert.equal(stages.length, 2);
  for (const s of stages) assert.match(s[0], /^FROM\s+\S*node:20[-\w.]*(\s+AS\s+\w+)?$/i);
});
test('the build stage runs tsc; the image installs production dependencies only and copies dist/', () => {
  assert.ok(stages[0].some((l) => /^RUN\s+.*\btsc\b.*-p tsconfig\.json/.test(l)));
  const image = stages[1];
  assert.ok(image.some((l) => /^RUN\s+npm ci --omit=dev\b/.test(l)));
  assert.ok(!image.some((l) => /^RUN\s+npm (ci|install)(?!.*--omit=dev)/.test(l)), 'no dev dependencies in the image');
  assert.ok(image.some((l) => /^COPY --from=\w+ \S*dist\b/.test(l)));
  assert.ok(image.some((l) => /ln -s \S*bin\/egw\.js \/usr\/local\/bin\/egw/.test(l)), 'egw on PATH (the manifests run `egw ...`)');
});
test('the image has the kernel tools: iproute2, nftables, conntrack, and sysctl for the agent\'s init container', () => {
  const apt = stages[1].filter((l) => /apt-get install/.test(l)).join(' ');
  for (const pkg of ['iproute2', 'nftables', 'conntrack', 'procps']) assert.match(apt, new RegExp(`\\b${pkg}\\b`), pkg);
});
test('the image has a python3 that can run the flow recorders\' helper: every module it imports is installed', () => {
  // python3-minimal has socket and struct but not ctypes or json (those are in libpython3.11-stdlib: `dpkg -S` of
  // their files on Debian bookworm): with it alone the helper died on import and no recorder's event socket was
  // raised or filtered (docs/audit.md, "Nothing lost").
  const MINIMAL = new Set(['os', 'sys', 'socket', 'struct']);
  const apt = stages[1].filter((l) => /apt-get install/.test(l)).join(' ');
  assert.ok(stages[1].some((l) => /^COPY\s+scripts\/ct-event-socket\.py\s/.test(l)), 'the helper is in the image');
  const script = readFileSync(join(ROOT, 'scripts', 'ct-event-socket.py'), 'utf8');
  const mods = [...script.matchAll(/^(?:import|from) (\w+)/gm)].map((m) => m[1]!);
  assert.ok(mods.includes('ctypes'), mods.join(' '));
  const full = /\bpython3(?![-\w])/.test(apt) || /\blibpython3[.\d]*-stdlib\b/.test(apt);
  const missing = mods.filter((m) => !MINIMAL.has(m));
  assert.ok(full || missing.length === 0, `the helper imports ${missing.join(', ')}, which python3-minimal lacks: ${apt}`);
});
