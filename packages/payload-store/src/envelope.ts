import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CairnError, ErrorCodes } from '@cairn/common';
import { KeyRing } from './crypto.js';

/**
 * Wraps and unwraps the data plane's data keys with a key-encryption key the customer holds (a KMS
 * key). In envelope mode the environment and the Secret hold only wrapped data keys; a process
 * unwraps them once at start-up and keeps them in memory only, so the data is readable only while
 * the KMS lets this data plane unwrap (revoking the KMS grant, or deleting the key, shuts it).
 *
 * Implement it for your KMS and load it with CAIRN_DP_KMS=module (see docs/install.md):
 * - AWS KMS: `wrap` = `Encrypt` (or `GenerateDataKey`), `unwrap` = `Decrypt`, with `context` as the
 *   encryption context;
 * - GCP Cloud KMS: `encrypt` / `decrypt` with `context` as additional authenticated data;
 * - HashiCorp Vault transit: `transit/encrypt/<key>` / `transit/decrypt/<key>` with `context`
 *   base64-encoded as the derivation context (or associated data).
 */
export interface KeyWrapper {
  /** A short description for logs (never key material): `file`, `aws-kms:alias/cairn`… */
  readonly description: string;
  /** Wraps a 32-byte data key; `context` (the key ID) must be given again to unwrap it. */
  wrap(dataKey: Buffer, context: string): Promise<Buffer>;
  /** Unwraps what {@link wrap} returned for the same context; throws if it was not. */
  unwrap(wrapped: Buffer, context: string): Promise<Buffer>;
}

/** A wrapped key of CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: its ID and its wrapped bytes. */
export interface WrappedKey {
  readonly id: string;
  readonly wrapped: Buffer;
}

const FILE_FORMAT = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The local {@link KeyWrapper}: AES-256-GCM under a 32-byte key-encryption key read from a file
 * (base64), with the context as AAD. For tests, and for installs whose key-encryption key lives in
 * a mounted secret store (a CSI-mounted file, say) rather than a KMS API.
 */
export class FileKeyWrapper implements KeyWrapper {
  readonly description: string;
  readonly #kek: Buffer;

  constructor(kek: Buffer, description = 'file') {
    if (kek.length !== 32) {
      throw new CairnError(
        ErrorCodes.INVALID_CONFIG,
        `The key-encryption key must be 32 bytes (AES-256), got ${kek.length}. Generate one with \`openssl rand -base64 32\`.`,
      );
    }
    this.#kek = kek;
    this.description = description;
  }

  /** Reads the base64 key-encryption key from `path` (CAIRN_DP_KMS_KEY_FILE). */
  static fromFile(path: string): FileKeyWrapper {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new CairnError(
        ErrorCodes.INVALID_CONFIG,
        `Cannot read the key-encryption key file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}).`,
      );
    }
    return new FileKeyWrapper(Buffer.from(text.trim(), 'base64'), `file:${path}`);
  }

  wrap(dataKey: Buffer, context: string): Promise<Buffer> {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#kek, iv);
    cipher.setAAD(Buffer.from(`cairn/dp-data-key/${context}`, 'utf8'));
    const body = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    return Promise.resolve(Buffer.concat([Buffer.from([FILE_FORMAT]), iv, cipher.getAuthTag(), body]));
  }

  unwrap(wrapped: Buffer, context: string): Promise<Buffer> {
    try {
      if (wrapped[0] !== FILE_FORMAT || wrapped.length < 1 + IV_BYTES + TAG_BYTES) throw new Error('not a wrapped key');
      const decipher = createDecipheriv('aes-256-gcm', this.#kek, wrapped.subarray(1, 1 + IV_BYTES));
      decipher.setAAD(Buffer.from(`cairn/dp-data-key/${context}`, 'utf8'));
      decipher.setAuthTag(wrapped.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
      return Promise.resolve(Buffer.concat([decipher.update(wrapped.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]));
    } catch (cause) {
      return Promise.reject(
        new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `Wrapped encryption key ${JSON.stringify(context)} does not unwrap with the key-encryption key (${this.description}): it was wrapped with another key, for another key ID, or altered.`,
          { cause },
        ),
      );
    }
  }
}

/**
 * Parses `id:base64wrapped[,id:base64wrapped...]` (CAIRN_DP_WRAPPED_ENCRYPTION_KEYS), the first
 * being the active key, like CAIRN_DP_ENCRYPTION_KEYS but with wrapped keys.
 */
export function parseWrappedKeys(spec: string): WrappedKey[] {
  const entries = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (entries.length === 0) throw new CairnError(ErrorCodes.INVALID_CONFIG, 'At least one wrapped encryption key is required.');
  const ids = new Set<string>();
  return entries.map((entry) => {
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
      throw new CairnError(
        ErrorCodes.INVALID_CONFIG,
        'Wrapped encryption keys must be written as id:base64wrappedkey (id: 1-64 letters, digits, _ . -), separated by commas (the first is used for new data).',
      );
    }
    if (ids.has(id)) throw new CairnError(ErrorCodes.INVALID_CONFIG, `Wrapped encryption key id ${id} is listed twice.`);
    ids.add(id);
    return { id, wrapped: Buffer.from(entry.slice(colon + 1), 'base64') };
  });
}

