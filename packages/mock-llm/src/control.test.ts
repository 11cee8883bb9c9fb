// The control API and the raw wire format, over HTTP with fetch: what a human with curl or a test
// in another language sees.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMockLlm, type MockCall, type MockLlm, type MockScript } from './index.js';

interface Completion {
  choices: { message: { content: string | null } }[];
}
interface Chunk {
  choices: { delta: { role?: string; content?: string | null }; finish_reason: string | null }[];
  usage?: unknown;
}
interface OpenAIError {
  error: { message: string; type: string; code: string | null };
}
interface MistralError {
  object: string;
  message: string;
}
interface ControlError {
  error: { code: string; message: string };
}
interface ModelList {
  object: string;
  data: { id: string; capabilities?: { completion_chat: boolean } }[];
}

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

function put(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('the control API', () => {
  let llm: MockLlm;
  before(async () => {
    llm = await startMockLlm();
  });
  after(() => llm.close());
  beforeEach(() => {
    llm.setScript([]);
    llm.reset();
  });

  it('reports health', async () => {
    const response = await fetch(`${llm.url}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await json(response), { status: 'ok' });
  });

  it('replaces the script with PUT /_mock/script and shows it with GET', async () => {
    const script: MockScript = { rules: [{ contains: 'ping', text: 'pong' }] };
    const response = await put(`${llm.url}/_mock/script`, script);
    assert.equal(response.status, 200);
    assert.deepEqual(await json(response), { ok: true, rules: 1 });
    assert.deepEqual(await json(await fetch(`${llm.url}/_mock/script`)), script);
    const chat = await json<Completion>(
      await post(`${llm.openaiBaseUrl}/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'ping' }] }),
    );
    assert.equal(chat.choices[0]!.message.content, 'pong');
  });

  it('accepts a bare array of rules', async () => {
    const response = await put(`${llm.url}/_mock/script`, [{ text: 'always this' }]);
    assert.equal(response.status, 200);
    const chat = await json<Completion>(
      await post(`${llm.mistralBaseUrl}/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'x' }] }),
    );
    assert.equal(chat.choices[0]!.message.content, 'always this');
  });

  it('refuses a bad script with 400 naming each problem, and keeps the old script', async () => {
    llm.setScript([{ text: 'kept' }]);
    const response = await put(`${llm.url}/_mock/script`, {
      rules: [
        { contain: 'typo' },
        { faults: [{ kind: 'explode' }, { kind: 'status', status: 200 }] },
        { regex: '(' },
        { json: {}, text: 'x' },
      ],
    });
    assert.equal(response.status, 400);
    const body = await json<ControlError>(response);
    assert.equal(body.error.code, 'CAIRN-1101');
    const message: string = body.error.message;
    assert.match(message, /rules\[0\]: Unrecognized key: "contain"/);
    assert.match(message, /rules\[1\]\.faults\[0\]\.kind: expected a fault with kind "status"/);
    assert.match(message, /rules\[1\]\.faults\[1\]\.status: must be an HTTP error status/);
    assert.match(message, /rules\[2\]\.regex: is not a valid regular expression/);
    assert.match(message, /rules\[3\]\.json: cannot be combined with text or toolCalls/);
    const chat = await json<Completion>(
      await post(`${llm.openaiBaseUrl}/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'x' }] }),
    );
    assert.equal(chat.choices[0]!.message.content, 'kept');
  });

  it('refuses chunks that do not join to the text', async () => {
    const response = await put(`${llm.url}/_mock/script`, [{ text: 'hello world', chunks: ['hello', 'world'] }]);
    assert.equal(response.status, 400);
    assert.match((await json<ControlError>(response)).error.message, /rules\[0\]\.chunks: must join to the reply content "hello world"/);
  });

  it('logs every call in order with dialect, model, stream, messages, tools, fault and status', async () => {
    llm.setScript([{ contains: 'fail', faults: [{ kind: 'status', status: 503 }] }]);
    const messages = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'please fail' },
    ];
    await post(`${llm.openaiBaseUrl}/chat/completions`, {
      model: 'gpt-mock',
      messages,
      tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }],
    });
    await post(`${llm.mistralBaseUrl}/chat/completions`, { model: 'mistral-small-latest', stream: true, messages }).then((r) => r.text());
    const { calls } = await json<{ calls: MockCall[] }>(await fetch(`${llm.url}/_mock/calls`));
    assert.equal(calls.length, 2);
    const [first, second] = calls;
    assert.deepEqual(
      { ...first, time: undefined },
      {
        seq: 1,
        dialect: 'openai',
        model: 'gpt-mock',
        stream: false,
        messages,
        tools: ['lookup'],
        responseFormat: null,
        rule: 0,
        fault: { kind: 'status', status: 503 },
        status: 503,
        time: undefined,
      },
    );
    assert.ok(!Number.isNaN(Date.parse(first!.time)));
    assert.equal(second?.dialect, 'mistral');
    assert.equal(second?.stream, true);
    assert.equal(second?.fault, null);
    assert.equal(second?.status, 200);
    assert.deepEqual(llm.calls(), calls);
  });

  it('serves faults in order, once per matching call, and re-arms them on reset', async () => {
    llm.setScript([{ faults: [{ kind: 'status', status: 500 }, { kind: 'rate-limit' }] }]);
    const ask = async () =>
      (await post(`${llm.openaiBaseUrl}/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'x' }] })).status;
    assert.deepEqual([await ask(), await ask(), await ask(), await ask()], [500, 429, 200, 200]);
    const reset = await fetch(`${llm.url}/_mock/reset`, { method: 'POST' });
    assert.equal(reset.status, 200);
    assert.deepEqual(llm.calls(), []);
    assert.deepEqual([await ask(), await ask(), await ask()], [500, 429, 200]);
    assert.deepEqual(
      llm.calls().map((c) => c.seq),
      [1, 2, 3],
    );
  });

  it('sends a 429 with Retry-After: 1 when the fault names no delay', async () => {
    llm.setScript([{ faults: [{ kind: 'rate-limit' }] }]);
    const response = await post(`${llm.openaiBaseUrl}/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(response.status, 429);
    assert.equal(response.headers.get('retry-after'), '1');
    assert.equal(response.headers.get('retry-after-ms'), null);
    assert.equal((await json<OpenAIError>(response)).error.type, 'rate_limit_error');
  });

  it('answers a request without model or messages with a provider-style 400', async () => {
    const openai = await post(`${llm.openaiBaseUrl}/chat/completions`, { messages: [] });
    assert.equal(openai.status, 400);
    const openaiBody = await json<OpenAIError>(openai);
    assert.equal(openaiBody.error.type, 'invalid_request_error');
    assert.match(openaiBody.error.message, /model: is required/);
    const mistral = await fetch(`${llm.mistralBaseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{oops',
    });
    assert.equal(mistral.status, 400);
    const mistralBody = await json<MistralError>(mistral);
    assert.equal(mistralBody.object, 'error');
    assert.equal(typeof mistralBody.message, 'string');
  });

  it('lists models in each dialect, including the ones the script names', async () => {
    llm.setScript([
      { model: 'scripted-model', text: 'x' },
      { model: 'only-mistral', dialect: 'mistral', text: 'y' },
    ]);
    const openai = await json<ModelList>(await fetch(`${llm.openaiBaseUrl}/models`));
    assert.equal(openai.object, 'list');
    assert.deepEqual(
      openai.data.map((m) => m.id),
      ['mock-model', 'scripted-model'],
    );
    const mistral = await json<ModelList>(await fetch(`${llm.mistralBaseUrl}/models`));
    assert.deepEqual(
      mistral.data.map((m) => m.id),
      ['mistral-small-latest', 'mistral-large-latest', 'scripted-model', 'only-mistral'],
    );
    assert.equal(mistral.data[0]?.capabilities?.completion_chat, true);
  });

  it('ends a stream with [DONE] and sends usage in the last chunk', async () => {
    llm.setScript([{ text: 'a b', usage: { input: 2, output: 2 } }]);
    const text = await (
      await post(`${llm.openaiBaseUrl}/chat/completions`, { model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] })
    ).text();
    const events = text
      .split('\n\n')
      .filter((e) => e !== '')
      .map((e) => e.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Chunk);
    assert.deepEqual(
      chunks.map((c) => c.choices[0]?.delta.content ?? null),
      ['a ', 'b', null, null],
    );
    assert.equal(chunks[0]?.choices[0]?.delta.role, 'assistant');
    assert.equal(chunks.at(-2)?.choices[0]?.finish_reason, 'stop');
    assert.deepEqual(chunks.at(-1)?.usage, { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 });
  });

  it('answers unknown routes with 404', async () => {
    const response = await fetch(`${llm.url}/openai/v1/embeddings`, { method: 'POST' });
    assert.equal(response.status, 404);
    assert.match((await json<ControlError>(response)).error.message, /No route POST \/openai\/v1\/embeddings/);
  });
});

describe('the bearer check', () => {
  let llm: MockLlm;
  before(async () => {
    llm = await startMockLlm({ apiKey: 'secret' });
  });
  after(() => llm.close());

  it('refuses provider calls without the key, in each dialect style, and leaves the control API open', async () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
    const openai = await post(`${llm.openaiBaseUrl}/chat/completions`, body);
    assert.equal(openai.status, 401);
    assert.equal((await json<OpenAIError>(openai)).error.code, 'invalid_api_key');
    const mistral = await post(`${llm.mistralBaseUrl}/chat/completions`, body, { authorization: 'Bearer nope' });
    assert.equal(mistral.status, 401);
    assert.deepEqual(Object.keys(await json<MistralError>(mistral)).sort(), ['code', 'message', 'object', 'param', 'type']);
    assert.equal((await fetch(`${llm.openaiBaseUrl}/models`)).status, 401);
    assert.equal((await post(`${llm.openaiBaseUrl}/chat/completions`, body, { authorization: 'Bearer secret' })).status, 200);
    assert.equal((await fetch(`${llm.url}/_mock/calls`)).status, 200);
    assert.deepEqual(
      llm.calls().map((c) => c.status),
      [401, 401, 200],
    );
  });
});

describe('startMockLlm', () => {
  it('refuses a bad initial script with a CairnError', async () => {
    await assert.rejects(startMockLlm({ script: [{ faults: [{ kind: 'timeout', ms: -1 }] }] }), /CAIRN-1101.*rules\[0\]\.faults\[0\]\.ms/s);
  });

  it('closes while a call is held open by a timeout fault', async () => {
    const llm = await startMockLlm({ script: [{ faults: [{ kind: 'timeout' }] }] });
    const pending = post(`${llm.openaiBaseUrl}/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'x' }] }).then(
      () => 'answered',
      () => 'dropped',
    );
    while (llm.calls().length === 0) await new Promise((r) => setTimeout(r, 5));
    await llm.close();
    assert.equal(await pending, 'dropped');
  });
});
