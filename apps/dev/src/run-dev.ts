// `cairn dev` / `pnpm dev`: the local stack for a project. Postgres from npm (data in .cairn/pg),
// the control plane, a gateway, the local model server and the project's worker, each supervised;
// the worker's TypeScript runs without a build and restarts when the project's files change. In
// this repository, without a worker, it runs the examples as the Quick start describes.
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { CairnError, ErrorCodes } from '@cairn/common';
import { startEmbeddedPostgres, systemPostgres, type PostgresServer } from '@cairn/local-postgres';
import { writeEndpoints, type Endpoints } from './endpoints.js';
import { runAgentExample, runExample, runResearchExample } from './example.js';
import { checkPorts } from './ports.js';
import { findProjectDir, type DevSettings } from './settings.js';
import { entryPoints as repoEntryPoints, startStack, type ServerEntryPoints, type Stack } from './stack.js';
import { Supervision, type Service } from './supervisor.js';
import { watchProject, type ProjectWatcher } from './watch.js';

/** What `runDev` hands to `onReady` once the stack is up. */
export interface DevReadyInfo {
  readonly endpoints: Endpoints;
  readonly apiKey: string;
  readonly gatewayToken: string;
}

export interface RunDevOptions {
  readonly settings: DevSettings;
  /** Run the examples (or, with a worker, wait until it is ready) and stop. */
  readonly exit?: boolean;
  /** Print every process's output. */
  readonly verbose?: boolean;
  /** The server programs (default: this repository's builds). */
  readonly entryPoints?: Partial<ServerEntryPoints>;
  /** Called once the stack is up; the lines it returns are printed with the banner. */
  readonly onReady?: (info: DevReadyInfo) => Promise<readonly string[]> | readonly string[];
  /** Where output goes (default: stdout and stderr). */
  readonly print?: (line: string) => void;
  readonly printError?: (line: string) => void;
  /** Exit on SIGINT/SIGTERM/SIGHUP (default true); tests drive `stop` themselves. */
  readonly handleSignals?: boolean;
}

export interface DevSession {
  /** Resolves with the exit code once the stack has stopped (after --exit, a signal, or `stop`). */
  readonly done: Promise<number>;
  stop(code?: number): Promise<number>;
}

const color = (code: string) => (s: string) => (process.stdout.isTTY && !process.env['NO_COLOR'] ? `\x1b[${code}m${s}\x1b[0m` : s);
const dim = color('2');
const bold = color('1');

/**
 * The console's address, signed in for the local stack: the fragment (which browsers never send
 * to a server) carries the API key and the gateway with its token; the console keeps them for the
 * tab's session and clears the address bar.
 */
export function consoleSignInUrl(controlPlaneUrl: string, stack: Pick<Stack, 'secrets' | 'gatewayUrl'>): string {
  const fragment = new URLSearchParams({ key: stack.secrets.apiToken });
  if (stack.gatewayUrl !== '') {
    fragment.set('gateway', stack.gatewayUrl);
    fragment.set('gatewayToken', stack.secrets.gatewayToken);
    fragment.set('dataPlane', stack.secrets.dataPlaneId);
  }
  return `${controlPlaneUrl}/#${fragment.toString()}`;
}

