// The Cairn workflow SDK: what a workflow author imports. It pulls in no server code; the worker
// runtime (@cairn/worker) implements the context declared here.
export {
  MAX_DECLARED_SCHEDULES,
  defineWorkflow,
  type ResolvedFlowControl,
  type WorkflowFlowControl,
  type WorkflowSchedule,
  type WorkflowTimeouts,
  type ParallelOptions,
  type ChildOptions,
  type SignalWaitOptions,
  type StepContext,
  type StepFunction,
  type StepOptions,
  type WorkflowContext,
  type WorkflowDefinition,
  type WorkflowInput,
  type WorkflowOptions,
  type WorkflowOutput,
} from './workflow.js';
export {
  ModelFailedError,
  type ModelCallOptions,
  type ModelFailure,
  type ModelObjectResult,
  type ModelResult,
  type ModelRetryPolicy,
  type ModelToolCall,
  type ModelUsage,
  type SchemaOutput,
} from './model.js';
export {
  EvalFailedError,
  type EvalCheck,
  type EvalCheckVerdict,
  type EvalFeedback,
  type EvalJudge,
  type EvalOptions,
  type EvalPredicate,
  type EvalVerdict,
  type StandardSchemaLike,
  type StandardSchemaResult,
} from './eval.js';
export { AgentMaxTurnsError, type AgentOptions, type AgentResult, type AgentToolCall } from './agent.js';
export { ApprovalTimeoutError, type ApprovalOptions, type ApprovalResult } from './approval.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
export { defineSignal, type SignalDefinition } from './signal.js';
export { type DeclaredSchema, type JsonSchema, type StandardJSONSchemaV1, type StandardSchemaV1 } from './schema.js';
export { type Duration, type SchemaIssue } from '@cairn/common/core';
export {
  CancelledError,
  NonDeterminismError,
  SchemaValidationError,
  SignalTimeoutError,
  SignalValidationError,
  StepFailedError,
  StepTimeoutError,
  TerminalError,
  type DurableCall,
  type ErrorSummary,
} from './errors.js';
/**
 * The SDK's version, announced by workers in their Hello.
 *
 * @example
 * ```ts
 * console.log(`running @cairn/sdk ${SDK_VERSION}`);
 * ```
 */
export { ChildWorkflowFailedError } from './errors.js';
export { CairnError, ErrorCodes, type ErrorCodeString } from '@cairn/common/core';

export const SDK_VERSION = '0.1.0';
