// Compensation on in-memory journals: a run that failed on an earlier worker before compensating
// compensates on the next one with the recorded results, and a journaled compensation is not run again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '@cairn/proto';
import { TerminalError, defineWorkflow } from '@cairn/sdk';
import { memoryEngine } from '../test-support.js';

const T0 = Date.UTC(2030, 0, 1);

describe('compensation', () => {
  const undone: unknown[] = [];
  let booked = 0;
  const wf = defineWorkflow({ name: 'trip', version: '1' }, async (ctx) => {
    await ctx.step('book', { compensate: (booking) => void undone.push(booking) }, () => ({ booking: ++booked }));
    await ctx.step('charge', () => {
      throw new TerminalError('card declined');
    });
    return 'paid';
  });

  it('resumes with the recorded result: the replayed step is undone, not run again', async () => {
    undone.length = 0;
    booked = 0;
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    await m.record(runId, [
      { position: 0, kind: 'step', name: 'book', status: 'completed', attempt: 1, value: { booking: 'B-7' }, startedAt: T0, endedAt: T0 },
    ]);
    const outcome = await m.dispatch(runId, wf).done;
    assert.equal(outcome.kind === 'failed' && outcome.errorCode, ErrorCode.STEP_TERMINAL);
    assert.equal(booked, 0);
    assert.deepEqual(undone, [{ booking: 'B-7' }]);
    const entries = m.journals.entries(runId);
    assert.deepEqual(
      entries.map((e) => [e.name, e.status]),
      [
        ['book', 'completed'],
        ['charge', 'failed'],
        ['compensate.book', 'completed'],
      ],
    );
  });

  it('does not run a journaled compensation again', async () => {
    undone.length = 0;
    booked = 0;
    const m = memoryEngine([wf]);
    const first = m.create(wf, null);
    assert.equal((await m.dispatch(first, wf).done).kind, 'failed');
    assert.equal(undone.length, 1);
    // The same journal on a second run, whose end was not stored: a worker that crashed after compensating.
    const runId = m.create(wf, null);
    await m.record(
      runId,
      m.journals.entries(first).map((e) => ({ ...e, keyDigest: e.keyDigest, error: e.error })),
    );
    undone.length = 0;
    const outcome = await m.dispatch(runId, wf).done;
    assert.equal(outcome.kind, 'failed');
    assert.deepEqual(undone, [], 'the compensation replays from the journal');
    assert.equal(booked, 1);
  });
});
