import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider as SdkTracerProvider } from '@opentelemetry/sdk-trace';
import { ErrorCode, StepKind, StepStatus, SuspendReason, WakeReason, type RunTask, type StepReport } from '@cairn/proto';
import type { RunExecution, RunOutcome } from './engine.js';

/** Options of {@link createWorkerTracerProvider}. */
export interface WorkerTracingOptions {
  /** The OTLP/HTTP traces URL of a collector in the data plane, e.g. `http://otel-collector:4318/v1/traces`. */
  readonly endpoint: string;
  /** `service.name` of the spans. Default `cairn-worker`. */
  readonly serviceName?: string;
}

/**
 * A tracer provider that exports the worker's spans over OTLP/HTTP (JSON) to a collector inside the
 * data plane. Headers, timeout, compression and certificates follow the standard
 * `OTEL_EXPORTER_OTLP_*` variables. The worker flushes it when it stops.
 *
 * @example
 * ```ts
 * const tracerProvider = createWorkerTracerProvider({ endpoint: 'http://otel-collector:4318/v1/traces' });
 * const worker = new Worker({ ...options, tracerProvider });
 * ```
 */
export function createWorkerTracerProvider(options: WorkerTracingOptions): SdkTracerProvider {
  return new SdkTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName ?? 'cairn-worker' }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: options.endpoint }), scheduledDelayMillis: 1000 })],
  });
}

interface CallTrace {
  readonly span: Span;
  readonly startMs: number;
}

interface RunTrace {
  readonly span: Span;
  readonly startMs: number;
  readonly base: Attributes;
  readonly execution: RunExecution;
  readonly calls: Map<string, CallTrace>;
}

const FINAL_STEP_STATUSES = new Set([StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.RETRYING]);

/**
 * The worker's spans: one per run execution (a run task under one lease epoch), parented by the
 * control plane's dispatch span when the task carries its `traceparent`, and one per attempt of a
 * durable call (step, model, sleep, signal wait, child), derived from the step reports the engine
 * emits. Attributes carry IDs, names written in code, statuses, closed codes, counts and times;
 * never inputs, outputs, prompts, keys or error messages.
 *
 * Only the reports of the execution's own epoch make spans: the journal re-reported when a run is
 * picked up again carries the epochs it was written under, and was traced then.
 */
export class RunTracing {
  readonly #tracer: Tracer | undefined;
  readonly #provider: TracerProvider | undefined;
  readonly #worker: Attributes;
  readonly #runs = new Map<string, RunTrace>();

