// The engine without the control-plane stream, for the cairn CLI's replay and other tools of this
// project. Published as `@cairn/worker/internal`; no compatibility promise.
export {
  Engine,
  PayloadStoreJournals,
  PayloadStoreRunJournal,
  type EngineOptions,
  type RunAssignment,
  type RunExecution,
  type RunJournal,
  type RunJournals,
  type RunOutcome,
  type StepDefaults,
} from './engine.js';
export { SignalHub, SignalSubscription } from './signals.js';
export { systemClock, type Clock, type ClockTimer } from './clock.js';
// Types the engine's interface names.
export { ErrorCode, SuspendReason, type StepReport } from '@cairn/proto';
export { WORKER_ENVIRONMENT_VARIABLES } from './config.js';
