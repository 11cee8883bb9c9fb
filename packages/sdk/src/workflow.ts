import {
  CairnError,
  ErrorCodes,
  FLOW_CONTROL_LIMITS,
  TIMEOUT_LIMITS,
  assertName,
  assertVersion,
  isCronShape,
  isNonNullObject,
  isTimeZoneName,
  toMilliseconds,
  type Duration,
} from '@cairn/common/core';
import type { FlexibleSchema } from 'ai';
import type { AgentOptions, AgentResult } from './agent.js';
import type { ApprovalOptions, ApprovalResult } from './approval.js';
import type { EvalFeedback, EvalOptions } from './eval.js';
import type { ModelCallOptions, ModelObjectResult, ModelResult, SchemaOutput } from './model.js';
import { resolveRetryPolicy, type RetryPolicy } from './retry.js';
import { declareSchema, type DeclaredSchema, type StandardSchemaV1 } from './schema.js';
import { isSignalDefinition, type SignalDefinition } from './signal.js';

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
   * Waits for a signal and returns its body, checked against the signal's schema. Signals are
   * kept in arrival order, so one sent before the wait is not lost: it is consumed by the first
   * wait for that name. With a `timeout`, throws `SignalTimeoutError` when it passes without a
   * signal. A body that does not match the schema throws {@link SignalValidationError} (the signal
   * is consumed; catch it to wait again).
   *
   * @example
   * ```ts
   * const approval = defineSignal('approval', z.object({ approved: z.boolean() }));
   * const { approved } = await ctx.waitForSignal(approval, { timeout: '2d' });
   * ```
   */
  waitForSignal<Body>(signal: SignalDefinition<Body>, options?: SignalWaitOptions): Promise<Body>;
  /**
   * Waits for a signal of `name` and returns its body, unchecked: `T` is a cast, not a check. Use
   * a {@link defineSignal} definition for a validated, typed body.
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
  child<W extends WorkflowDefinition<never> = WorkflowDefinition>(
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
 * A workflow's timeouts, as given to {@link defineWorkflow} (milliseconds or `'30s'`).
 *
 * @example
 * ```ts
 * const timeouts: WorkflowTimeouts = { run: '1d', step: '30s' };
 * ```
 */
export interface WorkflowTimeouts {
  /**
   * The longest a run may last from its creation, suspensions included (at least 1 s). The control
   * plane ends a run past it `timed_out`, taking its lease from a worker that holds it. It takes
   * effect once registered: `cairn workflows register` registers it, and so does a worker in
   * development mode.
   */
  readonly run?: Duration;
  /** The per-attempt timeout of a step that sets no `timeout` of its own (at least 100 ms). */
  readonly step?: Duration;
}

/**
 * A schedule declared with a workflow version: a cron expression and an IANA time zone (default
 * `UTC`). It is registered with the version as metadata; schedules that fire runs are created with
 * `cairn schedules create` (or the control plane's REST API).
 *
 * @example
 * ```ts
 * const weekdays: WorkflowSchedule = { cron: '0 9 * * 1-5', timezone: 'Europe/Paris' };
 * ```
 */
export interface WorkflowSchedule {
  /** 5 or 6 fields of digits, `* ? L W # / , -` and upper-case month and day names, or `@daily` and the like. */
  readonly cron: string;
  /** An IANA time zone; default `UTC`. */
  readonly timezone?: string;
}

/**
 * A workflow's flow control: how many of its runs hold a worker at once and how fast new runs
 * start, each optionally per concurrency key (the `concurrencyKey` of a start, HMAC'd in the data
 * plane). The same shape as the registry's `flowControl` (PUT
 * /v1/projects/{project}/workflows/{name}/flow-control); it belongs to the workflow name, not to a
 * version, so the version registered last sets it.
 *
 * @example
 * ```ts
 * const flow: WorkflowFlowControl = { concurrency: { limit: 5, perKey: true }, rateLimit: { limit: 100, periodMs: 60_000 } };
 * ```
 */
export interface WorkflowFlowControl {
  /** At most `limit` runs (1 to 100 000) hold a lease at once, per concurrency key when `perKey`. */
  readonly concurrency?: { readonly limit: number; readonly perKey?: boolean } | null;
  /** At most `limit` first dispatches (1 to 1 000 000) per `periodMs` (1 s to 1 day), per key when `perKey`. */
  readonly rateLimit?: { readonly limit: number; readonly periodMs: number; readonly perKey?: boolean } | null;
}

