import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { KeyRing, PayloadStore } from '@cairn/payload-store';
import { startTestStack, type TestStack } from '../harness.js';

describe('suspension, sleeps and signals', () => {
  let t: TestStack;
  before(async () => {
    // One worker with one slot: anything that holds a slot while waiting would block the others.
    t = await startTestStack({ name: 'suspend', workers: 1, workerSlots: 1, suspendThresholdMs: 1000 });
  });
  after(async () => {
    await t?.stop();
  });

  it('suspends a long sleep without holding the slot, and resumes it', async () => {
    const sleeper = await t.start('sleeper', { sleepMs: 4000 });
    const suspended = await t.waitForRun(sleeper, (r) => r.status === 'suspended');
    assert.equal(suspended.waitingSignal, null);
    // The only slot is free: another run completes while the sleeper waits.
    const other = await t.start('five-steps', { step3Ms: 10, stepMs: 10 });
    assert.equal((await t.result(other)).status, 'completed');
    assert.equal((await t.describe(sleeper)).run.status, 'suspended');
    const result = await t.result(sleeper);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.output, { sleptAtLeast: true });
    assert.equal(await t.countEffects(sleeper, 'after-sleep'), 1);
    const { steps } = await t.describe(sleeper);
    assert.ok(steps.some((s) => s.kind === 'sleep' && s.status === 'completed'));
  });

  it('keeps a signal sent before the workflow waits for it', async () => {
    const runId = await t.start('signal-waiter', { delayMs: 1500, timeoutMs: 60_000 });
    assert.equal((await t.signal(runId, 'go', { early: true })).status, 202);
    const result = await t.result(runId);
    assert.deepEqual(result.output, { timedOut: false, got: [{ early: true }] });
  });

  it('wakes a run suspended on a signal when the signal arrives', async () => {
    const runId = await t.start('signal-waiter', { delayMs: 0, signals: 2 });
    const run = await t.waitForRun(runId, (r) => r.status === 'suspended');
    assert.equal(run.waitingSignal, 'go');
    assert.equal((await t.signal(runId, 'go', { n: 1 })).status, 202);
    assert.equal((await t.signal(runId, 'go', { n: 2 })).status, 202);
    const result = await t.result(runId);
    assert.deepEqual(result.output, { timedOut: false, got: [{ n: 1 }, { n: 2 }] });
  });

  it('wakes a run for its next signal after it consumed one the control plane was never told about', async () => {
    // What the gateway leaves when SignalRun fails after it stored the signal and a running run
    // consumed it: the signal in the payload store, no notice in the control plane.
    const store = PayloadStore.connect({ connectionString: t.stack.dpDatabaseUrl, keys: KeyRing.parse(t.stack.secrets.encryptionKeys) });
    try {
      // Stored while the run is still in its first step, so the run consumes it at its first wait.
      const runId = await t.start('signal-waiter', { delayMs: 1000, signals: 2 });
      await store.addSignal(runId, 'go', { n: 1 });
      const run = await t.waitForRun(runId, (r) => r.status === 'suspended');
      assert.equal(run.waitingSignal, 'go');
      const { steps } = await t.describe(runId);
      assert.deepEqual(
        steps.filter((s) => s.kind === 'signal').map((s) => s.status),
        ['completed', 'waiting'],
        'the first signal was consumed and the run waits for the second',
      );
      assert.equal((await t.signal(runId, 'go', { n: 2 })).status, 202);
      // Bounded: a run left waiting would otherwise be waited for without end.
      await t.waitForRun(runId, (r) => r.status === 'completed', 15_000);
      const result = await t.result(runId);
      assert.deepEqual([result.status, result.output], ['completed', { timedOut: false, got: [{ n: 1 }, { n: 2 }] }]);
    } finally {
      await store.close();
    }
  });

  it('wakes a suspended run for a signal its gateway stored but never announced', async () => {
    // What a gateway killed between storing a signal and SignalRun leaves (or one whose SignalRun
    // got no answer): the signal in the payload store, owed to the control plane. Nobody sends it
    // again; the gateway's signal sweep tells the control plane.
    const store = PayloadStore.connect({ connectionString: t.stack.dpDatabaseUrl, keys: KeyRing.parse(t.stack.secrets.encryptionKeys) });
    try {
      const runId = await t.start('signal-waiter', { delayMs: 0 });
      await t.waitForRun(runId, (r) => r.status === 'suspended' && r.waitingSignal === 'go');
      await store.addSignal(runId, 'go', { n: 3 });
      // The sweep runs every 5 s (jittered) and takes signals older than the gateway's 10 s control-plane deadline.
      await t.waitForRun(runId, (r) => r.status === 'completed', 45_000);
      assert.deepEqual((await t.result(runId)).output, { timedOut: false, got: [{ n: 3 }] });
    } finally {
      await store.close();
    }
  });

  it('takes the timeout path when no signal comes', async () => {
    const runId = await t.start('signal-waiter', { delayMs: 0, timeoutMs: 2500 });
    await t.waitForRun(runId, (r) => r.status === 'suspended');
    const result = await t.result(runId);
    assert.deepEqual(result.output, { timedOut: true, got: [] });
  });
});

