import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { listenerMetrics, type ListenerState } from '@cairn/payload-store';
import { StepKind, StepStatus, type StepReport } from '@cairn/proto';
import type { RunOutcome } from './engine.js';

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const FINAL = new Set([StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.RETRYING]);

interface OpenRun {
  readonly epoch: number;
  readonly workflow: string;
  readonly version: string;
}

/**
 * The worker's Prometheus metrics, in a registry of its own (tests run several workers in one
 * process). Labels are names written in code (workflow, version, step kind, model provider and
 * model as configured), statuses and closed reasons: never run IDs, step names, keys, payloads or
 * error messages, so cardinality stays bounded by the code the worker runs.
 *
 * Only what the worker does under its own leases counts: the journal re-reported when a run is
 * picked up again carries the epochs it was written under, and was counted then.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly #open = new Map<string, OpenRun>();

  readonly runExecutions = new Counter({
    name: 'cairn_worker_run_executions_total',
    help: 'Run executions (a run task under one lease) that ended, by workflow, version and outcome (completed, failed, cancelled, suspended, released, lost, abandoned, misconfigured, refused).',
    labelNames: ['workflow', 'version', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly runsStarted = new Counter({
    name: 'cairn_worker_run_executions_started_total',
    help: 'Run tasks this worker started executing, by workflow and version.',
    labelNames: ['workflow', 'version'] as const,
    registers: [this.registry],
  });

  readonly runsActive = new Gauge({
    name: 'cairn_worker_runs_active',
    help: 'Runs executing on this worker now.',
    registers: [this.registry],
  });

  readonly slots = new Gauge({
    name: 'cairn_worker_slots',
    help: 'Run slots of this worker (CAIRN_WORKER_SLOTS).',
    registers: [this.registry],
  });

  readonly attempts = new Counter({
    name: 'cairn_worker_step_attempts_total',
    help: 'Attempts of durable calls that ended, by workflow, call kind (step, model, sleep, signal, child) and status (completed, failed, retrying).',
    labelNames: ['workflow', 'kind', 'status'] as const,
    registers: [this.registry],
  });

  readonly steps = new Counter({
    name: 'cairn_worker_steps_total',
    help: 'Durable calls that reached a final status (completed or failed), by workflow, call kind and status.',
    labelNames: ['workflow', 'kind', 'status'] as const,
    registers: [this.registry],
  });

  readonly attemptDuration = new Histogram({
    name: 'cairn_worker_step_attempt_duration_seconds',
    help: 'Duration of step attempts (kind step) by workflow and status.',
    labelNames: ['workflow', 'status'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly modelDuration = new Histogram({
    name: 'cairn_worker_model_call_duration_seconds',
    help: 'Duration of model call attempts, by provider, model and status (completed, failed, retrying).',
    labelNames: ['provider', 'model', 'status'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly modelTokens = new Counter({
    name: 'cairn_worker_model_tokens_total',
    help: 'Model tokens used by completed model calls, by provider, model and direction (input, output).',
    labelNames: ['provider', 'model', 'direction'] as const,
    registers: [this.registry],
  });

  readonly journalCommit = new Histogram({
    name: 'cairn_worker_journal_commit_duration_seconds',
    help: 'Fenced writes to run journals in the payload store (one per step outcome), by result (ok, fenced: another worker holds the run, error).',
    labelNames: ['result'] as const,
    buckets: COMMIT_BUCKETS,
    registers: [this.registry],
  });

  readonly leaseRenewals = new Counter({
    name: 'cairn_worker_lease_renewals_total',
    help: 'Leases this worker renewed (one per held run per heartbeat).',
    registers: [this.registry],
  });

  readonly leasesLost = new Counter({
    name: 'cairn_worker_leases_lost_total',
    help: 'Leases this worker lost while it held the run: revoked (the control plane said so), not_reattached (gone after a reconnect), fenced (a journal write found a newer epoch).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly streamConnected = new Gauge({
    name: 'cairn_worker_stream_connected',
    help: 'Whether the worker holds a welcomed stream to the control plane (1) or not (0).',
    registers: [this.registry],
  });

  readonly streamReconnects = new Counter({
    name: 'cairn_worker_stream_reconnects_total',
    help: 'Times the stream to the control plane was lost after it had been welcomed (the worker reconnects with backoff).',
    registers: [this.registry],
  });

  constructor(payloadStore?: { readonly decryptFailures: number }, clock?: { offsetMs(): number | undefined }) {
    collectDefaultMetrics({ register: this.registry });
    if (clock) {
      new Gauge({
        name: 'cairn_worker_clock_offset_seconds',
        help: "How far the control plane's clock is ahead of this worker's wall clock (negative: behind), as measured on the stream; the worker stamps and compares times on the control plane's clock. 0 until measured.",
        registers: [this.registry],
        collect() {
          this.set((clock.offsetMs() ?? 0) / 1000);
        },
      });
    }
    for (const reason of ['revoked', 'not_reattached', 'fenced']) this.leasesLost.inc({ reason }, 0);
    this.leaseRenewals.inc(0);
    this.streamReconnects.inc(0);
    this.streamConnected.set(0);
    if (payloadStore) {
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
  }

  /** An execution of a run started under `epoch`. */
  runStarted(runId: string, epoch: number, workflow: string, version: string): void {
    this.#open.set(runId, { epoch, workflow, version });
    this.runsStarted.inc({ workflow, version });
    this.runsActive.set(this.#open.size);
  }

  /** A step report the engine emitted: attempts of this execution that ended are counted. */
  stepReported(report: StepReport): void {
    const run = this.#open.get(report.runId);
    const step = report.step;
    if (!run || run.epoch !== report.epoch || !step || !FINAL.has(step.status)) return;
    const kind = enumName(StepKind, step.kind);
    const status = enumName(StepStatus, step.status);
    this.attempts.inc({ workflow: run.workflow, kind, status });
    if (step.status !== StepStatus.RETRYING) this.steps.inc({ workflow: run.workflow, kind, status });
    const seconds = step.startedAt > 0n && step.endedAt >= step.startedAt ? Number(step.endedAt - step.startedAt) / 1000 : undefined;
    if (step.kind === StepKind.STEP && seconds !== undefined) this.attemptDuration.observe({ workflow: run.workflow, status }, seconds);
    if (step.kind === StepKind.MODEL && step.provider !== '') {
      const model = { provider: step.provider, model: step.model };
      if (seconds !== undefined) this.modelDuration.observe({ ...model, status }, seconds);
      if (step.inputTokens > 0n) this.modelTokens.inc({ ...model, direction: 'input' }, Number(step.inputTokens));
      if (step.outputTokens > 0n) this.modelTokens.inc({ ...model, direction: 'output' }, Number(step.outputTokens));
    }
  }

  /** The execution of (run, epoch) ended. */
  runEnded(runId: string, epoch: number, outcome: RunOutcome): void {
    const run = this.#open.get(runId);
    if (!run || run.epoch !== epoch) return;
    this.#open.delete(runId);
    this.runExecutions.inc({ workflow: run.workflow, version: run.version, outcome: outcome.kind });
    this.runsActive.set(this.#open.size);
  }

  /** The exposition: the registry and the payload store's LISTEN connection. */
  async render(listener: ListenerState): Promise<string> {
    return `${await this.registry.metrics()}${listenerMetrics(listener)}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** `StepKind.MODEL` → `model`: the lowercase name of a protobuf enum value. */
function enumName(values: Record<number, string>, value: number): string {
  return (values[value] ?? 'unspecified').toLowerCase();
}
