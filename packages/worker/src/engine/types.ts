// The engine's public types: what a run assignment carries, how an execution ends, the options.
import type { CairnError, Logger } from '@cairn/common';
import type { Hasher, PayloadStore } from '@cairn/payload-store';
import type { ErrorCode, StepReport, SuspendReason } from '@cairn/proto';
import type { RetryPolicy, WorkflowDefinition } from '@cairn/sdk';
import type { Clock } from '../clock.js';
import type { SignalHub } from '../signals.js';
import type { RunJournals } from './run-journal.js';

export interface RunAssignment {
  readonly runId: string;
  readonly epoch: number;
  readonly workflowName: string;
  readonly workflowVersion: string;
  /** Cancellation was requested before the task was dispatched. */
  readonly cancelRequested?: boolean;
  /**
   * For a forked run: the source run whose input (or, with `inputPayloadId`, that stored payload)
   * and journal entries before `position` are copied into this run (once, fenced by this epoch)
   * before it replays.
   */
  readonly forkFrom?: { readonly runId: string; readonly position: number; readonly inputPayloadId?: string | undefined } | undefined;
  /**
   * For a run a schedule fired: its input is created here from the stored payload (`null`
   * without one) before the run is acquired, once; a later dispatch finds it and keeps it.
   */
  readonly scheduled?: { readonly scheduleId: string; readonly payloadId: string | undefined } | undefined;
  /**
   * The defaults registered with the run's workflow version (the control plane's RunTask carries
   * them). A step's retry policy is laid together field by field: the step's own `retry` wins,
   * then this registered `retry`, then the workflow's `retry` in code, then the SDK's defaults. Its
   * timeout: the step's own `timeout`, else `stepTimeoutMs`, else the workflow's `timeouts.step`.
   */
  readonly defaults?: StepDefaults | undefined;
  /**
   * Child runs of this run that the control plane ended `timed_out` (the RunTask of a run woken by
   * a child's end lists them): a `ctx.child` waiting on one fails with ChildWorkflowFailedError.
   */
  readonly timedOutChildren?: readonly string[] | undefined;
}

/** The registered defaults for `ctx.step` calls that set no policy or timeout of their own. */
export interface StepDefaults {
  /** The retry policy of a step without a `retry` option. */
  readonly retry?: RetryPolicy | undefined;
  /** The per-attempt timeout, in milliseconds, of a step without a `timeout` option. */
  readonly stepTimeoutMs?: number | undefined;
}

/**
 * How an execution ended, which decides what the worker tells the control plane:
 * `completed`/`failed`/`cancelled`/`suspended`/`released` each map to one message; `lost` (the
 * lease is gone or a write was fenced) and `abandoned` (the payload store stayed unreachable) send
 * nothing, so the lease expires and the control plane dispatches the run again. `misconfigured`:
 * the run's data could not be opened with this process's encryption keys (a key ID it lacks, or a
 * key that is not the one the data was sealed with); nothing was written for the run after that,
 * and the worker gives it back for a correctly configured worker to take. `refused`: the task named a
 * workflow other than the one the run was stored with in the data plane (CAIRN-1191); nothing was
 * written or run, nothing is sent, and the lease expires.
 */
export type RunOutcome =
  | { readonly kind: 'completed'; readonly outputSize: number }
  | { readonly kind: 'failed'; readonly errorCode: ErrorCode; readonly errorRef: string }
  | { readonly kind: 'cancelled' }
  | {
      readonly kind: 'suspended';
      readonly reason: SuspendReason;
      /** Milliseconds since the epoch; 0 for no timer. */
      readonly wakeAt: number;
      readonly signalName: string;
      readonly signalsConsumed: number;
      /**
       * IDs of the signals of that name the run consumed, as its journal records them, the most
       * recent last (at most `MAX_CONSUMED_SIGNAL_IDS`, the most recent ones).
       */
      readonly consumedSignalIds: readonly string[];
      /** The child run whose end wakes the run ('' for none). */
      readonly childRunId: string;
    }
  | { readonly kind: 'released' }
  | { readonly kind: 'lost' }
  | { readonly kind: 'abandoned'; readonly error: unknown }
  | { readonly kind: 'misconfigured'; readonly keyId: string | undefined; readonly error: CairnError }
  | { readonly kind: 'refused'; readonly error: CairnError };

