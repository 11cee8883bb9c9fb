import { Inject, Injectable } from '@nestjs/common';
import pg from 'pg';
import { CairnError, ErrorCodes } from '@cairn/common';
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
      // A migration may rewrite a large table: the serving pool's statement timeout does not apply.
      await tx.query('SET LOCAL statement_timeout = 0');
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

  /**
   * Grants `role` what the serving control plane needs, and no more on the audit tables: SELECT and
   * DML on every table of the schema, except that on `audit_log` it may only SELECT and INSERT the
   * columns an entry is written with (not its position, hash or time), on `audit_checkpoints` only
   * SELECT and INSERT, on `audit_chain_heads`, `audit_prune_anchors` and `schema_migrations` only SELECT;
   * EXECUTE on `cairn_audit_seal` (never on `cairn_audit_prune`). Run after every migration (new tables get their grants); idempotent.
   * Refuses a role that would make the boundary void: a superuser, the owner, or a member of it.
   */
  async grantServiceRole(role: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const found = await tx.query<{
        superuser: boolean;
        owner: boolean;
        me: string;
        schema: string;
        database: string;
        connect: boolean;
        usage: boolean;
      }>(
        `SELECT r.rolsuper AS superuser, pg_has_role(r.oid, c.relowner, 'USAGE') AS owner,
                current_user AS me, current_schema() AS schema, current_database() AS database,
                has_database_privilege(r.oid, current_database(), 'CONNECT') AS connect,
                has_schema_privilege(r.oid, current_schema(), 'USAGE') AS usage
           FROM pg_roles r, pg_class c WHERE r.rolname = $1 AND c.oid = 'audit_log'::regclass`,
        [role],
      );
      const info = found.rows[0];
      if (!info) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `CAIRN_CP_SERVICE_ROLE names the role ${role}, which does not exist: create it first (CREATE ROLE ${role} LOGIN PASSWORD '…'), then migrate again`,
        );
      }
      if (info.superuser || info.owner) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `CAIRN_CP_SERVICE_ROLE names the role ${role}, which ${info.superuser ? 'is a superuser' : `owns the schema (or is a member of its owner, ${info.me})`}: ` +
            'it could change or delete audit entries. Use a separate login role that owns nothing (docs/audit.md)',
        );
      }
      const r = pg.escapeIdentifier(role);
      const schema = pg.escapeIdentifier(info.schema);
      // CONNECT and USAGE only when missing: the owner of the tables need not own the database or
      // the schema (a managed database), and PUBLIC often has them already.
      for (const statement of [
        ...(info.connect ? [] : [`GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(info.database)} TO ${r}`]),
        ...(info.usage ? [] : [`GRANT USAGE ON SCHEMA ${schema} TO ${r}`]),
        `REVOKE ALL ON ALL TABLES IN SCHEMA ${schema} FROM ${r}`,
        `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${r}`,
        `REVOKE INSERT, UPDATE, DELETE ON audit_log, audit_chain_heads, audit_checkpoints, audit_prune_anchors, schema_migrations FROM ${r}`,
        `GRANT INSERT (organization_id, project_id, actor_type, actor_id, action, target_type, target_id, metadata) ON audit_log TO ${r}`,
        `GRANT INSERT ON audit_checkpoints TO ${r}`,
        `REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${schema} FROM ${r}`,
        `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${schema} TO ${r}`,
        `GRANT EXECUTE ON FUNCTION cairn_audit_seal(uuid, bigint[], bigint[], text[]) TO ${r}`,
      ]) {
        await tx.query(statement);
      }
    });
  }
}
