import { CairnError, ErrorCodes, createLogger, isId, newId, type Logger } from '@cairn/common';
import type { PayloadStore } from '@cairn/payload-store';
import { RunStatus, type RunInfo } from '@cairn/proto';
import { LogController, fastify, type FastifyError, type FastifyRequest } from 'fastify';
import { TokenSet } from './auth.js';
import type { GatewayConfig } from './config.js';
import type { ControlPlane } from './control-plane.js';
import { errorBody, errorBodyOf, httpStatus, invalid, storeError } from './errors.js';
import { readJournal } from './journal.js';
import { parseJsonBody } from './json.js';
import { IDEMPOTENCY_KEY_MAX_LENGTH, RunService, assertRunId, type ApprovalAnswer, type RunWithResult } from './runs.js';
import { StreamHub, sseEvent } from './stream.js';
import { isFinal, runStatusName, runView, stepView } from './views.js';

/** What the gateway talks to. The caller owns them and closes them after the gateway. */
export interface GatewayDeps {
  readonly store: PayloadStore;
  readonly controlPlane: ControlPlane;
  readonly logger?: Logger;
  /** Aborted when the process starts shutting down: readiness turns 503 and long polls end. */
  readonly shutdownSignal?: AbortSignal;
}

/** Every route, for the hint of a 404. */
export const ROUTES: readonly string[] = [
  'GET /healthz',
  'GET /readyz',
  'POST /v1/runs',
  'GET /v1/runs/:id',
  'GET /v1/runs/:id/result?wait=SECONDS',
  'GET /v1/runs/:id/steps',
  'GET /v1/runs/:id/journal',
  'GET /v1/runs/:id/steps/:position',
  'GET /v1/runs/:id/steps/:position/transcript',
  'GET /v1/runs/:id/stream',
  'POST /v1/runs/:id/signals/:name',
  'POST /v1/runs/:id/approvals/:name',
  'POST /v1/runs/:id/approvals/:name/approve',
  'POST /v1/runs/:id/approvals/:name/reject',
  'POST /v1/runs/:id/cancel',
  'POST /v1/payloads',
  'GET /v1/payloads/:id',
  'DELETE /v1/payloads/:id',
];

/** Long polls wait at most this long, and this long by default. */
export const MAX_WAIT_SECONDS = 60;
export const DEFAULT_WAIT_SECONDS = 30;

/** A stream client hears a comment this often when nothing else happens, so proxies keep it open. */
export const STREAM_KEEPALIVE_MS = 15_000;
/** Each WaitRun the stream endpoint makes to learn that the run ended. */
const STREAM_WAIT_MS = 25_000;
/** After the run ends, output published just before still has this long to arrive. */
const STREAM_END_GRACE_MS = 100;
/** A client that reads slower than this much buffered output is disconnected. */
const STREAM_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

const READY_TIMEOUT_MS = 2_000;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const START_FIELDS = new Set(['workflow', 'version', 'input', 'idempotencyKey', 'concurrencyKey', 'priority']);
const APPROVAL_FIELDS = new Set(['approved', 'by', 'comment', 'data', 'key']);
/** The longest `by` of an approval answer. */
export const APPROVAL_BY_MAX_LENGTH = 200;

interface RunParams {
  id: string;
}

/**
 * Builds the gateway's HTTP server (not listening yet). Payloads go to the payload store; the
 * control plane hears ids, names, sizes and digests only.
 */
