import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, newId, type Logger } from '@cairn/common';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import type { AuditActor } from '../audit/audit.repository.js';
import { Database, errorSummary, type Queryable } from '../db/database.js';
import { RunRepository } from '../runs/run.repository.js';
import {
  ScheduleRepository,
  type FiringKind,
  type FiringOutcome,
  type FiringRecord,
  type OverlapPolicy,
  type ScheduleRecord,
} from './schedule.repository.js';
import { WorkflowRepository } from '../workflows/workflow.repository.js';
import type { WorkflowRefInput } from '../domain.js';
import { LOGGER } from '../tokens.js';
import { PeriodicTask } from '../shared/periodic-task.js';
import { AuditService } from '../audit/audit.service.js';
import { CLOCK, type Clock } from '../shared/clock.js';
import { CronSchedule } from './cron.js';
import { EventBus } from '../events/event-bus.service.js';
import { QuotaService } from '../metering/quota.service.js';
import { RunService } from '../runs/run.service.js';

/** At most this many ticks of one schedule are fired per pass; the rest follow in the next pass. */
export const MAX_TICKS_PER_PASS = 100;
/** At most this many schedules are looked at per pass; the rest follow in the next pass. */
const DUE_BATCH = 500;
/** A backfill fires at most this many ticks. */
export const MAX_BACKFILL_TICKS = 1_000;

interface OpenRun {
  readonly id: string;
  readonly dataPlaneId: string;
}

/** What one transaction over one schedule has done so far. */
interface FiringContext {
  readonly schedule: ScheduleRecord;
  readonly now: Date;
  /** Runs of the schedule that have not ended, including those fired in this transaction. */
  open: OpenRun[];
  bufferedFiringId: string | null;
  /** cancel_previous: runs to cancel once the transaction committed. */
  readonly toCancel: OpenRun[];
  started: number;
  workflow?: WorkflowRefInput | null;
}

/** What a backfill would fire: every tick in the range, and whether it already has a firing. */
export interface BackfillPreview {
  readonly ticks: { readonly tickAt: Date; readonly alreadyFired: boolean }[];
}

/** Throws INVALID_ARGUMENT unless [from, to) is a non-empty range in the past. */
function checkBackfillRange(from: Date, to: Date, now: Date): void {
  if (!(from < to)) {
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'body field from: must be earlier than to (the range is [from, to))');
  }
  if (to > now) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `body field to: ${to.toISOString()} is later than now (${now.toISOString()}); a backfill covers past ticks, the schedule fires later ones itself`,
    );
  }
}

/** The schedule's ticks in [from, to); INVALID_ARGUMENT when there are more than a backfill fires. */
function backfillTicks(schedule: ScheduleRecord, from: Date, to: Date): Date[] {
  const { ticks, more } = CronSchedule.parse(schedule.cron, schedule.timeZone).between(from, to, MAX_BACKFILL_TICKS);
  if (more) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `the range [${from.toISOString()}, ${to.toISOString()}) holds more than ${MAX_BACKFILL_TICKS} ticks of ` +
        `"${schedule.cron}" (${schedule.timeZone}); a backfill fires at most ${MAX_BACKFILL_TICKS}: split the range into smaller ones`,
    );
  }
  return ticks;
}

/** The outcome of a backfill. */
export interface BackfillResult {
  readonly firings: FiringRecord[];
  /** Ticks in the range that already had a firing (they are not fired again). */
  readonly alreadyFired: number;
  /** Every tick in the range, and whether it already had a firing. */
  readonly ticks: BackfillPreview['ticks'];
}

/**
 * Fires schedules. Every CAIRN_SCHEDULE_TICK_INTERVAL_MS one replica (the one that gets the
 * advisory lock) looks for schedules with a due tick; each schedule is handled in one transaction
 * that locks its row, records one firing per tick (unique per schedule and tick time) and creates
 * the runs. So a tick fires exactly once however many replicas tick, and a crash between the
 * firing and the run cannot happen. Time comes from the injected {@link Clock}.
 *
 * Catch-up: a tick fires when the ticker handles it no later than the schedule's catch-up window
 * plus one ticker interval after its time. After downtime, every missed tick within that reach
 * fires, oldest first, each once (subject to the overlap policy like any tick); older ticks are
 * skipped without a firing.
 */
@Injectable()
export class ScheduleTicker {
  private readonly periodic: PeriodicTask;

