import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { connectionPool } from './pool.js';

for (const kind of testPostgresKinds()) {
  describe(`payload store connection pool on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let url: string;
    before(async () => {
      server = await testPostgres(kind);
      url = await server.createDatabase(uniqueDatabaseName('pool'));
    });
    after(async () => {
      await server.stop();
    });

    it('survives a connection lost while checked out (a database restart mid-transaction), and serves the next query', async () => {
      const pool = connectionPool({ connectionString: url, max: 2 });
      try {
        const client = await pool.connect();
        await client.query('BEGIN');
        const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        // As a server shutting down does: the session is terminated between two statements.
        await server.admin('SELECT pg_terminate_backend($1)', [pid]);
        // Without a listener of its own on the client, the error event would crash this process here.
        await new Promise((r) => setTimeout(r, 200));
        await assert.rejects(client.query('SELECT 1'));
        client.release();
        assert.equal((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
      } finally {
        await pool.end();
      }
    });
  });
}
