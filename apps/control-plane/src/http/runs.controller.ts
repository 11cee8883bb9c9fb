import { Controller, Get, Inject, Param, Post, Query, Body } from '@nestjs/common';
import { z } from 'zod';
import type { Project } from '../tenancy/tenant.repository.js';
import { RUN_STATUSES } from '../domain.js';
import {
  RunManagementService,
  type RunListFilters,
  type RunTotals,
  type RunView,
  type TimelineCall,
} from '../runs/run-management.service.js';
import { AuditService } from '../audit/audit.service.js';
import { Api, Caller, CurrentProject, type RequestContext } from './api.js';
import { presentRun, presentStep } from './run.presenter.js';
import { idSchema, isoTimeSchema, limitSchema, nameSchema, versionSchema } from './schemas.js';
import { RunAnswer, RunDescription, RunList } from './responses.js';
import type { RunTotals as RunTotalsSchema, TimelineCall as TimelineCallSchema } from './responses.js';

const statusList = z
  .union([z.string(), z.array(z.string())])
  .transform((value) => (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).filter((v) => v !== ''))
  .pipe(z.array(z.enum(RUN_STATUSES, { error: `expected run statuses, each one of ${RUN_STATUSES.join(', ')}` })).max(RUN_STATUSES.length));

/** `GET /v1/projects/:project/runs` query parameters. */
export const runListQuerySchema = z
  .object({
    status: statusList.optional(),
    workflow: nameSchema.optional(),
    version: versionSchema.optional(),
    scheduleId: idSchema.optional(),
    parentRunId: idSchema.optional(),
    waiting: z.enum(['approval'], { error: 'expected waiting=approval (runs suspended on a ctx.approval)' }).optional(),
    createdAfter: isoTimeSchema.optional(),
    createdBefore: isoTimeSchema.optional(),
    limit: limitSchema,
    cursor: z.string().max(200).optional(),
  })
  .strict()
  .refine(
    (q) => q.createdAfter === undefined || q.createdBefore === undefined || Date.parse(q.createdAfter) < Date.parse(q.createdBefore),
    {
      error: 'createdAfter must be earlier than createdBefore',
      path: ['createdAfter'],
    },
  );
type RunListQuery = z.infer<typeof runListQuerySchema>;

/** `POST /v1/projects/:project/runs/:id/fork` body. */
export const forkBodySchema = z.strictObject(
  {
    fromStep: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1),
    workflowVersion: versionSchema.optional(),
    inputPayloadId: idSchema
      .optional()
      .describe(
        'a new input for the fork: the ID of a payload stored in the source run’s data plane through its gateway (POST /v1/payloads). Without it the fork keeps the source’s input',
      ),
  },
  {
    // An input is a payload: it must not reach the control plane, so say where it goes instead.
    error: (issue) =>
      issue.code === 'unrecognized_keys' && issue.keys.includes('input')
        ? 'a fork does not take its input here: an input is a payload and stays in the data plane. Store it through the data plane’s gateway (POST /v1/payloads) and pass the returned payloadId as inputPayloadId (cairn runs fork --input does both)'
        : undefined,
  },
);
type ForkBody = z.infer<typeof forkBodySchema>;

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

function presentCall(call: TimelineCall): z.input<typeof TimelineCallSchema> {
  return {
    position: call.position,
    kind: call.kind,
    name: call.name,
    keyDigest: call.keyDigest,
    status: call.status,
    attemptCount: call.attempts.length,
    retries: call.attempts.length - 1,
    startedAt: iso(call.startedAt),
    endedAt: iso(call.endedAt),
    durationMs: call.durationMs,
    inputTokens: call.inputTokens,
    outputTokens: call.outputTokens,
    copied: call.copied,
    attempts: call.attempts.map(presentStep),
  };
}

function presentTotals(totals: RunTotals): z.input<typeof RunTotalsSchema> {
  return { ...totals, tokensByModel: totals.tokensByModel.map((m) => ({ ...m })) };
}

function presentView(view: RunView): z.input<typeof RunDescription> {
  return {
    run: presentRun(view.run),
    steps: view.steps.map(presentStep),
    timeline: view.timeline.map(presentCall),
    totals: presentTotals(view.totals),
    warnings: view.warnings.map((code) => ({
      code,
      message: `no connected worker serves ${view.run.workflowName}@${view.run.workflowVersion}: the run waits in the queue until one connects`,
    })),
  };
}

/** Run metadata and the operator actions on runs, for the CLI and the console. */
@Controller('v1/projects/:project/runs')
export class RunsController {
  constructor(@Inject(RunManagementService) private readonly runs: RunManagementService) {}

