// Types only from 'ai': the SDK a workflow author imports must load no provider or server code.
// The worker runtime (@cairn/worker) is what calls the AI SDK.
import type { FinishReason, FlexibleSchema, InferSchema, LanguageModel, ModelMessage, ToolSet } from 'ai';
import { CairnError, ErrorCodes, isNonNullObject } from '@cairn/common/core';
import { toMilliseconds, type Duration } from '@cairn/common/core';
import type { EvalOptions } from './eval.js';
import { resolveRetryPolicy, type ResolvedRetryPolicy } from './retry.js';

/**
 * How a model call retries one model before it moves on to the next in the list. Attempt `k`
 * failing waits `min(initialInterval × 2^(k-1), maximumInterval)`, unless the provider said how
 * long to wait (`Retry-After` or `retry-after-ms`), which wins. Only transient failures are
 * retried: HTTP 408, 409, 429 and 5xx, network errors, a stream cut off or malformed, and
 * structured output that fails its schema.
 *
 * @example
 * ```ts
 * await ctx.model('summarize', { model, prompt, retry: { maximumAttempts: 6, initialInterval: '2s' } });
 * ```
 */
export interface ModelRetryPolicy {
  /** Attempts per model, the first included. Default 4; at least 1. */
  readonly maximumAttempts?: number;
  /** Wait before the second attempt: milliseconds or `'1s'`. Default 1 second. */
  readonly initialInterval?: Duration;
  /** Longest wait between attempts (when the provider names none). Default 60 seconds. */
  readonly maximumInterval?: Duration;
}

/**
 * Options of `ctx.model`. `OUTPUT` is what an eval gate checks: the validated `object` with a
 * `schema`, else the `text`.
 *
 * @example
 * ```ts
 * import { createMistral } from '@ai-sdk/mistral';
 * const mistral = createMistral({ apiKey: process.env.MISTRAL_API_KEY });
 *
 * const options: ModelCallOptions = {
 *   model: [mistral('mistral-large-latest'), mistral('mistral-small-latest')],
 *   system: 'You answer in one sentence.',
 *   prompt: 'Why is the sky blue?',
 *   temperature: 0.2,
 *   timeout: '60s',
 * };
 * ```
 */
export interface ModelCallOptions<OUTPUT = unknown> {
  /**
   * The AI SDK model to call, or an ordered fallback list: when a model fails for good (a
   * non-retryable status such as 400, 401, 403 or 422, or its retries ran out) the next one is
   * tried.
   */
  readonly model: LanguageModel | readonly LanguageModel[];
  /** Instructions for the model (a system message). */
  readonly system?: string;
  /** A text prompt. Give `prompt` or `messages`, not both. */
  readonly prompt?: string;
  /** A conversation as AI SDK model messages. Give `prompt` or `messages`, not both. */
  readonly messages?: readonly ModelMessage[];
  /**
   * A schema (zod, or any Standard Schema / AI SDK schema) for structured output: the result's
   * `object` is the validated value. Output that fails validation counts as a failed attempt and
   * is retried.
   */
  readonly schema?: FlexibleSchema;
  /**
   * Tools the model may call (AI SDK tool definitions). `ctx.model` never executes them: the
   * result lists the calls, and the workflow runs each one as its own `ctx.step`, so every tool
   * execution is durable on its own. An `execute` function on a definition is ignored.
   */
  readonly tools?: ToolSet;
  /**
   * The dynamic part of the call's identity (a loop index, a document ID). Only its HMAC digest
   * crosses to the control plane.
   */
  readonly key?: string | number;
  /** Sampling temperature, passed to the provider. */
  readonly temperature?: number;
  /** Most tokens the model may generate. */
  readonly maxOutputTokens?: number;
  /** How failed attempts are retried, per model. Default: 4 attempts, 1 s doubling up to 60 s. */
  readonly retry?: ModelRetryPolicy;
  /** Longest one attempt may take (ms or `'60s'`); a slower attempt is aborted and retried. */
  readonly timeout?: Duration;
  /**
   * Stream tokens to local subscribers (the gateway's `GET /v1/runs/:id/stream`) while the call
   * runs. Default true. The text never leaves the data plane either way.
   */
  readonly stream?: boolean;
  /**
   * An eval gate on the output (the `object` with a `schema`, else the `text`; see
   * {@link EvalOptions}). A failed verdict re-runs the call with the previous answer and a user
   * message saying what failed appended to the conversation, up to `maxRetries` times; then the
   * call throws `EvalFailedError` or asks a human (`onFail: 'approval'`). Each re-run is a model
   * call of its own, with its own transcript.
   */
  readonly eval?: EvalOptions<OUTPUT>;
}

