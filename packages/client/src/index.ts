// @cairn/client: start and follow runs through a Cairn gateway, typed from workflow definitions.
export {
  CairnClient,
  RunHandle,
  type CairnClientOptions,
  type ResultOptions,
  type RunDescription,
  type SignalOptions,
  type SignalSent,
  type StartOptions,
} from './client.js';
export {
  CairnClientError,
  ErrorCodes,
  RunCancelledError,
  RunEndedError,
  RunFailedError,
  RunTerminatedError,
  RunTimedOutError,
  type ErrorCodeString,
  type RequestIssue,
} from './errors.js';
export type { RetryOptions } from './transport.js';
export {
  workflowRef,
  type ApprovalAnswer,
  type ErrorView,
  type InputOf,
  type OutputOf,
  type RunStatus,
  type RunStreamEvent,
  type RunView,
  type RunWarning,
  type SignalBodyOf,
  type SignalLike,
  type StepView,
  type WorkflowDefinitionLike,
  type WorkflowLike,
  type WorkflowRef,
} from './types.js';
export type { components as GatewayComponents, paths as GatewayPaths } from './gen/gateway.js';
