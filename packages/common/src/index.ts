export * from './core.js';
export { env, loadConfig } from './config.js';
export { createLogger, type Logger } from './logger.js';
export { schemaDigest } from './schema-digest.js';
