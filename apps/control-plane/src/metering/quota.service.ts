/**
 * Project quotas: concurrent runs (runs not ended) and steps per calendar month (UTC).
 *
 * For code that starts runs:
 * - `assertCanStart(projectId, tx?)` throws `CairnError(QUOTA_EXCEEDED)` naming the quota, its limit,
 *   the current value and what to do. Given the transaction that inserts the run, it first takes
 *   the project's start lock when a concurrent-run quota is set, so parallel starts cannot overshoot
 *   it (the lock is held until that transaction ends). Schedule firings call it this way.
 * - `admit(dataPlaneId, insert, alreadyStarted)` wraps a single-statement start (StartRun,
 *   StartChild): no quota → `insert(undefined)` at once; otherwise the check and the insert share one
 *   transaction. A refused start whose run already exists (a retried StartRun) answers null instead
 *   of refusing, so the caller returns the existing run.
 */
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes } from '@cairn/common';
import { Database, type Queryable } from '../db/database.js';
import type { Project } from '../tenancy/tenant.repository.js';
import { UsageRepository, type Quotas, type StartQuotas } from './usage.repository.js';
import type { Principal } from '../auth/principal.js';
import { AuditService } from '../audit/audit.service.js';

export interface QuotaInput {
  readonly maxConcurrentRuns: number | null;
  readonly maxStepsPerMonth: number | null;
}

/** Sets, reads and enforces project quotas. */
@Injectable()
export class QuotaService {
  constructor(
    @Inject(UsageRepository) private readonly usage: UsageRepository,
    @Inject(Database) private readonly db: Database,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  async get(projectId: string): Promise<Quotas> {
    return this.usage.quotas(projectId);
  }

  /** Replaces the project's quotas (null: no limit) and records the change in the audit log. */
  async set(principal: Principal, project: Project, input: QuotaInput): Promise<Quotas> {
    const before = await this.usage.quotas(project.id);
    await this.db.transaction(async (tx) => {
      await this.usage.setQuotas(tx, project.id, input, principal.keyId);
      await this.audit.record(tx, {
        projectId: project.id,
        actor: AuditService.actorOf(principal),
        action: 'quota.updated',
        target: { type: 'project', id: project.id },
        metadata: {
          maxConcurrentRuns: input.maxConcurrentRuns,
          maxStepsPerMonth: input.maxStepsPerMonth,
          previousMaxConcurrentRuns: before.maxConcurrentRuns,
          previousMaxStepsPerMonth: before.maxStepsPerMonth,
        },
      });
    });
    return this.usage.quotas(project.id);
  }

  /**
   * Refuses a start when the project is at its concurrent-run quota or has used its monthly steps.
   * With `tx`, takes the project's start lock first (when a concurrent-run quota is set), so the
   * insert that follows in `tx` cannot overshoot it.
   */
  async assertCanStart(projectId: string, tx?: Queryable): Promise<void> {
    const quotas = await this.usage.startQuotas(projectId);
    if (quotas) await this.check(quotas, tx);
  }

  /**
   * Runs `insert` (one start) under the quotas of the data plane's project; see the top of this
   * file. `alreadyStarted` tells whether the run the caller tries to start exists already. `insert`
   * gets the transaction to insert in, or undefined when the insert runs on its own (then as the
   * repository's prepared statement, planned once per connection).
   */
  async admit<T>(
    dataPlaneId: string,
    insert: (tx: Queryable | undefined) => Promise<T | null>,
    alreadyStarted: () => Promise<boolean>,
    startQuotas: Promise<StartQuotas | null> = this.startQuotas(dataPlaneId),
  ): Promise<T | null> {
    const quotas = await startQuotas;
    if (!quotas || (quotas.maxConcurrentRuns === null && quotas.maxStepsPerMonth === null)) return insert(undefined);
    const refusedUnlessStarted = async (error: unknown): Promise<null> => {
      if (error instanceof CairnError && error.code === ErrorCodes.QUOTA_EXCEEDED && (await alreadyStarted())) return null;
      throw error;
    };
    if (quotas.maxConcurrentRuns === null) {
      // Only the monthly steps: starts need no serialising (starting a run does not use steps).
      try {
        await this.check(quotas);
      } catch (error) {
        return refusedUnlessStarted(error);
      }
      return insert(undefined);
    }
    return this.db.transaction(async (tx) => {
      try {
        await this.check(quotas, tx);
      } catch (error) {
        return refusedUnlessStarted(error);
      }
      return insert(tx);
    });
  }

  /**
   * The project's start quotas, looked up before {@link admit} when the caller has other reads to
   * do meanwhile (a start resolves the workflow version at the same time).
   */
  startQuotas(dataPlaneId: string): Promise<StartQuotas | null> {
    return this.usage.startQuotasForDataPlane(dataPlaneId);
  }

  private async check(quotas: StartQuotas, tx?: Queryable): Promise<void> {
    const project = quotas.projectName;
    const where = `PUT /v1/projects/${project}/quotas`;
    if (quotas.maxStepsPerMonth !== null) {
      const used = await this.usage.stepsThisMonth(quotas.projectId, tx);
      if (used >= quotas.maxStepsPerMonth) {
        const now = new Date();
        const month = now.toISOString().slice(0, 7);
        const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString();
        throw new CairnError(
          ErrorCodes.QUOTA_EXCEEDED,
          `project ${project} has used its monthly step quota (maxStepsPerMonth): ${used} of ${quotas.maxStepsPerMonth} steps executed in ${month} (UTC). ` +
            `New runs are refused until ${next} or until a project admin raises the quota with ${where}.`,
          { details: { quota: 'maxStepsPerMonth', limit: quotas.maxStepsPerMonth, current: used } },
        );
      }
    }
    if (quotas.maxConcurrentRuns !== null) {
      if (tx) await this.usage.lockStarts(tx, quotas.projectId);
      const open = await this.usage.openRuns(quotas.projectId, quotas.maxConcurrentRuns, tx);
      if (open >= quotas.maxConcurrentRuns) {
        throw new CairnError(
          ErrorCodes.QUOTA_EXCEEDED,
          `project ${project} is at its concurrent-run quota (maxConcurrentRuns): ${open} of ${quotas.maxConcurrentRuns} runs have not ended. ` +
            `Retry when runs end, cancel runs you no longer need, or ask a project admin to raise the quota with ${where}.`,
          { details: { quota: 'maxConcurrentRuns', limit: quotas.maxConcurrentRuns, current: open } },
        );
      }
    }
  }
}
