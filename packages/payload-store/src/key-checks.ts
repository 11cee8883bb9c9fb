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
 * Processes compare and record under one advisory lock, all keys in one transaction: of two
 * processes racing to record different keys, the one that comes second finds the first one's
 * checks and is refused, recording nothing.
 */
export async function verifyKeyChecks(pool: pg.Pool, ring: KeyRing, hasher: Hasher | undefined): Promise<KeyCheckResult> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // One process at a time, all keys at once: a process refused for one key records none of the
    // others, so racing first starts cannot leave the store with one's encryption key and another's
    // HMAC key (which would refuse them all).
    await client.query("SELECT pg_advisory_xact_lock(hashtext('cairn_dp_key_checks'))");
    const result = await compare(client, ring, hasher);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if ((err as { code?: unknown }).code === '42P01') {
      throw new CairnError(
        ErrorCodes.FAILED_PRECONDITION,
        'The payload store has no key checks table yet: apply its migrations first (PayloadStore.migrate(), or `cairn-gateway migrate`).',
        { cause: err },
      );
    }
    throw err;
  } finally {
    client.release();
  }
}

async function compare(client: pg.PoolClient, ring: KeyRing, hasher: Hasher | undefined): Promise<KeyCheckResult> {
  const stored = (
    await client.query<{ purpose: string; key_id: string; check_value: Buffer }>('SELECT purpose, key_id, check_value FROM dp_key_checks')
  ).rows;
  const check = (purpose: string, keyId: string): Buffer | undefined =>
    stored.find((r) => r.purpose === purpose && r.key_id === keyId)?.check_value;

  const problems: string[] = [];
  const mismatched: string[] = [];
  const recorded: string[] = [];
  const matched: string[] = [];
  const inserts: Array<{ purpose: 'encryption' | 'hmac'; keyId: string; value: Buffer }> = [];
  for (const keyId of ring.keyIds) {
    const existing = check('encryption', keyId);
    const ok = existing ? ring.opensKeyCheck(keyId, existing) : await opensExistingData(client, ring, keyId);
    if (!ok) {
      mismatched.push(keyId);
      problems.push(
        `Encryption key ${JSON.stringify(keyId)} in CAIRN_DP_ENCRYPTION_KEYS does not match the payload store: data sealed with ${keyId} cannot be opened with it.`,
      );
    } else if (existing) {
      matched.push(keyId);
    } else {
      recorded.push(keyId);
      inserts.push({ purpose: 'encryption', keyId, value: ring.sealKeyCheck(keyId) });
    }
  }

  let hmac: KeyCheckResult['hmac'] = 'unchecked';
  let hmacMismatch = false;
  if (hasher) {
    // Every HMAC key of the ring is checked under its ID ('' for the key written without one).
    const outcomes: Array<'recorded' | 'matched'> = [];
    for (const keyId of hasher.keyIds) {
      const mine = hasher.keyCheck(keyId);
      const existing = check('hmac', keyId);
      if (!existing) {
        outcomes.push('recorded');
        inserts.push({ purpose: 'hmac', keyId, value: mine });
      } else if (existing.equals(mine)) {
        outcomes.push('matched');
      } else {
        hmacMismatch = true;
        problems.push(
          `The HMAC key${keyId ? ` ${JSON.stringify(keyId)}` : ''} in CAIRN_DP_HMAC_KEY does not match the payload store: its digests of idempotency keys, step keys and approval keys would differ from the ones already recorded, so replays and duplicate starts would go wrong.`,
        );
      }
    }
    // What happened to the active key's check.
    hmac = outcomes[0] ?? 'unchecked';
  }

  if (problems.length > 0) {
    throw new CairnError(ErrorCodes.KEY_MISMATCH, `${problems.join(' ')} ${SAME_KEYS_HINT}`, {
      details: { keyIds: mismatched, hmac: hmacMismatch },
    });
  }
  for (const { purpose, keyId, value } of inserts) {
    await client.query('INSERT INTO dp_key_checks (purpose, key_id, check_value) VALUES ($1, $2, $3)', [purpose, keyId, value]);
  }
  const absent = stored.filter((r) => r.purpose === 'encryption' && !ring.hasKey(r.key_id)).map((r) => r.key_id);
  return { recorded, matched, hmac, absent };
}

/**
 * Whether the key opens values already sealed under its ID (true when there are none). Run inputs
 * are the one kind every run has, so they are what is sampled.
 */
async function opensExistingData(client: pg.PoolClient, ring: KeyRing, keyId: string): Promise<boolean> {
  const r = await client.query<{ run_id: string; input: Buffer }>('SELECT run_id, input FROM dp_runs WHERE input_key_id = $1 LIMIT $2', [
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
