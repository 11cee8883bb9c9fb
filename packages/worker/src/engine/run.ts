// What the parts of an execution share: the run's state and services, as the call modules see
// them. `Execution` implements it; the call and composite modules take it as their first argument.
import type { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from '@cairn/common';
import type { Hasher } from '@cairn/payload-store';
import type { StepReport } from '@cairn/proto';
import type { CancelledError, WorkflowDefinition } from '@cairn/sdk';
import type { Clock } from '../clock.js';
import type { DeterministicSource } from '../determinism.js';
import type { CallScope, Halt } from './basics.js';
import type { SignalHub, SignalSubscription } from '../signals.js';
import type { CompensationRegistry } from './composites/compensation-registry.js';
import type { JournalCursor } from './cursor.js';
import type { JournalWriter } from './journal-writer.js';
import type { Reports } from './reports.js';
import type { RunJournal } from './run-journal.js';
import type { Suspension } from './suspension.js';
import type { AttemptRef, RunAssignment, StartChildAnswer, StartChildRequest } from './types.js';

/** What an execution is given by its engine. */
export interface ExecutionDeps {
  readonly journal: RunJournal;
  readonly hasher: Hasher;
  readonly thresholdMs: number;
  readonly clock: Clock;
  readonly signals: SignalHub;
  readonly report: (report: StepReport) => void;
  readonly logger: Logger;
  readonly workflow: WorkflowDefinition | undefined;
  readonly startChild: ((request: StartChildRequest) => Promise<StartChildAnswer>) | undefined;
  readonly aroundAttempt: <T>(attempt: AttemptRef, fn: () => T) => T;
  readonly onJournalCommit: ((seconds: number, result: 'ok' | 'fenced' | 'error') => void) | undefined;
}

/** One execution of a run, as its call modules use it. */
export interface Run {
  readonly runId: string;
  readonly epoch: number;
  readonly log: Logger;
  readonly assignment: RunAssignment;
  readonly deps: ExecutionDeps;
  readonly scope: AsyncLocalStorage<CallScope>;
  readonly cursor: JournalCursor;
  readonly writer: JournalWriter;
  readonly reports: Reports;
  readonly suspension: Suspension;
  readonly compensations: CompensationRegistry;
  readonly replayed: { step: number; model: number };
  /** How many top-level `ctx.parallel` and `ctx.agent` calls the workflow made (names their branches and calls). */
  readonly counters: { parallels: number; agents: number };
  /** Step attempts running or being journaled (a drain and the compensation phase wait for them). */
  readonly inFlight: Set<Promise<void>>;
  /** `ctx.random()`/`ctx.uuid()`; set once the run is loaded. */
  readonly random: DeterministicSource;
  /** A forked run shares its source's seed; its new child runs need IDs of their own. */
  readonly forked: boolean;
  /** Why the execution stopped running workflow code, if it did. */
  readonly halt: Halt | undefined;
  /** The workflow function has settled: its remaining calls never resolve (compensations still run). */
  readonly settled: boolean;
  readonly finished: boolean;
  readonly cancelRequested: boolean;
  /** `ctx.signal`: aborted on cancellation. */
  readonly cancelSignal: AbortSignal;
  /** Aborted when the execution ends, so step code still running learns it must stop. */
  readonly stopSignal: AbortSignal;
  /** Called with the error when the run is cancelled (running step attempts reject). */
  readonly cancelListeners: Set<(error: CancelledError) => void>;
  /** Signal subscriptions to close when the execution ends. */
  readonly subscriptions: Set<SignalSubscription>;
  /** Wraps one durable call: once the execution is halted its promise never settles. */
  durable<T>(body: () => Promise<T>): Promise<T>;
  /** Runs `op` as in-flight work a drain (and the compensation phase) waits for. */
  tracked<T>(op: () => Promise<T>): Promise<T>;
  throwIfCancelled(): void;
  /** Whether the current call belongs to the compensation phase (which ignores cancellation). */
  internal(): boolean;
  /** Counts a consumed signal of `name` (with its ID, which a suspension reports to the control plane). */
  countSignal(name: string, signalId: string | undefined): void;
  lose(): void;
  abandon(err: unknown): void;
}
