import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestStack, type TestStack } from '../harness.js';

/** Approvals through the gateway and compensations, with real processes. */
describe('approvals and compensations', () => {
  let t: TestStack;
  before(async () => {
    t = await startTestStack({ name: 'saga', workers: 1, suspendThresholdMs: 500 });
  });
  after(async () => {
    await t?.stop();
  });

  const effects = async (runId: string) =>
    (await t.effects.query<{ step: string }>('SELECT step FROM effects WHERE run_id = $1 ORDER BY id', [runId])).rows.map((r) => r.step);
  const json = { 'content-type': 'application/json' };

  it('suspends on an approval and continues when it is answered through the gateway', async () => {
    const runId = await t.start('trip-saga', { failCharge: false });
    const run = await t.waitForRun(runId, (r) => r.status === 'suspended');
    assert.equal(run.waitingSignal, 'approval.trip');
    const res = await t.gateway('POST', `/v1/runs/${runId}/approvals/trip`, {
      body: JSON.stringify({ approved: true, by: 'sam', comment: 'window seat please', data: { seat: '12A' } }),
      headers: json,
    });
    assert.equal(res.status, 202, await res.text());
    const result = await t.result(runId);
    assert.deepEqual(result.output, { booked: true, flight: 'F1', hotel: 'H1', seat: '12A', by: 'sam' });
    assert.deepEqual(await effects(runId), ['book-flight', 'book-hotel', 'charge-card']);
  });

  it('keeps an approval answered before the workflow asks for it', async () => {
    const runId = await t.start('trip-saga', { failCharge: false });
    const res = await t.gateway('POST', `/v1/runs/${runId}/approvals/trip/approve`, {
      body: JSON.stringify({ by: 'early' }),
      headers: json,
    });
    assert.equal(res.status, 202, await res.text());
    const result = await t.result(runId);
    assert.equal((result.output as { by: string }).by, 'early');
  });

  it('runs compensations in reverse order when a later step fails', async () => {
    const runId = await t.start('trip-saga', { failCharge: true });
    await t.waitForRun(runId, (r) => r.status === 'suspended');
    assert.equal((await t.gateway('POST', `/v1/runs/${runId}/approvals/trip/approve`, { body: '{}', headers: json })).status, 202);
    const result = await t.result(runId);
    assert.equal(result.status, 'failed');
    assert.deepEqual(await effects(runId), ['book-flight', 'book-hotel', 'charge-card', 'undo-hotel:H1', 'undo-flight:F1']);
    const { steps } = await t.describe(runId);
    assert.deepEqual(
      steps.filter((s) => s.name.startsWith('compensate.')).map((s) => [s.name, s.status]),
      [
        ['compensate.book-hotel', 'completed'],
        ['compensate.book-flight', 'completed'],
      ],
    );
  });

  it('runs compensations in reverse order when a suspended run is cancelled', async () => {
    const runId = await t.start('trip-saga', { failCharge: false });
    await t.waitForRun(runId, (r) => r.status === 'suspended');
    const res = await t.gateway('POST', `/v1/runs/${runId}/cancel`);
    assert.equal(res.status, 202);
    const result = await t.result(runId);
    assert.equal(result.status, 'cancelled');
    assert.deepEqual(await effects(runId), ['book-flight', 'book-hotel', 'undo-hotel:H1', 'undo-flight:F1']);
  });
});
