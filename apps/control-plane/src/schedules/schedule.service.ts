import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, isId, newId } from '@cairn/common';
import type { AuditActor } from '../audit/audit.repository.js';
import { Database, type Queryable } from '../db/database.js';
import {
  ScheduleRepository,
  type FiringRecord,
  type OverlapPolicy,
  type ScheduleRecord,
  type ScheduleSettings,
} from './schedule.repository.js';
import { AuditService } from '../audit/audit.service.js';
import { CLOCK, type Clock } from '../shared/clock.js';
import { CronSchedule } from './cron.js';
import { DataPlaneService } from '../tenancy/data-plane.service.js';
import { ScheduleTicker, scheduleNotFound, type BackfillPreview, type BackfillResult } from './schedule-ticker.service.js';
import { decodeCursor, encodeCursor } from '../shared/page-cursor.js';

/** How far back a catch-up may reach: 7 days. */
export const MAX_CATCH_UP_WINDOW_SECONDS = 7 * 24 * 3600;
export const DEFAULT_CATCH_UP_WINDOW_SECONDS = 300;
/** How many upcoming fire times and recent firings a schedule's detail shows. */
const NEXT_FIRE_TIMES = 5;
const RECENT_FIRINGS = 20;

/** A schedule as created through the API (already shape-checked by the route's schema). */
export interface NewSchedule {
  readonly name?: string | null | undefined;
  readonly dataPlaneId: string;
  readonly workflowName: string;
  readonly workflowVersion?: string | null | undefined;
  readonly cron: string;
  readonly timeZone?: string | undefined;
  readonly overlapPolicy?: OverlapPolicy | undefined;
  readonly catchUpWindowSeconds?: number | undefined;
  readonly inputPayloadId?: string | null | undefined;
  readonly paused?: boolean | undefined;
}

/** A change to a schedule: the fields given replace the current ones; null clears an optional one. */
export type ScheduleChange = { readonly [K in Exclude<keyof NewSchedule, 'paused'>]?: NewSchedule[K] | undefined };

/** A schedule with what its detail view shows. */
export interface ScheduleDetail {
  readonly schedule: ScheduleRecord;
  /** The next times the schedule will fire (empty while paused). */
  readonly nextFireTimes: Date[];
  readonly recentFirings: FiringRecord[];
}

/**
 * Schedules of a project: create, list, show, change, delete, pause and resume. Firing (ticks,
 * trigger-now, backfill) is the {@link ScheduleTicker}'s.
 */
