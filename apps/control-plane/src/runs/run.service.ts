import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, type Logger } from '@cairn/common';
import { ErrorCode } from '@cairn/proto';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { Database } from '../db/database.js';
import { RunRepository } from './run.repository.js';
import { SignalRepository } from './signal.repository.js';
import { StepRepository } from './step.repository.js';
import { WorkflowRepository } from '../workflows/workflow.repository.js';
import { isFinal, runNotFound, type LeaseKey, type Run, type RunWarningName, type Step } from '../domain.js';
import { AuditService, type AuditActor } from '../audit/audit.service.js';
import { EventBus } from '../events/event-bus.service.js';
import { LOGGER } from '../tokens.js';
import { QuotaService } from '../metering/quota.service.js';
import { DispatchService } from '../dispatch/dispatch.service.js';

export interface StartRunInput {
  readonly runId: string;
  readonly workflowName: string;
  /** Null for the newest announced version. */
  readonly workflowVersion: string | null;
  readonly idempotencyDigest: string | null;
  readonly inputSize: number;
  /** 0–100, higher first; default 50. */
  readonly priority?: number;
  /** HMAC of the caller's concurrency key, for per-key limits; null for none. */
  readonly concurrencyKeyDigest?: string | null;
}

export interface StartChildInput {
  readonly parentRunId: string;
  readonly parentEpoch: number;
  readonly childRunId: string;
  readonly workflowName: string;
  /** Null for the newest announced version. */
  readonly workflowVersion: string | null;
  readonly inputSize: number;
}

/**
 * The gateway's and the API's side of runs: start, describe, wait, signal and cancel (listing and
 * the operator actions are in RunManagementService).
 */
@Injectable()
export class RunService {
  private shuttingDown = false;

