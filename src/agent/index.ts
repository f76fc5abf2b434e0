// agent: the node agent (datastore → calc → dataplane); see docs/dataplane.md.
export { AGENT_KINDS, agentKubeViews, runAgent, startAgent, type AgentOptions, type AgentHandle, type AgentStatus } from './agent.js';
export { natConfigFromResources } from './nat.js';
