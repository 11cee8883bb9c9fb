// The small, pure part of @cairn/common: error codes, the base error class, identifier checks,
// durations and the retry-policy shape with its defaults. What a workflow author imports (the SDK)
// uses only this entry point, so it pulls in no logger, configuration or server library.
export { CairnError, ErrorCodes, type ErrorCodeString } from './errors.js';
export {
  CRON_MAX_LENGTH,
  CRON_PATTERN,
  DIGEST_PATTERN,
  FLOW_CONTROL_LIMITS,
  TIMEOUT_LIMITS,
  TIME_ZONE_MAX_LENGTH,
  TIME_ZONE_PATTERN,
  isCronShape,
  isTimeZoneName,
  ID_PATTERN,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  VERSION_MAX_LENGTH,
  VERSION_PATTERN,
  assertName,
  assertVersion,
  isId,
  isName,
  isVersion,
  newId,
} from './names.js';
export { SIZE_CLASS_MIN, coarseSize, coarseSizeBig } from './sizes.js';
export { parseDuration, toMilliseconds, type Duration } from './duration.js';
export {
  RETRY_DEFAULTS,
  RETRY_LIMITS,
  checkRetryPolicy,
  resolveRetryNumbers,
  retryDelayMs,
  type RetryNumbers,
  type RetryPolicyFields,
  type RetryPolicyProblem,
} from './retry-policy.js';
export { describeIssues, type SchemaIssue } from './schema-issues.js';
export { MAX_JSON_DEPTH, checkJsonValue, jsonDepth } from './json-limits.js';
export { isNonNullObject } from './values.js';
