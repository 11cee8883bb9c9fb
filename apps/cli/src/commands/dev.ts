// cairn dev, cairn dev env: the local stack for the project in the current folder.
import type { Command } from 'commander';
import { CairnError, ErrorCodes } from '@cairn/common';
import { devWorkerEnvironment, formatEnvironment, resolveDevSettings, runDev, type DevFlags, type DevSettings } from '@cairn/dev';
import { DEV_PROFILE, saveDevProfile } from '../config.js';
import type { GlobalOptions } from '../context.js';
import { CliError, ExitCode } from '../errors.js';
import { examples } from '../help.js';
import { colorsFor } from '../output.js';
import { serverEntryPoints } from '../server-entry-points.js';

interface DevOptions extends GlobalOptions {
  worker?: string;
  dir?: string;
  exit?: boolean;
  verbose?: boolean;
  watch?: boolean;
  modelScript?: string;
  pgPort?: string;
  cpHttpPort?: string;
  cpGrpcPort?: string;
  gatewayPort?: string;
  modelPort?: string;
}

const ENV_FORMATS = ['sh', 'dotenv', 'json'] as const;

/** Settings errors are the user's to fix: exit 2 with the message as it is. */
function settings(flags: DevFlags, checkFiles = true): DevSettings {
  try {
    return resolveDevSettings(flags, process.env, process.cwd(), { checkFiles });
  } catch (err) {
    if (err instanceof CairnError) throw new CliError(ExitCode.USAGE, err.rawMessage, { code: err.code });
    throw err;
  }
}

export function registerDev(program: Command): void {
  const dev = program
    .command('dev')
    .description(
      'Start the local stack for the project in this folder: Postgres from npm (data in .cairn/), the control plane, a gateway, ' +
        'the local model server and your worker (TypeScript runs without a build and restarts when the project changes). ' +
        'Every process is supervised; Ctrl-C stops them all. In the Cairn repository, without --worker, it runs the examples.',
    )
    .option('--worker <file>', 'the file that starts your worker (calls runWorkerFromEnv); also "dev.worker" in cairn.config.json')
    .option('--dir <path>', 'state folder (default .cairn; CAIRN_DEV_DIR)')
    .option('--no-watch', 'do not restart the worker when files change')
    .option('--model-script <file>', 'a script of replies for the local model server (packages/mock-llm format)')
    .option('--pg-port <port>', 'Postgres port (default 7432; CAIRN_DEV_PG_PORT; 0 picks a free one)')
    .option('--cp-http-port <port>', 'control-plane REST port (default 7280; CAIRN_DEV_CP_HTTP_PORT)')
    .option('--cp-grpc-port <port>', 'control-plane gRPC port (default 7233; CAIRN_DEV_CP_GRPC_PORT)')
    .option('--gateway-port <port>', 'gateway port (default 7281; CAIRN_DEV_GATEWAY_PORT)')
    .option('--model-port <port>', 'local model server port (default 7282; CAIRN_DEV_MODEL_PORT)')
    .option('--exit', 'start, run the examples (or wait until the worker is ready), then stop')
    .option('--verbose', "print every process's log lines")
    .addHelpText(
      'after',
      examples([
        ['your worker, restarted on every change', 'cairn dev --worker src/worker.ts'],
        ['then, in another terminal', 'cairn runs list'],
        ['other ports', 'cairn dev --worker src/worker.ts --cp-grpc-port 17233 --gateway-port 17281'],
        ['a second worker against the running stack', 'eval "$(cairn dev env)" && npx tsx src/other-worker.ts'],
      ]) +
        `
Settings come from flags, then CAIRN_DEV_* environment variables, then cairn.config.json, then a
"cairn" key in package.json: { "dev": { "worker": "src/worker.ts", "ports": { "gateway": 7281 } } }.
The CLI is logged in as profile "${DEV_PROFILE}" (current unless another profile is).
`,
    )
    .action(async (opts: DevOptions) => {
      const resolved = settings({
        worker: opts.worker,
        dir: opts.dir,
        watch: opts.watch,
        modelScript: opts.modelScript,
        pgPort: opts.pgPort,
        cpHttpPort: opts.cpHttpPort,
        cpGrpcPort: opts.cpGrpcPort,
        gatewayPort: opts.gatewayPort,
        modelPort: opts.modelPort,
      });
      const entryPoints = serverEntryPoints();
      const session = runDev({
        settings: resolved,
        exit: opts.exit === true,
        verbose: opts.verbose === true,
        ...(entryPoints ? { entryPoints } : {}),
        // A check run (--exit) leaves the CLI's profiles alone.
        onReady: (info) =>
          opts.exit || !info.endpoints.gatewayUrl
            ? []
            : [
                saveDevProfile({
                  controlPlaneUrl: info.endpoints.controlPlane.httpUrl,
                  apiKey: info.apiKey,
                  project: info.endpoints.project,
                  gatewayUrl: info.endpoints.gatewayUrl,
                  gatewayToken: info.gatewayToken,
                }).note,
              ],
      });
      process.exitCode = await session.done;
    });

  dev
    .command('env')
    .description(
      'Print the environment for running another worker against the running local stack: the variables the worker reads ' +
        '(CAIRN_CP_GRPC_ADDRESS, CAIRN_DATA_PLANE_ID, CAIRN_DP_CREDENTIAL, CAIRN_DP_DATABASE_URL, CAIRN_DP_ENCRYPTION_KEYS, ' +
        'CAIRN_DP_HMAC_KEY) and CAIRN_MOCK_LLM_URL, from .cairn/endpoints.json and .cairn/secrets.json.',
    )
    .option('--format <format>', `${ENV_FORMATS.join(', ')} (default sh; -o json also gives json)`)
    .addHelpText(
      'after',
      examples([
        ['in this shell', 'eval "$(cairn dev env)"'],
        ['as a dotenv file', 'cairn dev env --format dotenv > .env.local'],
        ['as JSON', 'cairn dev env --format json'],
      ]),
    )
    .action((opts: { format?: string }, command: Command) => {
      const globals = command.optsWithGlobals<DevOptions>();
      const format = opts.format ?? (globals.output === 'json' ? 'json' : 'sh');
      if (!(ENV_FORMATS as readonly string[]).includes(format)) {
        throw new CliError(ExitCode.USAGE, `Unknown format "${format}": use ${ENV_FORMATS.join(', ')}.`);
      }
      const { dir } = settings({ dir: globals.dir }, false);
      let found: ReturnType<typeof devWorkerEnvironment>;
      try {
        found = devWorkerEnvironment(dir);
      } catch (err) {
        if (err instanceof CairnError && err.code === ErrorCodes.DEV_STACK_NOT_FOUND) {
          throw new CliError(ExitCode.CONFIG, err.rawMessage, { code: err.code });
        }
        throw err;
      }
      if (!found.running) {
        const c = colorsFor(process.stderr);
        process.stderr.write(
          `${c.yellow('warning:')} the local stack of ${dir} is not running now (pid ${found.endpoints.pid} has ended); start it with \`cairn dev\`: its ports stay the same.\n`,
        );
      }
      process.stdout.write(formatEnvironment(found.env, format as (typeof ENV_FORMATS)[number]));
    });
}