/** Unwraps every key (the key ID is the context) into a key ring, in the same order. */
export async function unwrapKeyRing(keys: readonly WrappedKey[], wrapper: KeyWrapper): Promise<KeyRing> {
  const unwrapped = await Promise.all(keys.map(async ({ id, wrapped }) => ({ id, key: await wrapper.unwrap(wrapped, id) })));
  return new KeyRing(unwrapped);
}

/** A fresh random data key for `id`, wrapped: `id:<base64>` for CAIRN_DP_WRAPPED_ENCRYPTION_KEYS. The key itself is never returned. */
export async function generateWrappedKeySpec(id: string, wrapper: KeyWrapper): Promise<string> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `Key id ${JSON.stringify(id)} is invalid: use 1-64 letters, digits, '_', '.', '-'.`);
  }
  const key = randomBytes(32);
  try {
    return `${id}:${(await wrapper.wrap(key, id)).toString('base64')}`;
  } finally {
    key.fill(0);
  }
}

/**
 * Loads a key wrapper named by CAIRN_DP_KMS: `file` (CAIRN_DP_KMS_KEY_FILE), or `module`
 * (CAIRN_DP_KMS_MODULE: an ES module whose default export is `(env) => KeyWrapper | Promise<KeyWrapper>`,
 * for AWS KMS, GCP KMS, Vault transit…).
 */
export async function loadKeyWrapper(
  kind: 'file' | 'module',
  options: { keyFile?: string | undefined; module?: string | undefined; env: Record<string, string | undefined> },
): Promise<KeyWrapper> {
  if (kind === 'file') {
    if (!options.keyFile) throw new CairnError(ErrorCodes.INVALID_CONFIG, 'CAIRN_DP_KMS=file needs CAIRN_DP_KMS_KEY_FILE.');
    return FileKeyWrapper.fromFile(options.keyFile);
  }
  if (!options.module) throw new CairnError(ErrorCodes.INVALID_CONFIG, 'CAIRN_DP_KMS=module needs CAIRN_DP_KMS_MODULE.');
  const url = pathToFileURL(isAbsolute(options.module) ? options.module : resolve(options.module)).href;
  const loaded = (await import(url)) as { default?: unknown };
  if (typeof loaded.default !== 'function') {
    throw new CairnError(ErrorCodes.INVALID_CONFIG, `CAIRN_DP_KMS_MODULE ${options.module} has no default export (env) => KeyWrapper.`);
  }
  const wrapper = (await (loaded.default as (env: Record<string, string | undefined>) => unknown)(options.env)) as
    Partial<KeyWrapper> | null | undefined;
  if (typeof wrapper?.['wrap'] !== 'function' || typeof wrapper['unwrap'] !== 'function') {
    throw new CairnError(ErrorCodes.INVALID_CONFIG, `CAIRN_DP_KMS_MODULE ${options.module} did not return an object with wrap and unwrap.`);
  }
  return wrapper as KeyWrapper;
}

/** Where a process's encryption keys come from: the keys themselves, or wrapped keys and a KMS. */
export type KeySource =
  | { readonly kind: 'plain'; readonly ring: KeyRing }
  | {
      readonly kind: 'envelope';
      readonly wrapped: readonly WrappedKey[];
      readonly kms: 'file' | 'module';
      readonly keyFile: string | undefined;
      readonly module: string | undefined;
    };

