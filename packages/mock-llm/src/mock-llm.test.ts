// The real AI SDK providers against the real mock server over HTTP: what a test or the local stack
// sees when it points @ai-sdk/openai-compatible or @ai-sdk/mistral at the mock.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMistral } from '@ai-sdk/mistral';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, generateText, Output, RetryError, stepCountIs, streamText, tool, type LanguageModel, type Tool } from 'ai';
import { z } from 'zod';
import { startMockLlm, type MockDialect, type MockLlm, type MockRule } from './index.js';

// The SDK warns on stderr about unsupported settings; the tests assert outcomes instead.
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

const API_KEY = 'sk-mock-test';

interface DialectCase {
  readonly name: string;
  readonly dialect: MockDialect;
  readonly model: (llm: MockLlm) => LanguageModel;
}

const DIALECTS: readonly DialectCase[] = [
  {
    name: 'OpenAI-compatible',
    dialect: 'openai',
    model: (llm) =>
      createOpenAICompatible({ name: 'mock', baseURL: llm.openaiBaseUrl, apiKey: API_KEY, supportsStructuredOutputs: true })('mock-model'),
  },
  {
    name: 'Mistral',
    dialect: 'mistral',
    model: (llm) => createMistral({ baseURL: llm.mistralBaseUrl, apiKey: API_KEY })('mistral-small-latest'),
  },
];

async function rejection(promise: PromiseLike<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to fail');
}

function apiCallError(err: unknown): APICallError {
  assert.ok(APICallError.isInstance(err), `expected an APICallError, got ${String(err)}`);
  return err;
}

const weatherTool: Tool = tool({ description: 'The weather in a city', inputSchema: z.object({ city: z.string() }) });

