// `@cairn/worker/testing`: run your workflows in tests with the real engine, a real payload store,
// an in-process control plane and a virtual clock that skips time.
export {
  RunFailedError,
  TestEnvironment,
  type TestApprovalAnswer,
  type TestEnvironmentOptions,
  type TestRunId,
  type TestRunStatus,
} from './test-environment.js';
export { VirtualClock } from './virtual-clock.js';
export { testModel, type TestModel, type TestModelReply } from './test-model.js';
export { systemClock, type Clock, type ClockTimer } from '../clock.js';
/** What the in-process control plane received for a step attempt (see `TestEnvironment.reportsFor`). */
export type { StepReport } from '@cairn/proto';
/** Run journals in memory, for fast tests of replay logic with the real engine and no database. */
export { MemoryJournals, MemoryRunJournal } from '../engine/memory-journal.js';
export type { RunJournal, RunJournals } from '../engine/run-journal.js';
