import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from '@cairn/common';
import { ErrorCode } from '@cairn/proto';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { errorSummary } from '../db/database.js';
import { RunRepository } from '../runs/run.repository.js';
import type { LeaseKey } from '../domain.js';
import type { SweepResult } from './outcomes.js';
import { Telemetry } from '../telemetry/telemetry.service.js';
import { LOGGER } from '../tokens.js';
import { PeriodicTask } from '../shared/periodic-task.js';
import { DispatchService } from './dispatch.service.js';
import { EventBus } from '../events/event-bus.service.js';
import { SessionRegistry } from './session-registry.js';

const BATCH = 500;
/** The longest a timer pass is armed ahead: a later wake-up is re-armed from the database then. */
const MAX_TIMER_DELAY_MS = 60_000;
/** After a pass that left a due timer (locked by another replica's pass), look again this much later. */
const DUE_RETRY_MS = 20;
/** Due timers (or expired leases) of one data plane per batch, so every data plane with some gets a share of each. */
const PER_DATA_PLANE = 100;

/**
 * Timers fire on time: the sweeper keeps one timeout armed for the earliest wake-up it knows of
 * (each suspension this replica applies, and after every pass the earliest suspended run in the
 * database, whichever replica suspended it), and queues the runs that are due when it fires.
 *
 * Every CAIRN_SWEEP_INTERVAL_MS: ends runs past their deadline (the registered run timeout)
 * `timed_out`, requeues runs whose lease expired and suspended runs whose timer is due. Each step
 * is one atomic statement with SKIP LOCKED, so any number of replicas can sweep at once. For one
 * lease TTL after start it leaves expired leases alone, so workers cut off by a control-plane
 * outage can reconnect and re-attach them instead of having their runs re-dispatched. Deadlines are
 * enforced during that grace too: the control plane is authoritative for time.
 */
@Injectable()
export class SweeperService {
  private readonly periodic: PeriodicTask;
  private readonly startedAt = Date.now();
  private stopped = true;
  private timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (Infinity: none armed). */
  private timerDue = Infinity;
  private timerPass: Promise<void> | null = null;
  private timerPassAgain = false;