/**
 * A workflow: its name, version, task queue, function and the settings written beside it in code.
 * Create one with {@link defineWorkflow} and give it to a worker. Everything on it is frozen; the
 * worker reads the settings (schemas for validation and the data plane's catalogue, retry and
 * timeouts as step defaults) and so does `cairn workflows register`.
 *
 * @example
 * ```ts
 * const worker = new Worker({ ...options, workflows: [orderRefund] });
 * console.log(orderRefund.retry, orderRefund.timeouts.run);
 * ```
 */
export interface WorkflowDefinition<Input = unknown, Output = unknown> {
  /** The workflow name, as written in code (crosses to the control plane in clear). */
  readonly name: string;
  /** The version; a run is pinned to the version it started on. */
  readonly version: string;
  /** The task queue workers poll for it. */
  readonly taskQueue: string;
  /** The input schema and its JSON Schema, when one was given. */
  readonly input: DeclaredSchema | undefined;
  /** The output schema and its JSON Schema, when one was given. */
  readonly output: DeclaredSchema | undefined;
  /** The signals the workflow declares (their body schemas are catalogued for the gateway). */
  readonly signals: readonly SignalDefinition[];
  /** The default retry policy of the workflow's steps, as given. */
  readonly retry: RetryPolicy | undefined;
  /** The run and step timeouts, in milliseconds. */
  readonly timeouts: { readonly run: number | undefined; readonly step: number | undefined };
  /** The declared schedules, time zones filled in. */
  readonly schedules: readonly { readonly cron: string; readonly timezone: string }[];
  /** The flow control, when given (both limits present: `null` for none). */
  readonly flowControl: ResolvedFlowControl | undefined;
  /**
   * The workflow function. The worker calls it with the run's input after checking it against
   * `input` (so with a schema it receives the parsed value).
   */
  run(ctx: WorkflowContext, input: Input): Promise<Output>;
}

/**
 * Flow control with both limits present (`null` for no limit) and `perKey` filled in.
 *
 * @example
 * ```ts
 * const f: ResolvedFlowControl = { concurrency: { limit: 5, perKey: false }, rateLimit: null };
 * ```
 */
export interface ResolvedFlowControl {
  readonly concurrency: { readonly limit: number; readonly perKey: boolean } | null;
  readonly rateLimit: { readonly limit: number; readonly periodMs: number; readonly perKey: boolean } | null;
}

/**
 * The input type of a workflow definition: what a caller passes (with an input schema, the
 * schema's input type).
 *
 * @example
 * ```ts
 * type RefundInput = WorkflowInput<typeof orderRefund>;
 * ```
 */
export type WorkflowInput<W> = W extends WorkflowDefinition<infer I> ? I : never;

/**
 * The output type of a workflow definition (with an output schema, the schema's output type).
 *
 * @example
 * ```ts
 * type RefundOutput = WorkflowOutput<typeof orderRefund>;
 * ```
 */
export type WorkflowOutput<W> = W extends WorkflowDefinition<never, infer O> ? O : never;

/**
 * The identity and settings of a workflow given to {@link defineWorkflow}. Only `name` and
 * `version` are required.
 *
 * @example
 * ```ts
 * const options: WorkflowOptions = {
 *   name: 'order-refund',
 *   version: '2',
 *   taskQueue: 'payments',
 *   retry: { maximumAttempts: 5, initialInterval: '500ms' },
 *   timeouts: { run: '7d', step: '30s' },
 *   flowControl: { concurrency: { limit: 10 } },
 * };
 * ```
 */
