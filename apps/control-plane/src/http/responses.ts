// What the REST routes answer, as zod schemas. Each `@Api(...)` names its response schema; the
// OpenAPI document shows it (named ones under components.schemas), the presenters are typed by it,
// and a test checks real answers against the document. Metadata only, as everything here.
import { z } from 'zod';
import { RUN_STATUSES } from '../domain.js';

/** Named response schemas: `components.schemas` of the OpenAPI document. */
export const responseSchemas = z.registry<{ id: string; description?: string }>();

const named = <T extends z.ZodType>(id: string, schema: T, description?: string): T => {
  responseSchemas.add(schema, { id, ...(description === undefined ? {} : { description }) });
  return schema;
};

const isoTime = z.string().describe('an ISO 8601 time');
const nullableTime = isoTime.nullable();

export const RunStatus = named('RunStatus', z.enum(RUN_STATUSES));

export const Run = named(
  'Run',
  z.object({
    id: z.string(),
    dataPlaneId: z.string(),
    workflowName: z.string(),
    workflowVersion: z.string(),
    taskQueue: z.string(),
    status: RunStatus,
    epoch: z.number(),
    errorCode: z.string().nullable().describe('a closed error code such as step_terminal; null unless the run failed'),
    errorRef: z.string().nullable().describe('an opaque reference to the error kept in the data plane (the gateway shows it)'),
    createdAt: nullableTime,
    queuedAt: nullableTime,
    startedAt: nullableTime,
    endedAt: nullableTime,
    wakeAt: nullableTime,
    wakeReason: z.enum(['start', 'timer', 'signal', 'retry', 'recovery', 'cancel', 'child']).nullable(),
    waitingSignal: z.string().nullable(),
    suspendReason: z.enum(['sleep', 'signal', 'retry_backoff', 'child']).nullable(),
    inputSize: z.number(),
    outputSize: z.number().nullable().describe('null until the run completed'),
    dispatchCount: z.number(),
    cancelRequested: z.boolean(),
    parentRunId: z.string().nullable(),
    scheduleId: z.string().nullable(),
    scheduleTickAt: nullableTime,
    waitingChild: z.string().nullable(),
    forkedFromRunId: z.string().nullable(),
    forkPosition: z.number().nullable(),
    priority: z.number(),
    concurrencyKeyDigest: z.string().nullable(),
    deadlineAt: nullableTime,
    updatedAt: nullableTime,
  }),
  "A run's metadata (no payloads: inputs, outputs and errors stay in the data plane).",
);

export const Step = named(
  'Step',
  z.object({
    position: z.number(),
    attempt: z.number(),
    kind: z.enum(['step', 'sleep', 'signal', 'model', 'child']),
    name: z.string(),
    keyDigest: z.string().nullable(),
    status: z.enum(['running', 'completed', 'failed', 'retrying', 'waiting']),
    errorCode: z.string().nullable(),
    retryable: z.boolean(),
    errorRef: z.string().nullable(),
    startedAt: nullableTime,
    endedAt: nullableTime,
    dueAt: nullableTime,
    durationMs: z.number().nullable(),
    outputSize: z.number().nullable(),
    epoch: z.number(),
    inputTokens: z.number().nullable(),
    outputTokens: z.number().nullable(),
    provider: z.string().nullable(),
    model: z.string().nullable(),
    copied: z
      .boolean()
      .describe(
        'true for an entry of a forked run below its fork position: copied from the source run’s journal, not executed by this run, and not counted in usage',
      ),
  }),
  'One attempt of one durable call.',
);

export const TimelineCall = named(
  'TimelineCall',
  z.object({
    position: z.number(),
    kind: Step.shape.kind,
    name: z.string(),
    keyDigest: z.string().nullable(),
    status: Step.shape.status,
    attemptCount: z.number(),
    retries: z.number(),
    startedAt: nullableTime,
    endedAt: nullableTime,
    durationMs: z.number().nullable(),
    inputTokens: z.number().nullable(),
    outputTokens: z.number().nullable(),
    copied: z.boolean().describe('true for a call of a forked run copied from the source run (below its fork position), not executed'),
    attempts: z.array(Step),
  }),
  'One durable call with its attempts.',
);

