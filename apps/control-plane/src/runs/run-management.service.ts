import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, isId, type Logger } from '@cairn/common';
import { Database } from '../db/database.js';
import { RunRepository, type RunListQuery } from './run.repository.js';
import { StepRepository } from './step.repository.js';
import { WorkflowRepository } from '../workflows/workflow.repository.js';
import {
  invalidField,
  isFinal,
  runNotFound,
  type LeaseKey,
  type Run,
  type RunStatusName,
  type RunWarningName,
  type Step,
} from '../domain.js';
import { LOGGER } from '../tokens.js';
import { AuditService, type AuditActor } from '../audit/audit.service.js';
import { EventBus } from '../events/event-bus.service.js';
import { QuotaService } from '../metering/quota.service.js';
import { RunService } from './run.service.js';
import { decodeCursor, encodeCursor } from '../shared/page-cursor.js';

/** Filters of `GET /v1/projects/:project/runs`, already validated by the route's schema. */
export interface RunListFilters {
  readonly statuses?: readonly RunStatusName[];
  readonly workflow?: string;
  readonly version?: string;
  readonly scheduleId?: string;
  readonly parentRunId?: string;
  /** `approval`: only runs suspended on a ctx.approval. */
  readonly waiting?: 'approval';
  readonly createdAfter?: Date;
  readonly createdBefore?: Date;
  readonly limit: number;
  readonly cursor?: string;
}

export interface RunListResult {
  readonly runs: Run[];
  readonly nextCursor: string | null;
}

/** One durable call on a run's timeline: its attempts and what they add up to. */
export interface TimelineCall {
  readonly position: number;
  readonly kind: Step['kind'];
  readonly name: string;
  readonly keyDigest: string | null;
  /** The status of the latest attempt. */
  readonly status: Step['status'];
  readonly attempts: readonly Step[];
  readonly startedAt: Date | null;
  readonly endedAt: Date | null;
  readonly durationMs: number | null;
  readonly inputTokens: number | null;
  readonly outputTokens: number | null;
  /** For a forked run, a call below its fork position: copied from the source, not executed. */
  readonly copied: boolean;
}

/** Run-level totals over the step timeline. */
export interface RunTotals {
  readonly durableCalls: number;
  readonly attempts: number;
  /** Attempts beyond each call's first. */
  readonly retries: number;
  readonly failedAttempts: number;
  /** Calls of a forked run copied from its source (not executed). */
  readonly copiedCalls: number;
  /** Tokens of the model-call attempts this run executed; copied calls are left out. */
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly tokensByModel: ReadonlyArray<{
    readonly provider: string | null;
    readonly model: string | null;
    readonly attempts: number;
    readonly inputTokens: number;
    readonly outputTokens: number;
  }>;
  /** From the first dispatch (or creation) to the end, or to now for a run that has not ended. */
  readonly wallTimeMs: number;
}

export interface RunView {
  readonly run: Run;
  readonly steps: Step[];
  readonly timeline: TimelineCall[];
  readonly totals: RunTotals;
  /** What may keep the run from running soon (none once it ended). */
  readonly warnings: RunWarningName[];
}

export interface ForkRequest {
  /** The journal position to fork at: the source's entries before it are copied. */
  readonly fromStep: number;
  /** The version the fork runs (default: the source's). */
  readonly workflowVersion?: string | undefined;
  /**
   * A new input: the ID of a payload stored in the source's data plane (gateway `POST
   * /v1/payloads`), which the worker creates the fork's input from. Default: the source's input.
   */
  readonly inputPayloadId?: string | undefined;
}

/**
 * Run management for the REST API: listing with filters, the step timeline with totals, and the
 * operator actions cancel, terminate and fork. Everything is scoped to one project.
 */
@Injectable()
export class RunManagementService {
  constructor(
    @Inject(Database) private readonly db: Database,
    @Inject(RunRepository) private readonly runs: RunRepository,
    @Inject(StepRepository) private readonly steps: StepRepository,
    @Inject(WorkflowRepository) private readonly workflows: WorkflowRepository,
    @Inject(RunService) private readonly runService: RunService,
    @Inject(EventBus) private readonly events: EventBus,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(QuotaService) private readonly quotas: QuotaService,
  ) {}