  constructor(
    @Inject(Database) private readonly db: Database,
    @Inject(ScheduleRepository) private readonly schedules: ScheduleRepository,
    @Inject(RunRepository) private readonly runs: RunRepository,
    @Inject(WorkflowRepository) private readonly workflows: WorkflowRepository,
    @Inject(RunService) private readonly runService: RunService,
    @Inject(EventBus) private readonly events: EventBus,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(QuotaService) private readonly quotas: QuotaService,
  ) {
    this.periodic = new PeriodicTask(
      config.scheduleTickIntervalMs,
      () => this.tick(),
      (error) => this.logger.error({ err: errorSummary(error) }, 'schedule ticker pass failed; retrying at the next interval'),
    );
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /**
   * One ticker pass at the clock's time, if this replica gets the ticker lock; `undefined` when
   * another replica is ticking. Returns how many firings it recorded.
   */
  async tick(): Promise<number | undefined> {
    return this.schedules.withTickerLock(() => this.pass(this.clock.now()));
  }

  /**
   * Handles every schedule due at `now`, without the ticker lock (the row locks and the unique
   * firing rows keep it exactly-once; the lock only avoids duplicate work).
   */
  async pass(now: Date): Promise<number> {
    let fired = 0;
    for (const id of await this.schedules.due(now, DUE_BATCH)) {
      try {
        fired += await this.handle(id, now);
      } catch (error) {
        this.logger.error({ scheduleId: id, err: errorSummary(error) }, 'schedule tick failed; retrying at the next pass');
      }
    }
    return fired;
  }

  /** Fires one run now for a schedule (trigger-now), obeying `policy` (default: the schedule's). */
  async trigger(projectId: string, actor: AuditActor, scheduleId: string, policy: OverlapPolicy | undefined): Promise<FiringRecord> {
    const now = this.clock.now();
    const { ctx, firing } = await this.db.transaction(async (tx) => {
      const schedule = await this.schedules.lock(tx, projectId, scheduleId);
      if (!schedule) throw scheduleNotFound(scheduleId);
      await this.audit.setActor(tx, actor);
      const ctx = await this.context(tx, schedule, now);
      const firing = await this.fire(tx, ctx, now, 'trigger', policy ?? schedule.overlapPolicy);
      if (ctx.bufferedFiringId !== schedule.bufferedFiringId) await this.schedules.setBuffered(tx, schedule.id, ctx.bufferedFiringId);
      await this.audit.record(tx, {
        projectId,
        actor,
        action: 'schedule.triggered',
        target: { type: 'schedule', id: schedule.id },
        metadata: { overlapPolicy: policy ?? schedule.overlapPolicy, outcome: firing?.outcome, runId: firing?.runId ?? null },
      });
      return { ctx, firing };
    });
    await this.afterCommit(ctx);
    // A trigger firing has no tick to collide with, so it is always recorded.
    return firing!;
  }

  /**
   * Fires one run per tick in [from, to), each recording its tick time, whatever the overlap
   * policy. Ticks that already have a firing are left alone. `to` must not be later than now (the
   * ticker fires what comes next); more than MAX_BACKFILL_TICKS ticks are refused.
   */
  async backfill(projectId: string, actor: AuditActor, scheduleId: string, from: Date, to: Date): Promise<BackfillResult> {
    const now = this.clock.now();
    checkBackfillRange(from, to, now);
    const { ctx, result } = await this.db.transaction(async (tx) => {
      const schedule = await this.schedules.lock(tx, projectId, scheduleId);
      if (!schedule) throw scheduleNotFound(scheduleId);
      const ticks = backfillTicks(schedule, from, to);
      await this.audit.setActor(tx, actor);
      const ctx = await this.context(tx, schedule, now);
      const firings: FiringRecord[] = [];
      const outcome: BackfillPreview['ticks'] = [];
      let alreadyFired = 0;
      for (const tick of ticks) {
        const firing = await this.fire(tx, ctx, tick, 'backfill', 'allow_all');
        if (firing) firings.push(firing);
        else alreadyFired++;
        outcome.push({ tickAt: tick, alreadyFired: firing === null });
      }
      await this.audit.record(tx, {
        projectId,
        actor,
        action: 'schedule.backfilled',
        target: { type: 'schedule', id: schedule.id },
        metadata: { from: from.toISOString(), to: to.toISOString(), started: firings.length, alreadyFired },
      });
      return { ctx, result: { firings, alreadyFired, ticks: outcome } };
    });
    await this.afterCommit(ctx);
    return result;
  }

  /**
   * What a backfill of [from, to) would fire, without firing anything: the same checks and the
   * same ticks as {@link backfill}, each saying whether it already has a firing (a backfill skips
   * those). Nothing is written and nothing is audited.
   */
  async previewBackfill(projectId: string, scheduleId: string, from: Date, to: Date): Promise<BackfillPreview> {
    checkBackfillRange(from, to, this.clock.now());
    const schedule = await this.schedules.find(projectId, { id: scheduleId });
    if (!schedule) throw scheduleNotFound(scheduleId);
    const ticks = backfillTicks(schedule, from, to);
    const fired = await this.schedules.firedTicks(schedule.id, ticks);
    return { ticks: ticks.map((tickAt) => ({ tickAt, alreadyFired: fired.has(tickAt.getTime()) })) };
  }

  // ---- one schedule ----------------------------------------------------------------------------

  /** Handles one due schedule in one transaction; returns how many firings it recorded. */
  private async handle(id: string, now: Date): Promise<number> {
    const done = await this.db.transaction(async (tx) => {
      const schedule = await this.schedules.lockActive(tx, id);
      if (!schedule) return null; // paused or deleted meanwhile, or another replica has it
      // The runs this transaction creates are the system's doing (the audit log's run transitions).
      await this.audit.setActor(tx, { type: 'system' });
      const ctx = await this.context(tx, schedule, now);
      let fired = 0;
      if (ctx.bufferedFiringId !== null && ctx.open.length === 0) await this.startBuffered(tx, ctx);
      let next = schedule.nextTickAt;
      if (next !== null && next <= now) {
        const cron = CronSchedule.parse(schedule.cron, schedule.timeZone);
        const reach = new Date(now.getTime() - schedule.catchUpWindowMs - this.config.scheduleTickIntervalMs);
        const from = next < reach ? reach : next;
        if (from > next) {
          this.logger.info(
            { scheduleId: id, skippedFrom: next.toISOString(), skippedUntil: from.toISOString() },
            'ticks older than the catch-up window skipped',
          );
        }
        const { ticks, more } = cron.between(from, new Date(now.getTime() + 1), MAX_TICKS_PER_PASS);
        for (const tick of ticks) if (await this.fire(tx, ctx, tick, 'tick', schedule.overlapPolicy)) fired++;
        const last = ticks[ticks.length - 1];
        next = more && last ? cron.next(last) : cron.next(now);
      }
      await this.schedules.setTickState(tx, id, next, ctx.bufferedFiringId);
      return { ctx, fired };
    });
    if (!done) return 0;
    await this.afterCommit(done.ctx);
    return done.fired;
  }

  private async context(tx: Queryable, schedule: ScheduleRecord, now: Date): Promise<FiringContext> {
    return {
      schedule,
      now,
      open: await this.runs.openForSchedule(tx, schedule.id),
      bufferedFiringId: schedule.bufferedFiringId,
      toCancel: [],
      started: 0,
    };
  }

  /**
   * The workflow version to pin the schedule's runs to, resolved once per transaction as StartRun
   * does: the pinned version, or the newest one that can start. Null (the firing records
   * `workflow_not_found`) when there is none or the pinned version is deprecated.
   */
  private async resolveWorkflow(ctx: FiringContext): Promise<WorkflowRefInput | null> {
    if (ctx.workflow === undefined) {
      const { dataPlaneId, workflowName, workflowVersion } = ctx.schedule;
      const resolved = await this.workflows.resolve(dataPlaneId, workflowName, workflowVersion);
      ctx.workflow = resolved && !resolved.deprecated ? resolved : null;
    }
    return ctx.workflow;
  }

  /**
   * Records one firing at `tickAt` and does what `policy` says: start a run, skip, buffer, or
   * cancel the open runs and start one. Null when that tick already has a firing (nothing done).
   */
  private async fire(
    tx: Queryable,
    ctx: FiringContext,
    tickAt: Date,
    kind: FiringKind,
    policy: OverlapPolicy,
  ): Promise<FiringRecord | null> {
    const overlapping = ctx.open.length > 0;
    let outcome: FiringOutcome = 'started';
    if (overlapping && policy === 'skip') outcome = 'skipped';
    else if (overlapping && policy === 'buffer_one') outcome = ctx.bufferedFiringId === null ? 'buffered' : 'skipped';
    const workflow = outcome === 'started' ? await this.resolveWorkflow(ctx) : null;
    if (outcome === 'started' && !workflow) outcome = 'workflow_not_found';
    else if (outcome === 'started' && !(await this.withinQuotas(tx, ctx))) outcome = 'quota_exceeded';
    const cancel = outcome === 'started' && policy === 'cancel_previous' ? [...ctx.open] : [];
    const firing: FiringRecord = {
      id: newId(),
      scheduleId: ctx.schedule.id,
      tickAt,
      kind,
      outcome,
      runId: outcome === 'started' ? newId() : null,
      cancelledRuns: cancel.length,
      firedAt: ctx.now,
    };
    if (!(await this.schedules.insertFiring(tx, firing))) return null;
    if (outcome === 'buffered') ctx.bufferedFiringId = firing.id;
    if (outcome === 'started' && workflow && firing.runId) {
      ctx.toCancel.push(...cancel);
      if (cancel.length > 0) ctx.open = [];
      await this.insertRun(tx, ctx, firing.runId, workflow, tickAt);
    }
    return firing;
  }

  /** buffer_one: the open run ended, so the buffered firing starts its run now. */
  private async startBuffered(tx: Queryable, ctx: FiringContext): Promise<void> {
    const firingId = ctx.bufferedFiringId!;
    ctx.bufferedFiringId = null;
    const buffered = await this.schedules.firing(tx, firingId);
    if (!buffered || buffered.outcome !== 'buffered') return;
    const workflow = await this.resolveWorkflow(ctx);
    if (!workflow) {
      await this.schedules.resolveBuffered(tx, firingId, 'workflow_not_found', null, ctx.now);
      return;
    }
    if (!(await this.withinQuotas(tx, ctx))) {
      await this.schedules.resolveBuffered(tx, firingId, 'quota_exceeded', null, ctx.now);
      return;
    }
    const runId = newId();
    await this.schedules.resolveBuffered(tx, firingId, 'started', runId, ctx.now);
    await this.insertRun(tx, ctx, runId, workflow, buffered.tickAt);
  }

  /**
   * Whether the project's quotas (concurrent runs, steps this month) let one more run start, as
   * for StartRun; the check takes the project's start lock in `tx`, so the insert cannot overshoot.
   */
  private async withinQuotas(tx: Queryable, ctx: FiringContext): Promise<boolean> {
    try {
      await this.quotas.assertCanStart(ctx.schedule.projectId, tx);
      return true;
    } catch (error) {
      if (error instanceof CairnError && error.code === ErrorCodes.QUOTA_EXCEEDED) return false;
      throw error;
    }
  }

  private async insertRun(tx: Queryable, ctx: FiringContext, runId: string, workflow: WorkflowRefInput, tickAt: Date): Promise<void> {
    const { schedule } = ctx;
    const run = await this.runs.insertScheduled(tx, {
      id: runId,
      dataPlaneId: schedule.dataPlaneId,
      workflowName: workflow.name,
      workflowVersion: workflow.version,
      taskQueue: workflow.taskQueue,
      scheduleId: schedule.id,
      tickAt,
      inputPayloadId: schedule.inputPayloadId,
    });
    ctx.open.push({ id: run.id, dataPlaneId: run.dataPlaneId });
    ctx.started++;
  }

  /** Wakes the dispatchers for the new runs and cancels the runs cancel_previous replaced. */
  private async afterCommit(ctx: FiringContext): Promise<void> {
    if (ctx.started > 0) this.events.publishDispatch(ctx.schedule.dataPlaneId);
    for (const run of ctx.toCancel) {
      try {
        await this.runService.cancel(run.dataPlaneId, run.id);
      } catch (error) {
        this.logger.warn(
          { scheduleId: ctx.schedule.id, runId: run.id, err: errorSummary(error) },
          'cancel_previous: could not cancel a run',
        );
      }
    }
  }
}

export function scheduleNotFound(ref: string): CairnError {
  return new CairnError(
    ErrorCodes.NOT_FOUND,
    `schedule ${JSON.stringify(ref)} not found in this project: check the schedule ID or name (GET /v1/projects/:project/schedules lists them)`,
  );
}
