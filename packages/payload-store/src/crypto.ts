import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { CairnError, ErrorCodes } from '@cairn/common';

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** What a key check seals: a fixed, public constant (a check reveals nothing but which key sealed it). */
const KEY_CHECK_PLAINTEXT = Buffer.from('cairn payload store key check v1', 'utf8');
/**
 * HKDF salt of the HMAC key's check. Every other digest is HMAC(key, value) with the key in the
 * key position; HKDF-Extract puts it in the message position under this salt, so no user-chosen
 * value can make a digest equal to the check or the other way round.
 */
const HMAC_CHECK_SALT = Buffer.from('cairn/payload-store/hmac-key-check/v1', 'utf8');

/** An encrypted value: the key it was sealed with and `iv || tag || ciphertext`. */
export interface Sealed {
  readonly keyId: string;
  readonly blob: Buffer;
}

/**
 * The data plane's encryption keys (AES-256-GCM). The first key seals new data; every key can
 * open data sealed with it, so keys rotate by putting a new key first and keeping the old ones
 * until their data has been rewritten or has expired.
 */
export class KeyRing {
  readonly activeKeyId: string;
  readonly #keys: ReadonlyMap<string, Buffer>;

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

  /** Seals `plain`, binding it to `aad` (the run and slot it belongs to) so blobs cannot be swapped. */
  seal(plain: Buffer, aad: string): Sealed {
    return this.#sealWith(this.activeKeyId, plain, aad);
  }

  #sealWith(keyId: string, plain: Buffer, aad: string): Sealed {
    const key = this.#keys.get(keyId);
    if (!key)
      throw new CairnError(ErrorCodes.UNKNOWN_KEY, `Key ${JSON.stringify(keyId)} is not in CAIRN_DP_ENCRYPTION_KEYS.`, {
        details: { keyId },
      });
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return { keyId, blob: Buffer.concat([iv, cipher.getAuthTag(), body]) };
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
    const iv = sealed.blob.subarray(0, IV_BYTES);
    const tag = sealed.blob.subarray(IV_BYTES, IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(sealed.blob.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
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
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length < 32) {
      throw new CairnError(
        ErrorCodes.INVALID_CONFIG,
        `The HMAC key must be at least 32 bytes, got ${key.length}. Generate one with \`openssl rand -base64 32\`.`,
      );
    }
    this.#key = key;
  }

  /** Parses a base64 key (the format of CAIRN_DP_HMAC_KEY). */
  static parse(base64: string): Hasher {
    return new Hasher(Buffer.from(base64, 'base64'));
  }

  static generateSpec(): string {
    return randomBytes(32).toString('base64');
  }

  digest(value: string): string {
    return createHmac('sha256', this.#key).update(value, 'utf8').digest('hex');
  }

  /**
   * A check value of this key (HKDF-SHA256 under a fixed salt, domain-separated from every
   * digest): stored once in the payload store so a process can tell whether its HMAC key is the
   * one the store's digests were made with. Reveals nothing about the key.
   */
  keyCheck(): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#key, HMAC_CHECK_SALT, 'key check', 32));
  }
}

function keyCheckAad(keyId: string): string {
  return `cairn:key-check:${keyId}`;
}
