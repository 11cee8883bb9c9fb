import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, isId, type Logger } from '@cairn/common';
import {
  AckSchema,
  ConnectRequestSchema,
  ConnectResponseSchema,
  ErrorCode,
  HeartbeatReplySchema,
  HeldLeaseSchema,
  MAX_CONSUMED_SIGNAL_IDS,
  LeaseState,
  LeaseStatusSchema,
  LeaseUpdateSchema,
  RejectionReason,
  RejectionSchema,
  ReleaseReason,
  StepKind,
  StepStatus,
  SuspendReason,
  WelcomeSchema,
  create,
  type ConnectRequest,
  type ConnectResponse,
  type Hello,
  type LeaseRenewal,
  type StartChild,
  type StepReport,
  type StepReportBatch,
} from '@cairn/proto';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { DataPlaneRepository } from '../tenancy/data-plane.repository.js';
import { errorSummary } from '../db/database.js';
import { StepRepository } from '../runs/step.repository.js';
import { WorkflowRepository } from '../workflows/workflow.repository.js';
import type { LeaseKey, StepKindName, StepReportInput, StepStatusName, SuspendReasonName, WorkflowRefInput } from '../domain.js';
import { Telemetry } from '../telemetry/telemetry.service.js';
import { LOGGER } from '../tokens.js';
import type { DataPlaneIdentity } from '../tenancy/data-plane.service.js';
import { DispatchService } from './dispatch.service.js';
import { LeaseService, WORKER_REQUESTS_CHECKING_CREDENTIAL } from './lease.service.js';
import { STALE_STREAM_CREDENTIAL } from '../tenancy/credential-holders.js';
import type { OutcomeResult, WorkerOutcome } from './outcomes.js';
import { RunService } from '../runs/run.service.js';
import { SessionRegistry } from './session-registry.js';
import { byteSize, checkResidency, enumValue, optional, required, size, time } from '../grpc/validate.js';
import { LimitsService } from '../metering/limits.service.js';
import { WorkerSession, type SessionOutbound, type StreamEnd } from './worker-session.js';
import { readAnnouncedSettings } from './announced-settings.js';
import { WorkflowRegistryService } from '../workflows/workflow-registry.service.js';

/** The protocol revision this control plane speaks. */
export const PROTOCOL_VERSION = 1;
/** How often an open stream refreshes its worker's last-seen time in the database. */
const WORKER_SEEN_INTERVAL_MS = 15_000;

const STEP_KINDS: Record<number, StepKindName> = {
  [StepKind.STEP]: 'step',
  [StepKind.SLEEP]: 'sleep',
  [StepKind.SIGNAL]: 'signal',
  [StepKind.MODEL]: 'model',
  [StepKind.CHILD]: 'child',
};
const STEP_STATUSES: Record<number, StepStatusName> = {
  [StepStatus.RUNNING]: 'running',
  [StepStatus.COMPLETED]: 'completed',
  [StepStatus.FAILED]: 'failed',
  [StepStatus.RETRYING]: 'retrying',
  [StepStatus.WAITING]: 'waiting',
};
const SUSPEND_REASONS: Record<number, SuspendReasonName> = {
  [SuspendReason.SLEEP]: 'sleep',
  [SuspendReason.SIGNAL]: 'signal',
  [SuspendReason.RETRY_BACKOFF]: 'retry_backoff',
  [SuspendReason.CHILD]: 'child',
};

/**
 * The worker protocol (WorkerService.Connect): Hello first, then leases, step reports and run
 * outcomes, each answered with an Ack once committed or a Rejection saying why not.
 */
@Injectable()
export class WorkerProtocolService {
  constructor(
    @Inject(LeaseService) readonly leases: LeaseService,
    @Inject(WorkflowRepository) readonly workflows: WorkflowRepository,
    @Inject(StepRepository) readonly steps: StepRepository,
    @Inject(SessionRegistry) readonly registry: SessionRegistry,
    @Inject(DispatchService) readonly dispatch: DispatchService,
    @Inject(RunService) readonly runs: RunService,
    @Inject(CONFIG) readonly config: ControlPlaneConfig,
    @Inject(LOGGER) readonly logger: Logger,
    @Inject(Telemetry) readonly telemetry: Telemetry,
    @Inject(WorkflowRegistryService) readonly workflowRegistry: WorkflowRegistryService,
    @Inject(LimitsService) readonly limits: LimitsService,
    @Inject(DataPlaneRepository) readonly dataPlanes: DataPlaneRepository,
  ) {}

