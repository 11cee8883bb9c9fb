import { Module, type DynamicModule, type LoggerService } from '@nestjs/common';
import type { Logger } from '@cairn/common';
import { CONFIG, type ControlPlaneConfig } from './config.js';
import { DataPlaneRepository } from './db/data-plane.repository.js';
import { Database } from './db/database.js';
import { MigrationRepository } from './db/migration.repository.js';
import { NotificationRepository } from './db/notification.repository.js';
import { RunRepository } from './db/run.repository.js';
import { SignalRepository } from './db/signal.repository.js';
import { StepRepository } from './db/step.repository.js';
import { WorkflowRepository } from './db/workflow.repository.js';
import { GatewayHandler } from './grpc/gateway.handler.js';
import { GrpcServer } from './grpc/grpc-server.js';
import { WorkerHandler } from './grpc/worker.handler.js';
import { ApiTokenGuard } from './http/api-token.guard.js';
import { HealthController } from './http/health.controller.js';
import { RunsController } from './http/runs.controller.js';
import { DataPlaneService } from './services/data-plane.service.js';
import { DispatchService } from './services/dispatch.service.js';
import { EventBus } from './services/event-bus.service.js';
import { LeaseService } from './services/lease.service.js';
import { MigrationService } from './services/migration.service.js';
import { ReadinessService } from './services/readiness.service.js';
import { RunService } from './services/run.service.js';
import { SessionRegistry } from './services/session-registry.js';
import { SweeperService } from './services/sweeper.service.js';
import { WorkerProtocolService } from './services/worker-protocol.service.js';
import { LOGGER } from './tokens.js';

const repositories = [
  MigrationRepository,
  DataPlaneRepository,
  RunRepository,
  StepRepository,
  SignalRepository,
  WorkflowRepository,
  NotificationRepository,
];
const services = [
  MigrationService,
  ReadinessService,
  DataPlaneService,
  EventBus,
  SessionRegistry,
  DispatchService,
  LeaseService,
  WorkerProtocolService,
  RunService,
  SweeperService,
];

/** The control plane's one module: REST controllers, gRPC handlers, services and repositories. */
@Module({})
export class AppModule {
  static forRoot(config: ControlPlaneConfig, logger: Logger): DynamicModule {
    return {
      module: AppModule,
      controllers: [HealthController, RunsController],
      providers: [
        { provide: CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        { provide: Database, useFactory: () => new Database(config.databaseUrl, config.poolSize, logger) },
        ...repositories,
        ...services,
        ApiTokenGuard,
        WorkerHandler,
        GatewayHandler,
        GrpcServer,
      ],
    };
  }
}

/** Nest's own messages (route mapping, lifecycle) go to pino at debug level; errors stay errors. */
export class NestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown): void {
    this.logger.debug({ source: 'nest' }, String(message));
  }
  error(message: unknown): void {
    this.logger.error({ source: 'nest' }, String(message));
  }
  warn(message: unknown): void {
    this.logger.warn({ source: 'nest' }, String(message));
  }
  debug(message: unknown): void {
    this.logger.debug({ source: 'nest' }, String(message));
  }
  verbose(message: unknown): void {
    this.logger.trace({ source: 'nest' }, String(message));
  }
}