  /** Runs newest first with keyset pagination on (created_at, id); stable under concurrent inserts. */
  async list(projectId: string, filters: RunListFilters): Promise<RunListResult> {
    const query: RunListQuery = {
      projectId,
      limit: filters.limit,
      ...(filters.statuses === undefined ? {} : { statuses: filters.statuses }),
      ...(filters.workflow === undefined ? {} : { workflow: filters.workflow }),
      ...(filters.version === undefined ? {} : { version: filters.version }),
      ...(filters.scheduleId === undefined ? {} : { scheduleId: filters.scheduleId }),
      ...(filters.parentRunId === undefined ? {} : { parentRunId: filters.parentRunId }),
      ...(filters.waiting === undefined ? {} : { waiting: filters.waiting }),
      ...(filters.createdAfter === undefined ? {} : { createdAfter: filters.createdAfter }),
      ...(filters.createdBefore === undefined ? {} : { createdBefore: filters.createdBefore }),
      ...(filters.cursor === undefined ? {} : { after: decodeCursor(filters.cursor) }),
    };
    const page = await this.runs.list(query);
    return { runs: page.runs, nextCursor: page.next ? encodeCursor(page.next) : null };
  }

  /** A run with its flat step list, its timeline grouped by durable call, and totals. */
  async describe(projectId: string, runId: string): Promise<RunView> {
    const run = await this.find(projectId, runId);
    const [steps, warnings] = await Promise.all([this.steps.forRun(run.id), this.runService.warnings(run)]);
    return { run, steps, timeline: timelineOf(steps), totals: totalsOf(run, steps), warnings };
  }

  /**
   * Cancels a run (compensations run: see RunService.cancel). Cancelling a cancelled run again
   * returns it; a run that ended otherwise cannot be cancelled (409).
   */
  async cancel(projectId: string, runId: string, actor: AuditActor = { type: 'system' }): Promise<Run> {
    const run = await this.find(projectId, runId);
    if (isFinal(run.status)) {
      if (run.status === 'cancelled') return run;
      throw alreadyEnded(run, 'cancelled');
    }
    const cancelled = await this.runService.cancel(run.dataPlaneId, run.id, actor);
    await this.audit.record(null, {
      projectId,
      actor,
      action: 'run.cancel_requested',
      target: { type: 'run', id: run.id },
      metadata: { workflow: run.workflowName, version: run.workflowVersion, statusBefore: run.status, status: cancelled.status },
    });
    return cancelled;
  }

  /**
   * Terminates a run at once, without compensations: it becomes `terminated`; a worker holding it
   * is told its lease is lost (it stops, its later reports and outcomes are refused); its child
   * runs that have not ended are terminated too. A final run is a 409, and so is a child run whose
   * parent has not ended (the parent would wait for a data-plane outcome that never comes:
   * terminate the parent, which takes its children with it, or cancel the child).
   */
  async terminate(projectId: string, runId: string, actor: AuditActor = { type: 'system' }): Promise<Run> {
    const run = await this.find(projectId, runId);
    if (isFinal(run.status)) throw alreadyEnded(run, 'terminated');
    if (run.parentRunId !== null) {
      const parent = await this.runs.find(run.dataPlaneId, run.parentRunId);
      if (parent && !isFinal(parent.status)) {
        throw new CairnError(
          ErrorCodes.FAILED_PRECONDITION,
          `run ${run.id} is a child of run ${parent.id}, which has not ended (${parent.status}): terminate the parent (its child runs are terminated with it), or cancel this run`,
        );
      }
    }
    const terminated = await this.terminateOne(run.dataPlaneId, run.id, actor);
    if (!terminated) throw alreadyEnded((await this.runs.find(run.dataPlaneId, run.id)) ?? run, 'terminated');
    await this.audit.record(null, {
      projectId,
      actor,
      action: 'run.terminate_requested',
      target: { type: 'run', id: run.id },
      metadata: { workflow: run.workflowName, version: run.workflowVersion, statusBefore: run.status, epoch: run.epoch },
    });
    await this.terminateChildren(run.dataPlaneId, run.id, actor);
    return terminated;
  }

