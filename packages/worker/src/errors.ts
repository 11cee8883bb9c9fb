import { CairnError, ErrorCodes } from '@cairn/common';
import type { ErrorInfo } from '@cairn/payload-store';
import { ErrorCode } from '@cairn/proto';
import { TerminalError, type ModelFailedError, type StepFailedError } from '@cairn/sdk';

/**
 * A step attempt's error as the journal keeps it (sealed in the data plane). `terminal` records
 * whether the retry policy classed it as non-retryable, so replays and re-reports agree.
 */
export interface StepErrorRecord extends ErrorInfo {
  readonly terminal?: boolean;
}

/** A run's final error as the data plane keeps it, with the closed code the control plane got. */
export interface RunErrorRecord extends ErrorInfo {
  readonly errorCode?: string;
  /** For a run whose input or output did not match its schema: where and what (JSON Pointer paths). */
  readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>;
  /** Compensations that failed for good after the workflow failed (each also a failed step). */
  readonly compensationFailures?: ReadonlyArray<{
    readonly name: string;
    readonly position: number;
    readonly stepPosition: number;
    readonly error: { readonly name: string; readonly message: string };
  }>;
}

/** Anything thrown, as an Error (a thrown string becomes `Error(string)`). */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  const e = new Error(typeof value === 'string' ? value : safeString(value));
  return e;
}

function safeString(value: unknown): string {
  try {
    const text = JSON.stringify(value) as string | undefined;
    return text ?? typeof value;
  } catch {
    return typeof value;
  }
}

/** The journal form of an error: name, message, stack and the Cairn code if any. */
export function errorInfo(error: Error): ErrorInfo {
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    stack: error.stack,
    code: typeof code === 'string' ? code : undefined,
  };
}

/** Rebuilds an error from its journal form; a TerminalError comes back as a TerminalError. */
export function reviveError(info: ErrorInfo): Error {
  let e: Error;
  if (info.name === 'TerminalError') {
    e = new TerminalError(info.message.replace(/^\[CAIRN-\d{4}\] /, ''));
  } else {
    e = new Error(info.message);
    e.name = info.name;
    if (info.code !== undefined) Object.defineProperty(e, 'code', { value: info.code, enumerable: true });
  }
  if (info.stack !== undefined) e.stack = info.stack;
  return e;
}

/** The closed code of a step attempt's failure. */
export function stepErrorCode(record: StepErrorRecord): ErrorCode {
  if (record.terminal) return ErrorCode.STEP_TERMINAL;
  if (record.name === 'StepTimeoutError' || record.name === 'ModelTimeoutError') return ErrorCode.STEP_TIMEOUT;
  return ErrorCode.STEP_FAILED;
}

/**
 * The closed code sent to the control plane for an error that ended a run. Matched by `name` as
 * well as class, so errors from another copy of the SDK in the bundle are still recognised.
 */
export function runErrorCode(error: unknown): ErrorCode {
  if (!(error instanceof Error)) return ErrorCode.APPLICATION;
  switch (error.name) {
    case 'NonDeterminismError':
      return ErrorCode.NON_DETERMINISM;
    case 'StepFailedError': {
      const e = error as Partial<StepFailedError>;
      if (e.nonRetryable) return ErrorCode.STEP_TERMINAL;
      if (e.causeName === 'StepTimeoutError') return ErrorCode.STEP_TIMEOUT;
      return ErrorCode.STEP_FAILED;
    }
    case 'EvalFailedError':
      return ErrorCode.STEP_FAILED;
    case 'ModelFailedError':
      return (error as Partial<ModelFailedError>).nonRetryable ? ErrorCode.STEP_TERMINAL : ErrorCode.STEP_FAILED;
    case 'StepTimeoutError':
      return ErrorCode.STEP_TIMEOUT;
    case 'SignalTimeoutError':
    case 'ApprovalTimeoutError':
      return ErrorCode.SIGNAL_TIMEOUT;
    case 'CancelledError':
      return ErrorCode.CANCELLED;
  }
  if (error instanceof CairnError) {
    switch (error.code) {
      case ErrorCodes.WORKFLOW_NOT_FOUND:
        return ErrorCode.WORKFLOW_NOT_FOUND;
      case ErrorCodes.DECRYPT_FAILED:
      case ErrorCodes.UNKNOWN_KEY:
        return ErrorCode.PAYLOAD_UNAVAILABLE;
      default:
        return ErrorCode.APPLICATION;
    }
  }
  return ErrorCode.APPLICATION;
}

/**
 * Whether a payload-store error means this process's encryption keys cannot open the data — a
 * misconfiguration another worker may not have — rather than a value damaged in the database. A
 * value failing authentication under a key that matched the store's key check is damage; under a
 * key nobody checked, it is as likely a wrong key.
 */
export function isKeyMisconfiguration(error: unknown): error is CairnError {
  if (!(error instanceof CairnError)) return false;
  if (error.code === ErrorCodes.UNKNOWN_KEY || error.code === ErrorCodes.KEY_MISMATCH) return true;
  return error.code === ErrorCodes.DECRYPT_FAILED && error.details['keyVerified'] !== true;
}

/** Reads the closed code back from a stored run error (for re-reporting a finished run). */
export function storedRunErrorCode(record: RunErrorRecord | undefined): ErrorCode {
  const name = record?.errorCode;
  if (name !== undefined && name in ErrorCode) {
    const value = ErrorCode[name as keyof typeof ErrorCode];
    if (typeof value === 'number') return value;
  }
  return ErrorCode.APPLICATION;
}
