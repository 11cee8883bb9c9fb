import { CairnError, ErrorCodes, type AuditPublicKey, type Logger } from '@cairn/common';
import type { DatabaseConfig, MigrationConfig } from './config.js';

import { AuditRepository } from './audit/audit.repository.js';
import { DataPlaneRepository } from './tenancy/data-plane.repository.js';
import { Database } from './db/database.js';
import { LimitsRepository, type OrganizationLimits } from './metering/limits.repository.js';
import { MigrationRepository, type MigrationOutcome } from './db/migration.repository.js';
import { TenantRepository } from './tenancy/tenant.repository.js';
import { AccessService, type CreatedApiKey } from './tenancy/access.service.js';
import { AuditRetentionService, type PruneOutcome } from './audit/audit-retention.service.js';
import { AuditService } from './audit/audit.service.js';
import { DataPlaneService, type CreatedDataPlane } from './tenancy/data-plane.service.js';
import { MigrationService } from './db/migration.service.js';

/** The database settings of an admin command; a migration URL and a service role when the install separates roles. */
type AdminConfig = DatabaseConfig & Partial<Pick<MigrationConfig, 'migrationDatabaseUrl' | 'serviceRole'>>;

/**
 * Applies migrations with the owner's URL and grants the service role (the `migrate` command);
 * returns what was applied.
 */
export async function migrate(config: AdminConfig, logger: Logger): Promise<MigrationOutcome> {
  const db = new Database(config.migrationDatabaseUrl ?? config.databaseUrl, 2, logger);
  try {
    const service = new MigrationService(new MigrationRepository(db), logger);
    const outcome = await service.migrate();
    if (config.serviceRole !== undefined) await service.grantServiceRole(config.serviceRole);
    return outcome;
  } finally {
    await db.close();
  }
}

/**
 * Runs `fn` on a migrated database: migrates with the owner's URL first when one is given apart,
 * else applies what is pending if the role may.
 */
async function withDatabase<T>(config: AdminConfig, logger: Logger, fn: (db: Database) => Promise<T>): Promise<T> {
  if (config.migrationDatabaseUrl !== undefined && config.migrationDatabaseUrl !== config.databaseUrl) await migrate(config, logger);
  const db = new Database(config.databaseUrl, 2, logger);
  try {
    await new MigrationService(new MigrationRepository(db), logger).ensureMigrated();
    return await fn(db);
  } finally {
    await db.close();
  }
}

/**
 * Registers a data plane in `organization/project` (the `data-planes create` command), creating
 * the organisation and project when missing; applies migrations first so it works on a fresh
 * database.
 */
export async function createDataPlane(
  config: AdminConfig,
  logger: Logger,
  input: { name: string; id?: string; token?: string; organization?: string; project?: string },
): Promise<CreatedDataPlane> {
  return withDatabase(config, logger, async (db) => {
    const { organization = 'default', project: projectName = 'default', ...rest } = input;
    const audit = new AuditService(new AuditRepository(db), db, logger);
    const project = await new AccessService(new TenantRepository(db), db, logger, audit).ensureProject(organization, projectName);
    return new DataPlaneService(new DataPlaneRepository(db), null, null, logger, audit).create(project.id, rest, { type: 'system' });
  });
}

/**
 * Creates an organisation with its first project and an organisation-wide admin key (the
 * `organizations create` command, for the operator of a hosted control plane). A name that exists
 * is refused (CAIRN-1140): the command never hands out a key inside an existing organisation.
 */
export async function createOrganization(
  config: AdminConfig,
  logger: Logger,
  input: { organization: string; project: string },
): Promise<{ organizationId: string; projectId: string; secret: string; keyId: string }> {
  return withDatabase(config, logger, (db) => {
    const audit = new AuditService(new AuditRepository(db), db, logger);
    return new AccessService(new TenantRepository(db), db, logger, audit).createOrganization(input);
  });
}

