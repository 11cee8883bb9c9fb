import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

interface StepView {
  position: number;
  name: string;
  kind: string;
  status: string;
  copied: boolean;
}

interface Usage {
  totals: {
    runsStarted: number;
    stepsExecuted: number;
    inputTokens: number;
    outputTokens: number;
    tokens: Array<{ provider: string; model: string; calls: number; inputTokens: number; outputTokens: number }>;
  };
}

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
  const usage = async (): Promise<Usage['totals']> => {
    const day = new Date().toISOString().slice(0, 10);
    const res = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/usage?from=${day}&to=${day}`, {
      headers: { authorization: `Bearer ${t.stack.secrets.apiToken}` },
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as Usage).totals;
  };
  const modelCalls = (u: Usage['totals']) => u.tokens.reduce((n, m) => n + m.calls, 0);
  /** Step reports travel in batches: polls the control plane until the run's timeline has `count` final calls. */
  const reported = async (runId: string, count: number) => {
    for (;;) {
      const { steps } = await t.describe(runId);
      if (steps.filter((s) => s.status === 'completed').length >= count) return steps as unknown as Array<StepView>;
      await new Promise((r) => setTimeout(r, 50));
    }
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

  it('meters only what a fork executes: copied calls are not usage, and show as copied', async () => {
    // A run whose one durable call is a model call, then a fork after it: nothing runs live.
    const source = await t.start('model-call', { prompt: 'fork-metering: how many tokens?' });
    assert.equal((await t.result(source)).status, 'completed');
    await reported(source, 1);
    const callsToModel = (await t.modelCalls()).length;
    const before = await usage();
    assert.ok(before.inputTokens > 0 && modelCalls(before) > 0, JSON.stringify(before));

    const forked = await fork(source, { fromStep: 1 });
    assert.equal(forked.status, 201, JSON.stringify(forked));
    const forkedModel = forked.run!.id;
    assert.equal((await t.result(forkedModel)).status, 'completed');
    const copiedModel = await reported(forkedModel, 1);
    assert.deepEqual(
      copiedModel.map((s) => [s.position, s.kind, s.status, s.copied]),
      [[0, 'model', 'completed', true]],
    );
    assert.equal((await t.modelCalls()).length, callsToModel, 'the fork made no request to the model provider');

    // A four-step run forked from step 4 runs nothing; forked from step 2 it runs two steps.
    const four = await startV1(7);
    assert.equal((await t.result(four)).status, 'completed');
    await reported(four, 4);
    const mid = await usage();
    const all = await fork(four, { fromStep: 4 });
    const half = await fork(four, { fromStep: 2 });
    for (const f of [all, half]) assert.equal((await t.result(f.run!.id)).status, 'completed');
    assert.deepEqual(await effects(all.run!.id), []);
    assert.deepEqual(await effects(half.run!.id), ['s2', 's3']);
    const allSteps = await reported(all.run!.id, 4);
    const halfSteps = await reported(half.run!.id, 4);
    assert.deepEqual(
      allSteps.map((s) => s.copied),
      [true, true, true, true],
    );
    assert.deepEqual(
      halfSteps.map((s) => [s.name, s.copied]),
      [
        ['s0', true],
        ['s1', true],
        ['s2', false],
        ['s3', false],
      ],
    );

    // Usage (and so the monthly step quota) counts the three forks as runs started and the two
    // steps that ran live, nothing for the copies.
    const after = await usage();
    assert.deepEqual(
      [after.runsStarted - before.runsStarted, after.inputTokens, after.outputTokens, modelCalls(after)],
      [1 + 1 + 2, before.inputTokens, before.outputTokens, modelCalls(before)],
    );
    assert.equal(after.stepsExecuted - mid.stepsExecuted, 2, JSON.stringify({ mid, after }));
    assert.equal(mid.stepsExecuted - before.stepsExecuted, 4, 'the four-step source ran four steps');

    // The timeline the control plane shows: copied calls are marked, the run's totals count what ran.
    const view = (await (
      await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/runs/${forkedModel}`, {
        headers: { authorization: `Bearer ${t.stack.secrets.apiToken}` },
      })
    ).json()) as { timeline: Array<{ position: number; copied: boolean }>; totals: { copiedCalls: number; inputTokens: number } };
    assert.deepEqual(
      view.timeline.map((c) => [c.position, c.copied]),
      [[0, true]],
    );
    assert.deepEqual([view.totals.copiedCalls, view.totals.inputTokens], [1, 0]);
  });

  it('forks with a new input, stored through the gateway: the control plane gets only its ID', async () => {
    const source = await startV1(1);
    assert.deepEqual((await t.result(source)).output, { a: 2, b: 20, c: 25, d: '25!', version: '1' });
    const inputOf = async (runId: string): Promise<unknown> => {
      const res = await t.gateway('GET', `/v1/runs/${runId}/journal`);
      assert.equal(res.status, 200, await res.clone().text());
      return ((await res.json()) as { input: unknown }).input;
    };
    const store = async (input: unknown): Promise<string> => {
      const res = await t.gateway('POST', '/v1/payloads', { body: JSON.stringify(input), headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 201, await res.clone().text());
      return ((await res.json()) as { payloadId: string }).payloadId;
    };

    // From position 0 the whole workflow runs again with the new input.
    const marker = `fork-input-${randomUUID()}`;
    const again = await fork(source, { fromStep: 0, inputPayloadId: await store({ base: 100, note: marker }) });
    assert.equal(again.status, 201, JSON.stringify(again));
    assert.deepEqual((await t.result(again.run!.id)).output, { a: 101, b: 1010, c: 1015, d: '1015!', version: '1' });
    assert.deepEqual(await effects(again.run!.id), ['s0', 's1', 's2', 's3']);
    assert.deepEqual(await inputOf(again.run!.id), { base: 100, note: marker });
    // The new input stayed in the data plane: no table of the control plane's database holds it.
    const cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await cp.connect();
    try {
      const tables = await cp.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
      const holding: string[] = [];
      for (const { tablename } of tables.rows) {
        const r = await cp.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${tablename}" t WHERE t::text LIKE $1`, [`%${marker}%`]);
        if (r.rows[0]!.n > 0) holding.push(tablename);
      }
      assert.deepEqual(holding, []);
    } finally {
      await cp.end();
    }

    // From position 2: the copied calls keep what they recorded, the live ones see the new input's
    // effect only through them (the workflow reads the input in s0 only).
    const late = await fork(source, { fromStep: 2, inputPayloadId: await store({ base: 7 }) });
    assert.equal(late.status, 201, JSON.stringify(late));
    assert.deepEqual((await t.result(late.run!.id)).output, { a: 2, b: 20, c: 25, d: '25!', version: '1' });
    assert.deepEqual(await inputOf(late.run!.id), { base: 7 });
    // The source keeps its own input.
    assert.deepEqual(await inputOf(source), { base: 1 });

    // Stored as the input of a fork of a run whose workflow declares an input schema, it is checked
    // against it like a start's input.
    const typed = await t.start('typed-refund', { orderId: 'o-1', amount: 5 });
    const asForkInput = (input: unknown, run = typed) =>
      t.gateway('POST', `/v1/payloads?forkOf=${run}`, { body: JSON.stringify(input), headers: { 'content-type': 'application/json' } });
    const refused = await asForkInput({ orderId: '', amount: -1 });
    assert.equal(refused.status, 400, await refused.clone().text());
    const refusal = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(refusal.error.code, 'CAIRN-1116');
    assert.match(refusal.error.message, /input does not match the input schema of typed-refund@1/);
    assert.equal((await asForkInput({ orderId: 'o-2', amount: 7 })).status, 201);
    assert.equal((await asForkInput({ base: 2 }, randomUUID())).status, 404);
    await t.gateway('POST', `/v1/runs/${typed}/cancel`);

    // The input itself is refused by the control plane, with what to do instead.
    const inline = await fork(source, { fromStep: 0, input: { base: 5 } });
    assert.equal(inline.status, 400, JSON.stringify(inline));
    assert.match(inline.error!.message, /POST \/v1\/payloads/);

    // A payload that is not in the data plane fails the fork, saying which payload and what to do.
    const gone = await store({ base: 3 });
    assert.equal((await t.gateway('DELETE', `/v1/payloads/${gone}`)).status, 200);
    const missing = await fork(source, { fromStep: 0, inputPayloadId: gone });
    assert.equal(missing.status, 201, JSON.stringify(missing));
    const failed = await t.result(missing.run!.id);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error!.message, new RegExp(`input payload ${gone} .* is not in this data plane's payload store`));
    assert.deepEqual(await effects(missing.run!.id), []);
  });
});