  /**
   * Forks a run: a new queued run in the source's data plane whose journal starts as the source's
   * entries before position `fromStep` (the data plane copies them at the first dispatch; this
   * records the lineage). From `fromStep` on the workflow runs live, on `workflowVersion` if given.
   */
  async fork(projectId: string, sourceRunId: string, request: ForkRequest, actor: AuditActor = { type: 'system' }): Promise<Run> {
    const source = await this.find(projectId, sourceRunId);
    const steps = await this.steps.forRun(source.id);
    const positions = steps.reduce((n, s) => Math.max(n, s.position + 1), 0);
    if (request.fromStep > positions) {
      throw invalidField(
        'fromStep',
        `fromStep ${request.fromStep} is beyond the journal of run ${source.id}, which has ${positions} position(s) (0-${Math.max(0, positions - 1)}): use a fromStep from 0 to ${positions}`,
      );
    }
    if (source.status === 'queued' || source.status === 'running') {
      // The source's journal may still change: only positions whose outcome is recorded can be copied.
      const settled = new Set(steps.filter((s) => s.status === 'completed' || s.status === 'failed').map((s) => s.position));
      const open = steps.find((s) => s.position < request.fromStep && !settled.has(s.position));
      if (open) {
        throw new CairnError(
          ErrorCodes.FAILED_PRECONDITION,
          `run ${source.id} is ${source.status} and its position ${open.position} (${open.name}) has not finished: fork from a position up to ${open.position}, or wait until the run suspends or ends`,
        );
      }
    }
    // A child call still waiting would leave the fork waiting on the source's child run, which wakes only the source.
    const latest = new Map(steps.map((s) => [s.position, s]));
    const waitingChild = [...latest.values()].find((s) => s.position < request.fromStep && s.kind === 'child' && s.status === 'waiting');
    if (waitingChild) {
      throw new CairnError(
        ErrorCodes.FAILED_PRECONDITION,
        `position ${waitingChild.position} of run ${source.id} is a child workflow call (${waitingChild.name}) that has not ended: fork from a position up to ${waitingChild.position}`,
      );
    }
    const version = request.workflowVersion ?? source.workflowVersion;
    const workflow = await this.workflows.resolve(source.dataPlaneId, source.workflowName, version);
    if (!workflow && request.workflowVersion !== undefined) {
      throw new CairnError(
        ErrorCodes.WORKFLOW_NOT_FOUND,
        `workflow ${source.workflowName}@${version} is not known in data plane ${source.dataPlaneId}: no worker of it has announced that version. Start a worker that registers it, then retry.`,
      );
    }
    // A fork is a new run: the project's quotas apply (and its start lock, so forks cannot overshoot).
    const fork = await this.db.transaction(async (tx) => {
      await this.quotas.assertCanStart(source.projectId, tx);
      await this.audit.setActor(tx, actor);
      const inserted = await this.runs.insertFork(
        {
          id: randomUUID(),
          source,
          workflowVersion: version,
          taskQueue: workflow?.taskQueue ?? source.taskQueue,
          position: request.fromStep,
          inputPayloadId: request.inputPayloadId ?? null,
        },
        tx,
      );
      await this.audit.record(tx, {
        projectId,
        actor,
        action: 'run.forked',
        target: { type: 'run', id: inserted.id },
        metadata: {
          sourceRunId: source.id,
          fromStep: request.fromStep,
          workflow: inserted.workflowName,
          version: inserted.workflowVersion,
          ...(request.inputPayloadId === undefined ? {} : { inputPayloadId: request.inputPayloadId }),
        },
      });
      return inserted;
    });
    this.logger.info(
      { runId: fork.id, sourceRunId: source.id, position: request.fromStep, newInput: request.inputPayloadId !== undefined },
      'run forked',
    );
    this.events.publishDispatch(fork.dataPlaneId);
    return fork;
  }

  private async find(projectId: string, runId: string): Promise<Run> {
    if (!isId(runId)) throw invalidField('id', 'the run ID in the path is malformed: run IDs are lowercase UUIDs');
    const run = await this.runs.findInProject(projectId, runId);
    if (!run) throw runNotFound(runId, false);
    return run;
  }

