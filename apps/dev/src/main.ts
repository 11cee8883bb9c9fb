// The one-command local stack: PostgreSQL from npm (no system install), the control plane, a
// gateway and a worker running examples/, then an example order refund run end to end.
//   pnpm dev            start everything, run the example, keep running until Ctrl-C
//   pnpm dev --exit     run the example and stop (used to check the Quick start)
import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { startEmbeddedPostgres, systemPostgres, type PostgresServer } from '@cairn/local-postgres';
import { entryPoints, startStack, type Stack } from './stack.js';
import { runAgentExample, runExample, runResearchExample } from './example.js';

const { values } = parseArgs({
  options: {
    exit: { type: 'boolean', default: false },
    dir: { type: 'string', default: process.env['CAIRN_DEV_DIR'] ?? '.cairn' },
    verbose: { type: 'boolean', default: false },
  },
});

const dim = (s: string) => (process.stdout.isTTY && !process.env['NO_COLOR'] ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s: string) => (process.stdout.isTTY && !process.env['NO_COLOR'] ? `\x1b[1m${s}\x1b[0m` : s);

const dir = resolve(values.dir);
let postgres: PostgresServer | undefined;
let stack: Stack | undefined;
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    console.log(dim('stopping the local stack…'));
    await stack?.stop().catch((e: unknown) => console.error(e));
    await postgres?.stop().catch((e: unknown) => console.error(e));
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  const existing = process.env['CAIRN_DEV_POSTGRES_URL'];
  if (existing) {
    console.log(dim('using the Postgres server in CAIRN_DEV_POSTGRES_URL…'));
    postgres = await systemPostgres(existing);
  } else {
    console.log(dim(`starting PostgreSQL from npm (data in ${join(dir, 'pg')})…`));
    postgres = await startEmbeddedPostgres({
      dataDir: join(dir, 'pg'),
      port: Number(process.env['CAIRN_DEV_PG_PORT'] ?? 0),
      onLog: values.verbose ? (l) => console.log(dim(`[postgres] ${l.trimEnd()}`)) : undefined,
    });
  }
  console.log(dim('starting the control plane, gateway and example worker…'));
  stack = await startStack({
    postgres,
    dir,
    workers: 1,
    // The agent examples call a model: the local model server unless a real provider is configured.
    mockLlm: process.env['MISTRAL_API_KEY'] ? undefined : { script: entryPoints.exampleModelScript },
    ports: {
      cpHttp: Number(process.env['CAIRN_DEV_CP_HTTP_PORT'] ?? 0),
      cpGrpc: Number(process.env['CAIRN_DEV_CP_GRPC_PORT'] ?? 0),
      gateway: Number(process.env['CAIRN_DEV_GATEWAY_PORT'] ?? 0),
    },
    onLine: values.verbose ? (name, line) => console.log(dim(`[${name}] ${line}`)) : undefined,
  });
  const cp = stack.controlPlanes[0]!;
  const s = stack.secrets;
  console.log(`
${bold('Cairn local stack is up')}
  postgres       ${postgres.url('postgres').replace(/:[^:@/]*@/, ':***@')}  (databases cairn_cp and cairn_dp, separate roles)
  control plane  ${cp.httpUrl}  (REST)   127.0.0.1:${cp.grpcPort}  (gRPC)
  gateway        ${stack.gatewayUrl}  (data plane HTTP API)
  worker         examples/src/worker.ts  (workflows order-refund@1, support-agent@1, research-agent@1)
  models         ${stack.mockLlm ? `${stack.mockLlm.url}  (local model server; set MISTRAL_API_KEY to use Mistral)` : 'Mistral (MISTRAL_API_KEY)'}
  logs           ${join(dir, 'logs')}
  secrets        ${join(dir, 'secrets.json')}
`);
  await runExample(stack, (line) => console.log(line));
  console.log('');
  await runAgentExample(stack, (line) => console.log(line));
  console.log('');
  await runResearchExample(stack, (line) => console.log(line));
  console.log(`
${bold('Try it yourself')}
  export GW=${stack.gatewayUrl} GT=${s.gatewayToken} CP=${cp.httpUrl} CT=${s.apiToken}
  ${dim('# start a refund (above 100 it waits for an approval signal)')}
  curl -s -X POST $GW/v1/runs -H "authorization: Bearer $GT" -H 'content-type: application/json' \\
    -d '{"workflow":"order-refund","input":{"orderId":"o-2","customerEmail":"sam@example.com","amount":180,"currency":"EUR","reason":"late"}}'
  ${dim('# approve it, then wait for the result')}
  curl -s -X POST $GW/v1/runs/RUN_ID/signals/approval -H "authorization: Bearer $GT" -H 'content-type: application/json' -d '{"approved":true,"by":"maria"}'
  curl -s "$GW/v1/runs/RUN_ID/result?wait=30" -H "authorization: Bearer $GT"
  ${dim('# watch the step timeline the control plane holds (metadata only)')}
  curl -s $CP/v1/projects/default/runs/RUN_ID -H "authorization: Bearer $CT"
`);
  if (values.exit) await shutdown(0);
  console.log(dim('Press Ctrl-C to stop.'));
} catch (err) {
  console.error(`\nThe local stack could not start: ${err instanceof Error ? err.message : String(err)}`);
  await shutdown(1);
}