  @Get()
  @Api({
    response: RunList,
    permission: 'project.read',
    tag: 'runs',
    summary: 'List runs, newest first',
    description:
      'Filters: status (one or more, comma-separated or repeated), workflow, version, scheduleId, parentRunId, ' +
      'waiting=approval (runs suspended on a ctx.approval, waiting for a human), createdAfter (inclusive), createdBefore (exclusive); ' +
      'limit 1-200 (default 50); pass nextCursor back as cursor for the next page.',
    query: runListQuerySchema,
  })
  async list(@CurrentProject() project: Project, @Query() query: RunListQuery): Promise<{ runs: unknown[]; nextCursor: string | null }> {
    const filters: RunListFilters = {
      limit: query.limit ?? 50,
      ...(query.status === undefined || query.status.length === 0 ? {} : { statuses: query.status }),
      ...(query.workflow === undefined ? {} : { workflow: query.workflow }),
      ...(query.version === undefined ? {} : { version: query.version }),
      ...(query.scheduleId === undefined ? {} : { scheduleId: query.scheduleId }),
      ...(query.parentRunId === undefined ? {} : { parentRunId: query.parentRunId }),
      ...(query.waiting === undefined ? {} : { waiting: query.waiting }),
      ...(query.createdAfter === undefined ? {} : { createdAfter: new Date(query.createdAfter) }),
      ...(query.createdBefore === undefined ? {} : { createdBefore: new Date(query.createdBefore) }),
      ...(query.cursor === undefined || query.cursor === '' ? {} : { cursor: query.cursor }),
    };
    const page = await this.runs.list(project.id, filters);
    return { runs: page.runs.map(presentRun), nextCursor: page.nextCursor };
  }

  @Get(':id')
  @Api({
    response: RunDescription,
    permission: 'project.read',
    tag: 'runs',
    summary: 'Describe a run with its step timeline',
    description:
      'steps: every attempt by position then attempt; timeline: one entry per durable call with its attempts, duration and token counts; totals: attempts, retries, tokens by provider/model, wall time. In a forked run, the calls below its fork position were copied from the source run (copied: true): the totals’ tokens leave them out and copiedCalls counts them.',
  })
  async describe(@CurrentProject() project: Project, @Param('id') id: string): Promise<Record<string, unknown>> {
    return presentView(await this.runs.describe(project.id, id));
  }

  @Post(':id/cancel')
  @Api({
    response: RunAnswer,
    permission: 'runs.operate',
    tag: 'runs',
    summary: 'Cancel a run; its compensations run',
    description:
      'A queued run that never ran ends cancelled at once; a running one is asked to cancel by its worker; one that ran before is dispatched once more to run its compensations. Child runs are cancelled too. 409 for a run that ended otherwise than cancelled.',
  })
  async cancel(@Caller() caller: RequestContext, @CurrentProject() project: Project, @Param('id') id: string): Promise<{ run: unknown }> {
    return { run: presentRun(await this.runs.cancel(project.id, id, AuditService.actorOf(caller.principal))) };
  }

  @Post(':id/terminate')
  @Api({
    response: RunAnswer,
    permission: 'runs.operate',
    tag: 'runs',
    summary: 'Terminate a run at once, without compensations',
    description:
      'The run becomes terminated; a worker holding it loses its lease and stops; its later reports are refused. Child runs that have not ended are terminated too. 409 for a run that has ended, or a child run whose parent has not.',
  })
  async terminate(
    @Caller() caller: RequestContext,
    @CurrentProject() project: Project,
    @Param('id') id: string,
  ): Promise<{ run: unknown }> {
    return { run: presentRun(await this.runs.terminate(project.id, id, AuditService.actorOf(caller.principal))) };
  }

  @Post(':id/fork')
  @Api({
    response: RunAnswer,
    permission: 'runs.operate',
    tag: 'runs',
    summary: 'Fork a run from a journal position into a new run',
    description:
      'Creates a queued run in the same data plane whose journal starts as the source run’s entries before position fromStep (copied in the data plane); from fromStep on it runs live, on workflowVersion if given, with the input stored as payload inputPayloadId in that data plane if given (else the source’s input). 400 when fromStep is beyond the source’s journal.',
    body: forkBodySchema,
    status: 201,
  })
  async fork(
    @Caller() caller: RequestContext,
    @CurrentProject() project: Project,
    @Param('id') id: string,
    @Body() body: ForkBody,
  ): Promise<{ run: unknown }> {
    return {
      run: presentRun(
        await this.runs.fork(
          project.id,
          id,
          {
            fromStep: body.fromStep,
            ...(body.workflowVersion === undefined ? {} : { workflowVersion: body.workflowVersion }),
            ...(body.inputPayloadId === undefined ? {} : { inputPayloadId: body.inputPayloadId }),
          },
          AuditService.actorOf(caller.principal),
        ),
      ),
    };
  }
}
