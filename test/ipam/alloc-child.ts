// A child process for concurrency.test.ts: allocates COUNT addresses for handles `pod:test/<PREFIX>-<i>` on NODE from
// one pool, on the SQLite datastore at DBPATH, then prints one JSON object {handle: ip}.
//   node --import tsx test/ipam/alloc-child.ts DBPATH NODE COUNT PREFIX POOL_CIDR BLOCK_SIZE [START_AT_MS]
// START_AT_MS (epoch ms) makes several children begin at the same moment.
import { SqliteStore } from '../../src/datastore/sqlite.js';
import { Ipam } from '../../src/ipam/index.js';
import { ippool } from '../helpers/resources.js';
import { sleep } from '../helpers/wait.js';

const [dbPath, nodeName, countArg, prefix, cidr, blockSizeArg, startAtArg] = process.argv.slice(2);
const count = Number(countArg);
if (!dbPath || !nodeName || !Number.isInteger(count) || !prefix || !cidr) {
  console.error('usage: alloc-child.ts DBPATH NODE COUNT PREFIX POOL_CIDR BLOCK_SIZE [START_AT_MS]');
  process.exit(2);
}

async function main(): Promise<void> {
  const store = new SqliteStore(dbPath);
  const ipam = new Ipam(store);
  const pool = ippool('pool', cidr, { blockSize: Number(blockSizeArg) });
  const wait = Number(startAtArg ?? 0) - Date.now();
  if (wait > 0) await sleep(wait);
  const out: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const handle = `pod:test/${prefix}-${i}`;
    out[handle] = await ipam.allocate({ handle, node: nodeName, pools: [pool] });
  }
  await store.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
