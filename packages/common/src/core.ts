// The dependency-free part of @cairn/common: error codes, the base error class and identifier
// checks. What a workflow author imports (the SDK) uses only this entry point, so it pulls in no
// logger, configuration or server library.
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
