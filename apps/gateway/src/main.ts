// The gateway process: `node dist/main.js [serve]`.
import { CairnError, createLogger } from '@cairn/common';
import { PayloadStore } from '@cairn/payload-store';
import { loadGatewayConfig, loadMigrateConfig, type GatewayConfig } from './config.js';
import { startGateway } from './server.js';

/** How long in-flight requests may take to finish after SIGTERM before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 20_000;

const USAGE = `usage: cairn-gateway [serve|migrate]

  serve     serves the data plane's HTTP API (the default)
  migrate   applies the payload store's migrations, compares the encryption keys with the store's
            key checks, and exits; needs only CAIRN_DP_DATABASE_URL and CAIRN_DP_ENCRYPTION_KEYS
            (so a bad key ring, or keys that do not match the store, stop a deploy early)

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
  const store = PayloadStore.connect({
    connectionString: config.CAIRN_DP_DATABASE_URL,
    keys: config.keys,
    applicationName: 'cairn-migrate',
  });
  try {
    const applied = await store.migrate();
    logger.info({ migrations: applied }, applied.length > 0 ? 'payload store migrated' : 'payload store already up to date');
    const keys = await store.verifyKeys();
    if (keys.recorded.length > 0) logger.info({ keyIds: keys.recorded }, 'recorded key checks in the payload store');
    process.stdout.write(`${JSON.stringify({ applied })}\n`);
  } catch (err) {
    logger.fatal({ err }, 'payload store migration failed');
    if (err instanceof CairnError) process.stderr.write(`${err.message}\n`);
    process.exitCode = 1;
  } finally {
    await store.close();
  }
}

async function serve(): Promise<void> {
  let config: GatewayConfig;
  try {
    config = loadGatewayConfig();
  } catch (err) {
    process.stderr.write(`${CairnError.from(err).message}\n`);
    process.exitCode = 1;
    return;
  }
  const logger = createLogger('gateway', config.logLevel);
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
    running.close().then(
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
} else {
  process.stderr.write(`${command === 'help' || command === '--help' ? '' : `unknown command ${JSON.stringify(command)}\n`}${USAGE}\n`);
  process.exitCode = command === 'help' || command === '--help' ? 0 : 2;
}
