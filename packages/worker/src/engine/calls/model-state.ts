// A model call's progress between attempts, as journaled with its `retrying` and final entries.
import type { ModelFailure } from '@cairn/sdk';
import type { AttemptRecord } from '../../model.js';

/**
 * Where a model call stands between attempts: journaled (sealed) with each `retrying` entry, so a
 * run that suspends for a backoff resumes on the right model with its attempt history, and with
 * the final entry, so re-reports know the provider, model and tokens of the last attempt.
 */
export interface ModelCallState {
  /** The model of the next attempt, as an index into the call's list. */
  readonly modelIndex: number;
  /** Attempts already made with that model. */
  readonly modelAttempt: number;
  /** Attempts made over all models. */
  readonly attempt: number;
  /** Models given up, in order. */
  readonly failures: readonly ModelFailure[];
  /** Every attempt so far, for the transcript. */
  readonly attempts: readonly AttemptRecord[];
}

export const FIRST_MODEL_STATE: ModelCallState = { modelIndex: 0, modelAttempt: 0, attempt: 0, failures: [], attempts: [] };

export function modelState(value: unknown, attempt: number): ModelCallState {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Partial<ModelCallState>;
  return {
    modelIndex: typeof v.modelIndex === 'number' ? v.modelIndex : 0,
    modelAttempt: typeof v.modelAttempt === 'number' ? v.modelAttempt : 0,
    attempt: typeof v.attempt === 'number' ? v.attempt : attempt,
    failures: Array.isArray(v.failures) ? v.failures : [],
    attempts: Array.isArray(v.attempts) ? v.attempts : [],
  };
}
