import { Inject, Injectable } from '@nestjs/common';
import type { LeaseEndReason, LeaseKey, Run, RunStatusName, SuspendReasonName, WakeReasonName } from '../domain.js';
import { Database, type Queryable } from './database.js';

interface RunRow {
  id: string;
  data_plane_id: string;
  workflow_name: string;
  workflow_version: string;
  task_queue: string;
  status: RunStatusName;
  epoch: number;
  lease_session: string | null;
  lease_worker: string | null;
  lease_expires_at: Date | null;
  wake_at: Date | null;
  wake_reason: WakeReasonName | null;
  waiting_signal: string | null;
  signals_consumed: number;
  suspend_reason: SuspendReasonName | null;
  idempotency_digest: string | null;
  error_code: number | null;
  error_ref: string | null;
  input_size: string;
  output_size: string | null;
  dispatch_count: number;
  cancel_requested: boolean;
  parent_run_id: string | null;
  waiting_child: string | null;
  created_at: Date;
  queued_at: Date | null;
  started_at: Date | null;
  ended_at: Date | null;
  updated_at: Date;
}

const RUN_COLUMNS = `id, data_plane_id, workflow_name, workflow_version, task_queue, status, epoch, lease_session, lease_worker,
  lease_expires_at, wake_at, wake_reason, waiting_signal, signals_consumed, suspend_reason, idempotency_digest, error_code,
  error_ref, input_size, output_size, dispatch_count, cancel_requested, parent_run_id, waiting_child, created_at, queued_at, started_at, ended_at, updated_at`;

/** Columns qualified with a table alias, for statements that join. */
const runColumns = (alias: string): string =>
  RUN_COLUMNS.split(',')
    .map((c) => `${alias}.${c.trim()}`)
    .join(', ');

function toRun(row: RunRow): Run {
  return {
    id: row.id,
    dataPlaneId: row.data_plane_id,
    workflowName: row.workflow_name,
    workflowVersion: row.workflow_version,
    taskQueue: row.task_queue,
    status: row.status,
    epoch: row.epoch,
    leaseSession: row.lease_session,
    leaseWorker: row.lease_worker,
    leaseExpiresAt: row.lease_expires_at,
    wakeAt: row.wake_at,
    wakeReason: row.wake_reason,
    waitingSignal: row.waiting_signal,
    signalsConsumed: row.signals_consumed,
    suspendReason: row.suspend_reason,
    idempotencyDigest: row.idempotency_digest,
    errorCode: row.error_code,
    errorRef: row.error_ref,
    inputSize: Number(row.input_size),
    outputSize: row.output_size === null ? null : Number(row.output_size),
    dispatchCount: row.dispatch_count,
    cancelRequested: row.cancel_requested,
    parentRunId: row.parent_run_id,
    waitingChild: row.waiting_child,
    createdAt: row.created_at,
    queuedAt: row.queued_at,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    updatedAt: row.updated_at,
  };
}

function one(rows: RunRow[]): Run | null {
  const row = rows[0];
  return row ? toRun(row) : null;
}

export interface NewRun {
  readonly id: string;
  readonly dataPlaneId: string;
  readonly workflowName: string;
  readonly workflowVersion: string;
  readonly taskQueue: string;
  readonly idempotencyDigest: string | null;
  readonly inputSize: number;
  /** For a child workflow run, the run that started it. */
  readonly parentRunId?: string | null;
}

export interface ClaimRequest {
  readonly dataPlaneId: string;
  readonly sessionId: string;
  readonly workerId: string;
  readonly workflows: ReadonlyArray<{ readonly name: string; readonly version: string; readonly taskQueue: string }>;
  readonly limit: number;
  readonly leaseTtlMs: number;
}

export interface Suspension {
  readonly wakeAt: Date | null;
  readonly waitingSignal: string | null;
  readonly signalsConsumed: number;
  readonly suspendReason: SuspendReasonName;
  /** The child run whose end wakes the run, if any. */
  readonly waitingChild?: string | null;
}

