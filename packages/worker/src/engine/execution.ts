// One execution of a run under one lease epoch: loads the run, runs the workflow function with its
// `ctx`, settles it (output, error, compensations, cancellation) and ends with a RunOutcome. The
// parts it is made of (cursor, writer, reports, suspension, compensations) are its own modules.
import { AsyncLocalStorage } from 'node:async_hooks';
import { CairnError, ErrorCodes, isId, type Logger } from '@cairn/common';
import type { JournalEntry, StoredRun } from '@cairn/payload-store';
import { ErrorCode, SuspendReason } from '@cairn/proto';
import { CancelledError, NonDeterminismError, SchemaValidationError } from '@cairn/sdk';
import { validateWithSchema } from '@cairn/sdk/internal';
import { DeterministicSource } from '../determinism.js';
import { errorInfo, isKeyMisconfiguration, runErrorCode, storedRunErrorCode, toError, type RunErrorRecord } from '../errors.js';
import type { SignalSubscription } from '../signals.js';
import { compensate as runCompensations } from './composites/compensation.js';
import { CompensationRegistry, type CompensationFailure } from './composites/compensation-registry.js';
import { createContext } from './context.js';
import { JournalCursor, callOf } from './cursor.js';
import { JournalWriter } from './journal-writer.js';
import { Reports } from './reports.js';
import { HaltedError, never, type CallScope, type Halt } from './basics.js';
import type { ExecutionDeps, Run } from './run.js';
import { Suspension, suspendOutcome, type Wait } from './suspension.js';
import type { RunAssignment, RunExecution, RunOutcome } from './types.js';

export class Execution implements RunExecution, Run {
  readonly runId: string;
  readonly epoch: number;
  readonly done: Promise<RunOutcome>;

  readonly deps: ExecutionDeps;
  readonly assignment: RunAssignment;
  readonly log: Logger;
  #resolveDone!: (outcome: RunOutcome) => void;
  finished = false;

  readonly scope = new AsyncLocalStorage<CallScope>();
  readonly cursor: JournalCursor;
  readonly writer: JournalWriter;
  readonly reports: Reports;
  readonly suspension: Suspension;
  readonly compensations = new CompensationRegistry();
  /** How many top-level `ctx.parallel` and `ctx.agent` calls the workflow made (names their branches and calls). */
  readonly counters = { parallels: 0, agents: 0 };
  readonly replayed = { step: 0, model: 0 };
  /** The workflow function has settled: its remaining calls never resolve (compensations still run). */
  settled = false;
  readonly #signalsConsumed = new Map<string, number>();
  /** Per signal name, the IDs of the consumed signals, in the order the run consumed them. */
  readonly #consumedSignalIds = new Map<string, string[]>();
  #random: DeterministicSource | undefined;
  forked = false;

  halt: Halt | undefined;
  cancelRequested = false;
  /** `ctx.signal`: aborted on cancellation. */
  readonly #cancelController = new AbortController();
  /** Aborted when the execution ends, so step code still running learns it must stop. */
  readonly #stopController = new AbortController();
  readonly cancelListeners = new Set<(error: CancelledError) => void>();
  readonly subscriptions = new Set<SignalSubscription>();
  /** Step attempts running or being journaled (a drain lets them finish). */
  readonly inFlight = new Set<Promise<void>>();

