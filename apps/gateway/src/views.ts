import { ErrorCode, RunStatus, RunWarning, StepKind, StepStatus, type RunInfo, type StepInfo } from '@cairn/proto';
import type { ErrorInfo, JournalEntry, StoredTranscript } from '@cairn/payload-store';
import type { EntryView, ErrorView, RunStatusName, RunView, StepView, TranscriptView } from './schemas.js';

export type { EntryView, ErrorView, RunStatusName, RunView, StepView, TranscriptView };

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
    copied: step.copied,
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

export function transcriptView(stored: StoredTranscript): TranscriptView {
  return {
    runId: stored.runId,
    position: stored.position,
    size: stored.size,
    createdAt: new Date(stored.createdAt).toISOString(),
    transcript: stored.transcript,
  };
}

/** Warnings as the API shows them: a closed code and words made of the run's workflow name and version, nothing of the request. */
export function warningViews(warnings: readonly RunWarning[], run: RunInfo): Array<{ code: 'no_connected_worker'; message: string }> {
  return warnings.flatMap((w) =>
    w === RunWarning.NO_CONNECTED_WORKER
      ? [
          {
            code: 'no_connected_worker' as const,
            message: `no connected worker serves ${run.workflowName}@${run.workflowVersion}: the run waits in the queue until one connects`,
          },
        ]
      : [],
  );
}
