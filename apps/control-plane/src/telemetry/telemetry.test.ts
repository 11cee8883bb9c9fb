import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TraceFlags } from '@opentelemetry/api';
import { Metrics } from './metrics.js';
import { telemetryConfig } from './telemetry.config.js';
import { traceparentOf } from './tracing.js';

describe('control-plane telemetry configuration', () => {
  it('turns tracing off when no endpoint is set or OTEL_SDK_DISABLED is true', () => {
    assert.deepEqual(telemetryConfig({}), {
      tracesEndpoint: null,
      serviceName: 'cairn-control-plane',
      metricsToken: null,
      metricsPort: null,
    });
    assert.equal(telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracesEndpoint, null);
  });

  it('takes the most specific endpoint', () => {
    assert.equal(
      telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracesEndpoint,
      'http://collector:4318/v1/traces',
    );
    assert.equal(
      telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:4318/x' })
        .tracesEndpoint,
      'http://t:4318/x',
    );
    const config = telemetryConfig({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:4318/x',
      CAIRN_CP_OTLP_TRACES_ENDPOINT: 'https://cp-traces.internal/v1/traces',
      OTEL_SERVICE_NAME: 'cairn-cp-eu',
      CAIRN_METRICS_TOKEN: 'mt_Zq7R2vK9pW4xL8nB3cY6tD1fH5jM0sQe',
      CAIRN_CP_METRICS_PORT: 9464,
    });
    assert.deepEqual(config, {
      tracesEndpoint: 'https://cp-traces.internal/v1/traces',
      serviceName: 'cairn-cp-eu',
      metricsToken: 'mt_Zq7R2vK9pW4xL8nB3cY6tD1fH5jM0sQe',
      metricsPort: 9464,
    });
  });
});

describe('traceparent', () => {
  it('renders a valid span context as a version-00 traceparent the RunTask pattern accepts', () => {
    const value = traceparentOf({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: TraceFlags.SAMPLED,
    });
    assert.equal(value, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    assert.match(value, /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
  });

  it('renders nothing for an invalid context', () => {
    assert.equal(traceparentOf({ traceId: '0'.repeat(32), spanId: '00f067aa0ba902b7', traceFlags: 1 }), '');
    assert.equal(traceparentOf({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: 'nothex', traceFlags: 1 }), '');
  });
});

describe('metrics', () => {
  it('exposes the documented metrics, with NaN gauges when the database could not be read', async () => {
    const metrics = new Metrics();
    metrics.dispatchLatency.observe({ wake_reason: 'start' }, 0.02);
    metrics.stepsFinished.inc({ kind: 'step', status: 'completed' });
    metrics.setDatabaseGauges(null);
    const text = await metrics.render();
    for (const name of [
      'cairn_dispatch_latency_seconds_count{wake_reason="start"} 1',
      'cairn_steps_finished_total{kind="step",status="completed"} 1',
      'cairn_queue_depth Nan',
      'cairn_active_leases Nan',
      'cairn_sweep_requeued_total{reason="lease_expired"} 0',
      'process_cpu_user_seconds_total',
    ]) {
      assert.ok(text.includes(name), `${name} in\n${text.slice(0, 400)}`);
    }
    metrics.setDatabaseGauges({ queued: 3, running: 2 });
    const after = await metrics.render();
    assert.match(after, /^cairn_queue_depth 3$/m);
    assert.match(after, /^cairn_active_leases 2$/m);
  });
});
