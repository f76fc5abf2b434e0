// The lab: a multi-node cluster made of network namespaces on one machine (docs/dataplane.md, "The lab").
export { labUp, labDown, labStatus, labExec, labStop, labStart, holdableProcesses, readLabState, firewallRules, NETNS_ANNOTATION, FIREWALL_TABLE, type LabInfo, type LabUpOptions, type LabDownResult, type LabState, type LabRole, type LabHoldResult } from './topology.js';
export { runKubelet, type KubeletOptions } from './kubelet.js';
export { runSupervisor, type SuperviseOptions } from './supervise.js';
export { runForward, parseLoopbackListen } from './forward.js';
export { containerArgv, chooseNode, readyConditionFor } from './podspec.js';
export { runEcho, type EchoOptions } from './echo.js';
export { runFirewallLogger, readFirewallLog, formatFirewallTable, FIREWALL_LOG_GROUPS, type FirewallLogLine, type FirewallVerdict } from './firewall.js';
export { loadLabFile, parseLabFile, LabFileError, LAB_DEFAULTS, type LabConfig, type LabNode } from './labfile.js';
export { labStateDir, labStateRoot, podNames, ns as labNetns } from './names.js';
export { readClusterSummary, type ClusterSummary } from './summary.js';
export { hostDatastoreOf, normalizeDatastore } from './labstore.js';
