import { AsyncLocalStorage } from 'node:async_hooks';
import { CairnError, ErrorCodes, assertName, assertVersion, createLogger, type Logger } from '@cairn/common';
import {
  FencedError,
  approvalSignalName,
  type Hasher,
  type RunDigests,
  type JournalEntry,
  type JournalKind,
  type JournalWrite,
  type PayloadStore,
  type StoredRun,
} from '@cairn/payload-store';
import {
  ErrorCode,
  StepInfoSchema,
  StepKind,
  StepReportSchema,
  StepStatus,
  SuspendReason,
  create,
  type StepInfo,
  type StepReport,
} from '@cairn/proto';
import {
  AgentMaxTurnsError,
  ApprovalTimeoutError,
  CancelledError,
  ChildWorkflowFailedError,
  EvalFailedError,
  ModelFailedError,
  NonDeterminismError,
  SchemaValidationError,
  SignalTimeoutError,
  SignalValidationError,
  StepFailedError,
  StepTimeoutError,
  TerminalError,
  type AgentOptions,
  type AgentResult,
  type AgentToolCall,
  type ApprovalOptions,
  type ApprovalResult,
  type DurableCall,
  type EvalFeedback,
  type EvalVerdict,
  type ModelCallOptions,
  type ModelFailure,
  type ModelResult,
  type ModelUsage,
  type ParallelOptions,
  type RetryPolicy,
  type SignalDefinition,
  type StepContext,
  type StepFunction,
  type StepOptions,
  type SignalWaitOptions,
  type WorkflowContext,
  type WorkflowDefinition,
  type WorkflowInput,
  type WorkflowOutput,
  type ChildOptions,
} from '@cairn/sdk';
import {
  type ResolvedRetryPolicy,
  isSignalDefinition,
  mergeRetryPolicies,
  resolveRetryPolicy,
  retryDelay,
  toApprovalResult,
  toMilliseconds,
  validateWithSchema,
} from '@cairn/sdk/internal';
import { DeterministicSource } from './determinism.js';
import {
  errorInfo,
  isKeyMisconfiguration,
  reviveError,
  runErrorCode,
  stepErrorCode,
  storedRunErrorCode,
  toError,
  type RunErrorRecord,
  type StepErrorRecord,
} from './errors.js';
import {
  DeltaPublisher,
  attemptModel,
  classifyModelError,
  errorMessage,
  failureOf,
  jsonSafe,
  prepareModelCall,
  transcriptRequest,
  ModelTimeoutError,
  type AttemptOutcome,
  type AttemptRecord,
  type ModelRef,
  type PreparedModelCall,
} from './model.js';
import type { ModelMessage } from 'ai';
import { systemClock, type Clock, type ClockTimer } from './clock.js';
import { SignalHub, type SignalSubscription } from './signals.js';
import {
  assistantMessage,
  executeTool,
  prepareAgent,
  toolMessage,
  toolStepName,
  type AgentCheckpoint,
  type PreparedAgent,
} from './agent.js';
import {
  JUDGE_SCHEMA,
  JUDGE_SYSTEM,
  judgePrompt,
  judgeVerdict,
  localChecks,
  prepareEval,
  withFeedback,
  type JudgeAnswer,
  type PreparedEval,
} from './eval.js';

/** A run handed to the engine under a lease epoch. */
export interface RunAssignment {
  readonly runId: string;
  readonly epoch: number;
  readonly workflowName: string;
  readonly workflowVersion: string;
  /** Cancellation was requested before the task was dispatched. */
  readonly cancelRequested?: boolean;
  /**
   * For a forked run: the source run whose input and journal entries before `position` are copied
   * into this run (once, fenced by this epoch) before it replays.
   */
  readonly forkFrom?: { readonly runId: string; readonly position: number } | undefined;
  /**
   * For a run a schedule fired: its input is created here from the stored payload (`null`
   * without one) before the run is acquired, once; a later dispatch finds it and keeps it.
   */
  readonly scheduled?: { readonly scheduleId: string; readonly payloadId: string | undefined } | undefined;
  /**
   * The defaults registered with the run's workflow version (the control plane's RunTask carries
   * them). A step's retry policy is laid together field by field: the step's own `retry` wins,
   * then this registered `retry`, then the workflow's `retry` in code, then the SDK's defaults. Its
   * timeout: the step's own `timeout`, else `stepTimeoutMs`, else the workflow's `timeouts.step`.
   */
  readonly defaults?: StepDefaults | undefined;
  /**
   * Child runs of this run that the control plane ended `timed_out` (the RunTask of a run woken by
   * a child's end lists them): a `ctx.child` waiting on one fails with ChildWorkflowFailedError.
   */
  readonly timedOutChildren?: readonly string[] | undefined;
}

/** The registered defaults for `ctx.step` calls that set no policy or timeout of their own. */
export interface StepDefaults {
  /** The retry policy of a step without a `retry` option. */
  readonly retry?: RetryPolicy | undefined;
  /** The per-attempt timeout, in milliseconds, of a step without a `timeout` option. */
  readonly stepTimeoutMs?: number | undefined;
}

/**
 * How an execution ended, which decides what the worker tells the control plane:
 * `completed`/`failed`/`cancelled`/`suspended`/`released` each map to one message; `lost` (the
 * lease is gone or a write was fenced) and `abandoned` (the payload store stayed unreachable) send
 * nothing, so the lease expires and the control plane dispatches the run again. `misconfigured`:
 * the run's data could not be opened with this process's encryption keys (a key ID it lacks, or a
 * key that is not the one the data was sealed with); nothing was written for the run after that,
 * and the worker gives it back for a correctly configured worker to take. `refused`: the task named a
 * workflow other than the one the run was stored with in the data plane (CAIRN-1191); nothing was
 * written or run, nothing is sent, and the lease expires.
 */
export type RunOutcome =
  | { readonly kind: 'completed'; readonly outputSize: number }
  | { readonly kind: 'failed'; readonly errorCode: ErrorCode; readonly errorRef: string }
  | { readonly kind: 'cancelled' }
  | {
      readonly kind: 'suspended';
      readonly reason: SuspendReason;
      /** Milliseconds since the epoch; 0 for no timer. */
      readonly wakeAt: number;
      readonly signalName: string;
      readonly signalsConsumed: number;
      /** The child run whose end wakes the run ('' for none). */
      readonly childRunId: string;
    }
  | { readonly kind: 'released' }
  | { readonly kind: 'lost' }
  | { readonly kind: 'abandoned'; readonly error: unknown }
  | { readonly kind: 'misconfigured'; readonly keyId: string | undefined; readonly error: CairnError }
  | { readonly kind: 'refused'; readonly error: CairnError };

/** One execution of a run under one lease epoch. */
export interface RunExecution {
  readonly runId: string;
  readonly epoch: number;
  /** Resolves once with how the execution ended; never rejects. */
  readonly done: Promise<RunOutcome>;
  /** Cancels the run: `ctx.signal` aborts and pending and new durable calls reject with CancelledError. */
  cancel(): void;
  /**
   * The lease is gone: stop at once and report nothing more. A step attempt already running is not
   * journaled by a later call; if it finishes, its result is offered to the journal once, where the
   * epoch fence refuses it when another worker holds the run (and keeps it for replay otherwise).
   */
  lose(): void;
  /**
   * The worker is draining: stop at the next durable-call boundary. A step already running may
   * finish and be journaled within `timeoutMs`; the outcome is then `released` (unless the run
   * completes first).
   */
  drain(timeoutMs: number): void;
  /**
   * How many durable calls of each kind this execution answered from the journal (replayed rather
   * than executed): what a replay costs, for tests and diagnostics.
   */
  readonly replayed: { readonly step: number; readonly model: number };
}

export interface EngineOptions {
  /** The data plane's payload store (journal, inputs, outputs, errors, signals). */
  readonly store: PayloadStore;
  /** HMACs dynamic step keys before they leave the data plane. */
  readonly hasher: Hasher;
  readonly workflows: readonly WorkflowDefinition[];
  /** Waits up to this long stay in memory; longer ones suspend the run. Default 5000. */
  readonly suspendThresholdMs?: number;
  /** The shared signal LISTEN; one is created (and closed by `close()`) when absent. */
  readonly signals?: SignalHub;
  /** Receives every step status change, off the hot path (the worker batches them). */
  readonly onStepReport?: (report: StepReport) => void;
  readonly logger?: Logger;
  /**
   * Where time comes from: `ctx.now()`, recorded times and deadlines, in-memory waits, backoffs and
   * attempt timeouts. Default: the system clock. Tests give a virtual one (`@cairn/worker/testing`).
   */
  readonly clock?: Clock;
  /**
   * Sends a StartChild to the control plane and resolves once it is answered: `ok` (acknowledged),
   * `workflow_not_found`, or `not_held` (the parent's lease is gone). The worker sends it through
   * its outbox; without it, `ctx.child` fails.
   */
  readonly startChild?: (request: StartChildRequest) => Promise<StartChildAnswer>;
}

/** What a StartChild request carries (see the worker protocol). */
export interface StartChildRequest {
  readonly parentRunId: string;
  readonly parentEpoch: number;
  readonly position: number;
  readonly childRunId: string;
  readonly workflowName: string;
  readonly workflowVersion: string;
  readonly inputSize: number;
}

/** How the control plane answered a StartChild. */
export type StartChildAnswer = 'ok' | 'workflow_not_found' | 'not_held' | 'quota_exceeded' | 'workflow_deprecated';

/**
 * The replay engine: runs workflow functions against the data-plane journal. It knows nothing of
 * gRPC; the worker turns each {@link RunOutcome} into a control-plane message.
 */
export class Engine {
  readonly #store: PayloadStore;
  readonly #hasher: Hasher;
  readonly #workflows = new Map<string, WorkflowDefinition>();
  readonly #thresholdMs: number;
  readonly #signals: SignalHub;
  readonly #ownsSignals: boolean;
  readonly #onStepReport: (report: StepReport) => void;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #startChild: ((request: StartChildRequest) => Promise<StartChildAnswer>) | undefined;

