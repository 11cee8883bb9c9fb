// Attacks on tenancy and credentials, each performed against real control-plane processes on real
// Postgres over real gRPC, and shown refused or detected: taking over an organisation with the
// operator command or the bootstrap, keeping a rotated credential's stream, guessing credentials,
// probing another tenant's run IDs, scraping /metrics, and audit noise from a restarted local stack.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { RunStatus, type RunInfo } from '@cairn/proto';
import { BOOTSTRAP_KEY, controlPlaneMain, startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, rejectsWith, type ServiceClient } from './testing/grpc.js';

interface AuditEntry {
  readonly action: string;
  readonly actor: { readonly type: string; readonly id: string | null };
  readonly target: { readonly type: string; readonly id: string };
  readonly metadata: Record<string, unknown>;
}

interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/** Runs a control-plane command (organizations create, api-keys create, data-planes create) against a database. */
function command(databaseUrl: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [controlPlaneMain, ...args], {
    env: { PATH: process.env['PATH'] ?? '', CAIRN_CP_DATABASE_URL: databaseUrl, CAIRN_LOG_LEVEL: 'error' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Starts `serve` expecting it to refuse to start; answers its exit status and what it printed. */
function refusedStart(databaseUrl: string, env: Record<string, string>): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [controlPlaneMain], {
    env: {
      PATH: process.env['PATH'] ?? '',
      CAIRN_CP_DATABASE_URL: databaseUrl,
      CAIRN_CP_HOST: '127.0.0.1',
      CAIRN_CP_HTTP_PORT: '0',
      CAIRN_CP_GRPC_PORT: '0',
      CAIRN_LOG_LEVEL: 'error',
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const freshSecret = (): string => `cak_${randomBytes(32).toString('base64url')}`;

async function audit(cp: ControlPlaneFixture, key: string, project: string, action: string): Promise<AuditEntry[]> {
  const res = await cp.api<{ entries: AuditEntry[] }>(
    'GET',
    `/v1/projects/${project}/audit?action=${encodeURIComponent(action)}&limit=200`,
    {
      key,
    },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.entries;
}

async function keyCount(cp: ControlPlaneFixture, organization: string): Promise<number> {
  const result = await cp.sql.query(
    'SELECT count(*)::int AS n FROM api_keys k JOIN organizations o ON o.id = k.organization_id WHERE o.name = $1',
    [organization],
  );
  return (result.rows[0] as { n: number }).n;
}

for (const kind of testPostgresKinds()) {
  describe(`trust hardening of tenancy and credentials on ${kind} Postgres`, () => {
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

    describe('organisation takeover', () => {
      test('organizations create with an existing name is refused and mints nothing; a new one is audited', async () => {
        const keysBefore = await keyCount(cp, 'default');
        const takeover = command(cp.databaseUrl, ['organizations', 'create', '--organization', 'default']);
        assert.equal(takeover.status, 1, 'the command fails');
        assert.match(takeover.stderr, /\[CAIRN-1140\] organisation default already exists/);
        assert.match(takeover.stderr, /api-keys create --organization default/, 'the message names the deliberate way');
        assert.equal(takeover.stdout, '', 'no key is printed');
        assert.equal(await keyCount(cp, 'default'), keysBefore, 'no key was added to the existing organisation');

        const made = command(cp.databaseUrl, ['organizations', 'create', '--organization', 'acme']);
        assert.equal(made.status, 0, made.stderr);
        const acme = JSON.parse(made.stdout) as { organizationId: string; projectId: string; apiKeyId: string; apiKey: string };
        const me = await cp.api<{ organizationId: string; role: string; projectId: string | null }>('GET', '/v1/whoami', {
          key: acme.apiKey,
        });
        assert.deepEqual([me.body.organizationId, me.body.role, me.body.projectId], [acme.organizationId, 'admin', null]);
        const minted = await audit(cp, acme.apiKey, 'default', 'api_key.created');
        assert.equal(minted.length, 1);
        assert.deepEqual(minted[0]!.actor, { type: 'system', id: null });
        assert.equal(minted[0]!.target.id, acme.apiKeyId);
        assert.deepEqual(
          [minted[0]!.metadata['mintedBy'], minted[0]!.metadata['command'], minted[0]!.metadata['organizationWide']],
          ['command', 'organizations create', true],
        );

        // Again with the tenant's name: refused, the tenant keeps exactly its one key.
        const again = command(cp.databaseUrl, ['organizations', 'create', '--organization', 'acme', '--project', 'other']);
        assert.equal(again.status, 1);
        assert.match(again.stderr, /CAIRN-1140/);
        assert.equal(await keyCount(cp, 'acme'), 1);
        const projects = await cp.api<{ projects: Array<{ name: string }> }>('GET', '/v1/projects', { key: acme.apiKey });
        assert.deepEqual(
          projects.body.projects.map((p) => p.name),
          ['default'],
          'no project was added either',
        );
      });

      test('api-keys create mints into an existing organisation only when asked, and every project of it records the key', async () => {
        const made = command(cp.databaseUrl, ['organizations', 'create', '--organization', 'globex']);
        assert.equal(made.status, 0, made.stderr);
        const globex = JSON.parse(made.stdout) as { apiKey: string };
        assert.equal((await cp.api('POST', '/v1/projects', { key: globex.apiKey, body: { name: 'staging' } })).status, 201);

        const usage = command(cp.databaseUrl, ['api-keys', 'create', '--organization', 'globex', '--role', 'admin']);
        assert.equal(usage.status, 1);
        assert.match(usage.stderr, /exactly one of --organization-wide or --project NAME/);
        const missing = command(cp.databaseUrl, [
          'api-keys',
          'create',
          '--organization',
          'initech',
          '--organization-wide',
          '--role',
          'admin',
        ]);
        assert.equal(missing.status, 1);
        assert.match(missing.stderr, /organisation initech does not exist/);

        const minted = command(cp.databaseUrl, [
          'api-keys',
          'create',
          '--organization',
          'globex',
          '--organization-wide',
          '--role',
          'admin',
          '--name',
          'support-escalation',
        ]);
        assert.equal(minted.status, 0, minted.stderr);
        const key = JSON.parse(minted.stdout) as { id: string; apiKey: string; projectId: string | null };
        assert.equal(key.projectId, null);
        assert.equal((await cp.api('GET', '/v1/whoami', { key: key.apiKey })).status, 200);
        for (const project of ['default', 'staging']) {
          const entries = (await audit(cp, globex.apiKey, project, 'api_key.created')).filter((e) => e.target.id === key.id);
          assert.equal(entries.length, 1, `project ${project} records the organisation-wide key`);
          assert.deepEqual(entries[0]!.actor, { type: 'system', id: null });
          assert.deepEqual([entries[0]!.metadata['mintedBy'], entries[0]!.metadata['command']], ['command', 'api-keys create']);
        }
        const scoped = command(cp.databaseUrl, [
          'api-keys',
          'create',
          '--organization',
          'globex',
          '--project',
          'staging',
          '--role',
          'viewer',
        ]);
        assert.equal(scoped.status, 0, scoped.stderr);
        const viewer = JSON.parse(scoped.stdout) as { id: string; apiKey: string };
        const me = await cp.api<{ role: string; projectId: string }>('GET', '/v1/whoami', { key: viewer.apiKey });
        assert.equal(me.body.role, 'viewer');
        assert.equal((await audit(cp, globex.apiKey, 'staging', 'api_key.created')).filter((e) => e.target.id === viewer.id).length, 1);
        assert.equal((await audit(cp, globex.apiKey, 'default', 'api_key.created')).filter((e) => e.target.id === viewer.id).length, 0);
      });

      test('the bootstrap mints once (audited), never a second key, and never into an organisation made otherwise', async () => {
        // A database of its own, so the bootstrap starts from nothing.
        const first = await startControlPlaneProcess(server, { env: { CAIRN_BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY } });
        try {
          const minted = await audit(first, BOOTSTRAP_KEY, 'default', 'api_key.created');
          assert.equal(minted.length, 1, 'the minted bootstrap key is audited');
          assert.deepEqual([minted[0]!.actor.type, minted[0]!.metadata['mintedBy']], ['system', 'bootstrap']);

          // The same key at every start: nothing new.
          await first.restart();
          await first.restart();
          assert.equal(await keyCount(first, 'default'), 1);
          assert.equal((await audit(first, BOOTSTRAP_KEY, 'default', 'api_key.created')).length, 1);

          // Another secret while the bootstrap key is active: refused, nothing minted.
          const other = freshSecret();
          const second = refusedStart(first.databaseUrl, { CAIRN_BOOTSTRAP_ADMIN_KEY: other });
          assert.equal(second.status, 1);
          assert.match(second.output, /\[CAIRN-1141\] organisation default already has a bootstrap admin key/);
          assert.ok(!second.output.includes(other), 'the secret is not echoed');
          assert.equal(await keyCount(first, 'default'), 1);

          // A tenant the operator made: the bootstrap never mints into it.
          const tenant = command(first.databaseUrl, ['organizations', 'create', '--organization', 'tenant-x']);
          assert.equal(tenant.status, 0, tenant.stderr);
          const tenantKey = (JSON.parse(tenant.stdout) as { apiKey: string }).apiKey;
          const hijack = refusedStart(first.databaseUrl, {
            CAIRN_BOOTSTRAP_ADMIN_KEY: freshSecret(),
            CAIRN_BOOTSTRAP_ORGANIZATION: 'tenant-x',
          });
          assert.equal(hijack.status, 1);
          assert.match(hijack.output, /\[CAIRN-1141\] organisation tenant-x was not created by the bootstrap/);
          assert.equal(await keyCount(first, 'tenant-x'), 1);
          // Nor does it accept another organisation's key as its own.
          const borrowed = refusedStart(first.databaseUrl, { CAIRN_BOOTSTRAP_ADMIN_KEY: tenantKey });
          assert.equal(borrowed.status, 1);
          assert.match(borrowed.output, /CAIRN-1141.*not an organisation-wide admin key of organisation default/);
          assert.equal((await audit(first, tenantKey, 'default', 'api_key.created')).length, 1, 'the tenant saw only its own key minted');

          // The documented rotation: an admin key made through the API becomes the bootstrap key, the old one is revoked.
          const made = await first.api<{ apiKey: { id: string }; secret: string }>('POST', '/v1/projects/default/api-keys', {
            body: { name: 'next-bootstrap', role: 'admin', organizationWide: true },
          });
          assert.equal(made.status, 201);
          const bootstrapId = (await first.api<{ keyId: string }>('GET', '/v1/whoami')).body.keyId;
          await first.stop();
          const rotated = await startControlPlaneProcess(server, {
            databaseUrl: first.databaseUrl,
            env: { CAIRN_BOOTSTRAP_ADMIN_KEY: made.body.secret },
          });
          try {
            assert.ok(rotated.lines.some((l) => l.includes('bootstrap admin key ready')));
            assert.equal(
              (await rotated.api('DELETE', `/v1/projects/default/api-keys/${bootstrapId}`, { key: made.body.secret })).status,
              200,
            );
          } finally {
            await rotated.close();
          }
          // A revoked key in the environment stays revoked: the start goes on, with a warning.
          const stale = await startControlPlaneProcess(server, {
            databaseUrl: first.databaseUrl,
            env: { CAIRN_BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY },
          });
          try {
            assert.ok(stale.lines.some((l) => l.includes('it is not revived')));
            const refused = await stale.api<ErrorBody>('GET', '/v1/whoami');
            assert.equal(refused.status, 401);
            assert.match(refused.body.error.message, /revoked/);
          } finally {
            await stale.close();
          }
        } finally {
          await first.close();
        }
      });
    });

    describe('a rotated data-plane credential', () => {
      let replica: ControlPlaneFixture;
      const clients: ServiceClient[] = [];
      const streams: WorkerStream[] = [];
      const client = (Ctor: typeof WorkerClient, address: string): ServiceClient => {
        const c = new Ctor(address, grpc.credentials.createInsecure());
        clients.push(c);
        return c;
      };
      const stream = (c: ServiceClient, credential: string): WorkerStream => {
        const s = new WorkerStream(c, credential);
        streams.push(s);
        return s;
      };

      before(async () => {
        replica = await startControlPlaneProcess(server, { databaseUrl: cp.databaseUrl, env: { CAIRN_DEV_MODE: 'true' } });
      });

      after(async () => {
        for (const s of streams) s.close();
        for (const c of clients) c.close();
        await replica?.close();
      });

      test('ends the old streams on every replica at once: no Ack, no RunTask; the new credential works', async () => {
        const plane = await cp.dataPlane('default', 'rotating');
        const workflows = [{ name: 'rotating', version: 'v1', taskQueue: 'rotating' }];
        const workerHere = client(WorkerClient, cp.grpcAddress);
        const workerThere = client(WorkerClient, replica.grpcAddress);
        const gatewayHere = client(GatewayClient, cp.grpcAddress);
        const gatewayThere = client(GatewayClient, replica.grpcAddress);

        // Before the rotation: a worker on the second replica holds a run; a stream on this replica
        // has authenticated but not said Hello; a long poll on the second replica waits for the run.
        const workerId = randomUUID();
        const old = stream(workerThere, plane.credential);
        await old.hello({ dataPlaneId: plane.id, workerId, slots: 4, workflows });
        const held = randomUUID();
        await gatewayCall(gatewayHere, 'startRun', { runId: held, workflowName: 'rotating', inputSize: 1n }, plane.credential);
        const task = await old.next('runTask');
        assert.equal(task.runId, held);
        const silent = stream(workerHere, plane.credential);
        const polling = gatewayCall(gatewayThere, 'waitRun', { runId: held, timeoutMs: 30_000 }, plane.credential);
        polling.catch(() => undefined);
        // Give the silent stream and the long poll a moment to authenticate before the rotation
        // (either way they end: registered, by the rotation; late, by the refused credential).
        await new Promise((resolve) => setTimeout(resolve, 200));

        const rotated = await cp.api<{ dataPlane: { id: string }; credential: string }>(
          'POST',
          `/v1/projects/default/data-planes/${plane.id}/rotate`,
        );
        assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
        const fresh = rotated.body.credential;
        assert.notEqual(fresh, plane.credential);

        // Right after the answer: the old stream reports its run done and a step, and a new run is
        // started with the new credential. None of it reaches the old stream or is acknowledged.
        const late = old.send({
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: held, epoch: task.epoch, outputSize: 3n },
        });
        const next = randomUUID();
        await gatewayCall(gatewayHere, 'startRun', { runId: next, workflowName: 'rotating', inputSize: 1n }, fresh);

        const status = await old.ended();
        assert.equal(status.code, grpc.status.UNAUTHENTICATED, status.details);
        assert.match(status.details, /rotated/);
        assert.equal((await silent.ended()).code, grpc.status.UNAUTHENTICATED, 'a stream that had not said Hello yet ends too');
        assert.deepEqual(
          old.takeAll('ack').map((a) => a.sequence),
          [],
          `the late completion (sequence ${late}) got no Ack`,
        );
        assert.deepEqual(
          old.takeAll('runTask').map((t) => t.runId),
          [],
          'no RunTask after the rotation',
        );
        await rejectsWith(polling, grpc.status.UNAUTHENTICATED);
        const stored = await cp.sql.query('SELECT status FROM runs WHERE id = $1', [held]);
        assert.equal((stored.rows[0] as { status: string }).status, 'running', 'the late completion was not applied');

        // The old credential opens nothing on either replica.
        for (const [worker, gateway] of [
          [workerHere, gatewayHere],
          [workerThere, gatewayThere],
        ] as const) {
          const retry = stream(worker, plane.credential);
          retry.sendHello({ dataPlaneId: plane.id, slots: 1, workflows });
          assert.equal((await retry.ended()).code, grpc.status.UNAUTHENTICATED);
          await rejectsWith(gatewayCall(gateway, 'describeRun', { runId: held }, plane.credential), grpc.status.UNAUTHENTICATED);
        }

        // The new credential works: the same worker re-attaches its run and completes it, and gets the new run.
        const renewed = stream(workerThere, fresh);
        const welcome = await renewed.hello({
          dataPlaneId: plane.id,
          workerId,
          slots: 4,
          workflows,
          heldLeases: [{ runId: held, epoch: task.epoch }],
        });
        assert.deepEqual(welcome.lostLeases, []);
        const done = renewed.send({
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: held, epoch: task.epoch, outputSize: 3n },
        });
        await renewed.next('ack', (a) => a.sequence === done);
        assert.equal((await renewed.next('runTask')).runId, next);
        const waited = await gatewayCall<{ run: RunInfo }>(gatewayThere, 'waitRun', { runId: held, timeoutMs: 5_000 }, fresh);
        assert.equal(waited.run.runId, held);

        const entries = await audit(cp, BOOTSTRAP_KEY, 'default', 'data_plane.credential_rotated');
        const mine = entries.filter((e) => e.target.id === plane.id);
        assert.equal(mine.length, 1);
        assert.equal(mine[0]!.actor.type, 'api_key');
      });

      test('with the notification lost, a request or a dispatch on the old stream is still refused from the rotation on', async () => {
        const plane = await cp.dataPlane('default', 'lost-notification');
        const workflows = [{ name: 'lost-notification', version: 'v1', taskQueue: 'lost' }];
        const worker = client(WorkerClient, replica.grpcAddress);
        const gateway = client(GatewayClient, cp.grpcAddress);
        const talker = stream(worker, plane.credential);
        await talker.hello({ dataPlaneId: plane.id, slots: 0, workflows });
        const taker = stream(worker, plane.credential);
        await taker.hello({ dataPlaneId: plane.id, slots: 2, workflows });
        // As if the other replica's LISTEN connection had dropped: the rotation notifies nobody.
        await cp.sql.query('ALTER TABLE data_planes DISABLE TRIGGER data_planes_credential_changed');
        try {
          const rotated = await cp.api<{ credential: string }>('POST', `/v1/projects/default/data-planes/${plane.id}/rotate`);
          assert.equal(rotated.status, 200);
          const late = talker.send({ case: 'slots', value: { $typeName: 'cairn.worker.v1.SlotsUpdate', freeSlots: 1, draining: false } });
          const runId = randomUUID();
          await gatewayCall(gateway, 'startRun', { runId, workflowName: 'lost-notification', inputSize: 1n }, rotated.body.credential);
          for (const s of [talker, taker]) assert.equal((await s.ended()).code, grpc.status.UNAUTHENTICATED);
          assert.deepEqual(
            talker.takeAll('ack').map((a) => a.sequence),
            [],
            `the request after the rotation (sequence ${late}) got no Ack`,
          );
          assert.deepEqual(
            taker.takeAll('runTask').map((t) => t.runId),
            [],
            'the run was not pushed to the old stream',
          );
          // The run was given back, not lost: a worker with the new credential gets it.
          const fresh = stream(worker, rotated.body.credential);
          await fresh.hello({ dataPlaneId: plane.id, slots: 1, workflows });
          assert.equal((await fresh.next('runTask')).runId, runId);
        } finally {
          await cp.sql.query('ALTER TABLE data_planes ENABLE TRIGGER data_planes_credential_changed');
        }
      });

      test('with the notification lost, a run end sent on the old stream is not applied, and a start on its replica does not go to it', async () => {
        const plane = await cp.dataPlane('default', 'lost-end');
        const workflows = [{ name: 'lost-end', version: 'v1', taskQueue: 'lost-end' }];
        // Streams and starts on the replica that does not serve the rotation, which therefore learns of it only from the database.
        const worker = client(WorkerClient, replica.grpcAddress);
        const gateway = client(GatewayClient, replica.grpcAddress);
        const holder = stream(worker, plane.credential);
        await holder.hello({ dataPlaneId: plane.id, slots: 1, workflows });
        const held = randomUUID();
        await gatewayCall(gateway, 'startRun', { runId: held, workflowName: 'lost-end', inputSize: 1n }, plane.credential);
        const task = await holder.next('runTask', (t) => t.runId === held);
        const idle = stream(worker, plane.credential);
        await idle.hello({ dataPlaneId: plane.id, slots: 2, workflows });
        await cp.sql.query('ALTER TABLE data_planes DISABLE TRIGGER data_planes_credential_changed');
        try {
          const rotated = await cp.api<{ credential: string }>('POST', `/v1/projects/default/data-planes/${plane.id}/rotate`);
          assert.equal(rotated.status, 200);
          // The end goes in no round trip of its own first: the statement that would apply it checks the credential.
          const end = holder.send({
            case: 'completed',
            value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: held, epoch: task.epoch, outputSize: 1n },
          });
          assert.equal((await holder.ended()).code, grpc.status.UNAUTHENTICATED);
          assert.deepEqual(
            holder.takeAll('ack').map((a) => a.sequence),
            [],
            `the end (sequence ${end}) got no Ack`,
          );
          const described = await gatewayCall<{ run: RunInfo }>(gateway, 'describeRun', { runId: held }, rotated.body.credential);
          assert.equal(described.run.status, RunStatus.RUNNING, "the run did not end on the old stream's word");
          // A start on the replica of a stream with a free slot and the old credential is not inserted leased to it.
          const started = await gatewayCall<{ run: RunInfo }>(
            gateway,
            'startRun',
            { runId: randomUUID(), workflowName: 'lost-end', inputSize: 1n },
            rotated.body.credential,
          );
          assert.equal(started.run.status, RunStatus.QUEUED);
          // Its dispatch pass finds the credential stale too: the stream ends without the task.
          assert.equal((await idle.ended()).code, grpc.status.UNAUTHENTICATED);
          assert.deepEqual(
            idle.takeAll('runTask').map((t) => t.runId),
            [],
            'the run was not pushed to the old stream',
          );
        } finally {
          await cp.sql.query('ALTER TABLE data_planes ENABLE TRIGGER data_planes_credential_changed');
        }
      });

      test('a rotation by the command line ends the streams too, and a revoked data plane gets no new credential', async () => {
        const plane = await cp.dataPlane('default', 'rotated-by-command');
        const worker = client(WorkerClient, replica.grpcAddress);
        const current = stream(worker, plane.credential);
        await current.hello({ dataPlaneId: plane.id, slots: 1, workflows: [{ name: 'cmd', version: 'v1', taskQueue: 'cmd' }] });
        const token = `cdp_${randomBytes(32).toString('base64url')}`;
        const done = command(cp.databaseUrl, ['data-planes', 'create', '--name', 'rotated-by-command', '--id', plane.id, '--token', token]);
        assert.equal(done.status, 0, done.stderr);
        const status = await current.ended();
        assert.equal(status.code, grpc.status.UNAUTHENTICATED);
        assert.match(status.details, /rotated/);
        const fresh = stream(worker, token);
        await fresh.hello({ dataPlaneId: plane.id, slots: 1, workflows: [{ name: 'cmd', version: 'v1', taskQueue: 'cmd' }] });

        assert.equal((await cp.api('DELETE', `/v1/projects/default/data-planes/${plane.id}`)).status, 200);
        assert.equal((await fresh.ended()).code, grpc.status.UNAUTHENTICATED);
        const refused = await cp.api<ErrorBody>('POST', `/v1/projects/default/data-planes/${plane.id}/rotate`);
        assert.equal(refused.status, 409);
        assert.match(refused.body.error.message, /was revoked/);
        // Nor does the command revive the revoked secret.
        const revive = command(cp.databaseUrl, [
          'data-planes',
          'create',
          '--name',
          'rotated-by-command',
          '--id',
          plane.id,
          '--token',
          token,
        ]);
        assert.equal(revive.status, 1);
        assert.match(revive.stderr, /stays revoked/);
      });

      test('registering the same data plane at every start (as the local stack does) writes no audit entry', async () => {
        const id = randomUUID();
        const token = `cdp_${randomBytes(32).toString('base64url')}`;
        for (let start = 0; start < 3; start++) {
          const done = command(cp.databaseUrl, ['data-planes', 'create', '--name', 'local', '--id', id, '--token', token]);
          assert.equal(done.status, 0, done.stderr);
        }
        const ofPlane = async (action: string) =>
          (await audit(cp, BOOTSTRAP_KEY, 'default', action)).filter((e) => e.target.id === id).map((e) => e.action);
        assert.deepEqual(await ofPlane('data_plane.*'), ['data_plane.created']);
        const renamed = command(cp.databaseUrl, ['data-planes', 'create', '--name', 'local-2', '--id', id, '--token', token]);
        assert.equal(renamed.status, 0, renamed.stderr);
        const changed = command(cp.databaseUrl, ['data-planes', 'create', '--name', 'local-2', '--id', id]);
        assert.equal(changed.status, 0, changed.stderr);
        assert.deepEqual(await ofPlane('data_plane.*'), ['data_plane.credential_rotated', 'data_plane.renamed', 'data_plane.created']);
      });
    });

    test("StartRun with another tenant's run ID answers as any unusable ID does: nothing about the other tenant", async () => {
      const made = command(cp.databaseUrl, ['organizations', 'create', '--organization', 'victim']);
      assert.equal(made.status, 0, made.stderr);
      const victimKey = (JSON.parse(made.stdout) as { apiKey: string }).apiKey;
      const victimPlane = await cp.api<{ dataPlane: { id: string }; credential: string }>('POST', '/v1/projects/default/data-planes', {
        key: victimKey,
        body: { name: 'victim' },
      });
      assert.equal(victimPlane.status, 201);
      await cp.api('POST', '/v1/projects/default/workflows', { key: victimKey, body: { name: 'payroll', version: '1', taskQueue: 'hr' } });
      const attacker = await cp.dataPlane('default', 'attacker');
      for (const name of ['probe', 'other']) {
        assert.equal(
          (await cp.api('POST', '/v1/projects/default/workflows', { body: { name, version: '1', taskQueue: 'q' } })).status,
          201,
        );
      }
      const gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
      try {
        const secret = randomUUID();
        await gatewayCall(gateway, 'startRun', { runId: secret, workflowName: 'payroll', inputSize: 9n }, victimPlane.body.credential);
        const own = randomUUID();
        await gatewayCall(gateway, 'startRun', { runId: own, workflowName: 'other', inputSize: 1n }, attacker.credential);

        const answer = async (runId: string): Promise<{ code: grpc.status; details: string }> => {
          try {
            await gatewayCall(gateway, 'startRun', { runId, workflowName: 'probe', inputSize: 1n }, attacker.credential);
            return { code: grpc.status.OK, details: 'started' };
          } catch (error) {
            const e = error as grpc.ServiceError;
            return { code: e.code, details: e.details.replace(runId, '<id>') };
          }
        };
        // The victim's run ID and the attacker's own run of another workflow: the same answer.
        const foreign = await answer(secret);
        const ownClash = await answer(own);
        assert.deepEqual(foreign, ownClash);
        assert.equal(foreign.code, grpc.status.FAILED_PRECONDITION);
        assert.doesNotMatch(foreign.details, /taken|another|exists|victim|payroll/i);

        // At the concurrent-run quota a fresh ID is refused with the quota; so is the victim's ID
        // (it used to answer "taken", since the quota check looked at every data plane's runs).
        assert.equal(
          (await cp.api('PUT', '/v1/projects/default/quotas', { body: { maxConcurrentRuns: 0, maxStepsPerMonth: null } })).status,
          200,
        );
        try {
          const fresh = await answer(randomUUID());
          assert.equal(fresh.code, grpc.status.RESOURCE_EXHAUSTED);
          assert.deepEqual(await answer(secret), fresh);
        } finally {
          await cp.api('PUT', '/v1/projects/default/quotas', { body: { maxConcurrentRuns: null, maxStepsPerMonth: null } });
        }
        // The victim's run is untouched, and the attempt is in the control plane's log (IDs only).
        const victimRun = await cp.api<{ run: { workflowName: string; dataPlaneId: string } }>(
          'GET',
          `/v1/projects/default/runs/${secret}`,
          {
            key: victimKey,
          },
        );
        assert.deepEqual([victimRun.body.run.workflowName, victimRun.body.run.dataPlaneId], ['payroll', victimPlane.body.dataPlane.id]);
        await cp.logged(
          'the refused StartRun',
          (l) => l.includes('StartRun named a run ID another data plane holds') && l.includes(attacker.id),
        );
      } finally {
        gateway.close();
      }
    });

    describe('failed credential guesses', () => {
      // A process of its own: the throttle is per process, and these tests spend its budget.
      let guarded: ControlPlaneFixture;

      before(async () => {
        guarded = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true', CAIRN_CP_TRUSTED_PROXIES: '127.0.0.1' } });
      });

      after(async () => {
        await guarded?.close();
      });

      const whoami = (key: string | null, from?: string) =>
        fetch(`${guarded.httpUrl}/v1/whoami`, {
          headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...(from ? { 'x-forwarded-for': from } : {}) },
        });

      /** Guesses from `from` until one is throttled (the address's budget is spent now); answers that response. */
      const exhaust = async (from: string): Promise<Response> => {
        for (let i = 0; i < 40; i++) {
          const res = await whoami(freshSecret(), from);
          if (res.status === 429) return res;
          assert.equal(res.status, 401);
        }
        throw new Error(`40 guesses from ${from} were never throttled`);
      };

      test('REST: guessed API keys are throttled per address with 429 and Retry-After; known keys and other addresses are not', async () => {
        const known = await guarded.key('viewer');
        assert.equal((await whoami(known, '203.0.113.5')).status, 200, 'a key that works, used from the attacked address');
        const later = await guarded.key('viewer');
        const stranger = await guarded.key('viewer');
        // No credential is not a guess: never throttled.
        for (let i = 0; i < 30; i++) assert.equal((await whoami(null, '203.0.113.5')).status, 401);
        const statuses: number[] = [];
        for (let i = 0; i < 20; i++) statuses.push((await whoami(freshSecret(), '203.0.113.5')).status);
        assert.deepEqual(statuses, Array<number>(20).fill(401), 'twenty guesses are checked');
        const throttled = await exhaust('203.0.113.5');
        const retryAfter = Number(throttled.headers.get('retry-after'));
        assert.ok(retryAfter >= 1 && retryAfter <= 3, `Retry-After: ${retryAfter}`);
        const body = (await throttled.json()) as ErrorBody;
        assert.equal(body.error.code, 'CAIRN-1142');
        assert.match(body.error.message, /too many failed attempts/);
        // The attacker cannot lock out a key that has worked, even from the same address…
        assert.equal((await whoami(known, '203.0.113.5')).status, 200);
        // …nor anyone at another address. A key never seen here waits at the attacked address (the documented trade-off).
        assert.equal((await whoami(later, '198.51.100.7')).status, 200);
        assert.equal((await whoami(freshSecret(), '198.51.100.7')).status, 401);
        await exhaust('203.0.113.5');
        assert.equal((await whoami(stranger, '203.0.113.5')).status, 429);
        // Logged by address, never with the key.
        await guarded.logged('the refused key by address', (l) => l.includes('API key refused') && l.includes('203.0.113.5'));
      });

      test('gRPC: guessed data-plane credentials get RESOURCE_EXHAUSTED with retry-after; the real credential keeps working', async () => {
        const plane = await guarded.dataPlane('default', 'guarded');
        const gateway = new GatewayClient(guarded.grpcAddress, grpc.credentials.createInsecure());
        const worker = new WorkerClient(guarded.grpcAddress, grpc.credentials.createInsecure());
        try {
          await rejectsWith(gatewayCall(gateway, 'describeRun', { runId: randomUUID() }, plane.credential), grpc.status.NOT_FOUND);
          let refused = 0;
          let exhausted: grpc.ServiceError | null = null;
          for (let i = 0; i < 40 && !exhausted; i++) {
            try {
              await gatewayCall(gateway, 'describeRun', { runId: randomUUID() }, `cdp_${randomBytes(32).toString('base64url')}`);
            } catch (error) {
              const e = error as grpc.ServiceError;
              if (e.code === grpc.status.UNAUTHENTICATED) refused++;
              else if (e.code === grpc.status.RESOURCE_EXHAUSTED) exhausted = e;
              else throw e;
            }
          }
          assert.ok(exhausted, 'guessing is throttled');
          assert.ok(refused >= 1 && refused <= 20, `${refused} guesses were checked before the throttle`);
          assert.match(exhausted.details, /CAIRN-1142/);
          assert.ok(Number(exhausted.metadata.get('retry-after')[0]) >= 1);
          // A stream with a guessed credential is refused the same way (guessing on until it is).
          let ended: grpc.StatusObject | null = null;
          for (let i = 0; i < 10 && ended?.code !== grpc.status.RESOURCE_EXHAUSTED; i++) {
            const guess = new WorkerStream(worker, `cdp_${randomBytes(32).toString('base64url')}`);
            guess.sendHello({ dataPlaneId: plane.id, slots: 1 });
            ended = await guess.ended();
            assert.ok([grpc.status.UNAUTHENTICATED, grpc.status.RESOURCE_EXHAUSTED].includes(ended.code), ended.details);
          }
          assert.equal(ended?.code, grpc.status.RESOURCE_EXHAUSTED);
          assert.match(ended.details, /CAIRN-1142/);
          assert.ok(Number(ended.metadata.get('retry-after')[0]) >= 1);
          // The data plane's own credential is not locked out.
          await rejectsWith(gatewayCall(gateway, 'describeRun', { runId: randomUUID() }, plane.credential), grpc.status.NOT_FOUND);
          const own = new WorkerStream(worker, plane.credential);
          await own.hello({ dataPlaneId: plane.id, slots: 1 });
          own.close();
        } finally {
          gateway.close();
          worker.close();
        }
      });
    });

    test('/metrics needs a token on the API port by default, or is served on a port of its own', async () => {
      const closed = await fetch(`${cp.httpUrl}/metrics`);
      assert.equal(closed.status, 401);
      const body = (await closed.json()) as ErrorBody;
      assert.match(body.error.message, /CAIRN_METRICS_TOKEN/);
      assert.match(body.error.message, /CAIRN_CP_METRICS_PORT/);

      const token = `mt_${randomBytes(32).toString('base64url')}`;
      const separate = await startControlPlaneProcess(server, {
        databaseUrl: cp.databaseUrl,
        env: { CAIRN_CP_METRICS_PORT: '0' },
      });
      const withToken = await startControlPlaneProcess(server, {
        databaseUrl: cp.databaseUrl,
        env: { CAIRN_CP_METRICS_PORT: '0', CAIRN_METRICS_TOKEN: token },
      });
      try {
        const portOf = (fixture: ControlPlaneFixture): number => {
          const line = fixture.lines.find((l) => l.includes('"control plane listening"'))!;
          return (JSON.parse(line) as { metricsPort: number }).metricsPort;
        };
        const open = `http://127.0.0.1:${portOf(separate)}`;
        const scraped = await fetch(`${open}/metrics`);
        assert.equal(scraped.status, 200);
        assert.match(await scraped.text(), /cairn_worker_sessions/);
        assert.equal((await fetch(`${open}/v1/whoami`)).status, 404, 'the metrics port serves nothing else');
        assert.equal((await fetch(`${separate.httpUrl}/metrics`)).status, 401, 'and the API port still refuses');

        // With a token: needed on both ports.
        const tokenPort = `http://127.0.0.1:${portOf(withToken)}`;
        for (const url of [`${tokenPort}/metrics`, `${withToken.httpUrl}/metrics`]) {
          assert.equal((await fetch(url)).status, 401);
          assert.equal((await fetch(url, { headers: { authorization: `Bearer not-${token}` } })).status, 401);
          assert.equal((await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status, 200);
        }
        // A weak token stops the start, naming the variable and never the value.
        const weak = refusedStart(cp.databaseUrl, { CAIRN_METRICS_TOKEN: 'metrics-token-123' });
        assert.equal(weak.status, 1);
        assert.match(weak.output, /CAIRN_METRICS_TOKEN: is too weak \(CAIRN-1143\)/);
        assert.ok(!weak.output.includes('metrics-token-123'));
      } finally {
        await separate.close();
        await withToken.close();
      }
    });
  });
}
