// Rule matching, fault queues, default replies and streaming pieces, without a server.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { exampleFromJsonSchema } from './json-example.js';
import { lastUserText, Responder, splitWords, type ChatRequest } from './reply.js';
import { parseScript } from './script.js';

function request(overrides: Partial<ChatRequest> & { user?: string } = {}): ChatRequest {
  const { user = 'hello', ...rest } = overrides;
  return {
    dialect: 'openai',
    model: 'mock-model',
    stream: false,
    messages: [{ role: 'user', content: user }],
    toolNames: [],
    responseFormat: null,
    jsonSchema: undefined,
    ...rest,
  };
}

describe('rule matching', () => {
  it('takes the first rule whose every condition holds', () => {
    const responder = new Responder(
      parseScript([
        { model: 'other', text: 'wrong model' },
        { contains: 'weather', hasTools: true, text: 'weather with tools' },
        { regex: '^weather\\b', text: 'weather by regex' },
        { dialect: 'mistral', text: 'mistral' },
        { text: 'catch-all' },
      ]),
    );
    assert.equal(responder.plan(request({ user: 'weather today', toolNames: ['getWeather'] })).content, 'weather with tools');
    assert.equal(responder.plan(request({ user: 'weather today' })).content, 'weather by regex');
    assert.equal(responder.plan(request({ user: 'rain', dialect: 'mistral' })).content, 'mistral');
    assert.equal(responder.plan(request({ user: 'rain', model: 'other' })).content, 'wrong model');
    assert.equal(responder.plan(request({ user: 'rain' })).ruleIndex, 4);
  });

  it('matches on the last user message only, whatever its content shape', () => {
    const messages = [
      { role: 'user', content: 'first question about cats' },
      { role: 'assistant', content: 'an answer' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'now dogs' },
          { type: 'image_url', image_url: { url: 'data:' } },
        ],
      },
    ];
    assert.equal(lastUserText(messages), 'now dogs');
    const responder = new Responder(parseScript([{ contains: 'cats', text: 'cats' }]));
    assert.equal(responder.plan(request({ messages })).ruleIndex, null);
  });

  it('tells a call after a tool result from the first call', () => {
    const responder = new Responder(parseScript([{ afterToolResult: true, text: 'done' }, { toolCalls: [{ name: 't', arguments: {} }] }]));
    assert.equal(responder.plan(request()).toolCalls[0]?.name, 't');
    const after = request({
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: null },
        { role: 'tool', content: '42' },
      ],
    });
    assert.equal(responder.plan(after).content, 'done');
  });

  it('answers an agent loop turn by turn by the number of tool results so far', () => {
    const responder = new Responder(
      parseScript([
        { toolResults: 0, toolCalls: [{ name: 'first', arguments: {} }] },
        { toolResults: 1, toolCalls: [{ name: 'second', arguments: {} }] },
        { text: 'final' },
      ]),
    );
    const turn = (results: number) =>
      request({
        messages: [
          { role: 'user', content: 'go' },
          ...Array.from({ length: results }, (_, i) => [
            { role: 'assistant', content: null },
            { role: 'tool', content: String(i) },
          ]).flat(),
        ],
      });
    assert.equal(responder.plan(turn(0)).toolCalls[0]?.name, 'first');
    assert.equal(responder.plan(turn(1)).toolCalls[0]?.name, 'second');
    assert.equal(responder.plan(turn(2)).content, 'final');
  });
});

describe('fault queues', () => {
  it('serves one fault per matching call, in order, then the reply; rearm starts over', () => {
    const responder = new Responder(
      parseScript([
        { contains: 'other', text: 'x' },
        {
          text: 'ok',
          faults: [
            { kind: 'status', status: 502 },
            { kind: 'timeout', ms: 10 },
          ],
        },
      ]),
    );
    const kinds = () => responder.plan(request()).fault?.kind ?? null;
    assert.deepEqual([kinds(), kinds(), kinds(), kinds()], ['status', 'timeout', null, null]);
    // A call that matches another rule consumes nothing.
    responder.rearm();
    assert.equal(responder.plan(request({ user: 'other' })).fault, null);
    assert.equal(kinds(), 'status');
  });
});

