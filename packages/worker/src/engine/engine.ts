// The engine: holds the registered workflows and what their executions share, and starts one
// Execution per run assignment.
import { CairnError, ErrorCodes, createLogger, type Logger } from '@cairn/common';
import { PayloadStore, type Hasher } from '@cairn/payload-store';
import type { StepReport } from '@cairn/proto';
import type { WorkflowDefinition } from '@cairn/sdk';
import { systemClock, type Clock } from '../clock.js';
import { SignalHub } from '../signals.js';
import { Execution } from './execution.js';
import { PayloadStoreJournals, type RunJournals } from './run-journal.js';
import type { AttemptRef, EngineOptions, RunAssignment, RunExecution, StartChildAnswer, StartChildRequest } from './types.js';

/**
 * The replay engine: runs workflow functions against the data-plane journal. It knows nothing of
 * gRPC; the worker turns each {@link RunOutcome} into a control-plane message.
 */
export class Engine {
  readonly #journals: RunJournals;
  readonly #hasher: Hasher;
  readonly #workflows = new Map<string, WorkflowDefinition>();
  readonly #thresholdMs: number;
  readonly #signals: SignalHub;
  readonly #ownsSignals: boolean;
  readonly #onStepReport: (report: StepReport) => void;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #startChild: ((request: StartChildRequest) => Promise<StartChildAnswer>) | undefined;
  readonly #aroundAttempt: <T>(attempt: AttemptRef, fn: () => T) => T;
  readonly #onJournalCommit: ((seconds: number, result: 'ok' | 'fenced' | 'error') => void) | undefined;

  constructor(options: EngineOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#startChild = options.startChild;
    this.#aroundAttempt = options.aroundAttempt ?? ((_attempt, fn) => fn());
    this.#onJournalCommit = options.onJournalCommit;
    this.#journals = options.store instanceof PayloadStore ? new PayloadStoreJournals(options.store) : options.store;
    this.#hasher = options.hasher;
    this.#thresholdMs = options.suspendThresholdMs ?? 5000;
    if (!Number.isFinite(this.#thresholdMs) || this.#thresholdMs < 0) {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `suspendThresholdMs must be a non-negative number, got ${this.#thresholdMs}.`);
    }
    this.#logger = options.logger ?? createLogger('worker');
    this.#signals = options.signals ?? new SignalHub(this.#journals, this.#logger);
    this.#ownsSignals = options.signals === undefined;
    this.#onStepReport = options.onStepReport ?? (() => undefined);
    for (const def of options.workflows) {
      const key = workflowKey(def.name, def.version);
      if (this.#workflows.has(key)) {
        throw new CairnError(
          ErrorCodes.INVALID_ARGUMENT,
          `Workflow "${def.name}" version "${def.version}" is registered twice; give each definition its own name or version.`,
        );
      }
      this.#workflows.set(key, def);
    }
  }

  /** The workflow definitions by name and version. */
  hasWorkflow(name: string, version: string): boolean {
    return this.#workflows.has(workflowKey(name, version));
  }

  /** Starts executing a run; the returned handle controls it and reports how it ended. */
  start(assignment: RunAssignment): RunExecution {
    return new Execution(
      {
        journal: this.#journals.open(assignment.runId),
        hasher: this.#hasher,
        thresholdMs: this.#thresholdMs,
        clock: this.#clock,
        signals: this.#signals,
        report: this.#onStepReport,
        logger: this.#logger.child({ runId: assignment.runId, epoch: assignment.epoch }),
        workflow: this.#workflows.get(workflowKey(assignment.workflowName, assignment.workflowVersion)),
        startChild: this.#startChild,
        aroundAttempt: this.#aroundAttempt,
        onJournalCommit: this.#onJournalCommit,
      },
      assignment,
    );
  }

  /** Stops the signal LISTEN if this engine created it. */
  async close(): Promise<void> {
    if (this.#ownsSignals) await this.#signals.close();
  }
}

function workflowKey(name: string, version: string): string {
  return `${name}@${version}`;
}
