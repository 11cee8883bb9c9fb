import { ErrorCode } from '@cairn/proto';
import type { Run, Step } from '../domain.js';
import type { z } from 'zod';
import type { Run as RunSchema, Step as StepSchema } from './responses.js';

const iso = (date: Date | null): string | null => (date === null ? null : date.toISOString());

/** `step_failed` for ErrorCode.STEP_FAILED; null for none. */
export function errorCodeName(code: number | null): string | null {
  if (code === null || code === 0) return null;
  const name = (ErrorCode as unknown as Record<number, string | undefined>)[code];
  return name === undefined ? `unknown_${code}` : name.toLowerCase();
}

/** A run as the REST API shows it (camelCase, ISO times). */
export function presentRun(run: Run): z.input<typeof RunSchema> {
  return {
    id: run.id,
    dataPlaneId: run.dataPlaneId,
    workflowName: run.workflowName,
    workflowVersion: run.workflowVersion,
    taskQueue: run.taskQueue,
    status: run.status,
    epoch: run.epoch,
    errorCode: errorCodeName(run.errorCode),
    errorRef: run.errorRef,
    createdAt: iso(run.createdAt),
    queuedAt: iso(run.queuedAt),
    startedAt: iso(run.startedAt),
    endedAt: iso(run.endedAt),
    wakeAt: iso(run.wakeAt),
    wakeReason: run.wakeReason,
    waitingSignal: run.waitingSignal,
    suspendReason: run.status === 'suspended' ? run.suspendReason : null,
    inputSize: run.inputSize,
    outputSize: run.outputSize,
    dispatchCount: run.dispatchCount,
    cancelRequested: run.cancelRequested,
    parentRunId: run.parentRunId,
    scheduleId: run.scheduleId,
    scheduleTickAt: iso(run.scheduleTickAt),
    waitingChild: run.status === 'suspended' ? run.waitingChild : null,
    forkedFromRunId: run.forkedFromRunId,
    forkPosition: run.forkPosition,
    priority: run.priority,
    concurrencyKeyDigest: run.concurrencyKeyDigest,
    deadlineAt: iso(run.deadlineAt),
    updatedAt: iso(run.updatedAt),
  };
}

export function presentStep(step: Step): z.input<typeof StepSchema> {
  return {
    position: step.position,
    attempt: step.attempt,
    kind: step.kind,
    name: step.name,
    keyDigest: step.keyDigest,
    status: step.status,
    errorCode: errorCodeName(step.errorCode),
    retryable: step.retryable,
    errorRef: step.errorRef,
    startedAt: iso(step.startedAt),
    endedAt: iso(step.endedAt),
    dueAt: iso(step.dueAt),
    durationMs: step.startedAt !== null && step.endedAt !== null ? step.endedAt.getTime() - step.startedAt.getTime() : null,
    outputSize: step.outputSize,
    epoch: step.epoch,
    inputTokens: step.inputTokens,
    outputTokens: step.outputTokens,
    provider: step.provider,
    model: step.model,
    copied: step.copied,
  };
}
