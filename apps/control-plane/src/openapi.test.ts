// The REST API answers what its OpenAPI document says: every route declared with @Api(...) is
// called on a real control-plane process, and each answer is checked against the document that
// process serves (the fixture checks every answer: documented status, body matching the schema).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, gatewayCall, type ServiceClient } from './testing/grpc.js';
import * as grpc from '@grpc/grpc-js';

interface Operation {
  responses: Record<string, { description: string; content?: Record<string, { schema: Record<string, unknown> }> }>;
}

describe('the control plane answers as its OpenAPI document says', () => {
  let server: PostgresServer;
  let cp: ControlPlaneFixture;
  let gateway: ServiceClient;
  let doc: { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };

  before(async () => {
    server = await testPostgres(testPostgresKinds()[0]!);
    cp = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'false' } });
    gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
    doc = (await (await fetch(`${cp.httpUrl}/openapi.json`)).json()) as typeof doc;
  });
  after(async () => {
    gateway?.close();
    await cp?.close();
    await server?.stop();
  });

  const ok = async (method: string, path: string, status: number, body?: unknown): Promise<Record<string, unknown>> => {
    const res = await cp.api(method, path, body === undefined ? {} : { body });
    assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };

  test('every success answer has a schema, every error the error body', () => {
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          const schema = response.content?.['application/json']?.schema;
          assert.ok(schema, `${method} ${path} ${status} has a schema`);
          if (Number(status) >= 400) assert.deepEqual(schema, { $ref: '#/components/schemas/Error' });
          else assert.notEqual(response.description, '', `${method} ${path} ${status}`);
        }
      }
    }
    assert.ok(doc.components.schemas['Run'] && doc.components.schemas['Step'] && doc.components.schemas['Error']);
  });

  test('every route, called for real, answers with its documented schema', async () => {
    const check = await cp.openapi();
    const p = '/v1/projects/default';
    await ok('GET', '/v1/whoami', 200);
    await ok('GET', '/v1/projects', 200);
    await ok('GET', p, 200);
    await ok('POST', '/v1/projects', 201, { name: 'staging' });

    const key = (await ok('POST', `${p}/api-keys`, 201, { name: 'reader', role: 'viewer' })) as { apiKey: { id: string } };
    await ok('GET', `${p}/api-keys`, 200);
    await ok('DELETE', `${p}/api-keys/${key.apiKey.id}`, 200);

    const dp = (await ok('POST', `${p}/data-planes`, 201, { name: 'eu' })) as { dataPlane: { id: string }; credential: string };
    await ok('GET', `${p}/data-planes`, 200);
    await ok('GET', `${p}/data-planes/${dp.dataPlane.id}`, 200);
    await ok('GET', `${p}/data-planes/${dp.dataPlane.id}/workers`, 200);
    await ok('GET', '/v1/residency', 200);
    // The credential is rotated; the runs below are started with the new one.
    const rotated = (await ok('POST', `${p}/data-planes/${dp.dataPlane.id}/rotate`, 200)) as { credential: string };

    const registration = {
      name: 'documented',
      version: '1',
      taskQueue: 'default',
      inputSchemaDigest: 'a'.repeat(64),
      retry: { maximumAttempts: 3, initialInterval: '500ms' },
      timeouts: { run: '1m' },
      schedules: [{ cron: '0 9 * * 1-5', timezone: 'Europe/Paris' }],
      flowControl: { concurrency: { limit: 5 } },
    };
    await ok('POST', `${p}/workflows`, 201, registration);
    await ok('POST', `${p}/workflows`, 200, registration);
    await ok('POST', `${p}/workflows`, 201, { name: 'documented', version: '2', taskQueue: 'default' });
    await ok('GET', `${p}/workflows`, 200);
    await ok('GET', `${p}/workflows/documented`, 200);
    await ok('GET', `${p}/workflows/documented/versions/1`, 200);
    await ok('PUT', `${p}/workflows/documented/flow-control`, 200, {
      concurrency: null,
      rateLimit: { limit: 10, periodMs: 60_000, perKey: true },
    });

    // Runs are started by a data plane's gateway over gRPC; the REST API reads and operates them.
    const start = async (): Promise<string> => {
      const runId = crypto.randomUUID();
      await gatewayCall(
        gateway,
        'startRun',
        { runId, workflowName: 'documented', workflowVersion: '1', inputSize: 2n },
        rotated.credential,
      );
      return runId;
    };
    const first = await start();
    await ok('GET', `${p}/runs`, 200);
    await ok('GET', `${p}/runs?status=queued,running&workflow=documented&limit=5`, 200);
    const described = (await ok('GET', `${p}/runs/${first}`, 200)) as { run: { status: string } };
    assert.equal(described.run.status, 'queued');
    await ok('POST', `${p}/runs/${first}/cancel`, 200);
    const second = await start();
    await ok('POST', `${p}/runs/${second}/terminate`, 200);
    const third = await start();
    await ok('POST', `${p}/runs/${third}/fork`, 201, { fromStep: 0 });
    await ok('POST', `${p}/workflows/documented/versions/2/deprecate`, 200);

    const schedule = (await ok('POST', `${p}/schedules`, 201, {
      name: 'nightly',
      dataPlaneId: dp.dataPlane.id,
      workflowName: 'documented',
      workflowVersion: '1',
      cron: '0 3 * * *',
      timeZone: 'UTC',
    })) as { schedule: { id: string } };
    await ok('GET', `${p}/schedules`, 200);
    await ok('GET', `${p}/schedules/nightly`, 200);
    await ok('PATCH', `${p}/schedules/nightly`, 200, { cron: '0 4 * * *' });
    await ok('POST', `${p}/schedules/nightly/pause`, 200);
    await ok('POST', `${p}/schedules/nightly/resume`, 200);
    await ok('POST', `${p}/schedules/nightly/trigger`, 201, {});
    const day = new Date(Date.UTC(2026, 0, 5));
    await ok('POST', `${p}/schedules/nightly/backfill`, 200, {
      from: day.toISOString(),
      to: new Date(day.getTime() + 2 * 86_400_000).toISOString(),
      dryRun: true,
    });
    await ok('POST', `${p}/schedules/nightly/backfill`, 201, {
      from: day.toISOString(),
      to: new Date(day.getTime() + 2 * 86_400_000).toISOString(),
    });
    await ok('DELETE', `${p}/schedules/${schedule.schedule.id}`, 200);

    await ok('GET', `${p}/usage`, 200);
    await ok('GET', `${p}/quotas`, 200);
    await ok('PUT', `${p}/quotas`, 200, { maxConcurrentRuns: 100, maxStepsPerMonth: null });
    await ok('GET', `${p}/audit?limit=20`, 200);
    await ok('POST', `${p}/audit/verify`, 200);
    await ok('GET', `${p}/audit/chain?after=0&limit=100`, 200);
    await ok('POST', `${p}/audit/checkpoints`, 201);
    await ok('GET', `${p}/audit/checkpoints?limit=5`, 200);
    await ok('DELETE', `${p}/data-planes/${dp.dataPlane.id}`, 200);

    // Errors are documented too, with the error body.
    assert.equal((await cp.api('GET', `${p}/runs/${crypto.randomUUID()}`)).status, 404);
    assert.equal((await cp.api('GET', `${p}/runs`, { key: null })).status, 401);
    assert.equal((await cp.api('POST', `${p}/workflows`, { body: { name: 'documented' } })).status, 400);

    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const successes = Object.keys(operation.responses).filter((s) => Number(s) < 400);
        assert.ok(
          successes.some((status) => check.seen.has(`${method.toUpperCase()} ${path} ${status}`)),
          `${method.toUpperCase()} ${path} was not called with a success answer`,
        );
      }
    }
  });
});