  constructor(
    @Inject(RunRepository) private readonly runs: RunRepository,
    @Inject(SessionRegistry) private readonly registry: SessionRegistry,
    @Inject(DispatchService) private readonly dispatch: DispatchService,
    @Inject(EventBus) private readonly events: EventBus,
    @Inject(CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(Telemetry) private readonly telemetry: Telemetry,
  ) {
    this.periodic = new PeriodicTask(
      config.sweepIntervalMs,
      () => this.telemetry.traceSweep(() => this.sweep(), this.inGracePeriod),
      (error) => this.logger.error({ err: errorSummary(error) }, 'sweep failed; retrying at the next interval'),
    );
    this.events.onTimer((at) => this.armTimer(at.getTime()));
  }

  start(): void {
    this.stopped = false;
    this.periodic.start();
    this.fireTimers();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerDue = Infinity;
    await this.periodic.stop();
    await this.timerPass;
  }

  /** Arms the timer for `at` (epoch ms) unless one is armed for earlier. */
  private armTimer(at: number): void {
    if (this.stopped || at >= this.timerDue) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDue = at;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerDue = Infinity;
        this.fireTimers();
      },
      Math.min(MAX_TIMER_DELAY_MS, Math.max(0, at - Date.now())),
    );
    this.timer.unref();
  }

  /**
   * Queues the runs whose timer is due, then arms the timer for the earliest one left, read from
   * the database (so suspensions applied on other replicas are timed here too). One pass at a
   * time; a timer that fires during a pass makes it go round once more.
   */
  private fireTimers(): void {
    if (this.stopped) return;
    if (this.timerPass) {
      this.timerPassAgain = true;
      return;
    }
    this.timerPass = (async () => {
      try {
        const woken = await this.telemetry.traceTimers(async () => {
          let n = 0;
          do {
            this.timerPassAgain = false;
            n += await this.wakeDueTimers();
            // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by a timer that fired while this pass awaited
          } while (this.timerPassAgain && !this.stopped);
          return n;
        });
        const next = await this.runs.nextTimerInMs();
        if (next !== null) this.armTimer(Date.now() + (next > 0 ? Math.ceil(next) : woken > 0 ? 0 : DUE_RETRY_MS));
      } catch (error) {
        // The periodic sweep wakes what is due meanwhile; the next suspension arms the timer again.
        this.logger.warn({ err: errorSummary(error) }, 'timer pass failed; the periodic sweep wakes due runs meanwhile');
      } finally {
        this.timerPass = null;
      }
    })();
  }

  /** Whether expired leases are still left for their workers to re-attach. */
  get inGracePeriod(): boolean {
    return Date.now() - this.startedAt < this.config.startupGraceMs;
  }

  /** One sweep: run deadlines, expired leases (after the grace period), then due timers. */
  async sweep(): Promise<SweepResult> {
    const queuedFor = new Set<string>();
    // Deadlines first, so a run past its deadline is not requeued or woken only to be ended.
    let timedOut = 0;
    for (;;) {
      const batch = await this.runs.timeOutOverdue(BATCH, ErrorCode.RUN_TIMED_OUT);
      timedOut += batch.length;
      for (const run of batch) {
        this.logger.info({ runId: run.runId, epoch: run.heldEpoch ?? undefined }, 'run timed out');
        this.events.publishRunEnded(run.runId);
        // Its holder, on whichever replica, is told the lease is lost and stops (as for a termination).
        if (run.heldEpoch !== null) this.events.publishLeaseRevoked({ runId: run.runId, epoch: run.heldEpoch });
        if (run.wokenParentDataPlaneId !== null) queuedFor.add(run.wokenParentDataPlaneId);
      }
      if (batch.length < BATCH) break;
    }
    let expired = 0;
    if (!this.inGracePeriod) {
      // In fair batches too (a share per data plane), each dispatched as it is requeued.
      for (;;) {
        const batch = await this.runs.requeueExpiredLeases(BATCH, PER_DATA_PLANE);
        expired += batch.length;
        for (const lease of batch) this.logger.info({ runId: lease.runId, epoch: lease.epoch }, 'lease expired; run requeued');
        this.tellHolders(batch);
        for (const dataPlaneId of new Set(batch.map((lease) => lease.dataPlaneId))) this.events.publishDispatch(dataPlaneId);
        if (batch.length === 0) break;
      }
    }
    const woken = await this.wakeDueTimers();
    for (const dataPlaneId of queuedFor) this.events.publishDispatch(dataPlaneId);
    return { expired, woken, timedOut };
  }

  /**
   * Due timers in fair batches (a share per data plane), each batch dispatched as it is queued:
   * one tenant's backlog of timers neither fills a batch nor holds back another's wake-up.
   */
  private async wakeDueTimers(): Promise<number> {
    let woken = 0;
    for (;;) {
      const batch = await this.runs.queueDueTimers(BATCH, PER_DATA_PLANE);
      woken += batch.length;
      const batchFor = new Set(batch.map((run) => run.dataPlaneId));
      for (const dataPlaneId of batchFor) this.events.publishDispatch(dataPlaneId);
      if (batch.length === 0) return woken;
    }
  }

  private tellHolders(expired: ReadonlyArray<LeaseKey & { sessionId: string | null }>): void {
    const bySession = new Map<string, LeaseKey[]>();
    for (const lease of expired) {
      if (lease.sessionId === null) continue;
      const list = bySession.get(lease.sessionId) ?? [];
      list.push({ runId: lease.runId, epoch: lease.epoch });
      bySession.set(lease.sessionId, list);
    }
    for (const [sessionId, leases] of bySession) {
      const session = this.registry.get(sessionId);
      if (!session) continue;
      for (const lease of leases) session.drop(lease);
      session.lost(leases);
      this.dispatch.kick(session, false);
    }
  }
}
