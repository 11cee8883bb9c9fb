import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TraceFlags } from '@opentelemetry/api';
import { Metrics } from './metrics.js';
import { z } from 'zod';
import { telemetryConfig, telemetryShape } from './telemetry.config.js';
import { traceparentOf } from './tracing.js';

describe('control-plane telemetry configuration', () => {
  it('turns tracing off when no exporter is configured, OTEL_SDK_DISABLED is true or the exporter is none', () => {
    assert.deepEqual(telemetryConfig({}), {
      tracing: { enabled: false, endpoint: null },
      metricsToken: null,
      metricsPort: null,
    });
    assert.equal(
      telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing.enabled,
      false,
    );
    assert.equal(
      telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' }).tracing.enabled,
      false,
    );
  });

  it('leaves the exporter to the SDK unless CAIRN_CP_OTLP_TRACES_ENDPOINT names one', () => {
    assert.deepEqual(telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing, { enabled: true, endpoint: null });
    assert.deepEqual(telemetryConfig({ OTEL_TRACES_EXPORTER: 'console' }).tracing, { enabled: true, endpoint: null });
    const config = telemetryConfig({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:4318/x',
      CAIRN_CP_OTLP_TRACES_ENDPOINT: 'https://cp-traces.internal/v1/traces',
      CAIRN_METRICS_TOKEN: 'mt_Zq7R2vK9pW4xL8nB3cY6tD1fH5jM0sQe',
      CAIRN_CP_METRICS_PORT: 9464,
    });
    assert.deepEqual(config, {
      tracing: { enabled: true, endpoint: 'https://cp-traces.internal/v1/traces' },
      metricsToken: 'mt_Zq7R2vK9pW4xL8nB3cY6tD1fH5jM0sQe',
      metricsPort: 9464,
    });
  });

  it('refuses a sampler the SDK does not know, naming the variable', () => {
    const shape = z.object(telemetryShape);
    const bad = shape.safeParse({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratioo', OTEL_TRACES_SAMPLER_ARG: '1.5' });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error?.issues.map((i) => i.path.join('.')).sort(), ['OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG']);
    assert.equal(shape.safeParse({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).success, true);
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
