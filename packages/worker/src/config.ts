import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type * as grpc from '@grpc/grpc-js';
import {
  CairnError,
  ErrorCodes,
  ID_PATTERN,
  createLogger,
  env,
  loadConfig,
  EGRESS_PROXY_VARIABLES,
  useEgressProxyFromEnv,
  type Logger,
} from '@cairn/common';
import { Hasher, KeyRing, PayloadStore, keyRingOf, keySourceOf, keyVariableProblems, parseWrappedKeys } from '@cairn/payload-store';
import { controlPlaneChannelCredentials } from '@cairn/proto';
import type { WorkflowDefinition } from '@cairn/sdk';
import { isModelList, parseModelList } from './residency.js';
import { startWorkerTracing } from './otel-sdk.js';
import { tracingShape, workerTracingConfig } from './telemetry-config.js';
import { Worker } from './worker.js';

const parses = (parse: (value: string) => unknown) => (value: string) => {
  try {
    parse(value);
    return true;
  } catch {
    return false;
  }
};

const schema = {
  CAIRN_CP_GRPC_ADDRESS: env.string().regex(/^\S+:\d+$/, 'expected host:port, e.g. cairn-cp.example.com:443'),
  CAIRN_CP_TLS: env.bool(false),
  CAIRN_CP_TLS_CA_FILE: env.optionalString(),
  CAIRN_CP_TLS_CERT_FILE: env.optionalString(),
  CAIRN_CP_TLS_KEY_FILE: env.optionalString(),
  CAIRN_DATA_PLANE_ID: env.string().regex(ID_PATTERN, 'expected the data plane ID (a lowercase UUID)'),
  CAIRN_DP_CREDENTIAL: env.string(),
  CAIRN_DP_DATABASE_URL: env.postgresUrl(),
  // One of the two: the keys themselves, or (envelope mode) the keys wrapped by the customer's KMS.
  CAIRN_DP_ENCRYPTION_KEYS: env
    .string()
    .refine(
      parses((v) => KeyRing.parse(v)),
      'expected id:base64key[,id:base64key...] with 32-byte keys (openssl rand -base64 32)',
    )
    .optional(),
  CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: env
    .string()
    .refine(
      parses((v) => parseWrappedKeys(v)),
      'expected id:base64wrappedkey[,…] (cairn-gateway wrap-key ID prints one)',
    )
    .optional(),
  CAIRN_DP_KMS: env.optionalString().refine((v) => v === undefined || v === 'file' || v === 'module', 'expected file or module'),
  CAIRN_DP_KMS_KEY_FILE: env.optionalString(),
  CAIRN_DP_KMS_MODULE: env.optionalString(),
  CAIRN_DP_HMAC_KEY: env.string().refine(
    parses((v) => Hasher.parse(v)),
    'expected a base64 key of at least 32 bytes (openssl rand -base64 32)',
  ),
  CAIRN_WORKER_SLOTS: env.int(10).refine((n) => n >= 1, 'expected at least 1'),
  CAIRN_SUSPEND_THRESHOLD_MS: env.int(5000),
  CAIRN_DRAIN_TIMEOUT_MS: env.int(25_000),
  CAIRN_WORKER_HEALTH_PORT: env.port().optional(),
  // The provider/model pairs whose names may cross to the control plane; others cross as
  // `unlisted` and a keyed digest.
  // strict: workflow, step and signal names cross to the control plane as keyed digests.
  CAIRN_RESIDENCY: env.residency(),
  CAIRN_WORKER_MODELS: env
    .optionalString()
    .refine(
      (v) => isModelList(v),
      'expected comma-separated provider/model pairs, e.g. mistral.chat/mistral-large-latest,openai.chat/gpt-4o-mini',
    ),
  // Development: a workflow version whose schemas changed replaces the catalogued ones instead of
  // refusing to start (the local stack sets it, like the control plane's CAIRN_DEV_MODE).
  CAIRN_DEV_MODE: env.bool(false),
  CAIRN_LOG_LEVEL: env.logLevel(),
  ...tracingShape,
};

/**
 * Variables that may be given as `<NAME>_FILE` instead: the path of a file holding the value (a
 * mounted Secret), so the value is not in the process environment.
 */
