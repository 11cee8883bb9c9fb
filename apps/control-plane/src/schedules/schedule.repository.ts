import { Inject, Injectable } from '@nestjs/common';
import { Database, type Queryable } from '../db/database.js';

export const OVERLAP_POLICIES = ['skip', 'buffer_one', 'allow_all', 'cancel_previous'] as const;
/** What a firing does when a run of the schedule fired earlier has not ended yet. */
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];
/** How a firing came about: the ticker, a trigger-now, or a backfill. */
export type FiringKind = 'tick' | 'trigger' | 'backfill';
/** What a firing did. */
export type FiringOutcome = 'started' | 'skipped' | 'buffered' | 'workflow_not_found' | 'quota_exceeded';

export interface ScheduleRecord {
  readonly id: string;
  readonly projectId: string;
  readonly dataPlaneId: string;
  readonly name: string | null;
  readonly workflowName: string;
  /** Null: the newest announced version at fire time. */
  readonly workflowVersion: string | null;
  readonly cron: string;
  readonly timeZone: string;
  readonly overlapPolicy: OverlapPolicy;
  readonly catchUpWindowMs: number;
  readonly inputPayloadId: string | null;
  readonly paused: boolean;
  /** The earliest tick not handled yet; null when the expression has no later tick. */
  readonly nextTickAt: Date | null;
  /** buffer_one: the firing waiting for the open run to end. */
  readonly bufferedFiringId: string | null;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface FiringRecord {
  readonly id: string;
  readonly scheduleId: string;
  readonly tickAt: Date;
  readonly kind: FiringKind;
  readonly outcome: FiringOutcome;
  readonly runId: string | null;
  readonly cancelledRuns: number;
  readonly firedAt: Date;
}

/** The settings a schedule is created with or changed to. */
export interface ScheduleSettings {
  readonly name: string | null;
  readonly dataPlaneId: string;
  readonly workflowName: string;
  readonly workflowVersion: string | null;
  readonly cron: string;
  readonly timeZone: string;
  readonly overlapPolicy: OverlapPolicy;
  readonly catchUpWindowMs: number;
  readonly inputPayloadId: string | null;
}

interface ScheduleRow {
  id: string;
  project_id: string;
  data_plane_id: string;
  name: string | null;
  workflow_name: string;
  workflow_version: string | null;
  cron: string;
  time_zone: string;
  overlap_policy: OverlapPolicy;
  catch_up_window_ms: string;
  input_payload_id: string | null;
  paused: boolean;
  next_tick_at: Date | null;
  buffered_firing_id: string | null;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
}

interface FiringRow {
  id: string;
  schedule_id: string;
  tick_at: Date;
  kind: FiringKind;
  outcome: FiringOutcome;
  run_id: string | null;
  cancelled_runs: number;
  fired_at: Date;
}

const COLUMNS = `id, project_id, data_plane_id, name, workflow_name, workflow_version, cron, time_zone, overlap_policy,
  catch_up_window_ms, input_payload_id, paused, next_tick_at, buffered_firing_id, created_by, created_at, updated_at`;
const FIRING_COLUMNS = 'id, schedule_id, tick_at, kind, outcome, run_id, cancelled_runs, fired_at';

const toSchedule = (row: ScheduleRow): ScheduleRecord => ({
  id: row.id,
  projectId: row.project_id,
  dataPlaneId: row.data_plane_id,
  name: row.name,
  workflowName: row.workflow_name,
  workflowVersion: row.workflow_version,
  cron: row.cron,
  timeZone: row.time_zone,
  overlapPolicy: row.overlap_policy,
  catchUpWindowMs: Number(row.catch_up_window_ms),
  inputPayloadId: row.input_payload_id,
  paused: row.paused,
  nextTickAt: row.next_tick_at,
  bufferedFiringId: row.buffered_firing_id,
  createdBy: row.created_by,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const toFiring = (row: FiringRow): FiringRecord => ({
  id: row.id,
  scheduleId: row.schedule_id,
  tickAt: row.tick_at,
  kind: row.kind,
  outcome: row.outcome,
  runId: row.run_id,
  cancelledRuns: row.cancelled_runs,
  firedAt: row.fired_at,
});

/** The key of the advisory lock that lets one replica at a time run the ticker's pass. */
const TICKER_LOCK_KEY = "hashtext('cairn_schedule_ticker')";

/** All SQL about schedules and their firings. */
@Injectable()
export class ScheduleRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /** Inserts a schedule; null when the project already has a schedule of that name. */
  async insert(
    schedule: ScheduleSettings & { id: string; projectId: string; paused: boolean; nextTickAt: Date | null; createdBy: string | null },
  ): Promise<ScheduleRecord | null> {
    const result = await this.db.query<ScheduleRow>(
      `INSERT INTO schedules (id, project_id, data_plane_id, name, workflow_name, workflow_version, cron, time_zone, overlap_policy,
                              catch_up_window_ms, input_payload_id, paused, next_tick_at, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
       ON CONFLICT (project_id, name) DO NOTHING
       RETURNING ${COLUMNS}`,
      [
        schedule.id,
        schedule.projectId,
        schedule.dataPlaneId,
        schedule.name,
        schedule.workflowName,
        schedule.workflowVersion,
        schedule.cron,
        schedule.timeZone,
        schedule.overlapPolicy,
        schedule.catchUpWindowMs,
        schedule.inputPayloadId,
        schedule.paused,
        schedule.nextTickAt,
        schedule.createdBy,
      ],
    );
    const row = result.rows[0];
    return row ? toSchedule(row) : null;
  }

  /** A schedule of the project by ID, or by name when `ref` is not a UUID. */
  async find(projectId: string, ref: { id: string } | { name: string }, q: Queryable = this.db): Promise<ScheduleRecord | null> {
    const result =
      'id' in ref
        ? await q.query<ScheduleRow>(`SELECT ${COLUMNS} FROM schedules WHERE project_id = $1 AND id = $2`, [projectId, ref.id])
        : await q.query<ScheduleRow>(`SELECT ${COLUMNS} FROM schedules WHERE project_id = $1 AND name = $2`, [projectId, ref.name]);
    const row = result.rows[0];
    return row ? toSchedule(row) : null;
  }

  /** Locks a schedule of the project for a change or a manual firing (waits for the ticker). */
  async lock(tx: Queryable, projectId: string, id: string): Promise<ScheduleRecord | null> {
    const result = await tx.query<ScheduleRow>(`SELECT ${COLUMNS} FROM schedules WHERE project_id = $1 AND id = $2 FOR UPDATE`, [
      projectId,
      id,
    ]);
    const row = result.rows[0];
    return row ? toSchedule(row) : null;
  }

  /** The project's schedules, newest first, after a keyset position. */
  async list(
    projectId: string,
    limit: number,
    after?: { createdAt: string; id: string },
  ): Promise<{ schedules: ScheduleRecord[]; next: { createdAt: string; id: string } | null }> {
    const values: unknown[] = [projectId, limit + 1];
    let where = 'project_id = $1';
    if (after) {
      values.push(after.createdAt, after.id);
      where += ' AND (created_at, id) < ($3::timestamptz, $4::uuid)';
    }
    const result = await this.db.query<ScheduleRow & { created_text: string }>(
      `SELECT ${COLUMNS}, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_text
         FROM schedules WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $2`,
      values,
    );
    const rows = result.rows.slice(0, limit);
    const last = rows[rows.length - 1];
    return {
      schedules: rows.map(toSchedule),
      next: result.rows.length > limit && last ? { createdAt: last.created_text, id: last.id } : null,
    };
  }

  /** Replaces a schedule's settings and where its ticking resumes. */
  async update(tx: Queryable, id: string, settings: ScheduleSettings, nextTickAt: Date | null): Promise<ScheduleRecord | null> {
    const result = await tx.query<ScheduleRow>(
      `UPDATE schedules SET name = $2, data_plane_id = $3, workflow_name = $4, workflow_version = $5, cron = $6, time_zone = $7,
              overlap_policy = $8, catch_up_window_ms = $9, input_payload_id = $10, next_tick_at = $11, updated_at = now()
        WHERE id = $1
        RETURNING ${COLUMNS}`,
      [
        id,
        settings.name,
        settings.dataPlaneId,
        settings.workflowName,
        settings.workflowVersion,
        settings.cron,
        settings.timeZone,
        settings.overlapPolicy,
        settings.catchUpWindowMs,
        settings.inputPayloadId,
        nextTickAt,
      ],
    );
    const row = result.rows[0];
    return row ? toSchedule(row) : null;
  }

  /** Whether another schedule of the project has this name. */
  async nameTaken(projectId: string, name: string, exceptId: string): Promise<boolean> {
    const result = await this.db.query('SELECT 1 FROM schedules WHERE project_id = $1 AND name = $2 AND id <> $3', [
      projectId,
      name,
      exceptId,
    ]);
    return (result.rowCount ?? 0) > 0;
  }

  /** Pauses or resumes a schedule; resuming sets where ticking resumes. */
  async setPaused(tx: Queryable, id: string, paused: boolean, nextTickAt: Date | null): Promise<ScheduleRecord> {
    const result = await tx.query<ScheduleRow>(
      `UPDATE schedules SET paused = $2, next_tick_at = $3, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, paused, nextTickAt],
    );
    return toSchedule(result.rows[0]!);
  }

  /** Deletes a schedule and its firings; runs it fired keep their schedule ID. */
  async delete(projectId: string, id: string): Promise<boolean> {
    const result = await this.db.query('DELETE FROM schedules WHERE project_id = $1 AND id = $2', [projectId, id]);
    return (result.rowCount ?? 0) > 0;
  }

  // ---- the ticker ------------------------------------------------------------------------------

  /**
   * Runs `fn` while holding the ticker's advisory lock, on a connection of its own; returns
   * `undefined` at once when another replica holds it. The lock only saves duplicate work: the
   * unique firing row is what guarantees one firing per tick.
   */
  async withTickerLock<T>(fn: () => Promise<T>): Promise<T | undefined> {
    const client = await this.db.pool.connect();
    let broken = false;
    try {
      const got = await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(${TICKER_LOCK_KEY}) AS locked`);
      if (!got.rows[0]?.locked) return undefined;
      try {
        return await fn();
      } finally {
        await client.query(`SELECT pg_advisory_unlock(${TICKER_LOCK_KEY})`).catch(() => {
          broken = true;
        });
      }
    } finally {
      client.release(broken);
    }
  }

  /** IDs of active schedules with a tick due at `now` or a buffered firing, most overdue first. */
  async due(now: Date, limit: number): Promise<string[]> {
    const result = await this.db.query<{ id: string }>(
      `SELECT id FROM schedules
        WHERE NOT paused AND (next_tick_at <= $1 OR buffered_firing_id IS NOT NULL)
        ORDER BY next_tick_at NULLS LAST LIMIT $2`,
      [now, limit],
    );
    return result.rows.map((r) => r.id);
  }

  /** Locks an active schedule for the ticker; null when paused, deleted or locked by another replica. */
  async lockActive(tx: Queryable, id: string): Promise<ScheduleRecord | null> {
    const result = await tx.query<ScheduleRow>(`SELECT ${COLUMNS} FROM schedules WHERE id = $1 AND NOT paused FOR UPDATE SKIP LOCKED`, [
      id,
    ]);
    const row = result.rows[0];
    return row ? toSchedule(row) : null;
  }

  /** Records where ticking goes on and the buffered firing, after the ticker handled a schedule. */
  async setTickState(tx: Queryable, id: string, nextTickAt: Date | null, bufferedFiringId: string | null): Promise<void> {
    await tx.query('UPDATE schedules SET next_tick_at = $2, buffered_firing_id = $3 WHERE id = $1', [id, nextTickAt, bufferedFiringId]);
  }

  /** Sets or clears the buffered firing. */
  async setBuffered(tx: Queryable, id: string, bufferedFiringId: string | null): Promise<void> {
    await tx.query('UPDATE schedules SET buffered_firing_id = $2 WHERE id = $1', [id, bufferedFiringId]);
  }

  /**
   * Records a firing. Returns false, changing nothing, when the tick already has one (a tick or
   * backfill firing of the same schedule and time): that is what makes each tick fire once.
   */
  async insertFiring(tx: Queryable, firing: FiringRecord): Promise<boolean> {
    const result = await tx.query(
      `INSERT INTO schedule_firings (${FIRING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
      [firing.id, firing.scheduleId, firing.tickAt, firing.kind, firing.outcome, firing.runId, firing.cancelledRuns, firing.firedAt],
    );
    return result.rowCount === 1;
  }

  /** Resolves a buffered firing (started with its run, or not started); null if it was not buffered. */
  async resolveBuffered(
    tx: Queryable,
    firingId: string,
    outcome: 'started' | 'workflow_not_found' | 'quota_exceeded',
    runId: string | null,
    firedAt: Date,
  ): Promise<FiringRecord | null> {
    const result = await tx.query<FiringRow>(
      `UPDATE schedule_firings SET outcome = $2, run_id = $3, fired_at = $4 WHERE id = $1 AND outcome = 'buffered'
       RETURNING ${FIRING_COLUMNS}`,
      [firingId, outcome, runId, firedAt],
    );
    const row = result.rows[0];
    return row ? toFiring(row) : null;
  }

  /** A firing by ID. */
  async firing(tx: Queryable, firingId: string): Promise<FiringRecord | null> {
    const result = await tx.query<FiringRow>(`SELECT ${FIRING_COLUMNS} FROM schedule_firings WHERE id = $1`, [firingId]);
    const row = result.rows[0];
    return row ? toFiring(row) : null;
  }

  /** Which of `ticks` already have a firing of the schedule (as epoch milliseconds). */
  async firedTicks(scheduleId: string, ticks: readonly Date[]): Promise<Set<number>> {
    if (ticks.length === 0) return new Set();
    const result = await this.db.query<{ tick_at: Date }>(
      'SELECT tick_at FROM schedule_firings WHERE schedule_id = $1 AND tick_at = ANY($2::timestamptz[])',
      [scheduleId, ticks.map((t) => t.toISOString())],
    );
    return new Set(result.rows.map((r) => r.tick_at.getTime()));
  }

  /** The most recent firings of a schedule, newest first. */
  async recentFirings(scheduleId: string, limit: number): Promise<FiringRecord[]> {
    const result = await this.db.query<FiringRow>(
      `SELECT ${FIRING_COLUMNS} FROM schedule_firings WHERE schedule_id = $1 ORDER BY fired_at DESC, tick_at DESC LIMIT $2`,
      [scheduleId, limit],
    );
    return result.rows.map(toFiring);
  }
}
