// The shapes of the gateway's HTTP API as zod schemas: what each route answers (the views) and
// what it takes. The route table (api.ts) validates requests with them, the OpenAPI document is
// generated from them, and the TypeScript types of the views are inferred from them, so the code,
// the validation and the document cannot drift apart.
import { z } from 'zod';
import {
  ErrorCodes,
  ID_PATTERN,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  VERSION_MAX_LENGTH,
  VERSION_PATTERN,
  assertName,
  assertVersion,
  type ErrorCodeString,
} from '@cairn/common';
import { APPROVAL_NAME_MAX_LENGTH } from '@cairn/payload-store';

/** Named request schemas: `components.schemas` of the OpenAPI document, converted as input. */
export const requestSchemas = z.registry<{ id: string; description?: string }>();
/** Named response schemas: `components.schemas`, converted as output. */
export const responseSchemas = z.registry<{ id: string; description?: string }>();

const named = <T extends z.ZodType>(registry: typeof requestSchemas, id: string, schema: T, description?: string): T => {
  registry.add(schema, { id, ...(description === undefined ? {} : { description }) });
  return schema;
};

// ---- request fields ---------------------------------------------------------------------------

/**
 * The Cairn error code a field's failures carry when it is not CAIRN-1101 (INVALID_ARGUMENT): names
 * and versions are CAIRN-1107, as everywhere else in Cairn.
 */
export const fieldCodes = new WeakMap<z.ZodType, ErrorCodeString>();
const coded = <T extends z.ZodType>(schema: T, code: ErrorCodeString): T => {
  fieldCodes.set(schema, code);
  return schema;
};

/** The message of a failed check, without echoing a whole oversized value back. */
function messageOf(check: () => void): string | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    return err instanceof Error && 'rawMessage' in err ? String(err.rawMessage) : String(err);
  }
}

const clip = (value: unknown, max: number): unknown =>
  typeof value === 'string' && value.length > max ? `${value.slice(0, max)}…` : value;

/** A name written in code (workflow, signal, approval): CAIRN-1107 with the usual explanation when it is not one. */
export function nameField(what: string, maxLength = NAME_MAX_LENGTH) {
  return coded(
    z
      .custom<string>((v) => typeof v === 'string' && v.length <= NAME_MAX_LENGTH && NAME_PATTERN.test(v), {
        error: (issue) => messageOf(() => assertName(clip(issue.input, 120), what)),
      })
      .meta({ type: 'string', pattern: NAME_PATTERN.source, maxLength, description: `the ${what}, as written in code` }),
    ErrorCodes.INVALID_NAME,
  );
}

/** A workflow version: CAIRN-1107 when it is not one. */
export function versionField() {
  return coded(
    z
      .custom<string>((v) => typeof v === 'string' && v.length <= VERSION_MAX_LENGTH && VERSION_PATTERN.test(v), {
        error: (issue) => messageOf(() => assertVersion(clip(issue.input, 80))),
      })
      .meta({ type: 'string', pattern: VERSION_PATTERN.source, maxLength: VERSION_MAX_LENGTH }),
    ErrorCodes.INVALID_NAME,
  );
}

/** A lowercase UUID path parameter, with the message `malformed` gives for anything else. */
export function idField(malformed: (value: string) => string, description: string) {
  return z
    .custom<string>((v) => typeof v === 'string' && ID_PATTERN.test(v), { error: (issue) => malformed(String(issue.input)) })
    .meta({ type: 'string', format: 'uuid', pattern: ID_PATTERN.source, description });
}

/** Messages name the fields the way the caller wrote them, at most five, quoted. */
export function unknownFields(keys: readonly string[], where: string, hint: string): string {
  const list = keys
    .slice(0, 5)
    .map((k) => JSON.stringify(k.slice(0, 40)))
    .join(', ');
  return `unknown field${keys.length > 1 ? 's' : ''} ${list} in ${where}: ${hint}`;
}

