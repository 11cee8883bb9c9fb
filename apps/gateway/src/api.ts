// The gateway's route table: every route with its parameters, query, headers, body and responses
// as zod schemas. The server validates requests through it (api.ts `parseRequest`), serves the
// OpenAPI document generated from it (`buildOpenApi`), and lists its routes in the hint of a 404.
import { z } from 'zod';
import { CairnError, ErrorCodes } from '@cairn/common';
import type { RequestIssue } from './errors.js';
import type { Scope } from './auth.js';
import { assertRunId } from './runs.js';
import {
  APPROVAL_NAME_MAX_LENGTH,
  ApprovalDecision,
  ApprovalRequest,
  ApprovalResponse,
  CancelResponse,
  EntryView,
  Health,
  ExportRequest,
  ExportView,
  WorkflowNamesRequest,
  WorkflowNamesView,
  WorkflowSchemasView,
  JournalVerificationView,
  JournalView,
  ReplayCheckCreated,
  ReplayCheckRequest,
  ReplayCheckView,
  NotReady,
  PayloadCreated,
  PayloadDeleted,
  PayloadView,
  RunPending,
  RunResult,
  RunWithResult,
  SignalResponse,
  StartRunRequest,
  StartRunResponse,
  StepsResponse,
  StreamDelta,
  StreamEnd,
  StreamModelDone,
  TranscriptView,
  fieldCodes,
  idField,
  lastEventIdField,
  nameField,
  positionField,
  requestSchemas,
  responseSchemas,
  waitField,
} from './schemas.js';

export type Method = 'GET' | 'POST' | 'DELETE';

/** One answer of a route. */
export interface ResponseSpec {
  readonly description: string;
  /** The JSON body; none for a response without one. */
  readonly schema?: z.ZodType;
  /** A Server-Sent Events stream instead of JSON; `events` names the schema of each event's data. */
  readonly events?: Readonly<Record<string, z.ZodType>>;
}

/** One route of the gateway. */
export interface RouteSpec {
  readonly operationId: string;
  readonly method: Method;
  /** Fastify style: `/v1/runs/:id`. */
  readonly path: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  /** Needs `Authorization: Bearer <one of CAIRN_GATEWAY_TOKENS>`. */
  readonly auth: boolean;
  /** The scope the token needs (routes with `auth`); see auth.ts. */
  readonly scope?: Scope;
  /** Shown after the path in the 404 hint, e.g. `?wait=SECONDS`. */
  readonly hint?: string;
  readonly params?: z.ZodObject;
  readonly query?: z.ZodObject;
  readonly headers?: z.ZodObject;
  readonly body?: { readonly schema: z.ZodType; readonly required: boolean; readonly description: string };
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  /** Error statuses this route answers besides 401 (auth routes), 413/415 (routes with a body) and 500. */
  readonly errors: readonly number[];
}

const route = <const R extends RouteSpec>(spec: R): R => spec;

const runIdParam = idField((value) => {
  try {
    assertRunId(value);
  } catch (err) {
    return (err as CairnError).rawMessage;
  }
  return 'malformed run id';
}, 'the run ID, as POST /v1/runs returned it');
const payloadIdParam = idField(
  (value) =>
    `malformed payload id ${JSON.stringify(value.slice(0, 80))}: payload ids are lowercase UUIDs, as returned by POST /v1/payloads`,
  'the payload ID, as POST /v1/payloads returned it',
);

const runParams = z.object({ id: runIdParam });
const stepParams = z.object({ id: runIdParam, position: positionField });
const replayCheckParams = z.object({
  id: runIdParam,
  checkId: idField(
    (value) =>
      `malformed replay check id ${JSON.stringify(value.slice(0, 80))}: check ids are lowercase UUIDs, as POST /v1/runs/{id}/replay-checks returned them`,
    'the replay check ID, as POST /v1/runs/{id}/replay-checks returned it',
  ),
});
const approvalParams = z.object({ id: runIdParam, name: nameField('approval name', APPROVAL_NAME_MAX_LENGTH) });

