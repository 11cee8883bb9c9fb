import {
  CairnError,
  ErrorCodes,
  env,
  isName,
  loadAuditSigningKey,
  loadConfig,
  parseAuditPublicKeys,
  type AuditPublicKey,
  type AuditSigningKey,
} from '@cairn/common';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { telemetryConfig, telemetryShape, type TelemetryConfig } from './telemetry/telemetry.config.js';
import { tlsMaterialProblem, type TlsFiles, type TlsMaterial } from './tls-files.js';

/** Variables that may be given as `<NAME>_FILE` instead (CAIRN_AUDIT_SIGNING_KEY has its own pair). */
export const CONTROL_PLANE_SECRETS = [
  'CAIRN_CP_DATABASE_URL',
  'CAIRN_CP_MIGRATION_DATABASE_URL',
  'CAIRN_BOOTSTRAP_ADMIN_KEY',
  'CAIRN_METRICS_TOKEN',
] as const;

const positive = (defaultValue: number) => env.int(defaultValue).refine((n) => n > 0, 'expected a whole number greater than 0');

const databaseShape = {
  CAIRN_CP_DATABASE_URL: env.postgresUrl(),
  CAIRN_CP_DATABASE_POOL_SIZE: positive(20),
  CAIRN_LOG_LEVEL: env.logLevel(),
};

// Only the commands that change the schema read these; `serve` never holds the owner's credentials.
const migrationShape = {
  ...databaseShape,
  CAIRN_CP_DATABASE_URL: env.postgresUrl().optional(),
  CAIRN_CP_MIGRATION_DATABASE_URL: env.postgresUrl().optional(),
  CAIRN_CP_SERVICE_ROLE: z
    .string()
    .regex(/^[a-z_][a-z0-9_$]{0,62}$/, 'expected a PostgreSQL role name (lowercase letters, digits, _ and $)')
    .optional(),
  // `audit prune` only: the default cut-off (keep this many days) and the public key checkpoints are checked with.
  CAIRN_CP_AUDIT_RETENTION_DAYS: env
    .int()
    .optional()
    .refine((n) => n === undefined || (n >= 1 && n <= 999_999), 'expected a whole number of days from 1 to 999999'),
  CAIRN_AUDIT_PUBLIC_KEY: env.optionalString(),
};

