import { after, before, beforeEach, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coarseSize, schemaDigest } from '@cairn/common';
import * as grpc from '@grpc/grpc-js';
import { freePort, testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore, approvalSignalName, keyedSignalId, signalNameDigest, strictNameDigest } from '@cairn/payload-store';
import {
  ErrorCode,
  GatewayService,
  RunStatus,
  StepInfoSchema,
  StepKind,
  StepStatus,
  create,
  residencyViolations,
  type SignalRunRequest,
  type StartRunRequest,
} from '@cairn/proto';
import { API, buildOpenApi } from './api.js';
import { buildGateway, type Gateway } from './app.js';
import { loadGatewayConfig, type GatewayConfig } from './config.js';
import { ControlPlane } from './control-plane.js';
import { FakeControlPlane } from './testing/fake-control-plane.js';
import { OpenApiCheck } from '@cairn/common/testing';
import { verifyJournalExport } from '@cairn/common';
import { DataPlaneDb } from './testing/postgres.js';

const TOKEN = `cgt_${randomUUID()}`;
const CREDENTIAL = `cdp_${randomUUID()}`;
const MAX_BYTES = 64 * 1024;
const keysSpec = KeyRing.generateSpec('k1');
// Every answer of every test is checked against the OpenAPI document the gateway serves.
const openapi = new OpenApiCheck(buildOpenApi());
const hmacSpec = Hasher.generateSpec();

interface Answer {
  status: number;
  // Response bodies are read loosely; each test asserts the fields it cares about.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Record<string, unknown>;
}

interface JsonSchemaDoc {
  readonly $ref?: string;
  readonly required?: string[];
  readonly pattern?: string;
  readonly enum?: string[];
  readonly properties?: Record<string, JsonSchemaDoc>;
}

/** The parts of the OpenAPI document the tests read. */
interface OpenApiDoc {
  readonly openapi: string;
  readonly paths: Record<
    string,
    Record<
      string,
      {
        readonly operationId: string;
        readonly parameters?: Array<{ name: string; in: string }>;
        readonly requestBody?: { content: Record<string, { schema: JsonSchemaDoc }> };
        readonly responses: Record<
          string,
          { content?: Record<string, { schema: JsonSchemaDoc }>; 'x-cairn-events'?: Record<string, unknown> }
        >;
      }
    >
  >;
  readonly components: { schemas: Record<string, JsonSchemaDoc> };
}

interface Issue {
  readonly in: string;
  readonly path: string;
}

interface Call {
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  token?: string | null;
}

