import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Database } from './database.js';

for (const kind of testPostgresKinds()) {
  describe(`control-plane database pool on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let db: Database;
    before(async () => {
      server = await testPostgres(kind);
      db = new Database(await server.createDatabase(uniqueDatabaseName('cp-pool')), 2, createLogger('control-plane-test', 'silent'));
    });
    after(async () => {
      await db.close();
      await server.stop();
    });

    it('survives a connection lost while checked out (the ticker lock held during a database restart), and serves the next query', async () => {
      const client = await db.pool.connect();
      const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      // As a server shutting down does: the session is terminated while no statement runs on it.
      await server.admin('SELECT pg_terminate_backend($1)', [pid]);
      // Without a listener of its own on the client, the error event would crash this process here.
      await new Promise((r) => setTimeout(r, 200));
      await assert.rejects(client.query('SELECT 1'));
      client.release();
      assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
    });
  });
}
