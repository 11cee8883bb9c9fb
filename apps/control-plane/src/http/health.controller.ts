import { Controller, Get, Inject } from '@nestjs/common';
import { ReadinessService } from '../db/readiness.service.js';

/** Liveness and readiness probes (no authentication). */
@Controller()
export class HealthController {
  constructor(@Inject(ReadinessService) private readonly readiness: ReadinessService) {}

  /** The process is up. */
  @Get('healthz')
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** 200 when the database answers, migrations are applied and gRPC listens; 503 otherwise. */
  @Get('readyz')
  async ready(): Promise<{ status: 'ready' }> {
    await this.readiness.check();
    return { status: 'ready' };
  }
}