for (const kind of testPostgresKinds()) {
  describe(`gateway on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let url: string;
    let store: PayloadStore;
    let db: DataPlaneDb;
    let cp: FakeControlPlane;
    let config: GatewayConfig;
    let controlPlane: ControlPlane;
    let app: Gateway;
    const extra: Array<() => Promise<void> | void> = [];

    const env = (overrides: Record<string, string> = {}) => ({
      CAIRN_CP_GRPC_ADDRESS: cp.address,
      CAIRN_DP_CREDENTIAL: CREDENTIAL,
      CAIRN_DP_DATABASE_URL: url,
      CAIRN_DP_ENCRYPTION_KEYS: keysSpec,
      CAIRN_DP_HMAC_KEY: hmacSpec,
      CAIRN_GATEWAY_TOKENS: `cgt_other_${randomUUID()},${TOKEN}`,
      CAIRN_GATEWAY_MAX_PAYLOAD_BYTES: String(MAX_BYTES),
      CAIRN_CP_TIMEOUT_MS: '3000',
      CAIRN_LOG_LEVEL: 'silent',
      // Only the signal sweep tests' own gateways sweep (every few milliseconds).
      CAIRN_GATEWAY_SIGNAL_SWEEP_INTERVAL_MS: '86400000',
      ...overrides,
    });

    /** Another gateway on the same store, with a different control-plane setup. */
    const gatewayWith = (overrides: Record<string, string>): Gateway => {
      const c = loadGatewayConfig(env(overrides));
      const link = new ControlPlane({ address: c.cpAddress, credential: c.dpCredential, timeoutMs: c.cpTimeoutMs });
      const other = buildGateway(c, { store, controlPlane: link });
      extra.push(async () => {
        await other.close();
        link.close();
      });
      return other;
    };

    /** A gateway that sweeps every few milliseconds with these settings, closed at the end of the test. */
    const sweepingGateway = async (t: TestContext, overrides: Record<string, string>) => {
      const c = loadGatewayConfig(env(overrides));
      const link = new ControlPlane({ address: c.cpAddress, credential: c.dpCredential, timeoutMs: c.cpTimeoutMs });
      const sweeper = buildGateway(c, { store, controlPlane: link });
      t.after(async () => {
        await sweeper.close();
        link.close();
      });
      await sweeper.ready();
    };

    const waitFor = async (what: string, done: () => boolean | Promise<boolean>) => {
      for (let i = 0; i < 400; i++) {
        if (await done()) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.fail(`timed out waiting until ${what}`);
    };

    const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, options: Call = {}, target: Gateway = app): Promise<Answer> => {
      const headers: Record<string, string> = { ...(options.headers ?? {}) };
      const token = options.token === undefined ? TOKEN : options.token;
      if (token !== null) headers['authorization'] = `Bearer ${token}`;
      let payload: string | undefined;
      if (options.raw !== undefined) payload = options.raw;
      else if (options.body !== undefined) payload = JSON.stringify(options.body);
      if (payload !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
        headers['content-type'] = 'application/json';
      }
      const res = await target.inject({ method, url: path, headers, ...(payload === undefined ? {} : { payload }) });
      const body: unknown = res.body === '' ? undefined : JSON.parse(res.body);
      openapi.check(method, path, res.statusCode, res.headers['content-type'], body);
      return { status: res.statusCode, body, headers: res.headers };
    };

    const start = async (body: Record<string, unknown>, headers?: Record<string, string>) => {
      const res = await call('POST', '/v1/runs', { body, ...(headers ? { headers } : {}) });
      assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
      return res.body as { runId: string; workflow: string; version: string; status: string; created: boolean };
    };

    /** What a worker does when a run ends: commit in the data plane, report to the control plane. */
    const complete = async (runId: string, output: unknown) => {
      await store.acquire(runId, 1);
      const { outputSize } = await store.completeRun(runId, 1, output);
      cp.update(runId, { status: RunStatus.COMPLETED, epoch: 1, outputSize: BigInt(outputSize), endedAt: BigInt(Date.now()) });
    };

    const expectError = (res: Answer, status: number, code: string, mentions?: RegExp) => {
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body?.error?.code, code, JSON.stringify(res.body));
      assert.equal(typeof res.body.error.message, 'string');
      if (mentions) assert.match(String(res.body.error.message), mentions);
    };

    before(async () => {
      server = await testPostgres(kind);
      url = await server.createDatabase(uniqueDatabaseName('gw'));
      cp = await FakeControlPlane.start(CREDENTIAL);
      cp.announce('order-refund', '2', '1');
      cp.announce('five-steps');
      config = loadGatewayConfig(env());
      store = PayloadStore.connect({ connectionString: url, keys: config.keys });
      await store.migrate();
      db = await DataPlaneDb.connect(url);
      controlPlane = new ControlPlane({ address: cp.address, credential: CREDENTIAL, timeoutMs: config.cpTimeoutMs });
      app = buildGateway(config, { store, controlPlane });
      await app.ready();
    });

    after(async () => {
      for (const close of extra) await close();
      await app?.close();
      controlPlane?.close();
      await cp?.stop();
      await db?.close();
      await store?.close();
      await server?.stop();
    });

    beforeEach(() => {
      for (const k of Object.keys(cp.intercepts)) delete cp.intercepts[k as keyof typeof cp.intercepts];
    });

    it('answers health and readiness without a token', async () => {
      const health = await call('GET', '/healthz', { token: null });
      assert.equal(health.status, 200);
      assert.deepEqual(health.body, { status: 'ok' });
      assert.equal((await call('GET', '/readyz', { token: null })).status, 200);
    });

    it('answers browsers on the configured origins (CORS), and only those; without the setting it sends no CORS headers', async () => {
      const origin = 'https://console.example.com';
      const preflight = (target: Gateway, from: string) =>
        target.inject({
          method: 'OPTIONS',
          url: '/v1/runs',
          headers: {
            origin: from,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'authorization,content-type',
          },
        });
      const allowing = gatewayWith({ CAIRN_GATEWAY_CORS_ORIGINS: `${origin}, http://localhost:5173` });
      const ok = await preflight(allowing, origin);
      assert.equal(ok.statusCode, 204);
      assert.equal(ok.headers['access-control-allow-origin'], origin);
      assert.match(String(ok.headers['access-control-allow-headers']), /authorization/);
      assert.match(String(ok.headers['access-control-allow-methods']), /POST/);
      const stranger = await preflight(allowing, 'https://evil.example.net');
      assert.equal(stranger.headers['access-control-allow-origin'], undefined);
      // A real request from the origin: the answer carries the header; the token is still required.
      const unauthenticated = await allowing.inject({ method: 'GET', url: `/v1/runs/${randomUUID()}`, headers: { origin } });
      assert.equal(unauthenticated.statusCode, 401);
      assert.equal(unauthenticated.headers['access-control-allow-origin'], origin);
      assert.equal(unauthenticated.headers['access-control-expose-headers'], 'x-request-id');
      // The default gateway: no CORS at all.
      const closed = await preflight(app, origin);
      assert.equal(closed.headers['access-control-allow-origin'], undefined);
      assert.throws(
        () => loadGatewayConfig(env({ CAIRN_GATEWAY_CORS_ORIGINS: 'https://console.example.com/app' })),
        /CAIRN_GATEWAY_CORS_ORIGINS/,
      );
    });

    it('is not ready while the payload store does not answer', async () => {
      const port = await freePort();
      const deadStore = PayloadStore.connect({ connectionString: `postgres://x:y@127.0.0.1:${port}/none`, keys: config.keys });
      const other = buildGateway(config, { store: deadStore, controlPlane });
      try {
        const res = await call('GET', '/readyz', { token: null }, other);
        assert.equal(res.status, 503);
        assert.match(String(res.body.reason), /CAIRN_DP_DATABASE_URL/);
      } finally {
        await other.close();
        await deadStore.close();
      }
    });

    it('starts a run: the input stays in the data plane, the control plane gets ids, names, size and digest', async () => {
      const before = cp.recorded.length;
      const input = { orderId: 'o-1', email: 'jane@example.com', amount: 12.5 };
      const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', input, idempotencyKey: 'order-o-1' } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const { runId } = res.body as { runId: string };
      assert.deepEqual(res.body, { runId, workflow: 'order-refund', version: '2', status: 'queued', created: true, warnings: [] });
      assert.match(String(res.headers['x-request-id']), /./);

      const stored = await store.getRun(runId);
      assert.ok(stored);
      assert.deepEqual(stored.input, input);
      assert.equal(stored.workflowName, 'order-refund');
      const sent = cp.recorded.slice(before);
      assert.equal(sent.length, 1);
      assert.equal(sent[0]!.authorization, `Bearer ${CREDENTIAL}`);
      const request = sent[0]!.request as StartRunRequest;
      assert.equal(request.runId, runId);
      assert.equal(request.workflowName, 'order-refund');
      assert.equal(request.workflowVersion, '');
      assert.equal(request.idempotencyDigest, config.hasher.forRun('order-refund', 2).idempotency('order-o-1'));
      assert.notEqual(request.idempotencyDigest, config.hasher.digest('order-o-1'), 'not the single-key digest of format 1');
      // The control plane is told the size class of the input, never its exact size.
      assert.equal(request.inputSize, BigInt(coarseSize(stored.inputSize)));
      assert.equal(request.inputSize, 64n);
    });

    it('pins a version when asked, and accepts a start without input', async () => {
      const run = await start({ workflow: 'order-refund', version: '1' });
      assert.equal(run.version, '1');
      const stored = await store.getRun(run.runId);
      assert.equal(stored?.input, undefined);
    });

    it('sends the priority and only the HMAC of the concurrency key; refuses bad ones', async () => {
      const before = cp.recorded.length;
      const res = await call('POST', '/v1/runs', {
        body: { workflow: 'order-refund', concurrencyKey: 'customer-jane@example.com', priority: 80 },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      const request = cp.recorded.slice(before).find((r) => r.method === 'startRun')!.request as StartRunRequest;
      assert.equal(request.priority, 80);
      assert.equal(request.concurrencyKeyDigest, config.hasher.digest('concurrency:customer-jane@example.com'));
      assert.notEqual(
        request.concurrencyKeyDigest,
        config.hasher.forRun('order-refund', 2).idempotency('customer-jane@example.com'),
        'not linkable to an idempotency digest',
      );
      const plain = cp.recorded.length;
      await start({ workflow: 'order-refund' });
      const defaults = cp.recorded.slice(plain).find((r) => r.method === 'startRun')!.request as StartRunRequest;
      assert.equal(defaults.priority, 50);
      assert.equal(defaults.concurrencyKeyDigest, '');
      for (const body of [
        { workflow: 'order-refund', priority: 101 },
        { workflow: 'order-refund', priority: 1.5 },
        { workflow: 'order-refund', priority: 'high' },
        { workflow: 'order-refund', concurrencyKey: 7 },
        { workflow: 'order-refund', concurrencyKey: '' },
      ]) {
        expectError(await call('POST', '/v1/runs', { body }), 400, 'CAIRN-1101');
      }
    });

    it('returns the same run for the same idempotency key and deletes the duplicate input', async () => {
      const key = `refund-${randomUUID()}`;
      const first = await call('POST', '/v1/runs', {
        body: { workflow: 'order-refund', input: { n: 1 } },
        headers: { 'idempotency-key': key },
      });
      assert.equal(first.status, 201);
      const runsBefore = await db.count('dp_runs');
      const second = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', input: { n: 2 }, idempotencyKey: key } });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      assert.equal(second.body.runId, first.body.runId);
      assert.equal(second.body.created, false);
      assert.equal(await db.count('dp_runs'), runsBefore, 'the second input was deleted');
      const orphan = cp.requests<StartRunRequest>('startRun').at(-1)!;
      assert.notEqual(orphan.runId, first.body.runId);
      assert.equal(await store.getRun(orphan.runId), undefined);
      assert.deepEqual((await store.getRun(String(first.body.runId)))?.input, { n: 1 }, 'the first input is kept');

      const conflicting = await call('POST', '/v1/runs', {
        body: { workflow: 'order-refund', idempotencyKey: 'a' },
        headers: { 'idempotency-key': 'b' },
      });
      expectError(conflicting, 400, 'CAIRN-1101', /Idempotency-Key/);
    });

    it('refuses an unknown workflow with CAIRN-1106 and keeps nothing', async () => {
      const runs = await db.count('dp_runs');
      const res = await call('POST', '/v1/runs', { body: { workflow: 'no-such-flow', input: { a: 1 } } });
      expectError(res, 404, 'CAIRN-1106', /workflow no-such-flow is not registered: no worker of this data plane has announced it/);
      const versioned = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', version: '9' } });
      expectError(versioned, 404, 'CAIRN-1106', /order-refund version 9/);
      assert.equal(await db.count('dp_runs'), runs);
    });

    it('answers 503 CAIRN-1110 when the control plane is unreachable, and keeps the input for a run it may have created', async () => {
      const port = await freePort();
      const offline = gatewayWith({ CAIRN_CP_GRPC_ADDRESS: `127.0.0.1:${port}`, CAIRN_CP_TIMEOUT_MS: '1000' });
      const runs = await db.count('dp_runs');
      const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', input: { a: 1 } } }, offline);
      expectError(res, 503, 'CAIRN-1110', /control plane unreachable; the run may not have started: retry with the same Idempotency-Key/);
      // Without an answer the gateway cannot know that no run was created; the orphan sweep removes the input later.
      assert.equal(await db.count('dp_runs'), runs + 1);
      const read = await call('GET', `/v1/runs/${randomUUID()}`, {}, offline);
      expectError(read, 503, 'CAIRN-1110');
    });

    it('answers 502 naming CAIRN_DP_CREDENTIAL when the control plane refuses the credential, and keeps no input', async () => {
      const refused = gatewayWith({ CAIRN_DP_CREDENTIAL: 'cdp_revoked' });
      const runs = await db.count('dp_runs');
      const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund' } }, refused);
      expectError(res, 502, 'CAIRN-1001', /CAIRN_DP_CREDENTIAL/);
      assert.equal(await db.count('dp_runs'), runs);
    });

    it('maps other control-plane statuses, drops the input of a start refused for certain and keeps it when the answer is unsure', async () => {
      const cases: Array<[grpc.status, number, string, 'dropped' | 'kept']> = [
        [grpc.status.INVALID_ARGUMENT, 400, 'CAIRN-1101', 'dropped'],
        [grpc.status.FAILED_PRECONDITION, 409, 'CAIRN-1108', 'dropped'],
        [grpc.status.PERMISSION_DENIED, 502, 'CAIRN-1001', 'dropped'],
        // The control plane may have committed before failing or timing out.
        [grpc.status.INTERNAL, 502, 'CAIRN-4000', 'kept'],
        [grpc.status.DEADLINE_EXCEEDED, 503, 'CAIRN-1110', 'kept'],
      ];
      for (const [code, status, cairn, input] of cases) {
        const runs = await db.count('dp_runs');
        cp.intercepts.startRun = () => ({ code, details: `refused (${grpc.status[code]})` });
        const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', input: { x: 1 } } });
        expectError(res, status, cairn);
        assert.equal(await db.count('dp_runs'), input === 'kept' ? runs + 1 : runs, `${grpc.status[code]}: the input is ${input}`);
      }
    });

    it('keeps the input of a run the control plane created before its StartRun failed without a definite answer', async () => {
      cp.intercepts.startRun = (_request, next) => {
        next();
        return { code: grpc.status.INTERNAL, details: 'failed after commit' };
      };
      const before = cp.recorded.length;
      const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', input: { kept: 'yes' } } });
      expectError(res, 502, 'CAIRN-4000');
      const sent = cp.recorded.slice(before).find((r) => r.method === 'startRun');
      const runId = (sent?.request as { runId?: string } | undefined)?.runId;
      assert.ok(runId, 'the gateway sent StartRun');
      // The run exists on the control plane and will be dispatched: a worker must find its input.
      assert.deepEqual((await store.getRun(runId))?.input, { kept: 'yes' });
    });

    it('keeps a run whose StartRun answer was lost but which the control plane did create', async () => {
      cp.intercepts.startRun = (_request, next) => {
        next();
        return { code: grpc.status.UNAVAILABLE, details: 'connection dropped after commit' };
      };
      const runs = await db.count('dp_runs');
      const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', input: { kept: true } } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(await db.count('dp_runs'), runs + 1);
      assert.deepEqual((await store.getRun(String(res.body.runId)))?.input, { kept: true });
    });

    it('sends the control plane no payload and no raw key: only ids, names, sizes and digests', async () => {
      const marker = `CANARY${randomUUID().replace(/-/g, '')}`;
      const before = cp.recorded.length;
      const run = await start({ workflow: 'order-refund', input: { marker }, idempotencyKey: `key-${marker}` });
      await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: { note: `note-${marker}` } });
      await call('GET', `/v1/runs/${run.runId}`);
      await call('GET', `/v1/runs/${run.runId}/result?wait=0`);
      await call('POST', `/v1/runs/${run.runId}/cancel`);
      const sent = cp.recorded.slice(before);
      assert.deepEqual(
        sent.map((r) => r.method),
        // The signal's name is not declared: the gateway asks whether the run waits for it.
        ['startRun', 'describeRun', 'signalRun', 'describeRun', 'waitRun', 'cancelRun'],
      );
      const all = Buffer.concat(sent.map((r) => r.bytes));
      assert.ok(all.length > 0);
      assert.equal(all.includes(Buffer.from(marker)), false, 'the marker crossed to the control plane');
      for (const r of sent) {
        const method = GatewayService.method[r.method];
        assert.deepEqual(residencyViolations(method.input, r.request as never), [], r.method);
      }
      assert.equal(Buffer.from(JSON.stringify(sent.map((r) => r.authorization))).includes(marker), false);
    });

    it('reads a completed run: metadata from the control plane, output from the data plane', async () => {
      const run = await start({ workflow: 'order-refund', input: { amount: 10 } });
      const output = { status: 'refunded', amount: 10 };
      await complete(run.runId, output);
      const res = await call('GET', `/v1/runs/${run.runId}`);
      assert.equal(res.status, 200);
      const meta = res.body.run as Record<string, unknown>;
      assert.deepEqual(Object.keys(meta).sort(), [
        'cancelRequested',
        'createdAt',
        'dispatchCount',
        'endedAt',
        'epoch',
        'errorCode',
        'inputSize',
        'outputSize',
        'parentRunId',
        'runId',
        'startedAt',
        'status',
        'taskQueue',
        'version',
        'waitingSignal',
        'wakeAt',
        'workflow',
      ]);
      assert.equal(meta['runId'], run.runId);
      assert.equal(meta['workflow'], 'order-refund');
      assert.equal(meta['version'], '2');
      assert.equal(meta['taskQueue'], 'default');
      assert.equal(meta['status'], 'completed');
      assert.equal(meta['epoch'], 1);
      assert.equal(meta['errorCode'], null);
      assert.match(String(meta['createdAt']), /^\d{4}-\d\d-\d\dT/);
      assert.equal(meta['startedAt'], null);
      assert.match(String(meta['endedAt']), /^\d{4}-\d\d-\d\dT/);
      assert.equal(meta['wakeAt'], null);
      assert.equal(meta['waitingSignal'], null);
      assert.equal(meta['inputSize'], JSON.stringify({ amount: 10 }).length);
      assert.equal(meta['outputSize'], JSON.stringify(output).length);
      assert.equal(meta['cancelRequested'], false);
      assert.deepEqual(res.body.output, output);
      assert.equal(res.body.error, undefined);
    });

    it('reads a failed run: the error message and stack come from the data plane by error ref', async () => {
      const run = await start({ workflow: 'order-refund', input: {} });
      await store.acquire(run.runId, 1);
      const { errorRef } = await store.failRun(run.runId, 1, {
        name: 'TerminalError',
        message: 'card 4242 declined',
        stack: 'TerminalError: card 4242 declined\n    at charge',
        code: 'CAIRN-2004',
      });
      cp.update(run.runId, { status: RunStatus.FAILED, errorCode: ErrorCode.STEP_TERMINAL, errorRef, endedAt: BigInt(Date.now()) });
      const res = await call('GET', `/v1/runs/${run.runId}`);
      assert.equal(res.body.run.status, 'failed');
      assert.equal(res.body.run.errorCode, 'step_terminal');
      assert.deepEqual(res.body.error, {
        name: 'TerminalError',
        message: 'card 4242 declined',
        code: 'CAIRN-2004',
        stack: 'TerminalError: card 4242 declined\n    at charge',
      });
      const result = await call('GET', `/v1/runs/${run.runId}/result`);
      assert.equal(result.status, 200);
      assert.equal(result.body.status, 'failed');
      assert.equal(result.body.error.message, 'card 4242 declined');
    });

    it('long-polls for a result: 202 while running, 200 with the output when it ends', async () => {
      const run = await start({ workflow: 'five-steps', input: {} });
      cp.update(run.runId, { status: RunStatus.RUNNING, epoch: 1, dispatchCount: 1, startedAt: BigInt(Date.now()) });
      const pending = await call('GET', `/v1/runs/${run.runId}/result?wait=0.2`);
      assert.equal(pending.status, 202);
      assert.deepEqual(pending.body, { runId: run.runId, status: 'running' });
      assert.equal(cp.requests<{ timeoutMs: number }>('waitRun').at(-1)?.timeoutMs, 200);

      setTimeout(() => void complete(run.runId, { total: 15 }), 150);
      const t0 = Date.now();
      const done = await call('GET', `/v1/runs/${run.runId}/result?wait=5`);
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.deepEqual(done.body, { runId: run.runId, status: 'completed', output: { total: 15 } });
      assert.ok(Date.now() - t0 < 4000, 'answered when the run ended, not at the end of the wait');
    });

    it('refuses a bad wait', async () => {
      const runId = randomUUID();
      for (const wait of ['61', '-1', 'soon', '']) {
        expectError(
          await call('GET', `/v1/runs/${runId}/result?wait=${wait}`),
          400,
          'CAIRN-1101',
          /wait must be a number of seconds from 0 to 60/,
        );
      }
    });

    it('lists the step timeline', async () => {
      const run = await start({ workflow: 'five-steps', input: {} });
      const t = Date.now();
      cp.steps.set(run.runId, [
        create(StepInfoSchema, {
          position: 0,
          kind: StepKind.STEP,
          name: 'charge',
          attempt: 1,
          status: StepStatus.RETRYING,
          errorCode: ErrorCode.STEP_FAILED,
          retryable: true,
          errorRef: randomUUID(),
          startedAt: BigInt(t),
          endedAt: BigInt(t + 25),
          dueAt: BigInt(t + 1000),
        }),
        create(StepInfoSchema, {
          position: 0,
          kind: StepKind.STEP,
          name: 'charge',
          attempt: 2,
          status: StepStatus.COMPLETED,
          startedAt: BigInt(t + 1000),
          endedAt: BigInt(t + 1010),
          outputSize: 42n,
        }),
        create(StepInfoSchema, {
          position: 1,
          kind: StepKind.SIGNAL,
          name: 'approval',
          attempt: 1,
          status: StepStatus.WAITING,
          startedAt: BigInt(t),
        }),
        create(StepInfoSchema, {
          position: 2,
          kind: StepKind.MODEL,
          name: 'summarize',
          attempt: 1,
          status: StepStatus.COMPLETED,
          startedAt: BigInt(t),
          endedAt: BigInt(t + 900),
          outputSize: 310n,
          inputTokens: 1200n,
          outputTokens: 85n,
          provider: 'mistral.chat',
          model: 'mistral-large-latest',
        }),
      ]);
      const res = await call('GET', `/v1/runs/${run.runId}/steps`);
      assert.equal(res.status, 200);
      assert.equal(res.body.runId, run.runId);
      assert.deepEqual(res.body.steps[0], {
        position: 0,
        attempt: 1,
        kind: 'step',
        name: 'charge',
        status: 'retrying',
        errorCode: 'step_failed',
        retryable: true,
        startedAt: new Date(t).toISOString(),
        endedAt: new Date(t + 25).toISOString(),
        dueAt: new Date(t + 1000).toISOString(),
        durationMs: 25,
        outputSize: 0,
        inputTokens: null,
        outputTokens: null,
        provider: null,
        model: null,
        copied: false,
      });
      assert.equal(res.body.steps[1].outputSize, 42);
      assert.equal(res.body.steps[1].errorCode, null);
      assert.equal(res.body.steps[2].kind, 'signal');
      assert.equal(res.body.steps[2].status, 'waiting');
      assert.equal(res.body.steps[2].durationMs, null);
      assert.equal(res.body.steps[2].endedAt, null);
      assert.deepEqual(
        [
          res.body.steps[3].kind,
          res.body.steps[3].provider,
          res.body.steps[3].model,
          res.body.steps[3].inputTokens,
          res.body.steps[3].outputTokens,
        ],
        ['model', 'mistral.chat', 'mistral-large-latest', 1200, 85],
      );
    });

    it("serves a model call's transcript from the data plane", async () => {
      const run = await start({ workflow: 'five-steps', input: {} });
      await store.acquire(run.runId, 1);
      const transcript = {
        name: 'summarize',
        request: { system: 'Be brief.', prompt: 'Summarize the ticket of jane@example.com' },
        response: { text: 'A short summary.' },
        usage: { inputTokens: 12, outputTokens: 4 },
        attempts: [{ attempt: 1, status: 'completed' }],
      };
      await store.append(run.runId, 1, [
        { position: 0, kind: 'step', name: 'load', status: 'completed', value: 'x', startedAt: Date.now() },
        {
          position: 1,
          kind: 'model',
          name: 'summarize',
          status: 'completed',
          attempt: 1,
          value: { text: 'A short summary.' },
          transcript,
          startedAt: Date.now(),
          endedAt: Date.now(),
        },
      ]);
      const res = await call('GET', `/v1/runs/${run.runId}/steps/1/transcript`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.transcript, transcript);
      assert.deepEqual([res.body.runId, res.body.position, res.body.size], [run.runId, 1, Buffer.byteLength(JSON.stringify(transcript))]);
      assert.match(String(res.body.createdAt), /^\d{4}-\d\d-\d\dT/);
      const entry = await call('GET', `/v1/runs/${run.runId}/steps/1`);
      assert.deepEqual([entry.body.kind, entry.body.output], ['model', { text: 'A short summary.' }]);
      expectError(
        await call('GET', `/v1/runs/${run.runId}/steps/0/transcript`),
        404,
        'CAIRN-1105',
        /no model call transcript at position 0/,
      );
      expectError(await call('GET', `/v1/runs/${run.runId}/steps/x/transcript`), 400, 'CAIRN-1101', /position/);
      expectError(await call('GET', `/v1/runs/not-a-uuid/steps/1/transcript`), 400, 'CAIRN-1101', /malformed run id/);
      expectError(await call('GET', `/v1/runs/${run.runId}/steps/1/transcript`, { token: null }), 401, 'CAIRN-1104');
    });

    it('streams model output published for a run as Server-Sent Events, until the run ends', async () => {
      const run = await start({ workflow: 'five-steps', input: {} });
      const other = await start({ workflow: 'five-steps', input: {} });
      const served = gatewayWith({});
      await served.listen({ host: '127.0.0.1', port: 0 });
      const address = served.server.address();
      const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      const res = await fetch(`${base}/v1/runs/${run.runId}/stream`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      const readUntil = async (pattern: RegExp) => {
        while (!pattern.test(text)) {
          const { value, done } = await reader.read();
          if (done) break;
          text += value;
        }
      };
      // The stream is open (and listening) once its first comment arrives.
      await readUntil(/: streaming run/);
      await store.publishStream(other.runId, [{ type: 'delta', position: 0, name: 'story', attempt: 1, text: 'not this run' }]);
      await store.publishStream(run.runId, [{ type: 'delta', position: 2, name: 'story', attempt: 1, text: 'Once upon ' }]);
      await store.publishStream(run.runId, [
        { type: 'delta', position: 2, name: 'story', attempt: 1, text: 'a time.\nThe end.' },
        { type: 'model-done', position: 2, name: 'story', attempt: 1 },
      ]);
      await readUntil(/event: model-done/);
      cp.update(run.runId, { status: RunStatus.COMPLETED, endedAt: BigInt(Date.now()) });
      await readUntil(/event: end[^]*\n\n/);
      const { done } = await reader.read();
      assert.ok(done, 'the stream ends with the run');
      const events = text
        .split('\n\n')
        .filter((block) => block.startsWith('event: '))
        .map((block) => {
          const [event, data] = block.split('\n');
          return [event!.slice('event: '.length), JSON.parse(data!.slice('data: '.length)) as unknown];
        });
      assert.deepEqual(events, [
        ['delta', { position: 2, name: 'story', attempt: 1, text: 'Once upon ' }],
        ['delta', { position: 2, name: 'story', attempt: 1, text: 'a time.\nThe end.' }],
        ['model-done', { position: 2, name: 'story', attempt: 1 }],
        ['end', { runId: run.runId, status: 'completed' }],
      ]);

      // A run that has ended already gets its end at once; unknown runs and missing tokens are refused.
      const endedText = await (
        await fetch(`${base}/v1/runs/${run.runId}/stream`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).text();
      assert.match(endedText, /event: end\ndata: \{"runId":"[0-9a-f-]{36}","status":"completed"\}/);
      expectError(await call('GET', `/v1/runs/${randomUUID()}/stream`, {}, served), 404, 'CAIRN-1105');
      expectError(await call('GET', `/v1/runs/not-a-uuid/stream`, {}, served), 400, 'CAIRN-1101');
      expectError(await call('GET', `/v1/runs/${other.runId}/stream`, { token: null }, served), 401, 'CAIRN-1104');
    });

    it('shows the recorded journal entry of a step, with its output or error', async () => {
      const run = await start({ workflow: 'five-steps', input: {} });
      const t = Date.now();
      await store.acquire(run.runId, 1);
      await store.append(run.runId, 1, [
        { position: 0, kind: 'step', name: 'fetch', status: 'completed', value: { rows: [1, 2] }, startedAt: t, endedAt: t + 5 },
        {
          position: 1,
          kind: 'step',
          name: 'charge',
          status: 'retrying',
          attempt: 2,
          error: { name: 'Error', message: 'gateway timeout', stack: 'Error: gateway timeout', code: undefined },
          startedAt: t + 10,
          endedAt: t + 20,
          dueAt: t + 5000,
        },
      ]);
      const ok = await call('GET', `/v1/runs/${run.runId}/steps/0`);
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body, {
        runId: run.runId,
        position: 0,
        kind: 'step',
        name: 'fetch',
        status: 'completed',
        attempt: 1,
        output: { rows: [1, 2] },
        startedAt: new Date(t).toISOString(),
        endedAt: new Date(t + 5).toISOString(),
        dueAt: null,
      });
      const failed = await call('GET', `/v1/runs/${run.runId}/steps/1`);
      assert.equal(failed.body.status, 'retrying');
      assert.equal(failed.body.attempt, 2);
      assert.deepEqual(failed.body.error, { name: 'Error', message: 'gateway timeout', code: null, stack: 'Error: gateway timeout' });
      assert.equal(failed.body.output, undefined);
      assert.equal(failed.body.dueAt, new Date(t + 5000).toISOString());

      expectError(await call('GET', `/v1/runs/${run.runId}/steps/7`), 404, 'CAIRN-1105', /no journal entry at position 7/);
      expectError(await call('GET', `/v1/runs/${run.runId}/steps/first`), 400, 'CAIRN-1101', /position/);
    });

    it('stores a signal and tells the control plane its id', async () => {
      const run = await start({ workflow: 'order-refund', input: {} });
      cp.update(run.runId, { status: RunStatus.SUSPENDED, waitingSignal: 'approval' });
      const res = await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: { approved: true, by: 'maria' } });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal(res.body.runId, run.runId);
      assert.equal(res.body.signal, 'approval');
      assert.equal(res.body.status, 'queued', 'the fake control plane woke the run');
      const sent = cp.requests<SignalRunRequest>('signalRun').at(-1)!;
      assert.deepEqual(
        { runId: sent.runId, signalName: sent.signalName, signalId: sent.signalId },
        { runId: run.runId, signalName: 'approval', signalId: res.body.signalId },
      );
      assert.equal(await db.count('dp_signals', 'signal_id = $1', [res.body.signalId]), 1);

      assert.equal(res.body.waiting, undefined, 'the run was waiting for it');

      // A signal the suspended run does not wait for is kept, and the answer says so.
      cp.update(run.runId, { status: RunStatus.SUSPENDED, waitingSignal: 'approval' });
      const other = await call('POST', `/v1/runs/${run.runId}/signals/aproval`, { body: { approved: true } });
      assert.equal(other.status, 202, JSON.stringify(other.body));
      assert.deepEqual([other.body.status, other.body.waiting, other.body.waitingFor], ['suspended', false, 'approval']);
      cp.update(run.runId, { status: RunStatus.SUSPENDED, waitingSignal: '' });
      const sleeping = await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: {} });
      assert.deepEqual([sleeping.body.waiting, sleeping.body.waitingFor], [false, null]);
      cp.update(run.runId, { status: RunStatus.RUNNING, waitingSignal: '' });

      // A signal without a body is a signal with no value.
      const bare = await call('POST', `/v1/runs/${run.runId}/signals/ping`);
      assert.equal(bare.status, 202, JSON.stringify(bare.body));
      assert.equal(bare.body.waiting, undefined, 'a running run may still ask for it');
      // The longest name allowed.
      assert.equal((await call('POST', `/v1/runs/${run.runId}/signals/${'s'.repeat(100)}`, { body: {} })).status, 202);
    });

    it('answers an approval as the signal approval.<name>[.<key digest>]; comment, data and key stay in the data plane', async () => {
      const marker = `CANARY${randomUUID().replace(/-/g, '')}`;
      const run = await start({ workflow: 'order-refund', input: {} });
      const before = cp.recorded.length;
      const res = await call('POST', `/v1/runs/${run.runId}/approvals/refund`, {
        body: { approved: true, by: 'maria', comment: `looks fine ${marker}`, data: { amount: 12.5, note: marker } },
      });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.deepEqual(
        { ...res.body, signalId: undefined },
        {
          runId: run.runId,
          approval: 'refund',
          approved: true,
          signal: 'approval.refund',
          signalId: undefined,
          created: true,
          status: 'queued',
        },
      );
      const stored = await db.count('dp_signals', 'signal_id = $1', [res.body.signalId]);
      assert.equal(stored, 1);

      // With a key: the signal name ends with the key's HMAC, as the worker derives it.
      const keyed = await call('POST', `/v1/runs/${run.runId}/approvals/refund/reject`, {
        body: { by: 'maria', comment: `no ${marker}`, key: `order-${marker}` },
      });
      assert.equal(keyed.status, 202, JSON.stringify(keyed.body));
      assert.equal(keyed.body.approved, false);
      const keyedSignal = String(keyed.body.signal);
      assert.equal(keyedSignal, approvalSignalName('refund', config.hasher.forRun('order-refund', 2).approval(`order-${marker}`)));
      assert.match(keyedSignal, /^approval\.refund\.[0-9a-f]{32}$/);
      const approved = await call('POST', `/v1/runs/${run.runId}/approvals/refund/approve`);
      assert.equal(approved.status, 202, JSON.stringify(approved.body));
      assert.equal(approved.body.approved, true);

      // The bodies the workflow will read, from the payload store.
      await store.acquire(run.runId, 1);
      assert.deepEqual((await store.takeSignal(run.runId, 1, 0, 'approval.refund', Date.now()))?.body, {
        approved: true,
        by: 'maria',
        comment: `looks fine ${marker}`,
        data: { amount: 12.5, note: marker },
      });
      assert.deepEqual((await store.takeSignal(run.runId, 1, 1, keyedSignal, Date.now()))?.body, {
        approved: false,
        by: 'maria',
        comment: `no ${marker}`,
      });
      assert.deepEqual((await store.takeSignal(run.runId, 1, 2, 'approval.refund', Date.now()))?.body, { approved: true });

      const sent = cp.recorded.slice(before);
      assert.deepEqual(
        sent.map((r) => r.method),
        ['describeRun', 'signalRun', 'describeRun', 'signalRun', 'describeRun', 'signalRun'],
      );
      assert.deepEqual(
        cp
          .requests<SignalRunRequest>('signalRun')
          .slice(-3)
          .map((r) => [r.signalName, r.signalDigest]),
        // The run does not wait for them yet and its workflow does not list them: only the digests cross.
        ['approval.refund', keyedSignal, 'approval.refund'].map((name) => ['', signalNameDigest(config.hasher, run.runId, name)]),
      );
      assert.equal(Buffer.concat(sent.map((r) => r.bytes)).includes(Buffer.from(marker)), false, 'approval data crossed');
      for (const r of sent) assert.deepEqual(residencyViolations(GatewayService.method.signalRun.input, r.request as never), []);
    });

    it('refuses bad approval bodies and names with 400 and keeps nothing', async () => {
      const run = await start({ workflow: 'order-refund', input: {} });
      const signals = await db.count('dp_signals');
      const url = `/v1/runs/${run.runId}/approvals/refund`;
      expectError(await call('POST', url), 400, 'CAIRN-1101', /request body is required/);
      expectError(await call('POST', url, { body: [true] }), 400, 'CAIRN-1101', /must be a JSON object/);
      expectError(await call('POST', url, { body: { by: 'maria' } }), 400, 'CAIRN-1101', /approved is required and must be true or false/);
      expectError(await call('POST', url, { body: { approved: 'yes' } }), 400, 'CAIRN-1101', /approved is required .* \(got string\)/);
      expectError(await call('POST', url, { body: { approved: true, reason: 'x' } }), 400, 'CAIRN-1101', /unknown field "reason"/);
      expectError(await call('POST', url, { body: { approved: true, by: 7 } }), 400, 'CAIRN-1101', /by must be a string/);
      expectError(await call('POST', url, { body: { approved: true, by: 'x'.repeat(201) } }), 400, 'CAIRN-1101', /by must be/);
      expectError(await call('POST', url, { body: { approved: true, comment: { text: 'x' } } }), 400, 'CAIRN-1101', /comment/);
      expectError(await call('POST', url, { body: { approved: true, key: { id: 1 } } }), 400, 'CAIRN-1101', /key must be/);
      expectError(await call('POST', url, { body: { approved: true, key: '' } }), 400, 'CAIRN-1101', /key must be/);
      expectError(await call('POST', url, { raw: '{"approved": tru' }), 400, 'CAIRN-1102', /line 1, column/);
      expectError(await call('POST', `${url}/approve`, { body: { approved: false } }), 400, 'CAIRN-1101', /the route decides/);
      expectError(await call('POST', `${url}/reject`, { body: 'no' }), 400, 'CAIRN-1101', /must be a JSON object/);
      expectError(
        await call('POST', `/v1/runs/${run.runId}/approvals/${encodeURIComponent('ok for bob@example.com')}`, { body: { approved: true } }),
        400,
        'CAIRN-1107',
        /Invalid approval name/,
      );
      expectError(
        await call('POST', `/v1/runs/${run.runId}/approvals/${'a'.repeat(92)}`, { body: { approved: true } }),
        400,
        'CAIRN-1107',
        /at most 91 characters/,
      );
      expectError(
        await call('POST', `/v1/runs/${run.runId}/approvals/${'a'.repeat(59)}`, { body: { approved: true, key: 'k' } }),
        400,
        'CAIRN-1107',
        /at most 58 characters with a key/,
      );
      expectError(await call('POST', `/v1/runs/not-a-run/approvals/refund`, { body: { approved: true } }), 400, 'CAIRN-1101', /run id/);
      expectError(await call('POST', `/v1/runs/${randomUUID()}/approvals/refund/approve`), 404, 'CAIRN-1105');
      expectError(await call('POST', `${url}/approve`, { token: null }), 401, 'CAIRN-1104');
      assert.equal(await db.count('dp_signals'), signals);
      // The longest names allowed.
      assert.equal((await call('POST', `/v1/runs/${run.runId}/approvals/${'a'.repeat(91)}/approve`)).status, 202);
      assert.equal((await call('POST', `/v1/runs/${run.runId}/approvals/${'a'.repeat(58)}/approve`, { body: { key: 1 } })).status, 202);
    });

    it('refuses a signal for a run that ended with 409 CAIRN-1108 and keeps nothing', async () => {
      const run = await start({ workflow: 'order-refund', input: {} });
      await complete(run.runId, null);
      const signals = await db.count('dp_signals');
      const res = await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: { approved: true } });
      // Said once, without the control plane's message and code nested in it.
      expectError(res, 409, 'CAIRN-1108', /^run [0-9a-f-]{36} has already ended, so it cannot receive signals; the signal was not kept$/);
      assert.equal(await db.count('dp_signals'), signals);
    });

    it('refuses a signal for an unknown run with 404 and keeps nothing', async () => {
      const signals = await db.count('dp_signals');
      expectError(await call('POST', `/v1/runs/${randomUUID()}/signals/go`, { body: {} }), 404, 'CAIRN-1105', /run .* not found/);
      // Known to the data plane, not to the control plane.
      const runId = randomUUID();
      await store.createRun({ runId, workflowName: 'order-refund', input: null });
      expectError(await call('POST', `/v1/runs/${runId}/signals/go`, { body: {} }), 404, 'CAIRN-1105');
      assert.equal(await db.count('dp_signals'), signals);
    });

    it('when the control plane does not answer: 202 pending, and the signal kept for the sweep to announce', async () => {
      const run = await start({ workflow: 'order-refund', input: {} });
      const owed = (signalId: string) => db.count('dp_signals', 'signal_id = $1 AND NOT notified', [signalId]);
      const stored = (signalId: string) => db.count('dp_signals', 'signal_id = $1', [signalId]);

      // Told at once: nothing is owed.
      const told = await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: { approved: true } });
      assert.deepEqual([told.status, told.body.pending, await owed(String(told.body.signalId))], [202, undefined, 0]);

      // Unreachable: the signal stays, owed, and the caller is told not to send it again.
      cp.intercepts.signalRun = () => ({ code: grpc.status.UNAVAILABLE, details: 'gone' });
      const unreachable = await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: { approved: true } });
      assert.equal(unreachable.status, 202, JSON.stringify(unreachable.body));
      assert.deepEqual([unreachable.body.pending, unreachable.body.status, unreachable.body.created], [true, null, true]);
      assert.deepEqual([await stored(String(unreachable.body.signalId)), await owed(String(unreachable.body.signalId))], [1, 1]);

      // Recorded, but the answer was lost: removing the signal now would leave the control plane a
      // notice with no signal behind it, which would wake the run for nothing each time it waits.
      cp.intercepts.signalRun = (_request, next) => {
        next();
        return { code: grpc.status.DEADLINE_EXCEEDED, details: 'answer lost' };
      };
      const lost = await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: { approved: false } });
      assert.deepEqual([lost.status, lost.body.pending], [202, true]);
      assert.equal(cp.signals.filter((s) => s.signalId === lost.body.signalId).length, 1, 'the control plane has the notice');
      assert.equal(await stored(String(lost.body.signalId)), 1, 'and the signal is there for it');

      // A wait consumes them in order, told or not.
      await store.acquire(run.runId, 1);
      for (const [position, approved] of [true, true, false].entries()) {
        assert.deepEqual((await store.takeSignal(run.runId, 1, position, 'approval', Date.now()))?.body, { approved });
      }
    });

    it('a refused signal is removed; one a waiting run consumed first is answered as delivered', async () => {
      const run = await start({ workflow: 'order-refund', input: {} });
      const signals = await db.count('dp_signals');
      cp.intercepts.signalRun = () => ({ code: grpc.status.FAILED_PRECONDITION, details: `run ${run.runId} has ended` });
      expectError(await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: { approved: true } }), 409, 'CAIRN-1108');
      assert.equal(await db.count('dp_signals'), signals);

      // A worker holding the run consumes the signal before the control plane's refusal comes back.
      await store.acquire(run.runId, 1);
      cp.intercepts.signalRun = async () => {
        await store.takeSignal(run.runId, 1, 0, 'approval', Date.now());
        return { code: grpc.status.NOT_FOUND, details: 'no such run' };
      };
      const delivered = await call('POST', `/v1/runs/${run.runId}/signals/approval`, { body: { approved: true } });
      assert.deepEqual([delivered.status, delivered.body.status, delivered.body.pending], [202, 'running', undefined]);
      assert.equal(await db.count('dp_signals'), signals + 1);
      const entry = await call('GET', `/v1/runs/${run.runId}/steps/0`);
      assert.deepEqual(entry.body.output, { approved: true });
    });

    it('delivers a signal sent twice with one Idempotency-Key once: one stored signal, one ID, consumed once', async () => {
      const marker = `CANARY${randomUUID().replace(/-/g, '')}`;
      const run = await start({ workflow: 'order-refund', input: {} });
      cp.update(run.runId, { status: RunStatus.SUSPENDED, waitingSignal: 'approval' });
      const before = cp.recorded.length;
      const url = `/v1/runs/${run.runId}/signals/approval`;
      const key = `approve-${marker}`;
      const first = await call('POST', url, { body: { approved: true }, headers: { 'idempotency-key': key } });
      assert.equal(first.status, 202, JSON.stringify(first.body));
      assert.deepEqual([first.body.created, first.body.status], [true, 'queued']);
      // Derived in the data plane from the run, the name and the key; only that ID crosses.
      assert.equal(first.body.signalId, keyedSignalId(config.hasher.forRun('order-refund', 2), run.runId, 'approval', key));

      const again = await call('POST', url, { body: { approved: true }, headers: { 'idempotency-key': key } });
      assert.equal(again.status, 202, JSON.stringify(again.body));
      assert.deepEqual([again.body.signalId, again.body.created], [first.body.signalId, false]);
      assert.equal(await db.count('dp_signals', 'run_id = $1', [run.runId]), 1, 'one stored signal');
      assert.deepEqual(
        cp
          .requests<SignalRunRequest>('signalRun')
          .slice(-2)
          .map((r) => r.signalId),
        [first.body.signalId, first.body.signalId],
        'the control plane is told the same ID again, which it records once',
      );

      // The workflow consumes it once; a repeat after that delivers nothing either.
      await store.acquire(run.runId, 1);
      assert.deepEqual((await store.takeSignal(run.runId, 1, 0, 'approval', Date.now()))?.body, { approved: true });
      const late = await call('POST', url, { body: { approved: true }, headers: { 'idempotency-key': key } });
      assert.deepEqual([late.status, late.body.signalId, late.body.created], [202, first.body.signalId, false]);
      assert.equal(await store.takeSignal(run.runId, 1, 1, 'approval', Date.now()), undefined, 'no second signal to consume');

      // The same key with another body is refused, and stores nothing.
      const other = await call('POST', url, { body: { approved: false }, headers: { 'idempotency-key': key } });
      expectError(other, 409, 'CAIRN-1108', /^this Idempotency-Key was already used for a different signal body/);
      assert.equal(await db.count('dp_signals', 'run_id = $1', [run.runId]), 1);

      // Another key is another signal.
      const next = await call('POST', url, { body: { approved: true }, headers: { 'idempotency-key': `${key}-2` } });
      assert.deepEqual([next.status, next.body.created], [202, true]);
      assert.notEqual(next.body.signalId, first.body.signalId);
      assert.equal(await db.count('dp_signals', 'run_id = $1', [run.runId]), 2);
      assert.deepEqual((await store.takeSignal(run.runId, 1, 1, 'approval', Date.now()))?.body, { approved: true });

      // A repeat to a run that has ended since is answered as the first request was.
      await store.completeRun(run.runId, 1, null);
      cp.update(run.runId, { status: RunStatus.COMPLETED, epoch: 1, endedAt: BigInt(Date.now()) });
      const ended = await call('POST', url, { body: { approved: true }, headers: { 'idempotency-key': key } });
      assert.deepEqual(
        [ended.status, ended.body.signalId, ended.body.created, ended.body.status],
        [202, first.body.signalId, false, 'completed'],
      );
      // A new key to an ended run is refused as before.
      expectError(
        await call('POST', url, { body: { approved: true }, headers: { 'idempotency-key': `${key}-3` } }),
        409,
        'CAIRN-1108',
        /has already ended/,
      );

      const sent = cp.recorded.slice(before);
      assert.equal(Buffer.concat(sent.map((r) => r.bytes)).includes(Buffer.from(marker)), false, 'the key crossed');

      expectError(
        await call('POST', url, { body: {}, headers: { 'idempotency-key': '' } }),
        400,
        'CAIRN-1101',
        /must be 1 to 1024 characters/,
      );
      expectError(
        await call('POST', url, { body: {}, headers: { 'idempotency-key': 'k'.repeat(1025) } }),
        400,
        'CAIRN-1101',
        /must be 1 to 1024 characters/,
      );
    });

    it('delivers an approval answered twice with one Idempotency-Key once; another answer with the key is refused', async () => {
      const run = await start({ workflow: 'order-refund', input: {} });
      const idem = { 'idempotency-key': `answer-${randomUUID()}` };
      const url = `/v1/runs/${run.runId}/approvals/refund`;
      const first = await call('POST', `${url}/approve`, { body: { by: 'maria', key: 'o-1' }, headers: idem });
      assert.equal(first.status, 202, JSON.stringify(first.body));
      assert.equal(first.body.created, true);
      const again = await call('POST', url, { body: { approved: true, by: 'maria', key: 'o-1' }, headers: idem });
      assert.deepEqual([again.status, again.body.signalId, again.body.created], [202, first.body.signalId, false]);
      expectError(
        await call('POST', `${url}/reject`, { body: { by: 'maria', key: 'o-1' }, headers: idem }),
        409,
        'CAIRN-1108',
        /this Idempotency-Key was already used for a different signal body/,
      );
      // The same key for another approval key is another signal.
      const otherOrder = await call('POST', `${url}/reject`, { body: { by: 'maria', key: 'o-2' }, headers: idem });
      assert.deepEqual([otherOrder.status, otherOrder.body.created], [202, true]);
      assert.equal(await db.count('dp_signals', 'run_id = $1', [run.runId]), 2);
      await store.acquire(run.runId, 1);
      const signal = String(first.body.signal);
      assert.deepEqual((await store.takeSignal(run.runId, 1, 0, signal, Date.now()))?.body, { approved: true, by: 'maria' });
      assert.equal(await store.takeSignal(run.runId, 1, 1, signal, Date.now()), undefined);
    });

    it('a keyed signal the control plane did not take is kept; sending it again with its key stores nothing new', async () => {
      const run = await start({ workflow: 'order-refund', input: {} });
      const url = `/v1/runs/${run.runId}/signals/go`;
      const idem = { 'idempotency-key': `go-${randomUUID()}` };
      const count = () => db.count('dp_signals', 'run_id = $1', [run.runId]);

      cp.intercepts.signalRun = () => ({ code: grpc.status.UNAVAILABLE, details: 'gone' });
      const pending = await call('POST', url, { body: 1, headers: idem });
      assert.deepEqual([pending.status, pending.body.created, pending.body.pending], [202, true, true]);
      assert.equal(await count(), 1);

      // The caller retries anyway: the same ID, nothing new stored, and the control plane is told now.
      delete cp.intercepts.signalRun;
      const retried = await call('POST', url, { body: 1, headers: idem });
      assert.deepEqual(
        [retried.status, retried.body.signalId, retried.body.created, retried.body.pending],
        [202, pending.body.signalId, false, undefined],
      );
      assert.equal(await count(), 1);
      assert.equal(cp.signals.filter((s) => s.signalId === retried.body.signalId).length, 1);
      assert.equal(await db.count('dp_signals', 'signal_id = $1 AND NOT notified', [retried.body.signalId]), 0, 'nothing owed once told');

      // A refused repeat (the run is unknown to the control plane) removes the unconsumed signal.
      cp.intercepts.signalRun = () => ({ code: grpc.status.NOT_FOUND, details: 'no such run' });
      expectError(await call('POST', url, { body: 1, headers: idem }), 404, 'CAIRN-1105');
      assert.equal(await count(), 0);
    });

    it('cancels a queued run at once, closing it in the data plane too; a running run is asked to stop', async () => {
      const queued = await start({ workflow: 'order-refund', input: {} });
      const res = await call('POST', `/v1/runs/${queued.runId}/cancel`);
      assert.equal(res.status, 202);
      assert.deepEqual(res.body, { runId: queued.runId, status: 'cancelled' });
      assert.equal(await db.status(queued.runId), 'cancelled');

      const running = await start({ workflow: 'order-refund', input: {} });
      cp.update(running.runId, { status: RunStatus.RUNNING, epoch: 1 });
      const asked = await call('POST', `/v1/runs/${running.runId}/cancel`);
      assert.deepEqual(asked.body, { runId: running.runId, status: 'running' });
      assert.equal(await db.status(running.runId), 'open');
      assert.equal((await call('GET', `/v1/runs/${running.runId}`)).body.run.cancelRequested, true);

      expectError(await call('POST', `/v1/runs/${randomUUID()}/cancel`), 404, 'CAIRN-1105');
    });

    describe('bad input: a clear error with a stable code, and nothing stored', () => {
      let runs: number;
      let signals: number;
      let knownRun: string;
      before(async () => {
        knownRun = (await start({ workflow: 'order-refund', input: {} })).runId;
      });
      beforeEach(async () => {
        runs = await db.count('dp_runs');
        signals = await db.count('dp_signals');
      });
      const nothingStored = async () => {
        assert.equal(await db.count('dp_runs'), runs, 'a run was stored');
        assert.equal(await db.count('dp_signals'), signals, 'a signal was stored');
      };

      it('malformed JSON → 400 CAIRN-1102 saying where', async () => {
        const res = await call('POST', '/v1/runs', { raw: '{"workflow": "order-refund",\n "input": {"a": tru}}' });
        expectError(res, 400, 'CAIRN-1102', /not valid JSON at line 2, column 17/);
        const signal = await call('POST', `/v1/runs/${knownRun}/signals/go`, { raw: '{oops' });
        expectError(signal, 400, 'CAIRN-1102', /line 1, column 2/);
        await nothingStored();
      });

      it('a body over the limit → 413 CAIRN-1103 naming the limit and the variable', async () => {
        const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', input: { blob: 'x'.repeat(MAX_BYTES) } } });
        expectError(res, 413, 'CAIRN-1103', new RegExp(`${MAX_BYTES} bytes.*CAIRN_GATEWAY_MAX_PAYLOAD_BYTES`));
        const signal = await call('POST', `/v1/runs/${knownRun}/signals/go`, { body: { blob: 'x'.repeat(MAX_BYTES) } });
        expectError(signal, 413, 'CAIRN-1103');
        await nothingStored();
      });

      it('a missing or wrong token → 401 CAIRN-1104 with WWW-Authenticate', async () => {
        for (const token of [null, 'nope', TOKEN.slice(0, -1)]) {
          const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund' }, token });
          expectError(res, 401, 'CAIRN-1104', /token/);
          assert.match(String(res.headers['www-authenticate']), /^Bearer/);
        }
        expectError(await call('GET', `/v1/runs/${knownRun}`, { token: 'nope' }), 401, 'CAIRN-1104');
        expectError(await call('POST', `/v1/runs/${knownRun}/signals/go`, { body: {}, token: null }), 401, 'CAIRN-1104');
        await nothingStored();
      });

      it('a body that is not JSON → 415 CAIRN-1109', async () => {
        const res = await call('POST', '/v1/runs', {
          raw: 'workflow=order-refund',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        expectError(res, 415, 'CAIRN-1109', /Content-Type: application\/json/);
        const text = await call('POST', `/v1/runs/${knownRun}/signals/go`, { raw: 'yes', headers: { 'content-type': 'text/plain' } });
        expectError(text, 415, 'CAIRN-1109');
        await nothingStored();
      });

      it('invalid names and versions → 400 CAIRN-1107', async () => {
        expectError(
          await call('POST', '/v1/runs', { body: { workflow: 'drop table; --' } }),
          400,
          'CAIRN-1107',
          /must start with a letter/,
        );
        expectError(await call('POST', '/v1/runs', { body: { workflow: 'a'.repeat(101) } }), 400, 'CAIRN-1107');
        expectError(await call('POST', '/v1/runs', { body: { workflow: 42 } }), 400, 'CAIRN-1107');
        expectError(await call('POST', '/v1/runs', { body: {} }), 400, 'CAIRN-1107', /workflow name/);
        expectError(await call('POST', '/v1/runs', { body: { workflow: 'order-refund', version: 'v 1' } }), 400, 'CAIRN-1107', /version/);
        const signal = await call('POST', `/v1/runs/${knownRun}/signals/${encodeURIComponent('jane@example.com')}`, { body: {} });
        expectError(signal, 400, 'CAIRN-1107', /signal name/);
        const long = await call('POST', `/v1/runs/${knownRun}/signals/${'s'.repeat(101)}`, { body: {} });
        expectError(long, 400, 'CAIRN-1107', /at most 100 characters/);
        const huge = await call('POST', '/v1/runs', { body: { workflow: 'w'.repeat(50_000) } });
        expectError(huge, 400, 'CAIRN-1107');
        assert.ok(JSON.stringify(huge.body).length < 1000, 'the refusal does not echo the whole value');
        await nothingStored();
      });

      it('a body of the wrong shape → 400 CAIRN-1101', async () => {
        expectError(await call('POST', '/v1/runs'), 400, 'CAIRN-1101', /body is required/);
        expectError(await call('POST', '/v1/runs', { body: ['order-refund'] }), 400, 'CAIRN-1101', /JSON object/);
        expectError(await call('POST', '/v1/runs', { body: { workflow: 'order-refund', inputs: {} } }), 400, 'CAIRN-1101', /"inputs"/);
        expectError(await call('POST', '/v1/runs', { body: { workflow: 'order-refund', idempotencyKey: 5 } }), 400, 'CAIRN-1101');
        expectError(
          await call('POST', '/v1/runs', { body: { workflow: 'order-refund', idempotencyKey: 'k'.repeat(1025) } }),
          400,
          'CAIRN-1101',
        );
        await nothingStored();
      });

      it('a malformed run id → 400 CAIRN-1101; an unknown run → 404 CAIRN-1105', async () => {
        for (const path of [
          '/v1/runs/not-a-uuid',
          '/v1/runs/not-a-uuid/steps',
          '/v1/runs/not-a-uuid/result',
          '/v1/runs/not-a-uuid/steps/0',
        ]) {
          expectError(await call('GET', path), 400, 'CAIRN-1101', /malformed run id/);
        }
        expectError(await call('POST', '/v1/runs/NOT-A-UUID/cancel'), 400, 'CAIRN-1101');
        expectError(await call('POST', '/v1/runs/not-a-uuid/signals/go', { body: {} }), 400, 'CAIRN-1101');
        const unknown = randomUUID();
        for (const path of [`/v1/runs/${unknown}`, `/v1/runs/${unknown}/steps`, `/v1/runs/${unknown}/result?wait=0`]) {
          expectError(await call('GET', path), 404, 'CAIRN-1105', new RegExp(`run ${unknown} not found`));
        }
        await nothingStored();
      });

      it('an unknown route → 404 listing the routes', async () => {
        const res = await call('GET', '/v1/run');
        expectError(res, 404, 'CAIRN-1105', /no route for GET \/v1\/run\. The gateway serves: .*POST \/v1\/runs,/);
        expectError(await call('DELETE', `/v1/runs/${knownRun}`), 404, 'CAIRN-1105', /GET \/v1\/runs\/:id/);
      });

      it('input nested past the limit → 400 CAIRN-1173 before anything is stored, and the gateway keeps serving', async () => {
        const deep = '['.repeat(20_000) + ']'.repeat(20_000);
        const res = await call('POST', '/v1/runs', { raw: `{"workflow": "order-refund", "input": ${deep}}` });
        expectError(res, 400, 'CAIRN-1173', /nested more than 128 levels deep/);
        await nothingStored();
        assert.equal((await call('GET', '/healthz')).status, 200);
      });
    });

    it('ends a long poll with 503 when the gateway shuts down', async () => {
      const run = await start({ workflow: 'five-steps', input: {} });
      const closing = gatewayWith({});
      await closing.ready();
      const waiting = call('GET', `/v1/runs/${run.runId}/result?wait=30`, {}, closing);
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      await closing.close();
      const res = await waiting;
      expectError(res, 503, 'CAIRN-1110', /shutting down/);
      assert.ok(Date.now() - t0 < 5000);
    });

    it('serves its OpenAPI 3.1 document without a token: every route of the table, with response schemas and the error body', async () => {
      const res = await call('GET', '/openapi.json', { token: null });
      assert.equal(res.status, 200);
      const doc = res.body as OpenApiDoc;
      assert.equal(doc.openapi, '3.1.0');
      for (const spec of Object.values(API)) {
        const operation = doc.paths[spec.path.replace(/:(\w+)/g, '{$1}')]?.[spec.method.toLowerCase()];
        assert.ok(operation, `${spec.method} ${spec.path} is documented`);
        assert.equal(operation.operationId, spec.operationId);
        for (const [status, response] of Object.entries(operation.responses)) {
          if (Number(status) >= 400 && !(spec.operationId === 'ready' && status === '503')) {
            assert.deepEqual(
              response.content?.['application/json']?.schema,
              { $ref: '#/components/schemas/Error' },
              `${spec.path} ${status}`,
            );
          } else if (spec.operationId !== 'streamRun') {
            assert.ok(response.content?.['application/json']?.schema, `${spec.path} ${status} has a schema`);
          }
        }
        if (spec.auth) assert.ok(operation.responses['401'], `${spec.path} documents 401`);
      }
      const error = doc.components.schemas['Error']!;
      assert.deepEqual(error.required, ['error']);
      assert.deepEqual(error.properties?.['error']?.required, ['code', 'message']);
      assert.ok(error.properties?.['error']?.properties?.['code']?.enum?.includes('CAIRN-1101'));
      const start = doc.paths['/v1/runs']!['post']!;
      assert.equal(start.requestBody?.content['application/json']?.schema.$ref, '#/components/schemas/StartRunRequest');
      assert.equal(doc.components.schemas['StartRunRequest']?.properties?.['workflow']?.pattern, '^[A-Za-z][A-Za-z0-9_.-]*$');
      assert.deepEqual(
        start.parameters?.map((p) => `${p.in}:${p.name}`),
        ['header:Idempotency-Key'],
      );
      const stream = doc.paths['/v1/runs/{id}/stream']!['get']!;
      assert.deepEqual(
        stream.parameters?.map((p) => `${p.in}:${p.name}`),
        ['path:id', 'query:lastEventId', 'header:Last-Event-ID'],
      );
      assert.deepEqual(Object.keys(stream.responses['200']?.['x-cairn-events'] ?? {}), ['delta', 'model-done', 'end']);
      // The same document as the one built without a server, so the generated client types match what is served.
      assert.deepEqual(res.body, JSON.parse(JSON.stringify(buildOpenApi())));
    });

    it('lists every problem of a bad request in issues, with where it is', async () => {
      const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', priority: 500, concurrencyKey: 7 } });
      expectError(res, 400, 'CAIRN-1101');
      assert.deepEqual((res.body.error.issues as Array<{ in: string; path: string }>).map((i) => `${i.in}:${i.path}`).sort(), [
        'body:concurrencyKey',
        'body:priority',
      ]);
      const wait = await call('GET', `/v1/runs/${randomUUID()}/result?wait=soon`);
      assert.deepEqual(
        (wait.body.error.issues as Issue[]).map((i) => `${i.in}:${i.path}`),
        ['query:wait'],
      );
    });

    it('asks replay checks of the workers and serves their answers, as documented; a check nobody takes is unsupported', async () => {
      const run = await start({ workflow: 'five-steps', input: { n: 2 } });
      const asked = await call('POST', `/v1/runs/${run.runId}/replay-checks`, { body: { version: '2' } });
      assert.equal(asked.status, 202, JSON.stringify(asked.body));
      assert.equal(asked.body.runId, run.runId);
      assert.equal(asked.body.version, '2');
      const checkId = String(asked.body.checkId);
      const pending = await call('GET', `/v1/runs/${run.runId}/replay-checks/${checkId}?wait=0`);
      assert.equal(pending.status, 200);
      assert.equal(pending.body.status, 'pending');
      assert.equal(pending.body.result, null);
      // What a worker that runs five-steps@2 does: claim the check, replay, store the outcome.
      const workerId = randomUUID();
      assert.equal(await store.claimReplayCheck(workerId, [{ workflowName: 'five-steps', workflowVersion: '1' }]), undefined);
      const claimed = await store.claimReplayCheck(workerId, [{ workflowName: 'five-steps', workflowVersion: '2' }]);
      assert.equal(claimed?.checkId, checkId);
      assert.equal((await call('GET', `/v1/runs/${run.runId}/replay-checks/${checkId}?wait=0`)).body.status, 'running');
      const outcome = {
        ok: false,
        outcome: 'non_determinism',
        position: 1,
        expected: { kind: 'step', name: 'b', keyDigest: null },
        actual: { kind: 'step', name: 'c', keyDigest: null },
        message: 'Non-determinism at position 1',
        replayedCalls: 1,
        journalEntries: 3,
      };
      const answered = call('GET', `/v1/runs/${run.runId}/replay-checks/${checkId}?wait=10`);
      assert.equal(await store.finishReplayCheck(checkId, workerId, 'done', outcome), true);
      const done = await answered;
      assert.equal(done.body.status, 'done');
      assert.equal(done.body.workflow, 'five-steps');
      assert.deepEqual(done.body.result, outcome);
      assert.equal(done.body.message, null);

      // Nobody runs version 9: once the bound passed, the check is unsupported, and says why.
      const nobody = await call('POST', `/v1/runs/${run.runId}/replay-checks`, { body: { version: '9' } });
      await db.ageReplayCheck(String(nobody.body.checkId), 11_000);
      const unsupported = await call('GET', `/v1/runs/${run.runId}/replay-checks/${String(nobody.body.checkId)}?wait=5`);
      assert.equal(unsupported.body.status, 'unsupported');
      assert.equal(unsupported.body.message, 'no worker of this data plane runs five-steps@9');
      assert.equal(await store.claimReplayCheck(workerId, [{ workflowName: 'five-steps', workflowVersion: '9' }]), undefined);

      // A worker that claimed a check and stopped before answering: after two minutes it has failed, and says so.
      const abandoned = await call('POST', `/v1/runs/${run.runId}/replay-checks`, { body: { version: '4' } });
      const abandonedId = String(abandoned.body.checkId);
      assert.equal((await store.claimReplayCheck(workerId, [{ workflowName: 'five-steps', workflowVersion: '4' }]))?.checkId, abandonedId);
      await db.ageReplayCheck(abandonedId, 3 * 60_000);
      const failed = await call('GET', `/v1/runs/${run.runId}/replay-checks/${abandonedId}?wait=5`);
      assert.equal(failed.body.status, 'failed');
      assert.equal(failed.body.message, `the worker that took the check (${workerId}) stopped before answering; ask again`);
      assert.equal(await store.finishReplayCheck(abandonedId, workerId, 'done', outcome), false, 'a late answer is not taken');

      // Bad input and unknown runs or checks: clear errors.
      expectError(await call('POST', `/v1/runs/${run.runId}/replay-checks`, { body: {} }), 400, 'CAIRN-1101', /version/);
      expectError(await call('POST', `/v1/runs/${randomUUID()}/replay-checks`, { body: { version: '2' } }), 404, 'CAIRN-1105');
      expectError(await call('GET', `/v1/runs/${run.runId}/replay-checks/${randomUUID()}`), 404, 'CAIRN-1105');
      expectError(await call('GET', `/v1/runs/${randomUUID()}/replay-checks/${checkId}?wait=0`), 404, 'CAIRN-1105');
      expectError(await call('GET', `/v1/runs/${run.runId}/replay-checks/not-a-check`), 400, 'CAIRN-1101', /replay check id/);
    });

    it('stores and serves payloads, and serves journals, as documented', async () => {
      const run = await start({ workflow: 'five-steps', input: { n: 1 } });
      assert.deepEqual((await call('GET', `/v1/runs/${run.runId}/journal`)).body.input, { n: 1 });
      const verified = await call('GET', `/v1/runs/${run.runId}/verify`);
      assert.equal(verified.status, 200);
      assert.deepEqual(verified.body.problems, []);
      assert.equal(verified.body.ok, true, 'an open run without entries and without a head at the control plane verifies');
      // Exports need a signing key; with one, the export verifies offline with its public half.
      expectError(await call('POST', '/v1/exports', { body: { runIds: [run.runId] } }), 409, 'CAIRN-1192');
      const keyFile = join(mkdtempSync(join(tmpdir(), 'cairn-export-key-')), 'export.pem');
      const pair = generateKeyPairSync('ed25519');
      writeFileSync(keyFile, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }));
      const signer = gatewayWith({ CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE: keyFile });
      const exported = await call('POST', '/v1/exports', { body: { runIds: [run.runId] } }, signer);
      assert.equal(exported.status, 200);
      assert.equal(exported.body.runs, 1);
      const checked = verifyJournalExport(String(exported.body.document), [pair.publicKey]);
      assert.deepEqual(checked.problems, []);
      assert.equal(checked.runs[0]?.runId, run.runId);
      expectError(await call('POST', '/v1/exports', { body: { runIds: [randomUUID()] } }, signer), 404, 'CAIRN-1105');
      assert.throws(
        () => loadGatewayConfig(env({ CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE: join(tmpdir(), `missing-${randomUUID()}.pem`) })),
        /CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE: cannot read the file \(ENOENT\)/,
      );
    });

    it('in strict residency mode sends the control plane workflow names only as keyed digests and answers with the names', async () => {
      const digest = strictNameDigest(config.hasher, 'workflow', 'five-steps');
      assert.match(digest, /^h\.[0-9a-f]{40}$/);
      cp.announce(digest);
      const strict = gatewayWith({ CAIRN_RESIDENCY: 'strict' });

      const names = await call('POST', '/v1/workflow-names', { body: { names: ['five-steps'] } }, strict);
      assert.equal(names.status, 200, JSON.stringify(names.body));
      assert.deepEqual(names.body, { residency: 'strict', workflows: [{ name: 'five-steps', crossesAs: digest }] });
      const standard = await call('POST', '/v1/workflow-names', { body: { names: ['five-steps'], digests: ['five-steps'] } });
      assert.deepEqual(standard.body.workflows, [
        { name: 'five-steps', crossesAs: 'five-steps' },
        { name: 'five-steps', crossesAs: 'five-steps' },
      ]);

      const before = cp.recorded.length;
      const started = await call('POST', '/v1/runs', { body: { workflow: 'five-steps', input: { n: 1 } } }, strict);
      assert.equal(started.status, 201, JSON.stringify(started.body));
      assert.equal(started.body.workflow, 'five-steps', 'the answer carries the name, not the digest');
      const sent = cp.recorded.slice(before).map((r) => r.request as { workflowName?: string });
      assert.ok(sent.length > 0);
      for (const r of sent) if (r.workflowName !== undefined) assert.equal(r.workflowName, digest, 'the control plane was told the digest');
      assert.equal((await store.getRun(String(started.body.runId)))?.workflowName, 'five-steps', 'the payload store keeps the name');
      const read = await call('GET', `/v1/runs/${String(started.body.runId)}`, {}, strict);
      assert.equal(read.body.run.workflow, 'five-steps');

      // Digests resolve against the schema catalogue; one of no catalogued workflow stays unresolved.
      const unknown = strictNameDigest(config.hasher, 'workflow', 'never-catalogued');
      await store.catalogueSchemas([{ name: 'five-steps', version: '1', schemas: [] }]);
      const resolved = await call('POST', '/v1/workflow-names', { body: { digests: [digest, unknown] } }, strict);
      assert.deepEqual(resolved.body.workflows, [
        { name: 'five-steps', crossesAs: digest },
        { name: null, crossesAs: unknown },
      ]);
      expectError(await call('POST', '/v1/workflow-names', { body: { names: ['no spaces'] } }, strict), 400, 'CAIRN-1107');
      // A start may name the digest the control plane shows: the payload store still keeps the name.
      const byDigest = await call('POST', '/v1/runs', { body: { workflow: digest, input: { n: 2 } } }, strict);
      assert.equal(byDigest.status, 201, JSON.stringify(byDigest.body));
      assert.equal(byDigest.body.workflow, 'five-steps');
      assert.equal((await store.getRun(String(byDigest.body.runId)))?.workflowName, 'five-steps');
      expectError(
        await call('POST', '/v1/runs', { body: { workflow: unknown, input: {} } }, strict),
        400,
        'CAIRN-1101',
        /start the workflow by its name/,
      );
    });

    it("answers a workflow's catalogued schemas by version, for the console's run form and signal editor", async () => {
      const input = { type: 'object', properties: { orderId: { type: 'string' } }, required: ['orderId'] };
      const output = { type: 'object', properties: { ok: { type: 'boolean' } } };
      const approval = { type: 'object', properties: { approved: { type: 'boolean' } }, required: ['approved'] };
      const name = `schemas-${randomUUID().slice(0, 8)}`;
      await store.catalogueSchemas([
        {
          name,
          version: '1',
          schemas: [
            { kind: 'input', schema: input, digest: schemaDigest(input) },
            { kind: 'output', schema: output, digest: schemaDigest(output) },
            { kind: 'signal', signalName: 'approval', schema: approval, digest: schemaDigest(approval) },
          ],
        },
        { name, version: '2', schemas: [] },
      ]);
      const answer = await call('GET', `/v1/workflows/${name}/schemas`);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const versions = [...(answer.body.versions as Array<{ version: string }>)].sort((a, b) => a.version.localeCompare(b.version));
      assert.deepEqual(
        { workflow: answer.body.workflow, versions },
        {
          workflow: name,
          versions: [
            { version: '1', input, output, signals: [{ name: 'approval', schema: approval }] },
            { version: '2', input: null, output: null, signals: [] },
          ],
        },
      );
      assert.deepEqual((await call('GET', '/v1/workflows/never-catalogued/schemas')).body, { workflow: 'never-catalogued', versions: [] });
      expectError(await call('GET', '/v1/workflows/no%20spaces/schemas'), 400, 'CAIRN-1107');
    });

    it('applies payload-store retention at start when configured, leaving a record of counts', async () => {
      assert.throws(
        () => loadGatewayConfig(env({ CAIRN_DP_RETENTION_DAYS: '0' })),
        /CAIRN_DP_RETENTION_DAYS: expected a number of days from 1 to 36500/,
      );
      const before = await db.count('dp_retention_runs');
      const keeper = gatewayWith({ CAIRN_DP_RETENTION_DAYS: '3650', CAIRN_DP_TRANSCRIPT_RETENTION_DAYS: '365' });
      await keeper.ready();
      for (let i = 0; i < 200 && (await db.count('dp_retention_runs')) === before; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(await db.count('dp_retention_runs'), before + 1);
      const created = await call('POST', '/v1/payloads', { body: { team: 'ops' } });
      assert.equal(created.status, 201);
      assert.deepEqual((await call('GET', `/v1/payloads/${created.body.payloadId}`)).body.payload, { team: 'ops' });
      assert.equal((await call('DELETE', `/v1/payloads/${created.body.payloadId}`)).status, 200);
      expectError(await call('GET', `/v1/payloads/${created.body.payloadId}`), 404, 'CAIRN-1105');
    });

    describe('orphan sweep', () => {
      const AGE_MS = 600_000;
      const OLD_MS = AGE_MS + 60_000;
      const exists = async (runId: string) => (await db.count('dp_runs', 'run_id = $1', [runId])) === 1;
      const describedTimes = (runId: string) => cp.requests<{ runId: string }>('describeRun').filter((r) => r.runId === runId).length;
      /** The input a gateway stored before it was killed, never telling the control plane. */
      const orphan = async (workflow: string, ageMs: number) => {
        const runId = randomUUID();
        await store.createRun({ runId, workflowName: workflow, input: { email: 'jane@example.com' }, idempotencyDigest: 'd'.repeat(64) });
        if (ageMs > 0) await db.ageRun(runId, ageMs);
        return runId;
      };
      const sweeping = (t: TestContext) =>
        sweepingGateway(t, { CAIRN_GATEWAY_ORPHAN_SWEEP_INTERVAL_MS: '20', CAIRN_GATEWAY_ORPHAN_AGE_MS: String(AGE_MS) });

      it('deletes the stored input of an old start the control plane never heard of, and nothing else', async (t) => {
        const old = await orphan('order-refund', OLD_MS);
        const young = await orphan('order-refund', AGE_MS - 120_000);
        // A run the control plane queued long ago and no worker has taken yet.
        const queued = (await start({ workflow: 'order-refund', input: { orderId: 'o-queued' } })).runId;
        await db.ageRun(queued, OLD_MS);
        // A run a worker took (a later lease), unknown to this control plane: not a start that failed.
        const taken = await orphan('order-refund', 0);
        await store.acquire(taken, 2);
        await db.ageRun(taken, OLD_MS);
        await sweeping(t);
        await waitFor('the old orphan is deleted', async () => !(await exists(old)));
        assert.ok(describedTimes(queued) >= 1, 'the control plane was asked about the queued run');
        assert.equal(await exists(queued), true, 'a run the control plane knows is kept');
        assert.equal((await call('GET', `/v1/runs/${queued}`)).status, 200);
        assert.equal(await exists(young), true, 'a start younger than the age is kept');
        assert.equal(describedTimes(young), 0, 'a young start is not even asked about');
        assert.equal(await exists(taken), true, 'a run a worker took is kept');
        assert.equal(await db.count('dp_journal', 'run_id = $1', [old]), 0);
        expectError(await call('GET', `/v1/runs/${old}`), 404, 'CAIRN-1105');
        await store.deleteRun(young);
        await store.deleteRun(taken);
        await db.ageRun(queued, -OLD_MS);
      });

      it('deletes nothing while the control plane does not answer', async (t) => {
        const old = await orphan('five-steps', OLD_MS);
        const asked = () => cp.requests('describeRun').length;
        cp.intercepts.describeRun = () => ({ code: grpc.status.UNAVAILABLE, details: 'control plane down' });
        await sweeping(t);
        const before = asked();
        await waitFor('three sweeps asked', () => asked() >= before + 3);
        assert.equal(await exists(old), true, 'an orphan is not deleted while the control plane cannot confirm it');
        cp.intercepts.describeRun = () => ({ code: grpc.status.INTERNAL, details: 'database error' });
        const then = asked();
        await waitFor('two more sweeps asked', () => asked() >= then + 2);
        assert.equal(await exists(old), true, 'nor on an error other than NOT_FOUND');
        delete cp.intercepts.describeRun;
        await waitFor('the orphan is deleted once the control plane answers', async () => !(await exists(old)));
      });

      it('refuses an age that a start still in progress could reach', () => {
        assert.throws(
          () => loadGatewayConfig(env({ CAIRN_CP_TIMEOUT_MS: '10000', CAIRN_GATEWAY_ORPHAN_AGE_MS: '60000' })),
          /CAIRN_GATEWAY_ORPHAN_AGE_MS: must be at least 10 times CAIRN_CP_TIMEOUT_MS/,
        );
        assert.throws(
          () => loadGatewayConfig(env({ CAIRN_GATEWAY_ORPHAN_SWEEP_INTERVAL_MS: '0' })),
          /CAIRN_GATEWAY_ORPHAN_SWEEP_INTERVAL_MS/,
        );
      });
    });

    describe('signal sweep', () => {
      const owed = (signalId: string) => db.count('dp_signals', 'signal_id = $1 AND NOT notified', [signalId]);
      const stored = (signalId: string) => db.count('dp_signals', 'signal_id = $1', [signalId]);
      const noticed = (signalId: string) => cp.signals.filter((s) => s.signalId === signalId).length;
      /** A signal the control plane did not hear of, stored `ageMs` ago. */
      const unannounced = async (runId: string, name: string, ageMs: number) => {
        cp.intercepts.signalRun = () => ({ code: grpc.status.UNAVAILABLE, details: 'gone' });
        const sent = await call('POST', `/v1/runs/${runId}/signals/${name}`, { body: { approved: true } });
        delete cp.intercepts.signalRun;
        assert.equal(sent.body.pending, true);
        await db.ageSignal(String(sent.body.signalId), ageMs);
        return String(sent.body.signalId);
      };
      /** Signals older than its control-plane deadline are swept. */
      const sweeping = (t: TestContext) => sweepingGateway(t, { CAIRN_GATEWAY_SIGNAL_SWEEP_INTERVAL_MS: '20' });

      it('tells the control plane of a signal it missed, by ID and digest only, and wakes the run waiting for it', async (t) => {
        const run = await start({ workflow: 'order-refund', input: {} });
        const old = await unannounced(run.runId, 'approval', 60_000);
        const young = await unannounced(run.runId, 'approval', 0);
        cp.update(run.runId, { status: RunStatus.SUSPENDED, waitingSignal: 'approval' });
        const requests = () => cp.requests<SignalRunRequest>('signalRun').filter((r) => r.signalId === old);
        await sweeping(t);
        await waitFor('the old signal is told', async () => (await owed(old)) === 0);
        assert.equal(noticed(old), 1);
        const [request] = requests();
        assert.deepEqual(
          [request?.runId, request?.signalName, request?.signalDigest],
          [run.runId, '', signalNameDigest(config.hasher, run.runId, 'approval')],
          'only the run, the signal ID and the digest of its name cross',
        );
        assert.equal(await stored(old), 1, 'the signal stays for the run to consume');
        assert.deepEqual(
          [await owed(young), noticed(young)],
          [1, 0],
          'a signal younger than the control-plane deadline is left to its request',
        );
        await store.deleteSignalIfUnconsumed(young);
      });

      it('goes on once the control plane answers again, and removes the signals of runs that ended', async (t) => {
        const waiting = await start({ workflow: 'order-refund', input: {} });
        const ended = await start({ workflow: 'order-refund', input: {} });
        const consumed = await start({ workflow: 'order-refund', input: {} });
        const forWaiting = await unannounced(waiting.runId, 'approval', 60_000);
        const forEnded = await unannounced(ended.runId, 'approval', 60_000);
        const forConsumed = await unannounced(consumed.runId, 'approval', 60_000);
        await store.acquire(consumed.runId, 1);
        assert.ok(await store.takeSignal(consumed.runId, 1, 0, 'approval', Date.now()));
        await complete(ended.runId, null);
        await complete(consumed.runId, null);

        const asked = () => cp.requests('signalRun').length;
        cp.intercepts.signalRun = () => ({ code: grpc.status.UNAVAILABLE, details: 'control plane down' });
        await sweeping(t);
        const before = asked();
        await waitFor('three sweeps asked', () => asked() >= before + 3);
        assert.deepEqual(
          [await owed(forWaiting), await owed(forEnded), await owed(forConsumed)],
          [1, 1, 1],
          'nothing is settled on a guess',
        );
        delete cp.intercepts.signalRun;

        await waitFor(
          'every signal is settled',
          async () => (await owed(forWaiting)) + (await owed(forEnded)) + (await owed(forConsumed)) === 0,
        );
        assert.equal(noticed(forWaiting), 1);
        assert.equal(await stored(forWaiting), 1);
        assert.equal(await stored(forEnded), 0, 'a run that ended will never consume it');
        assert.equal(await stored(forConsumed), 1, "a consumed signal is part of its run's journal");
      });
    });

    describe('stream resume', () => {
      let served: Gateway;
      let base: string;
      before(async () => {
        served = gatewayWith({});
        await served.listen({ host: '127.0.0.1', port: 0 });
        const address = served.server.address();
        base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      });

      type Event = { id: number | undefined; event: string; data: { text?: string; runId?: string; status?: string } };
      /** Reads SSE events until `until` says stop (or the stream ends), then hangs up. */
      const readEvents = async (
        runId: string,
        init: { headers?: Record<string, string>; query?: string },
        until: (events: Event[]) => boolean,
      ) => {
        const controller = new AbortController();
        const res = await fetch(`${base}/v1/runs/${runId}/stream${init.query ?? ''}`, {
          headers: { authorization: `Bearer ${TOKEN}`, ...(init.headers ?? {}) },
          signal: controller.signal,
        });
        openapi.check('GET', `/v1/runs/${runId}/stream`, res.status, res.headers.get('content-type') ?? undefined, undefined);
        assert.equal(res.status, 200);
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        const events: Event[] = [];
        let text = '';
        let opened = false;
        try {
          while (!until(events)) {
            const { value, done } = await reader.read();
            if (done) break;
            text += value;
            let end: number;
            while ((end = text.indexOf('\n\n')) >= 0) {
              const block = text.slice(0, end);
              text = text.slice(end + 2);
              if (block.includes(': streaming run')) opened = true;
              const event = /^event: (.*)$/m.exec(block)?.[1];
              const data = /^data: (.*)$/m.exec(block)?.[1];
              const id = /^id: (.*)$/m.exec(block)?.[1];
              if (event && data) events.push({ id: id === undefined ? undefined : Number(id), event, data: JSON.parse(data) });
              // What arrived after this is dropped unread, as when the connection breaks here.
              if (until(events)) return events;
            }
            if (opened && events.length === 0 && until(events)) break;
          }
        } finally {
          controller.abort();
        }
        return events;
      };
      const delta = (text: string) => ({ type: 'delta' as const, position: 1, name: 'story', attempt: 1, text });

      it('gives every event an id; a reconnect with Last-Event-ID gets the rest exactly once, then the live ones', async () => {
        const run = await start({ workflow: 'five-steps', input: {} });
        const words = Array.from({ length: 12 }, (_, i) => `w${i} `);
        for (const w of words.slice(0, 6)) await store.publishStream(run.runId, [delta(w)]);
        // The first subscriber reads three events and drops the connection.
        const first = await readEvents(run.runId, {}, (e) => e.length >= 3);
        assert.deepEqual(
          first.map((e) => [e.id, e.event, e.data.text]),
          [
            [1, 'delta', 'w0 '],
            [2, 'delta', 'w1 '],
            [3, 'delta', 'w2 '],
          ],
        );
        // More is published while nobody listens.
        for (const w of words.slice(6, 9)) await store.publishStream(run.runId, [delta(w)]);
        // It comes back after event 3: the stored events 4-9, then live ones as they are published.
        const lastSeen = String(first.at(-1)!.id);
        const resumed = readEvents(run.runId, { headers: { 'last-event-id': lastSeen } }, (e) => e.some((x) => x.event === 'end'));
        await new Promise((r) => setTimeout(r, 200));
        for (const w of words.slice(9)) await store.publishStream(run.runId, [delta(w)]);
        await store.publishStream(run.runId, [{ type: 'model-done', position: 1, name: 'story', attempt: 1 }]);
        await new Promise((r) => setTimeout(r, 200));
        cp.update(run.runId, { status: RunStatus.COMPLETED, endedAt: BigInt(Date.now()) });
        const rest = await resumed;
        assert.deepEqual(
          rest.map((e) => e.id),
          [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, undefined],
          'ids follow on, and the end event has none',
        );
        const text = [...first, ...rest].map((e) => (e.event === 'delta' ? e.data.text : '')).join('');
        assert.equal(text, words.join(''), 'every word once, in order');
        assert.deepEqual(rest.at(-1), { id: undefined, event: 'end', data: { runId: run.runId, status: 'completed' } });

        // Without Last-Event-ID a subscriber gets everything stored from the start; ?lastEventId= works where headers cannot be set.
        const all = await readEvents(run.runId, {}, (e) => e.some((x) => x.event === 'end'));
        assert.deepEqual(
          all.map((e) => e.id),
          [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, undefined],
        );
        const tail = await readEvents(run.runId, { query: '?lastEventId=11' }, (e) => e.some((x) => x.event === 'end'));
        assert.deepEqual(
          tail.map((e) => [e.id, e.event]),
          [
            [12, 'delta'],
            [13, 'model-done'],
            [undefined, 'end'],
          ],
        );
        // The header wins over the query (EventSource keeps the URL it began with and sends the header).
        const both = await readEvents(run.runId, { query: '?lastEventId=2', headers: { 'last-event-id': '12' } }, (e) =>
          e.some((x) => x.event === 'end'),
        );
        assert.deepEqual(
          both.map((e) => e.id),
          [13, undefined],
        );
      });

      it('loses nothing when its LISTEN connection to the payload store drops: it reads what it missed', async () => {
        const run = await start({ workflow: 'five-steps', input: {} });
        const reading = readEvents(run.runId, {}, (e) => e.some((x) => x.event === 'end'));
        await new Promise((r) => setTimeout(r, 200));
        await store.publishStream(run.runId, [delta('before ')]);
        await new Promise((r) => setTimeout(r, 100));
        // The database drops the gateways' stream listeners (a failover, a restart, an idle-timeout proxy).
        // The gateway's store here is the test's own, under the default application name.
        const reconnects = store.listenerState.reconnects;
        assert.ok((await db.terminate('cairn-data-plane-listener')) >= 1, 'a stream listener was connected');
        await store.publishStream(run.runId, [delta('during ')]);
        await store.publishStream(run.runId, [delta('outage ')]);
        await new Promise((r) => setTimeout(r, 1_500));
        await store.publishStream(run.runId, [delta('after')]);
        await new Promise((r) => setTimeout(r, 200));
        cp.update(run.runId, { status: RunStatus.COMPLETED, endedAt: BigInt(Date.now()) });
        const events = await reading;
        assert.deepEqual(
          events.map((e) => e.id),
          [1, 2, 3, 4, undefined],
        );
        assert.equal(events.map((e) => e.data.text ?? '').join(''), 'before during outage after');
        assert.equal(store.listenerState.reconnects, reconnects + 1, 'the LISTEN connection came back once');
      });

      it('refuses a Last-Event-ID that is not an event id', async () => {
        const run = await start({ workflow: 'five-steps', input: {} });
        expectError(
          await call('GET', `/v1/runs/${run.runId}/stream`, { headers: { 'last-event-id': 'abc' } }, served),
          400,
          'CAIRN-1101',
          /Last-Event-ID header must be the id of a stream event/,
        );
        expectError(await call('GET', `/v1/runs/${run.runId}/stream?lastEventId=-1`, {}, served), 400, 'CAIRN-1101', /lastEventId/);
      });
    });

    it('exercised every route of the table with a documented answer (checked against the OpenAPI document)', () => {
      for (const spec of Object.values(API)) {
        const template = spec.path.replace(/:(\w+)/g, '{$1}');
        const success = Object.keys(spec.responses).map((s) => `${spec.method} ${template} ${s}`);
        assert.ok(
          success.some((key) => openapi.seen.has(key)),
          `no successful answer of ${spec.method} ${spec.path} was checked against the document`,
        );
      }
    });

    it('does not leak the probe of a lost StartRun answer when the run does not exist', async () => {
      cp.intercepts.startRun = () => ({ code: grpc.status.UNAVAILABLE, details: 'dropped before commit' });
      const runs = await db.count('dp_runs');
      const res = await call('POST', '/v1/runs', { body: { workflow: 'order-refund', input: { a: 1 } } });
      expectError(res, 503, 'CAIRN-1110');
      // The probe finding no run does not prove none will exist (the request may still be in
      // progress on the control plane): the input stays for the orphan sweep.
      assert.equal(await db.count('dp_runs'), runs + 1);
      const probe = cp.requests<{ runId: string }>('describeRun').at(-1);
      assert.equal(probe?.runId, cp.requests<StartRunRequest>('startRun').at(-1)?.runId);
    });
  });
}
