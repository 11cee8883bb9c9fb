import { Body, Controller, Delete, Get, Inject, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { z } from 'zod';
import type { AuditActor } from '../audit/audit.repository.js';
import { OVERLAP_POLICIES, type FiringRecord, type ScheduleRecord } from '../schedules/schedule.repository.js';
import type { Project } from '../tenancy/tenant.repository.js';
import { CRON_MAX_LENGTH, TIME_ZONE_MAX_LENGTH } from '../schedules/cron.js';
import { MAX_CATCH_UP_WINDOW_SECONDS, ScheduleService } from '../schedules/schedule.service.js';
import { Api, Caller, CurrentProject, type RequestContext } from './api.js';
import { idSchema, isoTimeSchema, limitSchema, nameSchema, versionSchema } from './schemas.js';
import { Backfill, FiringAnswer, ScheduleAnswer, ScheduleDeleted, ScheduleDetail, ScheduleList } from './responses.js';
import type { Firing as FiringSchema, Schedule as ScheduleSchema } from './responses.js';

const overlapPolicySchema = z.enum(OVERLAP_POLICIES, { error: `expected one of ${OVERLAP_POLICIES.join(', ')}` });
const cronSchema = z.string().min(1).max(CRON_MAX_LENGTH);
const timeZoneSchema = z.string().min(1).max(TIME_ZONE_MAX_LENGTH);
const catchUpSchema = z
  .number()
  .int()
  .min(0)
  .max(MAX_CATCH_UP_WINDOW_SECONDS, `expected at most ${MAX_CATCH_UP_WINDOW_SECONDS} seconds (7 days)`);

const CreateScheduleBody = z.strictObject({
  name: nameSchema.nullable().optional(),
  dataPlaneId: idSchema,
  workflowName: nameSchema,
  workflowVersion: versionSchema.nullable().optional(),
  cron: cronSchema,
  timeZone: timeZoneSchema.optional(),
  overlapPolicy: overlapPolicySchema.optional(),
  catchUpWindowSeconds: catchUpSchema.optional(),
  inputPayloadId: idSchema.nullable().optional(),
  paused: z.boolean().optional(),
});

const UpdateScheduleBody = z.strictObject({
  name: nameSchema.nullable().optional(),
  dataPlaneId: idSchema.optional(),
  workflowName: nameSchema.optional(),
  workflowVersion: versionSchema.nullable().optional(),
  cron: cronSchema.optional(),
  timeZone: timeZoneSchema.optional(),
  overlapPolicy: overlapPolicySchema.optional(),
  catchUpWindowSeconds: catchUpSchema.optional(),
  inputPayloadId: idSchema.nullable().optional(),
});

const TriggerBody = z.strictObject({ overlapPolicy: overlapPolicySchema.optional() });
const BackfillBody = z.strictObject({
  from: isoTimeSchema,
  to: isoTimeSchema,
  dryRun: z.boolean({ error: 'expected true (answer the ticks without firing them) or false' }).optional(),
});
const ListQuery = z.strictObject({ limit: limitSchema, cursor: z.string().max(200).optional() });

/** The acting API key, for the audit log and `createdBy`. */
const actorOf = (caller: RequestContext): AuditActor => ({ type: 'api_key', id: caller.principal.keyId });

const iso = (date: Date | null): string | null => (date === null ? null : date.toISOString());

export function presentSchedule(schedule: ScheduleRecord): z.input<typeof ScheduleSchema> {
  return {
    id: schedule.id,
    name: schedule.name,
    projectId: schedule.projectId,
    dataPlaneId: schedule.dataPlaneId,
    workflowName: schedule.workflowName,
    workflowVersion: schedule.workflowVersion,
    cron: schedule.cron,
    timeZone: schedule.timeZone,
    overlapPolicy: schedule.overlapPolicy,
    catchUpWindowSeconds: Math.round(schedule.catchUpWindowMs / 1000),
    inputPayloadId: schedule.inputPayloadId,
    paused: schedule.paused,
    nextTickAt: schedule.paused ? null : iso(schedule.nextTickAt),
    bufferedFiringId: schedule.bufferedFiringId,
    createdBy: schedule.createdBy,
    createdAt: iso(schedule.createdAt),
    updatedAt: iso(schedule.updatedAt),
  };
}

export function presentFiring(firing: FiringRecord): z.input<typeof FiringSchema> {
  return {
    id: firing.id,
    kind: firing.kind,
    tickAt: iso(firing.tickAt),
    outcome: firing.outcome,
    runId: firing.runId,
    cancelledRuns: firing.cancelledRuns,
    firedAt: iso(firing.firedAt),
  };
}

/**
 * Schedules of a project. `:schedule` is a schedule ID or its name. The input of the runs is a
 * payload stored in the schedule's data plane (gateway `POST /v1/payloads`), referenced by ID.
 */
@Controller('v1/projects/:project/schedules')
export class SchedulesController {
  constructor(@Inject(ScheduleService) private readonly schedules: ScheduleService) {}

  @Post()
  @Api({
    response: ScheduleAnswer,
    permission: 'schedules.write',
    tag: 'schedules',
    summary: 'Create a schedule: a cron expression in a time zone firing runs of a workflow in a data plane',
    body: CreateScheduleBody,
    status: 201,
  })
  async create(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Body() body: z.infer<typeof CreateScheduleBody>,
  ): Promise<{ schedule: unknown }> {
    const schedule = await this.schedules.create(project.id, actorOf(caller), body);
    return { schedule: presentSchedule(schedule) };
  }

  @Get()
  @Api({
    response: ScheduleList,
    permission: 'project.read',
    tag: 'schedules',
    summary: 'List the schedules of this project, newest first',
    query: ListQuery,
  })
  async list(
    @CurrentProject() project: Project,
    @Query() query: z.infer<typeof ListQuery>,
  ): Promise<{ schedules: unknown[]; nextCursor: string | null }> {
    const page = await this.schedules.list(project.id, query.limit ?? 50, query.cursor);
    return { schedules: page.schedules.map(presentSchedule), nextCursor: page.nextCursor };
  }

  @Get(':schedule')
  @Api({
    response: ScheduleDetail,
    permission: 'project.read',
    tag: 'schedules',
    summary: 'Show a schedule with its next fire times and recent firings',
  })
  async show(
    @CurrentProject() project: Project,
    @Param('schedule') ref: string,
  ): Promise<{ schedule: unknown; nextFireTimes: string[]; recentFirings: unknown[] }> {
    const detail = await this.schedules.describe(project.id, ref);
    return {
      schedule: presentSchedule(detail.schedule),
      nextFireTimes: detail.nextFireTimes.map((d) => d.toISOString()),
      recentFirings: detail.recentFirings.map(presentFiring),
    };
  }

  @Patch(':schedule')
  @Api({
    response: ScheduleAnswer,
    permission: 'schedules.write',
    tag: 'schedules',
    summary: 'Change a schedule; a new expression or time zone takes effect from its first tick after now',
    body: UpdateScheduleBody,
  })
  async update(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Param('schedule') ref: string,
    @Body() body: z.infer<typeof UpdateScheduleBody>,
  ): Promise<{ schedule: unknown }> {
    return { schedule: presentSchedule(await this.schedules.update(project.id, actorOf(caller), ref, body)) };
  }

  @Delete(':schedule')
  @Api({ response: ScheduleDeleted, permission: 'schedules.write', tag: 'schedules', summary: 'Delete a schedule; runs it fired are kept' })
  async delete(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Param('schedule') ref: string,
  ): Promise<{ deleted: true }> {
    await this.schedules.delete(project.id, actorOf(caller), ref);
    return { deleted: true };
  }

  @Post(':schedule/pause')
  @Api({
    response: ScheduleAnswer,
    permission: 'schedules.operate',
    tag: 'schedules',
    summary: 'Pause a schedule: no tick fires while it is paused',
  })
  async pause(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Param('schedule') ref: string,
  ): Promise<{ schedule: unknown }> {
    return { schedule: presentSchedule(await this.schedules.pause(project.id, actorOf(caller), ref)) };
  }

  @Post(':schedule/resume')
  @Api({
    response: ScheduleAnswer,
    permission: 'schedules.operate',
    tag: 'schedules',
    summary: 'Resume a schedule from its first tick after now; ticks that fell while it was paused do not fire',
  })
  async resume(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Param('schedule') ref: string,
  ): Promise<{ schedule: unknown }> {
    return { schedule: presentSchedule(await this.schedules.resume(project.id, actorOf(caller), ref)) };
  }

  @Post(':schedule/trigger')
  @Api({
    response: FiringAnswer,
    permission: 'schedules.operate',
    tag: 'schedules',
    summary: "Fire one run now, obeying the schedule's overlap policy or the one given",
    body: TriggerBody,
    status: 201,
  })
  async trigger(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Param('schedule') ref: string,
    @Body() body: z.infer<typeof TriggerBody>,
  ): Promise<{ firing: unknown }> {
    return { firing: presentFiring(await this.schedules.trigger(project.id, actorOf(caller), ref, body.overlapPolicy)) };
  }

  @Post(':schedule/backfill')
  @Api({
    response: Backfill,
    permission: 'schedules.operate',
    tag: 'schedules',
    summary: 'Fire one run per tick in [from, to) (at most 1000), each recording its tick time',
    description:
      'With dryRun: true nothing fires and nothing is recorded: the answer lists the ticks the backfill would cover (computed by ' +
      'the same cron evaluation as the ticker), each with alreadyFired when it has a firing (a backfill skips those), with status 200.',
    body: BackfillBody,
    status: 201,
    alsoStatus: [200],
  })
  async backfill(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Param('schedule') ref: string,
    @Body() body: z.infer<typeof BackfillBody>,
    @Res({ passthrough: true }) reply: { status(code: number): unknown },
  ): Promise<z.input<typeof Backfill>> {
    const from = new Date(body.from);
    const to = new Date(body.to);
    if (body.dryRun === true) {
      const preview = await this.schedules.previewBackfill(project.id, ref, from, to);
      reply.status(200);
      return {
        dryRun: true,
        ticks: preview.ticks.map((t) => ({ tickAt: t.tickAt.toISOString(), alreadyFired: t.alreadyFired })),
        firings: [],
        started: 0,
        alreadyFired: preview.ticks.filter((t) => t.alreadyFired).length,
      };
    }
    const result = await this.schedules.backfill(project.id, actorOf(caller), ref, from, to);
    return {
      dryRun: false,
      ticks: result.ticks.map((t) => ({ tickAt: t.tickAt.toISOString(), alreadyFired: t.alreadyFired })),
      firings: result.firings.map(presentFiring),
      started: result.firings.filter((f) => f.outcome === 'started').length,
      alreadyFired: result.alreadyFired,
    };
  }
}
