import { Inject, Injectable } from '@nestjs/common';
import { Database } from './database.js';
import type { Migration } from './migrations.js';

// Any constant shared by every replica: they take this lock before looking at the schema.
const MIGRATION_LOCK = 0x63616972; // 'cair'

export interface MigrationOutcome {
  /** Versions applied by this call. */
  readonly applied: number[];
  /** Versions in the database that this build does not know (a newer replica ran them). */
  readonly unknown: number[];
}

@Injectable()
export class MigrationRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /**
   * Applies the migrations not yet recorded, in one transaction under an advisory lock, so
   * replicas starting at once apply each exactly once and never see a half-migrated schema.
   */
  apply(migrations: readonly Migration[]): Promise<MigrationOutcome> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await tx.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version integer PRIMARY KEY,
           name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const done = await tx.query<{ version: number }>('SELECT version FROM schema_migrations');
      const have = new Set(done.rows.map((r) => r.version));
      const known = new Set(migrations.map((m) => m.version));
      const applied: number[] = [];
      for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
        if (have.has(migration.version)) continue;
        await tx.query(migration.sql);
        await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
        applied.push(migration.version);
      }
      return { applied, unknown: [...have].filter((v) => !known.has(v)).sort((a, b) => a - b) };
    });
  }

  /** The versions recorded as applied (empty when the table does not exist yet). */
  async appliedVersions(): Promise<number[]> {
    const exists = await this.db.query<{ present: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
    if (!exists.rows[0]?.present) return [];
    const result = await this.db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    return result.rows.map((r) => r.version);
  }

  /** Whether the database answers. */
  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }
}
