import { Inject, Injectable } from '@nestjs/common';
import { Database } from './database.js';

export interface DataPlaneRecord {
  readonly id: string;
  readonly name: string;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

/** All SQL about registered data planes and their credentials (stored as SHA-256 only). */
@Injectable()
export class DataPlaneRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /** Creates the data plane, or for an existing ID sets its name and token and un-revokes it. */
  async upsert(id: string, name: string, tokenSha256: string): Promise<{ record: DataPlaneRecord; created: boolean }> {
    const result = await this.db.query<{ id: string; name: string; created_at: Date; revoked_at: Date | null; created: boolean }>(
      `INSERT INTO data_planes (id, name, token_sha256) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, token_sha256 = EXCLUDED.token_sha256, revoked_at = NULL, updated_at = now()
       RETURNING id, name, created_at, revoked_at, (xmax = 0) AS created`,
      [id, name, tokenSha256],
    );
    const row = result.rows[0]!;
    return { record: { id: row.id, name: row.name, createdAt: row.created_at, revokedAt: row.revoked_at }, created: row.created };
  }

  /** The active (not revoked) data plane holding a token, by the token's SHA-256. */
  async findActiveByTokenSha256(tokenSha256: string): Promise<DataPlaneRecord | null> {
    const result = await this.db.query<{ id: string; name: string; created_at: Date; revoked_at: Date | null }>(
      'SELECT id, name, created_at, revoked_at FROM data_planes WHERE token_sha256 = $1 AND revoked_at IS NULL',
      [tokenSha256],
    );
    const row = result.rows[0];
    return row ? { id: row.id, name: row.name, createdAt: row.created_at, revokedAt: row.revoked_at } : null;
  }

  async revoke(id: string): Promise<boolean> {
    const result = await this.db.query(
      'UPDATE data_planes SET revoked_at = now(), updated_at = now() WHERE id = $1 AND revoked_at IS NULL',
      [id],
    );
    return (result.rowCount ?? 0) > 0;
  }
}
