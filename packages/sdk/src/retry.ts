import { CairnError, ErrorCodes } from '@cairn/common/core';
import { toMilliseconds, type Duration } from './duration.js';

/**
 * How a step is retried. Attempt `k` failing waits
 * `min(initialInterval × backoffCoefficient^(k-1), maximumInterval)` before attempt `k+1`.
 * A {@link TerminalError}, or an error whose `name` is in `nonRetryableErrorTypes`, is never
 * retried. Short backoffs are waited in memory; long ones suspend the run and free the worker.
 *
 * @example
 * ```ts
 * await ctx.step('call-api', () => api.post(body), {
 *   retry: { initialInterval: '500ms', maximumAttempts: 10, nonRetryableErrorTypes: ['ValidationError'] },
 * });
 * ```
 */
export interface RetryPolicy {
  /** Wait before the second attempt: milliseconds or `'1s'`. Default 1 second. */
  readonly initialInterval?: Duration;
  /** Multiplier of the wait after each failure. Default 2. */
  readonly backoffCoefficient?: number;
  /** Longest wait between attempts. Default 100 × `initialInterval`. */
  readonly maximumInterval?: Duration;
  /** Attempts in all, the first included. Default 3; 0 means unlimited. */
  readonly maximumAttempts?: number;
  /** Error `name`s that are never retried (e.g. `'ValidationError'`). */
  readonly nonRetryableErrorTypes?: readonly string[];
}

/**
 * A {@link RetryPolicy} with every default filled in and durations in milliseconds.
 *
 * @example
 * ```ts
 * const p: ResolvedRetryPolicy = resolveRetryPolicy({ maximumAttempts: 5 });
 * p.initialIntervalMs; // 1000
 * ```
 */
export interface ResolvedRetryPolicy {
  readonly initialIntervalMs: number;
  readonly backoffCoefficient: number;
  readonly maximumIntervalMs: number;
  /** 0 means unlimited. */
  readonly maximumAttempts: number;
  readonly nonRetryableErrorTypes: readonly string[];
}

/**
 * Fills in the defaults of a retry policy and checks it, throwing a clear `CAIRN-1101` error for
 * a bad value. The worker runtime uses it; it is exported so the effective policy is easy to see.
 *
 * @example
 * ```ts
 * resolveRetryPolicy({ initialInterval: '200ms' });
 * // { initialIntervalMs: 200, backoffCoefficient: 2, maximumIntervalMs: 20000, maximumAttempts: 3, nonRetryableErrorTypes: [] }
 * ```
 */
export function resolveRetryPolicy(policy: RetryPolicy = {}): ResolvedRetryPolicy {
  const initialIntervalMs = toMilliseconds(policy.initialInterval ?? 1000, 'retry.initialInterval');
  const backoffCoefficient = policy.backoffCoefficient ?? 2;
  if (typeof backoffCoefficient !== 'number' || !Number.isFinite(backoffCoefficient) || backoffCoefficient < 1) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `Invalid retry.backoffCoefficient ${String(backoffCoefficient)}: use a number of at least 1.`,
    );
  }
  const maximumIntervalMs =
    policy.maximumInterval === undefined ? initialIntervalMs * 100 : toMilliseconds(policy.maximumInterval, 'retry.maximumInterval');
  if (maximumIntervalMs < initialIntervalMs) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `Invalid retry policy: maximumInterval (${maximumIntervalMs} ms) is shorter than initialInterval (${initialIntervalMs} ms).`,
    );
  }
  const maximumAttempts = policy.maximumAttempts ?? 3;
  if (!Number.isInteger(maximumAttempts) || maximumAttempts < 0) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `Invalid retry.maximumAttempts ${String(maximumAttempts)}: use a whole number, at least 1 (0 means unlimited).`,
    );
  }
  const nonRetryableErrorTypes = [...(policy.nonRetryableErrorTypes ?? [])];
  for (const t of nonRetryableErrorTypes) {
    if (typeof t !== 'string' || t === '') {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'Invalid retry.nonRetryableErrorTypes: list error names as non-empty strings.');
    }
  }
  return Object.freeze({ initialIntervalMs, backoffCoefficient, maximumIntervalMs, maximumAttempts, nonRetryableErrorTypes });
}

/**
 * The wait after failed attempt `attempt` (from 1) under a resolved policy, in milliseconds.
 *
 * @example
 * ```ts
 * retryDelay(resolveRetryPolicy({ initialInterval: 100 }), 3); // 400
 * ```
 */
export function retryDelay(policy: ResolvedRetryPolicy, attempt: number): number {
  const raw = policy.initialIntervalMs * Math.pow(policy.backoffCoefficient, Math.max(0, attempt - 1));
  return Math.round(Math.min(raw, policy.maximumIntervalMs));
}
