// calc: the pure egress calculation — resources + gateway health → each node's desired egress state
// (docs/architecture.md, "calc: the calculation graph").
export {
  EgressCalculator,
  type CalcOptions,
} from './calculator.js';
export type * from './types.js';
export type { Resolved } from './resolve.js';
export { TableIdAllocator } from './tableids.js';
export { hashString, fnv1a32, fmix32, rendezvousScore, rendezvousTopK } from './hash.js';
