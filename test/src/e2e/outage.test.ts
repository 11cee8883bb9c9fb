import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('control-plane outages', () => {
  let t: TestStack;
  before(async () => {
    t = await startTestStack({ name: 'outage', workers: 2, suspendThresholdMs: 500 });
  });
  after(async () => {
    await t?.stop();
  });

  it('completes every in-flight run after the control plane crashes and restarts', async () => {
    const cp = t.stack.controlPlanes[0]!.process;
    const runs = await Promise.all(Array.from({ length: 8 }, () => t.start('five-steps', { step3Ms: 600, stepMs: 100 })));
    const sleeperRun = await t.start('sleeper', { sleepMs: 2500 });
    const waiter = await t.start('signal-waiter', { delayMs: 0 });
    await t.waitForRun(waiter, (r) => r.status === 'suspended');
    await t.waitForEffect(runs[0]!, 'step-2');

    cp.signal('SIGKILL');
    await cp.exited;
    await sleep(1500);
    cp.start();
    await cp.waitFor(/control plane listening/, 30_000);

    assert.equal((await t.signal(waiter, 'go', { n: 1 })).status, 202);
    for (const runId of [...runs, sleeperRun, waiter]) {
      const result = await t.result(runId);
      assert.equal(result.status, 'completed', `run ${runId}: ${JSON.stringify(result)}`);
    }
    for (const runId of runs) {
      for (const step of ['step-1', 'step-2', 'step-4', 'step-5']) assert.equal(await t.countEffects(runId, step), 1, `${runId} ${step}`);
    }
    assert.equal(await t.countEffects(sleeperRun, 'after-sleep'), 1);
  });

  it('keeps executing a 20-step run while the control plane is down for 30 s, then reconciles without duplicates', async () => {
    const cp = t.stack.controlPlanes[0]!.process;
    const runId = await t.start('many-steps', { steps: 20, stepMs: 2000 });
    await t.waitForEffect(runId, 'step-2', 30_000);
    assert.equal(await cp.stop(), 0, 'the control plane shuts down cleanly');
    const atStop = await t.countEffects(runId);
    await sleep(30_000);
    const duringOutage = (await t.countEffects(runId)) - atStop;
    assert.ok(duringOutage >= 10, `steps kept completing with the control plane down (${duringOutage} in 30 s)`);

    cp.start();
    await cp.waitFor(/control plane listening/, 30_000);
    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.output, { total: 210 });
    for (let i = 1; i <= 20; i++) assert.equal(await t.countEffects(runId, `step-${i}`), 1, `step-${i} ran once`);
    const { run, steps } = await t.describe(runId);
    assert.equal(run.epoch, 1, 'the run never changed hands');
    const completed = steps.filter((s) => s.kind === 'step' && s.status === 'completed').map((s) => s.name);
    assert.equal(completed.length, 20, `the control plane's timeline reconciled: ${JSON.stringify(steps)}`);
  });
});
