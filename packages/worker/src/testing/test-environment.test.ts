import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { StepStatus } from '@cairn/proto';
import { CancelledError, ChildWorkflowFailedError, defineWorkflow } from '@cairn/sdk';
import { z } from 'zod';
import { RunFailedError, TestEnvironment, VirtualClock, testModel, type TestModel } from './index.js';

const DAY = 24 * 3600_000;
const START = Date.parse('2030-01-01T09:00:00Z');

const refund = defineWorkflow({ name: 'env-refund', version: '1' }, async (ctx, order: { id: string }) => {
  const askedAt = ctx.now().getTime();
  await ctx.step('draft', () => ({ amount: 20 }));
  const answer = await ctx.approval<{ amount?: number }>('refund', { key: order.id, timeout: '7d' });
  const answeredAt = ctx.now().getTime();
  return { approved: answer.approved, by: answer.by, amount: answer.data?.amount, askedAt, answeredAt };
});

const reminder = defineWorkflow({ name: 'env-sleep', version: '1' }, async (ctx) => {
  const before = ctx.now().getTime();
  await ctx.sleep('7d');
  const after = ctx.now().getTime();
  await ctx.step('remind', () => 'sent');
  return { before, after };
});

const expiring = defineWorkflow({ name: 'env-expiring', version: '1' }, async (ctx) => {
  const answer = await ctx.approval('sign-off', { timeout: '2d', onTimeout: 'reject' });
  return { timedOut: answer.timedOut === true, at: ctx.now().getTime() };
});

const late = defineWorkflow({ name: 'env-late', version: '1' }, async (ctx) => {
  const startedAt = ctx.now().getTime();
  await ctx.sleep('1d');
  const answer = await ctx.approval('go');
  return { approved: answer.approved, by: answer.by, waited: ctx.now().getTime() - startedAt };
});

const failing = defineWorkflow({ name: 'env-failing', version: '1' }, async (ctx) => {
  await ctx.step('boom', { retry: { maximumAttempts: 3, initialInterval: '1h' } }, () => {
    throw new Error('still broken');
  });
});

const quickChild = defineWorkflow({ name: 'env-child-quick', version: '1' }, async (ctx, input: { n: number }) => {
  return ctx.step('double', () => input.n * 2);
});

const sleepyChild = defineWorkflow({ name: 'env-child-sleepy', version: '1' }, async (ctx, input: { n: number }) => {
  const before = ctx.now().getTime();
  await ctx.sleep('1d');
  return { n: input.n + 1, slept: ctx.now().getTime() - before };
});

const brokenChild = defineWorkflow({ name: 'env-child-broken', version: '1' }, async (ctx) => {
  await ctx.step('explode', () => {
    throw new Error('child exploded');
  });
});

const slowChild = defineWorkflow({ name: 'env-child-slow', version: '1' }, async (ctx) => {
  await ctx.sleep('2d');
  return 'late';
});

const parent = defineWorkflow({ name: 'env-parent', version: '1' }, async (ctx, input: { n: number }) => {
  const startedAt = ctx.now().getTime();
  const [quick, sleepy] = await Promise.all([ctx.child(quickChild, { n: input.n }), ctx.child(sleepyChild, { n: input.n })]);
  return { quick, sleepy, waited: ctx.now().getTime() - startedAt };
});

const catching = defineWorkflow({ name: 'env-catching', version: '1' }, async (ctx) => {
  const caught: Array<{ workflowName: string; cancelled: boolean; causeName: string; causeMessage: string }> = [];
  for (const name of ['env-child-broken', 'env-not-registered']) {
    try {
      await ctx.child<typeof brokenChild>(name, undefined);
    } catch (err) {
      if (!(err instanceof ChildWorkflowFailedError)) throw err;
      const { workflowName, cancelled, causeName, causeMessage } = err;
      caught.push({ workflowName, cancelled, causeName, causeMessage });
    }
  }
  return caught;
});

const waitsOnSlow = defineWorkflow({ name: 'env-waits-on-slow', version: '1' }, async (ctx) => {
  return ctx.child(slowChild, undefined);
});

