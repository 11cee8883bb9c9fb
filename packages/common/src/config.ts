import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { CairnError, ErrorCodes } from './errors.js';

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /**
   * Variables that hold keys or secrets: each may instead be given as `<NAME>_FILE`, the path of a
   * file holding the value (a mounted Kubernetes Secret, say), so the value need not sit in the
   * process environment. Setting both is an error; a trailing newline in the file is ignored.
   */
  readonly secrets?: readonly string[];
  /**
   * Checks across variables (one of two required, say), on the raw values after `*_FILE` was
   * read: each returned line (`  NAME: problem`) is reported with the other problems.
   */
  readonly check?: (values: Readonly<Record<string, string | undefined>>) => string[];
}

/**
 * Validates environment variables into one typed, frozen config object. On failure it throws a
 * CairnError naming every bad variable and what it expects; values are never echoed, since they
 * may be secrets (a `*_FILE` variant is named with its path, never its contents).
 */
export function loadConfig<Shape extends z.ZodRawShape>(
  component: string,
  shape: Shape,
  env: Record<string, string | undefined> = process.env,
  options: LoadConfigOptions = {},
): Readonly<z.infer<z.ZodObject<Shape>>> {
  const schema = z.object(shape);
  const picked: Record<string, string | undefined> = {};
  for (const key of Object.keys(shape)) picked[key] = env[key] === '' ? undefined : env[key];
  const fileProblems: string[] = [];
  for (const key of options.secrets ?? []) {
    if (!(key in shape)) continue;
    const fileVariable = `${key}_FILE`;
    const path = env[fileVariable] === '' ? undefined : env[fileVariable];
    if (path === undefined) continue;
    if (picked[key] !== undefined) {
      fileProblems.push(`  ${key}, ${fileVariable}: set one of them (the value, or the file holding it), not both`);
      continue;
    }
    const read = readSecretFile(path);
    if ('problem' in read) fileProblems.push(`  ${fileVariable}: ${read.problem}`);
    else picked[key] = read.value;
  }
  fileProblems.push(...(options.check?.(picked) ?? []));
  const result = schema.safeParse(picked);
  if (!result.success || fileProblems.length > 0) {
    const issues = result.success ? [] : result.error.issues;
    const lines = [
      ...fileProblems,
      ...issues
        // A variable whose file could not be read is reported once, as the file's problem.
        .filter((issue) => !fileProblems.some((p) => p.startsWith(`  ${String(issue.path[0])}_FILE:`)))
        .map((issue) => {
          const name = issue.path.join('.') || '(environment)';
          const fromFile = options.secrets?.includes(name) && env[`${name}_FILE`] ? ` (read from ${name}_FILE)` : '';
          return `  ${name}${fromFile}: ${issue.message}`;
        }),
    ];
    throw new CairnError(
      ErrorCodes.INVALID_CONFIG,
      `${component} cannot start: invalid environment:\n${lines.join('\n')}\nSet these variables and start again.`,
    );
  }
  return Object.freeze(result.data);
}

/** Reads a secret from a file: its contents without the trailing newline(s); never echoes them. */
export function readSecretFile(path: string): { value: string } | { problem: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return { problem: `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  const value = text.replace(/[\r\n]+$/, '');
  if (value === '') return { problem: `${path} is empty` };
  return { value };
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

/**
 * The values of `OTEL_TRACES_SAMPLER` the OpenTelemetry SDK knows (it ignores any other with a
 * warning); each process checks the variable against them so a misspelt sampler stops start-up.
 */
export const OTEL_TRACES_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