  constructor(options: EngineOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#startChild = options.startChild;
    this.#store = options.store;
    this.#hasher = options.hasher;
    this.#thresholdMs = options.suspendThresholdMs ?? 5000;
    if (!Number.isFinite(this.#thresholdMs) || this.#thresholdMs < 0) {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `suspendThresholdMs must be a non-negative number, got ${this.#thresholdMs}.`);
    }
    this.#logger = options.logger ?? createLogger('worker');
    this.#signals = options.signals ?? new SignalHub(options.store, this.#logger);
    this.#ownsSignals = options.signals === undefined;
    this.#onStepReport = options.onStepReport ?? (() => undefined);
    for (const def of options.workflows) {
      const key = workflowKey(def.name, def.version);
      if (this.#workflows.has(key)) {
        throw new CairnError(
          ErrorCodes.INVALID_ARGUMENT,
          `Workflow "${def.name}" version "${def.version}" is registered twice; give each definition its own name or version.`,
        );
      }
      this.#workflows.set(key, def);
    }
  }

  /** The workflow definitions by name and version. */
  hasWorkflow(name: string, version: string): boolean {
    return this.#workflows.has(workflowKey(name, version));
  }

  /** Starts executing a run; the returned handle controls it and reports how it ended. */
  start(assignment: RunAssignment): RunExecution {
    return new Execution(
      {
        store: this.#store,
        hasher: this.#hasher,
        thresholdMs: this.#thresholdMs,
        clock: this.#clock,
        signals: this.#signals,
        report: this.#onStepReport,
        logger: this.#logger.child({ runId: assignment.runId, epoch: assignment.epoch }),
        workflow: this.#workflows.get(workflowKey(assignment.workflowName, assignment.workflowVersion)),
        startChild: this.#startChild,
      },
      assignment,
    );
  }

  /** Stops the signal LISTEN if this engine created it. */
  async close(): Promise<void> {
    if (this.#ownsSignals) await this.#signals.close();
  }
}

function workflowKey(name: string, version: string): string {
  return `${name}@${version}`;
}

interface ExecutionDeps {
  readonly store: PayloadStore;
  readonly hasher: Hasher;
  readonly thresholdMs: number;
  readonly clock: Clock;
  readonly signals: SignalHub;
  readonly report: (report: StepReport) => void;
  readonly logger: Logger;
  readonly workflow: WorkflowDefinition | undefined;
  readonly startChild: ((request: StartChildRequest) => Promise<StartChildAnswer>) | undefined;
}

/** Why an execution stopped running workflow code. */
type Halt = 'settling' | 'suspend' | 'drain' | 'lost' | 'abandoned' | 'misconfigured' | 'refused';

/** Thrown inside the engine when the execution was halted; never reaches workflow code. */
class HaltedError extends Error {
  constructor() {
    super('execution halted');
    this.name = 'HaltedError';
  }
}

/** A durable call waiting for a time or a signal. */
interface Wait {
  readonly reason: 'sleep' | 'signal' | 'retry' | 'child';
  readonly dueAt: number | undefined;
  readonly signalName: string | undefined;
  /** A child run the wait is for (its end wakes the run). */
  readonly childRunId: string | undefined;
  /** Longer than the suspend threshold: it does not keep the execution from suspending. */
  readonly long: boolean;
  /** Made by the compensation phase: cancellation does not end it. */
  readonly internal: boolean;
  /** Rejects the wait (cancellation). */
  fail(error: Error): void;
  /** Drops the wait; its promise never settles (the execution is halted). */
  dispose(): void;
}

/**
 * Where a durable call is made from, carried through promise chains by AsyncLocalStorage: the
 * workflow's main line (no store), a `ctx.parallel` branch, or the compensation phase.
 */
interface CallScope {
  /**
   * Inside a `ctx.parallel` branch: the branch's path (`p0.3` is item 3 of the run's first
   * parallel; `p0.3#1.0` item 0 of a parallel nested as the branch's second call) and how many
   * calls it made so far. A branch's calls are identified by path and count, not by position,
   * because positions are handed out in completion order across branches (see `#slot`).
   */
  readonly branch?: { readonly path: string; seq: number; random?: DeterministicSource };
  /** The compensation phase: it runs after the workflow function settled and ignores cancellation. */
  readonly internal?: boolean;
}

/** A durable call's place in the journal. */
interface Slot {
  readonly position: number;
  /** What crosses as `key_digest`: the HMAC of the call's key, or of its identity in a branch. */
  readonly keyDigest: string | undefined;
  /** `StepContext.idempotencyKey`: stable over attempts and replays of the call. */
  readonly idempotencyKey: string;
}

/** A step's compensation, registered when the step completed (or replayed its result). */
interface Compensation {
  /** The compensated step's position; compensations run in reverse position order. */
  readonly position: number;
  readonly stepName: string;
  readonly result: unknown;
  readonly fn: (result: unknown, step: StepContext) => unknown;
  readonly policy: ResolvedRetryPolicy;
  readonly timeoutMs: number | undefined;
}

/** A compensation that failed for good, recorded with the run's error in the data plane. */
export interface CompensationFailure {
  readonly name: string;
  readonly position: number;
  readonly stepPosition: number;
  readonly error: { readonly name: string; readonly message: string };
}

const identityOf = (kind: JournalKind, name: string, keyDigest: string | undefined): string => `${kind}|${name}|${keyDigest ?? ''}`;

/** `compensate.<step>`, cut to the name limit. */
const compensationName = (stepName: string): string => `compensate.${stepName}`.slice(0, 100);

/** setTimeout's limit; longer waits rely on suspension. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Writes to the payload store retried this many times on connection errors before giving up. */
const WRITE_RETRIES = 8;
/** When a run waits for two different signal names at once, it wakes at least this often. */
const MULTI_SIGNAL_POLL_MS = 60_000;

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const time = (ms: number | undefined): bigint => BigInt(Math.max(0, Math.round(ms ?? 0)));

const STEP_STATUS: Record<JournalEntry['status'], StepStatus> = {
  completed: StepStatus.COMPLETED,
  failed: StepStatus.FAILED,
  retrying: StepStatus.RETRYING,
  waiting: StepStatus.WAITING,
  timed_out: StepStatus.FAILED,
};

const STEP_KIND: Record<Exclude<JournalEntry['kind'], 'now'>, StepKind> = {
  step: StepKind.STEP,
  sleep: StepKind.SLEEP,
  signal: StepKind.SIGNAL,
  model: StepKind.MODEL,
  child: StepKind.CHILD,
};

/**
 * Where a model call stands between attempts: journaled (sealed) with each `retrying` entry, so a
 * run that suspends for a backoff resumes on the right model with its attempt history, and with
 * the final entry, so re-reports know the provider, model and tokens of the last attempt.
 */
interface ModelCallState {
  /** The model of the next attempt, as an index into the call's list. */
  readonly modelIndex: number;
  /** Attempts already made with that model. */
  readonly modelAttempt: number;
  /** Attempts made over all models. */
  readonly attempt: number;
  /** Models given up, in order. */
  readonly failures: readonly ModelFailure[];
  /** Every attempt so far, for the transcript. */
  readonly attempts: readonly AttemptRecord[];
}

const FIRST_MODEL_STATE: ModelCallState = { modelIndex: 0, modelAttempt: 0, attempt: 0, failures: [], attempts: [] };

function modelState(value: unknown, attempt: number): ModelCallState {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Partial<ModelCallState>;
  return {
    modelIndex: typeof v.modelIndex === 'number' ? v.modelIndex : 0,
    modelAttempt: typeof v.modelAttempt === 'number' ? v.modelAttempt : 0,
    attempt: typeof v.attempt === 'number' ? v.attempt : attempt,
    failures: Array.isArray(v.failures) ? v.failures : [],
    attempts: Array.isArray(v.attempts) ? v.attempts : [],
  };
}

class Execution implements RunExecution {
  readonly runId: string;
  readonly epoch: number;
  readonly done: Promise<RunOutcome>;

  readonly #deps: ExecutionDeps;
  readonly #assignment: RunAssignment;
  readonly #log: Logger;
  #resolveDone!: (outcome: RunOutcome) => void;
  #finished = false;

  #journal = new Map<number, JournalEntry>();
  /** Journal positions by call identity (kind, name, key digest), for calls made in a branch or while compensating. */
  readonly #byIdentity = new Map<string, number>();
  /** Positions this execution has handed out; a journal entry at any other is left over. */
  readonly #claimed = new Set<number>();
  #position = 0;
  /** How many top-level `ctx.parallel` calls the workflow made (names their branches). */
  #parallels = 0;
  /** How many top-level `ctx.agent` calls the workflow made (names their calls). */
  #agents = 0;
  readonly replayed = { step: 0, model: 0 };
  readonly #scope = new AsyncLocalStorage<CallScope>();
  /** The workflow function has settled: its remaining calls never resolve (compensations still run). */
  #settled = false;
  readonly #compensations = new Map<number, Compensation>();
  /** Steps with a compensation still running: a failure waits for them, so they can be undone too. */
  #compensable = 0;
  #pendingNow: JournalWrite[] = [];
  readonly #signalsConsumed = new Map<string, number>();
  #random: DeterministicSource | undefined;
  /** The run's digest functions, set once the run is loaded (its workflow and digest version). */
  #digests: RunDigests | undefined;
  /** A forked run shares its source's seed; its new child runs need IDs of their own. */
  #forked = false;
  #nonDeterminism: NonDeterminismError | undefined;

  #halt: Halt | undefined;
  #cancelRequested = false;
  /** `ctx.signal`: aborted on cancellation. */
  readonly #cancelController = new AbortController();
  /** Aborted when the execution ends, so step code still running learns it must stop. */
  readonly #stopController = new AbortController();
  readonly #cancelListeners = new Set<(error: CancelledError) => void>();

  /** Durable calls in progress, not counting those parked in a long wait. */
  #active = 0;
  #parked = 0;
  /** Bumped whenever a durable call starts or ends; lets the idle check see progress. */
  #progress = 0;
  #idleCheckScheduled = false;
  readonly #waits = new Set<Wait>();
  readonly #subscriptions = new Set<SignalSubscription>();
  /** Step attempts running or being journaled (a drain lets them finish). */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(deps: ExecutionDeps, assignment: RunAssignment) {
    this.#deps = deps;
    this.#assignment = assignment;
    this.runId = assignment.runId;
    this.epoch = assignment.epoch;
    this.#log = deps.logger;
    this.done = new Promise<RunOutcome>((resolve) => (this.#resolveDone = resolve));
    if (assignment.cancelRequested) this.#markCancelled();
    this.#main().catch((err: unknown) => this.#abandon(err));
  }

  // ---- control -------------------------------------------------------------------------------

  cancel(): void {
    if (this.#finished || this.#cancelRequested) return;
    this.#log.info('cancellation requested');
    this.#markCancelled();
    if (this.#halt) return;
    const error = new CancelledError();
    for (const wait of [...this.#waits]) if (!wait.internal) wait.fail(error);
    for (const listener of [...this.#cancelListeners]) listener(error);
  }

  #markCancelled(): void {
    this.#cancelRequested = true;
    this.#cancelController.abort(new CancelledError());
  }

  lose(): void {
    if (this.#finished) return;
    this.#log.warn('lease lost; stopping the run');
    this.#halt = 'lost';
    this.#finish({ kind: 'lost' });
  }

  drain(timeoutMs: number): void {
    if (this.#finished || this.#halt) return;
    this.#halt = 'drain';
    this.#disposeWaits();
    void (async () => {
      if (this.#inFlight.size > 0) {
        this.#log.info({ steps: this.#inFlight.size }, 'draining: waiting for running steps to be journaled');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([...this.#inFlight]),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
        ]);
        clearTimeout(timer);
      }
      if (this.#finished || this.#halt !== 'drain') return;
      try {
        await this.#flushNow();
      } catch (err) {
        if (err instanceof HaltedError) return;
        this.#log.warn({ err }, 'could not journal ctx.now() values before release');
      }
      this.#finish({ kind: 'released' });
    })();
  }

  #abandon(err: unknown): void {
    if (this.#finished) return;
    this.#log.error({ err }, 'run abandoned after an internal error; the control plane will dispatch it again when the lease expires');
    this.#halt = 'abandoned';
    this.#finish({ kind: 'abandoned', error: err });
  }

  /**
   * This process's keys cannot open the run's data. Failing the run would be wrong (a correctly
   * configured worker can run it) and would seal its error with a key that may itself be wrong, so
   * the execution stops without another write.
   */
  #misconfigured(error: CairnError): void {
    if (this.#finished) return;
    const keyId = typeof error.details['keyId'] === 'string' ? error.details['keyId'] : undefined;
    this.#log.error({ keyId, err: error }, `cannot open this run's data with this worker's encryption keys; giving the run back`);
    this.#halt = 'misconfigured';
    this.#finish({ kind: 'misconfigured', keyId, error });
  }

  #finish(outcome: RunOutcome): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#halt ??= 'settling';
    this.#disposeWaits();
    for (const subscription of this.#subscriptions) subscription.close();
    this.#subscriptions.clear();
    this.#stopController.abort(new CairnError(ErrorCodes.LEASE_LOST, 'The execution of this run ended on this worker.'));
    this.#resolveDone(outcome);
  }

  #disposeWaits(): void {
    for (const wait of [...this.#waits]) wait.dispose();
  }

  // ---- the run -------------------------------------------------------------------------------

  async #main(): Promise<void> {
    const { store } = this.#deps;
    let run: StoredRun;
    let journal: JournalEntry[];
    try {
      const forkFrom = this.#assignment.forkFrom;
      if (forkFrom) {
        const { created, copied } = await this.#write(() => store.forkRun(this.runId, this.epoch, forkFrom));
        if (created)
          this.#log.info({ sourceRunId: forkFrom.runId, position: forkFrom.position, copied }, 'forked run created from its source');
      }
      const scheduled = this.#assignment.scheduled;
      if (scheduled) {
        const created = await this.#write(() =>
          store.createRunFromPayload(
            {
              runId: this.runId,
              workflowName: this.#assignment.workflowName,
              payloadId: scheduled.payloadId,
              hmacKeyId: this.#deps.hasher.activeKeyId,
            },
            payloadMissing(scheduled.scheduleId, scheduled.payloadId),
          ),
        );
        if (created === 'missing')
          this.#log.warn(
            { scheduleId: scheduled.scheduleId, payloadId: scheduled.payloadId },
            'schedule input payload is gone; the run fails',
          );
        else if (created === 'created')
          this.#log.debug({ scheduleId: scheduled.scheduleId, payloadId: scheduled.payloadId }, 'scheduled run input created');
      }
      ({ run, journal } = await this.#write(() => store.acquire(this.runId, this.epoch, { workflowName: this.#assignment.workflowName })));
    } catch (err) {
      if (err instanceof HaltedError) return;
      // A task naming another workflow than the stored run's is not run and nothing is written:
      // running W2's code over W1's run would hand W1's data to code it was never meant for.
      if (err instanceof CairnError && err.code === ErrorCodes.TASK_WORKFLOW_MISMATCH) {
        this.#log.error({ err }, 'run task refused: it names another workflow than the run stored in this data plane');
        this.#halt = 'refused';
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
        this.#log.error({ err }, 'run has no input in this data plane');
        this.#finish({ kind: 'failed', errorCode: ErrorCode.PAYLOAD_UNAVAILABLE, errorRef: '' });
        return;
      }
      throw err;
    }
    if (this.#finished) return;
    for (const entry of journal) {
      this.#journal.set(entry.position, entry);
      if (entry.keyDigest !== undefined) this.#byIdentity.set(identityOf(entry.kind, entry.name, entry.keyDigest), entry.position);
      if (entry.kind === 'signal' && entry.status === 'completed') this.#countSignal(entry.name);
    }
    this.#reportJournal(journal);

    if (run.status !== 'open') {
      await this.#finishStored(run);
      return;
    }
    const workflow = this.#deps.workflow;
    if (!workflow) {
      const { workflowName, workflowVersion } = this.#assignment;
      await this.#failWith(
        new CairnError(
          ErrorCodes.WORKFLOW_NOT_FOUND,
          `This worker has no workflow "${workflowName}" version "${workflowVersion}". Deploy a worker that registers it.`,
        ),
        ErrorCode.WORKFLOW_NOT_FOUND,
      );
      return;
    }
    if (this.#halt) return;
    this.#random = new DeterministicSource(run.seed);
    try {
      this.#digests = this.#deps.hasher.forRun(run.workflowName, run.digestVersion, run.hmacKeyId);
    } catch (err) {
      // The run's HMAC key was retired too early: give the run back, like a missing encryption key.
      if (isKeyMisconfiguration(err)) {
        this.#misconfigured(err);
        return;
      }
      throw err;
    }
    this.#forked = run.forkedFrom !== undefined;
    this.#log.debug({ journal: journal.length }, 'executing run');
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
    if (this.#halt) return;
    let result: Promise<unknown>;
    try {
      result = workflow.run(this.#context(workflow), input);
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
    this.#log.info({ status: run.status }, 'run already finished in the data plane; reporting its outcome again');
    switch (run.status) {
      case 'completed':
        this.#finish({ kind: 'completed', outputSize: run.outputSize ?? 0 });
        return;
      case 'cancelled':
        this.#finish({ kind: 'cancelled' });
        return;
      case 'failed': {
        let record: RunErrorRecord | undefined;
        if (run.errorRef) record = await this.#deps.store.getError(run.errorRef).catch(() => undefined);
        this.#finish({ kind: 'failed', errorCode: storedRunErrorCode(record), errorRef: run.errorRef ?? '' });
        return;
      }
      case 'open':
        return;
    }
  }

  #settle(result: { ok: true; value: unknown } | { ok: false; error: unknown }): void {
    // A run that finishes while draining (it was past its last durable call) completes normally.
    if (this.#halt && this.#halt !== 'drain') return;
    this.#settled = true;
    const compensate =
      (this.#compensations.size > 0 || this.#compensable > 0) && !this.#nonDeterminism && (this.#cancelRequested || !result.ok);
    if (compensate) {
      // Draining: the run is released, and the worker that takes it next compensates.
      if (this.#halt === 'drain') return;
      // The workflow's own waits end here; compensations run as durable steps of their own.
      this.#disposeWaits();
      this.#scope
        .run({ internal: true }, () => this.#compensate(result))
        .then((failures) => {
          // Suspended (a long retry backoff), drained or lost while compensating: the next execution resumes.
          if (this.#halt) return;
          this.#halt = 'settling';
          this.#disposeWaits();
          return this.#settleAsync(result, failures);
        })
        .catch((err: unknown) => {
          if (!(err instanceof HaltedError)) this.#abandon(err);
        });
      return;
    }
    this.#halt = 'settling';
    this.#disposeWaits();
    this.#settleAsync(result, []).catch((err: unknown) => {
      if (!(err instanceof HaltedError)) this.#abandon(err);
    });
  }

  /**
   * Runs the registered compensations, newest step first, each as a durable step named
   * `compensate.<step>`. A step still running when the workflow failed finishes first, so what it
   * did is undone too. A compensation that fails for good does not stop the others; it is returned.
   */
  async #compensate(result: { ok: true; value: unknown } | { ok: false; error: unknown }): Promise<CompensationFailure[]> {
    for (;;) {
      // Two turns, so registrations chained on steps that just finished land first.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      if (this.#inFlight.size === 0) break;
      await Promise.allSettled([...this.#inFlight]);
    }
    const list = [...this.#compensations.values()].sort((a, b) => b.position - a.position);
    this.#log.info(
      { compensations: list.length, cause: this.#cancelRequested ? 'cancelled' : result.ok ? 'completed' : 'failed' },
      'compensating',
    );
    const failures: CompensationFailure[] = [];
    for (const c of list) {
      const name = compensationName(c.stepName);
      const slot = this.#slot('step', name, undefined, `compensate:${c.position}`);
      try {
        await this.#durable(() => this.#step(slot, name, (step: StepContext) => c.fn(c.result, step), c.policy, c.timeoutMs));
      } catch (err) {
        const error = toError(err);
        const cause = error instanceof StepFailedError ? { name: error.causeName, message: error.causeMessage } : error;
        this.#log.error({ step: c.stepName, position: slot.position, err: error }, 'compensation failed for good');
        failures.push({ name, position: slot.position, stepPosition: c.position, error: { name: cause.name, message: cause.message } });
      }
    }
    return failures;
  }

  async #settleAsync(
    result: { ok: true; value: unknown } | { ok: false; error: unknown },
    compensationFailures: readonly CompensationFailure[],
  ): Promise<void> {
    const { store } = this.#deps;
    if (this.#cancelRequested) {
      await this.#write(() => store.cancelRun(this.runId, this.epoch));
      if (compensationFailures.length > 0) {
        // Each is a failed step on the timeline (and its error in the data plane); the run still ends cancelled.
        this.#log.warn({ failed: compensationFailures.map((f) => f.name) }, 'run cancelled; some compensations failed');
      }
      this.#log.info('run cancelled');
      this.#finish({ kind: 'cancelled' });
      return;
    }
    if (this.#nonDeterminism) {
      await this.#failWith(this.#nonDeterminism, ErrorCode.NON_DETERMINISM);
      return;
    }
    if (!result.ok) {
      await this.#failWith(toError(result.error), runErrorCode(result.error), compensationFailures);
      return;
    }
    const leftover = [...this.#journal.values()].find((e) => !this.#claimed.has(e.position));
    if (leftover) {
      const error = new NonDeterminismError({ position: leftover.position, expected: callOf(leftover), actual: undefined });
      await this.#failWith(error, ErrorCode.NON_DETERMINISM);
      return;
    }
    const last = this.#pendingNow.slice();
    try {
      const { outputSize } = await this.#write(() => store.completeRun(this.runId, this.epoch, result.value, last));
      this.#log.info({ outputSize }, 'run completed');
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
    const last = this.#pendingNow.slice();
    const { errorRef } = await this.#write(() => this.#deps.store.failRun(this.runId, this.epoch, record, last));
    // The data plane may log error messages; they never go to the control plane.
    this.#log.warn({ err: error, errorCode: ErrorCode[errorCode], errorRef }, 'run failed');
    this.#finish({ kind: 'failed', errorCode, errorRef });
  }

  // ---- writes --------------------------------------------------------------------------------

  /**
   * Runs a payload-store operation. A FencedError means another epoch owns the run: the
   * execution is lost. Data this process's keys cannot open stops the execution as misconfigured.
   * Connection errors are retried with backoff, then the run is abandoned. Other Cairn errors
   * (unserializable values, a value damaged in the database) go to the caller.
   */
  async #write<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      // After a lost lease, a step attempt that was already running may still journal its result:
      // the fence refuses it if another epoch holds the run, and keeps it for replay otherwise.
      if (this.#halt === 'abandoned' || this.#halt === 'misconfigured' || (this.#halt === 'lost' && attempt > 0)) throw new HaltedError();
      try {
        return await op();
      } catch (err) {
        if (err instanceof FencedError) {
          this.#log.warn({ err }, 'journal write fenced: another worker holds this run now');
          this.lose();
          throw new HaltedError();
        }
        if (isKeyMisconfiguration(err)) {
          this.#misconfigured(err);
          throw new HaltedError();
        }
        if (err instanceof CairnError) throw err;
        if (attempt >= WRITE_RETRIES) {
          this.#abandon(err);
          throw new HaltedError();
        }
        this.#log.warn({ err, attempt: attempt + 1 }, 'payload store unavailable; retrying');
        await delay(Math.min(100 * 2 ** attempt, 2000));
      }
    }
  }

  /** Appends journal entries together with any buffered ctx.now() values: one commit. */
  async #append(entries: readonly JournalWrite[]): Promise<{ errorRefs: Map<number, string>; sizes: Map<number, number> }> {
    const now = this.#pendingNow.slice();
    const result = await this.#write(() => this.#deps.store.append(this.runId, this.epoch, [...now, ...entries]));
    if (now.length > 0) this.#pendingNow = this.#pendingNow.filter((e) => !now.includes(e));
    return result;
  }

  async #flushNow(): Promise<void> {
    if (this.#pendingNow.length > 0) await this.#append([]);
  }

  // ---- reports -------------------------------------------------------------------------------

  #report(epoch: number, info: Partial<Omit<StepInfo, '$typeName'>>): void {
    try {
      this.#deps.report(create(StepReportSchema, { runId: this.runId, epoch, step: create(StepInfoSchema, info) }));
    } catch (err) {
      this.#log.warn({ err }, 'could not queue a step report');
    }
  }

  /** Re-reports what the journal holds (idempotent upserts that reconcile the control plane). */
  #reportJournal(journal: readonly JournalEntry[]): void {
    for (const e of journal) {
      if (e.kind === 'now') continue;
      const failed = e.status === 'failed' || e.status === 'retrying';
      const errorCode =
        e.status === 'timed_out'
          ? ErrorCode.SIGNAL_TIMEOUT
          : failed
            ? e.error
              ? stepErrorCode(e.error)
              : ErrorCode.STEP_FAILED
            : ErrorCode.UNSPECIFIED;
      this.#report(e.epoch, {
        position: e.position,
        kind: STEP_KIND[e.kind],
        name: e.name,
        keyDigest: e.keyDigest ?? '',
        attempt: e.attempt,
        status: STEP_STATUS[e.status],
        errorCode,
        retryable: e.status === 'retrying',
        errorRef: e.errorRef ?? '',
        startedAt: time(e.startedAt),
        endedAt: time(e.endedAt),
        dueAt: time(e.dueAt),
        outputSize: e.status === 'completed' ? BigInt(e.outputSize) : 0n,
        ...(e.kind === 'model' ? modelReportFields(e) : {}),
      });
    }
  }

  // ---- durable-call plumbing -----------------------------------------------------------------

  /**
   * Wraps one durable call: once the execution is halted (suspended, drained, lost, finished)
   * its promise never settles, so the workflow's promise chain is simply abandoned.
   */
  #durable<T>(body: () => Promise<T>): Promise<T> {
    if (this.#halt) return never();
    // Calls the workflow makes after it settled (a sibling chain still going) are never made.
    if (this.#settled && !this.#internal()) return never();
    if (this.#nonDeterminism) return Promise.reject(this.#nonDeterminism);
    this.#active++;
    this.#progress++;
    const end = (): void => {
      this.#active--;
      this.#progress++;
      this.#scheduleIdleCheck();
    };
    let promise: Promise<T>;
    try {
      promise = body();
    } catch (err) {
      promise = Promise.reject(toError(err));
    }
    return promise.then(
      (value) => {
        end();
        return this.#halt ? never<T>() : value;
      },
      (err: unknown) => {
        end();
        if (this.#halt || err instanceof HaltedError) return never<T>();
        throw err;
      },
    );
  }

  /**
   * When no durable call is making progress and some wait is longer than the threshold, the run
   * suspends. Checked two event-loop turns later, so promise chains in workflow code settle first
   * (a `Promise.race` won by a short wait keeps the run going).
   */
  #scheduleIdleCheck(): void {
    if (this.#idleCheckScheduled || this.#halt || this.#active > 0 || this.#parked === 0) return;
    this.#idleCheckScheduled = true;
    const progress = this.#progress;
    setImmediate(() =>
      setImmediate(() => {
        this.#idleCheckScheduled = false;
        if (this.#halt || this.#active > 0 || this.#parked === 0) return;
        if (this.#progress !== progress) this.#scheduleIdleCheck();
        else this.#suspend();
      }),
    );
  }

  #suspend(): void {
    const parked = [...this.#waits].filter((w) => w.long);
    this.#halt = 'suspend';
    this.#disposeWaits();
    const timed = parked.filter((w) => w.dueAt !== undefined).sort((a, b) => a.dueAt! - b.dueAt!);
    const names = [...new Set(parked.flatMap((w) => (w.signalName === undefined ? [] : [w.signalName])))];
    let wakeAt = timed[0]?.dueAt ?? 0;
    if (names.length > 1) wakeAt = Math.min(wakeAt || Infinity, this.#deps.clock.now() + MULTI_SIGNAL_POLL_MS);
    const childRunId = parked.find((w) => w.childRunId !== undefined)?.childRunId ?? '';
    // Waiting on a signal and a child at once: the signal names the suspension and the child still wakes it.
    const reason =
      names.length > 0
        ? SuspendReason.SIGNAL
        : childRunId !== ''
          ? SuspendReason.CHILD
          : timed[0]?.reason === 'retry'
            ? SuspendReason.RETRY_BACKOFF
            : SuspendReason.SLEEP;
    const signalName = names[0] ?? '';
    const outcome: RunOutcome = {
      kind: 'suspended',
      reason,
      wakeAt,
      signalName,
      signalsConsumed: signalName === '' ? 0 : (this.#signalsConsumed.get(signalName) ?? 0),
      childRunId,
    };
    this.#flushNow().then(
      () => {
        this.#log.info({ reason: SuspendReason[reason], wakeAt, signalName }, 'run suspended');
        this.#finish(outcome);
      },
      (err: unknown) => {
        if (!(err instanceof HaltedError)) this.#abandon(err);
      },
    );
  }

  /**
   * Waits until `dueAt` (if any) or a signal notification (if subscribed). Waits longer than the
   * threshold are "parked": they let the run suspend once nothing else is in progress.
   */
  #wait(options: {
    reason: Wait['reason'];
    dueAt: number | undefined;
    signalName?: string;
    subscription?: SignalSubscription;
    childRunId?: string;
  }): Promise<void> {
    if (this.#halt) return never();
    const internal = this.#internal();
    // A step of the settled workflow does not start another attempt.
    if (this.#settled && !internal) return never();
    if (this.#cancelRequested && !internal) return Promise.reject(new CancelledError());
    const { reason, dueAt, signalName, subscription, childRunId } = options;
    const remaining = dueAt === undefined ? Infinity : dueAt - this.#deps.clock.now();
    if (remaining <= 0) return Promise.resolve();
    const long = remaining > this.#deps.thresholdMs;
    return new Promise<void>((resolve, reject) => {
      let timer: ClockTimer | undefined;
      let open = true;
      const close = (): boolean => {
        if (!open) return false;
        open = false;
        timer?.cancel();
        subscription?.clearListener();
        this.#waits.delete(wait);
        if (long) this.#parked--;
        return true;
      };
      const wait: Wait = {
        reason,
        dueAt,
        signalName,
        childRunId,
        long,
        internal,
        fail: (error) => {
          if (!close()) return;
          if (long) this.#active++;
          reject(error);
        },
        dispose: () => void close(),
      };
      const wake = (): void => {
        if (!close()) return;
        if (long) this.#active++;
        resolve();
      };
      this.#waits.add(wait);
      if (long) {
        this.#parked++;
        this.#active--;
      }
      if (remaining <= MAX_TIMER_MS) {
        timer = this.#deps.clock.setTimer(wake, remaining, { unref: long });
      }
      subscription?.onNotify(wake);
      if (long) this.#scheduleIdleCheck();
    });
  }

  #throwIfCancelled(): void {
    if (this.#cancelRequested && !this.#internal()) throw new CancelledError();
  }

  /** Whether the current call belongs to the compensation phase (which ignores cancellation). */
  #internal(): boolean {
    return this.#scope.getStore()?.internal === true;
  }

  /** The run's digests: workflow code runs only after the run is loaded, which sets them. */
  get #runDigests(): RunDigests {
    if (!this.#digests) throw new CairnError(ErrorCodes.INTERNAL, 'A durable call was made before the run was loaded.');
    return this.#digests;
  }

  /**
   * The journal place of a new durable call. On the workflow's main line it is the next position
   * in call order (the journal entry there, if any, must record the same call). A call made in a
   * `ctx.parallel` branch, or a compensation (`identity` given), is identified by where it is made
   * instead, because several branches make calls in completion order: its key digest is the HMAC
   * of that identity (and of `key`), which finds its journal entry on replay whatever the order;
   * a new one takes the next position no journal entry holds.
   */
  #slot(kind: JournalKind, name: string, key: string | number | undefined, identity?: string): Slot {
    const branch = this.#scope.getStore()?.branch;
    const id = identity ?? (branch ? `${branch.path}#${branch.seq++}` : undefined);
    if (id === undefined) {
      const position = this.#position++;
      this.#claimed.add(position);
      return {
        position,
        keyDigest: key === undefined ? undefined : this.#runDigests.step(String(key)),
        idempotencyKey: `${this.runId}:${position}`,
      };
    }
    const keyDigest = this.#runDigests.step(key === undefined ? `cairn:${id}` : `cairn:${id}:${String(key)}`);
    let position = this.#byIdentity.get(identityOf(kind, name, keyDigest));
    if (position === undefined || this.#claimed.has(position)) {
      while (this.#journal.has(this.#position) || this.#claimed.has(this.#position)) this.#position++;
      position = this.#position++;
    } else {
      this.#position = Math.max(this.#position, position + 1);
    }
    this.#claimed.add(position);
    return { position, keyDigest, idempotencyKey: `${this.runId}:${id}` };
  }

  /**
   * The unclaimed journal entry of a call identified like a branch call (see `#slot`), if there is
   * one, without claiming a position.
   */
  #peek(kind: JournalKind, name: string, key: string | number | undefined, identity: string): JournalEntry | undefined {
    const keyDigest = this.#runDigests.step(key === undefined ? `cairn:${identity}` : `cairn:${identity}:${String(key)}`);
    const position = this.#byIdentity.get(identityOf(kind, name, keyDigest));
    return position === undefined || this.#claimed.has(position) ? undefined : this.#journal.get(position);
  }

  /** Claims a journal entry that a checkpoint stands for: the replay skips it. */
  #claimReplayed(position: number): void {
    this.#claimed.add(position);
    this.#position = Math.max(this.#position, position + 1);
  }

  /** Checks that the journal entry at `position` records the same call, else non-determinism. */
  #expect(position: number, entry: JournalEntry, call: DurableCall): void {
    if (entry.kind === call.kind && entry.name === call.name && (entry.keyDigest ?? undefined) === (call.keyDigest ?? undefined)) return;
    const error = new NonDeterminismError({ position, expected: callOf(entry), actual: call });
    this.#nonDeterminism ??= error;
    this.#log.error({ err: error }, 'non-determinism');
    throw error;
  }

  #countSignal(name: string): void {
    this.#signalsConsumed.set(name, (this.#signalsConsumed.get(name) ?? 0) + 1);
  }

  // ---- ctx -----------------------------------------------------------------------------------

  #context(workflow: WorkflowDefinition): WorkflowContext {
    const step = <T>(name: string, a: StepFunction<T> | StepOptions<T>, b?: StepFunction<T> | StepOptions<T>): Promise<T> => {
      let fn: StepFunction<T>;
      let options: StepOptions<T>;
      let policy: ResolvedRetryPolicy;
      let timeoutMs: number | undefined;
      let gate: PreparedEval | undefined;
      try {
        assertName(name, 'step name');
        if (typeof a === 'function') {
          fn = a;
          options = (b as StepOptions<T> | undefined) ?? {};
        } else {
          fn = b as StepFunction<T>;
          options = a ?? {};
        }
        if (typeof fn !== 'function') {
          throw new CairnError(
            ErrorCodes.INVALID_ARGUMENT,
            `ctx.step("${name}") needs a function: ctx.step(name, fn, options?) or ctx.step(name, options, fn).`,
          );
        }
        // The step's own options win; then the version's registered defaults; then the workflow's
        // settings in code; then the SDK's defaults. Retry policies merge field by field.
        const registered = this.#assignment.defaults;
        policy = resolveRetryPolicy(mergeRetryPolicies(workflow.retry, registered?.retry, options.retry), `retry of step "${name}"`);
        timeoutMs =
          options.timeout === undefined
            ? (registered?.stepTimeoutMs ?? workflow.timeouts.step)
            : toMilliseconds(options.timeout, `timeout of step "${name}"`);
        if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'number') {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `The key of step "${name}" must be a string or a number.`);
        }
        if (options.compensate !== undefined && typeof options.compensate !== 'function') {
          throw new CairnError(
            ErrorCodes.INVALID_ARGUMENT,
            `The compensate option of step "${name}" must be a function: { compensate: async (result) => undo(result) }.`,
          );
        }
        gate = options.eval === undefined ? undefined : prepareEval(name, `step "${name}"`, options.eval, options.key !== undefined);
      } catch (err) {
        return Promise.reject(toError(err));
      }
      const run = (feedback: EvalFeedback | undefined): Promise<T> => runStep(name, fn, options, policy, timeoutMs, feedback);
      if (gate)
        return gated(
          name,
          options.key,
          gate,
          (feedback) => run(feedback),
          (value) => value,
        );
      return run(undefined);
    };

    /** One durable step (one round of an eval gate), registering its compensation when it completes. */
    const runStep = <T>(
      name: string,
      fn: StepFunction<T>,
      options: StepOptions<T>,
      policy: ResolvedRetryPolicy,
      timeoutMs: number | undefined,
      feedback: EvalFeedback | undefined,
      given?: Slot,
    ): Promise<T> => {
      const compensate = options.compensate;
      const slot = given ?? this.#slot('step', name, options.key);
      return this.#durable(async () => {
        if (compensate) this.#compensable++;
        let value: T;
        try {
          value = await this.#step(slot, name, fn, policy, timeoutMs, feedback);
        } finally {
          if (compensate) this.#compensable--;
        }
        if (compensate) {
          this.#compensations.set(slot.position, {
            position: slot.position,
            stepName: name,
            result: value,
            fn: compensate as (result: unknown, step: StepContext) => unknown,
            policy,
            timeoutMs,
          });
        }
        return value;
      });
    };

    const model = (name: string, options: ModelCallOptions): Promise<ModelResult> => {
      let call: PreparedModelCall;
      let gate: PreparedEval | undefined;
      try {
        assertName(name, 'model call name');
        call = prepareModelCall(name, options);
        if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'number') {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `The key of model call "${name}" must be a string or a number.`);
        }
        gate = options.eval === undefined ? undefined : prepareEval(name, `model call "${name}"`, options.eval, options.key !== undefined);
      } catch (err) {
        return Promise.reject(toError(err));
      }
      if (!gate) return runModel(name, options.key, call);
      // Each re-run carries the conversation so far: the previous answers and what failed in them.
      let current = options;
      const hasSchema = options.schema !== undefined;
      return gated(
        name,
        options.key,
        gate,
        (feedback, previous) => {
          if (feedback === undefined || previous === undefined) return runModel(name, options.key, call);
          let next: PreparedModelCall;
          try {
            current = withFeedback(current, feedback, previous.text);
            next = prepareModelCall(name, current);
          } catch (err) {
            return Promise.reject(toError(err));
          }
          return runModel(name, options.key, next);
        },
        (result) => (hasSchema ? result.object : result.text),
      );
    };

    const runModel = (name: string, key: string | number | undefined, call: PreparedModelCall, given?: Slot): Promise<ModelResult> => {
      const slot = given ?? this.#slot('model', name, key);
      return this.#durable(() => this.#model(slot.position, name, slot.keyDigest, call));
    };

    /**
     * An eval gate around a producing call: run it, judge the output (schema and predicate checks
     * in the workflow, then the judges as durable model calls), record the verdict as the step
     * `eval.<name>`, and re-run with feedback until it passes or the re-runs are used up; then
     * fail, or ask a human. Every call it makes is an ordinary durable call in the caller's scope,
     * so a replay walks the same rounds from the journal.
     */
    const gated = async <R>(
      name: string,
      key: string | number | undefined,
      gate: PreparedEval,
      produce: (feedback: EvalFeedback | undefined, previous: R | undefined) => Promise<R>,
      outputOf: (result: R) => unknown,
    ): Promise<R> => {
      let feedback: EvalFeedback | undefined;
      let previous: R | undefined;
      for (let round = 0; ; round++) {
        const result = await produce(feedback, previous);
        const output = outputOf(result);
        const checks = await localChecks(gate.checks, output);
        if (checks.every((c) => c.pass)) {
          for (const check of gate.checks) {
            if (check.kind !== 'judge') continue;
            const judged = await model(gate.judgeName, {
              model: check.model,
              system: JUDGE_SYSTEM,
              prompt: judgePrompt(check.criteria, output),
              schema: JUDGE_SCHEMA,
              temperature: 0,
              stream: false,
              ...(key === undefined ? {} : { key }),
            });
            checks.push(judgeVerdict(check, judged.object as JudgeAnswer));
            if (!checks[checks.length - 1]!.pass) break;
          }
        }
        const scores = checks.flatMap((c) => (c.score === undefined ? [] : [c.score]));
        const computed: EvalVerdict = {
          pass: checks.every((c) => c.pass),
          round,
          ...(scores.length > 0 ? { score: Math.min(...scores) } : {}),
          reasons: checks.flatMap((c) => (c.pass || c.reason === undefined ? [] : [c.reason])),
          checks,
        };
        const slot = this.#slot('step', gate.verdictName, key);
        const verdict = await this.#durable(() => this.#verdict(slot, gate.verdictName, computed));
        if (verdict.pass) return result;
        if (round >= gate.maxRetries) {
          if (gate.onFail === 'fail') throw new EvalFailedError({ callName: name, rounds: round + 1, reasons: verdict.reasons });
          const answer = await approval(gate.verdictName, {
            ...(key === undefined ? {} : { key }),
            ...(gate.approvalTimeoutMs === undefined ? {} : { timeout: gate.approvalTimeoutMs }),
          });
          if (answer.approved) return result;
          throw new EvalFailedError({ callName: name, rounds: round + 1, reasons: verdict.reasons, rejected: true, rejectedBy: answer.by });
        }
        feedback = { round: round + 1, reasons: verdict.reasons, previous: output };
        previous = result;
      }
    };

    /**
     * `ctx.agent`: a tool-calling loop of durable calls. Its calls are identified by the agent's
     * identity (`a<n>` on the main line, or its place in a branch) plus turn and tool-call index,
     * like a branch's calls, so a replay finds each entry whatever position it holds; checkpoints
     * (`<identity>.cp<k>`) let a replay start from the latest one without walking earlier turns.
     */
    const agent = (name: string, options: AgentOptions): Promise<AgentResult> => {
      let prepared: PreparedAgent;
      try {
        prepared = prepareAgent(name, options);
        // Checked once here, so a bad option fails before the first turn.
        prepareModelCall(prepared.turnName, { ...prepared.turnOptions, messages: [...prepared.initial] });
      } catch (err) {
        return Promise.reject(toError(err));
      }
      if (this.#halt || (this.#settled && !this.#internal())) return never<AgentResult>();
      const parent = this.#scope.getStore()?.branch;
      const id = parent ? `${parent.path}#${parent.seq++}` : `a${this.#agents++}`;
      return agentLoop(id, prepared, options.key);
    };

    const agentLoop = async (id: string, agent: PreparedAgent, key: string | number | undefined): Promise<AgentResult> => {
      const keyOf = (part: string | number): string | number => (key === undefined ? part : `${String(key)}:${part}`);
      let turn = 0;
      let messages: ModelMessage[] = [];
      let toolCalls: AgentToolCall[] = [];
      let usage: ModelUsage = { inputTokens: 0, outputTokens: 0 };
      let text = '';
      let positions: number[] = [];
      // Replay: take every checkpoint already journaled; the latest one holds the state to go on from.
      let checkpoints = 0;
      for (;;) {
        const cpId = `${id}.cp${checkpoints + 1}`;
        const cpKey = keyOf(`cp${checkpoints + 1}`);
        const found = this.#peek('step', agent.checkpointName, cpKey, cpId);
        if (found?.status !== 'completed') break;
        const slot = this.#slot('step', agent.checkpointName, cpKey, cpId);
        const cp = found.value as AgentCheckpoint;
        for (const position of cp.positions) this.#claimReplayed(position);
        ({ turn, text, usage } = cp);
        messages = [...cp.messages];
        toolCalls = [...cp.toolCalls];
        positions = [];
        checkpoints++;
        this.#log.debug({ agent: agent.name, turn, position: slot.position }, 'agent resumed from its checkpoint');
      }
      const result = (finishReason: AgentResult['finishReason']): AgentResult => ({
        text,
        turns: turn,
        toolCalls,
        usage,
        finishReason,
        messages,
      });
      for (;;) {
        turn++;
        const conversation = [...agent.initial, ...messages];
        const call = prepareModelCall(agent.turnName, { ...agent.turnOptions, messages: conversation });
        const turnSlot = this.#slot('model', agent.turnName, keyOf(turn), `${id}.t${turn}`);
        positions.push(turnSlot.position);
        const reply = await runModel(agent.turnName, undefined, call, turnSlot);
        usage = { inputTokens: usage.inputTokens + reply.usage.inputTokens, outputTokens: usage.outputTokens + reply.usage.outputTokens };
        text = reply.text;
        messages.push(assistantMessage(reply.text, reply.toolCalls));
        if (reply.toolCalls.length === 0) return result('stop');
        // Slots are taken in call order before anything runs, so the tools may run concurrently.
        const runs = reply.toolCalls.map(async (c, index): Promise<AgentToolCall> => {
          const base = { turn, toolCallId: c.toolCallId, toolName: c.toolName, input: c.input };
          const definition = Object.hasOwn(agent.tools, c.toolName) ? agent.tools[c.toolName] : undefined;
          if (!definition) {
            return { ...base, error: `There is no tool "${c.toolName}". Available tools: ${Object.keys(agent.tools).join(', ')}.` };
          }
          const stepName = toolStepName(agent.name, c.toolName);
          const slot = this.#slot('step', stepName, keyOf(c.toolCallId), `${id}.t${turn}.c${index}`);
          positions.push(slot.position);
          try {
            const output = await runStep(
              stepName,
              (step: StepContext) =>
                executeTool(definition, c.input, { toolCallId: c.toolCallId, messages: conversation, abortSignal: step.signal }),
              {},
              agent.toolPolicy,
              agent.toolTimeoutMs,
              undefined,
              slot,
            );
            return { ...base, output };
          } catch (err) {
            if (agent.onToolError === 'return' && err instanceof StepFailedError) return { ...base, error: err.causeMessage };
            throw err;
          }
        });
        const settled = await Promise.allSettled(runs);
        const failed = settled.find((r) => r.status === 'rejected');
        if (failed) throw failed.reason;
        const done = settled.map((r) => (r as PromiseFulfilledResult<AgentToolCall>).value);
        toolCalls.push(...done);
        messages.push(toolMessage(done));
        if (turn >= agent.maxTurns) {
          const value = result('max-turns');
          if (agent.onMaxTurns === 'return') return value;
          throw new AgentMaxTurnsError({ agentName: agent.name, maxTurns: agent.maxTurns, result: value });
        }
        if (turn % agent.checkpointEvery === 0) {
          checkpoints++;
          const cp: AgentCheckpoint = { turn, messages: [...messages], toolCalls: [...toolCalls], usage, text, positions };
          const slot = this.#slot('step', agent.checkpointName, keyOf(`cp${checkpoints}`), `${id}.cp${checkpoints}`);
          await runStep(agent.checkpointName, () => cp, {}, resolveRetryPolicy({ maximumAttempts: 1 }), undefined, undefined, slot);
          positions = [];
        }
      }
    };

    const approval = <T>(name: string, options: ApprovalOptions = {}): Promise<ApprovalResult<T>> => {
      let signalName: string;
      let timeoutMs: number | undefined;
      let onTimeout: 'throw' | 'reject';
      try {
        if (typeof options !== 'object' || options === null) {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `ctx.approval("${String(name)}") takes options such as { timeout: '3d' }.`);
        }
        assertName(name, 'approval name');
        timeoutMs = options.timeout === undefined ? undefined : toMilliseconds(options.timeout, `timeout of approval "${name}"`);
        if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'number') {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `The key of approval "${name}" must be a string or a number.`);
        }
        onTimeout = options.onTimeout ?? 'throw';
        if (onTimeout !== 'throw' && onTimeout !== 'reject') {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `The onTimeout option of approval "${name}" must be 'throw' or 'reject'.`);
        }
        signalName = approvalSignalName(name, options.key === undefined ? undefined : this.#runDigests.approval(String(options.key)));
      } catch (err) {
        return Promise.reject(toError(err));
      }
      const slot = this.#slot('signal', signalName, undefined);
      return this.#durable(() => this.#signalWait<unknown>(slot, signalName, timeoutMs)).then(
        (body) => toApprovalResult<T>(body),
        (err: unknown) => {
          if (!(err instanceof SignalTimeoutError)) throw err;
          if (onTimeout === 'reject') return { approved: false, timedOut: true };
          throw new ApprovalTimeoutError({ approvalName: name, timeoutMs });
        },
      );
    };

    const sleepUntil = (dueAt: (startedAt: number) => number): Promise<void> => {
      const slot = this.#slot('sleep', 'sleep', undefined);
      return this.#durable(() => this.#sleep(slot, dueAt));
    };

    const ctx: WorkflowContext = {
      runId: this.runId,
      workflowName: workflow.name,
      workflowVersion: workflow.version,
      signal: this.#cancelController.signal,
      step,
      model: model as WorkflowContext['model'],
      sleep: (duration) => {
        let ms: number;
        try {
          ms = toMilliseconds(duration, 'sleep duration');
        } catch (err) {
          return Promise.reject(toError(err));
        }
        return sleepUntil((startedAt) => startedAt + ms);
      },
      sleepUntil: (when) => {
        const at = when instanceof Date ? when.getTime() : when;
        if (typeof at !== 'number' || !Number.isFinite(at)) {
          return Promise.reject(
            new CairnError(ErrorCodes.INVALID_ARGUMENT, 'ctx.sleepUntil needs a Date or milliseconds since the epoch.'),
          );
        }
        return sleepUntil(() => at);
      },
      waitForSignal: <T>(target: unknown, options: SignalWaitOptions = {}): Promise<T> => {
        let timeoutMs: number | undefined;
        let name: string;
        let signal: SignalDefinition<T> | undefined;
        try {
          if (isSignalDefinition(target)) {
            signal = target as SignalDefinition<T>;
            name = signal.name;
          } else {
            name = target as string;
          }
          assertName(name, 'signal name');
          if (typeof options !== 'object' || options === null) {
            throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `ctx.waitForSignal("${name}") takes options such as { timeout: '2d' }.`);
          }
          timeoutMs =
            options.timeout === undefined ? undefined : toMilliseconds(options.timeout, `timeout of the wait for signal "${name}"`);
        } catch (err) {
          return Promise.reject(toError(err));
        }
        const slot = this.#slot('signal', name, undefined);
        const body = signal?.body;
        if (body === undefined) return this.#durable(() => this.#signalWait<T>(slot, name, timeoutMs));
        // The body is checked on every replay too: the schema is code, so the outcome is the same.
        return this.#durable(async () => {
          const checked = await validateWithSchema(body.schema, await this.#signalWait<unknown>(slot, name, timeoutMs));
          if ('issues' in checked) throw new SignalValidationError({ signalName: name, issues: checked.issues });
          return checked.value as T;
        });
      },
      approval,
      agent,
      parallel: <T, R>(items: Iterable<T>, fn: (item: T, index: number) => R | Promise<R>, options: ParallelOptions = {}) => {
        let list: T[];
        let concurrency: number;
        try {
          if (items === null || typeof items !== 'object' || typeof (items as Partial<Iterable<T>>)[Symbol.iterator] !== 'function') {
            throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'ctx.parallel needs a list (or another iterable) of items.');
          }
          list = Array.from(items);
          if (typeof fn !== 'function') {
            throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'ctx.parallel needs a function: ctx.parallel(items, (item, index) => …).');
          }
          if (typeof options !== 'object' || options === null) {
            throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'ctx.parallel takes options such as { concurrency: 4 }.');
          }
          concurrency = options.concurrency ?? Math.max(1, list.length);
          if (!Number.isInteger(concurrency) || concurrency < 1) {
            throw new CairnError(
              ErrorCodes.INVALID_ARGUMENT,
              `Invalid concurrency ${String(options.concurrency)} of ctx.parallel: use a whole number of at least 1.`,
            );
          }
        } catch (err) {
          return Promise.reject(toError(err));
        }
        if (this.#halt || (this.#settled && !this.#internal())) return never<Awaited<R>[]>();
        const parent = this.#scope.getStore()?.branch;
        const path = parent ? `${parent.path}#${parent.seq++}` : `p${this.#parallels++}`;
        return this.#fanOut(path, list, fn, concurrency);
      },
      child: <W extends WorkflowDefinition<never, unknown>>(
        target: W | string,
        input: WorkflowInput<W>,
        options: ChildOptions = {},
      ): Promise<WorkflowOutput<W>> => {
        let slot: Slot;
        let name: string;
        try {
          name = typeof target === 'string' ? target : target.name;
          assertName(name, 'child workflow name');
          if (options.version !== undefined) assertVersion(options.version, `version of child workflow "${name}"`);
          slot = this.#slot('child', name, options.key);
        } catch (err) {
          return Promise.reject(toError(err));
        }
        return this.#durable(() => this.#child<WorkflowOutput<W>>(slot, name, options.version ?? '', input));
      },
      now: () => this.#now(),
      random: () => this.#source().random(),
      uuid: () => this.#source().uuid(),
    };
    return Object.freeze(ctx);
  }

  #now(): Date {
    if (this.#nonDeterminism) throw this.#nonDeterminism;
    // The workflow settled: its result no longer matters, and nothing more is journaled for it.
    if (this.#settled && !this.#internal()) return new Date(this.#deps.clock.now());
    const { position, keyDigest } = this.#slot('now', 'now', undefined);
    const entry = this.#journal.get(position);
    if (entry) {
      this.#expect(position, entry, { kind: 'now', name: 'now', keyDigest });
      return new Date(entry.value as number);
    }
    const t = this.#deps.clock.now();
    if (!this.#halt) {
      this.#pendingNow.push({ position, kind: 'now', name: 'now', keyDigest, status: 'completed', value: t, startedAt: t, endedAt: t });
    }
    return new Date(t);
  }

  /**
   * `ctx.parallel`: a slot scheduler. Items start in index order, at most `concurrency` at a time;
   * each runs in a branch scope (see `#slot`), so its calls find their journal entries by
   * identity whatever order the branches finish in. New items start one event-loop turn after a
   * completion, so every result already available (on a replay: all of them) is seen first; after
   * a failure none starts. Rejects with the lowest-index failure once nothing is running.
   */
  #fanOut<T, R>(
    path: string,
    items: readonly T[],
    fn: (item: T, index: number) => R | Promise<R>,
    concurrency: number,
  ): Promise<Awaited<R>[]> {
    return new Promise<Awaited<R>[]>((resolve, reject) => {
      const results = new Array<Awaited<R>>(items.length);
      const errors = new Map<number, unknown>();
      let next = 0;
      let running = 0;
      let deferred = false;
      const start = (): void => {
        while (errors.size === 0 && running < concurrency && next < items.length) {
          const index = next++;
          running++;
          let promise: Promise<Awaited<R>>;
          try {
            promise = Promise.resolve(
              this.#scope.run({ branch: { path: `${path}.${index}`, seq: 0 } }, () => fn(items[index] as T, index)),
            );
          } catch (err) {
            promise = Promise.reject(toError(err));
          }
          promise
            .then(
              (value) => void (results[index] = value),
              (err: unknown) => void errors.set(index, err),
            )
            .finally(() => {
              running--;
              later();
            })
            .catch((err: unknown) => this.#abandon(err));
        }
        if (running > 0 || deferred) return;
        if (errors.size > 0) reject(toError(errors.get(Math.min(...errors.keys()))));
        else resolve(results);
      };
      const later = (): void => {
        if (deferred) return;
        deferred = true;
        // Counted as progress, so the run does not suspend between a completion and the next start.
        this.#active++;
        setImmediate(() => {
          deferred = false;
          this.#active--;
          if (this.#halt) return;
          start();
          this.#scheduleIdleCheck();
        });
      };
      start();
    });
  }

  /** `ctx.random()` and `ctx.uuid()`: a branch of `ctx.parallel` draws from its own sequence. */
  #source(): DeterministicSource {
    const branch = this.#scope.getStore()?.branch;
    if (!branch) return this.#random!;
    branch.random ??= this.#random!.scoped(branch.path);
    return branch.random;
  }

  async #step<T>(
    slot: Slot,
    name: string,
    fn: StepFunction<T>,
    policy: ResolvedRetryPolicy,
    timeoutMs: number | undefined,
    feedback?: EvalFeedback,
  ): Promise<T> {
    const { position, keyDigest } = slot;
    const entry = this.#journal.get(position);
    let attempt = 1;
    if (entry) {
      this.#expect(position, entry, { kind: 'step', name, keyDigest });
      if (entry.status === 'completed' || entry.status === 'failed') this.replayed.step++;
      switch (entry.status) {
        case 'completed':
          return entry.value as T;
        case 'failed': {
          const record = (entry.error ?? { name: 'Error', message: 'unknown error' }) as StepErrorRecord;
          throw new StepFailedError({
            stepName: name,
            attempts: entry.attempt,
            cause: reviveError(record),
            nonRetryable: record.terminal ?? false,
          });
        }
        case 'retrying':
          this.#throwIfCancelled();
          attempt = entry.attempt + 1;
          await this.#wait({ reason: 'retry', dueAt: entry.dueAt });
          break;
        case 'waiting':
        case 'timed_out':
          throw new CairnError(
            ErrorCodes.INTERNAL,
            `Journal entry ${position} of step "${name}" has the unexpected status ${entry.status}.`,
          );
      }
    }
    for (;;) {
      this.#throwIfCancelled();
      const result = await this.#tracked(() => this.#attempt(slot, name, fn, attempt, policy, timeoutMs, feedback));
      if (result.done) return result.value;
      attempt++;
      await this.#wait({ reason: 'retry', dueAt: result.dueAt });
    }
  }

  /**
   * The verdict of one round of an eval gate, as a step of its own: `completed` when it passed,
   * `failed` when it did not. The verdict (reasons, scores) is the entry's journaled value and, for
   * a failure, its error: both stay in the data plane; the control plane gets the status. A replay
   * returns the journaled verdict.
   */
  async #verdict(slot: Slot, name: string, verdict: EvalVerdict): Promise<EvalVerdict> {
    const { position, keyDigest } = slot;
    const entry = this.#journal.get(position);
    if (entry) {
      this.#expect(position, entry, { kind: 'step', name, keyDigest });
      if (entry.status === 'completed' || entry.status === 'failed') return entry.value as EvalVerdict;
      throw new CairnError(
        ErrorCodes.INTERNAL,
        `Journal entry ${position} of eval verdict "${name}" has the unexpected status ${entry.status}.`,
      );
    }
    this.#throwIfCancelled();
    const at = this.#deps.clock.now();
    const status = verdict.pass ? 'completed' : 'failed';
    const error: StepErrorRecord | undefined = verdict.pass
      ? undefined
      : { name: 'EvalCheckFailed', message: verdict.reasons.join('; ') || 'the output failed its checks' };
    const { errorRefs, sizes } = await this.#append([
      { position, kind: 'step', name, keyDigest, status, attempt: 1, value: verdict, error, startedAt: at, endedAt: at },
    ]);
    this.#report(this.epoch, {
      position,
      kind: StepKind.STEP,
      name,
      keyDigest: keyDigest ?? '',
      attempt: 1,
      status: verdict.pass ? StepStatus.COMPLETED : StepStatus.FAILED,
      errorCode: verdict.pass ? ErrorCode.UNSPECIFIED : ErrorCode.STEP_FAILED,
      retryable: false,
      errorRef: errorRefs.get(position) ?? '',
      startedAt: time(at),
      endedAt: time(at),
      outputSize: BigInt(sizes.get(position) ?? 0),
    });
    return verdict;
  }

  /** Runs `op` as in-flight work a drain waits for. */
  async #tracked<T>(op: () => Promise<T>): Promise<T> {
    let release!: () => void;
    const marker = new Promise<void>((resolve) => (release = resolve));
    this.#inFlight.add(marker);
    try {
      return await op();
    } finally {
      this.#inFlight.delete(marker);
      release();
    }
  }

  /** One attempt: run the function, then journal the outcome in one commit. */
  async #attempt<T>(
    slot: Slot,
    name: string,
    fn: StepFunction<T>,
    attempt: number,
    policy: ResolvedRetryPolicy,
    timeoutMs: number | undefined,
    feedback: EvalFeedback | undefined,
  ): Promise<{ done: true; value: T } | { done: false; dueAt: number }> {
    const { position, keyDigest } = slot;
    const startedAt = this.#deps.clock.now();
    const base = { position, kind: StepKind.STEP, name, keyDigest: keyDigest ?? '', attempt, startedAt: time(startedAt) };
    this.#report(this.epoch, { ...base, status: StepStatus.RUNNING });
    let outcome = await this.#invoke(fn, name, slot, attempt, timeoutMs, feedback);
    let endedAt = this.#deps.clock.now();
    let forceTerminal = false;
    if (outcome.ok) {
      try {
        const { sizes } = await this.#append([
          { position, kind: 'step', name, keyDigest, status: 'completed', attempt, value: outcome.value, startedAt, endedAt },
        ]);
        this.#report(this.epoch, {
          ...base,
          status: StepStatus.COMPLETED,
          endedAt: time(endedAt),
          outputSize: BigInt(sizes.get(position) ?? 0),
        });
        return { done: true, value: outcome.value };
      } catch (err) {
        // A result that cannot be journaled fails the same way every time: not worth a retry.
        if (!(err instanceof CairnError && err.code === ErrorCodes.NOT_SERIALIZABLE)) throw err;
        outcome = { ok: false, error: err };
        forceTerminal = true;
        endedAt = this.#deps.clock.now();
      }
    }
    const error = toError(outcome.error);
    const terminal =
      forceTerminal ||
      error instanceof TerminalError ||
      error.name === 'TerminalError' ||
      policy.nonRetryableErrorTypes.includes(error.name);
    const exhausted = policy.maximumAttempts !== 0 && attempt >= policy.maximumAttempts;
    const record: StepErrorRecord = { ...errorInfo(error), terminal };
    const errorCode = stepErrorCode(record);
    if (!terminal && !exhausted) {
      const dueAt = endedAt + retryDelay(policy, attempt);
      const { errorRefs } = await this.#append([
        { position, kind: 'step', name, keyDigest, status: 'retrying', attempt, error: record, dueAt, startedAt, endedAt },
      ]);
      this.#report(this.epoch, {
        ...base,
        status: StepStatus.RETRYING,
        errorCode,
        retryable: true,
        errorRef: errorRefs.get(position) ?? '',
        endedAt: time(endedAt),
        dueAt: time(dueAt),
      });
      this.#log.warn({ step: name, position, attempt, err: error, dueAt }, 'step attempt failed; retrying');
      return { done: false, dueAt };
    }
    const { errorRefs } = await this.#append([
      { position, kind: 'step', name, keyDigest, status: 'failed', attempt, error: record, startedAt, endedAt },
    ]);
    this.#report(this.epoch, {
      ...base,
      status: StepStatus.FAILED,
      errorCode,
      retryable: false,
      errorRef: errorRefs.get(position) ?? '',
      endedAt: time(endedAt),
    });
    this.#log.warn({ step: name, position, attempt, err: error, terminal }, 'step failed');
    throw new StepFailedError({ stepName: name, attempts: attempt, cause: reviveError(record), nonRetryable: terminal });
  }

  /** Calls the step function, racing its timeout and cancellation. */
  #invoke<T>(
    fn: StepFunction<T>,
    name: string,
    slot: Slot,
    attempt: number,
    timeoutMs: number | undefined,
    feedback: EvalFeedback | undefined,
  ): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
    const attemptController = new AbortController();
    // A compensation runs to its end when the run is cancelled: that is when it is needed.
    const internal = this.#internal();
    const signal = AbortSignal.any(
      internal
        ? [this.#stopController.signal, attemptController.signal]
        : [this.#cancelController.signal, this.#stopController.signal, attemptController.signal],
    );
    const stepContext: StepContext = {
      idempotencyKey: slot.idempotencyKey,
      attempt,
      signal,
      ...(feedback === undefined ? {} : { feedback }),
    };
    return new Promise((resolve, reject) => {
      let timer: ClockTimer | undefined;
      const onCancel = (error: CancelledError): void => {
        cleanup();
        reject(error);
      };
      const cleanup = (): void => {
        timer?.cancel();
        this.#cancelListeners.delete(onCancel);
      };
      if (!internal) this.#cancelListeners.add(onCancel);
      if (timeoutMs !== undefined) {
        timer = this.#deps.clock.setTimer(() => {
          cleanup();
          const error = new StepTimeoutError({ stepName: name, attempt, timeoutMs });
          attemptController.abort(error);
          resolve({ ok: false, error });
        }, timeoutMs);
      }
      Promise.resolve()
        .then(() => fn(stepContext))
        .then(
          (value) => {
            cleanup();
            resolve({ ok: true, value });
          },
          (error: unknown) => {
            cleanup();
            resolve({ ok: false, error });
          },
        );
    });
  }

  // ---- ctx.model -------------------------------------------------------------------------------

  async #model(position: number, name: string, keyDigest: string | undefined, call: PreparedModelCall): Promise<ModelResult> {
    const entry = this.#journal.get(position);
    let state = FIRST_MODEL_STATE;
    if (entry) {
      this.#expect(position, entry, { kind: 'model', name, keyDigest });
      if (entry.status === 'completed' || entry.status === 'failed') this.replayed.model++;
      switch (entry.status) {
        case 'completed':
          return entry.value as ModelResult;
        case 'failed': {
          const record = (entry.error ?? { name: 'Error', message: 'unknown error' }) as StepErrorRecord & { failures?: ModelFailure[] };
          throw new ModelFailedError({ callName: name, attempts: entry.attempt, failures: record.failures ?? [] });
        }
        case 'retrying':
          this.#throwIfCancelled();
          state = modelState(entry.value, entry.attempt);
          await this.#wait({ reason: 'retry', dueAt: entry.dueAt });
          break;
        case 'waiting':
        case 'timed_out':
          throw new CairnError(
            ErrorCodes.INTERNAL,
            `Journal entry ${position} of model call "${name}" has the unexpected status ${entry.status}.`,
          );
      }
    }
    const publisher = call.stream ? new DeltaPublisher(this.#deps.store, this.runId, position, name, this.#log) : undefined;
    try {
      for (;;) {
        this.#throwIfCancelled();
        const current = state;
        const result = await this.#tracked(() => this.#modelAttempt(position, name, keyDigest, call, current, publisher));
        if (result.done) return result.value;
        state = result.state;
        await this.#wait({ reason: 'retry', dueAt: result.dueAt });
      }
    } finally {
      if (publisher) await publisher.close();
    }
  }

  /**
   * One attempt of a model call on the model `state` points at, then one journal commit: the
   * result with the call's transcript, a `retrying` entry carrying the next state, or the final
   * failure (also with the transcript) once no model is left.
   */
  async #modelAttempt(
    position: number,
    name: string,
    keyDigest: string | undefined,
    call: PreparedModelCall,
    state: ModelCallState,
    publisher: DeltaPublisher | undefined,
  ): Promise<{ done: true; value: ModelResult } | { done: false; state: ModelCallState; dueAt: number }> {
    const ref = call.models[state.modelIndex];
    if (!ref) return this.#modelFailed(position, name, keyDigest, call, state, this.#deps.clock.now(), this.#deps.clock.now());
    const attempt = state.attempt + 1;
    const startedAt = this.#deps.clock.now();
    const base = {
      position,
      kind: StepKind.MODEL,
      name,
      keyDigest: keyDigest ?? '',
      attempt,
      startedAt: time(startedAt),
      provider: ref.provider,
      model: ref.modelId,
    };
    this.#report(this.epoch, { ...base, status: StepStatus.RUNNING });
    let outcome = await this.#invokeModel(call, ref, name, attempt, publisher);
    let endedAt = this.#deps.clock.now();
    let forceTerminal = false;
    if (outcome.ok) {
      const value: ModelResult = {
        ...outcome.response,
        usage: outcome.usage,
        provider: ref.provider,
        model: ref.modelId,
        attempts: attempt,
      };
      const record: AttemptRecord = {
        attempt,
        provider: ref.provider,
        model: ref.modelId,
        startedAt,
        endedAt,
        status: 'completed',
        usage: outcome.usage,
      };
      const attempts = [...state.attempts, record];
      try {
        const transcript = {
          name,
          position,
          status: 'completed',
          request: await transcriptRequest(call),
          response: jsonSafe(outcome.response),
          usage: outcome.usage,
          provider: ref.provider,
          model: ref.modelId,
          attempts,
        };
        const { sizes } = await this.#append([
          { position, kind: 'model', name, keyDigest, status: 'completed', attempt, value, transcript, startedAt, endedAt },
        ]);
        this.#report(this.epoch, {
          ...base,
          status: StepStatus.COMPLETED,
          endedAt: time(endedAt),
          outputSize: BigInt(sizes.get(position) ?? 0),
          ...tokenFields(outcome.usage),
        });
        publisher?.done(attempt);
        return { done: true, value };
      } catch (err) {
        // A result that cannot be journaled (a schema that transforms into non-JSON values) fails
        // the same way on every model.
        if (!(err instanceof CairnError && err.code === ErrorCodes.NOT_SERIALIZABLE)) throw err;
        outcome = { ok: false, error: err, usage: outcome.usage, text: outcome.response.text };
        forceTerminal = true;
        endedAt = this.#deps.clock.now();
      }
    }
    const error = outcome.error;
    if (error instanceof CancelledError || error.name === 'CancelledError' || this.#cancelRequested) throw new CancelledError();
    if (this.#stopController.signal.aborted) throw new HaltedError();
    const classified = forceTerminal ? { ...classifyModelError(error), retryable: false } : classifyModelError(error);
    const modelAttempt = state.modelAttempt + 1;
    const record: AttemptRecord = {
      attempt,
      provider: ref.provider,
      model: ref.modelId,
      startedAt,
      endedAt,
      status: 'failed',
      usage: outcome.usage,
      error: { name: error.name, message: errorMessage(error), statusCode: classified.statusCode, retryable: classified.retryable },
      ...(outcome.text === undefined || outcome.text === '' ? {} : { text: outcome.text }),
    };
    const giveUp = forceTerminal || !classified.retryable || modelAttempt >= call.policy.maximumAttempts;
    const failures = giveUp ? [...state.failures, failureOf(ref, modelAttempt, error, classified)] : state.failures;
    const hasNext = !forceTerminal && giveUp && state.modelIndex + 1 < call.models.length;
    this.#log.warn(
      { model: name, position, attempt, provider: ref.provider, modelId: ref.modelId, status: classified.statusCode, err: error },
      giveUp ? (hasNext ? 'model failed; falling back to the next model' : 'model call failed') : 'model call attempt failed; retrying',
    );
    if (giveUp && !hasNext) {
      return this.#modelFailed(
        position,
        name,
        keyDigest,
        call,
        { ...state, attempt, failures, attempts: [...state.attempts, record] },
        startedAt,
        endedAt,
        {
          base,
          usage: outcome.usage,
        },
      );
    }
    const delay = giveUp ? 0 : (classified.retryAfterMs ?? retryDelay(call.policy, modelAttempt));
    const dueAt = endedAt + delay;
    const next: ModelCallState = giveUp
      ? {
          modelIndex: state.modelIndex + 1,
          modelAttempt: 0,
          attempt,
          failures,
          attempts: [...state.attempts, { ...record, nextAttemptAt: dueAt }],
        }
      : {
          modelIndex: state.modelIndex,
          modelAttempt,
          attempt,
          failures,
          attempts: [...state.attempts, { ...record, nextAttemptAt: dueAt }],
        };
    const errorRecord: StepErrorRecord = { ...errorInfo(error), message: errorMessage(error), terminal: !classified.retryable };
    const { errorRefs } = await this.#append([
      { position, kind: 'model', name, keyDigest, status: 'retrying', attempt, value: next, error: errorRecord, dueAt, startedAt, endedAt },
    ]);
    this.#report(this.epoch, {
      ...base,
      status: StepStatus.RETRYING,
      errorCode: stepErrorCode(errorRecord),
      retryable: true,
      errorRef: errorRefs.get(position) ?? '',
      endedAt: time(endedAt),
      dueAt: time(dueAt),
      ...tokenFields(outcome.usage),
    });
    return { done: false, state: next, dueAt };
  }

  /** Every model failed: journals the failure with the transcript and throws ModelFailedError. */
  async #modelFailed(
    position: number,
    name: string,
    keyDigest: string | undefined,
    call: PreparedModelCall,
    state: ModelCallState,
    startedAt: number,
    endedAt: number,
    last?: { base: Partial<StepInfo>; usage: ModelUsage | undefined },
  ): Promise<never> {
    const error = new ModelFailedError({ callName: name, attempts: state.attempt, failures: state.failures });
    const record: StepErrorRecord & { failures: readonly ModelFailure[] } = {
      ...errorInfo(error),
      terminal: error.nonRetryable,
      failures: error.failures,
    };
    const transcript = {
      name,
      position,
      status: 'failed',
      request: await transcriptRequest(call),
      error: { name: error.name, message: error.message },
      failures: error.failures,
      attempts: state.attempts,
    };
    const { errorRefs } = await this.#append([
      {
        position,
        kind: 'model',
        name,
        keyDigest,
        status: 'failed',
        attempt: Math.max(1, state.attempt),
        value: state,
        error: record,
        transcript,
        startedAt,
        endedAt,
      },
    ]);
    if (last) {
      this.#report(this.epoch, {
        ...last.base,
        status: StepStatus.FAILED,
        errorCode: stepErrorCode(record),
        retryable: false,
        errorRef: errorRefs.get(position) ?? '',
        endedAt: time(endedAt),
        ...tokenFields(last.usage),
      });
    }
    throw error;
  }

  /** Calls the model once, aborting on the call's timeout, cancellation or the end of the execution. */
  async #invokeModel(
    call: PreparedModelCall,
    ref: ModelRef,
    name: string,
    attempt: number,
    publisher: DeltaPublisher | undefined,
  ): Promise<AttemptOutcome> {
    const attemptController = new AbortController();
    const signal = AbortSignal.any([this.#cancelController.signal, this.#stopController.signal, attemptController.signal]);
    const { timeoutMs } = call;
    const timer =
      timeoutMs === undefined
        ? undefined
        : this.#deps.clock.setTimer(() => attemptController.abort(new ModelTimeoutError(name, attempt, timeoutMs)), timeoutMs);
    try {
      return await attemptModel(call, ref, signal, publisher ? (text) => publisher.delta(attempt, text) : undefined);
    } finally {
      timer?.cancel();
    }
  }

  async #sleep(slot: Slot, dueAtOf: (startedAt: number) => number): Promise<void> {
    const { position, keyDigest } = slot;
    const entry = this.#journal.get(position);
    let startedAt: number;
    let dueAt: number;
    if (entry) {
      this.#expect(position, entry, { kind: 'sleep', name: 'sleep', keyDigest });
      if (entry.status === 'completed') return;
      if (entry.status !== 'waiting') {
        throw new CairnError(ErrorCodes.INTERNAL, `Journal entry ${position} of a sleep has the unexpected status ${entry.status}.`);
      }
      startedAt = entry.startedAt;
      dueAt = entry.dueAt ?? entry.startedAt;
    } else {
      this.#throwIfCancelled();
      startedAt = this.#deps.clock.now();
      dueAt = dueAtOf(startedAt);
      const base = {
        position,
        kind: StepKind.SLEEP,
        name: 'sleep',
        keyDigest: keyDigest ?? '',
        attempt: 1,
        startedAt: time(startedAt),
        dueAt: time(dueAt),
      };
      if (dueAt <= startedAt) {
        await this.#append([
          { position, kind: 'sleep', name: 'sleep', keyDigest, status: 'completed', dueAt, startedAt, endedAt: startedAt },
        ]);
        this.#report(this.epoch, { ...base, status: StepStatus.COMPLETED, endedAt: time(startedAt) });
        return;
      }
      await this.#append([{ position, kind: 'sleep', name: 'sleep', keyDigest, status: 'waiting', dueAt, startedAt }]);
      this.#report(this.epoch, { ...base, status: StepStatus.WAITING });
    }
    this.#throwIfCancelled();
    await this.#wait({ reason: 'sleep', dueAt });
    const endedAt = this.#deps.clock.now();
    await this.#append([{ position, kind: 'sleep', name: 'sleep', keyDigest, status: 'completed', dueAt, startedAt, endedAt }]);
    this.#report(this.epoch, {
      position,
      kind: StepKind.SLEEP,
      name: 'sleep',
      keyDigest: keyDigest ?? '',
      attempt: 1,
      status: StepStatus.COMPLETED,
      startedAt: time(startedAt),
      endedAt: time(endedAt),
      dueAt: time(dueAt),
    });
  }

  /** `ctx.child`: creates the child run in the data plane, starts it through the control plane, and waits for its end. */
  async #child<T>(slot: Slot, name: string, version: string, input: unknown): Promise<T> {
    const { position, keyDigest } = slot;
    const { store } = this.#deps;
    const entry = this.#journal.get(position);
    const childRunId = this.#random!.uuidFor(this.#forked ? `${slot.idempotencyKey}@fork:${this.runId}` : slot.idempotencyKey);
    let startedAt: number;
    const base = { position, kind: StepKind.CHILD, name, keyDigest: keyDigest ?? '', attempt: 1 };
    if (entry) {
      this.#expect(position, entry, { kind: 'child', name, keyDigest });
      if (entry.status === 'completed') return (entry.value as { output: T } | undefined)?.output as T;
      if (entry.status !== 'waiting') throw childFailure(name, entry.value);
      startedAt = entry.startedAt;
    } else {
      this.#throwIfCancelled();
      startedAt = this.#deps.clock.now();
    }
    const recorded = entry ? (entry.value as { childRunId?: string } | undefined)?.childRunId : undefined;
    const runId = recorded ?? childRunId;
    let child = await this.#write(() => store.getRun(runId));
    if ((!child || child.status === 'open') && entry && this.#assignment.timedOutChildren?.includes(runId)) {
      // The control plane ended the child at its run timeout: no outcome will reach the data plane.
      return this.#childEnded(slot, name, startedAt, {
        childRunId: runId,
        cancelled: false,
        causeName: 'RunTimedOutError',
        causeMessage: `the child run of workflow "${name}" passed the run timeout registered for its version and was ended by the control plane`,
      });
    }
    if (!child || child.status === 'open') {
      this.#throwIfCancelled();
      const { inputSize } = await this.#write(() =>
        store.createRun({ runId, workflowName: name, input, hmacKeyId: this.#deps.hasher.activeKeyId }, { idempotent: true }),
      );
      if (!entry) {
        await this.#append([{ position, kind: 'child', name, keyDigest, status: 'waiting', value: { childRunId: runId }, startedAt }]);
        this.#report(this.epoch, { ...base, status: StepStatus.WAITING, startedAt: time(startedAt) });
      }
      const send = this.#deps.startChild;
      const answer: StartChildAnswer = send
        ? await send({
            parentRunId: this.runId,
            parentEpoch: this.epoch,
            position,
            childRunId: runId,
            workflowName: name,
            workflowVersion: version,
            inputSize,
          })
        : 'workflow_not_found';
      if (answer === 'not_held') {
        this.lose();
        throw new HaltedError();
      }
      if (answer === 'workflow_not_found') {
        return this.#childEnded(slot, name, startedAt, {
          childRunId: runId,
          cancelled: false,
          causeName: 'WorkflowNotFoundError',
          causeMessage: `no worker of this data plane registers workflow "${name}"${version ? ` version "${version}"` : ''}`,
        });
      }
      if (answer === 'workflow_deprecated') {
        return this.#childEnded(slot, name, startedAt, {
          childRunId: runId,
          cancelled: false,
          causeName: 'WorkflowDeprecatedError',
          causeMessage:
            `workflow "${name}"${version ? ` version "${version}"` : ''} is deprecated and starts no new runs: ` +
            'start the child on a newer version, or omit the version to get the newest one that is not deprecated',
        });
      }
      if (answer === 'quota_exceeded') {
        return this.#childEnded(slot, name, startedAt, {
          childRunId: runId,
          cancelled: false,
          causeName: 'QuotaExceededError',
          causeMessage:
            `the control plane refused to start the child run of workflow "${name}": the project is at its concurrent-run quota ` +
            'or has used its monthly steps (see GET /v1/projects/{project}/quotas and /usage)',
        });
      }
      for (;;) {
        child = await this.#write(() => store.getRun(runId));
        if (child && child.status !== 'open') break;
        // Parked: the run suspends, and the control plane wakes it when the child ends.
        await this.#wait({ reason: 'child', dueAt: undefined, childRunId: runId });
      }
    }
    if (child.status === 'completed') return this.#childEnded(slot, name, startedAt, { childRunId: runId, output: child.output });
    let causeName = 'CancelledError';
    let causeMessage = 'the child run was cancelled';
    if (child.status === 'failed' && child.errorRef) {
      const error = await this.#write(() => store.getError(child.errorRef!)).catch(() => undefined);
      causeName = error?.name ?? 'Error';
      causeMessage = error?.message ?? 'the child run failed';
    }
    return this.#childEnded(slot, name, startedAt, { childRunId: runId, cancelled: child.status === 'cancelled', causeName, causeMessage });
  }

  /** Journals a child's end in the parent and returns its output or throws ChildWorkflowFailedError. */
  async #childEnded<T>(slot: Slot, name: string, startedAt: number, value: ChildEnd): Promise<T> {
    const { position, keyDigest } = slot;
    const endedAt = this.#deps.clock.now();
    const failed = !('output' in value);
    const error = failed ? errorInfo(childFailure(name, value)) : undefined;
    const { errorRefs, sizes } = await this.#append([
      { position, kind: 'child', name, keyDigest, status: failed ? 'failed' : 'completed', value, error, startedAt, endedAt },
    ]);
    this.#report(this.epoch, {
      position,
      kind: StepKind.CHILD,
      name,
      keyDigest: keyDigest ?? '',
      attempt: 1,
      status: failed ? StepStatus.FAILED : StepStatus.COMPLETED,
      errorCode: failed ? ErrorCode.STEP_FAILED : ErrorCode.UNSPECIFIED,
      errorRef: errorRefs.get(position) ?? '',
      startedAt: time(startedAt),
      endedAt: time(endedAt),
      outputSize: BigInt(sizes.get(position) ?? 0),
    });
    if (failed) throw childFailure(name, value);
    return (value as { output: T }).output;
  }

  async #signalWait<T>(slot: Slot, name: string, timeoutMs: number | undefined): Promise<T> {
    const { position, keyDigest } = slot;
    const entry = this.#journal.get(position);
    let startedAt: number;
    let deadline: number | undefined;
    let waitingWritten = false;
    if (entry) {
      this.#expect(position, entry, { kind: 'signal', name, keyDigest });
      switch (entry.status) {
        case 'completed':
          return entry.value as T;
        case 'timed_out':
          throw new SignalTimeoutError({ signalName: name, timeoutMs });
        case 'waiting':
          break;
        case 'failed':
        case 'retrying':
          throw new CairnError(
            ErrorCodes.INTERNAL,
            `Journal entry ${position} of signal wait "${name}" has the unexpected status ${entry.status}.`,
          );
      }
      startedAt = entry.startedAt;
      deadline = entry.dueAt;
      waitingWritten = true;
    } else {
      startedAt = this.#deps.clock.now();
      deadline = timeoutMs === undefined ? undefined : startedAt + timeoutMs;
    }
    this.#throwIfCancelled();
    const base = {
      position,
      kind: StepKind.SIGNAL,
      name,
      keyDigest: keyDigest ?? '',
      attempt: 1,
      startedAt: time(startedAt),
      dueAt: time(deadline),
    };
    // Subscribe before looking, so a signal stored in between still wakes the wait.
    const subscription = await this.#deps.signals.subscribe(this.runId, name);
    this.#subscriptions.add(subscription);
    if (this.#finished) subscription.close();
    try {
      for (;;) {
        if (this.#halt) return never();
        await this.#flushNow();
        const taken = await this.#write(() => this.#deps.store.takeSignal(this.runId, this.epoch, position, name, startedAt, keyDigest));
        if (taken) {
          this.#countSignal(name);
          this.#report(this.epoch, {
            ...base,
            status: StepStatus.COMPLETED,
            endedAt: time(this.#deps.clock.now()),
            outputSize: BigInt(taken.size),
          });
          return taken.body as T;
        }
        if (!waitingWritten) {
          await this.#append([{ position, kind: 'signal', name, keyDigest, status: 'waiting', dueAt: deadline, startedAt }]);
          this.#report(this.epoch, { ...base, status: StepStatus.WAITING });
          waitingWritten = true;
        }
        if (deadline !== undefined && this.#deps.clock.now() >= deadline) {
          const endedAt = this.#deps.clock.now();
          await this.#append([{ position, kind: 'signal', name, keyDigest, status: 'timed_out', dueAt: deadline, startedAt, endedAt }]);
          this.#report(this.epoch, { ...base, status: StepStatus.FAILED, errorCode: ErrorCode.SIGNAL_TIMEOUT, endedAt: time(endedAt) });
          throw new SignalTimeoutError({ signalName: name, timeoutMs });
        }
        await this.#wait({ reason: 'signal', dueAt: deadline, signalName: name, subscription });
      }
    } finally {
      this.#subscriptions.delete(subscription);
      subscription.close();
    }
  }
}