const approvalResponses = {
  202: {
    description: 'The answer is stored and the run told (created: false, an earlier answer with the same Idempotency-Key)',
    schema: ApprovalResponse,
  },
} as const;
/** Signals and approval answers: a repeat with the same key delivers nothing new. */
const signalHeaders = z.object({
  'idempotency-key': z
    .string({ error: 'send one Idempotency-Key header, not several' })
    .optional()
    .describe(
      'a repeat with the same key (on the same run and signal) stores and delivers nothing new and answers the same signalId, so a request that got no answer can be sent again; the key stays in the data plane',
    ),
});
const approvalErrors = [400, 404, 409, 503] as const;

/** Every route of the gateway. */
export const API = {
  health: route({
    operationId: 'health',
    method: 'GET',
    path: '/healthz',
    tag: 'probes',
    summary: 'Liveness: the process is up',
    auth: false,
    responses: { 200: { description: 'Up', schema: Health } },
    errors: [],
  }),
  ready: route({
    operationId: 'ready',
    method: 'GET',
    path: '/readyz',
    tag: 'probes',
    summary: 'Readiness: the payload store answers and the gateway is not shutting down',
    auth: false,
    responses: { 200: { description: 'Ready', schema: Health }, 503: { description: 'Not ready', schema: NotReady } },
    errors: [],
  }),
  openapi: route({
    operationId: 'openapi',
    method: 'GET',
    path: '/openapi.json',
    tag: 'meta',
    summary: 'This document',
    auth: false,
    responses: { 200: { description: 'The OpenAPI 3.1 document of the gateway', schema: z.record(z.string(), z.unknown()) } },
    errors: [],
  }),
  startRun: route({
    operationId: 'startRun',
    method: 'POST',
    path: '/v1/runs',
    tag: 'runs',
    summary: 'Start a run: the input is stored in the data plane; the control plane hears IDs, names, sizes and digests',
    auth: true,
    scope: 'start',
    headers: z.object({
      'idempotency-key': z
        .string({ error: 'send one Idempotency-Key header, not several' })
        .optional()
        .describe('same as the idempotencyKey field; send one of the two'),
    }),
    body: { schema: StartRunRequest, required: true, description: 'The workflow to start and its input' },
    responses: {
      201: { description: 'Started', schema: StartRunResponse },
      200: { description: 'An earlier run with the same idempotency key', schema: StartRunResponse },
    },
    errors: [400, 404, 409, 429, 502, 503],
  }),
  getRun: route({
    operationId: 'getRun',
    method: 'GET',
    path: '/v1/runs/:id',
    tag: 'runs',
    summary: "A run's metadata, with its output or error once it ended",
    auth: true,
    scope: 'read',
    params: runParams,
    responses: { 200: { description: 'The run', schema: RunWithResult } },
    errors: [400, 404, 503],
  }),
  runResult: route({
    operationId: 'runResult',
    method: 'GET',
    path: '/v1/runs/:id/result',
    hint: '?wait=SECONDS',
    tag: 'runs',
    summary: 'Long-poll for the end of a run: 200 with the output or error once it ended, 202 while it has not',
    auth: true,
    scope: 'read',
    params: runParams,
    query: z.object({ wait: waitField }),
    responses: {
      200: { description: 'The run ended', schema: RunResult },
      202: { description: 'Still running after the wait: ask again', schema: RunPending },
    },
    errors: [400, 404, 503],
  }),
  listSteps: route({
    operationId: 'listSteps',
    method: 'GET',
    path: '/v1/runs/:id/steps',
    tag: 'runs',
    summary: "The run's step timeline: every attempt of every durable call (metadata from the control plane)",
    auth: true,
    scope: 'read',
    params: runParams,
    responses: { 200: { description: 'The timeline', schema: StepsResponse } },
    errors: [400, 404, 503],
  }),
  getJournal: route({
    operationId: 'getJournal',
    method: 'GET',
    path: '/v1/runs/:id/journal',
    tag: 'runs',
    summary:
      "The run's whole journal (input, recorded values; the seed only for a token with the admin scope), read-only, for cairn replay",
    auth: true,
    scope: 'read',
    params: runParams,
    responses: { 200: { description: 'The journal', schema: JournalView } },
    errors: [400, 404, 503],
  }),
  requestReplayCheck: route({
    operationId: 'requestReplayCheck',
    method: 'POST',
    path: '/v1/runs/:id/replay-checks',
    tag: 'runs',
    summary:
      "Asks the workers of this data plane to replay the run's journal against another registered version of its workflow (nothing runs, nothing is written to the run): a worker that runs the version answers",
    auth: true,
    scope: 'read',
    params: runParams,
    body: { schema: ReplayCheckRequest, required: true, description: 'The version to replay against' },
    responses: { 202: { description: 'The check is asked', schema: ReplayCheckCreated } },
    errors: [400, 404, 503],
  }),
  getReplayCheck: route({
    operationId: 'getReplayCheck',
    method: 'GET',
    path: '/v1/runs/:id/replay-checks/:checkId',
    hint: '?wait=SECONDS',
    tag: 'runs',
    summary:
      'A replay check: waits up to wait seconds for its answer, then says where it is (pending, running, done with the outcome, failed, or unsupported when no worker of this data plane runs the version)',
    auth: true,
    scope: 'read',
    params: replayCheckParams,
    query: z.object({ wait: waitField }),
    responses: { 200: { description: 'The check', schema: ReplayCheckView } },
    errors: [400, 404, 503],
  }),
  verifyRun: route({
    operationId: 'verifyRun',
    method: 'GET',
    path: '/v1/runs/:id/verify',
    tag: 'runs',
    summary:
      "Recomputes the run's journal hash chain in the data plane and compares it with the hashes sealed for each entry and the head the control plane recorded (cairn runs verify)",
    auth: true,
    scope: 'read',
    params: runParams,
    responses: { 200: { description: 'The verification: ok, or the problems found', schema: JournalVerificationView } },
    errors: [400, 404, 503],
  }),
  exportRuns: route({
    operationId: 'exportRuns',
    method: 'POST',
    path: '/v1/exports',
    tag: 'runs',
    summary:
      'A signed export (JSON Lines, Ed25519) of runs and their whole journals for a long-term archive; verify it offline with cairn runs verify-export',
    auth: true,
    scope: 'read',
    body: { schema: ExportRequest, required: true, description: 'The runs to export' },
    responses: { 200: { description: 'The signed export', schema: ExportView } },
    errors: [400, 404, 409, 503],
  }),
  workflowSchemas: route({
    operationId: 'workflowSchemas',
    method: 'GET',
    path: '/v1/workflows/:name/schemas',
    tag: 'runs',
    summary:
      "The JSON Schemas of a workflow's input, output and signals, by version, as the workers catalogued them (they stay in the data plane; the control plane holds only their digests)",
    auth: true,
    scope: 'read',
    params: z.object({ name: nameField('workflow name') }),
    responses: {
      200: {
        description: "Every catalogued version's schemas (an empty list for a workflow no worker catalogued)",
        schema: WorkflowSchemasView,
      },
    },
    errors: [400, 503],
  }),
  workflowNames: route({
    operationId: 'workflowNames',
    method: 'POST',
    path: '/v1/workflow-names',
    tag: 'runs',
    summary:
      'Translates workflow names into the names the control plane holds for them, and resolves those back (in strict residency mode keyed digests, which only the data plane can compute); the CLI uses it for commands that name a workflow',
    auth: true,
    scope: 'read',
    body: { schema: WorkflowNamesRequest, required: true, description: 'The names to translate and the digests to resolve' },
    responses: { 200: { description: 'Each name with the name it crosses under', schema: WorkflowNamesView } },
    errors: [400, 503],
  }),
  getStep: route({
    operationId: 'getStep',
    method: 'GET',
    path: '/v1/runs/:id/steps/:position',
    tag: 'runs',
    summary: 'The recorded journal entry at a position, with its output or error',
    auth: true,
    scope: 'read',
    params: stepParams,
    responses: { 200: { description: 'The entry', schema: EntryView } },
    errors: [400, 404, 503],
  }),
  getTranscript: route({
    operationId: 'getTranscript',
    method: 'GET',
    path: '/v1/runs/:id/steps/:position/transcript',
    tag: 'runs',
    summary: 'The transcript of the model call at a position',
    auth: true,
    scope: 'read',
    params: stepParams,
    responses: { 200: { description: 'The transcript', schema: TranscriptView } },
    errors: [400, 404, 503],
  }),
  streamRun: route({
    operationId: 'streamRun',
    method: 'GET',
    path: '/v1/runs/:id/stream',
    tag: 'runs',
    summary: "Server-Sent Events: the run's model output as it streams, from the start or after Last-Event-ID, until the run ends",
    description:
      'Events: `delta` (model text) and `model-done` (a call is journaled), each with an `id:` that counts 1, 2, 3, … per run; ' +
      '`end` when the run has ended (then the stream closes). Without Last-Event-ID the stream starts with every event stored ' +
      'for the run; with it, after that event. Nothing is lost or repeated across a reconnect. Events are kept as long as the run.',
    auth: true,
    scope: 'read',
    params: runParams,
    query: z.object({
      lastEventId: lastEventIdField('lastEventId').describe(
        'the id of the last event already seen, for clients that cannot set the Last-Event-ID header; the header wins',
      ),
    }),
    headers: z.object({
      'last-event-id': lastEventIdField('the Last-Event-ID header').describe(
        'the id of the last event already seen: the stream resumes after it',
      ),
    }),
    responses: {
      200: {
        description: 'An event stream',
        events: {
          delta: StreamDelta,
          'model-done': StreamModelDone,
          end: StreamEnd,
        },
      },
    },
    errors: [400, 404, 503],
  }),
  signalRun: route({
    operationId: 'signalRun',
    method: 'POST',
    path: '/v1/runs/:id/signals/:name',
    tag: 'runs',
    summary: 'Send a signal: the body (any JSON, or none) is stored in the data plane; the control plane hears its name and ID',
    auth: true,
    scope: 'signal',
    params: z.object({ id: runIdParam, name: nameField('signal name') }),
    headers: signalHeaders,
    body: { schema: z.unknown(), required: false, description: 'The signal body, any JSON value; none is a signal without a value' },
    responses: {
      202: {
        description: 'Stored and the run told (created: false, an earlier signal with the same Idempotency-Key)',
        schema: SignalResponse,
      },
    },
    errors: [400, 404, 409, 503],
  }),
  answerApproval: route({
    operationId: 'answerApproval',
    method: 'POST',
    path: '/v1/runs/:id/approvals/:name',
    tag: 'runs',
    summary: 'Answer a ctx.approval: approved or not, by whom, a comment, data',
    auth: true,
    scope: 'signal',
    params: approvalParams,
    headers: signalHeaders,
    body: { schema: ApprovalRequest, required: true, description: 'The answer' },
    responses: approvalResponses,
    errors: approvalErrors,
  }),
  approve: route({
    operationId: 'approve',
    method: 'POST',
    path: '/v1/runs/:id/approvals/:name/approve',
    tag: 'runs',
    summary: 'Approve a ctx.approval',
    auth: true,
    scope: 'signal',
    params: approvalParams,
    headers: signalHeaders,
    body: { schema: ApprovalDecision.optional(), required: false, description: 'Who approves, a comment, data (all optional)' },
    responses: approvalResponses,
    errors: approvalErrors,
  }),
  reject: route({
    operationId: 'reject',
    method: 'POST',
    path: '/v1/runs/:id/approvals/:name/reject',
    tag: 'runs',
    summary: 'Reject a ctx.approval',
    auth: true,
    scope: 'signal',
    params: approvalParams,
    headers: signalHeaders,
    body: { schema: ApprovalDecision.optional(), required: false, description: 'Who rejects, a comment, data (all optional)' },
    responses: approvalResponses,
    errors: approvalErrors,
  }),
  cancelRun: route({
    operationId: 'cancelRun',
    method: 'POST',
    path: '/v1/runs/:id/cancel',
    tag: 'runs',
    summary: 'Cancel a run: a queued or suspended run ends at once, a running one is asked to stop',
    auth: true,
    scope: 'admin',
    params: runParams,
    responses: { 202: { description: 'Cancelled, or asked to cancel', schema: CancelResponse } },
    errors: [400, 404, 409, 503],
  }),
  putPayload: route({
    operationId: 'putPayload',
    method: 'POST',
    path: '/v1/payloads',
    tag: 'payloads',
    summary: "Store a payload (a schedule's or a fork's input) in the data plane; the control plane references it by ID",
    description:
      'With forkOf (and version, when the fork runs on another version than the source run), the payload is the new input of a fork of that run: ' +
      'it is checked against the input schema catalogued for the workflow version the fork will run, as a start’s input is, and refused with 400 CAIRN-1116 when it does not match.',
    auth: true,
    scope: 'admin',
    query: z.object({
      forkOf: runIdParam.optional().describe('the run a fork with this input is made of: check the payload as that fork’s input'),
      version: z.string().optional().describe('with forkOf: the workflow version the fork runs (default: the source run’s)'),
    }),
    body: {
      schema: z
        .unknown()
        .refine(
          (v) => v !== undefined,
          'the request body is required: send the schedule input as JSON with Content-Type: application/json',
        ),
      required: true,
      description: 'The payload, any JSON value',
    },
    responses: { 201: { description: 'Stored', schema: PayloadCreated } },
    errors: [400, 404, 503],
  }),
  getPayload: route({
    operationId: 'getPayload',
    method: 'GET',
    path: '/v1/payloads/:id',
    tag: 'payloads',
    summary: 'Read a stored payload',
    auth: true,
    scope: 'read',
    params: z.object({ id: payloadIdParam }),
    responses: { 200: { description: 'The payload', schema: PayloadView } },
    errors: [400, 404, 503],
  }),
  deletePayload: route({
    operationId: 'deletePayload',
    method: 'DELETE',
    path: '/v1/payloads/:id',
    tag: 'payloads',
    summary: 'Delete a stored payload',
    auth: true,
    scope: 'admin',
    params: z.object({ id: payloadIdParam }),
    responses: { 200: { description: 'Deleted', schema: PayloadDeleted } },
    errors: [400, 404, 503],
  }),
} as const;

