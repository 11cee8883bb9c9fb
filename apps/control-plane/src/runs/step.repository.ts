import { Inject, Injectable } from '@nestjs/common';
import type { JournalHeadInput, Step, StepKindName, StepReportInput, StepStatusName } from '../domain.js';
import { Database } from '../db/database.js';

interface StepRow {
  run_id: string;
  position: string;
  attempt: string;
  kind: StepKindName;
  name: string;
  key_digest: string | null;
  status: StepStatusName;
  error_code: number | null;
  retryable: boolean;
  error_ref: string | null;
  started_at: Date | null;
  ended_at: Date | null;
  due_at: Date | null;
  output_size: string | null;
  epoch: string;
  input_tokens: string | null;
  output_tokens: string | null;
  provider: string | null;
  model: string | null;
  copied: boolean;
}

/** All SQL about the step timeline (`run_steps`). */
@Injectable()
export class StepRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /**
   * Upserts step reports in one statement. A report applies only to a run of this data plane and
   * an epoch not above the run's current one (history from earlier leases is welcome); a completed
   * attempt never regresses, and an older epoch never overwrites a newer one. Returns the run IDs
   * that are not runs of this data plane.
   */
  async upsertReports(dataPlaneId: string, reports: readonly StepReportInput[]): Promise<string[]> {
    if (reports.length === 0) return [];
    const col = <T>(pick: (r: StepReportInput) => T): T[] => reports.map(pick);
    const result = await this.db.prepared<{ run_id: string }>(
      'cp_upsert_steps',
      `WITH input AS (
         SELECT * FROM unnest($2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[],
                              $10::int[], $11::boolean[], $12::uuid[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[],
                              $16::bigint[], $17::bigint[], $18::bigint[], $19::text[], $20::text[])
           AS t(run_id, epoch, position, attempt, kind, name, key_digest, status, error_code, retryable, error_ref, started_at,
                ended_at, due_at, output_size, input_tokens, output_tokens, provider, model)
       ), known AS (
         -- A terminated or timed-out run takes no report of an attempt that did not end before it ended.
         -- A forked run's entries below its fork position were copied from its source (the data plane
         -- copies them at the first dispatch and reports them like any entry): they are marked, and
         -- the metering triggers leave them out.
         SELECT i.*, (r.forked_from_run_id IS NOT NULL AND i.position < r.fork_position) AS copied
         FROM input i JOIN runs r ON r.id = i.run_id AND r.data_plane_id = $1 AND i.epoch <= r.epoch
           AND (r.status NOT IN ('terminated', 'timed_out') OR i.ended_at <= r.ended_at)
       ), upserted AS (
         INSERT INTO run_steps (run_id, position, attempt, kind, name, key_digest, status, error_code, retryable, error_ref,
                                started_at, ended_at, due_at, output_size, epoch, input_tokens, output_tokens, provider, model, copied)
         SELECT run_id, position, attempt, kind, name, key_digest, status, error_code, retryable, error_ref, started_at, ended_at,
                due_at, output_size, epoch, input_tokens, output_tokens, provider, model, copied
         FROM known
         ON CONFLICT (run_id, position, attempt) DO UPDATE SET
           kind = EXCLUDED.kind, name = EXCLUDED.name, key_digest = EXCLUDED.key_digest, status = EXCLUDED.status,
           error_code = EXCLUDED.error_code, retryable = EXCLUDED.retryable, error_ref = EXCLUDED.error_ref,
           started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, due_at = EXCLUDED.due_at,
           output_size = EXCLUDED.output_size, epoch = EXCLUDED.epoch, input_tokens = EXCLUDED.input_tokens,
           output_tokens = EXCLUDED.output_tokens, provider = EXCLUDED.provider, model = EXCLUDED.model, updated_at = now()
         WHERE run_steps.status <> 'completed' AND run_steps.epoch <= EXCLUDED.epoch
       )
       SELECT DISTINCT i.run_id FROM input i
       WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = i.run_id AND r.data_plane_id = $1)`,
      [
        dataPlaneId,
        col((r) => r.runId),
        col((r) => r.epoch),
        col((r) => r.position),
        col((r) => r.attempt),
        col((r) => r.kind),
        col((r) => r.name),
        col((r) => r.keyDigest),
        col((r) => r.status),
        col((r) => r.errorCode),
        col((r) => r.retryable),
        col((r) => r.errorRef),
        col((r) => r.startedAt),
        col((r) => r.endedAt),
        col((r) => r.dueAt),
        col((r) => r.outputSize),
        col((r) => r.inputTokens),
        col((r) => r.outputTokens),
        col((r) => r.provider),
        col((r) => r.model),
      ],
    );
    return result.rows.map((r) => r.run_id);
  }

  /**
   * Records journal heads of runs of this data plane; a head replaces the stored one only when it
   * covers more entries. Heads of runs that are not this data plane's are ignored.
   */
  async upsertJournalHeads(dataPlaneId: string, heads: readonly JournalHeadInput[]): Promise<void> {
    if (heads.length === 0) return;
    await this.db.query(
      `INSERT INTO run_journal_heads (run_id, entries, head, epoch)
       SELECT h.run_id, h.entries, h.head, h.epoch
         FROM unnest($2::uuid[], $3::int[], $4::text[], $5::int[]) AS h(run_id, entries, head, epoch)
         JOIN runs r ON r.id = h.run_id AND r.data_plane_id = $1
       ON CONFLICT (run_id) DO UPDATE SET entries = EXCLUDED.entries, head = EXCLUDED.head, epoch = EXCLUDED.epoch, reported_at = now()
         WHERE EXCLUDED.entries > run_journal_heads.entries`,
      [dataPlaneId, heads.map((h) => h.runId), heads.map((h) => h.entries), heads.map((h) => h.head), heads.map((h) => h.epoch)],
    );
  }

  /** The journal head recorded for a run, or null. */
  async journalHead(runId: string): Promise<{ entries: number; head: string } | null> {
    const r = await this.db.query<{ entries: number; head: string }>('SELECT entries, head FROM run_journal_heads WHERE run_id = $1', [
      runId,
    ]);
    return r.rows[0] ?? null;
  }

  /** A run's timeline by position, then attempt. */
  async forRun(runId: string): Promise<Step[]> {
    const result = await this.db.query<StepRow>(
      `SELECT run_id, position, attempt, kind, name, key_digest, status, error_code, retryable, error_ref, started_at, ended_at,
              due_at, output_size, epoch, input_tokens, output_tokens, provider, model, copied
       FROM run_steps WHERE run_id = $1 ORDER BY position, attempt`,
      [runId],
    );
    return result.rows.map((r) => ({
      runId: r.run_id,
      position: Number(r.position),
      attempt: Number(r.attempt),
      kind: r.kind,
      name: r.name,
      keyDigest: r.key_digest,
      status: r.status,
      errorCode: r.error_code,
      retryable: r.retryable,
      errorRef: r.error_ref,
      startedAt: r.started_at,
      endedAt: r.ended_at,
      dueAt: r.due_at,
      outputSize: r.output_size === null ? null : Number(r.output_size),
      epoch: Number(r.epoch),
      inputTokens: r.input_tokens === null ? null : Number(r.input_tokens),
      outputTokens: r.output_tokens === null ? null : Number(r.output_tokens),
      provider: r.provider,
      model: r.model,
      copied: r.copied,
    }));
  }
}
