import * as grpc from '@grpc/grpc-js';
import type { TracerProvider } from '@opentelemetry/api';
import { CairnError, ErrorCodes, coarseSizeBig, createLogger, isId, newId, type Logger } from '@cairn/common';
import {
  crossingWorkflowName,
  signalNameDigest,
  STRICT_NAME_PATTERN,
  strictNameDigest,
  type Hasher,
  type PayloadStore,
  type ResidencyMode,
} from '@cairn/payload-store';
import {
  ConnectRequestSchema,
  HeartbeatSchema,
  HeldLeaseSchema,
  HelloSchema,
  LeaseRenewalSchema,
  LeaseState,
  RejectionReason,
  ReleaseReason,
  RunCancelledSchema,
  RunCompletedSchema,
  RunFailedSchema,
  RunReleasedSchema,
  RunSuspendedSchema,
  StartChildSchema,
  SlotsUpdateSchema,
  JournalHeadReportSchema,
  JournalHeadSchema,
  StepKind,
  StepReportBatchSchema,
  WorkerService,
  WorkflowRefSchema,
  create,
  grpcServiceDefinition,
  type ConnectRequest,
  type ConnectResponse,
  type JournalHeadReport,
  type RunTask,
  type StepReport,
  type Welcome,
} from '@cairn/proto';
import { SDK_VERSION, type WorkflowDefinition } from '@cairn/sdk';
import { Engine, type RunExecution, type RunOutcome, type StartChildAnswer, type StepDefaults } from './engine.js';
import { SignalHub } from './signals.js';
import { ReplayCheckResponder } from './replay-checks.js';
import { ModelNames, type ListedModel } from './residency.js';
import { announcedSettings, catalogueVersionOf, workerOnlySchemas } from './settings.js';
import { WorkerMetrics } from './metrics.js';
import { ControlPlaneClock } from './clock.js';
import { RunTracing } from './telemetry.js';

/** The protocol revision this worker speaks. */
export const PROTOCOL_VERSION = 1;

/** Options of {@link Worker}. */
export interface WorkerOptions {
  /** The control plane's gRPC address, `host:port`. */
  readonly controlPlaneAddress: string;
  /** The data plane's credential, sent as `authorization: Bearer <credential>`. */
  readonly credential: string;
  /** The data plane's ID (a UUID); must match the credential. */
  readonly dataPlaneId: string;
  /** The data plane's payload store; the worker does not close it. */
  readonly store: PayloadStore;
  /** HMACs dynamic step keys with the data plane's key. */
  readonly hasher: Hasher;
  /** The workflows this worker runs. */
  readonly workflows: readonly WorkflowDefinition[];
  /** Runs executed at once. Default 10. */
  readonly slots?: number;
  /** Waits up to this long stay in memory; longer ones suspend the run. Default 5000. */
  readonly suspendThresholdMs?: number;
  /** A UUID naming this worker process. Default: a new one. */
  readonly workerId?: string;
  readonly logger?: Logger;
  /** How long a drain waits for running steps and acknowledgements. Default 25000. */
  readonly drainTimeoutMs?: number;
  /** Channel credentials for the control-plane connection. Default: plaintext (use TLS in production). */
  readonly channelCredentials?: grpc.ChannelCredentials;
  /**
   * Development: when a workflow version's schemas in code differ from those catalogued for it in
   * the payload store, replace them instead of refusing to start. Default false: a version is
   * immutable, and runs already started on it were checked against the catalogued schemas.
   */
  readonly replaceChangedSchemas?: boolean;
  /**
   * Where the worker's spans go (one per run execution, one per durable-call attempt). Default: the
   * application's global provider (`trace.getTracerProvider()` of `@opentelemetry/api`, e.g. the
   * one `@opentelemetry/sdk-node` registers), so spans the application starts inside a step or a
   * model call nest under Cairn's span of that attempt; with none registered, spans are not
   * recorded. The worker flushes the provider when it stops.
   */
  readonly tracerProvider?: TracerProvider;
  /**
   * The models whose provider and model names may cross to the control plane (step reports of
   * model calls), as `provider/model` pairs the AI SDK reports, e.g. `{ provider: 'mistral.chat',
   * model: 'mistral-large-latest' }`. A call to any other model crosses as provider `unlisted` and
   * model `unlisted.<16 hex>` (a digest keyed with the data plane's HMAC key). Default: none.
   */
  readonly models?: readonly ListedModel[];
  /**
   * `strict`: step and signal names (step reports, signal waits) cross to the control plane only as
   * keyed digests (`h.<40 hex>`, see `strictNameDigest`), which the gateway resolves from the run's
   * journal; workflow names too (announced, and in run tasks and child starts, as
   * `crossingWorkflowName`), which the worker maps back to its workflow code and the gateway
   * resolves from the schema catalogue. Task-queue names still cross in clear. Default `standard`.
   */
  readonly residency?: ResidencyMode;
}

type RequestMessage = ConnectRequest['message'];
type ConnectStream = grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;
type WorkerClient = grpc.Client & { connect(metadata: grpc.Metadata, options?: grpc.CallOptions): ConnectStream };

/** A state-changing request kept until the control plane acknowledges or rejects it. */
/** See {@link Worker.retained}. */
export interface WorkerRetained {
  /** Runs the worker holds: executing, or waiting for the control plane to acknowledge their final message. */
  readonly runs: readonly string[];
  /** Runs with a final message queued or sent and not yet acknowledged. */
  readonly outbox: readonly string[];
  /** Runs with step reports not yet sent. */
  readonly pendingReports: readonly string[];
  /** Runs with a journal head not yet sent. */
  readonly pendingHeads: readonly string[];
  /** Runs with an execution span open. */
  readonly traces: readonly string[];
  /** Runs the payload store keeps a journal chain cursor for. */
  readonly chainCursors: readonly string[];
  /** Runs with an in-memory signal wait subscribed. */
  readonly signalSubscriptions: readonly string[];
  /** Outcomes being handled (journal sealed, final message queued). */
  readonly settling: number;
}

interface OutboxItem {
  readonly message: RequestMessage;
  /** The run a final message (completed, failed, suspended, cancelled, released) is about. */
  readonly run?: { readonly runId: string; readonly epoch: number };
  /** The sequence it was last sent with on the current stream. */
  sequence?: bigint;
  /** Told how the control plane answered (undefined: acknowledged). */
  readonly onSettled?: (rejection: RejectionReason | undefined) => void;
}

