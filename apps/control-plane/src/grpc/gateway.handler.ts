import * as grpc from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, type Logger } from '@cairn/common';
import {
  CancelRunRequestSchema,
  CancelRunResponseSchema,
  DescribeRunRequestSchema,
  DescribeRunResponseSchema,
  GetBacklogRequestSchema,
  JournalHeadSchema,
  GetBacklogResponseSchema,
  ResolveVersionRequestSchema,
  ResolveVersionResponseSchema,
  SignalRunRequestSchema,
  SignalRunResponseSchema,
  StartRunRequestSchema,
  StartRunResponseSchema,
  WaitRunRequestSchema,
  WaitRunResponseSchema,
  create,
  fromBinary,
  type DescMessage,
  type MessageShape,
} from '@cairn/proto';
import { invalidField } from '../domain.js';
import { BacklogService } from '../dispatch/backlog.service.js';
import { CredentialHolders } from '../tenancy/credential-holders.js';
import { DataPlaneService } from '../tenancy/data-plane.service.js';
import { LimitsService } from '../metering/limits.service.js';
import { DEFAULT_PRIORITY, RunService } from '../runs/run.service.js';
import { Telemetry } from '../telemetry/telemetry.service.js';
import { byteSize, checkResidency, optional, required } from './validate.js';
import { LOGGER } from '../tokens.js';
import { toRunInfo, toRunWarning, toStepInfo } from './convert.js';
import { bearerToken, peerAddress, toServiceError } from './status.js';

type Unary = grpc.handleUnaryCall<Buffer, unknown>;

/** The highest run priority. */
const MAX_PRIORITY = 100;

/**
 * The GatewayService edge: authenticate, decode, check residency, call the run service, encode.
 */
@Injectable()
export class GatewayHandler {
  constructor(
    @Inject(RunService) private readonly runs: RunService,
    @Inject(DataPlaneService) private readonly dataPlanes: DataPlaneService,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(BacklogService) private readonly backlog: BacklogService,
    @Inject(CredentialHolders) private readonly holders: CredentialHolders,
    @Inject(LimitsService) private readonly limits: LimitsService,
    @Inject(Telemetry) private readonly telemetry: Telemetry,
  ) {}

  handlers(): Record<string, Unary> {
    return {
      startRun: this.unary(StartRunRequestSchema, async (dataPlaneId, req) => {
        const { run, created, warnings } = await this.runs.start(dataPlaneId, {
          runId: required(req.runId, 'run_id'),
          workflowName: required(req.workflowName, 'workflow_name'),
          workflowVersion: optional(req.workflowVersion),
          idempotencyDigest: optional(req.idempotencyDigest),
          inputSize: byteSize(req.inputSize, 'input_size'),
          priority: priority(req.priority),
          concurrencyKeyDigest: optional(req.concurrencyKeyDigest),
        });
        if (created)
          this.logger.debug({ dataPlaneId, runId: run.id, workflow: run.workflowName, version: run.workflowVersion }, 'run started');
        return create(StartRunResponseSchema, { run: toRunInfo(run), created, warnings: warnings.map(toRunWarning) });
      }),
      describeRun: this.unary(DescribeRunRequestSchema, async (dataPlaneId, req) => {
        const { run, steps, journalHead, warnings } = await this.runs.describe(dataPlaneId, required(req.runId, 'run_id'));
        const info = toRunInfo(run);
        if (journalHead) info.journalHead = create(JournalHeadSchema, journalHead);
        return create(DescribeRunResponseSchema, { run: info, steps: steps.map(toStepInfo), warnings: warnings.map(toRunWarning) });
      }),
      waitRun: this.unary(
        WaitRunRequestSchema,
        async (dataPlaneId, req, abort) => {
          const run = await this.runs.wait(dataPlaneId, required(req.runId, 'run_id'), req.timeoutMs, abort);
          return create(WaitRunResponseSchema, { run: toRunInfo(run) });
        },
        { longPoll: true },
      ),
      signalRun: this.unary(SignalRunRequestSchema, async (dataPlaneId, req) => {
        const name = optional(req.signalName);
        const digest = optional(req.signalDigest);
        // A name the data plane kept to itself crosses as its digest only; one of them is needed.
        const run = await this.runs.signal(
          dataPlaneId,
          required(req.runId, 'run_id'),
          name === null && digest === null ? { name: required(req.signalName, 'signal_name'), digest } : { name, digest },
          required(req.signalId, 'signal_id'),
        );
        return create(SignalRunResponseSchema, { run: toRunInfo(run) });
      }),
      cancelRun: this.unary(CancelRunRequestSchema, async (dataPlaneId, req) => {
        const run = await this.runs.cancel(dataPlaneId, required(req.runId, 'run_id'), { type: 'data_plane', id: dataPlaneId });
        return create(CancelRunResponseSchema, { run: toRunInfo(run) });
      }),
      resolveVersion: this.unary(ResolveVersionRequestSchema, async (dataPlaneId, req) => {
        const version = await this.runs.resolveVersion(dataPlaneId, required(req.workflowName, 'workflow_name'));
        return create(ResolveVersionResponseSchema, { workflowVersion: version });
      }),
      getBacklog: this.unary(GetBacklogRequestSchema, async (dataPlaneId, req) => {
        const queues = await this.backlog.forDataPlane(dataPlaneId, req.taskQueues);
        return create(GetBacklogResponseSchema, {
          queues: queues.map((q) => ({
            taskQueue: q.taskQueue,
            queued: BigInt(q.queued),
            running: BigInt(q.running),
            suspended: BigInt(q.suspended),
            oldestQueuedAgeMs: BigInt(q.oldestQueuedAgeMs),
          })),
        });
      }),
    };
  }

