import { randomUUID } from 'node:crypto';
import {
  CancelRequestSchema,
  ConnectResponseSchema,
  LeaseState,
  LeaseStatusSchema,
  LeaseUpdateSchema,
  create,
  type ConnectResponse,
} from '@cairn/proto';
import type { Logger } from '@cairn/common';
import type { LeaseKey, Run, WorkflowRefInput } from '../domain.js';
import { toRunTask, type RunTaskExtras } from '../grpc/convert.js';
import type { DataPlaneIdentity } from '../tenancy/data-plane.service.js';

/** How a stream ends; each transport maps the kind to its own status code. */
export interface StreamEnd {
  readonly kind:
    'ok' | 'failed_precondition' | 'permission_denied' | 'invalid_argument' | 'unauthenticated' | 'unavailable' | 'resource_exhausted';
  readonly message: string;
  /** With `resource_exhausted`: how long to wait before reconnecting (a `retry-after` trailer). */
  readonly retryAfterSeconds?: number | undefined;
}

/** The transport side of a worker stream. */
export interface SessionOutbound {
  send(message: ConnectResponse): void;
  end(end: StreamEnd): void;
}

/**
 * One worker's stream after its Hello: what it can run, its capacity and the leases it holds.
 * Only this replica knows it; the database knows the leases.
 */
export class WorkerSession {
  readonly id = randomUUID();
  readonly connectedAt = Date.now();
  lastSeenAt = Date.now();
  draining = false;
  /** run ID → epoch, for the leases this session holds. */
  readonly leases = new Map<string, number>();
  /**
   * Held leases whose final message (completed, failed, cancelled, released, suspended) has
   * arrived and waits its turn on the stream: the worker freed their slots when it sent them, so
   * they do not count against the session's free slots (the leases themselves stay until applied).
   */
  private readonly ending = new Set<string>();
  /** Slots taken for runs being started onto this session (see DispatchService.reserveStart). */
  private reservedSlots = 0;
  /** Dispatch loop state, owned by the DispatchService. */
  dispatching = false;
  dispatchAgain = false;
  /** Counts "runs were queued" events; a pass that saw none and found nothing knows the queue is empty. */
  workEvents = 0;
  /** The last pass found no run for this session and nothing was queued since. */
  knownEmpty = false;
  private welcomed = false;
  private closedFlag = false;
  private readonly held: ConnectResponse[] = [];
  private readonly cancelsSent = new Set<string>();
  private readonly idleWaiters: Array<() => void> = [];
  readonly dataPlaneId: string;

  constructor(
    /** The data plane and the credential the stream authenticated with. */
    readonly credential: DataPlaneIdentity,
    readonly workerId: string,
    readonly slots: number,
    readonly workflows: readonly WorkflowRefInput[],
    private readonly outbound: SessionOutbound,
    readonly logger: Logger,
  ) {
    this.dataPlaneId = credential.dataPlaneId;
  }

  /** Whether dispatch may push tasks (Welcome sent, stream open). */
  get ready(): boolean {
    return this.welcomed && !this.closedFlag;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Slots − leases held − slots reserved; none while draining. */
  get free(): number {
    return this.draining ? 0 : Math.max(0, this.slots - this.leases.size + this.ending.size - this.reservedSlots);
  }

  /** Takes a free slot for a run about to be inserted leased to this session. */
  reserve(): void {
    this.reservedSlots += 1;
  }

  /** Gives back a slot taken by {@link reserve} (the run was inserted, leased here or queued, or not at all). */
  unreserve(): void {
    this.reservedSlots = Math.max(0, this.reservedSlots - 1);
  }

  /** Whether this session runs that version of the workflow on that task queue. */
  serves(workflow: { readonly name: string; readonly version: string; readonly taskQueue: string }): boolean {
    return this.workflows.some((w) => w.name === workflow.name && w.version === workflow.version && w.taskQueue === workflow.taskQueue);
  }

  /** A final message for a held lease arrived (see {@link ending}); false when the lease is not held. */
  endingArrived(lease: LeaseKey): boolean {
    if (!this.holds(lease)) return false;
    this.ending.add(`${lease.runId} ${lease.epoch}`);
    return true;
  }

  /** The final message was handled (applied or refused): the lease counts as it is again. */
  endingHandled(lease: LeaseKey): void {
    this.ending.delete(`${lease.runId} ${lease.epoch}`);
  }

  /** Sends the Welcome, then anything queued for the session before it. */
  welcome(welcome: ConnectResponse): void {
    if (this.closedFlag) return;
    this.outbound.send(welcome);
    this.welcomed = true;
    for (const message of this.held.splice(0)) this.outbound.send(message);
  }

  send(message: ConnectResponse): void {
    if (this.closedFlag) return;
    if (this.welcomed) this.outbound.send(message);
    else this.held.push(message);
  }

  /**
   * Records a lease and pushes its RunTask (with the W3C traceparent of its dispatch span, if
   * traced, the registered defaults of its workflow version and its timed-out children).
   */
  assign(run: Run, traceparent = '', extras: RunTaskExtras = {}): void {
    this.leases.set(run.id, run.epoch);
    this.send(create(ConnectResponseSchema, { message: { case: 'runTask', value: toRunTask(run, traceparent, extras) } }));
  }

  holds(lease: LeaseKey): boolean {
    return this.leases.get(lease.runId) === lease.epoch;
  }

  /** Forgets a lease; returns whether this session held it. */
  drop(lease: LeaseKey): boolean {
    if (!this.holds(lease)) return false;
    this.leases.delete(lease.runId);
    this.ending.delete(`${lease.runId} ${lease.epoch}`);
    this.cancelsSent.delete(`${lease.runId} ${lease.epoch}`);
    return true;
  }

  /** Pushes a CancelRequest once per lease. */
  cancel(lease: LeaseKey): void {
    const key = `${lease.runId} ${lease.epoch}`;
    if (!this.holds(lease) || this.cancelsSent.has(key)) return;
    this.cancelsSent.add(key);
    this.send(create(ConnectResponseSchema, { message: { case: 'cancel', value: create(CancelRequestSchema, lease) } }));
  }

  /** Tells the worker these leases are gone (taken by the sweep). */
  lost(leases: readonly LeaseKey[]): void {
    if (leases.length === 0) return;
    const statuses = leases.map((l) => create(LeaseStatusSchema, { runId: l.runId, epoch: l.epoch, state: LeaseState.LOST }));
    this.send(create(ConnectResponseSchema, { message: { case: 'leaseUpdate', value: create(LeaseUpdateSchema, { leases: statuses }) } }));
  }

  /** Marks the session closed (the stream ended or is being ended); leases stay in the database. */
  markClosed(): void {
    this.closedFlag = true;
  }

  /** Ends the stream with a status. */
  end(end: StreamEnd): void {
    this.closedFlag = true;
    this.outbound.end(end);
  }

  /** Resolves when no dispatch pass is running for this session. */
  idle(): Promise<void> {
    if (!this.dispatching) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Called by the dispatcher when its pass ends. */
  settled(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