/** A lease this worker holds: running, or finished with its final message not yet acknowledged. */
interface HeldRun {
  readonly runId: string;
  readonly epoch: number;
  execution: RunExecution | undefined;
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;
const REPORT_FLUSH_MS = 20;
const REPORT_BATCH = 100;
/** The longest a run's final message waits for answers to requests in flight before it goes anyway. */
const FINAL_FLUSH_MS = 5;
const DEFAULT_HEARTBEAT_MS = 10_000;
/** A measured offset from the control plane's clock beyond this is logged (once). */
const SKEW_WARN_MS = 1000;
/** gRPC statuses that mean the configuration is wrong, not that the control plane is away. */
const FATAL_STATUSES = new Set([
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.FAILED_PRECONDITION,
]);

/**
 * The Cairn worker: keeps one outbound gRPC stream to the control plane, executes the run tasks it
 * is pushed with the replay engine against the data plane's payload store, batches step reports,
 * renews leases and drains cleanly on shutdown.
 *
 * @example
 * ```ts
 * const worker = new Worker({ controlPlaneAddress: 'cp:7233', credential, dataPlaneId, store, hasher, workflows: [orderRefund] });
 * await worker.start();
 * // ... later
 * await worker.shutdown();
 * ```
 */
export class Worker {
  readonly workerId: string;
  readonly #options: WorkerOptions;
  readonly #slots: number;
  readonly #drainTimeoutMs: number;
  readonly #logger: Logger;
  readonly #engine: Engine;
  readonly #signals: SignalHub;
  readonly #client: WorkerClient;
  readonly #tracing: RunTracing;
  readonly #metrics: WorkerMetrics;
  readonly #modelNames: ModelNames;
  /** The control plane's time, measured on the stream: the engine stamps and compares on it. */
  readonly #clock: ControlPlaneClock;
  /** When this stream's Hello went out (monotonic), for the clock sample the Welcome carries. */
  #helloSentAt = 0;
  /** The last heartbeat sent and when (monotonic), for the clock sample its reply carries. */
  #ping: { readonly sequence: bigint; readonly sentAt: number } | undefined;
  #skewLogged = false;

  readonly #runs = new Map<string, HeldRun>();
  #busy = 0;
  readonly #outbox: OutboxItem[] = [];
  /** Final messages of runs waiting to go after the step reports gathered with them (see #enqueueFinal). */
  readonly #pendingFinals: OutboxItem[] = [];
  /** Whether #reportTimer is the short one armed for final messages. */
  #finalsTimerArmed = false;
  readonly #sent = new Map<bigint, OutboxItem>();
  readonly #outboxWaiters = new Set<() => void>();
  #sequence = 0n;

  #stream: ConnectStream | undefined;
  #welcomed = false;
  #everWelcomed = false;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #reconnectDelayMs = RECONNECT_MIN_MS;
  #lastReceivedAt = 0;
  #silentTicks = 0;
  #leaseTtlMs = 0;

  readonly #pendingReports = new Map<string, StepReport>();
  /** Journal heads to send with the next step report batch, by run. */
  readonly #pendingHeads = new Map<string, JournalHeadReport>();
  /** Outcomes being handled (journal sealed, final message queued): a drain waits for them. */
  readonly #settling = new Set<Promise<void>>();
  #reportTimer: NodeJS.Timeout | undefined;

  #started = false;
  #draining = false;
  #closed = false;
  #shutdown: Promise<void> | undefined;
  readonly #firstWelcome: Promise<void>;
  #resolveFirstWelcome!: () => void;
  #rejectFirstWelcome!: (error: Error) => void;
  /** Rejects when the control plane refuses the worker for good after it had been welcomed. */
  readonly #refused: Promise<never>;
  #rejectRefused!: (error: Error) => void;
  /** The workflow version the control plane refused in its answer to this stream's Hello. */
  #helloRefusal: { readonly reason: RejectionReason; readonly workflow: string } | undefined;
  /** Set once a run's data could not be opened with this worker's keys: it takes no more runs. */
  #misconfiguration: string | undefined;
  readonly #replayChecks: ReplayCheckResponder;

