import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { freePort, type PostgresServer } from '@cairn/local-postgres';
import { describeExit, ManagedProcess } from './process.js';
import { loadSecrets, CP_SERVICE_ROLE, DATABASES, type StackSecrets } from './secrets.js';
import { StartFailure, Supervision, type Service } from './supervisor.js';

export type { StackSecrets } from './secrets.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The server programs the stack starts. */
export interface ServerEntryPoints {
  readonly controlPlane: string;
  readonly gateway: string;
  readonly mockLlm: string;
  /** The built console the control plane serves; the control plane's own default when absent. */
  readonly consoleDir?: string;
}

/**
 * Entry points in this repository, built by `pnpm build`: the deployables, and the examples'
 * worker and model script (which exist only here).
 */
export const entryPoints = {
  controlPlane: join(repoRoot, 'apps/control-plane/dist/main.js'),
  gateway: join(repoRoot, 'apps/gateway/dist/main.js'),
  exampleWorker: join(repoRoot, 'examples/dist/worker.js'),
  mockLlm: join(repoRoot, 'packages/mock-llm/dist/main.js'),
  exampleModelScript: join(repoRoot, 'examples/mock-llm.json'),
};

/** Files a worker entry may be written in that Node runs only through the TypeScript loader. */
const TYPESCRIPT = new Set(['.ts', '.mts', '.cts', '.tsx']);

/** `node` arguments that run a worker entry: TypeScript through tsx's loader, with no build step. */
export function workerCommand(module: string): string[] {
  if (!TYPESCRIPT.has(extname(module))) return [module];
  // Resolved from here, not from the user's project: it need not have tsx installed.
  return ['--import', import.meta.resolve('tsx'), module];
}

/** A connection a data-plane process makes: to the control plane's gRPC port, or to the payload store. */
export interface StackLink {
  /** The process that dials (`worker-2`, `gateway`, …). */
  readonly from: string;
  readonly to: 'control-plane' | 'payload-store';
  /** Every address that serves the link (each control-plane replica's), for a router that balances across them. */
  readonly addresses: readonly string[];
}

