import { Inject, Injectable } from '@nestjs/common';
import { Database, type Queryable } from '../db/database.js';

/**
 * A workflow version's default retry policy, in the SDK's shape with every default filled in and
 * durations in milliseconds: what a step that names no policy of its own uses.
 */
export interface RetryPolicy {
  /** 0 means unlimited. */
  readonly maximumAttempts: number;
  readonly initialInterval: number;
  readonly backoffCoefficient: number;
  readonly maximumInterval: number;
}

/** A schedule declared with a workflow version; the schedule feature reads these. */
export interface DeclaredSchedule {
  readonly cron: string;
  readonly timezone: string;
}

/** What a registration says about a version: immutable once stored. */
export interface WorkflowVersionContent {
  readonly taskQueue: string;
  /** SHA-256 (hex) of the input's JSON Schema; the schema itself is in the data plane. */
  readonly inputSchemaDigest: string | null;
  readonly outputSchemaDigest: string | null;
  readonly retry: RetryPolicy | null;
  readonly runTimeoutMs: number | null;
  readonly stepTimeoutMs: number | null;
  readonly schedules: readonly DeclaredSchedule[];
}

/** A registered workflow version. */
export interface WorkflowDefinition extends WorkflowVersionContent {
  readonly projectId: string;
  readonly name: string;
  readonly version: string;
  /** `api`, or `worker` when a worker announced it in development mode. */
  readonly source: 'api' | 'worker';
  readonly registeredBy: string | null;
  readonly registeredAt: Date;
  readonly deprecatedAt: Date | null;
  readonly deprecatedBy: string | null;
}

interface DefinitionRow {
  project_id: string;
  name: string;
  version: string;
  task_queue: string;
  input_schema_digest: string | null;
  output_schema_digest: string | null;
  retry_policy: RetryPolicy | null;
  run_timeout_ms: string | null;
  step_timeout_ms: string | null;
  schedules: DeclaredSchedule[];
  source: 'api' | 'worker';
  registered_by: string | null;
  registered_at: Date;
  deprecated_at: Date | null;
  deprecated_by: string | null;
}

const COLUMNS = `project_id, name, version, task_queue, input_schema_digest, output_schema_digest, retry_policy, run_timeout_ms,
  step_timeout_ms, schedules, source, registered_by, registered_at, deprecated_at, deprecated_by`;

function toDefinition(row: DefinitionRow): WorkflowDefinition {
  return {
    projectId: row.project_id,
    name: row.name,
    version: row.version,
    taskQueue: row.task_queue,
    inputSchemaDigest: row.input_schema_digest,
    outputSchemaDigest: row.output_schema_digest,
    retry: row.retry_policy,
    runTimeoutMs: row.run_timeout_ms === null ? null : Number(row.run_timeout_ms),
    stepTimeoutMs: row.step_timeout_ms === null ? null : Number(row.step_timeout_ms),
    schedules: row.schedules,
    source: row.source,
    registeredBy: row.registered_by,
    registeredAt: row.registered_at,
    deprecatedAt: row.deprecated_at,
    deprecatedBy: row.deprecated_by,
  };
}

/** The content columns, from task_queue to schedules, as query values. */
function contentValues(content: WorkflowVersionContent): unknown[] {
  return [
    content.taskQueue,
    content.inputSchemaDigest,
    content.outputSchemaDigest,
    content.retry === null ? null : JSON.stringify(content.retry),
    content.runTimeoutMs,
    content.stepTimeoutMs,
    JSON.stringify(content.schedules),
  ];
}

