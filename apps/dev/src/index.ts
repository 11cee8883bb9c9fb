export {
  startStack,
  entryPoints,
  workerCommand,
  type Stack,
  type StackOptions,
  type StackLink,
  type ServerEntryPoints,
  type ControlPlaneReplica,
} from './stack.js';
export { type StackSecrets, SECRET_VARIABLES, readSecretsFile, secretsPath } from './secrets.js';
export { ManagedProcess, describeExit, type ExitInfo } from './process.js';
export { runAgentExample, runExample, runResearchExample } from './example.js';
export { RestartPolicy, Supervision, StartFailure, type Service, type Incarnation } from './supervisor.js';
export { DEFAULT_PORTS, PORT_SETTINGS, checkPorts, portHolder, portInUse, type DevPorts } from './ports.js';
export { resolveDevSettings, findProjectDir, type DevFlags, type DevSettings, type SettingSource } from './settings.js';
export {
  devWorkerEnvironment,
  endpointsPath,
  formatEnvironment,
  readEndpoints,
  stackRunning,
  workerEnvironment,
  type Endpoints,
} from './endpoints.js';
export { watchProject, IGNORED_FOLDERS, type ProjectWatcher } from './watch.js';
export { consoleSignInUrl, runDev, type RunDevOptions, type DevSession, type DevReadyInfo } from './run-dev.js';