export interface WorkflowOptions {
  /** Letters, digits, `_`, `.`, `-`; starts with a letter; at most 100 characters. */
  readonly name: string;
  /** Letters, digits, `_`, `.`, `+`, `-`; starts with a letter or digit; at most 64 characters. */
  readonly version: string;
  /** The task queue (a name, like `name`). Default `'default'`. */
  readonly taskQueue?: string;
  /**
   * The input's schema: zod 4 or any Standard Schema. The workflow function receives the parsed
   * value and its type is inferred from the schema. The worker checks every run's input at run
   * start (an input that does not match fails the run for good with CAIRN-1116); when the schema
   * has a JSON Schema (zod 4 has), the gateway also refuses a bad input with a 400 before storing
   * anything.
   */
  readonly input?: StandardSchemaV1;
  /** The output's schema: the worker checks the function's result before storing it. */
  readonly output?: StandardSchemaV1;
  /** The signals the workflow waits for, made with {@link defineSignal}: the gateway checks their bodies. */
  readonly signals?: readonly SignalDefinition[];
  /**
   * The default retry policy of the workflow's steps. A step's own `retry` wins field by field,
   * then a policy registered for the version (`cairn workflows register`), then this, then the
   * SDK's defaults (3 attempts, 1 s doubling).
   */
  readonly retry?: RetryPolicy;
  /** Run and step timeouts. */
  readonly timeouts?: WorkflowTimeouts;
  /** Schedules declared with the version (at most 20). */
  readonly schedules?: readonly WorkflowSchedule[];
  /** Concurrency and rate limits of the workflow's runs. */
  readonly flowControl?: WorkflowFlowControl;
}

const OPTION_FIELDS = new Set([
  'name',
  'version',
  'taskQueue',
  'input',
  'output',
  'signals',
  'retry',
  'timeouts',
  'schedules',
  'flowControl',
]);

/** At most this many schedules are declared with a version (the registry's limit too). */
export const MAX_DECLARED_SCHEDULES = 20;

type Fn<I, O> = (ctx: WorkflowContext, input: I) => O | Promise<O>;
type In<S extends StandardSchemaV1> = StandardSchemaV1.InferInput<S>;
type Out<S extends StandardSchemaV1> = StandardSchemaV1.InferOutput<S>;

/**
 * Defines a workflow. The name, version, task queue and every setting are checked here, so a bad
 * one fails at import time with a clear error instead of at the first run.
 *
 * With an `input` schema (zod 4 or any Standard Schema) the input type is inferred from it and the
 * function receives the parsed value; without one, annotate the parameter. An `output` schema
 * types and checks the result the same way.
 *
 * @example
 * ```ts
 * import { z } from 'zod';
 * import { defineSignal, defineWorkflow } from '@cairn/sdk';
 *
 * export const approval = defineSignal('approval', z.object({ approved: z.boolean() }));
 *
 * export const orderRefund = defineWorkflow(
 *   {
 *     name: 'order-refund',
 *     version: '1',
 *     input: z.object({ orderId: z.string(), amount: z.number().min(0) }),
 *     signals: [approval],
 *     retry: { maximumAttempts: 5 },
 *     timeouts: { run: '7d', step: '30s' },
 *   },
 *   async (ctx, input) => {
 *     // input: { orderId: string; amount: number }
 *     if (input.amount > 100 && !(await ctx.waitForSignal(approval, { timeout: '2d' })).approved) return { refunded: false };
 *     await ctx.step('refund', () => payments.refund(input.orderId, input.amount));
 *     return { refunded: true };
 *   },
 * );
 *
 * // Without schemas:
 * export const welcome = defineWorkflow({ name: 'welcome', version: '1' }, async (ctx, input: { email: string }) => {
 *   await ctx.step('send-welcome', { key: input.email }, () => mailer.send(input.email, 'Welcome!'));
 *   return { done: true };
 * });
 * ```
 */
