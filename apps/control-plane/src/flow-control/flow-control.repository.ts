import { Inject, Injectable } from '@nestjs/common';
import { Database } from '../db/database.js';

/** Flow control of one workflow name in a project. */
export interface FlowControl {
  /** At most this many runs of the workflow hold a lease at once (per concurrency key when `perKey`). */
  readonly concurrency: { readonly limit: number; readonly perKey: boolean } | null;
  /** At most `limit` first dispatches per `periodMs` (per concurrency key when `perKey`). */
  readonly rateLimit: { readonly limit: number; readonly periodMs: number; readonly perKey: boolean } | null;
}

export interface FlowControlRecord extends FlowControl {
  readonly projectId: string;
  readonly name: string;
  readonly updatedAt: Date;
}

export interface FlowControlRow {
  project_id: string;
  name: string;
  concurrency_limit: number | null;
  concurrency_per_key: boolean;
  rate_limit: number | null;
  rate_period_ms: number | null;
  rate_per_key: boolean;
  updated_at: Date;
}

export const FLOW_CONTROL_COLUMNS =
  'project_id, name, concurrency_limit, concurrency_per_key, rate_limit, rate_period_ms, rate_per_key, updated_at';

export function toFlowControl(row: FlowControlRow): FlowControlRecord {
  return {
    projectId: row.project_id,
    name: row.name,
    concurrency: row.concurrency_limit === null ? null : { limit: row.concurrency_limit, perKey: row.concurrency_per_key },
    rateLimit:
      row.rate_limit === null || row.rate_period_ms === null
        ? null
        : { limit: row.rate_limit, periodMs: row.rate_period_ms, perKey: row.rate_per_key },
    updatedAt: row.updated_at,
  };
}

/** All SQL about per-workflow flow-control settings (`workflow_flow_control`). */
@Injectable()
export class FlowControlRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  async find(projectId: string, name: string): Promise<FlowControlRecord | null> {
    const result = await this.db.query<FlowControlRow>(
      `SELECT ${FLOW_CONTROL_COLUMNS} FROM workflow_flow_control WHERE project_id = $1 AND name = $2`,
      [projectId, name],
    );
    const row = result.rows[0];
    return row ? toFlowControl(row) : null;
  }

  /** Every limited workflow of a project. */
  async forProject(projectId: string): Promise<FlowControlRecord[]> {
    const result = await this.db.query<FlowControlRow>(
      `SELECT ${FLOW_CONTROL_COLUMNS} FROM workflow_flow_control WHERE project_id = $1 ORDER BY name`,
      [projectId],
    );
    return result.rows.map(toFlowControl);
  }

  /** Sets the workflow's flow control; with no limit at all the row is removed (the workflow is unlimited). */
  async set(projectId: string, name: string, settings: FlowControl): Promise<FlowControlRecord | null> {
    if (settings.concurrency === null && settings.rateLimit === null) {
      await this.db.query('DELETE FROM workflow_flow_control WHERE project_id = $1 AND name = $2', [projectId, name]);
      return null;
    }
    const result = await this.db.query<FlowControlRow>(
      `INSERT INTO workflow_flow_control (project_id, name, concurrency_limit, concurrency_per_key, rate_limit, rate_period_ms, rate_per_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (project_id, name) DO UPDATE SET concurrency_limit = EXCLUDED.concurrency_limit,
         concurrency_per_key = EXCLUDED.concurrency_per_key, rate_limit = EXCLUDED.rate_limit,
         rate_period_ms = EXCLUDED.rate_period_ms, rate_per_key = EXCLUDED.rate_per_key, updated_at = now()
       RETURNING ${FLOW_CONTROL_COLUMNS}`,
      [
        projectId,
        name,
        settings.concurrency?.limit ?? null,
        settings.concurrency?.perKey ?? false,
        settings.rateLimit?.limit ?? null,
        settings.rateLimit?.periodMs ?? null,
        settings.rateLimit?.perKey ?? false,
      ],
    );
    return toFlowControl(result.rows[0]!);
  }

  /** The names of the limited workflows of a data plane's project. */
  async limitedNames(dataPlaneId: string): Promise<string[]> {
    const result = await this.db.prepared<{ name: string }>(
      'cp_limited_workflows',
      `SELECT f.name FROM workflow_flow_control f JOIN data_planes d ON d.project_id = f.project_id WHERE d.id = $1`,
      [dataPlaneId],
    );
    return result.rows.map((r) => r.name);
  }

  /** The data planes of a project (to wake their dispatchers when a limit changes). */
  async dataPlanesOf(projectId: string): Promise<string[]> {
    const result = await this.db.query<{ id: string }>('SELECT id FROM data_planes WHERE project_id = $1', [projectId]);
    return result.rows.map((r) => r.id);
  }
}
