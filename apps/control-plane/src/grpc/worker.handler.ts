import * as grpc from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, retryAfterSeconds, type Logger } from '@cairn/common';
import { ConnectRequestSchema, fromBinary, type ConnectRequest, type ConnectResponse } from '@cairn/proto';
import { CredentialHolders } from '../services/credential-holders.js';
import { DataPlaneService, type DataPlaneIdentity } from '../services/data-plane.service.js';
import { WorkerProtocolService, type WorkerConnection } from '../services/worker-protocol.service.js';
import type { SessionOutbound, StreamEnd } from '../services/worker-session.js';
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
  ) {}

  connect(call: grpc.ServerDuplexStream<Buffer, ConnectResponse>): void {
    let ended = false;
    let connection: WorkerConnection | null = null;
    let identity: DataPlaneIdentity | null = null;
    let release = (): void => undefined;
    const end = (how: StreamEnd): void => {
      if (ended) return;
      ended = true;
      this.open.delete(end);
      release();
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
        if (!ended) call.write(message);
      },
      end,
    };
    if (!this.accepting) {
      end({ kind: 'unavailable', message: 'control plane shutting down; reconnect' });
      return;
    }
    this.open.add(end);

    let pending = 0;
    let paused = false;
    const fail = (error: unknown): void => {
      const status = toServiceError(error, this.logger);
      if (error instanceof CairnError && error.code === ErrorCodes.CREDENTIAL_THROTTLED) {
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
    let chain: Promise<void> = this.dataPlanes.identify(bearerToken(call.metadata), peerAddress(call)).then((who) => {
      if (ended) return;
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
      if (pending >= PAUSE_AT && !paused) {
        paused = true;
        call.pause();
      }
      chain = chain
        .then(async () => {
          if (ended || !identity) return;
          // Every request but a heartbeat is checked against the database: once a rotation or
          // revocation has committed, a request on a stream that used the old secret is refused on
          // every replica, whether or not its notification has arrived here yet.
          if (request.message.case !== 'heartbeat' && !(await this.dataPlanes.isCurrent(identity))) {
            rotatedAway(
              'the data-plane credential was rotated or revoked: this stream used the old one; configure the current credential and reconnect',
            );
            return;
          }
          if (!ended) await connection?.receive(request);
        })
        .catch(fail)
        .finally(() => {
          pending -= 1;
          if (paused && pending <= RESUME_AT) {
            paused = false;
            call.resume();
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