/** Starts the local stack and keeps it running until stopped. */
export function runDev(options: RunDevOptions): DevSession {
  const s = options.settings;
  const print = options.print ?? ((line: string) => console.log(line));
  const printError = options.printError ?? ((line: string) => console.error(line));
  const say = (line: string) => print(dim(line));
  const dir = s.dir;
  const logs = join(dir, 'logs');
  const userWorker = s.worker;
  const examples = userWorker === undefined;
  let postgres: PostgresServer | undefined;
  let postgresSupervision: Supervision | undefined;
  let stack: Stack | undefined;
  let watcher: ProjectWatcher | undefined;
  let stopping: Promise<number> | undefined;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));

  const killAll = (): void => {
    // Last resort when this process exits without stopping the stack: the children run in their
    // own process groups and would outlive it.
    for (const p of [
      ...(stack?.workers ?? []),
      stack?.gateway,
      stack?.mockLlm?.process,
      ...(stack?.controlPlanes ?? []).map((c) => c.process),
    ]) {
      p?.signal('SIGKILL');
    }
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (): void => {
    if (stopping) say('still stopping the local stack…');
    else void stop(0);
  };

  const stop = (code = 0): Promise<number> => {
    stopping ??= (async () => {
      say('stopping the local stack…');
      await watcher?.close().catch(() => undefined);
      await stack?.stop().catch((e: unknown) => printError(String(e)));
      if (postgresSupervision) await postgresSupervision.stop().catch((e: unknown) => printError(String(e)));
      else await postgres?.stop().catch(() => undefined);
      process.removeListener('exit', killAll);
      if (options.handleSignals ?? true) for (const sig of signals) process.removeListener(sig, onSignal);
      resolveDone(code);
      return code;
    })();
    return stopping;
  };

  if (options.handleSignals ?? true) for (const sig of signals) process.on(sig, onSignal);
  process.on('exit', killAll);

  const start = async (): Promise<void> => {
    if (examples && !existsSync(repoEntryPoints.exampleWorker)) {
      throw new CairnError(
        ErrorCodes.DEV_CONFIG_INVALID,
        'No worker to run: pass the file that starts your worker, e.g. `cairn dev --worker src/worker.ts`, or set "dev": { "worker": "src/worker.ts" } in cairn.config.json (or under "cairn" in package.json).',
      );
    }
    await checkPorts(s.ports, s.postgresUrl ? ['postgres'] : []);
    mkdirSync(logs, { recursive: true });
    if (s.postgresUrl) {
      say('using the Postgres server in CAIRN_DEV_POSTGRES_URL…');
      postgres = await systemPostgres(s.postgresUrl);
    } else {
      say(`starting PostgreSQL from npm (data in ${join(dir, 'pg')})…`);
      postgresSupervision = superviseEmbeddedPostgres(
        dir,
        s.ports.postgres,
        say,
        options.verbose ? (l) => say(`[postgres] ${l}`) : undefined,
      );
      await postgresSupervision.start();
      postgres = current!;
    }
    say(
      `starting the control plane, gateway, model server and ${examples ? 'example worker' : relative(process.cwd(), userWorker) || userWorker}…`,
    );
    const workerEnv: Record<string, string> = {};
    // A changed file restarts the worker: it gives its runs back at once instead of draining for 25 s.
    if (!process.env['CAIRN_DRAIN_TIMEOUT_MS']) workerEnv['CAIRN_DRAIN_TIMEOUT_MS'] = '2000';
    stack = await startStack({
      postgres,
      dir,
      workers: 1,
      ...(options.entryPoints ? { entryPoints: options.entryPoints } : {}),
      ...(userWorker ? { workerModule: userWorker, workerCwd: findProjectDir(dirname(userWorker)), workerEnv } : {}),
      // The agent examples call a model: the local model server unless a real provider is configured.
      ...(examples && process.env['MISTRAL_API_KEY']
        ? {}
        : { mockLlm: { script: s.modelScript ?? (examples ? repoEntryPoints.exampleModelScript : undefined) } }),
      ports: { cpHttp: s.ports.controlPlaneHttp, cpGrpc: s.ports.controlPlaneGrpc, gateway: s.ports.gateway, mockLlm: s.ports.modelServer },
      // The user's worker logs only warnings unless asked, so its own output stands out.
      ...(userWorker && !options.verbose && !process.env['CAIRN_LOG_LEVEL'] ? { workerLogLevel: 'warn' } : {}),
      onLine: (name, line) => {
        if (options.verbose) say(`[${name}] ${line}`);
        else if (userWorker && name === 'worker') print(`${dim('[worker]')} ${line}`);
      },
      supervise: { say, workerStartFailure: userWorker ? 'wait' : 'retry' },
    });
    const cp = stack.controlPlanes[0]!;
    const endpoints: Endpoints = {
      project: 'default',
      dataPlaneId: stack.secrets.dataPlaneId,
      controlPlane: { httpUrl: cp.httpUrl, grpcAddress: cp.grpcAddress },
      gatewayUrl: stack.gatewayUrl || null,
      modelServerUrl: stack.mockLlm?.url ?? null,
      postgres: { host: postgres.host, port: postgres.port },
      pid: process.pid,
      startedAt: new Date().toISOString(),
    };
    writeEndpoints(dir, endpoints);
    const extra = options.onReady
      ? await options.onReady({ endpoints, apiKey: stack.secrets.apiToken, gatewayToken: stack.secrets.gatewayToken })
      : [];
    const workerState = stack.supervisions.get('worker')?.state;
    const shown = (p: string) => relative(process.cwd(), p) || p;
    print(`
${bold('Cairn local stack is up')}
  postgres       ${postgres.url('postgres').replace(/:[^:@/]*@/, ':***@')}  (databases cairn_cp and cairn_dp, separate roles)
  control plane  ${cp.httpUrl}  (REST)   ${cp.grpcAddress}  (gRPC)
  gateway        ${stack.gatewayUrl}  (data plane HTTP API)
  console        ${consoleSignInUrl(cp.httpUrl, stack)}  ${dim('(signed in; payload panels from the gateway)')}
  worker         ${
    examples
      ? 'examples/src/worker.ts  (workflows order-refund@1, support-agent@1, research-agent@1)'
      : `${shown(userWorker)}  (${s.watch ? `restarted when files in ${shown(findProjectDir(dirname(userWorker)))} change` : 'not watched'}${workerState === 'waiting' ? '; failed to start, see above' : ''})`
  }
  models         ${stack.mockLlm ? `${stack.mockLlm.url}  (local model server: OpenAI-compatible at /openai/v1, Mistral at /mistral/v1${examples ? '; set MISTRAL_API_KEY to use Mistral' : ''})` : 'Mistral (MISTRAL_API_KEY)'}
  logs           ${logs}
  secrets        ${join(dir, 'secrets.json')}  (endpoints in ${join(dir, 'endpoints.json')})
${extra.map((l) => `  ${l}`).join('\n')}${extra.length > 0 ? '\n' : ''}  ${dim('another worker against this stack: eval "$(cairn dev env)" && npx tsx src/other-worker.ts')}
`);
    if (examples) {
      const show = (line: string) => print(line);
      await runExample(stack, show);
      print('');
      await runAgentExample(stack, show);
      print('');
      await runResearchExample(stack, show);
      const sec = stack.secrets;
      print(`
${bold('Try it yourself')}
  export GW=${stack.gatewayUrl} GT=${sec.gatewayToken} CP=${cp.httpUrl} CT=${sec.apiToken}
  ${dim('# start a refund (above 100 it waits for an approval signal)')}
  curl -s -X POST $GW/v1/runs -H "authorization: Bearer $GT" -H 'content-type: application/json' \\
    -d '{"workflow":"order-refund","input":{"orderId":"o-2","customerEmail":"sam@example.com","amount":180,"currency":"EUR","reason":"late"}}'
  ${dim('# approve it, then wait for the result')}
  curl -s -X POST $GW/v1/runs/RUN_ID/signals/approval -H "authorization: Bearer $GT" -H 'content-type: application/json' -d '{"approved":true,"by":"maria"}'
  curl -s "$GW/v1/runs/RUN_ID/result?wait=30" -H "authorization: Bearer $GT"
  ${dim('# watch the step timeline the control plane holds (metadata only)')}
  curl -s $CP/v1/projects/default/runs/RUN_ID -H "authorization: Bearer $CT"
`);
    } else if (s.watch && !options.exit) {
      const root = findProjectDir(dirname(userWorker));
      watcher = watchProject(
        root,
        (paths) => {
          const what =
            paths.length === 1
              ? `${paths[0]} changed`
              : `${paths.length} files changed (${paths.slice(0, 3).join(', ')}${paths.length > 3 ? ', …' : ''})`;
          void stack?.restartWorkers(what);
        },
        { ignore: [dir] },
      );
      await watcher.ready;
    }
    if (options.exit) {
      await stop(workerState === 'waiting' ? 1 : 0);
      return;
    }
    say('Press Ctrl-C to stop.');
  };

  // The current embedded server, replaced when the supervisor restarts it.
  let current: PostgresServer | undefined;
  const superviseEmbeddedPostgres = (
    stateDir: string,
    port: number,
    sayLine: (line: string) => void,
    onLog: ((line: string) => void) | undefined,
  ): Supervision => {
    const logFile = join(stateDir, 'logs', 'postgres.log');
    let boundPort = port;
    const service: Service = {
      name: 'postgres',
      logFile,
      async launch() {
        const previous = current;
        current = undefined;
        await previous?.stop().catch(() => undefined);
        const server = await startEmbeddedPostgres({
          dataDir: join(stateDir, 'pg'),
          port: boundPort,
          detached: true,
          onLog: (chunk) => {
            appendFileSync(logFile, chunk);
            for (const line of chunk.split('\n')) if (line.trim() !== '') onLog?.(line.trimEnd());
          },
        });
        // A free port picked at the first start is kept: every process has the URL with it.
        boundPort = server.port;
        current = server;
        return { exited: server.exited! };
      },
      async halt() {
        await current?.stop();
      },
    };
    return new Supervision(service, sayLine);
  };

  void (async () => {
    try {
      await start();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      printError(`\nThe local stack could not start: ${message}`);
      await stop(1);
    }
  })();

  return {
    done,
    stop,
  };
}
