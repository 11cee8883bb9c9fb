import { Body, Controller, Get, Inject, Param, Post, Put, Query, Res } from '@nestjs/common';
import { Cron } from 'croner';
import { z } from 'zod';
import { CairnError, ErrorCodes } from '@cairn/common';
import type { FlowControl, FlowControlRecord } from '../db/flow-control.repository.js';
import type { Project } from '../db/tenant.repository.js';
import type { WorkflowDefinition } from '../db/workflow-registry.repository.js';
import { WorkflowRegistryService, type WorkflowSummary } from '../services/workflow-registry.service.js';
import { Api, Caller, CurrentProject, type RequestContext } from './api.js';
import { nameSchema, versionSchema } from './schemas.js';
import { FlowControlAnswer, WorkflowDetailAnswer, WorkflowList, WorkflowRegistered, WorkflowVersionAnswer } from './responses.js';
import type { FlowControlView, WorkflowVersion as WorkflowVersionSchema } from './responses.js';

/** A registered JSON Schema is at most this large (serialised) and this deep. */
export const SCHEMA_MAX_BYTES = 64 * 1024;
export const SCHEMA_MAX_DEPTH = 32;
const DAY_MS = 86_400_000;

function depth(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>);
  return 1 + children.reduce<number>((max, child) => Math.max(max, depth(child)), 0);
}

const jsonObjectSchema = z
  .record(z.string(), z.unknown(), { error: 'expected a JSON Schema object' })
  .refine((s) => s['type'] === 'object', 'expected a JSON Schema of an object: "type": "object"')
  .refine((s) => Buffer.byteLength(JSON.stringify(s)) <= SCHEMA_MAX_BYTES, `a schema is at most ${SCHEMA_MAX_BYTES} bytes of JSON`)
  .refine((s) => depth(s) <= SCHEMA_MAX_DEPTH, `a schema nests at most ${SCHEMA_MAX_DEPTH} levels`);

const intervalMs = z.number().int().min(1).max(DAY_MS);

const RetryPolicySchema = z
  .strictObject({
    maxAttempts: z.number().int().min(1).max(1000),
    initialIntervalMs: intervalMs.default(1000),
    maxIntervalMs: intervalMs.default(60_000),
    backoffCoefficient: z.number().min(1).max(100).default(2),
  })
  .refine((p) => p.maxIntervalMs >= p.initialIntervalMs, 'maxIntervalMs must be at least initialIntervalMs');

const TimeoutsSchema = z.strictObject({
  runTimeoutMs: z
    .number()
    .int()
    .min(1000)
    .max(366 * DAY_MS)
    .optional(),
  stepTimeoutMs: z
    .number()
    .int()
    .min(100)
    .max(366 * DAY_MS)
    .optional(),
});

function validTimezone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function validCron(pattern: string): boolean {
  try {
    new Cron(pattern, { paused: true }).stop();
    return true;
  } catch {
    return false;
  }
}

const ScheduleSchema = z.strictObject({
  cron: z.string().max(200).refine(validCron, 'expected a cron expression such as "0 9 * * 1-5" (5 or 6 fields)'),
  timezone: z.string().max(64).refine(validTimezone, 'expected an IANA time zone such as "Europe/Paris"').default('UTC'),
});

export const FlowControlSchema = z.strictObject({
  concurrency: z
    .strictObject({
      limit: z.number().int().min(1).max(100_000),
      perKey: z.boolean().default(false),
    })
    .nullable()
    .default(null),
  rateLimit: z
    .strictObject({
      limit: z.number().int().min(1).max(1_000_000),
      periodMs: z.number().int().min(1000).max(DAY_MS),
      perKey: z.boolean().default(false),
    })
    .nullable()
    .default(null),
});

const RegisterBody = z.strictObject({
  name: nameSchema,
  version: versionSchema,
  taskQueue: nameSchema,
  inputSchema: jsonObjectSchema.nullable().default(null),
  outputSchema: jsonObjectSchema.nullable().default(null),
  retryPolicy: RetryPolicySchema.nullable().default(null),
  timeouts: TimeoutsSchema.default({}),
  schedules: z.array(ScheduleSchema).max(20).default([]),
  flowControl: FlowControlSchema.optional(),
});

const ListQuery = z.strictObject({
  name: nameSchema.optional(),
  includeDeprecated: z.enum(['true', 'false'], { error: 'expected true or false' }).default('false'),
});

/** The Fastify reply, as far as this controller uses it. */
interface Reply {
  status(code: number): unknown;
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export function presentWorkflowVersion(d: WorkflowDefinition): z.input<typeof WorkflowVersionSchema> {
  return {
    name: d.name,
    version: d.version,
    taskQueue: d.taskQueue,
    inputSchema: d.inputSchema,
    outputSchema: d.outputSchema,
    retryPolicy: d.retryPolicy,
    timeouts: { runTimeoutMs: d.runTimeoutMs, stepTimeoutMs: d.stepTimeoutMs },
    schedules: [...d.schedules],
    source: d.source,
    registeredAt: d.registeredAt.toISOString(),
    registeredBy: d.registeredBy,
    deprecated: d.deprecatedAt !== null,
    deprecatedAt: iso(d.deprecatedAt),
    deprecatedBy: d.deprecatedBy,
  };
}

export function presentFlowControl(f: FlowControlRecord | null): z.input<typeof FlowControlView> {
  return {
    concurrency: f?.concurrency ?? null,
    rateLimit: f?.rateLimit ?? null,
    updatedAt: f === null ? null : f.updatedAt.toISOString(),
  };
}

function presentSummary(s: WorkflowSummary, full: boolean): Record<string, unknown> {
  return {
    name: s.name,
    versions: s.versions.map((v) =>
      full
        ? presentWorkflowVersion(v)
        : { version: v.version, taskQueue: v.taskQueue, deprecated: v.deprecatedAt !== null, registeredAt: v.registeredAt.toISOString() },
    ),
    flowControl: presentFlowControl(s.flowControl),
  };
}

function pathName(value: string): string {
  const parsed = nameSchema.safeParse(value);
  if (!parsed.success)
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `path: ${value.slice(0, 100)} is not a workflow name: ${parsed.error.issues[0]?.message}`,
    );
  return parsed.data;
}

