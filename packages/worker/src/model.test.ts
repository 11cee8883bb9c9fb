import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { APICallError, jsonSchema, tool, type LanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { testPostgresKinds } from '@cairn/local-postgres';
import type { PayloadStore } from '@cairn/payload-store';
import { type StreamEvent } from '@cairn/payload-store';
import { ErrorCode, StepKind, StepStatus, SuspendReason, type StepReport } from '@cairn/proto';
import { ModelFailedError, defineWorkflow, type ModelResult } from '@cairn/sdk';
import { classifyModelError, retryAfterMs, sanitizeModelId, sanitizeProvider } from './model.js';
import type { FakeControlPlane } from './testing/engine-harness.js';
import { expectKind, pause } from './testing/engine-harness.js';
import { startEngineFixture, type EngineFixture } from './testing/fixture.js';
import type { OpenAIServer } from './testing/openai-server.js';

// The AI SDK prints provider warnings to the console; the tests assert on outcomes instead.
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

const fast = { initialInterval: 10, maximumInterval: 50 };

/** A transcript as the worker records it, as far as these tests read it. */
interface Transcript {
  readonly status: string;
  readonly request: { prompt?: string; system?: string; settings?: unknown; schema?: { type?: string } };
  readonly response?: { text?: string; object?: unknown };
  readonly usage?: unknown;
  readonly failures?: ReadonlyArray<{ statusCode?: number }>;
  readonly attempts: ReadonlyArray<{
    attempt: number;
    status: string;
    text?: string;
    error?: { name: string; statusCode?: number; retryable: boolean };
  }>;
}

/** The model-call reports of a run, without the RUNNING ones. */
const modelReports = (reports: StepReport[]) =>
  reports.filter((r) => r.step?.kind === StepKind.MODEL && r.step.status !== StepStatus.RUNNING);

describe('model call helpers', () => {
  it('reads Retry-After in seconds or as an HTTP date, and retry-after-ms', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(retryAfterMs({ 'retry-after': '2' }, now), 2000);
    assert.equal(retryAfterMs({ 'Retry-After': '0.5' }, now), 500);
    assert.equal(retryAfterMs({ 'retry-after': 'Tue, 01 Jan 2030 00:00:03 GMT' }, now), 3000);
    assert.equal(retryAfterMs({ 'retry-after': 'Mon, 31 Dec 2029 23:59:00 GMT' }, now), 0);
    assert.equal(retryAfterMs({ 'retry-after-ms': '150', 'retry-after': '9' }, now), 150);
    assert.equal(retryAfterMs({ 'retry-after': 'soon' }, now), undefined);
    assert.equal(retryAfterMs({ 'retry-after': '999999999' }, now), 24 * 3600_000);
    assert.equal(retryAfterMs(undefined, now), undefined);
  });

  it('retries 408, 409, 429, 5xx, network errors and broken responses, never other 4xx', () => {
    const apiError = (statusCode: number | undefined, headers?: Record<string, string>) =>
      new APICallError({
        message: 'x',
        url: 'http://x',
        requestBodyValues: {},
        ...(statusCode === undefined ? {} : { statusCode }),
        ...(headers === undefined ? {} : { responseHeaders: headers }),
      });
    for (const status of [408, 409, 429, 500, 502, 503, 529])
      assert.equal(classifyModelError(apiError(status)).retryable, true, `${status}`);
    for (const status of [400, 401, 403, 404, 422]) assert.equal(classifyModelError(apiError(status)).retryable, false, `${status}`);
    assert.equal(classifyModelError(apiError(undefined)).retryable, true, 'no response: network');
    assert.deepEqual(classifyModelError(apiError(200)), {
      retryable: true,
      statusCode: undefined,
      retryAfterMs: undefined,
      timeout: false,
    });
    assert.equal(classifyModelError(apiError(429, { 'retry-after': '3' })).retryAfterMs, 3000);
    assert.equal(classifyModelError(apiError(400, { 'retry-after': '3' })).retryAfterMs, undefined);
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    assert.equal(classifyModelError(reset).retryable, true);
    assert.equal(classifyModelError(new TypeError('Cannot read properties of undefined')).retryable, false);
  });

  it('keeps provider and model names that fit the contract, and sanitizes the rest', () => {
    assert.equal(sanitizeProvider('mistral.chat'), 'mistral.chat');
    assert.equal(sanitizeProvider('my provider!'), 'my-provider-');
    assert.equal(sanitizeProvider('42labs'), 'p42labs');
    assert.equal(sanitizeModelId('accounts/acme/models/llama-3.1:8b'), 'accounts/acme/models/llama-3.1:8b');
    assert.equal(sanitizeModelId('model with spaces'), 'model-with-spaces');
    assert.equal(sanitizeModelId('-x'), 'm-x');
    assert.equal(sanitizeModelId('x'.repeat(300)).length, 100);
  });
});

