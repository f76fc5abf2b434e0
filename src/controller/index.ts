// The gateway controller: EgressGateway → gateway pods (replicas, placement, labels), graceful deletion (drain),
// EgressGateway status, maintenance annotations on clients, and IPAM garbage collection. planGatewayPods,
// gatewayStatus and planMaintenance are the pure steps runController applies; deletePodGracefully is shared with the
// CLI (`egw delete pod`).
export { runController, type ControllerOptions } from './controller.js';
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
