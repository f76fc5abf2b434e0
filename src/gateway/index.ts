// gateway: the egress gateway process that runs in a gateway pod's network namespace (docs/behaviour.md §3.2, §3.4, §3.5).
export { runGateway, type GatewayOptions } from './gateway.js';
export { GatewayModel, GATEWAY_KINDS, DEFAULT_HEALTH_TIMEOUT_DATASTORE_SECONDS, type Desired } from './model.js';
export {
  programGateway,
  readGatewayTable,
  gatewayDesired,
  type GatewayDataplaneConfig,
  type ProgramResult,
} from './dataplane.js';
export {
  planGateway,
  planLink,
  gatewaySysctls,
  parseGatewayLinks,
  parseRpsRead,
  parseCpusAllowed,
  rpsMask,
  parseCpuList,
  intersectMasks,
  formatMask,
  type RpsQueue,
  type GatewayDesired,
  type GatewayActualState,
  type GatewayIpLink,
  type GatewayPlan,
} from './plan.js';
export {
  desiredTable,
  planTable,
  parseTable,
  ruleCounter,
  GW_TABLE,
  GW_FAMILY,
  NODES_SET,
  CLIENTS_SET,
  RULE_COMMENT,
  type GatewayNftParams,
  type GatewayNftTable,
  type GatewayNftPlan,
  type ActualGatewayTable,
} from './nft.js';
export { Readiness, startHealthServer, type ReadinessCheck, type HealthServer } from './health.js';
export { Probes, runnerPing, runnerHttpGet, inProcessHttpGet, type ProbeFn, type ProbesOptions } from './probes.js';
export {
  startHeartbeatResponder,
  encodeRequest,
  encodeReply,
  decodeReply,
  answerInPlace,
  heartbeatFlags,
  HEARTBEAT_SIZE,
  type HeartbeatReply,
  type HeartbeatResponder,
} from './heartbeat.js';
export { writeReadyCondition, readyConditionOf, hasReadyCondition, READY_REASON, type ReadyCondition } from './podstatus.js';
