import type { LanguageModel } from 'ai';
import { CairnError, ErrorCodes } from '@cairn/common/core';
import type { Duration } from '@cairn/common/core';

/**
 * What a step re-run by an eval gate learns about the previous output's failed checks: given to
 * the step function as `feedback` (for `ctx.model`, the same reasons are appended to the
 * messages).
 *
 * @example
 * ```ts
 * await ctx.step('write-summary', ({ feedback }) => writer.summarize(doc, { fix: feedback?.reasons }), {
 *   eval: { checks: [(s: string) => s.length <= 280 || 'longer than 280 characters'] },
 * });
 * ```
 */
export interface EvalFeedback {
  /** Which re-run this is: 1 for the first re-run after a failed verdict. */
  readonly round: number;
  /** Why the previous output failed, one reason per failed check. */
  readonly reasons: readonly string[];
  /** The previous output (the step's result, or the model call's object or text). */
  readonly previous: unknown;
}

/**
 * A Standard Schema (https://standardschema.dev): zod, valibot, arktype and others implement it.
 * Only the `~standard.validate` function is used; nothing is imported from any schema library.
 *
 * @example
 * ```ts
 * import { z } from 'zod';
 * const check: StandardSchemaLike = z.object({ title: z.string().max(80) });
 * ```
 */
export interface StandardSchemaLike {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardSchemaResult | Promise<StandardSchemaResult>;
  };
}

/**
 * The result of a Standard Schema's `validate`.
 *
 * @example
 * ```ts
 * const result: StandardSchemaResult = await schema['~standard'].validate(output);
 * if (result.issues) console.log(result.issues.map((i) => i.message));
 * ```
 */
export type StandardSchemaResult =
  | { readonly value: unknown; readonly issues?: undefined }
  | {
      readonly issues: ReadonlyArray<{
        readonly message: string;
        readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
      }>;
    };

/**
 * A predicate check: `true` (or `undefined`) passes, `false` fails, a string fails with that
 * string as the reason. It runs in the workflow, on every replay, so like workflow code it must be
 * a pure function of the output: no I/O (do I/O in a step, or use a judge).
 *
 * @example
 * ```ts
 * const short: EvalPredicate<string> = (text) => text.length <= 280 || `is ${text.length} characters, at most 280`;
 * ```
 */
// A method signature makes the parameter bivariant, so a check written for a narrower output type
// still fits a gate typed with a wider one (and model options typed per schema stay assignable).
export type EvalPredicate<T> = {
  check(output: T): boolean | string | undefined | Promise<boolean | string | undefined>;
}['check'];

/**
 * An LLM judge: the output is shown to `model` with `criteria`, and the model answers whether it
 * passes, with a score from 0 to 1 and a reason. The judge is a durable model call of its own,
 * named `eval.<name>.judge`, journaled with its transcript like any `ctx.model` call.
 *
 * @example
 * ```ts
 * const judge: EvalJudge = { judge: { model: mistral('mistral-large-latest'), criteria: 'Polite, and answers the question asked.', threshold: 0.7 } };
 * ```
 */
export interface EvalJudge {
  readonly judge: {
    /** The judge model, or an ordered fallback list. */
    readonly model: LanguageModel | readonly LanguageModel[];
    /** What a passing output must satisfy, in words. */
    readonly criteria: string;
    /** Lowest passing score, from 0 to 1; without it the judge's own pass/fail decides. */
    readonly threshold?: number;
  };
}

/**
 * One check of an eval gate: a Standard Schema (zod …), a predicate, or an LLM judge.
 *
 * @example
 * ```ts
 * const checks: EvalCheck<{ title: string }>[] = [
 *   z.object({ title: z.string().min(1) }),
 *   (o) => !o.title.includes('TODO') || 'contains TODO',
 *   { judge: { model, criteria: 'The title is specific to the article.' } },
 * ];
 * ```
 */
export type EvalCheck<T> = StandardSchemaLike | EvalPredicate<T> | EvalJudge;