/**
 * Checks the key variables of a worker or gateway (CAIRN_DP_ENCRYPTION_KEYS, or
 * CAIRN_DP_WRAPPED_ENCRYPTION_KEYS with CAIRN_DP_KMS and its settings): returns the key source,
 * or the problems, one line per variable, in the format of the config errors.
 */
export function keySourceOf(raw: {
  plain: KeyRing | undefined;
  wrapped: WrappedKey[] | undefined;
  kms: 'file' | 'module' | undefined;
  keyFile: string | undefined;
  module: string | undefined;
}): KeySource | { problems: string[] } {
  if (raw.plain && raw.wrapped) {
    return {
      problems: [
        '  CAIRN_DP_ENCRYPTION_KEYS, CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: set one of them (the keys, or the keys wrapped by your KMS), not both',
      ],
    };
  }
  if (raw.plain) return { kind: 'plain', ring: raw.plain };
  if (!raw.wrapped) {
    return {
      problems: [
        '  CAIRN_DP_ENCRYPTION_KEYS: is required (id:base64key[,id:base64key...], the first encrypts new data), or CAIRN_DP_WRAPPED_ENCRYPTION_KEYS with CAIRN_DP_KMS',
      ],
    };
  }
  const problems: string[] = [];
  if (raw.kms === undefined) problems.push('  CAIRN_DP_KMS: is required with CAIRN_DP_WRAPPED_ENCRYPTION_KEYS (file or module)');
  if (raw.kms === 'file' && raw.keyFile === undefined)
    problems.push('  CAIRN_DP_KMS_KEY_FILE: is required with CAIRN_DP_KMS=file (a file holding the base64 key-encryption key)');
  if (raw.kms === 'module' && raw.module === undefined)
    problems.push('  CAIRN_DP_KMS_MODULE: is required with CAIRN_DP_KMS=module (an ES module exporting (env) => KeyWrapper)');
  if (problems.length > 0 || raw.kms === undefined) return { problems };
  return { kind: 'envelope', wrapped: raw.wrapped, kms: raw.kms, keyFile: raw.keyFile, module: raw.module };
}

/** The key ring of a key source: unwrapped through the KMS in envelope mode (once, at start-up). */
export async function keyRingOf(source: KeySource, env: Record<string, string | undefined>): Promise<KeyRing> {
  if (source.kind === 'plain') return source.ring;
  const wrapper = await loadKeyWrapper(source.kms, { keyFile: source.keyFile, module: source.module, env });
  return unwrapKeyRing(source.wrapped, wrapper);
}

/**
 * The cross-variable check of the key variables on their raw values (for `loadConfig`'s `check`):
 * one of CAIRN_DP_ENCRYPTION_KEYS and CAIRN_DP_WRAPPED_ENCRYPTION_KEYS, and what the KMS needs.
 */
export function keyVariableProblems(values: Readonly<Record<string, string | undefined>>): string[] {
  const plain = values['CAIRN_DP_ENCRYPTION_KEYS'] !== undefined;
  const wrapped = values['CAIRN_DP_WRAPPED_ENCRYPTION_KEYS'] !== undefined;
  const kms = values['CAIRN_DP_KMS'];
  if (plain && wrapped) {
    return [
      '  CAIRN_DP_ENCRYPTION_KEYS, CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: set one of them (the keys, or the keys wrapped by your KMS), not both',
    ];
  }
  if (plain) return [];
  if (!wrapped) {
    return [
      '  CAIRN_DP_ENCRYPTION_KEYS: is required (id:base64key[,id:base64key...], the first encrypts new data), or CAIRN_DP_WRAPPED_ENCRYPTION_KEYS with CAIRN_DP_KMS',
    ];
  }
  if (kms === undefined) return ['  CAIRN_DP_KMS: is required with CAIRN_DP_WRAPPED_ENCRYPTION_KEYS (file or module)'];
  if (kms === 'file' && values['CAIRN_DP_KMS_KEY_FILE'] === undefined)
    return ['  CAIRN_DP_KMS_KEY_FILE: is required with CAIRN_DP_KMS=file (a file holding the base64 key-encryption key)'];
  if (kms === 'module' && values['CAIRN_DP_KMS_MODULE'] === undefined)
    return ['  CAIRN_DP_KMS_MODULE: is required with CAIRN_DP_KMS=module (an ES module exporting (env) => KeyWrapper)'];
  return [];
}
