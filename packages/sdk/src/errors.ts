import { CairnError, ErrorCodes, describeIssues, type SchemaIssue } from '@cairn/common/core';

/** Strips the `[CAIRN-NNNN] ` prefix a Cairn error message starts with. */
function withoutCode(message: string): string {
  return message.replace(/^\[CAIRN-\d{4}\] /, '');
}

/**
 * Throw a `TerminalError` from a step to say that retrying cannot help (a declined card, an
 * invalid order): the step fails at once, whatever its retry policy, and the workflow sees a
 * {@link StepFailedError} with `nonRetryable: true` and this error as its `cause`.
 *
 * @example
 * ```ts
 * await ctx.step('charge-card', async () => {
 *   const res = await payments.charge(order);
 *   if (res.declined) throw new TerminalError(`card declined: ${res.reason}`);
 *   return res.id;
 * });
 * ```
 */
export class TerminalError extends CairnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.TERMINAL, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TerminalError';
  }
}

/**
 * The name, message and stack of an error, as the journal keeps them.
 *
 * @example
 * ```ts
 * const summary: ErrorSummary = { name: 'TypeError', message: 'fetch failed' };
 * new StepFailedError({ stepName: 'fetch', attempts: 3, cause: summary });
 * ```
 */
export interface ErrorSummary {
  readonly name: string;
  readonly message: string;
  readonly stack?: string | undefined;
  readonly code?: string | undefined;
}

/**
 * What `ctx.step` throws when a step has failed for good: its retry policy is exhausted, or the
 * error was non-retryable (a {@link TerminalError} or a name listed in `nonRetryableErrorTypes`).
 * The failed attempts are journaled, so a replay throws the same error without running the step
 * again. `cause` is the last attempt's error.
 *
 * @example
 * ```ts
 * try {
 *   await ctx.step('reserve-stock', () => inventory.reserve(items));
 * } catch (err) {
 *   if (err instanceof StepFailedError) {
 *     console.log(err.stepName, err.attempts, err.causeName, err.causeMessage);
 *     await ctx.step('notify-out-of-stock', () => mailer.send(customer, 'Sorry!'));
 *   } else throw err;
 * }
 * ```
 */
export class StepFailedError extends CairnError {
  /** The step's static name. */
  readonly stepName: string;
  /** How many attempts ran. */
  readonly attempts: number;
  /** True when the step stopped because the error was non-retryable, not because attempts ran out. */
  readonly nonRetryable: boolean;
  /** The `name` of the last attempt's error, e.g. `TypeError`. */
  readonly causeName: string;
  /** The message of the last attempt's error (without a `[CAIRN-NNNN]` prefix). */
  readonly causeMessage: string;
  /** The `CAIRN-NNNN` code of the last attempt's error, when it was a Cairn error. */
  readonly causeCode: string | undefined;

  constructor(init: { stepName: string; attempts: number; cause: unknown; nonRetryable?: boolean }) {
    const cause = init.cause;
    const summary = summarize(cause);
    const nonRetryable = init.nonRetryable ?? false;
    const attempts = `${init.attempts} ${init.attempts === 1 ? 'attempt' : 'attempts'}`;
    super(
      ErrorCodes.STEP_FAILED,
      `Step "${init.stepName}" failed after ${attempts}${nonRetryable ? ' (non-retryable error)' : ''}: ${summary.name}: ${withoutCode(summary.message)}`,
      { cause, details: { stepName: init.stepName, attempts: init.attempts, nonRetryable } },
    );
    this.name = 'StepFailedError';
    this.stepName = init.stepName;
    this.attempts = init.attempts;
    this.nonRetryable = nonRetryable;
    this.causeName = summary.name;
    this.causeMessage = withoutCode(summary.message);
    this.causeCode = summary.code;
  }
}

/**
 * The error of a step attempt that ran longer than the step's `timeout`. The attempt's
 * `signal` is aborted; like any other attempt failure it is retried according to the step's
 * retry policy, and when attempts run out the workflow sees a {@link StepFailedError} whose
 * `causeName` is `'StepTimeoutError'`.
 *
 * @example
 * ```ts
 * await ctx.step('call-llm', ({ signal }) => llm.complete(prompt, { signal }), { timeout: '30s' });
 * ```
 */
export class StepTimeoutError extends CairnError {
  /** The step's static name. */
  readonly stepName: string;
  /** The attempt that timed out, from 1. */
  readonly attempt: number;
  /** The timeout in milliseconds. */
  readonly timeoutMs: number;

  constructor(init: { stepName: string; attempt: number; timeoutMs: number }) {
    super(ErrorCodes.STEP_TIMEOUT, `Step "${init.stepName}" attempt ${init.attempt} timed out after ${init.timeoutMs} ms.`, {
      details: { ...init },
    });
    this.name = 'StepTimeoutError';
    this.stepName = init.stepName;
    this.attempt = init.attempt;
    this.timeoutMs = init.timeoutMs;
  }
}