function pathVersion(value: string): string {
  const parsed = versionSchema.safeParse(value);
  if (!parsed.success)
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `path: ${value.slice(0, 64)} is not a version: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/**
 * The workflow registry of a project: register `name@version` (immutable), list, show,
 * deprecate, and the flow control of a workflow name.
 */
@Controller('v1/projects/:project/workflows')
export class WorkflowsController {
  constructor(@Inject(WorkflowRegistryService) private readonly registry: WorkflowRegistryService) {}

  @Post()
  @Api({
    response: WorkflowRegistered,
    permission: 'workflows.write',
    tag: 'workflows',
    summary: 'Register a workflow version (201); the same content again answers 200, different content 409',
    description:
      'Versions are immutable. flowControl, when given, replaces the flow control of the workflow name (it is not part of the version).',
    body: RegisterBody,
    status: 201,
    alsoStatus: [200],
  })
  async register(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Body() body: z.infer<typeof RegisterBody>,
    @Res({ passthrough: true }) reply: Reply,
  ): Promise<Record<string, unknown>> {
    const { workflow, created, flowControl } = await this.registry.register(
      project.id,
      {
        name: body.name,
        version: body.version,
        taskQueue: body.taskQueue,
        inputSchema: body.inputSchema,
        outputSchema: body.outputSchema,
        retryPolicy: body.retryPolicy,
        runTimeoutMs: body.timeouts.runTimeoutMs ?? null,
        stepTimeoutMs: body.timeouts.stepTimeoutMs ?? null,
        schedules: body.schedules,
        ...(body.flowControl === undefined ? {} : { flowControl: body.flowControl satisfies FlowControl }),
      },
      caller.principal.keyId,
    );
    reply.status(created ? 201 : 200);
    return { workflow: presentWorkflowVersion(workflow), created, flowControl: presentFlowControl(flowControl) };
  }

  @Get()
  @Api({
    response: WorkflowList,
    permission: 'project.read',
    tag: 'workflows',
    summary: 'List registered workflows with their versions (deprecated versions with includeDeprecated=true)',
    query: ListQuery,
  })
  async list(@CurrentProject() project: Project, @Query() query: z.infer<typeof ListQuery>): Promise<{ workflows: unknown[] }> {
    const summaries = await this.registry.list(project.id, {
      ...(query.name === undefined ? {} : { name: query.name }),
      includeDeprecated: query.includeDeprecated === 'true',
    });
    return { workflows: summaries.map((s) => presentSummary(s, false)) };
  }

  @Get(':name')
  @Api({
    response: WorkflowDetailAnswer,
    permission: 'project.read',
    tag: 'workflows',
    summary: 'Show a workflow: every version and its flow control',
  })
  async show(@CurrentProject() project: Project, @Param('name') name: string): Promise<{ workflow: unknown }> {
    return { workflow: presentSummary(await this.registry.show(project.id, pathName(name)), true) };
  }

  @Get(':name/versions/:version')
  @Api({ response: WorkflowVersionAnswer, permission: 'project.read', tag: 'workflows', summary: 'Show one workflow version' })
  async version(
    @CurrentProject() project: Project,
    @Param('name') name: string,
    @Param('version') version: string,
  ): Promise<{ workflow: unknown }> {
    return { workflow: presentWorkflowVersion(await this.registry.version(project.id, pathName(name), pathVersion(version))) };
  }

  @Post(':name/versions/:version/deprecate')
  @Api({
    response: WorkflowVersionAnswer,
    permission: 'workflows.write',
    tag: 'workflows',
    summary: 'Deprecate a workflow version: new runs of it are refused, runs already started go on',
  })
  async deprecate(
    @CurrentProject() project: Project,
    @Caller() caller: RequestContext,
    @Param('name') name: string,
    @Param('version') version: string,
  ): Promise<{ workflow: unknown }> {
    const workflow = await this.registry.deprecate(project.id, pathName(name), pathVersion(version), caller.principal.keyId);
    return { workflow: presentWorkflowVersion(workflow) };
  }

  @Put(':name/flow-control')
  @Api({
    response: FlowControlAnswer,
    permission: 'workflows.write',
    tag: 'workflows',
    summary: "Replace a workflow's flow control: concurrency limit and rate limit, each optionally per concurrency key",
    body: FlowControlSchema,
  })
  async setFlowControl(
    @CurrentProject() project: Project,
    @Param('name') name: string,
    @Body() body: z.infer<typeof FlowControlSchema>,
  ): Promise<{ flowControl: unknown }> {
    return { flowControl: presentFlowControl(await this.registry.setFlowControl(project.id, pathName(name), body)) };
  }
}
