import { Inject, Injectable } from '@nestjs/common';
import type { LeaseEndReason, LeaseKey, Run, RunStatusName, SuspendReasonName, WakeReasonName } from '../domain.js';
import { Database, type Queryable } from '../db/database.js';
import { FLOW_CONTROL_COLUMNS, toFlowControl, type FlowControlRow } from '../flow-control/flow-control.repository.js';

interface RunRow {
  id: string;
  data_plane_id: string;
  project_id: string;
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
  waiting_signal_digest: string | null;
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
  forked_from_run_id: string | null;
  fork_position: number | null;
  schedule_id: string | null;
  schedule_tick_at: Date | null;
  input_payload_id: string | null;
  priority: number;
  concurrency_key_digest: string | null;
  deadline_at: Date | null;
  created_at: Date;
  queued_at: Date | null;
  started_at: Date | null;
  ended_at: Date | null;
  updated_at: Date;
}

const RUN_COLUMNS = `id, data_plane_id, project_id, workflow_name, workflow_version, task_queue, status, epoch, lease_session, lease_worker,
  lease_expires_at, wake_at, wake_reason, waiting_signal, waiting_signal_digest, signals_consumed, suspend_reason, idempotency_digest, error_code,
  error_ref, input_size, output_size, dispatch_count, cancel_requested, parent_run_id, waiting_child, forked_from_run_id, fork_position,
  schedule_id, schedule_tick_at, input_payload_id, priority, concurrency_key_digest, deadline_at, created_at, queued_at, started_at, ended_at, updated_at`;

/** Columns qualified with a table alias, for statements that join. */
const runColumns = (alias: string): string =>
  RUN_COLUMNS.split(',')
    .map((c) => `${alias}.${c.trim()}`)
    .join(', ');

