import { z } from 'zod';
import { CairnError, ErrorCodes } from './errors.js';

/**
 * Validates environment variables into one typed, frozen config object. On failure it throws a
 * CairnError naming every bad variable and what it expects; values are never echoed, since they
 * may be secrets.
 */
export function loadConfig<Shape extends z.ZodRawShape>(
  component: string,
  shape: Shape,
  env: Record<string, string | undefined> = process.env,
): Readonly<z.infer<z.ZodObject<Shape>>> {
  const schema = z.object(shape);
  const picked: Record<string, string | undefined> = {};
  for (const key of Object.keys(shape)) picked[key] = env[key] === '' ? undefined : env[key];
  const result = schema.safeParse(picked);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const name = issue.path.join('.') || '(environment)';
      return `  ${name}: ${issue.message}`;
    });
    throw new CairnError(
      ErrorCodes.INVALID_CONFIG,
      `${component} cannot start: invalid environment:\n${lines.join('\n')}\nSet these variables and start again.`,
    );
  }
  return Object.freeze(result.data);
}

/** Helpers for common environment variable types. */
export const env = {
  /** A positive integer given as a decimal string. */
  int: (defaultValue?: number) => {
    const base = z
      .string()
      .regex(/^\d+$/, 'expected a whole number')
      .transform((s) => Number.parseInt(s, 10));
    return defaultValue === undefined ? base : base.optional().transform((v) => v ?? defaultValue);
  },
  /** A TCP port. */
  port: (defaultValue?: number) => {
    const base = z
      .string()
      .regex(/^\d+$/, 'expected a port number')
      .transform((s) => Number.parseInt(s, 10))
      .refine((n) => n >= 0 && n <= 65535, 'expected a port between 0 and 65535');
    return defaultValue === undefined ? base : base.optional().transform((v) => v ?? defaultValue);
  },
  /** A required non-empty string. */
  string: () => z.string({ error: 'is required' }).min(1, 'must not be empty'),
  /** An optional string. */
  optionalString: () => z.string().optional(),
  /** A postgres connection URL. */
  postgresUrl: () =>
    z.string({ error: 'is required (a postgres:// connection URL)' }).regex(/^postgres(ql)?:\/\//, 'expected a postgres:// connection URL'),
  /** A boolean: true/false/1/0. */
  bool: (defaultValue: boolean) =>
    z
      .enum(['true', 'false', '1', '0'], { error: 'expected true or false' })
      .optional()
      .transform((v) => (v === undefined ? defaultValue : v === 'true' || v === '1')),
  /** A log level. */
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
};
