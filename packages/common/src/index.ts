export * from './core.js';
export { env, loadConfig } from './config.js';
export { createLogger, type Logger } from './logger.js';