/** The longest idempotency key, concurrency key or approval key. */
export const KEY_MAX_LENGTH = 1024;
/** Run priorities: 0 (lowest) to 100; a start without one gets 50. */
export const MAX_PRIORITY = 100;
export const DEFAULT_PRIORITY = 50;
/** The longest `by` of an approval answer. */
export const APPROVAL_BY_MAX_LENGTH = 200;
/** Long polls wait at most this long, and this long by default. */
export const MAX_WAIT_SECONDS = 60;
export const DEFAULT_WAIT_SECONDS = 30;

const START_EXAMPLE =
  '{"workflow": "name", "version": "optional", "input": {...}, "idempotencyKey": "optional", "concurrencyKey": "optional", "priority": 50}';
const START_FIELDS = ['workflow', 'version', 'input', 'idempotencyKey', 'concurrencyKey', 'priority'];

/** `POST /v1/runs`. */
export const StartRunRequest = named(
  requestSchemas,
  'StartRunRequest',
  z.strictObject(
    {
      workflow: nameField('workflow name'),
      version: versionField().nullable().optional().describe('a version to pin; default: the newest one a worker announced'),
      input: z.unknown().optional().describe("the run's input, any JSON value; stored in the data plane only"),
      idempotencyKey: z
        .string({ error: 'idempotencyKey must be a string' })
        .min(1, `the idempotency key must be 1 to ${KEY_MAX_LENGTH} characters long`)
        .max(KEY_MAX_LENGTH, `the idempotency key must be 1 to ${KEY_MAX_LENGTH} characters long`)
        .nullable()
        .optional()
        .describe('a second start with the same key returns the first run (crosses only as an HMAC); or the Idempotency-Key header'),
      concurrencyKey: z
        .string({ error: 'concurrencyKey must be a string' })
        .min(1, `concurrencyKey must be 1 to ${KEY_MAX_LENGTH} characters long`)
        .max(KEY_MAX_LENGTH, `concurrencyKey must be 1 to ${KEY_MAX_LENGTH} characters long`)
        .nullable()
        .optional()
        .describe("groups runs under the workflow's per-key concurrency or rate limit (crosses only as an HMAC)"),
      priority: z
        .int({ error: `priority must be a whole number from 0 to ${MAX_PRIORITY} (higher runs first; default ${DEFAULT_PRIORITY})` })
        .min(0, `priority must be a whole number from 0 to ${MAX_PRIORITY} (higher runs first; default ${DEFAULT_PRIORITY})`)
        .max(MAX_PRIORITY, `priority must be a whole number from 0 to ${MAX_PRIORITY} (higher runs first; default ${DEFAULT_PRIORITY})`)
        .nullable()
        .optional()
        .describe(`0-${MAX_PRIORITY}, higher first; default ${DEFAULT_PRIORITY}`),
    },
    {
      error: (issue) => {
        if (issue.code === 'unrecognized_keys') {
          return unknownFields(issue.keys, 'the request body', `the fields are ${START_FIELDS.join(', ')} (put the run's data in input)`);
        }
        // invalid_type: the only other issue an object schema raises about itself.
        return issue.input === undefined
          ? `the request body is required: send ${START_EXAMPLE} with Content-Type: application/json`
          : `the request body must be a JSON object: ${START_EXAMPLE}`;
      },
    },
  ),
);

const KEY_MESSAGE = `key must be the key the workflow gave ctx.approval: a string of 1 to ${KEY_MAX_LENGTH} characters or a number`;
const APPROVAL_FIELDS_HINT = 'the fields are approved, by, comment, data and key (put anything else in data)';
const approvalFields = {
  by: z
    .string({ error: `by must be a string of 1 to ${APPROVAL_BY_MAX_LENGTH} characters naming who answers` })
    .min(1, `by must be a string of 1 to ${APPROVAL_BY_MAX_LENGTH} characters naming who answers`)
    .max(APPROVAL_BY_MAX_LENGTH, `by must be a string of 1 to ${APPROVAL_BY_MAX_LENGTH} characters naming who answers`)
    .nullable()
    .optional()
    .describe('who answers'),
  comment: z.string({ error: 'comment must be a string' }).nullable().optional(),
  data: z.unknown().optional().describe('anything else the workflow reads from the answer'),
  key: z
    .union([z.string().min(1, KEY_MESSAGE).max(KEY_MAX_LENGTH, KEY_MESSAGE), z.number().refine(Number.isFinite, KEY_MESSAGE)], {
      error: KEY_MESSAGE,
    })
    .nullable()
    .optional()
    .describe('the key the workflow gave ctx.approval, when it gave one (crosses only as an HMAC)'),
};

