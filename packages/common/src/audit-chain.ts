// The audit chain's hash and checkpoint formats, and a verifier that recomputes them. The control
// plane seals and signs with these functions and the CLI verifies with the same ones, so the two
// cannot drift; docs/audit.md states the formats for anyone who wants to recompute them with other
// tools (RFC 8785 canonical JSON, SHA-256, Ed25519).
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import { CairnError, ErrorCodes } from './errors.js';

/** The "previous hash" of a chain's first entry: 64 zeros. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

/** The `format` of a signed checkpoint; a verifier refuses any other. */
export const AUDIT_CHECKPOINT_FORMAT = 'cairn.audit.checkpoint.v1';

const HEX64 = /^[0-9a-f]{64}$/;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** One sealed entry as the chain covers it: every stored field, with its position and stored hash. */
export interface AuditChainEntry {
  /** The entry's ID, a decimal string. */
  readonly id: string;
  readonly position: number;
  /** ISO 8601 UTC with microseconds, exactly as the API returns it (`2026-11-27T10:00:00.123456Z`). */
  readonly occurredAt: string;
  readonly organizationId: string;
  readonly projectId: string;
  readonly actorType: string;
  readonly actorId: string | null;
  readonly action: string;
  readonly targetType: string;
  readonly targetId: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The hash stored with the entry (what the server claims); null when it was never sealed. */
  readonly hash: string | null;
}

/** The fields of an entry the hash covers (the stored hash itself is not among them). */
export type AuditHashedEntry = Omit<AuditChainEntry, 'position' | 'hash'>;

function jcs(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (cause) {
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `${what} is not plain JSON: ${(cause as Error).message}`, { cause });
  }
  if (text === undefined) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `${what} is not plain JSON`);
  return text;
}

/**
 * The text an entry's hash covers: the RFC 8785 (JCS) canonical JSON of
 * `{position, id, organizationId, projectId, occurredAt, actorType, actorId, action, targetType,
 * targetId, metadata}`.
 */
export function auditHashInput(entry: AuditHashedEntry, position: number): string {
  return jcs(
    {
      position,
      id: entry.id,
      organizationId: entry.organizationId,
      projectId: entry.projectId,
      occurredAt: entry.occurredAt,
      actorType: entry.actorType,
      actorId: entry.actorId,
      action: entry.action,
      targetType: entry.targetType,
      targetId: entry.targetId,
      metadata: entry.metadata,
    },
    `audit entry ${entry.id}`,
  );
}

/** `hash(n) = hex(SHA-256(UTF-8(hash(n-1) + auditHashInput(entry, n))))`, with hash(0) = 64 zeros. */
export function auditEntryHash(previousHash: string, entry: AuditHashedEntry, position: number): string {
  return createHash('sha256').update(previousHash, 'utf8').update(auditHashInput(entry, position), 'utf8').digest('hex');
}

/** A project's chain head signed by the control plane: the evidence a customer keeps. */
export interface AuditCheckpoint {
  readonly format: typeof AUDIT_CHECKPOINT_FORMAT;
  readonly organizationId: string;
  readonly projectId: string;
  /** The last sealed position the checkpoint covers (0 for an empty chain). */
  readonly position: number;
  /** The chain's hash at that position (64 zeros for an empty chain). */
  readonly hash: string;
  /** How many entries the chain held up to that position. */
  readonly entries: number;
  /** When it was signed, ISO 8601 UTC with milliseconds. */
  readonly signedAt: string;
  /** Which signing key: look it up among the keys published at `/.well-known/cairn-audit-keys`. */
  readonly keyId: string;
  readonly algorithm: 'Ed25519';
  /** Ed25519 over {@link auditCheckpointSigningInput}, base64url without padding. */
  readonly signature: string;
}

export type UnsignedAuditCheckpoint = Omit<AuditCheckpoint, 'signature' | 'keyId' | 'algorithm' | 'format'>;

/** The text a checkpoint's signature covers: the RFC 8785 canonical JSON of every field but `signature`. */
export function auditCheckpointSigningInput(checkpoint: Omit<AuditCheckpoint, 'signature'>): string {
  return jcs(
    {
      format: checkpoint.format,
      organizationId: checkpoint.organizationId,
      projectId: checkpoint.projectId,
      position: checkpoint.position,
      hash: checkpoint.hash,
      entries: checkpoint.entries,
      signedAt: checkpoint.signedAt,
      keyId: checkpoint.keyId,
      algorithm: checkpoint.algorithm,
    },
    'audit checkpoint',
  );
}