export function defineWorkflow<I extends StandardSchemaV1, O extends StandardSchemaV1>(
  options: WorkflowOptions & { readonly input: I; readonly output: O },
  fn: Fn<Out<I>, In<O>>,
): WorkflowDefinition<In<I>, Out<O>>;
export function defineWorkflow<I extends StandardSchemaV1, Output>(
  options: WorkflowOptions & { readonly input: I; readonly output?: undefined },
  fn: Fn<Out<I>, Output>,
): WorkflowDefinition<In<I>, Awaited<Output>>;
export function defineWorkflow<Input, O extends StandardSchemaV1>(
  options: WorkflowOptions & { readonly input?: undefined; readonly output: O },
  fn: Fn<Input, In<O>>,
): WorkflowDefinition<Input, Out<O>>;
export function defineWorkflow<Input, Output>(
  options: WorkflowOptions & { readonly input?: undefined; readonly output?: undefined },
  fn: Fn<Input, Output>,
): WorkflowDefinition<Input, Awaited<Output>>;
export function defineWorkflow(options: WorkflowOptions, fn: Fn<unknown, unknown>): WorkflowDefinition {
  if (!isNonNullObject(options)) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      "defineWorkflow needs options: defineWorkflow({ name: 'my-workflow', version: '1' }, fn).",
    );
  }
  assertName(options.name, 'workflow name');
  const name = options.name;
  const what = `workflow "${name}"`;
  assertVersion(options.version, `version of ${what}`);
  const unknown = Object.keys(options).filter((k) => !OPTION_FIELDS.has(k));
  if (unknown.length > 0) {
    throw invalid(
      `Unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} of ${what}: the options are ${[...OPTION_FIELDS].join(', ')}.`,
    );
  }
  const taskQueue = options.taskQueue ?? 'default';
  assertName(taskQueue, `task queue of ${what}`);
  if (typeof fn !== 'function') {
    throw invalid(`Workflow "${name}" needs a function: defineWorkflow(options, async (ctx, input) => output).`);
  }
  const input = options.input === undefined ? undefined : declareSchema(options.input, 'input', `input schema of ${what}`);
  const output = options.output === undefined ? undefined : declareSchema(options.output, 'output', `output schema of ${what}`);
  const retry = options.retry === undefined ? undefined : checkedRetry(options.retry, what);
  return Object.freeze({
    name,
    version: options.version,
    taskQueue,
    input,
    output,
    signals: checkedSignals(options.signals, what),
    retry,
    timeouts: checkedTimeouts(options.timeouts, what),
    schedules: checkedSchedules(options.schedules, what),
    flowControl: options.flowControl === undefined ? undefined : checkedFlowControl(options.flowControl, what),
    run: async (ctx: WorkflowContext, value: unknown): Promise<unknown> => await fn(ctx, value),
  });
}

