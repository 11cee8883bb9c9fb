export * from './core.js';
export { env, loadConfig, readSecretFile, type LoadConfigOptions } from './config.js';
export { createLogger, type Logger } from './logger.js';
export { schemaDigest } from './schema-digest.js';
export {
  CREDENTIAL_PREFIX_LENGTH,
  CredentialThrottle,
  TOKEN_MIN_BITS,
  TOKEN_MIN_LENGTH,
  credentialThrottled,
  retryAfterSeconds,
  sourceOf,
  weakTokenReason,
  type CredentialAttempt,
  type CredentialThrottleOptions,
  type ThrottleLimits,
} from './credentials.js';
export {
  AUDIT_CHECKPOINT_FORMAT,
  AUDIT_GENESIS_HASH,
  AuditChainVerifier,
  auditCheckpointSigningInput,
  auditEntryHash,
  auditHashInput,
  auditKeyId,
  auditPublicKeyJwk,
  loadAuditSigningKey,
  parseAuditCheckpoint,
  parseAuditPublicKeys,
  signAuditCheckpoint,
  verifyAuditCheckpointSignature,
  type AuditAnchor,
  type AuditBreakReason,
  type AuditChainBreak,
  type AuditChainEntry,
  type AuditChainVerification,
  type AuditCheckpoint,
  type AuditHashedEntry,
  type AuditPublicKey,
  type AuditPublicKeyJwk,
  type AuditSignatureCheck,
  type AuditSigningKey,
  type UnsignedAuditCheckpoint,
} from './audit-chain.js';