/** One execution of a run under one lease epoch. */
export interface RunExecution {
  readonly runId: string;
  readonly epoch: number;
  /** Resolves once with how the execution ended; never rejects. */
  readonly done: Promise<RunOutcome>;
  /** Cancels the run: `ctx.signal` aborts and pending and new durable calls reject with CancelledError. */
  cancel(): void;
  /**
   * The lease is gone: stop at once and report nothing more. A step attempt already running is not
   * journaled by a later call; if it finishes, its result is offered to the journal once, where the
   * epoch fence refuses it when another worker holds the run (and keeps it for replay otherwise).
   */
  lose(): void;
  /**
   * The worker is draining: stop at the next durable-call boundary. A step already running may
   * finish and be journaled within `timeoutMs`; the outcome is then `released` (unless the run
   * completes first).
   */
  drain(timeoutMs: number): void;
  /**
   * How many durable calls of each kind this execution answered from the journal (replayed rather
   * than executed): what a replay costs, for tests and diagnostics.
   */
  readonly replayed: { readonly step: number; readonly model: number };
}

/** One attempt of a durable call of one execution. */
export interface AttemptRef {
  readonly runId: string;
  readonly epoch: number;
  readonly position: number;
  readonly attempt: number;
}

export interface EngineOptions {
  /**
   * Where runs are stored: the data plane's payload store (journal, inputs, outputs, errors,
   * signals), or other {@link RunJournals} (in memory for unit tests, a recorded journal in a replay).
   */
  readonly store: PayloadStore | RunJournals;
  /** HMACs dynamic step keys before they leave the data plane. */
  readonly hasher: Hasher;
  readonly workflows: readonly WorkflowDefinition[];
  /** Waits up to this long stay in memory; longer ones suspend the run. Default 5000. */
  readonly suspendThresholdMs?: number;
  /** The shared signal LISTEN; one is created (and closed by `close()`) when absent. */
  readonly signals?: SignalHub;
  /** Receives every step status change, off the hot path (the worker batches them). */
  readonly onStepReport?: (report: StepReport) => void;
  /**
   * Runs the code of one attempt of a durable call (a step function, a model request) inside
   * `fn`, so it can see the call's trace context: the worker runs it under the attempt's span, so
   * spans the application makes there nest under Cairn's. Called right after the attempt's
   * `running` report. Default: calls `fn`.
   */
  readonly aroundAttempt?: <T>(attempt: AttemptRef, fn: () => T) => T;
  /** Told how long each fenced write to the run's journal took, and how it ended. */
  readonly onJournalCommit?: (seconds: number, result: 'ok' | 'fenced' | 'error') => void;
  readonly logger?: Logger;
  /**
   * Where time comes from: `ctx.now()`, recorded times and deadlines, in-memory waits, backoffs and
   * attempt timeouts. Default: the system clock. Tests give a virtual one (`@cairn/worker/testing`).
   */
  readonly clock?: Clock;
  /**
   * Sends a StartChild to the control plane and resolves once it is answered: `ok` (acknowledged),
   * `workflow_not_found`, or `not_held` (the parent's lease is gone). The worker sends it through
   * its outbox; without it, `ctx.child` fails.
   */
  readonly startChild?: (request: StartChildRequest) => Promise<StartChildAnswer>;
}

/** What a StartChild request carries (see the worker protocol). */
export interface StartChildRequest {
  readonly parentRunId: string;
  readonly parentEpoch: number;
  readonly position: number;
  readonly childRunId: string;
  readonly workflowName: string;
  readonly workflowVersion: string;
  readonly inputSize: number;
}

/** How the control plane answered a StartChild. */
export type StartChildAnswer = 'ok' | 'workflow_not_found' | 'not_held' | 'quota_exceeded' | 'workflow_deprecated';
