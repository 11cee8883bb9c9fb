export { startStack, entryPoints, type Stack, type StackOptions, type StackSecrets, type ControlPlaneReplica } from './stack.js';
export { ManagedProcess } from './process.js';
export { runAgentExample, runExample, runResearchExample } from './example.js';
