import { createHash, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type * as grpc from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import {
  CREDENTIAL_PREFIX_LENGTH,
  CairnError,
  CredentialThrottle,
  ErrorCodes,
  credentialThrottled,
  isId,
  type Logger,
} from '@cairn/common';
import { ErrorCode, GatewayService } from '@cairn/proto';
import { ROOT_CONTEXT, type Context, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { errorSummary } from '../db/database.js';
import type { Run, StepReportInput } from '../domain.js';
import type { OutcomeResult, SweepResult, WorkerOutcome } from '../dispatch/outcomes.js';
import { SessionRegistry } from '../dispatch/session-registry.js';
import type { WorkerSession } from '../dispatch/worker-session.js';
import { LOGGER } from '../tokens.js';
import { MetricsRepository } from './metrics.repository.js';
import { Metrics } from './metrics.js';
import {
  SpanKind,
  SpanStatusCode,
  controlPlaneTracer,
  flushGlobalProvider,
  traceparentOf,
  type Attributes,
  type Span,
  type SpanContext,
} from './tracing.js';

/** What the HTTP hooks know about a request (a Fastify request is one). */
export interface HttpRequestInfo {
  readonly id: string;
  readonly method: string;
  readonly routeOptions: { readonly url?: string | undefined };
}

type UnaryHandler = grpc.handleUnaryCall<Buffer, unknown>;

// Probes and scrapes are polled constantly; they are measured, but not traced.
const UNTRACED_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);
const CAIRN_CODE = /^\[(CAIRN-\d{4})\]/;
const MAX_REMEMBERED_DISPATCHES = 10_000;
const GRPC_OK = 0;
// gRPC status → the CAIRN code an error without one is counted under.
const GRPC_FALLBACK_CODE: Partial<Record<number, string>> = {
  3: ErrorCodes.INVALID_ARGUMENT,
  5: ErrorCodes.NOT_FOUND,
  14: ErrorCodes.UNAVAILABLE,
  16: ErrorCodes.UNAUTHENTICATED,
};

/**
 * Traces (OTLP) and Prometheus metrics of the control plane. Every attribute and label is an ID, a
 * name written in code, a status, a closed code, a count or a time: this class is handed nothing
 * else, so nothing else can reach a collector or a scrape.
 */
@Injectable()
export class Telemetry {
  readonly metrics = new Metrics();
  /** The tracer of the process's global provider, when tracing is configured (main.ts starts the SDK). */
  private readonly tracing: { readonly tracer: Tracer } | null;
  /** `runId epoch` → the dispatch span, so the outcome span links to it. Bounded. */
  private readonly dispatches = new Map<string, SpanContext>();
  private readonly httpSpans = new WeakMap<object, { span: Span | undefined; errorCode: string | null }>();
  private readonly metricsTokenDigest: Buffer | null;

  constructor(
    @Inject(CONFIG) config: ControlPlaneConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(SessionRegistry) private readonly registry: SessionRegistry,
    @Inject(MetricsRepository) private readonly repository: MetricsRepository,
    @Inject(CredentialThrottle) private readonly throttle: CredentialThrottle,
  ) {
    this.tracing = config.telemetry.tracing.enabled ? { tracer: controlPlaneTracer() } : null;
    const token = config.telemetry.metricsToken;
    this.metricsTokenDigest = token === null ? null : digest(token);
  }

  get tracingEnabled(): boolean {
    return this.tracing !== null;
  }

  // ---- REST ----------------------------------------------------------------------------------

  /** A REST request was routed (Fastify `onRequest`). */
  httpStarted(request: HttpRequestInfo): void {
    const route = routeOf(request);
    const span = UNTRACED_ROUTES.has(route)
      ? undefined
      : this.tracing?.tracer.startSpan(`${request.method} ${route}`, {
          kind: SpanKind.SERVER,
          attributes: { 'http.request.method': request.method, 'http.route': route, 'cairn.request_id': request.id },
        });
    this.httpSpans.set(request, { span, errorCode: null });
  }

  /**
   * The response body is about to be sent (Fastify `onSend`): an error body's CAIRN code is noted
   * for the error counter. Only the code is read; the message is never kept.
   */
  httpSending(request: HttpRequestInfo, statusCode: number, payload: unknown): void {
    if (statusCode < 400 || typeof payload !== 'string') return;
    const state = this.httpSpans.get(request);
    if (!state) return;
    try {
      const code = (JSON.parse(payload) as { error?: { code?: unknown } }).error?.code;
      state.errorCode = typeof code === 'string' && /^CAIRN-\d{4}$/.test(code) ? code : ErrorCodes.INTERNAL;
    } catch {
      state.errorCode = ErrorCodes.INTERNAL;
    }
  }

  /** The response was sent (Fastify `onResponse`). */
  httpEnded(request: HttpRequestInfo, statusCode: number, elapsedMs: number): void {
    const route = routeOf(request);
    const state = this.httpSpans.get(request);
    this.httpSpans.delete(request);
    const errorCode = state?.errorCode ?? (statusCode >= 400 ? ErrorCodes.INTERNAL : null);
    this.metrics.httpRequests.observe({ method: request.method, route, status_code: String(statusCode) }, elapsedMs / 1000);
    if (errorCode !== null) this.metrics.apiErrors.inc({ api: 'rest', code: errorCode });
    const span = state?.span;
    if (!span) return;
    span.setAttribute('http.response.status_code', statusCode);
    if (errorCode !== null) span.setAttribute('cairn.error.code', errorCode);
    if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }

  // ---- gRPC (GatewayService) -----------------------------------------------------------------

  /** Wraps the GatewayService handlers: a span and a duration per call, errors counted by CAIRN code. */
  gatewayHandlers(handlers: Record<string, UnaryHandler>): Record<string, UnaryHandler> {
    const out: Record<string, UnaryHandler> = {};
    for (const [key, handler] of Object.entries(handlers)) {
      const method = (GatewayService.method as Record<string, { name: string } | undefined>)[key]?.name ?? key;
      out[key] = (call, callback) => {
        const started = performance.now();
        const span = this.tracing?.tracer.startSpan(
          `${GatewayService.typeName}/${method}`,
          {
            kind: SpanKind.SERVER,
            attributes: { 'rpc.system': 'grpc', 'rpc.service': GatewayService.typeName, 'rpc.method': method },
          },
          callerContext(call.metadata),
        );
        handler(call, (error, value, trailer, flags) => {
          try {
            this.gatewayCallEnded(method, span, started, error, value);
          } catch (err) {
            this.logger.warn({ err: errorSummary(err) }, 'could not record a gateway call');
          }
          callback(error, value, trailer, flags);
        });
      };
    }
    return out;
  }

  private gatewayCallEnded(method: string, span: Span | undefined, started: number, error: unknown, value: unknown): void {
    const status = error ? statusCodeOf(error) : GRPC_OK;
    this.metrics.grpcRequests.observe({ method, grpc_status: String(status) }, (performance.now() - started) / 1000);
    let code: string | null = null;
    if (error) {
      const details = (error as { details?: unknown }).details;
      code = (typeof details === 'string' ? CAIRN_CODE.exec(details)?.[1] : undefined) ?? GRPC_FALLBACK_CODE[status] ?? ErrorCodes.INTERNAL;
      this.metrics.apiErrors.inc({ api: 'grpc', code });
    }
    if (!span) return;
    span.setAttribute('rpc.grpc.status_code', status);
    if (code !== null) span.setAttribute('cairn.error.code', code);
    const run = (value as { run?: { runId?: unknown; workflowName?: unknown; workflowVersion?: unknown; status?: unknown } } | null)?.run;
    if (run && typeof run.runId === 'string' && isId(run.runId)) {
      span.setAttributes(runAttributes(run.runId, run.workflowName, run.workflowVersion));
      const created = (value as { created?: unknown }).created;
      if (typeof created === 'boolean') span.setAttribute('cairn.run.created', created);
    }
    if (status !== GRPC_OK && code === ErrorCodes.INTERNAL) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }

  // ---- dispatch, outcomes, steps, sweeps -----------------------------------------------------

  /**
   * A claimed run is about to be pushed to `session`: records the dispatch latency and a dispatch
   * span (from the time the run was queued to now), and returns the span's `traceparent` for the
   * RunTask ('' when tracing is off).
   */
  dispatched(run: Run, session: WorkerSession): string {
    const now = Date.now();
    const reason = run.wakeReason ?? 'start';
    const queuedAt = run.queuedAt?.getTime() ?? now;
    // The database's clock stamps queued_at; a small skew against ours must not go negative.
    this.metrics.dispatchLatency.observe({ wake_reason: reason }, Math.max(0, now - queuedAt) / 1000);
    if (!this.tracing) return '';
    const span = this.tracing.tracer.startSpan('cairn.dispatch', {
      kind: SpanKind.PRODUCER,
      startTime: Math.min(queuedAt, now),
      attributes: {
        ...runAttributes(run.id, run.workflowName, run.workflowVersion),
        'cairn.run.epoch': run.epoch,
        'cairn.task_queue': run.taskQueue,
        'cairn.wake_reason': reason,
        'cairn.run.dispatch_count': run.dispatchCount,
        'cairn.data_plane_id': run.dataPlaneId,
        'cairn.worker_id': session.workerId,
        'cairn.session_id': session.id,
      },
    });
    span.end(now);
    const context = span.spanContext();
    this.remember(`${run.id} ${run.epoch}`, context);
    return traceparentOf(context);
  }

  /** Applies a worker's run outcome under a span (linked to the run's dispatch span) and counts run ends. */
  async traceOutcome(dataPlaneId: string, outcome: WorkerOutcome, apply: () => Promise<OutcomeResult>): Promise<OutcomeResult> {
    const { runId, epoch } = outcome.lease;
    const dispatchKey = `${runId} ${epoch}`;
    const dispatch = this.dispatches.get(dispatchKey);
    const span = this.tracing?.tracer.startSpan('cairn.run.outcome', {
      kind: SpanKind.CONSUMER,
      attributes: {
        'cairn.run_id': runId,
        'cairn.run.epoch': epoch,
        'cairn.data_plane_id': dataPlaneId,
        'cairn.run.outcome': outcome.kind,
        ...(outcome.kind === 'failed' ? { 'cairn.run.error_code': errorCodeName(outcome.errorCode) } : {}),
      },
      ...(dispatch ? { links: [{ context: dispatch }] } : {}),
    });
    try {
      const result = await apply();
      if (result.kind === 'applied') {
        const run = result.run;
        this.dispatches.delete(dispatchKey);
        if (run.status === 'completed' || run.status === 'failed' || run.status === 'cancelled') {
          this.metrics.runsEnded.inc({ status: run.status });
        }
        if (run.status === 'failed') this.metrics.runFailures.inc({ error_code: errorCodeName(run.errorCode) });
        span?.setAttributes({ ...runAttributes(run.id, run.workflowName, run.workflowVersion), 'cairn.run.status': run.status });
      }
      span?.setAttribute('cairn.outcome.result', result.kind);
      return result;
    } catch (error) {
      span?.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span?.end();
    }
  }

  /**
   * Counts step attempts reaching a final status. Only live reports count: those of the epoch the
   * reporting session holds the run under. The journal a worker re-reports when it picks a run up
   * again carries the epochs it was written under, so history is not counted twice.
   */
  stepReports(reports: readonly StepReportInput[], unknownRuns: readonly string[], session: WorkerSession | null): void {
    if (!session) return;
    const unknown = new Set(unknownRuns);
    for (const report of reports) {
      if (report.status !== 'completed' && report.status !== 'failed') continue;
      if (unknown.has(report.runId) || session.leases.get(report.runId) !== report.epoch) continue;
      this.metrics.stepsFinished.inc({ kind: report.kind, status: report.status });
    }
  }

  /** Runs one sweeper pass under a span with what it requeued. */
  async traceSweep(sweep: () => Promise<SweepResult>, inGracePeriod: boolean): Promise<SweepResult> {
    const span = this.tracing?.tracer.startSpan('cairn.sweep', {
      kind: SpanKind.INTERNAL,
      attributes: { 'cairn.sweep.in_grace_period': inGracePeriod },
    });
    try {
      const result = await sweep();
      this.metrics.sweepPasses.inc({ result: 'ok' });
      this.metrics.sweepRequeued.inc({ reason: 'lease_expired' }, result.expired);
      this.metrics.sweepRequeued.inc({ reason: 'timer_due' }, result.woken);
      span?.setAttributes({
        'cairn.sweep.expired': result.expired,
        'cairn.sweep.woken': result.woken,
        'cairn.sweep.timed_out': result.timedOut,
      });
      return result;
    } catch (error) {
      this.metrics.sweepPasses.inc({ result: 'error' });
      span?.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span?.end();
    }
  }

  /** One timer pass (due timers queued when the earliest came due), as a span; its wake-ups counted like the sweep's. */
  async traceTimers(pass: () => Promise<number>): Promise<number> {
    const span = this.tracing?.tracer.startSpan('cairn.timers', { kind: SpanKind.INTERNAL });
    try {
      const woken = await pass();
      this.metrics.sweepRequeued.inc({ reason: 'timer_due' }, woken);
      span?.setAttributes({ 'cairn.timers.woken': woken });
      return woken;
    } catch (error) {
      span?.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span?.end();
    }
  }

  // ---- /metrics ------------------------------------------------------------------------------

  /**
   * Refuses a `/metrics` request that may not read the metrics. With `CAIRN_METRICS_TOKEN` set,
   * every port needs `Authorization: Bearer <token>` (failed tries are throttled per address like
   * any credential). Without it, the API port refuses (so metrics are never open on a public
   * port by default) and the metrics port, which is meant for a private network, serves openly.
   */
  authorizeMetrics(authorization: string | undefined, port: 'api' | 'metrics', source: string): void {
    const configured = this.metricsTokenDigest;
    if (configured === null) {
      if (port === 'metrics') return;
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'metrics on the API port need a token: set CAIRN_METRICS_TOKEN on the control plane and send Authorization: Bearer <token>, ' +
          'or serve them on a private port of their own with CAIRN_CP_METRICS_PORT',
      );
    }
    const presented = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (presented === undefined) {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'metrics need Authorization: Bearer <token>, with the token set as CAIRN_METRICS_TOKEN on the control plane',
      );
    }
    const presentedDigest = digest(presented);
    const attempt = { source, prefix: presented.slice(0, CREDENTIAL_PREFIX_LENGTH), digest: presentedDigest.toString('hex') };
    const wait = this.throttle.retryAfterMs(attempt);
    if (wait > 0) throw credentialThrottled(wait, 'metrics tokens');
    if (!timingSafeEqual(presentedDigest, configured)) {
      this.throttle.failed(attempt);
      throw new CairnError(ErrorCodes.UNAUTHENTICATED, 'the metrics token is not the one set as CAIRN_METRICS_TOKEN on the control plane');
    }
    this.throttle.succeeded(attempt);
  }

  /** The exposition text, with the database gauges read now. */
  async renderMetrics(): Promise<{ contentType: string; body: string }> {
    let counts: { queued: number; running: number } | null = null;
    try {
      counts = await this.repository.runCounts();
    } catch (error) {
      this.logger.warn({ err: errorSummary(error) }, 'metrics: could not read queue depth and leases from the database');
    }
    this.metrics.setDatabaseGauges(counts);
    this.metrics.workerSessions.set(this.registry.size);
    return { contentType: this.metrics.contentType, body: await this.metrics.render() };
  }

  /** Exports the spans still buffered (the process stops the SDK itself). */
  async shutdown(): Promise<void> {
    if (!this.tracing) return;
    await flushGlobalProvider().catch((error: unknown) =>
      this.logger.warn({ err: errorSummary(error) }, 'could not export the last spans'),
    );
  }

  private remember(key: string, context: SpanContext): void {
    this.dispatches.delete(key);
    this.dispatches.set(key, context);
    if (this.dispatches.size > MAX_REMEMBERED_DISPATCHES) {
      const oldest = this.dispatches.keys().next();
      if (!oldest.done) this.dispatches.delete(oldest.value);
    }
  }
}

