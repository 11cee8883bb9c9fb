import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres, type PostgresServer } from '@cairn/local-postgres';
import { startStack, type Stack, type StackOptions } from '@cairn/dev';
import { EFFECTS_SCHEMA } from './effects.js';

/** The test worker entry point (built to test/dist by `pnpm build`). */
export const testWorkerModule = fileURLToPath(new URL('../dist/worker-main.js', import.meta.url));

export interface RunJson {
  runId: string;
  workflow: string;
  /** The name the control plane holds (a keyed digest for a data plane in strict residency mode). */
  workflowName: string;
  version: string;
  status: string;
  errorCode: string | null;
  epoch: number;
  dispatchCount: number;
  waitingSignal: string | null;
}

export interface StepJson {
  position: number;
  attempt: number;
  kind: string;
  name: string;
  status: string;
  errorCode: string | null;
  retryable: boolean;
  errorRef: string | null;
}

/** A stack of real processes on a fresh embedded Postgres, plus clients a user would use. */
export interface TestStack {
  readonly stack: Stack;
  readonly postgres: PostgresServer;
  readonly dir: string;
  readonly effects: pg.Pool;
  /** POST /v1/runs on the gateway; returns the run id. */
  start(workflow: string, input: unknown, options?: { idempotencyKey?: string }): Promise<string>;
  /** Long-polls the gateway until the run ends (or `waitS` passes once). */
  result(runId: string, waitS?: number): Promise<{ status: string; output?: unknown; error?: { message: string; code?: string } }>;
  signal(runId: string, name: string, body: unknown): Promise<Response>;
  /** GET /v1/runs/:id on the control plane (metadata only). */
  describe(runId: string, replica?: number): Promise<{ run: RunJson & { id: string }; steps: StepJson[] }>;
  /** Polls the control plane until `predicate` holds for the run. */
  waitForRun(runId: string, predicate: (run: RunJson & { id: string }) => boolean, timeoutMs?: number): Promise<RunJson & { id: string }>;
  /** Waits until a side effect with this step name is recorded for the run. */
  waitForEffect(runId: string, step: string, timeoutMs?: number): Promise<void>;
  countEffects(runId: string, step?: string): Promise<number>;
  gateway(method: string, path: string, init?: { body?: string; headers?: Record<string, string> }): Promise<Response>;
  /** Replaces the local model server's script (when the stack started one). */
  setModelScript(script: unknown): Promise<void>;
  /** Every call the local model server received. */
  modelCalls(): Promise<Array<{ seq: number; messages: unknown[]; fault: { kind: string } | null; status: number | null }>>;
  stop(): Promise<void>;
}

export async function startTestStack(
  options: Omit<StackOptions, 'postgres' | 'dir'> & { name: string; maxConnections?: number },
): Promise<TestStack> {
  const dir = mkdtempSync(join(process.env['CAIRN_TEST_DIR'] ?? tmpdir(), `cairn-${options.name}-`));
  const postgres = await startEmbeddedPostgres({
    fast: true,
    persistent: false,
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
  });
  const { maxConnections: _maxConnections, ...stackOptions } = options;
  const effectsUrl = await postgres.createDatabase('cairn_effects');
  const effects = new pg.Pool({ connectionString: effectsUrl, max: 4 });
  // An idle connection dropped by a server shutdown is not a test failure; queries report their own errors.
  effects.on('error', () => undefined);
  await effects.query(EFFECTS_SCHEMA);
  let stack: Stack;
  try {
    stack = await startStack({
      workerModule: testWorkerModule,
      mockLlm: {},
      leaseTtlMs: 3000,
      heartbeatIntervalMs: 500,
      sweepIntervalMs: 200,
      logLevel: 'info',
      ...stackOptions,
      workerEnv: { CAIRN_TEST_EFFECTS_URL: effectsUrl, ...(options.workerEnv ?? {}) },
      postgres,
      dir,
    });
  } catch (err) {
    await effects.end();
    await postgres.stop();
    throw err;
  }
  const gwHeaders = { authorization: `Bearer ${stack.secrets.gatewayToken}` };
  const gateway = (method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) =>
    fetch(`${stack.gatewayUrl}${path}`, {
      method,
      headers: { ...gwHeaders, ...(init.headers ?? {}) },
      ...(init.body === undefined ? {} : { body: init.body }),
    });
  const json = async <T>(res: Response, what: string): Promise<T> => {
    const text = await res.text();
    if (res.status >= 400) throw new Error(`${what} → ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };
  const describe = async (runId: string, replica = 0) =>
    json<{ run: RunJson & { id: string }; steps: StepJson[] }>(
      await fetch(`${stack.controlPlanes[replica]!.httpUrl}/v1/projects/default/runs/${runId}`, {
        headers: { authorization: `Bearer ${stack.secrets.apiToken}` },
      }),
      `describe ${runId}`,
    );
  const t: TestStack = {
    stack,
    postgres,
    dir,
    effects,
    gateway,
    describe,
    async start(workflow, input, o = {}) {
      const res = await gateway('POST', '/v1/runs', {
        body: JSON.stringify({ workflow, input, ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}) }),
        headers: { 'content-type': 'application/json' },
      });
      return (await json<{ runId: string }>(res, `start ${workflow}`)).runId;
    },
    async result(runId, waitS = 60) {
      for (;;) {
        const res = await gateway('GET', `/v1/runs/${runId}/result?wait=${waitS}`);
        if (res.status === 200) return json(res, `result ${runId}`);
        if (res.status !== 202) throw new Error(`result ${runId} → ${res.status} ${await res.text()}`);
      }
    },
    signal(runId, name, body) {
      return gateway('POST', `/v1/runs/${runId}/signals/${name}`, {
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      });
    },
    async waitForRun(runId, predicate, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last: (RunJson & { id: string }) | undefined;
      while (Date.now() < deadline) {
        last = (await describe(runId)).run;
        if (predicate(last)) return last;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`run ${runId} did not reach the expected state in ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    },
    async waitForEffect(runId, step, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const r = await effects.query('SELECT 1 FROM effects WHERE run_id = $1 AND step = $2 LIMIT 1', [runId, step]);
        if (r.rowCount) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`no effect ${step} for run ${runId} within ${timeoutMs} ms`);
    },
    async countEffects(runId, step) {
      const r = step
        ? await effects.query<{ n: number }>('SELECT count(*)::int AS n FROM effects WHERE run_id = $1 AND step = $2', [runId, step])
        : await effects.query<{ n: number }>('SELECT count(*)::int AS n FROM effects WHERE run_id = $1', [runId]);
      return r.rows[0]?.n ?? 0;
    },
    async setModelScript(script) {
      const res = await fetch(`${stack.mockLlm!.url}/_mock/script`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(script),
      });
      if (res.status !== 200) throw new Error(`mock script refused: ${res.status} ${await res.text()}`);
    },
    async modelCalls() {
      const res = await fetch(`${stack.mockLlm!.url}/_mock/calls`);
      return ((await res.json()) as { calls: Awaited<ReturnType<TestStack['modelCalls']>> }).calls;
    },
    async stop() {
      await stack.stop();
      await effects.end();
      await postgres.stop();
    },
  };
  return t;
}
