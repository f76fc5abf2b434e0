// The gateway controller: EgressGateway → gateway pods (replicas, placement, labels), graceful deletion (drain),
// EgressGateway status, maintenance annotations on clients, and IPAM garbage collection; leader election (leader.ts)
// so that any number may run and one acts. planGatewayPods, gatewayStatus and planMaintenance are the pure steps
// runController applies; deletePodGracefully is shared with the CLI (`egw delete pod`).
export { runController, runElectedController, type ControllerOptions, type ElectedControllerOptions } from './controller.js';
export {
  electorFor,
  readLeader,
  fencedStore,
  defaultElectorId,
  etcdLeaderKey,
  ELECTION_TIMING,
  LEADER_LEASE_KEY,
  NotLeaderError,
  type Elector,
  type ElectorOptions,
  type ElectionHandlers,
  type ElectionTiming,
  type LeaderInfo,
  type Term,
} from './leader.js';
export {
  planGatewayPods,
  gatewayConditions,
  eligibleNodes,
  templateLabels,
  isPodOf,
  isProbeFailure,
  ownerReferenceOf,
  type GatewayPlan,
  type PlanOptions,
  type PlanProblem,
  type PlanProblemReason,
} from './plan.js';
export { HistoryRetention, HISTORY_RETENTION_MS, HISTORY_SAMPLE_MS } from './history.js';
export { gatewayStatus, replicaHealth, sameStatus, type StatusOptions } from './status.js';
export {
  deletePodGracefully,
  deletionStarted,
  podGraceSeconds,
  DEFAULT_GRACE_SECONDS,
  type DeletePodOptions,
  type DeletePodOutcome,
  type DeletePodResult,
} from './delete.js';
export { planMaintenance, maintenanceOf, maintenanceAnnotations, hasMaintenance, type Maintenance } from './maintenance.js';
