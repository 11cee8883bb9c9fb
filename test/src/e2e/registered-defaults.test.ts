import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../harness.js';

const FINAL = ['completed', 'failed', 'cancelled', 'terminated', 'timed_out'];

/**
 * The retry policy and timeouts registered with a workflow version take effect, with real
 * processes: the control plane ends runs past their run timeout `timed_out` (a worker holding one
 * stops it), and the worker applies the registered retry policy and step timeout to steps that set
 * none of their own.
 */
describe('registered retry policy and timeouts', () => {
  let t: TestStack;
  const register = async (name: string, body: Record<string, unknown>): Promise<void> => {
    const res = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/workflows`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.stack.secrets.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, version: '1', taskQueue: 'default', ...body }),
    });
    assert.equal(res.status, 201, await res.text());
  };

  before(async () => {
    // The versions are registered before any worker announces them (development mode would
    // register them as announced, without a policy or timeouts).
    t = await startTestStack({ name: 'registered-defaults', workers: 0 });
    await register('timeout-sleeper', { timeouts: { run: '2s' } });
    await register('timeout-busy', { timeouts: { run: 2000 } });
    await register('registered-defaults', {
      retry: { maximumAttempts: 4, initialInterval: '20ms', maximumInterval: 50, backoffCoefficient: 1.5 },
      timeouts: { step: '300ms' },
    });
    await t.stack.startWorker();
  });
  after(async () => {
    await t?.stop();
  });

  it('a run registered with a 2 s run timeout whose workflow sleeps a minute ends timed_out', async () => {
    const runId = await t.start('timeout-sleeper', { sleepMs: 60_000 });
    await t.waitForEffect(runId, 'before-sleep');
    const run = await t.waitForRun(runId, (r) => FINAL.includes(r.status));
    assert.deepEqual([run.status, run.errorCode], ['timed_out', 'run_timed_out']);
    const view = (await t.describe(runId)).run as unknown as { createdAt: string; deadlineAt: string | null };
    assert.equal(Date.parse(view.deadlineAt!) - Date.parse(view.createdAt), 2000, 'the deadline is shown: creation + run timeout');
    const result = await t.result(runId);
    assert.equal(result.status, 'timed_out');
    assert.equal(await t.countEffects(runId, 'after-sleep'), 0);
  });

  it('a parent waiting on a child that times out goes on: its ctx.child call fails with RunTimedOutError', async () => {
    const parent = await t.start('timeout-parent', {});
    const result = await t.result(parent);
    assert.equal(result.status, 'completed', JSON.stringify(result));
    const output = result.output as { childFailed: boolean; causeName: string; childRunId: string };
    assert.deepEqual([output.childFailed, output.causeName], [true, 'RunTimedOutError']);
    const child = (await t.describe(output.childRunId)).run;
    assert.deepEqual([child.status, child.errorCode], ['timed_out', 'run_timed_out']);
  });

  it('a worker holding a run that times out loses its lease and stops it', async () => {
    const runId = await t.start('timeout-busy', { busyMs: 60_000 });
    await t.waitForEffect(runId, 'busy:start');
    const run = await t.waitForRun(runId, (r) => FINAL.includes(r.status));
    assert.deepEqual([run.status, run.errorCode], ['timed_out', 'run_timed_out']);
    // The control plane told the worker its lease was lost: the engine aborted the running step.
    await t.waitForEffect(runId, 'busy:stopped');
    assert.equal(await t.countEffects(runId, 'after-busy'), 0, 'nothing after the stopped step ran');
    assert.equal((await t.describe(runId)).run.status, 'timed_out');
    // The worker goes on with other runs.
    const next = await t.start('five-steps', { step3Ms: 10 });
    assert.equal((await t.result(next)).status, 'completed');
  });

  it('steps without options retry per the registered policy and time out per the registered step timeout; explicit options win', async () => {
    const runId = await t.start('registered-defaults', { slowMs: 800 });
    const result = await t.result(runId);
    assert.equal(result.status, 'completed', JSON.stringify(result));
    assert.deepEqual(result.output, {
      // Registered: 4 attempts (the SDK's own default would be 3).
      registeredPolicy: { ok: false, attempts: 4, causeName: 'Error' },
      // retry: { maximumAttempts: 2 } in code wins over the registered policy.
      ownPolicy: { ok: false, attempts: 2, causeName: 'Error' },
      // The registered 300 ms step timeout applies to a step without a timeout, per attempt.
      registeredTimeout: { ok: false, attempts: 4, causeName: 'StepTimeoutError' },
      // timeout: 30 s in code wins: the 800 ms step completes.
      ownTimeout: { ok: true },
    });
    assert.equal(await t.countEffects(runId, 'no-options'), 4);
    assert.equal(await t.countEffects(runId, 'own-policy'), 2);
    assert.equal(await t.countEffects(runId, 'slow-no-options'), 4);
    assert.equal(await t.countEffects(runId, 'slow-own-timeout'), 1);
    // The control plane's step timeline shows the same attempts (step reports arrive in batches).
    let steps = (await t.describe(runId)).steps;
    for (const giveUp = Date.now() + 30_000; steps.length < 11 && Date.now() < giveUp;) {
      await new Promise((r) => setTimeout(r, 50));
      steps = (await t.describe(runId)).steps;
    }
    const attempts = (name: string) => steps.filter((s) => s.name === name).length;
    assert.deepEqual(['no-options', 'own-policy', 'slow-no-options', 'slow-own-timeout'].map(attempts), [4, 2, 4, 1]);
  });
});