  /** Terminates one run if it has not ended; null when it had. */
  private async terminateOne(dataPlaneId: string, runId: string, actor: AuditActor): Promise<Run | null> {
    const outcome = await this.db.transaction(async (tx) => {
      await this.audit.setActor(tx, actor);
      const current = await this.runs.lock(tx, dataPlaneId, runId);
      if (!current || isFinal(current.status)) return null;
      const lease: LeaseKey | null = current.status === 'running' ? { runId, epoch: current.epoch } : null;
      const run = await this.runs.terminate(tx, runId);
      const parentQueued = await this.runs.wakeParent(tx, run);
      return { run, lease, parentQueued };
    });
    if (!outcome) return null;
    this.logger.info({ runId, epoch: outcome.run.epoch, held: outcome.lease !== null }, 'run terminated');
    this.events.publishRunEnded(runId);
    if (outcome.lease) this.events.publishLeaseRevoked(outcome.lease);
    if (outcome.parentQueued) this.events.publishDispatch(dataPlaneId);
    return outcome.run;
  }

  private async terminateChildren(dataPlaneId: string, parentRunId: string, actor: AuditActor): Promise<void> {
    for (const child of await this.runs.openChildren(dataPlaneId, parentRunId)) {
      await this.terminateOne(dataPlaneId, child, actor);
      await this.terminateChildren(dataPlaneId, child, actor);
    }
  }
}

function alreadyEnded(run: Run, action: 'cancelled' | 'terminated'): CairnError {
  return new CairnError(
    ErrorCodes.CONFLICT,
    `run ${run.id} already ended (${run.status}): only a run that has not ended can be ${action}; fork it to run it again`,
  );
}

const ms = (d: Date | null): number | null => (d === null ? null : d.getTime());

/** Groups attempts by journal position (the steps arrive ordered by position, then attempt). */
export function timelineOf(steps: readonly Step[]): TimelineCall[] {
  const byPosition = new Map<number, Step[]>();
  for (const step of steps) {
    const list = byPosition.get(step.position) ?? [];
    list.push(step);
    byPosition.set(step.position, list);
  }
  return [...byPosition.values()].map((attempts) => {
    const first = attempts[0]!;
    const last = attempts[attempts.length - 1]!;
    const starts = attempts.map((a) => ms(a.startedAt)).filter((t): t is number => t !== null);
    const ends = attempts.map((a) => ms(a.endedAt)).filter((t): t is number => t !== null);
    const startedAt = starts.length > 0 ? new Date(Math.min(...starts)) : null;
    const endedAt = last.endedAt !== null && ends.length > 0 ? new Date(Math.max(...ends)) : null;
    const model = first.kind === 'model';
    const sum = (pick: (s: Step) => number | null): number | null => (model ? attempts.reduce((n, a) => n + (pick(a) ?? 0), 0) : null);
    return {
      position: first.position,
      kind: last.kind,
      name: last.name,
      keyDigest: last.keyDigest,
      status: last.status,
      attempts,
      startedAt,
      endedAt,
      durationMs: startedAt !== null && endedAt !== null ? endedAt.getTime() - startedAt.getTime() : null,
      inputTokens: sum((s) => s.inputTokens),
      outputTokens: sum((s) => s.outputTokens),
      copied: attempts.every((a) => a.copied),
    };
  });
}

export function totalsOf(run: Run, steps: readonly Step[], now = new Date()): RunTotals {
  const calls = new Set(steps.map((s) => s.position));
  const models = new Map<
    string,
    { provider: string | null; model: string | null; attempts: number; inputTokens: number; outputTokens: number }
  >();
  let inputTokens = 0;
  let outputTokens = 0;
  for (const s of steps) {
    if (s.kind !== 'model' || s.copied) continue;
    inputTokens += s.inputTokens ?? 0;
    outputTokens += s.outputTokens ?? 0;
    const key = `${s.provider ?? ''}\u0000${s.model ?? ''}`;
    const entry = models.get(key) ?? { provider: s.provider, model: s.model, attempts: 0, inputTokens: 0, outputTokens: 0 };
    entry.attempts += 1;
    entry.inputTokens += s.inputTokens ?? 0;
    entry.outputTokens += s.outputTokens ?? 0;
    models.set(key, entry);
  }
  const from = run.startedAt ?? run.createdAt;
  return {
    durableCalls: calls.size,
    attempts: steps.length,
    retries: steps.length - calls.size,
    failedAttempts: steps.filter((s) => s.status === 'failed' || s.status === 'retrying').length,
    copiedCalls: new Set(steps.filter((s) => s.copied).map((s) => s.position)).size,
    inputTokens,
    outputTokens,
    tokensByModel: [...models.values()],
    wallTimeMs: Math.max(0, (run.endedAt ?? now).getTime() - from.getTime()),
  };
}
