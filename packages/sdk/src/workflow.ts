import { CairnError, ErrorCodes, assertName, assertVersion } from '@cairn/common/core';
import type { FlexibleSchema } from 'ai';
import type { Duration } from './duration.js';
import type { ModelCallOptions, ModelObjectResult, ModelResult, SchemaOutput } from './model.js';
import type { RetryPolicy } from './retry.js';

/**
 * What a step function receives.
 *
 * @example
 * ```ts
 * await ctx.step('charge', ({ idempotencyKey, attempt, signal }) =>
 *   stripe.charges.create({ amount }, { idempotencyKey, signal }),
 * );
 * ```
 */
export interface StepContext {
  /**
   * A key that is the same for every attempt and every replay of this step in this run
   * (`<runId>:<position>`). Pass it to the outside world (payment providers, mailers) so a step
   * that runs again after a crash does not act twice.
   */
  readonly idempotencyKey: string;
  /** The attempt number, from 1. */
  readonly attempt: number;
  /** Aborted when the attempt times out, the run is cancelled or the worker must stop it. */
  readonly signal: AbortSignal;
}

/**
 * A step's code. Its result must be JSON-serializable (it is journaled); `undefined` is fine.
 *
 * @example
 * ```ts
 * const fetchUser: StepFunction<User> = async ({ signal }) => (await fetch(url, { signal })).json();
 * ```
 */
export type StepFunction<T> = (step: StepContext) => T | Promise<T>;

/**
 * Options of `ctx.step`.
 *
 * @example
 * ```ts
 * await ctx.step('send-email', { key: user.email, timeout: '10s', retry: { maximumAttempts: 5 } }, () => mailer.send(user));
 * ```
 */
export interface StepOptions {
  /**
   * The dynamic part of the step's identity (a loop index, an item ID, an email). It never leaves
   * the data plane: only its HMAC digest crosses to the control plane, while the static name
   * crosses in clear.
   */
  readonly key?: string | number;
  /** How failed attempts are retried. Default: 3 attempts, 1 s then 2 s apart. */
  readonly retry?: RetryPolicy;
  /** Longest one attempt may run (ms or `'30s'`); a slower attempt fails with `StepTimeoutError`. */
  readonly timeout?: Duration;
}

/**
 * Options of `ctx.waitForSignal`.
 *
 * @example
 * ```ts
 * const body = await ctx.waitForSignal('approval', { timeout: '3d' });
 * ```
 */
export interface SignalWaitOptions {
  /** How long to wait (ms or `'2d'`); without it the wait lasts until a signal arrives. */
  readonly timeout?: Duration;
}

/**
 * The `ctx` a workflow function receives: durable calls and deterministic helpers. The function
 * runs from the top every time the run is (re)started; each durable call takes the next journal
 * position, and a call already in the journal returns its recorded result without running again.
 * Workflow code should await only durable calls (and `Promise.all`/`race` over them), and use
 * `ctx.now()`, `ctx.random()` and `ctx.uuid()` instead of `Date.now()`, `Math.random()` and
 * `crypto.randomUUID()`.
 *
 * @example
 * ```ts
 * const greet = defineWorkflow({ name: 'greet', version: '1' }, async (ctx, name: string) => {
 *   const text = await ctx.step('compose', () => `Hello, ${name}!`);
 *   await ctx.sleep('1h');
 *   return { text, at: ctx.now().toISOString(), id: ctx.uuid() };
 * });
 * ```
 */
export interface WorkflowContext {
  /** The run's identifier. */
  readonly runId: string;
  /** The workflow's name. */
  readonly workflowName: string;
  /** The workflow version the run is pinned to. */
  readonly workflowVersion: string;
  /** Aborted when the run is cancelled. */
  readonly signal: AbortSignal;

