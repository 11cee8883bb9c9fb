// Attacks on the audit log against a real control-plane process serving as its service role, on
// real Postgres: what that role is refused (deleting the tail, changing or forging sealed rows,
// TRUNCATE, switching triggers off, diverting the run trigger), and what someone with the owner's
// rights can do and how it is caught — by the control plane's own verification while the newest
// signed checkpoint is still in the database, and by a checkpoint kept outside it once that is gone.
// The outside verifier here is @cairn/common's, over the REST API, as the CLI runs it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import {
  AUDIT_GENESIS_HASH,
  AuditChainVerifier,
  auditEntryHash,
  parseAuditPublicKeys,
  verifyAuditCheckpointSignature,
  type AuditChainEntry,
  type AuditChainVerification,
  type AuditCheckpoint,
} from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import type { RunInfo } from '@cairn/proto';
import { controlPlaneMain, startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, type ServiceClient } from './testing/grpc.js';

const execFileAsync = promisify(execFile);

interface ApiEntry {
  id: string;
  position: number;
  occurredAt: string;
  organizationId: string;
  projectId: string;
  actor: { type: string; id: string | null };
  action: string;
  target: { type: string; id: string };
  metadata: Record<string, unknown>;
  hash: string;
}
interface ChainPage {
  entries: ApiEntry[];
  head: { position: number; hash: string } | null;
  nextAfter: number | null;
}
interface Verification {
  ok: boolean;
  entries: number;
  checkpoint: { position: number; hash: string } | null;
  broken?: { position: number; reason: string; detail: string };
}

const toChain = (e: ApiEntry): AuditChainEntry => ({
  id: e.id,
  position: e.position,
  occurredAt: e.occurredAt,
  organizationId: e.organizationId,
  projectId: e.projectId,
  actorType: e.actor.type,
  actorId: e.actor.id,
  action: e.action,
  targetType: e.target.type,
  targetId: e.target.id,
  metadata: e.metadata,
  hash: e.hash,
});

/** Rejects with a Postgres error of this SQLSTATE whose message matches. */
async function refused(promise: Promise<unknown>, sqlstate: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: { code?: string; message: string }) => {
    assert.equal(error.code, sqlstate, error.message);
    assert.match(error.message, message);
    return true;
  });
}

