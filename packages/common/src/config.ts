import { isIP } from 'node:net';
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
  /** The data plane's residency mode: `standard` (default) or `strict` (names cross as keyed digests). */
  residency: () => z.enum(['standard', 'strict']).optional().default('standard'),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
  /**
   * Proxies whose `X-Forwarded-For` is believed, so a client's own address is what the credential
   * throttle counts: comma-separated addresses or CIDR ranges (`10.0.0.0/8`), or `loopback`,
   * `linklocal`, `uniquelocal`. Unset: the socket's address (the proxy's, behind one).
   */
  trustedProxies: () =>
    z
      .string()
      .optional()
      .transform((value, ctx) => {
        const entries = (value ?? '')
          .split(',')
          .map((e) => e.trim())
          .filter((e) => e !== '');
        const bad = entries.filter((e) => !isProxyEntry(e));
        if (bad.length > 0) {
          ctx.addIssue({
            code: 'custom',
            message: `expected comma-separated addresses or CIDR ranges (10.0.0.0/8, fd00::/8) or loopback, linklocal, uniquelocal; ${bad.length} entr${bad.length === 1 ? 'y is' : 'ies are'} not`,
          });
        }
        return Object.freeze(entries);
      }),
};

function isProxyEntry(entry: string): boolean {
  if (entry === 'loopback' || entry === 'linklocal' || entry === 'uniquelocal') return true;
  const [address, bits, extra] = entry.split('/');
  if (extra !== undefined || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}
