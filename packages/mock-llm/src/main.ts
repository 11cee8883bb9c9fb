// The mock model server as a process: `node dist/main.js [--host H] [--port P] [--script file.json] [--api-key K]`.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CairnError, createLogger, ErrorCodes } from '@cairn/common';
import { parseScript, type MockScript } from './script.js';
import { startMockLlm } from './server.js';

const USAGE = `usage: cairn-mock-llm [--host 127.0.0.1] [--port 0] [--script rules.json] [--api-key KEY]

Serves the OpenAI-compatible (/openai/v1) and Mistral (/mistral/v1) chat-completions APIs with
scripted, deterministic replies. See packages/mock-llm/README.md for the script format.`;

function fail(message: string, exitCode: number): void {
  process.stderr.write(`${message}\n`);
  process.exitCode = exitCode;
}

function loadScript(path: string): MockScript {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `Cannot read the script file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CairnError(ErrorCodes.MALFORMED_JSON, `The script file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseScript(json);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '0' },
        script: { type: 'string' },
        'api-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
    return;
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) {
    fail(`--port must be a port number between 0 and 65535, got ${JSON.stringify(values.port)}\n${USAGE}`, 2);
    return;
  }
  let script: MockScript | undefined;
  try {
    script = values.script === undefined ? undefined : loadScript(values.script);
  } catch (err) {
    fail(CairnError.from(err).message, 1);
    return;
  }

  const logger = createLogger('mock-llm');
  let server;
  try {
    server = await startMockLlm({
      host: values.host,
      port,
      logger,
      ...(script === undefined ? {} : { script }),
      ...(values['api-key'] === undefined ? {} : { apiKey: values['api-key'] }),
    });
  } catch (err) {
    logger.fatal({ err }, 'mock model server failed to start');
    process.exitCode = 1;
    return;
  }
  logger.info(
    {
      port: server.port,
      host: values.host,
      url: server.url,
      openaiBaseUrl: server.openaiBaseUrl,
      mistralBaseUrl: server.mistralBaseUrl,
      rules: script?.rules.length ?? 0,
      auth: values['api-key'] !== undefined,
    },
    'mock model server listening',
  );
  const running = server;
  const stop = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'mock model server stopping');
    running.close().then(
      () => logger.info('mock model server stopped'),
      (err: unknown) => {
        logger.error({ err }, 'mock model server did not stop cleanly');
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

await main();
