import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type Span, type SpanContext, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { TelemetryConfig } from './telemetry.config.js';

export { SpanKind, SpanStatusCode, type Attributes, type Span, type SpanContext };

/**
 * The control plane's tracer: spans go to the configured OTLP/HTTP endpoint in batches. Attributes
 * are IDs, names, statuses, counts and times only; the call sites never add anything else (no
 * payloads, no error messages, no header values, no query strings).
 */
export interface Tracing {
  readonly tracer: Tracer;
  /** Exports what is buffered. */
  flush(): Promise<void>;
  /** Flushes and stops the exporter. */
  shutdown(): Promise<void>;
}

/** Null when tracing is off (no endpoint configured). */
export function createTracing(config: TelemetryConfig): Tracing | null {
  if (config.tracesEndpoint === null) return null;
  const exporter = new OTLPTraceExporter({ url: config.tracesEndpoint });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName }),
    spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: 1000 })],
  });
  return {
    tracer: provider.getTracer('@cairn/control-plane'),
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

/** The W3C `traceparent` of a span (version 00), or '' for an invalid context. */
export function traceparentOf(context: SpanContext): string {
  if (!/^[0-9a-f]{32}$/.test(context.traceId) || /^0+$/.test(context.traceId)) return '';
  if (!/^[0-9a-f]{16}$/.test(context.spanId) || /^0+$/.test(context.spanId)) return '';
  const flags = (context.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, '0');
  return `00-${context.traceId}-${context.spanId}-${flags}`;
}
