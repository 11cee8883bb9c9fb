// The gateway checks run inputs and signal bodies against the data plane's schema catalogue
// before anything is stored: a 400 [CAIRN-1116] with the path of each bad field, no row written,
// no control-plane call; the right version's schema when versions differ; caches dropped when a
// worker catalogues a change. And the catalogue read back for the console (GET /v1/workflows/:name/schemas).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { schemaDigest } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore, type CatalogueSchema } from '@cairn/payload-store';
import { RunStatus, type StartRunRequest } from '@cairn/proto';
import { buildGateway, type Gateway } from './app.js';
import { loadGatewayConfig } from './config.js';
import { ControlPlane } from './control-plane.js';
import { FakeControlPlane } from './testing/fake-control-plane.js';
import { DataPlaneDb } from './testing/postgres.js';
import { toIssue } from './validation.js';

const TOKEN = `cgt_${randomUUID()}`;
/** A token that may start runs but read nothing. */
const START_ONLY = `cgt_${randomUUID()}`;
const CREDENTIAL = `cdp_${randomUUID()}`;

const refundInput = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  properties: { orderId: { type: 'string' }, amount: { type: 'number', minimum: 0 }, email: { type: 'string', format: 'email' } },
  required: ['orderId', 'amount'],
};
const approvalBody = {
  type: 'object',
  properties: { approved: { type: 'boolean' }, by: { type: 'string' } },
  required: ['approved'],
  additionalProperties: false,
};
const schema = (kind: CatalogueSchema['kind'], json: Record<string, unknown>, signalName?: string): CatalogueSchema => ({
  kind,
  ...(signalName === undefined ? {} : { signalName }),
  schema: json,
  digest: schemaDigest(json),
});

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

