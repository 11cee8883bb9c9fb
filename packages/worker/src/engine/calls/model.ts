// `ctx.model`: replay a journaled model result, or call the models in order with provider retries
// (Retry-After), fallbacks, a timeout per attempt and streaming, journaling each attempt with the
// call's state and, at the end, its transcript.
import { CairnError, ErrorCodes } from '@cairn/common';
import { StepKind, StepStatus, type StepInfo } from '@cairn/proto';
import { CancelledError, ModelFailedError, type ModelFailure, type ModelResult, type ModelUsage } from '@cairn/sdk';
import { retryDelay } from '@cairn/sdk/internal';
import { errorInfo, stepErrorCode, type StepErrorRecord } from '../../errors.js';
import {
  DeltaPublisher,
  ModelTimeoutError,
  attemptModel,
  classifyModelError,
  errorMessage,
  failureOf,
  jsonSafe,
  transcriptRequest,
  type AttemptOutcome,
  type AttemptRecord,
  type ModelRef,
  type PreparedModelCall,
} from '../../model.js';
import { tokenFields } from '../reports.js';
import { HaltedError, time, type Slot } from '../basics.js';
import type { Run } from '../run.js';
import { FIRST_MODEL_STATE, modelState, type ModelCallState } from './model-state.js';

/** One durable model call at its slot (a new one on the caller's line unless `given`). */
export function durableModel(
  run: Run,
  name: string,
  key: string | number | undefined,
  call: PreparedModelCall,
  given?: Slot,
): Promise<ModelResult> {
  const slot = given ?? run.cursor.slot('model', name, key);
  return run.durable(() => model(run, slot.position, name, slot.keyDigest, call));
}

export async function model(
  run: Run,
  position: number,
  name: string,
  keyDigest: string | undefined,
  call: PreparedModelCall,
): Promise<ModelResult> {
  let state = FIRST_MODEL_STATE;
  const replay = run.cursor.replay(
    { position },
    { kind: 'model', name, keyDigest },
    ['completed', 'failed', 'retrying'],
    `model call "${name}"`,
  );
  switch (replay.status) {
    case 'new':
      break;
    case 'completed':
      run.replayed.model++;
      return replay.entry.value as ModelResult;
    case 'failed': {
      run.replayed.model++;
      const record = (replay.entry.error ?? { name: 'Error', message: 'unknown error' }) as StepErrorRecord & { failures?: ModelFailure[] };
      throw new ModelFailedError({ callName: name, attempts: replay.entry.attempt, failures: record.failures ?? [] });
    }
    case 'retrying':
      run.throwIfCancelled();
      state = modelState(replay.entry.value, replay.entry.attempt);
      await run.suspension.wait({ reason: 'retry', dueAt: replay.entry.dueAt });
      break;
  }
  const publisher = call.stream
    ? new DeltaPublisher((events) => run.deps.journal.publishStream(events), position, name, run.log)
    : undefined;
  try {
    for (;;) {
      run.throwIfCancelled();
      const current = state;
      const result = await run.tracked(() => modelAttempt(run, position, name, keyDigest, call, current, publisher));
      if (result.done) return result.value;
      state = result.state;
      await run.suspension.wait({ reason: 'retry', dueAt: result.dueAt });
    }
  } finally {
    if (publisher) await publisher.close();
  }
}

/**
 * One attempt of a model call on the model `state` points at, then one journal commit: the
 * result with the call's transcript, a `retrying` entry carrying the next state, or the final
 * failure (also with the transcript) once no model is left.
 */
