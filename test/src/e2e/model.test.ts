import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

/**
 * Model calls against the local model server's faults: each is survived with exactly one final
 * transcript, and the server's call log proves which calls were repeated.
 */
describe('durable model calls', () => {
  let t: TestStack;
  let dp: pg.Client;
  before(async () => {
    t = await startTestStack({ name: 'model', workers: 1, suspendThresholdMs: 500 });
    dp = new pg.Client({ connectionString: t.stack.dpDatabaseUrl });
    await dp.connect();
  });
  after(async () => {
    await dp?.end();
    await t?.stop();
  });

  const transcripts = async (runId: string) =>
    Number((await dp.query<{ n: string }>('SELECT count(*) AS n FROM dp_transcripts WHERE run_id = $1', [runId])).rows[0]?.n);

  const faults: Array<{ name: string; fault: Record<string, unknown>; timeoutMs?: number }> = [
    { name: 'bad gateway before the answer', fault: { kind: 'status', status: 502 } },
    { name: 'service unavailable', fault: { kind: 'status', status: 503 } },
    { name: 'rate limited with Retry-After', fault: { kind: 'rate-limit', retryAfterSeconds: 1 } },
    { name: 'rate limited with retry-after-ms', fault: { kind: 'rate-limit', retryAfterMs: 300 } },
    { name: 'stream cut mid-way', fault: { kind: 'stream-cut', afterChunks: 2 } },
    { name: 'malformed chunk', fault: { kind: 'malformed-chunk', afterChunks: 1 } },
    { name: 'timeout', fault: { kind: 'timeout', ms: 10_000 }, timeoutMs: 1000 },
  ];

  for (const [i, f] of faults.entries()) {
    it(`survives a ${f.name} with one transcript and exactly one repeated call`, async () => {
      const prompt = `fault-case-${i} tell me about durable execution`;
      await t.setModelScript({ rules: [{ contains: `fault-case-${i} `, text: `answer number ${i} is durable`, faults: [f.fault] }] });
      const runId = await t.start('model-call', { prompt, ...(f.timeoutMs ? { timeoutMs: f.timeoutMs } : {}) });
      const result = await t.result(runId);
      assert.equal(result.status, 'completed', JSON.stringify(result));
      assert.deepEqual((result.output as { text: string }).text, `answer number ${i} is durable`);
      const calls = (await t.modelCalls()).filter((c) => JSON.stringify(c.messages).includes(`fault-case-${i} `));
      assert.equal(
        calls.length,
        2,
        `one failed call and one retry: ${JSON.stringify(calls.map((c) => [c.fault?.kind ?? null, c.status]))}`,
      );
      assert.equal(calls[0]?.fault?.kind, f.fault['kind']);
      assert.equal(calls[1]?.fault, null);
      assert.equal(await transcripts(runId), 1, 'exactly one final transcript');
      const { steps } = await t.describe(runId);
      const attempts = steps.filter((s) => s.kind === 'model').map((s) => s.status);
      assert.deepEqual(attempts, ['retrying', 'completed']);
    });
  }

  it('streams the model’s tokens to a subscriber through the gateway while the call runs', async () => {
    const words = Array.from({ length: 40 }, (_, i) => `word${i}`);
    await t.setModelScript({ rules: [{ contains: 'stream-case', text: words.join(' ') }] });
    const runId = await t.start('streamer', { prompt: 'stream-case please' });
    await t.waitForRun(runId, (r) => r.status === 'suspended');
    const controller = new AbortController();
    const res = await fetch(`${t.stack.gatewayUrl}/v1/runs/${runId}/stream`, {
      headers: { authorization: `Bearer ${t.stack.secrets.gatewayToken}` },
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const events: Array<{ event: string; data: { text?: string } }> = [];
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) as { text?: string } });
          if (event === 'model-done' || event === 'end') return;
        }
      }
    })();
    assert.equal((await t.signal(runId, 'go', {})).status, 202);
    await reading;
    controller.abort();
    const streamed = events
      .filter((e) => e.event === 'delta')
      .map((e) => e.data.text ?? '')
      .join('');
    assert.equal(streamed, words.join(' '));
    assert.ok(events.filter((e) => e.event === 'delta').length >= 1);
    assert.equal(((await t.result(runId)).output as { text: string }).text, words.join(' '));
  });

  it('does not retry a 400 and fails the run with the message kept in the data plane', async () => {
    await t.setModelScript({
      rules: [{ contains: 'bad-request-case', faults: [{ kind: 'status', status: 400, message: 'prompt rejected' }], text: 'never' }],
    });
    const runId = await t.start('model-call', { prompt: 'bad-request-case please' });
    const result = await t.result(runId);
    assert.equal(result.status, 'failed');
    assert.match(result.error?.message ?? '', /400/);
    const calls = (await t.modelCalls()).filter((c) => JSON.stringify(c.messages).includes('bad-request-case'));
    assert.equal(calls.length, 1, 'a 400 is not retried');
  });

  it('replays a recorded model call after a suspension without calling the provider again', async () => {
    await t.setModelScript({ rules: [{ contains: 'replay-case', text: 'recorded answer' }] });
    const runId = await t.start('model-call', { prompt: 'replay-case once', sleepMs: 1500 });
    await t.waitForRun(runId, (r) => r.status === 'suspended');
    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.equal((result.output as { text: string }).text, 'recorded answer');
    const { run, steps } = await t.describe(runId);
    assert.ok(run.dispatchCount >= 2, 'the run was dispatched again after the sleep and replayed');
    const calls = (await t.modelCalls()).filter((c) => JSON.stringify(c.messages).includes('replay-case'));
    assert.equal(calls.length, 1, 'the provider was called once');
    const model = steps.find((s) => s.kind === 'model') as unknown as { inputTokens: number; outputTokens: number; model: string };
    assert.ok(model.inputTokens > 0 && model.outputTokens > 0, 'token usage reached the control plane');
    assert.equal(model.model, 'mock-small');
  });
});
