import { Inject, Injectable } from '@nestjs/common';
import type { WorkflowRefInput } from '../domain.js';
import { Database } from './database.js';

/** All SQL about announced workflow versions. */
@Injectable()
export class WorkflowRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /** Records the versions a worker announced (first seen, last seen, task queue). */
  async upsertAnnounced(dataPlaneId: string, workflows: readonly WorkflowRefInput[]): Promise<void> {
    if (workflows.length === 0) return;
    await this.db.query(
      `INSERT INTO workflow_versions (data_plane_id, name, version, task_queue)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])
       ON CONFLICT (data_plane_id, name, version) DO UPDATE SET task_queue = EXCLUDED.task_queue, last_seen_at = now()`,
      [dataPlaneId, workflows.map((w) => w.name), workflows.map((w) => w.version), workflows.map((w) => w.taskQueue)],
    );
  }

  /**
   * The announced version to pin a run to: the given one, or the newest (the most recently first
   * announced; ties broken by the most recently seen).
   */
  async resolve(dataPlaneId: string, name: string, version: string | null): Promise<WorkflowRefInput | null> {
    const result =
      version === null
        ? await this.db.prepared<{ name: string; version: string; task_queue: string }>(
            'cp_resolve_newest_workflow',
            `SELECT name, version, task_queue FROM workflow_versions WHERE data_plane_id = $1 AND name = $2
             ORDER BY first_seen_at DESC, last_seen_at DESC LIMIT 1`,
            [dataPlaneId, name],
          )
        : await this.db.prepared<{ name: string; version: string; task_queue: string }>(
            'cp_resolve_workflow',
            'SELECT name, version, task_queue FROM workflow_versions WHERE data_plane_id = $1 AND name = $2 AND version = $3',
            [dataPlaneId, name, version],
          );
    const row = result.rows[0];
    return row ? { name: row.name, version: row.version, taskQueue: row.task_queue } : null;
  }
}
