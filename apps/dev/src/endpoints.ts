// `.cairn/endpoints.json`: where a running local stack listens, for tools and people. No secret
// is in it (those stay in secrets.json). `cairn dev env` combines both into the environment a
// worker started by hand needs, under the names the worker reads.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CairnError, ErrorCodes } from '@cairn/common';
import { readSecretsFile, secretsPath, SECRET_VARIABLES } from './secrets.js';

/** Where a local stack listens. */
export interface Endpoints {
  /** The control-plane project the local data plane belongs to. */
  readonly project: string;
  readonly dataPlaneId: string;
  readonly controlPlane: { readonly httpUrl: string; readonly grpcAddress: string };
  readonly gatewayUrl: string | null;
  /** The local model server (OpenAI-compatible under /openai/v1, Mistral under /mistral/v1), if started. */
  readonly modelServerUrl: string | null;
  readonly postgres: { readonly host: string; readonly port: number };
  /** The `cairn dev` process supervising the stack, and when it started it. */
  readonly pid: number;
  readonly startedAt: string;
}

export function endpointsPath(dir: string): string {
  return join(dir, 'endpoints.json');
}

export function writeEndpoints(dir: string, endpoints: Endpoints): string {
  mkdirSync(dir, { recursive: true });
  const file = endpointsPath(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(endpoints, null, 2) + '\n');
  renameSync(tmp, file);
  return file;
}

export function readEndpoints(dir: string): Endpoints {
  const file = endpointsPath(dir);
  if (!existsSync(file)) {
    throw new CairnError(
      ErrorCodes.DEV_STACK_NOT_FOUND,
      `No local stack has run with the state folder ${dir} (${file} does not exist). Start one with \`cairn dev\` in the project folder (or pass the same --dir).`,
    );
  }
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Endpoints;
  } catch (err) {
    throw new CairnError(
      ErrorCodes.DEV_STACK_NOT_FOUND,
      `${file} is not valid JSON (${(err as Error).message}); start \`cairn dev\` again to rewrite it.`,
    );
  }
}

/** Whether the `cairn dev` process that wrote the endpoints still runs. */
export function stackRunning(endpoints: Endpoints): boolean {
  try {
    process.kill(endpoints.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The environment a worker needs to run against a local stack, with the names
 * packages/worker reads (and CAIRN_MOCK_LLM_URL for the local model server), and what application
 * code needs to reach the gateway with @cairn/client (CAIRN_GATEWAY_URL, CAIRN_GATEWAY_TOKEN).
 */
export function workerEnvironment(endpoints: Endpoints, secrets: Record<string, unknown>): Record<string, string> {
  const v = SECRET_VARIABLES;
  const env: Record<string, string> = { CAIRN_CP_GRPC_ADDRESS: endpoints.controlPlane.grpcAddress };
  for (const name of [v.dataPlaneId, v.dataPlaneCredential, v.dpDatabaseUrl, v.encryptionKeys, v.hmacKey]) {
    const value = secrets[name];
    if (typeof value === 'string') env[name] = value;
  }
  if (endpoints.modelServerUrl) env['CAIRN_MOCK_LLM_URL'] = endpoints.modelServerUrl;
  // Like the stack's own worker: a workflow version whose schemas changed replaces them in the
  // schema catalogue instead of refusing to start.
  env['CAIRN_DEV_MODE'] = 'true';
  const gatewayToken = secrets[v.gatewayToken];
  if (endpoints.gatewayUrl && typeof gatewayToken === 'string') {
    env['CAIRN_GATEWAY_URL'] = endpoints.gatewayUrl;
    // The gateway accepts a comma-separated list of token[:scopes]; the local stack has one token,
    // with every scope. A client sends the token alone.
    env['CAIRN_GATEWAY_TOKEN'] = gatewayToken
      .split(',')[0]!
      .trim()
      .replace(/:[a-z+]*$/, '');
  }
  return env;
}

/** The worker environment of the stack whose state is in `dir`, from its endpoints.json and secrets.json. */
export function devWorkerEnvironment(dir: string): { env: Record<string, string>; endpoints: Endpoints; running: boolean } {
  const endpoints = readEndpoints(dir);
  const file = readSecretsFile(dir);
  if (!file || file.format !== 'variables') {
    throw new CairnError(
      ErrorCodes.DEV_STACK_NOT_FOUND,
      `${secretsPath(dir)} is missing or in the old format; start \`cairn dev\` once to (re)write it.`,
    );
  }
  const secrets = JSON.parse(readFileSync(secretsPath(dir), 'utf8')) as Record<string, unknown>;
  return { env: workerEnvironment(endpoints, secrets), endpoints, running: stackRunning(endpoints) };
}

/** Prints an environment as `export K='v'` lines, a dotenv file or JSON. */
export function formatEnvironment(env: Record<string, string>, format: 'sh' | 'dotenv' | 'json'): string {
  if (format === 'json') return JSON.stringify(env, null, 2) + '\n';
  const lines = Object.entries(env).map(([k, v]) => {
    if (format === 'sh') return `export ${k}='${v.replace(/'/g, `'\\''`)}'`;
    // dotenv: plain when safe, else double-quoted with escapes.
    return /^[A-Za-z0-9_./:@+,=-]*$/.test(v)
      ? `${k}=${v}`
      : `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
  });
  return lines.join('\n') + '\n';
}