  constructor(options: WorkerOptions) {
    this.#options = options;
    this.workerId = options.workerId ?? newId();
    this.#slots = options.slots ?? 10;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? 25_000;
    const problems: string[] = [];
    if (!isId(options.dataPlaneId)) problems.push(`dataPlaneId must be a lowercase UUID, got ${JSON.stringify(options.dataPlaneId)}`);
    if (!isId(this.workerId)) problems.push(`workerId must be a lowercase UUID, got ${JSON.stringify(this.workerId)}`);
    if (!Number.isInteger(this.#slots) || this.#slots < 1) problems.push(`slots must be a whole number of at least 1, got ${this.#slots}`);
    if (typeof options.credential !== 'string' || options.credential === '') problems.push('credential is required');
    if (typeof options.controlPlaneAddress !== 'string' || options.controlPlaneAddress === '') {
      problems.push('controlPlaneAddress is required (host:port)');
    }
    if (!Number.isFinite(this.#drainTimeoutMs) || this.#drainTimeoutMs < 0) problems.push('drainTimeoutMs must be a non-negative number');
    if (!Array.isArray(options.workflows) || options.workflows.length === 0) problems.push('workflows must list at least one workflow');
    // Checked as what untyped callers can pass: no list, or entries that are not definitions.
    for (const w of (options.workflows as Iterable<Partial<WorkflowDefinition> | null | undefined> | undefined) ?? []) {
      if (typeof w?.name !== 'string' || typeof w.run !== 'function') {
        problems.push('every entry of workflows must come from defineWorkflow() of @cairn/sdk');
        break;
      }
    }
    if (problems.length > 0) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `Invalid worker options: ${problems.join('; ')}.`);

    this.#logger = (options.logger ?? createLogger('worker')).child({ workerId: this.workerId });
    this.#signals = new SignalHub(options.store, this.#logger);
    this.#modelNames = new ModelNames(options.models ?? [], options.hasher);
    this.#replayChecks = new ReplayCheckResponder({
      store: options.store,
      hasher: options.hasher,
      workflows: options.workflows,
      workerId: this.workerId,
      logger: this.#logger,
    });
    this.#tracing = new RunTracing(options.tracerProvider, { workerId: this.workerId, dataPlaneId: options.dataPlaneId });
    this.#clock = new ControlPlaneClock();
    this.#metrics = new WorkerMetrics(options.store, this.#clock);
    this.#metrics.slots.set(this.#slots);
    this.#engine = new Engine({
      store: options.store,
      hasher: options.hasher,
      workflows: options.workflows,
      suspendThresholdMs: options.suspendThresholdMs ?? 5000,
      clock: this.#clock,
      signals: this.#signals,
      onStepReport: (report) => {
        this.#tracing.stepReported(report);
        this.#metrics.stepReported(report);
        this.#queueReport(report);
      },
      aroundAttempt: (attempt, fn) => this.#tracing.inAttempt(attempt, fn),
      onJournalCommit: (seconds, result) => {
        this.#metrics.journalCommit.observe({ result }, seconds);
        if (result === 'fenced') this.#metrics.leasesLost.inc({ reason: 'fenced' });
      },
      logger: this.#logger,
      startChild: (request) =>
        new Promise<StartChildAnswer>((resolve) =>
          this.#enqueue({
            message: {
              case: 'startChild',
              value: create(StartChildSchema, {
                ...request,
                workflowName: this.#crossingName(request.workflowName),
                inputSize: coarseSizeBig(request.inputSize),
              }),
            },
            onSettled: (rejection) =>
              resolve(
                rejection === undefined
                  ? 'ok'
                  : rejection === RejectionReason.WORKFLOW_NOT_FOUND
                    ? 'workflow_not_found'
                    : rejection === RejectionReason.WORKFLOW_DEPRECATED
                      ? 'workflow_deprecated'
                      : rejection === RejectionReason.QUOTA_EXCEEDED
                        ? 'quota_exceeded'
                        : 'not_held',
              ),
          }),
        ),
    });
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(WorkerService), 'WorkerService');
    this.#client = new Client(options.controlPlaneAddress, options.channelCredentials ?? grpc.credentials.createInsecure(), {
      // The channel's own reconnect backoff (default up to 120 s) would keep failing new calls
      // long after the control plane is back; keep it in line with ours.
      'grpc.initial_reconnect_backoff_ms': RECONNECT_MIN_MS,
      'grpc.max_reconnect_backoff_ms': RECONNECT_MAX_MS,
    }) as unknown as WorkerClient;
    this.#firstWelcome = new Promise<void>((resolve, reject) => {
      this.#resolveFirstWelcome = resolve;
      this.#rejectFirstWelcome = reject;
    });
    // start() may never be awaited (run() awaits it); a rejection is always also logged.
    this.#firstWelcome.catch(() => undefined);
    this.#refused = new Promise<never>((_resolve, reject) => (this.#rejectRefused = reject));
    this.#refused.catch(() => undefined);
  }

  /** Whether the worker is draining (shutting down) and takes no more runs. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Whether the stream is open and welcomed right now. */
  /** The worker's Prometheus metrics (served on `/metrics` of the health port by `runWorkerFromEnv`). */
  get metrics(): WorkerMetrics {
    return this.#metrics;
  }

  get connected(): boolean {
    return this.#welcomed;
  }

  /**
   * Why the worker takes no more runs although it is running, or undefined while it takes them:
   * a run's data could not be opened with its encryption keys (a key ID missing from
   * CAIRN_DP_ENCRYPTION_KEYS, or a key that is not the one the data was sealed with). It gave that
   * run back for a correctly configured worker; fix the keys and restart it. The text names the key
   * ID and the run, never key material.
   */
  get misconfiguration(): string | undefined {
    return this.#misconfiguration;
  }

  /**
   * What the worker still keeps for runs, by where it keeps it: run IDs, plus the number of
   * outcomes being handled. A run that suspended (or ended) here and whose final message the control
   * plane acknowledged is in none of them: a suspended run holds no worker memory. For tests and
   * diagnostics; read-only.
   */
  retained(): WorkerRetained {
    const ids = (items: Iterable<{ readonly run?: { readonly runId: string } | undefined }>): string[] => [
      ...new Set([...items].flatMap((item) => (item.run ? [item.run.runId] : []))),
    ];
    return {
      runs: [...this.#runs.keys()],
      outbox: ids([...this.#outbox, ...this.#sent.values()]),
      pendingReports: [...new Set([...this.#pendingReports.values()].map((r) => r.runId))],
      pendingHeads: [...this.#pendingHeads.keys()],
      traces: this.#tracing.openRunIds(),
      chainCursors: this.#options.store.chainCursorRunIds(),
      signalSubscriptions: this.#signals.subscribedRunIds(),
      settling: this.#settling.size,
    };
  }

  /**
   * Compares the worker's encryption and HMAC keys with the payload store's key checks
   * (`store.verifyKeys`), writes its workflows' JSON Schemas to the payload store's schema
   * catalogue, then connects to the control plane. Resolves once the first Welcome
   * arrives; until then it keeps retrying in the background with backoff (100 ms doubling to 5 s,
   * with jitter), so a payload store or control plane that starts later is fine. It rejects only
   * when a key does not match the payload store (`CAIRN-3006`, before anything is dialled), when a
   * workflow version's schemas differ from the catalogued ones (`CAIRN-1117`: give the changed
   * workflow a new version; also before anything is dialled), when
   * the control plane refuses the worker's configuration (bad credential, data plane mismatch,
   * unsupported protocol, invalid Hello), or when `shutdown()` is called first. After the first
   * Welcome the worker reconnects forever.
   */
  async start(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.#logger.info(
        {
          controlPlane: this.#options.controlPlaneAddress,
          slots: this.#slots,
          workflows: this.#options.workflows.map((w) => `${w.name}@${w.version}`),
        },
        'worker starting',
      );
      void this.#verifyKeysThenConnect();
    }
    return this.#firstWelcome;
  }

  /**
   * Catalogues the JSON Schemas of the worker's workflows in the payload store before the worker
   * announces them, so a gateway can check inputs for a version as soon as it can start runs.
   */
  async #catalogueSchemas(): Promise<void> {
    for (const def of this.#options.workflows) {
      for (const { schema, reason } of workerOnlySchemas(def)) {
        this.#logger.warn(
          { workflow: `${def.name}@${def.version}`, schema, reason },
          'schema has no JSON Schema: the gateway cannot check it; the worker checks it',
        );
      }
    }
    const result = await this.#options.store.catalogueSchemas(this.#options.workflows.map(catalogueVersionOf), {
      replaceChanged: this.#options.replaceChangedSchemas ?? false,
    });
    if (result.replaced.length > 0)
      this.#logger.warn({ replaced: result.replaced }, 'changed schemas replaced in the catalogue (development)');
    this.#logger.info({ added: result.added.length, unchanged: result.unchanged.length }, 'workflow schemas catalogued');
  }

  /**
   * A worker with a key that differs from the one the data plane uses would seal journal entries
   * nobody else can open and digest keys differently: it must not take a single run. Its schemas
   * are catalogued before it announces its workflows, so a gateway can check inputs for a version
   * as soon as it can start runs.
   */
  async #verifyKeysThenConnect(): Promise<void> {
    for (let delayMs = RECONNECT_MIN_MS; ; delayMs = Math.min(delayMs * 2, RECONNECT_MAX_MS)) {
      if (this.#closed || this.#draining) return;
      try {
        const result = await this.#options.store.verifyKeys(this.#options.hasher);
        if (result.recorded.length > 0 || result.hmac === 'recorded') {
          this.#logger.info(
            { keyIds: result.recorded, hmacKey: result.hmac === 'recorded' },
            'recorded key checks in the payload store: the first process to use these keys',
          );
        }
        if (result.absent.length > 0) {
          this.#logger.warn(
            { keyIds: result.absent },
            'the payload store has key checks for key IDs missing from CAIRN_DP_ENCRYPTION_KEYS: runs with data sealed under them ' +
              'cannot be opened here and will be given back (add each such key after the active one; ignore this for keys retired on purpose)',
          );
        }
        await this.#catalogueSchemas();
        // Replay checks asked for the versions this worker runs (see replay-checks.ts); they need
        // the payload store only, not the control plane.
        await this.#replayChecks.start();
        break;
      } catch (err) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() or drain() may run while connecting awaits
        if (this.#closed || this.#draining) return;
        if (err instanceof CairnError) {
          this.#logger.error(
            { err },
            err.code === ErrorCodes.SCHEMA_CONFLICT
              ? 'worker cannot start: its workflow schemas differ from those catalogued for the same versions'
              : 'worker cannot start: its keys were refused by the payload store check',
          );
          this.#closed = true;
          this.#rejectFirstWelcome(err);
          this.#rejectRefused(err);
          return;
        }
        const retryInMs = Math.round(delayMs * (0.8 + Math.random() * 0.4));
        this.#logger.info({ err, retryInMs }, 'payload store not reachable yet; retrying');
        await new Promise<void>((resolve) => setTimeout(resolve, retryInMs).unref());
      }
    }
    this.#connect();
  }

  /**
   * Drains and stops: tells the control plane it takes no more runs, lets each held run reach its
   * next durable-call boundary (a running step may finish and be journaled within
   * `drainTimeoutMs`), gives unfinished runs back with RunReleased{DRAINING}, waits for the
   * control plane to acknowledge everything (within the same timeout) and closes the stream.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#drainAndClose();
    return this.#shutdown;
  }

  /**
   * `start()`, then waits for SIGTERM or SIGINT, drains (`shutdown()`) and exits the process. A
   * second signal exits at once. Unhandled promise rejections (from workflow code) are logged
   * instead of ending the process.
   */
  async run(): Promise<void> {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        this.#logger.warn({ signal }, 'second signal: exiting without finishing the drain');
        process.exit(1);
      }
      signalled = true;
      this.#logger.info({ signal }, 'shutting down: draining');
      this.shutdown().then(
        () => process.exit(0),
        (err: unknown) => {
          this.#logger.error({ err }, 'drain failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // A promise that workflow code leaves unhandled (a step it never awaits that fails) must not
    // take down every run of this process.
    process.on('unhandledRejection', (reason) => this.#logger.error({ err: reason }, 'unhandled promise rejection in workflow code'));
    await this.start();
    await this.#refused;
  }

  // ---- the stream ----------------------------------------------------------------------------

  #connect(): void {
    this.#reconnectTimer = undefined;
    if (this.#closed) return;
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${this.#options.credential}`);
    const stream = this.#client.connect(metadata);
    this.#stream = stream;
    this.#welcomed = false;
    this.#helloRefusal = undefined;
    this.#sent.clear();
    stream.on('data', (message: ConnectResponse) => {
      if (stream !== this.#stream) return;
      this.#lastReceivedAt = Date.now();
      try {
        this.#onMessage(message);
      } catch (err) {
        this.#logger.error({ err }, 'could not handle a control-plane message');
      }
    });
    stream.on('error', (err: grpc.ServiceError) => this.#onStreamEnd(stream, err));
    stream.on('status', (status: grpc.StatusObject) => this.#onStreamEnd(stream, status));
    stream.on('end', () => this.#onStreamEnd(stream, undefined));
    const hello = create(HelloSchema, {
      dataPlaneId: this.#options.dataPlaneId,
      workerId: this.workerId,
      workflows: this.#options.workflows.map((w) =>
        create(WorkflowRefSchema, {
          name: this.#crossingName(w.name),
          version: w.version,
          taskQueue: w.taskQueue,
          settings: announcedSettings(w),
        }),
      ),
      slots: this.#slots,
      freeSlots: this.#freeSlots(),
      heldLeases: [...this.#runs.values()].map((r) => create(HeldLeaseSchema, { runId: r.runId, epoch: r.epoch })),
      sdkVersion: SDK_VERSION,
      protocolVersion: PROTOCOL_VERSION,
    });
    this.#ping = undefined;
    this.#helloSentAt = this.#clock.monotonic();
    this.#write({ case: 'hello', value: hello });
  }

  #onStreamEnd(stream: ConnectStream, status: Partial<grpc.StatusObject> | undefined): void {
    if (stream !== this.#stream) return;
    this.#stream = undefined;
    const wasWelcomed = this.#welcomed;
    this.#welcomed = false;
    this.#metrics.streamConnected.set(0);
    if (wasWelcomed && !this.#closed) this.#metrics.streamReconnects.inc();
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    stream.cancel();
    if (this.#closed) return;
    const code = status?.code;
    const refusal = this.#helloRefusal;
    if (refusal !== undefined && code === grpc.status.FAILED_PRECONDITION) {
      // Redialling cannot help: the version must be registered (or the worker run on its registered
      // task queue) first. This holds after an earlier Welcome too.
      const error = new CairnError(
        ErrorCodes.WORKFLOW_NOT_REGISTERED,
        `The control plane at ${this.#options.controlPlaneAddress} refused this worker: ${status?.details ?? `workflow ${refusal.workflow} is not registered`}. ` +
          'Register each workflow version the worker runs (cairn workflows register, or POST /v1/projects/{project}/workflows), then restart the worker.',
      );
      this.#logger.error(
        { code: grpc.status[code], reason: RejectionReason[refusal.reason], workflow: refusal.workflow, details: status?.details },
        'control plane refused the worker: workflow version not registered',
      );
      this.#closed = true;
      this.#rejectFirstWelcome(error);
      this.#rejectRefused(error);
      return;
    }
    if (!this.#everWelcomed && code !== undefined && FATAL_STATUSES.has(code)) {
      const error = new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        `The control plane at ${this.#options.controlPlaneAddress} refused this worker (${grpc.status[code]}): ${status?.details ?? ''}. ` +
          'Check CAIRN_DP_CREDENTIAL, CAIRN_DATA_PLANE_ID and the worker version.',
      );
      this.#logger.error({ code: grpc.status[code], details: status?.details }, 'control plane refused the worker');
      this.#closed = true;
      this.#rejectFirstWelcome(error);
      return;
    }
    const delay = Math.round(Math.min(this.#reconnectDelayMs, RECONNECT_MAX_MS) * (0.8 + Math.random() * 0.4));
    this.#reconnectDelayMs = Math.min(this.#reconnectDelayMs * 2, RECONNECT_MAX_MS);
    const log = { code: code === undefined ? undefined : grpc.status[code], details: status?.details, retryInMs: delay };
    if (wasWelcomed) this.#logger.warn(log, 'control-plane stream lost; runs keep executing, reconnecting');
    else this.#logger.info(log, 'control plane not reachable yet; retrying');
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  /** Writes a request on the current stream with the next sequence number. */
  #write(message: RequestMessage): bigint | undefined {
    const stream = this.#stream;
    if (!stream) return undefined;
    const sequence = ++this.#sequence;
    try {
      stream.write(create(ConnectRequestSchema, { sequence, message }));
    } catch (err) {
      this.#logger.warn({ err }, 'could not write to the control-plane stream');
      return undefined;
    }
    return sequence;
  }

  /** Queues a state-changing request until it is acknowledged; sends it now if connected. */
  #enqueue(item: OutboxItem): void {
    this.#outbox.push(item);
    if (this.#welcomed) this.#send(item);
  }

  #send(item: OutboxItem): void {
    const sequence = this.#write(item.message);
    if (sequence === undefined) return;
    item.sequence = sequence;
    this.#sent.set(sequence, item);
  }

  /** Sends a request that is not kept if the stream is down (heartbeats, renewals, slots). */
  #sendTransient(message: RequestMessage): bigint | undefined {
    return this.#welcomed ? this.#write(message) : undefined;
  }

  #settle(item: OutboxItem): void {
    const i = this.#outbox.indexOf(item);
    if (i >= 0) this.#outbox.splice(i, 1);
    if (item.run) {
      const held = this.#runs.get(item.run.runId);
      if (held && held.epoch === item.run.epoch && !held.execution) this.#runs.delete(item.run.runId);
    }
    if (this.#outbox.length === 0) for (const resolve of [...this.#outboxWaiters]) resolve();
    // The answers came back: final messages held behind them go now, with the reports gathered.
    if (this.#sent.size === 0 && this.#pendingFinals.length > 0) this.#flushReports(true);
  }

  #onMessage(response: ConnectResponse): void {
    const message = response.message;
    switch (message.case) {
      case 'welcome':
        this.#onWelcome(message.value);
        return;
      case 'runTask':
        this.#onRunTask(message.value);
        return;
      case 'leaseUpdate':
        for (const lease of message.value.leases) {
          if (lease.state !== LeaseState.LOST) continue;
          if (this.#runs.get(lease.runId)?.epoch === lease.epoch) this.#metrics.leasesLost.inc({ reason: 'revoked' });
          this.#loseRun(lease.runId, lease.epoch, 'lease lost');
        }
        return;
      case 'cancel': {
        const held = this.#runs.get(message.value.runId);
        if (held?.execution && (message.value.epoch === 0 || message.value.epoch === held.epoch)) held.execution.cancel();
        return;
      }
      case 'ack': {
        const item = this.#sent.get(message.value.sequence);
        if (!item) return;
        this.#sent.delete(message.value.sequence);
        this.#settle(item);
        item.onSettled?.(undefined);
        return;
      }
      case 'heartbeatReply': {
        const ping = this.#ping;
        if (ping?.sequence !== message.value.sequence) return;
        this.#ping = undefined;
        this.#clockSample(ping.sentAt, message.value.serverTimeMs);
        return;
      }
      case 'rejection': {
        const { sequence, reason, runId, field } = message.value;
        const item = this.#sent.get(sequence);
        const log = {
          sequence,
          reason: RejectionReason[reason],
          runId: runId || undefined,
          field: field || undefined,
          request: item?.message.case,
        };
        if (!item) {
          if (reason === RejectionReason.WORKFLOW_NOT_REGISTERED) {
            // The answer to the Hello; the stream ends next, and #onStreamEnd stops the worker.
            const { workflowName, workflowVersion } = message.value;
            this.#helloRefusal = { reason, workflow: `${this.#codeName(workflowName)}@${workflowVersion}` };
            return;
          }
          this.#logger.warn(log, 'control plane rejected a request');
          return;
        }
        this.#sent.delete(sequence);
        // Resending would be refused the same way; the journal still holds everything.
        this.#logger.warn(log, 'control plane rejected a request; dropping it');
        this.#settle(item);
        item.onSettled?.(reason);
        return;
      }
      case undefined:
        return;
    }
  }

  /** The control plane's clock as stamped on an answer to a request sent at `sentAt` (monotonic). */
  #clockSample(sentAt: number, serverTimeMs: bigint): void {
    // 0: a control plane that does not send its time.
    if (serverTimeMs <= 0n || !this.#clock.sample(sentAt, this.#clock.monotonic(), Number(serverTimeMs))) return;
    const offsetMs = this.#clock.offsetMs() ?? 0;
    if (!this.#skewLogged && Math.abs(offsetMs) > SKEW_WARN_MS) {
      this.#skewLogged = true;
      this.#logger.warn(
        { clockOffsetMs: offsetMs },
        `the worker's clock is ${Math.abs(offsetMs)} ms ${offsetMs > 0 ? 'behind' : 'ahead of'} the control plane's; using the control plane's time`,
      );
    }
  }

  #onWelcome(welcome: Welcome): void {
    // First: the runs pushed after the Welcome execute on the control plane's time.
    this.#clockSample(this.#helloSentAt, welcome.serverTimeMs);
    this.#welcomed = true;
    this.#everWelcomed = true;
    this.#silentTicks = 0;
    this.#reconnectDelayMs = RECONNECT_MIN_MS;
    this.#leaseTtlMs = welcome.leaseTtlMs;
    this.#logger.info(
      { sessionId: welcome.sessionId, heldLeases: this.#runs.size, lostLeases: welcome.lostLeases.length, resending: this.#outbox.length },
      'worker connected',
    );
    this.#metrics.streamConnected.set(1);
    for (const lease of welcome.lostLeases) {
      if (this.#runs.get(lease.runId)?.epoch === lease.epoch) this.#metrics.leasesLost.inc({ reason: 'not_reattached' });
      this.#loseRun(lease.runId, lease.epoch, 'lease not re-attached after reconnect');
    }
    const interval = welcome.heartbeatIntervalMs > 0 ? welcome.heartbeatIntervalMs : DEFAULT_HEARTBEAT_MS;
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(interval), interval);
    this.#heartbeatTimer.unref();
    if (this.#draining || this.#misconfiguration !== undefined) this.#sendNoMoreRuns();
    for (const item of [...this.#outbox]) this.#send(item);
    this.#flushReports();
    this.#resolveFirstWelcome();
  }

  #heartbeat(intervalMs: number): void {
    if (!this.#welcomed) return;
    const leases = [...this.#runs.values()].map((r) => create(HeldLeaseSchema, { runId: r.runId, epoch: r.epoch }));
    // A stream that answers nothing (a half-open connection) is replaced. Two ticks in a row, so
    // replies queued behind a busy event loop are read before deciding.
    const silentFor = Date.now() - this.#lastReceivedAt;
    if (leases.length > 0 && silentFor > Math.max(3 * intervalMs, this.#leaseTtlMs)) {
      if (++this.#silentTicks >= 2) {
        this.#logger.warn({ silentForMs: silentFor }, 'control plane silent; reconnecting');
        this.#stream?.cancel();
        return;
      }
    } else {
      this.#silentTicks = 0;
    }
    const sentAt = this.#clock.monotonic();
    const sequence = this.#sendTransient({ case: 'heartbeat', value: create(HeartbeatSchema, { sentAt: BigInt(Date.now()) }) });
    if (sequence !== undefined) this.#ping = { sequence, sentAt };
    if (leases.length > 0) {
      this.#sendTransient({ case: 'leaseRenewal', value: create(LeaseRenewalSchema, { leases }) });
      this.#metrics.leaseRenewals.inc(leases.length);
    }
  }

  // ---- runs ----------------------------------------------------------------------------------

  #freeSlots(): number {
    return this.#draining || this.#misconfiguration !== undefined ? 0 : Math.max(0, this.#slots - this.#busy);
  }

  /**
   * Tells the control plane to push no more run tasks. `draining` is the protocol's one way to say
   * so; a misconfigured worker is not shutting down, but for dispatch it is the same.
   */
  #sendNoMoreRuns(): void {
    this.#sendTransient({ case: 'slots', value: create(SlotsUpdateSchema, { freeSlots: 0, draining: true }) });
  }

  /** A run's data could not be opened with this worker's keys: it takes no more runs from now on. */
  #quarantine(runId: string, outcome: Extract<RunOutcome, { kind: 'misconfigured' }>): void {
    if (this.#misconfiguration !== undefined) return;
    const key = outcome.keyId === undefined ? 'its encryption keys' : `encryption key "${outcome.keyId}"`;
    this.#misconfiguration =
      `Run ${runId}: its data cannot be opened with ${key} of this worker (${outcome.error.code}). ` +
      'The run was given back for a correctly configured worker; this worker takes no more runs. ' +
      'Give it the same CAIRN_DP_ENCRYPTION_KEYS as the gateway and the other workers, and restart it.';
    // Before the run's RunReleased, so the control plane does not hand the run straight back.
    this.#sendNoMoreRuns();
    this.#logger.error(
      { runId, keyId: outcome.keyId, code: outcome.error.code },
      `worker takes no more runs: a run's data cannot be opened with its encryption keys; fix CAIRN_DP_ENCRYPTION_KEYS and restart it`,
    );
  }

  /** The name a workflow of this worker crosses under (its keyed digest in strict residency mode). */
  #crossingName(name: string): string {
    return crossingWorkflowName(this.#options.hasher, this.#options.residency ?? 'standard', name);
  }

  /**
   * The workflow a run task names, as the workflow code knows it: in strict residency mode the
   * task carries the digest this worker announced. A digest of none of its workflows stays as it
   * is (the engine then gives the run back as not registered here).
   */
  #codeName(crossing: string): string {
    if (!STRICT_NAME_PATTERN.test(crossing)) return crossing;
    return this.#options.workflows.find((w) => this.#crossingName(w.name) === crossing)?.name ?? crossing;
  }

  #onRunTask(task: RunTask): void {
    const existing = this.#runs.get(task.runId);
    if (existing && existing.epoch >= task.epoch) return; // a duplicate push
    const release = (reason: ReleaseReason): void => {
      this.#logger.info({ runId: task.runId, epoch: task.epoch, reason: ReleaseReason[reason] }, 'giving a run task back');
      this.#runs.set(task.runId, { runId: task.runId, epoch: task.epoch, execution: undefined });
      this.#enqueueFinal(
        { runId: task.runId, epoch: task.epoch },
        { case: 'released', value: create(RunReleasedSchema, { runId: task.runId, epoch: task.epoch, reason }) },
      );
    };
    // An older execution of this run lost its lease to this newer one; its slot is free now.
    if (existing?.execution) {
      existing.execution.lose();
      existing.execution = undefined;
      this.#busy--;
    }
    if (this.#draining) {
      release(ReleaseReason.DRAINING);
      return;
    }
    // Pushed before the control plane processed our SlotsUpdate: not tried, so not a key problem.
    if (this.#misconfiguration !== undefined || this.#busy >= this.#slots) {
      release(ReleaseReason.NO_SLOT);
      return;
    }
    const execution = this.#engine.start({
      runId: task.runId,
      epoch: task.epoch,
      workflowName: this.#codeName(task.workflowName),
      workflowVersion: task.workflowVersion,
      cancelRequested: task.cancelRequested,
      forkFrom:
        task.forkSourceRunId === ''
          ? undefined
          : {
              runId: task.forkSourceRunId,
              position: task.forkPosition,
              ...(task.inputPayloadId === '' ? {} : { inputPayloadId: task.inputPayloadId }),
            },
      scheduled:
        task.scheduleId === ''
          ? undefined
          : { scheduleId: task.scheduleId, payloadId: task.inputPayloadId === '' ? undefined : task.inputPayloadId },
      defaults: stepDefaultsOf(task),
      timedOutChildren: task.timedOutChildRunIds,
    });
    const held: HeldRun = { runId: task.runId, epoch: task.epoch, execution };
    this.#runs.set(task.runId, held);
    this.#busy++;
    this.#tracing.runStarted({ ...task, workflowName: this.#codeName(task.workflowName) }, execution);
    this.#metrics.runStarted(task.runId, task.epoch, this.#codeName(task.workflowName), task.workflowVersion);
    this.#logger.debug({ runId: task.runId, epoch: task.epoch, workflow: this.#codeName(task.workflowName) }, 'run task received');
    const settling = execution.done.then(async (outcome) => {
      await this.#sealJournal(held, outcome);
      this.#onOutcome(held, outcome);
    });
    this.#settling.add(settling);
    void settling.finally(() => this.#settling.delete(settling));
  }

  /**
   * Seals the run's journal hash chain over what became final and queues its head for the control
   * plane, ahead of the run's final message. Runs whose execution wrote for them end here; a
   * failure to seal is logged and the run goes on (`cairn runs verify` then shows the head lagging).
   */
  async #sealJournal(held: HeldRun, outcome: RunOutcome): Promise<void> {
    switch (outcome.kind) {
      case 'completed':
      case 'failed':
      case 'cancelled':
      case 'suspended':
      case 'released':
        break;
      default:
        return;
    }
    try {
      const { entries, head } = await this.#options.store.sealJournalChain(held.runId);
      if (head === null) return;
      this.#pendingHeads.set(
        held.runId,
        create(JournalHeadReportSchema, { runId: held.runId, epoch: held.epoch, head: create(JournalHeadSchema, { entries, head }) }),
      );
    } catch (err) {
      this.#logger.warn({ err, runId: held.runId }, 'could not seal the run journal hash chain; its head is not reported this time');
    }
  }

  #onOutcome(held: HeldRun, outcome: RunOutcome): void {
    this.#tracing.runEnded(held.runId, held.epoch, outcome);
    this.#metrics.runEnded(held.runId, held.epoch, outcome);
    if (held.execution) {
      held.execution = undefined;
      this.#busy--;
    }
    const current = this.#runs.get(held.runId) === held;
    const { runId, epoch } = held;
    const run = { runId, epoch };
    let message: RequestMessage | undefined;
    switch (outcome.kind) {
      case 'completed':
        message = { case: 'completed', value: create(RunCompletedSchema, { ...run, outputSize: coarseSizeBig(outcome.outputSize) }) };
        break;
      case 'failed':
        message = { case: 'failed', value: create(RunFailedSchema, { ...run, errorCode: outcome.errorCode, errorRef: outcome.errorRef }) };
        break;
      case 'cancelled':
        message = { case: 'cancelled', value: create(RunCancelledSchema, run) };
        break;
      case 'suspended':
        message = {
          case: 'suspended',
          value: create(RunSuspendedSchema, {
            ...run,
            reason: outcome.reason,
            wakeAt: BigInt(outcome.wakeAt),
            // In strict mode the signal's name crosses only as its per-run digest.
            signalName: this.#options.residency === 'strict' ? '' : outcome.signalName,
            // A notice whose name stayed in the data plane (not declared in code) matches this.
            signalDigest: outcome.signalName === '' ? '' : signalNameDigest(this.#options.hasher, runId, outcome.signalName),
            signalsConsumed: outcome.signalsConsumed,
            consumedSignalIds: [...outcome.consumedSignalIds],
            childRunId: outcome.childRunId,
          }),
        };
        break;
      case 'released':
        message = { case: 'released', value: create(RunReleasedSchema, { ...run, reason: ReleaseReason.DRAINING }) };
        break;
      case 'misconfigured':
        this.#quarantine(runId, outcome);
        message = { case: 'released', value: create(RunReleasedSchema, { ...run, reason: ReleaseReason.KEY_UNAVAILABLE }) };
        break;
      case 'refused':
      case 'lost':
      case 'abandoned':
        message = undefined;
        break;
    }
    if (!current) return;
    if (message) this.#enqueueFinal(run, message);
    else this.#runs.delete(runId);
  }

  /**
   * Queues a run's final message after the step reports that precede it. With nothing waiting for
   * the control plane's answer it goes at once; otherwise it waits for those answers (or the report
   * timer), and goes with the step reports and final messages gathered meanwhile: under load the
   * control plane then takes one batch of reports for many runs instead of one per run end.
   */
  #enqueueFinal(run: { runId: string; epoch: number }, message: RequestMessage): void {
    this.#pendingFinals.push({ message, run });
    if (this.#sent.size === 0) {
      this.#flushReports(true);
    } else if (!this.#finalsTimerArmed) {
      // A run's end (and its slot, which the control plane frees when it gets the message) does
      // not wait for the longer report timer.
      clearTimeout(this.#reportTimer);
      this.#reportTimer = setTimeout(() => this.#flushReports(), FINAL_FLUSH_MS);
      this.#finalsTimerArmed = true;
    }
  }

  #loseRun(runId: string, epoch: number, why: string): void {
    const held = this.#runs.get(runId);
    if (!held || held.epoch !== epoch) return;
    this.#logger.warn({ runId, epoch }, `stopping run: ${why}`);
    held.execution?.lose();
    this.#runs.delete(runId);
  }

  // ---- step reports --------------------------------------------------------------------------

  #queueReport(exact: StepReport): void {
    // The exact output size and unlisted model names stay in the data plane: the control plane
    // gets the size class, and listed model names only.
    const report = exact.step
      ? {
          ...exact,
          step: {
            ...exact.step,
            outputSize: coarseSizeBig(exact.step.outputSize),
            ...this.#modelNames.crossing(exact.step.provider, exact.step.model),
            ...(this.#options.residency === 'strict' && exact.step.name !== ''
              ? { name: strictNameDigest(this.#options.hasher, exact.step.kind === StepKind.SIGNAL ? 'signal' : 'step', exact.step.name) }
              : {}),
          },
        }
      : exact;
    const step = report.step;
    const key = `${report.runId}:${step?.position}:${step?.attempt}`;
    // Later statuses of the same attempt replace earlier ones that were not sent yet.
    this.#pendingReports.delete(key);
    this.#pendingReports.set(key, report);
    if (this.#pendingReports.size >= REPORT_BATCH) this.#flushReports();
    else this.#reportTimer ??= setTimeout(() => this.#flushReports(), REPORT_FLUSH_MS);
  }

  /**
   * Moves pending step reports into the outbox in batches. While disconnected they stay pending
   * (coalesced per attempt) unless `force`, used to keep them ahead of a run's final message.
   */
  #flushReports(force = false): void {
    clearTimeout(this.#reportTimer);
    this.#reportTimer = undefined;
    this.#finalsTimerArmed = false;
    // While disconnected, reports stay pending (coalesced) unless forced, and so do the final
    // messages that must follow them.
    if (!this.#welcomed && !force) return;
    const finals = this.#pendingFinals.splice(0);
    if (this.#pendingReports.size === 0 && this.#pendingHeads.size === 0) {
      for (const item of finals) this.#enqueue(item);
      return;
    }
    const reports = [...this.#pendingReports.values()];
    const heads = [...this.#pendingHeads.values()];
    this.#pendingReports.clear();
    this.#pendingHeads.clear();
    // Heads go with the last batch, after the reports of the steps they cover.
    for (let i = 0; i < Math.max(reports.length, 1); i += REPORT_BATCH) {
      const last = i + REPORT_BATCH >= reports.length;
      const batch = create(StepReportBatchSchema, { reports: reports.slice(i, i + REPORT_BATCH), journalHeads: last ? heads : [] });
      this.#enqueue({ message: { case: 'stepReports', value: batch } });
    }
    for (const item of finals) this.#enqueue(item);
  }

  // ---- drain ---------------------------------------------------------------------------------

  async #drainAndClose(): Promise<void> {
    const deadline = Date.now() + this.#drainTimeoutMs;
    this.#draining = true;
    if (!this.#everWelcomed)
      this.#rejectFirstWelcome(new CairnError(ErrorCodes.UNAVAILABLE, 'The worker was shut down before it connected.'));
    this.#sendTransient({ case: 'slots', value: create(SlotsUpdateSchema, { freeSlots: 0, draining: true }) });
    const executions = [...this.#runs.values()].flatMap((r) => (r.execution ? [r.execution] : []));
    this.#logger.info({ runs: executions.length, outbox: this.#outbox.length }, 'draining');
    for (const execution of executions) execution.drain(Math.max(0, deadline - Date.now()));
    await Promise.all(executions.map((e) => e.done));
    await Promise.all([...this.#settling]);
    this.#flushReports(true);
    if (this.#outbox.length > 0 && this.#started && !this.#closed) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          this.#outboxWaiters.add(resolve);
        }),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
      this.#outboxWaiters.clear();
    }
    if (this.#outbox.length > 0) {
      this.#logger.warn(
        { unacknowledged: this.#outbox.length },
        'closing with unacknowledged requests; the control plane reconciles them from lease expiry and re-reports',
      );
    }
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#heartbeatTimer);
    clearTimeout(this.#reportTimer);
    const stream = this.#stream;
    this.#stream = undefined;
    this.#welcomed = false;
    if (stream) {
      // Half-close and give the control plane a moment to finish what it received.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        stream.on('status', () => {
          clearTimeout(timer);
          resolve();
        });
        stream.end();
      });
      stream.cancel();
    }
    this.#client.close();
    await this.#replayChecks.close();
    await this.#engine.close();
    await this.#signals.close();
    await this.#tracing.flush().catch((err: unknown) => this.#logger.warn({ err }, 'could not export the last spans'));
    this.#logger.info('worker stopped');
  }
}

/**
 * The registered step defaults a RunTask carries, or undefined when it carries none. A retry
 * policy is registered when its initial interval is set (the registry stores policies with every
 * default filled in); its maximum attempts are then 0 for unlimited.
 */
export function stepDefaultsOf(task: RunTask): StepDefaults | undefined {
  const registered = task.defaultRetryInitialIntervalMs !== 0n || task.defaultRetryMaxAttempts !== 0;
  const retry = registered
    ? {
        maximumAttempts: task.defaultRetryMaxAttempts,
        ...(task.defaultRetryInitialIntervalMs === 0n ? {} : { initialInterval: Number(task.defaultRetryInitialIntervalMs) }),
        ...(task.defaultRetryMaxIntervalMs === 0n ? {} : { maximumInterval: Number(task.defaultRetryMaxIntervalMs) }),
        ...(task.defaultRetryBackoffCoefficient === 0 ? {} : { backoffCoefficient: task.defaultRetryBackoffCoefficient }),
      }
    : undefined;
  const stepTimeoutMs = task.defaultStepTimeoutMs === 0n ? undefined : Number(task.defaultStepTimeoutMs);
  if (retry === undefined && stepTimeoutMs === undefined) return undefined;
  return { retry, stepTimeoutMs };
}