/** A key that signs checkpoints. */
export interface AuditSigningKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** A key that verifies checkpoints. */
export interface AuditPublicKey {
  readonly keyId: string;
  readonly publicKey: KeyObject;
}

/** A published key: a JWK (OKP, Ed25519) with its SPKI PEM beside it for tools that prefer PEM. */
export interface AuditPublicKeyJwk {
  readonly kid: string;
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly alg: 'EdDSA';
  readonly use: 'sig';
  readonly x: string;
  readonly pem: string;
}

function assertEd25519(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CairnError(
      ErrorCodes.AUDIT_CHECKPOINT_INVALID,
      `${what} is a ${key.asymmetricKeyType ?? 'symmetric'} key; audit checkpoints use Ed25519 keys (openssl genpkey -algorithm ed25519)`,
    );
  }
}

/** The default key ID of a public key: `ed25519-` and the first 16 hex digits of SHA-256 over its raw 32 bytes. */
export function auditKeyId(publicKey: KeyObject): string {
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  return `ed25519-${createHash('sha256').update(raw).digest('hex').slice(0, 16)}`;
}

/**
 * Reads a signing key from PEM (PKCS#8, as `openssl genpkey -algorithm ed25519` writes it). The key
 * ID defaults to {@link auditKeyId} of its public half.
 */
export function loadAuditSigningKey(pem: string, keyId?: string): AuditSigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new CairnError(
      ErrorCodes.AUDIT_CHECKPOINT_INVALID,
      'the audit signing key is not a PEM private key: create one with `openssl genpkey -algorithm ed25519`',
      { cause },
    );
  }
  assertEd25519(privateKey, 'the audit signing key');
  const publicKey = createPublicKey(privateKey);
  const id = keyId ?? auditKeyId(publicKey);
  if (!KEY_ID.test(id)) {
    throw new CairnError(
      ErrorCodes.AUDIT_CHECKPOINT_INVALID,
      'an audit key ID is 1 to 64 letters, digits and . _ : - (starting with a letter or digit)',
    );
  }
  return { keyId: id, privateKey, publicKey };
}

/** A public key as published: JWK members plus its PEM. */
export function auditPublicKeyJwk(key: AuditPublicKey): AuditPublicKeyJwk {
  const jwk = key.publicKey.export({ format: 'jwk' });
  return {
    kid: key.keyId,
    kty: 'OKP',
    crv: 'Ed25519',
    alg: 'EdDSA',
    use: 'sig',
    x: jwk.x ?? '',
    pem: key.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

const jwkShape = z.object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string().min(1), kid: z.string().optional() });

/**
 * Reads public keys a user pinned: SPKI PEM, the raw 32-byte key in base64url (a JWK's `x`), one
 * JWK, or a JWK set such as `/.well-known/cairn-audit-keys` serves. A key without a `kid` gets
 * {@link auditKeyId}.
 */
export function parseAuditPublicKeys(text: string, source: string): AuditPublicKey[] {
  const bad = (why: string, cause?: unknown): CairnError =>
    new CairnError(
      ErrorCodes.AUDIT_CHECKPOINT_INVALID,
      `${source} is not an audit public key (${why}): give the PEM or the JSON that \`cairn audit keys\` prints, or the key's base64url value`,
      cause === undefined ? undefined : { cause },
    );
  const fromJwk = (value: unknown): AuditPublicKey => {
    const parsed = jwkShape.safeParse(value);
    if (!parsed.success) throw bad('a JWK must be {"kty":"OKP","crv":"Ed25519","x":…}');
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: parsed.data.x }, format: 'jwk' });
    } catch (cause) {
      throw bad('its x is not an Ed25519 key', cause);
    }
    return { keyId: parsed.data.kid ?? auditKeyId(publicKey), publicKey };
  };
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: trimmed, format: 'pem' });
    } catch (cause) {
      throw bad('unreadable PEM', cause);
    }
    if (publicKey.asymmetricKeyType !== 'ed25519') throw bad(`a ${publicKey.asymmetricKeyType ?? 'symmetric'} key, not Ed25519`);
    return [{ keyId: auditKeyId(publicKey), publicKey }];
  }
  if (trimmed.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (cause) {
      throw bad('invalid JSON', cause);
    }
    if (typeof json === 'object' && json !== null && Array.isArray((json as { keys?: unknown }).keys)) {
      const keys = (json as { keys: unknown[] }).keys.map(fromJwk);
      if (keys.length === 0) throw bad('the key set is empty');
      return keys;
    }
    return [fromJwk(json)];
  }
  if (/^[A-Za-z0-9_-]{43}$/.test(trimmed)) return [fromJwk({ kty: 'OKP', crv: 'Ed25519', x: trimmed })];
  throw bad('neither PEM, JSON nor a 43-character base64url key');
}

