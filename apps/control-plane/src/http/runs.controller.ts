import { Controller, Get, Inject, Param, Query, UseGuards } from '@nestjs/common';
import { isId } from '@cairn/common';
import { invalidField } from '../domain.js';
import { ReadinessService } from '../services/readiness.service.js';
import { RunService } from '../services/run.service.js';
import { ApiTokenGuard } from './api-token.guard.js';
import { presentRun, presentStep } from './run.presenter.js';

/** Run metadata for the CLI and the console. */
@Controller('v1/runs')
@UseGuards(ApiTokenGuard)
export class RunsController {
  constructor(
    @Inject(RunService) private readonly runs: RunService,
    @Inject(ReadinessService) private readonly readiness: ReadinessService,
  ) {}

  @Get()
  async list(@Query() query: Record<string, unknown>): Promise<{ runs: unknown[]; nextCursor: string | null }> {
    this.readiness.assertServing();
    const page = await this.runs.list({
      status: query['status'],
      workflow: query['workflow'],
      limit: query['limit'],
      cursor: query['cursor'],
    });
    return { runs: page.runs.map(presentRun), nextCursor: page.nextCursor };
  }

  @Get(':id')
  async describe(@Param('id') id: string): Promise<{ run: unknown; steps: unknown[] }> {
    this.readiness.assertServing();
    if (!isId(id)) throw invalidField('id', 'the run ID in the path is malformed: run IDs are lowercase UUIDs');
    const { run, steps } = await this.runs.describe(null, id);
    return { run: presentRun(run), steps: steps.map(presentStep) };
  }
}
