// The gateway process: `node dist/main.js [serve]`.
import { CairnError, ErrorCodes, createLogger, useEgressProxyFromEnv } from '@cairn/common';
import { PayloadStore, generateWrappedKeySpec, keyRingOf, keysStillNeeded, loadKeyWrapper } from '@cairn/payload-store';
import { loadGatewayConfigWithKeys, loadMigrateConfig, type GatewayConfig } from './config.js';
import { startGateway } from './server.js';
import { startGatewayTracing } from './telemetry.js';

/** How long in-flight requests may take to finish after SIGTERM before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 20_000;

const USAGE = `usage: cairn-gateway [serve|migrate|reencrypt|key-usage|wrap-key]

  serve     serves the data plane's HTTP API (the default)
  migrate   applies the payload store's migrations, compares the encryption keys with the store's
            key checks, and exits; needs only CAIRN_DP_DATABASE_URL and CAIRN_DP_ENCRYPTION_KEYS
            (so a bad key ring, or keys that do not match the store, stop a deploy early); with
            CAIRN_DP_MIGRATION_DATABASE_URL it runs as that (owner) role and grants
            CAIRN_DP_SERVICE_ROLE what the running worker and gateway need
  reencrypt [--batch-size N]
            re-seals every value not sealed with the active key (the first in
            CAIRN_DP_ENCRYPTION_KEYS) in the current format, N values per transaction (default 200);
            resumable and safe while workers and gateways run; run it once every process has the
            promoted key (phase 2 of a rotation), then key-usage
  key-usage [--retire KEY_ID]
            prints how many values each key ID seals (and how many predate per-run keys), and the
            open runs per HMAC key ID (hmacKeys); with --retire, exits 1 while any value still
            needs KEY_ID, 0 when it can be removed
  wrap-key KEY_ID
            envelope mode: prints KEY_ID:<a new random data key wrapped by CAIRN_DP_KMS> for
            CAIRN_DP_WRAPPED_ENCRYPTION_KEYS; the data key itself is never shown

Configuration comes from the environment; see apps/gateway/README.md.`;

/** `migrate`: what the Helm chart's migration Job runs before new pods roll out. */
async function migrate(): Promise<void> {
  let config: ReturnType<typeof loadMigrateConfig>;
  try {
    config = loadMigrateConfig();
  } catch (err) {
    process.stderr.write(`${CairnError.from(err).message}\n`);
    process.exitCode = 1;
    return;
  }
  const logger = createLogger('gateway', config.CAIRN_LOG_LEVEL);
  let keys;
  try {
    keys = await keyRingOf(config.keySource, process.env);
  } catch (err) {
    process.stderr.write(`${CairnError.from(err).message}\n`);
    process.exitCode = 1;
    return;
  }
  const store = PayloadStore.connect({
    connectionString: config.CAIRN_DP_DATABASE_URL,
    keys,
    applicationName: 'cairn-migrate',
  });
  try {
    const applied = await store.migrate();
    logger.info({ migrations: applied }, applied.length > 0 ? 'payload store migrated' : 'payload store already up to date');
    if (config.serviceRole !== undefined) {
      await store.grantServiceRole(config.serviceRole);
      logger.info({ role: config.serviceRole }, 'service role granted');
    }
    const keys = await store.verifyKeys();
    if (keys.recorded.length > 0) logger.info({ keyIds: keys.recorded }, 'recorded key checks in the payload store');
    process.stdout.write(`${JSON.stringify({ applied, ...(config.serviceRole ? { serviceRole: config.serviceRole } : {}) })}\n`);
  } catch (err) {
    logger.fatal({ err }, 'payload store migration failed');
    if (err instanceof CairnError) process.stderr.write(`${err.message}\n`);
    process.exitCode = 1;
  } finally {
    await store.close();
  }
}

/** The argument after `flag`, or undefined; a flag without a value is a usage error. */
function option(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `${flag} needs a value.`);
  return value;
}