/**
 * Mints an API key inside an existing organisation on purpose (the `api-keys create` command, for
 * the operator): organisation-wide or for one project, audited in every project it can act in.
 */
export async function createApiKey(
  config: AdminConfig,
  logger: Logger,
  input: { organization: string; project: string | null; role: string; name: string },
): Promise<CreatedApiKey> {
  return withDatabase(config, logger, (db) => {
    const audit = new AuditService(new AuditRepository(db), db, logger);
    return new AccessService(new TenantRepository(db), db, logger, audit).createKeyByCommand(input);
  });
}

/** The flags of `limits set`, each an organisation limit column. */
export const LIMIT_FLAGS = {
  'max-slots-per-stream': 'maxSlotsPerStream',
  'max-streams-per-data-plane': 'maxStreamsPerDataPlane',
  'max-waits-per-data-plane': 'maxWaitsPerDataPlane',
  'requests-per-second-per-key': 'requestsPerSecondPerKey',
  'requests-per-second-per-data-plane': 'requestsPerSecondPerDataPlane',
  'requests-per-second': 'requestsPerSecond',
} as const satisfies Record<string, keyof OrganizationLimits>;

/**
 * Reads, and with `changes` sets, an organisation's limits (the `limits show` / `limits set`
 * commands, for the operator): a number sets a limit, null returns it to the configured default,
 * a limit not named keeps its value. The REST API has no such route: a tenant cannot raise them.
 */
export async function organizationLimits(
  config: AdminConfig,
  logger: Logger,
  organization: string,
  changes: Partial<Record<keyof OrganizationLimits, number | null>> = {},
): Promise<OrganizationLimits> {
  return withDatabase(config, logger, async (db) => {
    const repository = new LimitsRepository(db);
    const organizationId = await repository.organizationId(organization);
    if (organizationId === null) {
      throw new CairnError(
        ErrorCodes.NOT_FOUND,
        `no organisation named ${organization}: check the name (organisations are listed in the organizations table)`,
      );
    }
    const current = await repository.forOrganization(organizationId);
    if (Object.keys(changes).length === 0) return current;
    const audit = new AuditService(new AuditRepository(db), db, logger);
    const tenants = new TenantRepository(db);
    return db.transaction(async (tx) => {
      const updated = await repository.set(organizationId, { ...current, ...changes }, tx);
      // Each project's auditors see that the operator changed what their organisation may use.
      const previous = Object.fromEntries(
        Object.entries(current).map(([field, value]) => [`previous${field[0]!.toUpperCase()}${field.slice(1)}`, value as number | null]),
      );
      for (const project of await tenants.listProjects(organizationId, null, tx)) {
        await audit.record(tx, {
          projectId: project.id,
          actor: { type: 'system' },
          action: 'limits.updated',
          target: { type: 'organization', id: organizationId },
          metadata: { ...updated, ...previous, command: 'limits set' },
        });
      }
      return updated;
    });
  });
}

/**
 * Prunes the audit log (the `audit prune` command, for the operator): every project's entries older
 * than `before`, each up to the newest checkpoint signed with one of `keys` (docs/audit.md,
 * "Retention"). Connects as the owner (CAIRN_CP_MIGRATION_DATABASE_URL, else CAIRN_CP_DATABASE_URL):
 * the service role may not prune, and is refused with CAIRN-1156.
 */
export async function pruneAuditLog(
  config: AdminConfig,
  logger: Logger,
  input: { before: Date; keys: readonly AuditPublicKey[] },
): Promise<PruneOutcome[]> {
  return withDatabase({ ...config, databaseUrl: config.migrationDatabaseUrl ?? config.databaseUrl }, logger, (db) => {
    const repository = new AuditRepository(db);
    const audit = new AuditService(repository, db, logger);
    return new AuditRetentionService(repository, audit, db, logger).prune(input.before, input.keys);
  });
}
