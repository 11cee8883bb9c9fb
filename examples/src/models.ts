import { createMistral } from '@ai-sdk/mistral';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { LanguageModel } from 'ai';

/**
 * The chat model the examples use. With MISTRAL_API_KEY set they call Mistral from inside the
 * cluster; otherwise they call the local model server the local stack starts (CAIRN_MOCK_LLM_URL),
 * which answers deterministically and needs no key.
 */
export function chatModel(): LanguageModel {
  const mistralKey = process.env['MISTRAL_API_KEY'];
  if (mistralKey) return createMistral({ apiKey: mistralKey })(process.env['CAIRN_EXAMPLE_MODEL'] ?? 'mistral-small-latest');
  const mock = process.env['CAIRN_MOCK_LLM_URL'];
  if (!mock) {
    throw new Error(
      'No model configured: set MISTRAL_API_KEY for Mistral, or CAIRN_MOCK_LLM_URL for the local model server (pnpm dev starts one).',
    );
  }
  return createOpenAICompatible({ name: 'mock', baseURL: `${mock}/openai/v1`, supportsStructuredOutputs: true })('mock-small');
}