/** `reencrypt` and `key-usage`: the key management commands, with the migrate job's environment. */
async function keyCommand(command: 'reencrypt' | 'key-usage', args: readonly string[]): Promise<void> {
  let config: ReturnType<typeof loadMigrateConfig>;
  let batchSize = 200;
  let retire: string | undefined;
  try {
    config = loadMigrateConfig();
    const batch = option(args, '--batch-size');
    if (batch !== undefined) {
      if (!/^\d{1,6}$/.test(batch) || Number(batch) < 1) {
        throw new CairnError(ErrorCodes.INVALID_ARGUMENT, '--batch-size expects a whole number from 1 to 999999.');
      }
      batchSize = Number(batch);
    }
    retire = option(args, '--retire');
  } catch (err) {
    process.stderr.write(`${CairnError.from(err).message}\n`);
    process.exitCode = 2;
    return;
  }
  const logger = createLogger('gateway', config.CAIRN_LOG_LEVEL);
  let keys;
  try {
    keys = await keyRingOf(config.keySource, process.env);
  } catch (err) {
    process.stderr.write(`${CairnError.from(err).message}\n`);
    process.exitCode = 1;
    return;
  }
  const store = PayloadStore.connect({
    connectionString: config.CAIRN_DP_DATABASE_URL,
    keys,
    applicationName: `cairn-${command}`,
  });
  try {
    // The same comparison as every start: a wrong key must not re-seal anything.
    await store.verifyKeys();
    if (command === 'reencrypt') {
      const result = await store.reencrypt({
        batchSize,
        onBatch: (b) => logger.info(b, 'values re-sealed with the active key'),
      });
      logger.info({ ...result, activeKeyId: store.keys.activeKeyId }, 'reencryption finished');
      process.stdout.write(`${JSON.stringify({ activeKeyId: store.keys.activeKeyId, ...result })}\n`);
      return;
    }
    const usage = await store.keyUsage();
    const hmacKeys = await store.hmacKeyUsage();
    const needed = keysStillNeeded(usage, store.keys);
    process.stdout.write(
      `${JSON.stringify({ activeKeyId: store.keys.activeKeyId, keys: usage, stillNeeded: needed.keyIds, format1: needed.format1, hmacKeys })}\n`,
    );
    if (retire !== undefined) {
      const left = usage.find((u) => u.keyId === retire)?.values ?? 0;
      if (retire === store.keys.activeKeyId) {
        process.stderr.write(`${retire} is the active key: promote another key first (put it first in CAIRN_DP_ENCRYPTION_KEYS).\n`);
        process.exitCode = 1;
      } else if (left > 0) {
        process.stderr.write(
          `${retire} cannot be retired yet: ${left} value(s) are sealed with it. Run \`cairn-gateway reencrypt\` with the new key active first.\n`,
        );
        process.exitCode = 1;
      } else {
        process.stderr.write(`No value needs ${retire}: remove it from CAIRN_DP_ENCRYPTION_KEYS of every worker and gateway.\n`);
      }
    }
  } catch (err) {
    logger.fatal({ err }, `${command} failed`);
    if (err instanceof CairnError) process.stderr.write(`${err.message}\n`);
    process.exitCode = 1;
  } finally {
    await store.close();
  }
}

/**
 * `wrap-key ID`: a fresh random data key wrapped by the configured KMS (CAIRN_DP_KMS…), printed as
 * `ID:<base64>` for CAIRN_DP_WRAPPED_ENCRYPTION_KEYS. The data key itself is never printed.
 */
async function wrapKey(args: readonly string[]): Promise<void> {
  const id = args[0];
  const kms = process.env['CAIRN_DP_KMS'];
  if (id === undefined || (kms !== 'file' && kms !== 'module')) {
    process.stderr.write(
      'usage: CAIRN_DP_KMS=file CAIRN_DP_KMS_KEY_FILE=… cairn-gateway wrap-key KEY_ID (or CAIRN_DP_KMS=module CAIRN_DP_KMS_MODULE=…)\n',
    );
    process.exitCode = 2;
    return;
  }
  try {
    const wrapper = await loadKeyWrapper(kms, {
      keyFile: process.env['CAIRN_DP_KMS_KEY_FILE'],
      module: process.env['CAIRN_DP_KMS_MODULE'],
      env: process.env,
    });
    process.stdout.write(`${await generateWrappedKeySpec(id, wrapper)}\n`);
  } catch (err) {
    process.stderr.write(`${CairnError.from(err).message}\n`);
    process.exitCode = 1;
  }
}

async function serve(): Promise<void> {
  let config: GatewayConfig;
  try {
    config = await loadGatewayConfigWithKeys();
  } catch (err) {
    process.stderr.write(`${CairnError.from(err).message}\n`);
    process.exitCode = 1;
    return;
  }
  const logger = createLogger('gateway', config.logLevel);
  try {
    const proxy = useEgressProxyFromEnv();
    if (proxy) logger.info(proxy, 'dialling the control plane through the HTTP proxy (HTTPS_PROXY / NO_PROXY)');
  } catch (err) {
    process.stderr.write(`gateway cannot start: ${(err as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  // Registered before anything else runs, so every span of this process has the SDK's provider.
  const tracing = config.tracing ? startGatewayTracing(config.tracing) : null;
  if (tracing) {
    logger.info(
      { exporter: config.tracing?.endpoint ? 'CAIRN_DP_OTLP_TRACES_ENDPOINT' : 'OTEL_* variables' },
      'exporting traces through the OpenTelemetry SDK',
    );
  }
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled rejection');
    process.exit(1);
  });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });

  let gateway;
  try {
    gateway = await startGateway(config, logger);
  } catch (err) {
    logger.fatal({ err }, 'gateway failed to start');
    // A refusal (a key that does not match the payload store…) is for the person starting the
    // gateway, who may not read JSON logs.
    if (err instanceof CairnError) process.stderr.write(`gateway cannot start: ${err.message}\n`);
    process.exitCode = 1;
    return;
  }
  const running = gateway;
  const stop = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'gateway shutting down');
    setTimeout(() => {
      logger.error({ graceMs: SHUTDOWN_GRACE_MS }, 'requests still in flight after the grace period; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    running
      .close()
      .finally(() => tracing?.shutdown().catch((err: unknown) => logger.warn({ err }, 'could not export the last spans')))
      .then(
        () => logger.info('gateway stopped'),
        (err: unknown) => {
          logger.error({ err }, 'gateway did not stop cleanly');
          process.exitCode = 1;
        },
      );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const command = process.argv[2] ?? 'serve';
if (command === 'serve') {
  await serve();
} else if (command === 'migrate') {
  await migrate();
} else if (command === 'reencrypt' || command === 'key-usage') {
  await keyCommand(command, process.argv.slice(3));
} else if (command === 'wrap-key') {
  await wrapKey(process.argv.slice(3));
} else {
  process.stderr.write(`${command === 'help' || command === '--help' ? '' : `unknown command ${JSON.stringify(command)}\n`}${USAGE}\n`);
  process.exitCode = command === 'help' || command === '--help' ? 0 : 2;
}
