// The stack the chaos suite runs on: the real processes of both planes (two control-plane replicas
// behind a balancing proxy, gateways, workers, the local model server), the control plane's and the
// payload store's Postgres as separate servers that faults restart and freeze, and a fault proxy on
// every link a data-plane process dials.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { CairnClient } from '@cairn/client';
import { startStack, type ManagedProcess, type Stack, type StackLink } from '@cairn/dev';
import { freePort, startEmbeddedPostgres, type PostgresServer } from '@cairn/local-postgres';
import { ChaosPostgres } from './postgres.js';
import { FaultProxy } from './proxy.js';
import { EFFECTS_SCHEMA } from './workflows.js';

// Built to dist by `pnpm build`; the path holds from src (tests run through tsx) and from dist.
const workerModule = fileURLToPath(new URL('../dist/worker-main.js', import.meta.url));

export interface ChaosStackOptions {
  readonly dir: string;
  readonly workers: number;
  readonly gateways: number;
  readonly workerSlots: number;
  readonly leaseTtlMs: number;
  readonly heartbeatIntervalMs: number;
  readonly onLine?: (name: string, line: string) => void;
}

/** A process the injector may kill, stop, drain or cut off. */
export interface ChaosProcess {
  readonly kind: 'worker' | 'gateway' | 'control-plane';
  readonly process: ManagedProcess;
  /** Workers: the file whose number skews the process's clock. */
  readonly clockFile?: string;
  /** Where the process answers 200 once it is ready to serve (the probe Kubernetes would use). */
  readonly readyUrl?: string;
}

export interface ChaosStack {
  readonly stack: Stack;
  readonly controlPlaneDb: ChaosPostgres;
  readonly payloadDb: ChaosPostgres;
  readonly effectsDb: PostgresServer;
  /** Pools for the checker: the control-plane database as its owner, the payload store, the effects. */
  readonly cp: pg.Pool;
  readonly dp: pg.Pool;
  readonly effects: pg.Pool;
  readonly processes: readonly ChaosProcess[];
  readonly proxies: readonly FaultProxy[];
  /** One client per gateway, as applications would hold. */
  readonly clients: readonly CairnClient[];
  readonly maxConnections: number;
  stop(): Promise<void>;
}

const MAX_CONNECTIONS = 400;

/** The workers' drain bound (CAIRN_DRAIN_TIMEOUT_MS): the default, which the chaos stack keeps. */
export const DRAIN_TIMEOUT_MS = 25_000;

export async function startChaosStack(options: ChaosStackOptions): Promise<ChaosStack> {
  // What start-up has brought up so far, stopped in reverse order when a later part fails.
  const undo: Array<() => Promise<unknown>> = [];
  try {
    return await launch(options, undo);
  } catch (err) {
    for (const step of undo.reverse()) await step().catch(() => undefined);
    throw err;
  }
}