  /**
   * A unary handler: authenticate (throttled per peer address), decode, check residency, handle.
   * A long poll is registered with the credential it used, so a rotation or revocation ends it
   * with UNAUTHENTICATED instead of letting it answer for up to a minute more.
   */
  private unary<Desc extends DescMessage>(
    schema: Desc,
    handle: (dataPlaneId: string, request: MessageShape<Desc>, abort: AbortSignal) => Promise<unknown>,
    options: { longPoll?: boolean } = {},
  ): Unary {
    return (call, callback) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      let release = (): void => undefined;
      let releaseWait = (): void => undefined;
      let revokedWith: string | null = null;
      const run = async (): Promise<unknown> => {
        const identity = await this.dataPlanes.identify(bearerToken(call.metadata), peerAddress(call));
        // Per data plane and per organisation rates; long polls also count against a cap of their own.
        try {
          await this.limits.admitDataPlane(identity.dataPlaneId);
          if (options.longPoll) releaseWait = await this.limits.beginWait(identity.dataPlaneId);
        } catch (error) {
          if (error instanceof CairnError) {
            this.telemetry.metrics.limitRefusals.inc({ limit: error.code === ErrorCodes.TOO_MANY_CALLS ? 'waits' : 'rate' });
          }
          throw error;
        }
        let request: MessageShape<Desc>;
        try {
          request = fromBinary(schema, call.request);
        } catch {
          throw new GrpcFailure(grpc.status.INVALID_ARGUMENT, `malformed request: not a valid ${schema.typeName} protobuf message`);
        }
        checkResidency(schema, request);
        if (options.longPoll) {
          release = this.holders.add({
            dataPlaneId: identity.dataPlaneId,
            tokenSha256: identity.tokenSha256,
            end: (message) => {
              revokedWith = message;
              abort.abort();
            },
          });
        }
        const response = await handle(identity.dataPlaneId, request, abort.signal);
        if (revokedWith !== null) throw new GrpcFailure(grpc.status.UNAUTHENTICATED, revokedWith);
        return response;
      };
      run()
        .finally(() => {
          release();
          releaseWait();
        })
        .then(
          (response) => callback(null, response),
          (error: unknown) => callback(error instanceof GrpcFailure ? error.status : toServiceError(error, this.logger)),
        );
    };
  }
}

/** A start's priority: unset is the default; above 100 is refused. */
function priority(value: number | undefined): number {
  if (value === undefined) return DEFAULT_PRIORITY;
  if (value > MAX_PRIORITY) throw invalidField('priority', `field priority must be from 0 to ${MAX_PRIORITY}, got ${value}`);
  return value;
}

class GrpcFailure extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(details);
  }

  get status(): Partial<grpc.StatusObject> {
    return { code: this.code, details: this.details };
  }
}
