import { Module, type DynamicModule, type LoggerService } from '@nestjs/common';
import { CredentialThrottle, type Logger } from '@cairn/common';
import { CONFIG, type ControlPlaneConfig } from './config.js';
import { AuditRepository } from './audit/audit.repository.js';
import { DataPlaneRepository } from './tenancy/data-plane.repository.js';
import { Database } from './db/database.js';
import { MigrationRepository } from './db/migration.repository.js';
import { NotificationRepository } from './events/notification.repository.js';
import { RunRepository } from './runs/run.repository.js';
import { BacklogRepository } from './dispatch/backlog.repository.js';
import { ScheduleRepository } from './schedules/schedule.repository.js';
import { SignalRepository } from './runs/signal.repository.js';
import { StepRepository } from './runs/step.repository.js';
import { TenantRepository } from './tenancy/tenant.repository.js';
import { UsageRepository } from './metering/usage.repository.js';
import { FlowControlRepository } from './flow-control/flow-control.repository.js';
import { WorkflowRegistryRepository } from './workflows/workflow-registry.repository.js';
import { WorkflowRepository } from './workflows/workflow.repository.js';
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
import { AccessService } from './tenancy/access.service.js';
import { AuditCheckpointService } from './audit/audit-checkpoint.service.js';
import { AuditService } from './audit/audit.service.js';
import { CredentialHolders } from './tenancy/credential-holders.js';
import { DataPlaneService } from './tenancy/data-plane.service.js';
import { DispatchService } from './dispatch/dispatch.service.js';
import { EventBus } from './events/event-bus.service.js';
import { FlowControlService } from './flow-control/flow-control.service.js';
import { LeaseService } from './dispatch/lease.service.js';
import { MigrationService } from './db/migration.service.js';
import { QuotaService } from './metering/quota.service.js';
import { ReadinessService } from './db/readiness.service.js';
import { RunManagementService } from './runs/run-management.service.js';
import { RunService } from './runs/run.service.js';
import { ScheduleTicker } from './schedules/schedule-ticker.service.js';
import { ScheduleService } from './schedules/schedule.service.js';
import { CLOCK, systemClock, type Clock } from './shared/clock.js';
import { SessionRegistry } from './dispatch/session-registry.js';
import { SweeperService } from './dispatch/sweeper.service.js';
import { UsageService } from './metering/usage.service.js';
import { BacklogService } from './dispatch/backlog.service.js';
import { WorkerProtocolService } from './dispatch/worker-protocol.service.js';
import { WorkflowRegistryService } from './workflows/workflow-registry.service.js';
import { WorkflowDefaultsService } from './workflows/workflow-defaults.service.js';
import { MetricsRepository } from './telemetry/metrics.repository.js';
import { LimitsRepository } from './metering/limits.repository.js';
import { LimitsService } from './metering/limits.service.js';
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
