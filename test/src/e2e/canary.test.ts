import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';
import { OtlpCollector } from '../otlp-collector.js';

/**
 * The residency canary: inputs, step outputs, dynamic keys, idempotency keys, signal bodies, error
 * messages, prompts, tool arguments, model outputs, eval reasons and approval comments carry a
 * unique marker. The control plane's database, its logs, the traces it exports and every byte of
 * gRPC between the planes must contain it zero times. The worker exports its traces to a collector
 * of its own (in the data plane); they carry no payload either.
 */
describe('residency canary', () => {
  let t: TestStack;
  let capture: string;
  let cpTraces: OtlpCollector;
  let dpTraces: OtlpCollector;
  before(async () => {
    capture = join(process.env['CAIRN_TEST_DIR'] ?? '/tmp', `cairn-canary-${randomUUID()}.bin`);
    cpTraces = await OtlpCollector.start();
    dpTraces = await OtlpCollector.start();
    t = await startTestStack({
      name: 'canary',
      workers: 1,
      suspendThresholdMs: 500,
      captureGrpcTo: capture,
      controlPlaneEnv: { CAIRN_CP_OTLP_TRACES_ENDPOINT: cpTraces.url },
      workerEnv: { CAIRN_DP_OTLP_TRACES_ENDPOINT: dpTraces.url },
    });
  });
  after(async () => {
    await t?.stop();
    await cpTraces?.close();
    await dpTraces?.close();
  });

  it('keeps every payload, key and error message in the data plane', async () => {
    const marker = `CANARY${randomUUID().replace(/-/g, '')}`;
    await t.setModelScript({ rules: [{ hasTools: true, toolCalls: [{ name: 'lookup', arguments: { q: `case ${marker}` } }] }] });
    const canary = await t.start('canary', { marker }, { idempotencyKey: `idem-${marker}` });
    await t.waitForRun(canary, (r) => r.status === 'suspended' && r.waitingSignal === 'approval.review');
    const approved = await t.gateway('POST', `/v1/runs/${canary}/approvals/review`, {
      body: JSON.stringify({ approved: true, by: `reviewer-${marker}`, comment: `looks fine for ${marker}` }),
      // A signal's idempotency key stays in the data plane too: only the signal ID derived from it crosses.
      headers: { 'content-type': 'application/json', 'idempotency-key': `answer-${marker}` },
    });
    assert.equal(approved.status, 202);
    await t.waitForRun(canary, (r) => r.status === 'suspended' && r.waitingSignal === 'note');
    assert.equal((await t.signal(canary, 'note', { note: `note-${marker}` })).status, 202);
    const failing = await t.start('canary-failure', { marker });
    const doomed = await t.start('doomed', { secret: marker });

    const ok = await t.result(canary);
    assert.equal(ok.status, 'completed');
    assert.equal(JSON.stringify(ok.output).includes(marker), true, 'the data plane has the payloads');
    const failed = await t.result(failing);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error?.message ?? '', new RegExp(marker));
    assert.equal((await t.result(doomed)).status, 'failed');
    const step = await t.gateway('GET', `/v1/runs/${canary}/steps/0`);
    assert.match(await step.text(), new RegExp(marker), 'the step output is readable in the data plane');
    const { steps } = await t.describe(canary);
    const plan = steps.find((s) => s.kind === 'model' && s.name === 'plan');
    assert.ok(plan, 'the model call is on the control plane timeline');
    const transcript = await t.gateway('GET', `/v1/runs/${canary}/steps/${plan.position}/transcript`);
    assert.equal(transcript.status, 200);
    const transcriptText = await transcript.text();
    assert.match(transcriptText, new RegExp(`You help with case ${marker}`), 'the prompt is in the data-plane transcript');
    assert.match(JSON.stringify(ok.output), new RegExp(`mock reply to: Summarise ${marker}`), 'the model output reached the workflow');
    assert.match(
      JSON.stringify(ok.output),
      new RegExp(`draft v2 fixing: needs a second draft for ${marker}`),
      'the eval reason reached the retry',
    );
    assert.match(JSON.stringify(ok.output), new RegExp(`looks fine for ${marker}`), 'the approval comment reached the workflow');

    // Stop everything so logs are flushed, then search.
    await t.stack.stop();
    const where: string[] = [];
    const cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await cp.connect();
    const tables = await cp.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
    assert.ok(tables.rows.length >= 5);
    let rows = 0;
    for (const { tablename } of tables.rows) {
      const r = await cp.query<{ row: string }>(`SELECT t::text AS row FROM "${tablename}" t`);
      rows += r.rows.length;
      if (r.rows.some((x) => x.row.includes(marker))) where.push(`control-plane table ${tablename}`);
    }
    await cp.end();
    assert.ok(rows > 10, 'the control plane did record metadata');
    for (const replica of t.stack.controlPlanes) {
      if (readFileSync(replica.process.logFile, 'utf8').includes(marker)) where.push(`log ${replica.process.logFile}`);
    }
    // The processes flushed their spans when they stopped.
    for (const runId of [canary, failing, doomed]) {
      assert.ok(
        cpTraces.spans.some((s) => s.name === 'cairn.run.outcome' && s.attributes['cairn.run_id'] === runId),
        `the control plane traced run ${runId}`,
      );
      assert.ok(
        dpTraces.spans.some((s) => s.name === 'cairn.run' && s.attributes['cairn.run_id'] === runId),
        `the worker traced run ${runId}`,
      );
    }
    assert.ok(
      dpTraces.spans.some((s) => s.name === 'cairn.model'),
      'the worker traced the model calls',
    );
    if (cpTraces.received(marker)) where.push('control-plane traces');
    if (dpTraces.received(marker)) where.push('worker traces');
    const bytes = readFileSync(capture);
    assert.ok(bytes.length > 1000, 'gRPC traffic was captured');
    if (bytes.includes(Buffer.from(marker))) where.push('gRPC bytes');
    assert.deepEqual(where, [], `the marker crossed the boundary`);
  });
});
