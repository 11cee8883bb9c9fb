/**
 * One reason a value does not match its schema: where (a JSON Pointer, RFC 6901: `''` is the value
 * itself, `/items/0/sku` a nested field) and what was expected. The gateway answers a 400 with a
 * list of them, and the worker stores them with a run that failed on its input.
 *
 * @example
 * ```ts
 * const issue: SchemaIssue = { path: '/amount', message: 'must be >= 0' };
 * ```
 */
export interface SchemaIssue {
  readonly path: string;
  readonly message: string;
}

/** Issues as one line for a message: `/amount must be >= 0; /currency is required`. */
export function describeIssues(issues: readonly SchemaIssue[], limit = 10): string {
  const shown = issues.slice(0, limit).map((i) => `${i.path === '' ? '(the value)' : i.path} ${i.message}`);
  const more = issues.length > limit ? `; and ${issues.length - limit} more` : '';
  return `${shown.join('; ')}${more}`;
}
