// A language model for workflow tests: answers each call with the next scripted reply, streamed or
// not, with token usage, through the AI SDK's own mock model class. It stands in for a provider the
// way the local model server does under `cairn dev`, without a server.
import { MockLanguageModelV4, convertArrayToReadableStream } from 'ai/test';

/** One scripted answer of a {@link testModel}. */
export interface TestModelReply {
  /** The model's text. For structured output (`schema`), the JSON text of the object. */
  readonly text: string;
  /** Token counts reported for the call. Default: about one token per four characters. */
  readonly inputTokens?: number;
  readonly outputTokens?: number;
}

/** The model {@link testModel} returns: an AI SDK `LanguageModel` that records its calls. */
export type TestModel = MockLanguageModelV4;

type Usage = Awaited<ReturnType<MockLanguageModelV4['doGenerate']>>['usage'];

function usageOf(reply: TestModelReply, prompt: unknown): Usage {
  const input = reply.inputTokens ?? Math.max(1, Math.ceil(JSON.stringify(prompt ?? '').length / 4));
  const output = reply.outputTokens ?? Math.max(1, Math.ceil(reply.text.length / 4));
  return {
    inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined },
    outputTokens: { total: output, text: output, reasoning: undefined },
  };
}

/**
 * A scripted language model for tests: the first call gets the first reply, the second the second,
 * and so on; once they run out, the last reply repeats. Streaming calls (`ctx.model`'s default)
 * get the text word by word. Give it to the workflow wherever the workflow takes its model from,
 * and inspect `doStreamCalls` / `doGenerateCalls` to see the prompts.
 *
 * @example
 * ```ts
 * import { TestEnvironment, testModel } from '@cairn/worker/testing';
 * import { models, triage } from '../src/workflows.js';
 *
 * models.chat = () => testModel('{"category":"damaged"}');
 * const env = await TestEnvironment.start({ workflows: [triage] });
 * ```
 */
export function testModel(...replies: ReadonlyArray<string | TestModelReply>): TestModel {
  if (replies.length === 0) throw new TypeError('testModel needs at least one reply, e.g. testModel("Hello!")');
  const script = replies.map((r) => (typeof r === 'string' ? { text: r } : r));
  let calls = 0;
  const next = (): TestModelReply => script[Math.min(calls++, script.length - 1)]!;
  return new MockLanguageModelV4({
    provider: 'test',
    modelId: 'test-model',
    doGenerate: (options) => {
      const reply = next();
      return Promise.resolve({
        content: [{ type: 'text', text: reply.text }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage: usageOf(reply, options.prompt),
        warnings: [],
      });
    },
    doStream: (options) => {
      const reply = next();
      const words = reply.text.match(/\S+\s*|\s+/g) ?? [''];
      return Promise.resolve({
        stream: convertArrayToReadableStream([
          { type: 'stream-start', warnings: [] },
          { type: 'text-start', id: 't0' },
          ...words.map((delta) => ({ type: 'text-delta' as const, id: 't0', delta })),
          { type: 'text-end', id: 't0' },
          { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usageOf(reply, options.prompt) },
        ]),
      });
    },
  });
}
