import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CairnError, ErrorCodes, OTEL_TRACES_SAMPLERS, auditKeyId, env, loadConfig, type ExportSigningKey } from '@cairn/common';
import {
  Hasher,
  KeyRing,
  keyRingOf,
  keySourceOf,
  keyVariableProblems,
  parseWrappedKeys,
  type KeySource,
  type ResidencyMode,
} from '@cairn/payload-store';
import type { ControlPlaneTls } from '@cairn/proto';
import { z } from 'zod';
import { parseGatewayToken, type GatewayToken } from './auth.js';
import type { GatewayTracingConfig } from './telemetry.js';

const days = () =>
  env
    .int()
    .refine((n) => n > 0 && n <= 36_500, 'expected a number of days from 1 to 36500')
    .optional();

/** Variables that may be given as `<NAME>_FILE` instead: a path to a file holding the value. */
export const GATEWAY_SECRETS = [
  'CAIRN_DP_CREDENTIAL',
  'CAIRN_DP_DATABASE_URL',
  'CAIRN_DP_MIGRATION_DATABASE_URL',
  'CAIRN_DP_ENCRYPTION_KEYS',
  'CAIRN_DP_WRAPPED_ENCRYPTION_KEYS',
  'CAIRN_DP_HMAC_KEY',
  'CAIRN_GATEWAY_TOKENS',
] as const;

const positive = (defaultValue: number) => env.int(defaultValue).refine((n) => n > 0, 'expected a whole number greater than 0');

// host:port, with an IPv6 host in brackets.
const ADDRESS_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/;
// A gRPC metadata value and an HTTP bearer token: visible ASCII, no spaces.
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;

// Keys are parsed here so a bad key stops start-up with the variable named, not the first request.
// The messages of KeyRing and Hasher name key ids and lengths, never key material.
const parsed = <T>(what: string, parse: (value: string) => T) =>
  z
    .string({ error: `is required (${what})` })
    .min(1, 'must not be empty')
    .transform((value, ctx) => {
      try {
        return parse(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: CairnError.from(err).rawMessage });
        return z.NEVER;
      }
    });

const httpUrl = () =>
  z
    .string()
    .refine((v) => /^https?:\/\/[^\s/]+/.test(v) && URL.canParse(v), 'expected an http:// or https:// URL')
    .optional();

const SAMPLERS = OTEL_TRACES_SAMPLERS;

/** A browser origin: scheme, host and optional port, nothing after. */
const CORS_ORIGIN_PATTERN = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/;