export interface StackOptions {
  /** The Postgres server holding both planes' databases (separate databases and roles). */
  readonly postgres: PostgresServer;
  /**
   * A separate server for the payload store (as in production, where it is the customer's own
   * Postgres); default: `postgres`.
   */
  readonly dataPlanePostgres?: PostgresServer;
  /**
   * Where a data-plane process dials for `link`, given the address it would dial (`host:port` for
   * the control plane, a connection URL for the payload store). Called once per process, before it
   * starts. Tests put proxies here that cut, delay or blackhole a link.
   */
  readonly route?: (link: StackLink, address: string) => Promise<string>;
  /** Folder for logs and generated secrets. */
  readonly dir: string;
  /** The server programs (default: this repository's builds, `entryPoints`). */
  readonly entryPoints?: Partial<ServerEntryPoints>;
  /** Number of control-plane replicas on the one database (default 1). */
  readonly controlPlaneReplicas?: number;
  /** Whether to start a gateway (default true). */
  readonly gateway?: boolean;
  /** How many gateway processes to start when `gateway` is not false (default 1). */
  readonly gateways?: number;
  /** Worker processes to start (default 1) and the module they run (default: the examples). */
  readonly workers?: number;
  /** A JavaScript or TypeScript file that starts a worker (TypeScript runs through tsx, no build). */
  readonly workerModule?: string;
  /** The workers' working directory (default: this process's). */
  readonly workerCwd?: string;
  /** Extra environment for workers (e.g. a side-effect database for tests). */
  readonly workerEnv?: Record<string, string>;
  /** Extra environment for control-plane replicas (e.g. where they export traces). */
  readonly controlPlaneEnv?: Record<string, string>;
  /** More CAIRN_GATEWAY_TOKENS entries (`token[:scope+scope…]`) besides the stack's own token, which has every scope. */
  readonly gatewayTokens?: readonly string[];
  /** Extra environment for the gateway (e.g. CAIRN_GATEWAY_TRUSTED_PROXIES). */
  readonly gatewayEnv?: Record<string, string>;
  readonly workerSlots?: number;
  readonly suspendThresholdMs?: number;
  readonly leaseTtlMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly sweepIntervalMs?: number;
  /** Fixed ports for the first replica, the gateway and the model server (0 or absent: free ports). */
  readonly ports?: { readonly cpHttp?: number; readonly cpGrpc?: number; readonly gateway?: number; readonly mockLlm?: number };
  /**
   * Start the local model server (OpenAI-compatible and Mistral APIs, deterministic replies),
   * optionally with a script file; workers get its address as CAIRN_MOCK_LLM_URL. Tooling only: in
   * production workers call real providers from inside the cluster.
   */
  readonly mockLlm?: { readonly script?: string | undefined };
  /** Record every byte between the data plane and the control plane's gRPC port into this file. */
  readonly captureGrpcTo?: string;
  readonly logLevel?: string;
  /** The workers' log level when it differs from `logLevel`. */
  readonly workerLogLevel?: string;
  /** Called with each output line of each process, prefixed by its name. */
  readonly onLine?: (name: string, line: string) => void;
  /**
   * Keep every process running: one that exits unexpectedly is restarted with backoff, and `say`
   * gets one line about it. A worker that fails to start waits for `restartWorkers()` (a changed
   * file) when `workerStartFailure` is `wait`. Without it, processes that exit stay down (tests
   * that kill them on purpose rely on that). Supervised processes run in their own process group.
   */
  readonly supervise?: { readonly say: (line: string) => void; readonly workerStartFailure?: 'retry' | 'wait' };
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
  /** The control-plane database as its owner (migrations run with it; tests inspect with it). */
  readonly cpDatabaseUrl: string;
  /** The same database as the service role the control plane serves with (it can only read and append the audit log). */
  readonly cpServiceDatabaseUrl: string;
  readonly dpDatabaseUrl: string;
  readonly controlPlanes: ControlPlaneReplica[];
  /** The first gateway (undefined with `gateway: false`) and its URL. */
  readonly gateway: ManagedProcess | undefined;
  readonly gatewayUrl: string;
  /** Every gateway, in order, and their URLs. */
  readonly gateways: readonly ManagedProcess[];
  readonly gatewayUrls: readonly string[];
  readonly workers: ManagedProcess[];
  /** The local model server, when started (`mockLlmScript`). */
  readonly mockLlm: { readonly process: ManagedProcess; readonly url: string } | undefined;
  /** The supervision of each process, by name (empty unless `supervise` was given). */
  readonly supervisions: ReadonlyMap<string, Supervision>;
  /** Starts another worker process dialling replica `replica` (default: round robin). */
  startWorker(options?: { replica?: number; env?: Record<string, string> }): Promise<ManagedProcess>;
  /** Restarts every supervised worker (after a change to its code), printing `reason`. */
  restartWorkers(reason: string): Promise<void>;
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

/**
 * Waits until `url` answers 200. Rejects with a StartFailure (carrying what the process printed
 * on stderr) when the process exits first; resolves 'timeout' when it is still not ready after
 * `timeoutMs`.
 */
async function waitReady(url: string, timeoutMs: number, proc: ManagedProcess): Promise<'ready' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      await r.body?.cancel();
      if (r.status === 200) return 'ready';
    } catch {
      // not listening yet
    }
    if (!proc.running) {
      const exit = await proc.exitInfo;
      const lines = proc.errorLines.length > 0 ? proc.errorLines : proc.lines;
      throw new StartFailure(
        `${proc.name} exited (${describeExit(exit)}) during start-up; see ${proc.logFile}:\n${lines.slice(-20).join('\n')}`,
        lines.slice(-30),
        exit,
      );
    }
    if (Date.now() > deadline) return 'timeout';
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitHttp(url: string, timeoutMs: number, proc: ManagedProcess): Promise<void> {
  if ((await waitReady(url, timeoutMs, proc)) === 'timeout') {
    throw new Error(`${proc.name} was not ready at ${url} within ${timeoutMs} ms; see ${proc.logFile}`);
  }
}