const serveShape = {
  ...databaseShape,
  CAIRN_CP_HOST: z
    .string()
    .optional()
    .transform((v) => v ?? '0.0.0.0'),
  CAIRN_CP_HTTP_PORT: env.port(8080),
  CAIRN_CP_GRPC_PORT: env.port(7233),
  CAIRN_BOOTSTRAP_ADMIN_KEY: z
    .string()
    .optional()
    .refine((v) => v === undefined || (v.length >= 16 && v.length <= 512 && /^[\x21-\x7e]+$/.test(v)), {
      error: 'expected 16 to 512 printable characters without spaces',
    }),
  CAIRN_BOOTSTRAP_ORGANIZATION: z
    .string()
    .optional()
    .transform((v) => v ?? 'default')
    .refine((v) => isName(v), 'expected a name: a letter, then letters, digits, _ . - (at most 100)'),
  CAIRN_BOOTSTRAP_PROJECT: z
    .string()
    .optional()
    .transform((v) => v ?? 'default')
    .refine((v) => isName(v), 'expected a name: a letter, then letters, digits, _ . - (at most 100)'),
  CAIRN_DEV_MODE: env.bool(false),
  CAIRN_CP_GRPC_TLS_CERT_FILE: env.optionalString(),
  CAIRN_CP_GRPC_TLS_KEY_FILE: env.optionalString(),
  CAIRN_CP_GRPC_TLS_CLIENT_CA_FILE: env.optionalString(),
  CAIRN_CP_HTTP_TLS_CERT_FILE: env.optionalString(),
  CAIRN_CP_HTTP_TLS_KEY_FILE: env.optionalString(),
  CAIRN_LEASE_TTL_MS: positive(15_000),
  CAIRN_HEARTBEAT_INTERVAL_MS: positive(5_000),
  CAIRN_SWEEP_INTERVAL_MS: positive(500),
  CAIRN_SCHEDULE_TICK_INTERVAL_MS: positive(1_000),
  CAIRN_WAIT_MAX_MS: positive(60_000),
  CAIRN_SHUTDOWN_TIMEOUT_MS: positive(10_000),
  CAIRN_STARTUP_GRACE_MS: env.int().optional(),
  CAIRN_CP_TRUSTED_PROXIES: env.trustedProxies(),
  // The built console (apps/console/dist); 'off' serves none. Default: beside this app in the workspace or image.
  CAIRN_CP_CONSOLE_DIR: env.optionalString(),
  CAIRN_AUDIT_SIGNING_KEY: env.optionalString(),
  CAIRN_AUDIT_SIGNING_KEY_FILE: env.optionalString(),
  CAIRN_AUDIT_SIGNING_KEY_ID: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'expected 1 to 64 letters, digits and . _ : - (starting with a letter or digit)')
    .optional(),
  CAIRN_AUDIT_CHECKPOINT_INTERVAL_MS: env.int(3_600_000).refine((n) => n >= 1_000, 'expected at least 1000 (one second)'),
  // Limits: one credential must not exhaust a shared control plane (docs/install.md, "Limits").
  CAIRN_CP_DATABASE_STATEMENT_TIMEOUT_MS: env.int(30_000).refine((n) => n >= 0, 'expected 0 (no timeout) or more milliseconds'),
  CAIRN_CP_GRPC_MAX_MESSAGE_BYTES: env.int(4 * 1024 * 1024).refine((n) => n >= 64 * 1024, 'expected at least 65536 bytes'),
  CAIRN_CP_STREAM_SEND_QUEUE: positive(1_024),
  CAIRN_CP_STREAM_STALL_TIMEOUT_MS: positive(30_000),
  CAIRN_CP_MAX_SLOTS_PER_STREAM: positive(256),
  CAIRN_CP_MAX_STREAMS_PER_DATA_PLANE: positive(256),
  CAIRN_CP_MAX_WAITS_PER_DATA_PLANE: positive(512),
  CAIRN_CP_RATE_LIMIT_PER_KEY: positive(100),
  CAIRN_CP_RATE_LIMIT_PER_DATA_PLANE: positive(1_000),
  CAIRN_CP_RATE_LIMIT_PER_ORGANIZATION: positive(2_000),
  ...telemetryShape,
};

/** What `migrate` and `data-planes` need: the database only. */
export interface DatabaseConfig {
  readonly databaseUrl: string;
  readonly poolSize: number;
  readonly logLevel: string;
}

/**
 * What `migrate` (and the commands that migrate first) need: the owner's URL when the control
 * plane runs with a separate service role, and that role's name, to grant it what it needs.
 */
export interface MigrationConfig extends DatabaseConfig {
  /** The URL migrations run with (the schema owner's); the database URL when unset. */
  readonly migrationDatabaseUrl: string;
  /** The role `serve` runs as, granted its privileges after every migration; undefined: one role for everything. */
  readonly serviceRole: string | undefined;
  /** `audit prune` without --before/--keep-days keeps this many days (CAIRN_CP_AUDIT_RETENTION_DAYS). */
  readonly auditRetentionDays: number | undefined;
  /** The public keys `audit prune` checks checkpoints with when no --public-key is given (CAIRN_AUDIT_PUBLIC_KEY). */
  readonly auditPublicKeys: readonly AuditPublicKey[];
}

