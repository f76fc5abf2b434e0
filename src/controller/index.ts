// The gateway controller: EgressGateway → gateway pods (replicas, placement, labels), simple status conditions, and
// IPAM garbage collection. planGatewayPods is the pure planning step runController applies.
export { runController, type ControllerOptions } from './controller.js';
export {
  planGatewayPods,
  gatewayConditions,
  sameConditions,
  eligibleNodes,
  templateLabels,
  isPodOf,
  isPodReady,
  ownerReferenceOf,
  type GatewayPlan,
  type PlanOptions,
  type PlanProblem,
  type PlanProblemReason,
} from './plan.js';
