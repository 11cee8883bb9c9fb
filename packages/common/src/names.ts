import { CairnError, ErrorCodes } from './errors.js';

/** Names written in code: workflow, step, signal and task-queue names. */
export const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]*$/;
export const NAME_MAX_LENGTH = 100;
/** Workflow versions. */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;
export const VERSION_MAX_LENGTH = 64;
/** Opaque identifiers: lowercase UUIDs. */
export const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** HMAC-SHA256 digests in hex. */
export const DIGEST_PATTERN = /^[0-9a-f]{64}$/;

/**
 * A new opaque identifier. Web Crypto (on `globalThis` in Node ≥ 19 and in browsers) rather than
 * `node:crypto`, so that `@cairn/common/core` loads in a browser too (`@cairn/client` uses it).
 */
export function newId(): string {
  return globalThis.crypto.randomUUID();
}

export function isId(value: string): boolean {
  return ID_PATTERN.test(value);
}

export function isName(value: string): boolean {
  return value.length <= NAME_MAX_LENGTH && NAME_PATTERN.test(value);
}

export function isVersion(value: string): boolean {
  return value.length <= VERSION_MAX_LENGTH && VERSION_PATTERN.test(value);
}

/**
 * Throws a clear error unless `value` is a valid name. `what` says which name it is, e.g.
 * "step name".
 */
export function assertName(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || !isName(value)) {
    throw new CairnError(
      ErrorCodes.INVALID_NAME,
      `Invalid ${what} ${JSON.stringify(value)}: it must start with a letter, contain only letters, digits, '_', '.' and '-', ` +
        `and be at most ${NAME_MAX_LENGTH} characters. Names cross to the control plane in clear, so put dynamic parts ` +
        `(IDs, emails) in the separate key option, which is HMAC'd.`,
    );
  }
}

/** Throws a clear error unless `value` is a valid version. */
export function assertVersion(value: unknown, what = 'workflow version'): asserts value is string {
  if (typeof value !== 'string' || !isVersion(value)) {
    throw new CairnError(
      ErrorCodes.INVALID_NAME,
      `Invalid ${what} ${JSON.stringify(value)}: it must start with a letter or digit, contain only letters, digits, ` +
        `'_', '.', '+' and '-', and be at most ${VERSION_MAX_LENGTH} characters.`,
    );
  }
}

const CRON_FIELD = '(?:[0-9*?LW#/,-]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT)+';
/**
 * The shape of a cron expression declared in code: 5 or 6 space-separated fields of digits,
 * `* ? L W # / , -` and upper-case month and day names, or a nickname such as `@daily`. It crosses
 * to the control plane (a workflow's declared schedules), so it is bounded like a name: no free
 * text fits. Whether the expression is valid is checked by the control plane's cron parser.
 */
export const CRON_PATTERN = new RegExp(`^(?:@(?:yearly|annually|monthly|weekly|daily|hourly)|${CRON_FIELD}(?: ${CRON_FIELD}){4,5})$`);
export const CRON_MAX_LENGTH = 100;
/** An IANA time zone name such as `Europe/Paris`, `America/Argentina/Buenos_Aires` or `UTC`. */
export const TIME_ZONE_PATTERN = /^[A-Za-z][A-Za-z0-9_+/-]*$/;
export const TIME_ZONE_MAX_LENGTH = 64;

export function isCronShape(value: string): boolean {
  return value.length <= CRON_MAX_LENGTH && CRON_PATTERN.test(value);
}

export function isTimeZoneName(value: string): boolean {
  return value.length <= TIME_ZONE_MAX_LENGTH && TIME_ZONE_PATTERN.test(value);
}

/** The bounds of a workflow's flow control, in code and in the registry alike. */
export const FLOW_CONTROL_LIMITS = Object.freeze({
  /** Runs of the workflow holding a lease at once: 1 to this. */
  concurrency: 100_000,
  /** First dispatches per period: 1 to this. */
  rateLimit: 1_000_000,
  /** The rate limit's period, in milliseconds. */
  minPeriodMs: 1000,
  maxPeriodMs: 86_400_000,
});

/** The bounds of a workflow's timeouts, in milliseconds, in code and in the registry alike. */
export const TIMEOUT_LIMITS = Object.freeze({
  minRunMs: 1000,
  minStepMs: 100,
  maxMs: 366 * 86_400_000,
});
