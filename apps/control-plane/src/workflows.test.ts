// The workflow registry against a real control-plane process: register (idempotent, immutable,
// schema digests only, the SDK's retry-policy shape), list and show, deprecation refusing new runs,
// the registry's task queue on started runs, workers announcing versions that are not registered
// (refused; registered with their settings from code in development mode), ResolveVersion, and
// migration 12 dropping registered schema text.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { schemaDigest } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { RejectionReason, type MessageInitShape, type RunInfo, type WorkflowSettingsSchema } from '@cairn/proto';
import { migrations } from './db/migrations.js';
import { startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, rejectsWith, type ServiceClient } from './testing/grpc.js';

interface VersionJson {
  name: string;
  version: string;
  taskQueue: string;
  inputSchemaDigest: string | null;
  outputSchemaDigest: string | null;
  retry: unknown;
  timeouts: { run: number | null; step: number | null };
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

const outputSchema = { type: 'object', properties: { refunded: { type: 'boolean' } } };

const refund = {
  name: 'refund',
  version: '1.0.0',
  taskQueue: 'payments',
  inputSchemaDigest: schemaDigest(orderSchema),
  outputSchemaDigest: schemaDigest(outputSchema),
  retry: { maximumAttempts: 5, initialInterval: '500ms', maximumInterval: '30s', backoffCoefficient: 2 },
  timeouts: { run: '1h', step: 60_000 },
  schedules: [{ cron: '0 9 * * 1-5', timezone: 'Europe/Paris' }],
};
/** How the registry answers `refund`: durations in milliseconds. */
const refundRetry = { maximumAttempts: 5, initialInterval: 500, backoffCoefficient: 2, maximumInterval: 30_000 };

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
          inputSchemaDigest: first.body.workflow.inputSchemaDigest,
          retry: first.body.workflow.retry,
          timeouts: first.body.workflow.timeouts,
          schedules: first.body.workflow.schedules,
          source: first.body.workflow.source,
          deprecated: first.body.workflow.deprecated,
        },
        {
          taskQueue: 'payments',
          inputSchemaDigest: schemaDigest(orderSchema),
          retry: refundRetry,
          timeouts: { run: 3_600_000, step: 60_000 },
          schedules: refund.schedules,
          source: 'api',
          deprecated: false,
        },
      );
      assert.ok(first.body.workflow.registeredBy, 'the registering key is recorded');

      // The same content again, durations written in milliseconds this time: the stored version, 200.
      const again = await register({ ...refund, retry: refundRetry, timeouts: { run: 3_600_000, step: '1m' } });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.created, false);

      // Defaults: a registration with only the task queue.
      const v2 = await register({ name: 'refund', version: '2.0.0', taskQueue: 'payments' });
      assert.equal(v2.status, 201, JSON.stringify(v2.body));
      assert.deepEqual(v2.body.workflow.schedules, []);
      assert.equal(v2.body.workflow.retry, null);
      assert.equal(v2.body.workflow.inputSchemaDigest, null);
      assert.deepEqual(v2.body.workflow.timeouts, { run: null, step: null });
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
      assert.equal(one.body.workflow.outputSchemaDigest, schemaDigest(outputSchema));

      const missing = await cp.api<ErrorBody>('GET', '/v1/projects/default/workflows/refund/versions/9.9.9');
      assert.equal(missing.status, 404);
      assert.match(missing.body.error.message, /refund@9\.9\.9 is not registered/);
      assert.equal((await cp.api('GET', '/v1/projects/default/workflows/nothing-here')).status, 404);

      // A viewer reads but does not register; a developer registers.
      assert.equal((await register({ name: 'viewer-try', version: '1', taskQueue: 'q' }, viewer)).status, 403);
      assert.equal((await register({ name: 'dev-try', version: '1', taskQueue: 'q' }, await cp.key('developer'))).status, 201);
    });

    test('a registered version is immutable: different content is 409 naming the differing fields', async () => {
      await register({ name: 'ship', version: '1', taskQueue: 'logistics', retry: { maximumAttempts: 3 } });
      const changed = await register({ name: 'ship', version: '1', taskQueue: 'other-queue', retry: { maximumAttempts: 4 } });
      assert.equal(changed.status, 409, JSON.stringify(changed.body));
      assert.equal(changed.body.error.code, 'CAIRN-1108');
      assert.match(changed.body.error.message, /ship@1 is already registered with a different taskQueue, retry/);
      const digest = await register({
        name: 'ship',
        version: '1',
        taskQueue: 'logistics',
        retry: { maximumAttempts: 3 },
        inputSchemaDigest: schemaDigest(orderSchema),
      });
      assert.equal(digest.status, 409);
      assert.match(digest.body.error.message, /different inputSchemaDigest/);
      assert.match(changed.body.error.message, /register the change as a new version/);
      const schedule = await register({
        name: 'ship',
        version: '1',
        taskQueue: 'logistics',
        retry: { maximumAttempts: 3 },
        schedules: [{ cron: '*/5 * * * *' }],
      });
      assert.equal(schedule.status, 409);
      assert.match(schedule.body.error.message, /different schedules:/);
      const stored = await cp.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/ship/versions/1');
      assert.equal(stored.body.workflow.taskQueue, 'logistics', 'the stored version is unchanged');
    });

    test("registrations are validated: digests, cron and time zone, retry policy and timeouts in the SDK's shape", async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ inputSchemaDigest: 'abc' }, /inputSchemaDigest: expected a SHA-256 digest: 64 lowercase hexadecimal characters/],
        [{ schedules: [{ cron: 'every day' }] }, /schedules\.0\.cron: expected a cron expression/],
        [{ schedules: [{ cron: '99 99 * * *' }] }, /schedules\.0\.cron: expected a cron expression/],
        [{ schedules: [{ cron: '0 9 * * *', timezone: 'Mars/Olympus' }] }, /expected an IANA time zone/],
        [{ retry: { maximumAttempts: -1 } }, /retry\.maximumAttempts: maximumAttempts -1 is not a whole number from 1 to 1000/],
        [{ retry: { initialInterval: 'soon' } }, /retry\.initialInterval: initialInterval "soon" is not a wait/],
        [
          { retry: { initialInterval: '5s', maximumInterval: 10 } },
          /retry\.maximumInterval: maximumInterval \(10 ms\) is shorter than initialInterval \(5000 ms\)/,
        ],
        [{ timeouts: { run: '10ms' } }, /timeouts\.run: expected a duration from 1000 ms/],
        [{ version: 'has space' }, /version: expected a version/],
        [{ unknownField: 1 }, /unknown field "unknownField" \(the fields are name, version, taskQueue, inputSchemaDigest/],
      ];
      for (const [extra, message] of cases) {
        const res = await register({ name: 'validated', version: '1', taskQueue: 'q', ...extra });
        assert.equal(res.status, 400, JSON.stringify(extra));
        assert.match(res.body.error.message, message);
      }
    });

    test('schema text and the former field names are refused with a 400 that names what to send instead', async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [
          { inputSchema: orderSchema },
          /inputSchema: schemas stay in the data plane .* send its digest instead, the SHA-256 of the schema's RFC 8785 canonical JSON, as inputSchemaDigest \(cairn workflows register computes it/,
        ],
        [{ outputSchema: outputSchema }, /as outputSchemaDigest/],
        [{ retryPolicy: { maxAttempts: 3 } }, /retryPolicy is now retry, in the SDK's shape: \{ maximumAttempts, initialInterval/],
        [{ retry: { maxAttempts: 3 } }, /body field retry: maxAttempts is now maximumAttempts/],
        [
          { retry: { initialIntervalMs: 100, maxIntervalMs: 1000 } },
          /initialIntervalMs is now initialInterval.*; maxIntervalMs is now maximumInterval/,
        ],
        [
          { retry: { nonRetryableErrorTypes: ['ValidationError'] } },
          /nonRetryableErrorTypes is set in code only: error names stay in the data plane/,
        ],
        [{ timeouts: { runTimeoutMs: 5000 } }, /body field timeouts: runTimeoutMs is now run/],
        [{ timeouts: { stepTimeoutMs: 5000 } }, /stepTimeoutMs is now step/],
      ];
      for (const [extra, message] of cases) {
        const res = await register({ name: 'legacy', version: '1', taskQueue: 'q', ...extra });
        assert.equal(res.status, 400, JSON.stringify(extra));
        assert.equal(res.body.error.code, 'CAIRN-1101');
        assert.match(res.body.error.message, message);
      }
      // Nothing was registered by any of them.
      assert.equal((await cp.api('GET', '/v1/projects/default/workflows/legacy')).status, 404);
    });

    test('a registered retry policy shows every default, the same defaults as the SDK', async () => {
      const res = await register({ name: 'defaults', version: '1', taskQueue: 'q', retry: { initialInterval: '2s' } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.deepEqual(res.body.workflow.retry, {
        maximumAttempts: 3,
        initialInterval: 2000,
        backoffCoefficient: 2,
        maximumInterval: 200_000,
      });
      const unlimited = await register({ name: 'defaults', version: '2', taskQueue: 'q', retry: { maximumAttempts: 0 } });
      assert.deepEqual(unlimited.body.workflow.retry, {
        maximumAttempts: 0,
        initialInterval: 1000,
        backoffCoefficient: 2,
        maximumInterval: 100_000,
      });
    });

    test('ResolveVersion answers the version a start without a version would pin, and starts nothing', async () => {
      await register({ name: 'resolved', version: '1', taskQueue: 'q' });
      await register({ name: 'resolved', version: '2', taskQueue: 'q' });
      const answer = await gatewayCall<{ workflowVersion: string }>(gateway, 'resolveVersion', { workflowName: 'resolved' }, credential);
      assert.equal(answer.workflowVersion, '2');
      await cp.api('POST', '/v1/projects/default/workflows/resolved/versions/2/deprecate');
      const after = await gatewayCall<{ workflowVersion: string }>(gateway, 'resolveVersion', { workflowName: 'resolved' }, credential);
      assert.equal(after.workflowVersion, '1');
      await rejectsWith(
        gatewayCall(gateway, 'resolveVersion', { workflowName: 'never-registered' }, credential),
        grpc.status.NOT_FOUND,
        /never-registered is not registered/,
      );
      const runs = await cp.api<{ runs: unknown[] }>('GET', '/v1/projects/default/runs?workflow=resolved');
      assert.equal(runs.body.runs.length, 0);
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

    test('in development mode announced versions are registered with their settings from code, and a worker-registered version follows its code', async () => {
      const dev = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true', CAIRN_SHUTDOWN_TIMEOUT_MS: '1000' } });
      try {
        const plane = await dev.dataPlane('default', 'dev-dp');
        const settings = (retryAttempts: number): MessageInitShape<typeof WorkflowSettingsSchema> => ({
          retry: { maximumAttempts: retryAttempts, initialIntervalMs: 250n, backoffCoefficient: 2, maximumIntervalMs: 25_000n },
          runTimeoutMs: 3_600_000n,
          stepTimeoutMs: 30_000n,
          inputSchemaDigest: schemaDigest(orderSchema),
          schedules: [{ cron: '0 9 * * MON-FRI', timezone: 'Europe/Paris' }],
          flowControl: { concurrency: { limit: 2, perKey: true } },
        });
        const worker = connect(dev, plane.credential);
        await worker.hello({
          dataPlaneId: plane.id,
          slots: 1,
          workflows: [
            { name: 'scratch', version: 'dev', taskQueue: 'local', settings: settings(5) },
            // An older worker announces no settings: task queue only.
            { name: 'bare', version: 'dev', taskQueue: 'local' },
          ],
        });
        const shown = await dev.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/scratch/versions/dev');
        assert.equal(shown.status, 200, JSON.stringify(shown.body));
        assert.deepEqual(
          [
            shown.body.workflow.source,
            shown.body.workflow.taskQueue,
            shown.body.workflow.inputSchemaDigest,
            shown.body.workflow.outputSchemaDigest,
          ],
          ['worker', 'local', schemaDigest(orderSchema), null],
        );
        assert.deepEqual(shown.body.workflow.retry, {
          maximumAttempts: 5,
          initialInterval: 250,
          backoffCoefficient: 2,
          maximumInterval: 25_000,
        });
        assert.deepEqual(shown.body.workflow.timeouts, { run: 3_600_000, step: 30_000 });
        assert.deepEqual(shown.body.workflow.schedules, [{ cron: '0 9 * * MON-FRI', timezone: 'Europe/Paris' }]);
        const flow = await dev.api<{ workflow: { flowControl: { concurrency: unknown } } }>(
          'GET',
          '/v1/projects/default/workflows/scratch',
        );
        assert.deepEqual(flow.body.workflow.flowControl.concurrency, { limit: 2, perKey: true });
        const bare = await dev.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/bare/versions/dev');
        assert.deepEqual([bare.body.workflow.retry, bare.body.workflow.inputSchemaDigest], [null, null]);
        worker.close();

        // The code changed without a new version: in development the worker-registered version follows it.
        const again = connect(dev, plane.credential);
        await again.hello({
          dataPlaneId: plane.id,
          slots: 1,
          workflows: [{ name: 'scratch', version: 'dev', taskQueue: 'local', settings: settings(7) }],
        });
        const followed = await dev.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/scratch/versions/dev');
        assert.equal((followed.body.workflow.retry as { maximumAttempts: number }).maximumAttempts, 7);
        again.close();

        // A version registered through the API never follows a worker.
        await dev.api('POST', '/v1/projects/default/workflows', {
          body: { name: 'pinned', version: '1', taskQueue: 'local', retry: { maximumAttempts: 2 } },
        });
        const third = connect(dev, plane.credential);
        await third.hello({
          dataPlaneId: plane.id,
          slots: 1,
          workflows: [{ name: 'pinned', version: '1', taskQueue: 'local', settings: settings(9) }],
        });
        const pinned = await dev.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/pinned/versions/1');
        assert.deepEqual(
          [pinned.body.workflow.source, (pinned.body.workflow.retry as { maximumAttempts: number }).maximumAttempts],
          ['api', 2],
        );
        third.close();

        // Settings that cannot be registered refuse the Hello, naming the workflow.
        const bad = connect(dev, plane.credential);
        bad.sendHello({
          dataPlaneId: plane.id,
          slots: 1,
          workflows: [
            { name: 'bad-cron', version: 'dev', taskQueue: 'local', settings: { schedules: [{ cron: '99 99 * * *', timezone: 'UTC' }] } },
          ],
        });
        const end = await bad.ended();
        assert.equal(end.code, grpc.status.INVALID_ARGUMENT);
        assert.match(
          end.details,
          /the settings of workflow bad-cron@dev cannot be registered: hello\.workflows\[0\]\.settings\.schedules\[0\]/,
        );
        assert.equal((await dev.api('GET', '/v1/projects/default/workflows/bad-cron')).status, 404);
      } finally {
        await dev.close();
      }
    });

    test('in production, settings announced from code do not change a registration', async () => {
      await register({ name: 'authoritative', version: '1', taskQueue: 'q', retry: { maximumAttempts: 2 } });
      const worker = connect(cp, credential);
      await worker.hello({
        dataPlaneId,
        slots: 1,
        workflows: [
          {
            name: 'authoritative',
            version: '1',
            taskQueue: 'q',
            settings: {
              retry: { maximumAttempts: 8, initialIntervalMs: 1000n, backoffCoefficient: 2, maximumIntervalMs: 100_000n },
              runTimeoutMs: 60_000n,
            },
          },
        ],
      });
      const stored = await cp.api<{ workflow: VersionJson }>('GET', '/v1/projects/default/workflows/authoritative/versions/1');
      assert.deepEqual(
        [(stored.body.workflow.retry as { maximumAttempts: number }).maximumAttempts, stored.body.workflow.timeouts.run],
        [2, null],
      );
      worker.close();
    });
  });
}

describe('control-plane migration 12', () => {
  let server: PostgresServer;
  before(async () => {
    server = await testPostgres(testPostgresKinds()[0]!);
  });
  after(async () => {
    await server?.stop();
  });

  test('drops registered schema text, keeps no trace of it, and converts retry policies to the SDK shape', async () => {
    const client = new pg.Client({ connectionString: await server.createDatabase(uniqueDatabaseName('cp_m12')) });
    await client.connect();
    try {
      for (const m of migrations.filter((m) => m.version < 12)) await client.query(m.sql);
      const marker = `schema-text-${randomUUID()}`;
      const projectId = (
        await client.query<{ id: string }>(
          `WITH o AS (INSERT INTO organizations (id, name) VALUES (gen_random_uuid(), 'acme') RETURNING id)
           INSERT INTO projects (id, organization_id, name) SELECT gen_random_uuid(), o.id, 'default' FROM o RETURNING id`,
        )
      ).rows[0]!.id;
      await client.query(
        `INSERT INTO workflow_definitions (project_id, name, version, task_queue, input_schema, output_schema, retry_policy, source)
         VALUES ($1, 'refund', '1', 'q', $2, $3, $4, 'api')`,
        [
          projectId,
          JSON.stringify({ type: 'object', description: marker }),
          JSON.stringify({ type: 'object', title: marker }),
          JSON.stringify({ maxAttempts: 5, initialIntervalMs: 500, maxIntervalMs: 30_000, backoffCoefficient: 1.5 }),
        ],
      );
      await client.query(migrations.find((m) => m.version === 12)!.sql);
      const columns = await client.query<{ column_name: string }>(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'workflow_definitions' AND column_name LIKE '%schema%' ORDER BY 1",
      );
      assert.deepEqual(
        columns.rows.map((r) => r.column_name),
        ['input_schema_digest', 'output_schema_digest'],
      );
      const row = await client.query<{ doc: string; retry: unknown }>(
        'SELECT row_to_json(d)::text AS doc, retry_policy AS retry FROM workflow_definitions d',
      );
      assert.ok(!row.rows[0]!.doc.includes(marker), 'the schema text is gone');
      assert.deepEqual(row.rows[0]!.retry, { maximumAttempts: 5, initialInterval: 500, backoffCoefficient: 1.5, maximumInterval: 30_000 });
    } finally {
      await client.end();
    }
  });
});
