import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../harness.js';

interface ForkedRun {
  id: string;
  status: string;
  workflowVersion: string;
  forkedFromRunId: string | null;
  forkPosition: number | null;
}

/** Forking a run from a journal position with real processes: time-travel debugging. */
describe('fork a run from step N', () => {
  let t: TestStack;
  before(async () => {
    t = await startTestStack({ name: 'fork', workers: 1 });
  });
  after(async () => {
    await t?.stop();
  });

  const startV1 = async (base: number): Promise<string> => {
    const res = await t.gateway('POST', '/v1/runs', {
      body: JSON.stringify({ workflow: 'fork-demo', version: '1', input: { base } }),
      headers: { 'content-type': 'application/json' },
    });
    assert.ok(res.status < 300, await res.clone().text());
    return ((await res.json()) as { runId: string }).runId;
  };
  const fork = async (runId: string, body: unknown): Promise<{ status: number; run?: ForkedRun; error?: { message: string } }> => {
    const res = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/runs/${runId}/fork`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.stack.secrets.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, ...((await res.json()) as { run?: ForkedRun; error?: { message: string } }) };
  };
  const effects = async (runId: string) =>
    (await t.effects.query<{ step: string }>('SELECT step FROM effects WHERE run_id = $1 ORDER BY id', [runId])).rows.map((r) => r.step);

  it('copies the journal before step 2, runs steps 2 and 3 live, and shows the lineage', async () => {
    const source = await startV1(4);
    const original = await t.result(source);
    assert.deepEqual(original.output, { a: 5, b: 50, c: 55, d: '55!', version: '1' });
    assert.deepEqual(await effects(source), ['s0', 's1', 's2', 's3']);

    const forked = await fork(source, { fromStep: 2 });
    assert.equal(forked.status, 201, JSON.stringify(forked));
    const runId = forked.run!.id;
    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.output, { a: 5, b: 50, c: 55, d: '55!', version: '1' });
    // Steps 0 and 1 were not executed again, in the fork or in the source; steps 2 and 3 ran in the fork.
    assert.deepEqual(await effects(runId), ['s2', 's3']);
    assert.deepEqual(await effects(source), ['s0', 's1', 's2', 's3']);

    const view = await t.describe(runId);
    const run = view.run as unknown as ForkedRun;
    assert.deepEqual([run.status, run.forkedFromRunId, run.forkPosition], ['completed', source, 2]);
    // The copied prefix shows on the fork's timeline next to the steps it ran.
    assert.deepEqual(
      view.steps.map((s) => [s.position, s.name, s.status]),
      [
        [0, 's0', 'completed'],
        [1, 's1', 'completed'],
        [2, 's2', 'completed'],
        [3, 's3', 'completed'],
      ],
    );
    // The fork's payloads are readable through the gateway like any run's.
    const step0 = await t.gateway('GET', `/v1/runs/${runId}/steps/0`);
    assert.equal(step0.status, 200, await step0.clone().text());
  });

  it('forks onto another workflow version: the changed step 2 gives the new result', async () => {
    const source = await startV1(1);
    assert.deepEqual((await t.result(source)).output, { a: 2, b: 20, c: 25, d: '25!', version: '1' });

    const forked = await fork(source, { fromStep: 2, workflowVersion: '2' });
    assert.equal(forked.status, 201, JSON.stringify(forked));
    assert.equal(forked.run!.workflowVersion, '2');
    const result = await t.result(forked.run!.id);
    assert.deepEqual(result.output, { a: 2, b: 20, c: 520, d: '520!', version: '2' });
    assert.deepEqual(await effects(forked.run!.id), ['s2', 's3']);

    // From position 0 the whole workflow runs again on the new version, with the same input.
    const fromStart = await fork(source, { fromStep: 0, workflowVersion: '2' });
    assert.deepEqual((await t.result(fromStart.run!.id)).output, { a: 2, b: 20, c: 520, d: '520!', version: '2' });
    assert.deepEqual(await effects(fromStart.run!.id), ['s0', 's1', 's2', 's3']);

    const beyond = await fork(source, { fromStep: 5 });
    assert.equal(beyond.status, 400);
    assert.match(beyond.error!.message, /beyond the journal/);
  });
});