/** Every route, as `METHOD /path`, for the hint of a 404. */
export const ROUTES: readonly string[] = Object.values(API)
  .filter((r) => r.operationId !== 'openapi')
  .map((r) => `${r.method} ${r.path}${'hint' in r ? r.hint : ''}`);

// ---- requests ---------------------------------------------------------------------------------

type Output<S> = S extends z.ZodType ? z.output<S> : undefined;

/** What a handler receives: the request's parts, validated and converted by the route's schemas. */
export interface RequestInput<R extends RouteSpec> {
  readonly params: R extends { params: infer P } ? Output<P> : undefined;
  readonly query: R extends { query: infer Q } ? Output<Q> : undefined;
  readonly headers: R extends { headers: infer H } ? Output<H> : undefined;
  readonly body: R extends { body: { schema: infer B } } ? Output<B> : undefined;
}

/** What a handler answers: one of the route's statuses with a body of that status's schema. */
export type ReplyOf<R extends RouteSpec> = {
  [S in keyof R['responses'] & number]: R['responses'][S] extends { schema: infer Z extends z.ZodType }
    ? { readonly status: S; readonly body: z.input<Z> }
    : { readonly status: S };
}[keyof R['responses'] & number];

/** The raw parts of a request, as the HTTP server parsed them. */
export interface RawRequest {
  readonly params: unknown;
  readonly query: unknown;
  readonly headers: unknown;
  readonly body: unknown;
}

