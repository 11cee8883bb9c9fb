import {
  ErrorCode,
  RunInfoSchema,
  RunStatus,
  RunTaskSchema,
  RunWarning,
  StepInfoSchema,
  StepKind,
  StepStatus,
  WakeReason,
  create,
  type RunInfo,
  type RunTask,
  type StepInfo,
} from '@cairn/proto';
import type { Run, RunStatusName, RunWarningName, Step, StepKindName, StepStatusName, WakeReasonName } from '../domain.js';

const RUN_STATUS: Record<RunStatusName, RunStatus> = {
  queued: RunStatus.QUEUED,
  running: RunStatus.RUNNING,
  suspended: RunStatus.SUSPENDED,
  completed: RunStatus.COMPLETED,
  failed: RunStatus.FAILED,
  cancelled: RunStatus.CANCELLED,
  terminated: RunStatus.TERMINATED,
  timed_out: RunStatus.TIMED_OUT,
};

const WAKE_REASON: Record<WakeReasonName, WakeReason> = {
  start: WakeReason.START,
  timer: WakeReason.TIMER,
  signal: WakeReason.SIGNAL,
  retry: WakeReason.RETRY,
  recovery: WakeReason.RECOVERY,
  cancel: WakeReason.CANCEL,
  child: WakeReason.CHILD,
};

export const STEP_KIND: Record<StepKindName, StepKind> = {
  step: StepKind.STEP,
  sleep: StepKind.SLEEP,
  signal: StepKind.SIGNAL,
  model: StepKind.MODEL,
  child: StepKind.CHILD,
};

export const STEP_STATUS: Record<StepStatusName, StepStatus> = {
  running: StepStatus.RUNNING,
  completed: StepStatus.COMPLETED,
  failed: StepStatus.FAILED,
  retrying: StepStatus.RETRYING,
  waiting: StepStatus.WAITING,
};

const RUN_WARNING: Record<RunWarningName, RunWarning> = {
  no_connected_worker: RunWarning.NO_CONNECTED_WORKER,
};

export function toRunWarning(warning: RunWarningName): RunWarning {
  return RUN_WARNING[warning];
}

const ms = (date: Date | null): bigint => (date === null ? 0n : BigInt(date.getTime()));

export function toRunInfo(run: Run): RunInfo {
  return create(RunInfoSchema, {
    runId: run.id,
    workflowName: run.workflowName,
    workflowVersion: run.workflowVersion,
    taskQueue: run.taskQueue,
    status: RUN_STATUS[run.status],
    epoch: run.epoch,
    // The column holds the code a worker reported; proto3 enums are open, so a number this build
    // does not name passes through as it came.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment
    errorCode: (run.errorCode ?? ErrorCode.UNSPECIFIED) as ErrorCode,
    errorRef: run.errorRef ?? '',
    createdAt: ms(run.createdAt),
    startedAt: ms(run.startedAt),
    endedAt: ms(run.endedAt),
    wakeAt: ms(run.wakeAt),
    waitingSignal: run.waitingSignal ?? '',
    inputSize: BigInt(run.inputSize),
    outputSize: BigInt(run.outputSize ?? 0),
    dispatchCount: run.dispatchCount,
    cancelRequested: run.cancelRequested,
    parentRunId: run.parentRunId ?? '',
    forkedFromRunId: run.forkedFromRunId ?? '',
    forkPosition: run.forkPosition ?? 0,
    scheduleId: run.scheduleId ?? '',
    scheduleTickAt: ms(run.scheduleTickAt),
    priority: run.priority,
    deadlineAt: ms(run.deadlineAt),
  });
}

export function toStepInfo(step: Step): StepInfo {
  return create(StepInfoSchema, {
    position: step.position,
    kind: STEP_KIND[step.kind],
    name: step.name,
    keyDigest: step.keyDigest ?? '',
    attempt: step.attempt,
    status: STEP_STATUS[step.status],
    // As in toRunInfo: the reported code, passed through.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment
    errorCode: (step.errorCode ?? ErrorCode.UNSPECIFIED) as ErrorCode,
    retryable: step.retryable,
    errorRef: step.errorRef ?? '',
    startedAt: ms(step.startedAt),
    endedAt: ms(step.endedAt),
    dueAt: ms(step.dueAt),
    outputSize: BigInt(step.outputSize ?? 0),
    inputTokens: BigInt(step.inputTokens ?? 0),
    outputTokens: BigInt(step.outputTokens ?? 0),
    provider: step.provider ?? '',
    model: step.model ?? '',
    copied: step.copied,
  });
}

/**
 * The defaults registered for a run's workflow version that a RunTask carries to the worker (see
 * WorkflowDefaultsService); null fields are not set.
 */
export interface RunTaskDefaults {
  /** The registered policy, every default filled in, durations in milliseconds (0 attempts: unlimited). */
  readonly retry: {
    readonly maximumAttempts: number;
    readonly initialInterval: number;
    readonly backoffCoefficient: number;
    readonly maximumInterval: number;
  } | null;
  readonly stepTimeoutMs: number | null;
}

/** What a RunTask carries beside the run itself. */
export interface RunTaskExtras {
  /** The registered retry policy and step timeout of the run's version (null: none). */
  readonly defaults?: RunTaskDefaults | null;
  /** For a run woken by a child's end: its child runs that ended `timed_out`. */
  readonly timedOutChildren?: readonly string[];
}

/**
 * The task pushed to a worker for a run it just claimed; `traceparent` is that of the dispatch span
 * ('' untraced).
 */
export function toRunTask(run: Run, traceparent = '', extras: RunTaskExtras = {}): RunTask {
  const defaults = extras.defaults ?? null;
  const retry = defaults?.retry ?? null;
  return create(RunTaskSchema, {
    runId: run.id,
    epoch: run.epoch,
    workflowName: run.workflowName,
    workflowVersion: run.workflowVersion,
    taskQueue: run.taskQueue,
    reason: run.wakeReason === null ? WakeReason.START : WAKE_REASON[run.wakeReason],
    leaseExpiresAt: ms(run.leaseExpiresAt),
    cancelRequested: run.cancelRequested,
    traceparent,
    forkSourceRunId: run.forkedFromRunId ?? '',
    forkPosition: run.forkPosition ?? 0,
    inputPayloadId: run.inputPayloadId ?? '',
    scheduleId: run.scheduleId ?? '',
    // A registered policy always has an initial interval (at least 1 ms): that is how the worker
    // tells "registered, unlimited attempts" (0) from "none registered".
    defaultRetryMaxAttempts: retry?.maximumAttempts ?? 0,
    defaultRetryInitialIntervalMs: BigInt(retry?.initialInterval ?? 0),
    defaultRetryMaxIntervalMs: BigInt(retry?.maximumInterval ?? 0),
    defaultRetryBackoffCoefficient: retry?.backoffCoefficient ?? 0,
    defaultStepTimeoutMs: BigInt(defaults?.stepTimeoutMs ?? 0),
    timedOutChildRunIds: [...(extras.timedOutChildren ?? [])],
  });
}