async function modelAttempt(
  run: Run,
  position: number,
  name: string,
  keyDigest: string | undefined,
  call: PreparedModelCall,
  state: ModelCallState,
  publisher: DeltaPublisher | undefined,
): Promise<{ done: true; value: ModelResult } | { done: false; state: ModelCallState; dueAt: number }> {
  const ref = call.models[state.modelIndex];
  if (!ref) return modelFailed(run, position, name, keyDigest, call, state, run.deps.clock.now(), run.deps.clock.now());
  const attempt = state.attempt + 1;
  const startedAt = run.deps.clock.now();
  const base = {
    position,
    kind: StepKind.MODEL,
    name,
    keyDigest: keyDigest ?? '',
    attempt,
    startedAt: time(startedAt),
    provider: ref.provider,
    model: ref.modelId,
  };
  run.reports.report(run.epoch, { ...base, status: StepStatus.RUNNING });
  let outcome = await invokeModel(run, call, ref, position, name, attempt, publisher);
  let endedAt = run.deps.clock.now();
  let forceTerminal = false;
  if (outcome.ok) {
    const value: ModelResult = {
      ...outcome.response,
      usage: outcome.usage,
      provider: ref.provider,
      model: ref.modelId,
      attempts: attempt,
    };
    const record: AttemptRecord = {
      attempt,
      provider: ref.provider,
      model: ref.modelId,
      startedAt,
      endedAt,
      status: 'completed',
      usage: outcome.usage,
    };
    const attempts = [...state.attempts, record];
    try {
      const transcript = {
        name,
        position,
        status: 'completed',
        request: await transcriptRequest(call),
        response: jsonSafe(outcome.response),
        usage: outcome.usage,
        provider: ref.provider,
        model: ref.modelId,
        attempts,
      };
      const { sizes } = await run.writer.append([
        { position, kind: 'model', name, keyDigest, status: 'completed', attempt, value, transcript, startedAt, endedAt },
      ]);
      run.reports.report(run.epoch, {
        ...base,
        status: StepStatus.COMPLETED,
        endedAt: time(endedAt),
        outputSize: BigInt(sizes.get(position) ?? 0),
        ...tokenFields(outcome.usage),
      });
      publisher?.done(attempt);
      return { done: true, value };
    } catch (err) {
      // A result that cannot be journaled (a schema that transforms into non-JSON values) fails
      // the same way on every model.
      if (!(err instanceof CairnError && err.code === ErrorCodes.NOT_SERIALIZABLE)) throw err;
      outcome = { ok: false, error: err, usage: outcome.usage, text: outcome.response.text };
      forceTerminal = true;
      endedAt = run.deps.clock.now();
    }
  }
  const error = outcome.error;
  if (error instanceof CancelledError || error.name === 'CancelledError' || run.cancelRequested) throw new CancelledError();
  if (run.stopSignal.aborted) throw new HaltedError();
  const classified = forceTerminal ? { ...classifyModelError(error), retryable: false } : classifyModelError(error);
  const modelAttempt = state.modelAttempt + 1;
  const record: AttemptRecord = {
    attempt,
    provider: ref.provider,
    model: ref.modelId,
    startedAt,
    endedAt,
    status: 'failed',
    usage: outcome.usage,
    error: { name: error.name, message: errorMessage(error), statusCode: classified.statusCode, retryable: classified.retryable },
    ...(outcome.text === undefined || outcome.text === '' ? {} : { text: outcome.text }),
  };
  const giveUp = forceTerminal || !classified.retryable || modelAttempt >= call.policy.maximumAttempts;
  const failures = giveUp ? [...state.failures, failureOf(ref, modelAttempt, error, classified)] : state.failures;
  const hasNext = !forceTerminal && giveUp && state.modelIndex + 1 < call.models.length;
  run.log.warn(
    { model: name, position, attempt, provider: ref.provider, modelId: ref.modelId, status: classified.statusCode, err: error },
    giveUp ? (hasNext ? 'model failed; falling back to the next model' : 'model call failed') : 'model call attempt failed; retrying',
  );
  if (giveUp && !hasNext) {
    return modelFailed(
      run,
      position,
      name,
      keyDigest,
      call,
      { ...state, attempt, failures, attempts: [...state.attempts, record] },
      startedAt,
      endedAt,
      {
        base,
        usage: outcome.usage,
      },
    );
  }
  const delay = giveUp ? 0 : (classified.retryAfterMs ?? retryDelay(call.policy, modelAttempt));
  const dueAt = endedAt + delay;
  const next: ModelCallState = giveUp
    ? {
        modelIndex: state.modelIndex + 1,
        modelAttempt: 0,
        attempt,
        failures,
        attempts: [...state.attempts, { ...record, nextAttemptAt: dueAt }],
      }
    : {
        modelIndex: state.modelIndex,
        modelAttempt,
        attempt,
        failures,
        attempts: [...state.attempts, { ...record, nextAttemptAt: dueAt }],
      };
  const errorRecord: StepErrorRecord = { ...errorInfo(error), message: errorMessage(error), terminal: !classified.retryable };
  const { errorRefs } = await run.writer.append([
    { position, kind: 'model', name, keyDigest, status: 'retrying', attempt, value: next, error: errorRecord, dueAt, startedAt, endedAt },
  ]);
  run.reports.report(run.epoch, {
    ...base,
    status: StepStatus.RETRYING,
    errorCode: stepErrorCode(errorRecord),
    retryable: true,
    errorRef: errorRefs.get(position) ?? '',
    endedAt: time(endedAt),
    dueAt: time(dueAt),
    ...tokenFields(outcome.usage),
  });
  return { done: false, state: next, dueAt };
}

