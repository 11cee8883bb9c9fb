import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { CairnError, ErrorCodes } from '@cairn/common';

const IV_BYTES = 12;
const TAG_BYTES = 16;
/**
 * Marks a v2 blob: `magic || iv || tag || ciphertext`, sealed with a key derived for the run (HKDF,
 * RFC 5869) instead of the data key itself. A v1 blob (`iv || tag || ciphertext` under the data
 * key) starts with a random IV, which begins with these bytes once in 2^32: such a blob fails v2
 * authentication and is then opened as v1, so every v1 blob stays readable.
 */
const V2_MAGIC = Buffer.from([0xca, 0x12, 0x4e, 0x02]);
/** HKDF salt of per-scope data keys; the info is the scope (a run ID, or `payload:<id>`). */
const DATA_KEY_SALT = Buffer.from('cairn/payload-store/data-key/v2', 'utf8');
/** What a key check seals: a fixed, public constant (a check reveals nothing but which key sealed it). */
const KEY_CHECK_PLAINTEXT = Buffer.from('cairn payload store key check v1', 'utf8');
/**
 * HKDF salt of the HMAC key's check. Every other digest is HMAC(key, value) with the key in the
 * key position; HKDF-Extract puts it in the message position under this salt, so no user-chosen
 * value can make a digest equal to the check or the other way round.
 */
const HMAC_CHECK_SALT = Buffer.from('cairn/payload-store/hmac-key-check/v1', 'utf8');

/** HKDF salt of the per-purpose, per-workflow digest keys (version 2). */
const DIGEST_SALT = Buffer.from('cairn/payload-store/digest-key/v2', 'utf8');

/** How a run's digests are derived: 1 one key for everything (runs before 2), 2 per purpose and workflow. */
export type DigestVersion = 1 | 2;

/** The digest version of runs started now. */
export const CURRENT_DIGEST_VERSION: DigestVersion = 2;

/** What a user-chosen value digested for the control plane is used as. */
export type DigestPurpose = 'idempotency' | 'step' | 'approval';

/** A run's digest functions (see {@link Hasher.forRun}); each returns 64 hex characters. */
export interface RunDigests {
  readonly version: DigestVersion;
  /** The idempotency key of a start. */
  readonly idempotency: (value: string) => string;
  /** A step's dynamic key, and the identity of calls made in parallel branches. */
  readonly step: (value: string) => string;
  /** The key of an approval (`ctx.approval(name, { key })`). */
  readonly approval: (value: string) => string;
}

/** An encrypted value: the key it was sealed with and `iv || tag || ciphertext`. */
export interface Sealed {
  readonly keyId: string;
  readonly blob: Buffer;
}

/**
 * The data plane's encryption keys (AES-256-GCM). The first key seals new data; every key can
 * open data sealed with it. Keys rotate in two phases (add the new key after the active one and
 * roll every process, then put it first and roll again), and an old key is kept until
 * `reencrypt` has rewritten its data. Values are sealed with a key derived per run (format 2).
 */
/** Per-scope keys a key ring keeps derived: a few thousand runs in flight at once. */
const DERIVED_KEYS_MAX = 4096;

export class KeyRing {
  readonly activeKeyId: string;
  readonly #keys: ReadonlyMap<string, Buffer>;
  /**
   * Per-run keys derived lately, by key ID and scope: a run's values are sealed and opened with
   * the key derived once for the run, not derived again for each value (HKDF costs more than the
   * AES-GCM of a small value). Bounded; the oldest derivation is dropped first.
   */
  readonly #derived = new Map<string, Buffer>();

