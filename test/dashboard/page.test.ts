// The dashboard's page and API without a lab (docs/dashboard.md, "Security"): a memory datastore holding user text
// made to look like markup, the dashboard in this process with a token, and Debian's headless Chromium. Checks that
// the markup shows as text and never runs, that a wrong or missing token gets 401, that malformed form input gets a
// message naming the field, that a Host header of another site is refused, that an object changed in the datastore
// reaches the open page by the event stream, and that `egw dashboard` refuses a non-loopback address without a token.
// Needs /usr/bin/chromium (not root); EGW_E2E=1 makes its absence a failure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ANNOTATION } from '../../src/api/types.js';
import { openStore } from '../../src/datastore/open.js';
import type { Store } from '../../src/datastore/types.js';
import { LiveDashboard } from '../../src/dashboard/live.js';
import { serveDashboard, type DashboardServer } from '../../src/dashboard/server.js';
import { memoryLogger } from '../../src/log.js';
import { runCli } from '../helpers/cli.js';
import { E2E } from '../helpers/env.js';
import { egressGateway, felixConfiguration, gatewayPod, namespace, pod, policy } from '../helpers/resources.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? undefined : `needs ${CHROMIUM} (Debian's chromium package)`;
const TOKEN = 'test-token-0123456789abcdef';
/** Markup in user data: a script, an element with a handler, and a closing tag to break out of an attribute. */
const EVIL = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">"'></td>`;

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    }).on('error', reject);
  });
}

describe('the dashboard page in headless Chromium: escaping, token, bad input', { skip: missing && !E2E ? missing : false }, () => {
  const ac = new AbortController();
  let store: Store;
  let live: LiveDashboard;
  let server: DashboardServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  before(async () => {
    if (missing) assert.fail(`EGW_E2E=1 but this test cannot run: ${missing}`);
    store = await openStore('memory:');
    const red = egressGateway('default', 'red', { replicas: 1 });
    red.status = { readyReplicas: 0, conditions: [{ type: 'Ready', status: 'False', reason: 'NoneReady', message: EVIL }], replicas: [] };
    for (const o of [
      felixConfiguration({ egressIPSupport: 'EnabledPerNamespaceOrPerPod' }),
      namespace('default'),
      // A selector's string literal may hold anything: it shows as the heading of its route.
      namespace('tenant-a', { annotations: { [ANNOTATION.selector]: `egress-code == '${EVIL.replace(/'/g, '')}'` } }),
      red,
      gatewayPod('default', 'red-1', 'red', { node: 'node-1', ip: '10.10.10.1' }),
      policy('p1', [{ destination: { cidr: '203.0.113.0/24' }, description: EVIL }]),
      pod('tenant-a', 'client-a', { node: 'node-1', ip: '10.0.1.5', labels: { app: 'x' } }),
    ]) {
      await store.create(o);
    }
    live = new LiveDashboard({ store, signal: ac.signal, targets: [], windowMs: 60_000, log: memoryLogger() });
    await live.ready();
    server = await serveDashboard(live, { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`${server.url}?token=${TOKEN}`);
    await page.locator('#conn.live').waitFor({ timeout: 10_000 });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    ac.abort();
    await live?.done;
    await store?.close();
  });

  test('markup in names, descriptions and messages shows as text and never runs', async () => {
    await page.locator('[data-policy="p1"]').waitFor();
    assert.ok((await page.locator('[data-policy="p1"]').innerText()).includes(EVIL), 'the description, verbatim');
    assert.ok((await page.locator('[data-egressgateway="default/red"] .cond').first().innerText()).includes(EVIL), 'the condition message, verbatim');
    assert.ok((await page.locator('#policies').innerText()).includes('<script>window.__pwned = 1</script>'), 'the selector, verbatim');
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    assert.equal(await page.locator('img').count(), 0, 'no element made from the data');
    assert.equal(await page.locator('script').count(), 1, 'only the page\'s own script');
    assert.deepEqual(pageErrors, []);
  });

  test('a change in the datastore reaches the open page without a reload', async () => {
    await store.create(policy('p2-added', [{ destination: { cidr: '192.0.2.0/24' }, description: 'added later' }]));
    await page.locator('[data-policy="p2-added"]').waitFor({ timeout: 5000 });
  });

  test('a wrong or missing token gets 401; a right one, as header or ?token=, is let in', async () => {
    for (const url of [server.url, `${server.url}?token=wrong`, `${server.url}api/view`, `${server.url}api/events?token=${TOKEN}x`]) {
      const r = await get(url);
      assert.equal(r.status, 401, url);
      assert.match(r.body, /valid token is required/);
      assert.match(String(r.headers['www-authenticate']), /^Bearer/);
    }
    assert.equal((await get(`${server.url}api/view`, { authorization: 'Bearer nope' })).status, 401);
    const ok = await get(`${server.url}api/view`, { authorization: `Bearer ${TOKEN}` });
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body).gateways.map((g: { name: string }) => g.name), ['red']);
    const p2 = await browser.newPage();
    try {
      const resp = await p2.goto(`${server.url}?token=bad`);
      assert.equal(resp?.status(), 401);
    } finally {
      await p2.close();
    }
  });

  test('malformed form input gets a message naming the field', async () => {
    const cases: [string, Record<string, string>, string, RegExp][] = [
      ['explain', { pod: 'client-a', dst: '198.51.100.10' }, 'pod', /^pod: expected NAMESPACE\/NAME/],
      ['explain', { pod: 'tenant-a/Client_A', dst: '198.51.100.10' }, 'pod', /^pod: name .* is not a valid name/],
      ['explain', { pod: 'tenant-a/client-a', dst: '198.51.100.300' }, 'dst', /^dst: .*IPv4/],
      ['explain', { pod: '', dst: '' }, 'pod', /^pod: is required/],
      ['trace', { ip: '10.10.10.1', port: 'http', at: '' }, 'port', /^port: "http": expected a port number 1–65535/],
      ['trace', { ip: '10.10.10', port: '80', at: '' }, 'ip', /^ip: .*IPv4/],
      ['trace', { ip: '10.10.10.1', port: '80', at: 'yesterday' }, 'at', /^at: "yesterday": expected an RFC 3339 time/],
    ];
    for (const [form, values, field, re] of cases) {
      await page.locator(`#${form}-form input`).evaluateAll((els) => els.forEach((e) => ((e as HTMLInputElement).value = '')));
      for (const [k, v] of Object.entries(values)) await page.fill(`#${form}-form input[name=${k}]`, v);
      await page.click(`#${form}-form button`);
      const alert = page.locator(`#${form}-out [role=alert]`);
      await alert.waitFor({ timeout: 5000 });
      assert.equal(await alert.getAttribute('data-field'), field, JSON.stringify(values));
      assert.match(await alert.innerText(), re);
    }
    // And the API itself: 400 with the field.
    const r = await get(`${server.url}api/trace?ip=1.2.3.4&port=0`, { authorization: `Bearer ${TOKEN}` });
    assert.equal(r.status, 400);
    assert.deepEqual(JSON.parse(r.body), { error: 'port: "0": expected a port number 1–65535', field: 'port' });
  });

  test('explain answers from the datastore; an unknown pod is named', async () => {
    await page.fill('#explain-form input[name=pod]', 'tenant-a/client-a');
    await page.fill('#explain-form input[name=dst]', '198.51.100.10');
    await page.click('#explain-form button');
    await page.locator('#explain-out pre[data-role=answer]').waitFor({ timeout: 5000 });
    assert.match(await page.locator('#explain-out pre').innerText(), /pod tenant-a\/client-a \(10\.0\.1\.5\) on node node-1 → 198\.51\.100\.10/);
    const r = await get(`${server.url}api/explain?pod=tenant-a/nobody&dst=1.2.3.4`, { authorization: `Bearer ${TOKEN}` });
    assert.equal(r.status, 404);
    assert.equal(JSON.parse(r.body).error, 'pod tenant-a/nobody not found');
  });
});

