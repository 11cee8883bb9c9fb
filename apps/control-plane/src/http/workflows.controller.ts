import { Body, Controller, Get, Inject, Param, Post, Put, Query, Res } from '@nestjs/common';
import { Cron } from 'croner';
import { z } from 'zod';
import {
  CRON_MAX_LENGTH,
  CRON_PATTERN,
  CairnError,
  DIGEST_PATTERN,
  ErrorCodes,
  FLOW_CONTROL_LIMITS,
  TIMEOUT_LIMITS,
  TIME_ZONE_MAX_LENGTH,
  TIME_ZONE_PATTERN,
  checkRetryPolicy,
  parseDuration,
} from '@cairn/common';
import type { FlowControl, FlowControlRecord } from '../flow-control/flow-control.repository.js';
import type { Project } from '../tenancy/tenant.repository.js';
import type { RetryPolicy, WorkflowDefinition } from '../workflows/workflow-registry.repository.js';
import { WorkflowRegistryService, type WorkflowSummary } from '../workflows/workflow-registry.service.js';
import { Api, Caller, CurrentProject, type RequestContext } from './api.js';
import { nameSchema, versionSchema } from './schemas.js';
import { FlowControlAnswer, WorkflowDetailAnswer, WorkflowList, WorkflowRegistered, WorkflowVersionAnswer } from './responses.js';
import type { FlowControlView, WorkflowVersion as WorkflowVersionSchema } from './responses.js';

const DAY_MS = 86_400_000;

/**
 * The message for fields an object does not know: the registry's former names say what replaced
 * them, and schema text says that it stays in the data plane.
 */
function unknownFields(known: readonly string[], replaced: Readonly<Record<string, string>>) {
  return (issue: z.core.$ZodRawIssue): string | undefined => {
    if (issue.code !== 'unrecognized_keys') return undefined;
    const keys = (issue as { keys?: string[] }).keys ?? [];
    const parts = keys.slice(0, 5).map((k) => replaced[k] ?? `unknown field ${JSON.stringify(k.slice(0, 40))}`);
    return `${parts.join('; ')} (the fields are ${known.join(', ')})`;
  };
}

const SCHEMA_TEXT =
  'schemas stay in the data plane (its schema catalogue, written by your workers): send its digest instead, ' +
  "the SHA-256 of the schema's RFC 8785 canonical JSON, as";