  constructor(keys: ReadonlyArray<{ id: string; key: Buffer }>) {
    if (keys.length === 0) throw new CairnError(ErrorCodes.INVALID_CONFIG, 'At least one encryption key is required.');
    const map = new Map<string, Buffer>();
    for (const { id, key } of keys) {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `Encryption key id ${JSON.stringify(id)} is invalid: use 1-64 letters, digits, '_', '.', '-'.`,
        );
      }
      if (key.length !== 32) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `Encryption key ${id} must be 32 bytes (AES-256), got ${key.length}. Generate one with \`openssl rand -base64 32\`.`,
        );
      }
      if (map.has(id)) throw new CairnError(ErrorCodes.INVALID_CONFIG, `Encryption key id ${id} is listed twice.`);
      map.set(id, key);
    }
    this.#keys = map;
    this.activeKeyId = keys[0]!.id;
  }

  /**
   * Parses `id1:base64key[,id0:base64key...]` (the format of CAIRN_DP_ENCRYPTION_KEYS); the first
   * key is the active one.
   */
  static parse(spec: string): KeyRing {
    const entries = spec
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((entry) => {
        const colon = entry.indexOf(':');
        if (colon <= 0) {
          throw new CairnError(
            ErrorCodes.INVALID_CONFIG,
            'Encryption keys must be written as id:base64key, separated by commas (the first is used for new data).',
          );
        }
        return { id: entry.slice(0, colon), key: Buffer.from(entry.slice(colon + 1), 'base64') };
      });
    return new KeyRing(entries);
  }

  /** A fresh random key ring spec for local development: `k1:<base64>`. */
  static generateSpec(id = 'k1'): string {
    return `${id}:${randomBytes(32).toString('base64')}`;
  }

  hasKey(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  /** The key IDs in the ring, the active one first. */
  get keyIds(): readonly string[] {
    return [...this.#keys.keys()];
  }

  /**
   * A key check for `keyId`: a fixed constant sealed with that key (not the active one), bound to
   * the key ID. Stored once per key ID in the payload store, it lets a process tell whether its key
   * of that ID is the one the data was sealed with, without storing anything secret.
   */
  sealKeyCheck(keyId: string): Buffer {
    return this.#sealWith(keyId, KEY_CHECK_PLAINTEXT, keyCheckAad(keyId)).blob;
  }

  /** Whether `check` (from {@link sealKeyCheck}) was sealed with this ring's key of that ID. */
  opensKeyCheck(keyId: string, check: Buffer): boolean {
    try {
      return this.open({ keyId, blob: check }, keyCheckAad(keyId)).equals(KEY_CHECK_PLAINTEXT);
    } catch {
      return false;
    }
  }

  /**
   * Seals `plain` with the active key, binding it to `aad` (the run and slot it belongs to) so
   * blobs cannot be swapped. The AES key is derived from the data key for the AAD's scope (the run
   * ID before its first `:`, or the whole `payload:<id>`), so each key seals the values of one run
   * and no key nears AES-GCM's limit of 2^32 random nonces.
   */
  seal(plain: Buffer, aad: string): Sealed {
    return this.sealWithKey(this.activeKeyId, plain, aad);
  }

  /** Like {@link seal}, with the key of that ID (the re-encryption job seals with the active one). */
  sealWithKey(keyId: string, plain: Buffer, aad: string): Sealed {
    const key = this.#key(keyId);
    const sealed = sealRaw(this.#scopeKey(keyId, key, scopeOf(aad)), plain, aad);
    return { keyId, blob: Buffer.concat([V2_MAGIC, sealed]) };
  }

  /** The AES key of one scope under data key `keyId`, derived once while it is in use. */
  #scopeKey(keyId: string, dataKey: Buffer, scope: string): Buffer {
    return derivedOnce(this.#derived, `${keyId}\0${scope}`, () => deriveDataKey(dataKey, scope));
  }

  // Key checks keep the v1 format: they are sealed with the data key itself, under a fixed AAD.
  #sealWith(keyId: string, plain: Buffer, aad: string): Sealed {
    return { keyId, blob: sealRaw(this.#key(keyId), plain, aad) };
  }

  #key(keyId: string): Buffer {
    const key = this.#keys.get(keyId);
    if (!key)
      throw new CairnError(ErrorCodes.UNKNOWN_KEY, `Key ${JSON.stringify(keyId)} is not in CAIRN_DP_ENCRYPTION_KEYS.`, {
        details: { keyId },
      });
    return key;
  }

  /** The ciphertext format of a blob: 2 (per-run derived key) or 1 (the data key itself, before 2). */
  static formatOf(blob: Buffer): 1 | 2 {
    return blob.length > V2_MAGIC.length && blob.subarray(0, V2_MAGIC.length).equals(V2_MAGIC) ? 2 : 1;
  }

  /** Opens a sealed blob; throws a clear error for an unknown key or a tampered blob. */
  open(sealed: Sealed, aad: string): Buffer {
    const key = this.#keys.get(sealed.keyId);
    if (!key) {
      throw new CairnError(
        ErrorCodes.UNKNOWN_KEY,
        `Data was encrypted with key ${JSON.stringify(sealed.keyId)}, which is not in CAIRN_DP_ENCRYPTION_KEYS. Add that key (after the active one) to read it.`,
        { details: { keyId: sealed.keyId } },
      );
    }
    if (sealed.blob.length < IV_BYTES + TAG_BYTES) {
      throw new CairnError(ErrorCodes.DECRYPT_FAILED, `Encrypted value is truncated (key ${sealed.keyId}).`, {
        details: { keyId: sealed.keyId },
      });
    }
    try {
      if (KeyRing.formatOf(sealed.blob) === 2) {
        try {
          return openRaw(this.#scopeKey(sealed.keyId, key, scopeOf(aad)), sealed.blob.subarray(V2_MAGIC.length), aad);
        } catch (v2Failure) {
          // A v1 blob whose random IV happens to start with the marker (see V2_MAGIC).
          try {
            return openRaw(key, sealed.blob, aad);
          } catch {
            throw v2Failure;
          }
        }
      }
      return openRaw(key, sealed.blob, aad);
    } catch (cause) {
      throw new CairnError(
        ErrorCodes.DECRYPT_FAILED,
        `Encrypted value failed authentication (key ${sealed.keyId}): it was altered or belongs elsewhere, or the key of that ID in CAIRN_DP_ENCRYPTION_KEYS is not the one it was sealed with.`,
        { cause, details: { keyId: sealed.keyId } },
      );
    }
  }
}

/**
 * HMAC-SHA256 of a user-chosen value (idempotency key, dynamic step key) in hex. Only the digest
 * crosses to the control plane; the key never leaves the data plane.
 */
export class Hasher {
  /** The key new runs digest with: the first of CAIRN_DP_HMAC_KEY ('' for a key written without an ID). */
  readonly activeKeyId: string;
  readonly #keys: ReadonlyMap<string, Buffer>;
  /** Per-purpose digest keys by HMAC key ID and workflow, derived once (bounded, oldest dropped first). */
  readonly #purposeKeys = new Map<string, Buffer>();

  /**
   * One key (the data plane's first, with the empty ID), or several with IDs, the first active:
   * a run keeps digesting with the key it started with, so a new HMAC key rotates in like an
   * encryption key (add it as secondary, roll, promote it, roll).
   */
  constructor(keys: Buffer | ReadonlyArray<{ id: string; key: Buffer }>) {
    const list = Buffer.isBuffer(keys) ? [{ id: '', key: keys }] : keys;
    if (list.length === 0) throw new CairnError(ErrorCodes.INVALID_CONFIG, 'At least one HMAC key is required.');
    const map = new Map<string, Buffer>();
    for (const { id, key } of list) {
      if (id !== '' && !/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `HMAC key id ${JSON.stringify(id)} is invalid: use 1-64 letters, digits, '_', '.', '-'.`,
        );
      }
      if (key.length < 32) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `The HMAC key${id ? ` ${id}` : ''} must be at least 32 bytes, got ${key.length}. Generate one with \`openssl rand -base64 32\`.`,
        );
      }
      if (map.has(id)) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          id ? `HMAC key id ${id} is listed twice.` : 'Two HMAC keys have no ID: give the new one an ID (id:base64key).',
        );
      }
      map.set(id, key);
    }
    this.#keys = map;
    this.activeKeyId = list[0]!.id;
  }

  /**
   * Parses CAIRN_DP_HMAC_KEY: a base64 key, or during a rotation `id:base64key,…` with the active
   * key first, where the key the data plane started with keeps no ID (`h2:<new>,<old>`).
   */
  static parse(spec: string): Hasher {
    const entries = spec
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    return new Hasher(
      entries.map((entry) => {
        const colon = entry.indexOf(':');
        return colon < 0
          ? { id: '', key: Buffer.from(entry, 'base64') }
          : { id: entry.slice(0, colon), key: Buffer.from(entry.slice(colon + 1), 'base64') };
      }),
    );
  }

  static generateSpec(): string {
    return randomBytes(32).toString('base64');
  }

  /** The HMAC key IDs, the active one first ('' for the key without an ID). */
  get keyIds(): readonly string[] {
    return [...this.#keys.keys()];
  }

  hasKey(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  #key(keyId: string): Buffer {
    const key = this.#keys.get(keyId);
    if (!key) {
      throw new CairnError(
        ErrorCodes.UNKNOWN_KEY,
        `This run's keys were digested with HMAC key ${JSON.stringify(keyId)}, which is not in CAIRN_DP_HMAC_KEY. Add that key (after the active one) until the runs started with it have ended.`,
        { details: { keyId, hmac: true } },
      );
    }
    return key;
  }

  /**
   * HMAC of `value` under the key itself: the digests of format 1 (every purpose alike) and of
   * concurrency keys. New runs use {@link forRun}'s per-purpose keys.
   */
  digest(value: string): string {
    return hmacHex(this.#key(this.activeKeyId), value);
  }

  /**
   * The digests of one run's user-chosen values. Version 2 (every run started since per-purpose
   * keys) derives one HMAC key per purpose and workflow (HKDF-SHA256, RFC 5869, info = purpose and
   * workflow name), so a customer value used as an idempotency key in two workflows, or as a step
   * key and an approval key, gives unrelated digests: no one pseudonym links them in the control
   * plane. Version 1 (runs started before) keeps the single key, so their recorded journal keys
   * still match on replay.
   */
  forRun(workflowName: string, version: DigestVersion, keyId: string = this.activeKeyId): RunDigests {
    const base = this.#key(keyId);
    if (version === 1) {
      const legacy = (value: string): string => hmacHex(base, value);
      return { version, idempotency: legacy, step: legacy, approval: legacy };
    }
    const keyed = (purpose: DigestPurpose) => {
      const key = derivedOnce(this.#purposeKeys, `${keyId}\0${purpose}\0${workflowName}`, () =>
        Buffer.from(hkdfSync('sha256', base, DIGEST_SALT, Buffer.from(`${purpose}\0${workflowName}`, 'utf8'), 32)),
      );
      return (value: string): string => hmacHex(key, value);
    };
    return { version, idempotency: keyed('idempotency'), step: keyed('step'), approval: keyed('approval') };
  }

  /**
   * A check value of this key (HKDF-SHA256 under a fixed salt, domain-separated from every
   * digest): stored once in the payload store so a process can tell whether its HMAC key is the
   * one the store's digests were made with. Reveals nothing about the key.
   */
  keyCheck(keyId: string = this.activeKeyId): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#key(keyId), HMAC_CHECK_SALT, 'key check', 32));
  }
}