const typeOf = (value: unknown): string => (value === undefined ? 'nothing' : value === null ? 'null' : typeof value);

/** `POST /v1/runs/:id/approvals/:name`: the answer, approved or not. */
export const ApprovalRequest = named(
  requestSchemas,
  'ApprovalRequest',
  z.strictObject(
    {
      approved: z
        .boolean({
          error: (issue) =>
            `approved is required and must be true or false (got ${typeOf(issue.input)}): ` +
            '{"approved": true, "by": "optional", "comment": "optional", "data": {...}, "key": "optional"}',
        })
        .describe('only true approves'),
      ...approvalFields,
    },
    {
      error: (issue) => {
        if (issue.code === 'unrecognized_keys') return unknownFields(issue.keys, 'the approval', APPROVAL_FIELDS_HINT);
        // invalid_type: the only other issue an object schema raises about itself.
        const example = '{"approved": true, "by": "optional", "comment": "optional", "data": {...}, "key": "optional"}';
        return issue.input === undefined
          ? `the request body is required: send ${example} with Content-Type: application/json, or use .../approve or .../reject`
          : `the request body must be a JSON object: ${example}`;
      },
    },
  ),
);

/** `POST /v1/runs/:id/approvals/:name/approve` and `/reject`: the route decides; the body is optional. */
export const ApprovalDecision = named(
  requestSchemas,
  'ApprovalDecision',
  z.strictObject(approvalFields, {
    error: (issue) => {
      if (issue.code === 'unrecognized_keys') {
        if (issue.keys.includes('approved')) {
          return (
            'do not send approved to .../approvals/:name/approve or .../reject: the route decides. ' +
            'Send {"approved": …} to POST /v1/runs/:id/approvals/:name instead'
          );
        }
        return unknownFields(issue.keys, 'the approval', APPROVAL_FIELDS_HINT);
      }
      // invalid_type: the only other issue an object schema raises about itself.
      return 'the request body must be a JSON object: {"by": "optional", "comment": "optional", "data": {...}, "key": "optional"} (or no body)';
    },
  }),
);

/** The step position in a path: 0, 1, 2, … */
export const positionField = z
  .custom<string>((v) => typeof v === 'string' && /^\d{1,9}$/.test(v), {
    error: (issue) => `step position ${JSON.stringify(String(issue.input).slice(0, 40))} is not a whole number: positions count from 0`,
  })
  .transform(Number)
  .meta({ type: 'string', pattern: '^\\d{1,9}$', description: 'the journal position of the call, from 0' });

const waitMessage = `wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS} (default ${DEFAULT_WAIT_SECONDS})`;
/** `?wait=SECONDS` of a long poll. */
export const waitField = z
  .string({ error: waitMessage })
  .regex(/^\d+(\.\d+)?$/, waitMessage)
  .transform(Number)
  .refine((n) => n >= 0 && n <= MAX_WAIT_SECONDS, waitMessage)
  .optional()
  .describe(`seconds to wait for the run to end, 0-${MAX_WAIT_SECONDS} (default ${DEFAULT_WAIT_SECONDS})`);

const eventIdMessage = (where: string) =>
  `${where} must be the id of a stream event this run sent (a whole number; 0 for the start), as the previous stream gave it`;
/** The id of the last stream event a client saw. */
export const lastEventIdField = (where: string) =>
  z
    .string({ error: eventIdMessage(where) })
    .regex(/^\d{1,15}$/, eventIdMessage(where))
    .transform(Number)
    .optional();