  constructor(deps: ExecutionDeps, assignment: RunAssignment) {
    this.deps = deps;
    this.assignment = assignment;
    this.runId = assignment.runId;
    this.epoch = assignment.epoch;
    this.log = deps.logger;
    this.cursor = new JournalCursor(this.runId, this.scope, this.log);
    this.writer = new JournalWriter(deps.journal, this.epoch, this, this.log, deps.onJournalCommit);
    this.reports = new Reports(this.runId, deps.report, this.log);
    this.suspension = new Suspension(this, deps.clock, deps.thresholdMs);
    this.done = new Promise<RunOutcome>((resolve) => (this.#resolveDone = resolve));
    if (assignment.cancelRequested) this.#markCancelled();
    this.#main().catch((err: unknown) => this.abandon(err));
  }

  get random(): DeterministicSource {
    if (!this.#random) throw new CairnError(ErrorCodes.INTERNAL, 'A durable call was made before the run was loaded.');
    return this.#random;
  }

  get cancelSignal(): AbortSignal {
    return this.#cancelController.signal;
  }

  get stopSignal(): AbortSignal {
    return this.#stopController.signal;
  }

  // ---- control -------------------------------------------------------------------------------

  cancel(): void {
    if (this.finished || this.cancelRequested) return;
    this.log.info('cancellation requested');
    this.#markCancelled();
    if (this.halt) return;
    const error = new CancelledError();
    this.suspension.failWorkflowWaits(error);
    for (const listener of [...this.cancelListeners]) listener(error);
  }

  #markCancelled(): void {
    this.cancelRequested = true;
    this.#cancelController.abort(new CancelledError());
  }

  lose(): void {
    if (this.finished) return;
    this.log.warn('lease lost; stopping the run');
    this.halt = 'lost';
    this.#finish({ kind: 'lost' });
  }

  drain(timeoutMs: number): void {
    if (this.finished || this.halt) return;
    this.halt = 'drain';
    this.suspension.disposeWaits();
    void (async () => {
      if (this.inFlight.size > 0) {
        this.log.info({ steps: this.inFlight.size }, 'draining: waiting for running steps to be journaled');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([...this.inFlight]),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
        ]);
        clearTimeout(timer);
        if (this.inFlight.size > 0 && !this.finished && this.halt === 'drain') {
          this.log.warn(
            { steps: this.inFlight.size, drainTimeoutMs: timeoutMs },
            'drain bound reached: steps or model calls still running are given back unfinished and run again on another worker ' +
              '(raise CAIRN_DRAIN_TIMEOUT_MS, and the grace period with it, above the longest one)',
          );
        }
      }
      if (this.finished || this.halt !== 'drain') return;
      try {
        await this.writer.flushNow();
      } catch (err) {
        if (err instanceof HaltedError) return;
        this.log.warn({ err }, 'could not journal ctx.now() values before release');
      }
      this.#finish({ kind: 'released' });
    })();
  }

  abandon(err: unknown): void {
    if (this.finished) return;
    this.log.error({ err }, 'run abandoned after an internal error; the control plane will dispatch it again when the lease expires');
    this.halt = 'abandoned';
    this.#finish({ kind: 'abandoned', error: err });
  }

  /**
   * This process's keys cannot open the run's data. Failing the run would be wrong (a correctly
   * configured worker can run it) and would seal its error with a key that may itself be wrong, so
   * the execution stops without another write.
   */
  misconfigured(error: CairnError): void {
    if (this.finished) return;
    const keyId = typeof error.details['keyId'] === 'string' ? error.details['keyId'] : undefined;
    this.log.error({ keyId, err: error }, `cannot open this run's data with this worker's encryption keys; giving the run back`);
    this.halt = 'misconfigured';
    this.#finish({ kind: 'misconfigured', keyId, error });
  }