/** The validated, frozen configuration of a serving control plane. */
export interface ControlPlaneConfig extends DatabaseConfig {
  readonly host: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  /**
   * Self-hosted installs: an organisation-wide admin key made sure of at every start, in the
   * bootstrap organisation and project (created when missing). Undefined: no bootstrap.
   */
  readonly bootstrap: { readonly adminKey: string; readonly organization: string; readonly project: string } | undefined;
  /**
   * Local development: workers may register the workflow versions they announce. Off in
   * production, where a version must be registered (`cairn workflows register`) before it runs.
   */
  readonly devMode: boolean;
  /**
   * TLS on the gRPC port (PEM contents). With `clientCa`, clients must present a certificate it
   * signed (mutual TLS) in addition to their data-plane credential. Undefined: plaintext (TLS ends
   * at a load balancer in front).
   */
  readonly grpcTls: (TlsMaterial & { readonly files?: TlsFiles | undefined }) | undefined;
  /**
   * TLS on the REST port (PEM contents), for a control plane reached without a TLS-terminating
   * proxy in front. Undefined: plaintext HTTP.
   */
  readonly httpTls: (TlsMaterial & { readonly files?: TlsFiles | undefined }) | undefined;
  readonly leaseTtlMs: number;
  readonly heartbeatIntervalMs: number;
  readonly sweepIntervalMs: number;
  /** How often the schedule ticker looks for due ticks (one replica at a time does the work). */
  readonly scheduleTickIntervalMs: number;
  readonly waitMaxMs: number;
  readonly shutdownTimeoutMs: number;
  /**
   * After start-up, leases are not expired for this long, so workers cut off by a control-plane
   * outage can reconnect (their redial backoff is capped at 5 s) and re-attach the runs they are
   * still executing instead of having them taken over. Default: the larger of the lease TTL and 10 s.
   */
  readonly startupGraceMs: number;
  /** Traces (OTLP), the `/metrics` token and port; see telemetry/telemetry.config.ts. */
  readonly telemetry: TelemetryConfig;
  /**
   * Proxies in front of the REST port whose `X-Forwarded-For` is believed (addresses, CIDR ranges
   * or `loopback`/`linklocal`/`uniquelocal`), so the credential throttle counts clients, not the
   * proxy. Empty: the socket's address.
   */
  readonly trustedProxies: readonly string[];
  /**
   * The folder of the built console the control plane serves at `/` (CAIRN_CP_CONSOLE_DIR), null
   * when turned off; undefined: the workspace's `apps/console/dist`, when it was built.
   */
  readonly consoleDir?: string | null;
  /**
   * The Ed25519 key that signs audit checkpoints (its public half is served at
   * `/.well-known/cairn-audit-keys`). Undefined: checkpoints cannot be signed (CAIRN-1154).
   */
  readonly auditSigningKey: AuditSigningKey | undefined;
  /** How often each project whose audit chain moved gets a new signed checkpoint. */
  readonly auditCheckpointIntervalMs: number;
  /** Bounds that keep one data plane or key from exhausting the replica; see {@link LimitsConfig}. */
  readonly limits: LimitsConfig;
}

/**
 * Defaults and hard bounds for what one credential may use. The per-stream and per-data-plane
 * values are defaults an operator may change per organisation (`control-plane limits set`); a
 * tenant's own API key never can.
 */
export interface LimitsConfig {
  /** Postgres `statement_timeout` of the serving pool (0: none), so one slow query cannot hold a connection. */
  readonly statementTimeoutMs: number;
  /** The largest gRPC message the control plane accepts. */
  readonly grpcMaxMessageBytes: number;
  /** Messages queued for a worker stream whose reader does not keep up; past it the stream ends. */
  readonly streamSendQueue: number;
  /** How long a worker stream may stay unable to take more messages before it is ended. */
  readonly streamStallTimeoutMs: number;
  /** The most run slots one worker stream is granted, whatever its Hello announces. */
  readonly maxSlotsPerStream: number;
  /** Worker streams one data plane may hold open on one replica. */
  readonly maxStreamsPerDataPlane: number;
  /** `WaitRun` long polls one data plane may have in flight on one replica. */
  readonly maxWaitsPerDataPlane: number;
  /** REST requests per second one API key may make of one replica (bursts of twice that). */
  readonly requestsPerSecondPerKey: number;
  /** GatewayService calls per second one data-plane credential may make of one replica (bursts of twice that). */
  readonly requestsPerSecondPerDataPlane: number;
  /** Requests per second all credentials of one organisation together may make of one replica (bursts of twice that). */
  readonly requestsPerSecondPerOrganization: number;
}