// The model a workflow under test calls: a scripted stand-in, made afresh for each environment.
const newScriptedModel = () =>
  testModel('{"category":"damaged"}', { text: 'Sorry about the broken mug.', inputTokens: 12, outputTokens: 7 });
let scripted: TestModel = newScriptedModel();

const triage = defineWorkflow({ name: 'env-triage', version: '1' }, async (ctx, input: { message: string }) => {
  const { object } = await ctx.model('classify', {
    model: scripted,
    prompt: input.message,
    schema: z.object({ category: z.enum(['damaged', 'late', 'other']) }),
  });
  const reply = await ctx.model('reply', { model: scripted, prompt: `Write to the customer about: ${input.message}` });
  return { category: object.category, reply: reply.text, tokens: reply.usage };
});

describe('VirtualClock', () => {
  it('runs timers in time order as it advances, and not before', () => {
    const clock = new VirtualClock(1000);
    const fired: Array<[string, number]> = [];
    clock.setTimer(() => fired.push(['b', clock.now()]), 200);
    clock.setTimer(() => fired.push(['a', clock.now()]), 100);
    const c = clock.setTimer(() => fired.push(['c', clock.now()]), 150);
    c.cancel();
    clock.advance(99);
    assert.deepEqual(fired, []);
    clock.advance(500);
    assert.deepEqual(fired, [
      ['a', 1100],
      ['b', 1200],
    ]);
    assert.equal(clock.now(), 1599);
    assert.equal(clock.nextDueAt(), undefined);
  });
});

