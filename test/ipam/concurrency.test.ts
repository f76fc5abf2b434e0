// Several allocating processes on one SQLite file never hand out one address twice.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cidrContains, parseCidr, parseIPv4 } from '../../src/api/ipv4.js';
import { SqliteStore } from '../../src/datastore/sqlite.js';
import { blockName, type IPAMBlock } from '../../src/ipam/index.js';

const root = mkdtempSync(join(tmpdir(), 'egw-ipam-test-'));
const children = new Set<ReturnType<typeof spawn>>();
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill();
  rmSync(root, { recursive: true, force: true });
});

function runChild(args: string[]): Promise<Record<string, string>> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/ipam/alloc-child.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      if (code !== 0) reject(new Error(`alloc-child ${args.join(' ')} exited with ${code}: ${err}`));
      else resolve(JSON.parse(out) as Record<string, string>);
    });
  });
}

/** Checks the blocks against each other and against what the children reported. */
async function checkConsistent(dbPath: string, poolCidr: string, reported: Record<string, string>[]): Promise<IPAMBlock[]> {
  const store = new SqliteStore(dbPath);
  try {
    const blocks = (await store.list('IPAMBlock')).items as IPAMBlock[];
    const pool = parseCidr(poolCidr)!;
    const byIp = new Map<string, string>();
    const byHandle = new Map<string, string>();
    for (const b of blocks) {
      assert.equal(b.metadata.name, blockName(b.spec.cidr));
      const c = parseCidr(b.spec.cidr)!;
      assert.ok(cidrContains(pool, c.addr), `block ${b.spec.cidr} inside the pool`);
      for (const [ip, h] of Object.entries(b.spec.allocations)) {
        assert.ok(cidrContains(c, parseIPv4(ip)!), `${ip} lies inside its block ${b.spec.cidr}`);
        assert.ok(!byIp.has(ip), `${ip} allocated in two blocks`);
        assert.ok(!byHandle.has(h), `${h} holds two addresses`);
        byIp.set(ip, h);
        byHandle.set(h, ip);
      }
    }
    // Blocks do not overlap.
    const spans = blocks.map((b) => parseCidr(b.spec.cidr)!).sort((a, b) => a.addr - b.addr);
    for (let i = 1; i < spans.length; i++) assert.ok(!cidrContains(spans[i - 1], spans[i].addr), 'blocks overlap');
    // What the children were told is exactly what the blocks record.
    const all = Object.assign({}, ...reported) as Record<string, string>;
    assert.deepEqual(Object.fromEntries(byHandle), all);
    return blocks;
  } finally {
    await store.close();
  }
}

describe('Ipam across processes (SQLite)', { timeout: 120_000 }, () => {
  it('two processes on the same node, 200 addresses each: 400 distinct addresses', async () => {
    const db = join(root, 'same-node.db');
    new SqliteStore(db).close(); // create the schema before the children race for it
    const startAt = String(Date.now() + 1500);
    const [a, b] = await Promise.all([
      runChild([db, 'n1', '200', 'a', '10.20.0.0/22', '26', startAt]),
      runChild([db, 'n1', '200', 'b', '10.20.0.0/22', '26', startAt]),
    ]);
    const ips = [...Object.values(a), ...Object.values(b)];
    assert.equal(ips.length, 400);
    assert.equal(new Set(ips).size, 400, 'no address handed out twice');
    const blocks = await checkConsistent(db, '10.20.0.0/22', [a, b]);
    assert.ok(blocks.every((x) => x.spec.affinity === 'node:n1'));
    assert.equal(blocks.length, Math.ceil(400 / 64));
  });

  it('two processes on two nodes that run out of blocks and borrow: 400 distinct addresses', async () => {
    const db = join(root, 'two-nodes.db');
    const setup = new SqliteStore(db);
    // The pool 10.30.0.0/23 (blockSize 25) already has a /24 block held by node n9 (cut when the pool had bigger
    // blocks): n1 and n2 can each claim one /25, then must borrow from n9's block.
    await setup.create({
      apiVersion: 'egw.dev/v1',
      kind: 'IPAMBlock',
      metadata: { name: '10-30-1-0-24' },
      spec: { cidr: '10.30.1.0/24', pool: 'pool', affinity: 'node:n9', allocations: {} },
    });
    await setup.close();
    const startAt = String(Date.now() + 1500);
    const [a, b] = await Promise.all([
      runChild([db, 'n1', '200', 'a', '10.30.0.0/23', '25', startAt]),
      runChild([db, 'n2', '200', 'b', '10.30.0.0/23', '25', startAt]),
    ]);
    const ips = [...Object.values(a), ...Object.values(b)];
    assert.equal(new Set(ips).size, 400, 'no address handed out twice');
    const blocks = await checkConsistent(db, '10.30.0.0/23', [a, b]);
    assert.deepEqual(blocks.map((x) => x.spec.cidr).sort(), ['10.30.0.0/25', '10.30.0.128/25', '10.30.1.0/24']);
    // Who claimed which /25 depends on the race (a fast node may claim both); n9 keeps its block.
    for (const x of blocks) assert.equal(x.spec.affinity === 'node:n9', x.spec.cidr === '10.30.1.0/24');
    // The /25s fill before anyone borrows from n9, so n9's block holds exactly the remainder.
    assert.equal(Object.keys(blocks.find((x) => x.spec.affinity === 'node:n9')!.spec.allocations).length, 144, '400 - 256 borrowed');
  });
});
