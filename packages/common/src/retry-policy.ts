// The one retry-policy shape and its defaults. The SDK resolves a workflow's or a step's policy
// with it, the control plane's registry validates and stores registered policies with it, and the
// CLI fills in what a registration will show, so a policy means the same thing in code, in the
// registry, on the wire and in the YAML override file.
import { CairnError, ErrorCodes } from './errors.js';
import { parseDuration, type Duration } from './duration.js';

const DAY_MS = 86_400_000;

/** What a policy is when it leaves a field out. */
export const RETRY_DEFAULTS = Object.freeze({
  /** Wait before the second attempt. */
  initialIntervalMs: 1000,
  /** Multiplier of the wait after each failure. */
  backoffCoefficient: 2,
  /** The longest wait is this many times the initial interval. */
  maximumIntervalFactor: 100,
  /** Attempts in all, the first included. */
  maximumAttempts: 3,
});

/** The bounds a policy must keep, in code and in the registry alike. */
export const RETRY_LIMITS = Object.freeze({
  /** At most this many attempts; 0 means unlimited. */
  maximumAttempts: 1000,
  /** Waits are at least 1 ms and at most this long. */
  maximumIntervalMs: 366 * DAY_MS,
  /** The multiplier is at least 1 and at most this. */
  backoffCoefficient: 100,
});

/** A retry policy as written: durations as milliseconds or strings such as `'500ms'`. */
export interface RetryPolicyFields {
  readonly initialInterval?: Duration | undefined;
  readonly backoffCoefficient?: number | undefined;
  readonly maximumInterval?: Duration | undefined;
  readonly maximumAttempts?: number | undefined;
}

/** A policy with every default filled in and durations in milliseconds. */
export interface RetryNumbers {
  readonly initialIntervalMs: number;
  readonly backoffCoefficient: number;
  readonly maximumIntervalMs: number;
  /** 0 means unlimited. */
  readonly maximumAttempts: number;
}

/** One thing wrong with a policy: the field (e.g. `maximumAttempts`) and what to do. */
export interface RetryPolicyProblem {
  readonly field: keyof RetryPolicyFields;
  readonly message: string;
}

/**
 * Checks a policy and fills in the defaults. Returns the resolved numbers, or every problem found
 * (each naming its field), so an HTTP edge can report them all and the SDK can throw the first.
 */
export function checkRetryPolicy(policy: RetryPolicyFields): { numbers: RetryNumbers; problems: [] } | { problems: RetryPolicyProblem[] } {
  const problems: RetryPolicyProblem[] = [];
  const interval = (field: 'initialInterval' | 'maximumInterval', value: unknown): number | undefined => {
    const parsed = parseDuration(value);
    if (parsed === undefined || parsed < 1 || parsed > RETRY_LIMITS.maximumIntervalMs) {
      problems.push({
        field,
        message:
          `${field} ${JSON.stringify(value)} is not a wait from 1 ms to 366 days: give milliseconds as a number ` +
          `or a string such as '500ms', '30s' or '5m'`,
      });
      return undefined;
    }
    return parsed;
  };
  const initialIntervalMs =
    policy.initialInterval === undefined ? RETRY_DEFAULTS.initialIntervalMs : interval('initialInterval', policy.initialInterval);
  const backoffCoefficient = policy.backoffCoefficient ?? RETRY_DEFAULTS.backoffCoefficient;
  if (
    typeof backoffCoefficient !== 'number' ||
    !Number.isFinite(backoffCoefficient) ||
    backoffCoefficient < 1 ||
    backoffCoefficient > RETRY_LIMITS.backoffCoefficient
  ) {
    problems.push({
      field: 'backoffCoefficient',
      message: `backoffCoefficient ${String(backoffCoefficient)} is not a number from 1 to ${RETRY_LIMITS.backoffCoefficient}`,
    });
  }
  const maximumIntervalMs =
    policy.maximumInterval === undefined
      ? initialIntervalMs === undefined
        ? undefined
        : Math.min(initialIntervalMs * RETRY_DEFAULTS.maximumIntervalFactor, RETRY_LIMITS.maximumIntervalMs)
      : interval('maximumInterval', policy.maximumInterval);
  if (initialIntervalMs !== undefined && maximumIntervalMs !== undefined && maximumIntervalMs < initialIntervalMs) {
    problems.push({
      field: 'maximumInterval',
      message: `maximumInterval (${maximumIntervalMs} ms) is shorter than initialInterval (${initialIntervalMs} ms)`,
    });
  }
  const maximumAttempts = policy.maximumAttempts ?? RETRY_DEFAULTS.maximumAttempts;
  if (
    typeof maximumAttempts !== 'number' ||
    !Number.isInteger(maximumAttempts) ||
    maximumAttempts < 0 ||
    maximumAttempts > RETRY_LIMITS.maximumAttempts
  ) {
    problems.push({
      field: 'maximumAttempts',
      message: `maximumAttempts ${String(maximumAttempts)} is not a whole number from 1 to ${RETRY_LIMITS.maximumAttempts} (0 means unlimited)`,
    });
  }
  if (problems.length > 0 || initialIntervalMs === undefined || maximumIntervalMs === undefined) return { problems };
  return { numbers: Object.freeze({ initialIntervalMs, backoffCoefficient, maximumIntervalMs, maximumAttempts }), problems: [] };
}

/**
 * {@link checkRetryPolicy} that throws a `CAIRN-1101` error for the first problem. `what` names
 * the policy in the message, e.g. `retry of step "charge"`.
 */
export function resolveRetryNumbers(policy: RetryPolicyFields = {}, what = 'retry'): RetryNumbers {
  const checked = checkRetryPolicy(policy);
  if ('numbers' in checked) return checked.numbers;
  const first = checked.problems[0]!;
  throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `Invalid ${what}: ${first.message}.`, { details: { field: first.field } });
}

/** The wait after failed attempt `attempt` (from 1), in milliseconds. */
export function retryDelayMs(policy: RetryNumbers, attempt: number): number {
  const raw = policy.initialIntervalMs * Math.pow(policy.backoffCoefficient, Math.max(0, attempt - 1));
  return Math.round(Math.min(raw, policy.maximumIntervalMs));
}
