// The workflow registry against a real control-plane process: register (idempotent, immutable),
// list and show, deprecation refusing new runs, the registry's task queue on started runs, and
// workers announcing versions that are not registered (refused; registered in development mode).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { RejectionReason, type RunInfo } from '@cairn/proto';
import { startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, rejectsWith, type ServiceClient } from './testing/grpc.js';

interface VersionJson {
  name: string;
  version: string;
  taskQueue: string;
  inputSchema: unknown;
  outputSchema: unknown;
  retryPolicy: unknown;
  timeouts: { runTimeoutMs: number | null; stepTimeoutMs: number | null };
  schedules: Array<{ cron: string; timezone: string }>;
  source: string;
  deprecated: boolean;
  deprecatedAt: string | null;
  registeredBy: string | null;
}
interface ErrorBody {
  error: { code: string; message: string };
}

const orderSchema = {
  type: 'object',
  properties: { orderId: { type: 'string' }, amount: { type: 'number' } },
  required: ['orderId'],
};

const refund = {
  name: 'refund',
  version: '1.0.0',
  taskQueue: 'payments',
  inputSchema: orderSchema,
  outputSchema: { type: 'object', properties: { refunded: { type: 'boolean' } } },
  retryPolicy: { maxAttempts: 5, initialIntervalMs: 500, maxIntervalMs: 30_000, backoffCoefficient: 2 },
  timeouts: { runTimeoutMs: 3_600_000, stepTimeoutMs: 60_000 },
  schedules: [{ cron: '0 9 * * 1-5', timezone: 'Europe/Paris' }],
};