describe('timers without the periodic sweep', () => {
  let t: TestStack;
  before(async () => {
    // The periodic sweep runs every ten minutes here: a run woken in this test was woken by the
    // control plane's timer for its wake-up time, not by the sweep.
    t = await startTestStack({ name: 'timers', workers: 1, workerSlots: 4, suspendThresholdMs: 200, sweepIntervalMs: 600_000 });
  });
  after(async () => {
    await t?.stop();
  });

  it('wakes a suspended sleep, and a signal wait at its deadline, when they are due', async () => {
    const sleeper = await t.start('sleeper', { sleepMs: 1500 });
    const waiter = await t.start('signal-waiter', { delayMs: 0, timeoutMs: 2000 });
    assert.equal((await t.waitForRun(sleeper, (r) => r.status === 'suspended')).status, 'suspended');
    assert.equal((await t.waitForRun(waiter, (r) => r.status === 'suspended')).status, 'suspended');
    const slept = await t.result(sleeper);
    assert.equal(slept.status, 'completed');
    assert.deepEqual(slept.output, { sleptAtLeast: true });
    const waited = await t.result(waiter);
    assert.deepEqual(waited.output, { timedOut: true, got: [] });
    const { steps } = await t.describe(sleeper);
    assert.ok(steps.some((s) => s.kind === 'sleep' && s.status === 'completed'));
  });
});

for (const skewMs of [-60_000, 60_000]) {
  describe(`a worker whose clock is ${skewMs / 1000} s off`, () => {
    let t: TestStack;
    let cp: pg.Client;
    before(async () => {
      t = await startTestStack({
        name: `skew${skewMs}`,
        workers: 1,
        workerSlots: 2,
        suspendThresholdMs: 500,
        workerEnv: { CAIRN_TEST_CLOCK_SKEW_MS: String(skewMs) },
      });
      cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
      await cp.connect();
    });
    after(async () => {
      await cp?.end();
      await t?.stop();
    });

    it("sleeps as long as the workflow asked on the control plane's clock", async () => {
      const sleepMs = 3000;
      const startedAt = Date.now();
      const runId = await t.start('sleeper', { sleepMs });
      // The wake-up time the control plane recorded for the suspended run, from its database's now.
      let wakeInMs: number | undefined;
      let status = '';
      while (Date.now() - startedAt < 20_000) {
        const { rows } = await cp.query<{ status: string; ms: number | null }>(
          'SELECT status, (extract(epoch FROM wake_at - clock_timestamp()) * 1000)::float8 AS ms FROM runs WHERE id = $1',
          [runId],
        );
        status = rows[0]?.status ?? '';
        if (status === 'suspended' && rows[0]?.ms !== null && rows[0]?.ms !== undefined) {
          wakeInMs = rows[0].ms;
          break;
        }
        if (['completed', 'failed', 'cancelled', 'terminated', 'timed_out'].includes(status)) break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.ok(
        wakeInMs !== undefined && wakeInMs > sleepMs - 2000 && wakeInMs < sleepMs + 1000,
        `the run wakes in ${wakeInMs} ms (status ${status}); expected about ${sleepMs}`,
      );
      const result = await t.result(runId);
      assert.equal(result.status, 'completed');
      assert.deepEqual(result.output, { sleptAtLeast: true });
      assert.ok(Date.now() - startedAt >= sleepMs, `the run ended ${Date.now() - startedAt} ms after it started`);
    });
  });
}
