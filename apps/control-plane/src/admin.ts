import type { Logger } from '@cairn/common';
import type { DatabaseConfig } from './config.js';
import { DataPlaneRepository } from './db/data-plane.repository.js';
import { Database } from './db/database.js';
import { MigrationRepository, type MigrationOutcome } from './db/migration.repository.js';
import { DataPlaneService, type CreatedDataPlane } from './services/data-plane.service.js';
import { MigrationService } from './services/migration.service.js';

/** Applies migrations and returns (the `migrate` command). */
export async function migrate(config: DatabaseConfig, logger: Logger): Promise<MigrationOutcome> {
  const db = new Database(config.databaseUrl, 2, logger);
  try {
    return await new MigrationService(new MigrationRepository(db), logger).migrate();
  } finally {
    await db.close();
  }
}

/**
 * Registers a data plane (the `data-planes create` command); applies migrations first so it works
 * on a fresh database.
 */
export async function createDataPlane(
  config: DatabaseConfig,
  logger: Logger,
  input: { name: string; id?: string; token?: string },
): Promise<CreatedDataPlane> {
  const db = new Database(config.databaseUrl, 2, logger);
  try {
    await new MigrationService(new MigrationRepository(db), logger).migrate();
    return await new DataPlaneService(new DataPlaneRepository(db)).create(input);
  } finally {
    await db.close();
  }
}
