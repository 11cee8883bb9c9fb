// The audit log against a real control-plane process: administrative actions with the acting key,
// run lifecycle transitions from the trigger in order, tamper detection by the chain verification
// (a changed row, a deleted row) and a chain that verifies after thousands of entries written at
// once through two replicas, each running its sealer.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { RunSuspendedSchema, SuspendReason, create, type RunInfo } from '@cairn/proto';
import { startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, type ServiceClient } from './testing/grpc.js';

interface Entry {
  id: string;
  position: number | null;
  occurredAt: string;
  organizationId: string;
  projectId: string;
  actor: { type: string; id: string | null };
  action: string;
  target: { type: string; id: string };
  metadata: Record<string, unknown>;
  hash: string | null;
}
interface Verification {
  ok: boolean;
  entries: number;
  head: { position: number; hash: string } | null;
  broken?: { position: number; entryId: string | null; reason: string; detail: string };
}

for (const kind of testPostgresKinds()) {
  describe(`audit log on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;
    let replica: ControlPlaneFixture;
    const clients: ServiceClient[] = [];
    const streams: WorkerStream[] = [];

    before(async () => {
      server = await testPostgres(kind);
      cp = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true' } });
      replica = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true' }, databaseUrl: cp.databaseUrl });
    });

    after(async () => {
      for (const s of streams) s.close();
      for (const c of clients) c.close();
      await replica?.close();
      await cp?.close();
      await server?.stop();
    });

    const createProject = async (name: string): Promise<string> => {
      const res = await cp.api<{ project: { id: string } }>('POST', '/v1/projects', { body: { name } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body.project.id;
    };

    /** Every entry of a project matching `query`, following the cursor; newest first. */
    const entries = async (project: string, query = '', on: ControlPlaneFixture = cp, key?: string): Promise<Entry[]> => {
      const all: Entry[] = [];
      let cursor: string | null = null;
      do {
        const sep: string = query === '' ? '?' : `?${query}&`;
        const res: { status: number; body: { entries: Entry[]; nextCursor: string | null } } = await on.api(
          'GET',
          `/v1/projects/${project}/audit${sep}limit=200${cursor === null ? '' : `&cursor=${cursor}`}`,
          key === undefined ? {} : { key },
        );
        assert.equal(res.status, 200, JSON.stringify(res.body));
        all.push(...res.body.entries);
        cursor = res.body.nextCursor;
      } while (cursor !== null);
      return all;
    };

    const verify = async (project: string, on: ControlPlaneFixture = cp): Promise<Verification> => {
      const res = await on.api<Verification>('POST', `/v1/projects/${project}/audit/verify`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };

    /** Runs SQL as someone with direct database access who bypasses the table's append-only trigger. */
    const tamper = async (sql: string, values: unknown[]): Promise<void> => {
      const client = await cp.sql.connect();
      try {
        await client.query('BEGIN');
        await client.query('SET LOCAL session_replication_role = replica');
        await client.query(sql, values);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    };

    test('administrative actions are recorded with the acting key, and only auditors and admins read them', async () => {
      const bootstrap = (await cp.api<{ keyId: string }>('GET', '/v1/whoami')).body.keyId;
      const projectId = await createProject('audited');
      const adminSecret = await cp.key('admin', { project: 'audited' });
      const admin = (await cp.api<{ keyId: string }>('GET', '/v1/whoami', { key: adminSecret })).body.keyId;

      const viewerKey = await cp.api<{ apiKey: { id: string }; secret: string }>('POST', '/v1/projects/audited/api-keys', {
        key: adminSecret,
        body: { name: 'reader', role: 'viewer' },
      });
      assert.equal(viewerKey.status, 201);
      assert.equal((await cp.api('DELETE', `/v1/projects/audited/api-keys/${viewerKey.body.apiKey.id}`, { key: adminSecret })).status, 200);
      const dp = await cp.api<{ dataPlane: { id: string } }>('POST', '/v1/projects/audited/data-planes', {
        key: adminSecret,
        body: { name: 'edge' },
      });
      assert.equal(dp.status, 201);
      assert.equal((await cp.api('DELETE', `/v1/projects/audited/data-planes/${dp.body.dataPlane.id}`, { key: adminSecret })).status, 200);
      assert.equal(
        (
          await cp.api('PUT', '/v1/projects/audited/quotas', {
            key: adminSecret,
            body: { maxConcurrentRuns: 10, maxStepsPerMonth: null },
          })
        ).status,
        200,
      );

      const auditor = await cp.key('auditor', { project: 'audited' });
      const viewer = await cp.key('viewer', { project: 'audited' });
      assert.equal((await cp.api('GET', '/v1/projects/audited/audit', { key: viewer })).status, 403);
      assert.equal((await cp.api('POST', '/v1/projects/audited/audit/verify', { key: viewer })).status, 403);
      const seen = (await entries('audited', '', cp, auditor)).reverse();
      const summary = seen.map((e) => [e.action, e.actor.type, e.actor.id, e.target.type]);
      assert.deepEqual(summary.slice(0, 7), [
        ['project.created', 'api_key', bootstrap, 'project'],
        ['api_key.created', 'api_key', bootstrap, 'api_key'],
        ['api_key.created', 'api_key', admin, 'api_key'],
        ['api_key.revoked', 'api_key', admin, 'api_key'],
        ['data_plane.created', 'api_key', admin, 'data_plane'],
        ['data_plane.revoked', 'api_key', admin, 'data_plane'],
        ['quota.updated', 'api_key', admin, 'project'],
      ]);
      assert.deepEqual(seen[2]!.metadata, { name: 'reader', role: 'viewer', organizationWide: false, expiresAt: null });
      assert.equal(seen[3]!.target.id, viewerKey.body.apiKey.id);
      assert.deepEqual(seen[6]!.metadata, {
        maxConcurrentRuns: 10,
        maxStepsPerMonth: null,
        previousMaxConcurrentRuns: null,
        previousMaxStepsPerMonth: null,
      });
      for (const e of seen) assert.deepEqual([e.projectId, typeof e.organizationId], [projectId, 'string']);
      // Secrets never reach the log.
      assert.doesNotMatch(JSON.stringify(seen), new RegExp(viewerKey.body.secret));

      // Filters: an action prefix, a target, a time window.
      const keys = await entries('audited', 'action=api_key.*', cp, auditor);
      assert.deepEqual(keys.map((e) => e.action).sort(), [
        'api_key.created',
        'api_key.created',
        'api_key.created',
        'api_key.created',
        'api_key.revoked',
      ]);
      const onTarget = await entries('audited', `targetId=${viewerKey.body.apiKey.id}`, cp, auditor);
      assert.deepEqual(
        onTarget.map((e) => e.action),
        ['api_key.revoked', 'api_key.created'],
      );
      assert.deepEqual(await entries('audited', `to=${encodeURIComponent(seen[0]!.occurredAt)}`, cp, auditor), []);
      assert.equal((await cp.api('GET', '/v1/projects/audited/audit?cursor=nonsense', { key: auditor })).status, 400);

      const verified = await verify('audited');
      assert.equal(verified.ok, true, JSON.stringify(verified));
      assert.equal(verified.entries, seen.length);
    });

    test("a run's lifecycle transitions appear in order, with epochs and actors", async () => {
      await createProject('lifecycle');
      const dp = await cp.dataPlane('lifecycle', 'lc');
      const gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
      const workerClient = new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure());
      clients.push(gateway, workerClient);
      const w = new WorkerStream(workerClient, dp.credential);
      streams.push(w);
      await w.hello({ dataPlaneId: dp.id, slots: 1 });
      const { run } = await gatewayCall<{ run: RunInfo }>(
        gateway,
        'startRun',
        { runId: randomUUID(), workflowName: 'greet', workflowVersion: '', idempotencyDigest: '', inputSize: 5n },
        dp.credential,
      );
      const first = await w.next('runTask', (t) => t.runId === run.runId);
      // A short sleep: the run suspends and the control plane's timer queues it again.
      const suspended = w.send({
        case: 'suspended',
        value: create(RunSuspendedSchema, {
          runId: run.runId,
          epoch: first.epoch,
          reason: SuspendReason.SLEEP,
          wakeAt: BigInt(Date.now() + 300),
        }),
      });
      await w.next('ack', (a) => a.sequence === suspended);
      const second = await w.next('runTask', (t) => t.runId === run.runId);
      const done = w.send({
        case: 'completed',
        value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: run.runId, epoch: second.epoch, outputSize: 3n },
      });
      await w.next('ack', (a) => a.sequence === done);

      assert.equal((await verify('lifecycle')).ok, true);
      const trail = (await entries('lifecycle', `targetId=${run.runId}`)).sort((a, b) => a.position! - b.position!);
      assert.deepEqual(
        trail.map((e) => [e.action, e.metadata['epoch'], e.actor.type]),
        [
          ['run.queued', 0, 'data_plane'],
          ['run.running', 1, 'data_plane'],
          ['run.suspended', 1, 'data_plane'],
          ['run.queued', 1, 'system'],
          ['run.running', 2, 'data_plane'],
          ['run.completed', 2, 'data_plane'],
        ],
      );
      assert.deepEqual(
        trail.map((e) => e.metadata['from'] ?? null),
        [null, 'queued', 'running', 'suspended', 'queued', 'running'],
      );
      assert.equal(trail[3]!.metadata['wakeReason'], 'timer');
      assert.equal(trail[0]!.actor.id, dp.id);
      assert.deepEqual(trail[0]!.metadata, {
        status: 'queued',
        epoch: 0,
        workflow: 'greet',
        version: 'v1',
        dataPlaneId: dp.id,
        wakeReason: 'start',
      });
    });

    test('workflow registration and operator actions through REST are recorded with the acting key; a fork respects quotas', async () => {
      await createProject('operated');
      const adminSecret = await cp.key('admin', { project: 'operated' });
      const operatorSecret = await cp.key('operator', { project: 'operated' });
      const admin = (await cp.api<{ keyId: string }>('GET', '/v1/whoami', { key: adminSecret })).body.keyId;
      const operator = (await cp.api<{ keyId: string }>('GET', '/v1/whoami', { key: operatorSecret })).body.keyId;
      for (const name of ['greet', 'old']) {
        const registered = await cp.api('POST', '/v1/projects/operated/workflows', {
          key: adminSecret,
          body: { name, version: 'v1', taskQueue: 'default' },
        });
        assert.equal(registered.status, 201, JSON.stringify(registered.body));
      }
      assert.equal((await cp.api('POST', '/v1/projects/operated/workflows/old/versions/v1/deprecate', { key: adminSecret })).status, 200);

      const dp = await cp.dataPlane('operated', 'ops');
      const gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
      const workerClient = new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure());
      clients.push(gateway, workerClient);
      const w = new WorkerStream(workerClient, dp.credential);
      streams.push(w);
      await w.hello({ dataPlaneId: dp.id, slots: 0 });
      const start = async (): Promise<string> =>
        (
          await gatewayCall<{ run: RunInfo }>(
            gateway,
            'startRun',
            { runId: randomUUID(), workflowName: 'greet', workflowVersion: '', idempotencyDigest: '', inputSize: 1n },
            dp.credential,
          )
        ).run.runId;
      const cancelled = await start();
      const terminated = await start();
      const op = (path: string, body?: unknown) => cp.api('POST', `/v1/projects/operated/runs/${path}`, { key: operatorSecret, body });
      assert.equal((await op(`${cancelled}/cancel`)).status, 200);
      assert.equal((await op(`${terminated}/terminate`)).status, 200);
      const forked = await cp.api<{ run: { id: string } }>('POST', `/v1/projects/operated/runs/${terminated}/fork`, {
        key: operatorSecret,
        body: { fromStep: 0 },
      });
      assert.equal(forked.status, 201, JSON.stringify(forked.body));

      const seen = (await entries('operated')).reverse();
      const admins = seen.filter((e) => e.action.startsWith('workflow.'));
      assert.deepEqual(
        admins.map((e) => [e.action, e.actor.id, e.target.id]),
        [
          ['workflow.registered', admin, 'greet@v1'],
          ['workflow.registered', admin, 'old@v1'],
          ['workflow.deprecated', admin, 'old@v1'],
        ],
      );
      const about = (runId: string) => seen.filter((e) => e.target.id === runId).map((e) => [e.action, e.actor.type, e.actor.id]);
      assert.deepEqual(about(cancelled), [
        ['run.queued', 'data_plane', dp.id],
        ['run.cancelled', 'api_key', operator],
        ['run.cancel_requested', 'api_key', operator],
      ]);
      assert.deepEqual(about(terminated), [
        ['run.queued', 'data_plane', dp.id],
        ['run.terminated', 'api_key', operator],
        ['run.terminate_requested', 'api_key', operator],
      ]);
      assert.deepEqual(about(forked.body.run.id), [
        ['run.queued', 'api_key', operator],
        ['run.forked', 'api_key', operator],
      ]);
      assert.equal(seen.find((e) => e.action === 'run.forked')!.metadata['sourceRunId'], terminated);

      // The fork is a run like any other: at the concurrent-run quota it is refused with 429.
      await cp.api('PUT', '/v1/projects/operated/quotas', { body: { maxConcurrentRuns: 1, maxStepsPerMonth: null } });
      const refused = await cp.api<{ error: { code: string; message: string } }>('POST', `/v1/projects/operated/runs/${terminated}/fork`, {
        key: operatorSecret,
        body: { fromStep: 0 },
      });
      assert.equal(refused.status, 429);
      assert.equal(refused.body.error.code, 'CAIRN-1112');
      assert.match(refused.body.error.message, /1 of 1 runs have not ended/);
      assert.equal((await verify('operated')).ok, true);
    });

    test('verification finds a changed entry at its position, and a deleted entry as a gap', async () => {
      await createProject('tamper');
      for (let i = 0; i < 5; i++) await cp.key('viewer', { project: 'tamper' });
      const before = await verify('tamper');
      assert.deepEqual([before.ok, before.entries], [true, 6]);
      const rows = (await entries('tamper')).sort((a, b) => a.position! - b.position!);
      assert.deepEqual(
        rows.map((e) => e.position),
        [1, 2, 3, 4, 5, 6],
      );

      // The table refuses changes through ordinary SQL.
      await assert.rejects(cp.sql.query(`UPDATE audit_log SET metadata = '{}' WHERE id = $1`, [rows[2]!.id]), /append-only/);
      await assert.rejects(cp.sql.query('DELETE FROM audit_log WHERE id = $1', [rows[2]!.id]), /append-only/);

      // Someone with direct database access changes one entry's metadata.
      await tamper(`UPDATE audit_log SET metadata = jsonb_set(metadata, '{role}', '"admin"') WHERE id = $1`, [rows[2]!.id]);
      const changed = await verify('tamper');
      assert.equal(changed.ok, false);
      assert.deepEqual(
        [changed.broken!.position, changed.broken!.entryId, changed.broken!.reason, changed.entries],
        [3, rows[2]!.id, 'hash_mismatch', 2],
      );
      assert.match(changed.broken!.detail, new RegExp(`entry ${rows[2]!.id} at position 3 does not match its hash`));
      // Put back, the chain verifies again.
      await tamper(`UPDATE audit_log SET metadata = $2 WHERE id = $1`, [rows[2]!.id, JSON.stringify(rows[2]!.metadata)]);
      assert.equal((await verify('tamper')).ok, true);

      // An entry deleted from the middle is a gap at its position.
      await tamper('DELETE FROM audit_log WHERE id = $1', [rows[3]!.id]);
      const gap = await verify('tamper');
      assert.equal(gap.ok, false);
      assert.deepEqual([gap.broken!.position, gap.broken!.entryId, gap.broken!.reason], [4, rows[4]!.id, 'missing_entry']);
      assert.match(gap.broken!.detail, /no entry at position 4: the chain jumps to position 5/);
    });

    test('the newest entries deleted are found against the chain head', async () => {
      await createProject('truncated');
      for (let i = 0; i < 3; i++) await cp.key('viewer', { project: 'truncated' });
      assert.equal((await verify('truncated')).ok, true);
      const rows = (await entries('truncated')).sort((a, b) => a.position! - b.position!);
      await tamper('DELETE FROM audit_log WHERE id = $1', [rows[rows.length - 1]!.id]);
      const cut = await verify('truncated');
      assert.equal(cut.ok, false);
      assert.deepEqual([cut.broken!.position, cut.broken!.reason], [rows.length, 'missing_entry']);
      assert.match(cut.broken!.detail, /the newest entries were deleted/);
    });

    test('the chain verifies after thousands of entries written at once through two replicas', async () => {
      const projectId = await createProject('busy');
      const dp = await cp.dataPlane('busy', 'busy-dp');
      const gateways = [cp, replica].map((r) => {
        const client = new GatewayClient(r.grpcAddress, grpc.credentials.createInsecure());
        clients.push(client);
        return client;
      });
      const announcer = new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure());
      clients.push(announcer);
      const w = new WorkerStream(announcer, dp.credential);
      streams.push(w);
      await w.hello({ dataPlaneId: dp.id, slots: 0 });

      const runs = 2_000;
      const keys = 100;
      let next = 0;
      const starter = async (lane: number): Promise<void> => {
        while (next < runs) {
          next += 1;
          await gatewayCall(
            gateways[lane % 2]!,
            'startRun',
            { runId: randomUUID(), workflowName: 'greet', workflowVersion: '', idempotencyDigest: '', inputSize: 1n },
            dp.credential,
          );
        }
      };
      let made = 0;
      const keyMaker = async (lane: number): Promise<void> => {
        while (made < keys) {
          made += 1;
          const on = lane % 2 === 0 ? cp : replica;
          const res = await on.api('POST', '/v1/projects/busy/api-keys', { body: { name: `k${made}`, role: 'viewer' } });
          assert.equal(res.status, 201);
        }
      };
      // Verifications while the writes go on: each seals what is committed and finds it intact.
      const checks = async (): Promise<void> => {
        for (let i = 0; i < 4; i++) {
          const v = await verify('busy', i % 2 === 0 ? replica : cp);
          assert.equal(v.ok, true, JSON.stringify(v));
        }
      };
      await Promise.all([
        ...Array.from({ length: 32 }, (_, lane) => starter(lane)),
        ...Array.from({ length: 4 }, (_, lane) => keyMaker(lane)),
        checks(),
      ]);

      const final = await verify('busy', replica);
      const expected = runs + keys + 2; // plus the project and the data plane
      assert.deepEqual([final.ok, final.entries, final.head?.position], [true, expected, expected], JSON.stringify(final.broken));
      const stored = await cp.sql.query<{ n: number; min: string; max: string; sealed: number }>(
        'SELECT count(*)::int AS n, min(position) AS min, max(position) AS max, count(position)::int AS sealed FROM audit_log WHERE project_id = $1',
        [projectId],
      );
      assert.deepEqual(stored.rows[0], { n: expected, min: '1', max: String(expected), sealed: expected });
    });
  });
}