  /**
   * Runs `fn` at most until it succeeds, journals its result, and returns it; on replay returns
   * the journaled result without running `fn`. Failures are retried (see {@link RetryPolicy});
   * when they run out the call throws `StepFailedError`. `name` is a static identifier
   * (letters, digits, `_`, `.`, `-`; it crosses to the control plane in clear); put dynamic parts
   * in `options.key`.
   *
   * @example
   * ```ts
   * const user = await ctx.step('load-user', () => db.users.find(id));
   * const sent = await ctx.step('send-email', { key: user.email }, ({ idempotencyKey }) => mailer.send(user.email, idempotencyKey));
   * ```
   */
  step<T>(name: string, fn: StepFunction<T>, options?: StepOptions): Promise<T>;
  step<T>(name: string, options: StepOptions, fn: StepFunction<T>): Promise<T>;

  /**
   * Calls a language model durably, through the AI SDK. The result is journaled in the data plane,
   * so a replay returns it without calling the provider again. Transient failures (HTTP 408, 409,
   * 429, 5xx, network errors, a stream cut off, output that fails `schema`) are retried per model,
   * honouring the provider's `Retry-After`; a non-retryable status (400, 401, 403, 422) or
   * exhausted retries move on to the next model of `options.model`; when none is left the call
   * throws {@link ModelFailedError}. Long backoffs suspend the run like step retries do.
   *
   * While the call runs, its text streams to local subscribers (the gateway's
   * `GET /v1/runs/:id/stream`) unless `stream: false`. The prompt, the output and the transcript
   * (readable at `GET /v1/runs/:id/steps/:position/transcript`) stay in the data plane; the
   * control plane sees the name, the provider and model names, token counts and attempt statuses.
   *
   * Tools are not executed: the result lists `toolCalls`, and the workflow runs each one as its
   * own `ctx.step`. `name` is a static identifier like a step name; put dynamic parts in `key`.
   *
   * @example
   * ```ts
   * import { createMistral } from '@ai-sdk/mistral';
   * import { z } from 'zod';
   * const mistral = createMistral({ apiKey: process.env.MISTRAL_API_KEY });
   *
   * const triage = defineWorkflow({ name: 'triage', version: '1' }, async (ctx, ticket: { id: string; body: string }) => {
   *   const { object } = await ctx.model('classify', {
   *     model: [mistral('mistral-large-latest'), mistral('mistral-small-latest')],
   *     system: 'Classify support tickets.',
   *     prompt: ticket.body,
   *     schema: z.object({ label: z.enum(['bug', 'billing', 'other']), urgent: z.boolean() }),
   *     key: ticket.id,
   *   });
   *   if (object.urgent) await ctx.step('page-on-call', () => pager.page(ticket.id));
   *   return object;
   * });
   * ```
   */
  model<SCHEMA extends FlexibleSchema>(
    name: string,
    options: ModelCallOptions & { readonly schema: SCHEMA },
  ): Promise<ModelObjectResult<SchemaOutput<SCHEMA>>>;
  model(name: string, options: ModelCallOptions): Promise<ModelResult>;

  /**
   * Waits for `duration` (ms or `'5m'`), durably: the wake time is journaled at the first
   * execution, short sleeps wait in memory, long ones suspend the run and free the worker.
   *
   * @example
   * ```ts
   * await ctx.sleep('7d');
   * ```
   */
  sleep(duration: Duration): Promise<void>;

  /**
   * Waits until a point in time (a `Date` or milliseconds since the epoch), durably.
   *
   * @example
   * ```ts
   * await ctx.sleepUntil(new Date('2030-01-01T09:00:00Z'));
   * ```
   */
  sleepUntil(time: Date | number): Promise<void>;

  /**
   * Waits for a signal of `name` and returns its body. Signals are kept in arrival order, so one
   * sent before the wait is not lost: it is consumed by the first wait for that name. With a
   * `timeout`, throws `SignalTimeoutError` when it passes without a signal.
   *
   * @example
   * ```ts
   * const { approved } = await ctx.waitForSignal<{ approved: boolean }>('approval', { timeout: '2d' });
   * ```
   */
  waitForSignal<T = unknown>(name: string, options?: SignalWaitOptions): Promise<T>;

  /**
   * The current time, journaled on first execution so a replay sees the same value. It costs no
   * extra commit: the value is written with the next journal write.
   *
   * @example
   * ```ts
   * const deadline = ctx.now().getTime() + 24 * 3600_000;
   * ```
   */
  now(): Date;

