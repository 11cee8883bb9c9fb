import {
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Span,
  type SpanContext,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  defaultResource,
  hostDetector,
  osDetector,
  resourceAttributesEnvDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
  serviceNameEnvDetector,
} from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { TelemetryConfig } from './telemetry.config.js';

export { SpanKind, SpanStatusCode, type Attributes, type Span, type SpanContext };

/** The control plane's tracer, from the global provider (a no-op one until {@link startTracing} registered the SDK's). */
export function controlPlaneTracer(): Tracer {
  return trace.getTracer('@cairn/control-plane');
}

/** The running OpenTelemetry SDK of this process. */
export interface Tracing {
  /** Exports what is buffered. */
  flush(): Promise<void>;
  /** Flushes and stops the exporter. */
  shutdown(): Promise<void>;
}

/**
 * Starts `@opentelemetry/sdk-node` for the control-plane process and registers it globally, when
 * tracing is configured (see {@link TelemetryConfig.tracing}); null otherwise. Sampler, resource,
 * exporter protocol, headers, batching and limits come from the standard `OTEL_*` variables;
 * `CAIRN_CP_OTLP_TRACES_ENDPOINT`, when set, replaces the exporter with an OTLP/HTTP (JSON) one to
 * that URL. Only traces: no instrumentation is loaded (it would record URLs, headers and queries),
 * no metrics (Prometheus serves those) and no logs. The default resource detectors leave out the
 * process detector, whose command line is not the collector's business.
 */
export function startTracing(config: TelemetryConfig, env: NodeJS.ProcessEnv = process.env): Tracing | null {
  if (!config.tracing.enabled) return null;
  const sdk = new NodeSDK({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': 'cairn-control-plane' })),
    ...(env['OTEL_NODE_RESOURCE_DETECTORS'] === undefined
      ? { resourceDetectors: [serviceInstanceIdDetector, hostDetector, osDetector, resourceAttributesEnvDetector, serviceNameEnvDetector] }
      : {}),
    ...(config.tracing.endpoint === null ? {} : { traceExporter: new OTLPTraceExporter({ url: config.tracing.endpoint }) }),
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return { flush: flushGlobalProvider, shutdown: () => sdk.shutdown() };
}

/** Exports what the global tracer provider (the SDK's, behind the API's proxy) buffers, when it can. */
export async function flushGlobalProvider(): Promise<void> {
  const global = trace.getTracerProvider() as TracerProvider & { getDelegate?: () => TracerProvider };
  const provider = (global.getDelegate?.() ?? global) as { forceFlush?: () => Promise<void> };
  await provider.forceFlush?.();
}

/** The W3C `traceparent` of a span (version 00), or '' for an invalid context. */
export function traceparentOf(context: SpanContext): string {
  if (!/^[0-9a-f]{32}$/.test(context.traceId) || /^0+$/.test(context.traceId)) return '';
  if (!/^[0-9a-f]{16}$/.test(context.spanId) || /^0+$/.test(context.spanId)) return '';
  const flags = (context.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, '0');
  return `00-${context.traceId}-${context.spanId}-${flags}`;
}
