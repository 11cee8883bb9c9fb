import pg from 'pg';
import type { Logger } from '@cairn/common';

/** Something that runs SQL: the pool, or a client inside a transaction. */
export interface Queryable {
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<Row>>;
}

// Return int8 (bigint) columns as strings (the default), and parse them where the value is known
// to fit in a double; timestamps stay Date. Set explicitly so a change of default cannot bite.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => value);

/**
 * The connection pool. Repositories run their SQL through it; services that need several
 * statements to commit together use {@link Database.transaction}.
 */
export class Database implements Queryable {
  readonly pool: pg.Pool;
  private closed = false;

  /**
   * `statementTimeoutMs`: the sessions' `statement_timeout` (0 or undefined: none), so one slow
   * statement cannot hold a pooled connection for long; it fails with SQLSTATE 57014 instead.
   * Migrations lift it for their own transaction.
   */
  constructor(
    readonly url: string,
    poolSize: number,
    private readonly logger: Logger,
    statementTimeoutMs?: number,
  ) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: poolSize,
      application_name: 'cairn-control-plane',
      ...(statementTimeoutMs ? { statement_timeout: statementTimeoutMs } : {}),
    });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    this.pool.on('error', (error) => this.logger.warn({ err: errorSummary(error) }, 'idle database connection failed'));
    // The pool listens for a client's errors only while it is idle. A connection that fails while
    // checked out (between a transaction's statements, or holding the schedule ticker's lock during
    // a database restart) would emit an unhandled 'error' and crash the process; the statement in
    // progress, or the next one, fails instead, and the pool drops the client when it is released.
    this.pool.on('connect', (client) =>
      client.on('error', (error) => this.logger.warn({ err: errorSummary(error) }, 'database connection failed while in use')),
    );
  }

  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<Row>> {
    return this.pool.query<Row>(text, values);
  }

  /**
   * Runs a named prepared statement: parsed and planned once per connection, for the statements
   * on the dispatch hot path. `text` must be constant for a given `name`.
   */
  prepared<Row extends pg.QueryResultRow = pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<Row>> {
    return this.pool.query<Row>({ name, text, values });
  }

  /** Runs `fn` in a transaction: commit when it returns, roll back when it throws. */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/** What may be logged about a database error: its class and SQLSTATE, never values. */
export function errorSummary(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    // Data exceptions (SQLSTATE class 22) quote the offending input in their message: keep the code only.
    if (typeof code === 'string' && code.startsWith('22')) return { type: error.name, code };
    return { type: error.name, ...(typeof code === 'string' ? { code } : {}), message: error.message };
  }
  return { type: typeof error };
}

/** Whether the database cancelled a statement that ran past `statement_timeout` (SQLSTATE 57014). */
export function isStatementTimeout(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === '57014';
}

/** What a caller sees (after its code) when the database cancelled its statement; REST and gRPC say the same. */
export const STATEMENT_TIMEOUT_MESSAGE =
  "the request took longer than the control plane's database statement timeout and was cancelled; " +
  'retry it, with a narrower query (a smaller page or time range) if it reads much data';

// SQLSTATE classes and Node error codes that mean "the database is not reachable right now".
const UNAVAILABLE_SQLSTATE = /^(08|53|57P)/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE']);

/** Whether an error means the database is unreachable or overloaded (retry later), not a bug. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code))) return true;
  return /Connection terminated|connection timeout|Client has encountered a connection error|Cannot use a pool after calling end/i.test(
    error.message,
  );
}
