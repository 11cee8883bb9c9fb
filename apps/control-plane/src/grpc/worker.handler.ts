import * as grpc from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, type Logger } from '@cairn/common';
import { ConnectRequestSchema, fromBinary, type ConnectRequest, type ConnectResponse } from '@cairn/proto';
import { DataPlaneService } from '../services/data-plane.service.js';
import { WorkerProtocolService, type WorkerConnection } from '../services/worker-protocol.service.js';
import type { SessionOutbound, StreamEnd } from '../services/worker-session.js';
import { LOGGER } from '../tokens.js';
import { bearerToken, endStatus, toServiceError } from './status.js';

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
  ) {}

  connect(call: grpc.ServerDuplexStream<Buffer, ConnectResponse>): void {
    let ended = false;
    let connection: WorkerConnection | null = null;
    const end = (how: StreamEnd): void => {
      if (ended) return;
      ended = true;
      this.open.delete(end);
      connection?.close();
      if (how.kind === 'ok') call.end();
      else call.emit('error', { code: endStatus(how), details: how.message });
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
      end({
        kind: error instanceof CairnError && status.code === grpc.status.UNAUTHENTICATED ? 'unauthenticated' : 'unavailable',
        message:
          status.code === grpc.status.UNAUTHENTICATED
            ? (status.details ?? 'unauthenticated')
            : 'control plane could not process a request; reconnect and resend',
      });
    };
    // One chain per stream: authentication first, then every request in arrival order.
    let chain: Promise<void> = this.dataPlanes.authenticate(bearerToken(call.metadata)).then((dataPlaneId) => {
      if (!ended) connection = this.protocol.open(dataPlaneId, outbound);
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
        .then(() => (ended ? undefined : connection?.receive(request)))
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
    call.on('cancelled', () => {
      ended = true;
      this.open.delete(end);
      connection?.close();
    });
    call.on('error', () => {
      ended = true;
      this.open.delete(end);
      connection?.close();
    });
  }

  /** Refuses new streams and ends open ones: workers reconnect (to another replica). */
  closeAll(): void {
    this.accepting = false;
    for (const end of [...this.open]) end({ kind: 'unavailable', message: 'control plane shutting down; reconnect' });
  }
}
