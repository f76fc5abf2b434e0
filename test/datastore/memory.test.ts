import { MemoryStore } from '../../src/datastore/memory.js';
import { conformance } from './conformance.js';

conformance('memory', async () => new MemoryStore(), {
  description: /^memory:/,
  startsAtZero: true,
  txnRevisions: 'per-op',
  maxTxnObjects: Infinity,
  compaction: 'store',
});
