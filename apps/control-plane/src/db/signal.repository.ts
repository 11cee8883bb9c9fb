import { Injectable } from '@nestjs/common';
import type { Queryable } from './database.js';

/** All SQL about signal notices (that a signal arrived; its body stays in the data plane). */
@Injectable()
export class SignalRepository {
  /** Records a notice once per signal ID; returns whether it was new. */
  async insert(tx: Queryable, runId: string, signalId: string, signalName: string): Promise<boolean> {
    const result = await tx.query(
      `INSERT INTO signal_notices (run_id, signal_id, signal_name) VALUES ($1, $2, $3) ON CONFLICT (run_id, signal_id) DO NOTHING`,
      [runId, signalId, signalName],
    );
    return (result.rowCount ?? 0) > 0;
  }

  /** How many notices of that name the run has received. */
  async count(tx: Queryable, runId: string, signalName: string): Promise<number> {
    const result = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM signal_notices WHERE run_id = $1 AND signal_name = $2', [
      runId,
      signalName,
    ]);
    return result.rows[0]?.n ?? 0;
  }
}