export const WORKER_SECRETS: readonly string[] = Object.freeze([
  'CAIRN_DP_CREDENTIAL',
  'CAIRN_DP_DATABASE_URL',
  'CAIRN_DP_ENCRYPTION_KEYS',
  'CAIRN_DP_WRAPPED_ENCRYPTION_KEYS',
  'CAIRN_DP_HMAC_KEY',
]);

/** Every environment variable the worker reads (the README's table lists each one). */
export const WORKER_ENVIRONMENT_VARIABLES: readonly string[] = Object.freeze([...Object.keys(schema), ...EGRESS_PROXY_VARIABLES]);

/** The worker's configuration, validated from the environment. */
export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

/**
 * Reads and validates the worker's environment (see the package README for the table). Throws one
 * `CAIRN-1001` error naming every bad variable; values are never echoed.
 */
export function loadWorkerConfig(environment: Record<string, string | undefined> = process.env) {
  const config = loadConfig('The Cairn worker', schema, environment, { secrets: WORKER_SECRETS, check: keyVariableProblems });
  const keys = keySourceOf({
    plain: config.CAIRN_DP_ENCRYPTION_KEYS === undefined ? undefined : KeyRing.parse(config.CAIRN_DP_ENCRYPTION_KEYS),
    wrapped: config.CAIRN_DP_WRAPPED_ENCRYPTION_KEYS === undefined ? undefined : parseWrappedKeys(config.CAIRN_DP_WRAPPED_ENCRYPTION_KEYS),
    kms: config.CAIRN_DP_KMS === 'file' || config.CAIRN_DP_KMS === 'module' ? config.CAIRN_DP_KMS : undefined,
    keyFile: config.CAIRN_DP_KMS_KEY_FILE,
    module: config.CAIRN_DP_KMS_MODULE,
  });
  if ('problems' in keys) {
    throw new CairnError(
      ErrorCodes.INVALID_CONFIG,
      `The Cairn worker cannot start: invalid environment:\n${keys.problems.join('\n')}\nSet these variables and start again.`,
    );
  }
  // Refuses a traces endpoint on the control plane's host (a CairnError like the one above).
  workerTracingConfig(config);
  return Object.freeze({ ...config, keySource: keys });
}

/**
 * Runs a worker configured from the environment: validates it, connects to the payload store,
 * applies its migrations, compares its keys with the store's key checks, connects to the control
 * plane and runs until SIGTERM/SIGINT, then drains and exits. A configuration error is printed
 * (naming each bad variable) and exits with status 1, as does a key that does not match the
 * payload store (`CAIRN-3006`, naming the key ID; nothing is dialled).
 *
 * @example
 * ```ts
 * import { runWorkerFromEnv } from '@cairn/worker';
 * import { orderRefund } from './order-refund.js';
 *
 * await runWorkerFromEnv([orderRefund]);
 * ```
 */
