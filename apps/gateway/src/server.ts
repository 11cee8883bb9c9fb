import { createLogger, type Logger } from '@cairn/common';
import { PayloadStore } from '@cairn/payload-store';
import { buildGateway, type Gateway } from './app.js';
import type { GatewayConfig } from './config.js';
import { ControlPlane } from './control-plane.js';
import { startScaler, type RunningScaler } from './scaler.js';
import { GatewayMetrics } from './telemetry.js';

/** A gateway that is listening, with what it owns. */
export interface RunningGateway {
  readonly app: Gateway;
  /** The bound port (the chosen one when the config said 0). */
  readonly port: number;
  /** The bound port of KEDA's external scaler, when CAIRN_GATEWAY_SCALER_PORT is set. */
  readonly scalerPort: number | undefined;
  /**
   * Stops: readiness turns 503 and long polls end, the server stops accepting and finishes the
   * requests in flight, then the payload-store pool and the control-plane channel close.
   */
  close(): Promise<void>;
}

/**
 * Connects the payload store (migrating it and comparing the gateway's keys with its key checks),
 * dials the control plane and starts listening. What `dist/main.js serve` runs. A key that does
 * not match the payload store rejects with `CAIRN-3006` before anything is served or dialled.
 */
export async function startGateway(
  config: GatewayConfig,
  logger: Logger = createLogger('gateway', config.logLevel),
): Promise<RunningGateway> {
  const store = PayloadStore.connect({ connectionString: config.databaseUrl, keys: config.keys, applicationName: 'cairn-gateway', logger });
  let controlPlane: ControlPlane | undefined;
  try {
    const applied = await store.migrate();
    if (applied.length > 0) logger.info({ migrations: applied }, 'payload store migrated');
    // A gateway with another key would seal inputs and signal bodies no worker can open.
    const keys = await store.verifyKeys(config.hasher);
    if (keys.recorded.length > 0 || keys.hmac === 'recorded') {
      logger.info({ keyIds: keys.recorded, hmacKey: keys.hmac === 'recorded' }, 'recorded key checks in the payload store');
    }
    if (keys.absent.length > 0) {
      logger.warn(
        { keyIds: keys.absent },
        'the payload store has key checks for key IDs missing from CAIRN_DP_ENCRYPTION_KEYS: data sealed under them cannot be read ' +
          'through this gateway (add each such key after the active one; ignore this for keys retired on purpose)',
      );
    }
    const metrics = new GatewayMetrics(store);
    controlPlane = new ControlPlane({
      address: config.cpAddress,
      credential: config.dpCredential,
      tls: config.cpTls,
      timeoutMs: config.cpTimeoutMs,
      observer: {
        called: (method, code, seconds) => metrics.controlPlaneCalls.observe({ method, code }, seconds),
        reconnected: () => metrics.controlPlaneReconnects.inc(),
      },
    });
    const shutdown = new AbortController();
    const app = buildGateway(config, { store, controlPlane, logger, shutdownSignal: shutdown.signal, metrics });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;
    let scaler: RunningScaler | undefined;
    if (config.scalerPort !== undefined) {
      try {
        scaler = await startScaler({ controlPlane, host: config.host, port: config.scalerPort, pollMs: config.scalerPollMs, logger });
      } catch (err) {
        await app.close();
        throw err;
      }
    }
    logger.info({ port, host: config.host, controlPlane: config.cpAddress, scalerPort: scaler?.port }, 'gateway listening');
    const cp = controlPlane;
    let closing: Promise<void> | undefined;
    return {
      app,
      port,
      scalerPort: scaler?.port,
      close() {
        closing ??= (async () => {
          shutdown.abort();
          try {
            await Promise.all([app.close(), scaler?.close()]);
          } finally {
            cp.close();
            await store.close();
          }
        })();
        return closing;
      },
    };
  } catch (err) {
    controlPlane?.close();
    await store.close().catch(() => undefined);
    throw err;
  }
}
