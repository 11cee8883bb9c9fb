import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

describe('step failures', () => {
  let t: TestStack;
  before(async () => {
    t = await startTestStack({ name: 'errors', workers: 1, suspendThresholdMs: 1000 });
  });
  after(async () => {
    await t?.stop();
  });

  it('retries a failing step with backoff until it succeeds', async () => {
    const runId = await t.start('flaky', { failures: 2, backoffMs: 100 });
    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.output, { attempts: 3 });
    assert.equal(await t.countEffects(runId, 'flaky-call'), 3);
    const { steps } = await t.describe(runId);
    const attempts = steps.filter((s) => s.name === 'flaky-call').map((s) => [s.attempt, s.status]);
    assert.deepEqual(attempts, [
      [1, 'retrying'],
      [2, 'retrying'],
      [3, 'completed'],
    ]);
  });

  it('suspends for a backoff longer than the threshold and resumes the retry', async () => {
    const runId = await t.start('flaky', { failures: 1, backoffMs: 2000 });
    await t.waitForRun(runId, (r) => r.status === 'suspended');
    const result = await t.result(runId);
    assert.deepEqual(result.output, { attempts: 2 });
  });

  it('fails a run on a non-retryable error: the control plane has the code, only the data plane has the message', async () => {
    const secret = `acct-${randomUUID()}`;
    const runId = await t.start('doomed', { secret });
    const result = await t.result(runId);
    assert.equal(result.status, 'failed');
    assert.match(result.error?.message ?? '', new RegExp(secret));
    assert.equal(await t.countEffects(runId, 'charge-card'), 1, 'a terminal error is not retried');

    const { run, steps } = await t.describe(runId);
    assert.equal(run.status, 'failed');
    assert.equal(run.errorCode, 'step_terminal');
    const step = steps.find((s) => s.name === 'charge-card');
    assert.equal(step?.status, 'failed');
    assert.equal(step?.retryable, false);
    assert.ok(step?.errorRef, 'an opaque reference to the error crosses');
    assert.ok(!JSON.stringify({ run, steps }).includes(secret));

    const cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await cp.connect();
    const tables = await cp.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
    for (const { tablename } of tables.rows) {
      const rows = await cp.query(`SELECT t::text AS row FROM "${tablename}" t`);
      assert.ok(!rows.rows.some((r: { row: string }) => r.row.includes(secret)), `the message reached control-plane table ${tablename}`);
    }
    await cp.end();
  });
});
