import {
  CairnError,
  ErrorCodes,
  JOURNAL_EXPORT_FORMAT,
  createLogger,
  isId,
  newId,
  retryAfterSeconds,
  signJournalExport,
  sourceOf,
  type Logger,
} from '@cairn/common';
import type { CatalogueVersion, PayloadStore, SequencedStreamEvent } from '@cairn/payload-store';
import { RunStatus, create, GetBacklogRequestSchema } from '@cairn/proto';
import { context, trace, type Span } from '@opentelemetry/api';
import cors from '@fastify/cors';
import { LogController, fastify, type FastifyError, type FastifyReply, type FastifyRequest, type onRequestHookHandler } from 'fastify';
import { API, ROUTES, buildOpenApi, parseRequest, type ReplyOf, type RequestInput, type RouteSpec } from './api.js';
import { TokenSet, requireScope, type Scope } from './auth.js';
import type { GatewayConfig } from './config.js';
import type { ControlPlane } from './control-plane.js';
import { errorBody, httpStatus, invalid, issuesOf, storeError } from './errors.js';
import { exportJournal, readJournal, verifyJournal } from './journal.js';
import { parseJsonBody } from './json.js';
import { orphanSweeper } from './orphans.js';
import { signalNoticeSweeper } from './signal-notices.js';
import { readReplayCheck, requestReplayCheck } from './replay-checks.js';
import { RunService, type ApprovalAnswer, type RunWithResult, type SignalOutcome } from './runs.js';
import { DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS } from './schemas.js';
import { StreamCursor, StreamHub, sseEvent } from './stream.js';
import { GatewayMetrics, endRequestSpan, incomingContext, startRequestSpan } from './telemetry.js';
import { isFinal, runStatusName, runView, stepView, warningViews } from './views.js';

export { ROUTES, MAX_WAIT_SECONDS, DEFAULT_WAIT_SECONDS };

/** A handler took the response over (Server-Sent Events): nothing more to send. */
const HIJACKED = Symbol('hijacked');