describe('replies', () => {
  it('is the same for the same request, IDs included', () => {
    const responder = new Responder(parseScript([{ toolCalls: [{ name: 'a', arguments: { x: 1 } }] }]));
    assert.deepEqual(responder.plan(request()), responder.plan(request()));
    assert.notEqual(responder.plan(request()).toolCalls[0]?.id, responder.plan(request({ user: 'other' })).toolCalls[0]?.id);
    assert.match(responder.plan(request()).toolCalls[0]!.id, /^call_[A-Za-z0-9]{24}$/);
    assert.match(responder.plan(request({ dialect: 'mistral' })).toolCalls[0]!.id, /^[A-Za-z0-9]{9}$/);
  });

  it('defaults to a truncated echo of the last user message', () => {
    const responder = new Responder();
    assert.equal(responder.plan(request({ user: 'hi   there\nfriend' })).content, 'mock reply to: hi there friend');
    const long = 'word '.repeat(40);
    assert.equal(responder.plan(request({ user: long })).content, `mock reply to: ${long.trim().slice(0, 80)}…`);
    assert.equal(responder.plan(request({ messages: [{ role: 'system', content: 'x' }] })).content, 'mock reply');
  });

  it('defaults to JSON in JSON mode', () => {
    const responder = new Responder();
    assert.deepEqual(JSON.parse(responder.plan(request({ responseFormat: 'json_object' })).content!), { reply: 'mock reply to: hello' });
  });

  it('counts tokens from text length unless the rule says otherwise', () => {
    const responder = new Responder(parseScript([{ contains: 'fixed', text: 'x', usage: { output: 99 } }, { text: '12345678' }]));
    assert.deepEqual(responder.plan(request({ user: 'abcde' })).usage, { input: 2, output: 2 });
    assert.deepEqual(responder.plan(request({ user: 'fixed' })).usage, { input: 2, output: 99 });
  });

  it('splits text word by word, JSON into 16-character pieces, or as the rule says', () => {
    assert.deepEqual(splitWords('  one two\nthree  '), ['  one ', 'two\n', 'three  ']);
    assert.deepEqual(splitWords(''), []);
    const responder = new Responder(
      parseScript([
        { contains: 'json', json: { alpha: 'beta', gamma: [1, 2, 3] } },
        { contains: 'sized', text: 'abcdefg', chunks: 3 },
        { text: 'hello big world' },
      ]),
    );
    const json = responder.plan(request({ user: 'json' }));
    assert.equal(json.pieces.join(''), json.content);
    assert.ok(json.pieces.slice(0, -1).every((p) => p.length === 16));
    assert.deepEqual(responder.plan(request({ user: 'sized' })).pieces, ['abc', 'def', 'g']);
    assert.deepEqual(responder.plan(request()).pieces, ['hello ', 'big ', 'world']);
  });

  it('sends string tool arguments as they are', () => {
    const responder = new Responder(parseScript([{ toolCalls: [{ name: 'a', arguments: '{"broken": ' }] }]));
    const plan = responder.plan(request());
    assert.equal(plan.toolCalls[0]?.arguments, '{"broken": ');
    assert.equal(plan.content, null);
    assert.equal(plan.finishReason, 'tool_calls');
  });
});

describe('exampleFromJsonSchema', () => {
  it('produces a value that validates against the schema it came from', () => {
    const Address = z.object({ street: z.string().min(12), zip: z.string().max(3) });
    const schema = z.object({
      id: z.uuid(),
      kind: z.literal('order'),
      state: z.enum(['new', 'paid']),
      total: z.number().positive(),
      items: z.array(z.object({ sku: z.string(), qty: z.number().int().min(1) })).min(2),
      note: z.string().nullable(),
      shipTo: Address,
      billTo: Address.optional(),
      union: z.union([z.number(), z.string()]),
      flags: z.tuple([z.boolean(), z.string()]),
      at: z.iso.datetime(),
      day: z.iso.date(),
      site: z.url(),
    });
    const value = exampleFromJsonSchema(z.toJSONSchema(schema));
    const parsed = schema.safeParse(value);
    assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
  });

  it('resolves local $refs', () => {
    const value = exampleFromJsonSchema({
      type: 'object',
      properties: { a: { $ref: '#/$defs/thing' } },
      $defs: { thing: { type: 'object', properties: { n: { type: 'integer', exclusiveMinimum: 4 } } } },
    });
    assert.deepEqual(value, { a: { n: 5 } });
  });
});