const PARTS = [
  ['params', 'path'],
  ['query', 'query'],
  ['headers', 'header'],
  ['body', 'body'],
] as const;

/** The object schema behind optional and nullable wrappers, for the field lookups of error codes. */
function shapeOf(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
  return s instanceof z.ZodObject ? s.shape : undefined;
}

/** The Cairn code of a field's failure: its own (names: CAIRN-1107), else CAIRN-1101. */
function codeOf(schema: z.ZodType, issue: z.core.$ZodIssue) {
  const key = issue.path[0];
  const field = typeof key === 'string' ? shapeOf(schema)?.[key] : undefined;
  let s = field;
  while (s) {
    const code = fieldCodes.get(s);
    if (code) return code;
    s = s instanceof z.ZodOptional || s instanceof z.ZodNullable ? (s.unwrap() as z.ZodType) : undefined;
  }
  return ErrorCodes.INVALID_ARGUMENT;
}

/**
 * Validates a request's parts with the route's schemas, in the order path, query, headers, body.
 * The first part that fails is refused: CAIRN-1101 (or the field's own code, CAIRN-1107 for names)
 * with the message of its most general problem (the body as a whole before its fields), and every
 * problem of that part in `details.issues`.
 */
export function parseRequest<R extends RouteSpec>(spec: R, raw: RawRequest): RequestInput<R> {
  const out: Record<string, unknown> = { params: undefined, query: undefined, headers: undefined, body: undefined };
  for (const [part, where] of PARTS) {
    const schema = part === 'body' ? spec.body?.schema : spec[part];
    if (!schema) continue;
    const value = raw[part] ?? (part === 'body' ? undefined : {});
    const parsed = schema.safeParse(value);
    if (parsed.success) {
      out[part] = parsed.data;
      continue;
    }
    // The whole part's problem (not an object, unknown fields) first: fixing it may fix the rest.
    const issues = [...parsed.error.issues].sort((a, b) => a.path.length - b.path.length);
    const first = issues[0]!;
    const listed: RequestIssue[] = issues.map((i) => ({ in: where, path: i.path.map(String).join('.'), message: i.message }));
    throw new CairnError(codeOf(schema, first), first.message, { details: { issues: listed } });
  }
  return out as unknown as RequestInput<R>;
}

