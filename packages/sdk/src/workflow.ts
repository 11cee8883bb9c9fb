import { CairnError, ErrorCodes, assertName, assertVersion } from '@cairn/common/core';
import type { FlexibleSchema } from 'ai';
import type { AgentOptions, AgentResult } from './agent.js';
import type { ApprovalOptions, ApprovalResult } from './approval.js';
import type { Duration } from './duration.js';
import type { EvalFeedback, EvalOptions } from './eval.js';
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
  /**
   * Aborted when the attempt times out, the run is cancelled or the worker must stop it. (A
   * compensation's signal is not aborted by cancellation: it runs because of it.)
   */
  readonly signal: AbortSignal;
  /**
   * Set when an eval gate re-runs the step because its previous output failed a check: what
   * failed, so this run can do better. Undefined on the first run.
   */
  readonly feedback?: EvalFeedback;
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
 * Options of `ctx.step`; `T` is the step's result.
 *
 * @example
 * ```ts
 * await ctx.step('send-email', { key: user.email, timeout: '10s', retry: { maximumAttempts: 5 } }, () => mailer.send(user));
 * ```
 */
export interface StepOptions<T = unknown> {
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
  /**
   * Undoes the step (saga compensation). Registered once the step has completed; if the workflow
   * function then fails with an uncaught error, or the run is cancelled, the registered
   * compensations run in reverse order (newest step first), each as a durable step named
   * `compensate.<step>` with this step's `retry` and `timeout`, given the step's result. A
   * compensation that fails for good does not stop the others: it is a failed step on the timeline,
   * and the run still fails with the original error (its stored error lists the failed
   * compensations). Compensations already done are not run again on replay. Steps that failed,
   * and runs that complete, are not compensated.
   *
   * @example
   * ```ts
   * const booking = await ctx.step('book-hotel', () => hotels.book(trip), {
   *   compensate: (b, { idempotencyKey }) => hotels.cancel(b.id, { idempotencyKey }),
   * });
   * ```
   */
  readonly compensate?: (result: T, step: StepContext) => unknown;
  /**
   * An eval gate on the step's result (see {@link EvalOptions}): after each run the checks judge
   * the result; a failed verdict re-runs the step with `feedback` in its context, up to
   * `maxRetries` times, then throws `EvalFailedError` or asks a human (`onFail: 'approval'`).
   *
   * @example
   * ```ts
   * const summary = await ctx.step('summarize', ({ feedback }) => summarizer.run(doc, feedback?.reasons), {
   *   eval: { checks: [(s: string) => s.length <= 500 || `is ${s.length} characters, at most 500`], maxRetries: 2 },
   * });
   * ```
   */
  readonly eval?: EvalOptions<T>;
}

/**
 * Options of `ctx.parallel`.
 *
 * @example
 * ```ts
 * await ctx.parallel(documents, (doc) => ctx.model('summarize', { model, prompt: doc.text, key: doc.id }), { concurrency: 4 });
 * ```
 */
