import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

async function holderPid(t: TestStack, runId: string, step: string): Promise<number> {
  const r = await t.effects.query<{ pid: number }>('SELECT pid FROM effects WHERE run_id = $1 AND step = $2 ORDER BY id DESC LIMIT 1', [
    runId,
    step,
  ]);
  const pid = r.rows[0]?.pid;
  if (pid === undefined) throw new Error(`no ${step} effect for ${runId}`);
  return pid;
}

describe('worker crashes', () => {
  let t: TestStack;
  before(async () => {
    t = await startTestStack({ name: 'crash', workers: 2 });
  });
  after(async () => {
    await t?.stop();
  });

  it('finishes a run on another worker after SIGKILL during step 3 of 5, running steps 1-2 exactly once', async () => {
    const runId = await t.start('five-steps', { step3Ms: 4000 });
    await t.waitForEffect(runId, 'step-3:start');
    const pid = await holderPid(t, runId, 'step-3:start');
    const victim = t.stack.workers.find((w) => w.pid === pid);
    assert.ok(victim, 'the worker running step 3 is one of ours');
    victim.signal('SIGKILL');

    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.output, ['done-1', 'done-2', 'done-3', 'done-4', 'done-5']);
    assert.equal(await t.countEffects(runId, 'step-1'), 1);
    assert.equal(await t.countEffects(runId, 'step-2'), 1);
    assert.equal(await t.countEffects(runId, 'step-4'), 1);
    assert.equal(await t.countEffects(runId, 'step-5'), 1);
    // Step 3 was in progress when the worker died: it ran again on the survivor (at least once).
    assert.equal(await t.countEffects(runId, 'step-3:start'), 2);
    const finisher = await holderPid(t, runId, 'step-5');
    assert.notEqual(finisher, pid);
    const { run } = await t.describe(runId);
    assert.ok(run.epoch >= 2, `taken over under a new epoch (epoch ${run.epoch})`);
  });

  it('drains on SIGTERM: the in-flight step finishes, another worker continues, no step is lost or run twice', async () => {
    while (t.stack.workers.filter((w) => w.running).length < 2) await t.stack.startWorker();
    const runId = await t.start('five-steps', { step3Ms: 2500 });
    await t.waitForEffect(runId, 'step-3:start');
    const pid = await holderPid(t, runId, 'step-3:start');
    const draining = t.stack.workers.find((w) => w.pid === pid);
    assert.ok(draining);
    draining.signal('SIGTERM');
    assert.equal(await draining.exited, 0, 'the worker exits cleanly after draining');

    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    for (const step of ['step-1', 'step-2', 'step-3:start', 'step-3', 'step-4', 'step-5']) {
      assert.equal(await t.countEffects(runId, step), 1, `${step} ran exactly once`);
    }
    assert.equal(await holderPid(t, runId, 'step-3'), pid, 'the draining worker finished its step');
    assert.notEqual(await holderPid(t, runId, 'step-4'), pid, 'another worker continued the run');
  });

  it('takes over a run from a worker frozen past its lease and rejects the old worker’s next journal write', async () => {
    while (t.stack.workers.filter((w) => w.running).length < 2) await t.stack.startWorker();
    const runId = await t.start('five-steps', { step3Ms: 7000 });
    await t.waitForEffect(runId, 'step-3:start');
    const pid = await holderPid(t, runId, 'step-3:start');
    const frozen = t.stack.workers.find((w) => w.pid === pid);
    assert.ok(frozen);
    frozen.signal('SIGSTOP');
    try {
      // The lease (3 s) expires and the survivor takes the run over under epoch 2.
      await t.waitForRun(runId, (r) => r.epoch >= 2 && r.status === 'running', 30_000);
      // The survivor replays steps 1-2 from the journal and starts step 3 again.
      for (let i = 0; i < 600 && (await t.countEffects(runId, 'step-3:start')) < 2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await t.countEffects(runId, 'step-3:start'), 2, 'the survivor started step 3 again');
    } finally {
      frozen.signal('SIGCONT');
    }
    await frozen.waitFor(/CAIRN-3001/, 30_000);

    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    const dp = new pg.Client({ connectionString: t.stack.dpDatabaseUrl });
    await dp.connect();
    const journal = await dp.query<{ position: number; epoch: number }>(
      'SELECT position, epoch FROM dp_journal WHERE run_id = $1 ORDER BY position',
      [runId],
    );
    await dp.end();
    // Steps 1-2 were journaled under the first lease, everything after under the new one: the
    // frozen worker's write for step 3 was refused.
    assert.deepEqual(
      journal.rows.map((r) => r.position),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(
      journal.rows.slice(0, 2).map((r) => r.epoch),
      [1, 1],
    );
    assert.ok(
      journal.rows.slice(2).every((r) => r.epoch >= 2),
      `steps 3-5 journaled under the new lease: ${JSON.stringify(journal.rows)}`,
    );
    assert.equal(await t.countEffects(runId, 'step-1'), 1);
    assert.equal(await t.countEffects(runId, 'step-2'), 1);
    assert.equal(await t.countEffects(runId, 'step-4'), 1);
  });
});
