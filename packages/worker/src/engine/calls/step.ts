// `ctx.step`: replay a journaled result, or run the function with retries, a timeout per attempt
// and cancellation, journaling each attempt's outcome in one commit.
import { CairnError, ErrorCodes } from '@cairn/common';
import { StepKind, StepStatus } from '@cairn/proto';
import {
  type CancelledError,
  StepFailedError,
  StepTimeoutError,
  TerminalError,
  type EvalFeedback,
  type StepContext,
  type StepFunction,
  type StepOptions,
} from '@cairn/sdk';
import { retryDelay, type ResolvedRetryPolicy } from '@cairn/sdk/internal';
import type { ClockTimer } from '../../clock.js';
import { errorInfo, reviveError, stepErrorCode, toError, type StepErrorRecord } from '../../errors.js';
import { time, type Slot } from '../basics.js';
import type { Run } from '../run.js';

/** One durable step (one round of an eval gate), registering its compensation when it completes. */
export function durableStep<T>(
  run: Run,
  name: string,
  fn: StepFunction<T>,
  options: StepOptions<T>,
  policy: ResolvedRetryPolicy,
  timeoutMs: number | undefined,
  feedback: EvalFeedback | undefined,
  given?: Slot,
): Promise<T> {
  const compensate = options.compensate;
  const slot = given ?? run.cursor.slot('step', name, options.key);
  return run.durable(async () => {
    if (compensate) run.compensations.started();
    let value: T;
    try {
      value = await step(run, slot, name, fn, policy, timeoutMs, feedback);
    } catch (err) {
      if (compensate) run.compensations.ended();
      throw err;
    }
    if (compensate) {
      run.compensations.ended({
        position: slot.position,
        stepName: name,
        result: value,
        fn: compensate as (result: unknown, step: StepContext) => unknown,
        policy,
        timeoutMs,
      });
    }
    return value;
  });
}

export async function step<T>(
  run: Run,
  slot: Slot,
  name: string,
  fn: StepFunction<T>,
  policy: ResolvedRetryPolicy,
  timeoutMs: number | undefined,
  feedback?: EvalFeedback,
): Promise<T> {
  let attempt = 1;
  const replay = run.cursor.replay(
    slot,
    { kind: 'step', name, keyDigest: slot.keyDigest },
    ['completed', 'failed', 'retrying'],
    `step "${name}"`,
  );
  switch (replay.status) {
    case 'new':
      break;
    case 'completed':
      run.replayed.step++;
      return replay.entry.value as T;
    case 'failed': {
      run.replayed.step++;
      const record = (replay.entry.error ?? { name: 'Error', message: 'unknown error' }) as StepErrorRecord;
      throw new StepFailedError({
        stepName: name,
        attempts: replay.entry.attempt,
        cause: reviveError(record),
        nonRetryable: record.terminal ?? false,
      });
    }
    case 'retrying':
      run.throwIfCancelled();
      attempt = replay.entry.attempt + 1;
      await run.suspension.wait({ reason: 'retry', dueAt: replay.entry.dueAt });
      break;
  }
  for (;;) {
    run.throwIfCancelled();
    const result = await run.tracked(() => stepAttempt(run, slot, name, fn, attempt, policy, timeoutMs, feedback));
    if (result.done) return result.value;
    attempt++;
    await run.suspension.wait({ reason: 'retry', dueAt: result.dueAt });
  }
}

