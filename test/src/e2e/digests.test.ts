// One customer value, many uses: an e-mail address used as the idempotency key of starts in two
// workflows, as a step key in both and as an approval key. Before per-purpose keys every use gave
// the same HMAC, so the control plane's database held one stable pseudonym linking them all. Each
// use must now give an unrelated digest, none of them the single-key one, and the e-mail never.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

describe('digests of one customer value in the control plane', () => {
  let t: TestStack;
  let cp: pg.Client;
  before(async () => {
    t = await startTestStack({ name: 'digests', workers: 1, suspendThresholdMs: 300 });
    cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await cp.connect();
  });
  after(async () => {
    await cp?.end();
    await t?.stop();
  });

  it('differ per purpose and per workflow, so they cannot be linked', async () => {
    const email = `jane.${randomUUID().slice(0, 8)}@example.com`;
    const a = await t.start('keyed-email', { email }, { idempotencyKey: email });
    const b = await t.start('keyed-email-other', { email }, { idempotencyKey: email });
    const suspended = await t.waitForRun(a, (r) => r.status === 'suspended' && (r.waitingSignal ?? '').startsWith('approval.confirm.'));
    const approved = await t.gateway('POST', `/v1/runs/${a}/approvals/confirm`, {
      body: JSON.stringify({ approved: true, key: email }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(approved.status, 202, await approved.text());
    assert.deepEqual((await t.result(a)).output, { approved: true }, 'the gateway derived the approval digest the worker waits for');
    assert.equal((await t.result(b)).status, 'completed');

    const runs = await cp.query<{ id: string; idempotency_digest: string }>(
      'SELECT id, idempotency_digest FROM runs WHERE id = ANY($1::uuid[])',
      [[a, b]],
    );
    const idem = new Map(runs.rows.map((r) => [r.id, r.idempotency_digest]));
    const steps = await cp.query<{ run_id: string; key_digest: string }>(
      "SELECT DISTINCT run_id, key_digest FROM run_steps WHERE run_id = ANY($1::uuid[]) AND name = 'lookup'",
      [[a, b]],
    );
    const step = new Map(steps.rows.map((r) => [r.run_id, r.key_digest]));
    const approval = String(suspended.waitingSignal).slice('approval.confirm.'.length);

    const digests = {
      idempotencyA: idem.get(a)!,
      idempotencyB: idem.get(b)!,
      stepA: step.get(a)!,
      stepB: step.get(b)!,
      approvalA: approval,
    };
    for (const [use, digest] of Object.entries(digests)) assert.match(digest, /^[0-9a-f]{32,64}$/, `${use} crossed as a digest`);
    // No two uses share a digest (an approval carries the first 32 hex digits of its digest).
    const prefixes = Object.values(digests).map((d) => d.slice(0, 32));
    assert.equal(new Set(prefixes).size, prefixes.length, `linkable digests: ${JSON.stringify(digests)}`);
    // None is the one-key HMAC of the e-mail that all of them used to be.
    const single = createHmac('sha256', Buffer.from(t.stack.secrets.hmacKey, 'base64')).update(email, 'utf8').digest('hex');
    assert.ok(!prefixes.includes(single.slice(0, 32)), 'a digest is the single-key HMAC');

    // And the e-mail itself is nowhere in those tables.
    const dump = await cp.query<{ all: string }>(
      `SELECT coalesce((SELECT string_agg(r::text, '') FROM runs r), '') || coalesce((SELECT string_agg(s::text, '') FROM run_steps s), '')
           || coalesce((SELECT string_agg(n::text, '') FROM signal_notices n), '') AS all`,
    );
    assert.ok(!dump.rows[0]!.all.includes(email));
  });
});
