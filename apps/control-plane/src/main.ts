import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { CairnError, ErrorCodes, createLogger, parseAuditPublicKeys } from '@cairn/common';
import { loadControlPlaneConfig, loadMigrationConfig } from './config.js';
import { startControlPlane } from './control-plane.js';
import { startTracing } from './telemetry/tracing.js';
import { LIMIT_FLAGS, createApiKey, createDataPlane, createOrganization, migrate, organizationLimits, pruneAuditLog } from './admin.js';

const USAGE = `usage:
  control-plane [serve]                                          start the control plane (HTTP + gRPC)
  control-plane migrate                                          apply database migrations and exit (as the schema owner:
                                                                 CAIRN_CP_MIGRATION_DATABASE_URL or CAIRN_CP_DATABASE_URL), then
                                                                 grant CAIRN_CP_SERVICE_ROLE what the running control plane needs
  control-plane organizations create --organization NAME [--project NAME]
                                                                 create a new organisation, its first project (default "default")
                                                                 and an organisation-wide admin key; print them as JSON. An
                                                                 existing name is refused: this never mints a key in a tenant
  control-plane api-keys create --organization NAME (--organization-wide | --project NAME) --role ROLE [--name NAME]
                                                                 mint a key inside an existing organisation on purpose (audited
                                                                 in every project it can act in); print {"id","apiKey",...} as JSON
  control-plane data-planes create --name NAME [--organization NAME] [--project NAME] [--id UUID] [--token TOKEN]
                                                                 register a data plane in a project (default "default/default",
                                                                 created when missing), or give an existing one a new
                                                                 credential; print {"id","projectId","name","token"} as JSON
  control-plane limits show --organization NAME                  print the organisation's operator-set limits as JSON (null: the
                                                                 configured default, CAIRN_CP_MAX_* / CAIRN_CP_RATE_LIMIT_*)
  control-plane limits set --organization NAME [--max-slots-per-stream N] [--max-streams-per-data-plane N]
                           [--max-waits-per-data-plane N] [--requests-per-second-per-key N]
                           [--requests-per-second-per-data-plane N] [--requests-per-second N]
                                                                 set limits of one organisation (N, or "default" for the
                                                                 configured default); others keep their value. Replicas apply
                                                                 a change within 5 s. No API key can change these
  control-plane audit prune [--before DATE | --keep-days N] [--public-key KEY …]
                                                                 as the schema owner: delete each project's audit entries older
                                                                 than the cut-off, up to and including the newest checkpoint
                                                                 signed with KEY (base64url, PEM or JWK set); the chain then
                                                                 starts from that signed anchor. Defaults: --keep-days from
                                                                 CAIRN_CP_AUDIT_RETENTION_DAYS, the key from
                                                                 CAIRN_AUDIT_PUBLIC_KEY. Prints one JSON line per project
Configuration comes from the environment; see apps/control-plane/README.md.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      id: { type: 'string' },
      token: { type: 'string' },
      organization: { type: 'string' },
      project: { type: 'string' },
      role: { type: 'string' },
      'organization-wide': { type: 'boolean' },
      before: { type: 'string' },
      'keep-days': { type: 'string' },
      'public-key': { type: 'string', multiple: true },
      ...Object.fromEntries(Object.keys(LIMIT_FLAGS).map((flag) => [flag, { type: 'string' as const }])),
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const command = positionals.join(' ') || 'serve';
  switch (command) {
    case 'serve':
      return serve();
    case 'migrate': {
      const config = loadMigrationConfig();
      const outcome = await migrate(config, createLogger('control-plane', config.logLevel));
      process.stdout.write(
        `${JSON.stringify({ applied: outcome.applied, ...(config.serviceRole ? { serviceRole: config.serviceRole } : {}) })}\n`,
      );
      return 0;
    }
    case 'data-planes create': {
      if (values.name === undefined) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'data-planes create needs --name NAME');
      const config = loadMigrationConfig();
      // stdout carries only the JSON result; logs would go to stdout too, so keep them to errors.
      const created = await createDataPlane(config, createLogger('control-plane', 'error'), {
        name: values.name,
        ...(values.id === undefined ? {} : { id: values.id }),
        ...(values.token === undefined ? {} : { token: values.token }),
        organization: values.organization ?? 'default',
        project: values.project ?? 'default',
      });
      process.stdout.write(
        `${JSON.stringify({ id: created.id, projectId: created.projectId, name: created.name, token: created.token })}\n`,
      );
      return 0;
    }
    case 'organizations create': {
      if (values.organization === undefined) {
        throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'organizations create needs --organization NAME');
      }
      const config = loadMigrationConfig();
      const created = await createOrganization(config, createLogger('control-plane', 'error'), {
        organization: values.organization,
        project: values.project ?? 'default',
      });
      process.stdout.write(
        `${JSON.stringify({ organizationId: created.organizationId, projectId: created.projectId, apiKeyId: created.keyId, apiKey: created.secret })}\n`,
      );
      return 0;
    }
    case 'api-keys create': {
      const wide = values['organization-wide'] === true;
      if (values.organization === undefined || values.role === undefined || wide === (values.project !== undefined)) {
        throw new CairnError(
          ErrorCodes.INVALID_ARGUMENT,
          'api-keys create needs --organization NAME, --role ROLE and exactly one of --organization-wide or --project NAME',
        );
      }
      const config = loadMigrationConfig();
      const { key, secret } = await createApiKey(config, createLogger('control-plane', 'error'), {
        organization: values.organization,
        project: values.project ?? null,
        role: values.role,
        name: values.name ?? 'operator-key',
      });
      process.stdout.write(
        `${JSON.stringify({ id: key.id, organizationId: key.organizationId, projectId: key.projectId, role: key.role, name: key.name, apiKey: secret })}\n`,
      );
      return 0;
    }
    case 'limits show':
    case 'limits set': {
      if (values.organization === undefined) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `${command} needs --organization NAME`);
      const changes: Record<string, number | null> = {};
      if (command === 'limits set') {
        for (const [flag, field] of Object.entries(LIMIT_FLAGS)) {
          const value = (values as Record<string, unknown>)[flag];
          if (value === undefined) continue;
          if (value === 'default') changes[field] = null;
          else if (typeof value === 'string' && /^[1-9]\d{0,8}$/.test(value)) changes[field] = Number(value);
          else throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `--${flag} must be a whole number from 1 to 999999999, or "default"`);
        }
        if (Object.keys(changes).length === 0) {
          throw new CairnError(
            ErrorCodes.INVALID_ARGUMENT,
            `limits set needs at least one of ${Object.keys(LIMIT_FLAGS)
              .map((f) => `--${f}`)
              .join(', ')}`,
          );
        }
      }
      const config = loadMigrationConfig();
      const limits = await organizationLimits(config, createLogger('control-plane', 'error'), values.organization, changes);
      process.stdout.write(`${JSON.stringify({ organization: values.organization, limits })}\n`);
      return 0;
    }
    case 'audit prune': {
      const config = loadMigrationConfig();
      const before = pruneCutoff(values.before, values['keep-days'] ?? config.auditRetentionDays?.toString());
      const given = values['public-key'] ?? [];
      const keys = given.length > 0 ? given.flatMap((k, i) => parseAuditPublicKeys(k, `--public-key #${i + 1}`)) : config.auditPublicKeys;
      const outcomes = await pruneAuditLog(config, createLogger('control-plane', 'error'), { before, keys });
      for (const outcome of outcomes) process.stdout.write(`${JSON.stringify(outcome)}\n`);
      return outcomes.some((o) => o.status === 'refused') ? 1 : 0;
    }
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

