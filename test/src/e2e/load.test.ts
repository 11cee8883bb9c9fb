import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

const RUNS = Number(process.env['CAIRN_LOAD_RUNS'] ?? 10_000);
const WORKERS = Number(process.env['CAIRN_LOAD_WORKERS'] ?? 20);
const START_CONCURRENCY = 48;

/**
 * Load: two control-plane replicas, twenty worker processes, ten thousand runs started through the
 * gateway. Every run must complete, every step must take effect exactly once, and no run may ever
 * be held by two workers at once. The time it takes is reported, not asserted (bench/ measures speed).
 */
describe(`load: 2 control-plane replicas, ${WORKERS} workers, ${RUNS} runs`, () => {
  let t: TestStack;
  let cp: pg.Pool;
  before(async () => {
    t = await startTestStack({
      name: 'load',
      controlPlaneReplicas: 2,
      workers: WORKERS,
      workerSlots: 8,
      logLevel: 'warn',
      // Production-like leases: the machine is saturated on purpose, and a lease that expires
      // under a starved worker would be re-dispatched (correctly, at least once) and blur the check.
      leaseTtlMs: 15_000,
      heartbeatIntervalMs: 2_000,
      // Twenty workers, two replicas and a gateway, each with its pools, on one server.
      maxConnections: 600,
    });
    cp = new pg.Pool({ connectionString: t.stack.cpDatabaseUrl, max: 2 });
  });
  after(async () => {
    await cp?.end();
    await t?.stop();
  });

  it('completes every run, each step once, never under two leases at once', async (ctx) => {
    const started = Date.now();
    const runIds: string[] = [];
    let next = 0;
    let retries = 0;
    await Promise.all(
      Array.from({ length: START_CONCURRENCY }, async () => {
        while (next < RUNS) {
          const key = `load-${next++}`;
          // As a client would: a 503 says "retry", and the idempotency key makes the retry safe.
          for (let attempt = 1; ; attempt++) {
            try {
              runIds.push(await t.start('many-steps', { steps: 2, stepMs: 0 }, { idempotencyKey: key }));
              break;
            } catch (error) {
              if (attempt >= 5 || !/→ 503 /.test(String(error))) throw error;
              retries++;
              await new Promise((r) => setTimeout(r, 200 * attempt));
            }
          }
        }
      }),
    );
    assert.equal(new Set(runIds).size, RUNS, 'every start created its own run');
    const allStarted = Date.now();
    ctx.diagnostic(`started ${RUNS} runs in ${allStarted - started} ms (${retries} starts retried after a 503)`);

    // Wait on the control plane's own view until nothing is left to do.
    let statuses: Record<string, number>;
    for (;;) {
      const rows = await cp.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM runs GROUP BY status');
      statuses = Object.fromEntries(rows.rows.map((r) => [r.status, r.n]));
      const open = (statuses['queued'] ?? 0) + (statuses['running'] ?? 0) + (statuses['suspended'] ?? 0);
      if (open === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const finished = Date.now();
    assert.deepEqual(statuses, { completed: RUNS }, 'every run completed');

    const sample = await t.result(runIds[RUNS - 1]!);
    assert.equal(sample.status, 'completed');
    assert.deepEqual(sample.output, { total: 3 });

    const expired = await cp.query<{ n: number }>("SELECT count(*)::int AS n FROM run_leases WHERE end_reason = 'expired'");
    ctx.diagnostic(`${expired.rows[0]?.n ?? 0} leases expired and were re-dispatched`);
    const effects = await t.effects.query<{ runs: number; steps: number; extra: number }>(
      `SELECT count(DISTINCT run_id)::int AS runs, count(*)::int AS steps,
              (SELECT count(*)::int FROM (SELECT 1 FROM effects GROUP BY run_id, step HAVING count(*) > 1) d) AS extra
         FROM effects`,
    );
    assert.deepEqual(
      effects.rows[0],
      { runs: RUNS, steps: RUNS * 2, extra: 0 },
      `every step of every run took effect exactly once (${expired.rows[0]?.n ?? 0} leases expired)`,
    );

    const overlaps = await cp.query(
      `SELECT a.run_id FROM run_leases a JOIN run_leases b ON a.run_id = b.run_id AND a.epoch < b.epoch
        WHERE b.acquired_at < coalesce(a.ended_at, 'infinity') LIMIT 5`,
    );
    assert.deepEqual(overlaps.rows, [], 'no lease was granted while an earlier one of the same run was held');
    const doubleEpochs = await cp.query('SELECT run_id FROM run_leases GROUP BY run_id, epoch HAVING count(*) > 1 LIMIT 5');
    assert.deepEqual(doubleEpochs.rows, [], 'each lease epoch was granted once');
    const workers = await cp.query<{ n: number }>('SELECT count(DISTINCT worker_id)::int AS n FROM run_leases');
    assert.equal(workers.rows[0]?.n, WORKERS, 'the work spread over every worker');

    ctx.diagnostic(
      `started ${RUNS} runs in ${allStarted - started} ms (${retries} starts retried after a 503); all completed after ${finished - started} ms ` +
        `(${Math.round((RUNS * 1000) / (finished - started))} runs/s, ${Math.round((RUNS * 2000) / (finished - started))} steps/s)`,
    );
  });
});
