import * as grpc from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import { GatewayService, WorkerService, grpcServiceDefinition } from '@cairn/proto';
import type { ControlPlaneConfig } from '../config.js';
import { grpcCertificateProvider, type TlsFileWatcher } from '../tls-files.js';
import { Telemetry } from '../telemetry/telemetry.service.js';
import { GatewayHandler } from './gateway.handler.js';
import { healthHandlers, healthServiceDefinition } from './health.js';
import { rawRequests } from './status.js';
import { WorkerHandler } from './worker.handler.js';

/**
 * The gRPC server serving WorkerService and GatewayService, and the standard health service
 * (grpc.health.v1): plaintext behind a TLS-terminating load balancer, or TLS / mutual TLS itself
 * (`CAIRN_CP_GRPC_TLS_*`).
 */
@Injectable()
export class GrpcServer {
  private server: grpc.Server | null = null;

  constructor(
    @Inject(WorkerHandler) private readonly worker: WorkerHandler,
    @Inject(GatewayHandler) private readonly gateway: GatewayHandler,
    @Inject(Telemetry) private readonly telemetry: Telemetry,
  ) {}

  /** Binds and starts serving; returns the bound port (useful with port 0). */
  async start(
    host: string,
    port: number,
    tls?: ControlPlaneConfig['grpcTls'],
    maxMessageBytes = 4 * 1024 * 1024,
    watcher?: TlsFileWatcher,
  ): Promise<number> {
    const server = new grpc.Server({
      // A larger message is refused (RESOURCE_EXHAUSTED) before it is decoded.
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    server.addService(rawRequests(grpcServiceDefinition(WorkerService)), {
      connect: (call: grpc.ServerDuplexStream<Buffer, never>) => this.worker.connect(call),
    });
    server.addService(rawRequests(grpcServiceDefinition(GatewayService)), this.telemetry.gatewayHandlers(this.gateway.handlers()));
    // SERVING until stop() begins; a replica that is shutting down says NOT_SERVING to anyone still asking.
    server.addService(
      healthServiceDefinition,
      healthHandlers(() => this.server === server),
    );
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const bound = await new Promise<number>((resolve, reject) => {
      // With a watcher, a renewed certificate (or client CA) is served from the next handshake on.
      const provider = watcher ? grpcCertificateProvider(watcher) : undefined;
      const credentials = provider
        ? grpc.experimental.createCertificateProviderServerCredentials(
            provider,
            watcher!.current.clientCa ? provider : null,
            watcher!.current.clientCa !== null,
          )
        : tls
          ? grpc.ServerCredentials.createSsl(tls.clientCa, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== null)
          : grpc.ServerCredentials.createInsecure();
      server.bindAsync(address, credentials, (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
    });
    this.server = server;
    return bound;
  }

  /**
   * Stops accepting calls, ends worker streams (UNAVAILABLE, so workers reconnect elsewhere) and
   * waits up to `timeoutMs` for calls in flight before cutting them.
   */
  async stop(timeoutMs: number): Promise<void> {
    const server = this.server;
    this.server = null;
    this.worker.closeAll();
    if (!server) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, timeoutMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