  /** A new stream authenticated as this data plane, with this credential. */
  open(identity: DataPlaneIdentity, outbound: SessionOutbound): WorkerConnection {
    return new WorkerConnection(this, identity, outbound);
  }
}

/** The protocol state of one stream. Requests are handed in one at a time, in order. */
export class WorkerConnection {
  private session: WorkerSession | null = null;
  private finished = false;
  /** When this stream last refreshed its worker's last-seen time in the database. */
  private seenRecordedAt = 0;
  private logger: Logger;
  private readonly dataPlaneId: string;

  constructor(
    private readonly protocol: WorkerProtocolService,
    private readonly identity: DataPlaneIdentity,
    private readonly outbound: SessionOutbound,
  ) {
    this.dataPlaneId = identity.dataPlaneId;
    this.logger = protocol.logger.child({ dataPlaneId: identity.dataPlaneId });
  }

  /**
   * Called as a request arrives, before it waits its turn on the stream: a run's final message
   * frees its slot for dispatch at once, since the worker freed the slot when it sent it. Returns
   * what to call once the request was handled, whatever the outcome.
   */
  arrived(request: ConnectRequest): (() => void) | undefined {
    const session = this.session;
    const lease = finalLease(request);
    if (!session || this.finished || !lease || !session.endingArrived(lease)) return undefined;
    this.protocol.dispatch.kick(session, false);
    return () => session.endingHandled(lease);
  }