export interface ParallelOptions {
  /** Most items in progress at once: a whole number of at least 1. Default: all of them. */
  readonly concurrency?: number;
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
  step<T>(name: string, fn: StepFunction<T>, options?: StepOptions<T>): Promise<T>;
  step<T>(name: string, options: StepOptions<T>, fn: StepFunction<T>): Promise<T>;

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
    options: ModelCallOptions<SchemaOutput<SCHEMA>> & { readonly schema: SCHEMA },
  ): Promise<ModelObjectResult<SchemaOutput<SCHEMA>>>;
  model(name: string, options: ModelCallOptions<string>): Promise<ModelResult>;

  /**
   * Runs a tool-calling agent loop durably. Every model turn is its own `ctx.model` call named
   * `<name>.turn` (key: the turn index), and every tool call the model asks for is its own
   * `ctx.step` named `<name>.tool.<tool name>` (key: the tool call's ID) that runs the tool's
   * `execute(input)`. The loop appends each assistant message and the tool results (AI SDK
   * `ModelMessage` form) to the conversation and stops when a turn asks for no tool, returning the
   * final text, the turns taken, every tool call and the summed usage; at `maxTurns` it throws
   * {@link AgentMaxTurnsError} (or returns with `finishReason: 'max-turns'`, see `onMaxTurns`).
   *
   * After a crash the loop resumes at the first unfinished turn: finished turns and tools return
   * their journaled results without calling the provider or the tool again. Every
   * `checkpointEvery` turns (default 10) the loop journals its state as one step
   * `<name>.checkpoint`, and a replay starts from the latest checkpoint, so a long loop does not
   * make each replay walk all its earlier turns. Tool arguments and results, like prompts and
   * outputs, stay in the data plane.
   *
   * @example
   * ```ts
   * import { tool } from 'ai';
   * import { z } from 'zod';
   *
   * const support = defineWorkflow({ name: 'support', version: '1' }, async (ctx, ticket: { id: string; body: string }) => {
   *   const lookup = tool({
   *     description: 'Looks an order up by ID',
   *     inputSchema: z.object({ orderId: z.string() }),
   *     execute: async ({ orderId }) => orders.find(orderId),
   *   });
   *   const { text, turns } = await ctx.agent('support', {
   *     model: mistral('mistral-large-latest'),
   *     system: 'You answer support tickets. Look orders up before answering.',
   *     prompt: ticket.body,
   *     tools: { lookup },
   *     maxTurns: 8,
   *     key: ticket.id,
   *   });
   *   return { answer: text, turns };
   * });
   * ```
   */
  agent(name: string, options: AgentOptions): Promise<AgentResult>;

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
   * Waits for a human to approve or reject, durably: the run suspends (no worker slot, no
   * polling) until someone answers through the gateway, for days if need be, and returns the
   * answer. An answer sent before the workflow reaches this line is kept and returned at once.
   *
   * It is a signal wait underneath: the signal is named `approval.<name>`, or
   * `approval.<name>.<digest>` with a `key` (the first 32 hex digits of the key's HMAC, so the
   * key itself never leaves the data plane). Answer with the gateway's
   * `POST /v1/runs/:id/approvals/:name` and body `{ "approved": true, "by": "maria", "comment": "…",
   * "data": {…}, "key": "…" }`, or its `/approve` and `/reject` shortcuts. The comment and data stay
   * in the data plane; the control plane sees the signal name and the wait's status.
   *
   * Only `"approved": true` approves. On `timeout`, throws {@link ApprovalTimeoutError}, or returns
   * `{ approved: false, timedOut: true }` with `onTimeout: 'reject'`. `name` is a static name
   * (at most 91 characters, 58 with a key).
   *
   * @example
   * ```ts
   * const draft = await ctx.step('draft-refund', () => refunds.draft(order));
   * const answer = await ctx.approval<{ amount?: number }>('refund', { key: order.id, timeout: '3d' });
   * if (!answer.approved) return { refunded: false, reason: 'rejected', by: answer.by };
   * await ctx.step('refund', () => payments.refund(order.id, answer.data?.amount ?? draft.amount));
   * ```
   */
  approval<T = unknown>(name: string, options?: ApprovalOptions): Promise<ApprovalResult<T>>;

  /**
   * Fan-out: calls `fn(item, index)` for each item, at most `concurrency` at a time, and returns
   * the results in input order (whatever order they finish in). Item `i + concurrency` starts once
   * an earlier item has finished.
   *
   * Each item is a branch whose durable calls (any number: steps, model calls, sleeps, approvals,
   * nested `ctx.parallel`) are identified by the branch and their order within it rather than by
   * global call order, so a replay finds every recorded result, in whatever order the branches
   * finish this time: nothing already journaled runs again. Inside a branch, a step's
   * `idempotencyKey` is `<runId>:<branch>#<n>` (e.g. `…:p0.3#0`), `ctx.random()`/`ctx.uuid()`
   * draw from the branch's own sequence, and the key digest that crosses to the control plane is
   * the HMAC of the branch identity (and of `key`, if given).
   *
   * Failure: once an item fails, no new item starts; the items already running finish (their
   * results are journaled), then the call rejects with the error of the lowest-index item that
   * failed — the same error on every replay. To keep going past failures, catch inside `fn`.
   *
   * @example
   * ```ts
   * const summaries = await ctx.parallel(
   *   tickets,
   *   async (ticket) => {
   *     const { text } = await ctx.model('summarize', { model, prompt: ticket.body, key: ticket.id });
   *     return ctx.step('store-summary', { key: ticket.id }, () => db.summaries.put(ticket.id, text));
   *   },
   *   { concurrency: 5 },
   * );
   * ```
   */
  parallel<T, R>(items: Iterable<T>, fn: (item: T, index: number) => R | Promise<R>, options?: ParallelOptions): Promise<Awaited<R>[]>;

  /**
   * Starts a child workflow run and waits for its output. The child is a run of its own (its own
   * journal, retries and timeline, with this run as its parent); its input and output stay in the
   * data plane. The call is durable: the child's run ID derives from this call's place in the
   * journal, so a replay waits for the same child and never starts a second one. While the child
   * runs, this run suspends and holds no worker; the control plane wakes it when the child ends.
   * Cancelling this run cancels the child. Throws {@link ChildWorkflowFailedError} when the child
   * failed or was cancelled.
   *
   * @param workflow The child's definition (typed input and output), or its workflow name.
   * @param input The child's input (JSON-serializable).
   * @param options `version` pins the child's workflow version (default: the newest a worker of
   *   this data plane announced); `key` identifies the call in the journal when the same child
   *   is started several times from one place (it is HMAC'd before it leaves the data plane).
   *
   * @example
   * ```ts
   * const receipts = await ctx.parallel(orders, (order) => ctx.child(chargeOrder, order, { key: order.id }), { concurrency: 2 });
   * const report = await ctx.child<typeof monthlyReport>('monthly-report', { month: '2026-11' }, { version: '3' });
   * ```
   */
  child<W extends WorkflowDefinition<never, unknown> = WorkflowDefinition<unknown, unknown>>(
    workflow: W | string,
    input: WorkflowInput<W>,
    options?: ChildOptions,
  ): Promise<WorkflowOutput<W>>;

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
 * Options of `ctx.child`.
 *
 * @example
 * ```ts
 * const options: ChildOptions = { key: order.id, version: '2' };
 * ```
 */
export interface ChildOptions {
  /** Identifies the call when one place starts several children (HMAC'd before it crosses). */
  readonly key?: string | number;
  /** The child's workflow version; default: the newest version a worker announced. */
  readonly version?: string;
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
