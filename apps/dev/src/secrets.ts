// Credentials and keys of a local stack, generated once per state folder and kept in
// `.cairn/secrets.json` (mode 600) under the names of the environment variables the processes
// read, so a worker started by hand takes them as they are (`cairn dev env` prints them).
// A file in the first format (camelCase names, passwords without URLs) is read and rewritten in
// this one; every value is kept. A file from before the control plane ran with a service role
// (CAIRN_CP_DATABASE_URL was the owner's) gets a service role and an audit signing key added.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CairnError, ErrorCodes } from '@cairn/common';

/** Credentials and keys of a local stack, generated once per data folder. */
export interface StackSecrets {
  /** The control-plane database owner's password (role cairn_cp): migrations run with it. */
  readonly cpDbPassword: string;
  /** The control plane's service role's password (cairn_cp_service): it serves with it. */
  readonly cpServiceDbPassword: string;
  /** The PEM of the Ed25519 key the control plane signs audit checkpoints with. */
  readonly auditSigningKey: string;
  readonly dpDbPassword: string;
  readonly apiToken: string;
  readonly gatewayToken: string;
  readonly dataPlaneId: string;
  readonly dataPlaneCredential: string;
  readonly encryptionKeys: string;
  readonly hmacKey: string;
}

/** The database roles (and databases) of the two planes on the local Postgres. */
export const DATABASES = { controlPlane: 'cairn_cp', dataPlane: 'cairn_dp' } as const;

/** The role the control plane serves with: it owns nothing, `control-plane migrate` grants it (docs/audit.md). */
export const CP_SERVICE_ROLE = 'cairn_cp_service';

/** The variable each secret is stored under: the name the process that uses it reads. */
export const SECRET_VARIABLES = {
  dataPlaneId: 'CAIRN_DATA_PLANE_ID',
  dataPlaneCredential: 'CAIRN_DP_CREDENTIAL',
  dpDatabaseUrl: 'CAIRN_DP_DATABASE_URL',
  encryptionKeys: 'CAIRN_DP_ENCRYPTION_KEYS',
  hmacKey: 'CAIRN_DP_HMAC_KEY',
  cpDatabaseUrl: 'CAIRN_CP_DATABASE_URL',
  cpMigrationDatabaseUrl: 'CAIRN_CP_MIGRATION_DATABASE_URL',
  auditSigningKey: 'CAIRN_AUDIT_SIGNING_KEY',
  apiToken: 'CAIRN_BOOTSTRAP_ADMIN_KEY',
  gatewayToken: 'CAIRN_GATEWAY_TOKENS',
} as const;

const LEGACY_KEYS = [
  'cpDbPassword',
  'dpDbPassword',
  'apiToken',
  'gatewayToken',
  'dataPlaneId',
  'dataPlaneCredential',
  'encryptionKeys',
  'hmacKey',
] as const;

export function secretsPath(dir: string): string {
  return join(dir, 'secrets.json');
}

const b64 = (n: number) => randomBytes(n).toString('base64url');

function newSigningKey(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function generateSecrets(): StackSecrets {
  return {
    cpDbPassword: b64(18),
    cpServiceDbPassword: b64(18),
    auditSigningKey: newSigningKey(),
    dpDbPassword: b64(18),
    apiToken: `cak_${b64(24)}`,
    gatewayToken: `cgt_${b64(24)}`,
    dataPlaneId: randomUUID(),
    dataPlaneCredential: `cdp_${b64(32)}`,
    encryptionKeys: `k1:${randomBytes(32).toString('base64')}`,
    hmacKey: randomBytes(32).toString('base64'),
  };
}

function broken(file: string, why: string): CairnError {
  return new CairnError(
    ErrorCodes.DEV_CONFIG_INVALID,
    `${file} ${why}. It holds the local stack's keys: restore it from a backup, or delete the whole state folder to start afresh (the local runs and data are lost then).`,
  );
}

function passwordOf(url: string, file: string, variable: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    throw broken(file, `has a ${variable} that is not a postgres:// URL`);
  }
}

/** What a secrets file holds: the secrets, and any other keys it had (kept when it is rewritten). */
export interface SecretsFile {
  readonly secrets: StackSecrets;
  readonly format: 'variables' | 'legacy';
  readonly extra: Readonly<Record<string, unknown>>;
}

