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