// ---- responses --------------------------------------------------------------------------------

const isoTime = z.string().describe('an ISO 8601 time');

/** Run states as the HTTP API spells them. */
export const RUN_STATUS_NAMES = ['queued', 'running', 'suspended', 'completed', 'failed', 'cancelled', 'terminated', 'timed_out'] as const;
export const RunStatusName = named(responseSchemas, 'RunStatus', z.enum(RUN_STATUS_NAMES));

/** The JSON body of every error response. */
export const ErrorBody = named(
  responseSchemas,
  'Error',
  z.object({
    error: z.object({
      code: z
        .enum(Object.values(ErrorCodes) as [ErrorCodeString, ...ErrorCodeString[]])
        .describe('a stable code to search for: CAIRN-NNNN'),
      message: z.string().describe('what was wrong and what to do'),
      issues: z
        .array(
          z.object({
            in: z.enum(['body', 'query', 'path', 'header']).describe('the part of the request'),
            path: z
              .string()
              .describe(
                'where in it: dotted (e.g. input.items.0.id; empty for the whole part) for a request that does not fit the route; ' +
                  "for CAIRN-1116 (a run input or signal body that does not match its workflow's schema), a JSON Pointer into the body " +
                  '(e.g. /input/amount; empty for the whole body)',
              ),
            message: z.string(),
          }),
        )
        .optional()
        .describe('400 only: every problem found in the request, each with where it is'),
    }),
  }),
  'An error: `{"error":{"code":"CAIRN-NNNN","message":"..."}}`',
);

export const RunView = named(
  responseSchemas,
  'RunView',
  z.object({
    runId: z.string(),
    workflow: z.string(),
    version: z.string().nullable(),
    taskQueue: z.string().nullable(),
    status: RunStatusName.nullable(),
    epoch: z.number(),
    errorCode: z.string().nullable().describe('the closed error code of a failed run, e.g. step_terminal'),
    createdAt: isoTime.nullable(),
    startedAt: isoTime.nullable(),
    endedAt: isoTime.nullable(),
    wakeAt: isoTime.nullable(),
    waitingSignal: z.string().nullable(),
    inputSize: z.number(),
    outputSize: z.number(),
    dispatchCount: z.number(),
    cancelRequested: z.boolean(),
    parentRunId: z.string().nullable().describe('the run that started this one as a child, or null'),
  }),
  "A run's metadata, from the control plane.",
);

export const StepView = named(
  responseSchemas,
  'StepView',
  z.object({
    position: z.number(),
    attempt: z.number(),
    kind: z.string().nullable(),
    name: z.string(),
    status: z.string().nullable(),
    errorCode: z.string().nullable(),
    retryable: z.boolean(),
    startedAt: isoTime.nullable(),
    endedAt: isoTime.nullable(),
    dueAt: isoTime.nullable(),
    durationMs: z.number().nullable(),
    outputSize: z.number(),
    inputTokens: z.number().nullable().describe('model calls only: tokens the provider counted for this attempt'),
    outputTokens: z.number().nullable(),
    provider: z.string().nullable().describe('model calls only: the provider and model this attempt called'),
    model: z.string().nullable(),
    copied: z
      .boolean()
      .describe('true for an entry of a forked run copied from the source run (below its fork position), not executed by this run'),
  }),
  'One attempt of one durable call on the timeline.',
);

export const ErrorView = named(
  responseSchemas,
  'ErrorView',
  z.object({
    name: z.string(),
    message: z.string(),
    code: z.string().nullable(),
    stack: z.string().nullable(),
    compensationFailures: z
      .unknown()
      .optional()
      .describe("a run's error only: compensations that failed for good after the workflow failed"),
  }),
  'An error as the data plane stored it (message and stack never leave the data plane).',
);

