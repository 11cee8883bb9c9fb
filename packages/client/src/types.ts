import type { components } from './gen/gateway.js';

type Schemas = components['schemas'];

/** A run's metadata as the gateway shows it. */
export type RunView = Schemas['RunView'];
/** One attempt of one durable call on a run's timeline. */
export type StepView = Schemas['StepView'];
/** An error as the data plane stored it: name, message, stack and Cairn code. */
export type ErrorView = Schemas['ErrorView'];
/** Something that may keep a run from running soon: a closed code and a sentence saying what. */
export type RunWarning = Schemas['RunWarning'];
/** The states of a run. */
export type RunStatus = Schemas['RunStatus'];

/**
 * A workflow definition as `defineWorkflow` from `@cairn/sdk` returns it, seen structurally: its
 * name, version and function. The client never calls the function; it only reads its types.
 */
export interface WorkflowDefinitionLike<Input = never, Output = unknown> {
  readonly name: string;
  readonly version: string;
  run(ctx: never, input: Input): Promise<Output>;
}

declare const types: unique symbol;

/**
 * A reference to a workflow by name, typed like its definition: see {@link workflowRef}. Carries
 * no code.
 */
export interface WorkflowRef<Input = unknown, Output = unknown> {
  readonly name: string;
  /** A version to pin; default: the newest one a worker announced. */
  readonly version?: string | undefined;
  /** Types only; never set. */
  readonly [types]?: { readonly input: Input; readonly output: Output };
}

/** What `client.start` accepts: a workflow definition, or a {@link WorkflowRef}. */
export type WorkflowLike = WorkflowDefinitionLike | WorkflowRef;

/**
 * The input type of a workflow definition or reference.
 *
 * @example
 * ```ts
 * const input: InputOf<typeof orderRefund> = { orderId: 'o-1', amount: 25 };
 * ```
 */
export type InputOf<W> = W extends { run(ctx: never, input: infer I): unknown }
  ? I
  : W extends { readonly [types]?: { readonly input: infer I } }
    ? I
    : never;

/** The output type of a workflow definition or reference. */
export type OutputOf<W> = W extends { run(ctx: never, input: never): Promise<infer O> }
  ? O
  : W extends { readonly [types]?: { readonly output: infer O } }
    ? O
    : unknown;

/**
 * A typed reference to a workflow, for code that cannot import the definition at run time (a
 * browser app, a service in another repository): import its type only.
 *
 * @example
 * ```ts
 * import type { orderRefund } from '../workflows/order-refund.js';
 * const refund = workflowRef<typeof orderRefund>('order-refund');
 * const run = await client.start(refund, { orderId: 'o-1', amount: 25 }); // input checked at compile time
 * ```
 */
export function workflowRef<W extends WorkflowLike = WorkflowRef>(name: string, version?: string): WorkflowRef<InputOf<W>, OutputOf<W>> {
  return version === undefined ? { name } : { name, version };
}

/**
 * A signal as `defineSignal(name, schema)` from `@cairn/sdk` returns it, seen structurally: its
 * name and, for the types, its body.
 */
export interface SignalLike<Body = unknown> {
  readonly name: string;
  /** Types only (the SDK's phantom body type). */
  readonly '~body'?: Body;
}

/** The phantom body type a signal definition carries: its `~body`, else `__body`, else `~types.body`. */
type PhantomBody<S> = '~body' extends keyof S
  ? S extends { readonly '~body'?: infer B }
    ? B
    : unknown
  : '__body' extends keyof S
    ? S extends { readonly __body?: infer B }
      ? B
      : unknown
    : S extends { readonly '~types'?: { readonly body: infer B } }
      ? B
      : unknown;

/**
 * The body type of a signal definition (`defineSignal` from `@cairn/sdk` carries it as `~body`;
 * `__body` and `~types.body` are read too); `unknown` for a bare name.
 */
export type SignalBodyOf<S> = S extends string ? unknown : PhantomBody<S>;

/** An answer to a `ctx.approval`: who, a comment, data; `key` when the workflow gave one. */
export interface ApprovalAnswer<Data = unknown> {
  readonly by?: string;
  readonly comment?: string;
  readonly data?: Data;
  /** The key the workflow gave `ctx.approval(name, { key })`, when it gave one. */
  readonly key?: string | number;
}

/** One event of a run's live output (`handle.stream()`). */
export type RunStreamEvent =
  | {
      readonly type: 'delta';
      /** The event's place in the run's stream (its SSE id): 1, 2, 3, … */
      readonly id: number;
      /** The journal position of the model call. */
      readonly position: number;
      /** The call's static name. */
      readonly name: string;
      /** The attempt the text belongs to: text of an earlier attempt of the same call is superseded. */
      readonly attempt: number;
      readonly text: string;
    }
  | {
      readonly type: 'model-done';
      readonly id: number;
      readonly position: number;
      readonly name: string;
      /** The attempt whose result was journaled. */
      readonly attempt: number;
    }
  | {
      /** The run ended; the iteration ends after this event. */
      readonly type: 'end';
      readonly runId: string;
      readonly status: RunStatus | null;
    };