type Handler<R extends RouteSpec> = (
  input: RequestInput<R>,
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<ReplyOf<R> | typeof HIJACKED>;

/** What the gateway talks to. The caller owns them and closes them after the gateway. */
export interface GatewayDeps {
  readonly store: PayloadStore;
  readonly controlPlane: ControlPlane;
  readonly logger?: Logger;
  /** Aborted when the process starts shutting down: readiness turns 503 and long polls end. */
  readonly shutdownSignal?: AbortSignal;
  /** The process's metrics (the control-plane connection reports into them too); a new set when absent. */
  readonly metrics?: GatewayMetrics;
}

/** A stream client hears a comment this often when nothing else happens, so proxies keep it open. */
export const STREAM_KEEPALIVE_MS = 15_000;
/** Each WaitRun the stream endpoint makes to learn that the run ended. */
const STREAM_WAIT_MS = 25_000;
/** After the run ends, output published just before still has this long to arrive. */
const STREAM_END_GRACE_MS = 100;
/** A client that reads slower than this much buffered output is disconnected. */
const STREAM_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

const READY_TIMEOUT_MS = 2_000;
/** A scrape asks the control plane for the backlog; it waits this long at most, then shows NaN. */
const BACKLOG_SCRAPE_TIMEOUT_MS = 2_000;
// Probes and scrapes are polled constantly; they are measured, but not traced.
const UNTRACED_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

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
  const runs = new RunService(deps.store, deps.controlPlane, config.hasher, logger, config.residency);
  const hub = new StreamHub(deps.store, logger);
  const metrics = deps.metrics ?? new GatewayMetrics(deps.store);
  // The span of each traced request, parented by the caller's `traceparent` when it sent one.
  const spans = new WeakMap<object, Span>();
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
    // Clients behind these proxies are told apart by X-Forwarded-For (the token throttle).
    ...(config.trustedProxies && config.trustedProxies.length > 0 ? { trustProxy: [...config.trustedProxies] } : {}),
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newId();
    },
  });

  // Retention of the payload store: applied at start and then every interval; with several
  // gateways, one applies it at a time. Only counts are logged.
  const retention = config.retention;
  let retentionTimer: NodeJS.Timeout | undefined;
  if (retention && (retention.runDays !== undefined || retention.transcriptDays !== undefined)) {
    const day = 86_400_000;
    const apply = (): void => {
      const now = Date.now();
      deps.store
        .applyRetention({
          runsEndedBefore: retention.runDays === undefined ? undefined : new Date(now - retention.runDays * day),
          transcriptsEndedBefore: retention.transcriptDays === undefined ? undefined : new Date(now - retention.transcriptDays * day),
        })
        .then(
          (done) => {
            if (done) logger.info({ ...done, runDays: retention.runDays, transcriptDays: retention.transcriptDays }, 'retention applied');
          },
          (err: unknown) =>
            logger.warn({ code: CairnError.from(err).code }, 'retention could not be applied; it is tried again next interval'),
        );
    };
    app.addHook('onReady', (done) => {
      apply();
      retentionTimer = setInterval(apply, retention.intervalMs);
      retentionTimer.unref();
      done();
    });
  }

  // Starts that never became runs (a gateway killed between storing the input and StartRun):
  // deleted once the control plane confirms it does not know them (orphans.ts).
  // And signals the control plane was not told of (SignalRun got no definite answer, or the
  // gateway died before asking): told again until it answers (signal-notices.ts).
  const sweepers = [
    config.orphanSweep && orphanSweeper(deps.store, deps.controlPlane, logger, config.orphanSweep),
    config.signalSweep && signalNoticeSweeper(deps.store, deps.controlPlane, config.hasher, logger, config.signalSweep),
  ].filter((s) => s !== undefined);
  app.addHook('onReady', (done) => {
    for (const sweeper of sweepers) sweeper.start();
    done();
  });

  app.addHook('preClose', (done) => {
    clearInterval(retentionTimer);
    shutdown.abort();
    done();
  });
  app.addHook('onClose', async () => {
    await Promise.all(sweepers.map((s) => s.stop()));
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
    const route = request.routeOptions.url ?? 'unmatched';
    if (!UNTRACED_ROUTES.has(route))
      spans.set(request, startRequestSpan(request.method, route, request.id, incomingContext(request.headers)));
    done();
  });

  // Browsers on the listed origins may call the API (a web app with @cairn/client). A preflight is
  // answered before authentication: it carries no token and reveals nothing.
  const corsOrigins = config.corsOrigins ?? [];
  if (corsOrigins.length > 0) {
    void app.register(cors, {
      origin: corsOrigins.includes('*') ? '*' : [...corsOrigins],
      methods: ['GET', 'POST', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'idempotency-key', 'last-event-id', 'x-request-id'],
      exposedHeaders: ['x-request-id'],
      maxAge: 600,
    });
  }

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
    if (route === '/healthz' || route === '/readyz' || route === '/metrics') request.log.debug(line, 'request');
    else request.log.info(line, 'request');
    metrics.httpRequests.observe(
      { method: request.method, route: route ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    const span = spans.get(request);
    if (span) {
      spans.delete(request);
      endRequestSpan(span, reply.statusCode, params?.id !== undefined && isId(params.id) ? params.id : undefined);
    }
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
    const wait = cairn ? retryAfterSeconds(cairn) : undefined;
    if (wait !== undefined) void reply.header('retry-after', String(wait));
    if (!cairn) {
      return reply
        .code(500)
        .send(errorBody(ErrorCodes.INTERNAL, `internal error in the gateway (request ${request.id}); the gateway's logs have the details`));
    }
    return reply.code(status).send(errorBody(cairn.code, cairn.rawMessage, status === 400 ? issuesOf(cairn) : undefined));
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!.slice(0, 200);
    return reply
      .code(404)
      .send(errorBody(ErrorCodes.NOT_FOUND, `no route for ${request.method} ${path}. The gateway serves: ${ROUTES.join(', ')}.`));
  });

  // The scopes of the token a request was accepted with, for handlers whose answer depends on them.
  const grantedScopes = new WeakMap<object, readonly Scope[]>();
  // Every token route: an accepted token (throttled per client address), then the route's scope.
  const auth =
    (spec: RouteSpec): onRequestHookHandler =>
    (request, _reply, next) => {
      try {
        const scopes = tokens.authenticate(request.headers.authorization, sourceOf(request.ip));
        requireScope(scopes, spec.scope ?? 'admin', `${spec.method} ${spec.path}`);
        grantedScopes.set(request, scopes);
      } catch (err) {
        next(err as CairnError);
        return;
      }
      next();
    };
  const openapi = buildOpenApi();
  // Registers a route of the table: its request is validated by the route's schemas before the handler runs.
  const route = <R extends RouteSpec>(spec: R, handler: NoInfer<Handler<R>>): void => {
    app.route({
      method: spec.method,
      url: spec.path,
      ...(spec.auth ? { onRequest: auth(spec) as never } : {}),
      handler: async (request, reply) => {
        const input = parseRequest(spec, request);
        const span = spans.get(request);
        // The handler runs in the request span's context: its calls to the control plane carry it.
        const answer = await (span
          ? context.with(trace.setSpan(context.active(), span), () => handler(input, request, reply))
          : handler(input, request, reply));
        if (answer === HIJACKED) return;
        return (reply as FastifyReply).code(answer.status).send(('body' in answer ? answer.body : undefined) as never);
      },
    });
  };

  route(API.health, () => Promise.resolve({ status: 200, body: { status: 'ok' } }));

  route(API.ready, async () => {
    if (shutdown.signal.aborted) return { status: 503, body: { status: 'shutting_down' } };
    try {
      await withTimeout(deps.store.ping(), READY_TIMEOUT_MS);
      return { status: 200, body: { status: 'ok' } };
    } catch {
      return { status: 503, body: { status: 'unavailable', reason: 'the payload store (CAIRN_DP_DATABASE_URL) does not answer' } };
    }
  });

  route(API.openapi, () => Promise.resolve({ status: 200, body: openapi }));

  // For Prometheus, beside the probes and outside the API: requests, runs started, calls to the
  // control plane, the backlog per task queue (asked of the control plane now), decrypt failures
  // and the payload store's LISTEN connection. Counts, durations and names written in code only.
  app.get('/metrics', async (_request, reply) => {
    try {
      const backlog = await deps.controlPlane.getBacklog(create(GetBacklogRequestSchema, {}), { timeoutMs: BACKLOG_SCRAPE_TIMEOUT_MS });
      metrics.setBacklog(backlog.queues);
    } catch (err) {
      logger.debug({ code: CairnError.from(err).code }, 'metrics: the backlog could not be read from the control plane');
      metrics.setBacklog(null);
    }
    metrics.controlPlaneConnected.set(deps.controlPlane.ready ? 1 : 0);
    return reply.header('content-type', metrics.contentType).send(await metrics.render(deps.store.listenerState));
  });

  route(API.startRun, async ({ body, headers }) => {
    const fromHeader = headers['idempotency-key'];
    const idempotencyKey = body.idempotencyKey ?? undefined;
    if (fromHeader !== undefined && idempotencyKey !== undefined && fromHeader !== idempotencyKey) {
      throw invalid('the Idempotency-Key header and the idempotencyKey field differ: send the key once');
    }
    const { created, run, warnings } = await runs.start({
      workflow: body.workflow,
      version: body.version,
      input: body.input,
      idempotencyKey: idempotencyKey ?? fromHeader,
      concurrencyKey: body.concurrencyKey ?? undefined,
      priority: body.priority,
    });
    metrics.runsStarted.inc({ workflow: run.workflowName, version: run.workflowVersion, result: created ? 'created' : 'existing' });
    return {
      status: created ? 201 : 200,
      body: {
        runId: run.runId,
        workflow: run.workflowName,
        version: run.workflowVersion === '' ? null : run.workflowVersion,
        status: runStatusName(run.status),
        created,
        warnings: warningViews(warnings, run),
      },
    };
  });

  route(API.getRun, async ({ params }) => {
    const { run, output, error, warnings } = await runs.get(params.id);
    return { status: 200, body: { run: runView(run), ...result(output, error), warnings: warningViews(warnings, run) } };
  });

  route(API.runResult, async ({ params, query }, _request, reply) => {
    const waitMs = Math.round((query.wait ?? DEFAULT_WAIT_SECONDS) * 1000);
    const aborted = new AbortController();
    const onShutdown = () => aborted.abort();
    shutdown.signal.addEventListener('abort', onShutdown, { once: true });
    // The caller hung up: stop waiting on its behalf.
    reply.raw.once('close', () => aborted.abort());
    try {
      const { final, run, output, error } = await runs.result(params.id, waitMs, aborted.signal);
      const status = runStatusName(run.status);
      if (!final) return { status: 202, body: { runId: run.runId, status } };
      return { status: 200, body: { runId: run.runId, status, ...result(output, error) } };
    } finally {
      shutdown.signal.removeEventListener('abort', onShutdown);
    }
  });

  route(API.listSteps, async ({ params }) => {
    const { run, steps } = await runs.describe(params.id);
    return { status: 200, body: { runId: run.runId, steps: steps.map(stepView) } };
  });

  // The whole journal (input, recorded values; the seed for admin tokens only), read-only, for `cairn replay`.
  route(API.getJournal, async ({ params }, request) => ({
    status: 200,
    body: await readJournal(deps.store, params.id, { withSeed: grantedScopes.get(request)?.includes('admin') ?? false }),
  }));

  // A signed archive of runs and their journals, with the heads the control plane recorded.
  route(API.exportRuns, async ({ body }) => {
    const key = config.exportSigningKey;
    if (!key) {
      throw new CairnError(
        ErrorCodes.EXPORT_SIGNING_DISABLED,
        'this gateway has no export signing key: set CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE to an Ed25519 private key (openssl genpkey -algorithm ed25519) and restart it',
      );
    }
    const exported = [];
    for (const runId of new Set(body.runIds)) {
      const { run } = await runs.describe(runId);
      exported.push(await exportJournal(deps.store, runId, run.journalHead));
    }
    return {
      status: 200,
      body: { format: JOURNAL_EXPORT_FORMAT, runs: exported.length, keyId: key.keyId, document: signJournalExport(exported, key) },
    };
  });

  // The journal's hash chain recomputed here, against the head the control plane recorded.
  route(API.verifyRun, async ({ params }) => {
    const { run } = await runs.describe(params.id);
    return { status: 200, body: await verifyJournal(deps.store, params.id, run.journalHead) };
  });

  // Replay checks: a worker of this data plane that runs the version replays the journal; the
  // outcome stays in the data plane (see replay-checks.ts).
  route(API.requestReplayCheck, async ({ params, body }) => ({
    status: 202,
    body: await requestReplayCheck(deps.store, params.id, body.version),
  }));

  route(API.getReplayCheck, async ({ params, query }, _request, reply) => {
    const waitMs = Math.round((query.wait ?? DEFAULT_WAIT_SECONDS) * 1000);
    const aborted = new AbortController();
    const onShutdown = () => aborted.abort();
    shutdown.signal.addEventListener('abort', onShutdown, { once: true });
    reply.raw.once('close', () => aborted.abort());
    try {
      return { status: 200, body: await readReplayCheck(deps.store, params.id, params.checkId, waitMs, aborted.signal) };
    } finally {
      shutdown.signal.removeEventListener('abort', onShutdown);
    }
  });

  route(API.workflowSchemas, async ({ params }) => {
    const versions = await deps.store.catalogue(params.name).catch((err: unknown) => {
      throw storeError(err);
    });
    const schemaOf = (v: CatalogueVersion, kind: 'input' | 'output') => v.schemas.find((s) => s.kind === kind)?.schema ?? null;
    return {
      status: 200,
      body: {
        workflow: params.name,
        versions: versions.map((v) => ({
          version: v.version,
          input: schemaOf(v, 'input'),
          output: schemaOf(v, 'output'),
          signals: v.schemas
            .filter((s) => s.kind === 'signal' && s.signalName !== undefined)
            .map((s) => ({ name: s.signalName!, schema: s.schema })),
        })),
      },
    };
  });

  route(API.workflowNames, async ({ body }) => ({
    status: 200,
    body: { residency: config.residency ?? 'standard', workflows: await runs.workflowNames(body.names ?? [], body.digests ?? []) },
  }));

  route(API.getStep, async ({ params }) => ({ status: 200, body: await runs.entry(params.id, params.position) }));

  route(API.getTranscript, async ({ params }) => ({
    status: 200,
    body: await runs.transcript(params.id, params.position),
  }));

  // Server-Sent Events: model text as it streams, from the payload store (data plane only), until
  // the run ends. Every event carries its sequence number as its id; a client that reconnects with
  // Last-Event-ID gets what came after it, read back from the store, then the live events.
  route(API.streamRun, async ({ params, query, headers }, request, reply) => {
    const runId = params.id;
    // EventSource sends the header when it reconnects, while the URL keeps the lastEventId it began with.
    const after = headers['last-event-id'] ?? query.lastEventId ?? 0;
    const started = Date.now();
    const pending: string[] = [];
    let send: (chunk: string) => void = (chunk) => void pending.push(chunk);
    const stop = new AbortController();
    const emit = (e: SequencedStreamEvent): void => {
      if (e.type === 'delta') send(sseEvent('delta', { position: e.position, name: e.name, attempt: e.attempt, text: e.text }, e.seq));
      else send(sseEvent('model-done', { position: e.position, name: e.name, attempt: e.attempt }, e.seq));
    };
    const cursor = new StreamCursor(deps.store, runId, after, emit, (err) => {
      // The client resumes after the last event it got when it reconnects: close rather than skip.
      request.log.warn({ runId, code: storeError(err).code }, 'stream: could not read stored events; closing the stream');
      stop.abort();
    });
    // Listen first, then read the backlog and look at the run: nothing committed in between is missed.
    const unsubscribe = await hub.subscribe(runId, cursor.listener).catch((err: unknown) => {
      throw storeError(err);
    });
    let status;
    try {
      status = (await runs.describe(runId)).run.status;
    } catch (err) {
      cursor.close();
      unsubscribe();
      throw err;
    }
    const onShutdown = () => stop.abort();
    shutdown.signal.addEventListener('abort', onShutdown, { once: true });
    reply.hijack();
    const raw = reply.raw;
    raw.on('close', () => stop.abort());
    raw.writeHead(200, {
      // Headers set before the hijack (CORS) still go out.
      ...(Object.fromEntries(Object.entries(reply.getHeaders()).filter(([, v]) => v !== undefined)) as Record<
        string,
        string | number | string[]
      >),
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
      await cursor.fill();
      while (!isFinal(status) && !stop.signal.aborted) {
        try {
          status = (await runs.wait(runId, STREAM_WAIT_MS, stop.signal)).status;
        } catch (err) {
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted when the client goes away, while awaiting
          if (stop.signal.aborted) break;
          // The control plane is away: local output keeps streaming; ask again shortly.
          request.log.warn({ runId, code: CairnError.from(err).code }, 'stream: could not learn the run status; retrying');
          await pause(1_000, stop.signal);
        }
      }
      if (isFinal(status) && !stop.signal.aborted) {
        // Output published just before the end may still be on its way: read what is stored last.
        await pause(STREAM_END_GRACE_MS, stop.signal);
        await cursor.fill();
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted when the client goes away, while awaiting
        if (!stop.signal.aborted) send(sseEvent('end', { runId, status: runStatusName(status) }));
      }
    } finally {
      clearInterval(keepAlive);
      cursor.close();
      unsubscribe();
      shutdown.signal.removeEventListener('abort', onShutdown);
      if (!raw.writableEnded) raw.end();
      request.log.info(
        { method: 'GET', route: '/v1/runs/:id/stream', runId, after, last: cursor.last, ms: Date.now() - started },
        'stream ended',
      );
    }
    return HIJACKED;
  });

  route(API.signalRun, async ({ params, body, headers }) => {
    const { id, name } = params;
    const sent = await runs.signal(id, name, body, headers['idempotency-key']);
    return {
      status: 202,
      body: { runId: id, signal: name, signalId: sent.signalId, created: sent.created, ...signalState(sent, name, config.residency) },
    };
  });

  // Answers to ctx.approval: a signal named approval.<name>[.<key digest>] whose body is the answer.
  const approve = async (
    params: RunParams & { name: string },
    answer: ApprovalAnswer,
    key: string | number | undefined,
    idempotencyKey: string | undefined,
  ) => {
    const sent = await runs.approve(params.id, params.name, answer, key, idempotencyKey);
    return {
      status: 202 as const,
      body: {
        runId: params.id,
        approval: params.name,
        approved: answer.approved,
        signal: sent.signalName,
        signalId: sent.signalId,
        created: sent.created,
        ...signalState(sent, sent.signalName, config.residency),
      },
    };
  };
  route(API.answerApproval, ({ params, body, headers }) =>
    approve(params, approvalAnswer(body.approved, body), body.key ?? undefined, headers['idempotency-key']),
  );
  route(API.approve, ({ params, body, headers }) =>
    approve(params, approvalAnswer(true, body ?? {}), body?.key ?? undefined, headers['idempotency-key']),
  );
  route(API.reject, ({ params, body, headers }) =>
    approve(params, approvalAnswer(false, body ?? {}), body?.key ?? undefined, headers['idempotency-key']),
  );

  route(API.cancelRun, async ({ params }) => {
    const run = await runs.cancel(params.id);
    return { status: 202, body: { runId: run.runId, status: runStatusName(run.status) } };
  });

  // Inputs for schedules and forks: the body is the payload (any JSON value, within the body limit).
  // It is sealed in the payload store; the control plane's schedule or fork references it by the
  // returned ID. A fork's input (forkOf) is checked against its input schema first, like a start's.
  route(API.putPayload, async ({ body, query }, request) => {
    if (query.forkOf !== undefined) await runs.checkForkInput(query.forkOf, query.version, body);
    const { payloadId, size } = await deps.store.putPayload(body).catch((err: unknown) => {
      throw storeError(err);
    });
    request.log.info({ payloadId, size }, 'payload stored');
    return { status: 201, body: { payloadId, size } };
  });

  route(API.getPayload, async ({ params }) => {
    const payloadId = params.id;
    const stored = await deps.store.getPayload(payloadId).catch((err: unknown) => {
      throw storeError(err);
    });
    if (!stored) throw payloadNotFound(payloadId);
    return {
      status: 200,
      body: { payloadId, payload: stored.value, size: stored.size, createdAt: new Date(stored.createdAt).toISOString() },
    };
  });

  route(API.deletePayload, async ({ params }) => {
    const payloadId = params.id;
    const deleted = await deps.store.deletePayload(payloadId).catch((err: unknown) => {
      throw storeError(err);
    });
    if (!deleted) throw payloadNotFound(payloadId);
    return { status: 200, body: { payloadId, deleted: true } };
  });

  return app;
}

