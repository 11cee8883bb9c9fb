import { Inject, Injectable } from '@nestjs/common';
import type { WorkflowRefInput } from '../domain.js';
import { Database } from '../db/database.js';
import { WORKER_STALE_AFTER_MS } from '../tenancy/data-plane.repository.js';

/** A version a run can be pinned to, with whether it is deprecated (no new runs). */
export interface ResolvedWorkflow extends WorkflowRefInput {
  readonly deprecated: boolean;
}

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
   * Whether a worker of the data plane that announced `name@version` is connected now (to any
   * replica): its stream is open and was seen within {@link WORKER_STALE_AFTER_MS}.
   */
  async servedByConnectedWorker(dataPlaneId: string, name: string, version: string): Promise<boolean> {
    const result = await this.db.prepared<{ served: boolean }>(
      'cp_version_served',
      `SELECT EXISTS (SELECT 1 FROM data_plane_workers
                      WHERE data_plane_id = $1 AND disconnected_at IS NULL AND last_seen_at >= now() - make_interval(secs => $3)
                        AND $2 = ANY (workflow_versions)) AS served`,
      [dataPlaneId, `${name}@${version}`, WORKER_STALE_AFTER_MS / 1000],
    );
    return result.rows[0]?.served ?? false;
  }

  /**
   * The version to pin a run to. A given version: the registered one (its task queue comes from
   * the registry), else the one a worker of this data plane announced. No version: the newest
   * announced version that is not deprecated (the most recently first announced; ties broken by
   * the most recently seen), else the newest registered one that is not deprecated. `deprecated`
   * says whether the given version is deprecated.
   */
  async resolve(dataPlaneId: string, name: string, version: string | null): Promise<ResolvedWorkflow | null> {
    const result =
      version === null
        ? await this.db.prepared<{ name: string; version: string; task_queue: string; deprecated: boolean }>(
            'cp_resolve_newest_workflow',
            `WITH project AS (SELECT project_id FROM data_planes WHERE id = $1)
             (SELECT wv.name, wv.version, coalesce(d.task_queue, wv.task_queue) AS task_queue, false AS deprecated, 0 AS preference,
                     wv.first_seen_at AS first_at, wv.last_seen_at AS last_at
              FROM workflow_versions wv
              LEFT JOIN workflow_definitions d ON d.project_id = (SELECT project_id FROM project) AND d.name = wv.name AND d.version = wv.version
              WHERE wv.data_plane_id = $1 AND wv.name = $2 AND d.deprecated_at IS NULL
              ORDER BY wv.first_seen_at DESC, wv.last_seen_at DESC LIMIT 1)
             UNION ALL
             (SELECT d.name, d.version, d.task_queue, false, 1, d.registered_at, d.registered_at FROM workflow_definitions d
              WHERE d.project_id = (SELECT project_id FROM project) AND d.name = $2 AND d.deprecated_at IS NULL
              ORDER BY d.registered_at DESC, d.version DESC LIMIT 1)
             ORDER BY preference LIMIT 1`,
            [dataPlaneId, name],
          )
        : await this.db.prepared<{ name: string; version: string; task_queue: string; deprecated: boolean }>(
            'cp_resolve_workflow',
            `SELECT $2::text AS name, $3::text AS version, coalesce(d.task_queue, wv.task_queue) AS task_queue,
                    d.deprecated_at IS NOT NULL AS deprecated
             FROM (SELECT 1) AS one
             LEFT JOIN workflow_versions wv ON wv.data_plane_id = $1 AND wv.name = $2 AND wv.version = $3
             LEFT JOIN workflow_definitions d
               ON d.project_id = (SELECT project_id FROM data_planes WHERE id = $1) AND d.name = $2 AND d.version = $3
             WHERE wv.name IS NOT NULL OR d.name IS NOT NULL`,
            [dataPlaneId, name, version],
          );
    const row = result.rows[0];
    return row ? { name: row.name, version: row.version, taskQueue: row.task_queue, deprecated: row.deprecated } : null;
  }
}
