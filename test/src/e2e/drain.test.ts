import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

/**
 * A worker told to stop (SIGTERM, as Kubernetes does in a rollout or a scale-down) while a model
 * call is in flight: within the drain bound the call completes once and another worker continues
 * the run from the journal; past it, the call is given back and made again elsewhere.
 */
describe('draining a worker during a long model call', () => {
  let t: TestStack;
  let dp: pg.Client;
  before(async () => {
    // The bound a platform team running agent work sets: longer than its longest model call.
    t = await startTestStack({ name: 'drain', workers: 1, workerEnv: { CAIRN_DRAIN_TIMEOUT_MS: '120000' } });
    dp = new pg.Client({ connectionString: t.stack.dpDatabaseUrl });
    await dp.connect();
  });
  after(async () => {
    await dp?.end();
    await t?.stop();
  });

  const callsFor = async (prompt: string) => (await t.modelCalls()).filter((c) => JSON.stringify(c.messages).includes(prompt));
  const untilCalled = async (prompt: string) => {
    for (let i = 0; i < 1200 && (await callsFor(prompt)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await callsFor(prompt)).length, 1, 'the model server received the call');
  };
  const transcripts = async (runId: string) =>
    Number((await dp.query<{ n: string }>('SELECT count(*) AS n FROM dp_transcripts WHERE run_id = $1', [runId])).rows[0]?.n);

  it('waits for a model call longer than the former 45 s drain: the call completes once and is not made again', async () => {
    const prompt = 'drain-long plan the next step';
    // The model answers after 47 s, longer than the chart's former drain of 45 s.
    await t.setModelScript({
      rules: [{ contains: 'drain-long ', text: 'the plan is durable', faults: [{ kind: 'timeout', ms: 47_000 }] }],
    });
    const [first] = t.stack.workers.filter((w) => w.running);
    assert.ok(first, 'one worker holds the run');
    const runId = await t.start('model-call', { prompt, timeoutMs: 120_000, sleepMs: 100 });
    await untilCalled(prompt);
    await t.stack.startWorker();
    first.signal('SIGTERM');
    assert.equal(await first.exited, 0, 'the worker drained and exited cleanly');

    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.deepEqual((result.output as { text: string; attempts: number }).text, 'the plan is durable');
    assert.equal((await callsFor(prompt)).length, 1, 'the model was called once: not paid twice');
    assert.equal(await transcripts(runId), 1);
    assert.ok(!first.lines.some((l) => l.includes('drain bound reached')), 'the call finished within the bound');
    const { run } = await t.describe(runId);
    assert.ok(run.epoch >= 2, `another worker continued the run from the journal (epoch ${run.epoch})`);
  });

  it('past the drain bound gives the call back, and another worker makes it again', async () => {
    const prompt = 'drain-short plan the next step';
    await t.setModelScript({ rules: [{ contains: 'drain-short ', text: 'planned again', faults: [{ kind: 'timeout', ms: 60_000 }] }] });
    // Only a worker with a 1 s bound runs while the run starts.
    const shortBound = await t.stack.startWorker({ env: { CAIRN_DRAIN_TIMEOUT_MS: '1000' } });
    for (const w of t.stack.workers.filter((w) => w.running && w !== shortBound)) {
      w.signal('SIGTERM');
      assert.equal(await w.exited, 0);
    }
    const runId = await t.start('model-call', { prompt, timeoutMs: 120_000 });
    await untilCalled(prompt);
    await t.stack.startWorker();
    shortBound.signal('SIGTERM');
    assert.equal(await shortBound.exited, 0);
    assert.ok(
      shortBound.lines.some((l) => l.includes('drain bound reached')),
      'the worker says the call was given back unfinished and why',
    );

    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.equal((result.output as { text: string }).text, 'planned again');
    assert.equal((await callsFor(prompt)).length, 2, 'the call was made again on the other worker');
    assert.equal(await transcripts(runId), 1, 'only the completed call is journaled');
  });
});
