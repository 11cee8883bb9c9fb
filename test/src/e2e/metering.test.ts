import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../harness.js';

interface Step {
  kind: string;
  status: string;
  inputTokens: number | null;
  outputTokens: number | null;
  provider: string | null;
  model: string | null;
}
interface Usage {
  days: Array<{ day: string; runsStarted: number; stepsExecuted: number; inputTokens: number; outputTokens: number }>;
  totals: {
    runsStarted: number;
    stepsExecuted: number;
    inputTokens: number;
    outputTokens: number;
    tokens: Array<{ provider: string; model: string; calls: number; inputTokens: number; outputTokens: number }>;
  };
}

/**
 * Metering, quotas and the audit trail with real processes (control plane, gateway, worker, local
 * model server): what real runs with retries and model calls count, the gateway's 429 when a
 * project quota refuses a start, and the lifecycle of a real run in the audit log.
 */
describe('metering, quotas and audit end to end', () => {
  let t: TestStack;
  const cp = (method: string, path: string, body?: unknown) =>
    fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default${path}`, {
      method,
      headers: {
        authorization: `Bearer ${t.stack.secrets.apiToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  before(async () => {
    t = await startTestStack({ name: 'metering', workers: 1 });
  });
  after(async () => {
    await t?.stop();
  });

  it('counts runs, step attempts (retries included) and model tokens of real runs by day', async () => {
    await t.setModelScript({ rules: [{ contains: 'metering-case', text: 'metered answer', faults: [{ kind: 'status', status: 503 }] }] });
    const runs = [
      await t.start('flaky', { failures: 2, backoffMs: 20 }),
      await t.start('model-call', { prompt: 'metering-case count my tokens' }),
      await t.start('five-steps', { step3Ms: 10 }),
    ];
    for (const runId of runs) assert.equal((await t.result(runId)).status, 'completed');

    // What the control plane's own timelines say was executed. Step reports travel in batches, so
    // read until every attempt has its final report: two failed attempts and a success (flaky),
    // five steps, and a model call retried once.
    const ended = (s: Step) => ['step', 'model'].includes(s.kind) && ['completed', 'failed', 'retrying'].includes(s.status);
    let executed: Step[] = [];
    for (let reads = 0; executed.length < 10 && reads < 200; reads++) {
      if (reads > 0) await new Promise((r) => setTimeout(r, 50));
      const steps: Step[] = [];
      for (const runId of runs) steps.push(...((await t.describe(runId)).steps as unknown as Step[]));
      executed = steps.filter(ended);
    }
    const model = executed.filter((s) => s.kind === 'model');
    assert.deepEqual(
      [executed.filter((s) => s.kind === 'step').length, model.map((s) => s.status)],
      [3 + 5, ['retrying', 'completed']],
      'flaky: two failed attempts and a success; five steps; one retried model call',
    );
    const inputTokens = model.reduce((n, s) => n + (s.inputTokens ?? 0), 0);
    const outputTokens = model.reduce((n, s) => n + (s.outputTokens ?? 0), 0);
    assert.ok(inputTokens > 0 && outputTokens > 0, 'the local model server reports usage');
    const completed = model.find((s) => s.status === 'completed')!;

    const day = new Date().toISOString().slice(0, 10);
    let usage: Usage | undefined;
    // Step reports travel in batches, so poll until the counters have caught up.
    for (;;) {
      const res = await cp('GET', `/usage?from=${day}&to=${day}`);
      assert.equal(res.status, 200);
      usage = (await res.json()) as Usage;
      if (usage.totals.stepsExecuted >= executed.length) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(
      [usage.totals.runsStarted, usage.totals.stepsExecuted, usage.totals.inputTokens, usage.totals.outputTokens],
      [3, executed.length, inputTokens, outputTokens],
    );
    const byModel = new Map<string, { provider: string; model: string; calls: number; inputTokens: number; outputTokens: number }>();
    for (const s of model) {
      const provider = s.provider ?? 'unknown';
      const name = s.model ?? 'unknown';
      const seen = byModel.get(`${provider} ${name}`) ?? { provider, model: name, calls: 0, inputTokens: 0, outputTokens: 0 };
      byModel.set(`${provider} ${name}`, {
        ...seen,
        calls: seen.calls + 1,
        inputTokens: seen.inputTokens + (s.inputTokens ?? 0),
        outputTokens: seen.outputTokens + (s.outputTokens ?? 0),
      });
    }
    assert.deepEqual(usage.totals.tokens, [...byModel.values()]);
    assert.equal(completed.provider !== null && completed.model !== null, true);
    assert.deepEqual(
      usage.days.map((d) => d.day),
      [day],
    );
  });

  it('a project at its concurrent-run quota gets 429 from the gateway, saying which quota and what to do', async () => {
    assert.equal((await cp('PUT', '/quotas', { maxConcurrentRuns: 1, maxStepsPerMonth: null })).status, 200);
    const sleeping = await t.start('sleeper', { sleepMs: 600_000 });
    await t.waitForRun(sleeping, (r) => r.status === 'suspended');
    const refused = await t.gateway('POST', '/v1/runs', {
      body: JSON.stringify({ workflow: 'five-steps', input: { step3Ms: 1 } }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(refused.status, 429);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'CAIRN-1112');
    assert.match(body.error.message, /project default is at its concurrent-run quota \(maxConcurrentRuns\): 1 of 1 runs have not ended/);
    assert.match(
      body.error.message,
      /cancel runs you no longer need, or ask a project admin to raise the quota with PUT \/v1\/projects\/default\/quotas/,
    );

    // Cancelling the sleeping run frees the quota.
    assert.equal((await t.gateway('POST', `/v1/runs/${sleeping}/cancel`)).status < 300, true);
    await t.waitForRun(sleeping, (r) => r.status === 'cancelled');
    const next = await t.start('five-steps', { step3Ms: 1 });
    assert.equal((await t.result(next)).status, 'completed');

    // A workflow's child run is refused the same way: the parent is the one run the quota allows,
    // and its ctx.child call fails with the quota as the cause.
    const parent = await t.start('parent-work', {});
    const result = await t.result(parent);
    assert.equal(result.status, 'completed', JSON.stringify(result));
    const output = result.output as { caught: string; message: string };
    assert.equal(output.caught, 'ChildWorkflowFailedError');
    assert.match(output.message, /refused to start the child run of workflow "child-work": the project is at its concurrent-run quota/);
    assert.equal((await cp('PUT', '/quotas', { maxConcurrentRuns: null, maxStepsPerMonth: null })).status, 200);
  });

  it("a real run's lifecycle is in the verified audit log, in order", async () => {
    const runId = await t.start('sleeper', { sleepMs: 300 });
    assert.equal((await t.result(runId)).status, 'completed');
    const verified = (await (await cp('POST', '/audit/verify')).json()) as { ok: boolean };
    assert.equal(verified.ok, true, JSON.stringify(verified));
    const res = await cp('GET', `/audit?targetId=${runId}&limit=200`);
    const { entries } = (await res.json()) as { entries: Array<{ action: string; position: number; metadata: { epoch: number } }> };
    const trail = entries.sort((a, b) => a.position - b.position);
    const actions = trail.map((e) => e.action);
    assert.equal(actions[0], 'run.queued');
    assert.equal(actions[1], 'run.running');
    assert.equal(actions[actions.length - 1], 'run.completed');
    // A 300 ms sleep suspends the run (the stack's threshold) or waits in memory; either way every
    // claim raises the epoch and the epochs never go back.
    const epochs = trail.map((e) => e.metadata.epoch);
    assert.deepEqual(
      epochs,
      [...epochs].sort((a, b) => a - b),
    );
    assert.equal(trail.filter((e) => e.action === 'run.running').length, Math.max(...epochs));
    const quotaChanges = (await (await cp('GET', '/audit?action=quota.updated')).json()) as { entries: unknown[] };
    assert.equal(quotaChanges.entries.length, 2);
  });
});
