import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from '@cairn/common';
import { MigrationRepository, type MigrationOutcome } from '../db/migration.repository.js';
import { migrations } from '../db/migrations.js';
import { LOGGER } from '../tokens.js';

@Injectable()
export class MigrationService {
  constructor(
    @Inject(MigrationRepository) private readonly repository: MigrationRepository,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

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
