import * as grpc from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, retryAfterSeconds, type Logger } from '@cairn/common';
import { ConnectRequestSchema, fromBinary, type ConnectRequest, type ConnectResponse } from '@cairn/proto';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { CredentialHolders, STALE_STREAM_CREDENTIAL } from '../tenancy/credential-holders.js';
import { LimitsService } from '../metering/limits.service.js';
import { Telemetry } from '../telemetry/telemetry.service.js';
import { DataPlaneService, type DataPlaneIdentity } from '../tenancy/data-plane.service.js';
import { WorkerProtocolService, type WorkerConnection } from '../dispatch/worker-protocol.service.js';
import { WORKER_REQUESTS_CHECKING_CREDENTIAL } from '../dispatch/lease.service.js';
import type { SessionOutbound, StreamEnd } from '../dispatch/worker-session.js';
import { LOGGER } from '../tokens.js';
import { bearerToken, endStatus, peerAddress, toServiceError } from './status.js';

// Back-pressure: stop reading a stream while this many requests wait to be processed.
const PAUSE_AT = 64;
const RESUME_AT = 16;

/**
 * The WorkerService.Connect edge: authenticates the stream, decodes frames and feeds them, in
 * order, to the worker protocol. It holds no protocol logic.
 */
@Injectable()
export class WorkerHandler {
  private readonly open = new Set<(end: StreamEnd) => void>();
  private accepting = true;