/**
 * The scope a value's key is derived for: the run ID that starts a run's AADs
 * (`<runId>:input`, `<runId>:journal:3`…), or the whole AAD of a schedule payload (`payload:<id>`).
 */
export function scopeOf(aad: string): string {
  const colon = aad.indexOf(':');
  const head = colon < 0 ? aad : aad.slice(0, colon);
  return head === 'payload' ? aad : head;
}

/** A derived key from `cache`, deriving and keeping it when missing (the oldest is dropped past the bound). */
function derivedOnce(cache: Map<string, Buffer>, id: string, derive: () => Buffer): Buffer {
  const known = cache.get(id);
  if (known !== undefined) return known;
  const key = derive();
  if (cache.size >= DERIVED_KEYS_MAX) {
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  cache.set(id, key);
  return key;
}

/** HKDF-SHA256 (RFC 5869) of the data key for one scope: the AES-256 key that seals its values. */
export function deriveDataKey(dataKey: Buffer, scope: string): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, DATA_KEY_SALT, Buffer.from(scope, 'utf8'), 32));
}

function sealRaw(key: Buffer, plain: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function openRaw(key: Buffer, blob: Buffer, aad: string): Buffer {
  if (blob.length < IV_BYTES + TAG_BYTES) throw new Error('truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, blob.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(blob.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(blob.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
}

function hmacHex(key: Buffer, value: string): string {
  return createHmac('sha256', key).update(value, 'utf8').digest('hex');
}

function keyCheckAad(keyId: string): string {
  return `cairn:key-check:${keyId}`;
}