export const RunTotals = named(
  'RunTotals',
  z.object({
    durableCalls: z.number(),
    attempts: z.number(),
    retries: z.number(),
    failedAttempts: z.number(),
    copiedCalls: z.number().describe('calls of a forked run copied from the source run, not executed (0 for a run that was not forked)'),
    inputTokens: z.number().describe('tokens of the model-call attempts this run executed (copied calls left out)'),
    outputTokens: z.number(),
    tokensByModel: z.array(
      z.object({
        provider: z.string().nullable(),
        model: z.string().nullable(),
        attempts: z.number(),
        inputTokens: z.number(),
        outputTokens: z.number(),
      }),
    ),
    wallTimeMs: z.number(),
  }),
);

export const RunWarning = named(
  'RunWarning',
  z.object({
    code: z
      .enum(['no_connected_worker'])
      .describe("no_connected_worker: no connected worker announces the run's workflow version; the run waits in the queue until one does"),
    message: z.string(),
  }),
);
export const RunDescription = named(
  'RunDescription',
  z.object({
    run: Run,
    steps: z.array(Step),
    timeline: z.array(TimelineCall),
    totals: RunTotals,
    warnings: z
      .array(RunWarning)
      .describe(
        'what may keep a queued or suspended run from running soon; empty when nothing is known to, while a worker holds the run, and once it ended',
      ),
  }),
);
export const RunList = named('RunList', z.object({ runs: z.array(Run), nextCursor: z.string().nullable() }));
export const RunAnswer = named('RunAnswer', z.object({ run: Run }));

export const Project = named('Project', z.object({ id: z.string(), organizationId: z.string(), name: z.string(), createdAt: isoTime }));
export const Whoami = named(
  'Whoami',
  z.object({
    keyId: z.string(),
    organizationId: z.string(),
    projectId: z.string().nullable().describe('null for an organisation-wide key'),
    role: z.string(),
  }),
);
export const ResidencyReport = named(
  'ResidencyReport',
  z.object({
    title: z.string(),
    direction: z.literal('data plane → control plane'),
    files: z.array(z.string()).describe('the proto files of the contract'),
    classes: z.record(z.string(), z.string()).describe('each residency class and what it admits'),
    messages: z.array(
      z.object({
        message: z.string(),
        file: z.string(),
        via: z.array(z.string()).describe('the RPCs through which it crosses from the data plane'),
        fields: z.array(
          z.object({
            field: z.string(),
            number: z.number(),
            type: z.string(),
            repeated: z.boolean(),
            class: z.string(),
            maxLength: z.number().nullable(),
            pattern: z.string().nullable(),
            carries: z.string(),
          }),
        ),
      }),
    ),
    problems: z.array(z.string()).describe('declarations that break the rules (empty for a sound contract)'),
    neverCrosses: z.array(z.string()).describe('what no field carries: it stays in the data plane'),
    totals: z.object({ messages: z.number(), fields: z.number(), byClass: z.record(z.string(), z.number()) }),
  }),
);
export const ProjectList = named('ProjectList', z.object({ projects: z.array(Project) }));
export const ProjectAnswer = named('ProjectAnswer', z.object({ project: Project }));

export const ApiKey = named(
  'ApiKey',
  z.object({
    id: z.string(),
    name: z.string(),
    role: z.string(),
    prefix: z.string(),
    projectId: z.string().nullable(),
    organizationWide: z.boolean(),
    createdBy: z.string().nullable(),
    createdAt: isoTime,
    expiresAt: nullableTime,
    revokedAt: nullableTime,
    lastUsedAt: nullableTime,
  }),
  'An API key, never its secret.',
);
export const ApiKeyCreated = named(
  'ApiKeyCreated',
  z.object({ apiKey: ApiKey, secret: z.string().describe('the key itself: shown in this answer only') }),
);
export const ApiKeyList = named('ApiKeyList', z.object({ apiKeys: z.array(ApiKey) }));
export const ApiKeyAnswer = named('ApiKeyAnswer', z.object({ apiKey: ApiKey }));

