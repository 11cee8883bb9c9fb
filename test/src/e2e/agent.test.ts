import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../harness.js';

const toolResultsIn = (messages: unknown[]) => messages.filter((m) => (m as { role?: string }).role === 'tool').length;

describe('agent loops', () => {
  let t: TestStack;
  before(async () => {
    t = await startTestStack({ name: 'agent', workers: 2 });
  });
  after(async () => {
    await t?.stop();
  });

  it('resumes at turn 4 after the worker dies between turns 3 and 4, without calling the model again for turns 1-3', async () => {
    const prompt = 'agent-e2e: do the four pieces of work';
    await t.setModelScript({
      rules: [
        ...[0, 1, 2, 3].map((n) => ({ contains: 'agent-e2e', toolResults: n, toolCalls: [{ name: 'work', arguments: { turn: n + 1 } }] })),
        { contains: 'agent-e2e', toolResults: 4, text: 'all four pieces are done' },
      ],
    });
    const runId = await t.start('agent-loop', { prompt, turn3Ms: 4000 });
    // Turn 3's model call is done and its tool is running: kill that worker.
    await t.waitForEffect(runId, 'tool-3:start');
    const pid = (await t.effects.query<{ pid: number }>("SELECT pid FROM effects WHERE run_id = $1 AND step = 'tool-3:start'", [runId]))
      .rows[0]!.pid;
    const victim = t.stack.workers.find((w) => w.pid === pid);
    assert.ok(victim);
    victim.signal('SIGKILL');

    const result = await t.result(runId);
    assert.equal(result.status, 'completed', JSON.stringify(result));
    assert.deepEqual(result.output, { text: 'all four pieces are done', turns: 5 });
    const calls = (await t.modelCalls()).filter((c) => JSON.stringify(c.messages).includes('agent-e2e'));
    const perTurn = calls.map((c) => toolResultsIn(c.messages) + 1);
    assert.deepEqual(perTurn, [1, 2, 3, 4, 5], 'each turn called the model exactly once, across the crash');
    for (const turn of [1, 2, 4]) assert.equal(await t.countEffects(runId, `tool-${turn}`), 1, `tool of turn ${turn} ran once`);
    assert.equal(await t.countEffects(runId, 'tool-3:start'), 2, 'the tool call in progress at the crash ran again (at least once)');
    const { steps } = await t.describe(runId);
    const turns = steps.filter((s) => s.kind === 'model' && s.status === 'completed').map((s) => s.name);
    assert.equal(turns.length, 5);
  });
});