/**
 * A durable call as the journal records it, for {@link NonDeterminismError}.
 *
 * @example
 * ```ts
 * if (err instanceof NonDeterminismError) {
 *   const was: DurableCall = err.expected; // { kind: 'step', name: 'charge-card' }
 * }
 * ```
 */
export interface DurableCall {
  /** `step`, `model` (`ctx.model`), `sleep`, `signal` (a signal wait), `now` (`ctx.now()`) or `child` (`ctx.child`). */
  readonly kind: 'step' | 'model' | 'sleep' | 'signal' | 'now' | 'child';
  /** The static name (the signal name for a signal wait). */
  readonly name: string;
  /** HMAC digest of the step's dynamic key, when it has one. */
  readonly keyDigest?: string | undefined;
}

function describeCall(call: DurableCall): string {
  const what =
    call.kind === 'signal' ? 'signal wait' : call.kind === 'now' ? 'ctx.now()' : call.kind === 'model' ? 'model call' : call.kind;
  const name = call.kind === 'now' ? '' : ` "${call.name}"`;
  const key = call.keyDigest ? ` with key #${call.keyDigest.slice(0, 12)}` : '';
  return `${what}${name}${key}`;
}

/**
 * Replay found a different durable call than the journal holds at a position: the workflow code
 * changed under a running run (or it depends on something non-deterministic such as `Math.random`
 * or `Date.now()` instead of `ctx.random()` and `ctx.now()`). The run fails with this error; the
 * message names the position, the call the journal has and the call the code makes now.
 *
 * @example
 * ```ts
 * // [CAIRN-2001] Non-determinism at position 2: the journal has step "charge-card", the workflow
 * // now calls step "refund". Deploy code compatible with running runs, or start a new version.
 * if (err instanceof NonDeterminismError) console.log(err.position, err.expected, err.actual);
 * ```
 */
export class NonDeterminismError extends CairnError {
  /** The journal position, counted from 0 in call order. */
  readonly position: number;
  /** The call the journal holds at that position. */
  readonly expected: DurableCall;
  /** The call the workflow makes now (undefined when it completed without making it). */
  readonly actual: DurableCall | undefined;

  constructor(init: { position: number; expected: DurableCall; actual: DurableCall | undefined }) {
    const now = init.actual ? `the workflow now calls ${describeCall(init.actual)}` : 'the workflow now completes without making that call';
    super(
      ErrorCodes.NON_DETERMINISM,
      `Non-determinism at position ${init.position}: the journal has ${describeCall(init.expected)}, ${now}. ` +
        `Deploy code compatible with running runs, or start a new version.`,
      { details: { position: init.position } },
    );
    this.name = 'NonDeterminismError';
    this.position = init.position;
    this.expected = init.expected;
    this.actual = init.actual;
  }
}

/**
 * What `ctx.waitForSignal` throws when its `timeout` passes without a signal. Catch it to take
 * another path; left uncaught, the run fails with the `SIGNAL_TIMEOUT` code.
 *
 * @example
 * ```ts
 * try {
 *   const approval = await ctx.waitForSignal<{ ok: boolean }>('approval', { timeout: '2d' });
 * } catch (err) {
 *   if (!(err instanceof SignalTimeoutError)) throw err;
 *   await ctx.step('escalate', () => pager.page('approvals'));
 * }
 * ```
 */
export class SignalTimeoutError extends CairnError {
  /** The signal name waited for. */
  readonly signalName: string;
  /** The timeout in milliseconds, when known. */
  readonly timeoutMs: number | undefined;

  constructor(init: { signalName: string; timeoutMs?: number | undefined }) {
    const after = init.timeoutMs === undefined ? '' : ` after ${init.timeoutMs} ms`;
    super(ErrorCodes.SIGNAL_TIMEOUT, `No signal "${init.signalName}" arrived${after}.`, { details: { ...init } });
    this.name = 'SignalTimeoutError';
    this.signalName = init.signalName;
    this.timeoutMs = init.timeoutMs;
  }
}

/**
 * What pending and new durable calls throw once the run is cancelled (`ctx.signal` is aborted at
 * the same moment). When the workflow function settles, the run ends as cancelled.
 *
 * @example
 * ```ts
 * await ctx.step('long-export', async ({ signal }) => exporter.run({ signal }));
 * // after a cancel request the line above rejects with CancelledError
 * ```
 */
export class CancelledError extends CairnError {
  constructor(message = 'The run was cancelled.') {
    super(ErrorCodes.CANCELLED, message);
    this.name = 'CancelledError';
  }
}

