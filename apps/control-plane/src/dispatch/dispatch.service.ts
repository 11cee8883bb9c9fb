import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from '@cairn/common';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { errorSummary } from '../db/database.js';
import { RunRepository } from '../runs/run.repository.js';
import type { LeaseKey, Run } from '../domain.js';
import { Telemetry } from '../telemetry/telemetry.service.js';
import { LOGGER } from '../tokens.js';
import { DataPlaneService } from '../tenancy/data-plane.service.js';
import { EventBus } from '../events/event-bus.service.js';
import { FlowControlService } from '../flow-control/flow-control.service.js';
import { SessionRegistry } from './session-registry.js';
import { STALE_STREAM_CREDENTIAL } from '../tenancy/credential-holders.js';
import { WorkflowDefaultsService } from '../workflows/workflow-defaults.service.js';
import type { WorkerSession } from './worker-session.js';

// A pass over every session now and then, in case a notification was lost on the way.
const SAFETY_PASS_MS = 5_000;
const RETRY_AFTER_ERROR_MS = 1_000;

/**
 * Pushes queued runs to connected workers with free slots. Each session has its own dispatch
 * loop, so one slow session never delays another; a kick while a loop runs makes it go round once
 * more, so no wake-up is lost and kicks coalesce.
 */
@Injectable()
export class DispatchService {
  private stopped = true;
  private safetyTimer: NodeJS.Timeout | null = null;
  private readonly rateTimers = new WeakMap<WorkerSession, { due: number; timer: NodeJS.Timeout }>();
  /** Called once the session's current dispatch loop ends, with whether its last pass filled every free slot. */
  private readonly afterLoop = new WeakMap<WorkerSession, Array<(filled: boolean) => void>>();
  /** Round-robin position per group of interchangeable sessions. */
  private readonly cursors = new Map<string, number>();
  private readonly groupKeys = new WeakMap<WorkerSession, string>();

