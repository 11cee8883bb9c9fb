import { Injectable } from '@nestjs/common';
import type { Queryable } from '../db/database.js';

/** All SQL about signal notices (that a signal arrived; its body stays in the data plane). */
@Injectable()
export class SignalRepository {
  /**
   * Records a notice once per signal ID; returns whether it was new. A notice carries the signal's
   * name (when code declared it), its per-run keyed digest (from current gateways), or both.
   */
  async insert(tx: Queryable, runId: string, signalId: string, signalName: string | null, signalDigest: string | null): Promise<boolean> {
    const result = await tx.query(
      `INSERT INTO signal_notices (run_id, signal_id, signal_name, signal_digest) VALUES ($1, $2, $3, $4)
       ON CONFLICT (run_id, signal_id) DO NOTHING`,
      [runId, signalId, signalName, signalDigest],
    );
    return (result.rowCount ?? 0) > 0;
  }

  /**
   * Records a notice for each of the signal IDs the run does not have one for yet, under the given
   * name and digest: signals a worker consumed, of which the control plane may never have been
   * told (the gateway stored one and its SignalRun failed). Returns how many were new.
   */
  async insertMissing(
    tx: Queryable,
    runId: string,
    signalIds: readonly string[],
    signalName: string | null,
    signalDigest: string | null,
  ): Promise<number> {
    if (signalIds.length === 0) return 0;
    const result = await tx.query(
      `INSERT INTO signal_notices (run_id, signal_id, signal_name, signal_digest)
       SELECT $1, id, $3, $4 FROM unnest($2::uuid[]) AS id
       ON CONFLICT (run_id, signal_id) DO NOTHING`,
      [runId, signalIds, signalName, signalDigest],
    );
    return result.rowCount ?? 0;
  }

  /** How many notices the run has received that match the signal it waits for, by name or by digest. */
  async count(tx: Queryable, runId: string, signalName: string | null, signalDigest: string | null): Promise<number> {
    const result = await tx.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM signal_notices WHERE run_id = $1 AND (signal_name = $2 OR signal_digest = $3)',
      [runId, signalName, signalDigest],
    );
    return result.rows[0]?.n ?? 0;
  }
}