@Injectable()
export class ScheduleService {
  constructor(
    @Inject(Database) private readonly db: Database,
    @Inject(ScheduleRepository) private readonly schedules: ScheduleRepository,
    @Inject(DataPlaneService) private readonly dataPlanes: DataPlaneService,
    @Inject(ScheduleTicker) private readonly ticker: ScheduleTicker,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  /** Creates a schedule; `actor` is the API key acting (recorded as its creator and in the audit log). */
  async create(projectId: string, actor: AuditActor, input: NewSchedule): Promise<ScheduleRecord> {
    const settings: ScheduleSettings = {
      name: input.name ?? null,
      dataPlaneId: input.dataPlaneId,
      workflowName: input.workflowName,
      workflowVersion: input.workflowVersion ?? null,
      cron: input.cron.trim(),
      timeZone: input.timeZone ?? 'UTC',
      overlapPolicy: input.overlapPolicy ?? 'skip',
      catchUpWindowMs: (input.catchUpWindowSeconds ?? DEFAULT_CATCH_UP_WINDOW_SECONDS) * 1000,
      inputPayloadId: input.inputPayloadId ?? null,
    };
    const cron = await this.check(projectId, settings);
    const paused = input.paused ?? false;
    const created = await this.schedules.insert({
      ...settings,
      id: newId(),
      projectId,
      paused,
      nextTickAt: cron.next(this.clock.now()),
      createdBy: actor.type === 'api_key' ? actor.id : null,
    });
    if (!created) throw nameTaken(settings.name!);
    await this.record(null, actor, 'schedule.created', created);
    return created;
  }

  async list(
    projectId: string,
    limit: number,
    cursor: string | undefined,
  ): Promise<{ schedules: ScheduleRecord[]; nextCursor: string | null }> {
    const page = await this.schedules.list(projectId, limit, cursor === undefined ? undefined : decodeCursor(cursor));
    return { schedules: page.schedules, nextCursor: page.next ? encodeCursor(page.next) : null };
  }

  /** A schedule by ID or name, with its next fire times and recent firings. */
  async describe(projectId: string, ref: string): Promise<ScheduleDetail> {
    const schedule = await this.get(projectId, ref);
    let nextFireTimes: Date[] = [];
    if (!schedule.paused && schedule.nextTickAt !== null) {
      const cron = CronSchedule.parse(schedule.cron, schedule.timeZone);
      nextFireTimes = [schedule.nextTickAt, ...cron.upcoming(schedule.nextTickAt, NEXT_FIRE_TIMES - 1)];
    }
    return { schedule, nextFireTimes, recentFirings: await this.schedules.recentFirings(schedule.id, RECENT_FIRINGS) };
  }

  async get(projectId: string, ref: string): Promise<ScheduleRecord> {
    const schedule = await this.schedules.find(projectId, isId(ref) ? { id: ref } : { name: ref });
    if (!schedule) throw scheduleNotFound(ref);
    return schedule;
  }

  /**
   * Changes a schedule. A new expression or time zone takes effect from now: ticking resumes at
   * its first tick after now (ticks of the old expression not fired yet are dropped).
   */
  async update(projectId: string, actor: AuditActor, ref: string, change: ScheduleChange): Promise<ScheduleRecord> {
    const { id } = await this.get(projectId, ref);
    const now = this.clock.now();
    return this.db.transaction(async (tx) => {
      const current = await this.schedules.lock(tx, projectId, id);
      if (!current) throw scheduleNotFound(ref);
      const settings: ScheduleSettings = {
        name: change.name === undefined ? current.name : change.name,
        dataPlaneId: change.dataPlaneId ?? current.dataPlaneId,
        workflowName: change.workflowName ?? current.workflowName,
        workflowVersion: change.workflowVersion === undefined ? current.workflowVersion : change.workflowVersion,
        cron: change.cron === undefined ? current.cron : change.cron.trim(),
        timeZone: change.timeZone ?? current.timeZone,
        overlapPolicy: change.overlapPolicy ?? current.overlapPolicy,
        catchUpWindowMs: change.catchUpWindowSeconds === undefined ? current.catchUpWindowMs : change.catchUpWindowSeconds * 1000,
        inputPayloadId: change.inputPayloadId === undefined ? current.inputPayloadId : change.inputPayloadId,
      };
      const cron = await this.check(projectId, settings);
      if (settings.name !== null && settings.name !== current.name && (await this.schedules.nameTaken(projectId, settings.name, id))) {
        throw nameTaken(settings.name);
      }
      const timing = settings.cron !== current.cron || settings.timeZone !== current.timeZone;
      const updated = await this.schedules.update(tx, id, settings, timing ? cron.next(now) : current.nextTickAt);
      if (!updated) throw scheduleNotFound(ref);
      await this.record(tx, actor, 'schedule.updated', updated);
      return updated;
    });
  }

  async delete(projectId: string, actor: AuditActor, ref: string): Promise<void> {
    const schedule = await this.get(projectId, ref);
    if (!(await this.schedules.delete(projectId, schedule.id))) throw scheduleNotFound(ref);
    await this.record(null, actor, 'schedule.deleted', schedule);
  }

  /** Pauses a schedule: no tick fires while it is paused. Pausing a paused schedule changes nothing. */
  async pause(projectId: string, actor: AuditActor, ref: string): Promise<ScheduleRecord> {
    return this.setPaused(projectId, actor, ref, true);
  }

  /**
   * Resumes a schedule: ticking goes on from the first tick after now. Ticks that fell while it
   * was paused do not fire. Resuming an active schedule changes nothing.
   */
  async resume(projectId: string, actor: AuditActor, ref: string): Promise<ScheduleRecord> {
    return this.setPaused(projectId, actor, ref, false);
  }

  async trigger(projectId: string, actor: AuditActor, ref: string, policy: OverlapPolicy | undefined): Promise<FiringRecord> {
    const { id } = await this.get(projectId, ref);
    return this.ticker.trigger(projectId, actor, id, policy);
  }

  async backfill(projectId: string, actor: AuditActor, ref: string, from: Date, to: Date): Promise<BackfillResult> {
    const { id } = await this.get(projectId, ref);
    return this.ticker.backfill(projectId, actor, id, from, to);
  }

  /** The ticks a backfill of [from, to) would fire, without firing them. */
  async previewBackfill(projectId: string, ref: string, from: Date, to: Date): Promise<BackfillPreview> {
    const { id } = await this.get(projectId, ref);
    return this.ticker.previewBackfill(projectId, id, from, to);
  }

  private async setPaused(projectId: string, actor: AuditActor, ref: string, paused: boolean): Promise<ScheduleRecord> {
    const { id } = await this.get(projectId, ref);
    const now = this.clock.now();
    return this.db.transaction(async (tx) => {
      const current = await this.schedules.lock(tx, projectId, id);
      if (!current) throw scheduleNotFound(ref);
      if (current.paused === paused) return current;
      const next = paused ? current.nextTickAt : CronSchedule.parse(current.cron, current.timeZone).next(now);
      const changed = await this.schedules.setPaused(tx, id, paused, next);
      await this.record(tx, actor, paused ? 'schedule.paused' : 'schedule.resumed', changed);
      return changed;
    });
  }

  private async record(tx: Queryable | null, actor: AuditActor, action: string, schedule: ScheduleRecord): Promise<void> {
    await this.audit.record(tx, {
      projectId: schedule.projectId,
      actor,
      action,
      target: { type: 'schedule', id: schedule.id },
      metadata: {
        name: schedule.name,
        workflow: schedule.workflowName,
        version: schedule.workflowVersion,
        dataPlaneId: schedule.dataPlaneId,
        cron: schedule.cron,
        timeZone: schedule.timeZone,
        overlapPolicy: schedule.overlapPolicy,
        paused: schedule.paused,
      },
    });
  }

  /** Validates the expression, the time zone and the data plane; returns the parsed expression. */
  private async check(projectId: string, settings: ScheduleSettings): Promise<CronSchedule> {
    const cron = CronSchedule.parse(settings.cron, settings.timeZone);
    const dataPlane = await this.dataPlanes.get(projectId, settings.dataPlaneId).catch((error: unknown) => {
      if (error instanceof CairnError && error.code === ErrorCodes.NOT_FOUND) {
        throw new CairnError(
          ErrorCodes.INVALID_ARGUMENT,
          `body field dataPlaneId: data plane ${settings.dataPlaneId} is not registered in this project: use an ID from GET /v1/projects/:project/data-planes`,
        );
      }
      throw error;
    });
    if (dataPlane.revokedAt !== null) {
      throw new CairnError(
        ErrorCodes.FAILED_PRECONDITION,
        `data plane ${dataPlane.id} is revoked: a schedule must fire in an active data plane of this project`,
      );
    }
    return cron;
  }
}

function nameTaken(name: string): CairnError {
  return new CairnError(ErrorCodes.CONFLICT, `this project already has a schedule named ${name}: choose another name`);
}