const shape = {
  CAIRN_GATEWAY_HOST: z
    .string()
    .optional()
    .transform((v) => v ?? '0.0.0.0'),
  CAIRN_GATEWAY_PORT: env.port(8081),
  CAIRN_CP_GRPC_ADDRESS: z
    .string({ error: "is required (the control plane's gRPC address, host:port)" })
    .regex(ADDRESS_PATTERN, 'expected host:port, e.g. cairn.example.com:7233'),
  CAIRN_CP_TLS: env.bool(false),
  CAIRN_CP_TLS_CA_FILE: env.optionalString(),
  CAIRN_CP_TLS_CERT_FILE: env.optionalString(),
  CAIRN_CP_TLS_KEY_FILE: env.optionalString(),
  CAIRN_DP_CREDENTIAL: z
    .string({ error: "is required (this data plane's credential, issued by the control plane)" })
    .regex(TOKEN_PATTERN, 'expected printable ASCII without spaces'),
  CAIRN_DP_DATABASE_URL: env.postgresUrl(),
  // One of the two: the keys themselves, or (envelope mode) the keys wrapped by the customer's KMS.
  CAIRN_DP_ENCRYPTION_KEYS: parsed('id:base64key[,id:base64key...], the first encrypts new data', (s) => KeyRing.parse(s)).optional(),
  CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: parsed('id:base64wrappedkey[,…], the first encrypts new data', (s) => parseWrappedKeys(s)).optional(),
  CAIRN_DP_KMS: z.enum(['file', 'module'], { error: 'expected file or module' }).optional(),
  CAIRN_DP_KMS_KEY_FILE: env.optionalString(),
  CAIRN_DP_KMS_MODULE: env.optionalString(),
  CAIRN_DP_HMAC_KEY: parsed('a base64 key of at least 32 bytes', (s) => Hasher.parse(s)),
  CAIRN_GATEWAY_TOKENS: z
    .string({ error: 'is required (comma-separated bearer tokens clients present to the gateway, each token[:scope+scope…])' })
    .transform((value, ctx) => {
      const entries = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '');
      if (entries.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one token' });
      const tokens: GatewayToken[] = [];
      entries.forEach((entry, i) => {
        const parsed = parseGatewayToken(entry);
        // Entries are named by position: a message never quotes a token.
        const which = entries.length === 1 ? 'the token' : `token ${i + 1} of ${entries.length}`;
        if ('problem' in parsed) ctx.addIssue({ code: 'custom', message: `${which}: ${parsed.problem}` });
        else if (tokens.some((t) => t.token === parsed.token)) ctx.addIssue({ code: 'custom', message: `${which}: listed twice` });
        else tokens.push(parsed);
      });
      return Object.freeze(tokens);
    }),
  CAIRN_GATEWAY_TRUSTED_PROXIES: env.trustedProxies(),
  CAIRN_GATEWAY_MAX_PAYLOAD_BYTES: positive(1_048_576),
  CAIRN_GATEWAY_CORS_ORIGINS: z
    .string()
    .optional()
    .transform((value, ctx) => {
      const origins = (value ?? '')
        .split(',')
        .map((o) => o.trim())
        .filter((o) => o !== '');
      const bad = origins.filter((o) => o !== '*' && !CORS_ORIGIN_PATTERN.test(o));
      if (bad.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `expected comma-separated origins such as https://console.example.com (scheme, host and port, no path), or *; ${bad.length} entr${bad.length === 1 ? 'y is' : 'ies are'} not`,
        });
      }
      return Object.freeze(origins);
    }),
  // An Ed25519 private key (PKCS#8 PEM, `openssl genpkey -algorithm ed25519`) that signs journal
  // exports; without it the export route answers CAIRN-1192.
  CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE: z
    .string()
    .min(1, 'must not be empty')
    .optional()
    .transform((path, ctx): ExportSigningKey | undefined => {
      if (path === undefined) return undefined;
      let pem: string;
      try {
        pem = readFileSync(path, 'utf8');
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
        return z.NEVER;
      }
      try {
        const privateKey = createPrivateKey({ key: pem, format: 'pem' });
        if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('not Ed25519');
        const publicKey = createPublicKey(privateKey);
        return { keyId: auditKeyId(publicKey), privateKey, publicKey };
      } catch {
        ctx.addIssue({
          code: 'custom',
          message: 'expected an Ed25519 private key in PEM: create one with `openssl genpkey -algorithm ed25519`',
        });
        return z.NEVER;
      }
    }),
  // Retention of the payload store, applied by the gateway (one of several at a time): runs that
  // ended more than N days ago with everything stored for them, and model transcripts sooner.
  CAIRN_DP_RETENTION_DAYS: days(),
  CAIRN_DP_TRANSCRIPT_RETENTION_DAYS: days(),
  CAIRN_DP_RETENTION_INTERVAL_MS: positive(3_600_000),
  CAIRN_CP_TIMEOUT_MS: positive(10_000),
  // The orphan sweep (orphans.ts): how often, and how old a start that never became a run must be
  // before it is deleted; the age must stay far above any start's control-plane call.
  CAIRN_GATEWAY_ORPHAN_SWEEP_INTERVAL_MS: positive(60_000),
  CAIRN_GATEWAY_ORPHAN_AGE_MS: positive(600_000),
  // The signal sweep (signal-notices.ts): how often signals the control plane was not told of are
  // told again. Those stored less than CAIRN_CP_TIMEOUT_MS ago are left to their own request.
  CAIRN_GATEWAY_SIGNAL_SWEEP_INTERVAL_MS: positive(5_000),
  CAIRN_GATEWAY_SCALER_PORT: env.port().optional(),
  CAIRN_GATEWAY_SCALER_POLL_MS: positive(5_000),
  // strict: workflow and signal names never cross in clear (only as keyed digests).
  CAIRN_RESIDENCY: env.residency(),
  // Traces go through @opentelemetry/sdk-node, which reads the other OTEL_* variables itself; these
  // decide whether it starts, and a misspelt sampler would otherwise only be warned about.
  CAIRN_DP_OTLP_TRACES_ENDPOINT: httpUrl(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl(),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl(),
  OTEL_TRACES_EXPORTER: env.optionalString(),
  OTEL_SDK_DISABLED: env.bool(false),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS, { error: `expected one of ${SAMPLERS.join(', ')}` }).optional(),
  OTEL_TRACES_SAMPLER_ARG: z
    .string()
    .regex(/^(0(\.\d+)?|1(\.0*)?|\.\d+)$/, 'expected a sampling ratio between 0 and 1, e.g. 0.1')
    .optional(),
  CAIRN_LOG_LEVEL: env.logLevel(),
};

