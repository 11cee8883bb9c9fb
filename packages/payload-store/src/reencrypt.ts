import type pg from 'pg';
import type { KeyRing } from './crypto.js';
import { type Sealed } from './crypto.js';

/**
 * Every sealed column of the payload store: where its key ID is, how a row is identified and the
 * AAD it was sealed under. The re-encryption job and the key usage check walk this list, so a new
 * sealed column must be added here (the store test compares it with the schema).
 */
const SEALED: ReadonlyArray<{
  readonly table: string;
  readonly keyColumn: string;
  readonly blobColumn: string;
  /** Primary key columns, in order (keyset pagination). */
  readonly pk: readonly string[];
  /** Other columns the AAD needs. */
  readonly also?: readonly string[];
  readonly aad: (row: Record<string, unknown>) => string;
}> = [
  { table: 'dp_runs', keyColumn: 'input_key_id', blobColumn: 'input', pk: ['run_id'], aad: (r) => `${String(r.run_id)}:input` },
  { table: 'dp_runs', keyColumn: 'output_key_id', blobColumn: 'output', pk: ['run_id'], aad: (r) => `${String(r.run_id)}:output` },
  {
    table: 'dp_journal',
    keyColumn: 'key_id',
    blobColumn: 'payload',
    pk: ['run_id', 'position'],
    aad: (r) => `${String(r.run_id)}:journal:${String(r.position)}`,
  },
  {
    table: 'dp_errors',
    keyColumn: 'key_id',
    blobColumn: 'payload',
    pk: ['error_ref'],
    also: ['run_id'],
    aad: (r) => `${String(r.run_id)}:error:${String(r.error_ref)}`,
  },
  {
    table: 'dp_signals',
    keyColumn: 'key_id',
    blobColumn: 'body',
    pk: ['signal_id'],
    also: ['run_id'],
    aad: (r) => `${String(r.run_id)}:signal:${String(r.signal_id)}`,
  },
  {
    table: 'dp_transcripts',
    keyColumn: 'key_id',
    blobColumn: 'payload',
    pk: ['run_id', 'position'],
    aad: (r) => `${String(r.run_id)}:transcript:${String(r.position)}`,
  },
  { table: 'dp_payloads', keyColumn: 'key_id', blobColumn: 'payload', pk: ['payload_id'], aad: (r) => `payload:${String(r.payload_id)}` },
  {
    table: 'dp_stream_events',
    keyColumn: 'key_id',
    blobColumn: 'payload',
    pk: ['run_id', 'seq'],
    aad: (r) => `${String(r.run_id)}:stream-event`,
  },
  {
    table: 'dp_replay_checks',
    keyColumn: 'key_id',
    blobColumn: 'result',
    pk: ['check_id'],
    aad: (r) => `replay-check:${String(r.check_id)}`,
  },
];

/** The tables and columns whose values are sealed (for the schema test). */
export const SEALED_COLUMNS: ReadonlyArray<{ table: string; keyColumn: string; blobColumn: string }> = SEALED.map(
  ({ table, keyColumn, blobColumn }) => ({ table, keyColumn, blobColumn }),
);

/** How many sealed values each key ID holds, and how many of them are in the old format (1). */
export interface KeyUsage {
  readonly keyId: string;
  readonly values: number;
  /** Values sealed with the data key itself (before per-run keys): the job rewrites them too. */
  readonly format1: number;
}

/** Format 2's marker (crypto.ts), as a bytea literal for SQL. */
const V2_PREFIX_SQL = "'\\xca124e02'::bytea";

/** Counts the sealed values per key ID: which keys data still needs, and which can be retired. */
export async function keyUsage(pool: pg.Pool): Promise<KeyUsage[]> {
  const totals = new Map<string, { values: number; format1: number }>();
  for (const s of SEALED) {
    const r = await pool.query<{ key_id: string; values: string; format1: string }>(
      `SELECT ${s.keyColumn} AS key_id, count(*) AS values,
              count(*) FILTER (WHERE substring(${s.blobColumn} FROM 1 FOR 4) <> ${V2_PREFIX_SQL}) AS format1
         FROM ${s.table} WHERE ${s.blobColumn} IS NOT NULL GROUP BY 1`,
    );
    for (const row of r.rows) {
      const t = totals.get(row.key_id) ?? { values: 0, format1: 0 };
      t.values += Number(row.values);
      t.format1 += Number(row.format1);
      totals.set(row.key_id, t);
    }
  }
  return [...totals].map(([keyId, t]) => ({ keyId, ...t })).sort((a, b) => a.keyId.localeCompare(b.keyId));
}

