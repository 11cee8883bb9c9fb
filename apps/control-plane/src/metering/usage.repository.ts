import { Inject, Injectable } from '@nestjs/common';
import { Database, type Queryable } from '../db/database.js';

/** A project's quotas; null is no limit. */
export interface Quotas {
  readonly maxConcurrentRuns: number | null;
  readonly maxStepsPerMonth: number | null;
  readonly updatedAt: Date | null;
  readonly updatedBy: string | null;
}

/** The quotas that apply to starts in a data plane's project (null columns: no limit). */
export interface StartQuotas {
  readonly projectId: string;
  readonly projectName: string;
  readonly maxConcurrentRuns: number | null;
  readonly maxStepsPerMonth: number | null;
}

export interface DailyUsage {
  /** YYYY-MM-DD (UTC). */
  readonly day: string;
  readonly runsStarted: number;
  readonly stepsExecuted: number;
}

export interface DailyTokens {
  readonly day: string;
  readonly provider: string;
  readonly model: string;
  readonly calls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

export interface DailyWorkflowUsage {
  readonly day: string;
  /** The workflow's name as runs hold it (in strict residency mode, a keyed digest). */
  readonly workflow: string;
  readonly runsStarted: number;
  readonly stepsExecuted: number;
  readonly modelCalls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

// Advisory lock space for serialising starts per project while a concurrent-run quota is set.
const QUOTA_LOCK_SPACE = 0x63717461; // 'cqta'

/**
 * All SQL about usage counters (written by the triggers of migration 9 in the transactions that
 * start runs and record step reports) and project quotas.
 */
@Injectable()
export class UsageRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /** Per-day counters of a project between two UTC days (inclusive); days without usage are absent. */
  async daily(projectId: string, from: string, to: string): Promise<DailyUsage[]> {
    const result = await this.db.query<{ day: string; runs_started: string; steps_executed: string }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, sum(runs_started) AS runs_started, sum(steps_executed) AS steps_executed
       FROM usage_daily WHERE project_id = $1 AND day BETWEEN $2::date AND $3::date
       GROUP BY day ORDER BY day`,
      [projectId, from, to],
    );
    return result.rows.map((r) => ({ day: r.day, runsStarted: Number(r.runs_started), stepsExecuted: Number(r.steps_executed) }));
  }

  /** Per-day model tokens of a project by provider and model, between two UTC days (inclusive). */
  async dailyTokens(projectId: string, from: string, to: string): Promise<DailyTokens[]> {
    const result = await this.db.query<{
      day: string;
      provider: string;
      model: string;
      calls: string;
      input_tokens: string;
      output_tokens: string;
    }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, provider, model, sum(calls) AS calls, sum(input_tokens) AS input_tokens,
              sum(output_tokens) AS output_tokens
       FROM usage_tokens_daily WHERE project_id = $1 AND day BETWEEN $2::date AND $3::date
       GROUP BY day, provider, model ORDER BY day, provider, model`,
      [projectId, from, to],
    );
    return result.rows.map((r) => ({
      day: r.day,
      provider: r.provider,
      model: r.model,
      calls: Number(r.calls),
      inputTokens: Number(r.input_tokens),
      outputTokens: Number(r.output_tokens),
    }));
  }