export const RunWarningView = named(
  responseSchemas,
  'RunWarning',
  z.object({
    code: z
      .enum(['no_connected_worker'])
      .describe("no_connected_worker: no connected worker runs the run's workflow version; the run waits in the queue until one connects"),
    message: z.string(),
  }),
);
const runWarnings = z
  .array(RunWarningView)
  .describe('what may keep the run from running soon; empty when nothing is known to, and for a run that is running or ended');

export const RunWithResult = named(
  responseSchemas,
  'RunWithResult',
  z.object({
    run: RunView,
    output: z.unknown().optional().describe("a completed run's output"),
    error: ErrorView.optional(),
    warnings: runWarnings,
  }),
);

export const RunResult = named(
  responseSchemas,
  'RunResult',
  z.object({
    runId: z.string(),
    status: RunStatusName.nullable(),
    output: z.unknown().optional(),
    error: ErrorView.optional(),
  }),
  'A run that ended: its output (completed) or error (failed); cancelled, terminated and timed-out runs may carry an error.',
);

export const RunPending = named(
  responseSchemas,
  'RunPending',
  z.object({ runId: z.string(), status: RunStatusName.nullable() }),
  'The run has not ended yet: ask again.',
);

export const StartRunResponse = named(
  responseSchemas,
  'StartRunResponse',
  z.object({
    runId: z.string(),
    workflow: z.string(),
    version: z.string().nullable(),
    status: RunStatusName.nullable(),
    created: z.boolean().describe('false: an earlier run with the same idempotency key'),
    warnings: runWarnings,
  }),
);

export const StepsResponse = named(responseSchemas, 'StepsResponse', z.object({ runId: z.string(), steps: z.array(StepView) }));

export const EntryView = named(
  responseSchemas,
  'EntryView',
  z.object({
    runId: z.string(),
    position: z.number(),
    kind: z.string(),
    name: z.string(),
    status: z.string(),
    attempt: z.number(),
    output: z.unknown().optional(),
    error: ErrorView.optional(),
    startedAt: isoTime.nullable(),
    endedAt: isoTime.nullable(),
    dueAt: isoTime.nullable(),
  }),
  'A recorded journal entry, for debugging a step.',
);

export const TranscriptView = named(
  responseSchemas,
  'TranscriptView',
  z.object({ runId: z.string(), position: z.number(), size: z.number(), createdAt: isoTime, transcript: z.unknown() }),
  "A model call's transcript: request, response, usage and every attempt.",
);

const StoredErrorInfo = z
  .looseObject({ name: z.string(), message: z.string(), stack: z.string().optional(), code: z.string().optional() })
  .describe('the error as recorded, with flags such as terminal');

export const JournalEntryView = named(
  responseSchemas,
  'JournalEntryView',
  z.object({
    position: z.number(),
    kind: z.string(),
    name: z.string(),
    keyDigest: z.string().nullable().describe("the HMAC of the call's key (or branch identity); null without one"),
    status: z.string(),
    attempt: z.number(),
    epoch: z.number(),
    value: z.unknown().optional().describe("the journaled value: a step's result, a signal's body, a model call's result or retry state"),
    error: StoredErrorInfo.optional(),
    signalId: z.string().nullable(),
    outputSize: z.number(),
    startedAt: isoTime,
    endedAt: isoTime.nullable(),
    dueAt: isoTime.nullable(),
  }),
);

export const JournalView = named(
  responseSchemas,
  'JournalView',
  z.object({
    runId: z.string(),
    workflow: z.string(),
    status: z.string().describe("the run's state in the data plane: open, completed, failed or cancelled"),
    input: z.unknown(),
    seed: z
      .string()
      .nullable()
      .describe(
        'the 32 bytes ctx.random() and ctx.uuid() derive from, base64; null unless the token has the admin scope (the seed predicts the values a run still draws)',
      ),
    forkedFrom: z.object({ runId: z.string(), position: z.number() }).nullable(),
    digestVersion: z
      .union([z.literal(1), z.literal(2)])
      .describe("how the run's step and approval keys were digested: 1 one HMAC key for everything, 2 a key per purpose and workflow"),
    hmacKeyId: z
      .string()
      .describe("the ID, in CAIRN_DP_HMAC_KEY, of the HMAC key the run's keys were digested with ('' for the key without an ID)"),
    createdAt: isoTime,
    endedAt: isoTime.nullable(),
    entries: z.array(JournalEntryView),
  }),
  "A run's whole journal, for replaying it against local code (cairn replay).",
);

