import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { CairnError } from '@cairn/common';
import {
  ErrorCode,
  RunTaskSchema,
  StepInfoSchema,
  StepKind,
  StepReportSchema,
  StepStatus,
  SuspendReason,
  WakeReason,
  create,
  type StepInfo,
  type StepReport,
} from '@cairn/proto';
import type { RunExecution } from './engine.js';
import { RunTracing } from './telemetry.js';
import { workerTracingConfig } from './telemetry-config.js';

const RUN = '0b8f5a4e-3c1d-4e2f-9a7b-6c5d4e3f2a1b';
const WORKER = '1c9a6b5f-4d2e-4f30-8b8c-7d6e5f4a3b2c';
const DATA_PLANE = '2da07c60-5e3f-4041-9c9d-8e7f6a5b4c3d';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const DISPATCH_SPAN = '00f067aa0ba902b7';

function setup(): { tracing: RunTracing; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  return { tracing: new RunTracing(provider, { workerId: WORKER, dataPlaneId: DATA_PLANE }), exporter };
}

const execution = { replayed: { step: 2, model: 0 } } as unknown as RunExecution;

function task(epoch: number, traceparent: string) {
  return create(RunTaskSchema, {
    runId: RUN,
    epoch,
    workflowName: 'order-refund',
    workflowVersion: '3',
    taskQueue: 'default',
    reason: WakeReason.TIMER,
    traceparent,
  });
}

function report(epoch: number, step: Omit<Partial<StepInfo>, '$typeName'>): StepReport {
  return create(StepReportSchema, { runId: RUN, epoch, step: create(StepInfoSchema, step) });
}

describe('worker tracing', () => {
  it('parents the run span with the dispatch traceparent and traces each live durable-call attempt under it', () => {
    const { tracing, exporter } = setup();
    const started = Date.now();
    tracing.runStarted(task(2, `00-${TRACE_ID}-${DISPATCH_SPAN}-01`), execution);
    // The journal re-reported on pick-up carries the epoch it was written under: no span.
    tracing.stepReported(
      report(1, { position: 0, kind: StepKind.STEP, name: 'lookup', attempt: 1, status: StepStatus.COMPLETED, startedAt: 1n, endedAt: 2n }),
    );
    const base = { position: 1, kind: StepKind.STEP, name: 'charge', startedAt: BigInt(started) };
    tracing.stepReported(report(2, { ...base, attempt: 1, status: StepStatus.RUNNING }));
    tracing.stepReported(
      report(2, {
        ...base,
        attempt: 1,
        status: StepStatus.RETRYING,
        errorCode: ErrorCode.STEP_FAILED,
        retryable: true,
        endedAt: BigInt(started + 5),
      }),
    );
    tracing.stepReported(report(2, { ...base, attempt: 2, status: StepStatus.RUNNING, startedAt: BigInt(started + 10) }));
    tracing.stepReported(
      report(2, {
        ...base,
        attempt: 2,
        status: StepStatus.COMPLETED,
        startedAt: BigInt(started + 10),
        endedAt: BigInt(started + 20),
        outputSize: 42n,
      }),
    );
    tracing.stepReported(
      report(2, {
        position: 2,
        kind: StepKind.MODEL,
        name: 'summarise',
        attempt: 1,
        status: StepStatus.COMPLETED,
        provider: 'openai.chat',
        model: 'gpt-test',
        inputTokens: 12n,
        outputTokens: 34n,
        startedAt: BigInt(started + 20),
        endedAt: BigInt(started + 30),
      }),
    );
    tracing.stepReported(
      report(2, { position: 3, kind: StepKind.SIGNAL, name: 'approval.review', attempt: 1, status: StepStatus.WAITING }),
    );
    tracing.runEnded(RUN, 2, {
      kind: 'suspended',
      reason: SuspendReason.SIGNAL,
      wakeAt: 0,
      signalName: 'approval.review',
      signalsConsumed: 0,
      consumedSignalIds: [],
      childRunId: '',
    });

    const spans = exporter.getFinishedSpans();
    const run = spans.find((s) => s.name === 'cairn.run');
    assert.ok(run);
    assert.equal(run.spanContext().traceId, TRACE_ID);
    assert.equal(run.parentSpanContext?.spanId, DISPATCH_SPAN);
    assert.deepEqual(run.attributes, {
      'cairn.run_id': RUN,
      'cairn.workflow.name': 'order-refund',
      'cairn.workflow.version': '3',
      'cairn.worker_id': WORKER,
      'cairn.data_plane_id': DATA_PLANE,
      'cairn.run.epoch': 2,
      'cairn.task_queue': 'default',
      'cairn.wake_reason': 'timer',
      'cairn.run.cancel_requested': false,
      'cairn.run.outcome': 'suspended',
      'cairn.run.suspend_reason': 'signal',
      'cairn.run.replayed_steps': 2,
      'cairn.run.replayed_models': 0,
    });

    const calls = spans.filter((s) => s !== run);
    assert.deepEqual(
      calls.map(
        (s) =>
          `${s.name} ${String(s.attributes['cairn.step.name'])} #${String(s.attributes['cairn.step.attempt'])} ${String(s.attributes['cairn.step.status'])}`,
      ),
      [
        'cairn.step charge #1 retrying',
        'cairn.step charge #2 completed',
        'cairn.model summarise #1 completed',
        'cairn.signal approval.review #1 waiting',
      ],
    );
    for (const call of calls) {
      assert.equal(call.parentSpanContext?.spanId, run.spanContext().spanId);
      assert.equal(call.attributes['cairn.run_id'], RUN);
    }
    assert.equal(calls[0]!.attributes['cairn.error_code'], 'step_failed');
    assert.equal(calls[1]!.attributes['cairn.step.output_size'], 42);
    assert.equal(calls[2]!.attributes['cairn.model.provider'], 'openai.chat');
    assert.equal(calls[2]!.attributes['cairn.model.input_tokens'], 12);
  });

  it('starts a root span when the task carries no traceparent, and marks a failed run as an error', () => {
    const { tracing, exporter } = setup();
    tracing.runStarted(task(1, ''), execution);
    tracing.runEnded(RUN, 1, { kind: 'failed', errorCode: ErrorCode.STEP_TERMINAL, errorRef: '3eb18d71-6f40-4152-ad0e-9f8a7b6c5d4e' });
    const [run] = exporter.getFinishedSpans();
    assert.ok(run);
    assert.equal(run.parentSpanContext, undefined);
    assert.equal(run.status.code, 2);
    assert.equal(run.status.message, undefined);
    assert.equal(run.attributes['cairn.error_code'], 'step_terminal');
    assert.equal('errorRef' in run.attributes || 'cairn.error_ref' in run.attributes, false);
  });

  it('does nothing without a tracer provider', () => {
    const tracing = new RunTracing(undefined, { workerId: WORKER, dataPlaneId: DATA_PLANE });
    tracing.runStarted(task(1, ''), execution);
    tracing.stepReported(report(1, { position: 0, kind: StepKind.STEP, name: 'a', attempt: 1, status: StepStatus.COMPLETED }));
    tracing.runEnded(RUN, 1, { kind: 'completed', outputSize: 1 });
  });
});