export const DataPlane = named(
  'DataPlane',
  z.object({ id: z.string(), projectId: z.string(), name: z.string(), createdAt: isoTime, revokedAt: nullableTime }),
);
export const DataPlaneCreated = named(
  'DataPlaneCreated',
  z.object({
    dataPlane: DataPlane,
    credential: z.string().describe('the credential workers and gateways dial in with: in this answer only'),
  }),
);
export const DataPlaneWorker = named(
  'DataPlaneWorker',
  z.object({
    workerId: z.string().describe('the random ID the worker process chose at start'),
    connected: z.boolean().describe('its stream is open (seen within the last minute, no disconnection recorded)'),
    sdkVersion: z.string(),
    protocolVersion: z.number(),
    slots: z.number().describe('run slots granted to its stream'),
    workflows: z.number().describe('workflow versions it announced'),
    connectedAt: isoTime,
    lastSeenAt: isoTime,
    disconnectedAt: nullableTime,
  }),
);
export const DataPlaneWorkers = named(
  'DataPlaneWorkers',
  z.object({
    workers: z.array(DataPlaneWorker).describe('workers seen in the last 7 days, the most recently seen first'),
    workflowVersions: z.array(
      z.object({ name: z.string(), version: z.string(), taskQueue: z.string(), firstSeenAt: isoTime, lastSeenAt: isoTime }),
    ),
  }),
);
export const DataPlaneList = named('DataPlaneList', z.object({ dataPlanes: z.array(DataPlane) }));
export const DataPlaneAnswer = named('DataPlaneAnswer', z.object({ dataPlane: DataPlane }));

/** A registered retry policy in the SDK's shape, every default filled in, durations in ms. */
const RetryPolicy = z.object({
  maximumAttempts: z.number().describe('attempts in all, the first included; 0 means unlimited'),
  initialInterval: z.number().describe('the wait before the second attempt, in milliseconds'),
  backoffCoefficient: z.number().describe('the multiplier of the wait after each failure'),
  maximumInterval: z.number().describe('the longest wait between attempts, in milliseconds'),
});

export const WorkflowVersion = named(
  'WorkflowVersion',
  z.object({
    name: z.string(),
    version: z.string(),
    taskQueue: z.string(),
    inputSchemaDigest: z
      .string()
      .nullable()
      .describe("SHA-256 (hex) of the input's JSON Schema over its RFC 8785 canonical JSON; the schema stays in the data plane"),
    outputSchemaDigest: z.string().nullable().describe("SHA-256 (hex) of the output's JSON Schema"),
    retry: RetryPolicy.nullable(),
    timeouts: z.object({
      run: z.number().nullable().describe('the run timeout in milliseconds'),
      step: z.number().nullable().describe('the per-attempt step timeout in milliseconds'),
    }),
    schedules: z.array(z.object({ cron: z.string(), timezone: z.string() })),
    source: z.enum(['api', 'worker']),
    registeredAt: isoTime,
    registeredBy: z.string().nullable(),
    deprecated: z.boolean(),
    deprecatedAt: nullableTime,
    deprecatedBy: z.string().nullable(),
  }),
  'A registered workflow version (immutable).',
);

export const FlowControlView = named(
  'FlowControl',
  z.object({
    concurrency: z.object({ limit: z.number(), perKey: z.boolean() }).nullable(),
    rateLimit: z.object({ limit: z.number(), periodMs: z.number(), perKey: z.boolean() }).nullable(),
    updatedAt: nullableTime,
  }),
);

export const WorkflowVersionSummary = named(
  'WorkflowVersionSummary',
  z.object({ version: z.string(), taskQueue: z.string(), deprecated: z.boolean(), registeredAt: isoTime }),
);
export const WorkflowSummary = named(
  'WorkflowSummary',
  z.object({ name: z.string(), versions: z.array(WorkflowVersionSummary), flowControl: FlowControlView }),
);
export const WorkflowDetail = named(
  'WorkflowDetail',
  z.object({ name: z.string(), versions: z.array(WorkflowVersion), flowControl: FlowControlView }),
);
export const WorkflowRegistered = named(
  'WorkflowRegistered',
  z.object({ workflow: WorkflowVersion, created: z.boolean(), flowControl: FlowControlView }),
);
export const WorkflowList = named('WorkflowList', z.object({ workflows: z.array(WorkflowSummary) }));
export const WorkflowDetailAnswer = named('WorkflowDetailAnswer', z.object({ workflow: WorkflowDetail }));
export const WorkflowVersionAnswer = named('WorkflowVersionAnswer', z.object({ workflow: WorkflowVersion }));
export const FlowControlAnswer = named('FlowControlAnswer', z.object({ flowControl: FlowControlView }));

