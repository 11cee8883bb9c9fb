import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, type Logger } from '@cairn/common';
import { MigrationRepository, type MigrationOutcome } from './migration.repository.js';
import { migrations } from './migrations.js';
import { LOGGER } from '../tokens.js';

@Injectable()
export class MigrationService {
  constructor(
    @Inject(MigrationRepository) private readonly repository: MigrationRepository,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * At start-up: nothing to do when every migration is applied (so a service role that may not
   * change the schema starts); otherwise applies them, or — when this role may not — fails saying
   * to run `control-plane migrate` with the owner role.
   */
  async ensureMigrated(): Promise<MigrationOutcome> {
    const applied = new Set(await this.repository.appliedVersions().catch(() => [] as number[]));
    const pending = migrations.filter((m) => !applied.has(m.version)).map((m) => m.version);
    if (pending.length === 0) {
      const known = new Set(migrations.map((m) => m.version));
      const unknown = [...applied].filter((v) => !known.has(v)).sort((a, b) => a - b);
      if (unknown.length > 0)
        this.logger.warn({ unknown }, 'the database has migrations this build does not know (a newer version ran); continuing');
      return { applied: [], unknown };
    }
    try {
      return await this.migrate();
    } catch (error) {
      if ((error as { code?: unknown }).code !== '42501') throw error;
      throw new CairnError(
        ErrorCodes.DATABASE_NOT_MIGRATED,
        `the control plane's database needs migrations ${pending.join(', ')}, and its role may not change the schema: ` +
          'run `control-plane migrate` with the owner role (CAIRN_CP_MIGRATION_DATABASE_URL, and CAIRN_CP_SERVICE_ROLE naming this role), then start again',
        { cause: error },
      );
    }
  }

  /** Grants the service role its privileges (after migrations). */
  async grantServiceRole(role: string): Promise<void> {
    await this.repository.grantServiceRole(role);
    this.logger.info({ role }, 'service role granted');
  }

  /** Applies pending migrations; safe with several replicas starting at once. */
  async migrate(): Promise<MigrationOutcome> {
    const outcome = await this.repository.apply(migrations);
    if (outcome.applied.length > 0) this.logger.info({ applied: outcome.applied }, 'migrations applied');
    if (outcome.unknown.length > 0) {
      this.logger.warn(
        { unknown: outcome.unknown },
        'the database has migrations this build does not know (a newer version ran); continuing',
      );
    }
    return outcome;
  }
}