// ---- the OpenAPI document -------------------------------------------------------------------------

const COMPONENT_URI = (id: string) => `#/components/schemas/${id}`;

type JsonSchema = Record<string, unknown>;

function clean(schema: JsonSchema): JsonSchema {
  const { $schema: _schema, $id: _id, ...rest } = schema;
  return rest;
}

function components(registry: typeof requestSchemas, io: 'input' | 'output'): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(registry, { io, uri: COMPONENT_URI, unrepresentable: 'any' }) as {
    schemas: Record<string, JsonSchema>;
  };
  return Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, clean(s)]));
}

/** A `$ref` to a named schema, else the schema inline. */
function schemaOf(schema: z.ZodType, registry: typeof requestSchemas, io: 'input' | 'output'): JsonSchema {
  let s = schema;
  while (s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  const id = registry.get(s)?.id;
  if (id) return { $ref: COMPONENT_URI(id) };
  return clean(z.toJSONSchema(s, { io, unrepresentable: 'any' }));
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Bad input (CAIRN-1101, CAIRN-1102, CAIRN-1107): the message says what and how to fix it',
  401: 'No or an unknown gateway token (CAIRN-1104)',
  403: 'The gateway token lacks the scope this route needs (CAIRN-1144): the message names it',
  404: 'No such run, entry, payload or workflow (CAIRN-1105, CAIRN-1106)',
  409: 'The run has ended, or a conflict with its state (CAIRN-1108, CAIRN-1115)',
  413: "The body is over the gateway's limit (CAIRN-1103)",
  415: 'The body is not JSON (CAIRN-1109)',
  429: 'A project quota or rate limit of the control plane (CAIRN-1112, CAIRN-1113), or too many failed token attempts from this address (CAIRN-1142): wait for Retry-After',
  500: 'An internal error of the gateway (CAIRN-4000); its logs have the details',
  502: 'The control plane refused the gateway or answered out of contract (CAIRN-1001, CAIRN-5001)',
  503: 'The control plane or the payload store cannot be reached, or the gateway is shutting down (CAIRN-1110): retry',
};

/** The OpenAPI 3.1 document of the gateway, built from the route table alone (no server needed). */
export function buildOpenApi(version = '1'): JsonSchema {
  const schemas = { ...components(responseSchemas, 'output'), ...components(requestSchemas, 'input') };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of Object.values(API) as RouteSpec[]) {
    const parameters: JsonSchema[] = [];
    const add = (where: 'path' | 'query' | 'header', object: z.ZodObject | undefined) => {
      for (const [name, field] of Object.entries<z.ZodType>(object?.shape ?? {})) {
        const schema = schemaOf(field, requestSchemas, 'input');
        const { description, ...rest } = schema;
        parameters.push({
          name: where === 'header' ? headerName(name) : name,
          in: where,
          required: where === 'path' || !field.safeParse(undefined).success,
          ...(typeof description === 'string' ? { description } : {}),
          schema: rest,
        });
      }
    };
    add('path', spec.params);
    add('query', spec.query);
    add('header', spec.headers);
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries<ResponseSpec>(spec.responses)) {
      if (response.events) {
        responses[status] = {
          description: response.description,
          content: {
            'text/event-stream': {
              schema: { type: 'string', description: 'Server-Sent Events; each data line is the JSON of its event' },
            },
          },
          'x-cairn-events': Object.fromEntries(
            Object.entries(response.events).map(([event, schema]) => [event, schemaOf(schema, responseSchemas, 'output')]),
          ),
        };
      } else {
        responses[status] = {
          description: response.description,
          ...(response.schema ? { content: { 'application/json': { schema: schemaOf(response.schema, responseSchemas, 'output') } } } : {}),
        };
      }
    }
    const errors = new Set<number>([...spec.errors, 500]);
    if (spec.auth) {
      errors.add(401);
      errors.add(403);
      errors.add(429);
    }
    if (spec.body) {
      errors.add(400);
      errors.add(413);
      errors.add(415);
    }
    for (const status of [...errors].sort()) {
      responses[String(status)] = {
        description: ERROR_DESCRIPTIONS[status] ?? 'An error',
        content: { 'application/json': { schema: { $ref: COMPONENT_URI('Error') } } },
      };
    }
    const path = spec.path.replace(/:(\w+)/g, '{$1}');
    (paths[path] ??= {})[spec.method.toLowerCase()] = {
      operationId: spec.operationId,
      summary: spec.summary,
      ...(spec.description ? { description: spec.description } : {}),
      tags: [spec.tag],
      ...(spec.auth ? { 'x-cairn-scope': spec.scope } : { security: [] }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(spec.body
        ? {
            requestBody: {
              description: spec.body.description,
              required: spec.body.required,
              content: { 'application/json': { schema: schemaOf(spec.body.schema, requestSchemas, 'input') } },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Cairn gateway',
      version,
      description:
        "The data plane's HTTP API, inside the customer's cluster: start runs with their input, signal and answer approvals, " +
        'read results, step outputs, transcripts and journals, stream model output. Payloads stay in the data plane; the ' +
        'control plane hears IDs, names, sizes and digests only.',
    },
    servers: [{ url: '/' }],
    security: [{ gatewayToken: [] }],
    tags: [
      { name: 'runs', description: 'Runs: start, read, signal, approve, cancel, stream' },
      { name: 'payloads', description: 'Stored payloads: inputs of schedules' },
      { name: 'probes', description: 'Health and readiness' },
      { name: 'meta', description: 'This document' },
    ],
    components: {
      securitySchemes: {
        gatewayToken: {
          type: 'http',
          scheme: 'bearer',
          description:
            'one of the gateway tokens (CAIRN_GATEWAY_TOKENS), with the scope the operation names in x-cairn-scope: read, start, signal or admin',
        },
      },
      schemas,
    },
    paths,
  };
}

const headerName = (name: string): string =>
  name
    .split('-')
    .map((w) => (w === 'id' ? 'ID' : w.charAt(0).toUpperCase() + w.slice(1)))
    .join('-');