/** All SQL about registered workflow versions (`workflow_definitions`). */
@Injectable()
export class WorkflowRegistryRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /** Inserts a version; null when that name@version is registered already. */
  async insert(
    projectId: string,
    name: string,
    version: string,
    content: WorkflowVersionContent,
    source: 'api' | 'worker',
    registeredBy: string | null,
  ): Promise<WorkflowDefinition | null> {
    const result = await this.db.query<DefinitionRow>(
      `INSERT INTO workflow_definitions (project_id, name, version, task_queue, input_schema_digest, output_schema_digest, retry_policy,
                                         run_timeout_ms, step_timeout_ms, schedules, source, registered_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT DO NOTHING
       RETURNING ${COLUMNS}`,
      [projectId, name, version, ...contentValues(content), source, registeredBy],
    );
    const row = result.rows[0];
    return row ? toDefinition(row) : null;
  }

  /**
   * Registers the versions a worker announced that are not registered yet (development mode), with
   * the settings it announced. Returns how many were new.
   */
  async insertAnnounced(
    projectId: string,
    workflows: ReadonlyArray<{ name: string; version: string; content: WorkflowVersionContent }>,
  ): Promise<number> {
    let inserted = 0;
    for (const w of workflows) {
      const result = await this.db.query(
        `INSERT INTO workflow_definitions (project_id, name, version, task_queue, input_schema_digest, output_schema_digest, retry_policy,
                                           run_timeout_ms, step_timeout_ms, schedules, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'worker')
         ON CONFLICT DO NOTHING`,
        [projectId, w.name, w.version, ...contentValues(w.content)],
      );
      inserted += result.rowCount ?? 0;
    }
    return inserted;
  }

  /**
   * Development mode: replaces the content of a version a worker registered (never one registered
   * through the API) with what a worker announces now. Its task queue stays. True when it changed.
   */
  async updateAnnounced(projectId: string, name: string, version: string, content: WorkflowVersionContent): Promise<boolean> {
    const result = await this.db.query(
      `UPDATE workflow_definitions
          SET input_schema_digest = $5, output_schema_digest = $6, retry_policy = $7, run_timeout_ms = $8, step_timeout_ms = $9,
              schedules = $10
        WHERE project_id = $1 AND name = $2 AND version = $3 AND source = 'worker' AND task_queue = $4`,
      [projectId, name, version, ...contentValues(content)],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async find(projectId: string, name: string, version: string, q: Queryable = this.db): Promise<WorkflowDefinition | null> {
    const result = await q.query<DefinitionRow>(
      `SELECT ${COLUMNS} FROM workflow_definitions WHERE project_id = $1 AND name = $2 AND version = $3`,
      [projectId, name, version],
    );
    const row = result.rows[0];
    return row ? toDefinition(row) : null;
  }

  /** The registered versions among these name@version pairs. */
  async findMany(projectId: string, refs: ReadonlyArray<{ name: string; version: string }>): Promise<WorkflowDefinition[]> {
    if (refs.length === 0) return [];
    const result = await this.db.query<DefinitionRow>(
      `SELECT ${COLUMNS} FROM workflow_definitions
       WHERE project_id = $1 AND (name, version) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
      [projectId, refs.map((r) => r.name), refs.map((r) => r.version)],
    );
    return result.rows.map(toDefinition);
  }

  /** Versions of a project, by name then newest registration first; optionally one name, optionally without deprecated ones. */
  async list(projectId: string, options: { name?: string; includeDeprecated: boolean }): Promise<WorkflowDefinition[]> {
    const where = ['project_id = $1'];
    const values: unknown[] = [projectId];
    if (options.name !== undefined) {
      values.push(options.name);
      where.push(`name = $${values.length}`);
    }
    if (!options.includeDeprecated) where.push('deprecated_at IS NULL');
    const result = await this.db.query<DefinitionRow>(
      `SELECT ${COLUMNS} FROM workflow_definitions WHERE ${where.join(' AND ')} ORDER BY name, registered_at DESC, version DESC`,
      values,
    );
    return result.rows.map(toDefinition);
  }

  /** Marks a version deprecated (the first deprecation's time and actor are kept). */
  async deprecate(projectId: string, name: string, version: string, by: string | null): Promise<WorkflowDefinition | null> {
    const result = await this.db.query<DefinitionRow>(
      `UPDATE workflow_definitions SET deprecated_at = coalesce(deprecated_at, now()),
              deprecated_by = CASE WHEN deprecated_at IS NULL THEN $4 ELSE deprecated_by END
       WHERE project_id = $1 AND name = $2 AND version = $3
       RETURNING ${COLUMNS}`,
      [projectId, name, version, by],
    );
    const row = result.rows[0];
    return row ? toDefinition(row) : null;
  }

  /** Whether any version of the workflow is registered in the project. */
  async nameExists(projectId: string, name: string): Promise<boolean> {
    const result = await this.db.query('SELECT 1 FROM workflow_definitions WHERE project_id = $1 AND name = $2 LIMIT 1', [projectId, name]);
    return (result.rowCount ?? 0) > 0;
  }

  /** The project a data plane belongs to, or null. */
  async projectOf(dataPlaneId: string): Promise<string | null> {
    const result = await this.db.query<{ project_id: string }>('SELECT project_id FROM data_planes WHERE id = $1', [dataPlaneId]);
    return result.rows[0]?.project_id ?? null;
  }
}
