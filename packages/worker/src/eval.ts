// The worker's side of eval gates: checking the `eval` option, running schema and predicate
// checks, and what an LLM judge is asked. The engine makes the durable calls (the producing call,
// the judges, the verdict step, the approval).
import { jsonSchema, type LanguageModel, type ModelMessage } from 'ai';
import { CairnError, ErrorCodes, isNonNullObject } from '@cairn/common';
import { APPROVAL_KEYED_NAME_MAX_LENGTH, APPROVAL_NAME_MAX_LENGTH } from '@cairn/payload-store';
import {
  type EvalCheckVerdict,
  type EvalFeedback,
  type EvalOptions,
  type EvalPredicate,
  type ModelCallOptions,
  type StandardSchemaLike,
  type StandardSchemaResult,
} from '@cairn/sdk';
import { modelRef } from './model.js';
import { toMilliseconds } from '@cairn/sdk/internal';

/** One check of a gate, sorted by kind. */
export type PreparedCheck =
  | { readonly kind: 'schema'; readonly index: number; readonly schema: StandardSchemaLike }
  | { readonly kind: 'predicate'; readonly index: number; readonly predicate: EvalPredicate<unknown> }
  | {
      readonly kind: 'judge';
      readonly index: number;
      readonly model: LanguageModel | readonly LanguageModel[];
      readonly criteria: string;
      readonly threshold: number | undefined;
    };

/** The `eval` option, checked, with defaults filled in. */
export interface PreparedEval {
  readonly checks: readonly PreparedCheck[];
  readonly maxRetries: number;
  readonly onFail: 'fail' | 'approval';
  readonly approvalTimeoutMs: number | undefined;
  /** `eval.<name>`: the verdict steps' name (and the approval's, with `onFail: 'approval'`). */
  readonly verdictName: string;
  /** `eval.<name>.judge`: the judges' model calls. */
  readonly judgeName: string;
}

const invalid = (message: string): CairnError => new CairnError(ErrorCodes.INVALID_ARGUMENT, message);

/** `prefix + name`, cut to the name limit (100). */
const named = (prefix: string, name: string, suffix = ''): string => `${prefix}${name}`.slice(0, 100 - suffix.length) + suffix;

/** Checks the `eval` option of the call `what` (`step "x"`, `model call "x"`); throws a clear CAIRN-1101. */
export function prepareEval(name: string, what: string, options: unknown, hasKey: boolean): PreparedEval {
  if (typeof options !== 'object' || options === null) {
    throw invalid(`The eval option of ${what} must be an object such as { checks: [schema, (output) => true] }.`);
  }
  const o = options as EvalOptions;
  if (!Array.isArray(o.checks) || o.checks.length === 0) {
    throw invalid(`The eval option of ${what} needs checks: a non-empty list of schemas, predicates or { judge: { model, criteria } }.`);
  }
  const checks = o.checks.map((check: unknown, index): PreparedCheck => {
    if (typeof check === 'function') return { kind: 'predicate', index, predicate: check as EvalPredicate<unknown> };
    if (typeof check === 'object' && check !== null) {
      const standard = (check as Partial<StandardSchemaLike>)['~standard'];
      if (isNonNullObject(standard) && typeof standard.validate === 'function') {
        return { kind: 'schema', index, schema: check as StandardSchemaLike };
      }
      const judge = (check as { judge?: unknown }).judge;
      if (typeof judge === 'object' && judge !== null) {
        const j = judge as { model?: unknown; criteria?: unknown; threshold?: unknown };
        const models: readonly unknown[] = Array.isArray(j.model) ? (j.model as unknown[]) : [j.model];
        if (models.length === 0) throw invalid(`Check ${index} of the eval of ${what} is a judge without a model.`);
        models.forEach((m) => modelRef(m, `The judge model of check ${index} of the eval of ${what}`));
        if (typeof j.criteria !== 'string' || j.criteria.trim() === '') {
          throw invalid(`Check ${index} of the eval of ${what} is a judge without criteria: say in words what a passing output must do.`);
        }
        if (j.threshold !== undefined && (typeof j.threshold !== 'number' || !(j.threshold >= 0 && j.threshold <= 1))) {
          throw invalid(`The threshold of judge check ${index} of the eval of ${what} must be a number from 0 to 1.`);
        }
        return {
          kind: 'judge',
          index,
          model: j.model as LanguageModel | readonly LanguageModel[],
          criteria: j.criteria,
          threshold: j.threshold,
        };
      }
    }
    throw invalid(
      `Check ${index} of the eval of ${what} is not a check: give a Standard Schema (zod …), a function (output) => true | false | 'reason', ` +
        'or { judge: { model, criteria } }.',
    );
  });
  const maxRetries = o.maxRetries ?? 2;
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    throw invalid(`The maxRetries of the eval of ${what} must be a whole number of at least 0, got ${String(o.maxRetries)}.`);
  }
  const onFail: unknown = o.onFail ?? 'fail';
  if (onFail !== 'fail' && onFail !== 'approval') throw invalid(`The onFail option of the eval of ${what} must be 'fail' or 'approval'.`);
  const verdictName = named('eval.', name);
  if (onFail === 'approval') {
    const max = hasKey ? APPROVAL_KEYED_NAME_MAX_LENGTH : APPROVAL_NAME_MAX_LENGTH;
    if (verdictName.length > max) {
      throw invalid(
        `With onFail: 'approval' the eval of ${what} waits for the approval "${verdictName}", which can have at most ${max} characters` +
          `${hasKey ? ' with a key' : ''}: give the call a name of at most ${max - 'eval.'.length} characters.`,
      );
    }
  }
  return {
    checks,
    maxRetries,
    onFail,
    approvalTimeoutMs:
      o.approvalTimeout === undefined ? undefined : toMilliseconds(o.approvalTimeout, `approvalTimeout of the eval of ${what}`),
    verdictName,
    judgeName: named('eval.', name, '.judge'),
  };
}

