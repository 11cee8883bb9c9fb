// The gateway's payload routes: inputs stored for schedules, in the data plane only.
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
const CREDENTIAL = `cdp_${randomUUID()}`;
const MAX_BYTES = 4 * 1024;

interface Body {
  payloadId: string;
  size: number;
  payload: unknown;
  error: { code: string; message: string };
}

for (const kind of testPostgresKinds()) {
  describe(`gateway payloads on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let store: PayloadStore;
    let cp: FakeControlPlane;
    let controlPlane: ControlPlane;
    let app: Gateway;

    const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: string, token: string | null = TOKEN) => {
      const headers: Record<string, string> = {};
      if (token !== null) headers['authorization'] = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await app.inject({ method, url: path, headers, ...(body === undefined ? {} : { payload: body }) });
      return { status: res.statusCode, body: JSON.parse(res.body) as Body };
    };

    before(async () => {
      server = await testPostgres(kind);
      const url = await server.createDatabase(uniqueDatabaseName('gwpay'));
      cp = await FakeControlPlane.start(CREDENTIAL);
      const config = loadGatewayConfig({
        CAIRN_CP_GRPC_ADDRESS: cp.address,
        CAIRN_DP_CREDENTIAL: CREDENTIAL,
        CAIRN_DP_DATABASE_URL: url,
        CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec('k1'),
        CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
        CAIRN_GATEWAY_TOKENS: TOKEN,
        CAIRN_GATEWAY_MAX_PAYLOAD_BYTES: String(MAX_BYTES),
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

    it('stores, reads and deletes a payload without telling the control plane', async () => {
      const payload = { report: 'weekly', recipients: ['jane@example.com'] };
      const stored = await call('POST', '/v1/payloads', JSON.stringify(payload));
      assert.equal(stored.status, 201, JSON.stringify(stored.body));
      assert.match(stored.body.payloadId, /^[0-9a-f-]{36}$/);
      assert.equal(stored.body.size, Buffer.byteLength(JSON.stringify(payload)));
      const read = await call('GET', `/v1/payloads/${stored.body.payloadId}`);
      assert.equal(read.status, 200);
      assert.deepEqual(read.body.payload, payload);
      assert.equal((await call('DELETE', `/v1/payloads/${stored.body.payloadId}`)).status, 200);
      const gone = await call('GET', `/v1/payloads/${stored.body.payloadId}`);
      assert.equal(gone.status, 404);
      assert.match(gone.body.error.message, /payload .* not found in this data plane/);
      assert.equal((await call('DELETE', `/v1/payloads/${stored.body.payloadId}`)).status, 404);
      assert.deepEqual(cp.recorded, [], 'the control plane heard nothing');
    });

    it('refuses bodies over the limit, missing bodies, malformed IDs and missing tokens', async () => {
      const big = await call('POST', '/v1/payloads', JSON.stringify({ blob: 'x'.repeat(MAX_BYTES) }));
      assert.equal(big.status, 413);
      assert.equal(big.body.error.code, 'CAIRN-1103');
      const empty = await call('POST', '/v1/payloads');
      assert.equal(empty.status, 400);
      assert.match(empty.body.error.message, /request body is required/);
      const malformed = await call('GET', '/v1/payloads/not-an-id');
      assert.equal(malformed.status, 400);
      assert.match(malformed.body.error.message, /malformed payload id/);
      assert.equal((await call('POST', '/v1/payloads', '{}', null)).status, 401);
    });
  });
}