describe('worker tracing configuration', () => {
  const cp = { CAIRN_CP_GRPC_ADDRESS: 'cairn-cp.example.com:443' };

  it('is off unless an endpoint is set, or when OTEL_SDK_DISABLED is true', () => {
    assert.equal(workerTracingConfig(cp), null);
    assert.equal(workerTracingConfig({ ...cp, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: true }), null);
    assert.equal(workerTracingConfig({ ...cp, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' }), null);
  });

  it('takes the most specific endpoint', () => {
    assert.equal(
      workerTracingConfig({ ...cp, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })?.endpoint,
      'http://collector:4318/v1/traces',
    );
    assert.equal(
      workerTracingConfig({
        ...cp,
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom',
      })?.endpoint,
      'http://traces:4318/custom',
    );
    const own = workerTracingConfig({
      ...cp,
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom',
      CAIRN_DP_OTLP_TRACES_ENDPOINT: 'http://dp-collector:4318/v1/traces',
    });
    assert.deepEqual(own, { endpoint: 'http://dp-collector:4318/v1/traces', variable: 'CAIRN_DP_OTLP_TRACES_ENDPOINT' });
    // The SDK's own exporter, with its default endpoint (a collector beside the pod, say).
    assert.deepEqual(workerTracingConfig({ ...cp, OTEL_TRACES_EXPORTER: 'console' }), { endpoint: null, variable: 'OTEL_TRACES_EXPORTER' });
  });

  it("refuses an endpoint on the control plane's host", () => {
    assert.throws(
      () => workerTracingConfig({ ...cp, OTEL_EXPORTER_OTLP_ENDPOINT: 'https://cairn-cp.example.com:4318' }),
      (err: unknown) => err instanceof CairnError && /OTEL_EXPORTER_OTLP_ENDPOINT: points at the control plane's host/.test(err.message),
    );
    assert.throws(() =>
      workerTracingConfig({ CAIRN_CP_GRPC_ADDRESS: '127.0.0.1:7233', CAIRN_DP_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:7233/v1/traces' }),
    );
    // On one machine (local development) another port of the loopback host is another process.
    assert.equal(
      workerTracingConfig({ CAIRN_CP_GRPC_ADDRESS: '127.0.0.1:7233', CAIRN_DP_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' })
        ?.endpoint,
      'http://127.0.0.1:4318/v1/traces',
    );
  });
});