/**
 * Starts the control plane (one or more replicas), a gateway and workers as real processes on
 * this machine, against databases on `options.postgres`.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const started: ManagedProcess[] = [];
  const supervisions: Supervision[] = [];
  const proxies: Server[] = [];
  try {
    return await launch(options, started, supervisions, proxies);
  } catch (err) {
    // Leave nothing running when start-up fails half way.
    await Promise.all(supervisions.map((s) => s.stop()));
    await Promise.all(started.map((p) => p.stop(5_000)));
    await Promise.all(proxies.map((p) => new Promise((r) => p.close(r))));
    throw err;
  }
}

async function launch(options: StackOptions, started: ManagedProcess[], supervisions: Supervision[], proxies: Server[]): Promise<Stack> {
  const dir = resolve(options.dir);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const pgServer = options.postgres;
  const dpServer = options.dataPlanePostgres ?? pgServer;
  const secrets = loadSecrets(dir, (role, password, database = role) =>
    (database === DATABASES.dataPlane ? dpServer : pgServer).url(database, { user: role, password }),
  );
  const cpDatabaseUrl = await pgServer.createOwnedDatabase(DATABASES.controlPlane, secrets.cpDbPassword);
  const cpServiceDatabaseUrl = await pgServer.createLoginRole(CP_SERVICE_ROLE, secrets.cpServiceDbPassword, DATABASES.controlPlane);
  const dpDatabaseUrl = await dpServer.createOwnedDatabase(DATABASES.dataPlane, secrets.dpDbPassword);
  const route = (from: string, to: StackLink['to'], address: string): Promise<string> => {
    if (!options.route) return Promise.resolve(address);
    const addresses = to === 'control-plane' ? controlPlanes.map((cp) => cp.grpcAddress) : [address];
    return options.route({ from, to, addresses }, address);
  };
  const servers: ServerEntryPoints = {
    controlPlane: options.entryPoints?.controlPlane ?? entryPoints.controlPlane,
    gateway: options.entryPoints?.gateway ?? entryPoints.gateway,
    mockLlm: options.entryPoints?.mockLlm ?? entryPoints.mockLlm,
  };
  for (const [name, file] of Object.entries(servers) as Array<[string, string]>) {
    if (!existsSync(file)) throw new Error(`The ${name} program ${file} is missing: build it first (pnpm build at the repository root).`);
  }
  const logLevel = options.logLevel ?? 'info';
  const node = process.execPath;
  const onLine = (name: string) => (line: string) => options.onLine?.(name, line);
  const supervise = options.supervise;
  const spawnOptions = supervise ? { detached: true } : {};
  const byName = new Map<string, Supervision>();

  /** Starts a process and waits until it is ready; supervised, it is kept running from then on. */
  const run = async (
    proc: ManagedProcess,
    ready: (proc: ManagedProcess) => Promise<void>,
    haltTimeoutMs: number,
    startFailure: 'retry' | 'wait' = 'retry',
  ): Promise<void> => {
    started.push(proc);
    if (!supervise) {
      proc.start();
      await ready(proc);
      return;
    }
    const service: Service = {
      name: proc.name,
      logFile: proc.logFile,
      async launch() {
        proc.start();
        try {
          await ready(proc);
        } catch (err) {
          await proc.stop(5_000);
          throw err;
        }
        return { exited: proc.exitInfo };
      },
      async halt() {
        await proc.stop(haltTimeoutMs);
      },
    };
    const supervision = new Supervision(service, supervise.say, { onStartFailure: startFailure });
    supervisions.push(supervision);
    byName.set(proc.name, supervision);
    await supervision.start();
  };

  // The control plane serves as the service role; only the commands below hold the owner's URL.
  const cpEnvBase = {
    // One developer on one machine: the request rates that protect a shared control plane from one
    // tenant would only get in the way of scripts and tests polling it (the environment may still lower them).
    CAIRN_CP_RATE_LIMIT_PER_KEY: '10000',
    CAIRN_CP_RATE_LIMIT_PER_DATA_PLANE: '10000',
    CAIRN_CP_RATE_LIMIT_PER_ORGANIZATION: '20000',
    ...process.env,
    CAIRN_CP_DATABASE_URL: cpServiceDatabaseUrl,
    CAIRN_CP_HOST: '127.0.0.1',
    // The local stack's admin key: organisation "default", project "default" (where the local data
    // plane is registered). Workers register the workflow versions they announce (development mode).
    CAIRN_BOOTSTRAP_ADMIN_KEY: secrets.apiToken,
    CAIRN_AUDIT_SIGNING_KEY: secrets.auditSigningKey,
    CAIRN_DEV_MODE: 'true',
    CAIRN_LOG_LEVEL: logLevel,
    ...(options.entryPoints?.consoleDir === undefined ? {} : { CAIRN_CP_CONSOLE_DIR: options.entryPoints.consoleDir }),
    ...(options.leaseTtlMs ? { CAIRN_LEASE_TTL_MS: String(options.leaseTtlMs) } : {}),
    ...(options.heartbeatIntervalMs ? { CAIRN_HEARTBEAT_INTERVAL_MS: String(options.heartbeatIntervalMs) } : {}),
    ...(options.sweepIntervalMs ? { CAIRN_SWEEP_INTERVAL_MS: String(options.sweepIntervalMs) } : {}),
  };
  const ownerEnv = {
    ...process.env,
    CAIRN_CP_DATABASE_URL: cpServiceDatabaseUrl,
    CAIRN_CP_MIGRATION_DATABASE_URL: cpDatabaseUrl,
    CAIRN_CP_SERVICE_ROLE: CP_SERVICE_ROLE,
    CAIRN_LOG_LEVEL: logLevel,
  };

  // Migrate as the owner (granting the service role), and register the local data plane, before anything dials in.
  const migrate = spawnSync(node, [servers.controlPlane, 'migrate'], { env: ownerEnv, encoding: 'utf8' });
  if (migrate.status !== 0) throw new Error(`control-plane migrations failed:\n${migrate.stderr}${migrate.stdout}`);
  const register = spawnSync(
    node,
    [servers.controlPlane, 'data-planes', 'create', '--name', 'local', '--id', secrets.dataPlaneId, '--token', secrets.dataPlaneCredential],
    { env: { ...cpEnvBase, CAIRN_LOG_LEVEL: 'error' }, encoding: 'utf8' },
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
      [servers.controlPlane],
      { ...cpEnvBase, ...(options.controlPlaneEnv ?? {}), CAIRN_CP_HTTP_PORT: String(httpPort), CAIRN_CP_GRPC_PORT: String(grpcPort) },
      join(dir, 'logs', `${name}.log`),
      onLine(name),
      spawnOptions,
    );
    let dialPort = grpcPort;
    if (options.captureGrpcTo) {
      const proxy = await captureProxy(grpcPort, options.captureGrpcTo);
      proxies.push(proxy.server);
      dialPort = proxy.port;
    }
    controlPlanes.push({ process: proc, httpUrl: `http://127.0.0.1:${httpPort}`, grpcAddress: `127.0.0.1:${dialPort}`, grpcPort });
  }
  await Promise.all(controlPlanes.map((cp) => run(cp.process, (p) => waitHttp(`${cp.httpUrl}/readyz`, 30_000, p), 10_000)));

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

  const gateways: ManagedProcess[] = [];
  const gatewayUrls: string[] = [];
  const gatewayCount = (options.gateway ?? true) ? (options.gateways ?? 1) : 0;
  for (let i = 0; i < gatewayCount; i++) {
    const port = (i === 0 && options.ports?.gateway) || (await freePort());
    const name = gatewayCount === 1 ? 'gateway' : `gateway-${i + 1}`;
    const gateway = new ManagedProcess(
      name,
      node,
      [servers.gateway],
      {
        ...process.env,
        ...dpEnv,
        CAIRN_DP_DATABASE_URL: await route(name, 'payload-store', dpDatabaseUrl),
        CAIRN_GATEWAY_HOST: '127.0.0.1',
        CAIRN_GATEWAY_PORT: String(port),
        CAIRN_CP_GRPC_ADDRESS: await route(name, 'control-plane', controlPlanes[i % controlPlanes.length]!.grpcAddress),
        // The console, served by the control plane, fetches payloads from the gateway in the browser.
        CAIRN_GATEWAY_CORS_ORIGINS: controlPlanes
          .flatMap((cp) => [cp.httpUrl, cp.httpUrl.replace('//127.0.0.1:', '//localhost:')])
          .join(','),
        ...(options.gatewayEnv ?? {}),
        CAIRN_GATEWAY_TOKENS: [secrets.gatewayToken, ...(options.gatewayTokens ?? [])].join(','),
      },
      join(dir, 'logs', `${name}.log`),
      onLine(name),
      spawnOptions,
    );
    const url = `http://127.0.0.1:${port}`;
    gateways.push(gateway);
    gatewayUrls.push(url);
  }
  await Promise.all(gateways.map((g, i) => run(g, (p) => waitHttp(`${gatewayUrls[i]!}/readyz`, 30_000, p), 10_000)));

  let mockLlm: Stack['mockLlm'];
  if (options.mockLlm) {
    const port = options.ports?.mockLlm || (await freePort());
    const script = options.mockLlm.script ? ['--script', options.mockLlm.script] : [];
    const proc = new ManagedProcess(
      'mock-llm',
      node,
      [servers.mockLlm, '--port', String(port), ...script],
      { ...process.env, CAIRN_LOG_LEVEL: logLevel },
      join(dir, 'logs', 'mock-llm.log'),
      onLine('mock-llm'),
      spawnOptions,
    );
    mockLlm = { process: proc, url: `http://127.0.0.1:${port}` };
    await run(proc, (p) => waitHttp(`${mockLlm!.url}/healthz`, 30_000, p), 10_000);
  }

  const workers: ManagedProcess[] = [];
  let nextReplica = 0;
  const workerEnv = (replica = 0): Record<string, string> => ({
    ...dpEnv,
    ...(options.workerLogLevel ? { CAIRN_LOG_LEVEL: options.workerLogLevel } : {}),
    CAIRN_CP_GRPC_ADDRESS: controlPlanes[replica % controlPlanes.length]!.grpcAddress,
    ...(options.workerSlots ? { CAIRN_WORKER_SLOTS: String(options.workerSlots) } : {}),
    ...(options.suspendThresholdMs !== undefined ? { CAIRN_SUSPEND_THRESHOLD_MS: String(options.suspendThresholdMs) } : {}),
    // The local model server's model is the one whose name may cross to the control plane.
    ...(mockLlm ? { CAIRN_MOCK_LLM_URL: mockLlm.url, CAIRN_WORKER_MODELS: 'mock.chat/mock-small' } : {}),
    ...(options.workerEnv ?? {}),
  });
  let workerCount = 0;
  const workerModule = options.workerModule ?? entryPoints.exampleWorker;
  const startWorker = async (o: { replica?: number; env?: Record<string, string> } = {}): Promise<ManagedProcess> => {
    const replica = o.replica ?? nextReplica++;
    workerCount++;
    const name = supervise && (options.workers ?? 1) === 1 && workerCount === 1 ? 'worker' : `worker-${workerCount}`;
    // The caller may choose the port (to probe the worker itself); otherwise a free one.
    const healthPort = Number(o.env?.['CAIRN_WORKER_HEALTH_PORT'] ?? 0) || (await freePort());
    const env = workerEnv(replica);
    const proc = new ManagedProcess(
      name,
      node,
      workerCommand(workerModule),
      {
        ...process.env,
        ...env,
        CAIRN_CP_GRPC_ADDRESS: await route(name, 'control-plane', env['CAIRN_CP_GRPC_ADDRESS']!),
        CAIRN_DP_DATABASE_URL: await route(name, 'payload-store', env['CAIRN_DP_DATABASE_URL']!),
        CAIRN_WORKER_HEALTH_PORT: String(healthPort),
        ...(o.env ?? {}),
      },
      join(dir, 'logs', `${name}.log`),
      onLine(name),
      { ...spawnOptions, ...(options.workerCwd ? { cwd: options.workerCwd } : {}) },
    );
    workers.push(proc);
    // Ready once connected to the control plane (the probe Kubernetes would use).
    const readyUrl = `http://127.0.0.1:${healthPort}/readyz`;
    await run(
      proc,
      async (p) => {
        if ((await waitReady(readyUrl, 60_000, p)) === 'ready') return;
        if (!supervise) throw new Error(`${p.name} was not ready at ${readyUrl} within 60000 ms; see ${p.logFile}`);
        // Still running: a worker that cannot reach the control plane yet keeps trying on its own.
        supervise.say(`${p.name} is running but not connected to the control plane yet; see ${p.logFile}`);
      },
      // A worker drains first (it gives its runs back); the stack sets a short drain timeout.
      30_000,
      supervise?.workerStartFailure ?? 'retry',
    );
    return proc;
  };
  // Workers start side by side: twenty of them one after another would take a long while.
  await Promise.all(Array.from({ length: options.workers ?? 1 }, () => startWorker()));

  return {
    secrets,
    cpDatabaseUrl,
    cpServiceDatabaseUrl,
    dpDatabaseUrl,
    controlPlanes,
    gateway: gateways[0],
    gatewayUrl: gatewayUrls[0] ?? '',
    gateways,
    gatewayUrls,
    workers,
    mockLlm,
    supervisions: byName,
    startWorker,
    workerEnv,
    async restartWorkers(reason) {
      await Promise.all(workers.map((w) => byName.get(w.name)?.restart(reason) ?? Promise.resolve()));
    },
    async stop() {
      const stopOne = (p: ManagedProcess, timeoutMs: number): Promise<unknown> => byName.get(p.name)?.stop() ?? p.stop(timeoutMs);
      await Promise.all(workers.map((w) => stopOne(w, 10_000)));
      await Promise.all(gateways.map((g) => stopOne(g, 10_000)));
      if (mockLlm) await stopOne(mockLlm.process, 10_000);
      await Promise.all(controlPlanes.map((cp) => stopOne(cp.process, 10_000)));
      await Promise.all(proxies.map((p) => new Promise((r) => p.close(r))));
    },
  };
}