  /** Per-day usage of a project by workflow, between two UTC days (inclusive); days without usage are absent. */
  async dailyWorkflows(projectId: string, from: string, to: string): Promise<DailyWorkflowUsage[]> {
    const result = await this.db.query<{
      day: string;
      workflow_name: string;
      runs_started: string;
      steps_executed: string;
      model_calls: string;
      input_tokens: string;
      output_tokens: string;
    }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, workflow_name, sum(runs_started) AS runs_started, sum(steps_executed) AS steps_executed,
              sum(model_calls) AS model_calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
       FROM usage_workflows_daily WHERE project_id = $1 AND day BETWEEN $2::date AND $3::date
       GROUP BY day, workflow_name ORDER BY day, workflow_name`,
      [projectId, from, to],
    );
    return result.rows.map((r) => ({
      day: r.day,
      workflow: r.workflow_name,
      runsStarted: Number(r.runs_started),
      stepsExecuted: Number(r.steps_executed),
      modelCalls: Number(r.model_calls),
      inputTokens: Number(r.input_tokens),
      outputTokens: Number(r.output_tokens),
    }));
  }

  async quotas(projectId: string): Promise<Quotas> {
    const result = await this.db.query<{
      max_concurrent_runs: number | null;
      max_steps_per_month: string | null;
      updated_at: Date;
      updated_by: string | null;
    }>('SELECT max_concurrent_runs, max_steps_per_month, updated_at, updated_by FROM project_quotas WHERE project_id = $1', [projectId]);
    const row = result.rows[0];
    if (!row) return { maxConcurrentRuns: null, maxStepsPerMonth: null, updatedAt: null, updatedBy: null };
    return {
      maxConcurrentRuns: row.max_concurrent_runs,
      maxStepsPerMonth: row.max_steps_per_month === null ? null : Number(row.max_steps_per_month),
      updatedAt: row.updated_at,
      updatedBy: row.updated_by,
    };
  }

  /** Sets both quotas (null: no limit); a project with neither has no row, so starts skip all checks. */
  async setQuotas(
    q: Queryable,
    projectId: string,
    quotas: { maxConcurrentRuns: number | null; maxStepsPerMonth: number | null },
    updatedBy: string,
  ): Promise<void> {
    if (quotas.maxConcurrentRuns === null && quotas.maxStepsPerMonth === null) {
      await q.query('DELETE FROM project_quotas WHERE project_id = $1', [projectId]);
      return;
    }
    await q.query(
      `INSERT INTO project_quotas (project_id, max_concurrent_runs, max_steps_per_month, updated_by) VALUES ($1, $2, $3, $4)
       ON CONFLICT (project_id) DO UPDATE SET max_concurrent_runs = EXCLUDED.max_concurrent_runs,
         max_steps_per_month = EXCLUDED.max_steps_per_month, updated_by = EXCLUDED.updated_by, updated_at = now()`,
      [projectId, quotas.maxConcurrentRuns, quotas.maxStepsPerMonth, updatedBy],
    );
  }

  /** The quotas of the project a data plane belongs to; null when the project has none (the fast path). */
  async startQuotasForDataPlane(dataPlaneId: string): Promise<StartQuotas | null> {
    const result = await this.db.prepared<{
      project_id: string;
      name: string;
      max_concurrent_runs: number | null;
      max_steps_per_month: string | null;
    }>(
      'cp_start_quotas_dp',
      `SELECT p.id AS project_id, p.name, q.max_concurrent_runs, q.max_steps_per_month
       FROM data_planes d JOIN project_quotas q ON q.project_id = d.project_id JOIN projects p ON p.id = d.project_id
       WHERE d.id = $1`,
      [dataPlaneId],
    );
    return toStartQuotas(result.rows[0]);
  }

  /** The quotas of a project; null when it has none. */
  async startQuotas(projectId: string): Promise<StartQuotas | null> {
    const result = await this.db.prepared<{
      project_id: string;
      name: string;
      max_concurrent_runs: number | null;
      max_steps_per_month: string | null;
    }>(
      'cp_start_quotas',
      `SELECT p.id AS project_id, p.name, q.max_concurrent_runs, q.max_steps_per_month
       FROM project_quotas q JOIN projects p ON p.id = q.project_id WHERE q.project_id = $1`,
      [projectId],
    );
    return toStartQuotas(result.rows[0]);
  }

  /** Serialises starts in a project until the transaction ends. */
  async lockStarts(tx: Queryable, projectId: string): Promise<void> {
    await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [QUOTA_LOCK_SPACE, projectId]);
  }

  /** The project's runs that have not ended, counted up to `cap` (enough to compare with a quota). */
  async openRuns(projectId: string, cap: number, q: Queryable = this.db): Promise<number> {
    const result = await q.query<{ n: string }>(
      `SELECT count(*) AS n FROM (
         SELECT 1 FROM runs WHERE project_id = $1 AND status IN ('queued', 'running', 'suspended') LIMIT $2
       ) open`,
      [projectId, cap],
    );
    return Number(result.rows[0]!.n);
  }

  /** Steps executed by the project in the current calendar month (UTC). */
  async stepsThisMonth(projectId: string, q: Queryable = this.db): Promise<number> {
    const result = await q.query<{ n: string | null }>(
      `SELECT sum(steps_executed) AS n FROM usage_daily
       WHERE project_id = $1 AND day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date`,
      [projectId],
    );
    return Number(result.rows[0]?.n ?? 0);
  }
}

function toStartQuotas(
  row: { project_id: string; name: string; max_concurrent_runs: number | null; max_steps_per_month: string | null } | undefined,
): StartQuotas | null {
  if (!row) return null;
  return {
    projectId: row.project_id,
    projectName: row.name,
    maxConcurrentRuns: row.max_concurrent_runs,
    maxStepsPerMonth: row.max_steps_per_month === null ? null : Number(row.max_steps_per_month),
  };
}