/** Signs a checkpoint of a chain head. */
export function signAuditCheckpoint(head: UnsignedAuditCheckpoint, key: AuditSigningKey): AuditCheckpoint {
  const unsigned = { format: AUDIT_CHECKPOINT_FORMAT, ...head, keyId: key.keyId, algorithm: 'Ed25519' } as const;
  const signature = sign(null, Buffer.from(auditCheckpointSigningInput(unsigned), 'utf8'), key.privateKey).toString('base64url');
  return { ...unsigned, signature };
}

const isoMillis = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const checkpointShape = z.object({
  format: z.literal(AUDIT_CHECKPOINT_FORMAT, { error: `expected "${AUDIT_CHECKPOINT_FORMAT}"` }),
  organizationId: z.string().min(1).max(64),
  projectId: z.string().min(1).max(64),
  position: z.number().int().min(0),
  hash: z.string().regex(HEX64, 'expected 64 lowercase hex digits'),
  entries: z.number().int().min(0),
  signedAt: z.string().regex(isoMillis, 'expected an ISO 8601 UTC time with milliseconds'),
  keyId: z.string().regex(KEY_ID, 'expected a key ID'),
  algorithm: z.literal('Ed25519'),
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'expected an Ed25519 signature in base64url (86 characters)'),
});

/**
 * Checks the shape of a checkpoint read from a file or an answer and returns it (fields beyond the
 * checkpoint's own, such as a saved public key, are left out). Throws `CAIRN-1151` naming each bad
 * field.
 */
export function parseAuditCheckpoint(value: unknown, source: string): AuditCheckpoint {
  const parsed = checkpointShape.safeParse(value);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new CairnError(
      ErrorCodes.AUDIT_CHECKPOINT_INVALID,
      `${source} is not an audit checkpoint (${fields}): use a file \`cairn audit checkpoint --out FILE\` wrote`,
    );
  }
  return parsed.data;
}

/** The outcome of checking a checkpoint's signature. */
export type AuditSignatureCheck =
  | { readonly ok: true; readonly keyId: string }
  | { readonly ok: false; readonly reason: 'unknown_key' | 'signature_mismatch'; readonly detail: string };

/** Checks a checkpoint's Ed25519 signature with the key of its `keyId` among `keys`. */
export function verifyAuditCheckpointSignature(checkpoint: AuditCheckpoint, keys: readonly AuditPublicKey[]): AuditSignatureCheck {
  const key = keys.find((k) => k.keyId === checkpoint.keyId);
  if (!key) {
    return {
      ok: false,
      reason: 'unknown_key',
      detail: `the checkpoint names signing key ${checkpoint.keyId}, which is not among the trusted keys (${keys.map((k) => k.keyId).join(', ') || 'none'})`,
    };
  }
  const { signature, ...unsigned } = checkpoint;
  const valid = verify(
    null,
    Buffer.from(auditCheckpointSigningInput(unsigned), 'utf8'),
    key.publicKey,
    Buffer.from(signature, 'base64url'),
  );
  if (!valid) {
    return {
      ok: false,
      reason: 'signature_mismatch',
      detail: `the signature does not verify with key ${key.keyId}: the checkpoint was changed after it was signed, or another key signed it`,
    };
  }
  return { ok: true, keyId: key.keyId };
}

/** Why a chain does not verify. */
export type AuditBreakReason =
  /** A position is missing: entries were deleted. */
  | 'missing_entry'
  /** Positions go backwards or repeat. */
  | 'out_of_order'
  /** A stored hash differs from the recomputed one: the entry (or one before it) was changed. */
  | 'hash_mismatch'
  /** The chain stops before the head the server recorded. */
  | 'head_mismatch'
  /** The chain stops before a checkpoint's position: entries were deleted from the end, or the log was truncated. */
  | 'truncated'
  /** At a checkpoint's position the recomputed hash differs from the signed one: the history was rewritten. */
  | 'checkpoint_mismatch'
  /** A stored checkpoint's signature does not verify: it was forged or changed. */
  | 'checkpoint_rejected';

/** The first place a chain fails. */
export interface AuditChainBreak {
  readonly position: number;
  readonly entryId: string | null;
  readonly reason: AuditBreakReason;
  readonly detail: string;
  readonly expectedHash?: string;
  readonly storedHash?: string | null;
}

/** What a walk of the chain found. */
export type AuditChainVerification =
  | { readonly ok: true; readonly entries: number; readonly head: { position: number; hash: string } | null }
  | {
      readonly ok: false;
      readonly entries: number;
      readonly head: { position: number; hash: string } | null;
      readonly broken: AuditChainBreak;
    };