/** How many control-plane deadlines an orphan must be older than, at least. */
export const ORPHAN_AGE_DEADLINES = 10;

/**
 * The orphan sweep's age against the control-plane deadline (on the raw values; each is also
 * checked alone): a start still waiting for StartRun must never look old enough to delete.
 */
function orphanAgeProblems(values: Readonly<Record<string, string | undefined>>): string[] {
  const age = Number(values['CAIRN_GATEWAY_ORPHAN_AGE_MS'] ?? 600_000);
  const deadline = Number(values['CAIRN_CP_TIMEOUT_MS'] ?? 10_000);
  if (!Number.isInteger(age) || !Number.isInteger(deadline) || deadline <= 0 || age >= ORPHAN_AGE_DEADLINES * deadline) return [];
  return [
    `  CAIRN_GATEWAY_ORPHAN_AGE_MS: must be at least ${ORPHAN_AGE_DEADLINES} times CAIRN_CP_TIMEOUT_MS (${ORPHAN_AGE_DEADLINES * deadline} ms here), ` +
      'so that a start still waiting for the control plane is never taken for an orphan; raise it, or lower CAIRN_CP_TIMEOUT_MS',
  ];
}

type KeyVariables = {
  CAIRN_DP_ENCRYPTION_KEYS?: KeyRing | undefined;
  CAIRN_DP_WRAPPED_ENCRYPTION_KEYS?: ReturnType<typeof parseWrappedKeys> | undefined;
  CAIRN_DP_KMS?: 'file' | 'module' | undefined;
  CAIRN_DP_KMS_KEY_FILE?: string | undefined;
  CAIRN_DP_KMS_MODULE?: string | undefined;
};

/** Whether the gateway starts the OpenTelemetry SDK, and with which exporter. */
function tracingConfig(raw: {
  CAIRN_DP_OTLP_TRACES_ENDPOINT?: string | undefined;
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string | undefined;
  OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined;
  OTEL_TRACES_EXPORTER?: string | undefined;
  OTEL_SDK_DISABLED: boolean;
}): GatewayTracingConfig {
  const exporter = raw.OTEL_TRACES_EXPORTER?.trim() ?? '';
  const disabled = raw.OTEL_SDK_DISABLED || exporter === 'none';
  const configured =
    raw.CAIRN_DP_OTLP_TRACES_ENDPOINT !== undefined ||
    raw.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined ||
    raw.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
    exporter !== '';
  return Object.freeze({ enabled: configured && !disabled, endpoint: disabled ? null : (raw.CAIRN_DP_OTLP_TRACES_ENDPOINT ?? null) });
}

/** The key source of validated variables, or the config error naming what is missing. */
function keySource(component: string, raw: KeyVariables): KeySource {
  const source = keySourceOf({
    plain: raw.CAIRN_DP_ENCRYPTION_KEYS,
    wrapped: raw.CAIRN_DP_WRAPPED_ENCRYPTION_KEYS,
    kms: raw.CAIRN_DP_KMS,
    keyFile: raw.CAIRN_DP_KMS_KEY_FILE,
    module: raw.CAIRN_DP_KMS_MODULE,
  });
  if ('problems' in source) {
    throw new CairnError(
      ErrorCodes.INVALID_CONFIG,
      `${component} cannot start: invalid environment:\n${source.problems.join('\n')}\nSet these variables and start again.`,
    );
  }
  return source;
}

