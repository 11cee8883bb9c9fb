import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ErrorCodes, newId } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from './index.js';

const keys = new KeyRing([{ id: 'k1', key: randomBytes(32) }]);
const hasher = new Hasher(randomBytes(32));

describe(`data plane database roles (${testPostgresKinds()[0]} Postgres)`, () => {
  let server: PostgresServer;
  let database: string;
  let ownerUrl: string;
  let serviceUrl: string;
  const role = `cairn_dp_svc_${randomBytes(4).toString('hex')}`;
  const stores: PayloadStore[] = [];
  const connect = (url: string): PayloadStore => {
    const s = PayloadStore.connect({ connectionString: url, keys });
    stores.push(s);
    return s;
  };

  before(async () => {
    server = await testPostgres(testPostgresKinds()[0]!);
    database = uniqueDatabaseName('roles');
    ownerUrl = await server.createDatabase(database);
    await server.admin(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    serviceUrl = server.url(database, { user: role, password: 'pw' });
  });
  after(async () => {
    for (const s of stores) await s.close();
    await server.admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await server.admin(`DROP ROLE IF EXISTS ${role}`);
    await server.stop();
  });

  it('a service role can run the store but cannot alter, drop or truncate its tables, nor migrate', async () => {
    // Before the owner migrated, the service role is told what to do.
    await assert.rejects(connect(serviceUrl).migrate(), (err: { code?: string; message?: string }) => {
      assert.equal(err.code, ErrorCodes.DATABASE_NOT_MIGRATED);
      assert.match(String(err.message), /cairn-gateway migrate.*CAIRN_DP_MIGRATION_DATABASE_URL/);
      return true;
    });

    const owner = connect(ownerUrl);
    await owner.migrate();
    await owner.grantServiceRole(role);
    await owner.grantServiceRole(role); // idempotent

    // The running worker's and gateway's work: start-up (no migration pending: no DDL), key checks,
    // runs, journal writes, signals, reads.
    const service = connect(serviceUrl);
    assert.deepEqual(await service.migrate(), []);
    await service.verifyKeys(hasher);
    const runId = newId();
    await service.createRun({ runId, workflowName: 'wf', input: { a: 1 } });
    await service.acquire(runId, 1);
    await service.append(runId, 1, [
      { position: 0, kind: 'step', name: 's', status: 'completed', value: 1, startedAt: Date.now(), endedAt: Date.now() },
    ]);
    await service.addSignal(runId, 'go', { b: 2 });
    await service.publishStream(runId, [{ type: 'delta', position: 0, name: 'm', attempt: 1, text: 'hi' }]);
    await service.completeRun(runId, 1, { ok: true });
    assert.deepEqual((await service.getRun(runId))?.output, { ok: true });
    await service.deleteRun(runId);

    // The attacks, as the service role: each one refused by Postgres.
    const attacker = new pg.Client({ connectionString: serviceUrl });
    await attacker.connect();
    try {
      for (const statement of [
        'ALTER TABLE dp_runs ADD COLUMN leaked text',
        'ALTER TABLE dp_journal DISABLE TRIGGER ALL',
        'DROP TABLE dp_journal',
        'TRUNCATE dp_runs CASCADE',
        'TRUNCATE dp_key_checks',
        'DELETE FROM dp_schema_migrations',
        'CREATE TABLE dp_shadow (x int)',
      ]) {
        await assert.rejects(attacker.query(statement), (err: { code?: string }) => {
          assert.equal(err.code, '42501', `${statement} was not refused for lack of privilege`);
          return true;
        });
      }
    } finally {
      await attacker.end();
    }
  });

  it('refuses to grant a superuser or the owner as the service role', async () => {
    const owner = connect(ownerUrl);
    const ownerName = new URL(ownerUrl).username;
    await assert.rejects(
      owner.grantServiceRole(ownerName),
      /CAIRN_DP_SERVICE_ROLE names the role .* (is a superuser|owns the payload store tables)/,
    );
    await assert.rejects(owner.grantServiceRole('no_such_role_x'), /which does not exist: create it first/);
  });
});