  async receive(request: ConnectRequest): Promise<void> {
    if (this.finished) return;
    const sequence = request.sequence;
    const session = this.session;
    if (!session) {
      if (request.message.case !== 'hello') {
        this.fatal(reject(sequence, RejectionReason.HELLO_REQUIRED), {
          kind: 'failed_precondition',
          message: 'send Hello first: the first message on a WorkerService.Connect stream must be a Hello',
        });
        return;
      }
      await this.hello(request, request.message.value);
      return;
    }
    const now = Date.now();
    session.lastSeenAt = now;
    if (now - this.seenRecordedAt >= WORKER_SEEN_INTERVAL_MS) {
      this.seenRecordedAt = now;
      this.protocol.dataPlanes
        .workerSeen(this.dataPlaneId, session.workerId, session.id)
        .catch((error: unknown) => this.logger.warn({ err: errorSummary(error) }, "could not record the worker's last-seen time"));
    }
    const message = request.message;
    if (message.case === undefined) {
      this.reply(reject(sequence, RejectionReason.EMPTY_MESSAGE));
      return;
    }
    try {
      checkResidency(ConnectRequestSchema, request);
      switch (message.case) {
        case 'hello':
          this.reply(reject(sequence, RejectionReason.DUPLICATE_HELLO));
          return;
        case 'slots':
          session.draining = message.value.draining;
          this.reply(ack(sequence));
          this.protocol.dispatch.kick(session, false);
          return;
        case 'leaseRenewal':
          await this.renew(session, message.value);
          return;
        case 'stepReports':
          await this.stepReports(sequence, message.value);
          return;
        case 'suspended': {
          const v = message.value;
          const wakeAt = time(v.wakeAt, 'wake_at');
          const signalName = optional(v.signalName);
          const signalDigest = optional(v.signalDigest);
          const code = enumValue(v.reason, SuspendReason, 'reason', true);
          // An unspecified reason is inferred: a signal wait if a signal is named, else a sleep.
          const reason =
            code === SuspendReason.UNSPECIFIED
              ? signalName === null && signalDigest === null
                ? 'sleep'
                : 'signal'
              : SUSPEND_REASONS[code]!;
          const childRunId = optional(v.childRunId);
          if (reason === 'signal' && signalName === null && signalDigest === null)
            throw fieldError('signal_name', 'field signal_name (or signal_digest) is required when reason is SIGNAL');
          if (reason === 'child' && childRunId === null)
            throw fieldError('child_run_id', 'field child_run_id is required when reason is CHILD');
          if (reason !== 'signal' && reason !== 'child' && wakeAt === null) {
            throw fieldError('wake_at', 'field wake_at is required for a sleep or a retry backoff, or the run would never wake');
          }
          if (v.consumedSignalIds.length > MAX_CONSUMED_SIGNAL_IDS) {
            throw fieldError(
              'consumed_signal_ids',
              `field consumed_signal_ids has ${v.consumedSignalIds.length} IDs; send at most ${MAX_CONSUMED_SIGNAL_IDS}, the most recent ones`,
            );
          }
          await this.outcome(sequence, {
            kind: 'suspended',
            lease: lease(v),
            suspension: {
              wakeAt,
              waitingSignal: signalName,
              waitingSignalDigest: signalDigest,
              signalsConsumed: v.signalsConsumed,
              consumedSignalIds: [...new Set(v.consumedSignalIds)],
              suspendReason: reason,
              waitingChild: childRunId,
            },
          });
          return;
        }
        case 'completed':
          await this.outcome(sequence, {
            kind: 'completed',
            lease: lease(message.value),
            outputSize: byteSize(message.value.outputSize, 'output_size'),
          });
          return;
        case 'failed': {
          const v = message.value;
          const code = enumValue(v.errorCode, ErrorCode, 'error_code', true);
          await this.outcome(sequence, {
            kind: 'failed',
            lease: lease(v),
            errorCode: code === ErrorCode.UNSPECIFIED ? null : code,
            errorRef: optional(v.errorRef),
          });
          return;
        }
        case 'cancelled':
          await this.outcome(sequence, { kind: 'cancelled', lease: lease(message.value) });
          return;
        case 'released': {
          const reason = enumValue(message.value.reason, ReleaseReason, 'reason', true);
          await this.outcome(sequence, { kind: 'released', lease: lease(message.value) });
          if (reason === ReleaseReason.KEY_UNAVAILABLE) {
            // Operators watching the control plane learn why the run was queued again and that this
            // worker takes no more runs; which key, and why, is only in the worker's own logs.
            this.logger.warn(
              { runId: message.value.runId, epoch: message.value.epoch, reason: 'KEY_UNAVAILABLE' },
              'worker gave a run back: it cannot open the run data with its encryption keys; the run is queued for another worker',
            );
          }
          return;
        }
        case 'heartbeat':
          // The control plane is authoritative for time: the reply carries its clock, from which
          // the worker measures how far its own is off (see HeartbeatReply).
          this.reply(
            create(ConnectResponseSchema, {
              message: {
                case: 'heartbeatReply',
                value: create(HeartbeatReplySchema, { sequence, serverTimeMs: BigInt(Date.now()) }),
              },
            }),
          );
          return;
        case 'startChild':
          await this.startChild(sequence, message.value);
          return;
      }
    } catch (error) {
      if (error instanceof CairnError && error.code === ErrorCodes.INVALID_ARGUMENT) {
        const runId = 'runId' in message.value && isId(message.value.runId) ? message.value.runId : '';
        this.reply(reject(sequence, RejectionReason.INVALID_FIELD, { runId, field: fieldOf(error) }));
        this.logger.debug({ field: fieldOf(error), message: message.case }, 'request rejected: invalid field');
        return;
      }
      throw error;
    }
  }

  /** The stream ended (either side). Leases stay: they expire by TTL unless re-attached. */
  close(): void {
    if (this.finished) return;
    this.finished = true;
    const session = this.session;
    if (session) {
      session.markClosed();
      this.protocol.registry.remove(session);
      this.protocol.dataPlanes
        .workerDisconnected(this.dataPlaneId, session.workerId, session.id)
        .catch((error: unknown) => this.logger.warn({ err: errorSummary(error) }, "could not record the worker's disconnection"));
      this.logger.info({ leases: session.leases.size }, 'worker disconnected');
    }
  }