export function buildGateway(config: GatewayConfig, deps: GatewayDeps) {
  const logger = deps.logger ?? createLogger('gateway', config.logLevel);
  const tokens = new TokenSet(config.tokens);
  const runs = new RunService(deps.store, deps.controlPlane, config.hasher, logger);
  const hub = new StreamHub(deps.store, logger);
  const shutdown = new AbortController();
  if (deps.shutdownSignal) {
    if (deps.shutdownSignal.aborted) shutdown.abort();
    else deps.shutdownSignal.addEventListener('abort', () => shutdown.abort(), { once: true });
  }

  const app = fastify({
    loggerInstance: logger,
    // One line per request is written in onResponse, without headers or bodies.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.maxPayloadBytes,
    // Names are up to 100 characters and ids 36; longer ones must reach the handlers to be refused clearly.
    routerOptions: { maxParamLength: 500 },
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newId();
    },
  });

  app.addHook('preClose', (done) => {
    shutdown.abort();
    done();
  });
  app.addHook('onClose', async () => {
    await hub.close();
    await runs.close();
  });

  // JSON only. Fastify's default text/plain parser would let a string body through.
  app.removeAllContentTypeParsers();
  const json = (_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void => {
    try {
      done(null, parseJsonBody(typeof body === 'string' ? body : body.toString('utf8')));
    } catch (err) {
      done(err as Error);
    }
  };
  app.addContentTypeParser('application/json', { parseAs: 'string' }, json);
  app.addContentTypeParser(/^application\/[a-z0-9.+-]+\+json$/, { parseAs: 'string' }, json);

  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const params = request.params as Partial<RunParams> | undefined;
    const route = request.routeOptions.url ?? null;
    const line = {
      method: request.method,
      route,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
      ...(params?.id ? { runId: params.id } : {}),
    };
    // Kubernetes probes every few seconds; keep them out of the info stream.
    if (route === '/healthz' || route === '/readyz') request.log.debug(line, 'request');
    else request.log.info(line, 'request');
    done();
  });

  app.setErrorHandler((err: FastifyError | CairnError, request, reply) => {
    const cairn = toCairnError(err, config);
    const status = cairn ? httpStatus(cairn) : 500;
    // Messages of Cairn errors carry names and ids, never payloads; 4xx are the caller's business.
    if (!cairn || (status >= 500 && status !== 503)) request.log.error({ err }, 'request failed');
    else if (status === 503) request.log.warn({ code: cairn.code, status, reason: cairn.rawMessage }, 'request not served: retryable');
    else request.log.info({ code: cairn.code, status }, 'request refused');
    if (status === 401) void reply.header('www-authenticate', 'Bearer realm="cairn-gateway"');
    if (!cairn) {
      return reply
        .code(500)
        .send(errorBody(ErrorCodes.INTERNAL, `internal error in the gateway (request ${request.id}); the gateway's logs have the details`));
    }
    return reply.code(status).send(errorBodyOf(cairn));
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!.slice(0, 200);
    return reply
      .code(404)
      .send(errorBody(ErrorCodes.NOT_FOUND, `no route for ${request.method} ${path}. The gateway serves: ${ROUTES.join(', ')}.`));
  });

  app.get('/healthz', () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    if (shutdown.signal.aborted) return reply.code(503).send({ status: 'shutting_down' });
    try {
      await withTimeout(deps.store.ping(), READY_TIMEOUT_MS);
      return { status: 'ok' };
    } catch {
      return reply.code(503).send({ status: 'unavailable', reason: 'the payload store (CAIRN_DP_DATABASE_URL) does not answer' });
    }
  });

  void app.register(
    (v1, _options, done) => {
      v1.addHook('onRequest', (request, _reply, next) => {
        try {
          tokens.check(request.headers.authorization);
        } catch (err) {
          next(err as CairnError);
          return;
        }
        next();
      });

      v1.post('/runs', async (request, reply) => {
        const body = startBody(request.body);
        const fromHeader = request.headers['idempotency-key'];
        if (Array.isArray(fromHeader)) throw invalid('send one Idempotency-Key header, not several');
        if (fromHeader !== undefined && body.idempotencyKey !== undefined && fromHeader !== body.idempotencyKey) {
          throw invalid('the Idempotency-Key header and the idempotencyKey field differ: send the key once');
        }
        const { created, run } = await runs.start({ ...body, idempotencyKey: body.idempotencyKey ?? fromHeader });
        return reply.code(created ? 201 : 200).send({
          runId: run.runId,
          workflow: run.workflowName,
          version: run.workflowVersion === '' ? null : run.workflowVersion,
          status: runStatusName(run.status),
          created,
        });
      });

      v1.get<{ Params: RunParams }>('/runs/:id', async (request) => {
        const { run, output, error } = await runs.get(request.params.id);
        return { run: runView(run), ...result(output, error) };
      });

      v1.get<{ Params: RunParams; Querystring: { wait?: unknown } }>('/runs/:id/result', async (request, reply) => {
        const waitMs = Math.round(waitSeconds(request.query.wait) * 1000);
        const aborted = new AbortController();
        const onShutdown = () => aborted.abort();
        shutdown.signal.addEventListener('abort', onShutdown, { once: true });
        // The caller hung up: stop waiting on its behalf.
        reply.raw.once('close', () => aborted.abort());
        try {
          const { final, run, output, error } = await runs.result(request.params.id, waitMs, aborted.signal);
          const status = runStatusName(run.status);
          if (!final) return reply.code(202).send({ runId: run.runId, status });
          return { runId: run.runId, status, ...result(output, error) };
        } finally {
          shutdown.signal.removeEventListener('abort', onShutdown);
        }
      });

      v1.get<{ Params: RunParams }>('/runs/:id/steps', async (request) => {
        const { run, steps } = await runs.describe(request.params.id);
        return { runId: run.runId, steps: steps.map(stepView) };
      });

      // The whole journal (input, seed, recorded values), read-only, for `cairn replay`.
      v1.get<{ Params: RunParams }>('/runs/:id/journal', async (request) => readJournal(deps.store, request.params.id));

      v1.get<{ Params: RunParams & { position: string } }>('/runs/:id/steps/:position', async (request) => {
        const { id, position } = request.params;
        return runs.entry(id, stepPosition(position));
      });

      v1.get<{ Params: RunParams & { position: string } }>('/runs/:id/steps/:position/transcript', async (request) => {
        const { id, position } = request.params;
        return runs.transcript(id, stepPosition(position));
      });

      // Server-Sent Events: model text as it streams, from the payload store's NOTIFY channel (data
      // plane only), until the run ends. Output published before the client connected is not replayed.
      v1.get<{ Params: RunParams }>('/runs/:id/stream', async (request, reply) => {
        const runId = request.params.id;
        assertRunId(runId);
        const started = Date.now();
        const pending: string[] = [];
        let send: (chunk: string) => void = (chunk) => void pending.push(chunk);
        // Listen first, then look at the run: a run that ends in between is caught by the wait below.
        const unsubscribe = await hub
          .subscribe(runId, (events) => {
            for (const e of events) {
              if (e.type === 'delta') send(sseEvent('delta', { position: e.position, name: e.name, attempt: e.attempt, text: e.text }));
              else send(sseEvent('model-done', { position: e.position, name: e.name, attempt: e.attempt }));
            }
          })
          .catch((err: unknown) => {
            throw storeError(err);
          });
        let status;
        try {
          status = (await runs.describe(runId)).run.status;
        } catch (err) {
          unsubscribe();
          throw err;
        }
        const stop = new AbortController();
        const onShutdown = () => stop.abort();
        shutdown.signal.addEventListener('abort', onShutdown, { once: true });
        reply.hijack();
        const raw = reply.raw;
        raw.on('close', () => stop.abort());
        raw.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
          'x-request-id': request.id,
        });
        send = (chunk) => {
          if (raw.writableEnded || raw.destroyed) return;
          if (raw.writableLength > STREAM_MAX_BUFFERED_BYTES) {
            request.log.warn({ runId }, 'stream client reads too slowly; disconnecting it');
            raw.destroy();
            stop.abort();
            return;
          }
          raw.write(chunk);
        };
        send(`retry: 3000\n: streaming run ${runId}\n\n`);
        for (const chunk of pending.splice(0)) send(chunk);
        const keepAlive = setInterval(() => send(': keep-alive\n\n'), STREAM_KEEPALIVE_MS);
        try {
          while (!isFinal(status) && !stop.signal.aborted) {
            try {
              status = (await runs.wait(runId, STREAM_WAIT_MS, stop.signal)).status;
            } catch (err) {
              if (stop.signal.aborted) break;
              // The control plane is away: local output keeps streaming; ask again shortly.
              request.log.warn({ runId, code: CairnError.from(err).code }, 'stream: could not learn the run status; retrying');
              await pause(1_000, stop.signal);
            }
          }
          if (isFinal(status) && !stop.signal.aborted) {
            await pause(STREAM_END_GRACE_MS, stop.signal);
            send(sseEvent('end', { runId, status: runStatusName(status) }));
          }
        } finally {
          clearInterval(keepAlive);
          unsubscribe();
          shutdown.signal.removeEventListener('abort', onShutdown);
          if (!raw.writableEnded) raw.end();
          request.log.info({ method: 'GET', route: '/v1/runs/:id/stream', runId, ms: Date.now() - started }, 'stream ended');
        }
      });

      v1.post<{ Params: RunParams & { name: string } }>('/runs/:id/signals/:name', async (request, reply) => {
        const { id, name } = request.params;
        const { signalId, run } = await runs.signal(id, name, request.body);
        // Without an answer from the control plane the signal was consumed by a waiting run, which was running then.
        return reply
          .code(202)
          .send({ runId: id, signal: name, signalId, status: run ? runStatusName(run.status) : 'running', ...notWaitingFor(run, name) });
      });

      // Answers to ctx.approval: a signal named approval.<name>[.<key digest>] whose body is the answer.
      const approve = async (params: RunParams & { name: string }, body: unknown, decided: boolean | undefined) => {
        const { answer, key } = approvalBody(body, decided);
        const { signalName, signalId, run } = await runs.approve(params.id, params.name, answer, key);
        return {
          runId: params.id,
          approval: params.name,
          approved: answer.approved,
          signal: signalName,
          signalId,
          status: run ? runStatusName(run.status) : 'running',
          ...notWaitingFor(run, signalName),
        };
      };
      v1.post<{ Params: RunParams & { name: string } }>('/runs/:id/approvals/:name', async (request, reply) =>
        reply.code(202).send(await approve(request.params, request.body, undefined)),
      );
      v1.post<{ Params: RunParams & { name: string } }>('/runs/:id/approvals/:name/approve', async (request, reply) =>
        reply.code(202).send(await approve(request.params, request.body, true)),
      );
      v1.post<{ Params: RunParams & { name: string } }>('/runs/:id/approvals/:name/reject', async (request, reply) =>
        reply.code(202).send(await approve(request.params, request.body, false)),
      );

      v1.post<{ Params: RunParams }>('/runs/:id/cancel', async (request, reply) => {
        const run = await runs.cancel(request.params.id);
        return reply.code(202).send({ runId: run.runId, status: runStatusName(run.status) });
      });

      // Inputs for schedules: the body is the payload (any JSON value, within the body limit). It is
      // sealed in the payload store; the control plane's schedule references it by the returned ID.
      v1.post('/payloads', async (request, reply) => {
        if (request.body === undefined) {
          throw invalid('the request body is required: send the schedule input as JSON with Content-Type: application/json');
        }
        const { payloadId, size } = await deps.store.putPayload(request.body).catch((err: unknown) => {
          throw storeError(err);
        });
        request.log.info({ payloadId, size }, 'payload stored');
        return reply.code(201).send({ payloadId, size });
      });

      v1.get<{ Params: RunParams }>('/payloads/:id', async (request) => {
        const payloadId = payloadIdParam(request.params.id);
        const stored = await deps.store.getPayload(payloadId).catch((err: unknown) => {
          throw storeError(err);
        });
        if (!stored) throw payloadNotFound(payloadId);
        return { payloadId, payload: stored.value, size: stored.size, createdAt: new Date(stored.createdAt).toISOString() };
      });

      v1.delete<{ Params: RunParams }>('/payloads/:id', async (request) => {
        const payloadId = payloadIdParam(request.params.id);
        const deleted = await deps.store.deletePayload(payloadId).catch((err: unknown) => {
          throw storeError(err);
        });
        if (!deleted) throw payloadNotFound(payloadId);
        return { payloadId, deleted: true };
      });

      done();
    },
    { prefix: '/v1' },
  );

  return app;
}

