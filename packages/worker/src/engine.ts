// The replay engine lives in ./engine/ (one module per responsibility; see the package README).
export { Engine } from './engine/engine.js';
export type {
  AttemptRef,
  EngineOptions,
  RunAssignment,
  RunExecution,
  RunOutcome,
  StartChildAnswer,
  StartChildRequest,
  StepDefaults,
} from './engine/types.js';
export type { CompensationFailure } from './engine/composites/compensation-registry.js';
export { PayloadStoreJournals, PayloadStoreRunJournal, type RunJournal, type RunJournals } from './engine/run-journal.js';