export interface Outcome {
  readonly status: 'completed' | 'failed' | 'cancelled';
  readonly outputSize?: number;
  readonly errorCode?: number | null;
  readonly errorRef?: string | null;
}

/** A lease the sweep took from its holder. */
export interface ExpiredLease extends LeaseKey {
  readonly dataPlaneId: string;
  readonly sessionId: string | null;
}

export interface RunListQuery {
  readonly status?: RunStatusName;
  readonly workflow?: string;
  readonly limit: number;
  /** Keyset position: list runs strictly older than this (created_at, id). */
  readonly after?: { readonly createdAt: string; readonly id: string };
}

export interface RunPage {
  readonly runs: Run[];
  /** The keyset position of the last run when more follow, else null. */
  readonly next: { readonly createdAt: string; readonly id: string } | null;
}

/** All SQL about runs and their lease history. */
@Injectable()
export class RunRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /** Inserts a queued run; null when its ID or idempotency digest is taken. */
  async insertQueued(run: NewRun): Promise<Run | null> {
    const result = await this.db.prepared<RunRow>(
      'cp_insert_run',
      `INSERT INTO runs (id, data_plane_id, workflow_name, workflow_version, task_queue, status, wake_reason,
                         idempotency_digest, input_size, queued_at, parent_run_id)
       VALUES ($1, $2, $3, $4, $5, 'queued', 'start', $6, $7, now(), $8)
       ON CONFLICT DO NOTHING
       RETURNING ${RUN_COLUMNS}`,
      [
        run.id,
        run.dataPlaneId,
        run.workflowName,
        run.workflowVersion,
        run.taskQueue,
        run.idempotencyDigest,
        run.inputSize,
        run.parentRunId ?? null,
      ],
    );
    return one(result.rows);
  }

  /** A run by ID; scoped to a data plane unless `dataPlaneId` is null (the REST API sees all). */
  async find(dataPlaneId: string | null, runId: string, q: Queryable = this.db): Promise<Run | null> {
    const result =
      dataPlaneId === null
        ? await q.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1`, [runId])
        : await q.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1 AND data_plane_id = $2`, [runId, dataPlaneId]);
    return one(result.rows);
  }

  /** Whether a run with this ID exists in any data plane. */
  async exists(runId: string): Promise<boolean> {
    const result = await this.db.query('SELECT 1 FROM runs WHERE id = $1', [runId]);
    return (result.rowCount ?? 0) > 0;
  }

  async findByDigest(dataPlaneId: string, workflowName: string, digest: string): Promise<Run | null> {
    const result = await this.db.query<RunRow>(
      `SELECT ${RUN_COLUMNS} FROM runs WHERE data_plane_id = $1 AND workflow_name = $2 AND idempotency_digest = $3`,
      [dataPlaneId, workflowName, digest],
    );
    return one(result.rows);
  }

  /** Locks a run row for the rest of the transaction. */
  async lock(tx: Queryable, dataPlaneId: string, runId: string): Promise<Run | null> {
    const result = await tx.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1 AND data_plane_id = $2 FOR UPDATE`, [
      runId,
      dataPlaneId,
    ]);
    return one(result.rows);
  }

  /** How the lease (run, epoch) ended: undefined if there was no such lease, null if it has not ended. */
  async leaseEndReason(tx: Queryable, lease: LeaseKey): Promise<LeaseEndReason | null | undefined> {
    const result = await tx.query<{ end_reason: LeaseEndReason | null }>(
      'SELECT end_reason FROM run_leases WHERE run_id = $1 AND epoch = $2',
      [lease.runId, lease.epoch],
    );
    const row = result.rows[0];
    return row === undefined ? undefined : row.end_reason;
  }

  /**
   * Claims up to `limit` queued runs of the worker's workflow set, oldest first, in one statement:
   * `FOR UPDATE SKIP LOCKED` makes concurrent claims (any number of sessions and replicas) take
   * disjoint runs; the epoch grows by one and the lease history gets a row.
   */
  async claim(request: ClaimRequest): Promise<Run[]> {
    if (request.limit <= 0 || request.workflows.length === 0) return [];
    const result = await this.db.prepared<RunRow>(
      'cp_claim',
      `WITH picked AS MATERIALIZED (
         SELECT id FROM runs
         WHERE status = 'queued' AND data_plane_id = $1
           AND (workflow_name, workflow_version, task_queue) IN (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]))
         ORDER BY queued_at
         LIMIT $5
         FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE runs r SET status = 'running', epoch = r.epoch + 1, lease_session = $6, lease_worker = $7,
                lease_expires_at = now() + $8 * interval '1 millisecond', started_at = coalesce(r.started_at, now()),
                dispatch_count = r.dispatch_count + 1, updated_at = now()
         FROM picked WHERE r.id = picked.id
         RETURNING ${runColumns('r')}
       ), history AS (
         INSERT INTO run_leases (run_id, epoch, session_id, worker_id) SELECT id, epoch, $6, $7 FROM claimed
       )
       SELECT * FROM claimed ORDER BY queued_at`,
      [
        request.dataPlaneId,
        request.workflows.map((w) => w.name),
        request.workflows.map((w) => w.version),
        request.workflows.map((w) => w.taskQueue),
        request.limit,
        request.sessionId,
        request.workerId,
        request.leaseTtlMs,
      ],
    );
    return result.rows.map(toRun);
  }

  /**
   * Re-attaches leases a reconnecting worker still holds: those still `running` at that epoch and
   * held by that worker move to the new session with a fresh expiry. Returns the re-attached runs.
   */
  async reattach(
    dataPlaneId: string,
    sessionId: string,
    workerId: string,
    leases: readonly LeaseKey[],
    leaseTtlMs: number,
  ): Promise<Run[]> {
    if (leases.length === 0) return [];
    const result = await this.db.query<RunRow>(
      `WITH held AS (SELECT * FROM unnest($2::uuid[], $3::bigint[]) AS h(run_id, epoch)),
       moved AS (
         UPDATE runs r SET lease_session = $4, lease_expires_at = now() + $6 * interval '1 millisecond', updated_at = now()
         FROM held
         WHERE r.id = held.run_id AND r.epoch = held.epoch AND r.data_plane_id = $1 AND r.status = 'running' AND r.lease_worker = $5
         RETURNING ${runColumns('r')}
       ), history AS (
         UPDATE run_leases l SET session_id = $4, reattached_at = now()
         FROM moved WHERE l.run_id = moved.id AND l.epoch = moved.epoch
       )
       SELECT * FROM moved`,
      [dataPlaneId, leases.map((l) => l.runId), leases.map((l) => l.epoch), sessionId, workerId, leaseTtlMs],
    );
    return result.rows.map(toRun);
  }

  /** Renews leases this session holds at those epochs; returns the renewed ones with their expiry. */
  async renew(
    dataPlaneId: string,
    sessionId: string,
    leases: readonly LeaseKey[],
    leaseTtlMs: number,
  ): Promise<Array<LeaseKey & { expiresAt: Date }>> {
    if (leases.length === 0) return [];
    const result = await this.db.prepared<{ id: string; epoch: number; lease_expires_at: Date }>(
      'cp_renew',
      `UPDATE runs r SET lease_expires_at = now() + $5 * interval '1 millisecond', updated_at = now()
       FROM unnest($2::uuid[], $3::bigint[]) AS h(run_id, epoch)
       WHERE r.id = h.run_id AND r.epoch = h.epoch AND r.data_plane_id = $1 AND r.status = 'running' AND r.lease_session = $4
       RETURNING r.id, r.epoch, r.lease_expires_at`,
      [dataPlaneId, leases.map((l) => l.runId), leases.map((l) => l.epoch), sessionId, leaseTtlMs],
    );
    return result.rows.map((r) => ({ runId: r.id, epoch: r.epoch, expiresAt: r.lease_expires_at }));
  }

  /** Parks a running run until its timer or signal; the lease is cleared. */
  async suspend(tx: Queryable, runId: string, s: Suspension): Promise<Run> {
    const result = await tx.query<RunRow>(
      `UPDATE runs SET status = 'suspended', wake_at = $2, waiting_signal = $3, signals_consumed = $4, suspend_reason = $5,
              waiting_child = $6, lease_session = NULL, lease_worker = NULL, lease_expires_at = NULL, queued_at = NULL, updated_at = now()
       WHERE id = $1 RETURNING ${RUN_COLUMNS}`,
      [runId, s.wakeAt, s.waitingSignal, s.signalsConsumed, s.suspendReason, s.waitingChild ?? null],
    );
    return one(result.rows)!;
  }

  /** Queues a run again at once (lease, timer and signal wait cleared). */
  async requeue(tx: Queryable, runId: string, reason: WakeReasonName, suspendReason: SuspendReasonName | null = null): Promise<Run> {
    const result = await tx.query<RunRow>(
      `UPDATE runs SET status = 'queued', wake_reason = $2, suspend_reason = $3, wake_at = NULL, waiting_signal = NULL,
              waiting_child = NULL, lease_session = NULL, lease_worker = NULL, lease_expires_at = NULL, queued_at = now(), updated_at = now()
       WHERE id = $1 RETURNING ${RUN_COLUMNS}`,
      [runId, reason, suspendReason],
    );
    return one(result.rows)!;
  }

  /** Records a final state. */
  async finish(tx: Queryable, runId: string, outcome: Outcome): Promise<Run> {
    const result = await tx.query<RunRow>(
      `UPDATE runs SET status = $2, output_size = $3, error_code = $4, error_ref = $5, ended_at = now(), wake_at = NULL,
              waiting_signal = NULL, waiting_child = NULL, lease_session = NULL, lease_worker = NULL, lease_expires_at = NULL, queued_at = NULL,
              updated_at = now()
       WHERE id = $1 RETURNING ${RUN_COLUMNS}`,
      [runId, outcome.status, outcome.outputSize ?? null, outcome.errorCode ?? null, outcome.errorRef ?? null],
    );
    return one(result.rows)!;
  }

  /**
   * Queues the parent of a run that just reached a final state, if the parent is suspended until
   * this child ends (wake reason 'child'). Returns whether the parent was queued.
   */
  async wakeParent(tx: Queryable, child: Run): Promise<boolean> {
    if (child.parentRunId === null) return false;
    const result = await tx.query(
      `UPDATE runs SET status = 'queued', wake_reason = 'child', wake_at = NULL, waiting_signal = NULL, waiting_child = NULL,
              queued_at = now(), updated_at = now()
       WHERE id = $1 AND status = 'suspended' AND waiting_child = $2`,
      [child.parentRunId, child.id],
    );
    return (result.rowCount ?? 0) > 0;
  }

  /** The IDs of a run's child runs that are not final yet. */
  async openChildren(dataPlaneId: string, parentRunId: string): Promise<string[]> {
    const result = await this.db.query<{ id: string }>(
      `SELECT id FROM runs WHERE parent_run_id = $1 AND data_plane_id = $2
         AND status NOT IN ('completed', 'failed', 'cancelled', 'terminated', 'timed_out')
       ORDER BY created_at`,
      [parentRunId, dataPlaneId],
    );
    return result.rows.map((r) => r.id);
  }

  /** Marks that cancellation was requested for a running run. */
  async requestCancel(tx: Queryable, runId: string): Promise<Run> {
    const result = await tx.query<RunRow>(
      `UPDATE runs SET cancel_requested = true, updated_at = now() WHERE id = $1 RETURNING ${RUN_COLUMNS}`,
      [runId],
    );
    return one(result.rows)!;
  }

  /** Ends the lease history row of (run, epoch). */
  async endLease(tx: Queryable, lease: LeaseKey, reason: LeaseEndReason): Promise<void> {
    await tx.query('UPDATE run_leases SET ended_at = now(), end_reason = $3 WHERE run_id = $1 AND epoch = $2 AND ended_at IS NULL', [
      lease.runId,
      lease.epoch,
      reason,
    ]);
  }

  /**
   * In one statement: if the run is `running` under that epoch in this data plane, records the
   * final state (or, for `released`, queues it again) and ends the lease row. Null when the lease
   * is not held; see {@link leaseState}.
   */
  async endHeldLease(
    dataPlaneId: string,
    lease: LeaseKey,
    reason: 'completed' | 'failed' | 'cancelled' | 'released',
    outcome: { outputSize?: number; errorCode?: number | null; errorRef?: string | null } = {},
  ): Promise<Run | null> {
    const result = await this.db.prepared<RunRow>(
      'cp_end_held_lease',
      `WITH ended AS (
         UPDATE runs SET
           status = CASE WHEN $4 = 'released' THEN 'queued' ELSE $4 END,
           wake_reason = CASE WHEN $4 = 'released' THEN 'recovery' ELSE wake_reason END,
           queued_at = CASE WHEN $4 = 'released' THEN now() END,
           ended_at = CASE WHEN $4 = 'released' THEN NULL ELSE now() END,
           output_size = coalesce($5, output_size), error_code = coalesce($6, error_code), error_ref = coalesce($7, error_ref),
           wake_at = NULL, waiting_signal = NULL, lease_session = NULL, lease_worker = NULL, lease_expires_at = NULL,
           updated_at = now()
         WHERE id = $1 AND data_plane_id = $2 AND status = 'running' AND epoch = $3
         RETURNING ${RUN_COLUMNS}
       ), history AS (
         UPDATE run_leases SET ended_at = now(), end_reason = $4
         WHERE run_id = $1 AND epoch = $3 AND ended_at IS NULL AND EXISTS (SELECT 1 FROM ended)
       ), woken AS (
         -- A parent suspended until this child ends is queued in the same statement.
         UPDATE runs p SET status = 'queued', wake_reason = 'child', wake_at = NULL, waiting_signal = NULL, waiting_child = NULL,
                queued_at = now(), updated_at = now()
         FROM ended
         WHERE ended.status <> 'queued' AND p.id = ended.parent_run_id AND p.status = 'suspended' AND p.waiting_child = ended.id
       )
       SELECT * FROM ended`,
      [lease.runId, dataPlaneId, lease.epoch, reason, outcome.outputSize ?? null, outcome.errorCode ?? null, outcome.errorRef ?? null],
    );
    return one(result.rows);
  }

  /** Whether the run exists in this data plane and how the lease (run, epoch) ended. */
  async leaseState(dataPlaneId: string, lease: LeaseKey): Promise<{ exists: boolean; endReason: LeaseEndReason | null }> {
    const result = await this.db.query<{ end_reason: LeaseEndReason | null }>(
      `SELECT l.end_reason FROM runs r LEFT JOIN run_leases l ON l.run_id = r.id AND l.epoch = $3
       WHERE r.id = $1 AND r.data_plane_id = $2`,
      [lease.runId, dataPlaneId, lease.epoch],
    );
    const row = result.rows[0];
    return { exists: row !== undefined, endReason: row?.end_reason ?? null };
  }

  /**
   * Gives claimed runs straight back to the queue (the session that claimed them closed before it
   * could hand them out). Only leases still held by that session at that epoch are touched.
   */
  async releaseClaimed(sessionId: string, leases: readonly LeaseKey[]): Promise<Array<LeaseKey & { dataPlaneId: string }>> {
    if (leases.length === 0) return [];
    const result = await this.db.query<{ id: string; epoch: number; data_plane_id: string }>(
      `WITH released AS (
         UPDATE runs r SET status = 'queued', wake_reason = 'recovery', lease_session = NULL, lease_worker = NULL,
                lease_expires_at = NULL, queued_at = now(), updated_at = now()
         FROM unnest($2::uuid[], $3::bigint[]) AS h(run_id, epoch)
         WHERE r.id = h.run_id AND r.epoch = h.epoch AND r.status = 'running' AND r.lease_session = $1
         RETURNING r.id, r.epoch, r.data_plane_id
       ), history AS (
         UPDATE run_leases l SET ended_at = now(), end_reason = 'released'
         FROM released WHERE l.run_id = released.id AND l.epoch = released.epoch AND l.ended_at IS NULL
       )
       SELECT * FROM released`,
      [sessionId, leases.map((l) => l.runId), leases.map((l) => l.epoch)],
    );
    return result.rows.map((r) => ({ runId: r.id, epoch: r.epoch, dataPlaneId: r.data_plane_id }));
  }

  /**
   * Requeues up to `limit` running runs whose lease expired (wake reason RECOVERY) and ends their
   * lease rows as 'expired'. One statement; replicas sweeping at once skip each other's rows.
   */
  async requeueExpiredLeases(limit: number): Promise<ExpiredLease[]> {
    const result = await this.db.query<{ id: string; epoch: number; data_plane_id: string; lease_session: string | null }>(
      `WITH picked AS MATERIALIZED (
         SELECT id, lease_session FROM runs
         WHERE status = 'running' AND lease_expires_at < now()
         ORDER BY lease_expires_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED
       ), expired AS (
         UPDATE runs r SET status = 'queued', wake_reason = 'recovery', lease_session = NULL, lease_worker = NULL,
                lease_expires_at = NULL, queued_at = now(), updated_at = now()
         FROM picked WHERE r.id = picked.id
         RETURNING r.id, r.epoch, r.data_plane_id, picked.lease_session
       ), history AS (
         UPDATE run_leases l SET ended_at = now(), end_reason = 'expired'
         FROM expired WHERE l.run_id = expired.id AND l.epoch = expired.epoch AND l.ended_at IS NULL
       )
       SELECT * FROM expired`,
      [limit],
    );
    return result.rows.map((r) => ({ runId: r.id, epoch: r.epoch, dataPlaneId: r.data_plane_id, sessionId: r.lease_session }));
  }

  /** Queues up to `limit` suspended runs whose timer is due (TIMER, or RETRY after a retry backoff). */
  async queueDueTimers(limit: number): Promise<Array<{ runId: string; dataPlaneId: string }>> {
    const result = await this.db.query<{ id: string; data_plane_id: string }>(
      `WITH picked AS MATERIALIZED (
         SELECT id FROM runs
         WHERE status = 'suspended' AND wake_at <= now()
         ORDER BY wake_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED
       )
       UPDATE runs r SET status = 'queued',
              wake_reason = CASE WHEN r.suspend_reason = 'retry_backoff' THEN 'retry' ELSE 'timer' END,
              wake_at = NULL, waiting_signal = NULL, waiting_child = NULL, queued_at = now(), updated_at = now()
       FROM picked WHERE r.id = picked.id
       RETURNING r.id, r.data_plane_id`,
      [limit],
    );
    return result.rows.map((r) => ({ runId: r.id, dataPlaneId: r.data_plane_id }));
  }

  /** Runs newest first, filtered, with keyset pagination on (created_at, id). */
  async list(query: RunListQuery): Promise<RunPage> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (query.status !== undefined) {
      values.push(query.status);
      where.push(`status = $${values.length}`);
    }
    if (query.workflow !== undefined) {
      values.push(query.workflow);
      where.push(`workflow_name = $${values.length}`);
    }
    if (query.after !== undefined) {
      values.push(query.after.createdAt, query.after.id);
      where.push(`(created_at, id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
    }
    values.push(query.limit + 1);
    const result = await this.db.query<RunRow & { cursor_at: string }>(
      `SELECT ${RUN_COLUMNS}, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at
       FROM runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC
       LIMIT $${values.length}`,
      values,
    );
    const rows = result.rows.slice(0, query.limit);
    const last = rows[rows.length - 1];
    return {
      runs: rows.map(toRun),
      next: result.rows.length > query.limit && last ? { createdAt: last.cursor_at, id: last.id } : null,
    };
  }
}
