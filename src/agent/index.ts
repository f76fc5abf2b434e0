// agent: the node agent (datastore → calc → dataplane); see docs/dataplane.md.
export { runAgent, startAgent, type AgentOptions, type AgentHandle, type AgentStatus } from './agent.js';
export { natConfigFromResources } from './nat.js';