/** The token counts of a model attempt, as a step report carries them. */
function tokenFields(usage: ModelUsage | undefined): { inputTokens: bigint; outputTokens: bigint } {
  const count = (n: number | undefined): bigint => BigInt(Math.max(0, Math.round(n ?? 0)));
  return { inputTokens: count(usage?.inputTokens), outputTokens: count(usage?.outputTokens) };
}

/** Provider, model and tokens of a model call's journaled (latest) attempt, for a re-report. */
function modelReportFields(entry: JournalEntry): Partial<StepInfo> {
  if (entry.status === 'completed') {
    const result = entry.value as Partial<ModelResult> | undefined;
    return { provider: result?.provider ?? '', model: result?.model ?? '', ...tokenFields(result?.usage) };
  }
  const last = modelState(entry.value, entry.attempt).attempts.at(-1);
  return { provider: last?.provider ?? '', model: last?.model ?? '', ...tokenFields(last?.usage) };
}

function callOf(entry: JournalEntry): DurableCall {
  return { kind: entry.kind, name: entry.name, keyDigest: entry.keyDigest };
}

/** How a child run ended, as the parent journals it. */
type ChildEnd =
  | { readonly childRunId: string; readonly output: unknown }
  | { readonly childRunId: string; readonly cancelled: boolean; readonly causeName: string; readonly causeMessage: string };

function childFailure(workflowName: string, value: unknown): ChildWorkflowFailedError {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Partial<{
    childRunId: string;
    cancelled: boolean;
    causeName: string;
    causeMessage: string;
  }>;
  return new ChildWorkflowFailedError({
    workflowName,
    childRunId: v.childRunId ?? '',
    cancelled: v.cancelled ?? false,
    causeName: v.causeName ?? 'Error',
    causeMessage: v.causeMessage ?? 'the child run failed',
  });
}

/** The error a scheduled run fails with when its input payload was deleted (kept in the data plane). */
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