for (const { name, dialect, model: modelFor } of DIALECTS) {
  describe(`the ${name} dialect through the AI SDK`, () => {
    let llm: MockLlm;
    let model: LanguageModel;
    const script = (...rules: MockRule[]): void => llm.setScript({ rules });

    before(async () => {
      llm = await startMockLlm({ apiKey: API_KEY });
      model = modelFor(llm);
    });
    after(() => llm.close());
    beforeEach(() => {
      llm.setScript({ rules: [] });
      llm.reset();
    });

    it('answers with the scripted text, finish reason and usage', async () => {
      script({ contains: 'capital of France', text: 'Paris is the capital of France.', usage: { input: 12, output: 7 } });
      const result = await generateText({ model, prompt: 'What is the capital of France?' });
      assert.equal(result.text, 'Paris is the capital of France.');
      assert.equal(result.finishReason, 'stop');
      assert.equal(result.usage.inputTokens, 12);
      assert.equal(result.usage.outputTokens, 7);
      assert.equal(result.usage.totalTokens, 19);
      const [call] = llm.calls();
      assert.equal(call?.dialect, dialect);
      assert.equal(call?.stream, false);
      assert.equal(call?.rule, 0);
      assert.equal(call?.status, 200);
    });

    it('gives a default reply derived from the prompt when no rule matches, with usage from the text length', async () => {
      script({ contains: 'something else', text: 'not this' });
      const result = await generateText({ model, prompt: 'Tell me a story' });
      assert.equal(result.text, 'mock reply to: Tell me a story');
      // ceil(15 / 4) prompt tokens, ceil(30 / 4) completion tokens.
      assert.equal(result.usage.inputTokens, 4);
      assert.equal(result.usage.outputTokens, 8);
      assert.equal(llm.calls()[0]?.rule, null);
    });

    it('streams the text word by word, in order, with usage at the end', async () => {
      script({ contains: 'count', text: 'one two three four five', usage: { input: 3, output: 5 } });
      const result = streamText({ model, prompt: 'count to five' });
      const deltas: string[] = [];
      for await (const delta of result.textStream) deltas.push(delta);
      assert.deepEqual(deltas, ['one ', 'two ', 'three ', 'four ', 'five']);
      assert.equal(await result.finishReason, 'stop');
      const usage = await result.usage;
      assert.equal(usage.inputTokens, 3);
      assert.equal(usage.outputTokens, 5);
      assert.equal(llm.calls()[0]?.stream, true);
    });

    it('streams explicit chunks when the rule gives them', async () => {
      script({ chunks: ['Hel', 'lo, ', 'wor', 'ld!'] });
      const result = streamText({ model, prompt: 'greet' });
      const deltas: string[] = [];
      for await (const delta of result.textStream) deltas.push(delta);
      assert.deepEqual(deltas, ['Hel', 'lo, ', 'wor', 'ld!']);
    });

    it('makes a tool call the SDK parses, streamed or not', async () => {
      script({ contains: 'weather', hasTools: true, toolCalls: [{ name: 'getWeather', arguments: { city: 'Paris' } }] });
      const generated = await generateText({ model, prompt: 'What is the weather in Paris?', tools: { getWeather: weatherTool } });
      assert.equal(generated.finishReason, 'tool-calls');
      assert.equal(generated.toolCalls.length, 1);
      assert.equal(generated.toolCalls[0]?.toolName, 'getWeather');
      assert.deepEqual(generated.toolCalls[0]?.input, { city: 'Paris' });
      assert.ok(generated.toolCalls[0]?.toolCallId);

      const streamed = streamText({ model, prompt: 'What is the weather in Paris?', tools: { getWeather: weatherTool } });
      const toolCalls = await streamed.toolCalls;
      assert.equal(await streamed.finishReason, 'tool-calls');
      assert.deepEqual(
        toolCalls.map((c): unknown[] => [c.toolName, c.input, c.toolCallId]),
        generated.toolCalls.map((c): unknown[] => [c.toolName, c.input, c.toolCallId]),
      );
      assert.deepEqual(llm.calls()[0]?.tools, ['getWeather']);
    });

    it('runs an agent loop: a tool call first, then an answer once the tool result comes back', async () => {
      script(
        { afterToolResult: true, text: 'It is sunny in Paris.' },
        { contains: 'weather', toolCalls: [{ name: 'getWeather', arguments: { city: 'Paris' } }] },
      );
      const result = await generateText({
        model,
        prompt: 'What is the weather in Paris?',
        tools: { getWeather: tool({ inputSchema: z.object({ city: z.string() }), execute: ({ city }) => ({ city, sky: 'sunny' }) }) },
        stopWhen: stepCountIs(3),
      });
      assert.equal(result.text, 'It is sunny in Paris.');
      const calls = llm.calls();
      assert.deepEqual(
        calls.map((c) => c.rule),
        [1, 0],
      );
      const lastMessage = calls[1]?.messages.at(-1) as { role: string; content: unknown };
      assert.equal(lastMessage.role, 'tool');
      assert.match(JSON.stringify(lastMessage.content), /sunny/);
    });

    it('returns scripted JSON as structured output that parses against a zod schema', async () => {
      script({ contains: 'person', json: { name: 'Ada Lovelace', born: 1815, languages: ['English', 'French'] } });
      const schema = z.object({ name: z.string(), born: z.number().int(), languages: z.array(z.string()) });
      const result = await generateText({ model, prompt: 'Describe a person', output: Output.object({ schema }) });
      assert.deepEqual(result.output, { name: 'Ada Lovelace', born: 1815, languages: ['English', 'French'] });
      assert.equal(llm.calls()[0]?.responseFormat, 'json_schema');
    });

    it('streams structured output too', async () => {
      script({ json: { title: 'Dune', pages: 412 } });
      const result = streamText({
        model,
        prompt: 'a book',
        output: Output.object({ schema: z.object({ title: z.string(), pages: z.number() }) }),
      });
      assert.deepEqual(await result.output, { title: 'Dune', pages: 412 });
    });

    it('answers a JSON-schema request without a rule with a value of that schema', async () => {
      const schema = z.object({
        id: z.uuid(),
        status: z.enum(['open', 'closed']),
        count: z.number().int().min(3),
        tags: z.array(z.string()).min(1),
        owner: z.object({ email: z.email(), since: z.iso.datetime() }).nullable(),
      });
      const result = await generateText({ model, prompt: 'Make a ticket', output: Output.object({ schema }) });
      assert.equal(schema.safeParse(result.output).success, true);
    });

    it('is deterministic: the same request twice gets the same reply', async () => {
      script({ contains: 'weather', toolCalls: [{ name: 'getWeather', arguments: { city: 'Oslo' } }] });
      const ask = () => generateText({ model, prompt: 'weather in Oslo, and a word on fjords', tools: { getWeather: weatherTool } });
      const [first, second] = [await ask(), await ask()];
      assert.deepEqual(first.toolCalls, second.toolCalls);
      assert.equal(first.finalStep.response.id, second.finalStep.response.id);
      assert.deepEqual(first.usage, second.usage);
      const chat = () => generateText({ model, prompt: 'no rule for this one' });
      const [a, b] = [await chat(), await chat()];
      assert.equal(a.text, b.text);
      assert.deepEqual(a.usage, b.usage);
    });

    it('surfaces a 502 as an APICallError with status 502', async () => {
      script({ faults: [{ kind: 'status', status: 502 }] });
      const err = apiCallError(await rejection(generateText({ model, prompt: 'hi', maxRetries: 0 })));
      assert.equal(err.statusCode, 502);
      assert.equal(err.isRetryable, true);
      assert.deepEqual(
        llm.calls().map((c) => [c.fault?.kind, c.status]),
        [['status', 502]],
      );
    });

    it("is retried by the SDK's own retries until the faults run out", async () => {
      // retry-after-ms keeps the SDK's backoff short; the count of calls is what matters.
      script({
        text: 'finally',
        faults: [
          { kind: 'status', status: 502, retryAfterMs: 1 },
          { kind: 'status', status: 503, retryAfterMs: 1 },
        ],
      });
      const result = await generateText({ model, prompt: 'hi', maxRetries: 2 });
      assert.equal(result.text, 'finally');
      assert.deepEqual(
        llm.calls().map((c) => c.status),
        [502, 503, 200],
      );
    });

    it('gives up after maxRetries with the last 5xx as the cause', async () => {
      script({ faults: [500, 500, 500].map((status) => ({ kind: 'status' as const, status, retryAfterMs: 1 })) });
      const err = await rejection(generateText({ model, prompt: 'hi', maxRetries: 1 }));
      assert.ok(RetryError.isInstance(err));
      assert.equal(apiCallError(err.lastError).statusCode, 500);
      assert.equal(llm.calls().length, 2);
    });

    it('does not retry client errors (400, 401, 403, 422) but retries 408 and 409', async () => {
      for (const status of [400, 401, 403, 422]) {
        llm.setScript([{ faults: [{ kind: 'status', status }] }]);
        llm.reset();
        const err = apiCallError(await rejection(generateText({ model, prompt: 'hi', maxRetries: 2 })));
        assert.equal(err.statusCode, status);
        assert.equal(err.isRetryable, false);
        assert.equal(llm.calls().length, 1, `status ${status} is not retried`);
      }
      for (const status of [408, 409]) {
        llm.setScript([{ faults: [{ kind: 'status', status, retryAfterMs: 1 }] }]);
        llm.reset();
        const result = await generateText({ model, prompt: 'hi', maxRetries: 1 });
        assert.equal(result.text, 'mock reply to: hi');
        assert.equal(llm.calls().length, 2, `status ${status} is retried`);
      }
    });

    it('rate-limits with 429 and Retry-After headers the SDK honours', async () => {
      script({
        faults: [
          { kind: 'rate-limit', retryAfterSeconds: 30, retryAfterMs: 5 },
          { kind: 'rate-limit', retryAfterMs: 1 },
        ],
      });
      const err = apiCallError(await rejection(generateText({ model, prompt: 'hi', maxRetries: 0 })));
      assert.equal(err.statusCode, 429);
      assert.equal(err.responseHeaders?.['retry-after'], '30');
      assert.equal(err.responseHeaders?.['retry-after-ms'], '5');
      // retry-after-ms (1 ms) wins over the exponential backoff: the retry succeeds.
      const result = await generateText({ model, prompt: 'hi', maxRetries: 1 });
      assert.equal(result.text, 'mock reply to: hi');
      assert.deepEqual(
        llm.calls().map((c) => c.status),
        [429, 429, 200],
      );
    });

    it('cuts a stream after the given number of chunks: the text so far arrives, then the stream fails', async () => {
      script({ text: 'one two three four', faults: [{ kind: 'stream-cut', afterChunks: 2 }] });
      const result = streamText({ model, prompt: 'count', onError: () => undefined });
      const deltas: string[] = [];
      const err = await rejection(
        (async () => {
          for await (const delta of result.textStream) deltas.push(delta);
        })(),
      );
      assert.deepEqual(deltas, ['one ', 'two ']);
      assert.match(String((err as Error).cause ?? err), /terminated|other side closed/);
      assert.equal(llm.calls()[0]?.status, 200);
    });

    it('cuts the connection before answering a non-streaming call', async () => {
      script({ faults: [{ kind: 'stream-cut', afterChunks: 0 }] });
      const err = apiCallError(await rejection(generateText({ model, prompt: 'hi', maxRetries: 0 })));
      assert.equal(err.statusCode, undefined);
      assert.equal(err.isRetryable, true);
      assert.equal(llm.calls()[0]?.status, null);
    });

    it('sends a malformed chunk that makes the stream report an error', async () => {
      script({ text: 'one two three', faults: [{ kind: 'malformed-chunk', afterChunks: 1 }] });
      const result = streamText({ model, prompt: 'count', onError: () => undefined });
      const deltas: string[] = [];
      const errors: unknown[] = [];
      for await (const part of result.stream) {
        if (part.type === 'text-delta') deltas.push(part.text);
        if (part.type === 'error') errors.push(part.error);
      }
      assert.deepEqual(deltas, ['one ']);
      assert.equal(errors.length, 1);
      assert.match(String(errors[0]), /JSON/);
    });

    it('answers a non-streaming call with a body that is not valid JSON', async () => {
      script({ faults: [{ kind: 'malformed-chunk', afterChunks: 0 }] });
      const err = apiCallError(await rejection(generateText({ model, prompt: 'hi', maxRetries: 0 })));
      assert.equal(err.statusCode, 200);
      assert.match(err.message, /Invalid JSON response/);
    });

    it('holds a call open so a client timeout fires', async () => {
      script({ faults: [{ kind: 'timeout' }] });
      const err = await rejection(generateText({ model, prompt: 'hi', maxRetries: 0, abortSignal: AbortSignal.timeout(200) }));
      assert.equal((err as Error).name, 'TimeoutError');
      const [call] = llm.calls();
      assert.equal(call?.fault?.kind, 'timeout');
      assert.equal(call?.status, null);
    });

    it('answers normally after a bounded timeout when the client waits', async () => {
      script({ text: 'slow but fine', faults: [{ kind: 'timeout', ms: 20 }] });
      const result = await generateText({ model, prompt: 'hi' });
      assert.equal(result.text, 'slow but fine');
      assert.equal(llm.calls()[0]?.status, 200);
    });

    it('rejects a wrong API key with a provider-style 401', async () => {
      const wrong =
        dialect === 'openai'
          ? createOpenAICompatible({ name: 'mock', baseURL: llm.openaiBaseUrl, apiKey: 'wrong' })('mock-model')
          : createMistral({ baseURL: llm.mistralBaseUrl, apiKey: 'wrong' })('mistral-small-latest');
      const err = apiCallError(await rejection(generateText({ model: wrong, prompt: 'hi' })));
      assert.equal(err.statusCode, 401);
      assert.match(err.message, /Incorrect API key/);
      assert.equal(llm.calls()[0]?.status, 401);
    });
  });
}

describe('the OpenAI-compatible dialect in its default settings', () => {
  let llm: MockLlm;
  before(async () => {
    llm = await startMockLlm({ script: [{ contains: 'person', json: { name: 'Ada' } }] });
  });
  after(() => llm.close());

  it('serves JSON mode (json_object) and usage when stream_options.include_usage is set', async () => {
    const openai = createOpenAICompatible({ name: 'mock', baseURL: llm.openaiBaseUrl, includeUsage: true });
    const result = streamText({
      model: openai('gpt-mock'),
      prompt: 'a person',
      output: Output.object({ schema: z.object({ name: z.string() }) }),
    });
    assert.deepEqual(await result.output, { name: 'Ada' });
    assert.equal((await result.usage).outputTokens, 4);
    const call = llm.calls().at(-1);
    assert.equal(call?.responseFormat, 'json_object');
    assert.equal(call?.model, 'gpt-mock');
  });
});
