// What the worker runtime and the cairn CLI share with the SDK but workflow code should not use:
// policy resolution, duration parsing and the pure core of @cairn/common (error codes, the base
// error class, name checks). Published as `@cairn/sdk/internal`; no compatibility promise.
//
// The published @cairn/worker and @cairn/cli import these from here instead of carrying their own
// copy, so that an error thrown by workflow code and one raised by the runtime share one
// `CairnError` class (instanceof holds across the packages).
export * from '@cairn/common/core';
export { mergeRetryPolicies, resolveRetryPolicy, retryDelay, type ResolvedRetryPolicy } from './retry.js';
export { declareSchema, issuePointer, validateWithSchema } from './schema.js';
export { isSignalDefinition } from './signal.js';
export { resolveModelRetryPolicy } from './model.js';
export { toMilliseconds } from '@cairn/common/core';
export { toApprovalResult } from './approval.js';
