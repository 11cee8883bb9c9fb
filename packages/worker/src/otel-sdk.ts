import { ProxyTracerProvider, trace, type TracerProvider } from '@opentelemetry/api';
import type { WorkerTracingConfig } from './telemetry-config.js';

/** The OpenTelemetry SDK a worker process started, or the application's provider it found. */
export interface WorkerTracingHandle {
  /** Whether this process started the SDK (false: the application had registered a provider). */
  readonly started: boolean;
  /** Exports what is buffered and stops the SDK this process started. */
  shutdown(): Promise<void>;
}

/**
 * Starts `@opentelemetry/sdk-node` in a worker process (`runWorkerFromEnv`) and registers it as the
 * global provider, unless the application registered one already (then its provider is used as
 * it is). Sampler, resource, protocol, headers and batching come from the standard `OTEL_*`
 * variables; `CAIRN_DP_OTLP_TRACES_ENDPOINT` replaces the exporter with an OTLP/HTTP (JSON) one.
 * Only traces: no instrumentation is loaded (the application adds its own), no metrics (the
 * worker serves Prometheus metrics) and no logs. `service.name` defaults to `cairn-worker`.
 *
 * Loaded on demand, so an application that only embeds a `Worker` never loads the SDK.
 */
export async function startWorkerTracing(config: WorkerTracingConfig): Promise<WorkerTracingHandle> {
  // The API tells a registered provider from none only through its proxy: an unregistered proxy
  // delegates to the no-op provider, a registered one to the application's.
  const registered = trace.getTracerProvider() as TracerProvider & { getDelegate?: () => TracerProvider };
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- no other way to ask whether a provider is registered
  const none = new ProxyTracerProvider().getDelegate();
  if ((registered.getDelegate?.() ?? registered) !== none) return { started: false, shutdown: () => Promise.resolve() };
  const [{ NodeSDK }, { OTLPTraceExporter }, resources] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const sdk = new NodeSDK({
    resource: resources.defaultResource().merge(resources.resourceFromAttributes({ 'service.name': 'cairn-worker' })),
    ...(config.variable === 'CAIRN_DP_OTLP_TRACES_ENDPOINT' && config.endpoint !== null
      ? { traceExporter: new OTLPTraceExporter({ url: config.endpoint }) }
      : {}),
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return { started: true, shutdown: () => sdk.shutdown() };
}
