import type pg from 'pg';
import { CairnError, ErrorCodes } from '@cairn/common';
import type { Hasher, KeyRing } from './crypto.js';

/** What {@link verifyKeyChecks} found. */
export interface KeyCheckResult {
  /** Encryption key IDs whose check this process recorded now: the store had none for them. */
  readonly recorded: readonly string[];
  /** Encryption key IDs whose stored check this process's key reproduced. */
  readonly matched: readonly string[];
  /** Whether the HMAC key's check was recorded now (`recorded`), reproduced (`matched`) or not checked. */
  readonly hmac: 'recorded' | 'matched' | 'unchecked';
  /**
   * Key IDs another process recorded a check for that this key ring lacks. Data sealed with them
   * (runs started before a rotation, say) cannot be opened by this process.
   */
  readonly absent: readonly string[];
}

const SAME_KEYS_HINT =
  'Use the same keys as the gateway and the other workers of this data plane (in development: cairn dev env prints them).';

/** How many existing values a key without a check is tried on (see below). */
const SAMPLES = 3;

/**
 * Compares a process's keys with the payload store's key checks (migration 8), recording a check
 * for each key seen for the first time. Throws one `CAIRN-3006` error naming every key ID that does
 * not match (never the key itself).
 *
 * A store written before key checks existed has data but no checks: a key ID without a check is
 * first tried on a few values sealed under that ID, and recorded only if one of them opens (the
 * ciphertexts are authenticated, so a wrong key opens none).
 *
 * Two processes recording different keys under the same ID at the same time: the primary key lets
 * one insert win; the other reads the winner's check back and fails like any later mismatch.
 */
export async function verifyKeyChecks(pool: pg.Pool, ring: KeyRing, hasher: Hasher | undefined): Promise<KeyCheckResult> {
  let stored: Array<{ purpose: string; key_id: string; check_value: Buffer }>;
  try {
    stored = (await pool.query<{ purpose: string; key_id: string; check_value: Buffer }>('SELECT purpose, key_id, check_value FROM dp_key_checks'))
      .rows;
  } catch (err) {
    if ((err as { code?: unknown }).code === '42P01') {
      throw new CairnError(
        ErrorCodes.FAILED_PRECONDITION,
        'The payload store has no key checks table yet: apply its migrations first (PayloadStore.migrate(), or `cairn-gateway migrate`).',
        { cause: err },
      );
    }
    throw err;
  }
  const check = (purpose: string, keyId: string): Buffer | undefined =>
    stored.find((r) => r.purpose === purpose && r.key_id === keyId)?.check_value;

  const problems: string[] = [];
  const mismatched: string[] = [];
  const recorded: string[] = [];
  const matched: string[] = [];
  const mismatch = (keyId: string): void => {
    mismatched.push(keyId);
    problems.push(
      `Encryption key ${JSON.stringify(keyId)} in CAIRN_DP_ENCRYPTION_KEYS does not match the payload store: data sealed with ${keyId} cannot be opened with it.`,
    );
  };

  for (const keyId of ring.keyIds) {
    const existing = check('encryption', keyId);
    if (existing) {
      if (ring.opensKeyCheck(keyId, existing)) matched.push(keyId);
      else mismatch(keyId);
      continue;
    }
    if (!(await opensExistingData(pool, ring, keyId))) {
      mismatch(keyId);
      continue;
    }
    const outcome = await record(pool, 'encryption', keyId, ring.sealKeyCheck(keyId), (winner) => ring.opensKeyCheck(keyId, winner));
    if (outcome === 'mismatch') mismatch(keyId);
    else (outcome === 'recorded' ? recorded : matched).push(keyId);
  }

  let hmac: KeyCheckResult['hmac'] = 'unchecked';
  let hmacMismatch = false;
  if (hasher) {
    const mine = hasher.keyCheck();
    const existing = check('hmac', '');
    const outcome = existing ? (existing.equals(mine) ? 'matched' : 'mismatch') : await record(pool, 'hmac', '', mine, (w) => w.equals(mine));
    if (outcome === 'mismatch') {
      hmacMismatch = true;
      problems.push(
        'The HMAC key in CAIRN_DP_HMAC_KEY does not match the payload store: its digests of idempotency keys, step keys and approval keys would differ from the ones already recorded, so replays and duplicate starts would go wrong.',
      );
    } else {
      hmac = outcome;
    }
  }

  if (problems.length > 0) {
    throw new CairnError(ErrorCodes.KEY_MISMATCH, `${problems.join(' ')} ${SAME_KEYS_HINT}`, {
      details: { keyIds: mismatched, hmac: hmacMismatch },
    });
  }
  const absent = stored.filter((r) => r.purpose === 'encryption' && !ring.hasKey(r.key_id)).map((r) => r.key_id);
  return { recorded, matched, hmac, absent };
}

/**
 * Whether the key opens values already sealed under its ID (true when there are none). Run inputs
 * are the one kind every run has, so they are what is sampled.
 */
async function opensExistingData(pool: pg.Pool, ring: KeyRing, keyId: string): Promise<boolean> {
  const r = await pool.query<{ run_id: string; input: Buffer }>('SELECT run_id, input FROM dp_runs WHERE input_key_id = $1 LIMIT $2', [
    keyId,
    SAMPLES,
  ]);
  if (r.rows.length === 0) return true;
  return r.rows.some((row) => {
    try {
      ring.open({ keyId, blob: row.input }, `${row.run_id}:input`);
      return true;
    } catch {
      return false;
    }
  });
}

/** Inserts a first check; when another process got there first, compares against its check instead. */
async function record(
  pool: pg.Pool,
  purpose: 'encryption' | 'hmac',
  keyId: string,
  value: Buffer,
  matches: (winner: Buffer) => boolean,
): Promise<'recorded' | 'matched' | 'mismatch'> {
  const inserted = await pool.query(
    'INSERT INTO dp_key_checks (purpose, key_id, check_value) VALUES ($1, $2, $3) ON CONFLICT (purpose, key_id) DO NOTHING',
    [purpose, keyId, value],
  );
  if (inserted.rowCount === 1) return 'recorded';
  // A separate statement: its snapshot sees the row the racing insert committed.
  const winner = await pool.query<{ check_value: Buffer }>('SELECT check_value FROM dp_key_checks WHERE purpose = $1 AND key_id = $2', [
    purpose,
    keyId,
  ]);
  const row = winner.rows[0];
  return row && matches(row.check_value) ? 'matched' : 'mismatch';
}