function payloadIdParam(value: string): string {
  if (!isId(value)) {
    throw invalid(
      `malformed payload id ${JSON.stringify(value.slice(0, 80))}: payload ids are lowercase UUIDs, as returned by POST /v1/payloads`,
    );
  }
  return value;
}

function payloadNotFound(payloadId: string): CairnError {
  return new CairnError(
    ErrorCodes.NOT_FOUND,
    `payload ${payloadId} not found in this data plane: it was deleted or never stored. Store it with POST /v1/payloads`,
  );
}

/** The HTTP server {@link buildGateway} returns. */
export type Gateway = ReturnType<typeof buildGateway>;

function result(output: unknown, error: RunWithResult['error']): { output?: unknown; error?: RunWithResult['error'] } {
  return { ...(output === undefined ? {} : { output }), ...(error ? { error } : {}) };
}

function startBody(body: unknown): {
  workflow: unknown;
  version?: unknown;
  input?: unknown;
  idempotencyKey?: string;
  concurrencyKey?: string;
  priority?: unknown;
} {
  const example =
    '{"workflow": "name", "version": "optional", "input": {...}, "idempotencyKey": "optional", "concurrencyKey": "optional", "priority": 50}';
  if (body === undefined) throw invalid(`the request body is required: send ${example} with Content-Type: application/json`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid(`the request body must be a JSON object: ${example}`);
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !START_FIELDS.has(k));
  if (unknown.length > 0) {
    throw invalid(
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown
        .slice(0, 5)
        .map((k) => JSON.stringify(k.slice(0, 40)))
        .join(', ')} in the request body: the fields are ${[...START_FIELDS].join(', ')} (put the run's data in input)`,
    );
  }
  const key = fields['idempotencyKey'];
  if (key !== undefined && key !== null && typeof key !== 'string') throw invalid('idempotencyKey must be a string');
  const concurrencyKey = fields['concurrencyKey'];
  if (concurrencyKey !== undefined && concurrencyKey !== null && typeof concurrencyKey !== 'string') {
    throw invalid('concurrencyKey must be a string');
  }
  const priority = fields['priority'];
  return {
    workflow: fields['workflow'],
    version: fields['version'],
    input: fields['input'],
    ...(typeof key === 'string' ? { idempotencyKey: key } : {}),
    ...(typeof concurrencyKey === 'string' ? { concurrencyKey } : {}),
    ...(priority === undefined || priority === null ? {} : { priority }),
  };
}

