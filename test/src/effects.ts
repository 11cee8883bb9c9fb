import pg from 'pg';

/**
 * Side effects of test workflows, recorded in a table outside both planes' databases so tests can
 * count how often each step really ran (exactly-once of finished steps is what users check).
 */
export const EFFECTS_SCHEMA = `
CREATE TABLE IF NOT EXISTS effects (
  id bigserial PRIMARY KEY,
  run_id text NOT NULL,
  step text NOT NULL,
  attempt integer NOT NULL,
  pid integer NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS executions (
  id bigserial PRIMARY KEY,
  run_id text NOT NULL,
  pid integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  ended_at timestamptz
);
`;

let pool: pg.Pool | undefined;

function effectsPool(): pg.Pool {
  const url = process.env['CAIRN_TEST_EFFECTS_URL'];
  if (!url) throw new Error('CAIRN_TEST_EFFECTS_URL is not set');
  if (!pool) {
    pool = new pg.Pool({ connectionString: url, max: 4 });
    pool.on('error', () => undefined);
  }
  return pool;
}

/** Records that `step` of `runId` ran (attempt `attempt`) in this process. */
export async function recordEffect(runId: string, step: string, attempt: number): Promise<void> {
  await effectsPool().query('INSERT INTO effects (run_id, step, attempt, pid) VALUES ($1, $2, $3, $4)', [
    runId,
    step,
    attempt,
    process.pid,
  ]);
}

/** Counts earlier effects of a step (to make a step fail a given number of times). */
export async function countEffects(runId: string, step: string): Promise<number> {
  const r = await effectsPool().query<{ n: number }>('SELECT count(*)::int AS n FROM effects WHERE run_id = $1 AND step = $2', [
    runId,
    step,
  ]);
  return r.rows[0]?.n ?? 0;
}

/** Marks the start of an execution of a run by this process; returns a function marking its end. */
export async function recordExecution(runId: string): Promise<() => Promise<void>> {
  const r = await effectsPool().query<{ id: string }>('INSERT INTO executions (run_id, pid) VALUES ($1, $2) RETURNING id', [
    runId,
    process.pid,
  ]);
  const id = r.rows[0]?.id;
  return async () => {
    await effectsPool().query('UPDATE executions SET ended_at = clock_timestamp() WHERE id = $1', [id]);
  };
}