/** DI token of the {@link ControlPlaneConfig}. */
export const CONFIG = Symbol('ControlPlaneConfig');

// A Postgres int4 holds epochs and millisecond durations handed to SQL intervals; keep them in range.
const MAX_MS = 2_147_483_647;

export function loadDatabaseConfig(source: Record<string, string | undefined> = process.env): DatabaseConfig {
  const raw = loadConfig('control plane', databaseShape, source, { secrets: CONTROL_PLANE_SECRETS });
  return Object.freeze({
    databaseUrl: raw.CAIRN_CP_DATABASE_URL,
    poolSize: raw.CAIRN_CP_DATABASE_POOL_SIZE,
    logLevel: raw.CAIRN_LOG_LEVEL,
  });
}

export function loadMigrationConfig(source: Record<string, string | undefined> = process.env): MigrationConfig {
  const raw = loadConfig('control plane', migrationShape, source, { secrets: CONTROL_PLANE_SECRETS });
  let auditPublicKeys: AuditPublicKey[] = [];
  if (raw.CAIRN_AUDIT_PUBLIC_KEY !== undefined) {
    try {
      auditPublicKeys = parseAuditPublicKeys(raw.CAIRN_AUDIT_PUBLIC_KEY, 'CAIRN_AUDIT_PUBLIC_KEY');
    } catch (cause) {
      throw new CairnError(
        ErrorCodes.INVALID_CONFIG,
        'control plane cannot start: invalid environment:\n' +
          "  CAIRN_AUDIT_PUBLIC_KEY: not an audit public key: give the key's base64url value `cairn audit keys` prints, its PEM, or the JSON key set\n" +
          'Set these variables and start again.',
        { cause },
      );
    }
  }
  const databaseUrl = raw.CAIRN_CP_DATABASE_URL ?? raw.CAIRN_CP_MIGRATION_DATABASE_URL;
  if (databaseUrl === undefined) {
    throw new CairnError(
      ErrorCodes.INVALID_CONFIG,
      'control plane cannot start: invalid environment:\n' +
        '  CAIRN_CP_DATABASE_URL: is required (a postgres:// connection URL; for migrations, CAIRN_CP_MIGRATION_DATABASE_URL may be given instead)\n' +
        'Set these variables and start again.',
    );
  }
  return Object.freeze({
    databaseUrl,
    poolSize: raw.CAIRN_CP_DATABASE_POOL_SIZE,
    logLevel: raw.CAIRN_LOG_LEVEL,
    migrationDatabaseUrl: raw.CAIRN_CP_MIGRATION_DATABASE_URL ?? databaseUrl,
    serviceRole: raw.CAIRN_CP_SERVICE_ROLE,
    auditRetentionDays: raw.CAIRN_CP_AUDIT_RETENTION_DAYS,
    auditPublicKeys,
  });
}

/**
 * Validates the environment into the control plane's config. Fails naming every bad variable;
 * values are never echoed since some are secrets.
 */
