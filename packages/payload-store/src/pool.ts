import pg from 'pg';

/**
 * The payload store's connection pool, made so that no lost connection crashes the process (a
 * server restart, a failover, a network cut). The pool itself listens for a client's errors only
 * while the client is idle; a connection that fails while checked out, between a transaction's
 * statements, would emit an unhandled 'error'. With a listener on every client, the statement in
 * progress or the next one fails instead, and the pool drops the client when it is released.
 */
export function connectionPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config);
  // An idle client's error: the pool has already removed it, and the next query connects afresh.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}
