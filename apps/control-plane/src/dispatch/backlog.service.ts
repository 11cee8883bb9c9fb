import { Inject, Injectable } from '@nestjs/common';
import { BacklogRepository, type TaskQueueBacklog } from './backlog.repository.js';

/** The backlog a data plane scales its workers on: its own runs only, per task queue. */
@Injectable()
export class BacklogService {
  constructor(@Inject(BacklogRepository) private readonly backlog: BacklogRepository) {}

  /**
   * Queued, running and suspended runs of the data plane per task queue, ordered by name. Queues
   * asked for by name are always answered, with zeros when they have no open runs.
   */
  async forDataPlane(dataPlaneId: string, taskQueues: readonly string[]): Promise<TaskQueueBacklog[]> {
    const wanted = [...new Set(taskQueues)];
    const counted = await this.backlog.count(dataPlaneId, wanted);
    const byName = new Map(counted.map((q) => [q.taskQueue, q]));
    for (const name of wanted)
      if (!byName.has(name)) byName.set(name, { taskQueue: name, queued: 0, running: 0, suspended: 0, oldestQueuedAgeMs: 0 });
    return [...byName.values()].sort((a, b) => (a.taskQueue < b.taskQueue ? -1 : a.taskQueue > b.taskQueue ? 1 : 0));
  }
}