export async function runWorkerFromEnv(
  workflows: readonly WorkflowDefinition[],
  environment: Record<string, string | undefined> = process.env,
): Promise<void> {
  let config: WorkerConfig;
  try {
    config = loadWorkerConfig(environment);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  let channelCredentials: grpc.ChannelCredentials;
  try {
    channelCredentials = controlPlaneChannelCredentials(
      {
        enabled: config.CAIRN_CP_TLS || config.CAIRN_CP_TLS_CA_FILE !== undefined || config.CAIRN_CP_TLS_CERT_FILE !== undefined,
        caFile: config.CAIRN_CP_TLS_CA_FILE,
        certFile: config.CAIRN_CP_TLS_CERT_FILE,
        keyFile: config.CAIRN_CP_TLS_KEY_FILE,
      },
      (path) => readFileSync(path),
    );
  } catch (err) {
    process.stderr.write(`worker cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const logger = createLogger('worker', config.CAIRN_LOG_LEVEL);
  try {
    // Model providers (fetch) and the control plane (gRPC) through HTTPS_PROXY, except NO_PROXY.
    const proxy = useEgressProxyFromEnv(environment);
    if (proxy) logger.info(proxy, 'outbound HTTP and the control-plane connection go through the HTTP proxy (HTTPS_PROXY / NO_PROXY)');
  } catch (err) {
    process.stderr.write(`worker cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const tracingConfig = workerTracingConfig(config);
  // Before the payload store and the worker exist, so every span of the process has the provider.
  const tracing = tracingConfig ? await startWorkerTracing(tracingConfig) : undefined;
  if (tracing?.started) logger.info({ from: tracingConfig?.variable }, 'exporting traces through the OpenTelemetry SDK');
  else if (tracing) logger.info('the application registered a tracer provider: worker spans go to it');
  let keys: KeyRing;
  try {
    // Envelope mode: the wrapped keys are unwrapped through the KMS here, once, and kept in memory.
    keys = await keyRingOf(config.keySource, environment);
  } catch (err) {
    process.stderr.write(`worker cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const store = PayloadStore.connect({
    connectionString: config.CAIRN_DP_DATABASE_URL,
    keys,
    poolMax: Math.max(10, config.CAIRN_WORKER_SLOTS + 2),
    applicationName: 'cairn-worker',
    logger,
  });
  try {
    const applied = await store.migrate();
    if (applied.length > 0) logger.info({ applied }, 'payload store migrated');
  } catch (err) {
    logger.fatal({ err }, 'cannot reach or migrate the payload store (CAIRN_DP_DATABASE_URL)');
    await store.close().catch(() => undefined);
    process.exit(1);
  }
  const worker = new Worker({
    controlPlaneAddress: config.CAIRN_CP_GRPC_ADDRESS,
    channelCredentials,
    credential: config.CAIRN_DP_CREDENTIAL,
    dataPlaneId: config.CAIRN_DATA_PLANE_ID,
    store,
    hasher: Hasher.parse(config.CAIRN_DP_HMAC_KEY),
    workflows,
    slots: config.CAIRN_WORKER_SLOTS,
    models: parseModelList(config.CAIRN_WORKER_MODELS),
    residency: config.CAIRN_RESIDENCY,
    suspendThresholdMs: config.CAIRN_SUSPEND_THRESHOLD_MS,
    drainTimeoutMs: config.CAIRN_DRAIN_TIMEOUT_MS,
    replaceChangedSchemas: config.CAIRN_DEV_MODE,
    logger,
  });
  const health =
    config.CAIRN_WORKER_HEALTH_PORT === undefined ? undefined : await serveHealth(worker, store, config.CAIRN_WORKER_HEALTH_PORT, logger);
  try {
    await worker.run();
    health?.close();
    await tracing?.shutdown().catch((err: unknown) => logger.warn({ err }, 'could not export the last spans'));
  } catch (err) {
    const error = err instanceof CairnError ? err : CairnError.from(err, ErrorCodes.INTERNAL);
    logger.fatal({ err: error }, 'worker stopped');
    // A refusal (a key that does not match the payload store, a bad credential…) is for the person
    // starting the worker, who may not read JSON logs.
    process.stderr.write(`worker stopped: ${error.message}\n`);
    await store.close().catch(() => undefined);
    process.exit(1);
  }
}

/**
 * Liveness and readiness probes for Kubernetes: `/healthz` answers 200 while the process runs;
 * `/readyz` answers 200 while the worker is connected to the control plane, not draining and able
 * to open the payload store's data (after a run it could not open, 503 with the reason: a restart
 * with the same keys would not help, so liveness stays 200). `/metrics` has the worker's metrics
 * (`WorkerMetrics`) and the payload store's LISTEN connection in the Prometheus text format.
 */
async function serveHealth(worker: Worker, store: PayloadStore, port: number, logger: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      worker.metrics.render(store.listenerState).then(
        (body) => res.writeHead(200, { 'content-type': worker.metrics.contentType }).end(body),
        (err: unknown) => {
          logger.warn({ err }, 'could not render the metrics');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
        },
      );
      return;
    }
    const misconfiguration = worker.misconfiguration;
    const ready = worker.connected && !worker.draining && misconfiguration === undefined;
    const readiness =
      misconfiguration !== undefined
        ? { status: 'misconfigured', reason: misconfiguration }
        : { status: ready ? 'ready' : worker.draining ? 'draining' : 'connecting' };
    const [status, body] =
      req.url === '/healthz'
        ? [200, { status: 'ok' }]
        : req.url === '/readyz'
          ? [ready ? 200 : 503, readiness]
          : [404, { status: 'not found' }];
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(port, '0.0.0.0', resolve));
  const address = server.address();
  logger.info({ port: typeof address === 'object' && address ? address.port : port }, 'worker health endpoint listening');
  return server;
}