  #finish(outcome: RunOutcome): void {
    if (this.finished) return;
    this.finished = true;
    this.halt ??= 'settling';
    this.suspension.disposeWaits();
    for (const subscription of this.subscriptions) subscription.close();
    this.subscriptions.clear();
    this.#stopController.abort(new CairnError(ErrorCodes.LEASE_LOST, 'The execution of this run ended on this worker.'));
    this.#resolveDone(outcome);
  }

  // ---- the run -------------------------------------------------------------------------------

  async #main(): Promise<void> {
    const { journal: store } = this.deps;
    let run: StoredRun;
    let journal: JournalEntry[];
    try {
      const forkFrom = this.assignment.forkFrom;
      if (forkFrom) {
        const { created, copied, inputMissing } = await this.writer.write(() =>
          store.fork(this.epoch, forkFrom, forkInputMissing(forkFrom.runId, forkFrom.inputPayloadId ?? '')),
        );
        if (inputMissing)
          this.log.warn(
            { sourceRunId: forkFrom.runId, payloadId: forkFrom.inputPayloadId },
            'the input payload of a forked run is gone; the run fails',
          );
        else if (created)
          this.log.info(
            { sourceRunId: forkFrom.runId, position: forkFrom.position, copied, newInput: forkFrom.inputPayloadId !== undefined },
            'forked run created from its source',
          );
      }
      const scheduled = this.assignment.scheduled;
      if (scheduled) {
        const created = await this.writer.write(() =>
          store.createFromPayload(
            {
              workflowName: this.assignment.workflowName,
              payloadId: scheduled.payloadId,
              hmacKeyId: this.deps.hasher.activeKeyId,
            },
            payloadMissing(scheduled.scheduleId, scheduled.payloadId),
          ),
        );
        if (created === 'missing')
          this.log.warn(
            { scheduleId: scheduled.scheduleId, payloadId: scheduled.payloadId },
            'schedule input payload is gone; the run fails',
          );
        else if (created === 'created')
          this.log.debug({ scheduleId: scheduled.scheduleId, payloadId: scheduled.payloadId }, 'scheduled run input created');
      }
      ({ run, journal } = await this.writer.write(() => store.acquire(this.epoch, { workflowName: this.assignment.workflowName })));
    } catch (err) {
      if (err instanceof HaltedError) return;
      // A task naming another workflow than the stored run's is not run and nothing is written:
      // running W2's code over W1's run would hand W1's data to code it was never meant for.
      if (err instanceof CairnError && err.code === ErrorCodes.TASK_WORKFLOW_MISMATCH) {
        this.log.error({ err }, 'run task refused: it names another workflow than the run stored in this data plane');
        this.halt = 'refused';
        this.#finish({ kind: 'refused', error: err });
        return;
      }
      // A key problem stopped the execution in #write; what is left is a value damaged in the
      // database, which no worker can open: the run fails, its error sealed with a verified key.
      if (err instanceof CairnError && err.code === ErrorCodes.DECRYPT_FAILED) {
        await this.#failWith(err, ErrorCode.PAYLOAD_UNAVAILABLE);
        return;
      }
      if (err instanceof CairnError && err.code === ErrorCodes.RUN_NOT_FOUND) {
        this.log.error({ err }, 'run has no input in this data plane');
        this.#finish({ kind: 'failed', errorCode: ErrorCode.PAYLOAD_UNAVAILABLE, errorRef: '' });
        return;
      }
      throw err;
    }
    if (this.finished) return;
    this.cursor.load(journal);
    for (const entry of journal) {
      if (entry.kind === 'signal' && entry.status === 'completed') this.countSignal(entry.name, entry.signalId);
    }
    this.reports.reportJournal(journal);

    if (run.status !== 'open') {
      await this.#finishStored(run);
      return;
    }
    const workflow = this.deps.workflow;
    if (!workflow) {
      const { workflowName, workflowVersion } = this.assignment;
      await this.#failWith(
        new CairnError(
          ErrorCodes.WORKFLOW_NOT_FOUND,
          `This worker has no workflow "${workflowName}" version "${workflowVersion}". Deploy a worker that registers it.`,
        ),
        ErrorCode.WORKFLOW_NOT_FOUND,
      );
      return;
    }
    if (this.halt) return;
    this.#random = new DeterministicSource(run.seed);
    try {
      this.cursor.digests = this.deps.hasher.forRun(run.workflowName, run.digestVersion, run.hmacKeyId);
    } catch (err) {
      // The run's HMAC key was retired too early: give the run back, like a missing encryption key.
      if (isKeyMisconfiguration(err)) {
        this.misconfigured(err);
        return;
      }
      throw err;
    }
    this.forked = run.forkedFrom !== undefined;
    this.log.debug({ journal: journal.length }, 'executing run');
    let input = run.input;
    if (workflow.input) {
      let checked: Awaited<ReturnType<typeof validateWithSchema>>;
      try {
        checked = await validateWithSchema(workflow.input.schema, run.input);
      } catch (err) {
        await this.#failWith(toError(err), ErrorCode.APPLICATION);
        return;
      }
      if ('issues' in checked) {
        const error = new SchemaValidationError({
          target: 'input',
          subject: `input does not match the input schema of ${workflow.name}@${workflow.version}`,
          issues: checked.issues,
        });
        await this.#failWith(error, ErrorCode.INVALID_INPUT);
        return;
      }
      input = checked.value;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- lose() or drain() may have run while awaiting
    if (this.halt) return;
    let result: Promise<unknown>;
    try {
      result = workflow.run(createContext(this, workflow), input);
    } catch (err) {
      result = Promise.reject(toError(err));
    }
    const output = workflow.output;
    if (output) {
      // The stored output is what the schema produces; a result it refuses fails the run.
      result = result.then(async (value) => {
        const checked = await validateWithSchema(output.schema, value);
        if (!('issues' in checked)) return checked.value;
        throw new SchemaValidationError({
          target: 'output',
          subject: `the result of ${workflow.name}@${workflow.version} does not match its output schema`,
          issues: checked.issues,
        });
      });
    }
    result.then(
      (value) => this.#settle({ ok: true, value }),
      (error: unknown) => this.#settle({ ok: false, error }),
    );
  }

  /** The run was already finished in the data plane (a previous worker did not get to report it). */
  async #finishStored(run: StoredRun): Promise<void> {
    this.log.info({ status: run.status }, 'run already finished in the data plane; reporting its outcome again');
    switch (run.status) {
      case 'completed':
        this.#finish({ kind: 'completed', outputSize: run.outputSize ?? 0 });
        return;
      case 'cancelled':
        this.#finish({ kind: 'cancelled' });
        return;
      case 'failed': {
        let record: RunErrorRecord | undefined;
        if (run.errorRef) record = await this.deps.journal.getError(run.errorRef).catch(() => undefined);
        this.#finish({ kind: 'failed', errorCode: storedRunErrorCode(record), errorRef: run.errorRef ?? '' });
        return;
      }
      case 'open':
        return;
    }
  }

  #settle(result: { ok: true; value: unknown } | { ok: false; error: unknown }): void {
    // A run that finishes while draining (it was past its last durable call) completes normally.
    if (this.halt && this.halt !== 'drain') return;
    this.settled = true;
    const compensate = this.compensations.any && !this.cursor.nonDeterminism && (this.cancelRequested || !result.ok);
    if (compensate) {
      // Draining: the run is released, and the worker that takes it next compensates.
      if (this.halt === 'drain') return;
      // The workflow's own waits end here; compensations run as durable steps of their own.
      this.suspension.disposeWaits();
      this.scope
        .run({ internal: true }, () => runCompensations(this, result))
        .then((failures) => {
          // Suspended (a long retry backoff), drained or lost while compensating: the next execution resumes.
          if (this.halt) return;
          this.halt = 'settling';
          this.suspension.disposeWaits();
          return this.#settleAsync(result, failures);
        })
        .catch((err: unknown) => {
          if (!(err instanceof HaltedError)) this.abandon(err);
        });
      return;
    }
    this.halt = 'settling';
    this.suspension.disposeWaits();
    this.#settleAsync(result, []).catch((err: unknown) => {
      if (!(err instanceof HaltedError)) this.abandon(err);
    });
  }

  async #settleAsync(
    result: { ok: true; value: unknown } | { ok: false; error: unknown },
    compensationFailures: readonly CompensationFailure[],
  ): Promise<void> {
    const store = this.deps.journal;
    if (this.cancelRequested) {
      await this.writer.write(() => store.cancel(this.epoch));
      if (compensationFailures.length > 0) {
        // Each is a failed step on the timeline (and its error in the data plane); the run still ends cancelled.
        this.log.warn({ failed: compensationFailures.map((f) => f.name) }, 'run cancelled; some compensations failed');
      }
      this.log.info('run cancelled');
      this.#finish({ kind: 'cancelled' });
      return;
    }
    if (this.cursor.nonDeterminism) {
      await this.#failWith(this.cursor.nonDeterminism, ErrorCode.NON_DETERMINISM);
      return;
    }
    if (!result.ok) {
      await this.#failWith(toError(result.error), runErrorCode(result.error), compensationFailures);
      return;
    }
    const leftover = this.cursor.leftover();
    if (leftover) {
      const error = new NonDeterminismError({ position: leftover.position, expected: callOf(leftover), actual: undefined });
      await this.#failWith(error, ErrorCode.NON_DETERMINISM);
      return;
    }
    const last = this.writer.pendingNow();
    try {
      const { outputSize } = await this.writer.write(() => store.complete(this.epoch, result.value, last));
      this.log.info({ outputSize }, 'run completed');
      this.#finish({ kind: 'completed', outputSize });
    } catch (err) {
      if (err instanceof CairnError && err.code === ErrorCodes.NOT_SERIALIZABLE) {
        await this.#failWith(err, ErrorCode.APPLICATION);
        return;
      }
      throw err;
    }
  }

  /** Stores the error in the data plane (fenced) and ends the execution as failed. */
  async #failWith(error: Error, errorCode: ErrorCode, compensationFailures: readonly CompensationFailure[] = []): Promise<void> {
    const record: RunErrorRecord = {
      ...errorInfo(error),
      ...(error instanceof SchemaValidationError ? { issues: error.issues } : {}),
      errorCode: ErrorCode[errorCode],
      ...(compensationFailures.length > 0 ? { compensationFailures } : {}),
    };
    const last = this.writer.pendingNow();
    const { errorRef } = await this.writer.write(() => this.deps.journal.fail(this.epoch, record, last));
    // The data plane may log error messages; they never go to the control plane.
    this.log.warn({ err: error, errorCode: ErrorCode[errorCode], errorRef }, 'run failed');
    this.#finish({ kind: 'failed', errorCode, errorRef });
  }

  // ---- durable-call plumbing -----------------------------------------------------------------

  /**
   * Wraps one durable call: once the execution is halted (suspended, drained, lost, finished)
   * its promise never settles, so the workflow's promise chain is simply abandoned.
   */
  durable<T>(body: () => Promise<T>): Promise<T> {
    if (this.halt) return never();
    // Calls the workflow makes after it settled (a sibling chain still going) are never made.
    if (this.settled && !this.internal()) return never();
    if (this.cursor.nonDeterminism) return Promise.reject(this.cursor.nonDeterminism);
    this.suspension.callStarted();
    const end = (): void => this.suspension.callEnded();
    let promise: Promise<T>;
    try {
      promise = body();
    } catch (err) {
      promise = Promise.reject(toError(err));
    }
    return promise.then(
      (value) => {
        end();
        return this.halt ? never<T>() : value;
      },
      (err: unknown) => {
        end();
        if (this.halt || err instanceof HaltedError) return never<T>();
        throw err;
      },
    );
  }

  /**
   * When no durable call is making progress and some wait is longer than the threshold, the run
   * suspends. Checked two event-loop turns later, so promise chains in workflow code settle first

  /** Runs `op` as in-flight work a drain waits for. */
  async tracked<T>(op: () => Promise<T>): Promise<T> {
    let release!: () => void;
    const marker = new Promise<void>((resolve) => (release = resolve));
    this.inFlight.add(marker);
    try {
      return await op();
    } finally {
      this.inFlight.delete(marker);
      release();
    }
  }

  /** Nothing is in progress and only long waits remain: the run suspends, freeing the worker. */
  suspend(parked: readonly Wait[]): void {
    this.halt = 'suspend';
    this.suspension.disposeWaits();
    const outcome = suspendOutcome(
      parked,
      this.deps.clock.now(),
      (name) => this.#signalsConsumed.get(name) ?? 0,
      (name) => this.#consumedSignalIds.get(name) ?? [],
    );
    this.writer.flushNow().then(
      () => {
        this.log.info({ reason: SuspendReason[outcome.reason], wakeAt: outcome.wakeAt, signalName: outcome.signalName }, 'run suspended');
        this.#finish(outcome);
      },
      (err: unknown) => {
        if (!(err instanceof HaltedError)) this.abandon(err);
      },
    );
  }

  throwIfCancelled(): void {
    if (this.cancelRequested && !this.internal()) throw new CancelledError();
  }

  /** Whether the current call belongs to the compensation phase (which ignores cancellation). */
  internal(): boolean {
    return this.scope.getStore()?.internal === true;
  }

  countSignal(name: string, signalId: string | undefined): void {
    this.#signalsConsumed.set(name, (this.#signalsConsumed.get(name) ?? 0) + 1);
    // Only an opaque ID crosses to the control plane (a store's IDs always are; this keeps a
    // malformed one from getting the whole suspension refused).
    if (signalId === undefined || !isId(signalId)) return;
    const ids = this.#consumedSignalIds.get(name);
    if (ids) ids.push(signalId);
    else this.#consumedSignalIds.set(name, [signalId]);
  }
}

/** The error a scheduled run fails with when its input payload was deleted (kept in the data plane). */
function forkInputMissing(sourceRunId: string, payloadId: string): RunErrorRecord {
  return {
    name: 'CairnError',
    code: ErrorCodes.PAYLOAD_NOT_FOUND,
    errorCode: 'PAYLOAD_UNAVAILABLE',
    message:
      `[${ErrorCodes.PAYLOAD_NOT_FOUND}] The input payload ${payloadId} this fork of run ${sourceRunId} was given is not in this data plane's payload store: ` +
      'it was deleted. Store the input again (POST /v1/payloads on the gateway, or cairn runs fork --input) and fork again.',
  };
}

function payloadMissing(scheduleId: string, payloadId: string | undefined): RunErrorRecord {
  return {
    name: 'CairnError',
    code: ErrorCodes.PAYLOAD_NOT_FOUND,
    errorCode: 'PAYLOAD_UNAVAILABLE',
    message:
      `[${ErrorCodes.PAYLOAD_NOT_FOUND}] The input payload ${payloadId ?? ''} of schedule ${scheduleId} is not in this data plane's payload store: ` +
      'it was deleted. Store the input again (POST /v1/payloads on the gateway) and point the schedule at the new payload ID.',
  };
}