describe('the dashboard without a token', () => {
  test('a Host header that is not the dashboard\'s is refused (403): no DNS rebinding to a loopback dashboard', async () => {
    const ac = new AbortController();
    const store = await openStore('memory:');
    const live = new LiveDashboard({ store, signal: ac.signal, targets: [], windowMs: 60_000 });
    await live.ready();
    const server = await serveDashboard(live, { listen: { host: '127.0.0.1', port: 0 } });
    try {
      assert.equal((await get(`${server.url}api/view`)).status, 200);
      assert.equal((await get(`${server.url}api/view`, { host: `localhost:${server.port}` })).status, 200);
      const r = await get(`${server.url}api/view`, { host: `evil.example:${server.port}` });
      assert.equal(r.status, 403);
      assert.match(r.body, /is not this dashboard's address/);
    } finally {
      await server.close();
      ac.abort();
      await live.done;
      await store.close();
    }
  });

  test('egw dashboard refuses a non-loopback --listen without --token-file, and bad flags, naming the flag', async () => {
    const r = await runCli(['--datastore', 'memory:', 'dashboard', '--listen', '0.0.0.0:8088']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: --listen: 0\.0\.0\.0 is not a loopback address: serving there needs --token-file/);
    const bad = await runCli(['--datastore', 'memory:', 'dashboard', '--listen', 'nowhere']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--listen: expected HOST:PORT/);
    const tf = await runCli(['--datastore', 'memory:', 'dashboard', '--token-file', '/nonexistent/token']);
    assert.equal(tf.code, 2);
    assert.match(tf.stderr, /--token-file: \/nonexistent\/token: /);
    const sc = await runCli(['--datastore', 'memory:', 'dashboard', '--scrape', 'ftp://x']);
    assert.equal(sc.code, 2);
    assert.match(sc.stderr, /--scrape: expected http:\/\/HOST:PORT/);
  });
});