export function loadControlPlaneConfig(source: Record<string, string | undefined> = process.env): ControlPlaneConfig {
  const raw = loadConfig('control plane', serveShape, source, { secrets: CONTROL_PLANE_SECRETS });
  const problems: string[] = [];
  const bounded = (name: keyof typeof raw, value: number): void => {
    if (value > MAX_MS) problems.push(`  ${name}: expected at most ${MAX_MS}`);
  };
  bounded('CAIRN_LEASE_TTL_MS', raw.CAIRN_LEASE_TTL_MS);
  bounded('CAIRN_HEARTBEAT_INTERVAL_MS', raw.CAIRN_HEARTBEAT_INTERVAL_MS);
  bounded('CAIRN_SWEEP_INTERVAL_MS', raw.CAIRN_SWEEP_INTERVAL_MS);
  bounded('CAIRN_SCHEDULE_TICK_INTERVAL_MS', raw.CAIRN_SCHEDULE_TICK_INTERVAL_MS);
  bounded('CAIRN_WAIT_MAX_MS', raw.CAIRN_WAIT_MAX_MS);
  bounded('CAIRN_SHUTDOWN_TIMEOUT_MS', raw.CAIRN_SHUTDOWN_TIMEOUT_MS);
  bounded('CAIRN_STARTUP_GRACE_MS', raw.CAIRN_STARTUP_GRACE_MS ?? 0);
  bounded('CAIRN_CP_DATABASE_STATEMENT_TIMEOUT_MS', raw.CAIRN_CP_DATABASE_STATEMENT_TIMEOUT_MS);
  bounded('CAIRN_CP_STREAM_STALL_TIMEOUT_MS', raw.CAIRN_CP_STREAM_STALL_TIMEOUT_MS);
  if (raw.CAIRN_CP_GRPC_MAX_MESSAGE_BYTES > 64 * 1024 * 1024)
    problems.push('  CAIRN_CP_GRPC_MAX_MESSAGE_BYTES: expected at most 67108864 (64 MiB)');
  if (raw.CAIRN_CP_MAX_SLOTS_PER_STREAM > 100_000) problems.push('  CAIRN_CP_MAX_SLOTS_PER_STREAM: expected at most 100000');
  if (raw.CAIRN_CP_STREAM_SEND_QUEUE <= raw.CAIRN_CP_MAX_SLOTS_PER_STREAM) {
    problems.push(
      '  CAIRN_CP_STREAM_SEND_QUEUE: must be larger than CAIRN_CP_MAX_SLOTS_PER_STREAM (a worker with free slots may be sent that many run tasks at once)',
    );
  }
  if (raw.CAIRN_HEARTBEAT_INTERVAL_MS >= raw.CAIRN_LEASE_TTL_MS) {
    problems.push('  CAIRN_HEARTBEAT_INTERVAL_MS: must be shorter than CAIRN_LEASE_TTL_MS, or leases expire between renewals');
  }
  if (raw.CAIRN_CP_HTTP_PORT !== 0 && raw.CAIRN_CP_HTTP_PORT === raw.CAIRN_CP_GRPC_PORT) {
    problems.push('  CAIRN_CP_GRPC_PORT: must differ from CAIRN_CP_HTTP_PORT');
  }
  const metricsPort = raw.CAIRN_CP_METRICS_PORT;
  if (
    metricsPort !== undefined &&
    metricsPort !== 0 &&
    (metricsPort === raw.CAIRN_CP_HTTP_PORT || metricsPort === raw.CAIRN_CP_GRPC_PORT)
  ) {
    problems.push('  CAIRN_CP_METRICS_PORT: must differ from CAIRN_CP_HTTP_PORT and CAIRN_CP_GRPC_PORT');
  }
  const readPem = (name: string, path: string | undefined): Buffer | null => {
    if (path === undefined) return null;
    try {
      return readFileSync(path);
    } catch (error) {
      problems.push(`  ${name}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return null;
    }
  };
  const tlsCert = readPem('CAIRN_CP_GRPC_TLS_CERT_FILE', raw.CAIRN_CP_GRPC_TLS_CERT_FILE);
  const tlsKey = readPem('CAIRN_CP_GRPC_TLS_KEY_FILE', raw.CAIRN_CP_GRPC_TLS_KEY_FILE);
  const tlsClientCa = readPem('CAIRN_CP_GRPC_TLS_CLIENT_CA_FILE', raw.CAIRN_CP_GRPC_TLS_CLIENT_CA_FILE);
  if ((raw.CAIRN_CP_GRPC_TLS_CERT_FILE === undefined) !== (raw.CAIRN_CP_GRPC_TLS_KEY_FILE === undefined)) {
    problems.push('  CAIRN_CP_GRPC_TLS_CERT_FILE, CAIRN_CP_GRPC_TLS_KEY_FILE: set both (the server certificate and its key) or neither');
  }
  const httpCert = readPem('CAIRN_CP_HTTP_TLS_CERT_FILE', raw.CAIRN_CP_HTTP_TLS_CERT_FILE);
  const httpKey = readPem('CAIRN_CP_HTTP_TLS_KEY_FILE', raw.CAIRN_CP_HTTP_TLS_KEY_FILE);
  if ((raw.CAIRN_CP_HTTP_TLS_CERT_FILE === undefined) !== (raw.CAIRN_CP_HTTP_TLS_KEY_FILE === undefined)) {
    problems.push(
      "  CAIRN_CP_HTTP_TLS_CERT_FILE, CAIRN_CP_HTTP_TLS_KEY_FILE: set both (the REST port's certificate and its key) or neither",
    );
  }
  for (const [name, cert, key, ca] of [
    ['CAIRN_CP_GRPC_TLS_CERT_FILE', tlsCert, tlsKey, tlsClientCa],
    ['CAIRN_CP_HTTP_TLS_CERT_FILE', httpCert, httpKey, null],
  ] as const) {
    const problem = cert && key ? tlsMaterialProblem({ cert, key, clientCa: ca }) : undefined;
    if (problem !== undefined) problems.push(`  ${name}: ${problem}`);
  }
  if (raw.CAIRN_CP_GRPC_TLS_CLIENT_CA_FILE !== undefined && raw.CAIRN_CP_GRPC_TLS_CERT_FILE === undefined) {
    problems.push(
      '  CAIRN_CP_GRPC_TLS_CLIENT_CA_FILE: mutual TLS needs the server certificate too (CAIRN_CP_GRPC_TLS_CERT_FILE and _KEY_FILE)',
    );
  }
  let auditSigningKey: AuditSigningKey | undefined;
  if (raw.CAIRN_AUDIT_SIGNING_KEY !== undefined && raw.CAIRN_AUDIT_SIGNING_KEY_FILE !== undefined) {
    problems.push(
      '  CAIRN_AUDIT_SIGNING_KEY, CAIRN_AUDIT_SIGNING_KEY_FILE: set one of them (the key itself, or the file holding it), not both',
    );
  } else {
    const pem =
      raw.CAIRN_AUDIT_SIGNING_KEY_FILE === undefined
        ? raw.CAIRN_AUDIT_SIGNING_KEY
        : readPem('CAIRN_AUDIT_SIGNING_KEY_FILE', raw.CAIRN_AUDIT_SIGNING_KEY_FILE)?.toString('utf8');
    const name = raw.CAIRN_AUDIT_SIGNING_KEY_FILE === undefined ? 'CAIRN_AUDIT_SIGNING_KEY' : 'CAIRN_AUDIT_SIGNING_KEY_FILE';
    if (pem !== undefined) {
      try {
        auditSigningKey = loadAuditSigningKey(pem, raw.CAIRN_AUDIT_SIGNING_KEY_ID);
      } catch (error) {
        // The key's text is never echoed: only what kind of problem it has.
        problems.push(`  ${name}: ${CairnError.from(error).rawMessage}`);
      }
    }
  }
  if (problems.length > 0) {
    throw new CairnError(
      ErrorCodes.INVALID_CONFIG,
      `control plane cannot start: invalid environment:\n${problems.join('\n')}\nSet these variables and start again.`,
    );
  }
  return Object.freeze({
    databaseUrl: raw.CAIRN_CP_DATABASE_URL,
    poolSize: raw.CAIRN_CP_DATABASE_POOL_SIZE,
    logLevel: raw.CAIRN_LOG_LEVEL,
    host: raw.CAIRN_CP_HOST,
    httpPort: raw.CAIRN_CP_HTTP_PORT,
    grpcPort: raw.CAIRN_CP_GRPC_PORT,
    bootstrap:
      raw.CAIRN_BOOTSTRAP_ADMIN_KEY === undefined
        ? undefined
        : { adminKey: raw.CAIRN_BOOTSTRAP_ADMIN_KEY, organization: raw.CAIRN_BOOTSTRAP_ORGANIZATION, project: raw.CAIRN_BOOTSTRAP_PROJECT },
    devMode: raw.CAIRN_DEV_MODE,
    grpcTls:
      tlsCert && tlsKey
        ? {
            cert: tlsCert,
            key: tlsKey,
            clientCa: tlsClientCa,
            files: {
              certFile: raw.CAIRN_CP_GRPC_TLS_CERT_FILE!,
              keyFile: raw.CAIRN_CP_GRPC_TLS_KEY_FILE!,
              caFile: raw.CAIRN_CP_GRPC_TLS_CLIENT_CA_FILE,
            },
          }
        : undefined,
    httpTls:
      httpCert && httpKey
        ? {
            cert: httpCert,
            key: httpKey,
            clientCa: null,
            files: { certFile: raw.CAIRN_CP_HTTP_TLS_CERT_FILE!, keyFile: raw.CAIRN_CP_HTTP_TLS_KEY_FILE!, caFile: undefined },
          }
        : undefined,
    leaseTtlMs: raw.CAIRN_LEASE_TTL_MS,
    heartbeatIntervalMs: raw.CAIRN_HEARTBEAT_INTERVAL_MS,
    sweepIntervalMs: raw.CAIRN_SWEEP_INTERVAL_MS,
    scheduleTickIntervalMs: raw.CAIRN_SCHEDULE_TICK_INTERVAL_MS,
    waitMaxMs: raw.CAIRN_WAIT_MAX_MS,
    shutdownTimeoutMs: raw.CAIRN_SHUTDOWN_TIMEOUT_MS,
    startupGraceMs: raw.CAIRN_STARTUP_GRACE_MS ?? Math.max(raw.CAIRN_LEASE_TTL_MS, 10_000),
    telemetry: telemetryConfig(raw),
    trustedProxies: raw.CAIRN_CP_TRUSTED_PROXIES,
    ...(raw.CAIRN_CP_CONSOLE_DIR === undefined ? {} : { consoleDir: raw.CAIRN_CP_CONSOLE_DIR === 'off' ? null : raw.CAIRN_CP_CONSOLE_DIR }),
    auditSigningKey,
    auditCheckpointIntervalMs: raw.CAIRN_AUDIT_CHECKPOINT_INTERVAL_MS,
    limits: Object.freeze({
      statementTimeoutMs: raw.CAIRN_CP_DATABASE_STATEMENT_TIMEOUT_MS,
      grpcMaxMessageBytes: raw.CAIRN_CP_GRPC_MAX_MESSAGE_BYTES,
      streamSendQueue: raw.CAIRN_CP_STREAM_SEND_QUEUE,
      streamStallTimeoutMs: raw.CAIRN_CP_STREAM_STALL_TIMEOUT_MS,
      maxSlotsPerStream: raw.CAIRN_CP_MAX_SLOTS_PER_STREAM,
      maxStreamsPerDataPlane: raw.CAIRN_CP_MAX_STREAMS_PER_DATA_PLANE,
      maxWaitsPerDataPlane: raw.CAIRN_CP_MAX_WAITS_PER_DATA_PLANE,
      requestsPerSecondPerKey: raw.CAIRN_CP_RATE_LIMIT_PER_KEY,
      requestsPerSecondPerDataPlane: raw.CAIRN_CP_RATE_LIMIT_PER_DATA_PLANE,
      requestsPerSecondPerOrganization: raw.CAIRN_CP_RATE_LIMIT_PER_ORGANIZATION,
    }),
  });
}