function toRun(row: RunRow): Run {
  return {
    id: row.id,
    dataPlaneId: row.data_plane_id,
    projectId: row.project_id,
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
    waitingSignalDigest: row.waiting_signal_digest,
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
    forkedFromRunId: row.forked_from_run_id,
    forkPosition: row.fork_position,
    scheduleId: row.schedule_id,
    scheduleTickAt: row.schedule_tick_at,
    inputPayloadId: row.input_payload_id,
    priority: row.priority,
    concurrencyKeyDigest: row.concurrency_key_digest,
    deadlineAt: row.deadline_at,
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
  /** Higher is dispatched first (0–100, default 50). */
  readonly priority?: number;
  /** HMAC of the run's concurrency key (computed in the data plane), for per-key limits. */
  readonly concurrencyKeyDigest?: string | null;
}

/** The worker stream a run is started onto (see {@link RunRepository.insertLeased}). */
export interface StartLease {
  readonly sessionId: string;
  readonly workerId: string;
  /** The digest of the credential the stream authenticated with. */
  readonly tokenSha256: string;
  readonly leaseTtlMs: number;
  /** What the stream runs: a queued run of these that it would claim first keeps the new one queued. */
  readonly workflows: ReadonlyArray<{ readonly name: string; readonly version: string; readonly taskQueue: string }>;
}

/** A run a schedule fires: queued with the schedule, its tick and the input payload reference. */
export interface NewScheduledRun {
  readonly id: string;
  readonly dataPlaneId: string;
  readonly workflowName: string;
  readonly workflowVersion: string;
  readonly taskQueue: string;
  readonly scheduleId: string;
  readonly tickAt: Date;
  /** The data-plane payload the worker creates the input from; null for no input. */
  readonly inputPayloadId: string | null;
}

/** A run forked from another one: queued in the source's data plane and project. */
export interface NewFork {
  readonly id: string;
  readonly source: Run;
  readonly workflowVersion: string;
  readonly taskQueue: string;
  readonly position: number;
  /** A new input stored in the data plane (its payload ID); null keeps the source's input. */
  readonly inputPayloadId: string | null;
}

export interface ClaimRequest {
  readonly dataPlaneId: string;
  readonly sessionId: string;
  readonly workerId: string;
  readonly workflows: ReadonlyArray<{ readonly name: string; readonly version: string; readonly taskQueue: string }>;
  readonly limit: number;
  readonly leaseTtlMs: number;
  /**
   * The names of the data plane's workflows that have flow control (see FlowControlService): they
   * are claimed under their limits. Looked up when not given.
   */
  readonly limited?: readonly string[];
  /** Told when a rate limit held runs back: a claim at that time may find capacity. */
  readonly onRateLimited?: (retryAt: Date) => void;
}

export interface Suspension {
  readonly wakeAt: Date | null;
  readonly waitingSignal: string | null;
  /** The per-run keyed digest of the signal name, which matches notices that carry no name. */
  readonly waitingSignalDigest?: string | null;
  readonly signalsConsumed: number;
  /**
   * IDs of signals of the waited name the run consumed (its journal's, the most recent ones): each
   * one without a notice gets one before notices are counted against `signalsConsumed`.
   */
  readonly consumedSignalIds?: readonly string[];
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

/** A run the sweep ended `timed_out` because its deadline passed. */
export interface TimedOutRun {
  readonly runId: string;
  readonly dataPlaneId: string;
  /** The epoch of the lease it held when it was `running` (its holder is told the lease is lost), else null. */
  readonly heldEpoch: number | null;
  /** The data plane of a parent queued because it was suspended until this run ended, else null. */
  readonly wokenParentDataPlaneId: string | null;
}

export interface RunListQuery {
  readonly projectId: string;
  /** Any of these statuses (none: all). */
  readonly statuses?: readonly RunStatusName[];
  readonly workflow?: string;
  readonly version?: string;
  readonly scheduleId?: string;
  readonly parentRunId?: string;
  /** `approval`: only runs suspended on a ctx.approval (a signal named `approval.…`). */
  readonly waiting?: 'approval';
  /** Created at or after this time. */
  readonly createdAfter?: Date;
  /** Created strictly before this time. */
  readonly createdBefore?: Date;
  readonly limit: number;
  /** Keyset position: list runs strictly older than this (created_at, id). */
  readonly after?: { readonly createdAt: string; readonly id: string };
}

/** A run suspended on a ctx.approval: its signal is `approval.<name>` (with a key digest suffix when keyed). */
const WAITING_APPROVAL = "status = 'suspended' AND suspend_reason = 'signal' AND waiting_signal LIKE 'approval.%'";

export interface RunPage {
  readonly runs: Run[];
  /** The keyset position of the last run when more follow, else null. */
  readonly next: { readonly createdAt: string; readonly id: string } | null;
}

/**
 * The statement behind `RunRepository.list`: runs of a project newest first, filtered, one more
 * than the page so the caller knows whether more follow. Every filter is served by an index in
 * creation order, so a page reads about a page of rows however many runs there are; a list of
 * statuses is one such scan per status, merged (one scan for the list would read every run of the
 * other statuses it passes). Exported so its plans can be examined: the console benchmark runs
 * EXPLAIN ANALYZE on it for each filter combination (bench/src/console.ts).
 */
export function runListStatement(query: RunListQuery): { text: string; values: unknown[] } {
  const where: string[] = ['project_id = $1'];
  const values: unknown[] = [query.projectId];
  const equal = (column: string, value: unknown): void => {
    values.push(value);
    where.push(`${column} = $${values.length}`);
  };
  const statuses = [...new Set(query.statuses ?? [])];
  if (statuses.length === 1) equal('status', statuses[0]);
  if (query.workflow !== undefined) equal('workflow_name', query.workflow);
  if (query.version !== undefined) equal('workflow_version', query.version);
  if (query.scheduleId !== undefined) equal('schedule_id', query.scheduleId);
  if (query.parentRunId !== undefined) equal('parent_run_id', query.parentRunId);
  // Spelled as the partial index runs_project_waiting_approval is (a literal, not a parameter), so
  // the planner matches it: the inbox reads only the runs waiting for a human.
  if (query.waiting === 'approval') where.push(WAITING_APPROVAL);
  if (query.createdAfter !== undefined) {
    values.push(query.createdAfter);
    where.push(`created_at >= $${values.length}`);
  }
  if (query.createdBefore !== undefined) {
    values.push(query.createdBefore);
    where.push(`created_at < $${values.length}`);
  }
  if (query.after !== undefined) {
    values.push(query.after.createdAt, query.after.id);
    where.push(`(created_at, id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
  }
  values.push(query.limit + 1);
  const limit = `$${values.length}`;
  const cursorAt = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at`;
  if (statuses.length > 1) {
    const branches = statuses.map((status) => {
      values.push(status);
      return `(SELECT ${RUN_COLUMNS} FROM runs WHERE ${where.join(' AND ')} AND status = $${values.length}
         ORDER BY created_at DESC, id DESC LIMIT ${limit})`;
    });
    return {
      text: `SELECT ${RUN_COLUMNS}, ${cursorAt}
       FROM (${branches.join(' UNION ALL ')}) AS runs
       ORDER BY created_at DESC, id DESC
       LIMIT ${limit}`,
      values,
    };
  }
  return {
    text: `SELECT ${RUN_COLUMNS}, ${cursorAt}
       FROM runs WHERE ${where.join(' AND ')}
       ORDER BY created_at DESC, id DESC
       LIMIT ${limit}`,
    values,
  };
}

/** $1–$10 of a run insert: ID, data plane, workflow name, version, task queue, idempotency digest, input size, parent, priority, concurrency-key digest. */
function newRunValues(run: NewRun): unknown[] {
  return [
    run.id,
    run.dataPlaneId,
    run.workflowName,
    run.workflowVersion,
    run.taskQueue,
    run.idempotencyDigest,
    run.inputSize,
    run.parentRunId ?? null,
    run.priority ?? 50,
    run.concurrencyKeyDigest ?? null,
  ];
}

/** All SQL about runs and their lease history. */
@Injectable()
export class RunRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /**
   * Inserts a queued run; null when its ID or idempotency digest is taken. With `q` (a
   * transaction, e.g. the quota check's), the insert runs there.
   */
  async insertQueued(run: NewRun, q?: Queryable): Promise<Run | null> {
    const text = `INSERT INTO runs (id, data_plane_id, project_id, workflow_name, workflow_version, task_queue, status, wake_reason,
                         idempotency_digest, input_size, queued_at, parent_run_id, priority, concurrency_key_digest)
       VALUES ($1, $2, (SELECT project_id FROM data_planes WHERE id = $2), $3, $4, $5, 'queued', 'start', $6, $7, now(), $8, $9, $10)
       ON CONFLICT DO NOTHING
       RETURNING ${RUN_COLUMNS}`;
    const values = newRunValues(run);
    const result = q ? await q.query<RunRow>(text, values) : await this.db.prepared<RunRow>('cp_insert_run', text, values);
    return one(result.rows);
  }

  /**
   * Inserts a run already leased to a worker stream (status `running`, epoch 1, its lease history
   * row), as a claim right after the insert would leave it; null when its ID or idempotency digest
   * is taken. The run is inserted queued instead, for the dispatch loops to claim, when its workflow
   * has flow control (whose limits only a claim under the workflow's lock can check), when a run the
   * stream would claim first (of its workflows, at this priority or higher) is queued, or when the
   * stream's credential is no longer its data plane's current one (no task goes out on such a stream).
   */
  async insertLeased(run: NewRun, lease: StartLease, q?: Queryable): Promise<Run | null> {
    const text = `WITH d AS MATERIALIZED (
         SELECT dp.project_id,
                dp.token_sha256 = $11 AND dp.revoked_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM workflow_flow_control f WHERE f.project_id = dp.project_id AND f.name = $3)
                  AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.status = 'queued' AND q.data_plane_id = $2 AND q.priority >= $9
                                    AND (q.workflow_name, q.workflow_version, q.task_queue)
                                        IN (SELECT * FROM unnest($15::text[], $16::text[], $17::text[]))) AS leased
         FROM data_planes dp WHERE dp.id = $2
       ), inserted AS (
         INSERT INTO runs (id, data_plane_id, project_id, workflow_name, workflow_version, task_queue, status, wake_reason,
                           idempotency_digest, input_size, queued_at, parent_run_id, priority, concurrency_key_digest,
                           epoch, lease_session, lease_worker, lease_expires_at, started_at, dispatch_count)
         SELECT $1, $2, d.project_id, $3, $4, $5, CASE WHEN d.leased THEN 'running' ELSE 'queued' END, 'start',
                $6, $7, now(), $8, $9, $10,
                CASE WHEN d.leased THEN 1 ELSE 0 END, CASE WHEN d.leased THEN $12::uuid END, CASE WHEN d.leased THEN $13::uuid END,
                CASE WHEN d.leased THEN now() + $14 * interval '1 millisecond' END, CASE WHEN d.leased THEN now() END,
                CASE WHEN d.leased THEN 1 ELSE 0 END
         FROM d
         ON CONFLICT DO NOTHING
         RETURNING ${RUN_COLUMNS}
       ), history AS (
         INSERT INTO run_leases (run_id, epoch, session_id, worker_id)
         SELECT id, epoch, lease_session, lease_worker FROM inserted WHERE status = 'running'
       )
       SELECT * FROM inserted`;
    const values = [
      ...newRunValues(run),
      lease.tokenSha256,
      lease.sessionId,
      lease.workerId,
      lease.leaseTtlMs,
      lease.workflows.map((w) => w.name),
      lease.workflows.map((w) => w.version),
      lease.workflows.map((w) => w.taskQueue),
    ];
    const result = q ? await q.query<RunRow>(text, values) : await this.db.prepared<RunRow>('cp_insert_run_leased', text, values);
    return one(result.rows);
  }

  /**
   * Inserts a queued run fired by a schedule, inside the caller's transaction (the one that
   * records the firing). Its input size is 0: the input is created in the data plane from the
   * payload, which the control plane never sees.
   */
  async insertScheduled(q: Queryable, run: NewScheduledRun): Promise<Run> {
    const result = await q.query<RunRow>(
      `INSERT INTO runs (id, data_plane_id, project_id, workflow_name, workflow_version, task_queue, status, wake_reason,
                         input_size, queued_at, schedule_id, schedule_tick_at, input_payload_id)
       VALUES ($1, $2, (SELECT project_id FROM data_planes WHERE id = $2), $3, $4, $5, 'queued', 'start', 0, now(), $6, $7, $8)
       RETURNING ${RUN_COLUMNS}`,
      [run.id, run.dataPlaneId, run.workflowName, run.workflowVersion, run.taskQueue, run.scheduleId, run.tickAt, run.inputPayloadId],
    );
    return one(result.rows)!;
  }

  /** The runs of a schedule that have not ended (queued, running or suspended), oldest first. */
  async openForSchedule(q: Queryable, scheduleId: string): Promise<Array<{ id: string; dataPlaneId: string }>> {
    const result = await q.query<{ id: string; data_plane_id: string }>(
      `SELECT id, data_plane_id FROM runs WHERE schedule_id = $1 AND status IN ('queued', 'running', 'suspended')
       ORDER BY created_at, id`,
      [scheduleId],
    );
    return result.rows.map((r) => ({ id: r.id, dataPlaneId: r.data_plane_id }));
  }

  /**
   * Inserts a queued run forked from `fork.source` at a journal position: same data plane, project,
   * workflow and input size (0 for a new input: its size stays in the data plane); its first
   * dispatch tells the worker to copy the source's journal prefix and, with `inputPayloadId`, to take
   * the input from that payload.
   */
  async insertFork(fork: NewFork, q: Queryable = this.db): Promise<Run> {
    const result = await q.query<RunRow>(
      `INSERT INTO runs (id, data_plane_id, project_id, workflow_name, workflow_version, task_queue, status, wake_reason,
                         input_size, queued_at, forked_from_run_id, fork_position, input_payload_id)
       VALUES ($1, $2, $3, $4, $5, $6, 'queued', 'start', $7, now(), $8, $9, $10)
       RETURNING ${RUN_COLUMNS}`,
      [
        fork.id,
        fork.source.dataPlaneId,
        fork.source.projectId,
        fork.source.workflowName,
        fork.workflowVersion,
        fork.taskQueue,
        fork.inputPayloadId === null ? fork.source.inputSize : 0,
        fork.source.id,
        fork.position,
        fork.inputPayloadId,
      ],
    );
    return one(result.rows)!;
  }

  /** A run by ID; scoped to a data plane unless `dataPlaneId` is null (the REST API sees all). */
  async find(dataPlaneId: string | null, runId: string, q: Queryable = this.db): Promise<Run | null> {
    const result =
      dataPlaneId === null
        ? await q.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1`, [runId])
        : await q.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1 AND data_plane_id = $2`, [runId, dataPlaneId]);
    return one(result.rows);
  }

  /** A run by ID within a project (the REST API). */
  async findInProject(projectId: string, runId: string, q: Queryable = this.db): Promise<Run | null> {
    const result = await q.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1 AND project_id = $2`, [runId, projectId]);
    return one(result.rows);
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
   * Claims up to `limit` queued runs of the worker's workflow set, highest priority first, then
   * oldest. Workflows with flow control are claimed first, each under its limits
   * ({@link claimLimited}); the others in one statement: `FOR UPDATE SKIP LOCKED` makes concurrent
   * claims (any number of sessions and replicas) take disjoint runs; the epoch grows by one and the
   * lease history gets a row.
   */
  async claim(request: ClaimRequest): Promise<Run[]> {
    if (request.limit <= 0 || request.workflows.length === 0) return [];
    const limited = request.limited ?? (await this.limitedNames(request.dataPlaneId));
    const claimed: Run[] = [];
    for (const name of new Set(limited)) {
      const left = request.limit - claimed.length;
      const workflows = request.workflows.filter((w) => w.name === name);
      if (left <= 0) break;
      if (workflows.length === 0) continue;
      const { runs, rateRetryAt } = await this.claimLimited({ ...request, workflows, limit: left }, name);
      claimed.push(...runs);
      if (rateRetryAt !== null) request.onRateLimited?.(rateRetryAt);
    }
    const left = request.limit - claimed.length;
    if (left > 0) claimed.push(...(await this.claimUnlimited({ ...request, limit: left })));
    return claimed;
  }

  /** The hot path: workflows without flow control (a limited one is skipped by one index probe). */
  private async claimUnlimited(request: ClaimRequest, q?: Queryable): Promise<Run[]> {
    const text = `WITH picked AS MATERIALIZED (
         SELECT id FROM runs
         WHERE status = 'queued' AND data_plane_id = $1
           AND (workflow_name, workflow_version, task_queue) IN (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]))
           AND NOT EXISTS (SELECT 1 FROM workflow_flow_control f WHERE f.project_id = runs.project_id AND f.name = runs.workflow_name)
         ORDER BY priority DESC, queued_at
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
       SELECT * FROM claimed ORDER BY priority DESC, queued_at`;
    const values = [
      request.dataPlaneId,
      request.workflows.map((w) => w.name),
      request.workflows.map((w) => w.version),
      request.workflows.map((w) => w.taskQueue),
      request.limit,
      request.sessionId,
      request.workerId,
      request.leaseTtlMs,
    ];
    const result = q ? await q.query<RunRow>(text, values) : await this.db.prepared<RunRow>('cp_claim', text, values);
    return result.rows.map(toRun);
  }

  /** The names of the limited workflows of a data plane's project. */
  private async limitedNames(dataPlaneId: string): Promise<string[]> {
    const result = await this.db.query<{ name: string }>(
      'SELECT f.name FROM workflow_flow_control f JOIN data_planes d ON d.project_id = f.project_id WHERE d.id = $1',
      [dataPlaneId],
    );
    return result.rows.map((r) => r.name);
  }

  /**
   * Claims runs of one workflow with flow control, in a transaction that first locks the
   * workflow's `workflow_flow_control` row: every claim of that workflow, on any replica, is
   * serialised by that lock, so counting and claiming cannot interleave. Under the lock:
   * - concurrency: runs of the workflow holding a lease (`running`, in any data plane of the
   *   project) count; queued and suspended runs do not. At most limit − running are claimed, per
   *   concurrency key when the limit is per key (runs without a key share one bucket);
   * - rate: a run's first dispatch counts (a resumed run does not); at most limit − (first
   *   dispatches in the last period) runs that never ran are claimed, per key when per key;
   * - order: priority (higher first), then oldest.
   * `rateRetryAt` is when the oldest first dispatch leaves the window, when the rate limit may
   * have held runs back.
   */
  async claimLimited(request: ClaimRequest, name: string): Promise<{ runs: Run[]; rateRetryAt: Date | null }> {
    return this.db.transaction(async (tx) => {
      const locked = await tx.query<FlowControlRow>(
        `SELECT ${FLOW_CONTROL_COLUMNS} FROM workflow_flow_control
         WHERE project_id = (SELECT project_id FROM data_planes WHERE id = $1) AND name = $2 FOR UPDATE`,
        [request.dataPlaneId, name],
      );
      const row = locked.rows[0];
      // The limit was removed meanwhile: the workflow is claimed like any other.
      if (!row) return { runs: await this.claimUnlimited(request, tx), rateRetryAt: null };
      const flow = toFlowControl(row);
      if (flow.rateLimit) {
        await tx.query(
          `DELETE FROM flow_starts WHERE project_id = $1 AND workflow_name = $2 AND started_at <= now() - $3 * interval '1 millisecond'`,
          [flow.projectId, name, flow.rateLimit.periodMs],
        );
      }
      const result = await tx.query<RunRow>(
        `WITH running AS (
           SELECT coalesce(concurrency_key_digest, '') AS k, count(*) AS n FROM runs
           WHERE project_id = $9 AND workflow_name = $10 AND status = 'running' GROUP BY 1
         ), recent AS (
           SELECT key_digest AS k, count(*) AS n FROM flow_starts
           WHERE project_id = $9 AND workflow_name = $10 AND started_at > now() - $14::int * interval '1 millisecond' GROUP BY 1
         ), candidates AS (
           SELECT id, priority, queued_at, coalesce(concurrency_key_digest, '') AS k, started_at IS NULL AS fresh FROM runs
           WHERE status = 'queued' AND data_plane_id = $1
             AND (workflow_name, workflow_version, task_queue) IN (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]))
         ), rated AS (
           SELECT c.*, count(*) FILTER (WHERE c.fresh)
             OVER (PARTITION BY CASE WHEN $15::boolean THEN c.k ELSE '' END ORDER BY c.priority DESC, c.queued_at, c.id) AS rate_rank
           FROM candidates c
         ), rate_ok AS (
           SELECT r.* FROM rated r
           WHERE NOT r.fresh OR $13::int IS NULL
              OR r.rate_rank <= $13::int - coalesce((SELECT sum(n) FROM recent WHERE NOT $15::boolean OR recent.k = r.k), 0)
         ), ranked AS (
           SELECT o.*, row_number()
             OVER (PARTITION BY CASE WHEN $12::boolean THEN o.k ELSE '' END ORDER BY o.priority DESC, o.queued_at, o.id) AS conc_rank
           FROM rate_ok o
         ), eligible AS (
           SELECT x.id FROM ranked x
           WHERE $11::int IS NULL
              OR x.conc_rank <= $11::int - coalesce((SELECT sum(n) FROM running WHERE NOT $12::boolean OR running.k = x.k), 0)
           ORDER BY x.priority DESC, x.queued_at, x.id
           LIMIT $5
         ), picked AS MATERIALIZED (
           SELECT id FROM runs WHERE id IN (SELECT id FROM eligible) AND status = 'queued' FOR UPDATE SKIP LOCKED
         ), claimed AS (
           UPDATE runs r SET status = 'running', epoch = r.epoch + 1, lease_session = $6, lease_worker = $7,
                  lease_expires_at = now() + $8 * interval '1 millisecond', started_at = coalesce(r.started_at, now()),
                  dispatch_count = r.dispatch_count + 1, updated_at = now()
           FROM picked WHERE r.id = picked.id
           RETURNING ${runColumns('r')}
         ), history AS (
           INSERT INTO run_leases (run_id, epoch, session_id, worker_id) SELECT id, epoch, $6, $7 FROM claimed
         ), starts AS (
           INSERT INTO flow_starts (project_id, workflow_name, key_digest)
           SELECT $9, $10, coalesce(concurrency_key_digest, '') FROM claimed WHERE $13::int IS NOT NULL AND claimed.dispatch_count = 1
         )
         SELECT * FROM claimed ORDER BY priority DESC, queued_at`,
        [
          request.dataPlaneId,
          request.workflows.map((w) => w.name),
          request.workflows.map((w) => w.version),
          request.workflows.map((w) => w.taskQueue),
          request.limit,
          request.sessionId,
          request.workerId,
          request.leaseTtlMs,
          flow.projectId,
          name,
          flow.concurrency?.limit ?? null,
          flow.concurrency?.perKey ?? false,
          flow.rateLimit?.limit ?? null,
          flow.rateLimit?.periodMs ?? 1,
          flow.rateLimit?.perKey ?? false,
        ],
      );
      const runs = result.rows.map(toRun);
      let rateRetryAt: Date | null = null;
      if (flow.rateLimit && runs.length < request.limit) {
        const oldest = await tx.query<{ at: Date | null }>(
          `SELECT min(started_at) + $3 * interval '1 millisecond' AS at FROM flow_starts WHERE project_id = $1 AND workflow_name = $2`,
          [flow.projectId, name, flow.rateLimit.periodMs],
        );
        rateRetryAt = oldest.rows[0]?.at ?? null;
      }
      return { runs, rateRetryAt };
    });
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
         UPDATE run_leases l SET session_id = $4, reattached_at = clock_timestamp()
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
              waiting_child = $6, waiting_signal_digest = $7, lease_session = NULL, lease_worker = NULL, lease_expires_at = NULL, queued_at = NULL, updated_at = now()
       WHERE id = $1 RETURNING ${RUN_COLUMNS}`,
      [runId, s.wakeAt, s.waitingSignal, s.signalsConsumed, s.suspendReason, s.waitingChild ?? null, s.waitingSignalDigest ?? null],
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
   * Terminates a run that is not final: `terminated` at once, lease, timer, signal wait and queue
   * place cleared, and the lease row of a running run ended as 'terminated'. The caller holds the
   * row lock. No compensation runs.
   */
  async terminate(tx: Queryable, runId: string): Promise<Run> {
    const result = await tx.query<RunRow>(
      `WITH ended AS (
         UPDATE runs SET status = 'terminated', ended_at = now(), wake_at = NULL, waiting_signal = NULL, waiting_child = NULL,
                lease_session = NULL, lease_worker = NULL, lease_expires_at = NULL, queued_at = NULL, updated_at = now()
         WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled', 'terminated', 'timed_out')
         RETURNING ${RUN_COLUMNS}
       ), history AS (
         UPDATE run_leases l SET ended_at = clock_timestamp(), end_reason = 'terminated'
         FROM ended WHERE l.run_id = ended.id AND l.epoch = ended.epoch AND l.ended_at IS NULL
       )
       SELECT * FROM ended`,
      [runId],
    );
    return one(result.rows)!;
  }

  /**
   * Queues the parent of a run that just reached a final state, if the parent is suspended until
   * this child ends (wake reason 'child'). Returns whether the parent was queued.
   *
   * The parent's row lock comes first, in a statement of its own: a suspension of the parent in
   * progress holds that lock while it checks whether this child ended (and cannot see this
   * uncommitted end), so it must commit before the check below takes its snapshot. Without the
   * lock, the check would see the parent still running and neither side would wake it. (NO KEY
   * UPDATE: it conflicts with the suspension's lock, not with rows inserted that reference the run.)
   */
  async wakeParent(tx: Queryable, child: Run): Promise<boolean> {
    if (child.parentRunId === null) return false;
    await tx.query('SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE', [child.parentRunId]);
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
    await tx.query(
      'UPDATE run_leases SET ended_at = clock_timestamp(), end_reason = $3 WHERE run_id = $1 AND epoch = $2 AND ended_at IS NULL',
      [lease.runId, lease.epoch, reason],
    );
  }

  /**
   * In one statement: if the run is `running` under that epoch in this data plane, records the
   * final state (or, for `released`, queues it again) and ends the lease row. With `credential`
   * (the digest a worker stream authenticated with), only while it is still the data plane's
   * current credential. Null when nothing was applied; see {@link leaseState}.
   */
  async endHeldLease(
    dataPlaneId: string,
    lease: LeaseKey,
    reason: 'completed' | 'failed' | 'cancelled' | 'released',
    outcome: { outputSize?: number; errorCode?: number | null; errorRef?: string | null } = {},
    credential: string | null = null,
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
           AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM data_planes WHERE id = $2 AND token_sha256 = $8 AND revoked_at IS NULL))
         RETURNING ${RUN_COLUMNS}
       ), history AS (
         UPDATE run_leases SET ended_at = clock_timestamp(), end_reason = $4
         WHERE run_id = $1 AND epoch = $3 AND ended_at IS NULL AND EXISTS (SELECT 1 FROM ended)
       ), parent AS (
         -- A parent suspended until this child ends is queued in the same statement. Its row lock
         -- comes first (see wakeParent); a lock that waited for a suspension to commit yields the
         -- suspended row, so the decision uses these columns, never p's in the statement's snapshot
         -- (which may still show the parent running): no condition on p's status in woken.
         SELECT p.id, p.status, p.waiting_child FROM runs p JOIN ended ON p.id = ended.parent_run_id
         WHERE ended.status <> 'queued'
         FOR NO KEY UPDATE OF p
       ), woken AS (
         UPDATE runs p SET status = 'queued', wake_reason = 'child', wake_at = NULL, waiting_signal = NULL, waiting_child = NULL,
                queued_at = now(), updated_at = now()
         FROM parent JOIN ended ON parent.waiting_child = ended.id
         WHERE p.id = parent.id AND parent.status = 'suspended'
       )
       SELECT * FROM ended`,
      [
        lease.runId,
        dataPlaneId,
        lease.epoch,
        reason,
        outcome.outputSize ?? null,
        outcome.errorCode ?? null,
        outcome.errorRef ?? null,
        credential,
      ],
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
         UPDATE run_leases l SET ended_at = clock_timestamp(), end_reason = 'released'
         FROM released WHERE l.run_id = released.id AND l.epoch = released.epoch AND l.ended_at IS NULL
       )
       SELECT * FROM released`,
      [sessionId, leases.map((l) => l.runId), leases.map((l) => l.epoch)],
    );
    return result.rows.map((r) => ({ runId: r.id, epoch: r.epoch, dataPlaneId: r.data_plane_id }));
  }

  /**
   * Requeues up to `limit` running runs whose lease expired (wake reason RECOVERY), at most
   * `perDataPlane` of each data plane (earliest first), and ends their lease rows as 'expired': a
   * data plane whose whole fleet stopped takes its share of a batch, not all of it. One statement;
   * replicas sweeping at once skip each other's rows.
   */
  async requeueExpiredLeases(limit: number, perDataPlane: number): Promise<ExpiredLease[]> {
    const result = await this.db.query<{ id: string; epoch: number; data_plane_id: string; lease_session: string | null }>(
      `WITH picked AS MATERIALIZED (
         SELECT due.id, due.lease_session FROM data_planes d
         CROSS JOIN LATERAL (
           SELECT r.id, r.lease_session, r.lease_expires_at FROM runs r
           WHERE r.data_plane_id = d.id AND r.status = 'running' AND r.lease_expires_at < now()
           ORDER BY r.lease_expires_at
           LIMIT $2
           FOR UPDATE OF r SKIP LOCKED
         ) due
         ORDER BY due.lease_expires_at
         LIMIT $1
       ), expired AS (
         UPDATE runs r SET status = 'queued', wake_reason = 'recovery', lease_session = NULL, lease_worker = NULL,
                lease_expires_at = NULL, queued_at = now(), updated_at = now()
         FROM picked WHERE r.id = picked.id
         RETURNING r.id, r.epoch, r.data_plane_id, picked.lease_session
       ), history AS (
         UPDATE run_leases l SET ended_at = clock_timestamp(), end_reason = 'expired'
         FROM expired WHERE l.run_id = expired.id AND l.epoch = expired.epoch AND l.ended_at IS NULL
       )
       SELECT * FROM expired`,
      [limit, perDataPlane],
    );
    return result.rows.map((r) => ({ runId: r.id, epoch: r.epoch, dataPlaneId: r.data_plane_id, sessionId: r.lease_session }));
  }

  /**
   * Ends up to `limit` runs past their deadline `timed_out` with `errorCode`, whatever state they
   * are in (queued, running or suspended): lease, timer, signal wait and queue place cleared, the
   * lease row of a running one ended 'timed_out', and a parent suspended until one of them ends
   * queued (wake reason 'child'). One statement; replicas sweeping at once skip each other's runs
   * (a parent's row lock is waited for, as by any end of a child).
   */
  async timeOutOverdue(limit: number, errorCode: number): Promise<TimedOutRun[]> {
    const result = await this.db.query<{ id: string; data_plane_id: string; held_epoch: number | null; parent_dp: string | null }>(
      `WITH picked AS MATERIALIZED (
         SELECT id, status, epoch FROM runs
         WHERE deadline_at <= now() AND deadline_at IS NOT NULL AND status IN ('queued', 'running', 'suspended')
         ORDER BY deadline_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED
       ), ended AS (
         UPDATE runs r SET status = 'timed_out', error_code = $2, ended_at = now(), wake_at = NULL, waiting_signal = NULL,
                waiting_child = NULL, lease_session = NULL, lease_worker = NULL, lease_expires_at = NULL, queued_at = NULL,
                updated_at = now()
         FROM picked WHERE r.id = picked.id
         RETURNING r.id, r.data_plane_id, r.parent_run_id, CASE WHEN picked.status = 'running' THEN picked.epoch END AS held_epoch
       ), history AS (
         UPDATE run_leases l SET ended_at = clock_timestamp(), end_reason = 'timed_out'
         FROM ended WHERE l.run_id = ended.id AND l.epoch = ended.held_epoch AND l.ended_at IS NULL
       ), parent AS (
         -- A parent suspended until one of these runs ends goes on, as after any final transition
         -- (a parent timing out in this same statement is not touched twice). Its row lock comes
         -- first and the decision uses the row as locked, as in endHeldLease (see wakeParent). In
         -- ID order, so replicas sweeping at once take parents' locks in the same order.
         SELECT p.id, p.status, p.waiting_child FROM runs p JOIN ended ON p.id = ended.parent_run_id
         WHERE p.id NOT IN (SELECT id FROM picked)
         ORDER BY p.id
         FOR NO KEY UPDATE OF p
       ), woken AS (
         UPDATE runs p SET status = 'queued', wake_reason = 'child', wake_at = NULL, waiting_signal = NULL, waiting_child = NULL,
                queued_at = now(), updated_at = now()
         FROM parent JOIN ended ON parent.waiting_child = ended.id
         WHERE p.id = parent.id AND parent.status = 'suspended'
         RETURNING ended.id AS child_id, p.data_plane_id
       )
       SELECT ended.id, ended.data_plane_id, ended.held_epoch, woken.data_plane_id AS parent_dp
       FROM ended LEFT JOIN woken ON woken.child_id = ended.id`,
      [limit, errorCode],
    );
    return result.rows.map((r) => ({
      runId: r.id,
      dataPlaneId: r.data_plane_id,
      heldEpoch: r.held_epoch,
      wokenParentDataPlaneId: r.parent_dp,
    }));
  }

  /** The child runs of these runs that ended `timed_out`, by parent (a RunTask tells the parent's worker). */
  async timedOutChildren(parentRunIds: readonly string[]): Promise<Map<string, string[]>> {
    const byParent = new Map<string, string[]>();
    if (parentRunIds.length === 0) return byParent;
    const result = await this.db.query<{ id: string; parent_run_id: string }>(
      `SELECT id, parent_run_id FROM runs WHERE parent_run_id = ANY($1::uuid[]) AND status = 'timed_out' ORDER BY created_at, id`,
      [parentRunIds],
    );
    for (const row of result.rows) {
      const list = byParent.get(row.parent_run_id) ?? [];
      list.push(row.id);
      byParent.set(row.parent_run_id, list);
    }
    return byParent;
  }

  /**
   * Queues up to `limit` suspended runs whose timer is due (TIMER, or RETRY after a retry backoff),
   * at most `perDataPlane` of each data plane, earliest first: a data plane with a million due
   * timers takes its share of a batch, not the whole of it, so another's timer is not held behind
   * them. One statement; replicas sweeping at once skip each other's rows.
   */
  async queueDueTimers(limit: number, perDataPlane: number): Promise<Array<{ runId: string; dataPlaneId: string }>> {
    const result = await this.db.query<{ id: string; data_plane_id: string }>(
      `WITH picked AS MATERIALIZED (
         SELECT due.id FROM data_planes d
         CROSS JOIN LATERAL (
           SELECT r.id, r.wake_at FROM runs r
           WHERE r.data_plane_id = d.id AND r.status = 'suspended' AND r.wake_at <= now()
           ORDER BY r.wake_at
           LIMIT $2
           FOR UPDATE OF r SKIP LOCKED
         ) due
         ORDER BY due.wake_at
         LIMIT $1
       )
       UPDATE runs r SET status = 'queued',
              wake_reason = CASE WHEN r.suspend_reason = 'retry_backoff' THEN 'retry' ELSE 'timer' END,
              wake_at = NULL, waiting_signal = NULL, waiting_child = NULL, queued_at = now(), updated_at = now()
       FROM picked WHERE r.id = picked.id
       RETURNING r.id, r.data_plane_id`,
      [limit, perDataPlane],
    );
    return result.rows.map((r) => ({ runId: r.id, dataPlaneId: r.data_plane_id }));
  }

  /**
   * Milliseconds until the earliest timer of a suspended run, by the database's clock (negative
   * when one is due), or null when no suspended run has a timer. One probe of the runs_wake index.
   */
  async nextTimerInMs(): Promise<number | null> {
    const result = await this.db.query<{ ms: number | null }>(
      `SELECT (extract(epoch FROM (SELECT min(wake_at) FROM runs WHERE status = 'suspended') - now()) * 1000)::float8 AS ms`,
    );
    return result.rows[0]?.ms ?? null;
  }

  /** Runs newest first, filtered, with keyset pagination on (created_at, id). */
  async list(query: RunListQuery): Promise<RunPage> {
    const statement = runListStatement(query);
    const result = await this.db.query<RunRow & { cursor_at: string }>(statement.text, statement.values);
    const rows = result.rows.slice(0, query.limit);
    const last = rows[rows.length - 1];
    return {
      runs: rows.map(toRun),
      next: result.rows.length > query.limit && last ? { createdAt: last.cursor_at, id: last.id } : null,
    };
  }
}
