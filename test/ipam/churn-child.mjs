// A child process for crash.test.ts, run with plain node on the built dist/ (it starts in a fraction of a second,
// and is killed -9 at random): it plays the allocating side — a kubelet with its CNI — on pods `churn/p0..p<N-1>`:
//   node test/ipam/churn-child.mjs DATASTORE SEED run|settle
// run: forever, a random operation at a time, each two writes with a short pause between them (as a kubelet sets up
// the network between the two), in either order:
//   add:    create the Pod, then allocate its address — or allocate first, then create the Pod ("the reverse");
//   remove: delete the Pod, then release its address — or release first, then delete the Pod;
//   catch up: allocate for a Pod that has no address (a restarted kubelet finishing a pod).
// settle: allocates for every Pod that has no address (the kubelets catch up), then exits.
// stdout, one line per state, written synchronously so the parent sees it before a kill: `ready`, then per operation
// `A <op>` (about to write), `B <op>` (first write done, second not yet), `D` (done).
import { writeSync } from 'node:fs';
import { openStore } from '../../dist/datastore/open.js';
import { Ipam, podHandle } from '../../dist/ipam/index.js';

const [spec, seedArg, mode] = process.argv.slice(2);
const NAMES = 30;
const NS = 'churn';
let seed = Number(seedArg) >>> 0;
/** mulberry32: a reproducible run per seed. */
function rand() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const say = (line) => writeSync(1, line + '\n');
const pause = () => new Promise((r) => setTimeout(r, rand() * 5));

const store = await openStore(spec);
const ipam = new Ipam(store);
const pools = (await store.list('IPPool')).items.filter((p) => p.metadata.name === 'churn');
if (pools.length !== 1) throw new Error('no IPPool "churn"');

function podObject(name, node) {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS }, spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }] } };
}
const key = (name) => ({ kind: 'Pod', namespace: NS, name });
const nodeOf = (pod) => pod.spec?.nodeName ?? 'n1';

async function state() {
  const pods = (await store.list('Pod', { namespace: NS })).items;
  const held = await ipam.allocations();
  return { pods, held };
}

say('ready');
if (mode === 'settle') {
  const { pods, held } = await state();
  for (const p of pods) if (!held.has(podHandle(NS, p.metadata.name))) await ipam.allocate({ handle: podHandle(NS, p.metadata.name), node: nodeOf(p), pools });
  say('settled');
  await store.close();
  process.exit(0);
}

for (;;) {
  const { pods, held } = await state();
  const present = new Set(pods.map((p) => p.metadata.name));
  const absent = [...Array(NAMES).keys()].map((i) => `p${i}`).filter((n) => !present.has(n));
  const bare = pods.filter((p) => !held.has(podHandle(NS, p.metadata.name)));
  const r = rand();
  if (bare.length && r < 0.15) {
    const p = pick(bare);
    say('A catch-up');
    await ipam.allocate({ handle: podHandle(NS, p.metadata.name), node: nodeOf(p), pools });
  } else if (absent.length && (r < 0.6 || !pods.length)) {
    const name = pick(absent);
    const node = rand() < 0.5 ? 'n1' : 'n2';
    const handle = podHandle(NS, name);
    if (rand() < 0.5) {
      say('A add pod-first');
      await store.create(podObject(name, node));
      say('B add pod-first');
      await pause();
      await ipam.allocate({ handle, node, pools });
    } else {
      say('A add addr-first');
      await ipam.allocate({ handle, node, pools });
      say('B add addr-first');
      await pause();
      await store.create(podObject(name, node));
    }
  } else if (pods.length) {
    const p = pick(pods);
    const handle = podHandle(NS, p.metadata.name);
    if (rand() < 0.5) {
      say('A remove pod-first');
      await store.delete(key(p.metadata.name));
      say('B remove pod-first');
      await pause();
      await ipam.release(handle);
    } else {
      say('A remove addr-first');
      await ipam.release(handle);
      say('B remove addr-first');
      await pause();
      await store.delete(key(p.metadata.name));
    }
  }
  say('D');
}
