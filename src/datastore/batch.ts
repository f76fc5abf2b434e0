// Writing several objects: one all-or-nothing txn where the datastore has them, else one write per object with every
// write accounted for (docs/kubernetes-datastore.md, "No multi-object transactions"). Kubernetes writes one object at a
// time (kubectl apply -f of several objects is not atomic either); what egw adds is that a failure says exactly
// which objects were written and which were not, instead of leaving the caller to guess.
import { describeKey } from './common.js';
import { keyOf, type Resource } from '../api/meta.js';
import { StoreError, type Store, type TxnOp } from './types.js';

/** A write of several objects that stopped part way: `done` were written, the op at `failedAt` and the rest were not. */
export class PartialWriteError extends StoreError {
  constructor(
    code: StoreError['code'],
    message: string,
    readonly done: number,
    readonly failedAt: number,
    readonly total: number,
  ) {
    super(code, message);
    this.name = 'PartialWriteError';
  }
}

function opTarget(op: TxnOp): string {
  return op.op === 'delete' ? describeKey(op.key) : describeKey(keyOf(op.object));
}

/**
 * Applies `ops`: in one txn when the store takes that many (all or nothing), else one op at a time in order. A failure
 * of the first op leaves nothing written and throws its StoreError as is; a later one throws PartialWriteError naming
 * what was written and what was not.
 */
export async function writeOps(store: Store, ops: TxnOp[]): Promise<Resource[]> {
  if (store.maxTxnOps === undefined || ops.length <= store.maxTxnOps) return store.txn(ops);
  const out: Resource[] = [];
  for (const [i, op] of ops.entries()) {
    try {
      out.push(...(await store.txn([op])));
    } catch (e) {
      if (i === 0) throw e;
      // After a write, any failure (a StoreError, or the transport failing mid-answer) leaves a partial write: say so.
      const written = ops.slice(0, i).map(opTarget).join(', ');
      const left = ops.slice(i + 1).map(opTarget);
      throw new PartialWriteError(
        e instanceof StoreError ? e.code : 'Unavailable',
        `${store.description} writes one object at a time: ${i} of ${ops.length} written (${written}); ${op.op} of ${opTarget(op)} failed: ${(e as Error).message ?? String(e)}` +
          (left.length ? `; not written: ${left.join(', ')}` : ''),
        i,
        i,
        ops.length,
      );
    }
  }
  return out;
}