/** Every model failed: journals the failure with the transcript and throws ModelFailedError. */
async function modelFailed(
  run: Run,
  position: number,
  name: string,
  keyDigest: string | undefined,
  call: PreparedModelCall,
  state: ModelCallState,
  startedAt: number,
  endedAt: number,
  last?: { base: Partial<StepInfo>; usage: ModelUsage | undefined },
): Promise<never> {
  const error = new ModelFailedError({ callName: name, attempts: state.attempt, failures: state.failures });
  const record: StepErrorRecord & { failures: readonly ModelFailure[] } = {
    ...errorInfo(error),
    terminal: error.nonRetryable,
    failures: error.failures,
  };
  const transcript = {
    name,
    position,
    status: 'failed',
    request: await transcriptRequest(call),
    error: { name: error.name, message: error.message },
    failures: error.failures,
    attempts: state.attempts,
  };
  const { errorRefs } = await run.writer.append([
    {
      position,
      kind: 'model',
      name,
      keyDigest,
      status: 'failed',
      attempt: Math.max(1, state.attempt),
      value: state,
      error: record,
      transcript,
      startedAt,
      endedAt,
    },
  ]);
  if (last) {
    run.reports.report(run.epoch, {
      ...last.base,
      status: StepStatus.FAILED,
      errorCode: stepErrorCode(record),
      retryable: false,
      errorRef: errorRefs.get(position) ?? '',
      endedAt: time(endedAt),
      ...tokenFields(last.usage),
    });
  }
  throw error;
}

/** Calls the model once, aborting on the call's timeout, cancellation or the end of the execution. */
async function invokeModel(
  run: Run,
  call: PreparedModelCall,
  ref: ModelRef,
  position: number,
  name: string,
  attempt: number,
  publisher: DeltaPublisher | undefined,
): Promise<AttemptOutcome> {
  const attemptController = new AbortController();
  const signal = AbortSignal.any([run.cancelSignal, run.stopSignal, attemptController.signal]);
  const { timeoutMs } = call;
  const timer =
    timeoutMs === undefined
      ? undefined
      : run.deps.clock.setTimer(() => attemptController.abort(new ModelTimeoutError(name, attempt, timeoutMs)), timeoutMs);
  try {
    return await run.deps.aroundAttempt({ runId: run.runId, epoch: run.epoch, position, attempt }, () =>
      attemptModel(call, ref, signal, publisher ? (text) => publisher.delta(attempt, text) : undefined),
    );
  } finally {
    timer?.cancel();
  }
}
