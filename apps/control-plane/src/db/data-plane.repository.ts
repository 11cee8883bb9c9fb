import { Inject, Injectable } from '@nestjs/common';
import { Database } from './database.js';

export interface DataPlaneRecord {
  readonly id: string;
  readonly projectId: string;
  readonly name: string;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

interface DataPlaneRow {
  id: string;
  project_id: string;
  name: string;
  created_at: Date;
  revoked_at: Date | null;
}

const COLUMNS = 'id, project_id, name, created_at, revoked_at';
const toRecord = (row: DataPlaneRow): DataPlaneRecord => ({
  id: row.id,
  projectId: row.project_id,
  name: row.name,
  createdAt: row.created_at,
  revokedAt: row.revoked_at,
});

/** All SQL about registered data planes and their credentials (stored as SHA-256 only). */
@Injectable()
export class DataPlaneRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /**
   * Creates the data plane in a project, or for an existing ID in the same project sets its name
   * and credential and un-revokes it. Null when the ID belongs to another project.
   */
  async upsert(
    id: string,
    projectId: string,
    name: string,
    tokenSha256: string,
  ): Promise<{ record: DataPlaneRecord; created: boolean } | null> {
    const result = await this.db.query<DataPlaneRow & { created: boolean }>(
      `INSERT INTO data_planes (id, project_id, name, token_sha256) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, token_sha256 = EXCLUDED.token_sha256, revoked_at = NULL, updated_at = now()
         WHERE data_planes.project_id = EXCLUDED.project_id
       RETURNING ${COLUMNS}, (xmax = 0) AS created`,
      [id, projectId, name, tokenSha256],
    );
    const row = result.rows[0];
    return row ? { record: toRecord(row), created: row.created } : null;
  }

  /** The active (not revoked) data plane holding a credential, by the credential's SHA-256. */
  async findActiveByTokenSha256(tokenSha256: string): Promise<DataPlaneRecord | null> {
    const result = await this.db.query<DataPlaneRow>(`SELECT ${COLUMNS} FROM data_planes WHERE token_sha256 = $1 AND revoked_at IS NULL`, [
      tokenSha256,
    ]);
    const row = result.rows[0];
    return row ? toRecord(row) : null;
  }

  async find(projectId: string, id: string): Promise<DataPlaneRecord | null> {
    const result = await this.db.query<DataPlaneRow>(`SELECT ${COLUMNS} FROM data_planes WHERE project_id = $1 AND id = $2`, [
      projectId,
      id,
    ]);
    const row = result.rows[0];
    return row ? toRecord(row) : null;
  }

  async list(projectId: string): Promise<DataPlaneRecord[]> {
    const result = await this.db.query<DataPlaneRow>(
      `SELECT ${COLUMNS} FROM data_planes WHERE project_id = $1 ORDER BY created_at DESC, id DESC`,
      [projectId],
    );
    return result.rows.map(toRecord);
  }

  /** Which of these data planes are still active (the periodic check of open streams). */
  async active(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const result = await this.db.query<{ id: string }>('SELECT id FROM data_planes WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL', [
      ids,
    ]);
    return new Set(result.rows.map((r) => r.id));
  }

  async revoke(projectId: string, id: string): Promise<boolean> {
    const result = await this.db.query(
      'UPDATE data_planes SET revoked_at = now(), updated_at = now() WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL',
      [projectId, id],
    );
    return (result.rowCount ?? 0) > 0;
  }
}