const JournalChainHeadView = z.object({
  entries: z.number().int().describe('how many journal entries the chain covers (final entries from position 0)'),
  head: z.string().nullable().describe("the chain's hash after the last covered entry (64 hex digits)"),
});

export const JournalVerificationView = named(
  responseSchemas,
  'JournalVerificationView',
  z.object({
    runId: z.string(),
    ok: z.boolean().describe('true when the journal verifies against every recorded hash and the control plane’s head'),
    journalEntries: z.number().int().describe('journal entries stored for the run now'),
    recomputed: JournalChainHeadView.describe('the chain recomputed from the stored entries'),
    dataPlane: JournalChainHeadView.describe('how far the data plane recorded that it sealed the chain'),
    controlPlane: JournalChainHeadView.nullable().describe('the head the control plane recorded; null when it holds none'),
    problems: z.array(
      z.object({
        position: z.number().int().nullable(),
        reason: z.enum(['entry_changed', 'entry_unreadable', 'entry_missing', 'head_mismatch', 'head_missing']),
        detail: z.string(),
      }),
    ),
  }),
  "The outcome of recomputing a run's journal hash chain (cairn runs verify).",
);

const REPLAY_VERSION_MESSAGE = 'version must name a registered version of the run\'s workflow (1 to 200 characters), e.g. {"version": "3"}';

export const ReplayCheckRequest = named(
  requestSchemas,
  'ReplayCheckRequest',
  z.strictObject({
    version: z
      .string({ error: REPLAY_VERSION_MESSAGE })
      .min(1, REPLAY_VERSION_MESSAGE)
      .max(200, REPLAY_VERSION_MESSAGE)
      .describe("the registered version of the run's workflow to replay the run's journal against, e.g. 3"),
  }),
  "A version of the run's workflow to replay the run against.",
);

export const ReplayCheckCreated = named(
  responseSchemas,
  'ReplayCheckCreated',
  z.object({ checkId: z.string(), runId: z.string(), version: z.string() }),
  'The check is asked of the workers of this data plane: read its answer with GET /v1/runs/{id}/replay-checks/{checkId}.',
);

const ReplayCall = z
  .object({ kind: z.string(), name: z.string(), keyDigest: z.string().nullable() })
  .describe('a durable call: its kind (step, model, sleep, signal, child, now), its name and the HMAC of its key');

export const ReplayOutcome = named(
  responseSchemas,
  'ReplayOutcome',
  z.object({
    ok: z.boolean().describe('true when the journal replays on the version without non-determinism and without a new failure'),
    outcome: z
      .enum(['completed', 'failed', 'continues', 'waiting', 'non_determinism', 'diverged', 'unreplayable'])
      .describe(
        'completed/failed: the code ends where the journal ends, as the run did; continues: it replays the whole journal and goes on (next); waiting: it waits where the run waits; non_determinism: it calls something else than the journal holds at position; diverged: it throws where the run did not fail; unreplayable: it throws before a model call the journal holds (next), as when the model configuration is missing where it replays (missing)',
      ),
    missing: z.enum(['model configuration']).optional().describe('unreplayable: what the replay lacks'),
    replayedCalls: z.number().int().describe('calls answered from the journal'),
    journalEntries: z.number().int().describe("the journal's entries (clock reads aside)"),
    position: z.number().int().optional().describe('non_determinism: the journal position where the code differs'),
    expected: ReplayCall.nullable().optional().describe('non_determinism: what the journal holds there (null: nothing, the run ended)'),
    actual: ReplayCall.nullable().optional().describe('non_determinism: what the version calls there (null: it ends without the call)'),
    next: ReplayCall.extend({ position: z.number().int() })
      .optional()
      .describe('continues: the first call past the journal; unreplayable: the journaled call the code did not reach'),
    error: z
      .object({ name: z.string(), message: z.string() })
      .optional()
      .describe('failed/diverged/unreplayable: the error the code ends with'),
    message: z.string().optional().describe('non_determinism/diverged/unreplayable: what differs, in words'),
  }),
  "How the run's journal replays on the version.",
);