// Only `traceparent` (two IDs and flags) is read from a gateway's call: `tracestate` and baggage
// could carry anything a caller chose, and nothing else of the metadata is kept.
const traceContext = new W3CTraceContextPropagator();
const metadataGetter: TextMapGetter<grpc.Metadata> = {
  keys: () => ['traceparent'],
  get: (carrier, key) => {
    if (key !== 'traceparent') return undefined;
    const value = carrier.get(key)[0];
    return typeof value === 'string' ? value : undefined;
  },
};

/** The gateway request's trace context, when its call carries a valid `traceparent`. */
function callerContext(metadata: grpc.Metadata | undefined): Context {
  return metadata ? traceContext.extract(ROOT_CONTEXT, metadata, metadataGetter) : ROOT_CONTEXT;
}

function routeOf(request: HttpRequestInfo): string {
  return request.routeOptions.url ?? 'unmatched';
}

function runAttributes(runId: string, workflowName: unknown, workflowVersion: unknown): Attributes {
  return {
    'cairn.run_id': runId,
    ...(typeof workflowName === 'string' && workflowName !== '' ? { 'cairn.workflow.name': workflowName } : {}),
    ...(typeof workflowVersion === 'string' && workflowVersion !== '' ? { 'cairn.workflow.version': workflowVersion } : {}),
  };
}

function errorCodeName(code: number | null): string {
  if (code === null) return 'UNSPECIFIED';
  return ErrorCode[code] ?? 'UNKNOWN';
}

function statusCodeOf(error: unknown): number {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : 2; // UNKNOWN
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
