// Tenants and access against a real control-plane process: the bootstrap admin, API keys with
// roles, expiry and revocation, the role matrix over every documented route, isolation between
// organisations and projects, and data-plane credentials on gRPC.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { controlPlaneChannelCredentials, type RunInfo } from '@cairn/proto';
import { PERMISSIONS, type Permission } from './auth/permissions.js';
import { BOOTSTRAP_KEY, controlPlaneMain, startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, rejectsWith, type ServiceClient } from './testing/grpc.js';

const ROLES = ['admin', 'developer', 'operator', 'viewer', 'auditor'] as const;

interface Operation {
  readonly 'x-cairn-permission': Permission;
  readonly 'x-cairn-roles': string[];
  readonly requestBody?: unknown;
}

/** A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, made by openssl. */
function makeCertificates(
  dir: string,
): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey' | 'otherCert' | 'otherKey', string> {
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=cairn-test-ca');
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  ssl(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '2',
    '-extfile',
    f('server.ext'),
  );
  ssl('req', ...ec, '-keyout', f('client.key'), '-out', f('client.csr'), '-subj', '/CN=data-plane');
  ssl(
    'x509',
    '-req',
    '-in',
    f('client.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('client.pem'),
    '-days',
    '2',
  );
  // A client certificate no trusted CA signed.
  ssl('req', '-x509', ...ec, '-keyout', f('other.key'), '-out', f('other.pem'), '-days', '2', '-subj', '/CN=stranger');
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherCert: f('other.pem'),
    otherKey: f('other.key'),
  };
}

/** A concrete path for a documented route: the project by name, every other parameter a fresh ID. */
function concretePath(template: string, project: string): string {
  return template.replace(/\{(\w+)\}/g, (_m, name: string) => (name === 'project' ? project : name === 'version' ? '1.0.0' : randomUUID()));
}

