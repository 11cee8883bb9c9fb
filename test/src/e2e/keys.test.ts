// Workers whose keys do not match the data plane's payload store, as real processes: one started
// with a fresh random key (what `k1:$(openssl rand -base64 32)` gives) refuses to start; one
// started with a key ring of its own starts, but gives back the run it cannot open and takes no
// more, and a correctly configured worker completes that run. No run fails and nothing is sealed
// with the wrong key.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

const randomKey = (): string => randomBytes(32).toString('base64');

/** The JSON log lines of a process that have every `fields` value. */
function logLines(lines: readonly string[], fields: Record<string, unknown>): Array<Record<string, unknown>> {
  return lines.flatMap((line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      return Object.entries(fields).every(([k, v]) => entry[k] === v) ? [entry] : [];
    } catch {
      return [];
    }
  });
}

describe('worker keys that do not match the payload store', () => {
  let t: TestStack;
  let dp: pg.Client;
  before(async () => {
    // No worker yet: the gateway (started with the data plane's keys) is the first to record them.
    t = await startTestStack({ name: 'keys', workers: 0 });
    dp = new pg.Client({ connectionString: t.stack.dpDatabaseUrl });
    await dp.connect();
  });
  after(async () => {
    await dp?.end();
    await t?.stop();
  });

  it('refuses to start a worker whose key of a known ID is another key, naming the key ID', async () => {
    const wrong = randomKey();
    await assert.rejects(t.stack.startWorker({ env: { CAIRN_DP_ENCRYPTION_KEYS: `k1:${wrong}` } }), /exited/);
    const refused = t.stack.workers.at(-1)!;
    assert.equal(await refused.exited, 1);
    const output = refused.lines.join('\n');
    assert.match(output, /worker stopped: \[CAIRN-3006\] Encryption key "k1" in CAIRN_DP_ENCRYPTION_KEYS does not match the payload store/);
    assert.ok(!output.includes(wrong), 'the key was printed');
    assert.equal(logLines(refused.lines, { msg: 'worker connected' }).length, 0);
  });

  it('puts a run the worker cannot open back in the queue for a correctly configured worker to complete', async () => {
    // A key ring of its own: it has no k1, the key the gateway seals inputs with.
    const bad = await t.stack.startWorker({ env: { CAIRN_DP_ENCRYPTION_KEYS: `k0:${randomKey()}` } });
    // Ready means connected; its log line may still be on its way through the pipe.
    await bad.waitFor(/"msg":"worker connected"/);
    assert.equal(logLines(bad.lines, { msg: 'worker connected' }).length, 1);
    const warning = logLines(bad.lines, { level: 'warn' }).find((l) => String(l['msg']).includes('missing from CAIRN_DP_ENCRYPTION_KEYS'));
    assert.deepEqual(warning?.['keyIds'], ['k1'], 'the worker warns at start about the key ID it lacks');

    const runId = await t.start('five-steps', { step3Ms: 0 });
    await bad.waitFor(/worker takes no more runs/);
    // Its log names the run and the key ID (never the key), once: the run did not bounce back to it.
    const stopped = logLines(bad.lines, { runId, keyId: 'k1' });
    assert.equal(stopped.filter((l) => String(l['msg']).startsWith('cannot open this run')).length, 1);
    assert.equal(stopped.filter((l) => String(l['msg']).startsWith('worker takes no more runs')).length, 1);

    // Kubernetes would take it out of service: /readyz says why.
    const port = logLines(bad.lines, { msg: 'worker health endpoint listening' })[0]?.['port'];
    const ready = await fetch(`http://127.0.0.1:${String(port)}/readyz`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { status: string; reason: string };
    assert.equal(body.status, 'misconfigured');
    assert.match(body.reason, new RegExp(`Run ${runId}: its data cannot be opened with encryption key "k1"`));
    assert.equal((await fetch(`http://127.0.0.1:${String(port)}/healthz`)).status, 200, 'a restart with the same keys would not help');
    const metrics = await (await fetch(`http://127.0.0.1:${String(port)}/metrics`)).text();
    assert.match(metrics, /^# TYPE cairn_dp_listener_connected gauge$/m);
    assert.match(metrics, /^cairn_dp_listener_reconnects_total 0$/m);

    // The control plane has the run queued again, not failed, and nothing ran.
    const queued = await t.waitForRun(runId, (r) => r.status === 'queued' && r.dispatchCount === 1);
    assert.equal(queued.errorCode, null);
    assert.equal(await t.countEffects(runId), 0);

    await t.stack.startWorker();
    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.output, ['done-1', 'done-2', 'done-3', 'done-4', 'done-5']);
    for (let i = 1; i <= 5; i++) assert.equal(await t.countEffects(runId, `step-${i}`), 1);

    const { run, steps } = await t.describe(runId);
    assert.equal(run.dispatchCount, 2, 'dispatched once to each worker');
    assert.equal(run.errorCode, null);
    assert.ok(!steps.some((s) => s.status === 'failed'));
    // No error was stored for the run, and everything of it is sealed with the data plane's key.
    const errors = await dp.query<{ n: number }>('SELECT count(*)::int AS n FROM dp_errors WHERE run_id = $1', [runId]);
    assert.equal(errors.rows[0]?.n, 0);
    const keyIds = await dp.query<{ key_id: string }>(
      `SELECT input_key_id AS key_id FROM dp_runs WHERE run_id = $1
       UNION SELECT output_key_id FROM dp_runs WHERE run_id = $1
       UNION SELECT key_id FROM dp_journal WHERE run_id = $1 AND key_id IS NOT NULL`,
      [runId],
    );
    assert.deepEqual(
      keyIds.rows.map((r) => r.key_id),
      ['k1'],
    );
    assert.ok(bad.running, 'the misconfigured worker keeps running (not ready) until it is fixed');
  });
});
