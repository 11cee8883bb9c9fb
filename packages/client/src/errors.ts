import { ErrorCodes, type ErrorCodeString } from '@cairn/common/core';
import type { ErrorView, RunStatus, RunView } from './types.js';

export { ErrorCodes, type ErrorCodeString };

/** One problem of a request the gateway refused with 400, with where it is. */
export interface RequestIssue {
  /** The part of the request: `body`, `query`, `path` or `header`. */
  readonly in: 'body' | 'query' | 'path' | 'header';
  /** Where in it, dotted (`input.items.0.id`); empty for the whole part. */
  readonly path: string;
  readonly message: string;
}

/**
 * Every error of `@cairn/client`: a stable Cairn error code (`CAIRN-NNNN`, the same codes the
 * servers answer with), the HTTP status when a server answered, and the request ID to find the
 * request in the gateway's logs.
 *
 * @example
 * ```ts
 * try {
 *   await client.start(orderRefund, input);
 * } catch (err) {
 *   if (err instanceof CairnClientError && err.code === ErrorCodes.WORKFLOW_NOT_FOUND) console.error('deploy a worker first');
 *   else throw err;
 * }
 * ```
 */
export class CairnClientError extends Error {
  /** The Cairn error code, e.g. `CAIRN-1105` (not found) or `CAIRN-1110` (unavailable: retry). */
  readonly code: ErrorCodeString;
  /** The HTTP status of the answer; undefined when no server answered. */
  readonly status: number | undefined;
  /** The gateway's `x-request-id` of the request, when it answered. */
  readonly requestId: string | undefined;
  /** For a 400: every problem the gateway found in the request. */
  readonly issues: readonly RequestIssue[] | undefined;

  constructor(
    code: ErrorCodeString,
    message: string,
    options: { status?: number; requestId?: string; issues?: readonly RequestIssue[]; cause?: unknown } = {},
  ) {
    super(`[${code}] ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CairnClientError';
    this.code = code;
    this.status = options.status;
    this.requestId = options.requestId;
    this.issues = options.issues;
  }
}

/**
 * A run ended without completing: `result()` rejects with this (or rather one of its subclasses,
 * one per final status). `run` is the run as it ended; `error` the error the data plane kept for
 * it, when there is one.
 */
export class RunEndedError extends CairnClientError {
  readonly runId: string;
  /** How the run ended: `failed`, `cancelled`, `terminated` or `timed_out`. */
  readonly runStatus: Exclude<RunStatus, 'queued' | 'running' | 'suspended' | 'completed'>;
  /** The error as the data plane stored it (name, message, stack, code), when there is one. */
  readonly error: ErrorView | undefined;
  /** The run's metadata as the gateway showed it when it ended, when it was read. */
  readonly run: RunView | undefined;

  constructor(
    code: ErrorCodeString,
    message: string,
    details: { runId: string; runStatus: RunEndedError['runStatus']; error?: ErrorView | undefined; run?: RunView | undefined },
  ) {
    super(code, message);
    this.name = 'RunEndedError';
    this.runId = details.runId;
    this.runStatus = details.runStatus;
    this.error = details.error;
    this.run = details.run;
  }
}

/**
 * The run failed. `code` is the Cairn code of the error that failed it when it has one (e.g.
 * `CAIRN-2004` for a `TerminalError`), else `CAIRN-2007`; the message is the error's message.
 */
export class RunFailedError extends RunEndedError {
  constructor(runId: string, error: ErrorView | undefined, run?: RunView) {
    super(
      knownCode(error?.code) ?? ErrorCodes.WORKFLOW_FAILED,
      error ? `run ${runId} failed: ${error.name}: ${error.message}` : `run ${runId} failed`,
      { runId, runStatus: 'failed', error, run },
    );
    this.name = 'RunFailedError';
  }
}

/** The run was cancelled (`CAIRN-2006`); its compensations ran. */
export class RunCancelledError extends RunEndedError {
  constructor(runId: string, error?: ErrorView, run?: RunView) {
    super(ErrorCodes.CANCELLED, `run ${runId} was cancelled`, { runId, runStatus: 'cancelled', error, run });
    this.name = 'RunCancelledError';
  }
}

/** The run was terminated by an operator (`CAIRN-1120`), without compensations. */
export class RunTerminatedError extends RunEndedError {
  constructor(runId: string, error?: ErrorView, run?: RunView) {
    super(ErrorCodes.RUN_TERMINATED, `run ${runId} was terminated`, { runId, runStatus: 'terminated', error, run });
    this.name = 'RunTerminatedError';
  }
}

/** The run passed its run timeout and was ended (`CAIRN-1121`). */
export class RunTimedOutError extends RunEndedError {
  constructor(runId: string, error?: ErrorView, run?: RunView) {
    super(ErrorCodes.RUN_TIMED_OUT, `run ${runId} passed its run timeout and was ended`, { runId, runStatus: 'timed_out', error, run });
    this.name = 'RunTimedOutError';
  }
}

const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));

/** The code when it is one of the project's error codes. */
export function knownCode(code: string | null | undefined): ErrorCodeString | undefined {
  return typeof code === 'string' && CODES.has(code) ? (code as ErrorCodeString) : undefined;
}