  constructor(
    @Inject(Database) private readonly db: Database,
    @Inject(RunRepository) private readonly runs: RunRepository,
    @Inject(StepRepository) private readonly steps: StepRepository,
    @Inject(SignalRepository) private readonly signals: SignalRepository,
    @Inject(WorkflowRepository) private readonly workflows: WorkflowRepository,
    @Inject(EventBus) private readonly events: EventBus,
    @Inject(CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(QuotaService) private readonly quotas: QuotaService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(DispatchService) private readonly dispatch: DispatchService,
  ) {}

  /**
   * Creates a run pinned to a version a worker of this data plane announced: queued, or already
   * leased to a connected worker with a free slot (see DispatchService.reserveStart). With an
   * idempotency digest, a second start of the same workflow returns the first run.
   */
  async start(dataPlaneId: string, input: StartRunInput): Promise<{ run: Run; created: boolean; warnings: RunWarningName[] }> {
    const started = await this.startRun(dataPlaneId, input);
    return { ...started, warnings: await this.warnings(started.run) };
  }

  /**
   * What may keep a run that has not ended from running soon: no connected worker (on any
   * replica) announces its workflow version. Runs pinned to a version wait for a worker of it, so
   * a start on the newest version a worker once announced queues until one connects again.
   */
  async warnings(run: Run): Promise<RunWarningName[]> {
    // A running run is held by a worker; only one waiting for a worker costs the read, unless a
    // worker connected to this replica runs its version.
    if (isFinal(run.status) || run.status === 'running') return [];
    if (this.dispatch.servedHere(run.dataPlaneId, run.workflowName, run.workflowVersion)) return [];
    const served = await this.workflows.servedByConnectedWorker(run.dataPlaneId, run.workflowName, run.workflowVersion);
    return served ? [] : ['no_connected_worker'];
  }

  private async startRun(dataPlaneId: string, input: StartRunInput): Promise<{ run: Run; created: boolean }> {
    // Two independent reads, on two pooled connections at once: the version and the project's quotas.
    const quotas = this.quotas.startQuotas(dataPlaneId);
    quotas.catch(() => undefined); // awaited by admit below; a refusal before that must not leave it unhandled
    const workflow = await this.workflows.resolve(dataPlaneId, input.workflowName, input.workflowVersion);
    if (!workflow) {
      const what = input.workflowVersion === null ? input.workflowName : `${input.workflowName}@${input.workflowVersion}`;
      throw new CairnError(
        ErrorCodes.WORKFLOW_NOT_FOUND,
        input.workflowVersion === null
          ? `workflow ${what} is not registered, or every version of it is deprecated: no version is registered in this project or announced by a worker of this data plane that can start runs. Register a version (cairn workflows register, or POST /v1/projects/{project}/workflows), then retry.`
          : `workflow ${what} is not registered: it is neither registered in this project nor announced by a worker of this data plane. Register it (cairn workflows register, or POST /v1/projects/{project}/workflows), then retry.`,
      );
    }
    if (workflow.deprecated) throw deprecated(workflow.name, workflow.version);
    const run = {
      id: input.runId,
      dataPlaneId,
      workflowName: workflow.name,
      workflowVersion: workflow.version,
      taskQueue: workflow.taskQueue,
      idempotencyDigest: input.idempotencyDigest,
      inputSize: input.inputSize,
      priority: input.priority ?? DEFAULT_PRIORITY,
      concurrencyKeyDigest: input.concurrencyKeyDigest ?? null,
    };
    // A worker of this replica with a free slot and nothing queued ahead gets the run in the
    // statement that inserts it: one commit, no claim.
    const onto = this.dispatch.reserveStart(dataPlaneId, workflow);
    let inserted: Run | null = null;
    try {
      // Under the project's quotas; a retried start of a run that exists is answered, not refused.
      inserted = await this.quotas.admit(
        dataPlaneId,
        (q) =>
          onto === null
            ? this.runs.insertQueued(run, q)
            : this.runs.insertLeased(
                run,
                {
                  sessionId: onto.id,
                  workerId: onto.workerId,
                  tokenSha256: onto.credential.tokenSha256,
                  leaseTtlMs: this.config.leaseTtlMs,
                  workflows: onto.workflows,
                },
                q,
              ),
        // Only this data plane's runs: a run ID of another data plane must not change the answer.
        async () =>
          (await this.runs.find(dataPlaneId, input.runId)) !== null ||
          (input.idempotencyDigest !== null &&
            (await this.runs.findByDigest(dataPlaneId, input.workflowName, input.idempotencyDigest)) !== null),
        quotas,
      );
    } finally {
      if (onto !== null) await this.dispatch.startedOnto(onto, inserted);
    }
    if (inserted) {
      if (inserted.status === 'queued') this.events.publishDispatch(dataPlaneId);
      return { run: inserted, created: true };
    }
    if (input.idempotencyDigest !== null) {
      const earlier = await this.runs.findByDigest(dataPlaneId, input.workflowName, input.idempotencyDigest);
      if (earlier) return { run: earlier, created: false };
    }
    const same = await this.runs.find(dataPlaneId, input.runId);
    if (same && same.workflowName === input.workflowName) return { run: same, created: false };
    // One answer whether the ID is this data plane's run of another workflow or a run of another
    // data plane (any tenant's): it says nothing about who holds the ID. A gateway makes a fresh
    // random ID for every start, so only a caller choosing IDs meets this; the log records it.
    if (!same) this.logger.warn({ dataPlaneId, runId: input.runId }, 'StartRun named a run ID another data plane holds; refused');
    throw runIdUnusable(input.runId, input.workflowName);
  }

  /**
   * The version a start without a version would pin a run of `workflowName` to now; nothing is
   * started. WORKFLOW_NOT_FOUND when no version can start runs.
   */
  async resolveVersion(dataPlaneId: string, workflowName: string): Promise<string> {
    const workflow = await this.workflows.resolve(dataPlaneId, workflowName, null);
    if (!workflow) {
      throw new CairnError(
        ErrorCodes.WORKFLOW_NOT_FOUND,
        `workflow ${workflowName} is not registered, or every version of it is deprecated: no version is registered in this project or announced by a worker of this data plane that can start runs`,
      );
    }
    return workflow.version;
  }

  async describe(
    dataPlaneId: string | null,
    runId: string,
  ): Promise<{ run: Run; steps: Step[]; journalHead: { entries: number; head: string } | null; warnings: RunWarningName[] }> {
    const run = await this.get(dataPlaneId, runId);
    const [steps, journalHead, warnings] = await Promise.all([
      this.steps.forRun(run.id),
      this.steps.journalHead(run.id),
      this.warnings(run),
    ]);
    return { run, steps, journalHead, warnings };
  }

  async get(dataPlaneId: string | null, runId: string): Promise<Run> {
    const run = await this.runs.find(dataPlaneId, runId);
    if (!run) throw runNotFound(runId, dataPlaneId !== null);
    return run;
  }

  /**
   * Returns when the run is final, or after min(timeoutMs, CAIRN_WAIT_MAX_MS) with the run as it
   * is then. A timeout of 0 waits the maximum.
   */
  async wait(dataPlaneId: string, runId: string, timeoutMs: number, abort?: AbortSignal): Promise<Run> {
    const limit = timeoutMs === 0 ? this.config.waitMaxMs : Math.min(timeoutMs, this.config.waitMaxMs);
    const deadline = Date.now() + limit;
    for (;;) {
      // Subscribe before reading, so an end between the read and the wait wakes us.
      let wake!: (run?: Run) => void;
      let ended: Run | undefined;
      const woken = new Promise<void>((resolve) => {
        wake = (run) => {
          ended ??= run;
          resolve();
        };
      });
      const unsubscribe = this.events.subscribeRunEnded(runId, wake);
      try {
        const run = await this.get(dataPlaneId, runId);
        const left = deadline - Date.now();
        if (isFinal(run.status) || left <= 0 || abort?.aborted) return run;
        if (this.shuttingDown) throw shuttingDown();
        const timer = new AbortController();
        const onAbort = (): void => wake();
        abort?.addEventListener('abort', onAbort, { once: true });
        try {
          await Promise.race([woken, sleep(left, undefined, { signal: timer.signal }).catch(() => undefined)]);
        } finally {
          timer.abort();
          abort?.removeEventListener('abort', onAbort);
        }
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- shutdown sets it while the wait awaits
        if (this.shuttingDown) throw shuttingDown();
        // Ended on this replica: the run as its end committed is the answer, without reading it again.
        if (ended && ended.id === runId && ended.dataPlaneId === dataPlaneId && isFinal(ended.status)) return ended;
      } finally {
        unsubscribe();
      }
    }
  }

  /**
   * Records that a signal arrived. A run suspended on that signal (by name, or by the per-run keyed
   * digest of its name when the name stayed in the data plane) with more notices than it consumed
   * is queued at once. The notice and the check happen under the run's row lock, so a signal racing
   * a suspend is seen by one side or the other.
   */
  async signal(dataPlaneId: string, runId: string, signal: { name: string | null; digest: string | null }, signalId: string): Promise<Run> {
    const { run, queued } = await this.db.transaction(async (tx) => {
      const current = await this.runs.lock(tx, dataPlaneId, runId);
      if (!current) throw runNotFound(runId);
      if (isFinal(current.status)) {
        throw new CairnError(
          ErrorCodes.CONFLICT,
          `run ${runId} already ended (${current.status}): signals can only be sent to a run that has not ended`,
        );
      }
      await this.signals.insert(tx, runId, signalId, signal.name, signal.digest);
      const waits =
        (signal.name !== null && current.waitingSignal === signal.name) ||
        (signal.digest !== null && current.waitingSignalDigest === signal.digest);
      if (current.status === 'suspended' && waits) {
        const notices = await this.signals.count(tx, runId, current.waitingSignal, current.waitingSignalDigest);
        if (notices > current.signalsConsumed) {
          return { run: await this.runs.requeue(tx, runId, 'signal', current.suspendReason), queued: true };
        }
      }
      return { run: current, queued: false };
    });
    if (queued) this.events.publishDispatch(dataPlaneId);
    return run;
  }

  /**
   * Cancels a run. One that never ran is cancelled at once. One a worker holds gets a
   * CancelRequest wherever its worker is connected. One that ran before and is now suspended or
   * queued is dispatched with the cancellation requested (wake reason `cancel`), so a worker
   * replays it and runs the compensations it registered before reporting it cancelled. A final run
   * is returned as is. `actor` (who asked) is the actor of the audit entries of these transitions.
   */
  async cancel(dataPlaneId: string, runId: string, actor?: AuditActor): Promise<Run> {
    const run = await this.cancelOne(dataPlaneId, runId, actor);
    // Cancellation propagates to the run's child runs that have not ended, and to theirs.
    for (const child of await this.runs.openChildren(dataPlaneId, runId)) await this.cancel(dataPlaneId, child, actor);
    return run;
  }

  /**
   * Starts a child workflow run for a parent a worker of this data plane holds at `parentEpoch`.
   * Idempotent by the child's run ID. `not_held` when the parent is not running under that epoch;
   * `workflow_not_found` when no worker of the data plane announced the child's workflow.
   */
  async startChild(
    dataPlaneId: string,
    input: StartChildInput,
  ): Promise<'started' | 'not_held' | 'workflow_not_found' | 'workflow_deprecated' | 'quota_exceeded'> {
    const existing = await this.runs.find(dataPlaneId, input.childRunId);
    if (existing) return existing.parentRunId === input.parentRunId ? 'started' : 'not_held';
    const parent = await this.runs.find(dataPlaneId, input.parentRunId);
    if (!parent || parent.status !== 'running' || parent.epoch !== input.parentEpoch) return 'not_held';
    const workflow = await this.workflows.resolve(dataPlaneId, input.workflowName, input.workflowVersion);
    if (!workflow) return 'workflow_not_found';
    if (workflow.deprecated) return 'workflow_deprecated';
    let inserted: Run | null;
    try {
      inserted = await this.quotas.admit(
        dataPlaneId,
        (q) =>
          this.runs.insertQueued(
            {
              id: input.childRunId,
              dataPlaneId,
              workflowName: workflow.name,
              workflowVersion: workflow.version,
              taskQueue: workflow.taskQueue,
              idempotencyDigest: null,
              inputSize: input.inputSize,
              parentRunId: input.parentRunId,
              // A child runs at its parent's priority.
              priority: parent.priority,
            },
            q,
          ),
        async () => (await this.runs.find(dataPlaneId, input.childRunId)) !== null,
      );
    } catch (error) {
      if (error instanceof CairnError && error.code === ErrorCodes.QUOTA_EXCEEDED) return 'quota_exceeded';
      throw error;
    }
    if (!inserted) {
      const again = await this.runs.find(dataPlaneId, input.childRunId);
      return again?.parentRunId === input.parentRunId ? 'started' : 'not_held';
    }
    this.events.publishDispatch(dataPlaneId);
    // A cancellation that reached the parent meanwhile reaches its new child too.
    const now = await this.runs.find(dataPlaneId, input.parentRunId);
    if (now?.cancelRequested || (now && isFinal(now.status))) await this.cancel(dataPlaneId, input.childRunId);
    return 'started';
  }

  private async cancelOne(dataPlaneId: string, runId: string, actor?: AuditActor): Promise<Run> {
    const { run, ended, lease, queued } = await this.db.transaction(async (tx) => {
      if (actor) await this.audit.setActor(tx, actor);
      const current = await this.runs.lock(tx, dataPlaneId, runId);
      if (!current) throw runNotFound(runId);
      if (isFinal(current.status)) return { run: current, ended: false, lease: null, queued: false };
      if (current.status === 'running') {
        const after = await this.runs.requestCancel(tx, runId);
        return { run: after, ended: false, lease: { runId, epoch: after.epoch } satisfies LeaseKey, queued: false };
      }
      if (current.epoch > 0) {
        await this.runs.requestCancel(tx, runId);
        const after = await this.runs.requeue(tx, runId, 'cancel');
        return { run: after, ended: false, lease: null, queued: true };
      }
      const after = await this.runs.finish(tx, runId, { status: 'cancelled', errorCode: ErrorCode.CANCELLED });
      // A parent suspended until this child ends goes on (in the same transaction).
      const parentQueued = await this.runs.wakeParent(tx, after);
      return { run: after, ended: true, lease: null, queued: parentQueued };
    });
    if (ended) this.events.publishRunEnded(runId);
    if (lease) this.events.publishCancel(lease);
    if (queued) this.events.publishDispatch(dataPlaneId);
    return run;
  }

  /** Stops waits in progress (they answer UNAVAILABLE so the caller retries elsewhere). */
  shutdown(): void {
    this.shuttingDown = true;
    this.events.wakeAllWaiters();
  }
}

/** The priority of a run started without one. */
export const DEFAULT_PRIORITY = 50;

/** A deprecated version starts no new runs. */
export function deprecated(name: string, version: string): CairnError {
  return new CairnError(
    ErrorCodes.FAILED_PRECONDITION,
    `workflow ${name}@${version} is deprecated: it starts no new runs (runs already started go on). Start the run on a newer version, or omit the version to get the newest one that is not deprecated.`,
  );
}

function shuttingDown(): CairnError {
  return new CairnError(ErrorCodes.UNAVAILABLE, 'control plane shutting down; retry the wait');
}

/**
 * A run ID a start cannot use: this data plane's run of another workflow, or any other data
 * plane's run. The same words for both, so the answer reveals nothing about other tenants.
 */
function runIdUnusable(runId: string, workflowName: string): CairnError {
  return new CairnError(
    ErrorCodes.CONFLICT,
    `run ID ${runId} cannot start a run of ${workflowName}: start the run with a new run ID (the gateway makes a fresh one for every start)`,
  );
}
