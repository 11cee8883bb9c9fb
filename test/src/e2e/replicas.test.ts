import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

describe('two control-plane replicas on one database', () => {
  let t: TestStack;
  before(async () => {
    t = await startTestStack({ name: 'replicas', controlPlaneReplicas: 2, workers: 4, workerSlots: 8 });
  });
  after(async () => {
    await t?.stop();
  });

  it('never lets two workers hold one run at once', async () => {
    const total = 150;
    const runs: string[] = [];
    for (let i = 0; i < total; i += 25) {
      runs.push(
        ...(await Promise.all(Array.from({ length: Math.min(25, total - i) }, () => t.start('five-steps', { step3Ms: 5, stepMs: 5 })))),
      );
    }
    // Halfway through, one replica dies: its workers reconnect and carry on.
    const victim = t.stack.controlPlanes[1]!.process;
    await t.waitForEffect(runs[Math.floor(total / 2)]!, 'step-1');
    victim.signal('SIGKILL');
    await victim.exited;
    victim.start();
    await victim.waitFor(/control plane listening/, 30_000);

    for (const runId of runs) assert.equal((await t.result(runId)).status, 'completed');
    const dup = await t.effects.query<{ run_id: string; step: string; n: number }>(
      "SELECT run_id, step, count(*)::int AS n FROM effects WHERE step NOT LIKE '%:start' GROUP BY run_id, step HAVING count(*) <> 1",
    );
    assert.deepEqual(dup.rows, [], 'every step of every run completed exactly once');
    const perRun = await t.effects.query<{ n: number }>("SELECT count(DISTINCT run_id)::int AS n FROM effects WHERE step = 'step-5'");
    assert.equal(perRun.rows[0]?.n, total);

    const cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await cp.connect();
    const overlaps = await cp.query(
      `SELECT a.run_id, a.epoch, b.epoch AS other
         FROM run_leases a JOIN run_leases b ON a.run_id = b.run_id AND a.epoch < b.epoch
        WHERE b.acquired_at < coalesce(a.ended_at, 'infinity') AND a.session_id <> b.session_id`,
    );
    const epochs = await cp.query('SELECT run_id, epoch, count(*) FROM run_leases GROUP BY run_id, epoch HAVING count(*) > 1');
    await cp.end();
    assert.deepEqual(epochs.rows, [], 'each lease epoch was granted once');
    assert.deepEqual(overlaps.rows, [], 'no lease was granted while an earlier one was still held');
  });
});
