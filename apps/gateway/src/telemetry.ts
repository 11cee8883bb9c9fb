import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { listenerMetrics, type ListenerState } from '@cairn/payload-store';

/** How the gateway process traces (see `tracingShape` in config.ts). */
export interface GatewayTracingConfig {
  /** On when an exporter is configured and `OTEL_SDK_DISABLED` is not true. */
  readonly enabled: boolean;
  /** `CAIRN_DP_OTLP_TRACES_ENDPOINT`: an OTLP/HTTP (JSON) exporter to this URL; null lets the SDK build its exporter from `OTEL_*`. */
  readonly endpoint: string | null;
}

/**
 * Starts `@opentelemetry/sdk-node` for the gateway process and registers it globally; null when
 * tracing is off. Sampler, resource, protocol, headers and batching come from the standard `OTEL_*`
 * variables. Only traces: no instrumentation (it would record URLs with their queries and
 * headers), no metrics (Prometheus serves those), no logs. `service.name` defaults to
 * `cairn-gateway`.
 */
export function startGatewayTracing(config: GatewayTracingConfig): { shutdown(): Promise<void> } | null {
  if (!config.enabled) return null;
  const sdk = new NodeSDK({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': 'cairn-gateway' })),
    ...(config.endpoint === null ? {} : { traceExporter: new OTLPTraceExporter({ url: config.endpoint }) }),
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

// Only `traceparent`/`tracestate` are read and written: baggage a caller sends could hold anything,
// and it is not passed on to the control plane.
const traceContext = new W3CTraceContextPropagator();
const headerGetter: TextMapGetter<Record<string, string | string[] | undefined>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};
const recordSetter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/** The trace context of a request's `traceparent` (and `tracestate`) headers, or the root context. */
export function incomingContext(headers: Record<string, string | string[] | undefined>): Context {
  return traceContext.extract(ROOT_CONTEXT, headers, headerGetter);
}

/** A traced call to the control plane: the metadata that carries its span, and how to end it. */
export interface ControlPlaneCallTrace {
  /** `traceparent` of the call's span (empty when the call is not traced). */
  readonly headers: Readonly<Record<string, string>>;
  end(code: string): void;
}

const UNTRACED_CALL: ControlPlaneCallTrace = { headers: {}, end: () => undefined };

/**
 * A client span for a call to the control plane made while serving a request, whose `traceparent`
 * the call carries so the control plane's span of it is its child. The span starts a trace of its
 * own, linked to the request span: a caller's trace ID (which the caller chooses, like its
 * `tracestate` and baggage) stays in the data plane, and only IDs this gateway generated cross.
 * Calls made outside a request (a scrape, the scaler) are not traced here.
 */
export function traceControlPlaneCall(method: string): ControlPlaneCallTrace {
  const request = trace.getSpan(context.active());
  if (!request?.isRecording()) return UNTRACED_CALL;
  const span = trace.getTracer('@cairn/gateway').startSpan(`cairn.gateway.v1.GatewayService/${method}`, {
    kind: SpanKind.CLIENT,
    root: true,
    links: [{ context: request.spanContext() }],
    attributes: { 'rpc.system': 'grpc', 'rpc.service': 'cairn.gateway.v1.GatewayService', 'rpc.method': method },
  });
  const headers: Record<string, string> = {};
  traceContext.inject(trace.setSpan(ROOT_CONTEXT, span), headers, recordSetter);
  delete headers['tracestate'];
  return {
    headers,
    end(code) {
      span.setAttribute('rpc.grpc.status_code_name', code);
      if (code !== 'OK') span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

/** A server span for a request, parented by the caller's `traceparent` when it sent one. */
export function startRequestSpan(method: string, route: string, requestId: string, parent: Context): Span {
  return trace.getTracer('@cairn/gateway').startSpan(
    `${method} ${route}`,
    {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': method, 'http.route': route, 'cairn.request_id': requestId },
    },
    parent,
  );
}

/** Ends a request span with its status code (and the CAIRN code of an error answer). */
export function endRequestSpan(span: Span, statusCode: number, runId: string | undefined): void {
  span.setAttribute('http.response.status_code', statusCode);
  if (runId !== undefined) span.setAttribute('cairn.run_id', runId);
  if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/**
 * The gateway's Prometheus metrics, in a registry of its own. Labels are route templates,
 * methods, status codes, gRPC method names and codes, names written in code (workflow, task queue)
 * and closed states: never run IDs, keys, payloads or error messages.
 */
export class GatewayMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new Histogram({
    name: 'cairn_gateway_http_request_duration_seconds',
    help: 'HTTP requests by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly runsStarted = new Counter({
    name: 'cairn_gateway_runs_started_total',
    help: 'Runs started through the gateway, by workflow and version (created: a new run; existing: an idempotent repeat).',
    labelNames: ['workflow', 'version', 'result'] as const,
    registers: [this.registry],
  });

  readonly controlPlaneCalls = new Histogram({
    name: 'cairn_gateway_control_plane_call_duration_seconds',
    help: 'Calls to the control plane (GatewayService), by method and gRPC status code name.',
    labelNames: ['method', 'code'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly controlPlaneConnected = new Gauge({
    name: 'cairn_gateway_control_plane_connected',
    help: 'Whether the gRPC channel to the control plane is connected (1) or not (0), at scrape time.',
    registers: [this.registry],
  });

  readonly controlPlaneReconnects = new Counter({
    name: 'cairn_gateway_control_plane_reconnects_total',
    help: 'Times the gRPC channel to the control plane became ready again after it had been lost.',
    registers: [this.registry],
  });

  readonly backlogAge = new Gauge({
    name: 'cairn_task_queue_oldest_queued_age_seconds',
    help: 'How long the longest-queued run of each task queue has waited for a worker (0 with none queued); read at scrape time (NaN when the control plane did not answer).',
    labelNames: ['task_queue'] as const,
    registers: [this.registry],
  });

  readonly taskQueueRuns = new Gauge({
    name: 'cairn_task_queue_runs',
    help: 'Runs of this data plane per task queue and state (queued, running, suspended), as the control plane counts them; read at scrape time (NaN when the control plane did not answer).',
    labelNames: ['task_queue', 'state'] as const,
    registers: [this.registry],
  });

  #queues: Array<{ task_queue: string; state: string }> = [];

  constructor(payloadStore: { readonly decryptFailures: number }) {
    collectDefaultMetrics({ register: this.registry });
    this.controlPlaneReconnects.inc(0);
    new Counter({
      name: 'cairn_dp_decrypt_failures_total',
      help: 'Values this process could not open with its keys (unknown key ID, wrong key or damaged value): a key misconfiguration or tampering.',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(payloadStore.decryptFailures);
      },
    });
  }

  /** Sets the per-queue gauges from a backlog answer, or marks them unknown. */
  setBacklog(
    queues: ReadonlyArray<{ taskQueue: string; queued: bigint; running: bigint; suspended: bigint; oldestQueuedAgeMs: bigint }> | null,
  ): void {
    if (queues === null) {
      // A stale count would look like a healthy backlog: the queues seen last read as unknown.
      for (const labels of this.#queues) {
        this.taskQueueRuns.set(labels, Number.NaN);
        this.backlogAge.set({ task_queue: labels.task_queue }, Number.NaN);
      }
      return;
    }
    this.taskQueueRuns.reset();
    this.backlogAge.reset();
    this.#queues = [];
    for (const q of queues) {
      this.backlogAge.set({ task_queue: q.taskQueue }, Number(q.oldestQueuedAgeMs) / 1000);
      for (const [state, value] of [
        ['queued', q.queued],
        ['running', q.running],
        ['suspended', q.suspended],
      ] as const) {
        const labels = { task_queue: q.taskQueue, state };
        this.#queues.push(labels);
        this.taskQueueRuns.set(labels, Number(value));
      }
    }
  }

  /** The exposition: the registry and the payload store's LISTEN connection. */
  async render(listener: ListenerState): Promise<string> {
    return `${await this.registry.metrics()}${listenerMetrics(listener)}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