  private async hello(request: ConnectRequest, hello: Hello): Promise<void> {
    const sequence = request.sequence;
    try {
      checkResidency(ConnectRequestSchema, request);
    } catch (error) {
      const e = CairnError.from(error);
      this.fatal(reject(sequence, RejectionReason.INVALID_FIELD, { field: fieldOf(e) }), {
        kind: 'invalid_argument',
        message: `invalid Hello: ${e.rawMessage}`,
      });
      return;
    }
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.fatal(reject(sequence, RejectionReason.UNSUPPORTED_PROTOCOL), {
        kind: 'failed_precondition',
        message: `protocol version ${hello.protocolVersion} is not supported: this control plane speaks protocol ${PROTOCOL_VERSION}; use a matching @cairn/worker`,
      });
      return;
    }
    let workflows: WorkflowRefInput[];
    let held: LeaseKey[];
    const { protocol } = this;
    const settingProblems: Array<{ workflow: string; problems: string[] }> = [];
    try {
      required(hello.dataPlaneId, 'data_plane_id', 'hello.data_plane_id');
      required(hello.workerId, 'worker_id', 'hello.worker_id');
      workflows = dedupe(
        hello.workflows.map((w, i) => {
          const ref = {
            name: required(w.name, 'name', `hello.workflows[${i}].name`),
            version: required(w.version, 'version', `hello.workflows[${i}].version`),
            taskQueue: required(w.taskQueue, 'task_queue', `hello.workflows[${i}].task_queue`),
          };
          const { settings, problems } = readAnnouncedSettings(w.settings, `hello.workflows[${i}].settings`);
          if (problems.length > 0) settingProblems.push({ workflow: `${ref.name}@${ref.version}`, problems });
          return { ...ref, settings };
        }),
        (w) => `${w.name}@${w.version}/${w.taskQueue}`,
      );
      held = hello.heldLeases.map((l, i) => ({ runId: required(l.runId, 'run_id', `hello.held_leases[${i}].run_id`), epoch: l.epoch }));
    } catch (error) {
      const e = CairnError.from(error);
      this.fatal(reject(sequence, RejectionReason.INVALID_FIELD, { field: fieldOf(e) }), {
        kind: 'invalid_argument',
        message: `invalid Hello: ${e.rawMessage}`,
      });
      return;
    }
    if (hello.dataPlaneId !== this.dataPlaneId) {
      this.fatal(reject(sequence, RejectionReason.DATA_PLANE_MISMATCH), {
        kind: 'permission_denied',
        message: `Hello names data plane ${hello.dataPlaneId}, but the credential belongs to data plane ${this.dataPlaneId}: use this data plane's token`,
      });
      return;
    }
    if (settingProblems.length > 0) {
      // In development mode they would be registered, so they must be right; otherwise the
      // registration made through the API applies and the announced settings are only compared.
      const first = settingProblems[0]!;
      if (protocol.config.devMode) {
        this.fatal(reject(sequence, RejectionReason.INVALID_FIELD, { field: 'settings' }), {
          kind: 'invalid_argument',
          message: `invalid Hello: the settings of workflow ${first.workflow} cannot be registered: ${first.problems.join('; ')}`,
        });
        return;
      }
      this.logger.warn({ workflows: settingProblems.map((p) => p.workflow) }, 'announced workflow settings are out of bounds; ignored');
    }
    // Only registered versions may be announced; in development mode announcing registers them.
    const check = await protocol.workflowRegistry.checkAnnounced(this.dataPlaneId, workflows, protocol.config.devMode);
    if (check.kind === 'not_registered') {
      const first = check.missing[0]!;
      const names = check.missing.slice(0, 5).map((w) => `${w.name}@${w.version}`);
      const more = check.missing.length > 5 ? ` and ${check.missing.length - 5} more` : '';
      this.fatal(reject(sequence, RejectionReason.WORKFLOW_NOT_REGISTERED, { workflowName: first.name, workflowVersion: first.version }), {
        kind: 'failed_precondition',
        message:
          `workflow ${names.join(', ')}${more} ${check.missing.length === 1 ? 'is' : 'are'} not registered in this data plane's project: ` +
          'register each version first (cairn workflows register, or POST /v1/projects/{project}/workflows with name, version and taskQueue), then restart the worker',
      });
      return;
    }
    if (check.kind === 'queue_mismatch') {
      const { workflow: w, registeredQueue } = check;
      this.fatal(reject(sequence, RejectionReason.WORKFLOW_NOT_REGISTERED, { workflowName: w.name, workflowVersion: w.version }), {
        kind: 'failed_precondition',
        message:
          `workflow ${w.name}@${w.version} is registered on task queue ${registeredQueue}, but this worker announces it on task queue ${w.taskQueue}: ` +
          'run it on the registered task queue, or register the change as a new version',
      });
      return;
    }
    if (check.autoRegistered > 0 || check.updated > 0) {
      this.logger.info(
        { registered: check.autoRegistered, updated: check.updated },
        'announced workflow versions registered with their settings from code (development mode)',
      );
    }
    if (check.differing.length > 0) {
      // Names and field names only: the registration is authoritative.
      this.logger.warn(
        { workflows: check.differing.map((d) => d.workflow), fields: [...new Set(check.differing.flatMap((d) => d.fields))] },
        'settings announced from code differ from the registered versions; the registrations apply (register a new version to change them)',
      );
    }
    this.logger = this.logger.child({ workerId: hello.workerId });
    // A Hello may announce any uint32: the grant never exceeds the slot cap of the organisation.
    const slots = await protocol.limits.grantSlots(this.dataPlaneId, hello.slots);
    if (slots < hello.slots) {
      this.logger.warn({ announced: hello.slots, granted: slots }, 'worker announced more slots than the cap per stream; granted the cap');
    }
    const session = new WorkerSession(this.identity, hello.workerId, slots, workflows, this.outbound, this.logger);
    this.logger = this.logger.child({ sessionId: session.id });
    this.session = session;
    // Registered before the Welcome so a cancellation arriving meanwhile is queued, not lost.
    protocol.registry.add(session);
    this.seenRecordedAt = Date.now();
    await protocol.dataPlanes.workerConnected({
      dataPlaneId: this.dataPlaneId,
      workerId: hello.workerId,
      sessionId: session.id,
      sdkVersion: hello.sdkVersion,
      protocolVersion: hello.protocolVersion,
      slots,
      workflowVersions: [...new Set(workflows.map((w) => `${w.name}@${w.version}`))],
    });
    // The stream may have ended while that was written; close() could not mark a row not there yet.
    if (session.closed) await protocol.dataPlanes.workerDisconnected(this.dataPlaneId, hello.workerId, session.id);
    await protocol.workflows.upsertAnnounced(
      this.dataPlaneId,
      dedupe(workflows, (w) => `${w.name}@${w.version}`),
    );
    const reattached = await protocol.leases.reattach(this.dataPlaneId, session.id, hello.workerId, held);
    if (session.closed) return;
    for (const run of reattached) session.leases.set(run.id, run.epoch);
    const lost = held.filter((l) => !session.holds(l));
    session.welcome(
      create(ConnectResponseSchema, {
        message: {
          case: 'welcome',
          value: create(WelcomeSchema, {
            sessionId: session.id,
            leaseTtlMs: protocol.config.leaseTtlMs,
            heartbeatIntervalMs: protocol.config.heartbeatIntervalMs,
            lostLeases: lost.map((l) => create(HeldLeaseSchema, l)),
            serverTimeMs: BigInt(Date.now()),
          }),
        },
      }),
    );
    for (const run of reattached) if (run.cancelRequested) session.cancel({ runId: run.id, epoch: run.epoch });
    this.logger.info({ workflows: workflows.length, slots, reattached: reattached.length, lost: lost.length }, 'worker connected');
    protocol.dispatch.kick(session);
  }

  private async renew(session: WorkerSession, renewal: LeaseRenewal): Promise<void> {
    const leases = renewal.leases.map((l, i) => ({
      runId: required(l.runId, 'run_id', `lease_renewal.leases[${i}].run_id`),
      epoch: l.epoch,
    }));
    const results = await this.protocol.leases.renew(this.dataPlaneId, session.id, leases);
    let freed = false;
    const statuses = results.map((r) => {
      if (r.expiresAt !== null) {
        return create(LeaseStatusSchema, {
          runId: r.runId,
          epoch: r.epoch,
          state: LeaseState.RENEWED,
          expiresAt: BigInt(r.expiresAt.getTime()),
        });
      }
      freed = session.drop(r) || freed;
      return create(LeaseStatusSchema, { runId: r.runId, epoch: r.epoch, state: LeaseState.LOST });
    });
    this.reply(create(ConnectResponseSchema, { message: { case: 'leaseUpdate', value: create(LeaseUpdateSchema, { leases: statuses }) } }));
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set inside the map callback above
    if (freed) this.protocol.dispatch.kick(session, false);
  }

  private async stepReports(sequence: bigint, batch: StepReportBatch): Promise<void> {
    const reports = dedupeReports(batch.reports.map((r, i) => toStepReport(r, i)));
    const unknown = await this.protocol.steps.upsertReports(this.dataPlaneId, reports);
    await this.protocol.steps.upsertJournalHeads(
      this.dataPlaneId,
      batch.journalHeads
        .map((h, i) => ({
          runId: required(h.runId, 'run_id', `step_reports.journal_heads[${i}].run_id`),
          epoch: h.epoch,
          entries: h.head?.entries ?? 0,
          head: required(h.head?.head ?? '', 'head', `step_reports.journal_heads[${i}].head.head`),
        }))
        .filter((h) => h.entries > 0),
    );
    this.protocol.telemetry.stepReports(reports, unknown, this.session);
    const first = unknown[0];
    if (first !== undefined) this.reply(reject(sequence, RejectionReason.UNKNOWN_RUN, { runId: first }));
    else this.reply(ack(sequence));
  }

  private async startChild(sequence: bigint, v: StartChild): Promise<void> {
    const input = {
      parentRunId: required(v.parentRunId, 'parent_run_id'),
      parentEpoch: v.parentEpoch,
      childRunId: required(v.childRunId, 'child_run_id'),
      workflowName: required(v.workflowName, 'workflow_name'),
      workflowVersion: optional(v.workflowVersion),
      inputSize: byteSize(v.inputSize, 'input_size'),
    };
    const result = await this.protocol.runs.startChild(this.dataPlaneId, input);
    switch (result) {
      case 'started':
        this.logger.debug({ runId: input.parentRunId, childRunId: input.childRunId, position: v.position }, 'child run started');
        this.reply(ack(sequence));
        return;
      case 'not_held':
        this.reply(reject(sequence, RejectionReason.LEASE_NOT_HELD, { runId: input.parentRunId }));
        return;
      case 'workflow_not_found':
        this.reply(reject(sequence, RejectionReason.WORKFLOW_NOT_FOUND, { runId: input.parentRunId }));
        return;
      case 'quota_exceeded':
        this.logger.info({ runId: input.parentRunId, childRunId: input.childRunId }, 'child run refused: project quota reached');
        this.reply(reject(sequence, RejectionReason.QUOTA_EXCEEDED, { runId: input.parentRunId }));
        return;
      case 'workflow_deprecated':
        this.logger.info(
          { runId: input.parentRunId, workflow: input.workflowName, version: input.workflowVersion },
          'child run refused: version deprecated',
        );
        this.reply(
          reject(sequence, RejectionReason.WORKFLOW_DEPRECATED, {
            runId: input.parentRunId,
            workflowName: input.workflowName,
            workflowVersion: input.workflowVersion ?? '',
          }),
        );
        return;
    }
  }

  private async outcome(sequence: bigint, outcome: WorkerOutcome): Promise<void> {
    // A run's end checks the stream's credential in the statement that applies it (the stream did not).
    const credential = WORKER_REQUESTS_CHECKING_CREDENTIAL.has(outcome.kind) ? this.identity.tokenSha256 : null;
    const result: OutcomeResult = await this.protocol.telemetry.traceOutcome(this.dataPlaneId, outcome, () =>
      this.protocol.leases.applyOutcome(this.dataPlaneId, outcome, credential),
    );
    const { runId, epoch } = outcome.lease;
    switch (result.kind) {
      case 'applied':
        this.logger.debug({ runId, epoch, outcome: outcome.kind, status: result.run.status }, 'run outcome applied');
        this.reply(ack(sequence));
        return;
      case 'duplicate':
        this.reply(ack(sequence));
        return;
      case 'not_held':
        this.logger.info({ runId, epoch, outcome: outcome.kind }, 'run outcome rejected: lease not held');
        this.reply(reject(sequence, RejectionReason.LEASE_NOT_HELD, { runId }));
        return;
      case 'unknown_run':
        this.reply(reject(sequence, RejectionReason.UNKNOWN_RUN, { runId }));
        return;
      case 'stale_credential':
        this.outbound.end({ kind: 'unauthenticated', message: STALE_STREAM_CREDENTIAL });
        this.close();
        return;
    }
  }

  private reply(message: ConnectResponse): void {
    if (this.session) this.session.send(message);
    else this.outbound.send(message);
  }

  /** Refuses the request and ends the stream. */
  private fatal(rejection: ConnectResponse, end: StreamEnd): void {
    this.outbound.send(rejection);
    this.logger.info({ reason: end.kind }, 'worker stream refused');
    this.outbound.end(end);
    this.close();
  }
}

