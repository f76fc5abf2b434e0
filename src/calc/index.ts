// calc: the pure egress calculation (SPEC §2) — resources + gateway health → each node's desired egress state.
export {
  EgressCalculator,
  GATEWAY_POD_ANNOTATION,
  type CalcOptions,
} from './calculator.js';
export type * from './types.js';
export { TableIdAllocator, type TableIdMove } from './tableids.js';
export { hashString, fnv1a32, fmix32, rendezvousScore, rendezvousTopK, type Rankable } from './hash.js';