export const ReplayCheckView = named(
  responseSchemas,
  'ReplayCheckView',
  z.object({
    checkId: z.string(),
    runId: z.string(),
    workflow: z.string(),
    version: z.string(),
    status: z
      .enum(['pending', 'running', 'done', 'failed', 'unsupported'])
      .describe(
        'pending: no worker took it yet (ask again); running: a worker replays it; done: see result; failed: the worker could not replay (message); unsupported: no worker of this data plane runs the version (message)',
      ),
    requestedAt: isoTime,
    finishedAt: isoTime.nullable(),
    result: ReplayOutcome.nullable().describe('done: the outcome; null otherwise'),
    message: z.string().nullable().describe('failed or unsupported: why there is no outcome'),
  }),
  'A replay check and, once a worker answered it, its outcome.',
);

export const ExportRequest = named(
  requestSchemas,
  'ExportRequest',
  z.strictObject({
    runIds: z.array(z.string()).min(1).max(100).describe('the runs to export, 1 to 100'),
  }),
  'Runs to export.',
);

export const WorkflowNamesRequest = named(
  requestSchemas,
  'WorkflowNamesRequest',
  z.strictObject({
    names: z.array(z.string().max(200)).max(100).optional().describe('workflow names to translate into the names they cross under'),
    digests: z
      .array(z.string().max(200))
      .max(100)
      .optional()
      .describe('names the control plane holds (h. and 40 hex digits in strict residency mode) to resolve into workflow names'),
  }),
  'Workflow names to translate, or control-plane names to resolve (strict residency mode).',
);

export const WorkflowNamesView = named(
  responseSchemas,
  'WorkflowNamesView',
  z.object({
    residency: z.enum(['standard', 'strict']).describe("the data plane's residency mode (CAIRN_RESIDENCY)"),
    workflows: z.array(
      z.object({
        name: z.string().nullable().describe('the workflow name; null for a digest no catalogued workflow of this data plane has'),
        crossesAs: z.string().describe('the name the control plane holds for it: the name itself, or its keyed digest in strict mode'),
      }),
    ),
  }),
  'Workflow names and the names they cross to the control plane under.',
);

export const ExportView = named(
  responseSchemas,
  'ExportView',
  z.object({
    format: z.literal('cairn.journal-export.v1'),
    runs: z.number().int(),
    keyId: z.string().describe('the signing key: cairn runs verify-export checks the signature with its public half'),
    document: z
      .string()
      .describe('the export as JSON Lines: a header, one line per run with its journal, and a signature line; save it unchanged'),
  }),
  'A signed export of run journals.',
);

/** What a signal's and an approval's answers both say. */
const signalOutcome = {
  signalId: z.string(),
  created: z.boolean().describe('false: an earlier request with the same Idempotency-Key stored this signal; nothing new was delivered'),
  status: RunStatusName.nullable().describe("the run's status after the signal (queued: it was woken); null when pending"),
  pending: z
    .literal(true)
    .optional()
    .describe(
      'present when the control plane could not be told now: the signal is stored, and the gateway tells the control plane once it answers; do not send it again',
    ),
  waiting: z
    .literal(false)
    .optional()
    .describe('present when the run is suspended waiting for something else: the signal is kept until a wait for its name'),
  waitingFor: z
    .string()
    .nullable()
    .optional()
    .describe('with waiting: the signal the run waits for instead; null: none (it sleeps or waits for a child)'),
};

