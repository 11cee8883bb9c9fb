import { Inject, Injectable } from '@nestjs/common';
import { ErrorCode, type ConnectRequest } from '@cairn/proto';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { Database, type Queryable } from '../db/database.js';
import { RunRepository } from '../runs/run.repository.js';
import { SignalRepository } from '../runs/signal.repository.js';
import { isFinal, type LeaseEndReason, type LeaseKey, type Run } from '../domain.js';
import { EventBus } from '../events/event-bus.service.js';
import { FlowControlService } from '../flow-control/flow-control.service.js';
import { SessionRegistry } from './session-registry.js';
import { DispatchService } from './dispatch.service.js';
import type { OutcomeResult, WorkerOutcome } from './outcomes.js';
import { DataPlaneRepository } from '../tenancy/data-plane.repository.js';

/**
 * The worker requests whose handling checks the stream's credential in the statement that applies
 * them (a run's end: completed, failed, cancelled, released), so the stream need not check it in a
 * round trip of its own first. Every other request but a heartbeat is checked before it is handled.
 */
export const WORKER_REQUESTS_CHECKING_CREDENTIAL: ReadonlySet<ConnectRequest['message']['case']> = new Set([
  'completed',
  'failed',
  'cancelled',
  'released',
]);

const END_REASON: Record<WorkerOutcome['kind'], LeaseEndReason> = {
  suspended: 'suspended',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
  released: 'released',
};

/**
 * The worker's side of a run's life: re-attaching and renewing leases, and the transitions a
 * lease holder reports (suspend, complete, fail, cancel, release). Each transition applies only
 * under the current epoch and is idempotent for a resend.
 */