/** The validated, frozen configuration of a gateway. */
export interface GatewayConfig {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** The control plane's gRPC address, host:port. */
  readonly cpAddress: string;
  /**
   * How to dial the control plane: TLS when CAIRN_CP_TLS or a TLS file is set (system roots unless
   * CAIRN_CP_TLS_CA_FILE), with a client certificate for mutual TLS when CAIRN_CP_TLS_CERT_FILE/KEY_FILE.
   */
  readonly cpTls: ControlPlaneTls;
  /** The data plane's credential, sent to the control plane as `authorization: Bearer …`. */
  readonly dpCredential: string;
  readonly databaseUrl: string;
  readonly keys: KeyRing;
  readonly hasher: Hasher;
  /**
   * `strict` (CAIRN_RESIDENCY): workflow and signal names never cross to the control plane in
   * clear (a caller's workflow name is turned into its keyed digest, and digests in answers back
   * into names); `standard` (default): workflow names and declared signal names do. Step names are
   * resolved from the journal in either mode.
   */
  readonly residency?: ResidencyMode;
  /** Bearer tokens accepted from clients, each with its scopes. */
  readonly tokens: readonly GatewayToken[];
  /**
   * Proxies in front of the gateway whose `X-Forwarded-For` is believed (addresses, CIDR ranges or
   * `loopback`/`linklocal`/`uniquelocal`), so the token throttle counts clients, not the proxy.
   */
  readonly trustedProxies?: readonly string[];
  /** Largest request body accepted, in bytes. */
  readonly maxPayloadBytes: number;
  /**
   * Browser origins allowed to call the gateway (CORS), e.g. a web app using @cairn/client; `*`
   * allows any. Empty or absent: no CORS headers, so browsers on other origins are refused.
   */
  readonly corsOrigins?: readonly string[];
  /** Deadline of each control-plane call (a long poll adds its wait to it). */
  readonly cpTimeoutMs: number;
  /**
   * Retention of the payload store (days since a run ended; undefined keeps forever) and how often
   * the gateway applies it.
   */
  readonly retention?: {
    readonly runDays: number | undefined;
    readonly transcriptDays: number | undefined;
    readonly intervalMs: number;
  };
  /**
   * The sweep that deletes the stored inputs of starts the control plane never queued (a gateway
   * killed between storing the input and StartRun): how often it runs (each wait jittered) and how
   * old such a start must be. The age is at least ten times `cpTimeoutMs`, so a start still in
   * progress is never taken for one.
   */
  readonly orphanSweep?: {
    readonly intervalMs: number;
    readonly ageMs: number;
  };
  /**
   * The sweep that tells the control plane of signals it was not told of (their SignalRun got no
   * definite answer, or their gateway died before asking): how often it runs (each wait jittered)
   * and how old such a signal must be (`cpTimeoutMs`, so a request still waiting for its answer is
   * left alone).
   */
  readonly signalSweep?: {
    readonly intervalMs: number;
    readonly ageMs: number;
  };
  /** The key that signs journal exports (CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE); undefined: exports are off. */
  readonly exportSigningKey?: ExportSigningKey | undefined;
  /**
   * Port of KEDA's external-scaler gRPC service (scaler.ts); undefined when it is off. It listens
   * on the gateway's host.
   */
  readonly scalerPort: number | undefined;
  /** How often a StreamIsActive stream asks the control plane for the backlog. */
  readonly scalerPollMs: number;
  /**
   * Traces through `@opentelemetry/sdk-node` (started by `main.js serve`): on when
   * `CAIRN_DP_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`
   * or `OTEL_TRACES_EXPORTER` is set and `OTEL_SDK_DISABLED` is not true.
   */
  readonly tracing?: GatewayTracingConfig;
  readonly logLevel: string;
}

/**
 * Validates the environment into the gateway's config. Fails naming every bad variable; values
 * are never echoed since most of them are secrets.
 */
export function loadGatewayConfig(source: Record<string, string | undefined> = process.env): GatewayConfig {
  const { config, keys } = readGatewayConfig(source);
  if (keys.kind !== 'plain') {
    throw new CairnError(ErrorCodes.INVALID_CONFIG, 'Envelope mode unwraps its keys at start-up: use loadGatewayConfigWithKeys.');
  }
  return Object.freeze({ ...config, keys: keys.ring });
}

/**
 * {@link loadGatewayConfig}, also in envelope mode: the wrapped keys are unwrapped through the
 * configured KMS here, once; only the wrapped keys are in the environment.
 */
export async function loadGatewayConfigWithKeys(source: Record<string, string | undefined> = process.env): Promise<GatewayConfig> {
  const { config, keys } = readGatewayConfig(source);
  return Object.freeze({ ...config, keys: await keyRingOf(keys, source) });
}

