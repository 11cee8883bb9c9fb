// Step reports: every status change of a durable call goes to the control plane off the hot path
// (the worker batches them); a new execution re-reports what the journal holds.
import type { Logger } from '@cairn/common';
import type { JournalEntry } from '@cairn/payload-store';
import { ErrorCode, StepInfoSchema, StepKind, StepReportSchema, StepStatus, create, type StepInfo, type StepReport } from '@cairn/proto';
import type { ModelResult, ModelUsage } from '@cairn/sdk';
import { stepErrorCode } from '../errors.js';
import { modelState } from './calls/model-state.js';
import { time } from './basics.js';

const STEP_STATUS: Record<JournalEntry['status'], StepStatus> = {
  completed: StepStatus.COMPLETED,
  failed: StepStatus.FAILED,
  retrying: StepStatus.RETRYING,
  waiting: StepStatus.WAITING,
  timed_out: StepStatus.FAILED,
};

const STEP_KIND: Record<Exclude<JournalEntry['kind'], 'now'>, StepKind> = {
  step: StepKind.STEP,
  sleep: StepKind.SLEEP,
  signal: StepKind.SIGNAL,
  model: StepKind.MODEL,
  child: StepKind.CHILD,
};

export class Reports {
  readonly #runId: string;
  readonly #sink: (report: StepReport) => void;
  readonly #log: Logger;

  constructor(runId: string, sink: (report: StepReport) => void, log: Logger) {
    this.#runId = runId;
    this.#sink = sink;
    this.#log = log;
  }

  report(epoch: number, info: Partial<Omit<StepInfo, '$typeName'>>): void {
    try {
      this.#sink(create(StepReportSchema, { runId: this.#runId, epoch, step: create(StepInfoSchema, info) }));
    } catch (err) {
      this.#log.warn({ err }, 'could not queue a step report');
    }
  }

  /** Re-reports what the journal holds (idempotent upserts that reconcile the control plane). */
  reportJournal(journal: readonly JournalEntry[]): void {
    for (const e of journal) {
      if (e.kind === 'now') continue;
      const failed = e.status === 'failed' || e.status === 'retrying';
      const errorCode =
        e.status === 'timed_out'
          ? ErrorCode.SIGNAL_TIMEOUT
          : failed
            ? e.error
              ? stepErrorCode(e.error)
              : ErrorCode.STEP_FAILED
            : ErrorCode.UNSPECIFIED;
      this.report(e.epoch, {
        position: e.position,
        kind: STEP_KIND[e.kind],
        name: e.name,
        keyDigest: e.keyDigest ?? '',
        attempt: e.attempt,
        status: STEP_STATUS[e.status],
        errorCode,
        retryable: e.status === 'retrying',
        errorRef: e.errorRef ?? '',
        startedAt: time(e.startedAt),
        endedAt: time(e.endedAt),
        dueAt: time(e.dueAt),
        outputSize: e.status === 'completed' ? BigInt(e.outputSize) : 0n,
        ...(e.kind === 'model' ? modelReportFields(e) : {}),
      });
    }
  }
}

/** The token counts of a model attempt, as a step report carries them. */
export function tokenFields(usage: ModelUsage | undefined): { inputTokens: bigint; outputTokens: bigint } {
  const count = (n: number | undefined): bigint => BigInt(Math.max(0, Math.round(n ?? 0)));
  return { inputTokens: count(usage?.inputTokens), outputTokens: count(usage?.outputTokens) };
}

/** Provider, model and tokens of a model call's journaled (latest) attempt, for a re-report. */
function modelReportFields(entry: JournalEntry): Partial<StepInfo> {
  if (entry.status === 'completed') {
    const result = entry.value as Partial<ModelResult> | undefined;
    return { provider: result?.provider ?? '', model: result?.model ?? '', ...tokenFields(result?.usage) };
  }
  const last = modelState(entry.value, entry.attempt).attempts.at(-1);
  return { provider: last?.provider ?? '', model: last?.model ?? '', ...tokenFields(last?.usage) };
}