export const Schedule = named(
  'Schedule',
  z.object({
    id: z.string(),
    name: z.string().nullable(),
    projectId: z.string(),
    dataPlaneId: z.string(),
    workflowName: z.string(),
    workflowVersion: z.string().nullable(),
    cron: z.string(),
    timeZone: z.string(),
    overlapPolicy: z.enum(['skip', 'buffer_one', 'allow_all', 'cancel_previous']),
    catchUpWindowSeconds: z.number(),
    inputPayloadId: z.string().nullable(),
    paused: z.boolean(),
    nextTickAt: nullableTime,
    bufferedFiringId: z.string().nullable(),
    createdBy: z.string().nullable(),
    createdAt: nullableTime,
    updatedAt: nullableTime,
  }),
);
export const Firing = named(
  'Firing',
  z.object({
    id: z.string(),
    kind: z.enum(['tick', 'trigger', 'backfill']),
    tickAt: nullableTime,
    outcome: z.enum(['started', 'skipped', 'buffered', 'workflow_not_found', 'quota_exceeded']),
    runId: z.string().nullable(),
    cancelledRuns: z.number().describe('runs the firing cancelled (overlap policy cancel_previous)'),
    firedAt: nullableTime,
  }),
);
export const ScheduleAnswer = named('ScheduleAnswer', z.object({ schedule: Schedule }));
export const ScheduleList = named('ScheduleList', z.object({ schedules: z.array(Schedule), nextCursor: z.string().nullable() }));
export const ScheduleDetail = named(
  'ScheduleDetail',
  z.object({ schedule: Schedule, nextFireTimes: z.array(isoTime), recentFirings: z.array(Firing) }),
);
export const ScheduleDeleted = named('ScheduleDeleted', z.object({ deleted: z.literal(true) }));
export const FiringAnswer = named('FiringAnswer', z.object({ firing: Firing }));
export const Backfill = named(
  'Backfill',
  z.object({
    dryRun: z.boolean().describe('true: nothing fired; ticks is what a backfill of the range would cover'),
    ticks: z.array(
      z.object({
        tickAt: isoTime,
        alreadyFired: z.boolean().describe('the tick already has a firing, so the backfill does not fire it again'),
      }),
    ),
    firings: z.array(Firing),
    started: z.number(),
    alreadyFired: z.number(),
  }),
);

const TokenUsage = z.object({
  provider: z.string(),
  model: z.string(),
  calls: z.number(),
  inputTokens: z.number(),
  outputTokens: z.number(),
});
const WorkflowUsage = z.object({
  workflow: z.string().describe("the workflow's name as runs hold it (in strict residency mode, a keyed digest)"),
  runsStarted: z.number(),
  stepsExecuted: z.number(),
  modelCalls: z.number(),
  inputTokens: z.number(),
  outputTokens: z.number(),
});
const usageCounts = {
  runsStarted: z.number(),
  stepsExecuted: z.number(),
  inputTokens: z.number(),
  outputTokens: z.number(),
  tokens: z.array(TokenUsage).describe('model calls and tokens by provider and model'),
  workflows: z.array(WorkflowUsage).describe('runs, steps and tokens by workflow'),
};
export const UsageReport = named(
  'UsageReport',
  z.object({
    from: z.string().describe('YYYY-MM-DD (UTC)'),
    to: z.string(),
    days: z.array(z.object({ day: z.string(), ...usageCounts })),
    totals: z.object(usageCounts),
  }),
);
export const Quotas = named(
  'Quotas',
  z.object({
    maxConcurrentRuns: z.number().nullable(),
    maxStepsPerMonth: z.number().nullable(),
    updatedAt: nullableTime,
    updatedBy: z.string().nullable(),
  }),
  'null: no limit',
);
export const QuotasAnswer = named('QuotasAnswer', z.object({ quotas: Quotas }));

