import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { NestFactory } from '@nestjs/core';
import { registerConsole } from './http/console.js';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { createLogger, type Logger } from '@cairn/common';
import { AppModule, NestLogger } from './app.module.js';
import type { ControlPlaneConfig } from './config.js';
import { Database, errorSummary } from './db/database.js';
import { GrpcServer } from './grpc/grpc-server.js';
import { ErrorFilter } from './http/error.filter.js';
import { AccessService } from './tenancy/access.service.js';
import { AuditCheckpointService } from './audit/audit-checkpoint.service.js';
import { AuditService } from './audit/audit.service.js';
import { DataPlaneService } from './tenancy/data-plane.service.js';
import { DispatchService } from './dispatch/dispatch.service.js';
import { EventBus } from './events/event-bus.service.js';
import { MigrationService } from './db/migration.service.js';
import { ReadinessService } from './db/readiness.service.js';
import { RunService } from './runs/run.service.js';
import { ScheduleTicker } from './schedules/schedule-ticker.service.js';
import { SweeperService } from './dispatch/sweeper.service.js';
import { MetricsServer } from './telemetry/metrics-server.js';
import { Telemetry } from './telemetry/telemetry.service.js';
import { TlsFileWatcher } from './tls-files.js';

/** A running control plane. */
export interface ControlPlane {
  readonly httpPort: number;
  readonly grpcPort: number;
  /** The port serving only `/metrics` (CAIRN_CP_METRICS_PORT), or null when metrics are on the API port alone. */
  readonly metricsPort: number | null;
  /** Where the console served at `/` comes from, or null when none is served. */
  readonly consoleDir: string | null;
  readonly logger: Logger;
  /** Graceful shutdown; leases stay in the database for the workers to re-attach elsewhere. */
  close(): Promise<void>;
}

export interface StartOptions {
  readonly logger?: Logger;
}

/**
 * Starts the control plane: HTTP (probes), migrations, the LISTEN connection, dispatch, gRPC and
 * the sweeper, in that order; readiness turns green when migrations are applied and gRPC listens.
 */