function payloadNotFound(payloadId: string): CairnError {
  return new CairnError(
    ErrorCodes.NOT_FOUND,
    `payload ${payloadId} not found in this data plane: it was deleted or never stored. Store it with POST /v1/payloads`,
  );
}

/** An approval answer as the workflow receives it: the fields given, no nulls. */
function approvalAnswer(
  approved: boolean,
  fields: { by?: string | null | undefined; comment?: string | null | undefined; data?: unknown },
): ApprovalAnswer {
  return {
    approved,
    ...(fields.by === undefined || fields.by === null ? {} : { by: fields.by }),
    ...(fields.comment === undefined || fields.comment === null ? {} : { comment: fields.comment }),
    ...(fields.data === undefined ? {} : { data: fields.data }),
  };
}

/** The HTTP server {@link buildGateway} returns. */
export type Gateway = ReturnType<typeof buildGateway>;

function result(output: unknown, error: RunWithResult['error']): { output?: unknown; error?: RunWithResult['error'] } {
  return { ...(output === undefined ? {} : { output }), ...(error ? { error } : {}) };
}

/**
 * `waiting: false` and the signal the run waits for instead (null: none, it sleeps or waits for a
 * child), when the control plane answered that the run is suspended on something else: the signal
 * is kept until a wait for its name consumes it, which a caller may not expect. Nothing is added
 * when the run is queued or running (its code may ask for the name any moment) or was woken by it.
 * In strict residency mode the control plane does not know which signal a run waits for, so nothing
 * is added.
 */
/**
 * The run's status as the control plane answered the signal, and whether the run waits for
 * something else. Pending: the control plane did not answer, and the status is unknown. No run
 * otherwise: a waiting run consumed the signal, so it was running.
 */
function signalState(
  sent: SignalOutcome,
  name: string,
  residency: GatewayConfig['residency'],
): { status: ReturnType<typeof runStatusName> | null; pending?: true; waiting?: false; waitingFor?: string | null } {
  if (sent.pending) return { status: null, pending: true };
  const run = sent.run;
  const status = run ? runStatusName(run.status) : 'running';
  if (run?.status !== RunStatus.SUSPENDED || run.waitingSignal === name || residency === 'strict') return { status };
  return { status, waiting: false, waitingFor: run.waitingSignal === '' ? null : run.waitingSignal };
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