export const SignalResponse = named(
  responseSchemas,
  'SignalResponse',
  z.object({
    runId: z.string(),
    signal: z.string(),
    ...signalOutcome,
  }),
);

export const ApprovalResponse = named(
  responseSchemas,
  'ApprovalResponse',
  z.object({
    runId: z.string(),
    approval: z.string(),
    approved: z.boolean(),
    signal: z.string().describe('the signal the answer was sent as: approval.<name>[.<key digest>]'),
    ...signalOutcome,
  }),
);

export const CancelResponse = named(responseSchemas, 'CancelResponse', z.object({ runId: z.string(), status: RunStatusName.nullable() }));

export const PayloadCreated = named(responseSchemas, 'PayloadCreated', z.object({ payloadId: z.string(), size: z.number() }));
export const PayloadView = named(
  responseSchemas,
  'PayloadView',
  z.object({ payloadId: z.string(), payload: z.unknown(), size: z.number(), createdAt: isoTime }),
);
export const PayloadDeleted = named(responseSchemas, 'PayloadDeleted', z.object({ payloadId: z.string(), deleted: z.literal(true) }));

export const Health = named(responseSchemas, 'Health', z.object({ status: z.literal('ok') }));
export const NotReady = named(
  responseSchemas,
  'NotReady',
  z.object({ status: z.enum(['unavailable', 'shutting_down']), reason: z.string().optional() }),
);

/** The events of `GET /v1/runs/:id/stream`, each the `data:` of an SSE event of the same name. */
export const StreamDelta = named(
  responseSchemas,
  'StreamDelta',
  z.object({
    position: z.number().describe('the journal position of the model call'),
    name: z.string().describe("the call's static name"),
    attempt: z.number().describe('the attempt the text belongs to; text of an earlier, failed attempt is superseded'),
    text: z.string(),
  }),
  'event: delta — model text as it streams; its SSE id is the run-wide sequence number',
);
export const StreamModelDone = named(
  responseSchemas,
  'StreamModelDone',
  z.object({ position: z.number(), name: z.string(), attempt: z.number().describe('the attempt whose result was journaled') }),
  'event: model-done — the call is journaled',
);
export const StreamEnd = named(
  responseSchemas,
  'StreamEnd',
  z.object({ runId: z.string(), status: RunStatusName.nullable() }),
  'event: end — the run ended; the stream closes',
);

export type RunView = z.infer<typeof RunView>;
export type StepView = z.infer<typeof StepView>;
export type ErrorView = z.infer<typeof ErrorView>;
export type EntryView = z.infer<typeof EntryView>;
export type TranscriptView = z.infer<typeof TranscriptView>;
export type JournalEntryView = z.infer<typeof JournalEntryView>;
export type JournalView = z.infer<typeof JournalView>;
export type JournalVerificationView = z.infer<typeof JournalVerificationView>;
export type ExportView = z.infer<typeof ExportView>;
export type ReplayCheckView = z.infer<typeof ReplayCheckView>;
export type ReplayOutcome = z.infer<typeof ReplayOutcome>;
export type RunStatusName = z.infer<typeof RunStatusName>;
export type ErrorBody = z.infer<typeof ErrorBody>;

export { APPROVAL_NAME_MAX_LENGTH };

export const WorkflowSchemasView = named(
  responseSchemas,
  'WorkflowSchemasView',
  z.object({
    workflow: z.string(),
    versions: z.array(
      z.object({
        version: z.string(),
        input: z
          .record(z.string(), z.unknown())
          .nullable()
          .describe("the input's JSON Schema (draft 2020-12); null when the version declares none"),
        output: z.record(z.string(), z.unknown()).nullable().describe("the output's JSON Schema; null when the version declares none"),
        signals: z
          .array(z.object({ name: z.string(), schema: z.record(z.string(), z.unknown()) }))
          .describe('each declared signal with the JSON Schema of its body'),
      }),
    ),
  }),
  "The JSON Schemas a workflow's versions declare in code, as the workers catalogued them in the data plane (the console's run form and signal editor are built from them).",
);