/** A duration: milliseconds as a number, or a string such as '500ms', '30s', '5m', bounded. */
function duration(minMs: number, maxMs: number) {
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      ctx.issues.push({
        code: 'custom',
        input: value,
        message: `expected a duration from ${minMs} ms to ${Math.round(maxMs / DAY_MS)} days: milliseconds as a number, or a string such as '500ms', '30s', '5m'`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

const RETRY_FIELDS = ['maximumAttempts', 'initialInterval', 'backoffCoefficient', 'maximumInterval'];

/**
 * A retry policy in the SDK's shape; durations as milliseconds or strings like '500ms'. Stored and
 * answered with every default filled in (the same defaults as the SDK's), durations in ms.
 */
export const RetrySchema = z
  .strictObject(
    {
      maximumAttempts: z.number().optional(),
      initialInterval: z.union([z.number(), z.string()]).optional(),
      backoffCoefficient: z.number().optional(),
      maximumInterval: z.union([z.number(), z.string()]).optional(),
    },
    {
      error: unknownFields(RETRY_FIELDS, {
        maxAttempts: 'maxAttempts is now maximumAttempts',
        initialIntervalMs: "initialIntervalMs is now initialInterval (milliseconds, or a duration such as '500ms')",
        maxIntervalMs: "maxIntervalMs is now maximumInterval (milliseconds, or a duration such as '30s')",
        nonRetryableErrorTypes: 'nonRetryableErrorTypes is set in code only: error names stay in the data plane',
      }),
    },
  )
  .transform((policy, ctx): RetryPolicy => {
    const checked = checkRetryPolicy(policy);
    if (!('numbers' in checked)) {
      for (const problem of checked.problems)
        ctx.issues.push({ code: 'custom', input: policy, path: [problem.field], message: problem.message });
      return z.NEVER;
    }
    const n = checked.numbers;
    return {
      maximumAttempts: n.maximumAttempts,
      initialInterval: n.initialIntervalMs,
      backoffCoefficient: n.backoffCoefficient,
      maximumInterval: n.maximumIntervalMs,
    };
  });

const TimeoutsSchema = z.strictObject(
  {
    run: duration(TIMEOUT_LIMITS.minRunMs, TIMEOUT_LIMITS.maxMs).optional(),
    step: duration(TIMEOUT_LIMITS.minStepMs, TIMEOUT_LIMITS.maxMs).optional(),
  },
  {
    error: unknownFields(['run', 'step'], {
      runTimeoutMs: "runTimeoutMs is now run (milliseconds, or a duration such as '1d')",
      stepTimeoutMs: "stepTimeoutMs is now step (milliseconds, or a duration such as '30s')",
    }),
  },
);

function validTimezone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Whether croner reads the expression (the same check announced schedules get). */
export function validCron(pattern: string): boolean {
  try {
    new Cron(pattern, { paused: true }).stop();
    return true;
  } catch {
    return false;
  }
}

const ScheduleSchema = z.strictObject({
  cron: z
    .string()
    .max(CRON_MAX_LENGTH)
    .regex(CRON_PATTERN, 'expected a cron expression such as "0 9 * * 1-5" (5 or 6 fields; month and day names in upper case)')
    .refine(validCron, 'expected a cron expression such as "0 9 * * 1-5" (5 or 6 fields)'),
  timezone: z
    .string()
    .max(TIME_ZONE_MAX_LENGTH)
    .regex(TIME_ZONE_PATTERN, 'expected an IANA time zone such as "Europe/Paris"')
    .refine(validTimezone, 'expected an IANA time zone such as "Europe/Paris"')
    .default('UTC'),
});

export const FlowControlSchema = z.strictObject({
  concurrency: z
    .strictObject({
      limit: z.number().int().min(1).max(FLOW_CONTROL_LIMITS.concurrency),
      perKey: z.boolean().default(false),
    })
    .nullable()
    .default(null),
  rateLimit: z
    .strictObject({
      limit: z.number().int().min(1).max(FLOW_CONTROL_LIMITS.rateLimit),
      periodMs: z.number().int().min(FLOW_CONTROL_LIMITS.minPeriodMs).max(FLOW_CONTROL_LIMITS.maxPeriodMs),
      perKey: z.boolean().default(false),
    })
    .nullable()
    .default(null),
});

const digestSchema = z.string().regex(DIGEST_PATTERN, 'expected a SHA-256 digest: 64 lowercase hexadecimal characters');

const REGISTER_FIELDS = [
  'name',
  'version',
  'taskQueue',
  'inputSchemaDigest',
  'outputSchemaDigest',
  'retry',
  'timeouts',
  'schedules',
  'flowControl',
];

const RegisterBody = z.strictObject(
  {
    name: nameSchema,
    version: versionSchema,
    taskQueue: nameSchema,
    inputSchemaDigest: digestSchema.nullable().default(null),
    outputSchemaDigest: digestSchema.nullable().default(null),
    retry: RetrySchema.nullable().default(null),
    timeouts: TimeoutsSchema.default({}),
    schedules: z.array(ScheduleSchema).max(20).default([]),
    flowControl: FlowControlSchema.optional(),
  },
  {
    error: unknownFields(REGISTER_FIELDS, {
      inputSchema: `inputSchema: ${SCHEMA_TEXT} inputSchemaDigest (cairn workflows register computes it from your workflow module)`,
      outputSchema: `outputSchema: ${SCHEMA_TEXT} outputSchemaDigest (cairn workflows register computes it from your workflow module)`,
      retryPolicy:
        "retryPolicy is now retry, in the SDK's shape: { maximumAttempts, initialInterval, backoffCoefficient, maximumInterval }",
    }),
  },
);

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
    inputSchemaDigest: d.inputSchemaDigest,
    outputSchemaDigest: d.outputSchemaDigest,
    retry: d.retry,
    timeouts: { run: d.runTimeoutMs, step: d.stepTimeoutMs },
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
      'Versions are immutable. Schemas stay in the data plane: send their digests (inputSchemaDigest, outputSchemaDigest). ' +
      "retry takes the SDK's shape ({ maximumAttempts, initialInterval, backoffCoefficient, maximumInterval }) and timeouts { run, step }; " +
      "durations are milliseconds or strings such as '500ms', and answers give milliseconds with every default filled in. " +
      'flowControl, when given, replaces the flow control of the workflow name (it is not part of the version).',
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
        inputSchemaDigest: body.inputSchemaDigest,
        outputSchemaDigest: body.outputSchemaDigest,
        retry: body.retry,
        runTimeoutMs: body.timeouts.run ?? null,
        stepTimeoutMs: body.timeouts.step ?? null,
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