async function launch(options: ChaosStackOptions, undo: Array<() => Promise<unknown>>): Promise<ChaosStack> {
  mkdirSync(join(options.dir, 'clock'), { recursive: true });
  const controlPlaneDb = await ChaosPostgres.start('control-plane-postgres', join(options.dir, 'pg-cp'), MAX_CONNECTIONS);
  undo.push(() => controlPlaneDb.stop());
  const payloadDb = await ChaosPostgres.start('payload-store-postgres', join(options.dir, 'pg-dp'), MAX_CONNECTIONS);
  undo.push(() => payloadDb.stop());
  const effectsDb = await startEmbeddedPostgres({ fast: true, persistent: false, dataDir: join(options.dir, 'pg-effects') });
  undo.push(() => effectsDb.stop());
  const effectsUrl = await effectsDb.createDatabase('chaos_effects');
  const effects = new pg.Pool({ connectionString: effectsUrl, max: 4 });
  effects.on('error', () => undefined);
  undo.push(() => effects.end());
  await effects.query(EFFECTS_SCHEMA);

  const proxies: FaultProxy[] = [];
  const route = async (link: StackLink, address: string): Promise<string> => {
    const hostPort = (a: string): { host: string; port: number } => {
      const [host, port] = a.split(':');
      return { host: host!, port: Number(port) };
    };
    if (link.to === 'control-plane') {
      const proxy = await new FaultProxy(`${link.from}→control-plane`, link.addresses.map(hostPort)).listen();
      proxies.push(proxy);
      return proxy.address;
    }
    const url = new URL(address);
    const proxy = await new FaultProxy(`${link.from}→payload-store`, [{ host: url.hostname, port: Number(url.port) }]).listen();
    proxies.push(proxy);
    url.host = proxy.address;
    return url.toString();
  };

  undo.push(() => Promise.all(proxies.map((p) => p.close())));
  const stack = await startStack({
    postgres: controlPlaneDb.server,
    dataPlanePostgres: payloadDb.server,
    dir: options.dir,
    route,
    controlPlaneReplicas: 2,
    gateways: options.gateways,
    workers: 0,
    workerModule,
    workerSlots: options.workerSlots,
    workerEnv: { CAIRN_CHAOS_EFFECTS_URL: effectsUrl, CAIRN_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS) },
    // Runs that wait longer than this suspend, so sleeps, signals and backoffs cross the control plane.
    suspendThresholdMs: 200,
    leaseTtlMs: options.leaseTtlMs,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    sweepIntervalMs: 250,
    mockLlm: {},
    // Inputs of starts a killed gateway left behind are swept within the run, not after 10 minutes.
    gatewayEnv: { CAIRN_CP_TIMEOUT_MS: '3000', CAIRN_GATEWAY_ORPHAN_AGE_MS: '30000', CAIRN_GATEWAY_ORPHAN_SWEEP_INTERVAL_MS: '5000' },
    logLevel: 'warn',
    // What a worker did before a fault (draining, fenced, reconnecting) is in its log.
    workerLogLevel: 'info',
    ...(options.onLine ? { onLine: options.onLine } : {}),
  });

  undo.push(() => stack.stop());
  const processes: ChaosProcess[] = [];
  for (const cp of stack.controlPlanes) processes.push({ kind: 'control-plane', process: cp.process, readyUrl: `${cp.httpUrl}/readyz` });
  stack.gateways.forEach((gateway, i) =>
    processes.push({
      kind: 'gateway',
      process: gateway,
      readyUrl: `${stack.gatewayUrls[i]!}/readyz`,
    }),
  );
  for (let i = 0; i < options.workers; i++) {
    const clockFile = join(options.dir, 'clock', `worker-${i + 1}`);
    writeFileSync(clockFile, '0');
    const healthPort = await freePort();
    const worker = await stack.startWorker({
      replica: i,
      env: { CAIRN_CHAOS_CLOCK_FILE: clockFile, CAIRN_WORKER_HEALTH_PORT: String(healthPort) },
    });
    processes.push({
      kind: 'worker',
      process: worker,
      clockFile,
      readyUrl: `http://127.0.0.1:${healthPort}/readyz`,
    });
  }

  const cp = new pg.Pool({ connectionString: stack.cpDatabaseUrl, max: 3 });
  cp.on('error', () => undefined);
  const dp = new pg.Pool({ connectionString: stack.dpDatabaseUrl, max: 3 });
  dp.on('error', () => undefined);
  const clients = stack.gatewayUrls.map(
    (gatewayUrl) =>
      new CairnClient({
        gatewayUrl,
        token: stack.secrets.gatewayToken,
        // The workload handles failures itself, switching gateways, so one attempt per call.
        retry: { maxAttempts: 1 },
      }),
  );

  return {
    stack,
    controlPlaneDb,
    payloadDb,
    effectsDb,
    cp,
    dp,
    effects,
    processes,
    proxies,
    clients,
    maxConnections: MAX_CONNECTIONS,
    async stop() {
      for (const proxy of proxies) proxy.set({ kind: 'pass' });
      for (const p of processes) p.process.signal('SIGCONT');
      await stack.stop();
      await Promise.all(proxies.map((p) => p.close()));
      await Promise.all([cp.end(), dp.end(), effects.end()]);
      await controlPlaneDb.stop();
      await payloadDb.stop();
      await effectsDb.stop();
    },
  };
}