  constructor(
    @Inject(WorkerProtocolService) private readonly protocol: WorkerProtocolService,
    @Inject(DataPlaneService) private readonly dataPlanes: DataPlaneService,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CredentialHolders) private readonly holders: CredentialHolders,
    @Inject(LimitsService) private readonly limits: LimitsService,
    @Inject(Telemetry) private readonly telemetry: Telemetry,
    @Inject(CONFIG) private readonly config: ControlPlaneConfig,
  ) {}

  connect(call: grpc.ServerDuplexStream<Buffer, ConnectResponse>): void {
    let ended = false;
    let connection: WorkerConnection | null = null;
    let identity: DataPlaneIdentity | null = null;
    let release = (): void => undefined;
    let releaseStream = (): void => undefined;
    const { streamSendQueue, streamStallTimeoutMs } = this.config.limits;
    const metrics = this.telemetry.metrics;

    // Outbound back-pressure. While the stream's write side does not drain (the worker does not
    // read), messages wait in a queue of at most `streamSendQueue`, and no more requests are read
    // from the worker (so it stops producing answers). A stream that stays stuck for
    // `streamStallTimeoutMs`, or whose queue overflows, is ended with RESOURCE_EXHAUSTED: one
    // client that sends but never reads cannot grow the replica's memory.
    const queue: ConnectResponse[] = [];
    let blocked = false;
    let stallTimer: NodeJS.Timeout | undefined;
    let inboundBusy = false;
    let paused = false;
    const syncPause = (): void => {
      const want = inboundBusy || blocked;
      if (want && !paused) {
        paused = true;
        call.pause();
      } else if (!want && paused) {
        paused = false;
        call.resume();
      }
    };
    const dropQueue = (): void => {
      metrics.streamSendQueued.dec(queue.length);
      queue.length = 0;
      if (stallTimer) clearTimeout(stallTimer);
      stallTimer = undefined;
    };
    const stalled = (why: string): void => {
      if (ended) return;
      metrics.limitRefusals.inc({ limit: 'stream_stalled' });
      this.logger.warn(
        { dataPlaneId: identity?.dataPlaneId, queued: queue.length },
        'worker stream ended: it does not read what is sent to it',
      );
      end({
        kind: 'resource_exhausted',
        message:
          `[${ErrorCodes.STREAM_STALLED}] ${why}: the control plane ended this stream. ` +
          'A worker must keep reading its stream (run tasks, acks, lease updates); reconnect and read what is sent.',
        retryAfterSeconds: 1,
      });
    };
    const block = (): void => {
      blocked = true;
      syncPause();
      stallTimer ??= setTimeout(
        () => stalled(`the stream took nothing of what was sent to it for ${streamStallTimeoutMs} ms`),
        streamStallTimeoutMs,
      );
    };
    call.on('drain', () => {
      if (ended) return;
      // The worker read something: the stall clock starts again from now if it blocks again.
      if (stallTimer) clearTimeout(stallTimer);
      stallTimer = undefined;
      blocked = false;
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- block() sets it during the loop
      while (queue.length > 0 && !blocked) {
        metrics.streamSendQueued.dec();
        if (!call.write(queue.shift()!)) block();
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- block() may have set it in the loop
      if (!blocked) syncPause();
    });

    const end = (how: StreamEnd): void => {
      if (ended) return;
      ended = true;
      this.open.delete(end);
      release();
      releaseStream();
      dropQueue();
      connection?.close();
      if (how.kind === 'ok') {
        call.end();
        return;
      }
      const status: Partial<grpc.StatusObject> = { code: endStatus(how), details: how.message };
      if (how.retryAfterSeconds !== undefined) {
        const metadata = new grpc.Metadata();
        metadata.set('retry-after', String(how.retryAfterSeconds));
        status.metadata = metadata;
      }
      call.emit('error', status);
    };
    const outbound: SessionOutbound = {
      send: (message) => {
        if (ended) return;
        if (blocked) {
          queue.push(message);
          metrics.streamSendQueued.inc();
          if (queue.length > streamSendQueue) stalled(`more than ${streamSendQueue} messages waited for the stream to read them`);
          return;
        }
        if (!call.write(message)) block();
      },
      end,
    };
    if (!this.accepting) {
      end({ kind: 'unavailable', message: 'control plane shutting down; reconnect' });
      return;
    }
    this.open.add(end);

    let pending = 0;
    /** Requests received on this stream so far. */
    let received = 0;
    /** Every request up to this count arrived before a credential check that passed had begun. */
    let checkedThrough = 0;
    const fail = (error: unknown): void => {
      const status = toServiceError(error, this.logger);
      if (status.code === grpc.status.RESOURCE_EXHAUSTED && error instanceof CairnError) {
        if (error.code === ErrorCodes.TOO_MANY_CALLS) metrics.limitRefusals.inc({ limit: 'streams' });
        end({ kind: 'resource_exhausted', message: status.details ?? error.message, retryAfterSeconds: retryAfterSeconds(error) });
        return;
      }
      end({
        kind: error instanceof CairnError && status.code === grpc.status.UNAUTHENTICATED ? 'unauthenticated' : 'unavailable',
        message:
          status.code === grpc.status.UNAUTHENTICATED
            ? (status.details ?? 'unauthenticated')
            : 'control plane could not process a request; reconnect and resend',
      });
    };
    const rotatedAway = (message: string): void => end({ kind: 'unauthenticated', message });
    // One chain per stream: authentication first, then every request in arrival order.
    let chain: Promise<void> = this.dataPlanes.identify(bearerToken(call.metadata), peerAddress(call)).then(async (who) => {
      if (ended) return;
      // At most so many streams per data plane on this replica (CAIRN-1172 past it).
      const releaseThis = await this.limits.openStream(who.dataPlaneId);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- end() may run while openStream awaits
      if (ended) {
        releaseThis();
        return;
      }
      releaseStream = releaseThis;
      identity = who;
      // A rotation or revocation, on any replica, ends this stream if it still uses the old secret.
      release = this.holders.add({ dataPlaneId: who.dataPlaneId, tokenSha256: who.tokenSha256, end: rotatedAway });
      connection = this.protocol.open(who, outbound);
    });
    chain = chain.catch(fail);

    call.on('data', (bytes: Buffer) => {
      if (ended) return;
      let request: ConnectRequest;
      try {
        request = fromBinary(ConnectRequestSchema, bytes);
      } catch {
        end({ kind: 'invalid_argument', message: 'malformed frame: not a valid cairn.worker.v1.ConnectRequest protobuf message' });
        return;
      }
      pending += 1;
      const index = ++received;
      const handled = connection?.arrived(request);
      if (pending >= PAUSE_AT && !inboundBusy) {
        inboundBusy = true;
        syncPause();
      }
      chain = chain
        .then(async () => {
          if (ended || !identity) return;
          // Every request but a heartbeat is checked against the database after it arrived and
          // before it is handled: once a rotation or revocation has committed, a request on a
          // stream that used the old secret is refused on every replica, whether or not its
          // notification has arrived here yet. One check covers every request that had arrived
          // when it began, so requests queued behind a slow one share it.
          // A run's end checks it in the statement that applies it (WORKER_REQUESTS_CHECKING_CREDENTIAL).
          const kind = request.message.case;
          if (kind !== 'heartbeat' && !WORKER_REQUESTS_CHECKING_CREDENTIAL.has(kind) && index > checkedThrough) {
            const through = received;
            if (!(await this.dataPlanes.isCurrent(identity))) {
              rotatedAway(STALE_STREAM_CREDENTIAL);
              return;
            }
            checkedThrough = Math.max(checkedThrough, through);
          }
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- end() may run while isCurrent awaits
          if (!ended) await connection?.receive(request);
        })
        .catch(fail)
        .finally(() => {
          handled?.();
          pending -= 1;
          if (inboundBusy && pending <= RESUME_AT) {
            inboundBusy = false;
            if (!ended) syncPause();
          }
        });
    });
    call.on('end', () => {
      // The worker closed its side: finish what it sent, then close ours.
      chain = chain.finally(() => end({ kind: 'ok', message: 'stream closed by the worker' }));
    });
    const gone = (): void => {
      ended = true;
      this.open.delete(end);
      release();
      releaseStream();
      dropQueue();
      connection?.close();
    };
    call.on('cancelled', gone);
    call.on('error', gone);
  }

  /** Refuses new streams and ends open ones: workers reconnect (to another replica). */
  closeAll(): void {
    this.accepting = false;
    for (const end of [...this.open]) end({ kind: 'unavailable', message: 'control plane shutting down; reconnect' });
  }
}