  constructor(
    @Inject(RunRepository) private readonly runs: RunRepository,
    @Inject(SessionRegistry) private readonly registry: SessionRegistry,
    @Inject(EventBus) private readonly events: EventBus,
    @Inject(CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(Telemetry) private readonly telemetry: Telemetry,
    @Inject(FlowControlService) private readonly flow: FlowControlService,
    @Inject(WorkflowDefaultsService) private readonly defaults: WorkflowDefaultsService,
    @Inject(DataPlaneService) private readonly dataPlanes: DataPlaneService,
  ) {
    this.events.onDispatch((dataPlaneId) => this.kickDataPlane(dataPlaneId));
    this.events.onResync(() => this.kickAll());
    this.events.onCancel((lease) => this.registry.holderOf(lease)?.cancel(lease));
    // A terminated run's holder is told its lease is lost (it stops at once) and gets the slot back.
    this.events.onLeaseRevoked((lease) => {
      const holder = this.registry.holderOf(lease);
      if (!holder?.drop(lease)) return;
      holder.lost([lease]);
      this.kick(holder, false);
    });
  }

  start(): void {
    this.stopped = false;
    this.safetyTimer = setInterval(() => this.kickAll(), SAFETY_PASS_MS);
    this.safetyTimer.unref();
  }

  /** Stops dispatching and waits for passes in flight (their tasks are pushed before streams end). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.safetyTimer) clearInterval(this.safetyTimer);
    this.safetyTimer = null;
    await Promise.all(this.registry.all().map((s) => s.idle()));
  }

  /**
   * Runs of a data plane were queued. Sessions announcing the same workflows are interchangeable,
   * so instead of every session claiming at once (most finding nothing), each group hands the
   * work to one session at a time, round robin: the next one claims only when the previous one
   * filled all its free slots (there may be more). Every session of the group still learns that
   * work exists, so one that frees a slot later claims without waiting for a kick.
   */
  kickDataPlane(dataPlaneId: string): void {
    const groups = new Map<string, WorkerSession[]>();
    for (const session of this.registry.forDataPlane(dataPlaneId)) {
      session.workEvents += 1;
      session.knownEmpty = false;
      const key = this.groupKey(session);
      const group = groups.get(key);
      if (group) group.push(session);
      else groups.set(key, [session]);
    }
    for (const [key, sessions] of groups) this.kickGroup(key, sessions, sessions.length);
  }

  /** Kicks the group's next session with free slots; chains on while sessions fill up. */
  private kickGroup(key: string, sessions: readonly WorkerSession[], left: number): void {
    const start = this.cursors.get(key) ?? 0;
    for (let i = 0; i < Math.min(left, sessions.length); i++) {
      const index = (start + i) % sessions.length;
      const session = sessions[index]!;
      if (!session.ready || session.closed || session.free === 0) continue;
      this.cursors.set(key, index + 1);
      const remaining = left - i - 1;
      this.kick(session, true, (filled) => {
        if (filled && remaining > 0) this.kickGroup(key, sessions, remaining);
      });
      return;
    }
  }

  private groupKey(session: WorkerSession): string {
    let key = this.groupKeys.get(session);
    if (key === undefined) {
      key = `${session.dataPlaneId} ${session.workflows
        .map((w) => `${w.name}@${w.version}@${w.taskQueue}`)
        .sort()
        .join(' ')}`;
      this.groupKeys.set(session, key);
    }
    return key;
  }

  kickAll(): void {
    for (const session of this.registry.all()) this.kick(session);
  }

  /**
   * Runs a dispatch pass for the session now, or once more after the current one. `newWork`:
   * runs may have been queued (false when only the session's capacity grew, which needs no pass
   * while the queue is known to hold nothing for it).
   */
  kick(session: WorkerSession, newWork = true, afterLoop?: (filled: boolean) => void): void {
    if (newWork) {
      session.workEvents += 1;
      session.knownEmpty = false;
    } else if (session.knownEmpty) {
      return;
    }
    if (this.stopped || !session.ready || session.free === 0) {
      afterLoop?.(true);
      return;
    }
    if (afterLoop) {
      const waiting = this.afterLoop.get(session);
      if (waiting) waiting.push(afterLoop);
      else this.afterLoop.set(session, [afterLoop]);
    }
    if (session.dispatching) {
      session.dispatchAgain = true;
      return;
    }
    session.dispatching = true;
    void this.loop(session);
  }

  private async loop(session: WorkerSession): Promise<void> {
    // Whether the last pass took as many runs as it had slots for (more may be queued).
    let filled = true;
    try {
      do {
        session.dispatchAgain = false;
        const limit = session.free;
        if (this.stopped || !session.ready || limit === 0) break;
        const workEvents = session.workEvents;
        const limited = await this.flow.limitedNames(session.dataPlaneId);
        const claimed = await this.runs.claim({
          dataPlaneId: session.dataPlaneId,
          sessionId: session.id,
          workerId: session.workerId,
          workflows: session.workflows,
          limit,
          leaseTtlMs: this.config.leaseTtlMs,
          limited: limited.size === 0 ? [] : session.workflows.filter((w) => limited.has(w.name)).map((w) => w.name),
          onRateLimited: (retryAt) => this.kickAt(session, retryAt),
        });
        // Checked after the claim, so a claim that raced a rotation or revocation of the stream's
        // credential is given back too: no RunTask goes out on a stream whose secret was replaced.
        const stale = claimed.length > 0 && !session.closed && !(await this.dataPlanes.isCurrent(session.credential));
        if (stale) {
          session.end({ kind: 'unauthenticated', message: STALE_STREAM_CREDENTIAL });
        }
        if (session.closed) {
          await this.giveBack(
            session,
            claimed.map((r) => ({ runId: r.id, epoch: r.epoch })),
          );
          break;
        }
        // The registered retry policy and step timeout of each run's version travel with its task,
        // and a parent woken by a child's end learns which of its children timed out.
        const defaults = claimed.length === 0 ? null : await this.defaults.forRuns(claimed);
        const timedOut = await this.runs.timedOutChildren(claimed.filter((r) => r.wakeReason === 'child').map((r) => r.id));
        for (const run of claimed) {
          session.assign(run, this.telemetry.dispatched(run, session), {
            defaults: defaults?.get(run.id) ?? null,
            timedOutChildren: timedOut.get(run.id) ?? [],
          });
          session.logger.debug({ runId: run.id, epoch: run.epoch, reason: run.wakeReason }, 'run dispatched');
        }
        filled = claimed.length >= limit;
        if (claimed.length < limit && session.workEvents === workEvents) session.knownEmpty = true;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- kick() sets it while this pass awaits
      } while (session.dispatchAgain);
    } catch (error) {
      session.logger.error({ err: errorSummary(error) }, 'dispatch failed; retrying');
      const retry = setTimeout(() => this.kick(session), RETRY_AFTER_ERROR_MS);
      retry.unref();
    } finally {
      session.dispatching = false;
      session.settled();
      const waiting = this.afterLoop.get(session);
      this.afterLoop.delete(session);
      for (const next of waiting ?? []) next(filled);
    }
  }

  /**
   * Takes a free slot for a run about to be started, on a local session that serves its workflow
   * version (the one with the most free slots). The insert checks that no run the session would
   * claim first is queued (RunRepository.insertLeased). Null when there is none: the run is queued
   * and claimed as usual. Every reservation ends with {@link startedOnto}.
   */
  reserveStart(dataPlaneId: string, workflow: { name: string; version: string; taskQueue: string }): WorkerSession | null {
    if (this.stopped) return null;
    let best: WorkerSession | null = null;
    for (const session of this.registry.forDataPlane(dataPlaneId)) {
      if (!session.ready || session.free === 0 || !session.serves(workflow)) continue;
      if (best === null || session.free > best.free) best = session;
    }
    best?.reserve();
    return best;
  }

  /** Whether a worker stream connected to this replica runs that version of the workflow. */
  servedHere(dataPlaneId: string, name: string, version: string): boolean {
    return this.registry
      .forDataPlane(dataPlaneId)
      .some((session) => !session.closed && session.workflows.some((w) => w.name === name && w.version === version));
  }

  /**
   * Ends a reservation of {@link reserveStart}: a run inserted leased to the session gets its
   * RunTask there (or goes back to the queue if the stream closed meanwhile). A run inserted
   * queued, or none, leaves the slot free again.
   */
  async startedOnto(session: WorkerSession, run: Run | null): Promise<void> {
    session.unreserve();
    if (run?.status !== 'running' || run.leaseSession !== session.id) return;
    if (session.closed) {
      await this.giveBack(session, [{ runId: run.id, epoch: run.epoch }]);
      return;
    }
    const defaults = await this.defaults.forRuns([run]);
    session.assign(run, this.telemetry.dispatched(run, session), { defaults: defaults.get(run.id) ?? null, timedOutChildren: [] });
    session.logger.debug({ runId: run.id, epoch: run.epoch, reason: run.wakeReason }, 'run dispatched');
  }

  /** Kicks the session when a rate limit lets more runs start (one timer per session, the earliest). */
  private kickAt(session: WorkerSession, at: Date): void {
    const due = at.getTime();
    const pending = this.rateTimers.get(session);
    if (pending && pending.due <= due) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(
      () => {
        this.rateTimers.delete(session);
        this.kick(session);
      },
      Math.max(0, due - Date.now()) + 5,
    );
    timer.unref();
    this.rateTimers.set(session, { due, timer });
  }

  /** Runs claimed for a session that closed meanwhile go straight back to the queue. */
  private async giveBack(session: WorkerSession, leases: LeaseKey[]): Promise<void> {
    if (leases.length === 0) return;
    const released = await this.runs.releaseClaimed(session.id, leases);
    if (released.length > 0) this.events.publishDispatch(session.dataPlaneId);
  }
}
