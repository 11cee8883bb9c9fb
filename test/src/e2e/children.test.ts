import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../harness.js';

/** Child workflows (`ctx.child`) with real processes. */
describe('child workflows', () => {
  let t: TestStack;
  before(async () => {
    t = await startTestStack({ name: 'children', workers: 1, suspendThresholdMs: 500 });
  });
  after(async () => {
    await t?.stop();
  });

  it('starts three children through ctx.parallel (concurrency 2) and gets their outputs in order', async () => {
    const runId = await t.start('parent-work', { items: [1, 2, 3] });
    const result = await t.result(runId);
    assert.equal(result.status, 'completed', JSON.stringify(result));
    assert.deepEqual(result.output, { outputs: [2, 4, 6] });
    const { steps } = await t.describe(runId);
    const children = steps.filter((s) => s.kind === 'child' && s.status === 'completed');
    assert.equal(children.length, 3);
    assert.ok(children.every((s) => s.name === 'child-work'));
  });

  it('surfaces a failing child as a catchable ChildWorkflowFailedError', async () => {
    const runId = await t.start('parent-work', { fail: true });
    const result = await t.result(runId);
    assert.equal(result.status, 'completed', JSON.stringify(result));
    const output = result.output as { caught: string; child: string; message: string };
    assert.equal(output.caught, 'ChildWorkflowFailedError');
    assert.match(output.message, /cannot double 1/);
    const child = await t.describe(output.child);
    assert.equal(child.run.status, 'failed');
    assert.equal((child.run as unknown as { parentRunId: string }).parentRunId, runId);
    const viaGateway = (await (await t.gateway('GET', `/v1/runs/${output.child}`)).json()) as { run: { parentRunId: string | null } };
    assert.equal(viaGateway.run.parentRunId, runId, 'the gateway shows the parent too');
  });

  it('cancelling a parent suspended on a child cancels the child too', async () => {
    const runId = await t.start('parent-work', { wait: true });
    const parent = await t.waitForRun(runId, (r) => r.status === 'suspended');
    const childRunId = (parent as unknown as { waitingChild: string }).waitingChild;
    assert.ok(childRunId, 'the parent waits for its child');
    await t.waitForRun(childRunId, (r) => r.status === 'suspended');
    const res = await t.gateway('POST', `/v1/runs/${runId}/cancel`);
    assert.equal(res.status, 202);
    assert.equal((await t.result(runId)).status, 'cancelled');
    assert.equal((await t.result(childRunId)).status, 'cancelled');
  });
});