/** Reads a secrets file in either format; undefined when there is none. */
export function readSecretsFile(dir: string): SecretsFile | undefined {
  const file = secretsPath(dir);
  if (!existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw broken(file, `is not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw broken(file, 'does not hold a JSON object');
  const obj = raw as Record<string, unknown>;
  const str = (key: string): string => {
    const v = obj[key];
    if (typeof v !== 'string' || v === '') throw broken(file, `has no ${key}`);
    return v;
  };
  if (LEGACY_KEYS.some((k) => k in obj) && !(SECRET_VARIABLES.dataPlaneId in obj)) {
    const secrets = {
      ...(Object.fromEntries(LEGACY_KEYS.map((k) => [k, str(k)])) as Omit<StackSecrets, 'cpServiceDbPassword' | 'auditSigningKey'>),
      cpServiceDbPassword: b64(18),
      auditSigningKey: newSigningKey(),
    };
    const extra = Object.fromEntries(Object.entries(obj).filter(([k]) => !(LEGACY_KEYS as readonly string[]).includes(k)));
    return { secrets, format: 'legacy', extra };
  }
  const v = SECRET_VARIABLES;
  const secrets: StackSecrets = {
    dataPlaneId: str(v.dataPlaneId),
    dataPlaneCredential: str(v.dataPlaneCredential),
    encryptionKeys: str(v.encryptionKeys),
    hmacKey: str(v.hmacKey),
    apiToken: str(v.apiToken),
    gatewayToken: str(v.gatewayToken),
    dpDbPassword: passwordOf(str(v.dpDatabaseUrl), file, v.dpDatabaseUrl),
    // Before the service role, CAIRN_CP_DATABASE_URL was the owner's.
    ...(v.cpMigrationDatabaseUrl in obj
      ? {
          cpDbPassword: passwordOf(str(v.cpMigrationDatabaseUrl), file, v.cpMigrationDatabaseUrl),
          cpServiceDbPassword: passwordOf(str(v.cpDatabaseUrl), file, v.cpDatabaseUrl),
        }
      : { cpDbPassword: passwordOf(str(v.cpDatabaseUrl), file, v.cpDatabaseUrl), cpServiceDbPassword: b64(18) }),
    auditSigningKey: v.auditSigningKey in obj ? str(v.auditSigningKey) : newSigningKey(),
  };
  const known = new Set<string>(Object.values(v));
  const extra = Object.fromEntries(Object.entries(obj).filter(([k]) => !known.has(k)));
  return { secrets, format: 'variables', extra };
}

/** The file's content: each secret under its variable name, database URLs for the server in use. */
export function secretsDocument(
  secrets: StackSecrets,
  urls: { cpDatabaseUrl: string; cpMigrationDatabaseUrl: string; dpDatabaseUrl: string },
  extra: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const v = SECRET_VARIABLES;
  return {
    [v.dataPlaneId]: secrets.dataPlaneId,
    [v.dataPlaneCredential]: secrets.dataPlaneCredential,
    [v.dpDatabaseUrl]: urls.dpDatabaseUrl,
    [v.encryptionKeys]: secrets.encryptionKeys,
    [v.hmacKey]: secrets.hmacKey,
    [v.cpDatabaseUrl]: urls.cpDatabaseUrl,
    [v.cpMigrationDatabaseUrl]: urls.cpMigrationDatabaseUrl,
    [v.auditSigningKey]: secrets.auditSigningKey,
    [v.apiToken]: secrets.apiToken,
    [v.gatewayToken]: secrets.gatewayToken,
    ...extra,
  };
}

/** Writes the file atomically with mode 600: it holds every key of the local stack. */
export function writeSecretsFile(dir: string, document: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  const file = secretsPath(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(document, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/**
 * The stack's secrets: read from the state folder (either format), or generated there once; the
 * file is (re)written in the current format with the database URLs of `urlFor` (a role's URL to
 * a database, by default the one named like the role).
 */
export function loadSecrets(dir: string, urlFor: (role: string, password: string, database?: string) => string): StackSecrets {
  const existing = readSecretsFile(dir);
  const secrets = existing?.secrets ?? generateSecrets();
  const document = secretsDocument(
    secrets,
    {
      cpDatabaseUrl: urlFor(CP_SERVICE_ROLE, secrets.cpServiceDbPassword, DATABASES.controlPlane),
      cpMigrationDatabaseUrl: urlFor(DATABASES.controlPlane, secrets.cpDbPassword),
      dpDatabaseUrl: urlFor(DATABASES.dataPlane, secrets.dpDbPassword),
    },
    existing?.extra,
  );
  const file = secretsPath(dir);
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (current !== JSON.stringify(document, null, 2) + '\n') writeSecretsFile(dir, document);
  return secrets;
}
