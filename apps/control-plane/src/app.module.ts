import { Module, type DynamicModule, type LoggerService } from '@nestjs/common';
import { CredentialThrottle, type Logger } from '@cairn/common';
import { CONFIG, type ControlPlaneConfig } from './config.js';
import { AuditRepository } from './db/audit.repository.js';
import { DataPlaneRepository } from './db/data-plane.repository.js';
import { Database } from './db/database.js';
import { MigrationRepository } from './db/migration.repository.js';
import { NotificationRepository } from './db/notification.repository.js';
import { RunRepository } from './db/run.repository.js';
import { BacklogRepository } from './db/backlog.repository.js';
import { ScheduleRepository } from './db/schedule.repository.js';
import { SignalRepository } from './db/signal.repository.js';
import { StepRepository } from './db/step.repository.js';
import { TenantRepository } from './db/tenant.repository.js';
import { UsageRepository } from './db/usage.repository.js';
import { FlowControlRepository } from './db/flow-control.repository.js';
import { WorkflowRegistryRepository } from './db/workflow-registry.repository.js';
import { WorkflowRepository } from './db/workflow.repository.js';
import { GatewayHandler } from './grpc/gateway.handler.js';
import { GrpcServer } from './grpc/grpc-server.js';
import { WorkerHandler } from './grpc/worker.handler.js';
import { AccessGuard } from './http/api.js';
import { ApiKeysController } from './http/api-keys.controller.js';
import { AuditController, AuditKeysController } from './http/audit.controller.js';
import { DataPlanesController } from './http/data-planes.controller.js';
import { HealthController } from './http/health.controller.js';
import { MetricsController } from './http/metrics.controller.js';
import { API_CONTROLLERS, OpenApiController } from './http/openapi.js';
import { ProjectsController } from './http/projects.controller.js';
import { RunsController } from './http/runs.controller.js';
import { UsageController } from './http/usage.controller.js';
import { SchedulesController } from './http/schedules.controller.js';
import { WorkflowsController } from './http/workflows.controller.js';
import { AccessService } from './services/access.service.js';
import { AuditCheckpointService } from './services/audit-checkpoint.service.js';
import { AuditService } from './services/audit.service.js';
import { CredentialHolders } from './services/credential-holders.js';
import { DataPlaneService } from './services/data-plane.service.js';
import { DispatchService } from './services/dispatch.service.js';
import { EventBus } from './services/event-bus.service.js';
import { FlowControlService } from './services/flow-control.service.js';
import { LeaseService } from './services/lease.service.js';
import { MigrationService } from './services/migration.service.js';
import { QuotaService } from './services/quota.service.js';
import { ReadinessService } from './services/readiness.service.js';
import { RunManagementService } from './services/run-management.service.js';
import { RunService } from './services/run.service.js';
import { ScheduleTicker } from './services/schedule-ticker.service.js';
import { ScheduleService } from './services/schedule.service.js';
import { CLOCK, systemClock, type Clock } from './services/clock.js';
import { SessionRegistry } from './services/session-registry.js';
import { SweeperService } from './services/sweeper.service.js';
import { UsageService } from './services/usage.service.js';
import { BacklogService } from './services/backlog.service.js';
import { WorkerProtocolService } from './services/worker-protocol.service.js';
import { WorkflowRegistryService } from './services/workflow-registry.service.js';
import { WorkflowDefaultsService } from './services/workflow-defaults.service.js';
import { MetricsRepository } from './telemetry/metrics.repository.js';
import { LimitsRepository } from './db/limits.repository.js';
import { LimitsService } from './services/limits.service.js';
import { Telemetry } from './telemetry/telemetry.service.js';
import { LOGGER } from './tokens.js';

const repositories = [
  MigrationRepository,
  LimitsRepository,
  DataPlaneRepository,
  RunRepository,
  BacklogRepository,
  StepRepository,
  SignalRepository,
  WorkflowRepository,
  WorkflowRegistryRepository,
  FlowControlRepository,
  NotificationRepository,
  TenantRepository,
  AuditRepository,
  UsageRepository,
  ScheduleRepository,
];
const services = [
  BacklogService,
  LimitsService,
  MigrationService,
  ReadinessService,
  AuditService,
  AuditCheckpointService,
  QuotaService,
  UsageService,
  AccessService,
  DataPlaneService,
  CredentialHolders,
  EventBus,
  FlowControlService,
  WorkflowRegistryService,
  WorkflowDefaultsService,
  SessionRegistry,
  DispatchService,
  LeaseService,
  WorkerProtocolService,
  RunService,
  RunManagementService,
  SweeperService,
  ScheduleTicker,
  ScheduleService,
];

/** The REST API's controllers (the OpenAPI document and the role matrix test walk them). */
export const API_CONTROLLER_CLASSES = [
  ProjectsController,
  ApiKeysController,
  DataPlanesController,
  RunsController,
  WorkflowsController,
  SchedulesController,
  UsageController,
  AuditController,
];

/** The control plane's one module: REST controllers, gRPC handlers, services and repositories. */
@Module({})
export class AppModule {
  /** `options.clock`: where schedules take the time from (tests pass a clock they move). */
  static forRoot(config: ControlPlaneConfig, logger: Logger, options: { clock?: Clock } = {}): DynamicModule {
    return {
      module: AppModule,
      controllers: [HealthController, MetricsController, OpenApiController, AuditKeysController, ...API_CONTROLLER_CLASSES],
      providers: [
        { provide: CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        { provide: CLOCK, useValue: options.clock ?? systemClock },
        // One throttle of failed credential attempts for the whole process: REST, gRPC and /metrics.
        { provide: CredentialThrottle, useFactory: () => new CredentialThrottle() },
        {
          provide: Database,
          useFactory: () => new Database(config.databaseUrl, config.poolSize, logger, config.limits.statementTimeoutMs),
        },
        ...repositories,
        ...services,
        { provide: API_CONTROLLERS, useValue: API_CONTROLLER_CLASSES },
        AccessGuard,
        WorkerHandler,
        GatewayHandler,
        GrpcServer,
        MetricsRepository,
        Telemetry,
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
