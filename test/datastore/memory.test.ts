import { MemoryStore } from '../../src/datastore/memory.js';
import { conformance } from './conformance.js';

conformance('memory', async () => new MemoryStore());