function describeIssues(result: StandardSchemaResult): string | undefined {
  if (!result.issues) return undefined;
  if (result.issues.length === 0) return 'does not match the schema';
  return result.issues
    .map((issue) => {
      const path = (issue.path ?? []).map((p) => String(isNonNullObject(p) && 'key' in p ? p.key : p)).join('.');
      return path === '' ? issue.message : `${path}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * Runs the schema and predicate checks on `output`, in order. They are workflow code (pure
 * functions of an output that is journaled), so running them again on a replay gives the same
 * verdicts; the verdict step journals them all the same.
 */
export async function localChecks(checks: readonly PreparedCheck[], output: unknown): Promise<EvalCheckVerdict[]> {
  const verdicts: EvalCheckVerdict[] = [];
  for (const check of checks) {
    if (check.kind === 'judge') continue;
    try {
      if (check.kind === 'schema') {
        const reason = describeIssues(await check.schema['~standard'].validate(output));
        verdicts.push({ check: check.index, kind: 'schema', pass: reason === undefined, ...(reason === undefined ? {} : { reason }) });
      } else {
        const answer = await check.predicate(output);
        const pass = answer === true || answer === undefined;
        const reason = pass ? undefined : typeof answer === 'string' && answer !== '' ? answer : `check ${check.index} returned false`;
        verdicts.push({ check: check.index, kind: 'predicate', pass, ...(reason === undefined ? {} : { reason }) });
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      verdicts.push({ check: check.index, kind: check.kind, pass: false, reason: `check ${check.index} threw ${e.name}: ${e.message}` });
    }
  }
  return verdicts;
}

/** What a judge answers. */
export interface JudgeAnswer {
  readonly pass: boolean;
  readonly score: number;
  readonly reason: string;
}

/** The judge's structured output; an answer of another shape fails validation, so the call retries. */
export const JUDGE_SCHEMA = jsonSchema<JudgeAnswer>(
  {
    type: 'object',
    properties: {
      pass: { type: 'boolean', description: 'Whether the output meets every criterion.' },
      score: { type: 'number', minimum: 0, maximum: 1, description: 'How well it meets them, from 0 to 1.' },
      reason: { type: 'string', description: 'One or two sentences: what is wrong, or why it passes.' },
    },
    required: ['pass', 'score', 'reason'],
    additionalProperties: false,
  },
  {
    validate: (value) => {
      const v = value as Partial<JudgeAnswer> | null;
      if (
        typeof v === 'object' &&
        v !== null &&
        typeof v.pass === 'boolean' &&
        typeof v.score === 'number' &&
        v.score >= 0 &&
        v.score <= 1 &&
        typeof v.reason === 'string'
      ) {
        return { success: true, value: { pass: v.pass, score: v.score, reason: v.reason } };
      }
      return {
        success: false,
        error: new Error('The judge must answer {"pass": boolean, "score": number from 0 to 1, "reason": string}.'),
      };
    },
  },
);

export const JUDGE_SYSTEM =
  'You are a strict evaluator. You judge whether an output meets the criteria you are given, and nothing else. ' +
  'Answer with JSON only: {"pass": true or false, "score": a number from 0 to 1, "reason": one or two sentences}.';

/** The judge's prompt: the criteria and the output. */
export function judgePrompt(criteria: string, output: unknown): string {
  // JSON.stringify gives undefined for a function, a symbol or undefined.
  const text = typeof output === 'string' ? output : (JSON.stringify(output, null, 2) as string | undefined);
  return `Criteria:\n${criteria}\n\nOutput to judge:\n${text ?? String(output)}`;
}

/** A judge's answer as a check verdict. */
export function judgeVerdict(check: Extract<PreparedCheck, { kind: 'judge' }>, answer: JudgeAnswer): EvalCheckVerdict {
  const pass = answer.pass && (check.threshold === undefined || answer.score >= check.threshold);
  const below = answer.pass && !pass ? ` (score ${answer.score} is below the threshold ${check.threshold})` : '';
  return {
    check: check.index,
    kind: 'judge',
    pass,
    score: answer.score,
    ...(pass ? {} : { reason: `${answer.reason || `the judge scored ${answer.score}`}${below}` }),
  };
}

/** The text of the user message that tells a model what failed. */
export function feedbackText(feedback: EvalFeedback): string {
  return [
    'Your previous answer did not pass these checks:',
    ...feedback.reasons.map((r) => `- ${r}`),
    'Answer again, fixing these problems.',
  ].join('\n');
}

/**
 * The model call's options for a re-run: the conversation so far (the prompt as a user message,
 * or the messages), the previous answer, and a user message saying what failed.
 */
export function withFeedback(options: ModelCallOptions, feedback: EvalFeedback, previousText: string): ModelCallOptions {
  const { prompt, messages, ...rest } = options;
  const conversation: ModelMessage[] = messages !== undefined ? [...messages] : [{ role: 'user', content: prompt ?? '' }];
  conversation.push({ role: 'assistant', content: previousText }, { role: 'user', content: feedbackText(feedback) });
  return { ...rest, messages: conversation };
}