function readGatewayConfig(source: Record<string, string | undefined>): { config: Omit<GatewayConfig, 'keys'>; keys: KeySource } {
  const raw = loadConfig('gateway', shape, source, {
    secrets: GATEWAY_SECRETS,
    check: (values) => [...keyVariableProblems(values), ...orphanAgeProblems(values)],
  });
  const keys = keySource('gateway', raw);
  const config = {
    host: raw.CAIRN_GATEWAY_HOST,
    port: raw.CAIRN_GATEWAY_PORT,
    cpAddress: raw.CAIRN_CP_GRPC_ADDRESS,
    cpTls: {
      enabled: raw.CAIRN_CP_TLS || raw.CAIRN_CP_TLS_CA_FILE !== undefined || raw.CAIRN_CP_TLS_CERT_FILE !== undefined,
      caFile: raw.CAIRN_CP_TLS_CA_FILE,
      certFile: raw.CAIRN_CP_TLS_CERT_FILE,
      keyFile: raw.CAIRN_CP_TLS_KEY_FILE,
    },
    dpCredential: raw.CAIRN_DP_CREDENTIAL,
    databaseUrl: raw.CAIRN_DP_DATABASE_URL,
    hasher: raw.CAIRN_DP_HMAC_KEY,
    tokens: raw.CAIRN_GATEWAY_TOKENS,
    trustedProxies: raw.CAIRN_GATEWAY_TRUSTED_PROXIES,
    maxPayloadBytes: raw.CAIRN_GATEWAY_MAX_PAYLOAD_BYTES,
    corsOrigins: raw.CAIRN_GATEWAY_CORS_ORIGINS,
    cpTimeoutMs: raw.CAIRN_CP_TIMEOUT_MS,
    exportSigningKey: raw.CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE,
    retention: {
      runDays: raw.CAIRN_DP_RETENTION_DAYS,
      transcriptDays: raw.CAIRN_DP_TRANSCRIPT_RETENTION_DAYS,
      intervalMs: raw.CAIRN_DP_RETENTION_INTERVAL_MS,
    },
    orphanSweep: {
      intervalMs: raw.CAIRN_GATEWAY_ORPHAN_SWEEP_INTERVAL_MS,
      ageMs: raw.CAIRN_GATEWAY_ORPHAN_AGE_MS,
    },
    signalSweep: {
      intervalMs: raw.CAIRN_GATEWAY_SIGNAL_SWEEP_INTERVAL_MS,
      ageMs: raw.CAIRN_CP_TIMEOUT_MS,
    },
    scalerPort: raw.CAIRN_GATEWAY_SCALER_PORT,
    scalerPollMs: raw.CAIRN_GATEWAY_SCALER_POLL_MS,
    logLevel: raw.CAIRN_LOG_LEVEL,
    residency: raw.CAIRN_RESIDENCY,
    tracing: tracingConfig(raw),
  };
  return { config, keys };
}

/**
 * The environment of `main.js migrate`: the payload store's URL and key ring only (the migration
 * writes no sealed data, but a key ring that does not parse, or does not match the store's key
 * checks, should stop a deploy before it rolls).
 */
export function loadMigrateConfig(source: Record<string, string | undefined> = process.env) {
  const raw = loadConfig(
    'gateway migrate',
    {
      // With a separate owner role (CAIRN_DP_MIGRATION_DATABASE_URL), the service's URL is optional.
      CAIRN_DP_DATABASE_URL: source['CAIRN_DP_MIGRATION_DATABASE_URL']
        ? shape.CAIRN_DP_DATABASE_URL.optional()
        : shape.CAIRN_DP_DATABASE_URL,
      CAIRN_DP_MIGRATION_DATABASE_URL: env.postgresUrl().optional(),
      CAIRN_DP_SERVICE_ROLE: z
        .string()
        .regex(/^[a-z_][a-z0-9_$]{0,62}$/, 'expected a PostgreSQL role name (lowercase letters, digits, _ and $)')
        .optional(),
      CAIRN_DP_ENCRYPTION_KEYS: shape.CAIRN_DP_ENCRYPTION_KEYS,
      CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: shape.CAIRN_DP_WRAPPED_ENCRYPTION_KEYS,
      CAIRN_DP_KMS: shape.CAIRN_DP_KMS,
      CAIRN_DP_KMS_KEY_FILE: shape.CAIRN_DP_KMS_KEY_FILE,
      CAIRN_DP_KMS_MODULE: shape.CAIRN_DP_KMS_MODULE,
      CAIRN_LOG_LEVEL: shape.CAIRN_LOG_LEVEL,
    },
    source,
    { secrets: GATEWAY_SECRETS, check: keyVariableProblems },
  );
  const keySourceOfRaw = keySource('gateway migrate', raw);
  return Object.freeze({
    /** Where the keys come from; {@link keyRingOf} gives the ring (unwrapping in envelope mode). */
    keySource: keySourceOfRaw,
    /** The URL migrations and key commands run with: the owner's when set, else the service's. */
    CAIRN_DP_DATABASE_URL: (raw.CAIRN_DP_MIGRATION_DATABASE_URL ?? raw.CAIRN_DP_DATABASE_URL)!,
    /** The role the worker and gateway run as, granted its privileges after every migration. */
    serviceRole: raw.CAIRN_DP_SERVICE_ROLE,
    CAIRN_LOG_LEVEL: raw.CAIRN_LOG_LEVEL,
  });
}