for (const kind of testPostgresKinds()) {
  describe(`tenants and access on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;

    before(async () => {
      server = await testPostgres(kind);
      cp = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true' } });
    });

    after(async () => {
      await cp?.close();
      await server?.stop();
    });

    test('the bootstrap admin key is organisation-wide and survives restarts without duplicating', async () => {
      const me = await cp.api<{ role: string; projectId: string | null; organizationId: string }>('GET', '/v1/whoami');
      assert.equal(me.status, 200);
      assert.equal(me.body.role, 'admin');
      assert.equal(me.body.projectId, null, 'the bootstrap key acts in every project of its organisation');
      await cp.restart();
      assert.equal((await cp.api('GET', '/v1/whoami')).status, 200);
      const keys = await cp.sql.query("SELECT count(*)::int AS n FROM api_keys WHERE name = 'bootstrap-admin'");
      assert.equal(keys.rows[0].n, 1);
      const projects = await cp.api<{ projects: Array<{ name: string }> }>('GET', '/v1/projects');
      assert.deepEqual(
        projects.body.projects.map((p) => p.name),
        ['default'],
      );
    });

    test('API keys: shown once, stored hashed, with roles, expiry and revocation', async () => {
      const created = await cp.api<{ apiKey: { id: string; prefix: string; role: string }; secret: string }>(
        'POST',
        '/v1/projects/default/api-keys',
        { body: { name: 'ci', role: 'developer' } },
      );
      assert.equal(created.status, 201);
      assert.match(created.body.secret, /^cak_[A-Za-z0-9_-]{43}$/);
      assert.ok(created.body.secret.startsWith(created.body.apiKey.prefix));
      const secret = created.body.secret;
      // Only the SHA-256 is stored; lists never show the secret.
      const dump = await cp.sql.query('SELECT row_to_json(k)::text AS row FROM api_keys k');
      assert.ok(dump.rows.every((r: { row: string }) => !r.row.includes(secret)));
      const listed = await cp.api('GET', '/v1/projects/default/api-keys');
      assert.equal(listed.status, 200);
      assert.ok(!JSON.stringify(listed.body).includes(secret));

      const me = await cp.api<{ role: string; projectId: string }>('GET', '/v1/whoami', { key: secret });
      assert.equal(me.body.role, 'developer');
      assert.match(me.body.projectId, /^[0-9a-f-]{36}$/);

      const revoked = await cp.api<{ apiKey: { revokedAt: string | null } }>(
        'DELETE',
        `/v1/projects/default/api-keys/${created.body.apiKey.id}`,
      );
      assert.equal(revoked.status, 200);
      assert.ok(revoked.body.apiKey.revokedAt);
      const refused = await cp.api<{ error: { code: string; message: string } }>('GET', '/v1/whoami', { key: secret });
      assert.equal(refused.status, 401);
      assert.match(refused.body.error.message, /revoked/);

      // A key that has expired: created with an expiry a moment ahead, then past it.
      const soon = new Date(Date.now() + 1_500).toISOString();
      const expiring = await cp.key('viewer', { expiresAt: soon });
      assert.equal((await cp.api('GET', '/v1/whoami', { key: expiring })).status, 200);
      await cp.sql.query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE expires_at IS NOT NULL");
      const expired = await cp.api<{ error: { code: string; message: string } }>('GET', '/v1/whoami', { key: expiring });
      assert.equal(expired.status, 401);
      assert.equal(expired.body.error.code, 'CAIRN-1104');
      assert.match(expired.body.error.message, /expired at/);

      // Bad input says what was wrong.
      const bad = await cp.api<{ error: { code: string; message: string } }>('POST', '/v1/projects/default/api-keys', {
        body: { name: 'x', role: 'superuser' },
      });
      assert.equal(bad.status, 400);
      assert.match(bad.body.error.message, /role/);
      const past = await cp.api<{ error: { message: string } }>('POST', '/v1/projects/default/api-keys', {
        body: { name: 'x', role: 'viewer', expiresAt: '2001-01-01T00:00:00Z' },
      });
      assert.equal(past.status, 400);
      assert.match(past.body.error.message, /expiresAt must be in the future/);
      const unknownField = await cp.api('POST', '/v1/projects/default/api-keys', { body: { name: 'x', role: 'viewer', admin: true } });
      assert.equal(unknownField.status, 400);
      const notJson = await cp.api('POST', '/v1/projects/default/api-keys', { body: '{"name":' });
      assert.equal(notJson.status, 400);
      assert.equal((await cp.api('GET', '/v1/whoami', { key: null })).status, 401);
      assert.equal((await cp.api('GET', '/v1/whoami', { key: 'cak_not-a-key' })).status, 401);
    });

    test('the role matrix: every documented route admits exactly the roles its permission names', async () => {
      const doc = await fetch(`${cp.httpUrl}/openapi.json`).then(
        (r) => r.json() as Promise<{ paths: Record<string, Record<string, Operation>> }>,
      );
      const keys: Record<string, string> = {};
      for (const role of ROLES) keys[role] = await cp.key(role);
      const orgAdmin = await cp.key('admin', { organizationWide: true });
      const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
        Object.entries(methods).map(([method, op]) => ({ path, method, op })),
      );
      assert.ok(operations.length >= 10, `the document lists ${operations.length} operations`);
      let checked = 0;
      for (const { path, method, op } of operations) {
        const permission = op['x-cairn-permission'];
        assert.ok(permission in PERMISSIONS, `${method} ${path} declares a known permission`);
        assert.deepEqual(op['x-cairn-roles'], [...PERMISSIONS[permission]]);
        const concrete = concretePath(path, 'default');
        const body = method === 'get' || method === 'delete' ? undefined : {};
        const anonymous = await cp.api(method.toUpperCase(), concrete, { key: null, body });
        assert.equal(anonymous.status, 401, `${method} ${path} without a key`);
        for (const role of ROLES) {
          const allowed = (PERMISSIONS[permission] as readonly string[]).includes(role) && permission !== 'organization.admin';
          const res = await cp.api<{ error?: { code: string } }>(method.toUpperCase(), concrete, { key: keys[role]!, body });
          if (allowed) {
            assert.notEqual(res.status, 403, `${method} ${path} must admit ${role}: ${JSON.stringify(res.body)}`);
            assert.notEqual(res.status, 401, `${method} ${path} with a ${role} key`);
          } else {
            assert.equal(res.status, 403, `${method} ${path} must refuse ${role}: got ${res.status} ${JSON.stringify(res.body)}`);
            assert.equal(res.body.error?.code, 'CAIRN-1111');
          }
          checked++;
        }
        if (permission === 'organization.admin') {
          const res = await cp.api(method.toUpperCase(), concrete, { key: orgAdmin, body });
          assert.notEqual(res.status, 403, `${method} ${path} admits an organisation-wide admin`);
        }
      }
      assert.equal(checked, operations.length * ROLES.length);
    });

    test('organisations and projects are isolated from each other', async () => {
      // Organisation A is the bootstrap one; B is created with the operator command.
      const made = spawnSync(process.execPath, [controlPlaneMain, 'organizations', 'create', '--organization', 'acme-b'], {
        env: { PATH: process.env['PATH'] ?? '', CAIRN_CP_DATABASE_URL: cp.databaseUrl, CAIRN_LOG_LEVEL: 'error' },
        encoding: 'utf8',
      });
      assert.equal(made.status, 0, made.stderr);
      const b = JSON.parse(made.stdout) as { organizationId: string; projectId: string; apiKey: string };

      const staging = await cp.api<{ project: { id: string } }>('POST', '/v1/projects', { body: { name: 'staging' } });
      assert.equal(staging.status, 201);
      const aDefault = (await cp.api<{ projects: Array<{ id: string; name: string }> }>('GET', '/v1/projects')).body.projects.find(
        (p) => p.name === 'default',
      )!;

      // B sees only its own projects, and A's by ID is "not found", not "forbidden".
      const bProjects = await cp.api<{ projects: Array<{ id: string }> }>('GET', '/v1/projects', { key: b.apiKey });
      assert.deepEqual(
        bProjects.body.projects.map((p) => p.id),
        [b.projectId],
      );
      for (const path of [
        `/v1/projects/${aDefault.id}/runs`,
        `/v1/projects/${staging.body.project.id}/data-planes`,
        `/v1/projects/${aDefault.id}/api-keys`,
      ]) {
        const res = await cp.api<{ error: { code: string } }>('GET', path, { key: b.apiKey });
        assert.equal(res.status, 404, path);
        assert.equal(res.body.error.code, 'CAIRN-1105');
      }
      // "default" by name means B's own default project for B's key.
      assert.equal((await cp.api('GET', '/v1/projects/default/runs', { key: b.apiKey })).status, 200);
      // A key scoped to A's staging project cannot reach A's default project either.
      const stagingAdmin = await cp.key('admin', { project: 'staging' });
      assert.equal((await cp.api('GET', '/v1/projects/default/runs', { key: stagingAdmin })).status, 404);
      assert.equal((await cp.api('GET', '/v1/projects/staging/runs', { key: stagingAdmin })).status, 200);
      const listed = await cp.api<{ projects: Array<{ name: string }> }>('GET', '/v1/projects', { key: stagingAdmin });
      assert.deepEqual(
        listed.body.projects.map((p) => p.name),
        ['staging'],
      );
      // A project admin cannot mint organisation-wide keys or create projects.
      const widen = await cp.api('POST', '/v1/projects/staging/api-keys', {
        key: stagingAdmin,
        body: { name: 'w', role: 'admin', organizationWide: true },
      });
      assert.equal(widen.status, 403);
      assert.equal((await cp.api('POST', '/v1/projects', { key: stagingAdmin, body: { name: 'other' } })).status, 403);
    });

    describe('data-plane credentials on gRPC', () => {
      let worker: ServiceClient;
      let gateway: ServiceClient;
      const streams: WorkerStream[] = [];

      before(() => {
        worker = new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure());
        gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
      });

      after(() => {
        for (const s of streams) s.close();
        worker.close();
        gateway.close();
      });

      const open = (credential: string): WorkerStream => {
        const s = new WorkerStream(worker, credential);
        streams.push(s);
        return s;
      };

      test("a credential of project X cannot claim, describe, signal, wait for or cancel project Y's runs", async () => {
        if ((await cp.api('GET', '/v1/projects/staging')).status === 404) {
          await cp.api('POST', '/v1/projects', { body: { name: 'staging' } });
        }
        const x = await cp.dataPlane('default', 'x');
        const y = await cp.dataPlane('staging', 'y');
        const workflows = [{ name: 'isolated', version: 'v1', taskQueue: 'default' }];
        // Y's worker is connected first, with free slots, announcing the same workflow.
        const yWorker = open(y.credential);
        await yWorker.hello({ dataPlaneId: y.id, slots: 4, workflows });
        const xWorker = open(x.credential);
        await xWorker.hello({ dataPlaneId: x.id, slots: 0, workflows });

        const runId = randomUUID();
        const started = await gatewayCall<{ run: RunInfo }>(
          gateway,
          'startRun',
          { runId, workflowName: 'isolated', workflowVersion: '', idempotencyDigest: '', inputSize: 3n },
          x.credential,
        );
        assert.equal(started.run.runId, runId);

        for (const method of ['describeRun', 'waitRun', 'cancelRun'] as const) {
          await rejectsWith(gatewayCall(gateway, method, { runId }, y.credential), grpc.status.NOT_FOUND, /not found in this data plane/);
        }
        await rejectsWith(
          gatewayCall(gateway, 'signalRun', { runId, signalName: 'go', signalId: randomUUID() }, y.credential),
          grpc.status.NOT_FOUND,
        );
        // Hello with X's data-plane ID on Y's credential is refused.
        const impostor = open(y.credential);
        impostor.sendHello({ dataPlaneId: x.id, slots: 4, workflows });
        assert.equal((await impostor.ended()).code, grpc.status.PERMISSION_DENIED);

        // X's worker gets the run once it has a slot; Y's never held it.
        const xTaker = open(x.credential);
        await xTaker.hello({ dataPlaneId: x.id, slots: 1, workflows });
        const task = await xTaker.next('runTask');
        assert.equal(task.runId, runId);
        const leases = await cp.sql.query('SELECT count(*)::int AS n FROM run_leases WHERE run_id = $1', [runId]);
        assert.equal(leases.rows[0].n, 1);
        assert.equal(yWorker.takeAll('runTask').length, 0);

        // Through REST, the run is visible in X's project only.
        assert.equal((await cp.api('GET', `/v1/projects/default/runs/${runId}`)).status, 200);
        assert.equal((await cp.api('GET', `/v1/projects/staging/runs/${runId}`)).status, 404);
      });

      test('revoking a data plane closes its streams on every replica and refuses its calls', async () => {
        const plane = await cp.dataPlane('default', 'to-revoke');
        // A second replica on the same database holds one of the streams.
        const replica = await startControlPlaneProcess(server, { databaseUrl: cp.databaseUrl, env: { CAIRN_DEV_MODE: 'true' } });
        const replicaWorker = new WorkerClient(replica.grpcAddress, grpc.credentials.createInsecure());
        try {
          const here = open(plane.credential);
          await here.hello({ dataPlaneId: plane.id, slots: 1, workflows: [{ name: 'revoked', version: 'v1', taskQueue: 'q' }] });
          const there = new WorkerStream(replicaWorker, plane.credential);
          streams.push(there);
          await there.hello({ dataPlaneId: plane.id, slots: 1, workflows: [{ name: 'revoked', version: 'v1', taskQueue: 'q' }] });

          const res = await cp.api<{ dataPlane: { revokedAt: string | null } }>('DELETE', `/v1/projects/default/data-planes/${plane.id}`);
          assert.equal(res.status, 200);
          assert.ok(res.body.dataPlane.revokedAt);
          for (const stream of [here, there]) {
            const status = await stream.ended();
            assert.equal(status.code, grpc.status.UNAUTHENTICATED);
            assert.match(status.details, /revoked/);
          }
          await rejectsWith(
            gatewayCall(gateway, 'describeRun', { runId: randomUUID() }, plane.credential),
            grpc.status.UNAUTHENTICATED,
            /unknown or revoked/,
          );
          const again = open(plane.credential);
          again.sendHello({ dataPlaneId: plane.id, slots: 1 });
          assert.equal((await again.ended()).code, grpc.status.UNAUTHENTICATED);
        } finally {
          replicaWorker.close();
          await replica.close();
        }
      });
    });

    test('the OpenAPI document describes every route with its permission and schemas', async () => {
      const res = await fetch(`${cp.httpUrl}/openapi.json`);
      assert.equal(res.status, 200);
      const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, Operation & { requestBody?: unknown }>> };
      assert.equal(doc.openapi, '3.1.0');
      const create = doc.paths['/v1/projects/{project}/api-keys']?.['post'];
      assert.ok(create?.requestBody, 'request bodies are documented from their schemas');
      assert.match(JSON.stringify(create.requestBody), /"enum":\["admin","developer","operator","viewer","auditor"\]/);
      assert.equal(doc.paths['/v1/projects/{project}/runs/{id}']?.['get']?.['x-cairn-permission'], 'project.read');
      // The bootstrap key's secret never appears in the logs.
      assert.ok(cp.lines.length > 0);
      assert.ok(cp.lines.every((line) => !line.includes(BOOTSTRAP_KEY)));
    });

    test('mutual TLS on gRPC: a data plane needs a client certificate from the configured CA as well as its credential', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-mtls-'));
      const certs = makeCertificates(dir);
      const tls = await startControlPlaneProcess(server, {
        env: {
          CAIRN_DEV_MODE: 'true',
          CAIRN_CP_GRPC_TLS_CERT_FILE: certs.serverCert,
          CAIRN_CP_GRPC_TLS_KEY_FILE: certs.serverKey,
          CAIRN_CP_GRPC_TLS_CLIENT_CA_FILE: certs.ca,
        },
      });
      const clients: ServiceClient[] = [];
      const client = (creds: grpc.ChannelCredentials): ServiceClient => {
        const c = new WorkerClient(tls.grpcAddress, creds);
        clients.push(c);
        return c;
      };
      try {
        const plane = await tls.dataPlane('default', 'mtls');
        const read = (path: string): Buffer => readFileSync(path);
        const mutual = controlPlaneChannelCredentials(
          { enabled: true, caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey },
          read,
        );
        const welcomed = new WorkerStream(client(mutual), plane.credential);
        await welcomed.hello({ dataPlaneId: plane.id, slots: 1 });
        welcomed.close();

        // The right certificate does not replace the credential.
        const noCredential = new WorkerStream(client(mutual), 'cdp_wrong-credential');
        noCredential.sendHello({ dataPlaneId: plane.id, slots: 1 });
        assert.equal((await noCredential.ended()).code, grpc.status.UNAUTHENTICATED);

        // Without a client certificate, with one no trusted CA signed, or in plaintext: no connection at all.
        const refused = [
          controlPlaneChannelCredentials({ enabled: true, caFile: certs.ca }, read),
          controlPlaneChannelCredentials({ enabled: true, caFile: certs.ca, certFile: certs.otherCert, keyFile: certs.otherKey }, read),
          grpc.credentials.createInsecure(),
        ];
        for (const creds of refused) {
          const stream = new WorkerStream(client(creds), plane.credential);
          stream.sendHello({ dataPlaneId: plane.id, slots: 1 });
          assert.equal((await stream.ended()).code, grpc.status.UNAVAILABLE);
        }
        assert.throws(
          () => controlPlaneChannelCredentials({ enabled: true, certFile: certs.clientCert }, read),
          /CAIRN_CP_TLS_CERT_FILE and CAIRN_CP_TLS_KEY_FILE must be set together/,
        );
      } finally {
        for (const c of clients) c.close();
        await tls.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
