// dataplane: kernel state of a node (agent side) from its NodeEgressState; see docs/dataplane.md.
export { localRunner, netnsRunner, RecordingRunner, CommandError, type Runner, type RunResult, type RunOptions } from './exec.js';
export { NodeDataplane, type NodeDataplaneOptions } from './node.js';
export { planReconcile, type ActualState, type Plan, type PlanOptions } from './plan.js';
export * from './types.js';
export { READ, WRITE, IP, BRIDGE, batchText, sysctlPath, hex, type VxlanParams, type RuleSelectors } from './commands.js';
export {
  stickyConfig,
  stickyGateways,
  clientPools,
  assignMarks,
  planSticky,
  markOf,
  indexOfMark,
  tableOf,
  type StickyOptions,
  type StickyConfig,
  type StickyPlan,
  type StickyRule,
} from './sticky.js';
export {
  parseRules,
  parseRoutes,
  parseRoutesIn,
  parseLink,
  parseNeighbours,
  parseFdb,
  parseSysctls,
  findAddressDevice,
  normalizeDst,
  routeKey,
  routeSignature,
  isMissingDevice,
  type ActualRule,
  type ActualRoute,
  type ActualLink,
  type ActualNeighbour,
  type ActualFdb,
} from './kernel.js';
export {
  nodeNftTable,
  natChain,
  mssClampChain,
  stickinessChains,
  nftRebuildDocument,
  nftMarkElementsDocument,
  parseNftTable,
  canonicalTable,
  addressIntervals,
  PRIO,
  type NftTableSpec,
  type NftChainSpec,
  type NftRuleSpec,
  type ActualNftTable,
  type NodeNftInput,
  type NodeStickyNft,
  type NftMarkElem,
} from './nft.js';