/** A signed head the chain must still contain. */
export interface AuditAnchor {
  readonly position: number;
  readonly hash: string;
  /** Names the anchor in messages, e.g. "the checkpoint signed at 2026-…". */
  readonly label: string;
}

/**
 * Walks a chain entry by entry, in position order, recomputing every hash from the genesis hash; it
 * never trusts a stored hash, only compares with it. Checks, in the order met: positions without
 * gaps, each stored hash, and at each anchor's position the recomputed hash; at the end, that the
 * chain reaches every anchor and the head the server recorded.
 */
export class AuditChainVerifier {
  #previous = AUDIT_GENESIS_HASH;
  #count = 0;
  #broken: AuditChainBreak | null = null;
  readonly #anchors: ReadonlyMap<number, AuditAnchor[]>;
  readonly #furthest: AuditAnchor | null;

  /**
   * `from`: start after a point already verified (a position and its hash, such as a checkpoint
   * this control plane signed) instead of the genesis; anchors at or before it are not checked.
   */
  constructor(anchors: readonly AuditAnchor[] = [], from?: { readonly position: number; readonly hash: string }) {
    if (from) {
      this.#previous = from.hash;
      this.#count = from.position;
      anchors = anchors.filter((a) => a.position > from.position);
    }
    const byPosition = new Map<number, AuditAnchor[]>();
    for (const a of anchors) byPosition.set(a.position, [...(byPosition.get(a.position) ?? []), a]);
    this.#anchors = byPosition;
    this.#furthest = anchors.reduce<AuditAnchor | null>((max, a) => (max === null || a.position > max.position ? a : max), null);
  }

  /** How many entries verified so far. */
  get entries(): number {
    return this.#count;
  }

  /** The first break found, if any (the walk stops checking there). */
  get broken(): AuditChainBreak | null {
    return this.#broken;
  }

  /** Checks the next entry; returns the break when this entry is where the chain fails. */
  add(entry: AuditChainEntry): AuditChainBreak | null {
    if (this.#broken) return this.#broken;
    const expected = this.#count + 1;
    if (entry.position !== expected) {
      this.#broken =
        entry.position > expected
          ? {
              position: expected,
              entryId: entry.id,
              reason: 'missing_entry',
              detail: `no entry at position ${expected}: the chain jumps to position ${entry.position} (entry ${entry.id}); entries were deleted`,
            }
          : {
              position: entry.position,
              entryId: entry.id,
              reason: 'out_of_order',
              detail: `entry ${entry.id} claims position ${entry.position} after position ${expected - 1}: positions repeat or go backwards`,
            };
      return this.#broken;
    }
    const hash = auditEntryHash(this.#previous, entry, expected);
    if (hash !== entry.hash) {
      this.#broken = {
        position: expected,
        entryId: entry.id,
        reason: 'hash_mismatch',
        detail: `entry ${entry.id} at position ${expected} does not match its hash: the entry (or the one before it) was changed after it was sealed`,
        expectedHash: hash,
        storedHash: entry.hash,
      };
      return this.#broken;
    }
    for (const anchor of this.#anchors.get(expected) ?? []) {
      if (anchor.hash !== hash) {
        this.#broken = {
          position: expected,
          entryId: entry.id,
          reason: 'checkpoint_mismatch',
          detail:
            `the chain's hash at position ${expected} is not the one ${anchor.label} signed: ` +
            'the history up to that position was rewritten (changed entries whose later hashes were recomputed, or a log truncated and written again)',
          expectedHash: anchor.hash,
          storedHash: hash,
        };
        return this.#broken;
      }
    }
    this.#previous = hash;
    this.#count = expected;
    return null;
  }

