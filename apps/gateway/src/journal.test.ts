import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import { buildGateway, type Gateway } from './app.js';
import { loadGatewayConfig } from './config.js';
import { ControlPlane } from './control-plane.js';
import { FakeControlPlane } from './testing/fake-control-plane.js';

const TOKEN = `cgt_${randomUUID()}`;
const READER = `cgt_${randomUUID()}`;
const CREDENTIAL = `cdp_${randomUUID()}`;

for (const kind of testPostgresKinds()) {
  describe(`GET /v1/runs/:id/journal on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let store: PayloadStore;
    let cp: FakeControlPlane;
    let controlPlane: ControlPlane;
    let app: Gateway;

    const get = async (path: string, token: string | null = TOKEN) => {
      const res = await app.inject({ method: 'GET', url: path, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
      return {
        status: res.statusCode,
        body: JSON.parse(res.body) as Record<string, unknown> & { error?: { code: string; message: string } },
      };
    };

    before(async () => {
      server = await testPostgres(kind);
      const url = await server.createDatabase(uniqueDatabaseName('gwj'));
      cp = await FakeControlPlane.start(CREDENTIAL);
      const config = loadGatewayConfig({
        CAIRN_CP_GRPC_ADDRESS: cp.address,
        CAIRN_DP_CREDENTIAL: CREDENTIAL,
        CAIRN_DP_DATABASE_URL: url,
        CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec('k1'),
        CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
        CAIRN_GATEWAY_TOKENS: `${TOKEN},${READER}:read`,
        CAIRN_LOG_LEVEL: 'silent',
      });
      store = PayloadStore.connect({ connectionString: url, keys: config.keys });
      await store.migrate();
      controlPlane = new ControlPlane({ address: cp.address, credential: CREDENTIAL, timeoutMs: config.cpTimeoutMs });
      app = buildGateway(config, { store, controlPlane });
      await app.ready();
    });

    after(async () => {
      await app?.close();
      controlPlane?.close();
      await cp?.stop();
      await store?.close();
      await server?.stop();
    });

    it('returns the input, seed and every entry with its recorded value, error and key digest', async () => {
      const runId = randomUUID();
      await store.createRun({ runId, workflowName: 'order-refund', input: { orderId: 'o-7', amount: 12 } });
      await store.acquire(runId, 3);
      const t = Date.parse('2026-03-01T10:00:00.000Z');
      const digest = 'ab'.repeat(32);
      await store.append(runId, 3, [
        {
          position: 0,
          kind: 'step',
          name: 'load-order',
          keyDigest: digest,
          status: 'completed',
          value: { total: 12 },
          startedAt: t,
          endedAt: t + 4,
        },
        {
          position: 1,
          kind: 'step',
          name: 'charge',
          status: 'retrying',
          attempt: 2,
          error: { name: 'Error', message: 'card network down', stack: 'Error: card network down', code: undefined },
          startedAt: t + 10,
          endedAt: t + 20,
          dueAt: t + 5000,
        },
      ]);
      const stored = await store.getRun(runId);
      const res = await get(`/v1/runs/${runId}/journal`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, {
        runId,
        workflow: 'order-refund',
        status: 'open',
        input: { orderId: 'o-7', amount: 12 },
        seed: stored!.seed.toString('base64'),
        forkedFrom: null,
        digestVersion: 2,
        hmacKeyId: '',
        createdAt: new Date(stored!.createdAt).toISOString(),
        endedAt: null,
        entries: [
          {
            position: 0,
            kind: 'step',
            name: 'load-order',
            keyDigest: digest,
            status: 'completed',
            attempt: 1,
            epoch: 3,
            value: { total: 12 },
            signalId: null,
            outputSize: Buffer.byteLength(JSON.stringify({ total: 12 })),
            startedAt: new Date(t).toISOString(),
            endedAt: new Date(t + 4).toISOString(),
            dueAt: null,
          },
          {
            position: 1,
            kind: 'step',
            name: 'charge',
            keyDigest: null,
            status: 'retrying',
            attempt: 2,
            epoch: 3,
            error: { name: 'Error', message: 'card network down', stack: 'Error: card network down' },
            signalId: null,
            outputSize: 0,
            startedAt: new Date(t + 10).toISOString(),
            endedAt: new Date(t + 20).toISOString(),
            dueAt: new Date(t + 5000).toISOString(),
          },
        ],
      });
      assert.equal(Buffer.from(res.body['seed'], 'base64').length, 32);
    });

    it('withholds the seed from a token without the admin scope, and serves everything else', async () => {
      const runId = randomUUID();
      await store.createRun({ runId, workflowName: 'order-refund', input: { orderId: 'o-8' } });
      const asReader = await get(`/v1/runs/${runId}/journal`, READER);
      assert.equal(asReader.status, 200);
      assert.equal(asReader.body['seed'], null);
      assert.deepEqual(asReader.body['input'], { orderId: 'o-8' });
      const asAdmin = await get(`/v1/runs/${runId}/journal`);
      assert.equal(Buffer.from(String(asAdmin.body['seed']), 'base64').length, 32);
    });

    it('answers 404 for an unknown run, 400 for a malformed ID and 401 without a token', async () => {
      const unknown = await get(`/v1/runs/${randomUUID()}/journal`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error?.code, 'CAIRN-1105');
      assert.match(unknown.body.error?.message ?? '', /not in this data plane's payload store/);
      const bad = await get('/v1/runs/not-a-uuid/journal');
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error?.code, 'CAIRN-1101');
      const anonymous = await get(`/v1/runs/${randomUUID()}/journal`, null);
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.error?.code, 'CAIRN-1104');
    });
  });
}