/**
 * A tool call the model asked for. Run it with `ctx.step` (its input is already parsed against
 * the tool's input schema).
 *
 * @example
 * ```ts
 * for (const call of reply.toolCalls) {
 *   await ctx.step(`tool.${call.toolName}`, { key: call.toolCallId }, () => tools[call.toolName](call.input));
 * }
 * ```
 */
export interface ModelToolCall {
  readonly toolCallId: string;
  readonly toolName: string;
  readonly input: unknown;
}

/**
 * Tokens the provider counted for the call's successful attempt (0 when it reported none).
 *
 * @example
 * ```ts
 * const { usage } = await ctx.model('draft', { model, prompt });
 * console.log(usage.inputTokens + usage.outputTokens);
 * ```
 */
export interface ModelUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/**
 * What `ctx.model` returns. It is journaled, so a replay returns the same value without calling
 * the provider.
 *
 * @example
 * ```ts
 * const reply: ModelResult = await ctx.model('answer', { model, prompt: question });
 * console.log(reply.text, reply.finishReason, reply.provider, reply.model, reply.attempts);
 * ```
 */
export interface ModelResult {
  /** The text the model generated (for structured output, the raw JSON text). */
  readonly text: string;
  /** With `schema`: the validated object. */
  readonly object?: unknown;
  /** The tool calls the model asked for (empty when none). */
  readonly toolCalls: readonly ModelToolCall[];
  /** Why the model stopped: `stop`, `length`, `tool-calls`, `content-filter`, … */
  readonly finishReason: FinishReason;
  readonly usage: ModelUsage;
  /** The provider of the model that answered, e.g. `mistral.chat`. */
  readonly provider: string;
  /** The model that answered, e.g. `mistral-large-latest`. */
  readonly model: string;
  /** Attempts the call took, over all models tried. */
  readonly attempts: number;
}

/**
 * What `ctx.model` returns when given a `schema`: the result with its validated `object`.
 *
 * @example
 * ```ts
 * const { object } = await ctx.model('classify', { model, prompt, schema: z.object({ label: z.enum(['spam', 'ham']) }) });
 * object.label; // 'spam' | 'ham'
 * ```
 */
export interface ModelObjectResult<OBJECT> extends ModelResult {
  readonly object: OBJECT;
}

/**
 * The object type a schema validates to (zod, Standard Schema or AI SDK schema).
 *
 * @example
 * ```ts
 * type Label = SchemaOutput<typeof labelSchema>;
 * ```
 */
export type SchemaOutput<SCHEMA> = InferSchema<SCHEMA>;

/**
 * How one model of a call's list failed, in a {@link ModelFailedError}.
 *
 * @example
 * ```ts
 * for (const f of err.failures) console.log(`${f.provider}/${f.model}: HTTP ${f.statusCode ?? '-'} after ${f.attempts}`);
 * ```
 */
export interface ModelFailure {
  readonly provider: string;
  readonly model: string;
  /** Attempts made with this model. */
  readonly attempts: number;
  /** The HTTP status of the last attempt's error, when the provider answered with one. */
  readonly statusCode?: number | undefined;
  /** The last attempt's error name, e.g. `AI_APICallError`. */
  readonly errorName: string;
  /** The last attempt's error message. */
  readonly message: string;
  /** Whether that error was retryable (false: the model was given up at once). */
  readonly retryable: boolean;
}

