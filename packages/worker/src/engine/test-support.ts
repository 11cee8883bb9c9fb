// Shared by the engine's unit tests: an engine on in-memory journals, no database.
import { randomBytes, randomUUID } from 'node:crypto';
import { createLogger } from '@cairn/common';
import { Hasher, type JournalWrite } from '@cairn/payload-store';
import type { StepReport } from '@cairn/proto';
import type { WorkflowDefinition } from '@cairn/sdk';
import { Engine } from './engine.js';
import { MemoryJournals } from './memory-journal.js';
import type { RunExecution } from './types.js';

export interface MemoryEngine {
  readonly journals: MemoryJournals;
  readonly hasher: Hasher;
  readonly engine: Engine;
  readonly reports: StepReport[];
  /** Creates a run of `workflow` with `input`; returns its ID. */
  create(workflow: WorkflowDefinition, input: unknown): string;
  /** Starts an execution of the run under the next epoch. */
  dispatch(runId: string, workflow: WorkflowDefinition): RunExecution;
  /** Journals `writes` for the run under the next epoch, as an earlier worker would have. */
  record(runId: string, writes: readonly JournalWrite[]): Promise<void>;
  /** The step digest of `key` for the run's workflow (what a keyed call journals as its key digest). */
  digest(workflow: WorkflowDefinition, key: string): string;
}

export function memoryEngine(workflows: readonly WorkflowDefinition[], options: { suspendThresholdMs?: number } = {}): MemoryEngine {
  const journals = new MemoryJournals();
  const hasher = new Hasher(randomBytes(32));
  const reports: StepReport[] = [];
  const engine = new Engine({
    store: journals,
    hasher,
    workflows,
    suspendThresholdMs: options.suspendThresholdMs ?? 1000,
    onStepReport: (r) => reports.push(r),
    logger: createLogger('engine-test', 'silent'),
  });
  const epochs = new Map<string, number>();
  return {
    journals,
    hasher,
    engine,
    reports,
    create: (workflow, input) => {
      const runId = randomUUID();
      journals.createRun({ runId, workflowName: workflow.name, input });
      return runId;
    },
    dispatch: (runId, workflow) => {
      const epoch = (epochs.get(runId) ?? 0) + 1;
      epochs.set(runId, epoch);
      return engine.start({ runId, epoch, workflowName: workflow.name, workflowVersion: workflow.version });
    },
    record: async (runId, writes) => {
      const epoch = (epochs.get(runId) ?? 0) + 1;
      epochs.set(runId, epoch);
      const journal = journals.open(runId);
      await journal.acquire(epoch);
      await journal.append(epoch, writes);
    },
    digest: (workflow, key) => hasher.forRun(workflow.name, 2, '').step(key),
  };
}