function summarize(value: unknown): ErrorSummary {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { name: value.name, message: value.message, stack: value.stack, code: typeof code === 'string' ? code : undefined };
  }
  if (typeof value === 'object' && value !== null && 'name' in value && 'message' in value) {
    const v = value as { name: unknown; message: unknown; code?: unknown };
    return { name: String(v.name), message: String(v.message), code: typeof v.code === 'string' ? v.code : undefined };
  }
  return { name: 'Error', message: String(value) };
}

/**
 * What `ctx.child` throws when the child workflow run failed or was cancelled. The child's error
 * (name and message) is read from the data plane and stays there; the failure is journaled in the
 * parent, so a replay throws the same error.
 *
 * @example
 * ```ts
 * try {
 *   await ctx.child(chargeCard, { orderId });
 * } catch (err) {
 *   if (err instanceof ChildWorkflowFailedError) console.log(err.workflowName, err.childRunId, err.causeMessage);
 *   else throw err;
 * }
 * ```
 */
export class ChildWorkflowFailedError extends CairnError {
  /** The child's workflow name. */
  readonly workflowName: string;
  /** The child run's ID. */
  readonly childRunId: string;
  /** Whether the child was cancelled rather than failed. */
  readonly cancelled: boolean;
  /** The `name` of the child's error, e.g. `TypeError` (`CancelledError` when it was cancelled). */
  readonly causeName: string;
  /** The message of the child's error (without a `[CAIRN-NNNN]` prefix). */
  readonly causeMessage: string;

  constructor(init: { workflowName: string; childRunId: string; cancelled: boolean; causeName: string; causeMessage: string }) {
    const causeMessage = withoutCode(init.causeMessage);
    super(
      ErrorCodes.STEP_FAILED,
      init.cancelled
        ? `Child workflow "${init.workflowName}" (run ${init.childRunId}) was cancelled.`
        : `Child workflow "${init.workflowName}" (run ${init.childRunId}) failed: ${init.causeName}: ${causeMessage}`,
    );
    this.name = 'ChildWorkflowFailedError';
    this.workflowName = init.workflowName;
    this.childRunId = init.childRunId;
    this.cancelled = init.cancelled;
    this.causeName = init.causeName;
    this.causeMessage = causeMessage;
  }
}

/**
 * A value that does not match the schema its workflow declares: the run's input (checked by the
 * worker at run start; the run then fails for good, its error kept in the data plane), the
 * workflow's output (checked before it is stored), or a signal body ({@link SignalValidationError}).
 * Its code is CAIRN-1116; `issues` says where and what, with JSON Pointer paths.
 *
 * @example
 * ```ts
 * // [CAIRN-1116] input does not match the input schema of order-refund@1: /amount Too small: expected number to be >=0
 * if (err instanceof SchemaValidationError) console.log(err.target, err.issues);
 * ```
 */
export class SchemaValidationError extends CairnError {
  /** What was checked. */
  readonly target: 'input' | 'output' | 'signal';
  /** Where the value differs from the schema, and how. */
  readonly issues: readonly SchemaIssue[];

  constructor(init: { target: 'input' | 'output' | 'signal'; subject: string; issues: readonly SchemaIssue[] }) {
    super(ErrorCodes.INVALID_INPUT, `${init.subject}: ${describeIssues(init.issues)}`, {
      details: { target: init.target, issues: init.issues },
    });
    this.name = 'SchemaValidationError';
    this.target = init.target;
    this.issues = init.issues;
  }
}

/**
 * What `ctx.waitForSignal(signal)` throws when the signal's body does not match the schema of its
 * {@link defineSignal} definition. The gateway refuses such a body before storing it once the
 * schema is in the data plane's catalogue, so this happens for a body sent before the schema was
 * known, or for a schema the gateway cannot check (no JSON Schema). The signal is consumed; catch
 * the error to wait again or take another path. A replay throws the same error.
 *
 * @example
 * ```ts
 * const approval = defineSignal('approval', z.object({ approved: z.boolean() }));
 * let answer;
 * for (;;) {
 *   try {
 *     answer = await ctx.waitForSignal(approval);
 *     break;
 *   } catch (err) {
 *     if (!(err instanceof SignalValidationError)) throw err;
 *     await ctx.step('report-bad-signal', { key: ctx.uuid() }, () => audit.log(err.issues));
 *   }
 * }
 * ```
 */
export class SignalValidationError extends SchemaValidationError {
  /** The signal's name. */
  readonly signalName: string;

  constructor(init: { signalName: string; issues: readonly SchemaIssue[] }) {
    super({ target: 'signal', subject: `the body of signal "${init.signalName}" does not match its schema`, issues: init.issues });
    this.name = 'SignalValidationError';
    this.signalName = init.signalName;
  }
}