function ack(sequence: bigint): ConnectResponse {
  return create(ConnectResponseSchema, { message: { case: 'ack', value: create(AckSchema, { sequence }) } });
}

function reject(
  sequence: bigint,
  reason: RejectionReason,
  extra: { runId?: string; field?: string; workflowName?: string; workflowVersion?: string } = {},
): ConnectResponse {
  return create(ConnectResponseSchema, { message: { case: 'rejection', value: create(RejectionSchema, { sequence, reason, ...extra }) } });
}

function fieldError(field: string, message: string): CairnError {
  return new CairnError(ErrorCodes.INVALID_ARGUMENT, message, { details: { field } });
}

function fieldOf(error: CairnError): string {
  const field = error.details['field'];
  return typeof field === 'string' ? field : '';
}

/** The lease a final message (completed, failed, cancelled, released, suspended) ends, if it is one. */
function finalLease(request: ConnectRequest): LeaseKey | undefined {
  const m = request.message;
  switch (m.case) {
    case 'completed':
    case 'failed':
    case 'cancelled':
    case 'released':
    case 'suspended':
      return m.value.runId === '' ? undefined : { runId: m.value.runId, epoch: m.value.epoch };
    default:
      return undefined;
  }
}

function lease(value: { runId: string; epoch: number }): LeaseKey {
  return { runId: required(value.runId, 'run_id'), epoch: value.epoch };
}