  /** The runs with an execution span still open. */
  openRunIds(): string[] {
    return [...new Set([...this.#runs.keys()].map((key) => key.slice(0, key.lastIndexOf(':'))))];
  }

  constructor(provider: TracerProvider | undefined, worker: { readonly workerId: string; readonly dataPlaneId: string }) {
    this.#provider = provider;
    this.#tracer = provider?.getTracer('@cairn/worker');
    this.#worker = { 'cairn.worker_id': worker.workerId, 'cairn.data_plane_id': worker.dataPlaneId };
  }

  /** An execution of `task` started. */
  runStarted(task: RunTask, execution: RunExecution): void {
    const tracer = this.#tracer;
    if (!tracer) return;
    const base: Attributes = {
      'cairn.run_id': task.runId,
      'cairn.workflow.name': task.workflowName,
      'cairn.workflow.version': task.workflowVersion,
    };
    const parent = task.traceparent === '' ? null : parseTraceParent(task.traceparent);
    const context = parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
    const startMs = Date.now();
    const span = tracer.startSpan(
      'cairn.run',
      {
        kind: SpanKind.CONSUMER,
        startTime: startMs,
        attributes: {
          ...base,
          ...this.#worker,
          'cairn.run.epoch': task.epoch,
          'cairn.task_queue': task.taskQueue,
          'cairn.wake_reason': enumName(WakeReason, task.reason),
          'cairn.run.cancel_requested': task.cancelRequested,
        },
      },
      context,
    );
    this.#end(task.runId, task.epoch);
    this.#runs.set(key(task.runId, task.epoch), { span, startMs, base, execution, calls: new Map() });
  }

  /** A step report the engine emitted (before the worker batches it for the control plane). */
  stepReported(report: StepReport): void {
    const run = this.#runs.get(key(report.runId, report.epoch));
    const step = report.step;
    if (!run || !step || !this.#tracer) return;
    const callKey = `${step.position}:${step.attempt}`;
    let call = run.calls.get(callKey);
    if (!call) {
      // A call resumed in this execution (a wait that began before a suspension) starts here.
      const startMs = Math.max(toMs(step.startedAt) ?? Date.now(), run.startMs);
      const kind = enumName(StepKind, step.kind);
      const span = this.#tracer.startSpan(
        `cairn.${kind}`,
        {
          kind: SpanKind.INTERNAL,
          startTime: startMs,
          attributes: {
            ...run.base,
            'cairn.step.kind': kind,
            'cairn.step.name': step.name,
            'cairn.step.position': step.position,
            'cairn.step.attempt': step.attempt,
          },
        },
        trace.setSpan(ROOT_CONTEXT, run.span),
      );
      call = { span, startMs };
      run.calls.set(callKey, call);
    }
    const attributes: Attributes = { 'cairn.step.status': enumName(StepStatus, step.status) };
    if (step.errorCode !== ErrorCode.UNSPECIFIED) attributes['cairn.error_code'] = enumName(ErrorCode, step.errorCode);
    if (step.kind === StepKind.MODEL) {
      if (step.provider !== '') attributes['cairn.model.provider'] = step.provider;
      if (step.model !== '') attributes['cairn.model.name'] = step.model;
      if (step.inputTokens > 0n) attributes['cairn.model.input_tokens'] = Number(step.inputTokens);
      if (step.outputTokens > 0n) attributes['cairn.model.output_tokens'] = Number(step.outputTokens);
    }
    call.span.setAttributes(attributes);
    if (!FINAL_STEP_STATUSES.has(step.status)) return;
    call.span.setAttributes({ 'cairn.step.retryable': step.retryable, 'cairn.step.output_size': Number(step.outputSize) });
    if (step.status === StepStatus.FAILED) call.span.setStatus({ code: SpanStatusCode.ERROR });
    call.span.end(Math.max(toMs(step.endedAt) ?? Date.now(), call.startMs));
    run.calls.delete(callKey);
  }

  /** The execution of (run, epoch) ended with `outcome`. */
  runEnded(runId: string, epoch: number, outcome: RunOutcome): void {
    const run = this.#runs.get(key(runId, epoch));
    if (!run) return;
    const attributes: Attributes = {
      'cairn.run.outcome': outcome.kind,
      'cairn.run.replayed_steps': run.execution.replayed.step,
      'cairn.run.replayed_models': run.execution.replayed.model,
    };
    if (outcome.kind === 'failed') {
      attributes['cairn.error_code'] = enumName(ErrorCode, outcome.errorCode);
      run.span.setStatus({ code: SpanStatusCode.ERROR });
    }
    if (outcome.kind === 'suspended') attributes['cairn.run.suspend_reason'] = enumName(SuspendReason, outcome.reason);
    run.span.setAttributes(attributes);
    this.#end(runId, epoch);
  }

  /** Exports what is buffered (when the provider can). */
  async flush(): Promise<void> {
    const provider = this.#provider as { forceFlush?: () => Promise<void> } | undefined;
    await provider?.forceFlush?.();
  }

  #end(runId: string, epoch: number): void {
    const run = this.#runs.get(key(runId, epoch));
    if (!run) return;
    this.#runs.delete(key(runId, epoch));
    const now = Date.now();
    // Calls still open (a wait the run suspended on, a step cut off by a lost lease) end with the run.
    for (const call of run.calls.values()) call.span.end(Math.max(now, call.startMs));
    run.span.end(now);
  }
}

function key(runId: string, epoch: number): string {
  return `${runId}:${epoch}`;
}

function toMs(time: bigint): number | undefined {
  return time > 0n ? Number(time) : undefined;
}

/** `StepKind.MODEL` → `model`: the lowercase name of a protobuf enum value. */
function enumName(values: Record<number, string>, value: number): string {
  return (values[value] ?? 'unspecified').toLowerCase();
}
