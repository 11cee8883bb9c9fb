import { Body, Controller, Get, Inject, Put, Query } from '@nestjs/common';
import { z } from 'zod';
import type { Project } from '../tenancy/tenant.repository.js';
import type { Quotas } from '../metering/usage.repository.js';
import { QuotaService } from '../metering/quota.service.js';
import { UsageService, type UsageReport } from '../metering/usage.service.js';
import { Api, Caller, CurrentProject, type RequestContext } from './api.js';
import { QuotasAnswer, UsageReport as UsageReportSchema } from './responses.js';
import type { Quotas as QuotasSchema } from './responses.js';

const daySchema = z.string().regex(/^\d{4}-\d\d-\d\d$/, 'expected a day as YYYY-MM-DD (UTC)');
const UsageQuery = z.strictObject({ from: daySchema.optional(), to: daySchema.optional() });

const limitValue = (max: number): z.ZodType<number | null> =>
  z
    .number({ error: 'expected a whole number, or null for no limit' })
    .int('expected a whole number, or null for no limit')
    .min(0, 'expected 0 or more (0 refuses every new run), or null for no limit')
    .max(max, `expected at most ${max}`)
    .nullable();

const QuotasBody = z.strictObject({
  maxConcurrentRuns: limitValue(2_147_483_647),
  maxStepsPerMonth: limitValue(Number.MAX_SAFE_INTEGER),
});

export function presentQuotas(quotas: Quotas): z.input<typeof QuotasSchema> {
  return {
    maxConcurrentRuns: quotas.maxConcurrentRuns,
    maxStepsPerMonth: quotas.maxStepsPerMonth,
    updatedAt: quotas.updatedAt === null ? null : quotas.updatedAt.toISOString(),
    updatedBy: quotas.updatedBy,
  };
}

/** A project's usage (metering per UTC day) and its quotas. */
@Controller('v1/projects/:project')
export class UsageController {
  constructor(
    @Inject(UsageService) private readonly usage: UsageService,
    @Inject(QuotaService) private readonly quotas: QuotaService,
  ) {}

  @Get('usage')
  @Api({
    response: UsageReportSchema,
    permission: 'project.read',
    tag: 'usage',
    summary: 'Usage per UTC day: runs started, steps executed, model tokens by provider and model, and each by workflow',
    description: 'from and to are UTC days (YYYY-MM-DD), both inclusive; default the last 30 days. At most 366 days.',
    query: UsageQuery,
  })
  async report(@CurrentProject() project: Project, @Query() query: z.infer<typeof UsageQuery>): Promise<UsageReport> {
    return this.usage.report(project.id, query);
  }

  @Get('quotas')
  @Api({ response: QuotasAnswer, permission: 'project.read', tag: 'usage', summary: "The project's quotas (null: no limit)" })
  async get(@CurrentProject() project: Project): Promise<{ quotas: unknown }> {
    return { quotas: presentQuotas(await this.quotas.get(project.id)) };
  }

  @Put('quotas')
  @Api({
    response: QuotasAnswer,
    permission: 'project.admin',
    tag: 'usage',
    summary: "Set the project's quotas: maxConcurrentRuns and maxStepsPerMonth (null: no limit)",
    body: QuotasBody,
  })
  async set(
    @Caller() caller: RequestContext,
    @CurrentProject() project: Project,
    @Body() body: z.infer<typeof QuotasBody>,
  ): Promise<{ quotas: unknown }> {
    return { quotas: presentQuotas(await this.quotas.set(caller.principal, project, body)) };
  }
}
