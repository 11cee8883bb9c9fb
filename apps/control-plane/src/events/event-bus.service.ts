import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from '@cairn/common';
import { errorSummary } from '../db/database.js';
import { Channels, NotificationRepository, type Channel } from './notification.repository.js';
import type { LeaseKey, Run } from '../domain.js';
import { LOGGER } from '../tokens.js';

/**
 * Wakes dispatchers and waiters promptly. Each event is raised in this process at once (so this
 * replica does not wait for a round trip through Postgres) and NOTIFYed for the other replicas;
 * the NOTIFYs of one event-loop turn go out in one statement. Dispatch and cancel payloads carry
 * the sending replica's ID so it can ignore its own; run-end payloads are the bare run ID and a
 * duplicate wake-up of a waiter is harmless.
 */
@Injectable()
export class EventBus {
  private readonly emitter = new EventEmitter();
  private readonly runWaiters = new Map<string, Set<(run?: Run) => void>>();
  private readonly replicaId = randomUUID();
  private outgoing = new Map<string, { channel: Channel; payload: string }>();
  private flushScheduled = false;

  constructor(
    @Inject(NotificationRepository) private readonly notifications: NotificationRepository,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.emitter.setMaxListeners(0);
  }

  /** Starts listening to the other replicas. */
  async start(): Promise<void> {
    await this.notifications.listen({
      onNotification: (channel, payload) => this.received(channel, payload),
      onListening: () => {
        this.emitter.emit('resync');
        this.wakeAllWaiters();
      },
    });
  }

  async stop(): Promise<void> {
    await this.notifications.stop();
    this.wakeAllWaiters();
  }

  /** Runs of this data plane were queued. */
  publishDispatch(dataPlaneId: string): void {
    this.emitter.emit('dispatch', dataPlaneId);
    this.send(Channels.dispatch, `${dataPlaneId} ${this.replicaId}`);
  }

  /**
   * A run reached a final state. With the run as it was committed, waiters on this replica take it
   * as their answer instead of reading it again.
   */
  publishRunEnded(runId: string, run?: Run): void {
    this.wakeRunWaiters(runId, run);
    this.send(Channels.runEnded, runId);
  }

  /** The holder of lease (run, epoch) should cancel the run, wherever it is connected. */
  publishCancel(lease: LeaseKey): void {
    this.emitter.emit('cancel', lease);
    this.send(Channels.cancel, `${lease.runId} ${lease.epoch} ${this.replicaId}`);
  }

  /** Lease (run, epoch) was taken from its holder (the run was terminated), wherever it is connected. */
  publishLeaseRevoked(lease: LeaseKey): void {
    this.emitter.emit('leaseRevoked', lease);
    this.send(Channels.leaseRevoked, `${lease.runId} ${lease.epoch} ${this.replicaId}`);
  }

  /**
   * A run was suspended on this replica until `at`. Local only: each replica times the suspensions
   * it applied (and, after each timer pass, the earliest of all); the periodic sweep is the backstop.
   */
  publishTimer(at: Date): void {
    this.emitter.emit('timer', at);
  }

  onTimer(listener: (at: Date) => void): void {
    this.emitter.on('timer', listener);
  }

  onLeaseRevoked(listener: (lease: LeaseKey) => void): void {
    this.emitter.on('leaseRevoked', listener);
  }

  /**
   * A data plane's credential was rotated or revoked, on any replica or by the command line: each
   * replica ends the streams still using the old secret. The NOTIFY is sent by a trigger on
   * `data_planes` when the change commits (migration 13), so nothing here sends one.
   */
  onCredentialChanged(listener: (dataPlaneId: string) => void): void {
    this.emitter.on('credentialChanged', listener);
  }

  onDispatch(listener: (dataPlaneId: string) => void): void {
    this.emitter.on('dispatch', listener);
  }

  onCancel(listener: (lease: LeaseKey) => void): void {
    this.emitter.on('cancel', listener);
  }

  /** Notifications may have been missed (the listener reconnected): re-check everything. */
  onResync(listener: () => void): void {
    this.emitter.on('resync', listener);
  }

  /**
   * Subscribes to the end of a run (or a resync). Subscribe before reading the run, so an end
   * between the read and the wait is not missed. `wake` gets the ended run when it ended on this
   * replica, nothing when another replica's notification (or a resync) woke it.
   */
  subscribeRunEnded(runId: string, wake: (run?: Run) => void): () => void {
    let set = this.runWaiters.get(runId);
    if (!set) {
      set = new Set();
      this.runWaiters.set(runId, set);
    }
    set.add(wake);
    return () => {
      const current = this.runWaiters.get(runId);
      if (!current) return;
      current.delete(wake);
      if (current.size === 0) this.runWaiters.delete(runId);
    };
  }

  /** Wakes every waiter so it re-reads its run (after a resync or at shutdown). */
  wakeAllWaiters(): void {
    for (const set of [...this.runWaiters.values()]) for (const wake of [...set]) wake();
  }

  private wakeRunWaiters(runId: string, run?: Run): void {
    const set = this.runWaiters.get(runId);
    if (set) for (const wake of [...set]) wake(run);
  }

  private received(channel: Channel, payload: string): void {
    switch (channel) {
      case Channels.dispatch: {
        const [dataPlaneId, origin] = payload.split(' ');
        if (dataPlaneId && origin !== this.replicaId) this.emitter.emit('dispatch', dataPlaneId);
        break;
      }
      case Channels.runEnded:
        this.wakeRunWaiters(payload);
        break;
      case Channels.credentialChanged:
        this.emitter.emit('credentialChanged', payload);
        break;
      case Channels.cancel:
      case Channels.leaseRevoked: {
        const [runId, epoch, origin] = payload.split(' ');
        if (runId && epoch && /^\d+$/.test(epoch) && origin !== this.replicaId) {
          this.emitter.emit(channel === Channels.cancel ? 'cancel' : 'leaseRevoked', { runId, epoch: Number(epoch) } satisfies LeaseKey);
        }
        break;
      }
    }
  }

  private send(channel: Channel, payload: string): void {
    this.outgoing.set(`${channel} ${payload}`, { channel, payload });
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const batch = [...this.outgoing.values()];
      this.outgoing = new Map();
      this.notifications.notifyMany(batch).catch((error: unknown) => {
        // The periodic dispatch pass and the sweep recover from a lost notification.
        this.logger.warn({ err: errorSummary(error), count: batch.length }, 'could not notify the other replicas');
      });
    });
  }
}
