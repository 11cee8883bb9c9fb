// Suspension decisions on in-memory journals: short waits stay in memory, long ones suspend the run
// with the wake-up the control plane needs, and a resumed run continues where it waited.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SuspendReason } from '@cairn/proto';
import { defineWorkflow } from '@cairn/sdk';
import { MULTI_SIGNAL_POLL_MS, suspendOutcome, type Wait } from './suspension.js';
import { memoryEngine } from './test-support.js';

const HOUR = 3_600_000;

const wait = (w: Partial<Wait>): Wait => ({
  reason: 'sleep',
  dueAt: undefined,
  signalName: undefined,
  childRunId: undefined,
  long: true,
  internal: false,
  fail: () => undefined,
  dispose: () => undefined,
  ...w,
});

describe('suspension decision', () => {
  it('wakes at the earliest timer, naming a retry backoff as such', () => {
    const outcome = suspendOutcome([wait({ reason: 'retry', dueAt: 2000 }), wait({ reason: 'sleep', dueAt: 5000 })], 0, () => 0);
    assert.equal(outcome.reason, SuspendReason.RETRY_BACKOFF);
    assert.equal(outcome.wakeAt, 2000);
  });

  it('names the signal a run waits for, with how many of it were consumed', () => {
    const outcome = suspendOutcome([wait({ reason: 'signal', signalName: 'go', dueAt: 9000 })], 0, (name) => (name === 'go' ? 2 : 0));
    assert.deepEqual(
      { reason: outcome.reason, signalName: outcome.signalName, consumed: outcome.signalsConsumed, wakeAt: outcome.wakeAt },
      { reason: SuspendReason.SIGNAL, signalName: 'go', consumed: 2, wakeAt: 9000 },
    );
  });

  it('polls when waiting for two signal names at once', () => {
    const outcome = suspendOutcome(
      [wait({ reason: 'signal', signalName: 'a' }), wait({ reason: 'signal', signalName: 'b' })],
      1000,
      () => 0,
    );
    assert.equal(outcome.wakeAt, 1000 + MULTI_SIGNAL_POLL_MS);
  });

  it('names the child whose end wakes the run, behind a signal wait', () => {
    const child = suspendOutcome([wait({ reason: 'child', childRunId: 'c1' })], 0, () => 0);
    assert.deepEqual([child.reason, child.childRunId, child.wakeAt], [SuspendReason.CHILD, 'c1', 0]);
    const both = suspendOutcome([wait({ reason: 'child', childRunId: 'c1' }), wait({ reason: 'signal', signalName: 's' })], 0, () => 0);
    assert.deepEqual([both.reason, both.childRunId], [SuspendReason.SIGNAL, 'c1']);
  });
});

describe('suspension in the engine', () => {
  it('keeps a short sleep in memory and suspends a long one at its journaled wake time', async () => {
    const wf = defineWorkflow({ name: 'sleeps', version: '1' }, async (ctx) => {
      await ctx.sleep(5);
      await ctx.sleep('1h');
      return 'awake';
    });
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    const outcome = await m.dispatch(runId, wf).done;
    assert.equal(outcome.kind, 'suspended');
    const entries = m.journals.entries(runId);
    assert.deepEqual(
      entries.map((e) => [e.kind, e.status]),
      [
        ['sleep', 'completed'],
        ['sleep', 'waiting'],
      ],
    );
    assert.equal(outcome.kind === 'suspended' && outcome.reason, SuspendReason.SLEEP);
    assert.equal(outcome.kind === 'suspended' && outcome.wakeAt, entries[1]?.dueAt);
    assert.ok((entries[1]?.dueAt ?? 0) - entries[1]!.startedAt >= HOUR);
    // Dispatched again before the wake time, it suspends again at the same time (nothing new is journaled).
    const again = await m.dispatch(runId, wf).done;
    assert.equal(again.kind === 'suspended' && again.wakeAt, entries[1]?.dueAt);
    assert.equal(m.journals.entries(runId).length, 2);
  });

  it('suspends a signal wait, and the next execution consumes the signal sent meanwhile', async () => {
    const wf = defineWorkflow({ name: 'signals', version: '1' }, async (ctx) => {
      const body = await ctx.waitForSignal<{ ok: boolean }>('approve', { timeout: '2d' });
      return body.ok;
    });
    const m = memoryEngine([wf]);
    const runId = m.create(wf, null);
    const first = await m.dispatch(runId, wf).done;
    assert.equal(first.kind === 'suspended' && first.reason, SuspendReason.SIGNAL);
    assert.equal(first.kind === 'suspended' && first.signalName, 'approve');
    assert.deepEqual(
      m.journals.entries(runId).map((e) => [e.kind, e.name, e.status]),
      [['signal', 'approve', 'waiting']],
    );
    m.journals.addSignal(runId, 'approve', { ok: true });
    assert.equal((await m.dispatch(runId, wf).done).kind, 'completed');
    assert.equal(m.journals.run(runId)?.output, true);
    assert.equal(m.journals.entries(runId)[0]?.status, 'completed');
  });

  it('wakes an in-memory signal wait when the signal arrives', async () => {
    const wf = defineWorkflow({ name: 'signal-in-memory', version: '1' }, async (ctx) =>
      ctx.waitForSignal<string>('go', { timeout: '30s' }),
    );
    const m = memoryEngine([wf], { suspendThresholdMs: 60_000 });
    const runId = m.create(wf, null);
    const execution = m.dispatch(runId, wf);
    // Sent once the wait is journaled (its first look found nothing).
    for (let i = 0; i < 100 && m.journals.entries(runId).length === 0; i++) await new Promise((r) => setTimeout(r, 1));
    m.journals.addSignal(runId, 'go', 'now');
    assert.equal((await execution.done).kind, 'completed');
    assert.equal(m.journals.run(runId)?.output, 'now');
  });
});
