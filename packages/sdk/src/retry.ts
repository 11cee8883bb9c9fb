import {
  CairnError,
  ErrorCodes,
  RETRY_DEFAULTS,
  isNonNullObject,
  resolveRetryNumbers,
  retryDelayMs,
  type Duration,
} from '@cairn/common/core';

/**
 * How a step is retried. Attempt `k` failing waits
 * `min(initialInterval × backoffCoefficient^(k-1), maximumInterval)` before attempt `k+1`.
 * A {@link TerminalError}, or an error whose `name` is in `nonRetryableErrorTypes`, is never
 * retried. Short backoffs are waited in memory; long ones suspend the run and free the worker.
 *
 * The same shape, with the same defaults, is a workflow's `retry` (the default of its steps), the
 * registry's registered policy (REST and `cairn workflows register`) and the YAML override file.
 * `nonRetryableErrorTypes` lives in code only: error names never leave the data plane.
 *
 * @example
 * ```ts
 * await ctx.step('call-api', () => api.post(body), {
 *   retry: { initialInterval: '500ms', maximumAttempts: 10, nonRetryableErrorTypes: ['ValidationError'] },
 * });
 * ```
 */
export interface RetryPolicy {
  /** Wait before the second attempt: milliseconds or `'1s'`, from 1 ms to 366 days. Default 1 second. */
  readonly initialInterval?: Duration;
  /** Multiplier of the wait after each failure, from 1 to 100. Default 2. */
  readonly backoffCoefficient?: number;
  /** Longest wait between attempts. Default 100 × `initialInterval`. */
  readonly maximumInterval?: Duration;
  /** Attempts in all, the first included, at most 1000. Default 3; 0 means unlimited. */
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
 * The defaults of a {@link RetryPolicy}: 1 s before the second attempt, doubling, at most 100 ×
 * the initial interval, 3 attempts. The registry and the CLI use the same values.
 *
 * @example
 * ```ts
 * DEFAULT_RETRY_POLICY.maximumAttempts; // 3
 * ```
 */
export const DEFAULT_RETRY_POLICY: Readonly<{
  initialIntervalMs: number;
  backoffCoefficient: number;
  maximumIntervalFactor: number;
  maximumAttempts: number;
}> = RETRY_DEFAULTS;

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
export function resolveRetryPolicy(policy: RetryPolicy = {}, what = 'retry policy'): ResolvedRetryPolicy {
  if (!isNonNullObject(policy)) {
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `Invalid ${what}: give an object such as { maximumAttempts: 5 }.`);
  }
  const numbers = resolveRetryNumbers(policy, what);
  const nonRetryableErrorTypes = [...(policy.nonRetryableErrorTypes ?? [])];
  for (const t of nonRetryableErrorTypes) {
    if (typeof t !== 'string' || t === '') {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `Invalid ${what}: list nonRetryableErrorTypes as non-empty error names.`);
    }
  }
  return Object.freeze({ ...numbers, nonRetryableErrorTypes });
}

/**
 * Lays retry policies over each other field by field: a field set in a later policy wins over the
 * same field in an earlier one; fields no policy sets keep their defaults.
 *
 * @example
 * ```ts
 * mergeRetryPolicies({ initialInterval: '200ms' }, { maximumAttempts: 5 }); // { initialInterval: '200ms', maximumAttempts: 5 }
 * ```
 */
export function mergeRetryPolicies(...policies: ReadonlyArray<RetryPolicy | undefined>): RetryPolicy {
  const merged: Record<string, unknown> = {};
  for (const policy of policies) {
    if (policy === undefined) continue;
    for (const [field, value] of Object.entries(policy)) if (value !== undefined) merged[field] = value;
  }
  return merged;
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
  return retryDelayMs(policy, attempt);
}