@Injectable()
export class LeaseService {
  constructor(
    @Inject(Database) private readonly db: Database,
    @Inject(RunRepository) private readonly runs: RunRepository,
    @Inject(SignalRepository) private readonly signals: SignalRepository,
    @Inject(EventBus) private readonly events: EventBus,
    @Inject(SessionRegistry) private readonly registry: SessionRegistry,
    @Inject(DispatchService) private readonly dispatch: DispatchService,
    @Inject(CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(FlowControlService) private readonly flow: FlowControlService,
    @Inject(DataPlaneRepository) private readonly dataPlanes: DataPlaneRepository,
  ) {}

  /** Moves leases a reconnecting worker still holds to its new session. */
  reattach(dataPlaneId: string, sessionId: string, workerId: string, held: readonly LeaseKey[]): Promise<Run[]> {
    return this.runs.reattach(dataPlaneId, sessionId, workerId, dedupeLeases(held), this.config.leaseTtlMs);
  }

  /** Renews leases held by the session; the others are lost. */
  async renew(dataPlaneId: string, sessionId: string, leases: readonly LeaseKey[]): Promise<Array<LeaseKey & { expiresAt: Date | null }>> {
    const unique = dedupeLeases(leases);
    const renewed = await this.runs.renew(dataPlaneId, sessionId, unique, this.config.leaseTtlMs);
    const byKey = new Map(renewed.map((r) => [`${r.runId} ${r.epoch}`, r.expiresAt]));
    return unique.map((l) => ({ ...l, expiresAt: byKey.get(`${l.runId} ${l.epoch}`) ?? null }));
  }

  async applyOutcome(dataPlaneId: string, outcome: WorkerOutcome, credential: string | null = null): Promise<OutcomeResult> {
    const result =
      outcome.kind === 'suspended' ? await this.suspend(dataPlaneId, outcome) : await this.endLease(dataPlaneId, outcome, credential);
    if (result.kind === 'stale_credential') return result;
    if (result.kind === 'applied') {
      // A final child may have queued its parent in the same statement.
      if (result.run.status === 'queued' || (isFinal(result.run.status) && result.run.parentRunId !== null)) {
        this.events.publishDispatch(dataPlaneId);
      }
      if (isFinal(result.run.status)) this.events.publishRunEnded(result.run.id, result.run);
      if (result.run.status === 'suspended' && result.run.wakeAt !== null) this.events.publishTimer(result.run.wakeAt);
      // A lease of a workflow under flow control ended (final or suspended): runs waiting for its
      // capacity may go now, on any session of the data plane, on any replica.
      const freed = result.run.status !== 'queued' && result.run.status !== 'running';
      if (freed && (await this.flow.isLimited(dataPlaneId, result.run.workflowName))) this.events.publishDispatch(dataPlaneId);
    }
    if (result.kind !== 'unknown_run') this.leaseGone(outcome.lease);
    return result;
  }

  /**
   * Completed, failed, cancelled or released: one conditional statement on the hot path, which
   * also checks the stream's credential when given (see {@link WORKER_REQUESTS_CHECKING_CREDENTIAL}).
   */
  private async endLease(
    dataPlaneId: string,
    outcome: Exclude<WorkerOutcome, { kind: 'suspended' }>,
    credential: string | null,
  ): Promise<OutcomeResult> {
    const { lease } = outcome;
    let run: Run | null;
    switch (outcome.kind) {
      case 'completed':
        run = await this.runs.endHeldLease(dataPlaneId, lease, 'completed', { outputSize: outcome.outputSize }, credential);
        break;
      case 'failed':
        run = await this.runs.endHeldLease(
          dataPlaneId,
          lease,
          'failed',
          { errorCode: outcome.errorCode, errorRef: outcome.errorRef },
          credential,
        );
        break;
      case 'cancelled':
        run = await this.runs.endHeldLease(dataPlaneId, lease, 'cancelled', { errorCode: ErrorCode.CANCELLED }, credential);
        break;
      case 'released':
        run = await this.runs.endHeldLease(dataPlaneId, lease, 'released', {}, credential);
        break;
    }
    if (run) return { kind: 'applied', run };
    if (credential !== null && !(await this.dataPlanes.isCurrent(dataPlaneId, credential))) return { kind: 'stale_credential' };
    return this.notApplied(await this.runs.leaseState(dataPlaneId, lease), outcome.kind);
  }

  /**
   * Suspended: under the run's row lock, then counting signal notices in a later statement, so a
   * SignalRun that committed while we waited for the lock is counted (and one that comes after
   * sees the run suspended). A signal racing a suspend is never lost. Notices for the signals the
   * worker says the run consumed are added first, so each consumed signal is counted once.
   */
  private async suspend(dataPlaneId: string, outcome: Extract<WorkerOutcome, { kind: 'suspended' }>): Promise<OutcomeResult> {
    const { lease, suspension: s } = outcome;
    return this.db.transaction(async (tx): Promise<OutcomeResult> => {
      const run = await this.runs.lock(tx, dataPlaneId, lease.runId);
      if (!run) return { kind: 'unknown_run' };
      if (run.status !== 'running' || run.epoch !== lease.epoch) {
        return this.notApplied({ exists: true, endReason: (await this.runs.leaseEndReason(tx, lease)) ?? null }, 'suspended');
      }
      const waitsForSignal = s.waitingSignal !== null || (s.waitingSignalDigest ?? null) !== null;
      // Signals the run consumed that no SignalRun told us about (the gateway stored one, then
      // could not reach us) get their notices first, or the count below would stay one short and
      // a later signal would not wake the run.
      if (waitsForSignal && s.consumedSignalIds) {
        await this.signals.insertMissing(tx, run.id, s.consumedSignalIds, s.waitingSignal, s.waitingSignalDigest ?? null);
      }
      let after: Run;
      if (run.cancelRequested) {
        // Cancellation was requested while the run was suspending: cancel it now, as for any suspended run.
        after = await this.runs.finish(tx, run.id, { status: 'cancelled', errorCode: ErrorCode.CANCELLED });
        await this.runs.wakeParent(tx, after);
      } else if (s.waitingChild && (await this.childEnded(tx, dataPlaneId, s.waitingChild))) {
        // The child ended before the parent suspended on it: the parent goes on at once.
        after = await this.runs.requeue(tx, run.id, 'child', s.suspendReason);
      } else if (
        waitsForSignal &&
        (await this.signals.count(tx, run.id, s.waitingSignal, s.waitingSignalDigest ?? null)) > s.signalsConsumed
      ) {
        after = await this.runs.requeue(tx, run.id, 'signal', s.suspendReason);
      } else if (s.wakeAt !== null && s.wakeAt.getTime() <= Date.now()) {
        after = await this.runs.requeue(tx, run.id, s.suspendReason === 'retry_backoff' ? 'retry' : 'timer', s.suspendReason);
      } else {
        after = await this.runs.suspend(tx, run.id, s);
      }
      await this.runs.endLease(tx, lease, 'suspended');
      return { kind: 'applied', run: after };
    });
  }

  /** Whether the child run is final (read after the parent's row lock, so a child ending now is seen by one side). */
  private async childEnded(tx: Queryable, dataPlaneId: string, childRunId: string): Promise<boolean> {
    const child = await this.runs.find(dataPlaneId, childRunId, tx);
    return child !== null && isFinal(child.status);
  }

  /** A resend of the outcome that ended this lease is a duplicate; anything else is refused. */
  private notApplied(state: { exists: boolean; endReason: LeaseEndReason | null }, kind: WorkerOutcome['kind']): OutcomeResult {
    if (!state.exists) return { kind: 'unknown_run' };
    return state.endReason === END_REASON[kind] ? { kind: 'duplicate' } : { kind: 'not_held' };
  }

  /** A lease ended (or was found not held): the local holder forgets it and gets its slot back. */
  leaseGone(lease: LeaseKey): void {
    const holder = this.registry.holderOf(lease);
    if (holder?.drop(lease)) this.dispatch.kick(holder, false);
  }
}

function dedupeLeases(leases: readonly LeaseKey[]): LeaseKey[] {
  const seen = new Map<string, LeaseKey>();
  for (const l of leases) seen.set(`${l.runId} ${l.epoch}`, l);
  return [...seen.values()];
}