for (const kind of testPostgresKinds()) {
  describe(`ctx.model on ${kind} Postgres`, () => {
    let fixture: EngineFixture;
    let store: PayloadStore;
    let cp: FakeControlPlane;
    let llm: OpenAIServer;
    let model: (id: string) => LanguageModel;

    before(async () => {
      fixture = await startEngineFixture(kind, 'wm');
      ({ store, cp, llm, model } = fixture);
    });

    const transcriptOf = async (runId: string, position = 0): Promise<Transcript> => {
      const stored = await store.getTranscript(runId, position);
      assert.ok(stored, `no transcript at ${runId}:${position}`);
      return stored.transcript as Transcript;
    };

    after(() => fixture.close());

    it('journals the result and replays it without calling the provider; only names and counts are reported', async () => {
      const marker = `secret-${randomBytes(4).toString('hex')}`;
      let seen: ModelResult | undefined;
      const wf = defineWorkflow({ name: 'model-replay', version: '1' }, async (ctx, input: { question: string }) => {
        const reply = await ctx.model('answer', {
          model: model('acme-large'),
          system: 'Be brief.',
          prompt: input.question,
          temperature: 0.3,
          maxOutputTokens: 50,
          key: 'customer@example.com',
          stream: false,
        });
        seen ??= reply;
        await ctx.sleep(200);
        return reply;
      });
      llm.script([{ kind: 'text', text: `The answer is ${marker}.`, usage: { input: 12, output: 5 } }]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, { question: `What is ${marker}?` });
      const { outcome, outcomes } = await cp.drive(cp.engine([wf], 20), runId, wf);
      expectKind(outcome, 'completed');
      assert.equal(outcomes.length, 2, 'suspended on the sleep, then replayed');
      assert.equal(llm.since(from).length, 1, 'the replay did not call the provider');

      const expected: ModelResult = {
        text: `The answer is ${marker}.`,
        toolCalls: [],
        finishReason: 'stop',
        usage: { inputTokens: 12, outputTokens: 5 },
        provider: 'acme.chat',
        model: 'acme-large',
        attempts: 1,
      };
      assert.deepEqual(seen, expected);
      assert.deepEqual((await store.getRun(runId))?.output, expected);

      const request = llm.since(from)[0]!.body;
      assert.equal(request['model'], 'acme-large');
      assert.equal(request['temperature'], 0.3);
      assert.equal(request['max_tokens'], 50);
      assert.deepEqual(request['messages'], [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: `What is ${marker}?` },
      ]);

      const [entry] = await store.loadJournal(runId);
      assert.deepEqual([entry?.kind, entry?.name, entry?.status, entry?.attempt], ['model', 'answer', 'completed', 1]);
      const transcript = await transcriptOf(runId);
      assert.equal(transcript.status, 'completed');
      assert.deepEqual(transcript.request.prompt, `What is ${marker}?`);
      assert.equal(transcript.request.system, 'Be brief.');
      assert.deepEqual(transcript.request.settings, {
        temperature: 0.3,
        maxOutputTokens: 50,
        stream: false,
        retry: { maximumAttempts: 4, initialIntervalMs: 1000, maximumIntervalMs: 60000 },
      });
      assert.equal(transcript.response?.text, `The answer is ${marker}.`);
      assert.deepEqual(transcript.usage, { inputTokens: 12, outputTokens: 5 });
      assert.equal(transcript.attempts.length, 1);

      const reports = modelReports(cp.reportsFor(runId));
      const completed = reports.find((r) => r.step!.status === StepStatus.COMPLETED)!;
      assert.deepEqual(
        [completed.step!.name, completed.step!.provider, completed.step!.model, completed.step!.inputTokens, completed.step!.outputTokens],
        ['answer', 'acme.chat', 'acme-large', 12n, 5n],
      );
      assert.match(completed.step!.keyDigest, /^[0-9a-f]{64}$/);
      // What goes to the control plane holds no prompt, no output and no key.
      const wire = JSON.stringify(cp.reportsFor(runId), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
      assert.ok(!wire.includes(marker) && !wire.includes('example.com') && !wire.includes('Be brief'));
    });

    it('retries a 502 and succeeds, with one transcript recording both attempts', async () => {
      const wf = defineWorkflow({ name: 'model-502', version: '1' }, async (ctx) =>
        ctx.model('draft', { model: model('acme-large'), prompt: 'Draft it.', retry: fast }),
      );
      llm.script([
        { kind: 'status', status: 502, message: 'upstream hiccup' },
        { kind: 'text', text: 'Drafted.' },
      ]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
      assert.equal(llm.since(from).length, 2);
      const output = (await store.getRun(runId))?.output as ModelResult;
      assert.deepEqual([output.text, output.attempts], ['Drafted.', 2]);

      const reports = modelReports(cp.reportsFor(runId));
      assert.deepEqual(
        reports.map((r) => [r.step!.attempt, r.step!.status, r.step!.errorCode, r.step!.retryable]),
        [
          [1, StepStatus.RETRYING, ErrorCode.STEP_FAILED, true],
          [2, StepStatus.COMPLETED, ErrorCode.UNSPECIFIED, false],
        ],
      );
      assert.match((await store.getError(reports[0]!.step!.errorRef))?.message ?? '', /upstream hiccup/);

      const { attempts } = await transcriptOf(runId);
      assert.deepEqual(
        attempts.map((a) => [a.attempt, a.status, a.error?.statusCode, a.error?.retryable]),
        [
          [1, 'failed', 502, true],
          [2, 'completed', undefined, undefined],
        ],
      );
      assert.equal(await store.getTranscript(runId, 1), undefined, 'one transcript per call');
    });

    it('honours Retry-After and retry-after-ms between attempts, in order', async () => {
      const wf = defineWorkflow({ name: 'model-429', version: '1' }, async (ctx) =>
        ctx.model('answer', { model: model('acme-large'), prompt: 'Hi', retry: fast, stream: false }),
      );
      llm.script([
        { kind: 'status', status: 429, headers: { 'retry-after': '1' }, message: 'slow down' },
        { kind: 'status', status: 503, headers: { 'retry-after-ms': '300' }, message: 'overloaded' },
        { kind: 'text', text: 'Hello.' },
      ]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf], 5000), runId, wf)).outcome, 'completed');
      const requests = llm.since(from);
      assert.equal(requests.length, 3);
      const gaps = [requests[1]!.at - requests[0]!.at, requests[2]!.at - requests[1]!.at];
      assert.ok(gaps[0]! >= 950, `waited ${gaps[0]} ms after Retry-After: 1`);
      assert.ok(gaps[1]! >= 280 && gaps[1]! < 950, `waited ${gaps[1]} ms after retry-after-ms: 300`);
      const retrying = modelReports(cp.reportsFor(runId)).filter((r) => r.step!.status === StepStatus.RETRYING);
      assert.deepEqual(
        retrying.map((r) => Number(r.step!.dueAt - r.step!.endedAt)),
        [1000, 300],
      );
    });

    it('does not retry a 400: falls back to the next model; when all fail, names provider, model and status', async () => {
      const fallback = defineWorkflow({ name: 'model-fallback', version: '1' }, async (ctx) =>
        ctx.model('answer', { model: [model('acme-broken'), model('acme-small')], prompt: 'Hi', retry: fast }),
      );
      llm.script([
        { kind: 'status', status: 400, message: 'unknown parameter' },
        { kind: 'text', text: 'From the backup.' },
      ]);
      let from = llm.requests.length;
      const runId = await cp.start(fallback, null);
      expectKind((await cp.drive(cp.engine([fallback]), runId, fallback)).outcome, 'completed');
      assert.deepEqual(
        llm.since(from).map((r) => (r.body as { model: string }).model),
        ['acme-broken', 'acme-small'],
      );
      const output = (await store.getRun(runId))?.output as ModelResult;
      assert.deepEqual([output.text, output.model, output.attempts], ['From the backup.', 'acme-small', 2]);
      assert.deepEqual(
        modelReports(cp.reportsFor(runId)).map((r) => [r.step!.attempt, r.step!.model, r.step!.status, r.step!.errorCode]),
        [
          [1, 'acme-broken', StepStatus.RETRYING, ErrorCode.STEP_TERMINAL],
          [2, 'acme-small', StepStatus.COMPLETED, ErrorCode.UNSPECIFIED],
        ],
      );

      // Every model refuses: the workflow sees ModelFailedError, also on replay, without new calls.
      const caught: string[] = [];
      const exhausted = defineWorkflow({ name: 'model-exhausted', version: '1' }, async (ctx) => {
        try {
          await ctx.model('answer', { model: [model('acme-a'), model('acme-b')], prompt: 'Hi', retry: fast });
        } catch (err) {
          assert.ok(err instanceof ModelFailedError);
          caught.push(err.failures.map((f) => `${f.model}:${f.statusCode}`).join(','));
        }
        // Far above the engine's 20 ms threshold, so the run suspends (and replays) however slow the machine is.
        await ctx.sleep(1_000);
        return caught.length;
      });
      llm.script([
        { kind: 'status', status: 401, message: 'bad key' },
        { kind: 'status', status: 422, message: 'unprocessable' },
      ]);
      from = llm.requests.length;
      const run2 = await cp.start(exhausted, null);
      expectKind((await cp.drive(cp.engine([exhausted], 20), run2, exhausted)).outcome, 'completed');
      assert.equal(llm.since(from).length, 2);
      assert.deepEqual(caught, ['acme-a:401,acme-b:422', 'acme-a:401,acme-b:422']);

      // Uncaught, it fails the run: the control plane gets a closed code, the data plane the message.
      const uncaught = defineWorkflow({ name: 'model-uncaught', version: '1' }, async (ctx) =>
        ctx.model('answer', { model: model('acme-a'), prompt: 'Hi' }),
      );
      llm.script([{ kind: 'status', status: 403, message: 'forbidden' }]);
      const run3 = await cp.start(uncaught, null);
      const failed = expectKind((await cp.drive(cp.engine([uncaught]), run3, uncaught)).outcome, 'failed');
      assert.equal(failed.errorCode, ErrorCode.STEP_TERMINAL);
      const error = await store.getError(failed.errorRef);
      assert.equal(error?.name, 'ModelFailedError');
      assert.match(
        error?.message ?? '',
        /Model call "answer" failed on its model after 1 attempt: acme\.chat\/acme-a \(HTTP 403, not retryable\): forbidden/,
      );
      const transcript = await transcriptOf(run3);
      assert.equal(transcript.status, 'failed');
      assert.equal(transcript.failures?.[0]?.statusCode, 403);
    });

    it('retries a stream cut off mid-way, and a malformed one', async () => {
      const wf = defineWorkflow({ name: 'model-cut', version: '1' }, async (ctx) =>
        ctx.model('story', { model: model('acme-large'), prompt: 'Tell me a story.', retry: fast }),
      );
      llm.script([
        { kind: 'cut', text: 'Once upon' },
        { kind: 'malformed', text: 'Once' },
        { kind: 'text', text: 'Once upon a time, the end.' },
      ]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
      assert.equal(llm.since(from).length, 3);
      assert.ok(llm.since(from).every((r) => (r.body as { stream?: boolean }).stream === true));
      const output = (await store.getRun(runId))?.output as ModelResult;
      assert.deepEqual([output.text, output.attempts], ['Once upon a time, the end.', 3]);
      const [cut, malformed] = (await transcriptOf(runId)).attempts;
      assert.deepEqual([cut?.status, cut?.error?.retryable, cut?.text], ['failed', true, 'Once upon']);
      assert.deepEqual([malformed?.status, malformed?.error?.retryable, malformed?.error?.name], ['failed', true, 'AI_JSONParseError']);
    });

    it('retries structured output that fails its schema, then returns the valid object', async () => {
      const label = jsonSchema<{ label: 'spam' | 'ham' }>(
        {
          type: 'object',
          properties: { label: { type: 'string', enum: ['spam', 'ham'] } },
          required: ['label'],
          additionalProperties: false,
        },
        {
          validate: (value) => {
            const v = value as { label?: unknown };
            return v.label === 'spam' || v.label === 'ham'
              ? { success: true, value: { label: v.label } }
              : { success: false, error: new Error(`label must be spam or ham, got ${JSON.stringify(v.label)}`) };
          },
        },
      );
      let object: { label: string } | undefined;
      const wf = defineWorkflow({ name: 'model-schema', version: '1' }, async (ctx) => {
        const reply = await ctx.model('classify', { model: model('acme-large'), prompt: 'Buy now!!!', schema: label, retry: fast });
        object = reply.object;
        return reply.object.label;
      });
      llm.script([
        { kind: 'text', text: '{"label":"maybe"}' },
        { kind: 'text', text: '{"label":"spam"}' },
      ]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
      assert.equal((await store.getRun(runId))?.output, 'spam');
      assert.deepEqual(object, { label: 'spam' });
      const sent = llm.since(from)[0]!.body as { response_format?: { type: string } };
      assert.equal(sent.response_format?.type, 'json_schema');
      const retrying = modelReports(cp.reportsFor(runId)).find((r) => r.step!.status === StepStatus.RETRYING)!;
      assert.equal(retrying.step!.errorCode, ErrorCode.STEP_FAILED);
      const error = await store.getError(retrying.step!.errorRef);
      assert.equal(error?.name, 'AI_NoObjectGeneratedError');
      assert.match(error?.message ?? '', /did not match schema[^]*label must be spam or ham, got "maybe"/);
      const transcript = await transcriptOf(runId);
      assert.equal(transcript.attempts[0]?.text, '{"label":"maybe"}');
      assert.deepEqual(transcript.response?.object, { label: 'spam' });
      assert.equal(transcript.request.schema?.type, 'object');
    });

    it('returns tool calls without executing them; the workflow runs each as its own step', async () => {
      let executedByModel = 0;
      const lookup = tool({
        description: 'Looks an order up.',
        inputSchema: jsonSchema<{ orderId: string }>({
          type: 'object',
          properties: { orderId: { type: 'string' } },
          required: ['orderId'],
        }),
        execute: () => {
          executedByModel++;
          return 'never';
        },
      });
      const ran: string[] = [];
      const wf = defineWorkflow({ name: 'model-tools', version: '1' }, async (ctx) => {
        const reply = await ctx.model('plan', { model: model('acme-large'), prompt: 'Where is order 7?', tools: { lookup } });
        for (const call of reply.toolCalls) {
          await ctx.step(`tool.${call.toolName}`, { key: call.toolCallId }, () => {
            ran.push(JSON.stringify(call.input));
            return 'shipped';
          });
        }
        return reply;
      });
      llm.script([{ kind: 'tools', calls: [{ id: 'call_1', name: 'lookup', input: { orderId: '7' } }] }]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
      const output = (await store.getRun(runId))?.output as ModelResult;
      assert.deepEqual(output.toolCalls, [{ toolCallId: 'call_1', toolName: 'lookup', input: { orderId: '7' } }]);
      assert.equal(output.finishReason, 'tool-calls');
      assert.equal(executedByModel, 0);
      assert.deepEqual(ran, ['{"orderId":"7"}']);
      const tools = (llm.since(from)[0]!.body as { tools: Array<{ function: { name: string } }> }).tools;
      assert.deepEqual(
        tools.map((t) => t.function.name),
        ['lookup'],
      );
      const journal = await store.loadJournal(runId);
      assert.deepEqual(
        journal.map((e) => [e.kind, e.name]),
        [
          ['model', 'plan'],
          ['step', 'tool.lookup'],
        ],
      );
    });

    it('streams text deltas inside the data plane while the call runs', async () => {
      const received: Array<{ at: number; event: StreamEvent }> = [];
      let runId = '';
      const stop = await store.onStream((run, events) => {
        if (run === runId) for (const event of events) received.push({ at: Date.now(), event });
      });
      try {
        const text = 'Streaming, one token at a time.';
        const wf = defineWorkflow({ name: 'model-stream', version: '1' }, async (ctx) =>
          ctx.model('story', { model: model('acme-large'), prompt: 'Go' }),
        );
        llm.script([{ kind: 'slow', text, everyMs: 4 }]);
        runId = await cp.start(wf, null);
        expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
        await pause(100);
        const deltas = received.filter((r) => r.event.type === 'delta');
        const done = received.filter((r) => r.event.type === 'model-done');
        assert.equal(deltas.map((d) => (d.event.type === 'delta' ? d.event.text : '')).join(''), text);
        assert.ok(deltas.length >= 2, `batched but streamed: ${deltas.length} notifications`);
        assert.ok(
          deltas.every((d) => d.event.position === 0 && d.event.name === 'story' && d.event.attempt === 1),
          'deltas name the call',
        );
        assert.equal(done.length, 1);
        assert.ok(deltas[0]!.at < done[0]!.at - 30, 'the first text arrived well before the call finished');

        // stream: false publishes nothing.
        const quiet = defineWorkflow({ name: 'model-quiet', version: '1' }, async (ctx) =>
          ctx.model('story', { model: model('acme-large'), prompt: 'Go', stream: false }),
        );
        llm.script([{ kind: 'text', text: 'Quiet.' }]);
        runId = await cp.start(quiet, null);
        const before = received.length;
        expectKind((await cp.drive(cp.engine([quiet]), runId, quiet)).outcome, 'completed');
        await pause(100);
        assert.equal(received.length, before);
      } finally {
        await stop();
      }
    });

    it('suspends for a backoff above the threshold and resumes the same call', async () => {
      const wf = defineWorkflow({ name: 'model-suspend', version: '1' }, async (ctx) =>
        ctx.model('answer', { model: model('acme-large'), prompt: 'Hi', retry: fast, stream: false }),
      );
      llm.script([
        { kind: 'status', status: 429, headers: { 'retry-after-ms': '300' } },
        { kind: 'text', text: 'Later.' },
      ]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, null);
      const { outcome, outcomes } = await cp.drive(cp.engine([wf], 20), runId, wf);
      expectKind(outcome, 'completed');
      assert.equal(expectKind(outcomes[0]!, 'suspended').reason, SuspendReason.RETRY_BACKOFF);
      assert.equal(llm.since(from).length, 2);
      const output = (await store.getRun(runId))?.output as ModelResult;
      assert.deepEqual([output.text, output.attempts], ['Later.', 2]);
      assert.equal((await transcriptOf(runId)).attempts.length, 2, 'the attempt before the suspension is in the transcript');
    });

    it('aborts an attempt that exceeds its timeout and retries it', async () => {
      let calls = 0;
      const slowThenFast = new MockLanguageModelV4({
        provider: 'mock.chat',
        modelId: 'mock-1',
        doGenerate: async ({ abortSignal }) => {
          calls++;
          if (calls === 1) {
            await new Promise((_resolve, reject) => abortSignal?.addEventListener('abort', () => reject(abortSignal.reason as Error)));
          }
          return {
            content: [{ type: 'text', text: 'in time' }],
            finishReason: { unified: 'stop', raw: 'stop' },
            usage: {
              inputTokens: { total: 3, noCache: 3, cacheRead: undefined, cacheWrite: undefined },
              outputTokens: { total: 2, text: 2, reasoning: undefined },
            },
            warnings: [],
          };
        },
      });
      const wf = defineWorkflow({ name: 'model-timeout', version: '1' }, async (ctx) =>
        ctx.model('answer', { model: slowThenFast, prompt: 'Hi', timeout: 100, retry: fast, stream: false }),
      );
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
      assert.equal(calls, 2);
      const reports = modelReports(cp.reportsFor(runId));
      assert.deepEqual(
        reports.map((r) => [r.step!.status, r.step!.errorCode, r.step!.provider, r.step!.model]),
        [
          [StepStatus.RETRYING, ErrorCode.STEP_TIMEOUT, 'mock.chat', 'mock-1'],
          [StepStatus.COMPLETED, ErrorCode.UNSPECIFIED, 'mock.chat', 'mock-1'],
        ],
      );
      assert.equal(reports[1]!.step!.outputTokens, 2n);
    });

    it('cancels a call in flight', async () => {
      const wf = defineWorkflow({ name: 'model-cancel', version: '1' }, async (ctx) =>
        ctx.model('story', { model: model('acme-large'), prompt: 'Go' }),
      );
      llm.script([{ kind: 'slow', text: 'x'.repeat(400), everyMs: 5 }]);
      const runId = await cp.start(wf, null);
      const execution = cp.dispatch(cp.engine([wf]), runId, wf);
      await pause(150);
      execution.cancel();
      expectKind(await execution.done, 'cancelled');
      assert.equal((await store.getRun(runId))?.status, 'cancelled');
    });

    it('checks its options and its place in the journal', async () => {
      const bad = defineWorkflow({ name: 'model-bad', version: '1' }, async (ctx) => {
        const errors: string[] = [];
        for (const options of [
          { model: model('m'), prompt: 'a', messages: [] },
          { model: [], prompt: 'a' },
          { model: { nope: true }, prompt: 'a' },
          { model: model('m') },
          { model: model('m'), prompt: 'a', retry: { maximumAttempts: 0 } },
        ]) {
          // Deliberately malformed options, as untyped JavaScript could pass them.
          await ctx.model('x', options as never).catch((err: unknown) => errors.push((err as Error).message));
        }
        await ctx.model('not a name', { model: model('m'), prompt: 'a' }).catch((err: unknown) => errors.push((err as Error).message));
        return errors;
      });
      const runId = await cp.start(bad, null);
      expectKind((await cp.drive(cp.engine([bad]), runId, bad)).outcome, 'completed');
      const errors = (await store.getRun(runId))?.output as string[];
      assert.equal(errors.length, 6);
      assert.ok(
        errors.every((m) => m.startsWith('[CAIRN-1101]') || m.startsWith('[CAIRN-1107]')),
        errors.join('\n'),
      );
      assert.match(errors[0]!, /both prompt and messages/);
      assert.match(errors[1]!, /empty model list/);
      assert.match(errors[2]!, /not an AI SDK language model/);
      assert.match(errors[3]!, /needs a prompt/);
      assert.match(errors[4]!, /maximumAttempts/);

      // A model call where the journal has a step is non-determinism, named as such.
      const v1 = defineWorkflow({ name: 'model-nondet', version: '1' }, async (ctx) => {
        await ctx.step('summarize', () => 'by hand');
        await ctx.sleep('1h');
      });
      const v2 = defineWorkflow({ name: 'model-nondet', version: '1' }, async (ctx) => {
        await ctx.model('summarize', { model: model('acme-large'), prompt: 'a' });
      });
      const run2 = await cp.start(v1, null);
      expectKind(await cp.dispatch(cp.engine([v1]), run2, v1).done, 'suspended');
      const failed = expectKind(await cp.dispatch(cp.engine([v2]), run2, v2).done, 'failed');
      assert.equal(failed.errorCode, ErrorCode.NON_DETERMINISM);
      assert.match(
        (await store.getError(failed.errorRef))?.message ?? '',
        /the journal has step "summarize", the workflow now calls model call "summarize"/,
      );
    });
  });
}
