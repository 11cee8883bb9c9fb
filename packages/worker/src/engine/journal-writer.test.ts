// Fencing on in-memory journals: once another epoch holds the run, a write of the old execution is
// refused, the execution ends as lost and reports nothing more.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StepStatus } from '@cairn/proto';
import { defineWorkflow } from '@cairn/sdk';
import { memoryEngine } from './test-support.js';

describe('journal writer', () => {
  it('abandons the execution when a write is fenced by a newer epoch', async () => {
    let release!: () => void;
    const started = new Promise<void>((resolve) => (release = resolve));
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const ran: string[] = [];
    const wf = defineWorkflow({ name: 'fenced', version: '1' }, async (ctx) => {
      await ctx.step('slow', async () => {
        ran.push('slow');
        release();
        await gate;
        return 1;
      });
      await ctx.step('next', () => ran.push('next'));
      return 'done';
    });
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    const old = m.dispatch(runId, wf);
    await started;
    // Another worker takes the run (epoch 2) while the step is running here.
    await m.journals.open(runId).acquire(2);
    finish();
    const outcome = await old.done;
    assert.equal(outcome.kind, 'lost');
    assert.deepEqual(ran, ['slow'], 'nothing runs after the fenced write');
    assert.deepEqual(m.journals.entries(runId), [], 'the fenced result is not journaled');
    assert.equal(m.journals.run(runId)?.status, 'open');
    assert.ok(!m.reports.some((r) => r.step?.status === StepStatus.COMPLETED));
    assert.ok(m.journals.writes.some((w) => w.epoch === 1 && w.op === 'append'));
  });

  it('refuses an execution whose epoch is older than the run holder', async () => {
    const wf = defineWorkflow({ name: 'stale', version: '1' }, async (ctx) => ctx.step('a', () => 1));
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    await m.journals.open(runId).acquire(5);
    const outcome = await m.engine.start({ runId, epoch: 3, workflowName: 'stale', workflowVersion: '1' }).done;
    assert.equal(outcome.kind, 'lost');
    assert.deepEqual(m.journals.entries(runId), []);
  });

  it('journals ctx.now() values with the next step result, in one commit', async () => {
    const wf = defineWorkflow({ name: 'batched', version: '1' }, async (ctx) => {
      ctx.now();
      ctx.now();
      return ctx.step('a', () => 1);
    });
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    assert.equal((await m.dispatch(runId, wf).done).kind, 'completed');
    assert.deepEqual(
      m.journals.writes.filter((w) => w.runId === runId).map((w) => w.op),
      ['append', 'complete'],
    );
    assert.deepEqual(
      m.journals.entries(runId).map((e) => e.kind),
      ['now', 'now', 'step'],
    );
  });
});