for (const kind of testPostgresKinds()) {
  describe(`audit log under attack on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;
    let service: pg.Pool;
    const clients: ServiceClient[] = [];
    const streams: WorkerStream[] = [];

    before(async () => {
      server = await testPostgres(kind);
      cp = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true' } });
      service = new pg.Pool({ connectionString: cp.serviceUrl, max: 2 });
      service.on('error', () => undefined);
    });

    after(async () => {
      for (const s of streams) s.close();
      for (const c of clients) c.close();
      await service?.end();
      await cp?.close();
      await server?.stop();
    });

    /** A project with `keys` API keys created in it: that many entries plus its own creation. */
    const project = async (name: string, keys: number): Promise<string> => {
      const res = await cp.api<{ project: { id: string } }>('POST', '/v1/projects', { body: { name } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      for (let i = 0; i < keys; i++) await cp.key('viewer', { project: name });
      return res.body.project.id;
    };
    const verify = async (name: string): Promise<Verification> => {
      const res = await cp.api<Verification>('POST', `/v1/projects/${name}/audit/verify`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const chain = async (name: string): Promise<ChainPage> => {
      const res = await cp.api<ChainPage>('GET', `/v1/projects/${name}/audit/chain?limit=1000`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const checkpoint = async (name: string): Promise<AuditCheckpoint> => {
      const res = await cp.api<{ checkpoint: AuditCheckpoint }>('POST', `/v1/projects/${name}/audit/checkpoints`);
      assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
      return res.body.checkpoint;
    };
    /** Verification as someone outside: every hash recomputed from the entries the API returns, against kept checkpoints. */
    const outside = async (name: string, kept: AuditCheckpoint[]): Promise<AuditChainVerification> => {
      const keys = await (await fetch(`${cp.httpUrl}/.well-known/cairn-audit-keys`)).text();
      const trusted = parseAuditPublicKeys(keys, 'the published keys');
      for (const k of kept) assert.equal(verifyAuditCheckpointSignature(k, trusted).ok, true);
      await verify(name); // seals what is pending
      const page = await chain(name);
      const verifier = new AuditChainVerifier(
        kept.map((k) => ({ position: k.position, hash: k.hash, label: `the checkpoint signed at ${k.signedAt}` })),
      );
      for (const e of page.entries) if (verifier.add(toChain(e))) break;
      return verifier.finish(page.head);
    };
    /** Runs SQL with the owner's (here a superuser's) rights, triggers off, as someone covering their tracks would. */
    const asOwner = async (work: (q: pg.PoolClient) => Promise<void>): Promise<void> => {
      const client = await cp.sql.connect();
      try {
        await client.query('BEGIN');
        await client.query('SET LOCAL session_replication_role = replica');
        await work(client);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    };
    /** Recomputes every hash from `from` on, and the head, so the rewritten chain is consistent on its own. */
    const rehash = async (q: pg.PoolClient, projectId: string, from: number): Promise<void> => {
      const rows = await q.query<{ id: string; position: string; hash: string }>(
        'SELECT id, position, hash FROM audit_log WHERE project_id = $1 AND position IS NOT NULL ORDER BY position',
        [projectId],
      );
      const entries = (await chain(projectId)).entries; // the content as the API presents it
      let previous = AUDIT_GENESIS_HASH;
      for (const row of rows.rows) {
        const position = Number(row.position);
        const entry = entries.find((e) => e.id === row.id)!;
        const current = await q.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM audit_log WHERE id = $1', [row.id]);
        const hash =
          position < from ? row.hash : auditEntryHash(previous, { ...toChain(entry), metadata: current.rows[0]!.metadata }, position);
        if (position >= from) await q.query('UPDATE audit_log SET hash = $2 WHERE id = $1', [row.id, hash]);
        previous = hash;
      }
      const last = rows.rows[rows.rows.length - 1]!;
      await q.query('UPDATE audit_chain_heads SET position = $2, hash = $3 WHERE project_id = $1', [projectId, last.position, previous]);
    };

    test('the service role cannot delete, change, forge or truncate audit entries, switch the triggers off or divert them', async () => {
      const projectId = await project('guarded', 4);
      const before = await verify('guarded');
      assert.deepEqual([before.ok, before.entries], [true, 5]);
      const rows = (await chain('guarded')).entries;
      const last = rows[rows.length - 1]!;
      await checkpoint('guarded');

      // Tail deletion, changing a sealed row, TRUNCATE: no privilege.
      await refused(service.query('DELETE FROM audit_log WHERE id = $1', [last.id]), '42501', /permission denied for table audit_log/);
      await refused(
        service.query(`UPDATE audit_log SET metadata = '{"role":"admin"}' WHERE id = $1`, [rows[1]!.id]),
        '42501',
        /permission denied for table audit_log/,
      );
      await refused(service.query('TRUNCATE audit_log'), '42501', /permission denied for table audit_log/);
      await refused(service.query('TRUNCATE audit_chain_heads'), '42501', /permission denied for table audit_chain_heads/);
      await refused(service.query('UPDATE audit_chain_heads SET position = 1'), '42501', /permission denied for table audit_chain_heads/);
      await refused(service.query('DELETE FROM audit_checkpoints'), '42501', /permission denied for table audit_checkpoints/);
      await refused(service.query('UPDATE audit_checkpoints SET position = 0'), '42501', /permission denied for table audit_checkpoints/);
      // Switching the triggers off: not the owner, not a superuser.
      await refused(service.query('ALTER TABLE audit_log DISABLE TRIGGER ALL'), '42501', /must be owner of table audit_log/);
      await refused(
        service.query('SET session_replication_role = replica'),
        '42501',
        /permission denied to set parameter "session_replication_role"/,
      );
      // A forged row inserted already sealed, or back-dated: those columns are not the service role's to write.
      const forged = [projectId, 'api_key', last.actor.id, 'api_key.created', 'api_key', randomUUID(), '{"role":"admin"}'];
      await refused(
        service.query(
          `INSERT INTO audit_log (organization_id, project_id, actor_type, actor_id, action, target_type, target_id, metadata, position, hash)
           SELECT organization_id, $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM projects WHERE id = $1`,
          [...forged, last.position + 1, 'f'.repeat(64)],
        ),
        '42501',
        /permission denied for table audit_log/,
      );
      await refused(
        service.query(
          `INSERT INTO audit_log (organization_id, project_id, actor_type, actor_id, action, target_type, target_id, metadata, occurred_at)
           SELECT organization_id, $1, $2, $3, $4, $5, $6, $7, '2020-01-01' FROM projects WHERE id = $1`,
          forged,
        ),
        '42501',
        /permission denied for table audit_log/,
      );
      // The sealing function: a sealed row cannot be sealed again, positions cannot skip.
      await refused(
        service.query('SELECT cairn_audit_seal($1, $2::bigint[], $3::bigint[], $4::text[])', [
          projectId,
          [last.id],
          [last.position + 1],
          ['e'.repeat(64)],
        ]),
        '22023',
        /1 of 1 entries are not unsealed entries of the project/,
      );
      const client = await service.connect();
      try {
        await client.query('BEGIN');
        const inserted = await client.query<{ id: string }>(
          `INSERT INTO audit_log (organization_id, project_id, actor_type, actor_id, action, target_type, target_id, metadata)
           SELECT organization_id, $1, $2, $3, $4, $5, $6, $7 FROM projects WHERE id = $1 RETURNING id`,
          forged,
        );
        await refused(
          client.query('SELECT cairn_audit_seal($1, $2::bigint[], $3::bigint[], $4::text[])', [
            projectId,
            [inserted.rows[0]!.id],
            [last.position + 5],
            ['e'.repeat(64)],
          ]),
          '22023',
          new RegExp(`positions must continue the chain from position ${last.position + 1}`),
        );
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }

      // A temporary table named audit_log does not divert the run trigger's entry.
      const dp = await cp.dataPlane('guarded', 'edge');
      const gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
      const workerClient = new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure());
      clients.push(gateway, workerClient);
      const w = new WorkerStream(workerClient, dp.credential);
      streams.push(w);
      await w.hello({ dataPlaneId: dp.id, slots: 0 });
      const { run } = await gatewayCall<{ run: RunInfo }>(
        gateway,
        'startRun',
        { runId: randomUUID(), workflowName: 'greet', workflowVersion: '', idempotencyDigest: '', inputSize: 1n },
        dp.credential,
      );
      const diverter = await service.connect();
      try {
        await diverter.query(
          'CREATE TEMP TABLE audit_log (organization_id uuid, project_id uuid, actor_type text, actor_id uuid, action text, target_type text, target_id text, metadata jsonb)',
        );
        await diverter.query(`UPDATE runs SET status = 'cancelled', ended_at = now() WHERE id = $1`, [run.runId]);
        assert.equal((await diverter.query('SELECT count(*)::int AS n FROM pg_temp.audit_log')).rows[0].n, 0);
      } finally {
        diverter.release(true);
      }
      const trail = await cp.sql.query<{ action: string }>('SELECT action FROM audit_log WHERE target_id = $1 ORDER BY id', [run.runId]);
      assert.deepEqual(
        trail.rows.map((r) => r.action),
        ['run.queued', 'run.cancelled'],
      );

      const afterwards = await verify('guarded');
      assert.equal(afterwards.ok, true, JSON.stringify(afterwards));
      assert.equal(afterwards.entries, 5 + 3); // the data plane, and the run's two transitions
      assert.equal((await outside('guarded', [])).ok, true);
    });

    test('checkpoints are signed on demand and on a timer, verify with the published key, and the control plane checks its chain against the newest', async () => {
      const projectId = await project('signed', 2);
      const keys = (await (await fetch(`${cp.httpUrl}/.well-known/cairn-audit-keys`)).json()) as {
        keys: Array<{ kid: string; x: string }>;
      };
      assert.equal(keys.keys.length, 1);
      const first = await cp.api<{ checkpoint: AuditCheckpoint }>('POST', '/v1/projects/signed/audit/checkpoints');
      assert.equal(first.status, 201);
      assert.deepEqual(
        [first.body.checkpoint.projectId, first.body.checkpoint.position, first.body.checkpoint.entries, first.body.checkpoint.keyId],
        [projectId, 3, 3, keys.keys[0]!.kid],
      );
      assert.equal(first.body.checkpoint.hash, (await chain('signed')).head!.hash);
      assert.deepEqual(verifyAuditCheckpointSignature(first.body.checkpoint, parseAuditPublicKeys(keys.keys[0]!.x, 'x')), {
        ok: true,
        keyId: keys.keys[0]!.kid,
      });
      // Nothing new: the same checkpoint again.
      const again = await cp.api<{ checkpoint: AuditCheckpoint }>('POST', '/v1/projects/signed/audit/checkpoints');
      assert.deepEqual([again.status, again.body.checkpoint], [200, first.body.checkpoint]);
      await cp.key('viewer', { project: 'signed' });
      const second = await checkpoint('signed');
      assert.equal(second.position, 4);
      const list = await cp.api<{ checkpoints: AuditCheckpoint[]; nextCursor: string | null }>(
        'GET',
        '/v1/projects/signed/audit/checkpoints?limit=1',
      );
      assert.deepEqual([list.body.checkpoints, typeof list.body.nextCursor], [[second], 'string']);
      const older = await cp.api<{ checkpoints: AuditCheckpoint[]; nextCursor: string | null }>(
        'GET',
        `/v1/projects/signed/audit/checkpoints?limit=5&cursor=${list.body.nextCursor}`,
      );
      assert.deepEqual([older.body.checkpoints, older.body.nextCursor], [[first.body.checkpoint], null]);
      const verified = await verify('signed');
      assert.deepEqual([verified.ok, verified.checkpoint?.position], [true, 4]);
      // Auditors may keep checkpoints; viewers may not.
      const auditor = await cp.key('auditor', { project: 'signed' });
      assert.equal((await cp.api('POST', '/v1/projects/signed/audit/checkpoints', { key: auditor })).status, 201);
      const viewer = await cp.key('viewer', { project: 'signed' });
      assert.equal((await cp.api('POST', '/v1/projects/signed/audit/checkpoints', { key: viewer })).status, 403);

      // A replica with a one-second interval signs every project whose chain moved, and logs each.
      const ticking = await startControlPlaneProcess(server, {
        databaseUrl: cp.databaseUrl,
        env: { CAIRN_AUDIT_CHECKPOINT_INTERVAL_MS: '1000' },
      });
      try {
        await cp.key('viewer', { project: 'signed' });
        const deadline = Date.now() + 30_000;
        let newest: AuditCheckpoint | undefined;
        while (Date.now() < deadline) {
          newest = (await cp.api<{ checkpoints: AuditCheckpoint[] }>('GET', '/v1/projects/signed/audit/checkpoints?limit=1')).body
            .checkpoints[0];
          if (newest && newest.position === (await chain('signed')).head!.position) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(newest!.position, (await chain('signed')).head!.position);
        const logged = ticking.lines
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l['msg'] === 'audit checkpoint signed' && l['projectId'] === projectId);
        assert.ok(logged, 'the checkpoint is logged');
        assert.equal(logged['signature'], newest!.signature);
      } finally {
        await ticking.close();
      }
    });

    test('the owner cuts the tail and moves the head back: the newest stored checkpoint shows it; once that is deleted too, only a kept one does', async () => {
      const projectId = await project('cut', 5);
      const kept = await checkpoint('cut');
      assert.equal(kept.position, 6);
      await cp.key('viewer', { project: 'cut' });
      await checkpoint('cut'); // a newer stored checkpoint, at 7
      assert.equal((await outside('cut', [kept])).ok, true);

      const rows = (await chain('cut')).entries;
      await asOwner(async (q) => {
        await q.query('DELETE FROM audit_log WHERE project_id = $1 AND position > 4', [projectId]);
        await q.query('UPDATE audit_chain_heads SET position = 4, hash = $2 WHERE project_id = $1', [projectId, rows[3]!.hash]);
      });
      const caught = await verify('cut');
      assert.deepEqual([caught.ok, caught.broken?.reason, caught.broken?.position], [false, 'truncated', 5]);
      assert.match(caught.broken!.detail, /the chain ends at position 4 but the checkpoint signed at .* covers position 7/);
      // No checkpoint is signed over it either.
      const refusedCheckpoint = await cp.api<{ error: { code: string; message: string } }>('POST', '/v1/projects/cut/audit/checkpoints');
      assert.equal(refusedCheckpoint.status, 409);
      assert.equal(refusedCheckpoint.body.error.code, 'CAIRN-1150');

      await asOwner(async (q) => {
        await q.query('DELETE FROM audit_checkpoints WHERE project_id = $1', [projectId]);
      });
      // The control plane cannot tell any more: everything left in its database agrees.
      assert.deepEqual(await verify('cut'), { ok: true, entries: 4, head: { position: 4, hash: rows[3]!.hash }, checkpoint: null });
      const found = await outside('cut', [kept]);
      assert.deepEqual(!found.ok && [found.broken.reason, found.broken.position, found.entries], ['truncated', 5, 4]);
    });

    test('the owner forges a sealed row: its hash shows it; recomputing every later hash leaves a chain that no longer holds the kept checkpoint', async () => {
      const projectId = await project('forged', 4);
      const kept = await checkpoint('forged');
      const rows = (await chain('forged')).entries;
      // api_key.created with role viewer becomes admin.
      await asOwner(async (q) => {
        await q.query(`UPDATE audit_log SET metadata = jsonb_set(metadata, '{role}', '"admin"') WHERE id = $1`, [rows[2]!.id]);
      });
      const naive = await verify('forged');
      assert.deepEqual([naive.ok, naive.broken?.reason, naive.broken?.position], [false, 'hash_mismatch', 3]);
      const naiveOutside = await outside('forged', [kept]);
      assert.deepEqual(!naiveOutside.ok && [naiveOutside.broken.reason, naiveOutside.broken.position], ['hash_mismatch', 3]);

      await asOwner(async (q) => {
        await rehash(q, projectId, 3);
      });
      // The stored checkpoint still catches the rewrite...
      const stored = await verify('forged');
      assert.deepEqual([stored.ok, stored.broken?.reason, stored.broken?.position], [false, 'checkpoint_mismatch', kept.position]);
      await asOwner(async (q) => {
        await q.query('DELETE FROM audit_checkpoints WHERE project_id = $1', [projectId]);
      });
      // ...until it is deleted: then the control plane's own verification is satisfied, and signs the forgery.
      assert.equal((await verify('forged')).ok, true);
      assert.equal((await cp.api('POST', '/v1/projects/forged/audit/checkpoints')).status, 201);
      const found = await outside('forged', [kept]);
      assert.deepEqual(!found.ok && [found.broken.reason, found.broken.position], ['checkpoint_mismatch', kept.position]);
      assert.match(!found.ok ? found.broken.detail : '', /the history up to that position was rewritten/);
    });

    test('TRUNCATE by the owner empties the log: a kept checkpoint finds it, before and after new entries refill the positions', async () => {
      await project('truncated', 3);
      const kept = await checkpoint('truncated');
      await refused(service.query('TRUNCATE audit_log, audit_chain_heads, audit_checkpoints'), '42501', /permission denied/);
      // With the triggers on, even the owner is refused.
      await refused(cp.sql.query('TRUNCATE audit_log'), '42501', /audit_log is append-only: it cannot be truncated/);
      await asOwner(async (q) => {
        await q.query('TRUNCATE audit_log, audit_chain_heads, audit_checkpoints');
      });
      assert.deepEqual(await verify('truncated'), { ok: true, entries: 0, head: null, checkpoint: null });
      const empty = await outside('truncated', [kept]);
      assert.deepEqual(!empty.ok && [empty.broken.reason, empty.entries], ['truncated', 0]);
      for (let i = 0; i < 5; i++) await cp.key('viewer', { project: 'truncated' });
      const refilled = await outside('truncated', [kept]);
      assert.deepEqual(!refilled.ok && [refilled.broken.reason, refilled.broken.position], ['checkpoint_mismatch', kept.position]);
    });

    test('migrate refuses a service role that could rewrite the log; a service role cannot migrate and says so; a bad signing key stops the start', async () => {
      const migrate = (env: Record<string, string>) =>
        execFileAsync(process.execPath, [controlPlaneMain, 'migrate'], { env: { PATH: process.env['PATH'] ?? '', ...env } });
      const superuser = new URL(cp.databaseUrl).username;
      await assert.rejects(
        migrate({ CAIRN_CP_MIGRATION_DATABASE_URL: cp.databaseUrl, CAIRN_CP_SERVICE_ROLE: superuser }),
        (e: { stderr: string }) =>
          /\[CAIRN-1001\] CAIRN_CP_SERVICE_ROLE names the role \w+, which is a superuser: it could change or delete audit entries/.test(
            e.stderr,
          ),
      );
      await assert.rejects(
        migrate({ CAIRN_CP_MIGRATION_DATABASE_URL: cp.databaseUrl, CAIRN_CP_SERVICE_ROLE: 'no_such_role_here' }),
        (e: { stderr: string }) => /names the role no_such_role_here, which does not exist: create it first/.test(e.stderr),
      );

      // A new database nobody migrated, and a role that may only connect: serving stops, saying what to run.
      const database = uniqueDatabaseName('unmigrated');
      await server.createDatabase(database);
      const role = `${database}_svc`;
      await server.admin(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
      try {
        const serve = await execFileAsync(process.execPath, [controlPlaneMain], {
          env: {
            PATH: process.env['PATH'] ?? '',
            CAIRN_CP_DATABASE_URL: server.url(database, { user: role, password: 'pw' }),
            CAIRN_CP_HTTP_PORT: '0',
            CAIRN_CP_GRPC_PORT: '0',
            CAIRN_CP_HOST: '127.0.0.1',
          },
        }).then(
          () => ({ stderr: '', code: 0 }),
          (e: unknown) => e as { stderr: string; code: number },
        );
        assert.equal(serve.code, 1);
        assert.match(
          serve.stderr,
          /\[CAIRN-1155\] the control plane's database needs migrations 1, 2, .*14, 15, 16[\d, ]*, and its role may not change the schema: run `control-plane migrate` with the owner role/,
        );
      } finally {
        await server.admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
        await server.admin(`DROP ROLE IF EXISTS ${role}`);
      }

      const badKey = await execFileAsync(process.execPath, [controlPlaneMain], {
        env: { PATH: process.env['PATH'] ?? '', CAIRN_CP_DATABASE_URL: cp.serviceUrl, CAIRN_AUDIT_SIGNING_KEY: 'not-a-key-0123456789' },
      }).then(
        () => ({ stderr: '', code: 0 }),
        (e: unknown) => e as { stderr: string; code: number },
      );
      assert.equal(badKey.code, 1);
      assert.match(
        badKey.stderr,
        /CAIRN_AUDIT_SIGNING_KEY: the audit signing key is not a PEM private key: create one with `openssl genpkey -algorithm ed25519`/,
      );
      assert.doesNotMatch(badKey.stderr, /not-a-key-0123456789/);
    });

    test('without a signing key nothing is signed and no key is published; a control plane serving as the owner warns', async () => {
      const unsigned = await startControlPlaneProcess(server, { roles: 'single', env: { CAIRN_AUDIT_SIGNING_KEY: '' } });
      try {
        const res = await unsigned.api<{ error: { code: string; message: string } }>('POST', '/v1/projects/default/audit/checkpoints');
        assert.equal(res.status, 409);
        assert.equal(res.body.error.code, 'CAIRN-1154');
        assert.match(
          res.body.error.message,
          /no audit signing key, so it cannot sign checkpoints: its operator sets CAIRN_AUDIT_SIGNING_KEY_FILE/,
        );
        assert.deepEqual(await (await fetch(`${unsigned.httpUrl}/.well-known/cairn-audit-keys`)).json(), { keys: [] });
        const verified = await unsigned.api<Verification>('POST', '/v1/projects/default/audit/verify');
        assert.deepEqual([verified.body.ok, verified.body.checkpoint], [true, null]);
        assert.ok(
          unsigned.lines.some((l) => l.includes('the control plane runs with a database role that can change or remove audit entries')),
        );
      } finally {
        await unsigned.close();
      }
      assert.ok(!cp.lines.some((l) => l.includes('can change or remove audit entries')), 'the service role is not warned about');
    });
  });
}