for (const kind of testPostgresKinds()) {
  describe(`TestEnvironment on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let env: TestEnvironment;

    before(async () => {
      scripted = newScriptedModel();
      server = await testPostgres(kind);
      env = await TestEnvironment.start({
        workflows: [
          refund,
          reminder,
          expiring,
          late,
          failing,
          quickChild,
          sleepyChild,
          brokenChild,
          slowChild,
          parent,
          catching,
          waitsOnSlow,
          triage,
        ],
        postgres: await server.createDatabase(uniqueDatabaseName('wenv')),
        startTime: START,
      });
    });

    after(async () => {
      await env.stop();
      await server.stop();
    });

    it('runs model calls against a scripted test model: structured output, then streamed text with its usage', async () => {
      const runId = await env.start(triage, { message: 'my mug arrived broken' });
      assert.deepEqual(await env.result(runId), {
        category: 'damaged',
        reply: 'Sorry about the broken mug.',
        tokens: { inputTokens: 12, outputTokens: 7 },
      });
      const prompts = [...scripted.doGenerateCalls, ...scripted.doStreamCalls].map((c) => JSON.stringify(c.prompt));
      assert.equal(prompts.length, 2, 'one provider call per model call: nothing repeated');
      assert.ok(prompts.some((p) => p.includes('my mug arrived broken')));
    });

    it('answers an approval after a two-day wait, on the virtual clock', async () => {
      const runId = await env.start(refund, { id: 'o-1' });
      const t0 = env.now().getTime();
      await env.advance('2d');
      assert.equal(env.status(runId), 'suspended');
      assert.equal(env.now().getTime() - t0, 2 * DAY);
      await env.approve(runId, 'refund', { approved: true, by: 'maria', data: { amount: 15 } }, { key: 'o-1' });
      const out = await env.result(runId);
      assert.equal(out.approved, true);
      assert.equal(out.by, 'maria');
      assert.equal(out.amount, 15);
      assert.ok(out.answeredAt - out.askedAt >= 2 * DAY, `ctx.now() moved ${out.answeredAt - out.askedAt} ms`);
      assert.ok(out.answeredAt - out.askedAt < 7 * DAY, 'answered before the timeout');
    });

    it('skips a one-week sleep while waiting for the result', async () => {
      const t0 = env.now().getTime();
      const runId = await env.start(reminder, undefined);
      const out = await env.result(runId);
      assert.ok(out.after - out.before >= 7 * DAY, `slept ${out.after - out.before} ms of virtual time`);
      assert.ok(env.now().getTime() - t0 >= 7 * DAY);
    });

    it('keeps an approval answered before the wait began', async () => {
      const runId = await env.start(late, undefined);
      await env.advance('1h');
      assert.equal(env.status(runId), 'suspended', 'sleeping, not yet waiting for the approval');
      await env.approve(runId, 'go', { approved: false, by: 'li' });
      const out = await env.result(runId);
      assert.equal(out.approved, false);
      assert.equal(out.by, 'li');
      assert.ok(out.waited >= 1 * DAY && out.waited < 1 * DAY + 3600_000, `waited ${out.waited} ms of virtual time`);
    });

    it('times an unanswered approval out, and reports failed runs with their stored error', async () => {
      const runId = await env.start(expiring, undefined);
      const t0 = env.now().getTime();
      const out = await env.result(runId);
      assert.equal(out.timedOut, true);
      assert.ok(out.at - t0 >= 2 * DAY);

      const failed = await env.start(failing, undefined);
      await assert.rejects(
        env.result(failed),
        (err: unknown) =>
          err instanceof RunFailedError &&
          err.errorCode === 'STEP_FAILED' &&
          /still broken/.test(err.message) &&
          err.errorName === 'StepFailedError',
      );
      const attempts = env.reportsFor(failed).filter((r) => r.step?.name === 'boom' && r.step.status !== StepStatus.RUNNING);
      assert.ok(attempts.length >= 3);
    });

    it('runs child workflows: the parent gets both outputs while the sleeping child skips a day', async () => {
      const t0 = env.now().getTime();
      const wall = Date.now();
      const runId = await env.start(parent, { n: 20 });
      const out = await env.result(runId);
      assert.equal(out.quick, 40);
      assert.deepEqual(out.sleepy, { n: 21, slept: DAY });
      assert.ok(out.waited >= DAY, `the parent waited ${out.waited} ms of virtual time`);
      assert.ok(env.now().getTime() - t0 >= DAY);
      assert.ok(Date.now() - wall < 60_000, 'virtual time, not wall time');
      const children = env.children(runId);
      assert.equal(children.length, 2);
      for (const child of children) assert.equal(env.status(child), 'completed');
      const childSteps = env.reportsFor(runId).filter((r) => r.step?.name.startsWith('env-child-'));
      assert.ok(childSteps.some((r) => r.step?.status === StepStatus.COMPLETED));
    });

    it("skips a child's two-day sleep while the parent waits on it", async () => {
      const t0 = env.now().getTime();
      const wall = Date.now();
      const runId = await env.start(waitsOnSlow, undefined);
      assert.equal(await env.result(runId), 'late');
      assert.ok(env.now().getTime() - t0 >= 2 * DAY);
      assert.ok(Date.now() - wall < 60_000, 'virtual time, not wall time');
    });

    it('surfaces a failed child, and an unknown child workflow, as a catchable ChildWorkflowFailedError', async () => {
      const runId = await env.start(catching, undefined);
      const caught = await env.result(runId);
      assert.equal(caught.length, 2);
      assert.equal(caught[0]!.workflowName, 'env-child-broken');
      assert.equal(caught[0]!.cancelled, false);
      assert.match(caught[0]!.causeMessage, /child exploded/);
      assert.equal(caught[1]!.workflowName, 'env-not-registered');
      assert.equal(caught[1]!.causeName, 'WorkflowNotFoundError');
      const [child] = env.children(runId);
      assert.equal(env.children(runId).length, 1, 'an unknown workflow starts no run');
      assert.equal(env.status(child!), 'failed');
      await assert.rejects(env.result(child!), (err: unknown) => err instanceof RunFailedError && /child exploded/.test(err.message));
    });

    it('cancels the child when the parent is cancelled', async () => {
      const runId = await env.start(waitsOnSlow, undefined);
      await env.advance('1h');
      assert.equal(env.status(runId), 'suspended');
      const [child] = env.children(runId);
      assert.ok(child, 'the child run was started');
      assert.equal(env.status(child), 'suspended', 'the child sleeps');
      env.cancel(runId);
      await assert.rejects(env.result(runId), (err: unknown) => err instanceof CancelledError);
      await assert.rejects(env.result(child), (err: unknown) => err instanceof CancelledError);
      assert.equal(env.status(child), 'cancelled');
    });
  });
}
