// The CLI as a library: the command tree (for completion and docs), exit codes, and the pieces
// other tools reuse (the residency report, the replay).
export { buildProgram, VERSION } from './program.js';
export { ExitCode, CliError } from './errors.js';
export { buildResidencyReport, renderMarkdown, type ResidencyReport, type ReportMessage, type ReportField } from './residency.js';
export { replayRun, type JournalDocument, type ReplayResult } from '@cairn/worker/replay';
export { completionScript, SHELLS, type Shell } from './completion.js';
export { loadWorkflowModules, isWorkflowDefinition } from './workflow-modules.js';
export { configPath, loadConfig, resolveSettings, type Profile } from './config.js';