  /**
   * A deterministic random number in [0, 1): derived from the run's stored seed and a call
   * counter, so a replay returns the same sequence.
   *
   * @example
   * ```ts
   * const variant = ctx.random() < 0.5 ? 'a' : 'b';
   * ```
   */
  random(): number;

  /**
   * A deterministic UUID (version 4 format), derived from the run's seed and a call counter.
   *
   * @example
   * ```ts
   * const orderId = ctx.uuid();
   * ```
   */
  uuid(): string;
}

/**
 * A workflow: its name, version, task queue and function. Create one with {@link defineWorkflow}
 * and give it to a worker.
 *
 * @example
 * ```ts
 * const worker = new Worker({ ...options, workflows: [orderRefund] });
 * ```
 */
export interface WorkflowDefinition<Input = unknown, Output = unknown> {
  /** The workflow name, as written in code (crosses to the control plane in clear). */
  readonly name: string;
  /** The version; a run is pinned to the version it started on. */
  readonly version: string;
  /** The task queue workers poll for it. */
  readonly taskQueue: string;
  /** The workflow function. */
  run(ctx: WorkflowContext, input: Input): Promise<Output>;
}

/**
 * The input type of a workflow definition.
 *
 * @example
 * ```ts
 * type RefundInput = WorkflowInput<typeof orderRefund>;
 * ```
 */
export type WorkflowInput<W> = W extends WorkflowDefinition<infer I, unknown> ? I : never;

/**
 * The output type of a workflow definition.
 *
 * @example
 * ```ts
 * type RefundOutput = WorkflowOutput<typeof orderRefund>;
 * ```
 */
export type WorkflowOutput<W> = W extends WorkflowDefinition<never, infer O> ? O : never;

/**
 * The identity of a workflow given to {@link defineWorkflow}.
 *
 * @example
 * ```ts
 * const options: WorkflowOptions = { name: 'order-refund', version: '2', taskQueue: 'payments' };
 * ```
 */
export interface WorkflowOptions {
  /** Letters, digits, `_`, `.`, `-`; starts with a letter; at most 100 characters. */
  readonly name: string;
  /** Letters, digits, `_`, `.`, `+`, `-`; starts with a letter or digit; at most 64 characters. */
  readonly version: string;
  /** The task queue (a name, like `name`). Default `'default'`. */
  readonly taskQueue?: string;
}

/**
 * Defines a workflow. The name, version and task queue are checked here, so a bad one fails at
 * import time with a clear error instead of at the first run.
 *
 * @example
 * ```ts
 * import { defineWorkflow } from '@cairn/sdk';
 *
 * export const welcome = defineWorkflow({ name: 'welcome', version: '1' }, async (ctx, input: { email: string }) => {
 *   await ctx.step('send-welcome', { key: input.email }, () => mailer.send(input.email, 'Welcome!'));
 *   await ctx.sleep('3d');
 *   await ctx.step('send-tips', { key: input.email }, () => mailer.send(input.email, 'Three tips'));
 *   return { done: true };
 * });
 * ```
 */
export function defineWorkflow<Input, Output>(
  options: WorkflowOptions,
  fn: (ctx: WorkflowContext, input: Input) => Output | Promise<Output>,
): WorkflowDefinition<Input, Awaited<Output>> {
  if (typeof options !== 'object' || options === null) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      "defineWorkflow needs options: defineWorkflow({ name: 'my-workflow', version: '1' }, fn).",
    );
  }
  assertName(options.name, 'workflow name');
  assertVersion(options.version, `version of workflow "${options.name}"`);
  const taskQueue = options.taskQueue ?? 'default';
  assertName(taskQueue, `task queue of workflow "${options.name}"`);
  if (typeof fn !== 'function') {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `Workflow "${options.name}" needs a function: defineWorkflow(options, async (ctx, input) => output).`,
    );
  }
  return Object.freeze({
    name: options.name,
    version: options.version,
    taskQueue,
    run: async (ctx: WorkflowContext, input: Input): Promise<Awaited<Output>> => await fn(ctx, input),
  });
}
