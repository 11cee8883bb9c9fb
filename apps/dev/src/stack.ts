import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { freePort, type PostgresServer } from '@cairn/local-postgres';
import { ManagedProcess } from './process.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Entry points of the deployables, built by `pnpm build`. */
export const entryPoints = {
  controlPlane: join(repoRoot, 'apps/control-plane/dist/main.js'),
  gateway: join(repoRoot, 'apps/gateway/dist/main.js'),
  exampleWorker: join(repoRoot, 'examples/dist/worker.js'),
  mockLlm: join(repoRoot, 'packages/mock-llm/dist/main.js'),
  exampleModelScript: join(repoRoot, 'examples/mock-llm.json'),
};

/** Credentials and keys of a local stack, generated once per data folder. */
export interface StackSecrets {
  readonly cpDbPassword: string;
  readonly dpDbPassword: string;
  readonly apiToken: string;
  readonly gatewayToken: string;
  readonly dataPlaneId: string;
  readonly dataPlaneCredential: string;
  readonly encryptionKeys: string;
  readonly hmacKey: string;
}

function loadSecrets(dir: string): StackSecrets {
  const file = join(dir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as StackSecrets;
  const b64 = (n: number) => randomBytes(n).toString('base64url');
  const secrets: StackSecrets = {
    cpDbPassword: b64(18),
    dpDbPassword: b64(18),
    apiToken: `cak_${b64(24)}`,
    gatewayToken: `cgt_${b64(24)}`,
    dataPlaneId: randomUUID(),
    dataPlaneCredential: `cdp_${b64(32)}`,
    encryptionKeys: `k1:${randomBytes(32).toString('base64')}`,
    hmacKey: randomBytes(32).toString('base64'),
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
  return secrets;
}

export interface StackOptions {
  /** The Postgres server holding both planes' databases (separate databases and roles). */
  readonly postgres: PostgresServer;
  /** Folder for logs and generated secrets. */
  readonly dir: string;
  /** Number of control-plane replicas on the one database (default 1). */
  readonly controlPlaneReplicas?: number;
  /** Whether to start a gateway (default true). */
  readonly gateway?: boolean;
  /** Worker processes to start (default 1) and the module they run (default: the examples). */
  readonly workers?: number;
  readonly workerModule?: string;
  /** Extra environment for workers (e.g. a side-effect database for tests). */
  readonly workerEnv?: Record<string, string>;
  /** Extra environment for control-plane replicas (e.g. where they export traces). */
  readonly controlPlaneEnv?: Record<string, string>;
  readonly workerSlots?: number;
  readonly suspendThresholdMs?: number;
  readonly leaseTtlMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly sweepIntervalMs?: number;
  /** Fixed ports for the first replica and the gateway (0 or absent: free ports). */
  readonly ports?: { readonly cpHttp?: number; readonly cpGrpc?: number; readonly gateway?: number };
  /**
   * Start the local model server (OpenAI-compatible and Mistral APIs, deterministic replies),
   * optionally with a script file; workers get its address as CAIRN_MOCK_LLM_URL. Tooling only: in
   * production workers call real providers from inside the cluster.
   */
  readonly mockLlm?: { readonly script?: string | undefined };
  /** Record every byte between the data plane and the control plane's gRPC port into this file. */
  readonly captureGrpcTo?: string;
  readonly logLevel?: string;
  /** Called with each output line of each process, prefixed by its name. */
  readonly onLine?: (name: string, line: string) => void;
}

/** One control-plane replica. */
export interface ControlPlaneReplica {
  readonly process: ManagedProcess;
  readonly httpUrl: string;
  /** The address data-plane processes dial (through the capture proxy when enabled). */
  readonly grpcAddress: string;
  readonly grpcPort: number;
}

/** A running local stack. */
export interface Stack {
  readonly secrets: StackSecrets;
  readonly cpDatabaseUrl: string;
  readonly dpDatabaseUrl: string;
  readonly controlPlanes: ControlPlaneReplica[];
  readonly gateway: ManagedProcess | undefined;
  readonly gatewayUrl: string;
  readonly workers: ManagedProcess[];
  /** The local model server, when started (`mockLlmScript`). */
  readonly mockLlm: { readonly process: ManagedProcess; readonly url: string } | undefined;
  /** Starts another worker process dialling replica `replica` (default: round robin). */
  startWorker(options?: { replica?: number; env?: Record<string, string> }): Promise<ManagedProcess>;
  /** Environment a worker of this stack needs (for starting one by hand). */
  workerEnv(replica?: number): Record<string, string>;
  stop(): Promise<void>;
}

/** A TCP proxy that records every byte in both directions, to prove what crosses the boundary. */
async function captureProxy(targetPort: number, file: string): Promise<{ port: number; server: Server }> {
  mkdirSync(dirname(file), { recursive: true });
  const server = createServer((client: Socket) => {
    const upstream = connect(targetPort, '127.0.0.1');
    client.on('data', (b) => appendFileSync(file, b));
    upstream.on('data', (b) => appendFileSync(file, b));
    client.pipe(upstream);
    upstream.pipe(client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('capture proxy has no port');
  return { port: address.port, server };
}

async function waitHttp(url: string, timeoutMs: number, proc: ManagedProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    if (!proc.running) throw new Error(`${proc.name} exited during start-up; see ${proc.logFile}:\n${proc.lines.slice(-20).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`${proc.name} was not ready at ${url} within ${timeoutMs} ms; see ${proc.logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts the control plane (one or more replicas), a gateway and workers as real processes on
 * this machine, against databases on `options.postgres`.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const started: ManagedProcess[] = [];
  const proxies: Server[] = [];
  try {
    return await launch(options, started, proxies);
  } catch (err) {
    // Leave nothing running when start-up fails half way.
    await Promise.all(started.map((p) => p.stop(5_000)));
    await Promise.all(proxies.map((p) => new Promise((r) => p.close(r))));
    throw err;
  }
}

async function launch(options: StackOptions, started: ManagedProcess[], proxies: Server[]): Promise<Stack> {
  const dir = resolve(options.dir);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const secrets = loadSecrets(dir);
  const pgServer = options.postgres;
  const cpDatabaseUrl = await pgServer.createOwnedDatabase('cairn_cp', secrets.cpDbPassword);
  const dpDatabaseUrl = await pgServer.createOwnedDatabase('cairn_dp', secrets.dpDbPassword);
  const logLevel = options.logLevel ?? 'info';
  const node = process.execPath;
  const onLine = (name: string) => (line: string) => options.onLine?.(name, line);

  const cpEnvBase = {
    ...process.env,
    CAIRN_CP_DATABASE_URL: cpDatabaseUrl,
    CAIRN_CP_HOST: '127.0.0.1',
    // The local stack's admin key: organisation "default", project "default" (where the local data
    // plane is registered). Workers register the workflow versions they announce (development mode).
    CAIRN_BOOTSTRAP_ADMIN_KEY: secrets.apiToken,
    CAIRN_DEV_MODE: 'true',
    CAIRN_LOG_LEVEL: logLevel,
    ...(options.leaseTtlMs ? { CAIRN_LEASE_TTL_MS: String(options.leaseTtlMs) } : {}),
    ...(options.heartbeatIntervalMs ? { CAIRN_HEARTBEAT_INTERVAL_MS: String(options.heartbeatIntervalMs) } : {}),
    ...(options.sweepIntervalMs ? { CAIRN_SWEEP_INTERVAL_MS: String(options.sweepIntervalMs) } : {}),
  };

  // Migrate and register the local data plane before anything dials in.
  const migrate = spawnSync(node, [entryPoints.controlPlane, 'migrate'], { env: cpEnvBase, encoding: 'utf8' });
  if (migrate.status !== 0) throw new Error(`control-plane migrations failed:\n${migrate.stderr}${migrate.stdout}`);
  const register = spawnSync(
    node,
    [
      entryPoints.controlPlane,
      'data-planes',
      'create',
      '--name',
      'local',
      '--id',
      secrets.dataPlaneId,
      '--token',
      secrets.dataPlaneCredential,
    ],
    { env: cpEnvBase, encoding: 'utf8' },
  );
  if (register.status !== 0) throw new Error(`registering the local data plane failed:\n${register.stderr}${register.stdout}`);

  const controlPlanes: ControlPlaneReplica[] = [];
  const replicas = options.controlPlaneReplicas ?? 1;
  for (let i = 0; i < replicas; i++) {
    const httpPort = i === 0 && options.ports?.cpHttp ? options.ports.cpHttp : await freePort();
    const grpcPort = i === 0 && options.ports?.cpGrpc ? options.ports.cpGrpc : await freePort();
    const name = replicas === 1 ? 'control-plane' : `control-plane-${i + 1}`;
    const proc = new ManagedProcess(
      name,
      node,
      [entryPoints.controlPlane],
      { ...cpEnvBase, ...(options.controlPlaneEnv ?? {}), CAIRN_CP_HTTP_PORT: String(httpPort), CAIRN_CP_GRPC_PORT: String(grpcPort) },
      join(dir, 'logs', `${name}.log`),
      onLine(name),
    ).start();
    started.push(proc);
    let dialPort = grpcPort;
    if (options.captureGrpcTo) {
      const proxy = await captureProxy(grpcPort, options.captureGrpcTo);
      proxies.push(proxy.server);
      dialPort = proxy.port;
    }
    controlPlanes.push({ process: proc, httpUrl: `http://127.0.0.1:${httpPort}`, grpcAddress: `127.0.0.1:${dialPort}`, grpcPort });
  }
  await Promise.all(controlPlanes.map((cp) => waitHttp(`${cp.httpUrl}/readyz`, 30_000, cp.process)));

  const dpEnv = {
    CAIRN_DATA_PLANE_ID: secrets.dataPlaneId,
    CAIRN_DP_CREDENTIAL: secrets.dataPlaneCredential,
    CAIRN_DP_DATABASE_URL: dpDatabaseUrl,
    CAIRN_DP_ENCRYPTION_KEYS: secrets.encryptionKeys,
    CAIRN_DP_HMAC_KEY: secrets.hmacKey,
    CAIRN_LOG_LEVEL: logLevel,
    // Workers replace a version's changed schemas in the catalogue instead of refusing to start.
    CAIRN_DEV_MODE: 'true',
  };

  let gateway: ManagedProcess | undefined;
  let gatewayUrl = '';
  if (options.gateway ?? true) {
    const port = options.ports?.gateway || (await freePort());
    gateway = new ManagedProcess(
      'gateway',
      node,
      [entryPoints.gateway],
      {
        ...process.env,
        ...dpEnv,
        CAIRN_GATEWAY_HOST: '127.0.0.1',
        CAIRN_GATEWAY_PORT: String(port),
        CAIRN_CP_GRPC_ADDRESS: controlPlanes[0]!.grpcAddress,
        CAIRN_GATEWAY_TOKENS: secrets.gatewayToken,
      },
      join(dir, 'logs', 'gateway.log'),
      onLine('gateway'),
    ).start();
    started.push(gateway);
    gatewayUrl = `http://127.0.0.1:${port}`;
    await waitHttp(`${gatewayUrl}/readyz`, 30_000, gateway);
  }

  let mockLlm: Stack['mockLlm'];
  if (options.mockLlm) {
    const port = await freePort();
    const script = options.mockLlm.script ? ['--script', options.mockLlm.script] : [];
    const proc = new ManagedProcess(
      'mock-llm',
      node,
      [entryPoints.mockLlm, '--port', String(port), ...script],
      { ...process.env, CAIRN_LOG_LEVEL: logLevel },
      join(dir, 'logs', 'mock-llm.log'),
      onLine('mock-llm'),
    ).start();
    started.push(proc);
    mockLlm = { process: proc, url: `http://127.0.0.1:${port}` };
    await waitHttp(`${mockLlm.url}/healthz`, 30_000, proc);
  }

  const workers: ManagedProcess[] = [];
  let nextReplica = 0;
  const workerEnv = (replica = 0): Record<string, string> => ({
    ...dpEnv,
    CAIRN_CP_GRPC_ADDRESS: controlPlanes[replica % controlPlanes.length]!.grpcAddress,
    ...(options.workerSlots ? { CAIRN_WORKER_SLOTS: String(options.workerSlots) } : {}),
    ...(options.suspendThresholdMs !== undefined ? { CAIRN_SUSPEND_THRESHOLD_MS: String(options.suspendThresholdMs) } : {}),
    ...(mockLlm ? { CAIRN_MOCK_LLM_URL: mockLlm.url } : {}),
    ...(options.workerEnv ?? {}),
  });
  let workerCount = 0;
  const startWorker = async (o: { replica?: number; env?: Record<string, string> } = {}): Promise<ManagedProcess> => {
    const replica = o.replica ?? nextReplica++;
    const name = `worker-${++workerCount}`;
    const healthPort = await freePort();
    const proc = new ManagedProcess(
      name,
      node,
      [options.workerModule ?? entryPoints.exampleWorker],
      { ...process.env, ...workerEnv(replica), CAIRN_WORKER_HEALTH_PORT: String(healthPort), ...(o.env ?? {}) },
      join(dir, 'logs', `${name}.log`),
      onLine(name),
    ).start();
    started.push(proc);
    workers.push(proc);
    // Ready once connected to the control plane (the probe Kubernetes would use).
    await waitHttp(`http://127.0.0.1:${healthPort}/readyz`, 60_000, proc);
    return proc;
  };
  // Workers start side by side: twenty of them one after another would take a long while.
  await Promise.all(Array.from({ length: options.workers ?? 1 }, () => startWorker()));

  return {
    secrets,
    cpDatabaseUrl,
    dpDatabaseUrl,
    controlPlanes,
    gateway,
    gatewayUrl,
    workers,
    mockLlm,
    startWorker,
    workerEnv,
    async stop() {
      await Promise.all(workers.map((w) => w.stop(10_000)));
      await gateway?.stop(10_000);
      await mockLlm?.process.stop(10_000);
      await Promise.all(controlPlanes.map((cp) => cp.process.stop(10_000)));
      await Promise.all(proxies.map((p) => new Promise((r) => p.close(r))));
    },
  };
}
