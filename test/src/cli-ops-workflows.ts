// Workflows test/src/e2e/cli-ops.test.ts drives through `cairn`: the registry's flow control,
// schedules, replay of a model call and versions no connected worker serves. The worker
// (cli-ops-worker-main.ts) runs them all.
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { LanguageModel } from 'ai';
import { defineWorkflow } from '@cairn/sdk';

/** The local model server the stack starts, configured from the environment as a worker's models are. */
function localModel(): LanguageModel {
  const url = process.env['CAIRN_MOCK_LLM_URL'];
  if (!url) throw new Error('No model configured: set CAIRN_MOCK_LLM_URL to the local model server.');
  return createOpenAICompatible({ name: 'mock', baseURL: `${url}/openai/v1`, includeUsage: true })('mock-small');
}

/** One step. */
export const echo = defineWorkflow({ name: 'ops-echo', version: '1' }, async (ctx, input: { text: string }) => {
  return ctx.step('echo', () => ({ echoed: input.text }));
});

/** One model call, then one step. */
export const asker = defineWorkflow({ name: 'ops-model', version: '1' }, async (ctx, input: { question: string }) => {
  const reply = await ctx.model('ask', { model: localModel(), prompt: input.question });
  return ctx.step('keep', () => ({ answer: reply.text }));
});

/** Waits for the signal "go": a schedule's run that has not ended. */
export const waiter = defineWorkflow({ name: 'ops-wait', version: '1' }, async (ctx) => {
  await ctx.waitForSignal('go');
  return ctx.step('done', () => 'done');
});
