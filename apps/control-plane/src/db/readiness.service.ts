import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes } from '@cairn/common';
import { MigrationRepository } from './migration.repository.js';

/** Whether this replica should receive traffic. */
@Injectable()
export class ReadinessService {
  migrated = false;
  grpcListening = false;
  shuttingDown = false;

  constructor(@Inject(MigrationRepository) private readonly database: MigrationRepository) {}

  /** Throws UNAVAILABLE until the schema is in place (the API is served from the start for probes). */
  assertServing(): void {
    if (!this.migrated) throw new CairnError(ErrorCodes.UNAVAILABLE, 'control plane starting: retry in a moment');
  }

  /** Throws UNAVAILABLE unless the database answers, migrations are applied and gRPC listens. */
  async check(): Promise<void> {
    if (this.shuttingDown) throw new CairnError(ErrorCodes.UNAVAILABLE, 'control plane shutting down');
    if (!this.migrated || !this.grpcListening) throw new CairnError(ErrorCodes.UNAVAILABLE, 'control plane starting');
    try {
      await this.database.ping();
    } catch {
      throw new CairnError(ErrorCodes.UNAVAILABLE, 'database unreachable: check CAIRN_CP_DATABASE_URL and the database server');
    }
  }
}
