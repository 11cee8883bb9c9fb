import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes } from '@cairn/common';
import { UsageRepository } from './usage.repository.js';

export interface TokenUsage {
  readonly provider: string;
  readonly model: string;
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/** One workflow's share of a day (or of the range). */
export interface WorkflowUsage {
  /** The workflow's name as runs hold it (in strict residency mode, a keyed digest). */
  readonly workflow: string;
  readonly runsStarted: number;
  readonly stepsExecuted: number;
  readonly modelCalls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

export interface UsageDay {
  readonly day: string;
  readonly runsStarted: number;
  readonly stepsExecuted: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly tokens: TokenUsage[];
  readonly workflows: WorkflowUsage[];
}

export interface UsageReport {
  readonly from: string;
  readonly to: string;
  readonly days: UsageDay[];
  readonly totals: Omit<UsageDay, 'day'>;
}

/** The longest range one usage request may cover. */
export const MAX_USAGE_DAYS = 366;
const DAY_MS = 86_400_000;

const dayText = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

function parseDay(value: string, field: string): number {
  const ms = Date.parse(`${value}T00:00:00Z`);
  if (!/^\d{4}-\d\d-\d\d$/.test(value) || Number.isNaN(ms) || dayText(ms) !== value) {
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `query parameter ${field} must be a day as YYYY-MM-DD (UTC)`, { details: { field } });
  }
  return ms;
}

function sumTokens(rows: readonly TokenUsage[]): TokenUsage[] {
  const byModel = new Map<string, TokenUsage>();
  for (const r of rows) {
    const key = `${r.provider}\u0000${r.model}`;
    const seen = byModel.get(key);
    byModel.set(
      key,
      seen
        ? {
            ...seen,
            calls: seen.calls + r.calls,
            inputTokens: seen.inputTokens + r.inputTokens,
            outputTokens: seen.outputTokens + r.outputTokens,
          }
        : { provider: r.provider, model: r.model, calls: r.calls, inputTokens: r.inputTokens, outputTokens: r.outputTokens },
    );
  }
  return [...byModel.values()].sort((a, b) =>
    a.provider === b.provider ? (a.model < b.model ? -1 : 1) : a.provider < b.provider ? -1 : 1,
  );
}

function sumWorkflows(rows: readonly WorkflowUsage[]): WorkflowUsage[] {
  const byName = new Map<string, WorkflowUsage>();
  for (const r of rows) {
    const seen = byName.get(r.workflow);
    byName.set(
      r.workflow,
      seen
        ? {
            workflow: r.workflow,
            runsStarted: seen.runsStarted + r.runsStarted,
            stepsExecuted: seen.stepsExecuted + r.stepsExecuted,
            modelCalls: seen.modelCalls + r.modelCalls,
            inputTokens: seen.inputTokens + r.inputTokens,
            outputTokens: seen.outputTokens + r.outputTokens,
          }
        : { ...r },
    );
  }
  return [...byName.values()].sort((a, b) => (a.workflow < b.workflow ? -1 : a.workflow > b.workflow ? 1 : 0));
}

/** Usage per project per UTC day: runs started, steps executed, model tokens by provider and model. */
@Injectable()
export class UsageService {
  constructor(@Inject(UsageRepository) private readonly usage: UsageRepository) {}

  /**
   * Every day from `from` to `to` (inclusive, UTC; default: the last 30 days up to today), zeros
   * included, and the totals.
   */
  async report(projectId: string, range: { from?: string | undefined; to?: string | undefined }): Promise<UsageReport> {
    const today = Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`);
    const toMs = range.to === undefined ? today : parseDay(range.to, 'to');
    const fromMs = range.from === undefined ? toMs - 29 * DAY_MS : parseDay(range.from, 'from');
    if (fromMs > toMs)
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'query parameter from must not be after to', { details: { field: 'from' } });
    if ((toMs - fromMs) / DAY_MS + 1 > MAX_USAGE_DAYS) {
      throw new CairnError(
        ErrorCodes.INVALID_ARGUMENT,
        `the range from..to may cover at most ${MAX_USAGE_DAYS} days: ask for a shorter range`,
        {
          details: { field: 'from' },
        },
      );
    }
    const from = dayText(fromMs);
    const to = dayText(toMs);
    const [daily, tokens, workflows] = await Promise.all([
      this.usage.daily(projectId, from, to),
      this.usage.dailyTokens(projectId, from, to),
      this.usage.dailyWorkflows(projectId, from, to),
    ]);
    const workflowsByDay = new Map<string, WorkflowUsage[]>();
    for (const { day, ...w } of workflows) {
      const list = workflowsByDay.get(day) ?? [];
      list.push(w);
      workflowsByDay.set(day, list);
    }
    const counters = new Map(daily.map((d) => [d.day, d]));
    const tokensByDay = new Map<string, TokenUsage[]>();
    for (const t of tokens) {
      const list = tokensByDay.get(t.day) ?? [];
      list.push({ provider: t.provider, model: t.model, calls: t.calls, inputTokens: t.inputTokens, outputTokens: t.outputTokens });
      tokensByDay.set(t.day, list);
    }
    const days: UsageDay[] = [];
    for (let ms = fromMs; ms <= toMs; ms += DAY_MS) {
      const day = dayText(ms);
      const dayTokens = sumTokens(tokensByDay.get(day) ?? []);
      days.push({
        day,
        runsStarted: counters.get(day)?.runsStarted ?? 0,
        stepsExecuted: counters.get(day)?.stepsExecuted ?? 0,
        inputTokens: dayTokens.reduce((n, t) => n + t.inputTokens, 0),
        outputTokens: dayTokens.reduce((n, t) => n + t.outputTokens, 0),
        tokens: dayTokens,
        workflows: sumWorkflows(workflowsByDay.get(day) ?? []),
      });
    }
    const allTokens = sumTokens(days.flatMap((d) => d.tokens));
    return {
      from,
      to,
      days,
      totals: {
        runsStarted: days.reduce((n, d) => n + d.runsStarted, 0),
        stepsExecuted: days.reduce((n, d) => n + d.stepsExecuted, 0),
        inputTokens: allTokens.reduce((n, t) => n + t.inputTokens, 0),
        outputTokens: allTokens.reduce((n, t) => n + t.outputTokens, 0),
        tokens: allTokens,
        workflows: sumWorkflows(days.flatMap((d) => d.workflows)),
      },
    };
  }
}
