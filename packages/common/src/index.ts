export * from './core.js';
export { env, loadConfig } from './config.js';
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