function invalid(message: string): CairnError {
  return new CairnError(ErrorCodes.INVALID_ARGUMENT, message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkedRetry(retry: RetryPolicy, what: string): RetryPolicy {
  resolveRetryPolicy(retry, `retry of ${what}`);
  return Object.freeze({
    ...retry,
    ...(retry.nonRetryableErrorTypes === undefined ? {} : { nonRetryableErrorTypes: Object.freeze([...retry.nonRetryableErrorTypes]) }),
  });
}

function checkedSignals(signals: unknown, what: string): readonly SignalDefinition[] {
  if (signals === undefined) return Object.freeze([]);
  if (!Array.isArray(signals)) throw invalid(`The signals of ${what} must be a list of defineSignal(...) definitions.`);
  const seen = new Set<string>();
  for (const signal of signals) {
    if (!isSignalDefinition(signal)) throw invalid(`The signals of ${what} must be a list of defineSignal(...) definitions.`);
    if (seen.has(signal.name)) throw invalid(`Signal "${signal.name}" is listed twice in the signals of ${what}.`);
    seen.add(signal.name);
  }
  return Object.freeze([...(signals as SignalDefinition[])]);
}

function checkedTimeouts(timeouts: unknown, what: string): WorkflowDefinition['timeouts'] {
  if (timeouts === undefined) return Object.freeze({ run: undefined, step: undefined });
  if (!isObject(timeouts)) throw invalid(`The timeouts of ${what} must be an object such as { run: '1d', step: '30s' }.`);
  const extra = Object.keys(timeouts).filter((k) => k !== 'run' && k !== 'step');
  if (extra.length > 0) throw invalid(`Unknown field ${extra.join(', ')} in the timeouts of ${what}: the fields are run and step.`);
  const bounded = (field: 'run' | 'step', min: number): number | undefined => {
    const value = timeouts[field];
    if (value === undefined) return undefined;
    const ms = toMilliseconds(value as Duration, `timeouts.${field} of ${what}`);
    if (ms < min || ms > TIMEOUT_LIMITS.maxMs) {
      throw invalid(`Invalid timeouts.${field} of ${what}: ${ms} ms is not from ${min} ms to 366 days.`);
    }
    return ms;
  };
  return Object.freeze({ run: bounded('run', TIMEOUT_LIMITS.minRunMs), step: bounded('step', TIMEOUT_LIMITS.minStepMs) });
}

function checkedSchedules(schedules: unknown, what: string): WorkflowDefinition['schedules'] {
  if (schedules === undefined) return Object.freeze([]);
  if (!Array.isArray(schedules) || schedules.length > MAX_DECLARED_SCHEDULES) {
    throw invalid(`The schedules of ${what} must be a list of at most ${MAX_DECLARED_SCHEDULES} { cron, timezone? } entries.`);
  }
  return Object.freeze(
    schedules.map((s: unknown, i) => {
      if (!isObject(s) || typeof s['cron'] !== 'string' || Object.keys(s).some((k) => k !== 'cron' && k !== 'timezone')) {
        throw invalid(`schedules[${i}] of ${what} must be { cron, timezone? }, e.g. { cron: '0 9 * * 1-5', timezone: 'Europe/Paris' }.`);
      }
      const cron = s['cron'].trim().replace(/\s+/g, ' ');
      if (!isCronShape(cron)) {
        throw invalid(
          `schedules[${i}].cron of ${what} is not a cron expression: give 5 or 6 fields of digits, * ? L W # / , - and ` +
            `upper-case month or day names (e.g. '0 9 * * MON-FRI'), or @hourly, @daily, @weekly, @monthly, @yearly.`,
        );
      }
      const timezone = s['timezone'] ?? 'UTC';
      if (typeof timezone !== 'string' || !isTimeZoneName(timezone)) {
        throw invalid(`schedules[${i}].timezone of ${what} is not an IANA time zone name such as 'Europe/Paris' or 'UTC'.`);
      }
      return Object.freeze({ cron, timezone });
    }),
  );
}

function checkedFlowControl(flow: unknown, what: string): ResolvedFlowControl {
  const shape = `{ concurrency?: { limit, perKey? }, rateLimit?: { limit, periodMs, perKey? } }`;
  if (!isObject(flow) || Object.keys(flow).some((k) => k !== 'concurrency' && k !== 'rateLimit')) {
    throw invalid(`The flowControl of ${what} must be ${shape}.`);
  }
  const whole = (value: unknown, min: number, max: number): value is number =>
    typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
  const perKey = (value: unknown, field: string): boolean => {
    if (value === undefined) return false;
    if (typeof value !== 'boolean') throw invalid(`flowControl.${field}.perKey of ${what} must be true or false.`);
    return value;
  };
  let concurrency: ResolvedFlowControl['concurrency'] = null;
  const c = flow['concurrency'];
  if (c !== undefined && c !== null) {
    if (
      !isObject(c) ||
      !whole(c['limit'], 1, FLOW_CONTROL_LIMITS.concurrency) ||
      Object.keys(c).some((k) => k !== 'limit' && k !== 'perKey')
    ) {
      throw invalid(
        `flowControl.concurrency of ${what} must be { limit, perKey? } with a whole limit from 1 to ${FLOW_CONTROL_LIMITS.concurrency}.`,
      );
    }
    concurrency = Object.freeze({ limit: c['limit'], perKey: perKey(c['perKey'], 'concurrency') });
  }
  let rateLimit: ResolvedFlowControl['rateLimit'] = null;
  const r = flow['rateLimit'];
  if (r !== undefined && r !== null) {
    if (
      !isObject(r) ||
      !whole(r['limit'], 1, FLOW_CONTROL_LIMITS.rateLimit) ||
      !whole(r['periodMs'], FLOW_CONTROL_LIMITS.minPeriodMs, FLOW_CONTROL_LIMITS.maxPeriodMs) ||
      Object.keys(r).some((k) => k !== 'limit' && k !== 'periodMs' && k !== 'perKey')
    ) {
      throw invalid(
        `flowControl.rateLimit of ${what} must be { limit, periodMs, perKey? }: a whole limit from 1 to ${FLOW_CONTROL_LIMITS.rateLimit} ` +
          `per periodMs from ${FLOW_CONTROL_LIMITS.minPeriodMs} to ${FLOW_CONTROL_LIMITS.maxPeriodMs} milliseconds.`,
      );
    }
    rateLimit = Object.freeze({ limit: r['limit'], periodMs: r['periodMs'], perKey: perKey(r['perKey'], 'rateLimit') });
  }
  return Object.freeze({ concurrency, rateLimit });
}