  /**
   * The result, given the head the server recorded (null: it recorded none; undefined: not
   * known). Anchors are checked before the server's head: a signed checkpoint outranks an
   * unsigned record.
   */
  finish(serverHead?: { position: number; hash: string } | null): AuditChainVerification {
    const last = this.#count;
    const head = last === 0 ? null : { position: last, hash: this.#previous };
    const fail = (broken: AuditChainBreak): AuditChainVerification => ({ ok: false, entries: last, head, broken });
    if (this.#broken) return fail(this.#broken);
    const genesis = [...(this.#anchors.get(0) ?? [])].find((a) => a.hash !== AUDIT_GENESIS_HASH);
    if (genesis) {
      return fail({
        position: 0,
        entryId: null,
        reason: 'checkpoint_mismatch',
        detail: `${genesis.label} covers position 0 with a hash other than the genesis hash: it is not a checkpoint of this chain`,
        expectedHash: genesis.hash,
        storedHash: AUDIT_GENESIS_HASH,
      });
    }
    if (this.#furthest && this.#furthest.position > last) {
      return fail({
        position: last + 1,
        entryId: null,
        reason: 'truncated',
        detail:
          `the chain ends at position ${last} but ${this.#furthest.label} covers position ${this.#furthest.position}: ` +
          'entries were deleted from the end, or the log was truncated',
        expectedHash: this.#furthest.hash,
        storedHash: head?.hash ?? null,
      });
    }
    if (serverHead === undefined) return { ok: true, entries: last, head };
    if (serverHead === null) {
      if (last === 0) return { ok: true, entries: 0, head: null };
      return fail({
        position: last,
        entryId: null,
        reason: 'head_mismatch',
        detail: `the chain has ${last} sealed entries but no recorded head: the head record was deleted`,
        storedHash: this.#previous,
      });
    }
    if (serverHead.position > last) {
      return fail({
        position: last + 1,
        entryId: null,
        reason: 'missing_entry',
        detail: `the chain ends at position ${last} but was sealed up to position ${serverHead.position}: the newest entries were deleted`,
        expectedHash: serverHead.hash,
        storedHash: head?.hash ?? null,
      });
    }
    if (serverHead.position !== last || serverHead.hash !== this.#previous) {
      return fail({
        position: last + 1,
        entryId: null,
        reason: 'head_mismatch',
        detail: `the chain's last hash does not match the recorded head at position ${serverHead.position}`,
        expectedHash: serverHead.hash,
        storedHash: head?.hash ?? null,
      });
    }
    return { ok: true, entries: last, head };
  }
}

/** Where a pruned chain starts, as `GET …/audit/chain` serves it (`anchor`): the signed checkpoint at the cut. */
export interface AuditPruneAnchor {
  readonly position: number;
  readonly hash: string;
  readonly entries: number;
  readonly pruned: number;
  readonly prunedBefore: string;
  readonly prunedAt: string;
  readonly checkpoint: AuditCheckpoint;
}

/** Where to start verifying a pruned chain, or why its anchor cannot be a start. */
export type AuditPrunedStart =
  | {
      readonly ok: true;
      /** Start the verifier here (`new AuditChainVerifier(anchors, from)`). */
      readonly from: { readonly position: number; readonly hash: string };
      /** Kept checkpoints at or before the cut: their entries were pruned under the policy (the one at the cut is checked). */
      readonly covered: readonly AuditAnchor[];
    }
  | { readonly ok: false; readonly broken: AuditChainBreak };

/**
 * Checks the anchor of a pruned chain before a verifier starts from it: its checkpoint's signature
 * (`signature`, checked by the caller with the keys it trusts) must verify, the anchor must be that
 * checkpoint's position and hash, and a kept checkpoint at the same position must have the same
 * hash. Kept checkpoints before the cut are returned as covered: the entries they sign were
 * deleted under the retention policy, after the control plane signed the anchor (which it signs
 * only for a head that chains from its previous checkpoint).
 */
export function auditPrunedStart(anchor: AuditPruneAnchor, signature: AuditSignatureCheck, kept: readonly AuditAnchor[]): AuditPrunedStart {
  const fail = (reason: AuditBreakReason, detail: string, expectedHash?: string): AuditPrunedStart => ({
    ok: false,
    broken: {
      position: anchor.position,
      entryId: null,
      reason,
      detail,
      ...(expectedHash === undefined ? {} : { expectedHash, storedHash: anchor.hash }),
    },
  });
  if (!signature.ok) {
    return fail(
      'checkpoint_rejected',
      `the chain was pruned up to position ${anchor.position}, but the checkpoint recorded at the cut does not verify: ${signature.detail}`,
    );
  }
  if (anchor.checkpoint.position !== anchor.position || anchor.checkpoint.hash !== anchor.hash) {
    return fail(
      'checkpoint_rejected',
      `the prune anchor (position ${anchor.position}) is not the checkpoint recorded with it (position ${anchor.checkpoint.position}): the anchor was changed`,
    );
  }
  for (const k of kept) {
    if (k.position === anchor.position && k.hash !== anchor.hash) {
      return fail(
        'checkpoint_mismatch',
        `the chain was pruned up to position ${anchor.position} with a hash there that is not the one ${k.label} signed: the history up to that position was rewritten`,
        k.hash,
      );
    }
  }
  return { ok: true, from: { position: anchor.position, hash: anchor.hash }, covered: kept.filter((k) => k.position <= anchor.position) };
}