/**
 * The `eval` option of `ctx.step` and `ctx.model`: a gate the output must pass. After each run of
 * the call, schema and predicate checks run first, then (only if they pass) the judges; the
 * verdict is recorded as a step of its own named `eval.<name>` — `completed` when it passes,
 * `failed` when it does not; the reasons and scores stay in the data plane's journal. A failed
 * verdict re-runs the call with the reasons as feedback, up to `maxRetries` times; then the call
 * throws {@link EvalFailedError}, or with `onFail: 'approval'` waits for a human:
 * `ctx.approval('eval.<name>', { key })` — approved accepts the output, rejected throws.
 *
 * @example
 * ```ts
 * const { text } = await ctx.model('reply', {
 *   model, prompt: ticket.body,
 *   eval: { checks: [(t: string) => !/refund guaranteed/i.test(t) || 'promises a refund'], maxRetries: 2, onFail: 'approval' },
 * });
 * ```
 */
export interface EvalOptions<T = unknown> {
  /** The checks, all of which must pass. At least one. */
  readonly checks: readonly EvalCheck<T>[];
  /** Re-runs after a failed verdict before giving up (or asking a human). Default 2. */
  readonly maxRetries?: number;
  /** When the re-runs are used up: `'fail'` (default) throws, `'approval'` asks a human. */
  readonly onFail?: 'fail' | 'approval';
  /** With `onFail: 'approval'`: how long to wait for the human (see `ctx.approval`). Default: no limit. */
  readonly approvalTimeout?: Duration;
}

/**
 * One check's verdict, as the journal keeps it (data plane only).
 *
 * @example
 * ```ts
 * const c: EvalCheckVerdict = { check: 2, kind: 'judge', pass: false, score: 0.4, reason: 'Does not answer the question.' };
 * ```
 */
export interface EvalCheckVerdict {
  /** The check's index in `checks`. */
  readonly check: number;
  readonly kind: 'schema' | 'predicate' | 'judge';
  readonly pass: boolean;
  /** A judge's score, from 0 to 1. */
  readonly score?: number;
  readonly reason?: string;
}

/**
 * The verdict of one round of an eval gate: the value journaled by its `eval.<name>` step. Only
 * the step's status (completed = pass, failed = fail) reaches the control plane.
 *
 * @example
 * ```ts
 * const v: EvalVerdict = { pass: false, round: 0, reasons: ['is 312 characters, at most 280'], checks: [] };
 * ```
 */
export interface EvalVerdict {
  readonly pass: boolean;
  /** 0 for the first run of the call, 1 for the first re-run … */
  readonly round: number;
  /** The lowest judge score, when a judge ran. */
  readonly score?: number;
  /** Why it failed, one entry per failed check (empty when it passed). */
  readonly reasons: readonly string[];
  readonly checks: readonly EvalCheckVerdict[];
}

/**
 * What `ctx.step` and `ctx.model` throw when an eval gate's output still fails after
 * `maxRetries` re-runs (or a human rejected it, with `onFail: 'approval'`). Its code is
 * CAIRN-2002 (`STEP_FAILED`, like a step that failed for good); left uncaught, the run fails with
 * `STEP_FAILED`. The reasons are in the message, which stays in the data plane.
 *
 * @example
 * ```ts
 * try {
 *   await ctx.model('headline', { model, prompt, eval: { checks: [(t: string) => t.length <= 80 || 'too long'] } });
 * } catch (err) {
 *   if (err instanceof EvalFailedError) console.log(err.callName, err.rounds, err.reasons);
 *   throw err;
 * }
 * ```
 */
export class EvalFailedError extends CairnError {
  /** The gated call's static name. */
  readonly callName: string;
  /** How many times the call ran. */
  readonly rounds: number;
  /** Why the last output failed. */
  readonly reasons: readonly string[];
  /** Set when a human was asked (`onFail: 'approval'`) and rejected the output. */
  readonly rejectedBy: string | undefined;

  constructor(init: { callName: string; rounds: number; reasons: readonly string[]; rejected?: boolean; rejectedBy?: string | undefined }) {
    const runs = `${init.rounds} ${init.rounds === 1 ? 'run' : 'runs'}`;
    const human = init.rejected
      ? `, and ${init.rejectedBy === undefined ? 'a reviewer' : JSON.stringify(init.rejectedBy)} rejected it`
      : '';
    super(
      ErrorCodes.STEP_FAILED,
      `The output of "${init.callName}" failed its eval checks after ${runs}${human}: ${init.reasons.join('; ') || 'no reason given'}`,
      { details: { callName: init.callName, rounds: init.rounds } },
    );
    this.name = 'EvalFailedError';
    this.callName = init.callName;
    this.rounds = init.rounds;
    this.reasons = Object.freeze([...init.reasons]);
    this.rejectedBy = init.rejected ? init.rejectedBy : undefined;
  }
}
