export { CairnError, ErrorCodes, type ErrorCodeString } from './errors.js';
export {
  DIGEST_PATTERN,
  ID_PATTERN,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  VERSION_MAX_LENGTH,
  VERSION_PATTERN,
  assertName,
  assertVersion,
  isId,
  isName,
  isVersion,
  newId,
} from './names.js';
export { env, loadConfig } from './config.js';
export { createLogger, type Logger } from './logger.js';