for (const kind of testPostgresKinds()) {
  describe(`gateway schema validation on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let store: PayloadStore;
    let db: DataPlaneDb;
    let cp: FakeControlPlane;
    let controlPlane: ControlPlane;
    let app: Gateway;

    const call = async (path: string, body: unknown): Promise<Answer> => {
      const res = await app.inject({
        method: 'POST',
        url: path,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        payload: JSON.stringify(body),
      });
      return { status: res.statusCode, body: JSON.parse(res.body) as unknown };
    };
    const calls = (method: 'startRun' | 'resolveVersion' | 'signalRun' | 'describeRun'): number =>
      cp.recorded.filter((r) => r.method === method).length;

    before(async () => {
      server = await testPostgres(kind);
      const url = await server.createDatabase(uniqueDatabaseName('gwv'));
      cp = await FakeControlPlane.start(CREDENTIAL);
      cp.announce('order-refund', '1');
      cp.announce('changing', '3', '2', '1');
      cp.announce('open');
      cp.announce('late');
      const config = loadGatewayConfig({
        CAIRN_CP_GRPC_ADDRESS: cp.address,
        CAIRN_DP_CREDENTIAL: CREDENTIAL,
        CAIRN_DP_DATABASE_URL: url,
        CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec('k1'),
        CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
        CAIRN_GATEWAY_TOKENS: `${TOKEN},${START_ONLY}:start`,
        CAIRN_LOG_LEVEL: 'silent',
      });
      store = PayloadStore.connect({ connectionString: url, keys: config.keys });
      await store.migrate();
      db = await DataPlaneDb.connect(url);
      // What workers catalogue at start.
      await store.catalogueSchemas([
        { name: 'order-refund', version: '1', schemas: [schema('input', refundInput), schema('signal', approvalBody, 'approval')] },
        { name: 'changing', version: '1', schemas: [] },
        { name: 'changing', version: '2', schemas: [schema('input', { type: 'object', required: ['v2'] })] },
        {
          name: 'changing',
          version: '3',
          schemas: [schema('input', { type: 'object', required: ['v3'] }), schema('signal', { type: 'integer' }, 'poke')],
        },
      ]);
      controlPlane = new ControlPlane({ address: cp.address, credential: CREDENTIAL, timeoutMs: config.cpTimeoutMs });
      app = buildGateway(config, { store, controlPlane });
      await app.ready();
    });

    after(async () => {
      await app?.close();
      controlPlane?.close();
      await cp?.stop();
      await db?.close();
      await store?.close();
      await server?.stop();
    });

    it('refuses a bad input with 400 [CAIRN-1116] naming each bad field, storing nothing and calling no control plane', async () => {
      const before = await db.count('dp_runs');
      const recorded = cp.recorded.length;
      const res = await call('/v1/runs', { workflow: 'order-refund', input: { amount: -5, email: 'not-an-address', extra: true } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'CAIRN-1116');
      assert.equal(
        res.body.error.message,
        'input does not match the input schema of order-refund@1: /orderId is required; /email must match format "email"; /amount must be >= 0',
      );
      // Each issue points into the request body: the input is at /input.
      assert.deepEqual(res.body.error.issues, [
        { in: 'body', path: '/input/orderId', message: 'is required' },
        { in: 'body', path: '/input/email', message: 'must match format "email"' },
        { in: 'body', path: '/input/amount', message: 'must be >= 0' },
      ]);
      assert.equal(await db.count('dp_runs'), before, 'nothing was stored');
      assert.equal(cp.recorded.length, recorded, 'the control plane was not called');

      // A version named explicitly is checked against that version's schema.
      const pinned = await call('/v1/runs', { workflow: 'order-refund', version: '1', input: 'a string' });
      assert.equal(pinned.status, 400);
      assert.deepEqual(pinned.body.error.issues, [{ in: 'body', path: '/input', message: 'must be object' }]);
    });

    it('GET /v1/workflows/:name/schemas answers the catalogued schemas of every version, for the console', async () => {
      const get = async (name: string, token = TOKEN): Promise<Answer> => {
        const res = await app.inject({
          method: 'GET',
          url: `/v1/workflows/${name}/schemas`,
          headers: { authorization: `Bearer ${token}` },
        });
        return { status: res.statusCode, body: JSON.parse(res.body) as unknown };
      };
      const recorded = cp.recorded.length;
      const refund = await get('order-refund');
      assert.equal(refund.status, 200, JSON.stringify(refund.body));
      assert.deepEqual(refund.body, {
        workflow: 'order-refund',
        versions: [{ version: '1', input: refundInput, output: null, signals: [{ name: 'approval', schema: approvalBody }] }],
      });
      const changing = await get('changing');
      assert.deepEqual(changing.body, {
        workflow: 'changing',
        versions: [
          { version: '1', input: null, output: null, signals: [] },
          { version: '2', input: { type: 'object', required: ['v2'] }, output: null, signals: [] },
          {
            version: '3',
            input: { type: 'object', required: ['v3'] },
            output: null,
            signals: [{ name: 'poke', schema: { type: 'integer' } }],
          },
        ],
      });
      assert.equal(cp.recorded.length, recorded, 'the schemas come from the data plane alone');

      // A workflow no worker catalogued: no version, not an error.
      assert.deepEqual(await get('never-catalogued'), { status: 200, body: { workflow: 'never-catalogued', versions: [] } });

      const badName = await get('not%20a%20name!');
      assert.equal(badName.status, 400);
      assert.equal(badName.body.error.code, 'CAIRN-1107', 'a name that is not a workflow name');
      const anonymous = await app.inject({ method: 'GET', url: '/v1/workflows/order-refund/schemas' });
      assert.equal(anonymous.statusCode, 401);
      const startOnly = await get('order-refund', START_ONLY);
      assert.equal(startOnly.status, 403, 'reading schemas takes the read scope');
      assert.match(String(startOnly.body.error.message), /read/);
    });

    it('starts a run whose input matches, without an extra round trip when every version has the same schema', async () => {
      const res = await call('/v1/runs', { workflow: 'order-refund', input: { orderId: 'o-1', amount: 5 } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal((await store.getRun(res.body.runId as string))?.workflowName, 'order-refund');
      assert.equal(calls('resolveVersion'), 0);
      assert.equal(cp.requests<StartRunRequest>('startRun').at(-1)?.workflowVersion, '', 'the control plane picks the version');
    });

    it('does not check workflows that have no catalogued schema', async () => {
      const res = await call('/v1/runs', { workflow: 'open', input: { anything: ['goes'] } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    });

    it('when versions disagree, asks the control plane which version it would pick and starts the run on it', async () => {
      const resolves = calls('resolveVersion');
      const bad = await call('/v1/runs', { workflow: 'changing', input: { v2: true } });
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      assert.match(String(bad.body.error.message), /input schema of changing@3: \/v3 is required/);
      assert.equal(calls('resolveVersion'), resolves + 1);
      const good = await call('/v1/runs', { workflow: 'changing', input: { v3: true } });
      assert.equal(good.status, 201, JSON.stringify(good.body));
      assert.equal(cp.requests<StartRunRequest>('startRun').at(-1)?.workflowVersion, '3', 'started on the version it was checked against');
      // An explicit version uses its own schema (version 1 declares none).
      const v1 = await call('/v1/runs', { workflow: 'changing', version: '1', input: { whatever: 1 } });
      assert.equal(v1.status, 201, JSON.stringify(v1.body));
    });

    it("checks a signal body against the run's version, storing nothing when it does not match; undeclared signals are not checked", async () => {
      const started = await call('/v1/runs', { workflow: 'order-refund', input: { orderId: 'o-2', amount: 1 } });
      const runId = started.body.runId as string;
      const signals = await db.count('dp_signals', 'run_id = $1', [runId]);
      const signalCalls = calls('signalRun');
      const bad = await call(`/v1/runs/${runId}/signals/approval`, { approved: 'yes', note: 'hi' });
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      assert.equal(bad.body.error.code, 'CAIRN-1116');
      assert.equal(
        bad.body.error.message,
        'the body of signal "approval" does not match its schema in order-refund@1: /note is not allowed; /approved must be boolean',
      );
      assert.deepEqual(
        (bad.body.error.issues as Array<{ path: string }>).map((i) => i.path),
        ['/note', '/approved'],
      );
      assert.equal(await db.count('dp_signals', 'run_id = $1', [runId]), signals);
      assert.equal(calls('signalRun'), signalCalls, 'the control plane was not told');

      const good = await call(`/v1/runs/${runId}/signals/approval`, { approved: true, by: 'maria' });
      assert.equal(good.status, 202, JSON.stringify(good.body));
      const free = await call(`/v1/runs/${runId}/signals/anything-goes`, 'free text');
      assert.equal(free.status, 202, JSON.stringify(free.body));
      assert.equal(await db.count('dp_signals', 'run_id = $1', [runId]), signals + 2);
    });

    it("asks the control plane for the run's version only when versions disagree about the signal", async () => {
      const started = await call('/v1/runs', { workflow: 'changing', version: '2', input: { v2: 1 } });
      const runId = started.body.runId as string;
      cp.update(runId, { status: RunStatus.SUSPENDED });
      const describes = calls('describeRun');
      // Version 2 declares no poke schema (version 3 does): not checked.
      assert.equal((await call(`/v1/runs/${runId}/signals/poke`, 'not an integer')).status, 202);
      assert.equal(calls('describeRun'), describes + 1);
      const on3 = await call('/v1/runs', { workflow: 'changing', version: '3', input: { v3: 1 } });
      const bad = await call(`/v1/runs/${on3.body.runId as string}/signals/poke`, 1.5);
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      assert.deepEqual(bad.body.error.issues, [{ in: 'body', path: '', message: 'must be integer' }]);
    });

    it('a JSON Schema nested 3,000 levels gives a clear 400 [CAIRN-1173], not a stack overflow, and stores nothing', async () => {
      // What a worker could catalogue: 1,500 nested objects, 3,000 levels of JSON.
      let deep: Record<string, unknown> = { type: 'string' };
      for (let i = 0; i < 1_500; i++) deep = { type: 'object', properties: { a: deep } };
      cp.announce('deep-schema');
      await store.catalogueSchemas([{ name: 'deep-schema', version: '1', schemas: [schema('input', deep)] }]);
      const before = await db.count('dp_runs');
      const recorded = cp.recorded.filter((r) => r.method === 'startRun').length;
      const res = await call('/v1/runs', { workflow: 'deep-schema', input: { a: { a: 'x' } } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'CAIRN-1173');
      assert.match(String(res.body.error.message), /nested more than 128 levels deep/);
      assert.match(String(res.body.error.message), /new workflow version/);
      assert.equal(await db.count('dp_runs'), before, 'nothing was stored');
      assert.equal(calls('startRun'), recorded, 'the control plane was not called');
    });

    it('learns of schemas a worker catalogues later', async () => {
      assert.equal((await call('/v1/runs', { workflow: 'late', input: 42 })).status, 201, 'not catalogued yet: not checked');
      await store.catalogueSchemas([{ name: 'late', version: '1', schemas: [schema('input', { type: 'string' })] }]);
      let status = 0;
      for (const giveUp = Date.now() + 10_000; status !== 400 && Date.now() < giveUp;) {
        status = (await call('/v1/runs', { workflow: 'late', input: 42 })).status;
        if (status !== 400) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(status, 400, 'the catalogue change reached the gateway');
    });
  });
}

describe('ajv errors as issues', () => {
  it('point at the field at fault and say what was expected', () => {
    const base = { schemaPath: '#', message: 'x' };
    assert.deepEqual(toIssue({ ...base, instancePath: '/a', keyword: 'required', params: { missingProperty: 'b/c' } }), {
      path: '/a/b~1c',
      message: 'is required',
    });
    assert.deepEqual(toIssue({ ...base, instancePath: '', keyword: 'additionalProperties', params: { additionalProperty: 'zip' } }), {
      path: '/zip',
      message: 'is not allowed',
    });
    assert.deepEqual(toIssue({ ...base, instancePath: '/k', keyword: 'enum', params: { allowedValues: ['a', 1] } }), {
      path: '/k',
      message: 'must be one of "a", 1',
    });
    assert.deepEqual(toIssue({ instancePath: '/n', schemaPath: '#', keyword: 'minimum', params: {}, message: 'must be >= 0' }), {
      path: '/n',
      message: 'must be >= 0',
    });
  });
});
