// Row counts for the gateway's tests. The gateway itself never touches SQL (the payload store
// does); its tests need to see that nothing was left behind, so they borrow the `pg` driver that
// @cairn/local-postgres depends on instead of adding a dependency to the gateway.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface PgClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
}

const requireFromLocalPostgres = createRequire(fileURLToPath(import.meta.resolve('@cairn/local-postgres')));
const pg = requireFromLocalPostgres('pg') as { Client: new (options: { connectionString: string }) => PgClient };

/** A direct connection to the data plane's database, for assertions. */
export class DataPlaneDb {
  readonly #client: PgClient;

  private constructor(client: PgClient) {
    this.#client = client;
  }

  static async connect(url: string): Promise<DataPlaneDb> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return new DataPlaneDb(client);
  }

  async count(
    table: 'dp_runs' | 'dp_signals' | 'dp_journal' | 'dp_errors' | 'dp_retention_runs',
    where = 'true',
    params: unknown[] = [],
  ): Promise<number> {
    const r = await this.#client.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params);
    return r.rows[0]?.['n'] as number;
  }

  async status(runId: string): Promise<string | undefined> {
    const r = await this.#client.query('SELECT status FROM dp_runs WHERE run_id = $1', [runId]);
    return r.rows[0]?.['status'] as string | undefined;
  }

  /** Moves a run's creation time back, as if it had been stored that long ago. */
  async ageRun(runId: string, ms: number): Promise<void> {
    await this.#client.query('UPDATE dp_runs SET created_at = created_at - make_interval(secs => $2) WHERE run_id = $1', [
      runId,
      ms / 1000,
    ]);
  }

  /** Moves a signal's arrival time back, as if it had been stored that long ago. */
  async ageSignal(signalId: string, ms: number): Promise<void> {
    await this.#client.query('UPDATE dp_signals SET received_at = received_at - make_interval(secs => $2) WHERE signal_id = $1', [
      signalId,
      ms / 1000,
    ]);
  }

  /** Moves a replay check's request (and claim) time back, as if it had waited that long. */
  async ageReplayCheck(checkId: string, ms: number): Promise<void> {
    await this.#client.query(
      `UPDATE dp_replay_checks SET requested_at = requested_at - make_interval(secs => $2),
              claimed_at = claimed_at - make_interval(secs => $2) WHERE check_id = $1`,
      [checkId, ms / 1000],
    );
  }

  /** Ends the server sessions of every client with this application name, as a failover would. */
  async terminate(applicationName: string): Promise<number> {
    const r = await this.#client.query(
      'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
      [applicationName],
    );
    return r.rows[0]?.['n'] as number;
  }

  /** Every row of every table of the schema, as JSON text per table (to search for what must not be there). */
  async dumpTables(): Promise<Map<string, string>> {
    const tables = await this.#client.query('SELECT tablename AS t FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1');
    const dump = new Map<string, string>();
    for (const { t } of tables.rows) {
      const name = `"${String(t).replace(/"/g, '""')}"`;
      const rows = await this.#client.query(`SELECT row_to_json(x)::text AS row FROM ${name} x`);
      dump.set(String(t), rows.rows.map((r) => String(r['row'])).join('\n'));
    }
    return dump;
  }

  async close(): Promise<void> {
    await this.#client.end();
  }
}