export async function startControlPlane(config: ControlPlaneConfig, options: StartOptions = {}): Promise<ControlPlane> {
  const logger = options.logger ?? createLogger('control-plane', config.logLevel);
  // Certificates mounted from Secrets are reloaded when the files change (cert-manager renewals).
  const grpcTlsWatcher = config.grpcTls?.files ? new TlsFileWatcher('gRPC port', config.grpcTls.files, config.grpcTls, logger) : undefined;
  const httpTlsWatcher = config.httpTls?.files ? new TlsFileWatcher('REST port', config.httpTls.files, config.httpTls, logger) : undefined;
  const adapter = new FastifyAdapter({
    ...(config.httpTls ? { https: { cert: config.httpTls.cert, key: config.httpTls.key } } : {}),
    genReqId: () => randomUUID(),
    logger: false,
    return503OnClosing: true,
    // Clients behind these proxies are told apart by X-Forwarded-For (the credential throttle).
    ...(config.trustedProxies.length > 0 ? { trustProxy: [...config.trustedProxies] } : {}),
  });
  // NestJS types these options as a class and documents passing a literal.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, logger), adapter, {
    logger: new NestLogger(logger),
    abortOnError: false,
  });
  app.useGlobalFilters(new ErrorFilter(logger));
  const telemetry = app.get(Telemetry);
  const http = app.getHttpAdapter().getInstance();
  const consoleDir = registerConsole(http, config.consoleDir, logger);
  http.addHook('onRequest', (request, _reply, done) => {
    telemetry.httpStarted(request);
    done();
  });
  http.addHook('onSend', (request, reply, payload, done) => {
    telemetry.httpSending(request, reply.statusCode, payload);
    done(null, payload);
  });
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onResponse', (request, reply, done) => {
      telemetry.httpEnded(request, reply.statusCode, reply.elapsedTime);
      // Method, route and status only: never headers, never query values.
      logger.info(
        {
          reqId: request.id,
          method: request.method,
          route: request.routeOptions.url ?? 'unmatched',
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
        },
        'http request',
      );
      done();
    });

  const readiness = app.get(ReadinessService);
  const events = app.get(EventBus);
  const dispatch = app.get(DispatchService);
  const sweeper = app.get(SweeperService);
  const ticker = app.get(ScheduleTicker);
  const grpcServer = app.get(GrpcServer);
  const runs = app.get(RunService);
  const database = app.get(Database);
  const dataPlanes = app.get(DataPlaneService);
  const audit = app.get(AuditService);
  const metricsServer = new MetricsServer(telemetry, logger);
  const checkpoints = app.get(AuditCheckpointService);

  let grpcPort: number;
  let httpPort: number;
  let metricsPort: number | null = null;
  try {
    // HTTP first, so probes answer while migrations run: /healthz 200, /readyz 503 until the end.
    await app.listen(config.httpPort, config.host);
    httpPort = (app.getHttpServer().address() as AddressInfo).port;
    if (httpTlsWatcher) {
      const server = app.getHttpServer() as unknown as TlsServer;
      httpTlsWatcher.onChange((m) => server.setSecureContext({ cert: m.cert, key: m.key }));
      httpTlsWatcher.start();
    }
    await app.get(MigrationService).ensureMigrated();
    await audit.warnIfRoleCanRewrite();
    if (config.bootstrap) {
      const outcome = await app.get(AccessService).bootstrap({
        organization: config.bootstrap.organization,
        project: config.bootstrap.project,
        secret: config.bootstrap.adminKey,
      });
      const ids = { organizationId: outcome.organizationId, projectId: outcome.projectId, apiKeyId: outcome.keyId };
      if (outcome.state === 'revoked' || outcome.state === 'expired') {
        // Revoked on purpose (the rotation path) or expired: it stays so; the start goes on without it.
        logger.warn(
          ids,
          `the key in CAIRN_BOOTSTRAP_ADMIN_KEY was ${outcome.state === 'revoked' ? 'revoked' : 'created with an expiry that has passed'}; it is not revived. Remove CAIRN_BOOTSTRAP_ADMIN_KEY or set it to a current organisation-wide admin key`,
        );
      } else logger.info(ids, outcome.state === 'minted' ? 'bootstrap admin key minted' : 'bootstrap admin key ready');
    }
    readiness.migrated = true;
    await events.start();
    dispatch.start();
    grpcPort = await grpcServer.start(config.host, config.grpcPort, config.grpcTls, config.limits.grpcMaxMessageBytes, grpcTlsWatcher);
    grpcTlsWatcher?.start();
    readiness.grpcListening = true;
    if (config.telemetry.metricsPort !== null) metricsPort = await metricsServer.start(config.host, config.telemetry.metricsPort);
    sweeper.start();
    ticker.start();
    dataPlanes.start();
    audit.start();
    checkpoints.start();
  } catch (error) {
    grpcTlsWatcher?.close();
    httpTlsWatcher?.close();
    dataPlanes.stop();
    await checkpoints.stop();
    await audit.stop();
    await metricsServer.stop().catch(() => undefined);
    await ticker.stop().catch(() => undefined);
    await sweeper.stop().catch(() => undefined);
    await dispatch.stop().catch(() => undefined);
    await grpcServer.stop(0).catch(() => undefined);
    await app.close().catch(() => undefined);
    await events.stop().catch(() => undefined);
    await database.close().catch(() => undefined);
    await telemetry.shutdown();
    throw error;
  }
  logger.info(
    {
      httpPort,
      grpcPort,
      metricsPort,
      consoleDir,
      host: config.host,
      leaseTtlMs: config.leaseTtlMs,
      auditKeyId: config.auditSigningKey?.keyId ?? null,
    },
    'control plane listening',
  );

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const started = Date.now();
      const left = (): number => Math.max(0, config.shutdownTimeoutMs - (Date.now() - started) - 250);
      logger.info('control plane shutting down');
      readiness.shuttingDown = true;
      grpcTlsWatcher?.close();
      httpTlsWatcher?.close();
      dataPlanes.stop();
      await checkpoints.stop();
      await audit.stop();
      await ticker.stop();
      await sweeper.stop();
      await dispatch.stop();
      runs.shutdown();
      await grpcServer.stop(Math.min(left(), 2_000));
      await metricsServer.stop();
      await app.close().catch((error: unknown) => logger.warn({ err: errorSummary(error) }, 'HTTP server did not close cleanly'));
      await events.stop();
      await database.close();
      await telemetry.shutdown();
      logger.info({ ms: Date.now() - started }, 'control plane stopped');
    })();
    return closing;
  };
  return { httpPort, grpcPort, metricsPort, consoleDir, logger, close };
}
