import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  trace,
  type Attributes,
  type AnyValue,
  type Exception,
  type Link,
  type Span,
  type SpanContext,
  type SpanStatus,
  type TimeInput,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import { ErrorCode, StepKind, StepStatus, SuspendReason, WakeReason, type RunTask, type StepReport } from '@cairn/proto';
import type { AttemptRef, RunExecution, RunOutcome } from './engine.js';

/**
 * Every attribute key Cairn puts on its spans. Nothing else is ever set on them: Cairn's own calls
 * go through this list, and the application's code sees Cairn's spans read-only (see
 * {@link ReadOnlySpan}), so a payload, a key or an error message cannot land on a Cairn span
 * whatever the application does with `trace.getActiveSpan()`.
 */
export const CAIRN_SPAN_ATTRIBUTES: ReadonlySet<string> = new Set([
  'cairn.run_id',
  'cairn.worker_id',
  'cairn.data_plane_id',
  'cairn.workflow.name',
  'cairn.workflow.version',
  'cairn.run.epoch',
  'cairn.task_queue',
  'cairn.wake_reason',
  'cairn.run.cancel_requested',
  'cairn.run.outcome',
  'cairn.run.replayed_steps',
  'cairn.run.replayed_models',
  'cairn.run.suspend_reason',
  'cairn.error_code',
  'cairn.step.kind',
  'cairn.step.name',
  'cairn.step.position',
  'cairn.step.attempt',
  'cairn.step.status',
  'cairn.step.retryable',
  'cairn.step.output_size',
  'cairn.model.provider',
  'cairn.model.name',
  'cairn.model.input_tokens',
  'cairn.model.output_tokens',
]);

/** `attributes` without any key outside {@link CAIRN_SPAN_ATTRIBUTES}. */
function allowed(attributes: Attributes): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) if (CAIRN_SPAN_ATTRIBUTES.has(key)) out[key] = value;
  return out;
}

/**
 * What the application's code gets for a Cairn span (as `trace.getActiveSpan()` inside a step):
 * its identity, so spans started there nest under it, and nothing that writes. Attributes, events,
 * exceptions, a status message or a new name set through it are dropped; ending it is Cairn's.
 */
class ReadOnlySpan implements Span {
  readonly #span: Span;
  constructor(span: Span) {
    this.#span = span;
  }
  spanContext(): SpanContext {
    return this.#span.spanContext();
  }
  setAttribute(_key: string, _value: AnyValue): this {
    return this;
  }
  setAttributes(_attributes: Attributes): this {
    return this;
  }
  addEvent(_name: string, _attributesOrStartTime?: Attributes | TimeInput, _startTime?: TimeInput): this {
    return this;
  }
  addLink(_link: Link): this {
    return this;
  }
  addLinks(_links: Link[]): this {
    return this;
  }
  setStatus(_status: SpanStatus): this {
    return this;
  }
  updateName(_name: string): this {
    return this;
  }
  end(_endTime?: TimeInput): void {
    // Cairn ends its spans when the call's outcome is journaled.
  }
  isRecording(): boolean {
    return this.#span.isRecording();
  }
  recordException(_exception: Exception, _time?: TimeInput): void {
    // An exception carries a message: it stays off Cairn's spans.
  }
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
 * The worker's spans, from the tracer provider given to the worker or else the application's global
 * one (`trace.getTracerProvider()`): one per run execution (a run task under one lease epoch), parented by the
 * control plane's dispatch span when the task carries its `traceparent`, and one per attempt of a
 * durable call (step, model, sleep, signal wait, child), derived from the step reports the engine
 * emits. Attributes carry IDs, names written in code, statuses, closed codes, counts and times;
 * never inputs, outputs, prompts, keys or error messages.
 *
 * Only the reports of the execution's own epoch make spans: the journal re-reported when a run is
 * picked up again carries the epochs it was written under, and was traced then.
 *
 * The code of an attempt (a step function, a model request) runs with the attempt's span active
 * ({@link RunTracing.inAttempt}), so spans the application starts there are its children.
 */
export class RunTracing {
  readonly #tracer: Tracer;
  readonly #provider: TracerProvider | undefined;
  readonly #worker: Attributes;
  readonly #runs = new Map<string, RunTrace>();

  /** The runs with an execution span still open. */
  openRunIds(): string[] {
    return [...new Set([...this.#runs.keys()].map((key) => key.slice(0, key.lastIndexOf(':'))))];
  }

  constructor(provider: TracerProvider | undefined, worker: { readonly workerId: string; readonly dataPlaneId: string }) {
    this.#provider = provider;
    // The global API's tracer follows whatever provider the application registers, even later.
    this.#tracer = (provider ?? trace).getTracer('@cairn/worker');
    this.#worker = { 'cairn.worker_id': worker.workerId, 'cairn.data_plane_id': worker.dataPlaneId };
  }

  /** An execution of `task` started. */
  runStarted(task: RunTask, execution: RunExecution): void {
    const tracer = this.#tracer;
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
        attributes: allowed({
          ...base,
          ...this.#worker,
          'cairn.run.epoch': task.epoch,
          'cairn.task_queue': task.taskQueue,
          'cairn.wake_reason': enumName(WakeReason, task.reason),
          'cairn.run.cancel_requested': task.cancelRequested,
        }),
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
    if (!run || !step) return;
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
          attributes: allowed({
            ...run.base,
            'cairn.step.kind': kind,
            'cairn.step.name': step.name,
            'cairn.step.position': step.position,
            'cairn.step.attempt': step.attempt,
          }),
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
    call.span.setAttributes(allowed(attributes));
    if (!FINAL_STEP_STATUSES.has(step.status)) return;
    call.span.setAttributes(allowed({ 'cairn.step.retryable': step.retryable, 'cairn.step.output_size': Number(step.outputSize) }));
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
    run.span.setAttributes(allowed(attributes));
    this.#end(runId, epoch);
  }

  /**
   * Runs the code of one attempt with the attempt's span active, seen read-only: spans the
   * application starts there nest under it, and it cannot write to it.
   */
  inAttempt<T>(attempt: AttemptRef, fn: () => T): T {
    const call = this.#runs.get(key(attempt.runId, attempt.epoch))?.calls.get(`${attempt.position}:${attempt.attempt}`);
    if (!call) return fn();
    return context.with(trace.setSpan(context.active(), new ReadOnlySpan(call.span)), fn);
  }

  /** Exports what is buffered (when the provider can). */
  async flush(): Promise<void> {
    const given = this.#provider ?? trace.getTracerProvider();
    const delegate = (given as { getDelegate?: () => TracerProvider }).getDelegate?.() ?? given;
    await (delegate as { forceFlush?: () => Promise<void> }).forceFlush?.();
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