/**
 * Reads an approval answer. `decided` is set by the `/approve` and `/reject` routes, whose body is
 * optional and must not carry `approved`.
 */
function approvalBody(body: unknown, decided: boolean | undefined): { answer: ApprovalAnswer; key: string | number | undefined } {
  const route = decided === undefined ? '' : decided ? '/approve' : '/reject';
  const example =
    decided === undefined
      ? '{"approved": true, "by": "optional", "comment": "optional", "data": {...}, "key": "optional"}'
      : '{"by": "optional", "comment": "optional", "data": {...}, "key": "optional"} (or no body)';
  let fields: Record<string, unknown> = {};
  if (body === undefined) {
    if (decided === undefined) {
      throw invalid(`the request body is required: send ${example} with Content-Type: application/json, or use .../approve or .../reject`);
    }
  } else if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid(`the request body must be a JSON object: ${example}`);
  } else {
    fields = body as Record<string, unknown>;
  }
  const unknown = Object.keys(fields).filter((k) => !APPROVAL_FIELDS.has(k));
  if (unknown.length > 0) {
    throw invalid(
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown
        .slice(0, 5)
        .map((k) => JSON.stringify(k.slice(0, 40)))
        .join(', ')} in the approval: the fields are approved, by, comment, data and key (put anything else in data)`,
    );
  }
  let approved: boolean;
  if (decided !== undefined) {
    if (fields['approved'] !== undefined) {
      throw invalid(
        `do not send approved to .../approvals/:name${route}: the route decides. Send {"approved": …} to POST /v1/runs/:id/approvals/:name instead`,
      );
    }
    approved = decided;
  } else {
    const value = fields['approved'];
    if (typeof value !== 'boolean') {
      throw invalid(`approved is required and must be true or false (got ${value === undefined ? 'nothing' : typeof value}): ${example}`);
    }
    approved = value;
  }
  const by = fields['by'] ?? undefined;
  if (by !== undefined && (typeof by !== 'string' || by.length === 0 || by.length > APPROVAL_BY_MAX_LENGTH)) {
    throw invalid(`by must be a string of 1 to ${APPROVAL_BY_MAX_LENGTH} characters naming who answers`);
  }
  const comment = fields['comment'] ?? undefined;
  if (comment !== undefined && typeof comment !== 'string') throw invalid('comment must be a string');
  const key = fields['key'] ?? undefined;
  if (key !== undefined) {
    const ok =
      (typeof key === 'string' && key.length > 0 && key.length <= IDEMPOTENCY_KEY_MAX_LENGTH) ||
      (typeof key === 'number' && Number.isFinite(key));
    if (!ok) {
      throw invalid(
        `key must be the key the workflow gave ctx.approval: a string of 1 to ${IDEMPOTENCY_KEY_MAX_LENGTH} characters or a number`,
      );
    }
  }
  const data = fields['data'];
  return {
    answer: {
      approved,
      ...(by === undefined ? {} : { by }),
      ...(comment === undefined ? {} : { comment }),
      ...(data === undefined ? {} : { data }),
    },
    key,
  };
}

function stepPosition(text: string): number {
  if (!/^\d{1,9}$/.test(text)) {
    throw invalid(`step position ${JSON.stringify(text.slice(0, 40))} is not a whole number: positions count from 0`);
  }
  return Number(text);
}

/**
 * `waiting: false` and the signal the run waits for instead (null: none, it sleeps or waits for a
 * child), when the control plane answered that the run is suspended on something else: the signal
 * is kept until a wait for its name consumes it, which a caller may not expect. Nothing is added
 * when the run is queued or running (its code may ask for the name any moment) or was woken by it.
 */
function notWaitingFor(run: RunInfo | undefined, name: string): { waiting?: false; waitingFor?: string | null } {
  if (run?.status !== RunStatus.SUSPENDED || run.waitingSignal === name) return {};
  return { waiting: false, waitingFor: run.waitingSignal === '' ? null : run.waitingSignal };
}

/** Waits `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function waitSeconds(value: unknown): number {
  if (value === undefined) return DEFAULT_WAIT_SECONDS;
  const text = typeof value === 'string' ? value : '';
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(seconds >= 0 && seconds <= MAX_WAIT_SECONDS)) {
    throw invalid(`wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS} (default ${DEFAULT_WAIT_SECONDS})`);
  }
  return seconds;
}

/** Fastify's own errors (body parsing, limits) as Cairn errors; undefined for anything unexpected. */
function toCairnError(err: FastifyError | CairnError, config: GatewayConfig): CairnError | undefined {
  if (err instanceof CairnError) return err;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new CairnError(
        ErrorCodes.PAYLOAD_TOO_LARGE,
        `the request body is larger than this gateway's limit of ${config.maxPayloadBytes} bytes. Send a smaller payload ` +
          '(keep large files out of run inputs and pass a reference instead), or raise CAIRN_GATEWAY_MAX_PAYLOAD_BYTES on the gateway.',
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new CairnError(
        ErrorCodes.UNSUPPORTED_MEDIA_TYPE,
        'the request body must be JSON: send it with the header "Content-Type: application/json"',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return invalid('the request body is shorter or longer than its Content-Length header says');
    default:
      break;
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return invalid(`the request could not be read: ${err.message}`);
  }
  return undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