function toStepReport(report: StepReport, i: number): StepReportInput {
  const at = (field: string): string => `step_reports.reports[${i}].${field}`;
  const runId = required(report.runId, 'run_id', at('run_id'));
  const step = report.step;
  if (!step) throw fieldError('step', `field ${at('step')} is required`);
  const errorCode = enumValue(step.errorCode, ErrorCode, 'error_code', true);
  const kind = STEP_KINDS[enumValue(step.kind, StepKind, 'kind')]!;
  // Token counts and model names belong to model calls only; other kinds keep the columns empty.
  const model = kind === 'model';
  return {
    runId,
    epoch: report.epoch,
    position: step.position,
    attempt: step.attempt,
    kind,
    name: required(step.name, 'name', at('step.name')),
    keyDigest: optional(step.keyDigest),
    status: STEP_STATUSES[enumValue(step.status, StepStatus, 'status')]!,
    errorCode: errorCode === ErrorCode.UNSPECIFIED ? null : errorCode,
    retryable: step.retryable,
    errorRef: optional(step.errorRef),
    startedAt: time(step.startedAt, 'started_at', at('step.started_at')),
    endedAt: time(step.endedAt, 'ended_at', at('step.ended_at')),
    dueAt: time(step.dueAt, 'due_at', at('step.due_at')),
    outputSize: byteSize(step.outputSize, 'output_size', at('step.output_size')),
    inputTokens: model ? size(step.inputTokens, 'input_tokens', at('step.input_tokens')) : null,
    outputTokens: model ? size(step.outputTokens, 'output_tokens', at('step.output_tokens')) : null,
    provider: model ? optional(step.provider) : null,
    model: model ? optional(step.model) : null,
  };
}

/** One report per (run, position, attempt): the last one, but a completed one wins. */
function dedupeReports(reports: StepReportInput[]): StepReportInput[] {
  const byKey = new Map<string, StepReportInput>();
  for (const r of reports) {
    const key = `${r.runId} ${r.position} ${r.attempt}`;
    const seen = byKey.get(key);
    if (seen?.status === 'completed' && r.status !== 'completed') continue;
    byKey.set(key, r);
  }
  return [...byKey.values()];
}

/** The last item for each key. */
function dedupe<T>(items: readonly T[], key: (item: T) => string): T[] {
  const byKey = new Map<string, T>();
  for (const item of items) byKey.set(key(item), item);
  return [...byKey.values()];
}
