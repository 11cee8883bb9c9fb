import { Inject, Injectable } from '@nestjs/common';
import { Database } from '../db/database.js';

/** The SQL behind the scrape-time gauges. */
@Injectable()
export class MetricsRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /**
   * Queued and running runs over all data planes. Both statuses have partial indexes
   * (`runs_claim`, `runs_lease_expiry`), so this reads two small indexes, not the table.
   */
  async runCounts(): Promise<{ queued: number; running: number }> {
    const result = await this.db.query<{ queued: string; running: string }>(
      `SELECT (SELECT count(*) FROM runs WHERE status = 'queued') AS queued,
              (SELECT count(*) FROM runs WHERE status = 'running') AS running`,
    );
    const row = result.rows[0];
    return { queued: Number(row?.queued ?? 0), running: Number(row?.running ?? 0) };
  }
}