for (const kind of testPostgresKinds()) {
  describe(`workflow registry on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;
    let gateway: ServiceClient;
    let dataPlaneId: string;
    let credential: string;
    const streams: WorkerStream[] = [];
    const clients: ServiceClient[] = [];

    const connect = (fixture: ControlPlaneFixture, token: string): WorkerStream => {
      const client = new WorkerClient(fixture.grpcAddress, grpc.credentials.createInsecure());
      clients.push(client);
      const stream = new WorkerStream(client, token);
      streams.push(stream);
      return stream;
    };
    const register = (body: Record<string, unknown>, key?: string) =>
      cp.api<{ workflow: VersionJson; created: boolean } & ErrorBody>('POST', '/v1/projects/default/workflows', {
        body,
        ...(key === undefined ? {} : { key }),
      });
    const startRun = async (workflowName: string, workflowVersion = ''): Promise<RunInfo> => {
      const answer = await gatewayCall<{ run: RunInfo }>(
        gateway,
        'startRun',
        { runId: randomUUID(), workflowName, workflowVersion, inputSize: 2n },
        credential,
      );
      return answer.run;
    };

    before(async () => {
      server = await testPostgres(kind);
      // Production behaviour: workers may only announce registered versions.
      cp = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'false' } });
      ({ id: dataPlaneId, credential } = await cp.dataPlane('default', 'registry-dp'));
      gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
    });

    after(async () => {
      for (const s of streams) s.close();
      for (const c of [...clients, gateway]) c?.close();
      await cp?.close();
      await server?.stop();
    });

    test('register, register again (idempotent), list, show a name and a version', async () => {
      const first = await register(refund);
      assert.equal(first.status, 201, JSON.stringify(first.body));
      assert.equal(first.body.created, true);
      assert.deepEqual(
        {
          taskQueue: first.body.workflow.taskQueue,
          inputSchema: first.body.workflow.inputSchema,
          retryPolicy: first.body.workflow.retryPolicy,
          timeouts: first.body.workflow.timeouts,
          schedules: first.body.workflow.schedules,
          source: first.body.workflow.source,
          deprecated: first.body.workflow.deprecated,
        },
        {
          taskQueue: 'payments',
          inputSchema: orderSchema,
          retryPolicy: refund.retryPolicy,
          timeouts: refund.timeouts,
          schedules: refund.schedules,
          source: 'api',
          deprecated: false,
        },
      );
      assert.ok(first.body.workflow.registeredBy, 'the registering key is recorded');

      // The same content again, with keys in another order: the stored version, 200.
      const again = await register({
        ...refund,
        inputSchema: { required: orderSchema.required, properties: orderSchema.properties, type: 'object' },
      });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.created, false);

      // Defaults: a registration with only the task queue.
      const v2 = await register({ name: 'refund', version: '2.0.0', taskQueue: 'payments' });
      assert.equal(v2.status, 201, JSON.stringify(v2.body));
      assert.deepEqual(v2.body.workflow.schedules, []);
      assert.equal(v2.body.workflow.retryPolicy, null);
      assert.equal((await register({ name: 'invoice', version: '1', taskQueue: 'billing' })).status, 201);

      const viewer = await cp.key('viewer');
      const list = await cp.api<{ workflows: Array<{ name: string; versions: Array<{ version: string; deprecated: boolean }> }> }>(
        'GET',
        '/v1/projects/default/workflows',
        { key: viewer },
      );
      assert.equal(list.status, 200, JSON.stringify(list.body));
      const names = list.body.workflows.map((w) => w.name);
      assert.ok(names.includes('refund') && names.includes('invoice'), names.join());
      const refundVersions = list.body.workflows.find((w) => w.name === 'refund')!.versions.map((v) => v.version);
      assert.deepEqual(refundVersions, ['2.0.0', '1.0.0'], 'newest first');

      const filtered = await cp.api<{ workflows: Array<{ name: string }> }>('GET', '/v1/projects/default/workflows?name=invoice');
      assert.deepEqual(
        filtered.body.workflows.map((w) => w.name),
        ['invoice'],
      );

      const shown = await cp.api<{ workflow: { name: string; versions: VersionJson[]; flowControl: { concurrency: unknown } } }>(
        'GET',
        '/v1/projects/default/workflows/refund',
        { key: viewer },
      );
      assert.equal(shown.status, 200);
      assert.deepEqual(
        shown.body.workflow.versions.map((v) => [v.version, v.taskQueue]),
        [
          ['2.0.0', 'payments'],
          ['1.0.0', 'payments'],
        ],
      );
      assert.equal(shown.body.workflow.flowControl.concurrency, null);

      const one = await cp.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/refund/versions/1.0.0', { key: viewer });
      assert.equal(one.status, 200);
      assert.deepEqual(one.body.workflow.outputSchema, refund.outputSchema);

      const missing = await cp.api<ErrorBody>('GET', '/v1/projects/default/workflows/refund/versions/9.9.9');
      assert.equal(missing.status, 404);
      assert.match(missing.body.error.message, /refund@9\.9\.9 is not registered/);
      assert.equal((await cp.api('GET', '/v1/projects/default/workflows/nothing-here')).status, 404);

      // A viewer reads but does not register; a developer registers.
      assert.equal((await register({ name: 'viewer-try', version: '1', taskQueue: 'q' }, viewer)).status, 403);
      assert.equal((await register({ name: 'dev-try', version: '1', taskQueue: 'q' }, await cp.key('developer'))).status, 201);
    });

    test('a registered version is immutable: different content is 409 naming the differing fields', async () => {
      await register({ name: 'ship', version: '1', taskQueue: 'logistics', retryPolicy: { maxAttempts: 3 } });
      const changed = await register({ name: 'ship', version: '1', taskQueue: 'other-queue', retryPolicy: { maxAttempts: 4 } });
      assert.equal(changed.status, 409, JSON.stringify(changed.body));
      assert.equal(changed.body.error.code, 'CAIRN-1108');
      assert.match(changed.body.error.message, /ship@1 is already registered with a different taskQueue, retryPolicy/);
      assert.match(changed.body.error.message, /register the change as a new version/);
      const schedule = await register({
        name: 'ship',
        version: '1',
        taskQueue: 'logistics',
        retryPolicy: { maxAttempts: 3 },
        schedules: [{ cron: '*/5 * * * *' }],
      });
      assert.equal(schedule.status, 409);
      assert.match(schedule.body.error.message, /different schedules:/);
      const stored = await cp.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/ship/versions/1');
      assert.equal(stored.body.workflow.taskQueue, 'logistics', 'the stored version is unchanged');
    });

    test('registrations are validated: object schemas of bounded size, cron and time zone, retry policy', async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ inputSchema: { type: 'string' } }, /inputSchema: expected a JSON Schema of an object/],
        [{ inputSchema: [1, 2] }, /inputSchema/],
        [{ outputSchema: { type: 'object', description: 'x'.repeat(70_000) } }, /at most 65536 bytes/],
        [{ schedules: [{ cron: 'every day' }] }, /schedules\.0\.cron: expected a cron expression/],
        [{ schedules: [{ cron: '0 9 * * *', timezone: 'Mars/Olympus' }] }, /expected an IANA time zone/],
        [{ retryPolicy: { maxAttempts: 0 } }, /retryPolicy\.maxAttempts/],
        [
          { retryPolicy: { maxAttempts: 2, initialIntervalMs: 5000, maxIntervalMs: 10 } },
          /maxIntervalMs must be at least initialIntervalMs/,
        ],
        [{ version: 'has space' }, /version: expected a version/],
        [{ unknownField: 1 }, /unknownField/],
      ];
      for (const [extra, message] of cases) {
        const res = await register({ name: 'validated', version: '1', taskQueue: 'q', ...extra });
        assert.equal(res.status, 400, JSON.stringify(extra));
        assert.match(res.body.error.message, message);
      }
    });

    test("a run's task queue comes from the registry; deprecated versions start no new runs, runs already started go on", async () => {
      await register({ name: 'greet', version: 'v1', taskQueue: 'greetings' });
      await register({ name: 'greet', version: 'v2', taskQueue: 'greetings' });
      const worker = connect(cp, credential);
      await worker.hello({ dataPlaneId, slots: 5, workflows: [{ name: 'greet', version: 'v1', taskQueue: 'greetings' }] });

      const started = await startRun('greet', 'v1');
      assert.equal(started.taskQueue, 'greetings');
      const task = await worker.next('runTask', (t) => t.runId === started.runId);

      const deprecated = await cp.api<{ workflow: VersionJson }>('POST', '/v1/projects/default/workflows/greet/versions/v1/deprecate');
      assert.equal(deprecated.status, 200, JSON.stringify(deprecated.body));
      assert.equal(deprecated.body.workflow.deprecated, true);
      assert.ok(deprecated.body.workflow.deprecatedAt);
      // Deprecating twice is fine and keeps the first time.
      const twice = await cp.api<{ workflow: VersionJson }>('POST', '/v1/projects/default/workflows/greet/versions/v1/deprecate');
      assert.equal(twice.body.workflow.deprecatedAt, deprecated.body.workflow.deprecatedAt);
      assert.equal(
        (await cp.api('POST', '/v1/projects/default/workflows/greet/versions/v1/deprecate', { key: await cp.key('operator') })).status,
        403,
      );

      await rejectsWith(
        startRun('greet', 'v1'),
        grpc.status.FAILED_PRECONDITION,
        /greet@v1 is deprecated: it starts no new runs.*newer version/,
      );
      // Without a version: the newest version that is not deprecated (v2, registered, announced by no worker yet).
      const newest = await startRun('greet');
      assert.equal(newest.workflowVersion, 'v2');

      // The run that started on v1 goes on and completes.
      const seq = worker.send({
        case: 'completed',
        value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: task.runId, epoch: task.epoch, outputSize: 2n },
      });
      await worker.next('ack', (a) => a.sequence === seq);
      const done = await cp.api<{ run: { status: string } }>('GET', `/v1/projects/default/runs/${started.runId}`);
      assert.equal(done.body.run.status, 'completed');

      // Deprecated listing: hidden unless asked for.
      const visible = await cp.api<{ workflows: Array<{ name: string; versions: Array<{ version: string; deprecated: boolean }> }> }>(
        'GET',
        '/v1/projects/default/workflows?name=greet',
      );
      assert.deepEqual(
        visible.body.workflows[0]!.versions.map((v) => v.version),
        ['v2'],
      );
      const all = await cp.api<{ workflows: Array<{ versions: Array<{ version: string; deprecated: boolean }> }> }>(
        'GET',
        '/v1/projects/default/workflows?name=greet&includeDeprecated=true',
      );
      assert.deepEqual(
        all.body.workflows[0]!.versions.map((v) => [v.version, v.deprecated]),
        [
          ['v2', false],
          ['v1', true],
        ],
      );
    });

    test('a child run of a deprecated version is refused with WORKFLOW_DEPRECATED', async () => {
      await register({ name: 'parent', version: '1', taskQueue: 'kids' });
      await register({ name: 'child', version: '1', taskQueue: 'kids' });
      const worker = connect(cp, credential);
      await worker.hello({
        dataPlaneId,
        slots: 2,
        workflows: [
          { name: 'parent', version: '1', taskQueue: 'kids' },
          { name: 'child', version: '1', taskQueue: 'kids' },
        ],
      });
      const parent = await startRun('parent', '1');
      const task = await worker.next('runTask', (t) => t.runId === parent.runId);
      await cp.api('POST', '/v1/projects/default/workflows/child/versions/1/deprecate');
      const seq = worker.send({
        case: 'startChild',
        value: {
          $typeName: 'cairn.worker.v1.StartChild',
          parentRunId: task.runId,
          parentEpoch: task.epoch,
          position: 0,
          childRunId: randomUUID(),
          workflowName: 'child',
          workflowVersion: '1',
          inputSize: 1n,
        },
      });
      const rejection = await worker.next('rejection', (r) => r.sequence === seq);
      assert.equal(rejection.reason, RejectionReason.WORKFLOW_DEPRECATED);
      assert.equal(rejection.workflowName, 'child');
      assert.equal(rejection.workflowVersion, '1');
    });

    test('a worker announcing an unregistered version is refused at Hello, naming it and how to register it', async () => {
      await register({ name: 'known', version: '1', taskQueue: 'q' });
      const worker = connect(cp, credential);
      worker.sendHello({
        dataPlaneId,
        slots: 1,
        workflows: [
          { name: 'known', version: '1', taskQueue: 'q' },
          { name: 'unknown-flow', version: '3.1', taskQueue: 'q' },
        ],
      });
      const rejection = await worker.next('rejection');
      assert.equal(rejection.reason, RejectionReason.WORKFLOW_NOT_REGISTERED);
      assert.equal(rejection.workflowName, 'unknown-flow');
      assert.equal(rejection.workflowVersion, '3.1');
      const end = await worker.ended();
      assert.equal(end.code, grpc.status.FAILED_PRECONDITION);
      assert.match(end.details, /workflow unknown-flow@3\.1 is not registered in this data plane's project/);
      assert.match(end.details, /cairn workflows register, or POST \/v1\/projects\/\{project\}\/workflows/);
      // Nothing was registered by the attempt.
      assert.equal((await cp.api('GET', '/v1/projects/default/workflows/unknown-flow')).status, 404);

      // A registered version announced on another task queue is refused too: its runs would never reach it.
      const elsewhere = connect(cp, credential);
      elsewhere.sendHello({ dataPlaneId, slots: 1, workflows: [{ name: 'known', version: '1', taskQueue: 'other' }] });
      const end2 = await elsewhere.ended();
      assert.equal(end2.code, grpc.status.FAILED_PRECONDITION);
      assert.match(end2.details, /known@1 is registered on task queue q, but this worker announces it on task queue other/);
    });

    test('in development mode announced versions are registered (task queue only)', async () => {
      const dev = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true', CAIRN_SHUTDOWN_TIMEOUT_MS: '1000' } });
      try {
        const plane = await dev.dataPlane('default', 'dev-dp');
        const worker = connect(dev, plane.credential);
        await worker.hello({ dataPlaneId: plane.id, slots: 1, workflows: [{ name: 'scratch', version: 'dev', taskQueue: 'local' }] });
        const shown = await dev.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/scratch/versions/dev');
        assert.equal(shown.status, 200, JSON.stringify(shown.body));
        assert.equal(shown.body.workflow.source, 'worker');
        assert.equal(shown.body.workflow.taskQueue, 'local');
        assert.equal(shown.body.workflow.inputSchema, null);
        worker.close();
      } finally {
        await dev.close();
      }
    });
  });
}