function describeFailure(f: ModelFailure): string {
  const status = f.statusCode === undefined ? f.errorName : `HTTP ${f.statusCode}`;
  const how = f.retryable ? `after ${f.attempts} ${f.attempts === 1 ? 'attempt' : 'attempts'}` : 'not retryable';
  return `${f.provider}/${f.model} (${status}, ${how}): ${f.message.replace(/^\[CAIRN-\d{4}\] /, '')}`;
}

/**
 * What `ctx.model` throws when every model in its list failed: each one returned a
 * non-retryable status or ran out of attempts. The message names each provider, model and
 * status; it is stored in the data plane with the failed journal entry, and a replay throws the
 * same error without calling a provider. Left uncaught, the run fails with `STEP_TERMINAL` (the
 * last model's error was not retryable) or `STEP_FAILED`.
 *
 * @example
 * ```ts
 * try {
 *   await ctx.model('summarize', { model: [primary, backup], prompt });
 * } catch (err) {
 *   if (!(err instanceof ModelFailedError)) throw err;
 *   console.log(err.failures.map((f) => `${f.provider}/${f.model}: ${f.statusCode}`));
 * }
 * ```
 */
export class ModelFailedError extends CairnError {
  /** The call's static name. */
  readonly callName: string;
  /** Attempts made, over all models. */
  readonly attempts: number;
  /** True when the last model failed with a non-retryable error rather than running out of attempts. */
  readonly nonRetryable: boolean;
  /** How each model tried failed, in list order. */
  readonly failures: readonly ModelFailure[];

  constructor(init: { callName: string; attempts: number; failures: readonly ModelFailure[] }) {
    const last = init.failures[init.failures.length - 1];
    const nonRetryable = last !== undefined && !last.retryable;
    const models = init.failures.length === 1 ? 'its model' : `all ${init.failures.length} models`;
    super(
      ErrorCodes.STEP_FAILED,
      `Model call "${init.callName}" failed on ${models} after ${init.attempts} ${init.attempts === 1 ? 'attempt' : 'attempts'}: ` +
        init.failures.map(describeFailure).join('; '),
      { details: { callName: init.callName, attempts: init.attempts, nonRetryable } },
    );
    this.name = 'ModelFailedError';
    this.callName = init.callName;
    this.attempts = init.attempts;
    this.nonRetryable = nonRetryable;
    this.failures = Object.freeze(init.failures.map((f) => Object.freeze({ ...f })));
  }
}

/**
 * Fills in the defaults of a {@link ModelRetryPolicy} (4 attempts per model, 1 s doubling up to
 * 60 s) and checks it, throwing a clear `CAIRN-1101` error for a bad value.
 *
 * @example
 * ```ts
 * resolveModelRetryPolicy({ maximumAttempts: 2 }).initialIntervalMs; // 1000
 * ```
 */
export function resolveModelRetryPolicy(policy: ModelRetryPolicy = {}): ResolvedRetryPolicy {
  if (!isNonNullObject(policy)) {
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'Invalid model retry policy: give an object such as { maximumAttempts: 4 }.');
  }
  const maximumAttempts = policy.maximumAttempts ?? 4;
  if (!Number.isInteger(maximumAttempts) || maximumAttempts < 1) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `Invalid retry.maximumAttempts ${String(maximumAttempts)} of a model call: use a whole number of at least 1 (attempts per model).`,
    );
  }
  const initialIntervalMs = toMilliseconds(policy.initialInterval ?? 1000, 'retry.initialInterval');
  return resolveRetryPolicy({
    initialInterval: initialIntervalMs,
    maximumInterval: policy.maximumInterval ?? Math.max(60_000, initialIntervalMs),
    maximumAttempts,
    backoffCoefficient: 2,
  });
}