/** The cut-off of `audit prune`: `--before DATE` (ISO 8601) or `--keep-days N` (now minus N days), exactly one. */
function pruneCutoff(before: string | undefined, keepDays: string | undefined): Date {
  if ((before === undefined) === (keepDays === undefined)) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      'audit prune needs exactly one of --before DATE (e.g. 2026-01-01) or --keep-days N (or CAIRN_CP_AUDIT_RETENTION_DAYS)',
    );
  }
  if (keepDays !== undefined) {
    if (!/^[1-9]\d{0,5}$/.test(keepDays))
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, '--keep-days must be a whole number of days from 1 to 999999');
    return new Date(Date.now() - Number(keepDays) * 86_400_000);
  }
  const date = /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d:\d\d))?$/.test(before!) ? new Date(before!) : null;
  if (date === null || Number.isNaN(date.getTime()) || date.getTime() > Date.now()) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      '--before must be a date or time in ISO 8601 that is not in the future (2026-01-01, 2026-01-01T00:00:00Z)',
    );
  }
  return date;
}

async function serve(): Promise<number> {
  const config = loadControlPlaneConfig();
  const logger = createLogger('control-plane', config.logLevel);
  // Registered before anything else runs, so every span of this process has the SDK's provider.
  const tracing = startTracing(config.telemetry);
  if (tracing)
    logger.info(
      { exporter: config.telemetry.tracing.endpoint === null ? 'OTEL_* variables' : 'CAIRN_CP_OTLP_TRACES_ENDPOINT' },
      'exporting traces through the OpenTelemetry SDK',
    );
  const cp = await startControlPlane(config, { logger });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutdown requested');
      const deadline = setTimeout(() => {
        logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting');
        resolve(0);
      }, config.shutdownTimeoutMs);
      deadline.unref();
      cp.close()
        .finally(() =>
          tracing
            ?.shutdown()
            .catch((error: unknown) => logger.warn({ err: CairnError.from(error).message }, 'could not export the last spans')),
        )
        .then(
          () => {
            clearTimeout(deadline);
            resolve(0);
          },
          (error: unknown) => {
            logger.error({ err: CairnError.from(error).message }, 'shutdown failed');
            clearTimeout(deadline);
            resolve(1);
          },
        );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Exit even if a library left a handle open (the shutdown already closed ours).
    setTimeout(() => process.exit(code), 100).unref();
  },
  (error: unknown) => {
    const e = CairnError.from(error);
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);
