import { CairnError, ErrorCodes, env, loadConfig } from '@cairn/common';
import { z } from 'zod';

const positive = (defaultValue: number) => env.int(defaultValue).refine((n) => n > 0, 'expected a whole number greater than 0');

const databaseShape = {
  CAIRN_CP_DATABASE_URL: env.postgresUrl(),
  CAIRN_CP_DATABASE_POOL_SIZE: positive(20),
  CAIRN_LOG_LEVEL: env.logLevel(),
};

const serveShape = {
  ...databaseShape,
  CAIRN_CP_HOST: z
    .string()
    .optional()
    .transform((v) => v ?? '0.0.0.0'),
  CAIRN_CP_HTTP_PORT: env.port(8080),
  CAIRN_CP_GRPC_PORT: env.port(7233),
  CAIRN_API_TOKEN: env.string(),
  CAIRN_LEASE_TTL_MS: positive(15_000),
  CAIRN_HEARTBEAT_INTERVAL_MS: positive(5_000),
  CAIRN_SWEEP_INTERVAL_MS: positive(500),
  CAIRN_WAIT_MAX_MS: positive(60_000),
  CAIRN_SHUTDOWN_TIMEOUT_MS: positive(10_000),
  CAIRN_STARTUP_GRACE_MS: env.int().optional(),
};

/** What `migrate` and `data-planes` need: the database only. */
export interface DatabaseConfig {
  readonly databaseUrl: string;
  readonly poolSize: number;
  readonly logLevel: string;
}

/** The validated, frozen configuration of a serving control plane. */
export interface ControlPlaneConfig extends DatabaseConfig {
  readonly host: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly apiToken: string;
  readonly leaseTtlMs: number;
  readonly heartbeatIntervalMs: number;
  readonly sweepIntervalMs: number;
  readonly waitMaxMs: number;
  readonly shutdownTimeoutMs: number;
  /**
   * After start-up, leases are not expired for this long, so workers cut off by a control-plane
   * outage can reconnect (their redial backoff is capped at 5 s) and re-attach the runs they are
   * still executing instead of having them taken over. Default: the larger of the lease TTL and 10 s.
   */
  readonly startupGraceMs: number;
}

/** DI token of the {@link ControlPlaneConfig}. */
export const CONFIG = Symbol('ControlPlaneConfig');

// A Postgres int4 holds epochs and millisecond durations handed to SQL intervals; keep them in range.
const MAX_MS = 2_147_483_647;

export function loadDatabaseConfig(source: Record<string, string | undefined> = process.env): DatabaseConfig {
  const raw = loadConfig('control plane', databaseShape, source);
  return Object.freeze({
    databaseUrl: raw.CAIRN_CP_DATABASE_URL,
    poolSize: raw.CAIRN_CP_DATABASE_POOL_SIZE,
    logLevel: raw.CAIRN_LOG_LEVEL,
  });
}

/**
 * Validates the environment into the control plane's config. Fails naming every bad variable;
 * values are never echoed since some are secrets.
 */
export function loadControlPlaneConfig(source: Record<string, string | undefined> = process.env): ControlPlaneConfig {
  const raw = loadConfig('control plane', serveShape, source);
  const problems: string[] = [];
  const bounded = (name: keyof typeof raw, value: number): void => {
    if (value > MAX_MS) problems.push(`  ${name}: expected at most ${MAX_MS}`);
  };
  bounded('CAIRN_LEASE_TTL_MS', raw.CAIRN_LEASE_TTL_MS);
  bounded('CAIRN_HEARTBEAT_INTERVAL_MS', raw.CAIRN_HEARTBEAT_INTERVAL_MS);
  bounded('CAIRN_SWEEP_INTERVAL_MS', raw.CAIRN_SWEEP_INTERVAL_MS);
  bounded('CAIRN_WAIT_MAX_MS', raw.CAIRN_WAIT_MAX_MS);
  bounded('CAIRN_SHUTDOWN_TIMEOUT_MS', raw.CAIRN_SHUTDOWN_TIMEOUT_MS);
  bounded('CAIRN_STARTUP_GRACE_MS', raw.CAIRN_STARTUP_GRACE_MS ?? 0);
  if (raw.CAIRN_HEARTBEAT_INTERVAL_MS >= raw.CAIRN_LEASE_TTL_MS) {
    problems.push('  CAIRN_HEARTBEAT_INTERVAL_MS: must be shorter than CAIRN_LEASE_TTL_MS, or leases expire between renewals');
  }
  if (raw.CAIRN_CP_HTTP_PORT !== 0 && raw.CAIRN_CP_HTTP_PORT === raw.CAIRN_CP_GRPC_PORT) {
    problems.push('  CAIRN_CP_GRPC_PORT: must differ from CAIRN_CP_HTTP_PORT');
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
    apiToken: raw.CAIRN_API_TOKEN,
    leaseTtlMs: raw.CAIRN_LEASE_TTL_MS,
    heartbeatIntervalMs: raw.CAIRN_HEARTBEAT_INTERVAL_MS,
    sweepIntervalMs: raw.CAIRN_SWEEP_INTERVAL_MS,
    waitMaxMs: raw.CAIRN_WAIT_MAX_MS,
    shutdownTimeoutMs: raw.CAIRN_SHUTDOWN_TIMEOUT_MS,
    startupGraceMs: raw.CAIRN_STARTUP_GRACE_MS ?? Math.max(raw.CAIRN_LEASE_TTL_MS, 10_000),
  });
}
