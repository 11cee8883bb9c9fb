import { Inject, Injectable } from '@nestjs/common';
import { Database } from '../db/database.js';

/** One task queue's runs by state. */
export interface TaskQueueBacklog {
  readonly taskQueue: string;
  readonly queued: number;
  readonly running: number;
  readonly suspended: number;
  /** Milliseconds the longest-queued run has waited for a worker; 0 with none queued. */
  readonly oldestQueuedAgeMs: number;
}

interface BacklogRow {
  task_queue: string;
  queued: string;
  running: string;
  suspended: string;
  oldest_queued_age_ms: string | null;
}

/** Counts a data plane's open runs per task queue (what its autoscaler sizes workers from). */
@Injectable()
export class BacklogRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /** Queued, running and suspended runs of `dataPlaneId` per task queue; `taskQueues` empty for all. */
  async count(dataPlaneId: string, taskQueues: readonly string[]): Promise<TaskQueueBacklog[]> {
    const { rows } = await this.db.query<BacklogRow>(
      `SELECT task_queue,
              count(*) FILTER (WHERE status = 'queued') AS queued,
              count(*) FILTER (WHERE status = 'running') AS running,
              count(*) FILTER (WHERE status = 'suspended') AS suspended,
              floor(extract(epoch FROM now() - min(queued_at) FILTER (WHERE status = 'queued')) * 1000) AS oldest_queued_age_ms
         FROM runs
        WHERE data_plane_id = $1
          AND status IN ('queued', 'running', 'suspended')
          AND (cardinality($2::text[]) = 0 OR task_queue = ANY($2::text[]))
        GROUP BY task_queue
        ORDER BY task_queue`,
      [dataPlaneId, taskQueues],
    );
    return rows.map((r) => ({
      taskQueue: r.task_queue,
      queued: Number(r.queued),
      running: Number(r.running),
      suspended: Number(r.suspended),
      // The database's clock stamps queued_at and now(): no skew; never negative.
      oldestQueuedAgeMs: Math.max(0, Number(r.oldest_queued_age_ms ?? 0)),
    }));
  }
}
