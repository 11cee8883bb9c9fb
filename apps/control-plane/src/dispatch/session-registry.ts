import { Injectable } from '@nestjs/common';
import type { LeaseKey } from '../domain.js';
import type { WorkerSession } from './worker-session.js';

/** The worker sessions connected to this replica. */
@Injectable()
export class SessionRegistry {
  private readonly sessions = new Map<string, WorkerSession>();
  private readonly byDataPlane = new Map<string, Set<WorkerSession>>();

  add(session: WorkerSession): void {
    this.sessions.set(session.id, session);
    let set = this.byDataPlane.get(session.dataPlaneId);
    if (!set) {
      set = new Set();
      this.byDataPlane.set(session.dataPlaneId, set);
    }
    set.add(session);
  }

  remove(session: WorkerSession): void {
    this.sessions.delete(session.id);
    const set = this.byDataPlane.get(session.dataPlaneId);
    set?.delete(session);
    if (set?.size === 0) this.byDataPlane.delete(session.dataPlaneId);
  }

  get(sessionId: string): WorkerSession | undefined {
    return this.sessions.get(sessionId);
  }

  forDataPlane(dataPlaneId: string): WorkerSession[] {
    return [...(this.byDataPlane.get(dataPlaneId) ?? [])];
  }

  all(): WorkerSession[] {
    return [...this.sessions.values()];
  }

  get size(): number {
    return this.sessions.size;
  }

  /** The local session holding lease (run, epoch), if any. */
  holderOf(lease: LeaseKey): WorkerSession | undefined {
    for (const session of this.sessions.values()) if (session.holds(lease)) return session;
    return undefined;
  }
}
