// Replay matching on in-memory journals: recorded results come back without running anything, and
// a call that differs from the journal (kind, name or key) is non-determinism.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '@cairn/proto';
import { defineWorkflow } from '@cairn/sdk';
import { memoryEngine } from './test-support.js';

const T0 = Date.UTC(2030, 0, 1);

describe('journal cursor', () => {
  it('replays completed steps with their recorded values, without running them', async () => {
    const calls: string[] = [];
    const wf = defineWorkflow({ name: 'replay', version: '1' }, async (ctx) => {
      const a = await ctx.step('a', () => (calls.push('a'), 1));
      const b = await ctx.step('b', { key: 'k' }, () => (calls.push('b'), 2));
      const c = await ctx.step('c', () => (calls.push('c'), 3));
      return { a, b, c };
    });
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    await m.record(runId, [
      { position: 0, kind: 'step', name: 'a', status: 'completed', attempt: 1, value: 10, startedAt: T0, endedAt: T0 },
      {
        position: 1,
        kind: 'step',
        name: 'b',
        keyDigest: m.digest(wf, 'k'),
        status: 'completed',
        attempt: 1,
        value: 20,
        startedAt: T0,
        endedAt: T0,
      },
    ]);
    const execution = m.dispatch(runId, wf);
    const outcome = await execution.done;
    assert.equal(outcome.kind, 'completed');
    assert.deepEqual(calls, ['c'], 'only the call past the journal runs');
    assert.deepEqual(m.journals.run(runId)?.output, { a: 10, b: 20, c: 3 });
    assert.deepEqual(execution.replayed, { step: 2, model: 0 });
  });

  it('replays a recorded step failure as the same StepFailedError', async () => {
    let ran = 0;
    const wf = defineWorkflow({ name: 'replay-failure', version: '1' }, async (ctx) => {
      try {
        await ctx.step('a', () => ++ran);
        return 'no error';
      } catch (err) {
        return `${(err as Error).name}: ${(err as { causeMessage?: string }).causeMessage ?? ''}`;
      }
    });
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    await m.record(runId, [
      {
        position: 0,
        kind: 'step',
        name: 'a',
        status: 'failed',
        attempt: 3,
        error: { name: 'Error', message: 'card declined' },
        startedAt: T0,
        endedAt: T0,
      },
    ]);
    assert.equal((await m.dispatch(runId, wf).done).kind, 'completed');
    assert.equal(ran, 0);
    assert.equal(m.journals.run(runId)?.output, 'StepFailedError: card declined');
  });

  for (const [what, recorded] of [
    ['name', { kind: 'step', name: 'other' }],
    ['kind', { kind: 'sleep', name: 'sleep' }],
    ['key', { kind: 'step', name: 'a', key: 'k2' }],
  ] as const) {
    it(`fails the run with NON_DETERMINISM when the journal's call differs in ${what}`, async () => {
      let ran = 0;
      const wf = defineWorkflow({ name: 'nd', version: '1' }, async (ctx) => {
        await ctx.step('a', { key: 'k1' }, () => ++ran);
        return 'done';
      });
      const m = memoryEngine([wf]);
      const runId = m.create(wf, null);
      await m.record(runId, [
        {
          position: 0,
          kind: recorded.kind,
          name: recorded.name,
          keyDigest: 'key' in recorded ? m.digest(wf, recorded.key) : recorded.kind === 'step' ? m.digest(wf, 'k1') : undefined,
          status: 'completed',
          attempt: 1,
          value: 1,
          startedAt: T0,
          endedAt: T0,
        },
      ]);
      const outcome = await m.dispatch(runId, wf).done;
      assert.equal(outcome.kind, 'failed');
      assert.equal(outcome.kind === 'failed' && outcome.errorCode, ErrorCode.NON_DETERMINISM);
      assert.equal(ran, 0, 'nothing runs past a mismatch');
      const error = m.journals.error(m.journals.run(runId)?.errorRef ?? '');
      assert.equal(error?.name, 'NonDeterminismError');
      assert.match(error?.message ?? '', /position 0/);
    });
  }

  it('fails with NON_DETERMINISM when the code completes without a call the journal holds', async () => {
    const wf = defineWorkflow({ name: 'fewer', version: '1' }, async (ctx) => ctx.step('a', () => 1));
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    await m.record(runId, [
      { position: 0, kind: 'step', name: 'a', status: 'completed', attempt: 1, value: 1, startedAt: T0, endedAt: T0 },
      { position: 1, kind: 'step', name: 'b', status: 'completed', attempt: 1, value: 2, startedAt: T0, endedAt: T0 },
    ]);
    const outcome = await m.dispatch(runId, wf).done;
    assert.equal(outcome.kind === 'failed' && outcome.errorCode, ErrorCode.NON_DETERMINISM);
  });

  it('matches parallel branches by identity whatever order they finished in', async () => {
    const ran: number[] = [];
    // First run: branch 0 finishes last, so its second call gets the last position; the replay
    // finds each branch's entries by identity, in whatever order the branches get there.
    let order = [30, 20, 10];
    const wf = defineWorkflow({ name: 'fan-out', version: '1' }, async (ctx) => {
      const results = await ctx.parallel([0, 1, 2], async (i) => {
        await ctx.step('delay', () => new Promise((resolve) => setTimeout(resolve, order[i])));
        return ctx.step('item', () => (ran.push(i), i * 10));
      });
      const go = await ctx.waitForSignal<string>('go');
      return { results, go };
    });
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    const first = await m.dispatch(runId, wf).done;
    assert.equal(first.kind, 'suspended');
    assert.deepEqual(ran, [2, 1, 0]);
    const positions = m.journals
      .entries(runId)
      .filter((e) => e.name === 'item')
      .map((e) => e.value);
    assert.deepEqual(positions, [20, 10, 0], 'positions are handed out in completion order');

    order = [10, 20, 30];
    m.journals.addSignal(runId, 'go', 'now');
    const second = m.dispatch(runId, wf);
    assert.equal((await second.done).kind, 'completed');
    assert.deepEqual(ran, [2, 1, 0], 'no branch ran again');
    assert.equal(second.replayed.step, 6);
    assert.deepEqual(m.journals.run(runId)?.output, { results: [0, 10, 20], go: 'now' });
  });

  it('returns recorded ctx.now() values and journals new ones with the next commit', async () => {
    const wf = defineWorkflow({ name: 'now', version: '1' }, async (ctx) => {
      const a = ctx.now().getTime();
      await ctx.step('s', () => 1);
      const b = ctx.now().getTime();
      return { a, b };
    });
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    await m.record(runId, [{ position: 0, kind: 'now', name: 'now', status: 'completed', value: T0, startedAt: T0, endedAt: T0 }]);
    assert.equal((await m.dispatch(runId, wf).done).kind, 'completed');
    const output = m.journals.run(runId)?.output as { a: number; b: number };
    assert.equal(output.a, T0);
    const entries = m.journals.entries(runId);
    assert.deepEqual(
      entries.map((e) => [e.position, e.kind]),
      [
        [0, 'now'],
        [1, 'step'],
        [2, 'now'],
      ],
    );
    assert.equal(entries[2]?.value, output.b);
  });
});