export const AuditEntry = named(
  'AuditEntry',
  z.object({
    id: z.string(),
    position: z.number().nullable().describe('null until the entry is sealed into the chain'),
    occurredAt: z.string(),
    organizationId: z.string(),
    projectId: z.string(),
    actor: z.object({ type: z.string(), id: z.string().nullable() }),
    action: z.string(),
    target: z.object({ type: z.string(), id: z.string() }),
    metadata: z.record(z.string(), z.unknown()),
    hash: z.string().nullable(),
  }),
);
export const AuditList = named('AuditList', z.object({ entries: z.array(AuditEntry), nextCursor: z.string().nullable() }));
const chainHead = z.object({ position: z.number(), hash: z.string() }).nullable();
const checkpointRef = z
  .object({ position: z.number(), hash: z.string(), signedAt: z.string(), keyId: z.string() })
  .nullable()
  .describe('the newest signed checkpoint the chain was checked against (null: none, or no signing key)');
export const AuditVerification = named(
  'AuditVerification',
  z.union([
    z.object({ ok: z.literal(true), entries: z.number(), head: chainHead, checkpoint: checkpointRef }),
    z.object({
      ok: z.literal(false),
      entries: z.number(),
      head: chainHead,
      checkpoint: checkpointRef,
      broken: z.object({
        position: z.number(),
        entryId: z.string().nullable(),
        reason: z.enum([
          'hash_mismatch',
          'missing_entry',
          'out_of_order',
          'head_mismatch',
          'truncated',
          'checkpoint_mismatch',
          'checkpoint_rejected',
        ]),
        detail: z.string(),
        expectedHash: z.string().optional(),
        storedHash: z.string().nullable().optional(),
      }),
    }),
  ]),
);
export const AuditCheckpoint = named(
  'AuditCheckpoint',
  z.object({
    format: z.literal('cairn.audit.checkpoint.v1'),
    organizationId: z.string(),
    projectId: z.string(),
    position: z.number().describe('the last sealed position covered (0: an empty chain)'),
    hash: z.string().describe("the chain's hash at that position"),
    entries: z.number().describe('entries in the chain up to that position'),
    signedAt: z.string().describe('ISO 8601 UTC with milliseconds'),
    keyId: z.string().describe('the signing key, among those at /.well-known/cairn-audit-keys'),
    algorithm: z.literal('Ed25519'),
    signature: z.string().describe('Ed25519 over the RFC 8785 JSON of the other fields, base64url'),
  }),
  'A signed head of the audit chain; docs/audit.md says how to verify it without Cairn.',
);
export const AuditCheckpointAnswer = named('AuditCheckpointAnswer', z.object({ checkpoint: AuditCheckpoint }));
export const AuditCheckpointList = named(
  'AuditCheckpointList',
  z.object({ checkpoints: z.array(AuditCheckpoint), nextCursor: z.string().nullable() }),
);
export const AuditPruneAnchor = named(
  'AuditPruneAnchor',
  z.object({
    position: z.number().describe('the last pruned position: the chain continues at the next one, chaining from hash'),
    hash: z.string().describe("the chain's hash at that position, as the checkpoint signed it"),
    entries: z.number().describe('entries in the chain up to that position'),
    pruned: z.number().describe('how many entries the newest prune deleted'),
    prunedBefore: z.string().describe('the cut-off of the newest prune: every entry it deleted occurred before it (ISO 8601 UTC)'),
    prunedAt: z.string().describe('when the newest prune ran (ISO 8601 UTC)'),
    checkpoint: AuditCheckpoint.describe('the signed checkpoint at the cut; verify its signature before starting from it'),
  }),
  'Where a pruned chain starts: entries up to position were deleted under the retention policy, after this signed checkpoint was recorded.',
);

export const AuditChainPage = named(
  'AuditChainPage',
  z.object({
    entries: z.array(AuditEntry).describe('sealed entries in position order'),
    head: chainHead.describe('the recorded head, read with the entries'),
    anchor: AuditPruneAnchor.nullable().describe('null unless the chain was pruned: then it starts after this signed checkpoint'),
    nextAfter: z.number().nullable().describe('pass as after for the next page; null on the last page'),
  }),
);

/** The JSON body of every error response. */
export const ErrorBody = named(
  'Error',
  z.object({
    error: z.object({
      code: z.string().describe('a stable code to search for: CAIRN-NNNN'),
      message: z.string().describe('what was wrong and what to do'),
    }),
  }),
  'An error: `{"error":{"code":"CAIRN-NNNN","message":"..."}}`',
);
