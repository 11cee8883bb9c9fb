// Eval gates: judge a step's or model call's output, record each round's verdict as a step
// `eval.<name>`, re-run with feedback, and fail or ask a human when the re-runs are used up.
import { ErrorCode, StepKind, StepStatus } from '@cairn/proto';
import {
  EvalFailedError,
  type ApprovalOptions,
  type ApprovalResult,
  type EvalFeedback,
  type EvalVerdict,
  type ModelCallOptions,
  type ModelResult,
} from '@cairn/sdk';
import type { StepErrorRecord } from '../../errors.js';
import { JUDGE_SCHEMA, JUDGE_SYSTEM, judgePrompt, judgeVerdict, localChecks, type JudgeAnswer, type PreparedEval } from '../../eval.js';
import { time, type Slot } from '../basics.js';
import type { Run } from '../run.js';

/** The ctx calls a gate makes: judges are model calls, the last word may be a human's. */
export interface GateCalls {
  model(name: string, options: ModelCallOptions): Promise<ModelResult>;
  approval(name: string, options: ApprovalOptions): Promise<ApprovalResult>;
}

/**
 * An eval gate around a producing call: run it, judge the output (schema and predicate checks
 * in the workflow, then the judges as durable model calls), record the verdict as the step
 * `eval.<name>`, and re-run with feedback until it passes or the re-runs are used up; then
 * fail, or ask a human. Every call it makes is an ordinary durable call in the caller's scope,
 * so a replay walks the same rounds from the journal.
 */
export async function gated<R>(
  run: Run,
  calls: GateCalls,
  name: string,
  key: string | number | undefined,
  gate: PreparedEval,
  produce: (feedback: EvalFeedback | undefined, previous: R | undefined) => Promise<R>,
  outputOf: (result: R) => unknown,
): Promise<R> {
  let feedback: EvalFeedback | undefined;
  let previous: R | undefined;
  for (let round = 0; ; round++) {
    const result = await produce(feedback, previous);
    const output = outputOf(result);
    const checks = await localChecks(gate.checks, output);
    if (checks.every((c) => c.pass)) {
      for (const check of gate.checks) {
        if (check.kind !== 'judge') continue;
        const judged = await calls.model(gate.judgeName, {
          model: check.model,
          system: JUDGE_SYSTEM,
          prompt: judgePrompt(check.criteria, output),
          schema: JUDGE_SCHEMA,
          temperature: 0,
          stream: false,
          ...(key === undefined ? {} : { key }),
        });
        checks.push(judgeVerdict(check, judged.object as JudgeAnswer));
        if (!checks[checks.length - 1]!.pass) break;
      }
    }
    const scores = checks.flatMap((c) => (c.score === undefined ? [] : [c.score]));
    const computed: EvalVerdict = {
      pass: checks.every((c) => c.pass),
      round,
      ...(scores.length > 0 ? { score: Math.min(...scores) } : {}),
      reasons: checks.flatMap((c) => (c.pass || c.reason === undefined ? [] : [c.reason])),
      checks,
    };
    const slot = run.cursor.slot('step', gate.verdictName, key);
    const verdict = await run.durable(() => recordVerdict(run, slot, gate.verdictName, computed));
    if (verdict.pass) return result;
    if (round >= gate.maxRetries) {
      if (gate.onFail === 'fail') throw new EvalFailedError({ callName: name, rounds: round + 1, reasons: verdict.reasons });
      const answer = await calls.approval(gate.verdictName, {
        ...(key === undefined ? {} : { key }),
        ...(gate.approvalTimeoutMs === undefined ? {} : { timeout: gate.approvalTimeoutMs }),
      });
      if (answer.approved) return result;
      throw new EvalFailedError({ callName: name, rounds: round + 1, reasons: verdict.reasons, rejected: true, rejectedBy: answer.by });
    }
    feedback = { round: round + 1, reasons: verdict.reasons, previous: output };
    previous = result;
  }
}

/**
 * The verdict of one round of an eval gate, as a step of its own: `completed` when it passed,
 * `failed` when it did not. The verdict (reasons, scores) is the entry's journaled value and, for
 * a failure, its error: both stay in the data plane; the control plane gets the status. A replay
 * returns the journaled verdict.
 */
async function recordVerdict(run: Run, slot: Slot, name: string, verdict: EvalVerdict): Promise<EvalVerdict> {
  const { position, keyDigest } = slot;
  const replay = run.cursor.replay(slot, { kind: 'step', name, keyDigest }, ['completed', 'failed'], `eval verdict "${name}"`);
  if (replay.status !== 'new') return replay.entry.value as EvalVerdict;
  run.throwIfCancelled();
  const at = run.deps.clock.now();
  const status = verdict.pass ? 'completed' : 'failed';
  const error: StepErrorRecord | undefined = verdict.pass
    ? undefined
    : { name: 'EvalCheckFailed', message: verdict.reasons.join('; ') || 'the output failed its checks' };
  const { errorRefs, sizes } = await run.writer.append([
    { position, kind: 'step', name, keyDigest, status, attempt: 1, value: verdict, error, startedAt: at, endedAt: at },
  ]);
  run.reports.report(run.epoch, {
    position,
    kind: StepKind.STEP,
    name,
    keyDigest: keyDigest ?? '',
    attempt: 1,
    status: verdict.pass ? StepStatus.COMPLETED : StepStatus.FAILED,
    errorCode: verdict.pass ? ErrorCode.UNSPECIFIED : ErrorCode.STEP_FAILED,
    retryable: false,
    errorRef: errorRefs.get(position) ?? '',
    startedAt: time(at),
    endedAt: time(at),
    outputSize: BigInt(sizes.get(position) ?? 0),
  });
  return verdict;
}
