import { ErrorCode, RunStatus, StepKind, StepStatus, type RunInfo, type StepInfo } from '@cairn/proto';
import type { ErrorInfo, JournalEntry, StoredTranscript } from '@cairn/payload-store';

/** Run states as the HTTP API spells them. */
export type RunStatusName = 'queued' | 'running' | 'suspended' | 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed_out';

const FINAL: ReadonlySet<RunStatus> = new Set([
  RunStatus.COMPLETED,
  RunStatus.FAILED,
  RunStatus.CANCELLED,
  RunStatus.TERMINATED,
  RunStatus.TIMED_OUT,
]);

export function isFinal(status: RunStatus): boolean {
  return FINAL.has(status);
}

/** The lowercase enum value name without its prefix (`RUN_STATUS_TIMED_OUT` → `timed_out`), null for UNSPECIFIED. */
function enumName(names: Record<number, string>, value: number): string | null {
  if (value === 0) return null;
  return names[value]?.toLowerCase() ?? `unknown_${value}`;
}

export function runStatusName(status: RunStatus): RunStatusName | null {
  return enumName(RunStatus, status) as RunStatusName | null;
}

/** Milliseconds since the epoch (0 = not set) as an ISO time, or null. */
function time(ms: bigint): string | null {
  return ms === 0n ? null : new Date(Number(ms)).toISOString();
}

const optional = (s: string): string | null => (s === '' ? null : s);

/** The JSON shape of a run's metadata. */
export interface RunView {
  readonly runId: string;
  readonly workflow: string;
  readonly version: string | null;
  readonly taskQueue: string | null;
  readonly status: RunStatusName | null;
  readonly epoch: number;
  readonly errorCode: string | null;
  readonly createdAt: string | null;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
  readonly wakeAt: string | null;
  readonly waitingSignal: string | null;
  readonly inputSize: number;
  readonly outputSize: number;
  readonly dispatchCount: number;
  readonly cancelRequested: boolean;
  /** The run that started this one as a child, or null. */
  readonly parentRunId: string | null;
}

export function runView(run: RunInfo): RunView {
  return {
    runId: run.runId,
    workflow: run.workflowName,
    version: optional(run.workflowVersion),
    taskQueue: optional(run.taskQueue),
    status: runStatusName(run.status),
    epoch: run.epoch,
    errorCode: enumName(ErrorCode, run.errorCode),
    createdAt: time(run.createdAt),
    startedAt: time(run.startedAt),
    endedAt: time(run.endedAt),
    wakeAt: time(run.wakeAt),
    waitingSignal: optional(run.waitingSignal),
    inputSize: Number(run.inputSize),
    outputSize: Number(run.outputSize),
    dispatchCount: run.dispatchCount,
    cancelRequested: run.cancelRequested,
    parentRunId: optional(run.parentRunId),
  };
}

/** One attempt of one durable call on the timeline. */
export interface StepView {
  readonly position: number;
  readonly attempt: number;
  readonly kind: string | null;
  readonly name: string;
  readonly status: string | null;
  readonly errorCode: string | null;
  readonly retryable: boolean;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
  readonly dueAt: string | null;
  readonly durationMs: number | null;
  readonly outputSize: number;
  /** Model calls only (null otherwise): tokens the provider counted for this attempt. */
  readonly inputTokens: number | null;
  readonly outputTokens: number | null;
  /** Model calls only (null otherwise): the provider and model this attempt called. */
  readonly provider: string | null;
  readonly model: string | null;
}

export function stepView(step: StepInfo): StepView {
  return {
    position: step.position,
    attempt: step.attempt,
    kind: enumName(StepKind, step.kind),
    name: step.name,
    status: enumName(StepStatus, step.status),
    errorCode: enumName(ErrorCode, step.errorCode),
    retryable: step.retryable,
    startedAt: time(step.startedAt),
    endedAt: time(step.endedAt),
    dueAt: time(step.dueAt),
    durationMs: step.startedAt !== 0n && step.endedAt !== 0n ? Number(step.endedAt - step.startedAt) : null,
    outputSize: Number(step.outputSize),
    ...modelFields(step),
  };
}

function modelFields(step: StepInfo): Pick<StepView, 'inputTokens' | 'outputTokens' | 'provider' | 'model'> {
  if (step.kind !== StepKind.MODEL) return { inputTokens: null, outputTokens: null, provider: null, model: null };
  return {
    inputTokens: Number(step.inputTokens),
    outputTokens: Number(step.outputTokens),
    provider: optional(step.provider),
    model: optional(step.model),
  };
}

/** An error as the data plane stored it (message and stack live here, never in the control plane). */
export interface ErrorView {
  readonly name: string;
  readonly message: string;
  readonly code: string | null;
  readonly stack: string | null;
  /** A run's error only: compensations (`ctx.step` `compensate`) that failed for good after the workflow failed. */
  readonly compensationFailures?: unknown;
}

export function errorView(error: ErrorInfo): ErrorView {
  const failures = (error as { compensationFailures?: unknown }).compensationFailures;
  return {
    name: error.name,
    message: error.message,
    code: error.code ?? null,
    stack: error.stack ?? null,
    ...(Array.isArray(failures) && failures.length > 0 ? { compensationFailures: failures } : {}),
  };
}

const msTime = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** A recorded journal entry, for debugging a step. */
export interface EntryView {
  readonly runId: string;
  readonly position: number;
  readonly kind: string;
  readonly name: string;
  readonly status: string;
  readonly attempt: number;
  readonly output?: unknown;
  readonly error?: ErrorView;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
  readonly dueAt: string | null;
}

export function entryView(runId: string, entry: JournalEntry): EntryView {
  return {
    runId,
    position: entry.position,
    kind: entry.kind,
    name: entry.name,
    status: entry.status,
    attempt: entry.attempt,
    // A model call between attempts keeps its retry state as the entry's value: not an output.
    ...(entry.value === undefined || (entry.kind === 'model' && entry.status !== 'completed') ? {} : { output: entry.value }),
    ...(entry.error ? { error: errorView(entry.error) } : {}),
    startedAt: msTime(entry.startedAt),
    endedAt: msTime(entry.endedAt),
    dueAt: msTime(entry.dueAt),
  };
}

/** A model call's transcript: request, response, usage and every attempt, as the data plane recorded it. */
export interface TranscriptView {
  readonly runId: string;
  readonly position: number;
  readonly size: number;
  readonly createdAt: string;
  readonly transcript: unknown;
}

export function transcriptView(stored: StoredTranscript): TranscriptView {
  return {
    runId: stored.runId,
    position: stored.position,
    size: stored.size,
    createdAt: new Date(stored.createdAt).toISOString(),
    transcript: stored.transcript,
  };
}
