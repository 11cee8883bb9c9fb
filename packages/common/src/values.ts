/**
 * Whether a value is an object (and not null). The first check on options that a JavaScript
 * caller passed: their declared type says object, but untyped code can pass anything.
 */
export function isNonNullObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}