/**
 * The verdict of one round of an eval gate, as a step of its own: `completed` when it passed,
 * `failed` when it did not. The verdict (reasons, scores) is the entry's journaled value and, for
 * a failure, its error: both stay in the data plane; the control plane gets the status. A replay
 * returns the journaled verdict.

/** One attempt: run the function, then journal the outcome in one commit. */
async function stepAttempt<T>(
  run: Run,
  slot: Slot,
  name: string,
  fn: StepFunction<T>,
  attempt: number,
  policy: ResolvedRetryPolicy,
  timeoutMs: number | undefined,
  feedback: EvalFeedback | undefined,
): Promise<{ done: true; value: T } | { done: false; dueAt: number }> {
  const { position, keyDigest } = slot;
  const startedAt = run.deps.clock.now();
  const base = { position, kind: StepKind.STEP, name, keyDigest: keyDigest ?? '', attempt, startedAt: time(startedAt) };
  run.reports.report(run.epoch, { ...base, status: StepStatus.RUNNING });
  let outcome = await invokeStep(run, fn, name, slot, attempt, timeoutMs, feedback);
  let endedAt = run.deps.clock.now();
  let forceTerminal = false;
  if (outcome.ok) {
    try {
      const { sizes } = await run.writer.append([
        { position, kind: 'step', name, keyDigest, status: 'completed', attempt, value: outcome.value, startedAt, endedAt },
      ]);
      run.reports.report(run.epoch, {
        ...base,
        status: StepStatus.COMPLETED,
        endedAt: time(endedAt),
        outputSize: BigInt(sizes.get(position) ?? 0),
      });
      return { done: true, value: outcome.value };
    } catch (err) {
      // A result that cannot be journaled fails the same way every time: not worth a retry.
      if (!(err instanceof CairnError && err.code === ErrorCodes.NOT_SERIALIZABLE)) throw err;
      outcome = { ok: false, error: err };
      forceTerminal = true;
      endedAt = run.deps.clock.now();
    }
  }
  const error = toError(outcome.error);
  const terminal =
    forceTerminal || error instanceof TerminalError || error.name === 'TerminalError' || policy.nonRetryableErrorTypes.includes(error.name);
  const exhausted = policy.maximumAttempts !== 0 && attempt >= policy.maximumAttempts;
  const record: StepErrorRecord = { ...errorInfo(error), terminal };
  const errorCode = stepErrorCode(record);
  if (!terminal && !exhausted) {
    const dueAt = endedAt + retryDelay(policy, attempt);
    const { errorRefs } = await run.writer.append([
      { position, kind: 'step', name, keyDigest, status: 'retrying', attempt, error: record, dueAt, startedAt, endedAt },
    ]);
    run.reports.report(run.epoch, {
      ...base,
      status: StepStatus.RETRYING,
      errorCode,
      retryable: true,
      errorRef: errorRefs.get(position) ?? '',
      endedAt: time(endedAt),
      dueAt: time(dueAt),
    });
    run.log.warn({ step: name, position, attempt, err: error, dueAt }, 'step attempt failed; retrying');
    return { done: false, dueAt };
  }
  const { errorRefs } = await run.writer.append([
    { position, kind: 'step', name, keyDigest, status: 'failed', attempt, error: record, startedAt, endedAt },
  ]);
  run.reports.report(run.epoch, {
    ...base,
    status: StepStatus.FAILED,
    errorCode,
    retryable: false,
    errorRef: errorRefs.get(position) ?? '',
    endedAt: time(endedAt),
  });
  run.log.warn({ step: name, position, attempt, err: error, terminal }, 'step failed');
  throw new StepFailedError({ stepName: name, attempts: attempt, cause: reviveError(record), nonRetryable: terminal });
}

/** Calls the step function, racing its timeout and cancellation. */
function invokeStep<T>(
  run: Run,
  fn: StepFunction<T>,
  name: string,
  slot: Slot,
  attempt: number,
  timeoutMs: number | undefined,
  feedback: EvalFeedback | undefined,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  const attemptController = new AbortController();
  // A compensation runs to its end when the run is cancelled: that is when it is needed.
  const internal = run.internal();
  const signal = AbortSignal.any(
    internal ? [run.stopSignal, attemptController.signal] : [run.cancelSignal, run.stopSignal, attemptController.signal],
  );
  const stepContext: StepContext = {
    idempotencyKey: slot.idempotencyKey,
    attempt,
    signal,
    ...(feedback === undefined ? {} : { feedback }),
  };
  return new Promise((resolve, reject) => {
    let timer: ClockTimer | undefined;
    const onCancel = (error: CancelledError): void => {
      cleanup();
      reject(error);
    };
    const cleanup = (): void => {
      timer?.cancel();
      run.cancelListeners.delete(onCancel);
    };
    if (!internal) run.cancelListeners.add(onCancel);
    if (timeoutMs !== undefined) {
      timer = run.deps.clock.setTimer(() => {
        cleanup();
        const error = new StepTimeoutError({ stepName: name, attempt, timeoutMs });
        attemptController.abort(error);
        resolve({ ok: false, error });
      }, timeoutMs);
    }
    Promise.resolve()
      .then(() => run.deps.aroundAttempt({ runId: run.runId, epoch: run.epoch, position: slot.position, attempt }, () => fn(stepContext)))
      .then(
        (value) => {
          cleanup();
          resolve({ ok: true, value });
        },
        (error: unknown) => {
          cleanup();
          resolve({ ok: false, error });
        },
      );
  });
}
