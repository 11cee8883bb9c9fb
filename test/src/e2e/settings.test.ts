// Workflow settings in code, end to end with real processes: a zod input schema and a typed
// signal are checked by the gateway before anything is stored (400 with the path of the bad
// field), the run completes with the parsed input and the validated signal, the control plane
// holds only the schema's digest and the settings from code (development mode registers them),
// and a schema the gateway cannot check is checked by the worker at run start.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { schemaDigest } from '@cairn/common';
import { startTestStack, type TestStack } from '../harness.js';
import { typedRefundInput } from '../workflows.js';

const FINAL = ['completed', 'failed', 'cancelled', 'terminated', 'timed_out'];

interface ErrorBody {
  error: { code: string; message: string; issues: Array<{ in: string; path: string; message: string }> };
}

describe('workflow settings in code', () => {
  let t: TestStack;
  const post = async (path: string, body: unknown): Promise<{ status: number; body: unknown }> => {
    const res = await t.gateway('POST', path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return { status: res.status, body: await res.json() };
  };
  const runsOf = async (workflow: string): Promise<number> => {
    const res = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/runs?workflow=${workflow}`, {
      headers: { authorization: `Bearer ${t.stack.secrets.apiToken}` },
    });
    return ((await res.json()) as { runs: unknown[] }).runs.length;
  };

  before(async () => {
    t = await startTestStack({ name: 'settings' });
  });
  after(async () => {
    await t?.stop();
  });

  it('refuses a bad input at the gateway with the path of the bad field; nothing is started', async () => {
    const res = await post('/v1/runs', { workflow: 'typed-refund', input: { orderId: 'o-1', amount: -3 } });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    const body = res.body as ErrorBody;
    assert.equal(body.error.code, 'CAIRN-1116');
    assert.equal(body.error.message, 'input does not match the input schema of typed-refund@1: /amount must be >= 0');
    assert.deepEqual(body.error.issues, [{ in: 'body', path: '/input/amount', message: 'must be >= 0' }]);
    assert.equal(await runsOf('typed-refund'), 0, 'the control plane knows no run of it');
  });

  it('runs a good input to completion with the parsed input and a validated, typed signal', async () => {
    const runId = await t.start('typed-refund', { orderId: 'o-2', amount: 12.5 });
    await t.waitForEffect(runId, 'typed-refund:requested');
    const bad = await post(`/v1/runs/${runId}/signals/refund-approval`, { approved: 'sure' });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.deepEqual((bad.body as ErrorBody).error.issues.map((i) => i.path).sort(), ['/approved', '/by']);
    const good = await t.signal(runId, 'refund-approval', { approved: true, by: 'maria' });
    assert.equal(good.status, 202, await good.text());
    const result = await t.result(runId);
    assert.equal(result.status, 'completed', JSON.stringify(result));
    assert.deepEqual(result.output, { orderId: 'o-2', amount: 12.5, currency: 'EUR', approved: true, by: 'maria' });
  });

  it('registers the settings from code in development mode, with the schema digest and never the schema', async () => {
    const res = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/workflows/typed-refund/versions/1`, {
      headers: { authorization: `Bearer ${t.stack.secrets.apiToken}` },
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const { workflow } = JSON.parse(text) as { workflow: Record<string, unknown> };
    assert.equal(workflow['inputSchemaDigest'], schemaDigest(typedRefundInput['~standard'].jsonSchema.input({ target: 'draft-2020-12' })));
    assert.deepEqual(workflow['retry'], { maximumAttempts: 4, initialInterval: 100, backoffCoefficient: 2, maximumInterval: 10_000 });
    assert.deepEqual(workflow['timeouts'], { run: 3_600_000, step: 20_000 });
    assert.ok(!text.includes('minimum') && !text.includes('orderId'), 'no schema text in the control plane');
  });

  it('checks in the worker what the gateway cannot: the run fails for good with CAIRN-1116 and the path', async () => {
    const runId = await t.start('dated-input', { at: 'not a date' });
    const run = await t.waitForRun(runId, (r) => FINAL.includes(r.status));
    assert.deepEqual([run.status, run.errorCode], ['failed', 'invalid_input']);
    const result = await t.result(runId);
    assert.match(result.error?.message ?? '', /\[CAIRN-1116\] input does not match the input schema of dated-input@1: \/at /);
    const ok = await t.start('dated-input', { at: '2026-05-01T00:00:00Z' });
    assert.deepEqual(await t.result(ok), { runId: ok, status: 'completed', output: 2026 });
  });
});
