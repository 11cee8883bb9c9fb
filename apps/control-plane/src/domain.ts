import { CairnError, ErrorCodes } from '@cairn/common';

/** Lifecycle states of a run, as stored. */
export const RUN_STATUSES = ['queued', 'running', 'suspended', 'completed', 'failed', 'cancelled', 'terminated', 'timed_out'] as const;
export type RunStatusName = (typeof RUN_STATUSES)[number];
export const FINAL_STATUSES: ReadonlySet<RunStatusName> = new Set(['completed', 'failed', 'cancelled', 'terminated', 'timed_out']);

export type WakeReasonName = 'start' | 'timer' | 'signal' | 'retry' | 'recovery' | 'cancel' | 'child';
export type SuspendReasonName = 'sleep' | 'signal' | 'retry_backoff' | 'child';
export type StepKindName = 'step' | 'sleep' | 'signal' | 'model' | 'child';
export type StepStatusName = 'running' | 'completed' | 'failed' | 'retrying' | 'waiting';
/** Why a lease ended (the `run_leases.end_reason` column). */
export type LeaseEndReason = 'suspended' | 'completed' | 'failed' | 'cancelled' | 'released' | 'expired' | 'terminated' | 'timed_out';

/** A run as the control plane knows it. Sizes are bytes; times are Dates (UTC). */
export interface Run {
  readonly id: string;
  readonly dataPlaneId: string;
  /** The project the run's data plane belongs to. */
  readonly projectId: string;
  readonly workflowName: string;
  readonly workflowVersion: string;
  readonly taskQueue: string;
  readonly status: RunStatusName;
  readonly epoch: number;
  readonly leaseSession: string | null;
  readonly leaseWorker: string | null;
  readonly leaseExpiresAt: Date | null;
  readonly wakeAt: Date | null;
  readonly wakeReason: WakeReasonName | null;
  readonly waitingSignal: string | null;
  /**
   * The per-run keyed digest of the signal name the run waits for (set only while suspended on a
   * signal; a stale value in any other state means nothing). A signal notice whose name stayed in
   * the data plane carries only this digest.
   */
  readonly waitingSignalDigest: string | null;
  readonly signalsConsumed: number;
  readonly suspendReason: SuspendReasonName | null;
  readonly idempotencyDigest: string | null;
  /** The numeric `cairn.run.v1.ErrorCode`, or null. */
  readonly errorCode: number | null;
  readonly errorRef: string | null;
  readonly inputSize: number;
  readonly outputSize: number | null;
  readonly dispatchCount: number;
  readonly cancelRequested: boolean;
  /** For a child workflow run, the run that started it. */
  readonly parentRunId: string | null;
  /** For a run suspended until a child ends, that child. */
  readonly waitingChild: string | null;
  /** For a forked run, the source run whose journal prefix it started from. */
  readonly forkedFromRunId: string | null;
  /** For a forked run, the journal position it was forked at (entries before it were copied). */
  readonly forkPosition: number | null;
  /** For a run fired by a schedule, the schedule. */
  readonly scheduleId: string | null;
  /** For a run fired by a schedule, the tick it was fired for (the request time of a trigger-now). */
  readonly scheduleTickAt: Date | null;
  /** For a run fired by a schedule, the data-plane payload its input is created from. */
  readonly inputPayloadId: string | null;
  /** Dispatch priority, 0–100: higher first, then oldest. */
  readonly priority: number;
  /** HMAC (computed in the data plane) of the run's concurrency key, or null. */
  readonly concurrencyKeyDigest: string | null;
  /** When the run times out (creation + the version's registered run timeout); null without one. */
  readonly deadlineAt: Date | null;
  readonly createdAt: Date;
  readonly queuedAt: Date | null;
  readonly startedAt: Date | null;
  readonly endedAt: Date | null;
  readonly updatedAt: Date;
}

/** One attempt of one durable call. */
export interface Step {
  readonly runId: string;
  readonly position: number;
  readonly attempt: number;
  readonly kind: StepKindName;
  readonly name: string;
  readonly keyDigest: string | null;
  readonly status: StepStatusName;
  readonly errorCode: number | null;
  readonly retryable: boolean;
  readonly errorRef: string | null;
  readonly startedAt: Date | null;
  readonly endedAt: Date | null;
  readonly dueAt: Date | null;
  readonly outputSize: number | null;
  readonly epoch: number;
  /** For a model call attempt: tokens the provider counted (null for other kinds). */
  readonly inputTokens: number | null;
  readonly outputTokens: number | null;
  /** For a model call attempt: the provider and model names (null for other kinds). */
  readonly provider: string | null;
  readonly model: string | null;
  /**
   * For a forked run, an entry at a position below its fork position: copied from the source's
   * journal, not executed by this run (and so not metered). The control plane decides this from
   * the run's fork position, whatever a report says.
   */
  readonly copied: boolean;
}

/** A step status report from a worker, validated: a step row as the worker saw it. */
export type StepReportInput = Omit<Step, 'copied'>;

/** A journal hash chain head a worker reported for a run (a digest; the journal stays in the data plane). */
export interface JournalHeadInput {
  readonly runId: string;
  readonly epoch: number;
  readonly entries: number;
  readonly head: string;
}

/** A workflow version a worker announced: what it can run, on which queue. */
export interface WorkflowRefInput {
  readonly name: string;
  readonly version: string;
  readonly taskQueue: string;
  /** The settings from code it announced (absent from older workers). */
  readonly settings?: AnnouncedSettings | undefined;
}

/**
 * The settings a worker announced for a workflow version, validated, in the registry's form:
 * applied in development mode, compared with the registration otherwise.
 */
export interface AnnouncedSettings {
  readonly inputSchemaDigest: string | null;
  readonly outputSchemaDigest: string | null;
  /** Every default filled in, durations in milliseconds; 0 attempts means unlimited. */
  readonly retry: {
    readonly maximumAttempts: number;
    readonly initialInterval: number;
    readonly backoffCoefficient: number;
    readonly maximumInterval: number;
  } | null;
  readonly runTimeoutMs: number | null;
  readonly stepTimeoutMs: number | null;
  readonly schedules: ReadonlyArray<{ readonly cron: string; readonly timezone: string }>;
  readonly flowControl: {
    readonly concurrency: { readonly limit: number; readonly perKey: boolean } | null;
    readonly rateLimit: { readonly limit: number; readonly periodMs: number; readonly perKey: boolean } | null;
  } | null;
}

/** A lease (run, epoch). */
export interface LeaseKey {
  readonly runId: string;
  readonly epoch: number;
}

/**
 * Something that may keep a run that has not ended from running soon. `no_connected_worker`: no
 * connected worker announces the run's workflow version, so it waits in the queue until one does.
 */
export type RunWarningName = 'no_connected_worker';

export function isFinal(status: RunStatusName): boolean {
  return FINAL_STATUSES.has(status);
}

/** A request field that is missing or malformed; each edge names it in its own way. */
export function invalidField(field: string, message: string): CairnError {
  return new CairnError(ErrorCodes.INVALID_ARGUMENT, message, { details: { field } });
}

/** `scoped`: the caller is a data plane, which sees only its own runs. */
export function runNotFound(runId: string, scoped = true): CairnError {
  return new CairnError(
    ErrorCodes.NOT_FOUND,
    scoped
      ? `run ${runId} not found in this data plane: check the run ID (a data plane sees only the runs it started)`
      : `run ${runId} not found: check the run ID`,
  );
}