/** What one {@link reencrypt} pass did. */
export interface ReencryptResult {
  /** Values re-sealed with the active key (format 2). */
  readonly rewritten: number;
  /** Values changed by another process between the read and the write: left as that process wrote them. */
  readonly skipped: number;
}

export interface ReencryptOptions {
  /** Values read and rewritten per transaction (default 200). */
  readonly batchSize?: number;
  /** Called after each batch (progress for the command line). */
  readonly onBatch?: (progress: { table: string; rewritten: number; skipped: number }) => void;
  /**
   * Called between reading a batch and writing it back: where another process's write can land.
   * For tests that make that race happen; production callers leave it out.
   */
  readonly betweenReadAndWrite?: (table: string, column: string) => Promise<void>;
}

/**
 * Re-seals every value that is not sealed with the ring's active key in format 2: values of a key
 * being retired and values written before per-run keys. Batched (one short transaction per batch,
 * so workers are not held up), resumable (it looks for what still needs work, so a stopped job
 * starts again where it was) and safe while workers and gateways run: each row is written only if
 * it still holds the value that was read (a row a worker rewrote meanwhile is left alone).
 */
export async function reencrypt(pool: pg.Pool, ring: KeyRing, options: ReencryptOptions = {}): Promise<ReencryptResult> {
  const batchSize = options.batchSize ?? 200;
  const active = ring.activeKeyId;
  let rewritten = 0;
  let skipped = 0;
  for (const s of SEALED) {
    const pkList = s.pk.join(', ');
    const selected = [...s.pk, ...(s.also ?? [])].join(', ');
    let after: unknown[] | undefined;
    for (;;) {
      const params: unknown[] = [active, batchSize];
      let cursor = '';
      if (after) {
        const placeholders = after.map((_, i) => `$${i + 3}`).join(', ');
        cursor = `AND (${pkList}) > (${placeholders})`;
        params.push(...after);
      }
      const r = await pool.query<Record<string, unknown>>(
        `SELECT ${selected}, ${s.keyColumn} AS key_id, ${s.blobColumn} AS blob FROM ${s.table}
          WHERE ${s.blobColumn} IS NOT NULL
            AND (${s.keyColumn} <> $1 OR substring(${s.blobColumn} FROM 1 FOR 4) <> ${V2_PREFIX_SQL}) ${cursor}
          ORDER BY ${pkList} LIMIT $2`,
        params,
      );
      if (r.rows.length === 0) break;
      await options.betweenReadAndWrite?.(s.table, s.blobColumn);
      const client = await pool.connect();
      let done = 0;
      let lost = 0;
      try {
        await client.query('BEGIN');
        for (const row of r.rows) {
          const aad = s.aad(row);
          const old: Sealed = { keyId: row.key_id as string, blob: row.blob as Buffer };
          const fresh = ring.sealWithKey(active, ring.open(old, aad), aad);
          const where = s.pk.map((c, i) => `${c} = $${i + 5}`).join(' AND ');
          const u = await client.query(
            `UPDATE ${s.table} SET ${s.keyColumn} = $1, ${s.blobColumn} = $2
              WHERE ${s.keyColumn} = $3 AND ${s.blobColumn} = $4 AND ${where}`,
            [fresh.keyId, fresh.blob, old.keyId, old.blob, ...s.pk.map((c) => row[c])],
          );
          if (u.rowCount === 1) done++;
          else lost++;
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
      rewritten += done;
      skipped += lost;
      options.onBatch?.({ table: s.table, rewritten: done, skipped: lost });
      const last = r.rows[r.rows.length - 1]!;
      after = s.pk.map((c) => last[c]);
      if (r.rows.length < batchSize) break;
    }
  }
  return { rewritten, skipped };
}

/** Key IDs of `usage` other than the ring's active one: what retiring old keys still waits for. */
export function keysStillNeeded(usage: readonly KeyUsage[], ring: KeyRing): { keyIds: string[]; format1: number } {
  return {
    keyIds: usage.filter((u) => u.keyId !== ring.activeKeyId && u.values > 0).map((u) => u.keyId),
    format1: usage.reduce((n, u) => n + u.format1, 0),
  };
}
